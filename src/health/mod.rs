//! The bootstrap `edge_health` publisher (reference §3.4): one message per linked twin every
//! interval until drivers run, so the backend sees the edge alive from the first seconds.

mod metrics;
pub mod saturation;

pub use metrics::{HostSnapshot, Sampler, cpu_percent, disk_percent, parse_meminfo, parse_stat};

use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, after, bounded, never, select};
use serde_json::{Map, Value, json};

use crate::mqtt::{MqttHandle, topics};

/// Builds one `edge_health` payload, fields in the reference's order; host keys are omitted
/// when unknown. `session_id` is added by the MQTT handle.
pub fn edge_health_payload(
    edge_id: &str,
    uptime_seconds: f64,
    host: &HostSnapshot,
    watchdog_layers: &[&str],
    twin_uuid: &str,
    timestamp: f64,
) -> Value {
    let mut m = Map::new();
    m.insert("type".into(), json!("edge_health"));
    m.insert("timestamp".into(), json!(timestamp));
    m.insert("edge_id".into(), json!(edge_id));
    m.insert(
        "uptime_seconds".into(),
        json!((uptime_seconds * 10.0).round() / 10.0),
    );
    m.insert("streams".into(), json!({}));
    m.insert("stream_count".into(), json!(0));
    m.insert("healthy_streams".into(), json!(0));
    m.insert("camera_config".into(), Value::Null);
    if let Some(v) = host.memory_percent {
        m.insert("host_memory_percent".into(), json!(v));
    }
    if let Some(v) = host.memory_available_mb {
        m.insert("host_memory_available_mb".into(), json!(v));
    }
    if let Some((_, t)) = &host.cpu_temp {
        m.insert("cpu_temp_c".into(), json!(t));
    }
    if let Some(v) = host.cpu_percent {
        m.insert("host_cpu_percent".into(), json!(v));
    }
    if let Some(v) = host.disk_percent {
        m.insert("host_disk_percent".into(), json!(v));
    }
    m.insert(
        "consecutive_critical".into(),
        json!(host.consecutive_critical),
    );
    m.insert("watchdog_layers".into(), json!(watchdog_layers));
    if let Some(v) = host.power_mw {
        m.insert("power_mw".into(), json!(v as i64));
    }
    if let Some(v) = host.battery_wh {
        m.insert("battery_wh".into(), json!(v));
    }
    m.insert("source_type".into(), json!("edge"));
    m.insert("twin_uuid".into(), json!(twin_uuid));
    Value::Object(m)
}

enum Ctl {
    Twins(Vec<String>),
    Stop,
}

/// Settings of the publisher thread.
pub struct HealthConfig {
    pub edge_id: String,
    pub interval: Duration,
    /// The container engine: its data root is the disk reported.
    pub engine: std::sync::Arc<dyn crate::engine::Engine>,
    pub battery_wh: Option<f64>,
    pub watchdog_layers: Vec<&'static str>,
}

/// Handle to the running publisher; [`HealthPublisher::stop`] returns within 200 ms.
pub struct HealthPublisher {
    tx: Sender<Ctl>,
    /// Closed when the thread ends.
    done: Receiver<()>,
}

impl HealthPublisher {
    pub fn start(mqtt: MqttHandle, cfg: HealthConfig, twins: Vec<String>) -> std::io::Result<Self> {
        let (tx, rx) = bounded::<Ctl>(8);
        let (done_tx, done) = bounded::<()>(0);
        thread::Builder::new().name("edge-health".into()).spawn(move || {
            let _done = done_tx; // dropped when the thread ends
            let created = Instant::now();
            let mut twins = twins;
            let mut sampler = Sampler::new("/".into(), cfg.battery_wh);
            sampler.set_disk_path(cfg.engine.data_root());
            let mut next = Instant::now();
            loop {
                // With no twin to speak for, the thread parks until it is given some.
                let timer = if twins.is_empty() {
                    never()
                } else {
                    after(next.saturating_duration_since(Instant::now()))
                };
                select! {
                    recv(rx) -> msg => match msg {
                        Ok(Ctl::Twins(t)) => {
                            if twins.is_empty() {
                                next = next.max(Instant::now());
                            }
                            twins = t;
                        }
                        Ok(Ctl::Stop) | Err(_) => return,
                    },
                    recv(timer) -> _ => {
                        next += cfg.interval;
                        if next < Instant::now() {
                            next = Instant::now() + cfg.interval;
                        }
                        if twins.is_empty() {
                            continue;
                        }
                        let host = sampler.sample();
                        let uptime = created.elapsed().as_secs_f64();
                        let now = crate::epoch_seconds();
                        let batch = twins
                            .iter()
                            .map(|twin| {
                                let payload = edge_health_payload(&cfg.edge_id, uptime, &host, &cfg.watchdog_layers, twin, now);
                                (topics::edge_health(mqtt.prefix(), twin), payload)
                            })
                            .collect();
                        mqtt.publish_json_batch(batch);
                    }
                }
            }
        })?;
        Ok(HealthPublisher { tx, done })
    }

    /// Replaces the twin set (the next interval uses it).
    pub fn set_twins(&self, twins: Vec<String>) {
        let _ = self.tx.try_send(Ctl::Twins(twins));
    }

    /// Ends the publisher. It may be inside a bounded `docker info` (a hung engine): then it is
    /// left to finish on its own rather than holding shutdown.
    pub fn stop(self) {
        let _ = self.tx.try_send(Ctl::Stop);
        let _ = self.done.recv_timeout(Duration::from_millis(200));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_fields_and_order() {
        let host = HostSnapshot {
            memory_percent: Some(41.2),
            memory_available_mb: Some(2210.5),
            memory_total_mb: Some(4000.0),
            cpu_percent: Some(12.3),
            disk_percent: Some(63.0),
            cpu_temp: Some(("cpu-thermal".into(), 52.6)),
            power_mw: Some(5400.0),
            battery_wh: Some(36.0),
            consecutive_critical: 0,
        };
        let p = edge_health_payload(
            "raspberrypi-a1b2c3d4e5f6",
            35.04,
            &host,
            &["systemd"],
            "t-1",
            1712345678.123,
        );
        let keys: Vec<&str> = p.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "type",
                "timestamp",
                "edge_id",
                "uptime_seconds",
                "streams",
                "stream_count",
                "healthy_streams",
                "camera_config",
                "host_memory_percent",
                "host_memory_available_mb",
                "cpu_temp_c",
                "host_cpu_percent",
                "host_disk_percent",
                "consecutive_critical",
                "watchdog_layers",
                "power_mw",
                "battery_wh",
                "source_type",
                "twin_uuid"
            ]
        );
        assert_eq!(p["uptime_seconds"], json!(35.0));
        assert_eq!(p["power_mw"], json!(5400));
        assert_eq!(p["camera_config"], Value::Null);
        let bare = edge_health_payload("e", 0.0, &HostSnapshot::default(), &[], "t", 0.0);
        assert!(bare.get("host_cpu_percent").is_none());
        assert!(bare.get("battery_wh").is_none());
        assert_eq!(bare["consecutive_critical"], json!(0));
        assert_eq!(bare["watchdog_layers"], json!([]));
    }
}
