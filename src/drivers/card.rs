//! The `driver_starting` card (reference §2.4): raised (forced) when a driver's start begins,
//! moved through its phases with the original's progress bands (pull 0–40/70, container 73–80),
//! resolved when the container runs, or rewritten in plain words and resolved when the start
//! fails. Shared by the launch hooks (launcher thread) and the policy (supervisor).

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

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

/// Which containers have an open card (one per start, not one per retry of a phase).
#[derive(Clone, Default)]
pub struct Cards {
    open: Arc<Mutex<BTreeSet<String>>>,
}

impl Cards {
    /// Opens the card if this start has none yet; otherwise moves it to `phase`.
    pub fn phase(&self, alerts: &Mutex<AlertSink>, spec: &ContainerSpec, phase: &str) {
        let opened = self
            .open
            .lock()
            .map(|mut o| o.insert(spec.name.clone()))
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
            .map(|mut o| o.remove(&spec.name))
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
        assert!(cards.open.lock().unwrap().contains("c"));
        cards.done(&alerts, &s);
        assert!(cards.open.lock().unwrap().is_empty());
    }
}
