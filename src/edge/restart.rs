//! Remote restart (`restart_edge_core`, reference §8.4, §3.5) on the supervisor: the rules
//! are the pure [`super::restart_machine::step`]; this module feeds it events and performs its actions
//! without waiting. The backend's restart card goes `in_progress`; twin files are pushed if
//! changed and removed (twin-sync thread); our driver and worker containers — only ours — are
//! removed and created again from their specs (new ids); `environment.json` is re-read and the
//! desired state refetched; the card ends `completed` (or `failed` with the error). A request
//! while one runs is refused (`concurrent_restart`), and one within 30 s of the last is refused
//! too (`rate_limited`): 500 commands are not 500 restarts.

use std::time::{Instant, SystemTime};

use crossbeam_channel::Sender;
use serde_json::{Value, json};

use super::backend_job::JobCtl;
use super::restart_machine::{self as machine, Action, Event};
use super::state::State;
use crate::containers::spec::Role;

fn iso_now() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

/// A `restart_edge_core` command.
pub(super) fn begin(state: &mut State, alert_uuid: Option<String>, jobctl: &Sender<JobCtl>) {
    on(state, Event::Asked { alert_uuid }, jobctl);
}

/// The twin-sync thread pushed and removed the twin files: recreate and refetch.
pub(super) fn flushed(state: &mut State, removed: usize, jobctl: &Sender<JobCtl>) {
    on(state, Event::Flushed { removed }, jobctl);
}

/// The backend answered the refetch.
pub(super) fn refetched(state: &mut State, jobctl: &Sender<JobCtl>) {
    on(state, Event::Refetched, jobctl);
    check(state, jobctl);
}

/// Called after runtime events and ticks: done when refetched and every driver is back.
pub(super) fn check(state: &mut State, jobctl: &Sender<JobCtl>) {
    if state.restart.running.is_none() {
        return;
    }
    tell_lock_holders(state);
    let containers_back = state.runtime.recreating() == 0 && state.runtime.settled(Role::Driver);
    let held_by_lock = !state.restart_waits_on.is_empty();
    on(
        state,
        Event::Look {
            containers_back,
            held_by_lock,
        },
        jobctl,
    );
}

/// The card says which containers' update locks hold the restart up, when that changes.
fn tell_lock_holders(state: &mut State) {
    let holders: Vec<String> = match state.runtime.recreating() {
        0 => Vec::new(),
        _ => state.runtime.held_locks().into_keys().collect(),
    };
    if holders == state.restart_waits_on {
        return;
    }
    state.restart_waits_on = holders.clone();
    let uuid = state
        .restart
        .running
        .as_ref()
        .and_then(|r| r.alert_uuid.clone());
    if let (Some(uuid), false) = (uuid, holders.is_empty()) {
        log::info!(
            "remote restart: waiting for the update lock of {}",
            holders.join(", ")
        );
        state.drivers.alerts().transition(
            &uuid,
            "recreating_containers",
            json!({"waiting_for_update_lock": holders,
                   "detail": format!("waiting for the update lock held by {}", holders.join(", "))}),
            false,
        );
    }
}

fn on(state: &mut State, ev: Event, jobctl: &Sender<JobCtl>) {
    let (next, actions) = machine::step(&state.restart, ev, Instant::now(), SystemTime::now());
    state.restart = next;
    for a in actions {
        perform(state, a, jobctl);
    }
}

fn perform(state: &mut State, action: Action, jobctl: &Sender<JobCtl>) {
    match action {
        Action::Card {
            alert_uuid,
            status,
            mut details,
            at_key,
            resolve,
        } => {
            if let Value::Object(m) = &mut details {
                m.insert(at_key.into(), json!(iso_now()));
            }
            state
                .drivers
                .alerts()
                .transition(&alert_uuid, status, details, resolve);
        }
        Action::Refused { error } => log::warn!("restart_edge_core refused: {error}"),
        Action::FlushTwinFiles => {
            log::info!(
                "remote restart: pushing and removing twin files, then recreating our containers"
            );
            match &state.twin_sync.tx {
                Some(tx) => {
                    let _ = tx.send(crate::twinsync::run::SyncCtl::FlushAndRemove {
                        done: state.restart_tx.clone(),
                    });
                }
                None => flushed(state, 0, jobctl),
            }
        }
        Action::Recreate { removed } => {
            log::info!("remote restart: {removed} twin file(s) removed; recreating containers");
            state.environment = super::boot::load_environment(&state.settings);
            if let Err(e) = &state.environment {
                log::error!("remote restart: {e}");
            }
            // The router first, as the original (§9.3), named for the environment read again.
            state.update_router();
            state.runtime.recreate(Role::Router);
            // What graph images declare is fetched and read again (a moving tag may have moved).
            state.drivers.look_again(&mut state.runtime);
            state.runtime.recreate(Role::Driver);
            state.runtime.recreate(Role::Worker);
            let _ = jobctl.send(JobCtl::Resync);
        }
        Action::Ended { took, error: None } => {
            log::info!("remote restart completed in {:.1} s", took.as_secs_f64());
        }
        Action::Ended { error: Some(e), .. } => log::error!("remote restart failed: {e}"),
    }
}
