//! What the worker tells the backend and the fleet: its alert cards (`worker_starting` with
//! its phases, `worker_start_failure`), readiness from `worker-status.json`, and
//! `worker_health` on MQTT (reference §2.4, §6.7, §3.7).

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::health::{health_payload, readiness};
use super::runtime::{Starting, Worker};
use super::spec::{STATUS_FILE, container_name};
use crate::alerts::Alert;
use crate::containers::runtime::Runtime;

impl Worker {
    pub(super) fn raise(
        &self,
        alert_type: &'static str,
        name: &str,
        description: &str,
        meta: Value,
    ) {
        for t in &self.scope {
            let alert = Alert {
                alert_type,
                name,
                description,
                severity: if alert_type == "worker_starting" {
                    "info"
                } else {
                    "error"
                },
                twin_uuid: t,
                metadata: Some(meta.clone()),
            };
            self.alerts
                .raise(&format!("{alert_type}:{t}:{name}:{description}"), alert);
        }
    }

    /// A new phase on the `worker_starting` card (metadata merged into the card's).
    pub(super) fn card_phase(&self, phase: &str, extra: Value) {
        let mut meta = json!({"phase": phase});
        if let Some((stage, overall)) = super::health::progress(
            phase,
            extra["models_total"].as_u64(),
            extra["models_ready"].as_u64(),
        ) {
            meta["stage_progress_percent"] = json!(stage);
            meta["overall_progress_percent"] = json!(overall);
        }
        if let (Value::Object(m), Value::Object(x)) = (&mut meta, extra) {
            m.extend(x);
        }
        for t in &self.scope {
            self.alerts
                .update(t, "worker_starting", json!({"metadata": meta.clone()}));
        }
    }

    pub(super) fn resolve(&self, alert_type: &str) {
        for t in &self.scope {
            self.alerts.resolve(t, alert_type);
        }
    }

    pub(super) fn start_failed(&mut self, phase: &str, detail: &str) {
        let description = format!(
            "The edge ML worker container could not be started. No workflow on this edge will run until this is resolved. Error: {}: {}",
            super::health::failure_text(phase),
            detail.chars().take(500).collect::<String>()
        );
        self.last_error = Some(format!("{phase}: {detail}"));
        // The card says what failed, in plain words, before it is resolved (§2.4).
        let technical: String = detail.chars().take(1500).collect();
        for t in &self.scope {
            self.alerts.update(
                t,
                "worker_starting",
                json!({"description": super::health::failure_text(phase), "severity": "critical",
                       "metadata": {"phase": phase, "failed": true, "failed_at": crate::epoch_seconds(),
                                    "technical_detail": technical}}),
            );
        }
        self.raise(
            "worker_start_failure",
            "Worker container failed to start",
            &description,
            json!({"phase": phase, "technical_detail": detail.chars().take(1500).collect::<String>()}),
        );
        self.resolve("worker_starting");
    }

    /// `worker_update_lock_overridden` (ours): an update waited for the worker's lock as long
    /// as allowed.
    pub(super) fn lock_overridden(&self, image: &str, waited_s: u64) {
        let description = format!(
            "The ML worker update to {image} waited {waited_s} s for the worker's update lock and went ahead (CYBERWAVE_UPDATE_LOCK_MAX_DEFER_SECONDS)."
        );
        self.raise(
            "worker_update_lock_overridden",
            "Worker update lock overridden",
            &description,
            json!({"image": image, "waited_s": waited_s}),
        );
    }

    /// `worker_update_rolled_back` (ours): a new worker image failed its probation.
    pub(super) fn rolled_back(&self, failed: &str, reason: &str, back: &str) {
        let description = format!(
            "The ML worker update to {failed} failed within its probation ({reason}). The edge switched back to the last good worker, {back}, and will not try {failed} again until the worker's configuration changes or a remote restart asks for it."
        );
        self.raise(
            "worker_update_rolled_back",
            "Worker update rolled back",
            &description,
            json!({"failed_image": failed, "reason": reason, "running_image": back}),
        );
    }

    pub(super) fn open_starting_card(&mut self, image: &str, name: &str) {
        self.raise(
            "worker_starting",
            "Worker starting",
            "Your worker is starting up. This may take a few minutes.",
            json!({"phase": "pull_started", "image": image, "container_name": name,
                   "started_at": crate::epoch_seconds(),
                   "overall_progress_percent": 0, "stage_progress_percent": 0}),
        );
        self.starting = None;
        self.ready = false;
    }

    pub(super) fn begin_readiness(&mut self, grace: Duration) {
        self.starting = Some(Starting {
            since: Instant::now(),
            phase: None,
            misses: 0,
            grace,
        });
        self.ready = false;
    }

    pub(super) fn check_readiness(&mut self, runtime: &mut Runtime) {
        let (Some(st), Some(ctx)) = (&mut self.starting, &self.ctx) else {
            return;
        };
        let name = container_name(&ctx.environment_uuid);
        if runtime.launching(&name) {
            st.since = Instant::now();
            return;
        }
        let state = runtime.observed_state(&name).map(|e| e.state.clone());
        if state.is_none() {
            st.misses += 1;
            if st.misses < 4 {
                return;
            }
        } else {
            st.misses = 0;
        }
        let status: Option<Value> =
            crate::fsutil::read_regular_text(&ctx.status_dir.join(STATUS_FILE), 64 * 1024)
                .ok()
                .and_then(|t| serde_json::from_str(&t).ok());
        // Right after our own restart the container is briefly down: not a failure.
        if state.as_deref() != Some("running") && st.since.elapsed() < st.grace {
            return;
        }
        let verdict = readiness(
            state.as_deref(),
            state.as_deref() == Some("restarting"),
            status.as_ref(),
            st.since.elapsed(),
            self.tuning.ready_timeout,
        );
        use super::health::Readiness::*;
        match verdict {
            Ready | Legacy => {
                log::info!(
                    "ML worker {name} is ready{}",
                    if verdict == Legacy {
                        " (no readiness file: an image that does not report)"
                    } else {
                        ""
                    }
                );
                self.starting = None;
                self.ready = true;
                self.last_error = None;
                self.card_phase("ready", json!({}));
                self.resolve("worker_starting");
                self.resolve("worker_start_failure");
            }
            Failed(phase) => {
                self.starting = None;
                self.start_failed(phase, &format!("container state {state:?}"));
            }
            Progress {
                phase,
                models_total,
                models_ready,
                detail,
            } => {
                let seen = format!("{phase}/{models_ready:?}");
                if st.phase.as_deref() != Some(seen.as_str()) {
                    log::info!("ML worker {name}: {phase}");
                    st.phase = Some(seen);
                    self.card_phase(
                        &phase,
                        json!({"models_total": models_total, "models_ready": models_ready, "detail": detail}),
                    );
                }
            }
            Waiting => {}
        }
    }

    pub(super) fn publish_health(&self, runtime: &Runtime) {
        let (Some(ctx), Some(m)) = (&self.ctx, self.mqtt.get()) else {
            return;
        };
        let name = container_name(&ctx.environment_uuid);
        let state = runtime.observed_state(&name).map(|e| e.state.clone());
        if state.is_none() && self.files.is_empty() {
            return;
        }
        let status = state.unwrap_or_else(|| "not_found".into());
        let payload = health_payload(
            &super::health::HealthView {
                container_name: &name,
                container_status: &status,
                is_ready: self.ready,
                uptime_seconds: self
                    .running_since
                    .map(|t| (t.elapsed().as_secs_f64() * 10.0).round() / 10.0),
            },
            &self.history,
            Instant::now(),
        );
        let twin = self
            .scope
            .first()
            .cloned()
            .unwrap_or_else(|| ctx.environment_uuid.clone());
        let topic = format!("{}cyberwave/twin/{twin}/worker_health", m.prefix());
        m.publish_raw(&topic, payload.to_string().into_bytes());
    }
}
