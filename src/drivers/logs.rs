//! `driverlog` messages (reference §3.6): level detection, payloads, and the per-driver rate
//! limit that keeps a chatty driver from flooding the link.

use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};

/// What a `RuntimeError: <detail>` line reports (the original's `RuntimeError:\s*(.+)`):
/// the detail, cut to 1,500 characters; `None` when the line has none.
pub fn runtime_error(line: &str) -> Option<String> {
    let at = line.find("RuntimeError:")? + "RuntimeError:".len();
    let detail = line[at..].trim_start();
    (!detail.is_empty()).then(|| detail.chars().take(1500).collect())
}

/// First of ERROR, CRITICAL, WARNING, WARN, DEBUG, INFO in the first 80 characters
/// (upper-cased); INFO when none.
pub fn detect_level(line: &str) -> &'static str {
    let head: String = line.chars().take(80).collect::<String>().to_uppercase();
    for (needle, level) in [
        ("ERROR", "ERROR"),
        ("CRITICAL", "CRITICAL"),
        ("WARNING", "WARNING"),
        ("WARN", "WARNING"),
        ("DEBUG", "DEBUG"),
        ("INFO", "INFO"),
    ] {
        if head.contains(needle) {
            return level;
        }
    }
    "INFO"
}

/// One `driver_log` payload (the MQTT handle adds `session_id`).
pub fn payload(
    message: &str,
    level: &str,
    container_name: &str,
    driver_image: Option<&str>,
    timestamp: f64,
) -> Value {
    let mut m = Map::new();
    m.insert("type".into(), json!("driver_log"));
    m.insert("message".into(), json!(message.trim_end()));
    m.insert("level".into(), json!(level));
    m.insert("container_name".into(), json!(container_name));
    m.insert("source".into(), json!("edge"));
    m.insert("timestamp".into(), json!(timestamp));
    m.insert("edge_core_version".into(), json!(crate::VERSION));
    if let Some(i) = driver_image {
        m.insert("driver_image".into(), json!(i));
    }
    Value::Object(m)
}

/// Token bucket: `rate` lines per second, bursts up to `burst`; counts what it refuses.
#[derive(Debug)]
pub struct RateLimit {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
    pub dropped: u64,
}

impl RateLimit {
    pub fn new(rate: f64, burst: f64, now: Instant) -> Self {
        RateLimit {
            rate,
            burst,
            tokens: burst,
            last: now,
            dropped: 0,
        }
    }

    pub fn allow(&mut self, now: Instant) -> bool {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + dt * self.rate).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            self.dropped += 1;
            false
        }
    }

    /// Drops since the last call (for a "N lines dropped" report), resetting the count.
    pub fn take_dropped(&mut self) -> u64 {
        std::mem::take(&mut self.dropped)
    }
}

/// How often a follower reports its dropped-line count.
pub const DROP_REPORT_EVERY: Duration = Duration::from_secs(10);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtime_errors_as_the_original_matches_them() {
        let rows = [
            ("RuntimeError: camera not found", Some("camera not found")),
            (
                "Traceback ... RuntimeError:   no device /dev/video0",
                Some("no device /dev/video0"),
            ),
            ("RuntimeError:", None),
            ("RuntimeError:   ", None),
            ("runtimeerror: lower case", None),
            ("ValueError: nope", None),
        ];
        for (line, want) in rows {
            assert_eq!(runtime_error(line).as_deref(), want, "{line}");
        }
        assert_eq!(
            runtime_error(&format!("RuntimeError: {}", "x".repeat(5000)))
                .unwrap()
                .len(),
            1500
        );
    }

    #[test]
    fn levels() {
        assert_eq!(detect_level("2024 [error] boom"), "ERROR");
        assert_eq!(detect_level("WARN: low battery"), "WARNING");
        assert_eq!(detect_level("Traceback CRITICAL"), "CRITICAL");
        assert_eq!(detect_level("plain text"), "INFO");
        let late = format!("{}ERROR", "x".repeat(80));
        assert_eq!(detect_level(&late), "INFO");
        // ERROR is checked before DEBUG
        assert_eq!(detect_level("DEBUG ERROR"), "ERROR");
    }

    #[test]
    fn payload_fields() {
        let p = payload(
            "hello\n",
            "INFO",
            "cyberwave-driver-1",
            Some("img:local"),
            1.5,
        );
        assert_eq!(p["message"], json!("hello"));
        assert_eq!(p["type"], json!("driver_log"));
        assert_eq!(p["source"], json!("edge"));
        assert_eq!(p["driver_image"], json!("img:local"));
        assert!(
            payload("x", "INFO", "c", None, 0.0)
                .get("driver_image")
                .is_none()
        );
    }

    #[test]
    fn bucket() {
        let t0 = Instant::now();
        let mut r = RateLimit::new(10.0, 5.0, t0);
        let allowed = (0..20).filter(|_| r.allow(t0)).count();
        assert_eq!(allowed, 5);
        assert_eq!(r.take_dropped(), 15);
        assert!(r.allow(t0 + Duration::from_millis(150)));
        assert_eq!(r.take_dropped(), 0);
    }
}
