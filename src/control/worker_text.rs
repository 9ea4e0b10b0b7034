//! The texts of `worker status` and `worker health` (reference §10.1), rendered from the
//! worker's JSON view (the daemon's, or one built from Docker when no daemon runs). Pure.

use serde_json::Value;

fn n(v: &Value, ptr: &str) -> u64 {
    v.pointer(ptr).and_then(Value::as_u64).unwrap_or(0)
}

fn breaker_line(v: &Value) -> &'static str {
    if v.pointer("/health/circuit_breaker_tripped") == Some(&Value::Bool(true)) {
        "TRIPPED — automatic restarts suppressed"
    } else {
        "closed"
    }
}

fn s<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or("")
}

/// `worker status`.
pub fn render_status(v: &Value) -> String {
    let mut out = format!("Worker container: {} ({})", s(v, "/name"), s(v, "/state"));
    if breaker_line(v) != "closed" {
        out.push_str(" [circuit-breaker tripped]");
    }
    out.push('\n');
    let files = v["files"].as_array().cloned().unwrap_or_default();
    if files.is_empty() {
        out.push_str("  No worker files found in workers directory\n");
    } else {
        out.push_str("  Workers:\n");
        for f in &files {
            out.push_str(&format!("    {}\n", s(f, "/name")));
        }
    }
    let models = v["models"].as_array().cloned().unwrap_or_default();
    if models.is_empty() {
        out.push_str("  No cached models\n");
    } else {
        out.push_str("  Models:\n");
        for m in &models {
            out.push_str(&format!(
                "    {:<30} {:.1} MB\n",
                s(m, "/model_id"),
                n(m, "/size_bytes") as f64 / 1e6
            ));
        }
    }
    for f in v["model_failures"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "  Model could not be loaded: {}: {}\n",
            s(f, "/model_id"),
            s(f, "/error")
        ));
    }
    let gpu = v["gpu"].as_bool().unwrap_or(false);
    out.push_str(&format!(
        "  GPU: {}\n",
        if gpu { "enabled" } else { "not detected" }
    ));
    out.push_str(&format!("  Workers dir: {}\n", s(v, "/workers_dir")));
    out.push_str(&format!("  Models dir:  {}\n", s(v, "/models_dir")));
    out.push_str("  Health:\n");
    out.push_str(&format!(
        "    Total restarts:  {}\n",
        n(v, "/health/total_restarts")
    ));
    out.push_str(&format!(
        "    Recent restarts: {} (5-min window)\n",
        n(v, "/health/recent_restarts")
    ));
    out.push_str(&format!("    Circuit-breaker: {}\n", breaker_line(v)));
    if let Some(u) = v.pointer("/health/uptime_seconds").and_then(Value::as_u64) {
        out.push_str(&format!("    Uptime:          {u}s\n"));
    }
    if let Some(e) = v["last_error"].as_str() {
        out.push_str(&format!("  Last error: {e}\n"));
    }
    out
}

/// `HH:MM:SS` (UTC) of an epoch time.
fn clock(epoch: f64) -> String {
    let t = epoch.max(0.0) as u64 % 86_400;
    format!("{:02}:{:02}:{:02}", t / 3600, t / 60 % 60, t % 60)
}

/// `worker health`.
pub fn render_health(v: &Value) -> String {
    let state = s(v, "/state");
    let mut out = format!("Worker Health — {}\n", s(v, "/name"));
    out.push_str(&format!("  Container status: {state}\n"));
    out.push_str(&format!(
        "  Health: {}\n",
        if state == "running" {
            "healthy"
        } else {
            "unhealthy"
        }
    ));
    out.push_str(&format!(
        "  Readiness: {}\n",
        if v["ready"].as_bool().unwrap_or(false) {
            "ready"
        } else {
            "not ready"
        }
    ));
    if let Some(u) = v.pointer("/health/uptime_seconds").and_then(Value::as_u64) {
        out.push_str(&format!("  Uptime: {u}s\n"));
    }
    out.push_str("  Restart accounting:\n");
    out.push_str(&format!("    Total: {}\n", n(v, "/health/total_restarts")));
    out.push_str(&format!(
        "    Recent: {} (5-min window)\n",
        n(v, "/health/recent_restarts")
    ));
    out.push_str(&format!("    Circuit-breaker: {}\n", breaker_line(v)));
    let history = v["history"].as_array().cloned().unwrap_or_default();
    if history.is_empty() {
        out.push_str("  No restarts recorded in this session\n");
    } else {
        out.push_str(&format!("  Restart history ({} events):\n", history.len()));
        for e in &history {
            out.push_str(&format!(
                "    {}  {:<30} {}\n",
                clock(e["at"].as_f64().unwrap_or(0.0)),
                s(e, "/reason"),
                if e["ok"].as_bool().unwrap_or(false) {
                    "ok"
                } else {
                    "failed"
                }
            ));
        }
    }
    out
}

/// What a `worker start|restart` is waiting for, from the daemon's worker view: said to the
/// operator rather than waiting silently.
pub fn waiting_for(v: &Value) -> String {
    let state = s(v, "/state");
    if s(v, "/models_state") == "checking" {
        return "the models the workers need are being checked (downloaded when missing)".into();
    }
    if v["wanted"] == Value::Bool(false) && v["held"] != Value::Bool(true) {
        return "the drivers to be started first (the worker starts after them)".into();
    }
    match state {
        "starting" => {
            "the container to be created and started (an image pull can take minutes)".into()
        }
        "" | "not created" => "the daemon to launch the container".into(),
        other => format!("the container to run (it is {other})"),
    }
}

/// `worker logs` on a terminal: the `[LEVEL] [name]` of a log line in the original's colours
/// (level by severity, name dim); other lines unchanged.
pub fn colorize_log_line(line: &str) -> String {
    const LEVELS: [(&str, &str); 5] = [
        ("DEBUG", "\x1b[36m"),
        ("INFO", "\x1b[32m"),
        ("WARNING", "\x1b[33m"),
        ("ERROR", "\x1b[31m"),
        ("CRITICAL", "\x1b[1;31m"),
    ];
    const RESET: &str = "\x1b[0m";
    const DIM: &str = "\x1b[2m";
    for (start, _) in line.match_indices('[') {
        let rest = &line[start + 1..];
        let Some((level, colour)) = LEVELS
            .iter()
            .find(|(l, _)| rest.starts_with(l) && rest[l.len()..].starts_with(']'))
        else {
            continue;
        };
        let after_level = start + 1 + level.len() + 1;
        let tail = &line[after_level..];
        let spaces = tail.len() - tail.trim_start().len();
        if spaces == 0 || !tail[spaces..].starts_with('[') {
            continue;
        }
        let Some(close) = tail[spaces + 1..].find(']') else {
            continue;
        };
        if close == 0 {
            continue;
        }
        let name_end = after_level + spaces + 1 + close + 1;
        return format!(
            "{}{colour}{}{RESET}{DIM}{}{RESET}{}",
            &line[..start],
            &line[start..after_level],
            &line[after_level..name_end],
            &line[name_end..]
        );
    }
    line.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn status_and_health_texts() {
        let v = json!({
            "name": "cyberwave-worker-0a1b2c3d", "state": "running", "gpu": false, "ready": true,
            "files": [{"name": "wf_ab.py", "size_bytes": 10}],
            "models": [{"model_id": "yolov8n", "size_bytes": 6_534_387}],
            "workers_dir": "/c/workers", "models_dir": "/c/models",
            "health": {"total_restarts": 6, "recent_restarts": 5, "circuit_breaker_tripped": true, "uptime_seconds": 42},
            "history": [{"at": 3723.0, "reason": "worker-files-changed", "ok": true}],
        });
        let t = render_status(&v);
        for line in [
            "Worker container: cyberwave-worker-0a1b2c3d (running) [circuit-breaker tripped]\n",
            "  Workers:\n    wf_ab.py\n",
            "    yolov8n                        6.5 MB\n",
            "  GPU: not detected\n",
            "  Workers dir: /c/workers\n",
            "  Models dir:  /c/models\n",
            "    Total restarts:  6\n",
            "    Recent restarts: 5 (5-min window)\n",
            "    Circuit-breaker: TRIPPED — automatic restarts suppressed\n",
            "    Uptime:          42s\n",
        ] {
            assert!(t.contains(line), "{line:?} not in\n{t}");
        }
        let h = render_health(&v);
        for line in [
            "Worker Health — cyberwave-worker-0a1b2c3d\n",
            "  Container status: running\n",
            "  Health: healthy\n",
            "  Readiness: ready\n",
            "  Restart history (1 events):\n",
            "    01:02:03  worker-files-changed           ok\n",
        ] {
            assert!(h.contains(line), "{line:?} not in\n{h}");
        }
        let empty = json!({"name": "w", "state": "not created"});
        assert!(render_status(&empty).contains("No worker files found in workers directory"));
        assert!(render_status(&empty).contains("No cached models"));
        assert!(render_health(&empty).contains("No restarts recorded in this session"));
        assert!(render_health(&empty).contains("Health: unhealthy"));
    }

    #[test]
    fn log_lines_coloured_as_the_original() {
        let rows = [
            (
                "2026-12-03 08:36:26 UTC.075 [WARNING] [worker.main] low memory",
                "2026-12-03 08:36:26 UTC.075 \x1b[33m[WARNING]\x1b[0m\x1b[2m [worker.main]\x1b[0m low memory",
            ),
            (
                "[INFO]  [a] x",
                "\x1b[32m[INFO]\x1b[0m\x1b[2m  [a]\x1b[0m x",
            ),
            (
                "[CRITICAL] [n]",
                "\x1b[1;31m[CRITICAL]\x1b[0m\x1b[2m [n]\x1b[0m",
            ),
            (
                "[WARN] [x] not a Python level",
                "[WARN] [x] not a Python level",
            ),
            ("[INFO][x] no space", "[INFO][x] no space"),
            ("[INFO] [] empty name", "[INFO] [] empty name"),
            ("[INFO] [unclosed", "[INFO] [unclosed"),
            ("plain line", "plain line"),
            (
                "[x] [ERROR] [later] found",
                "[x] \x1b[31m[ERROR]\x1b[0m\x1b[2m [later]\x1b[0m found",
            ),
        ];
        for (line, want) in rows {
            assert_eq!(colorize_log_line(line), want, "{line:?}");
        }
    }

    #[test]
    fn waiting_says_why() {
        let w = |v: Value| waiting_for(&v);
        assert!(w(json!({"models_state": "checking", "state": "exited"})).contains("models"));
        assert!(w(json!({"wanted": false, "held": false, "state": "exited"})).contains("drivers"));
        assert!(w(json!({"wanted": true, "state": "starting"})).contains("pull"));
        assert!(w(json!({"wanted": true, "state": "exited"})).contains("it is exited"));
    }
}
