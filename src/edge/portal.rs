//! The local portal's listing from what the supervisor knows: the drivers' plans (name,
//! registry id, declared `local_http` pages) and what the engine last said of their containers.

use std::time::Instant;

use super::state::State;
use crate::containers::runtime::Runtime;
use crate::drivers::spec::{TwinOutcome, registry_id};
use crate::remote_access::portal::Input;

/// The running drivers' pages as the portal lists them.
fn inputs(drivers: &crate::drivers::runtime::Drivers, runtime: &Runtime) -> Vec<Input> {
    drivers
        .plans()
        .filter_map(|p| {
            let TwinOutcome::Containers(specs) = &p.outcome else {
                return None;
            };
            let running = specs
                .iter()
                .filter_map(|s| {
                    let c = runtime.observed_state(&s.name)?;
                    (c.state == "running")
                        .then(|| (s.service.clone().unwrap_or_default(), c.status.clone()))
                })
                .collect();
            Some(Input {
                twin_uuid: p.twin_uuid.clone(),
                twin_name: p.twin_name.clone(),
                registry_id: p.twin_file.get("asset").and_then(registry_id),
                local_http: p.local_http.clone(),
                running,
            })
        })
        .collect()
}

/// When the portal wants its next refresh (none when it is off).
pub(super) fn due(state: &State) -> Option<Instant> {
    state.portal.as_ref().map(|p| p.due())
}

/// A fresh listing now (after a container change), or when its refresh is due.
pub(super) fn refresh(state: &mut State, only_if_due: bool) {
    let Some(portal) = state.portal.as_mut() else {
        return;
    };
    if only_if_due && portal.due() > Instant::now() {
        return;
    }
    let inputs = inputs(&state.drivers, &state.runtime);
    portal.update(&inputs);
}
