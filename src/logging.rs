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
        writeln!(
            buf,
            "{} [{}] [{}] {}",
            buf.timestamp_millis(),
            record.level(),
            record.target(),
            record.args()
        )
    });
    let _ = b.try_init();
}
