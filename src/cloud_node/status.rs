//! `cyberwave-cloud-node status`: asks the running node over its control socket.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};

use crate::control;

/// `cyberwave-cloud-node status`: asks the running node; exit 0 healthy, 1 degraded (MQTT
/// down), 2 not running.
pub fn status(as_json: bool) -> i32 {
    let env = crate::config::EnvLayer::from_process();
    let socket = env
        .get("CYBERWAVE_CLOUD_NODE_CONTROL_SOCKET")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            crate::config::resolve_config_dir(&|k| env.process(k))
                .0
                .join("cloud-node.sock")
        });
    let (code, report) = match control::query(&socket, "status", Duration::from_millis(900)) {
        Ok(v) => {
            let up = v.pointer("/mqtt/connected") == Some(&json!(true));
            let code = if up { 0 } else { 1 };
            (
                code,
                json!({"state": if up { "healthy" } else { "degraded" }, "exit_code": code, "running": true, "node": v}),
            )
        }
        Err(e) => (
            2,
            json!({"state": "not_running", "exit_code": 2, "running": false, "problem": e.to_string()}),
        ),
    };
    let text = if as_json {
        format!("{report}\n")
    } else if let Some(n) = report.get("node") {
        let mut t = format!(
            "\nCyberwave Cloud Node — Status\n\n  Node:     {} ({})\n  Profile:  {}\n  MQTT:     {} {}\n  Uptime:   {} s\n",
            n["slug"].as_str().unwrap_or("-"),
            n["instance_uuid"].as_str().unwrap_or("-"),
            n["profile_slug"].as_str().unwrap_or("-"),
            n.pointer("/mqtt/broker")
                .and_then(Value::as_str)
                .unwrap_or("-"),
            if n.pointer("/mqtt/connected") == Some(&json!(true)) {
                "connected"
            } else {
                "DISCONNECTED"
            },
            n["uptime_seconds"]
        );
        for f in ["inference", "training"] {
            let m = &n["metrics"][f];
            t += &format!(
                "  {f:<9} running {}  queued {}  total {}  success {}  avg {} ms  p95 {} ms  errors {}  timeouts {}\n",
                n["functions"][f]["running"],
                n["functions"][f]["queued"],
                m["total"].as_u64().unwrap_or(0),
                m["success_rate"]
                    .as_f64()
                    .map(|r| format!("{:.0}%", r * 100.0))
                    .unwrap_or_else(|| "-".into()),
                m["avg_ms"]
                    .as_f64()
                    .map(|x| format!("{x:.0}"))
                    .unwrap_or_else(|| "-".into()),
                m["p95_ms"]
                    .as_f64()
                    .map(|x| format!("{x:.0}"))
                    .unwrap_or_else(|| "-".into()),
                m["errors"].as_u64().unwrap_or(0),
                m["timeouts"].as_u64().unwrap_or(0)
            );
        }
        t += &format!(
            "\n  State: {} (exit {code})\n\n",
            report["state"].as_str().unwrap_or("-")
        );
        t
    } else {
        format!(
            "\nCyberwave Cloud Node — Status\n\n  ✗ not running ({})\n\n  State: not_running (exit 2)\n\n",
            report["problem"].as_str().unwrap_or("-")
        )
    };
    let _ = std::io::stdout().write_all(text.as_bytes());
    code
}
