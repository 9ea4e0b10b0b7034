//! The supervisor's side of the data bus: the router container it wants, the stall alert
//! (`driver_data_stalled`, `CYBERWAVE_DRIVER_DATA_STALL_SECONDS`, off by default) and what
//! `status` shows per driver. The counting happens on the bus's own threads; which twins are
//! counted is set with the plans (`State::apply_desired`).

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::state::State;
use crate::alerts::Alert;
use crate::bus::{Running, StallEvent};
use crate::containers::spec::Role;

/// `CYBERWAVE_DRIVER_DATA_STALL_SECONDS`: unset, 0 or invalid (with a warning) = off.
pub(super) fn stall_after(env: &crate::config::EnvLayer) -> Option<Duration> {
    const KEY: &str = "CYBERWAVE_DRIVER_DATA_STALL_SECONDS";
    env.get(KEY)?;
    let mut warnings = Vec::new();
    let d = crate::config::optional_seconds_or_warn(env, KEY, 0.0, &mut warnings)
        .filter(|d| !d.is_zero());
    for w in warnings {
        log::warn!("{w}; data stall alerts are off");
    }
    d
}

impl State {
    /// The router container this edge wants (none unless `ZENOH_ROUTER_ENABLED` without the
    /// embedded mode), named for the current environment.
    pub(super) fn update_router(&mut self) {
        let (log_max_size, log_max_file) = self.settings.docker_log_caps();
        let env = self.environment_uuid();
        let spec = crate::bus::router::spec(
            &self.data.bus.settings,
            &crate::bus::router::RouterContext {
                environment_uuid: env.as_deref(),
                owner: &self.fingerprint,
                log_max_size: log_max_size.as_deref(),
                log_max_file: &log_max_file,
            },
        );
        self.runtime
            .set_desired(Role::Router, crate::bus::router::desired(spec));
    }

    /// Running drivers per twin (the earliest start among its running containers) with the
    /// container names and the twin's title.
    fn running_drivers(&self) -> Vec<(Running, String, String)> {
        let now = Instant::now();
        let mut by_twin: std::collections::BTreeMap<String, (Running, String, String)> =
            Default::default();
        for (spec, v) in self.runtime.snapshot() {
            if spec.role != Role::Driver || v["state"] != "running" {
                continue;
            }
            let since = v["since"]
                .as_f64()
                .and_then(crate::instant_of_epoch)
                .unwrap_or(now);
            let e = by_twin.entry(spec.owner.clone()).or_insert_with(|| {
                (
                    Running {
                        twin: spec.owner.clone(),
                        since,
                        last_sample: self.data.bus.last_sample(&spec.owner),
                    },
                    spec.name.clone(),
                    spec.title.clone(),
                )
            });
            if since < e.0.since {
                e.0.since = since;
                e.1 = spec.name.clone();
            }
        }
        by_twin.into_values().collect()
    }

    /// Raises or resolves `driver_data_stalled` (when enabled and the session listens).
    pub(super) fn check_data_stalls(&mut self) {
        let Some(after) = self.data.stall_after else {
            return;
        };
        // Silence is only news while we listen: a driver is judged from when the session
        // opened at the earliest.
        let Some(listening) = self.data.bus.listening_since() else {
            return;
        };
        let mut running = self.running_drivers();
        for r in &mut running {
            r.0.since = r.0.since.max(listening);
        }
        let list: Vec<Running> = running.iter().map(|r| r.0.clone()).collect();
        let events = self.data.stalls.check(after, &list, Instant::now());
        if events.is_empty() {
            return;
        }
        let alerts = self.drivers.alerts();
        for ev in events {
            match ev {
                StallEvent::Stalled { twin, idle } => {
                    let (name, title) = running
                        .iter()
                        .find(|r| r.0.twin == twin)
                        .map(|r| (r.1.clone(), r.2.clone()))
                        .unwrap_or_default();
                    let w = crate::drivers::words::data_stalled(&name, &title, idle.as_secs());
                    alerts.raise(
                        &format!(
                            "driver_data_stalled:{twin}:{}",
                            crate::epoch_seconds() as u64
                        ),
                        Alert {
                            alert_type: "driver_data_stalled",
                            name: w.title,
                            description: &w.description,
                            severity: "warning",
                            twin_uuid: &twin,
                            metadata: Some(json!({"container_name": name,
                                "idle_seconds": idle.as_secs(),
                                "threshold_seconds": after.as_secs_f64()})),
                        },
                    );
                }
                StallEvent::Resolved { twin } => {
                    log::info!("twin {twin}: data flows again (or its driver stopped)");
                    alerts.resolve(&twin, "driver_data_stalled");
                }
            }
        }
    }

    /// `status`'s drivers with each one's data flow, and the bus section.
    pub(super) fn with_data(&self, mut drivers: Value) -> (Value, Value) {
        if let Some(list) = drivers.get_mut("containers").and_then(Value::as_array_mut) {
            for c in list {
                let twin = c["twin_uuid"].as_str().unwrap_or("").to_string();
                c["data"] = self.data.bus.twin_view(&twin);
            }
        }
        let mut bus = self.data.bus.status();
        bus["stall_alert_seconds"] = json!(self.data.stall_after.map(|d| d.as_secs_f64()));
        bus["stalled"] = json!(self.data.stalls.stalled());
        (drivers, bus)
    }
}
