//! The daemon: boot, then the supervisor loop that owns all state. Other threads (signals,
//! MQTT link, backend jobs, health publisher, control socket) send it events; it decides.

mod backend_job;
pub mod commands;
pub mod desired;
pub mod manifest;

use std::collections::VecDeque;
use std::fmt;
use std::path::PathBuf;
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{Receiver, Sender, after, bounded, never, select, tick, unbounded};
use serde_json::{Value, json};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use self::backend_job::{BackendEvent, JobConfig, JobCtl};
use self::commands::{Dedupe, EdgeCommand};
use self::desired::{DesiredState, Source};
use crate::backend::{Backend, linked_twins_broad, linked_twins_strict};
use crate::config::{self, EnvLayer, EnvironmentFile, Settings, SettingsError};
use crate::control::{self, ControlRequest, Request};
use crate::drivers::plan_twins;
use crate::drivers::runtime::Drivers;
use crate::health::{HealthConfig, HealthPublisher};
use crate::mqtt::{Link, LinkEvent, MqttHandle, topics};
use crate::systemd::Notifier;

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

enum Signal {
    Shutdown(i32),
    Reload,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum TokenState {
    Unknown,
    Valid,
    Rejected,
}

impl TokenState {
    fn name(self) -> &'static str {
        match self {
            TokenState::Unknown => "unknown",
            TokenState::Valid => "valid",
            TokenState::Rejected => "rejected",
        }
    }
}

/// Everything the supervisor knows. Only the supervisor thread touches it.
struct State {
    settings: Settings,
    started: Instant,
    started_at: SystemTime,
    fingerprint: String,
    environment: Result<EnvironmentFile, String>,
    edge_uuid: Option<String>,
    registered: bool,
    token: TokenState,
    backend_reachable: Option<bool>,
    backend_latency_ms: Option<u64>,
    backend_last_ok: Option<SystemTime>,
    desired: Option<DesiredState>,
    linked_broad: Vec<String>,
    mqtt: MqttHandle,
    link: Option<Link>,
    command_topic: Option<String>,
    dedupe: Dedupe,
    commands_received: u64,
    last_command: Option<Value>,
    health: Option<HealthPublisher>,
    errors: VecDeque<(SystemTime, String)>,
    drivers: Drivers,
    /// `run --local`: no backend, no broker.
    local: bool,
}

impl State {
    fn record_error(&mut self, message: String) {
        if self.errors.back().is_some_and(|(_, m)| *m == message) {
            return;
        }
        if self.errors.len() >= 10 {
            self.errors.pop_front();
        }
        self.errors.push_back((SystemTime::now(), message));
    }

    fn environment_uuid(&self) -> Option<String> {
        self.environment.as_ref().ok().and_then(|e| e.uuid.clone())
    }

    /// Applies a desired state (from backend or cache): recompute linked twins, feed health.
    fn apply_desired(&mut self, state: DesiredState) {
        let broad = linked_twins_broad(&state.twins, &self.fingerprint);
        let strict = linked_twins_strict(&state.twins, &self.fingerprint);
        log::info!(
            "environment {}: {} twin(s), {} linked to this edge ({} by the driver rule) [{}]",
            state.environment_uuid,
            state.twins.len(),
            broad.len(),
            strict.len(),
            match state.source {
                Source::Backend => "backend",
                Source::Cache if self.local => "local manifest",
                Source::Cache => "cache",
            }
        );
        let linked = if self.local {
            state
                .twins
                .iter()
                .filter_map(|t| {
                    t.get("uuid")
                        .and_then(Value::as_str)
                        .and_then(config::parse_uuid)
                })
                .collect()
        } else {
            strict
        };
        let plans = plan_twins(&state.twins, &state.assets, &linked, &self.drivers.ctx);
        self.drivers.set_plans(plans);
        self.linked_broad = broad;
        self.desired = Some(state);
        self.ensure_health();
    }

    /// The bootstrap publisher only bridges the time until drivers publish their own health.
    fn stop_health_once_drivers_run(&mut self) {
        if self.drivers.any_running()
            && let Some(h) = self.health.take()
        {
            log::info!("a driver is running: stopping the bootstrap edge_health publisher");
            h.stop();
        }
    }

    /// Starts the bootstrap health publisher for the linked twins (or updates its twin set).
    fn ensure_health(&mut self) {
        if self.linked_broad.is_empty() || self.local || self.drivers.any_running() {
            return;
        }
        match &self.health {
            Some(h) => h.set_twins(self.linked_broad.clone()),
            None => {
                let cfg = HealthConfig {
                    edge_id: self.fingerprint.clone(),
                    interval: self.settings.health_interval,
                    docker_bin: self.settings.docker_bin.clone(),
                    battery_wh: self.settings.battery_wh,
                    watchdog_layers: watchdog_layers(),
                };
                match HealthPublisher::start(self.mqtt.clone(), cfg, self.linked_broad.clone()) {
                    Ok(h) => {
                        log::info!(
                            "edge_health publisher started for {} twin(s), every {:.1}s",
                            self.linked_broad.len(),
                            self.settings.health_interval.as_secs_f64()
                        );
                        self.health = Some(h);
                    }
                    Err(e) => {
                        self.record_error(format!("cannot start the edge_health publisher: {e}"))
                    }
                }
            }
        }
    }

    fn set_edge_uuid(&mut self, uuid: String) {
        if self.edge_uuid.as_deref() == Some(uuid.as_str()) && self.command_topic.is_some() {
            return;
        }
        let topic = topics::edge_command(self.mqtt.prefix(), &uuid);
        if let Some(old) = self.command_topic.take()
            && old != topic
        {
            self.mqtt.unsubscribe(&old);
        }
        self.mqtt.subscribe(&topic);
        log::info!("listening for edge commands on {topic}");
        self.command_topic = Some(topic);
        self.edge_uuid = Some(uuid);
    }

    fn snapshot(&self) -> Value {
        let stats = self.mqtt.stats();
        use std::sync::atomic::Ordering::Relaxed;
        let last_error = stats.last_error.lock().ok().and_then(|e| e.clone());
        let connected_since = stats
            .connected_since
            .lock()
            .ok()
            .and_then(|t| *t)
            .map(crate::epoch_of);
        json!({
            "daemon": {
                "pid": std::process::id(),
                "version": crate::VERSION,
                "started_at": crate::epoch_of(self.started_at),
                "uptime_seconds": (self.started.elapsed().as_secs_f64() * 10.0).round() / 10.0,
            },
            "config_dir": self.settings.config_dir,
            "fingerprint": self.fingerprint,
            "edge_uuid": self.edge_uuid,
            "environment": match &self.environment {
                Ok(e) => json!({"uuid": e.uuid, "problem": null}),
                Err(p) => json!({"uuid": null, "problem": p}),
            },
            "backend": {
                "url": self.settings.base_url,
                "token": self.token.name(),
                "reachable": self.backend_reachable,
                "latency_ms": self.backend_latency_ms,
                "last_ok_at": self.backend_last_ok.map(crate::epoch_of),
                "registered": self.registered,
            },
            "mqtt": {
                "broker": format!("{}:{}", self.settings.mqtt.host, self.settings.mqtt.port),
                "tls": self.settings.mqtt.tls,
                "username": self.settings.mqtt.username,
                "topic_prefix": self.settings.mqtt.topic_prefix,
                "session_id": self.mqtt.session_id(),
                "connected": self.mqtt.is_connected(),
                "connected_since": connected_since,
                "connects": stats.connects.load(Relaxed),
                "published": stats.published.load(Relaxed),
                "dropped": stats.dropped.load(Relaxed),
                "received": stats.received.load(Relaxed),
                "last_error": last_error,
                "command_topic": self.command_topic,
                "commands_received": self.commands_received,
                "last_command": self.last_command,
            },
            "twins": {
                "linked": self.linked_broad,
                "source": self.desired.as_ref().map(|d| match d.source { Source::Backend => "backend", Source::Cache => "cache" }),
                "fetched_at": self.desired.as_ref().map(|d| d.fetched_at),
            },
            "mode": if self.local { "local" } else { "cloud" },
            "drivers": self.drivers.snapshot(),
            "health_publisher": {
                "running": self.health.is_some(),
                "interval_seconds": self.settings.health_interval.as_secs_f64(),
            },
            "last_errors": self.errors.iter().map(|(t, m)| json!({"at": crate::epoch_of(*t), "message": m})).collect::<Vec<_>>(),
        })
    }
}

/// `["systemd"]` when systemd supervises us with a watchdog.
fn watchdog_layers() -> Vec<&'static str> {
    if std::env::var_os("WATCHDOG_USEC").is_some() && std::env::var_os("NOTIFY_SOCKET").is_some() {
        vec!["systemd"]
    } else {
        Vec::new()
    }
}

/// Temp files of interrupted atomic writes, and env files of interrupted launches.
fn remove_crash_leftovers(config_dir: &std::path::Path) {
    let old = Duration::from_secs(60);
    let run = config_dir.join("run");
    let mut n = crate::fsutil::remove_stale_temps(config_dir, old)
        + crate::fsutil::remove_stale_temps(&run, old);
    for e in std::fs::read_dir(&run).into_iter().flatten().flatten() {
        if e.path().extension().is_some_and(|x| x == "env")
            && std::fs::remove_file(e.path()).is_ok()
        {
            n += 1;
        }
    }
    if n > 0 {
        log::info!("removed {n} file(s) left by an interrupted run");
    }
}

/// Reads configuration the way the daemon and `status` both need it.
pub fn load_settings() -> Result<(Settings, Vec<String>), SettingsError> {
    let env = EnvLayer::from_process();
    let (dir, overridden) = config::resolve_config_dir(&|k| env.process(k));
    Settings::load(dir, overridden, &env)
}

fn load_environment(settings: &Settings) -> Result<EnvironmentFile, String> {
    EnvironmentFile::load(&settings.config_dir.join(config::ENVIRONMENT_FILE))
        .map_err(|e| e.to_string())
}

fn start_link(settings: &Settings, events: &Sender<LinkEvent>) -> Result<Link, DaemonError> {
    Link::start(
        &settings.mqtt,
        crate::mqtt::new_client_id(),
        settings.mqtt_outbox,
        events.clone(),
    )
    .map_err(|e| DaemonError::Startup(e.to_string()))
}

fn spawn_signals() -> Result<Receiver<Signal>, DaemonError> {
    let mut signals = Signals::new([SIGTERM, SIGINT, SIGHUP])
        .map_err(|e| DaemonError::Startup(format!("cannot install signal handlers: {e}")))?;
    let (tx, rx) = bounded(8);
    thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for sig in signals.forever() {
                let msg = if sig == SIGHUP {
                    Signal::Reload
                } else {
                    Signal::Shutdown(sig)
                };
                if tx.send(msg).is_err() {
                    break;
                }
            }
        })
        .map_err(|e| DaemonError::Startup(format!("cannot start the signal thread: {e}")))?;
    Ok(rx)
}

/// Best effort: make the kernel's OOM killer pick anything before us (as the original).
fn protect_from_oom() {
    if let Err(e) = std::fs::write("/proc/self/oom_score_adj", "-800") {
        log::debug!("oom_score_adj not set: {e}");
    }
}

/// Runs the daemon until SIGTERM/SIGINT. Returns Ok on a clean shutdown.
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

    let fingerprint = config::fingerprint::load_or_create(
        &settings.config_dir,
        settings.edge_uuid_override.as_deref(),
        || {
            let facts = crate::host::identity();
            config::fingerprint::generate(&facts.hostname, &facts.mac, &facts.platform)
        },
    )
    .map_err(|e| DaemonError::Startup(format!("edge fingerprint unavailable: {e}")))?;
    log::info!("edge fingerprint {fingerprint}");

    let environment = match &manifest {
        Some(m) => Ok(EnvironmentFile {
            uuid: Some(m.environment_uuid.clone()),
            name: Some("local".into()),
            twin_uuids: None,
        }),
        None => load_environment(&settings),
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
    let (link, mqtt) = if local {
        (None, MqttHandle::detached(&settings.mqtt.topic_prefix))
    } else {
        let link = start_link(&settings, &link_tx)?;
        let h = link.handle();
        (Some(link), h)
    };

    // Alerts: a durable outbox delivered by its own thread (none in local mode).
    let environment_uuid = environment.as_ref().ok().and_then(|e| e.uuid.clone());
    let alert_tx = if local {
        None
    } else {
        let (tx, rx) = unbounded();
        let backend = Backend::new(&settings);
        let dir = settings.config_dir.clone();
        thread::Builder::new()
            .name("alerts".into())
            .spawn(move || crate::alerts::run(dir, backend, rx))
            .map_err(|e| DaemonError::Startup(format!("cannot start the alerts thread: {e}")))?;
        Some(tx)
    };
    let alerts =
        crate::alerts::AlertSink::new(alert_tx, environment_uuid, settings.workspace_id.clone());
    let (drivers, mut driver_rx) = Drivers::start(
        crate::docker::Docker::new(&settings.docker_bin),
        crate::drivers::settings::launch_context(&settings, &fingerprint),
        crate::drivers::settings::driver_tuning(&settings),
        (!local).then(|| mqtt.clone()),
        alerts,
    );

    let mut state = State {
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
        local,
        settings,
    };
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

    let ticker = tick(TICK);
    let outcome = loop {
        let deadline = state
            .drivers
            .next_deadline()
            .map(|d| d.saturating_duration_since(Instant::now()))
            .map(after)
            .unwrap_or_else(never);
        select! {
            recv(deadline) -> _ => state.drivers.on_deadline(),
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
                    if let Err(e) = on_backend(&mut state, ev) {
                        break Err(e);
                    }
                }
                Err(_) => job_rx = never(),
            },
            recv(link_rx) -> ev => match ev {
                Ok(ev) => on_link(&mut state, ev, &jobctl_tx),
                Err(_) => link_rx = never(),
            },
            recv(driver_rx) -> ev => match ev {
                Ok(ev) => {
                    state.drivers.on_event(ev);
                    state.stop_health_once_drivers_run();
                }
                Err(_) => driver_rx = never(),
            },
            recv(control_rx) -> req => match req {
                Ok(req) => match req.request {
                    Request::Status => {
                        let _ = req.reply.send(state.snapshot());
                    }
                },
                Err(_) => control_rx = never(),
            },
            recv(ticker) -> _ => {
                notifier.watchdog();
                state.drivers.tick();
            },
        }
    };

    notifier.stopping();
    state.drivers.shutdown();
    if let Some(h) = state.health.take() {
        h.stop();
    }
    if let Some(link) = state.link.take() {
        link.shutdown(MQTT_SHUTDOWN_GRACE);
    }
    log::info!("edge core stopped");
    outcome
}

fn on_backend(state: &mut State, ev: BackendEvent) -> Result<(), DaemonError> {
    match ev {
        BackendEvent::TokenValid { latency } => {
            log::info!(
                "token accepted by {} ({} ms)",
                state.settings.base_url,
                latency.as_millis()
            );
            state.token = TokenState::Valid;
            state.backend_reachable = Some(true);
            state.backend_latency_ms = Some(latency.as_millis() as u64);
            state.backend_last_ok = Some(SystemTime::now());
        }
        BackendEvent::TokenRejected { error, during_boot } => {
            state.token = TokenState::Rejected;
            state.backend_reachable = Some(true);
            state.record_error(error.to_string());
            if during_boot {
                return Err(DaemonError::TokenRejected(error.to_string()));
            }
        }
        BackendEvent::CallFailed(e) => {
            if e.is_transient() {
                state.backend_reachable = Some(false);
            }
            state.record_error(e.to_string());
        }
        BackendEvent::Registered(edge) => {
            state.registered = true;
            state.backend_reachable = Some(true);
            state.backend_last_ok = Some(SystemTime::now());
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
            state.backend_reachable = Some(true);
            state.backend_last_ok = Some(SystemTime::now());
            state.apply_desired(d);
        }
        BackendEvent::DiscoverOk { latency } => {
            state.backend_reachable = Some(true);
            state.backend_latency_ms = Some(latency.as_millis() as u64);
            state.backend_last_ok = Some(SystemTime::now());
        }
    }
    Ok(())
}

fn on_link(state: &mut State, ev: LinkEvent, jobctl: &Sender<JobCtl>) {
    match ev {
        LinkEvent::Up => {}
        LinkEvent::Down(e) => state.record_error(format!("MQTT link down: {e}")),
        LinkEvent::Message { topic, payload, .. } => {
            if state.command_topic.as_deref() != Some(topic.as_str()) {
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
                && !state.dedupe.first_time(id)
            {
                log::info!("{topic}: duplicate request_id {id} dropped");
                return;
            }
            state.commands_received += 1;
            state.last_command = Some(json!({
                "command": cmd.name(),
                "request_id": request_id,
                "received_at": crate::epoch_seconds(),
            }));
            match cmd {
                EdgeCommand::RestartEdgeCore { .. } => {
                    log::info!(
                        "remote restart requested: re-registering and refreshing the environment"
                    );
                    let _ = jobctl.send(JobCtl::Resync);
                }
                EdgeCommand::OpenTunnel { session_id }
                | EdgeCommand::CloseTunnel { session_id } => {
                    log::warn!(
                        "{topic}: remote access (session {session_id}) is not supported by this build; ignored"
                    );
                }
                EdgeCommand::Unknown { command, .. } => {
                    log::info!("{topic}: unknown command {command:?} ignored")
                }
            }
        }
    }
}

/// SIGHUP: re-read every file; a bad file keeps the running configuration.
fn reload(state: &mut State, link_tx: &Sender<LinkEvent>, jobctl: &Sender<JobCtl>) {
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
        if let Some(old) = state.link.take() {
            old.shutdown(MQTT_SHUTDOWN_GRACE);
        }
        match start_link(&settings, link_tx) {
            Ok(link) => {
                state.mqtt = link.handle();
                state.drivers.set_mqtt(Some(link.handle()));
                state.link = Some(link);
                if let Some(h) = state.health.take() {
                    h.stop();
                }
                state.command_topic = None;
                if let Some(uuid) = state.edge_uuid.clone() {
                    state.set_edge_uuid(uuid);
                }
            }
            Err(e) => state.record_error(format!("reload: {e}")),
        }
    }
    state.environment = load_environment(&settings);
    if let Err(e) = &state.environment {
        log::error!("{e}");
    }
    let nvidia = state.drivers.ctx.nvidia_default_runtime;
    state.drivers.ctx = crate::drivers::settings::launch_context(&settings, &state.fingerprint);
    state.drivers.ctx.nvidia_default_runtime = nvidia;
    let (env_uuid, workspace) = (state.environment_uuid(), settings.workspace_id.clone());
    state
        .drivers
        .alerts_mut()
        .reconfigure(Backend::new(&settings), env_uuid, workspace);
    state.settings = settings;
    if let Some(d) = state.desired.clone() {
        state.apply_desired(d);
    }
    state.ensure_health();
    let _ = jobctl.send(JobCtl::Reload {
        backend: Box::new(Backend::new(&state.settings)),
        environment_uuid: state.environment_uuid(),
    });
}
