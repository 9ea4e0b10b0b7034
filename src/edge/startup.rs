//! What the daemon learns during start-up, told to the startup report ([`super::report`]):
//! the steps known at once (credentials, environment, zenoh), the backend's and the link's
//! first answers, and what the runtime and the worker reach.

use std::time::Instant;

use super::backend_job::BackendEvent;
use super::desired::Source;
use super::report::{Mark, StartupReport, Step, print};
use super::state::State;
use crate::bus::settings::Router;
use crate::containers::spec::Role;
use crate::mqtt::LinkEvent;

/// The report with its header and the steps known before any thread runs.
pub(super) fn begin(state: &State) -> StartupReport {
    let s = &state.settings;
    let (mut r, header) = StartupReport::new(
        state.started,
        &s.config_dir.display().to_string(),
        &s.base_url,
        &s.environment,
    );
    print(&header);
    let now = Instant::now();
    let t = r.secs(now);
    r.fill(Step::Credentials, Mark::Ok, Some(&t), Vec::new());
    match &state.environment {
        Ok(e) if e.uuid.is_some() => {
            let uuid = e.uuid.as_deref().unwrap_or("");
            r.fill(
                Step::Environment,
                Mark::Ok,
                Some(&format!("{uuid}, {t}")),
                Vec::new(),
            );
        }
        _ => {
            let path = s.config_dir.join(crate::config::ENVIRONMENT_FILE);
            r.fill(
                Step::Environment,
                Mark::Warning,
                Some(&t),
                vec![
                    format!("  No linked environment found in {}", path.display()),
                    "  Expected format: {'uuid': 'unique-uuid-of-the-environment'}".into(),
                ],
            );
            for step in [
                Step::Heartbeat,
                Step::Zenoh,
                Step::Router,
                Step::Drivers,
                Step::WorkerSync,
            ] {
                r.skip(step);
            }
        }
    }
    // A fingerprint was found (or the daemon would not be here): the original prints nothing.
    r.skip(Step::Fingerprint);
    let bus = &state.data.bus.settings;
    let diag = bus.diagnostics();
    let mark = if bus.is_zenoh() {
        Mark::Ok
    } else {
        Mark::Warning
    };
    let warnings: Vec<String> = diag["warnings"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|w| w.as_str())
        .map(|w| format!("    ↳ {w}"))
        .collect();
    // The original counts each diagnostic warning as a start-up warning.
    let warns = mark != Mark::Ok || !warnings.is_empty();
    r.fill_warning(Step::Zenoh, mark, diag["mode"].as_str(), warnings, warns);
    if matches!(bus.router, Router::Off) {
        r.skip(Step::Router);
    }
    flush(&mut r);
    r
}

fn flush(r: &mut StartupReport) {
    print(&r.take_ready());
}

/// A backend answer: the token, the registration, the first host facts.
pub(super) fn on_backend(r: &mut StartupReport, ev: &BackendEvent, state: &State) {
    let t = r.secs(Instant::now());
    match ev {
        BackendEvent::TokenValid { .. } => r.fill(Step::Token, Mark::Ok, Some(&t), Vec::new()),
        BackendEvent::TokenRejected { .. } => r.fill(
            Step::Token,
            Mark::Failed,
            Some(&t),
            vec![
                format!(
                    "  Token validation failed against {}",
                    state.settings.base_url
                ),
                "  Check 'journalctl -u cyberwave-edge-core' for details.".into(),
                "  Run 'cyberwave login' to refresh your credentials.".into(),
            ],
        ),
        BackendEvent::CallFailed(e) if e.is_transient() && r.is_open(Step::Token) => {
            // Where we differ on purpose: the original stops at an unreachable backend.
            let cached = state
                .desired
                .as_ref()
                .is_some_and(|d| d.source == Source::Cache);
            let how = if cached {
                "running from the cached backend answer"
            } else {
                "waiting for it"
            };
            r.fill(
                Step::Token,
                Mark::Warning,
                Some(&t),
                vec![format!(
                    "  Backend unreachable ({e}); {how} and retrying (0.1.30 stops here; this edge goes on)"
                )],
            );
        }
        BackendEvent::Registered(_) => r.fill(Step::Registration, Mark::Ok, Some(&t), Vec::new()),
        BackendEvent::DiscoverOk { .. } => r.fill(Step::HostFacts, Mark::Ok, Some(&t), Vec::new()),
        _ => {}
    }
    flush(r);
}

/// The MQTT link's first connection.
pub(super) fn on_link(r: &mut StartupReport, ev: &LinkEvent) {
    if matches!(ev, LinkEvent::Up) {
        let t = r.secs(Instant::now());
        r.fill(Step::Mqtt, Mark::Ok, Some(&t), Vec::new());
        flush(r);
    }
}

/// After any event: the steps that depend on the daemon's state (heartbeat, router, drivers,
/// worker sync), and the report's clock. Returns false once the report is complete.
pub(super) fn observe(r: &mut StartupReport, state: &State) -> bool {
    let now = Instant::now();
    let t = r.secs(now);
    let desired = state.desired.is_some();
    if r.is_open(Step::Heartbeat) && desired {
        let n = state.linked_broad.len();
        if state.health.is_some() || (n > 0 && state.runtime.any_running(Role::Driver)) {
            r.fill(
                Step::Heartbeat,
                Mark::Ok,
                Some(&format!("{n} twin(s), {t}")),
                Vec::new(),
            );
        } else if n == 0 {
            r.fill(
                Step::Heartbeat,
                Mark::Warning,
                Some(&t),
                vec!["  Could not start early edge heartbeat; continuing startup.".into()],
            );
        }
    }
    if r.is_open(Step::Router) {
        observe_router(r, state, &t);
    }
    if r.is_open(Step::Drivers)
        && desired
        && state.drivers.discovering() == 0
        && state.runtime.settled(Role::Driver)
    {
        observe_drivers(r, state, &t);
    }
    if r.is_open(Step::WorkerSync) && !r.is_open(Step::Drivers) {
        observe_worker(r, state, &t);
    }
    r.check_time(now);
    flush(r);
    !r.finished()
}

fn observe_router(r: &mut StartupReport, state: &State, t: &str) {
    match &state.data.bus.settings.router {
        Router::Off => r.skip(Step::Router),
        Router::Embedded { port } => r.fill(
            Step::Router,
            Mark::Ok,
            Some(&format!("embedded in the daemon, port {port}, {t}")),
            Vec::new(),
        ),
        Router::Container { .. } => {
            let snapshot = state.runtime.snapshot();
            let Some((spec, v)) = snapshot.iter().find(|(s, _)| s.role == Role::Router) else {
                return;
            };
            if v["state"] == "running" {
                let detail = format!("{}, {t}", spec.name);
                r.fill(Step::Router, Mark::Ok, Some(&detail), Vec::new());
            } else if !v["last_error"].is_null() {
                r.fill(
                    Step::Router,
                    Mark::Warning,
                    Some(&format!("failed to start, {t}")),
                    vec!["  Driver containers will still start; peer-to-peer discovery will be used as fallback.".into()],
                );
            }
        }
    }
}

fn observe_drivers(r: &mut StartupReport, state: &State, t: &str) {
    let drivers: Vec<(String, String, bool)> = state
        .runtime
        .snapshot()
        .into_iter()
        .filter(|(s, _)| s.role == Role::Driver)
        .map(|(s, v)| (s.title.clone(), s.image.clone(), v["state"] == "running"))
        .collect();
    if drivers.is_empty() {
        r.fill(
            Step::Drivers,
            Mark::Warning,
            Some(t),
            vec!["  No twins with driver images matched this edge.".into()],
        );
        return;
    }
    let started = drivers.iter().filter(|(_, _, ok)| *ok).count();
    let lines = drivers
        .iter()
        .map(|(name, image, ok)| format!("    {name} → {image} {}", if *ok { "✓" } else { "✗" }))
        .collect();
    // The original marks the step ✓ and counts a partial start as a warning.
    let detail = format!("{started}/{}, {t}", drivers.len());
    r.fill_warning(
        Step::Drivers,
        Mark::Ok,
        Some(&detail),
        lines,
        started < drivers.len(),
    );
}

fn observe_worker(r: &mut StartupReport, state: &State, t: &str) {
    if state.worker.command_twins().is_empty() {
        r.skip(Step::WorkerSync);
        return;
    }
    let Some((written, removed, errors)) = state.worker.first_sync() else {
        return;
    };
    let mut lines = Vec::new();
    if !state.worker.has_files() {
        lines.push(if errors > 0 {
            "  ⚠ Sync errors prevented worker startup; will retry.".to_string()
        } else {
            "  No active workflows for connected twins; worker container not started.".to_string()
        });
    }
    if errors > 0 {
        let detail = format!("written={written}, removed={removed}, errors={errors}, {t}");
        r.fill(Step::WorkerSync, Mark::Warning, Some(&detail), lines);
    } else {
        let detail = format!("written={written}, removed={removed}, {t}");
        r.fill(Step::WorkerSync, Mark::Ok, Some(&detail), lines);
    }
}
