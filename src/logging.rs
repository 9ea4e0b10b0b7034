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

/// `RUST_LOG` wins when set (full env_logger syntax); otherwise `level`. Dependency crates
/// (rumqttc, ureq, rustls) are held at `warn` so a debug log stays about the edge itself.
pub fn init(level: &str) {
    let mut b = env_logger::Builder::new();
    match std::env::var("RUST_LOG") {
        Ok(spec) if !spec.trim().is_empty() => {
            b.parse_filters(&spec);
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
