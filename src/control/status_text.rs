//! The human half of `cyberwave-edge-core status`: the report object as text (the JSON half
//! is `status.rs`).

use std::time::{Duration, UNIX_EPOCH};

use serde_json::{Value, json};

fn when(epoch: Option<f64>) -> String {
    match epoch {
        Some(e) if e > 0.0 => {
            let t = UNIX_EPOCH + Duration::from_secs_f64(e);
            humantime::format_rfc3339_seconds(t).to_string()
        }
        _ => "-".into(),
    }
}

/// The string at JSON pointer `p` of the report, `-` when absent.
fn text_at(r: &Value, p: &str) -> String {
    r.pointer(p)
        .and_then(Value::as_str)
        .unwrap_or("-")
        .to_string()
}

/// The lines about the account: credentials, environment, identity, backend, broker.
fn cloud_lines(r: &Value) -> String {
    let s = |p: &str| text_at(r, p);
    let ok = |b: bool| if b { "✓" } else { "✗" };
    let mut out = String::new();
    if r.pointer("/credentials/ok") == Some(&json!(true)) {
        out += &format!(
            "  {} Credentials  token {}\n",
            ok(true),
            s("/credentials/token")
        );
    } else {
        out += &format!(
            "  {} Credentials  {}\n",
            ok(false),
            s("/credentials/problem")
        );
    }
    if r.pointer("/environment/ok") == Some(&json!(true)) {
        out += &format!("  {} Environment  {}\n", ok(true), s("/environment/uuid"));
    } else {
        out += &format!(
            "  {} Environment  {}\n",
            ok(false),
            s("/environment/problem")
        );
    }
    out += &format!("    Fingerprint  {}\n", s("/fingerprint"));
    out += &format!("    Edge uuid    {}\n", s("/edge_uuid"));
    let b = &r["backend"];
    match (b["reachable"].as_bool(), b["token"].as_str()) {
        (Some(true), Some("valid")) => {
            out += &format!(
                "  ✓ Backend      {} ({} ms)\n",
                s("/backend/url"),
                b["latency_ms"]
            )
        }
        (Some(true), Some("rejected")) => {
            out += &format!("  ✗ Backend      token rejected: {}\n", s("/backend/error"))
        }
        (None, _) => out += "  — Backend      not checked\n",
        _ => out += &format!("  ✗ Backend      {}\n", s("/backend/error")),
    }
    let m = &r["mqtt"];
    let broker = m["broker"].as_str().unwrap_or("-");
    if m["connected"].as_bool() == Some(true) {
        let by = if m["source"] == json!("daemon") {
            "daemon link"
        } else {
            "probe"
        };
        out += &format!("  ✓ MQTT broker  {broker} connected ({by})\n");
    } else {
        let why = m["error"]
            .as_str()
            .or(m["last_error"].as_str())
            .unwrap_or("not connected");
        out += &format!("  ✗ MQTT broker  {broker}: {why}\n");
    }
    out
}

/// The tunnel while one runs or the last one failed (an idle edge says nothing).
fn remote_access_lines(r: &Value) -> String {
    let Some(ra) = r.get("remote_access").filter(|v| v.is_object()) else {
        return String::new();
    };
    let text = |p: &str| ra.pointer(p).and_then(Value::as_str);
    let mut out = String::new();
    if let Some(session) = text("/session") {
        let since = format!(" since {}", when(ra["since"].as_f64()));
        out += &format!(
            "    Remote access  {} session {session} via {}{since}\n",
            text("/state").unwrap_or("-"),
            text("/relay").unwrap_or("-"),
        );
    }
    if let Some(e) = text("/last_failure/error") {
        out += &format!(
            "    Remote access  last failure (session {}): {}\n",
            text("/last_failure/session").unwrap_or("-"),
            crate::clip(e, 300)
        );
    }
    out
}

/// The human report of [`collect`]'s object.
/// A driver's update state, one line per fact that matters now: a pending update and why it
/// waits, a held update lock, probation, a rollback.
/// A driver's credential: scoped (with the token's expiry and renewal trouble, never the
/// token) or the edge token as `scoped`'s fallback; legacy by choice says nothing.
fn credential_line(c: &Value) -> String {
    match c["mode"].as_str() {
        Some("scoped") => {
            let state = match (c["expired"].as_bool(), c["renewal_failing"].as_str()) {
                (Some(true), Some(f)) => format!(", EXPIRED; {f}"),
                (_, Some(f)) => format!("; {f}"),
                (Some(true), None) => ", EXPIRED".into(),
                _ => String::new(),
            };
            format!(
                "        credential: twin-scoped token {}, expires {}{state}\n",
                text_at(c, "/token_uuid"),
                text_at(c, "/expires_at")
            )
        }
        _ if c["fallback"].is_string() => format!(
            "        credential: the edge token (no twin-scoped token: {})\n",
            text_at(c, "/fallback")
        ),
        _ => String::new(),
    }
}

fn update_lines(c: &Value) -> String {
    let u = &c["update"];
    let mut out = String::new();
    if let Some(p) = u.get("pending").filter(|p| !p.is_null()) {
        out += &format!(
            "        update to {} waits: {}\n",
            text_at(p, "/image"),
            text_at(p, "/waiting")
        );
    }
    if let Some(s) = c.pointer("/update_lock/held_s").and_then(Value::as_u64) {
        out += &format!("        update lock held for {s} s\n");
    }
    if let Some(s) = u["probation_left_s"].as_u64() {
        out += &format!("        on probation, {s} s left\n");
    }
    if let Some(w) = c.get("waiting_for").filter(|w| !w.is_null()) {
        out += &format!(
            "        starts after {} is ready (waiting {} s)\n",
            text_at(w, "/container"),
            w["for_s"]
        );
    }
    if let Some(r) = u.get("rolled_back").filter(|r| !r.is_null()) {
        out += &format!(
            "        rolled back from {} ({}); last good {}\n",
            text_at(r, "/image"),
            text_at(r, "/reason"),
            text_at(u, "/last_good/image")
        );
    }
    out
}

pub fn render(r: &Value) -> String {
    let s = |p: &str| text_at(r, p);
    let mut out = String::from("\nCyberwave Edge Core — Status\n\n");
    out += &format!("  Config dir:    {}\n", s("/config_dir"));
    if r["mode"] == json!("local") {
        out += "  Mode:          local (`run --local`: a manifest's drivers; no account, backend or broker)\n";
    } else {
        out += &cloud_lines(r);
    }
    let d = &r["daemon"];
    if d["running"].as_bool() == Some(true) {
        out += &format!(
            "  ✓ Daemon       running (pid {}, version {}, up {})\n",
            d["pid"],
            d["version"].as_str().unwrap_or("-"),
            crate::human_duration(std::time::Duration::from_secs_f64(
                d["uptime_seconds"].as_f64().unwrap_or(0.0).clamp(0.0, 1e12),
            ))
        );
    } else {
        out += &format!("  ✗ Daemon       not running ({})\n", s("/daemon/problem"));
    }
    let local = r["mode"] == json!("local");
    if let Some(a) = r["alerts"].as_object().filter(|_| !local) {
        let n = |k: &str| a.get(k).and_then(Value::as_u64).unwrap_or(0);
        out += &format!(
            "    Alerts       {} pending, {} delivered, {} refused by the backend\n",
            n("pending"),
            n("delivered"),
            n("dropped")
        );
    }
    if let Some(t) = r["twins"].as_object().filter(|_| !local) {
        let linked = t
            .get("linked")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        out += &format!(
            "    Linked twins {} (from {}, {})\n",
            linked.len(),
            t.get("source").and_then(Value::as_str).unwrap_or("-"),
            when(t.get("fetched_at").and_then(Value::as_f64))
        );
        for twin in linked {
            out += &format!("      {}\n", twin.as_str().unwrap_or("-"));
        }
    }
    if let Some(list) = r.pointer("/drivers/containers").and_then(Value::as_array) {
        let running = list.iter().filter(|c| c["state"] == "running").count();
        out += &format!("    Drivers      {} ({} running)\n", list.len(), running);
        for c in list {
            let mut exit = c["last_exit"]
                .as_i64()
                .map(|e| format!(", last exit {e}"))
                .unwrap_or_default();
            if let Some(age) = c.pointer("/data/last_sample_age_s").and_then(Value::as_f64) {
                exit += &format!(
                    ", data {} Hz, last {age} s ago",
                    c.pointer("/data/rate_hz").unwrap_or(&json!(0))
                );
            }
            out += &format!(
                "      {}  {}  {}  twin {}  restarts {}{}\n",
                c["name"].as_str().unwrap_or("-"),
                c["status"]
                    .as_str()
                    .or_else(|| c["state"].as_str())
                    .unwrap_or("-"),
                c["image"].as_str().unwrap_or("-"),
                c["twin_uuid"].as_str().unwrap_or("-"),
                c["restarts"],
                exit
            );
            out += &update_lines(c);
            out += &credential_line(&c["credential"]);
        }
    }
    for t in r
        .pointer("/drivers/awaiting_token")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        out += &format!(
            "      twin {}: waiting for its twin-scoped driver token\n",
            t.as_str().unwrap_or("-")
        );
    }
    for d in r
        .pointer("/drivers/discovering")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        out += &format!(
            "      twin {}: fetching {} to read what it declares\n",
            text_at(d, "/twin_uuid"),
            text_at(d, "/image")
        );
    }
    if let Some(mode) = r.pointer("/bus/mode").and_then(Value::as_str) {
        out += &format!(
            "    Zenoh        {mode}; session {}\n",
            text_at(r, "/bus/session/state")
        );
        for w in r
            .pointer("/bus/warnings")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            out += &format!("      ! {}\n", w.as_str().unwrap_or("-"));
        }
    }
    if r.pointer("/restart/in_progress") == Some(&json!(true)) {
        out += &format!(
            "    Restart      in progress ({})\n",
            r.pointer("/restart/phase")
                .and_then(Value::as_str)
                .unwrap_or("-")
        );
    }
    out += &remote_access_lines(r);
    // A worker that was never wanted (no worker files) is not news.
    if let Some(w) = r.get("worker").filter(|w| {
        w["configured"] == json!(true)
            && (w["wanted"] == json!(true) || w["state"] != json!("not created"))
    }) {
        out += &format!(
            "    Worker       {}  {}{}  files {}  models {}{}\n",
            w["name"].as_str().unwrap_or("-"),
            w["state"].as_str().unwrap_or("-"),
            if w["ready"] == json!(true) {
                " (ready)"
            } else {
                ""
            },
            w["files"].as_array().map_or(0, Vec::len),
            w["models_state"].as_str().unwrap_or("-"),
            if w.pointer("/health/circuit_breaker_tripped") == Some(&json!(true)) {
                "  [circuit-breaker tripped]"
            } else {
                ""
            }
        );
        if let Some(e) = w["last_error"].as_str() {
            out += &format!("      last error: {e}\n");
        }
    }
    if let Some(errs) = r["last_errors"].as_array().filter(|e| !e.is_empty()) {
        out += "    Last errors\n";
        for e in errs {
            out += &format!(
                "      {}  {}\n",
                when(e["at"].as_f64()),
                e["message"].as_str().unwrap_or("-")
            );
        }
    }
    out += &format!("\n  State: {} (exit {})\n\n", s("/state"), r["exit_code"]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_mode_says_so_and_shows_no_account_checks() {
        let r = json!({"mode": "local", "config_dir": "/d", "state": "healthy", "exit_code": 0,
                       "credentials": {"ok": false, "problem": "missing"},
                       "environment": {"ok": false, "problem": "missing"},
                       "mqtt": {"connected": false}, "daemon": {"running": true, "pid": 1}});
        let text = render(&r);
        assert!(text.contains("Mode:          local"), "{text}");
        assert!(
            !text.contains("Credentials") && !text.contains("MQTT broker") && !text.contains('✗'),
            "{text}"
        );
        let down = json!({"daemon": {"running": false, "problem": "nothing answers on /d/edge-core.sock: No such file"}});
        assert!(render(&down).contains("not running (nothing answers on /d/edge-core.sock"));
        let mut quiet = r.clone();
        quiet["alerts"] = json!({"pending": 0});
        quiet["twins"] = json!({"linked": []});
        quiet["worker"] = json!({"configured": true, "wanted": false, "state": "not created"});
        let text = render(&quiet);
        assert!(
            !text.contains("Alerts") && !text.contains("Linked twins") && !text.contains("Worker"),
            "{text}"
        );
    }

    #[test]
    fn render_mentions_every_section() {
        let r = json!({
            "state": "degraded", "exit_code": 1, "config_dir": "/c",
            "credentials": {"ok": true, "token": "cw_tes…_123"},
            "environment": {"ok": false, "problem": "/c/environment.json: file not found"},
            "fingerprint": "fp", "edge_uuid": null,
            "backend": {"reachable": false, "token": "unknown", "error": "GET x: backend unreachable"},
            "mqtt": {"source": "daemon", "broker": "h:1883", "connected": true},
            "daemon": {"running": true, "pid": 7, "version": "0.2.0", "uptime_seconds": 3725.0},
            "twins": {"linked": ["t1"], "source": "cache", "fetched_at": 0.0},
            "drivers": {"containers": [{"name": "cyberwave-driver-t1", "status": "running for 5s",
                "image": "i", "twin_uuid": "t1", "restarts": 0,
                "data": {"rate_hz": 20.0, "last_sample_age_s": 0.1},
                "update": {"pending": {"image": "r/d:4", "waiting": "pull_failed: timeout"},
                    "probation_left_s": 30, "last_good": {"image": "r/d:2"},
                    "rolled_back": {"image": "r/d:3", "reason": "exited with code 1"}},
                "update_lock": {"held_s": 12}, "waiting_for": {"container": "cyberwave-driver-t-router", "for_s": 3}}], "problems": [],
                "discovering": [{"twin_uuid": "t2", "image": "r/go2:dev"}]},
            "bus": {"mode": "router-managed (router-connected (endpoints: tcp/127.0.0.1:7447))",
                "session": {"state": "open"}, "warnings": ["ZENOH_MODE=\"x\" is not peer or client"]},
            "last_errors": [{"at": 1.0, "message": "boom"}],
        });
        let text = render(&r);
        for needle in [
            "cw_tes…_123",
            "environment.json: file not found",
            "backend unreachable",
            "h:1883 connected",
            "pid 7",
            "1h 2m 5s",
            "t1",
            "boom",
            "State: degraded (exit 1)",
            "running for 5s",
            "data 20.0 Hz, last 0.1 s ago",
            "Zenoh        router-managed (router-connected (endpoints: tcp/127.0.0.1:7447)); session open",
            "! ZENOH_MODE=\"x\" is not peer or client",
            "update to r/d:4 waits: pull_failed: timeout",
            "update lock held for 12 s",
            "on probation, 30 s left",
            "rolled back from r/d:3 (exited with code 1); last good r/d:2",
            "starts after cyberwave-driver-t-router is ready (waiting 3 s)",
            "twin t2: fetching r/go2:dev to read what it declares",
        ] {
            assert!(text.contains(needle), "missing {needle} in\n{text}");
        }
    }
}
