//! The worker's restart accounting with its circuit breaker (reference §6.5), the
//! `worker_health` payload (§3.7) and the readiness rules over `worker-status.json` (§6.7).
//! Pure: the caller supplies the clock and what the engine said.

use std::collections::VecDeque;
use std::time::{Duration, Instant, SystemTime};

use serde_json::{Value, json};

use crate::containers::breaker::SlidingWindow;

/// Restarts in this window count towards the breaker.
pub const BREAKER_WINDOW: Duration = Duration::from_secs(300);
/// This many restarts in the window trip it.
pub const BREAKER_THRESHOLD: usize = 5;
/// Restart events kept for `worker health`.
const KEEP: usize = 100;

/// One restart (or start) of the worker, for `worker health`.
#[derive(Debug, Clone, PartialEq)]
pub struct RestartEvent {
    pub at: Instant,
    pub wall: SystemTime,
    pub reason: String,
    pub ok: bool,
}

/// Every restart we made, and the breaker over the last five minutes: ≥ 5 restarts in 300 s
/// suppress automatic restarts until the count in the window drops below 5.
#[derive(Debug, Clone)]
pub struct RestartHistory {
    events: VecDeque<RestartEvent>,
    total: u64,
    /// The restarts that count for the breaker (an operator's re-arm forgets the earlier ones).
    window: SlidingWindow,
}

impl Default for RestartHistory {
    fn default() -> Self {
        RestartHistory {
            events: VecDeque::new(),
            total: 0,
            window: SlidingWindow::new(BREAKER_WINDOW),
        }
    }
}

impl RestartHistory {
    pub fn record(&mut self, reason: &str, ok: bool, at: Instant) {
        self.total += 1;
        self.window.record(at);
        if self.events.len() >= KEEP {
            self.events.pop_front();
        }
        self.events.push_back(RestartEvent {
            at,
            wall: SystemTime::now(),
            reason: reason.to_string(),
            ok,
        });
    }

    pub fn total(&self) -> u64 {
        self.total
    }

    /// Restarts in the last [`BREAKER_WINDOW`] (since the last re-arm).
    pub fn recent(&self, now: Instant) -> usize {
        self.window.count(now)
    }

    /// An operator's explicit `worker start|restart`: the breaker closes at once (the history
    /// and total stay for `worker health`).
    pub fn rearm(&mut self, now: Instant) {
        self.window.forget_before(now);
    }

    pub fn tripped(&self, now: Instant) -> bool {
        self.recent(now) >= BREAKER_THRESHOLD
    }

    /// When the breaker re-arms (the oldest restart in the window leaves it), if tripped.
    pub fn rearms_at(&self, now: Instant) -> Option<Instant> {
        self.window.drops_below(BREAKER_THRESHOLD, now)
    }

    pub fn last(&self, n: usize) -> impl Iterator<Item = &RestartEvent> {
        self.events.iter().skip(self.events.len().saturating_sub(n))
    }
}

/// What `worker_health` reports (§3.7), in the original's field order.
pub struct HealthView<'a> {
    pub container_name: &'a str,
    pub container_status: &'a str,
    pub is_ready: bool,
    pub uptime_seconds: Option<f64>,
}

/// The compact `worker_health` payload.
pub fn health_payload(v: &HealthView, history: &RestartHistory, now: Instant) -> Value {
    json!({
        "container_name": v.container_name,
        "container_status": v.container_status,
        "is_healthy": v.container_status == "running",
        "is_ready": v.is_ready,
        "restart_count": history.total(),
        "recent_restarts": history.recent(now),
        "circuit_breaker_tripped": history.tripped(now),
        "uptime_seconds": v.uptime_seconds,
        "observed_at": crate::epoch_seconds(),
    })
}

/// The readiness verdict for a starting worker (§6.7).
#[derive(Debug, Clone, PartialEq)]
pub enum Readiness {
    Ready,
    /// No status file after 60 s: an image that does not report (taken as ready).
    Legacy,
    /// `worker_startup_exited` or `worker_ready_timeout`.
    Failed(&'static str),
    Progress {
        phase: String,
        models_total: Option<u64>,
        models_ready: Option<u64>,
        detail: Option<String>,
    },
    Waiting,
}

/// How long a worker may go without a status file before it is taken for a legacy image.
pub const LEGACY_AFTER: Duration = Duration::from_secs(60);

/// §6.7: the container's state and restart count, the status file (if any, already parsed),
/// and the time since the container started.
pub fn readiness(
    container_state: Option<&str>,
    restarted: bool,
    status: Option<&Value>,
    elapsed: Duration,
    timeout: Duration,
) -> Readiness {
    match container_state {
        Some("exited") | Some("dead") | None => return Readiness::Failed("worker_startup_exited"),
        _ => {}
    }
    if restarted {
        return Readiness::Failed("worker_startup_exited");
    }
    let phase = status
        .and_then(|s| s.get("phase"))
        .and_then(Value::as_str)
        .map(|p| p.chars().take(64).collect::<String>());
    match phase.as_deref() {
        Some("ready") => Readiness::Ready,
        None if elapsed >= LEGACY_AFTER => Readiness::Legacy,
        _ if elapsed >= timeout => Readiness::Failed("worker_ready_timeout"),
        None => Readiness::Waiting,
        Some(p) => {
            let num = |k: &str| status.and_then(|s| s.get(k)).and_then(Value::as_u64);
            Readiness::Progress {
                phase: p.to_string(),
                models_total: num("models_total"),
                models_ready: num("models_ready"),
                detail: status
                    .and_then(|s| s.get("detail"))
                    .and_then(Value::as_str)
                    .map(|d| d.chars().take(200).collect()),
            }
        }
    }
}

/// `stage_progress_percent` and `overall_progress_percent` of a worker card phase (§2.4 bands:
/// container 70–80, worker 80–100); `None` for phases without a band (failures).
pub fn progress(
    phase: &str,
    models_total: Option<u64>,
    models_ready: Option<u64>,
) -> Option<(u64, u64)> {
    let stage = match phase {
        "pull_started" | "pulling" | "downloading" => return Some((0, 0)),
        "starting_container" => return Some((33, 73)),
        "container_created" => return Some((66, 77)),
        "container_running" => return Some((100, 80)),
        "booting" => return Some((10, 82)),
        "connecting_mqtt" => return Some((25, 85)),
        "loading_models" => return Some((40, 88)),
        "subscribed" => return Some((65, 93)),
        "ready" => return Some((100, 100)),
        "warming_up" => match (models_total, models_ready) {
            (Some(t), Some(r)) if t > 0 => {
                75 + (25.0 * r as f64 / t as f64).round().min(24.0) as u64
            }
            _ => 75,
        },
        _ => return None,
    };
    Some((stage, (80 + (stage as f64 * 0.2).round() as u64).min(99)))
}

/// The plain-language failure text of a worker phase (§2.4, "robot" → "worker").
pub fn failure_text(phase: &str) -> &'static str {
    match phase {
        "container_remove_failed" => "Could not restart your worker. Please try again.",
        "docker_create_failed" | "docker_start_failed" | "container_start_failed" => {
            "Could not start your worker. Please try again."
        }
        "docker_create_timeout" | "container_startup_timeout" => {
            "Your worker took too long to start. Please try again."
        }
        "container_unhealthy" => "Your worker stopped unexpectedly. Please try again.",
        "pull_failed" => {
            "Could not download the worker software. Check your connection and try again."
        }
        "pull_timeout" => "Download timed out. Check your connection and try again.",
        "pull_spawn_failed" => "Could not start the download. Please try again.",
        "worker_ready_timeout" => {
            "Your worker started but took too long to load its models. Please try again."
        }
        "worker_startup_exited" => "Your worker stopped while starting up. Please try again.",
        _ => "An unexpected error occurred. Please contact support.",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn breaker_trips_at_five_in_five_minutes_and_rearms() {
        let t0 = Instant::now();
        let mut h = RestartHistory::default();
        for i in 0..4 {
            h.record(
                "worker-files-changed",
                true,
                t0 + Duration::from_secs(i * 10),
            );
        }
        let now = t0 + Duration::from_secs(40);
        assert!(!h.tripped(now));
        assert_eq!(h.rearms_at(now), None);
        h.record("worker-files-changed", true, now);
        assert!(h.tripped(now));
        assert_eq!(h.recent(now), 5);
        // The first restart leaves the window at t0 + 300 s: four remain, re-armed.
        assert_eq!(h.rearms_at(now), Some(t0 + BREAKER_WINDOW));
        assert!(h.tripped(t0 + Duration::from_secs(299)));
        // An operator re-arms it at once; the history and the total stay.
        let mut op = h.clone();
        op.rearm(now);
        assert!(!op.tripped(now));
        assert_eq!((op.recent(now), op.total()), (1, 5));
        op.record("cli-restart", true, now + Duration::from_secs(1));
        assert_eq!(op.recent(now + Duration::from_secs(1)), 2);
        assert!(!h.tripped(t0 + Duration::from_secs(300)));
        assert_eq!(h.total(), 5);
        let p = health_payload(
            &HealthView {
                container_name: "cyberwave-worker-x",
                container_status: "running",
                is_ready: true,
                uptime_seconds: Some(3.0),
            },
            &h,
            now,
        );
        let keys: Vec<&str> = p.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "container_name",
                "container_status",
                "is_healthy",
                "is_ready",
                "restart_count",
                "recent_restarts",
                "circuit_breaker_tripped",
                "uptime_seconds",
                "observed_at"
            ]
        );
        assert_eq!(p["circuit_breaker_tripped"], true);
        assert_eq!(p["is_healthy"], true);
        assert_eq!(p["restart_count"], 5);
    }

    #[test]
    fn readiness_rules() {
        let s = |v: Value| Some(v);
        let t = Duration::from_secs(900);
        let secs = Duration::from_secs;
        type Case<'a> = (Option<&'a str>, bool, Option<Value>, Duration, Readiness);
        let cases: Vec<Case> = vec![
            (
                Some("exited"),
                false,
                None,
                secs(1),
                Readiness::Failed("worker_startup_exited"),
            ),
            (
                None,
                false,
                None,
                secs(1),
                Readiness::Failed("worker_startup_exited"),
            ),
            (
                Some("running"),
                true,
                None,
                secs(1),
                Readiness::Failed("worker_startup_exited"),
            ),
            (
                Some("running"),
                false,
                s(json!({"phase": "ready"})),
                secs(1),
                Readiness::Ready,
            ),
            (Some("running"), false, None, secs(5), Readiness::Waiting),
            (Some("running"), false, None, secs(61), Readiness::Legacy),
            (
                Some("running"),
                false,
                s(json!({"phase": "booting"})),
                secs(901),
                Readiness::Failed("worker_ready_timeout"),
            ),
            (
                Some("running"),
                false,
                s(
                    json!({"phase": "warming_up", "models_total": 2, "models_ready": 1, "detail": "yolov8n"}),
                ),
                secs(10),
                Readiness::Progress {
                    phase: "warming_up".into(),
                    models_total: Some(2),
                    models_ready: Some(1),
                    detail: Some("yolov8n".into()),
                },
            ),
        ];
        for (state, restarted, status, elapsed, want) in cases {
            assert_eq!(
                readiness(state, restarted, status.as_ref(), elapsed, t),
                want,
                "{state:?} {status:?}"
            );
        }
        assert!(failure_text("worker_ready_timeout").contains("models"));
    }

    #[test]
    fn progress_bands() {
        for (phase, total, ready, want) in [
            ("pull_started", None, None, Some((0, 0))),
            ("container_running", None, None, Some((100, 80))),
            ("booting", None, None, Some((10, 82))),
            ("subscribed", None, None, Some((65, 93))),
            ("warming_up", Some(4), Some(2), Some((88, 98))),
            ("warming_up", Some(4), Some(4), Some((99, 99))),
            ("warming_up", Some(0), Some(0), Some((75, 95))),
            ("warming_up", None, None, Some((75, 95))),
            ("ready", None, None, Some((100, 100))),
            ("worker_startup_exited", None, None, None),
        ] {
            assert_eq!(progress(phase, total, ready), want, "{phase}");
        }
    }
}
