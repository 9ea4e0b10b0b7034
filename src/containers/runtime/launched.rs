//! A launch the launcher finished: the container is up (its role hears of it, it goes on
//! probation, the list is told what the launcher saw) or it failed (backoff, the update it was
//! waits, a switch whose successor failed is a failed trial).

use std::collections::BTreeMap;
use std::time::Instant;

use super::Runtime;
use crate::containers::breaker::Breaker;
use crate::containers::cleanup::save_images;
use crate::containers::launch::{LaunchFailure, Up};
use crate::containers::spec::ContainerSpec;
use crate::engine::Container;

impl Runtime {
    pub(super) fn on_launched(&mut self, spec_name: String, result: Result<Up, LaunchFailure>) {
        self.inflight.remove(&spec_name);
        let Some((spec, _)) = self.desired.get(&spec_name) else {
            return;
        };
        let info = self.info.entry(spec_name.clone()).or_default();
        match result {
            Ok(Up { id, image_id }) => {
                log::info!(
                    "{spec_name} for {} is up ({})",
                    spec.owner,
                    &id.chars().take(12).collect::<String>()
                );
                info.last_error = None;
                info.stopped_for_loop = false;
                // Remember what we ran, so image cleanup knows what is ours.
                if self.ran_images.insert(spec.image.clone()) {
                    save_images(&self.config_dir, &self.ran_images);
                }
                if let Some(p) = self.policies.get_mut(&spec.role) {
                    p.up(spec, &id);
                }
                // The launcher saw it up: until the next list lands, that is what the engine
                // says of it, so a reconcile in between does not launch it a second time (the
                // create would collide and replace the driver that just started).
                if let Some(o) = self.observed.as_mut() {
                    o.insert(spec_name.clone(), launched_entry(spec, &id, &image_id));
                }
                info.id = Some(id);
                info.image_id = image_id.clone();
                // A list asked for before now may have been taken before the create.
                info.trust_lists_from = self.observes_requested + 1;
                info.pending_update = None;
                self.on_trial_if_new(&spec_name, &image_id);
            }
            Err(f) => {
                info.launch_failures += 1;
                let delay = Breaker::delay(
                    self.tuning.retry_base,
                    self.tuning.retry_cap,
                    info.launch_failures,
                );
                info.next_launch = Some(Instant::now() + delay);
                log::error!(
                    "{spec_name} for {} failed to start: {f}; next try in {} s",
                    spec.owner,
                    delay.as_secs()
                );
                info.last_error = Some(f.to_string());
                // The old container still runs: the update waits (`status` says why).
                let old_runs = self
                    .observed_state(&spec_name)
                    .is_some_and(|c| c.state == "running");
                if let Some(i) = self.info.get_mut(&spec_name) {
                    i.pending_update = old_runs.then(|| (spec.image.clone(), f.to_string()));
                }
                if let Some(p) = self.policies.get_mut(&spec.role) {
                    p.launch_failed(spec, &f, delay);
                }
                self.switch_failed(&spec_name, f.phase, &f.message);
            }
        }
    }
}

/// What the engine's list would say of a container the launcher just saw up.
pub(super) fn launched_entry(spec: &ContainerSpec, id: &str, image_id: &str) -> Container {
    Container {
        id: id.to_string(),
        name: spec.name.clone(),
        image: spec.image.clone(),
        image_id: image_id.to_string(),
        state: "running".into(),
        // What the list will say: a dependent's health gate must not open on our guess.
        status: if spec.options.iter().any(|o| o == "--health-cmd") {
            "Up (health: starting)".into()
        } else {
            "Up".into()
        },
        labels: BTreeMap::from([(
            crate::containers::LABEL_SPEC_HASH.to_string(),
            spec.spec_hash.clone(),
        )]),
    }
}
