//! The worker role on the container runtime (reference §6, seed 004): one shared ML worker per
//! environment, started once the drivers have settled (or after a bounded wait) and its models
//! are in the cache, stopped when `workers/` holds no `*.py`, reloaded within about a second of
//! an edit, with restart accounting, a circuit breaker, readiness from `worker-status.json`,
//! `worker_health` on MQTT and the original's alerts. Runs on the supervisor thread; waiting
//! work goes to the helper thread (`prep`) and the watch thread (`watch`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, unbounded};
use serde_json::{Value, json};

use super::health::RestartHistory;
use super::policy::{Note, Notes, WorkerHooks, WorkerPolicy};
use super::prep::{ModelsFor, PrepEvent, PrepJob};
use super::settings::WorkerTuning;
use super::spec::{STATUS_FILE, WorkerContext, container_name, worker_spec};
use crate::alerts::{Alert, AlertSink};
use crate::containers::runtime::{RoleSetup, Runtime};
use crate::containers::spec::Role;
use crate::mqtt::SharedHandle;
use crate::watch::{Changed, Signature};

/// How often readiness is checked while the worker starts.
const READINESS_POLL: Duration = Duration::from_secs(1);

/// Where the models stand for the next start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Models {
    Unknown,
    Checking(ModelsFor),
    Ready,
    Failed,
}

/// A worker being watched until it reports `ready` (or fails).
#[derive(Debug, Clone)]
pub(super) struct Starting {
    pub(super) since: Instant,
    pub(super) phase: Option<String>,
    pub(super) misses: u32,
    /// Down states are expected this long (a restart's stop).
    pub(super) grace: Duration,
}

pub struct Worker {
    pub(super) ctx: Option<WorkerContext>,
    pub(super) tuning: WorkerTuning,
    pub(super) alerts: AlertSink,
    pub(super) mqtt: SharedHandle,
    pub(super) jobs: Sender<PrepJob>,
    pub(super) notes: Notes,
    /// Twins the worker serves (alerts, command topics, `CYBERWAVE_TWIN_UUIDS`).
    pub(super) scope: Vec<String>,
    pub(super) files: Signature,
    pub(super) boot: Instant,
    pub(super) drivers_planned: bool,
    pub(super) models: Models,
    pub(super) model_failures: Vec<(String, String)>,
    /// Stopped by `worker stop`: stays stopped until `worker start`.
    pub(super) held: bool,
    pub(super) history: RestartHistory,
    pub(super) starting: Option<Starting>,
    pub(super) ready: bool,
    pub(super) running_since: Option<Instant>,
    pub(super) reload_pending: Option<Instant>,
    pub(super) last_auto_restart: Option<Instant>,
    /// We stop or restart it on purpose: its exit is not spontaneous.
    pub(super) expect_down: bool,
    pub(super) wanted: bool,
    pub(super) ticks: u64,
    pub(super) sync_alerted: BTreeSet<String>,
    pub(super) last_error: Option<String>,
    pub(super) accelerator: &'static str,
    pub(super) breaker_logged: bool,
    pub(super) sync_gate: super::prep::SyncGate,
    /// The first sync's (written, removed, failed twins), for the startup report.
    pub(super) first_sync: Option<(usize, usize, usize)>,
    /// What the engine said of an NVIDIA runtime, until the worker has taken it in.
    pub(super) nvidia_heard: Option<bool>,
}

/// What the worker role hands the supervisor: itself, its runtime role, and the receivers of
/// its helper threads' events.
pub struct WorkerParts {
    pub worker: Worker,
    pub role: RoleSetup,
    pub prep: Receiver<PrepEvent>,
    pub watch: Receiver<Changed>,
}

fn spawn(name: &str, f: impl FnOnce() + Send + 'static) {
    if let Err(e) = std::thread::Builder::new().name(name.into()).spawn(f) {
        log::error!("cannot start thread {name}: {e}");
    }
}

impl Worker {
    /// The role and its threads. `ctx` is `None` until this edge has an environment.
    pub fn start(
        config_dir: PathBuf,
        ctx: Option<WorkerContext>,
        tuning: WorkerTuning,
        backend: Option<crate::backend::Backend>,
        mqtt: SharedHandle,
        alerts: AlertSink,
    ) -> WorkerParts {
        let workers_dir = config_dir.join("workers");
        let (jobs, jobs_rx) = unbounded();
        let (prep_tx, prep) = unbounded();
        let dir = config_dir.clone();
        spawn("worker-prep", move || {
            super::prep::run(dir, backend, jobs_rx, prep_tx)
        });
        let (watch_tx, watch) = unbounded();
        let (wd, settle) = (workers_dir.clone(), tuning.settle);
        spawn("worker-watch", move || {
            crate::watch::run(wd, settle, crate::watch::worker_file, watch_tx)
        });
        let notes: Notes = Arc::new(Mutex::new(Vec::new()));
        let status_file = ctx
            .as_ref()
            .map(|c| c.status_dir.join(STATUS_FILE))
            .unwrap_or_else(|| config_dir.join("run").join(STATUS_FILE));
        let role = RoleSetup {
            role: Role::Worker,
            hooks: Arc::new(WorkerHooks { status_file }),
            policy: Box::new(WorkerPolicy {
                notes: notes.clone(),
            }),
        };
        let worker = Worker {
            accelerator: "cpu",
            ctx,
            tuning,
            alerts,
            mqtt,
            jobs,
            notes,
            scope: Vec::new(),
            files: crate::watch::signature(&workers_dir, crate::watch::worker_file),
            boot: Instant::now(),
            drivers_planned: false,
            models: Models::Unknown,
            model_failures: Vec::new(),
            held: false,
            history: RestartHistory::default(),
            starting: None,
            ready: false,
            running_since: None,
            reload_pending: None,
            last_auto_restart: None,
            expect_down: false,
            wanted: false,
            ticks: 0,
            sync_alerted: BTreeSet::new(),
            last_error: None,
            breaker_logged: false,
            sync_gate: Default::default(),
            first_sync: None,
            nvidia_heard: None,
        };
        WorkerParts {
            worker,
            role,
            prep,
            watch,
        }
    }

    /// The worker is desired now (files, models, drivers settled, not held).
    pub fn wanted_now(&self) -> bool {
        self.wanted
    }

    /// It should run and does not (still starting counts): what degrades the node state.
    pub fn down(&self, runtime: &Runtime) -> bool {
        self.wanted
            && !self.name().is_some_and(|n| {
                !runtime.launching(&n)
                    && runtime
                        .observed_state(&n)
                        .is_some_and(|e| e.state == "running")
            })
    }

    pub fn name(&self) -> Option<String> {
        self.ctx
            .as_ref()
            .map(|c| container_name(&c.environment_uuid))
    }

    /// New settings or environment (SIGHUP): the spec follows at the next reconcile.
    pub fn reconfigure(
        &mut self,
        ctx: Option<WorkerContext>,
        tuning: WorkerTuning,
        backend: Option<crate::backend::Backend>,
        alerts: AlertSink,
    ) {
        let nvidia = self.ctx.as_ref().is_some_and(|c| c.accelerators.nvidia);
        self.ctx = ctx;
        if let Some(c) = &mut self.ctx {
            c.accelerators.nvidia = nvidia;
        }
        self.tuning = tuning;
        self.alerts = alerts;
        let _ = self.jobs.send(PrepJob::Backend(backend.map(Box::new)));
    }

    /// The twins the worker serves; the first sync runs once they are known.
    pub fn set_scope(&mut self, twins: Vec<String>, runtime: &mut Runtime) {
        let first = !self.drivers_planned;
        self.drivers_planned = true;
        if twins != self.scope || first {
            self.scope = twins;
            self.sync_now();
        }
        self.reconcile(runtime);
    }

    /// Twin command topics the worker listens on (§3.8).
    pub fn command_twins(&self) -> &[String] {
        &self.scope
    }

    /// Docker told us whether it has an NVIDIA runtime.
    pub fn set_nvidia(&mut self, nvidia: bool, runtime: &mut Runtime) {
        if let Some(c) = &mut self.ctx
            && c.accelerators.nvidia != nvidia
        {
            c.accelerators.nvidia = nvidia;
            self.reconcile(runtime);
        }
    }

    /// The one decision: should the worker run now? Sets the runtime's desired worker.
    pub fn reconcile(&mut self, runtime: &mut Runtime) {
        let Some(ctx) = &self.ctx else {
            return;
        };
        let name = container_name(&ctx.environment_uuid);
        let observed = runtime.observed_state(&name).map(|e| e.state.clone());
        let running = observed.as_deref() == Some("running");
        if running && self.running_since.is_none() {
            self.running_since = Some(Instant::now());
        } else if !running {
            self.running_since = None;
        }
        let gate = (self.drivers_planned && runtime.settled(Role::Driver))
            || self.boot.elapsed() >= self.tuning.driver_wait;
        let have_files = !self.files.is_empty();
        // A worker already running at boot is adopted without a model check first.
        if running && !self.wanted && self.models == Models::Unknown {
            self.models = Models::Ready;
        }
        if have_files && !self.held && self.models == Models::Unknown {
            self.models = Models::Checking(ModelsFor::Start);
            let _ = self.jobs.send(PrepJob::Models(ModelsFor::Start));
        }
        // A reload's model check runs while the worker keeps running.
        let models_ok = match self.models {
            Models::Ready | Models::Checking(ModelsFor::Reload) => true,
            // A re-check never takes down a worker that is already wanted.
            Models::Checking(ModelsFor::Start) => self.wanted,
            Models::Unknown | Models::Failed => false,
        };
        let want = have_files && !self.held && gate && models_ok;
        if want {
            let (spec, choice) = worker_spec(ctx, &self.scope);
            if let Some(n) = &choice.note {
                log::warn!("{n}");
            }
            self.accelerator = choice.accelerator;
            if !self.wanted {
                log::info!(
                    "starting the ML worker {name} ({} worker file(s), image {})",
                    self.files.len(),
                    spec.image
                );
                self.wanted = true;
                self.expect_down = false;
                if !running {
                    self.open_starting_card(&spec.image, &name);
                }
            }
            runtime.set_desired(Role::Worker, BTreeMap::from([(name, (spec, Value::Null))]));
        } else if self.wanted || running {
            if self.wanted {
                let why = if self.held {
                    "stopped by worker stop"
                } else if !have_files {
                    "workers-dir-empty"
                } else {
                    "models unavailable"
                };
                log::info!("stopping the ML worker {name} ({why})");
            }
            self.wanted = false;
            self.starting = None;
            self.ready = false;
            runtime.set_desired(Role::Worker, BTreeMap::new());
            if running {
                self.expect_down = true;
                runtime.stop(&name, self.tuning.stop_timeout);
            }
        }
    }

    /// After each runtime event: what the policy noted.
    pub fn after_runtime_event(&mut self, runtime: &mut Runtime) {
        let notes: Vec<Note> = self
            .notes
            .lock()
            .map(|mut v| std::mem::take(&mut *v))
            .unwrap_or_default();
        for n in notes {
            match n {
                Note::LockOverridden { image, waited_s } => self.lock_overridden(&image, waited_s),
                Note::RolledBack {
                    failed_image,
                    reason,
                    back_image,
                } => self.rolled_back(&failed_image, &reason, &back_image),
                Note::Up => {
                    self.card_phase("container_running", json!({}));
                    self.begin_readiness(Duration::ZERO);
                }
                Note::LaunchFailed { phase, message } => self.start_failed(phase, &message),
                Note::RestartLoop { deaths } => self.start_failed(
                    "container_unhealthy",
                    &format!("the worker exited {deaths} times in a row"),
                ),
                Note::WentDown { status } => {
                    self.ready = false;
                    if std::mem::take(&mut self.expect_down)
                        || self.files.is_empty()
                        || !self.wanted
                    {
                        log::info!("ML worker stopped ({status})");
                    } else {
                        log::warn!(
                            "ML worker exited spontaneously (status={status}); this may indicate a crash loop"
                        );
                    }
                }
            }
        }
        self.reconcile(runtime);
    }

    /// The helper thread's results.
    pub fn on_prep(&mut self, ev: PrepEvent, runtime: &mut Runtime) {
        match ev {
            PrepEvent::Synced {
                failed,
                answered,
                changed,
                written,
                removed,
            } => {
                self.first_sync
                    .get_or_insert((written, removed, failed.len()));
                if self.sync_gate.done() {
                    self.send_sync();
                }
                for (t, e) in &failed {
                    if self.sync_alerted.insert(t.clone()) {
                        let alert = Alert {
                            alert_type: "workflow_sync_failure",
                            name: "Workflow download failed",
                            description: "The edge could not download one or more workflow workers from the cloud. Affected workflows will not run on this twin until the next successful sync.",
                            severity: "error",
                            twin_uuid: t,
                            metadata: Some(
                                json!({"technical_detail": e.chars().take(1500).collect::<String>()}),
                            ),
                        };
                        self.alerts
                            .raise(&format!("workflow_sync_failure:{t}"), alert);
                    }
                }
                for t in &answered {
                    if self.sync_alerted.remove(t) {
                        self.alerts.resolve(t, "workflow_sync_failure");
                    }
                }
                if changed {
                    // The watch reports the files; read them now too so a start is not late.
                    self.refresh_files(runtime);
                }
                if self.models == Models::Failed {
                    self.models = Models::Unknown;
                }
                self.reconcile(runtime);
            }
            PrepEvent::Removed { removed } => {
                if removed > 0 {
                    self.refresh_files(runtime);
                }
            }
            PrepEvent::Models {
                why,
                failures,
                ready,
            } => {
                for (id, e) in &failures {
                    let alert_name = format!("Model could not be loaded: {id}");
                    self.raise(
                        "model_download_failure",
                        &alert_name,
                        &e.chars().take(1000).collect::<String>(),
                        json!({"model_id": id}),
                    );
                }
                log::info!(
                    "models checked for the worker: {ready} ready, {} failed",
                    failures.len()
                );
                self.model_failures = failures.clone();
                match why {
                    ModelsFor::Start if failures.is_empty() => self.models = Models::Ready,
                    ModelsFor::Start => {
                        self.models = Models::Failed;
                        self.last_error = Some(format!(
                            "not started: {} model(s) could not be loaded",
                            failures.len()
                        ));
                    }
                    ModelsFor::Reload => {
                        self.models = Models::Ready;
                        let name = self.name().unwrap_or_default();
                        let running = runtime
                            .observed_state(&name)
                            .is_some_and(|e| e.state == "running");
                        if running {
                            self.restart(runtime, "worker-files-changed");
                            self.last_auto_restart = Some(Instant::now());
                        } else if self.wanted {
                            // Still on its way up: reload once it runs (it may have read the
                            // old file).
                            self.reload_pending = Some(Instant::now());
                        }
                    }
                }
                self.reconcile(runtime);
            }
        }
    }

    fn refresh_files(&mut self, runtime: &mut Runtime) {
        if let Some(c) = &self.ctx {
            let sig =
                crate::watch::signature(&c.config_dir.join("workers"), crate::watch::worker_file);
            self.on_files(sig, runtime);
        }
    }

    /// `workers/` changed (the watch, a sync, a removal).
    pub fn on_files(&mut self, sig: Signature, runtime: &mut Runtime) {
        if sig == self.files {
            return;
        }
        let was_empty = self.files.is_empty();
        self.files = sig;
        let name = self.name().unwrap_or_default();
        let running = runtime
            .observed_state(&name)
            .is_some_and(|e| e.state == "running");
        log::debug!("worker files now {:?}", self.files);
        if self.files.is_empty() {
            self.reload_pending = None;
        } else if self.wanted && !was_empty {
            // Running, or on its way up (then the reload finds it running or leaves it be).
            if running {
                log::info!("worker files changed: reloading the ML worker");
            }
            self.reload_pending = Some(Instant::now());
            self.process_reload(runtime);
        } else if self.models != Models::Checking(ModelsFor::Start) {
            self.models = Models::Unknown;
        }
        self.reconcile(runtime);
    }

    /// A pending reload goes when the container runs and the breaker and cooldown allow
    /// ([`super::reload::decide`]).
    fn process_reload(&mut self, runtime: &mut Runtime) {
        use super::reload::{Inputs, Step, decide};
        let name = self.name().unwrap_or_default();
        let now = Instant::now();
        let inputs = Inputs {
            pending: self.reload_pending.is_some(),
            checking_models: matches!(self.models, Models::Checking(_)),
            running: runtime
                .observed_state(&name)
                .is_some_and(|e| e.state == "running"),
            wanted: self.wanted,
            tripped: self.history.tripped(now),
            cooldown_left: self.last_auto_restart.map(|t| {
                self.tuning
                    .reload_cooldown
                    .saturating_sub(now.duration_since(t))
            }),
        };
        match decide(&inputs) {
            Step::Nothing | Step::WaitForRun => {}
            Step::Drop => self.reload_pending = None,
            Step::Suppressed => {
                if !self.breaker_logged {
                    log::warn!(
                        "worker circuit breaker tripped ({} restarts in 5 min): automatic restarts suppressed",
                        self.history.recent(now)
                    );
                    self.breaker_logged = true;
                }
            }
            Step::Cooldown => self.breaker_logged = false,
            Step::Reload => {
                self.breaker_logged = false;
                self.reload_pending = None;
                self.models = Models::Checking(ModelsFor::Reload);
                let _ = self.jobs.send(PrepJob::Models(ModelsFor::Reload));
            }
        }
    }

    /// Restarts a running worker (reload, `worker restart`); starts it when it is not running.
    pub fn restart(&mut self, runtime: &mut Runtime, reason: &str) {
        let Some(name) = self.name() else {
            return;
        };
        let running = runtime
            .observed_state(&name)
            .is_some_and(|e| e.state == "running");
        if !running || !self.wanted {
            self.held = false;
            self.reconcile(runtime);
            return;
        }
        log::info!("restarting the ML worker {name} ({reason})");
        if let Some(c) = &self.ctx {
            let _ = std::fs::remove_file(c.status_dir.join(STATUS_FILE));
        }
        self.expect_down = true;
        self.history.record(reason, true, Instant::now());
        self.running_since = None;
        runtime.restart(&name, self.tuning.stop_timeout);
        self.begin_readiness(self.tuning.stop_timeout + Duration::from_secs(3));
    }

    /// Supervisor tick: periodic sync, readiness, reload, `worker_health`.
    pub fn tick(&mut self, runtime: &mut Runtime) {
        self.ticks += 1;
        if self.ticks.is_multiple_of(self.tuning.sync_every_ticks) {
            self.sync_now();
        }
        self.on_deadline(runtime);
        self.publish_health(runtime);
    }

    /// The next moment the worker needs the supervisor (readiness poll, reload cooldown, driver
    /// wait, breaker re-arm).
    pub fn next_deadline(&self) -> Option<Instant> {
        let now = Instant::now();
        let mut due: Vec<Instant> = Vec::new();
        if self.starting.is_some() {
            due.push(now + READINESS_POLL);
        }
        if self.reload_pending.is_some() {
            let cooldown_end = self
                .last_auto_restart
                .map(|t| t + self.tuning.reload_cooldown);
            due.push(super::reload::next_look(
                now,
                self.history.rearms_at(now),
                cooldown_end,
            ));
        }
        if !self.wanted && !self.files.is_empty() && self.models == Models::Ready {
            due.push(self.boot + self.tuning.driver_wait);
        }
        due.into_iter().min()
    }

    pub fn on_deadline(&mut self, runtime: &mut Runtime) {
        self.check_readiness(runtime);
        self.process_reload(runtime);
        self.reconcile(runtime);
    }
}

#[cfg(test)]
mod tests;
