//! The daemon: boot, then the supervisor loop that owns all state. Other threads (signals,
//! MQTT link, backend jobs, health publisher, control socket) send it events; it decides.

mod backend_job;
mod boot;
pub mod commands;
mod data;
pub mod desired;
mod handlers;
pub mod manifest;
mod network;
pub mod node;
mod report;
mod restart;
mod startup;
mod state;

use self::boot::{
    Signal, edge_json_every, load_environment, protect_from_oom, remove_crash_leftovers,
    saturation_config, spawn_signals, watchdog_layers, worker_context, worker_tuning,
};
use self::handlers::{on_backend, on_link, reload};
use self::state::{State, TokenState};

use std::collections::VecDeque;
use std::fmt;
use std::path::PathBuf;
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{Sender, after, never, select, tick, unbounded};

use self::backend_job::{BackendEvent, JobConfig, JobCtl};
use self::commands::Dedupe;
use crate::backend::Backend;
use crate::config::{self, EnvLayer, EnvironmentFile, Settings, SettingsError};
use crate::containers::runtime::{Runtime, Setup};
use crate::control::{self, ControlRequest, Request};
use crate::drivers::runtime::Drivers;
use crate::mqtt::{Link, LinkEvent, MqttHandle};
use crate::systemd::Notifier;

/// The files camera pins come from (reference §4.7).
fn camera_file(name: &str) -> bool {
    name == "cameras.json" || name == config::EDGE_FILE
}

/// Supervisor tick: watchdog ping and housekeeping (the original's runtime loop interval).
pub const TICK: Duration = Duration::from_secs(15);
/// How long shutdown waits for the MQTT DISCONNECT to go out.
const MQTT_SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// Why the daemon stopped with an error; each maps to an exit code in the binary.
#[derive(Debug)]
pub enum DaemonError {
    /// Missing or unusable configuration (exit 2).
    Settings(SettingsError),
    /// The backend rejected the token at boot (exit 2).
    TokenRejected(String),
    /// Could not set up the process (socket, threads; exit 1).
    Startup(String),
}

impl fmt::Display for DaemonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DaemonError::Settings(e) => write!(f, "{e}"),
            DaemonError::TokenRejected(e) => write!(f, "{e}"),
            DaemonError::Startup(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for DaemonError {}

impl DaemonError {
    pub fn exit_code(&self) -> i32 {
        match self {
            DaemonError::Settings(_) | DaemonError::TokenRejected(_) => 2,
            DaemonError::Startup(_) => 1,
        }
    }
}

/// Reads configuration the way the daemon and `status` both need it.
pub fn load_settings() -> Result<(Settings, Vec<String>), SettingsError> {
    let env = EnvLayer::from_process();
    let (dir, overridden) = config::resolve_config_dir(&|k| env.process(k));
    Settings::load(dir, overridden, &env)
}

/// The link, with a last will that marks this edge OFFLINE when it knows its edge uuid.
fn start_link(
    settings: &Settings,
    events: &Sender<LinkEvent>,
    will: Option<(String, Vec<u8>)>,
) -> Result<Link, DaemonError> {
    Link::start_with_will(
        &settings.mqtt,
        crate::mqtt::new_client_id(),
        settings.mqtt_outbox,
        events.clone(),
        will,
    )
    .map_err(|e| DaemonError::Startup(e.to_string()))
}

/// The last will for `edge_uuid`: OFFLINE, retained.
fn will_for(settings: &Settings, edge_uuid: &str, fingerprint: &str) -> (String, Vec<u8>) {
    (
        node::topic(&settings.mqtt.topic_prefix, edge_uuid),
        node::payload("OFFLINE", Some("connection lost"), edge_uuid, fingerprint)
            .to_string()
            .into_bytes(),
    )
}

/// How the daemon gets its desired state.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RunOptions {
    /// `run --local FILE`: a manifest of twins instead of the backend and broker.
    pub local_manifest: Option<PathBuf>,
}

/// Runs the daemon until SIGTERM/SIGINT. Returns Ok on a clean shutdown.
pub fn run(opts: RunOptions) -> Result<(), DaemonError> {
    // Files we create without an explicit mode are private (the original's umask 077).
    unsafe { libc::umask(0o077) };
    let local = opts.local_manifest.is_some();
    let env = EnvLayer::from_process();
    let (config_dir, overridden) = config::resolve_config_dir(&|k| env.process(k));
    if !overridden && !local {
        match config::migrate_legacy(&config_dir, std::path::Path::new(config::LEGACY_CONFIG_DIR)) {
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
        Settings::load_local(config_dir, overridden, &env)
    } else {
        Settings::load(config_dir, overridden, &env)
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
    if local {
        log::info!(
            "cyberwave-edge-core {} starting in local mode: manifest {}, config dir {} (no backend, no broker)",
            crate::VERSION,
            opts.local_manifest
                .as_deref()
                .unwrap_or(std::path::Path::new("-"))
                .display(),
            settings.config_dir.display()
        );
    } else {
        log::info!(
            "cyberwave-edge-core {} starting: config dir {}, backend {}, environment {}, token {}",
            crate::VERSION,
            settings.config_dir.display(),
            settings.base_url,
            settings.environment,
            settings.token
        );
    }

    let fingerprint = crate::host::edge_fingerprint(&settings)
        .map_err(|e| DaemonError::Startup(format!("edge fingerprint unavailable: {e}")))?;
    log::info!("edge fingerprint {fingerprint}");

    let environment = match &manifest {
        Some(m) => Ok(EnvironmentFile {
            uuid: Some(m.environment_uuid.clone()),
            name: Some("local".into()),
            twin_uuids: None,
        }),
        None => boot::load_environment_at_boot(&settings),
    };
    if let Err(e) = &environment {
        log::error!(
            "{e}; this edge runs without a linked environment until the file is fixed (then send SIGHUP)"
        );
    }

    let (control_tx, mut control_rx) = unbounded::<ControlRequest>();
    let _socket = control::serve(&settings.control_socket, control_tx)
        .map_err(|e| DaemonError::Startup(e.to_string()))?;
    // The only daemon now: clear what a crash left (temp files; env files holding the token).
    remove_crash_leftovers(&settings.config_dir);
    let signals = spawn_signals()?;
    let (link_tx, mut link_rx) = unbounded::<LinkEvent>();
    let mut will_uuid = None;
    let (link, mqtt) = if local {
        (None, MqttHandle::detached(&settings.mqtt.topic_prefix))
    } else {
        will_uuid = config::edge_uuid(&settings.config_dir);
        let will = will_uuid
            .as_deref()
            .map(|u| will_for(&settings, u, &fingerprint));
        let link = start_link(&settings, &link_tx, will)?;
        let h = link.handle();
        (Some(link), h)
    };

    // Alerts: a durable outbox delivered by its own thread (none in local mode).
    let environment_uuid = environment.as_ref().ok().and_then(|e| e.uuid.clone());
    let alert_stats = std::sync::Arc::new(crate::alerts::AlertStats::default());
    let alert_tx = if local {
        None
    } else {
        let (tx, rx) = unbounded();
        let backend = Backend::new(&settings);
        let dir = settings.config_dir.clone();
        let stats = alert_stats.clone();
        thread::Builder::new()
            .name("alerts".into())
            .spawn(move || crate::alerts::run(dir, backend, rx, &stats))
            .map_err(|e| DaemonError::Startup(format!("cannot start the alerts thread: {e}")))?;
        Some(tx)
    };
    let alerts =
        crate::alerts::AlertSink::new(alert_tx, environment_uuid, settings.workspace_id.clone());
    let worker_alerts = alerts.clone();
    // One container runtime for every role; drivers are its first.
    let tuning = crate::drivers::settings::driver_tuning(&settings);
    let engine = crate::containers::engine::open(
        &settings.docker_bin,
        tuning.create_timeout,
        tuning.remove_timeout,
    );
    let (mut runtime, mut runtime_rx) = Runtime::start(Setup {
        engine: engine.clone(),
        config_dir: settings.config_dir.clone(),
        owner: fingerprint.clone(),
        tuning: tuning.runtime.clone(),
    });
    let (drivers, driver_role) = Drivers::new(
        crate::drivers::settings::launch_context(&settings, &fingerprint),
        engine.clone(),
        &tuning,
        (!local).then(|| mqtt.clone()),
        alerts,
    );
    runtime.add_role(driver_role);
    // The ML worker is the runtime's second role.
    let environment_uuid = environment.as_ref().ok().and_then(|e| e.uuid.clone());
    let worker_mqtt = crate::mqtt::SharedHandle::new((!local).then(|| mqtt.clone()));
    let worker_parts = crate::worker::runtime::Worker::start(
        settings.config_dir.clone(),
        worker_context(&settings, environment_uuid.as_deref(), &fingerprint),
        worker_tuning(&settings),
        (!local).then(|| Backend::new(&settings)),
        worker_mqtt.clone(),
        worker_alerts,
    );
    runtime.add_role(worker_parts.role);
    // The data bus: the daemon's session (and embedded router), the router container role.
    let bus = crate::bus::Bus::start(
        crate::bus::BusSettings::from_env(&settings.env),
        &crate::host::hostname(),
    );
    runtime.add_role(crate::bus::router::role());
    let (mut prep_rx, mut watch_rx) = (worker_parts.prep, worker_parts.watch);

    let (restart_tx, mut restart_rx) = unbounded::<usize>();
    let mut state = State {
        engine,
        alert_stats,
        started: Instant::now(),
        started_at: SystemTime::now(),
        fingerprint: fingerprint.clone(),
        environment,
        edge_uuid: None,
        registered: false,
        token: TokenState::Unknown,
        backend_reachable: None,
        backend_latency_ms: None,
        backend_last_ok: None,
        desired: None,
        linked_broad: Vec::new(),
        mqtt,
        link,
        command_topic: None,
        dedupe: Dedupe::new(1024),
        commands_received: 0,
        last_command: None,
        health: None,
        errors: VecDeque::new(),
        drivers,
        data_stall_after: data::stall_after(&settings.env),
        bus,
        stalls: Default::default(),
        worker: worker_parts.worker,
        worker_mqtt,
        twin_topics: std::collections::BTreeMap::new(),
        twin_dedupe: Dedupe::new(1024),
        twin_sync: None,
        twin_sync_state: Default::default(),
        restart: Default::default(),
        restart_tx,
        node: None,
        will_edge_uuid: will_uuid,
        link_events: link_tx.clone(),
        runtime,
        network_lines: Default::default(),
        local,
        settings,
    };
    state.update_router();
    if let Some(m) = manifest {
        state.apply_desired(m.into_desired());
    } else if let Some(env_uuid) = state.environment_uuid() {
        // Offline first: what did the backend say last time?
        match desired::load(&state.settings.config_dir, &env_uuid) {
            Ok(Some(cached)) => state.apply_desired(cached),
            Ok(None) => {}
            Err(e) => {
                log::warn!("{e}; waiting for the backend");
                state.record_error(e.to_string());
            }
        }
    }
    if !local && let Some(uuid) = config::edge_uuid(&state.settings.config_dir) {
        state.set_edge_uuid(uuid);
    }

    // Twin files in sync with the backend, on their own thread (not in local mode).
    let (pulled_tx, mut pulled_rx) = unbounded::<crate::twinsync::run::Pulled>();
    if !local {
        let (tx, rx) = unbounded();
        let (dir, backend, shared) = (
            state.settings.config_dir.clone(),
            Backend::new(&state.settings),
            state.twin_sync_state.clone(),
        );
        thread::Builder::new()
            .name("twin-sync".into())
            .spawn(move || crate::twinsync::run::run(dir, backend, rx, shared, TICK, pulled_tx))
            .map_err(|e| DaemonError::Startup(format!("cannot start the twin-sync thread: {e}")))?;
        let _ = tx.send(crate::twinsync::run::SyncCtl::Environment(
            state.environment_uuid(),
        ));
        state.twin_sync = Some(tx);
        state.track_twins();
    }

    // Camera pins (cameras.json, edge.json) re-read when they change (reference §5.12).
    let (camera_tx, mut camera_rx) = unbounded::<crate::watch::Changed>();
    {
        let dir = state.settings.config_dir.clone();
        thread::Builder::new()
            .name("camera-watch".into())
            .spawn(move || {
                crate::watch::run(dir, Duration::from_millis(300), camera_file, camera_tx)
            })
            .map_err(|e| DaemonError::Startup(format!("cannot start the camera watch: {e}")))?;
    }

    // Host saturation (reference §11.2), sampled on its own thread.
    let (saturation_tx, mut saturation_rx) =
        unbounded::<crate::health::saturation::SaturationEvent>();
    let (_saturation_stop, saturation_stop_rx) = crossbeam_channel::bounded::<()>(0);
    if !local {
        let cfg = saturation_config(&state.settings, state.engine.clone());
        thread::Builder::new()
            .name("saturation".into())
            .spawn(move || crate::health::saturation::run(cfg, saturation_tx, saturation_stop_rx))
            .map_err(|e| {
                DaemonError::Startup(format!("cannot start the saturation monitor: {e}"))
            })?;
    } else {
        drop(saturation_tx);
    }

    // Start-up is done: arm the hardware watchdog (not for a local-mode demo).
    let mut hardware = if local {
        None
    } else {
        crate::watchdog::Hardware::from_settings(
            env.process("CYBERWAVE_HARDWARE_WATCHDOG").as_deref(),
            env.process("CYBERWAVE_HARDWARE_WATCHDOG_DEVICE").as_deref(),
        )
    };
    let (job_tx, mut job_rx) = unbounded::<BackendEvent>();
    let (jobctl_tx, jobctl_rx) = unbounded::<JobCtl>();
    if !local {
        let job_cfg = JobConfig {
            backend: Backend::new(&state.settings),
            fingerprint,
            environment_uuid: state.environment_uuid(),
            config_dir: state.settings.config_dir.clone(),
            battery_wh: state.settings.battery_wh,
            watchdog_layers: watchdog_layers(),
            edge_json_every: edge_json_every(&state.settings),
        };
        thread::Builder::new()
            .name("backend-jobs".into())
            .spawn(move || backend_job::run(job_cfg, job_tx, jobctl_rx))
            .map_err(|e| DaemonError::Startup(format!("cannot start the backend thread: {e}")))?;
    } else {
        drop(jobctl_rx);
        drop(job_tx);
    }

    let notifier = Notifier::from_env();
    notifier.ready();
    notifier.status("Running");
    log::info!("edge core running (pid {})", std::process::id());

    // The original's startup report on stdout, filled in as the steps are known.
    let mut report = (!local).then(|| startup::begin(&state));
    let ticker = tick(TICK);
    // Data stalls are looked for every second when their alert is on.
    let data_ticker = match state.data_stall_after {
        Some(_) => tick(Duration::from_secs(1)),
        None => never(),
    };
    let outcome = loop {
        if let Some(r) = report.as_mut()
            && !startup::observe(r, &state)
        {
            report = None;
        }
        let due = [
            state.runtime.next_deadline(),
            state.worker.next_deadline(),
            state.drivers.next_deadline(),
        ]
        .into_iter()
        .flatten()
        .min();
        let deadline = due
            .map(|d| d.saturating_duration_since(Instant::now()))
            .map(after)
            .unwrap_or_else(never);
        select! {
            recv(deadline) -> _ => {
                state.runtime.on_deadline();
                state.worker.on_deadline(&mut state.runtime);
                state.drivers.check_meta_restarts(&mut state.runtime);
                state.drivers.check_devices();
            },
            recv(data_ticker) -> _ => state.check_data_stalls(),
            recv(saturation_rx) -> ev => match ev {
                Ok(ev) => state.drivers.on_saturation(ev),
                Err(_) => saturation_rx = never(),
            },
            recv(camera_rx) -> ev => match ev {
                Ok(_) => state.on_cameras_changed(),
                Err(_) => camera_rx = never(),
            },
            recv(pulled_rx) -> p => match p {
                Ok(p) => state.on_pulled(p),
                Err(_) => pulled_rx = never(),
            },
            recv(restart_rx) -> n => match n {
                Ok(n) => restart::flushed(&mut state, n, &jobctl_tx),
                Err(_) => restart_rx = never(),
            },
            recv(prep_rx) -> ev => match ev {
                Ok(ev) => state.worker.on_prep(ev, &mut state.runtime),
                Err(_) => prep_rx = never(),
            },
            recv(watch_rx) -> ev => match ev {
                Ok(crate::watch::Changed(sig)) => state.worker.on_files(sig, &mut state.runtime),
                Err(_) => watch_rx = never(),
            },
            recv(signals) -> sig => match sig {
                Ok(Signal::Shutdown(n)) => {
                    log::info!("signal {n}: shutting down (driver containers keep running)");
                    break Ok(());
                }
                Ok(Signal::Reload) if !local => reload(&mut state, &link_tx, &jobctl_tx),
                Ok(Signal::Reload) => log::info!("SIGHUP: nothing to reload in local mode"),
                Err(_) => break Err(DaemonError::Startup("signal thread ended".into())),
            },
            // A channel whose senders are gone is replaced by `never()`: a closed channel is
            // always ready and would turn this loop into a busy one.
            recv(job_rx) -> ev => match ev {
                Ok(ev) => {
                    if let Some(r) = report.as_mut() {
                        startup::on_backend(r, &ev, &state);
                    }
                    if let Err(e) = on_backend(&mut state, ev, &jobctl_tx) {
                        break Err(e);
                    }
                }
                Err(_) => job_rx = never(),
            },
            recv(link_rx) -> ev => match ev {
                Ok(ev) => {
                    if let Some(r) = report.as_mut() {
                        startup::on_link(r, &ev);
                    }
                    on_link(&mut state, ev, &jobctl_tx)
                }
                Err(_) => link_rx = never(),
            },
            recv(runtime_rx) -> ev => match ev {
                Ok(ev) => {
                    state.drivers.on_event(&ev);
                    let nvidia = match &ev {
                        crate::containers::runtime::RuntimeEvent::Exec(
                            crate::containers::executor::ExecEvent::Runtimes { nvidia, .. },
                        ) => Some(*nvidia),
                        _ => None,
                    };
                    state.runtime.on_event(ev);
                    if let Some(n) = nvidia {
                        state.worker.set_nvidia(n, &mut state.runtime);
                    }
                    state.worker.after_runtime_event(&mut state.runtime);
                    state.stop_health_once_drivers_run();
                    restart::check(&mut state, &jobctl_tx);
                    state.update_node();
                }
                Err(_) => runtime_rx = never(),
            },
            recv(control_rx) -> req => match req {
                Ok(req) => match req.request {
                    Request::Status => {
                        let _ = req.reply.send(state.snapshot());
                    }
                    Request::Worker(verb) => {
                        let answer = state.worker.control(&verb, &mut state.runtime);
                        let _ = req.reply.send(answer);
                    }
                },
                Err(_) => control_rx = never(),
            },
            recv(ticker) -> _ => {
                notifier.watchdog();
                if let Some(h) = hardware.as_mut() {
                    h.feed();
                }
                state.runtime.tick();
                state.worker.tick(&mut state.runtime);
                state.drivers.check_meta_restarts(&mut state.runtime);
                restart::check(&mut state, &jobctl_tx);
                state.update_node();
            },
        }
    };

    notifier.stopping();
    drop(hardware.take()); // the magic close, before we say OFFLINE
    state.publish_node_offline("stopped");
    state.runtime.shutdown();
    if let Some(h) = state.health.take() {
        h.stop();
    }
    if let Some(link) = state.link.take() {
        link.shutdown(MQTT_SHUTDOWN_GRACE);
    }
    log::info!("edge core stopped");
    outcome
}
