//! Remote restart (`restart_edge_core`, reference §8.4, §3.5) as steps the supervisor drives
//! without waiting: the backend's restart card goes `in_progress`; twin files are pushed if
//! changed and removed (twin-sync thread); our driver and worker containers — only ours — are
//! removed and created again from their specs (new ids); `environment.json` is re-read and the
//! desired state refetched; the card ends `completed` (or `failed` with the error). A request
//! while one runs is refused (`concurrent_restart`), and one within 30 s of the last is refused
//! too (`rate_limited`): 500 commands are not 500 restarts.

use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::Sender;
use serde_json::json;

use super::backend_job::JobCtl;
use super::state::{Phase, Restart, State};
use crate::containers::spec::Role;

/// Minimum time between the end of one restart and the start of the next.
const MIN_INTERVAL: Duration = Duration::from_secs(30);
/// A restart not finished by then has failed.
const DEADLINE: Duration = Duration::from_secs(300);

fn iso_now() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

fn refuse(state: &State, alert_uuid: Option<&str>, reason: &str, error: &str) {
    log::warn!("restart_edge_core refused: {error}");
    if let Some(uuid) = alert_uuid {
        state.drivers.alerts().transition(
            uuid,
            "failed",
            json!({"reason": reason, "error": error, "failed_at": iso_now()}),
            true,
        );
    }
}

/// A `restart_edge_core` command.
pub(super) fn begin(state: &mut State, alert_uuid: Option<String>, jobctl: &Sender<JobCtl>) {
    if state.restart.is_some() {
        return refuse(
            state,
            alert_uuid.as_deref(),
            "concurrent_restart",
            "another edge-core restart was already in progress",
        );
    }
    if state
        .last_restart_done
        .is_some_and(|t| t.elapsed() < MIN_INTERVAL)
    {
        return refuse(
            state,
            alert_uuid.as_deref(),
            "rate_limited",
            "an edge-core restart finished less than 30 s ago",
        );
    }
    log::info!("remote restart: pushing and removing twin files, then recreating our containers");
    if let Some(uuid) = &alert_uuid {
        state.drivers.alerts().transition(
            uuid,
            "in_progress",
            json!({"in_progress_at": iso_now()}),
            false,
        );
    }
    state.restart = Some(Restart {
        alert_uuid,
        started: Instant::now(),
        started_at: SystemTime::now(),
        phase: Phase::Flushing,
    });
    match &state.twin_sync {
        Some(tx) => {
            let _ = tx.send(crate::twinsync::run::SyncCtl::FlushAndRemove {
                done: state.restart_tx.clone(),
            });
        }
        None => flushed(state, 0, jobctl),
    }
}

/// The twin-sync thread pushed and removed the twin files: recreate and refetch.
pub(super) fn flushed(state: &mut State, removed: usize, jobctl: &Sender<JobCtl>) {
    let Some(r) = &mut state.restart else {
        return;
    };
    log::info!("remote restart: {removed} twin file(s) removed; recreating containers");
    r.phase = Phase::Recreating { refetched: false };
    state.environment = super::load_environment(&state.settings);
    if let Err(e) = &state.environment {
        log::error!("remote restart: {e}");
    }
    // The router first, as the original (§9.3), named for the environment read again.
    state.update_router();
    state.runtime.recreate(Role::Router);
    state.runtime.recreate(Role::Driver);
    state.runtime.recreate(Role::Worker);
    let _ = jobctl.send(JobCtl::Resync);
}

/// The backend answered the refetch.
pub(super) fn refetched(state: &mut State) {
    if let Some(Restart {
        phase: Phase::Recreating { refetched },
        ..
    }) = &mut state.restart
    {
        *refetched = true;
    }
    check(state);
}

/// Called after runtime events and ticks: done when refetched and every driver is back.
pub(super) fn check(state: &mut State) {
    let Some(r) = &state.restart else {
        return;
    };
    let done = matches!(r.phase, Phase::Recreating { refetched: true })
        && state.runtime.recreating() == 0
        && state.runtime.settled(Role::Driver);
    let timed_out = r.started.elapsed() > DEADLINE;
    if !done && !timed_out {
        return;
    }
    let alerts = state.drivers.alerts();
    let (result, error) = if done {
        log::info!(
            "remote restart completed in {:.1} s",
            r.started.elapsed().as_secs_f64()
        );
        if let Some(uuid) = &r.alert_uuid {
            alerts.transition(uuid, "completed", json!({"completed_at": iso_now()}), true);
        }
        ("completed", None)
    } else {
        let error = format!(
            "the restart did not finish within {} s ({:?})",
            DEADLINE.as_secs(),
            r.phase
        );
        log::error!("remote restart failed: {error}");
        if let Some(uuid) = &r.alert_uuid {
            alerts.transition(
                uuid,
                "failed",
                json!({"error": error, "failed_at": iso_now()}),
                true,
            );
        }
        ("failed", Some(error))
    };
    state.last_restart = Some(json!({"result": result, "error": error,
        "started_at": crate::epoch_of(r.started_at), "finished_at": crate::epoch_seconds()}));
    state.restart = None;
    state.last_restart_done = Some(Instant::now());
}
