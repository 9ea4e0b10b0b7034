//! `cyberwave-edge-core status`: what a fleet script needs to know about this device, in under
//! a second whatever the network does. Probes (daemon socket, backend, broker) run in
//! parallel, each bounded; the exit code says healthy (0), degraded (1) or not configured /
//! not running (2).

use std::path::PathBuf;
use std::thread;
use std::time::{Duration, Instant};

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
        // A twin whose driver image is still being looked at runs no driver yet.
        || daemon
            .and_then(|d| d.pointer("/drivers/discovering"))
            .and_then(Value::as_array)
            .is_some_and(|l| !l.is_empty())
        // A worker that should run and does not (or whose models failed) degrades too.
        || daemon.and_then(|d| d.get("worker")).is_some_and(|w| {
            (w["wanted"] == json!(true) && w["state"] != json!("running"))
                || w["models_state"] == json!("failed")
        })
        // So does a running driver alerted for publishing no data (when that alert is on).
        || daemon
            .and_then(|d| d.pointer("/bus/stalled"))
            .and_then(Value::as_array)
            .is_some_and(|l| !l.is_empty());
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
    Daemon(Result<Value, super::QueryError>),
    Backend(BackendProbe),
    Mqtt(Result<Duration, crate::mqtt::ProbeError>),
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
            let r = super::query(&socket, "status", PROBE_TIMEOUT);
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
    let mut daemon: Result<Value, super::QueryError> = Err(super::QueryError::Late);
    let mut backend = BackendProbe::Skipped;
    let mut mqtt_probe: Option<Result<Duration, crate::mqtt::ProbeError>> = None;
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
                    json!({"source": "probe", "broker": broker, "tls": s.mqtt.tls, "connected": false, "error": e.to_string()})
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
        Err(e) => json!({"running": false, "problem": e.to_string()}),
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
        "engine": daemon_view.and_then(|d| d.get("engine").cloned()).unwrap_or(Value::Null),
        "drivers": daemon_view.and_then(|d| d.get("drivers").cloned()).unwrap_or(Value::Null),
        "bus": daemon_view.and_then(|d| d.get("bus").cloned()).unwrap_or(Value::Null),
        "worker": daemon_view.and_then(|d| d.get("worker").cloned()).unwrap_or(Value::Null),
        "twin_sync": daemon_view.and_then(|d| d.get("twin_sync").cloned()).unwrap_or(Value::Null),
        "restart": daemon_view.and_then(|d| d.get("restart").cloned()).unwrap_or(Value::Null),
        "remote_access": daemon_view.and_then(|d| d.get("remote_access").cloned()).unwrap_or(Value::Null),
        "local_portal": daemon_view.and_then(|d| d.get("local_portal").cloned()).unwrap_or(Value::Null),
        "node": daemon_view.and_then(|d| d.get("node").cloned()).unwrap_or(Value::Null),
        "last_errors": daemon_view.and_then(|d| d.get("last_errors").cloned()).unwrap_or(json!([])),
        "elapsed_ms": started.elapsed().as_millis() as u64,
    })
}

/// Runs `status`; prints the report (JSON or text) and returns the exit code.
pub fn run(as_json: bool) -> i32 {
    let report = collect();
    let code = report["exit_code"].as_i64().unwrap_or(2) as i32;
    let text = if as_json {
        format!("{report}\n")
    } else {
        super::status_text::render(&report)
    };
    use std::io::Write;
    let _ = std::io::stdout().write_all(text.as_bytes());
    code
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let mut looking = up.clone();
        looking["drivers"] = json!({"containers": [], "problems": [],
            "discovering": [{"twin_uuid": "t", "image": "r/go2:dev"}]});
        assert_eq!(assess(true, true, Some(&looking), &ok), ("degraded", 1));
        looking["drivers"]["discovering"] = json!([]);
        assert_eq!(assess(true, true, Some(&looking), &ok), ("healthy", 0));
        let mut worker = up.clone();
        worker["worker"] = json!({"wanted": true, "state": "exited", "models_state": "ready"});
        assert_eq!(assess(true, true, Some(&worker), &ok), ("degraded", 1));
        worker["worker"]["state"] = json!("running");
        assert_eq!(assess(true, true, Some(&worker), &ok), ("healthy", 0));
        worker["worker"]["models_state"] = json!("failed");
        assert_eq!(assess(true, true, Some(&worker), &ok), ("degraded", 1));
        let mut quiet = up.clone();
        quiet["bus"] = json!({"stalled": []});
        assert_eq!(assess(true, true, Some(&quiet), &ok), ("healthy", 0));
        quiet["bus"]["stalled"] = json!(["t"]);
        assert_eq!(assess(true, true, Some(&quiet), &ok), ("degraded", 1));
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
}
