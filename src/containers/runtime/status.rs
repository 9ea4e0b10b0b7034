//! What `status` shows of the runtime's containers.

use std::time::SystemTime;

use serde_json::{Value, json};

use super::Runtime;
use crate::containers::spec::ContainerSpec;

impl Runtime {
    /// The desired containers for `status`, with what the engine and our book say of each.
    pub fn snapshot(&self) -> Vec<(&ContainerSpec, Value)> {
        let observed = self.observed.as_ref();
        let now = SystemTime::now();
        self.desired
            .iter()
            .map(|(name, (spec, _))| {
                let info = self.info.get(name).cloned().unwrap_or_default();
                let ps = observed.and_then(|o| o.get(name));
                let state = info.state_text(self.inflight.contains(name), ps);
                // Worked out now: the engine's "Up 3 seconds" was as old as the last list.
                let status = info
                    .since
                    .and_then(|t| now.duration_since(t).ok())
                    .map(|d| format!("{state} for {}", crate::human_duration(d)));
                let v = json!({
                    "name": name,
                    "image": ps.map(|e| e.image.clone()).unwrap_or_else(|| spec.image.clone()),
                    "state": state,
                    "status": status,
                    "id": ps.map(|e| e.id.chars().take(12).collect::<String>()),
                    "restarts": info.deaths,
                    "last_exit": info.last_exit,
                    "since": info.since.map(crate::epoch_of),
                    "breaker_trips": info.breaker.trips,
                    "last_error": info.last_error,
                    "update": self.update_status(name, &info),
                    "update_lock": self.lock_status(name),
                    "waiting_for": self.gate_status(name),
                });
                (spec, v)
            })
            .collect()
    }
}
