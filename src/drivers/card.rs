//! The `driver_starting` card (reference §2.4): raised (forced) when a driver's start begins,
//! moved through its phases with the original's progress bands (pull 0–40/70, container 73–80),
//! resolved when the container runs, or rewritten in plain words and resolved when the start
//! fails. Shared by the launch hooks (launcher thread) and the policy (supervisor).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::alerts::{Alert, AlertSink};
use crate::containers::spec::ContainerSpec;

/// `(stage, overall)` progress of a driver card phase.
pub fn progress(phase: &str) -> Option<(u64, u64)> {
    Some(match phase {
        "pull_started" => (0, 0),
        "pull_complete" | "pull_skipped" => (100, 70),
        "starting_container" => (33, 73),
        "container_created" => (66, 77),
        "container_running" => (100, 80),
        _ => return None,
    })
}

fn title(spec: &ContainerSpec) -> String {
    match &spec.service {
        Some(s) => format!("Driver starting ({s})"),
        None => "Driver starting".into(),
    }
}

/// The percentages of a pull patch (reference §2.4): download 0–40, install 40–70 overall.
pub fn pull_bands(patch: &Value) -> Option<(u64, u64)> {
    let n = |k: &str| patch.get(k).and_then(Value::as_f64).unwrap_or(0.0);
    match patch.get("phase").and_then(Value::as_str)? {
        "pull_started" | "pulling" | "downloading" => {
            let stage = n("progress_percent").clamp(0.0, 100.0).round();
            Some((stage as u64, (stage * 0.40).round() as u64))
        }
        "installing" => {
            let total = n("layers_total");
            let stage = if total > 0.0 {
                (100.0 * n("layers_complete") / total)
                    .clamp(0.0, 100.0)
                    .round()
            } else {
                50.0
            };
            Some((stage as u64, 40 + (stage * 0.30).round() as u64))
        }
        other => progress(other),
    }
}

/// When an open card last got a pull update, and in which phase.
type LastPull = Option<(Instant, String)>;

/// Which containers have an open card (one per start, not one per retry of a phase), and
/// when each last got a pull update (throttled to one per interval, the original's 2 s).
#[derive(Clone)]
pub struct Cards {
    open: Arc<Mutex<BTreeMap<String, LastPull>>>,
    interval: Duration,
}

impl Default for Cards {
    fn default() -> Self {
        Cards::new(Duration::from_secs(2))
    }
}

impl Cards {
    pub fn new(interval: Duration) -> Self {
        Cards {
            open: Arc::default(),
            interval,
        }
    }

    /// Pull progress on the open card: at once when the phase changes, else at most once per
    /// interval.
    pub fn pull(&self, alerts: &Mutex<AlertSink>, spec: &ContainerSpec, patch: &Value) {
        let phase = patch["phase"].as_str().unwrap_or_default().to_string();
        let now = Instant::now();
        let due = self
            .open
            .lock()
            .is_ok_and(|mut o| match o.get_mut(&spec.name) {
                None => false,
                Some(last) => {
                    let due = match last {
                        Some((at, p)) => *p != phase || now.duration_since(*at) >= self.interval,
                        None => true,
                    };
                    if due {
                        *last = Some((now, phase.clone()));
                    }
                    due
                }
            });
        if !due {
            return;
        }
        let mut meta = patch.clone();
        if let Some((stage, overall)) = pull_bands(patch) {
            meta["stage_progress_percent"] = json!(stage);
            meta["overall_progress_percent"] = json!(overall);
        }
        if let Ok(a) = alerts.lock() {
            a.update(&spec.owner, "driver_starting", json!({"metadata": meta}));
        }
    }

    /// Opens the card if this start has none yet; otherwise moves it to `phase`.
    pub fn phase(&self, alerts: &Mutex<AlertSink>, spec: &ContainerSpec, phase: &str) {
        let opened = self
            .open
            .lock()
            .map(|mut o| {
                if o.contains_key(&spec.name) {
                    false
                } else {
                    o.insert(spec.name.clone(), None);
                    true
                }
            })
            .unwrap_or(false);
        let Ok(a) = alerts.lock() else {
            return;
        };
        let mut meta = json!({"phase": phase});
        if let Some((stage, overall)) = progress(phase) {
            meta["stage_progress_percent"] = json!(stage);
            meta["overall_progress_percent"] = json!(overall);
        }
        if opened {
            meta["image"] = json!(spec.image);
            meta["container_name"] = json!(spec.name);
            meta["service_name"] = json!(spec.service);
            meta["started_at"] = json!(crate::epoch_seconds());
            a.raise(
                &format!("driver_starting:{}:{}", spec.name, crate::epoch_seconds()),
                Alert {
                    alert_type: "driver_starting",
                    name: &title(spec),
                    description: "Your robot is starting up. This may take a few minutes.",
                    severity: "info",
                    twin_uuid: &spec.owner,
                    metadata: Some(meta),
                },
            );
        } else {
            a.update(&spec.owner, "driver_starting", json!({"metadata": meta}));
        }
    }

    /// The container runs: last phase, then resolved.
    pub fn done(&self, alerts: &Mutex<AlertSink>, spec: &ContainerSpec) {
        if self.close(spec) {
            self.update_then_resolve(
                alerts,
                spec,
                json!({"metadata": {"phase": "container_running",
                "stage_progress_percent": 100, "overall_progress_percent": 80}}),
            );
        }
    }

    /// The start failed: the card says why in plain words, then is resolved.
    pub fn failed(
        &self,
        alerts: &Mutex<AlertSink>,
        spec: &ContainerSpec,
        phase: &str,
        text: &str,
        detail: &str,
    ) {
        if self.close(spec) {
            let detail: String = detail.chars().take(1500).collect();
            self.update_then_resolve(
                alerts,
                spec,
                json!({"description": text, "severity": "critical",
                       "metadata": {"phase": phase, "failed": true, "failed_at": crate::epoch_seconds(),
                                    "technical_detail": detail}}),
            );
        }
    }

    fn close(&self, spec: &ContainerSpec) -> bool {
        self.open
            .lock()
            .map(|mut o| o.remove(&spec.name).is_some())
            .unwrap_or(false)
    }

    fn update_then_resolve(&self, alerts: &Mutex<AlertSink>, spec: &ContainerSpec, patch: Value) {
        if let Ok(a) = alerts.lock() {
            a.update(&spec.owner, "driver_starting", patch);
            a.resolve(&spec.owner, "driver_starting");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bands_and_titles() {
        assert_eq!(progress("pull_started"), Some((0, 0)));
        assert_eq!(progress("container_running"), Some((100, 80)));
        assert_eq!(progress("pull_failed"), None);
        let mut s = crate::containers::spec::example(crate::containers::spec::Role::Driver);
        assert_eq!(title(&s), "Driver starting");
        s.service = Some("camera".into());
        assert_eq!(title(&s), "Driver starting (camera)");
        let cards = Cards::default();
        let alerts = Mutex::new(AlertSink::new(None, None, None));
        cards.phase(&alerts, &s, "pull_started");
        assert!(cards.open.lock().unwrap().contains_key("c"));
        cards.done(&alerts, &s);
        assert!(cards.open.lock().unwrap().is_empty());
    }

    #[test]
    fn pull_bands_follow_the_original() {
        let rows = [
            (
                json!({"phase": "downloading", "progress_percent": 50.4}),
                Some((50, 20)),
            ),
            (
                json!({"phase": "pull_started", "progress_percent": 0}),
                Some((0, 0)),
            ),
            (
                json!({"phase": "installing", "layers_complete": 1, "layers_total": 4}),
                Some((25, 48)),
            ),
            (
                json!({"phase": "installing", "layers_total": 0}),
                Some((50, 55)),
            ),
            (json!({"phase": "pull_complete"}), Some((100, 70))),
            (
                json!({"phase": "downloading", "progress_percent": 1e300}),
                Some((100, 40)),
            ),
            (json!({"phase": "pull_failed"}), None),
        ];
        for (patch, want) in rows {
            assert_eq!(pull_bands(&patch), want, "{patch}");
        }
    }

    #[test]
    fn pull_updates_are_throttled_but_phase_changes_go_at_once() {
        let (tx, rx) = crossbeam_channel::unbounded();
        let alerts = Mutex::new(AlertSink::new(Some(tx), None, None));
        let s = crate::containers::spec::example(crate::containers::spec::Role::Driver);
        let cards = Cards::new(Duration::from_secs(60));
        let patch = |phase: &str, p: f64| json!({"phase": phase, "progress_percent": p});
        cards.pull(&alerts, &s, &patch("downloading", 1.0)); // no card open: nothing
        cards.phase(&alerts, &s, "pull_started");
        cards.pull(&alerts, &s, &patch("downloading", 1.0));
        cards.pull(&alerts, &s, &patch("downloading", 2.0)); // within the interval
        cards.pull(&alerts, &s, &patch("installing", 99.0)); // phase change
        let updates: Vec<String> = rx
            .try_iter()
            .filter_map(|m| match m {
                crate::alerts::AlertMsg::Op(op) => Some(format!("{op:?}")),
                crate::alerts::AlertMsg::Backend(_) | crate::alerts::AlertMsg::Wake => None,
            })
            .collect();
        assert_eq!(updates.len(), 3, "{updates:?}"); // raise + 2 updates
        assert!(updates[1].contains("downloading") && updates[2].contains("installing"));
    }
}
