//! `cyberwave-edge-core status`: what a fleet script needs to know about this device, in under
//! a second whatever the network does. Probes (daemon socket, backend, broker) run in
//! parallel, each bounded; the exit code says healthy (0), degraded (1) or not configured /
//! not running (2).

use std::path::PathBuf;
use std::thread;
use std::time::{Duration, Instant, UNIX_EPOCH};

use crossbeam_channel::unbounded;
use serde_json::{Value, json};

use crate::backend::{Backend, BackendError};
use crate::config::{self, EnvLayer, EnvironmentFile, Settings};

pub const EXIT_HEALTHY: i32 = 0;
pub const EXIT_DEGRADED: i32 = 1;
pub const EXIT_NOT_CONFIGURED: i32 = 2;

/// How long each probe may take; the whole command stays under 1 s.
const PROBE_TIMEOUT: Duration = Duration::from_millis(750);

/// The outcome of the backend probe.
#[derive(Debug, Clone, PartialEq)]
pub enum BackendProbe {
    Ok {
        latency_ms: u64,
    },
    Rejected(String),
    Unreachable(String),
    /// Answered, but not as expected (5xx, bad body).
    Failed(String),
    /// Not run (no credentials) or no answer in time.
    Skipped,
}

/// The decision, pure: state name and exit code.
pub fn assess(
    credentials_ok: bool,
    environment_ok: bool,
    daemon: Option<&Value>,
    backend: &BackendProbe,
) -> (&'static str, i32) {
    let drivers_down = daemon
        .and_then(|d| d.pointer("/drivers/containers"))
        .and_then(Value::as_array)
        .is_some_and(|list| list.iter().any(|c| c["state"] != "running"))
        || daemon
            .and_then(|d| d.pointer("/drivers/problems"))
            .and_then(Value::as_array)
            .is_some_and(|list| list.iter().any(|p| p["degrades"] == json!(true)))
        // A worker that should run and does not (or whose models failed) degrades too.
        || daemon.and_then(|d| d.get("worker")).is_some_and(|w| {
            (w["wanted"] == json!(true) && w["state"] != json!("running"))
                || w["models_state"] == json!("failed")
        });
    if daemon.and_then(|d| d.get("mode")).and_then(Value::as_str) == Some("local") {
        // Local mode: no backend or broker to check; the drivers are the whole story.
        return if drivers_down {
            ("degraded", EXIT_DEGRADED)
        } else {
            ("healthy", EXIT_HEALTHY)
        };
    }
    if !credentials_ok || matches!(backend, BackendProbe::Rejected(_)) || !environment_ok {
        return ("not_configured", EXIT_NOT_CONFIGURED);
    }
    let Some(daemon) = daemon else {
        return ("not_running", EXIT_NOT_CONFIGURED);
    };
    let mqtt_up = daemon.pointer("/mqtt/connected").and_then(Value::as_bool) == Some(true);
    let daemon_token_rejected =
        daemon.pointer("/backend/token").and_then(Value::as_str) == Some("rejected");
    let backend_ok = matches!(backend, BackendProbe::Ok { .. });
    if !mqtt_up || !backend_ok || daemon_token_rejected || drivers_down {
        return ("degraded", EXIT_DEGRADED);
    }
    ("healthy", EXIT_HEALTHY)
}

fn probe_json(p: &BackendProbe) -> Value {
    match p {
        BackendProbe::Ok { latency_ms } => {
            json!({"reachable": true, "token": "valid", "latency_ms": latency_ms})
        }
        BackendProbe::Rejected(e) => json!({"reachable": true, "token": "rejected", "error": e}),
        BackendProbe::Unreachable(e) => json!({"reachable": false, "token": "unknown", "error": e}),
        BackendProbe::Failed(e) => json!({"reachable": true, "token": "unknown", "error": e}),
        BackendProbe::Skipped => json!({"reachable": null, "token": "unknown"}),
    }
}

enum Probe {
    Daemon(Result<Value, String>),
    Backend(BackendProbe),
    Mqtt(Result<Duration, String>),
}

/// Gathers everything and returns the report object (with `state` and `exit_code`).
pub fn collect() -> Value {
    let started = Instant::now();
    let env = EnvLayer::from_process();
    let (config_dir, overridden) = config::resolve_config_dir(&|k| env.process(k));
    let settings = Settings::load(config_dir.clone(), overridden, &env);
    let socket: PathBuf = match &settings {
        Ok((s, _)) => s.control_socket.clone(),
        Err(_) => env
            .get("CYBERWAVE_EDGE_CONTROL_SOCKET")
            .map(PathBuf::from)
            .unwrap_or_else(|| config_dir.join(super::SOCKET_NAME)),
    };

    let (tx, rx) = unbounded::<Probe>();
    let mut expected = 1;
    {
        let tx = tx.clone();
        thread::spawn(move || {
            let r = super::query(&socket, "status", PROBE_TIMEOUT).map_err(|e| e.to_string());
            let _ = tx.send(Probe::Daemon(r));
        });
    }
    if let Ok((s, _)) = &settings {
        expected += 2;
        let backend = Backend::probe(s, PROBE_TIMEOUT);
        let tx2 = tx.clone();
        thread::spawn(move || {
            let r = match backend.validate_token() {
                Ok(lat) => BackendProbe::Ok {
                    latency_ms: lat.as_millis() as u64,
                },
                Err(e @ BackendError::Unauthorized { .. }) => BackendProbe::Rejected(e.to_string()),
                Err(e @ BackendError::Unreachable { .. }) => {
                    BackendProbe::Unreachable(e.to_string())
                }
                Err(e) => BackendProbe::Failed(e.to_string()),
            };
            let _ = tx2.send(Probe::Backend(r));
        });
        let broker = s.mqtt.clone();
        let tx3 = tx.clone();
        thread::spawn(move || {
            let _ = tx3.send(Probe::Mqtt(crate::mqtt::probe(&broker, PROBE_TIMEOUT)));
        });
    }
    drop(tx);

    let deadline = started + Duration::from_millis(900);
    let mut daemon: Result<Value, String> = Err("no answer in time".into());
    let mut backend = BackendProbe::Skipped;
    let mut mqtt_probe: Option<Result<Duration, String>> = None;
    for _ in 0..expected {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(Probe::Daemon(d)) => daemon = d,
            Ok(Probe::Backend(b)) => backend = b,
            Ok(Probe::Mqtt(m)) => mqtt_probe = Some(m),
            Err(_) => break,
        }
    }
    if matches!(backend, BackendProbe::Skipped) && settings.is_ok() {
        backend =
            BackendProbe::Unreachable(format!("no answer within {} ms", PROBE_TIMEOUT.as_millis()));
    }

    // Local files, read-only (status never creates or migrates anything).
    let (credentials, credentials_ok) = match &settings {
        Ok((s, _)) => (
            json!({"ok": true, "token": s.token.masked(), "problem": null}),
            true,
        ),
        Err(e) => (
            json!({"ok": false, "token": null, "problem": e.to_string()}),
            false,
        ),
    };
    let env_path = config_dir.join(config::ENVIRONMENT_FILE);
    let (environment, environment_ok) = match EnvironmentFile::load(&env_path) {
        Ok(e) => (
            json!({"ok": true, "uuid": e.uuid, "name": e.name, "problem": null}),
            true,
        ),
        Err(e) => (
            json!({"ok": false, "uuid": null, "problem": e.to_string()}),
            false,
        ),
    };
    let fingerprint =
        crate::fsutil::read_regular_text(&config_dir.join(config::FINGERPRINT_FILE), 1 << 20)
            .ok()
            .and_then(|t| serde_json::from_str::<Value>(&t).ok())
            .and_then(|v| {
                v.get("fingerprint")
                    .and_then(Value::as_str)
                    .map(str::to_string)
            });
    let edge_uuid = config::edge_uuid(&config_dir);

    let daemon_view = daemon.as_ref().ok();
    let (state, code) = assess(credentials_ok, environment_ok, daemon_view, &backend);

    let mut backend_json = probe_json(&backend);
    if let (Some(obj), Ok((s, _))) = (backend_json.as_object_mut(), &settings) {
        obj.insert("url".into(), json!(s.base_url));
    }
    let mqtt_json = match (daemon_view, &settings) {
        (Some(d), _) => {
            let mut m = d.get("mqtt").cloned().unwrap_or(json!({}));
            if let Some(o) = m.as_object_mut() {
                o.insert("source".into(), json!("daemon"));
            }
            m
        }
        (None, Ok((s, _))) => {
            let broker = format!("{}:{}", s.mqtt.host, s.mqtt.port);
            match &mqtt_probe {
                Some(Ok(lat)) => {
                    json!({"source": "probe", "broker": broker, "tls": s.mqtt.tls, "connected": true, "latency_ms": lat.as_millis() as u64})
                }
                Some(Err(e)) => {
                    json!({"source": "probe", "broker": broker, "tls": s.mqtt.tls, "connected": false, "error": e})
                }
                None => {
                    json!({"source": "probe", "broker": broker, "tls": s.mqtt.tls, "connected": false, "error": format!("no answer within {} ms", PROBE_TIMEOUT.as_millis())})
                }
            }
        }
        (None, Err(_)) => json!({"source": null, "connected": false}),
    };
    let daemon_json = match &daemon {
        Ok(d) => {
            let mut v = d.get("daemon").cloned().unwrap_or(json!({}));
            if let Some(o) = v.as_object_mut() {
                o.insert("running".into(), json!(true));
            }
            v
        }
        Err(e) => json!({"running": false, "problem": e}),
    };
    json!({
        "state": state,
        "exit_code": code,
        "version": crate::VERSION,
        "config_dir": config_dir,
        "credentials": credentials,
        "environment": environment,
        "fingerprint": daemon_view.and_then(|d| d.get("fingerprint").cloned()).filter(|v| !v.is_null()).unwrap_or(json!(fingerprint)),
        "edge_uuid": daemon_view.and_then(|d| d.get("edge_uuid").cloned()).filter(|v| !v.is_null()).unwrap_or(json!(edge_uuid)),
        "backend": backend_json,
        "mqtt": mqtt_json,
        "daemon": daemon_json,
        "twins": daemon_view.and_then(|d| d.get("twins").cloned()).unwrap_or(Value::Null),
        "alerts": daemon_view.and_then(|d| d.get("alerts").cloned()).unwrap_or(Value::Null),
        "mode": daemon_view.and_then(|d| d.get("mode").cloned()).unwrap_or(Value::Null),
        "drivers": daemon_view.and_then(|d| d.get("drivers").cloned()).unwrap_or(Value::Null),
        "bus": daemon_view.and_then(|d| d.get("bus").cloned()).unwrap_or(Value::Null),
        "worker": daemon_view.and_then(|d| d.get("worker").cloned()).unwrap_or(Value::Null),
        "twin_sync": daemon_view.and_then(|d| d.get("twin_sync").cloned()).unwrap_or(Value::Null),
        "restart": daemon_view.and_then(|d| d.get("restart").cloned()).unwrap_or(Value::Null),
        "node": daemon_view.and_then(|d| d.get("node").cloned()).unwrap_or(Value::Null),
        "last_errors": daemon_view.and_then(|d| d.get("last_errors").cloned()).unwrap_or(json!([])),
        "elapsed_ms": started.elapsed().as_millis() as u64,
    })
}

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

/// The human report of [`collect`]'s object.
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
        }
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

/// Runs `status`; prints the report (JSON or text) and returns the exit code.
pub fn run(as_json: bool) -> i32 {
    let report = collect();
    let code = report["exit_code"].as_i64().unwrap_or(2) as i32;
    let text = if as_json {
        format!("{report}\n")
    } else {
        render(&report)
    };
    use std::io::Write;
    let _ = std::io::stdout().write_all(text.as_bytes());
    code
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
    fn exit_code_rules() {
        let up = json!({"mqtt": {"connected": true}, "backend": {"token": "valid"}});
        let down = json!({"mqtt": {"connected": false}});
        let ok = BackendProbe::Ok { latency_ms: 3 };
        assert_eq!(assess(true, true, Some(&up), &ok), ("healthy", 0));
        assert_eq!(assess(true, true, Some(&down), &ok), ("degraded", 1));
        let mut collided = up.clone();
        collided["drivers"] = json!({"containers": [], "problems": [
            {"twin_uuid": "t", "problem": "Container name collision", "degrades": true}]});
        assert_eq!(assess(true, true, Some(&collided), &ok), ("degraded", 1));
        collided["drivers"]["problems"][0]["degrades"] = json!(false);
        assert_eq!(assess(true, true, Some(&collided), &ok), ("healthy", 0));
        let mut worker = up.clone();
        worker["worker"] = json!({"wanted": true, "state": "exited", "models_state": "ready"});
        assert_eq!(assess(true, true, Some(&worker), &ok), ("degraded", 1));
        worker["worker"]["state"] = json!("running");
        assert_eq!(assess(true, true, Some(&worker), &ok), ("healthy", 0));
        worker["worker"]["models_state"] = json!("failed");
        assert_eq!(assess(true, true, Some(&worker), &ok), ("degraded", 1));
        assert_eq!(
            assess(
                true,
                true,
                Some(&up),
                &BackendProbe::Unreachable("x".into())
            ),
            ("degraded", 1)
        );
        assert_eq!(assess(true, true, None, &ok), ("not_running", 2));
        assert_eq!(
            assess(false, true, Some(&up), &BackendProbe::Skipped),
            ("not_configured", 2)
        );
        assert_eq!(assess(true, false, Some(&up), &ok), ("not_configured", 2));
        assert_eq!(
            assess(true, true, Some(&up), &BackendProbe::Rejected("401".into())),
            ("not_configured", 2)
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
        ] {
            assert!(text.contains(needle), "missing {needle} in\n{text}");
        }
    }
}
