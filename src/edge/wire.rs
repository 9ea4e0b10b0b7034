//! Boot: settings, identity and every thread the supervisor reads, wired into a
//! [`Supervisor`]. Nothing here decides anything at run time.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{Receiver, Sender, unbounded};

use super::backend_job::{self, BackendEvent, JobConfig, JobCtl};
use super::boot::{
    edge_json_every, load_environment_at_boot, protect_from_oom, remove_crash_leftovers,
    saturation_config, spawn_signals, watchdog_layers, worker_context, worker_tuning,
};
use super::error::DaemonError;
use super::link::{start_link, will_for};
use super::manifest::{self, Manifest};
use super::sources::{Sources, TICK};
use super::state::{DataBus, State};
use super::supervisor::Supervisor;
use super::{data, desired};
use crate::backend::Backend;
use crate::config::{self, EnvLayer, EnvironmentFile, Settings, SettingsError};
use crate::containers::runtime::{Runtime, RuntimeEvent, Setup};
use crate::drivers::runtime::Drivers;
use crate::mqtt::{Link, LinkEvent, MqttHandle};

/// The files camera pins come from (reference §4.7).
fn camera_file(name: &str) -> bool {
    name == "cameras.json" || name == config::EDGE_FILE
}

fn thread_named(name: &str, f: impl FnOnce() + Send + 'static) -> Result<(), DaemonError> {
    thread::Builder::new()
        .name(name.into())
        .spawn(f)
        .map(|_| ())
        .map_err(|e| DaemonError::Startup(format!("cannot start the {name} thread: {e}")))
}

/// How the daemon gets its desired state.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RunOptions {
    /// `run --local FILE`: a manifest of twins instead of the backend and broker.
    pub local_manifest: Option<PathBuf>,
}

/// Everything up to the supervisor loop.
pub(super) fn boot(opts: RunOptions) -> Result<Supervisor, DaemonError> {
    // Files we create without an explicit mode are private (the original's umask 077).
    unsafe { libc::umask(0o077) };
    let env = EnvLayer::from_process();
    let (settings, manifest) = load(&opts, &env)?;
    let local = manifest.is_some();
    let fingerprint = crate::host::edge_fingerprint(&settings)
        .map_err(|e| DaemonError::Startup(format!("edge fingerprint unavailable: {e}")))?;
    log::info!("edge fingerprint {fingerprint}");
    let environment = match &manifest {
        Some(m) => Ok(EnvironmentFile {
            uuid: Some(m.environment_uuid.clone()),
            name: Some("local".into()),
            twin_uuids: None,
        }),
        None => load_environment_at_boot(&settings),
    };
    if let Err(e) = &environment {
        log::error!(
            "{e}; this edge runs without a linked environment until the file is fixed (then send SIGHUP)"
        );
    }
    let (control_tx, control) = unbounded();
    let socket = crate::control::serve(&settings.control_socket, control_tx)
        .map_err(|e| DaemonError::Startup(e.to_string()))?;
    // The only daemon now: clear what a crash left (temp files; env files holding the token).
    remove_crash_leftovers(&settings.config_dir);
    let signals = spawn_signals()?;
    let (link_tx, link) = unbounded::<LinkEvent>();
    let (mut state, events) = assemble(settings, local, fingerprint, environment, &link_tx)?;
    start_desired(&mut state, manifest);
    let pulled = start_twin_sync(&mut state)?;
    let cameras = start_camera_watch(&state)?;
    let (saturation_stop, saturation) = start_saturation(&state)?;
    // Start-up is done: arm the hardware watchdog (not for a local-mode demo).
    let hardware = (!local)
        .then(|| {
            crate::watchdog::Hardware::from_settings(
                env.process("CYBERWAVE_HARDWARE_WATCHDOG").as_deref(),
                env.process("CYBERWAVE_HARDWARE_WATCHDOG_DEVICE").as_deref(),
            )
        })
        .flatten();
    let (backend, jobctl) = start_backend_jobs(&state)?;
    let (ticker, data_ticker) = Sources::timers(state.data.stall_after.is_some());
    Ok(Supervisor {
        sources: Sources {
            signals,
            backend,
            link,
            runtime: events.runtime,
            tunnel: events.tunnel,
            control,
            prep: events.prep,
            worker_files: events.worker_files,
            pulled,
            flushed: events.flushed,
            cameras,
            saturation,
            ticker,
            data_ticker,
        },
        state,
        report: None,
        notifier: crate::systemd::Notifier::from_env(),
        hardware,
        link_tx,
        jobctl,
        _saturation_stop: saturation_stop,
        _socket: socket,
    })
}

/// Settings (and the manifest in local mode), logging, the config dir made ready.
fn load(opts: &RunOptions, env: &EnvLayer) -> Result<(Settings, Option<Manifest>), DaemonError> {
    let local = opts.local_manifest.is_some();
    let (config_dir, overridden) = config::resolve_config_dir(&|k| env.process(k));
    if !overridden && !local {
        let legacy = std::path::Path::new(config::LEGACY_CONFIG_DIR);
        match config::migrate_legacy(&config_dir, legacy) {
            Ok(0) => {}
            Ok(n) => log::info!(
                "Migrated {n} legacy edge config file(s) from {} to {}",
                config::LEGACY_CONFIG_DIR,
                config_dir.display()
            ),
            Err(e) => log::warn!(
                "legacy config migration from {}: {e}",
                config::LEGACY_CONFIG_DIR
            ),
        }
    }
    let (settings, warnings) = if local {
        crate::fsutil::ensure_dir(&config_dir, 0o700).map_err(|e| {
            DaemonError::Startup(format!("config dir {}: {e}", config_dir.display()))
        })?;
        Settings::load_local(config_dir, overridden, env)
    } else {
        Settings::load(config_dir, overridden, env)
    }
    .map_err(DaemonError::Settings)?;
    crate::logging::init(&settings.log_level);
    for w in &warnings {
        log::warn!("{w}");
    }
    protect_from_oom();
    // Running as root for a user (sudo, or a service on their ~/.cyberwave): what we create
    // there is theirs, and what an earlier root run left goes back to them (§4.3).
    config::ownership::take_over(
        &settings.config_dir,
        env.process("SUDO_UID").as_deref(),
        env.process("SUDO_GID").as_deref(),
    );
    for sub in ["workers", "models", "run"] {
        let _ = crate::fsutil::ensure_dir(&settings.config_dir.join(sub), 0o700);
    }
    // Local mode reads its twins before anything starts, so a bad manifest fails fast.
    let manifest = match &opts.local_manifest {
        Some(path) => {
            Some(manifest::load(path).map_err(|e| DaemonError::Settings(SettingsError::File(e)))?)
        }
        None => None,
    };
    log_start(opts, &settings);
    Ok((settings, manifest))
}

fn log_start(opts: &RunOptions, settings: &Settings) {
    match &opts.local_manifest {
        Some(path) => log::info!(
            "cyberwave-edge-core {} starting in local mode: manifest {}, config dir {} (no backend, no broker)",
            crate::VERSION,
            path.display(),
            settings.config_dir.display()
        ),
        None => log::info!(
            "cyberwave-edge-core {} starting: config dir {}, backend {}, environment {}, token {}",
            crate::VERSION,
            settings.config_dir.display(),
            settings.base_url,
            settings.environment,
            settings.token
        ),
    }
}

/// The link (none in local mode) and the handle everything publishes through.
fn connect(
    settings: &Settings,
    local: bool,
    link_tx: &Sender<LinkEvent>,
    fingerprint: &str,
) -> Result<(Option<Link>, MqttHandle, Option<String>), DaemonError> {
    if local {
        return Ok((
            None,
            MqttHandle::detached(&settings.mqtt.topic_prefix),
            None,
        ));
    }
    let will_uuid = config::edge_uuid(&settings.config_dir);
    let will = will_uuid
        .as_deref()
        .map(|u| will_for(settings, u, fingerprint));
    let link = start_link(settings, link_tx, will)?;
    let h = link.handle();
    Ok((Some(link), h, will_uuid))
}

/// Alerts: a durable outbox delivered by its own thread (none in local mode).
fn start_alerts(
    settings: &Settings,
    local: bool,
    environment_uuid: Option<String>,
) -> Result<(crate::alerts::AlertSink, Arc<crate::alerts::AlertStats>), DaemonError> {
    let stats = Arc::new(crate::alerts::AlertStats::default());
    let workspace = settings.workspace_id.clone();
    if local {
        let sink = crate::alerts::AlertSink::new(None, environment_uuid, workspace);
        return Ok((sink, stats));
    }
    let (tx, rx) = unbounded();
    let outbox = Arc::new(Mutex::new(crate::alerts::Outbox::open(
        &settings.config_dir,
    )));
    let (backend, shared, s) = (Backend::new(settings), outbox.clone(), stats.clone());
    thread_named("alerts", move || {
        crate::alerts::run(shared, backend, rx, &s)
    })?;
    let sink = crate::alerts::AlertSink::durable(outbox, tx, environment_uuid, workspace);
    Ok((sink, stats))
}

/// The receivers of the runtime, of the worker's threads and of the twin-file flush.
struct RoleEvents {
    runtime: Receiver<RuntimeEvent>,
    prep: Receiver<crate::worker::prep::PrepEvent>,
    worker_files: Receiver<crate::watch::Changed>,
    flushed: Receiver<usize>,
    tunnel: Receiver<crate::remote_access::TunnelEvent>,
}

/// One container runtime and the roles on it: the drivers first, the ML worker, the data bus
/// (the daemon's session and the router container role).
struct Roles {
    engine: Arc<dyn crate::engine::Engine>,
    runtime: Runtime,
    drivers: Drivers,
    worker: crate::worker::runtime::Worker,
    prep: Receiver<crate::worker::prep::PrepEvent>,
    worker_files: Receiver<crate::watch::Changed>,
    worker_mqtt: crate::mqtt::SharedHandle,
    bus: crate::bus::Bus,
    runtime_rx: Receiver<RuntimeEvent>,
}

fn start_roles(
    redactions: &crate::remote_access::Redactions,
    settings: &Settings,
    local: bool,
    fingerprint: &str,
    environment_uuid: Option<&str>,
    mqtt: &MqttHandle,
    alerts: crate::alerts::AlertSink,
) -> Roles {
    let tuning = crate::drivers::settings::driver_tuning(settings);
    crate::models::download::set_disk_reserve(
        tuning.runtime.disk_reserve_mb.saturating_mul(1 << 20),
    );
    let engine = crate::containers::engine::open(&crate::containers::engine::EngineSettings::from(
        settings,
        tuning.create_timeout,
        tuning.remove_timeout,
    ));
    let (mut runtime, runtime_rx) = Runtime::start(Setup {
        engine: engine.clone(),
        config_dir: settings.config_dir.clone(),
        owner: fingerprint.to_string(),
        tuning: tuning.runtime.clone(),
    });
    let (drivers, driver_role) = Drivers::new(
        crate::drivers::settings::launch_context(settings, fingerprint),
        engine.clone(),
        &tuning,
        (!local).then(|| mqtt.clone()),
        alerts.clone(),
    );
    runtime.add_role(driver_role);
    let worker_mqtt = crate::mqtt::SharedHandle::new((!local).then(|| mqtt.clone()));
    let crate::worker::runtime::WorkerParts {
        worker,
        role,
        prep,
        watch: worker_files,
    } = crate::worker::runtime::Worker::start(
        settings.config_dir.clone(),
        worker_context(settings, environment_uuid, fingerprint),
        worker_tuning(settings),
        (!local).then(|| Backend::new(settings)),
        worker_mqtt.clone(),
        alerts,
    );
    runtime.add_role(role);
    let bus = crate::bus::Bus::start(
        crate::bus::BusSettings::from_env(&settings.env),
        &crate::host::hostname(),
    );
    runtime.add_role(crate::bus::router::role());
    runtime.add_role(crate::remote_access::role(redactions.clone()));
    Roles {
        engine,
        runtime,
        drivers,
        worker,
        prep,
        worker_files,
        worker_mqtt,
        bus,
        runtime_rx,
    }
}

/// The supervisor's state: the link, the alerts, the runtime with its roles, and the
/// book-keeping of everything else.
fn assemble(
    settings: Settings,
    local: bool,
    fingerprint: String,
    environment: Result<EnvironmentFile, String>,
    link_tx: &Sender<LinkEvent>,
) -> Result<(State, RoleEvents), DaemonError> {
    let (link, mqtt, will_uuid) = connect(&settings, local, link_tx, &fingerprint)?;
    let environment_uuid = environment.as_ref().ok().and_then(|e| e.uuid.clone());
    let (alerts, alert_stats) = start_alerts(&settings, local, environment_uuid.clone())?;
    let redactions = crate::remote_access::Redactions::default();
    let roles = start_roles(
        &redactions,
        &settings,
        local,
        &fingerprint,
        environment_uuid.as_deref(),
        &mqtt,
        alerts,
    );
    let (restart_tx, restart_rx) = unbounded::<usize>();
    let (tunnel, tunnel_rx) = start_remote_access(
        &settings,
        local,
        &fingerprint,
        roles.engine.clone(),
        redactions,
    )?;
    let events = RoleEvents {
        runtime: roles.runtime_rx,
        prep: roles.prep,
        worker_files: roles.worker_files,
        flushed: restart_rx,
        tunnel: tunnel_rx,
    };
    let state = State {
        engine: roles.engine,
        alert_stats,
        started: Instant::now(),
        started_at: SystemTime::now(),
        fingerprint,
        environment,
        edge_uuid: None,
        backend: Default::default(),
        desired: None,
        linked_broad: Vec::new(),
        mqtt,
        link,
        commands: Default::default(),
        health: None,
        drivers: roles.drivers,
        data: DataBus {
            bus: roles.bus,
            stalls: Default::default(),
            stall_after: data::stall_after(&settings.env),
        },
        worker: roles.worker,
        worker_mqtt: roles.worker_mqtt,
        twin_sync: Default::default(),
        restart: Default::default(),
        restart_waits_on: Vec::new(),
        restart_tx,
        node: None,
        will_edge_uuid: will_uuid,
        link_events: link_tx.clone(),
        runtime: roles.runtime,
        tunnel,
        portal: start_portal(&settings),
        network_lines: Default::default(),
        local,
        settings,
        token_needs_sent: None,
    };
    Ok((state, events))
}

/// The local portal when it is switched on; a bad setting or a busy port is logged and the
/// daemon runs on without it (as the original).
fn start_portal(settings: &Settings) -> Option<crate::remote_access::portal::Portal> {
    use crate::remote_access::portal;
    let s = match portal::settings(&settings.env) {
        Ok(Some(s)) => s,
        Ok(None) => return None,
        Err(e) => {
            log::warn!("edge local portal not started: {e}");
            return None;
        }
    };
    portal::Portal::start(&s)
        .map_err(|e| log::warn!("edge local portal not started on {}: {e}", s.bind))
        .ok()
}

/// The remote-access thread (not in local mode: no backend) and its role on the supervisor.
fn start_remote_access(
    settings: &Settings,
    local: bool,
    fingerprint: &str,
    engine: Arc<dyn crate::engine::Engine>,
    redactions: crate::remote_access::Redactions,
) -> Result<
    (
        crate::remote_access::Tunnel,
        Receiver<crate::remote_access::TunnelEvent>,
    ),
    DaemonError,
> {
    use crate::remote_access::{AgentConfig, Tunnel, files::Files, settings::RemoteSettings};
    let view = Arc::new(std::sync::Mutex::new(Default::default()));
    let (events_tx, events) = unbounded();
    if local {
        return Ok((Tunnel::new(None, engine, view), events));
    }
    let (ctl, ctl_rx) = unbounded();
    let cfg = AgentConfig {
        backend: Backend::new(settings),
        settings: RemoteSettings::from_env(&settings.env),
        files: Files {
            config_dir: settings.config_dir.clone(),
        },
        engine: engine.clone(),
        owner: fingerprint.to_string(),
        log_caps: settings.docker_log_caps(),
        ssh_dir: "/etc/ssh".into(),
        passwd: "/etc/passwd".into(),
        redactions,
    };
    if let Err(e) = &cfg.settings.relay {
        log::warn!("remote access: {e}; open_tunnel commands will be refused");
    }
    let agent_view = view.clone();
    thread_named("remote-access", move || {
        crate::remote_access::agent::run(cfg, ctl_rx, events_tx, agent_view)
    })?;
    Ok((Tunnel::new(Some(ctl), engine, view), events))
}

/// The first desired state: the manifest, else what the backend said last time (offline
/// first); and the edge uuid a previous run registered.
fn start_desired(state: &mut State, manifest: Option<Manifest>) {
    state.update_router();
    if let Some(m) = manifest {
        state.apply_desired(m.into_desired());
    } else if let Some(env_uuid) = state.environment_uuid() {
        match desired::load(&state.settings.config_dir, &env_uuid) {
            Ok(Some(cached)) => state.apply_desired(cached),
            Ok(None) => {}
            Err(e) => {
                log::warn!("{e}; waiting for the backend");
                state.record_error(e.to_string());
            }
        }
    }
    if !state.local
        && let Some(uuid) = config::edge_uuid(&state.settings.config_dir)
    {
        state.set_edge_uuid(uuid);
    }
}

/// Twin files in sync with the backend, on their own thread (not in local mode).
fn start_twin_sync(
    state: &mut State,
) -> Result<Receiver<crate::twinsync::run::Pulled>, DaemonError> {
    let (pulled_tx, pulled) = unbounded();
    if state.local {
        return Ok(pulled);
    }
    let (tx, rx) = unbounded();
    let (dir, backend, shared) = (
        state.settings.config_dir.clone(),
        Backend::new(&state.settings),
        state.twin_sync.shared.clone(),
    );
    thread_named("twin-sync", move || {
        crate::twinsync::run::run(dir, backend, rx, shared, TICK, pulled_tx)
    })?;
    let _ = tx.send(crate::twinsync::run::SyncCtl::Environment(
        state.environment_uuid(),
    ));
    state.twin_sync.tx = Some(tx);
    state.track_twins();
    Ok(pulled)
}

/// Camera pins (cameras.json, edge.json) re-read when they change (reference §5.12).
fn start_camera_watch(state: &State) -> Result<Receiver<crate::watch::Changed>, DaemonError> {
    let (tx, rx) = unbounded();
    let dir = state.settings.config_dir.clone();
    thread_named("camera-watch", move || {
        crate::watch::run(dir, Duration::from_millis(300), camera_file, tx)
    })?;
    Ok(rx)
}

/// Host saturation (reference §11.2), sampled on its own thread (not in local mode).
fn start_saturation(
    state: &State,
) -> Result<
    (
        Sender<()>,
        Receiver<crate::health::saturation::SaturationEvent>,
    ),
    DaemonError,
> {
    let (tx, rx) = unbounded();
    let (stop, stop_rx) = crossbeam_channel::bounded::<()>(0);
    if !state.local {
        let cfg = saturation_config(&state.settings, state.engine.clone());
        thread_named("saturation", move || {
            crate::health::saturation::run(cfg, tx, stop_rx)
        })?;
    }
    Ok((stop, rx))
}

/// The backend-jobs thread (registration, keepalive, desired state; not in local mode).
fn start_backend_jobs(
    state: &State,
) -> Result<(Receiver<BackendEvent>, Sender<JobCtl>), DaemonError> {
    let (job_tx, job_rx) = unbounded::<BackendEvent>();
    let (jobctl_tx, jobctl_rx) = unbounded::<JobCtl>();
    if state.local {
        return Ok((job_rx, jobctl_tx));
    }
    let cfg = JobConfig {
        backend: Backend::new(&state.settings),
        fingerprint: state.fingerprint.clone(),
        environment_uuid: state.environment_uuid(),
        config_dir: state.settings.config_dir.clone(),
        battery_wh: state.settings.battery_wh,
        watchdog_layers: watchdog_layers(),
        edge_json_every: edge_json_every(&state.settings),
        tokens: state.drivers.ctx.tokens.settings.clone(),
        engine: state.engine.clone(),
    };
    thread_named("backend-jobs", move || {
        backend_job::run(cfg, job_tx, jobctl_rx)
    })?;
    Ok((job_rx, jobctl_tx))
}
