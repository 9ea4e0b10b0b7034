//! Logging to stderr (journald picks it up) with UTC timestamps.

use std::io::Write;

/// Maps Python/`CYBERWAVE_EDGE_LOG_LEVEL` spellings to a `log` filter name.
pub fn normalise_level(level: &str) -> Option<&'static str> {
    match level.trim().to_ascii_lowercase().as_str() {
        "trace" => Some("trace"),
        "debug" => Some("debug"),
        "info" => Some("info"),
        "warn" | "warning" => Some("warn"),
        "error" | "critical" | "fatal" => Some("error"),
        "off" => Some("off"),
        _ => None,
    }
}

/// Crates whose debug and trace output carries secrets (ureq dumps request headers with the
/// `Authorization` bearer; rumqttc prints the CONNECT packet with the password). Never more
/// verbose than `info`, whatever `RUST_LOG` asks.
const SECRET_BEARING: [&str; 5] = ["ureq", "ureq_proto", "rumqttc", "rustls", "mqttbytes"];

/// `RUST_LOG` wins when set (full env_logger syntax, except the crates in `SECRET_BEARING`, held
/// at `info` at most); otherwise `level`. Dependency crates are held at `warn` so a debug log
/// stays about the edge itself.
pub fn init(level: &str) {
    let mut b = env_logger::Builder::new();
    match std::env::var("RUST_LOG") {
        Ok(spec) if !spec.trim().is_empty() => {
            b.parse_filters(&spec);
            for m in SECRET_BEARING {
                b.filter_module(m, log::LevelFilter::Info);
            }
        }
        _ => {
            let lvl = normalise_level(level).unwrap_or("info");
            // `driver` and `install` carry driver logs (local mode) and install-script output.
            b.parse_filters(&format!(
                "warn,cyberwave_edge={lvl},cyberwave_edge_core={lvl},cyberwave_cloud_node={lvl},driver={lvl},install={lvl}"
            ));
        }
    }
    b.format(|buf, record| {
        let stamp = humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string();
        writeln!(
            buf,
            "{} [{}] [{}] {}",
            python_time(&stamp),
            python_level(record.level()),
            logger_name(record.target()),
            record.args()
        )
    });
    let _ = b.try_init();
}

/// A line on stderr exactly as given, without our log prefix: what the original `print`ed
/// there (a driver's own lines, the network-interfaces line), so `journalctl -u
/// cyberwave-edge-core` shows them as it did. A closed stderr is not an error.
pub fn verbatim(line: &str) {
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(line.as_bytes());
    let _ = err.write_all(b"\n");
}

/// The original's `%(asctime)s.%(msecs)03d` with `datefmt="%Y-%m-%d %H:%M:%S UTC"` in UTC:
/// `2026-12-03 08:36:26 UTC.075` (the milliseconds after `UTC`, exactly as Python renders
/// it), from an RFC 3339 UTC timestamp with milliseconds.
fn python_time(rfc3339_millis: &str) -> String {
    match (
        rfc3339_millis.get(..10),
        rfc3339_millis.get(11..19),
        rfc3339_millis.get(20..23),
    ) {
        (Some(date), Some(time), Some(ms)) => format!("{date} {time} UTC.{ms}"),
        _ => rfc3339_millis.to_string(),
    }
}

/// Python's level names, so `journalctl | grep WARNING` keeps working (`TRACE` has none
/// there and keeps its own).
fn python_level(level: log::Level) -> &'static str {
    match level {
        log::Level::Error => "ERROR",
        log::Level::Warn => "WARNING",
        log::Level::Info => "INFO",
        log::Level::Debug => "DEBUG",
        log::Level::Trace => "TRACE",
    }
}

/// A short dotted logger name in the original's style for a `log` target: our MQTT link
/// speaks for the SDK's `cyberwave.mqtt`; other modules of the edge core are
/// `cyberwave_edge_core.<module>`, the cloud node's `cyberwave_cloud_node.<module>`; other
/// crates keep their first two path segments (`zenoh.net`).
pub fn logger_name(target: &str) -> String {
    let mut parts = target.split("::");
    let first = parts.next().unwrap_or("");
    let second = parts.next();
    match (first, second) {
        ("cyberwave_edge", Some("mqtt")) => "cyberwave.mqtt".into(),
        ("cyberwave_edge", Some("cloud_node")) => match parts.next() {
            Some(m) => format!("cyberwave_cloud_node.{m}"),
            None => "cyberwave_cloud_node".into(),
        },
        ("cyberwave_edge", Some(m)) => format!("cyberwave_edge_core.{m}"),
        ("cyberwave_edge", None) => "cyberwave_edge_core".into(),
        (bin, None) => bin.to_string(),
        (krate, Some(m)) => format!("{krate}.{m}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_as_python_renders_it() {
        assert_eq!(
            python_time("2026-12-03T08:36:26.075Z"),
            "2026-12-03 08:36:26 UTC.075"
        );
        assert_eq!(python_time("garbage"), "garbage");
    }

    #[test]
    fn levels_and_names() {
        assert_eq!(python_level(log::Level::Warn), "WARNING");
        assert_eq!(python_level(log::Level::Error), "ERROR");
        let rows = [
            ("cyberwave_edge::mqtt::link", "cyberwave.mqtt"),
            (
                "cyberwave_edge::drivers::policy",
                "cyberwave_edge_core.drivers",
            ),
            ("cyberwave_edge::edge", "cyberwave_edge_core.edge"),
            ("cyberwave_edge", "cyberwave_edge_core"),
            (
                "cyberwave_edge::cloud_node::runner",
                "cyberwave_cloud_node.runner",
            ),
            ("cyberwave_edge_core", "cyberwave_edge_core"),
            ("zenoh::net::runtime", "zenoh.net"),
            ("install", "install"),
        ];
        for (target, want) in rows {
            assert_eq!(logger_name(target), want, "{target}");
        }
    }
}
