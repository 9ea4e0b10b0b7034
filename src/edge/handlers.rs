//! How the supervisor reacts to backend jobs, link events and SIGHUP.

use std::time::SystemTime;

use crossbeam_channel::Sender;
use serde_json::{Value, json};

use super::backend_job::{BackendEvent, JobCtl};
use super::boot::load_environment;
use super::boot::load_settings;
use super::commands::{self, EdgeCommand};
use super::error::DaemonError;
use crate::backend::Backend;
use crate::config::{self};
use crate::mqtt::LinkEvent;

use super::state::{State, TokenState};

pub(super) fn on_backend(
    state: &mut State,
    ev: BackendEvent,
    jobctl: &Sender<JobCtl>,
) -> Result<(), DaemonError> {
    match ev {
        BackendEvent::TokenValid { latency } => {
            log::info!(
                "token accepted by {} ({} ms)",
                state.settings.base_url,
                latency.as_millis()
            );
            state.backend.token = TokenState::Valid;
            state.backend.reachable = Some(true);
            state.backend.latency_ms = Some(latency.as_millis() as u64);
            state.backend.last_ok = Some(SystemTime::now());
        }
        BackendEvent::TokenRejected { error, during_boot } => {
            state.backend.token = TokenState::Rejected;
            state.backend.reachable = Some(true);
            state.record_error(error.to_string());
            if during_boot {
                return Err(DaemonError::TokenRejected(error.to_string()));
            }
        }
        BackendEvent::CallFailed(e) => {
            if e.is_transient() {
                state.backend.reachable = Some(false);
            }
            state.record_error(e.to_string());
        }
        BackendEvent::Registered(edge) => {
            state.backend.registered = true;
            state.backend.reachable = Some(true);
            state.backend.last_ok = Some(SystemTime::now());
            match edge
                .get("uuid")
                .and_then(Value::as_str)
                .and_then(config::parse_uuid)
            {
                Some(uuid) => {
                    log::info!("edge registered: {uuid}");
                    state.set_edge_uuid(uuid);
                }
                None => state
                    .record_error("POST /api/v1/edges: the answer has no valid \"uuid\"".into()),
            }
        }
        BackendEvent::Desired(d) => {
            state.backend.reachable = Some(true);
            state.backend.last_ok = Some(SystemTime::now());
            state.apply_desired(d);
            super::restart::refetched(state, jobctl);
        }
        BackendEvent::DriverToken { twin, facts } => state.on_driver_token(twin, facts),
        BackendEvent::DiscoverOk {
            latency,
            twins,
            interfaces,
        } => {
            state.backend.reachable = Some(true);
            state.backend.latency_ms = Some(latency.as_millis() as u64);
            state.backend.last_ok = Some(SystemTime::now());
            network_lines(state, &twins, &interfaces);
        }
    }
    Ok(())
}

/// §2.6: the "Network interfaces: …" line to each bound twin whose interface set changed;
/// one line on stderr however many twins get it.
fn network_lines(state: &mut State, twins: &[String], interfaces: &[Value]) {
    use super::network::{addressed, message, signature};
    if interfaces.is_empty() {
        return;
    }
    let nics = addressed(interfaces);
    let sig = signature(&nics);
    let pending = state.network_lines.pending(twins, &sig);
    if pending.is_empty() {
        return;
    }
    let line = message(&nics);
    crate::logging::verbatim(&line);
    // Recorded only for a connected link: a line is never lost to a broker outage.
    if !state.mqtt.is_connected() {
        return;
    }
    for twin in pending {
        let payload = crate::drivers::logs::payload(
            &line,
            crate::drivers::logs::detect_level(&line),
            "network",
            None,
            crate::epoch_seconds(),
        );
        state.mqtt.publish_json(
            &crate::mqtt::topics::driverlog(state.mqtt.prefix(), &twin),
            payload,
        );
        state.network_lines.sent(&twin, sig.clone());
    }
}

pub(super) fn on_link(state: &mut State, ev: LinkEvent, jobctl: &Sender<JobCtl>) {
    match ev {
        LinkEvent::Up => {}
        LinkEvent::Down(e) => state.record_error(format!("MQTT link down: {e}")),
        LinkEvent::Message { topic, payload, .. } => {
            if let Some(twin) = state.commands.twin_topics.get(&topic).cloned() {
                on_twin_command(state, &twin, &payload);
                return;
            }
            if state.commands.topic.as_deref() != Some(topic.as_str()) {
                log::debug!("message on {topic} ignored");
                return;
            }
            let (cmd, request_id) = match commands::parse(&payload) {
                Ok(c) => c,
                Err(e) => {
                    log::warn!("{topic}: bad command: {e}");
                    state.record_error(format!("{topic}: bad command: {e}"));
                    return;
                }
            };
            if let Some(id) = &request_id
                && !state.commands.dedupe.first_time(id)
            {
                log::info!("{topic}: duplicate request_id {id} dropped");
                return;
            }
            state.commands.received += 1;
            state.commands.last = Some(json!({
                "command": cmd.name(),
                "request_id": request_id,
                "received_at": crate::epoch_seconds(),
            }));
            match cmd {
                EdgeCommand::RestartEdgeCore { alert_uuid, .. } => {
                    super::restart::begin(state, alert_uuid, jobctl);
                }
                EdgeCommand::OpenTunnel { session_id } => {
                    log::info!("{topic}: open_tunnel for session {session_id}");
                    state.tunnel.command(true, session_id);
                }
                EdgeCommand::CloseTunnel { session_id } => {
                    log::info!("{topic}: close_tunnel for session {session_id}");
                    state.tunnel.command(false, session_id);
                }
                EdgeCommand::Unknown { command, .. } => {
                    log::info!("{topic}: unknown command {command:?} ignored")
                }
            }
        }
    }
}

/// A message on a twin's command topic (§3.8): the worker's two commands; anything else on
/// that topic is for the twin's driver and is ignored here.
fn on_twin_command(state: &mut State, twin: &str, payload: &[u8]) {
    let Ok(Value::Object(cmd)) = serde_json::from_slice::<Value>(payload) else {
        return;
    };
    let name = cmd.get("command").and_then(Value::as_str).unwrap_or("");
    if !matches!(name, "sync_workflows" | "remove_workflow_worker") {
        return;
    }
    if let Some(id) = cmd.get("request_id").and_then(Value::as_str)
        && !state
            .commands
            .twin_dedupe
            .first_time(&super::commands::bounded_id(id))
    {
        log::info!("twin {twin}: duplicate {name} request dropped");
        return;
    }
    log::info!("twin {twin}: {name} requested");
    if name == "sync_workflows" {
        state.worker.sync_now();
    } else {
        let names = cmd.get("worker_filenames").cloned().unwrap_or(Value::Null);
        state.worker.remove_files(names);
    }
}

/// SIGHUP: re-read every file; a bad file keeps the running configuration.
pub(super) fn reload(state: &mut State, link_tx: &Sender<LinkEvent>, jobctl: &Sender<JobCtl>) {
    log::info!("SIGHUP: reloading configuration");
    let (settings, warnings) = match load_settings() {
        Ok(s) => s,
        Err(e) => {
            log::error!("reload failed, keeping the running configuration: {e}");
            state.record_error(format!("reload failed: {e}"));
            return;
        }
    };
    for w in &warnings {
        log::warn!("{w}");
    }
    if let Some(level) = crate::logging::normalise_level(&settings.log_level)
        && let Ok(f) = level.parse::<log::LevelFilter>()
    {
        log::set_max_level(f);
    }
    if settings.mqtt != state.settings.mqtt {
        log::info!(
            "MQTT settings changed: reconnecting to {}:{}",
            settings.mqtt.host,
            settings.mqtt.port
        );
        let _ = link_tx;
        state.relink(&settings);
    }
    state.tunnel.reload(crate::backend::Backend::new(&settings));
    state.environment = load_environment(&settings);
    if let Err(e) = &state.environment {
        log::error!("{e}");
    }
    let nvidia = state.drivers.ctx.nvidia_default_runtime;
    let images = std::mem::take(&mut state.drivers.ctx.images);
    let tokens = std::mem::take(&mut state.drivers.ctx.tokens.facts);
    state.drivers.ctx = crate::drivers::settings::launch_context_keeping(
        &settings,
        &state.fingerprint,
        &state.drivers.ctx.camera_files,
    );
    state.drivers.ctx.nvidia_default_runtime = nvidia;
    // What the images declare does not change with the settings; tokens are asked for again
    // (a token of another edge token is not used meanwhile).
    state.drivers.ctx.images = images;
    state.drivers.ctx.tokens.facts = tokens;
    // The bus is wired once per process (its session and router run on): containers keep
    // being told what it is.
    state.drivers.ctx.bus_env = state.data.bus.settings.driver_env();
    let (env_uuid, workspace) = (state.environment_uuid(), settings.workspace_id.clone());
    state
        .drivers
        .reconfigure_alerts(Backend::new(&settings), env_uuid, workspace);
    let worker_alerts = state.drivers.alerts();
    let mut worker_ctx = super::boot::worker_context(
        &settings,
        state.environment_uuid().as_deref(),
        &state.fingerprint,
    );
    if let Some(c) = worker_ctx.as_mut() {
        c.bus_env = state.data.bus.settings.worker_env();
    }
    state.worker.reconfigure(
        worker_ctx,
        super::boot::worker_tuning(&settings),
        Some(Backend::new(&settings)),
        worker_alerts,
    );
    if let Some(tx) = &state.twin_sync.tx {
        let _ = tx.send(crate::twinsync::run::SyncCtl::Backend(Box::new(
            Backend::new(&settings),
        )));
        let _ = tx.send(crate::twinsync::run::SyncCtl::Environment(
            state.environment_uuid(),
        ));
    }
    state.settings = settings;
    state.update_router();
    if let Some(d) = state.desired.clone() {
        state.apply_desired(d);
    } else {
        state.update_worker_scope();
    }
    state.ensure_health();
    let _ = jobctl.send(JobCtl::Reload {
        backend: Box::new(Backend::new(&state.settings)),
        environment_uuid: state.environment_uuid(),
        tokens: state.drivers.ctx.tokens.settings.clone(),
    });
    // Asked again under the new settings (and edge token).
    state.token_needs_sent = None;
}
