//! The runtime for every role: desired containers (from a role) against observed ones (one
//! container list per tick plus the events stream), and the actions that close the gap. All
//! engine calls run on helper threads (executor, launcher, events, log followers); this module
//! only decides, on the supervisor thread, through the pure [`plan`]. What a role adds is its
//! spec (a [`ContainerSpec`] per container), its launch hooks and its [`Policy`]: what to say
//! when a container comes up, fails to start, loops or goes down, and where its log lines go.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{Receiver, Sender, unbounded};
use serde_json::Value;

use super::book::Record;
use super::breaker::FlapDetector;
use super::cleanup::load_images;
use super::executor::{ExecEvent, Op};
use super::follow::Followers;
use super::launch::switch::{next_name, old_name};
use super::launch::{LaunchFailure, LaunchJob, Up};
use super::plan::{self, Action, Why};
pub use super::role::{CleanupTuning, Loop, Policy, RoleHooks, RoleSetup, Setup, Tuning};
use super::spec::{ContainerSpec, Role};

/// Direct operations a role asks for (restart, stop, recreate) and periodic cleanup.
mod deaths;
mod gates;
mod launched;
mod locks;
mod observe;
mod ops;
mod status;
mod threads;
mod updates;
use crate::engine::{Container, StreamHandle};

/// With the engine's event stream open, a quiet tick lists the containers every 4th time
/// (once a minute): a backstop for an event the engine did not send.
pub const OBSERVE_EVERY_TICKS: u32 = 4;
/// When the second look after a death is taken.
const RECHECK_AFTER_DEATH: Duration = Duration::from_secs(2);

/// What the helper threads tell the supervisor (hand it back to [`Runtime::on_event`]).
#[derive(Debug)]
pub enum RuntimeEvent {
    Exec(ExecEvent),
    Launched {
        spec_name: String,
        result: Result<Up, LaunchFailure>,
    },
    /// The images of an update that waits for an update lock are present (or not).
    Prefetched {
        spec_name: String,
        spec_hash: String,
        result: Result<String, LaunchFailure>,
    },
    /// The labels of a role's image, asked for by [`Runtime::discover`] (the role's to use).
    Discovered {
        image: String,
        refresh: bool,
        result: Result<super::launch::ImageLook, String>,
    },
}

pub struct Runtime {
    config_dir: PathBuf,
    owner: String,
    /// The engine restarts containers by their policy itself (see [`plan::Rules::new`]).
    engine_restarts: bool,
    /// The engine's name and version (the version once it answered).
    pub engine: (String, Option<String>),
    tuning: Tuning,
    policies: BTreeMap<Role, Box<dyn Policy>>,
    hooks: RoleHooks,
    ops: Sender<Op>,
    launches: Sender<Vec<LaunchJob>>,
    prefetches: Sender<threads::Fetch>,
    desired: BTreeMap<String, (ContainerSpec, Value)>,
    observed: Option<BTreeMap<String, Container>>,
    inflight: BTreeSet<String>,
    info: BTreeMap<String, Record>,
    flap: FlapDetector,
    followers: Followers,
    /// The open events stream: dropped at shutdown (a CLI child is killed and reaped).
    events_child: Arc<Mutex<Option<StreamHandle>>>,
    observe_pending: bool,
    /// The engine's event stream is open (see [`Runtime::tick`]).
    events_live: bool,
    /// Ticks since the last container list landed.
    ticks_since_observe: u32,
    /// A second look after a death: the engine may send `die` before its list shows the
    /// container stopped (Docker 20.10), and a quiet tick no longer lists at once.
    recheck_at: Option<Instant>,
    /// An observation was asked for while one was in flight: run another when it lands.
    observe_again: bool,
    /// Lists asked for and landed so far (one in flight at a time: the n-th to land answers
    /// the n-th request), to tell a list taken before a launch from one taken after.
    observes_requested: u64,
    observes_landed: u64,
    /// Roles with a desired container seen running at least once.
    ever_ready: BTreeSet<Role>,
    nvidia_default: bool,
    nvidia: bool,
    ran_images: BTreeSet<String>,
    last_container_prune: Instant,
    last_image_prune: Instant,
    last_volume_prune: Instant,
    /// Containers being removed to be recreated from their spec (a remote restart).
    recreating: BTreeSet<String>,
    /// Last good, on trial and failed specs per container (persisted).
    updates: super::updates::Book,
    /// The role's specs that a rollback replaced in `desired`.
    displaced: BTreeMap<String, ContainerSpec>,
    /// Recreations (remote or metadata restarts) waiting for an update lock, since when.
    recreate_waiting: BTreeMap<String, Instant>,
    /// When held update locks are looked at again (only while an update waits for one).
    lock_check_at: Option<Instant>,
    /// The disk reserve the launchers keep, and what they may remove for it.
    reserve: Arc<super::reserve::DiskReserve>,
    /// Roles whose desired state is provisional (the cache, before the backend answered).
    provisional: BTreeSet<Role>,
    /// Launches held until a dependency is ready (a service graph's start order).
    gates: gates::Gates,
}

fn spawn_named(name: &str, f: impl FnOnce() + Send + 'static) {
    if let Err(e) = thread::Builder::new().name(name.into()).spawn(f) {
        log::error!("cannot start thread {name}: {e}");
    }
}

impl Runtime {
    /// Starts the helper threads; returns the runtime and the receiver of its events.
    pub fn start(setup: Setup) -> (Self, Receiver<RuntimeEvent>) {
        let Setup {
            engine,
            config_dir,
            owner,
            tuning,
        } = setup;
        let hooks = RoleHooks::default();
        let (events, rx) = unbounded::<RuntimeEvent>();
        let reserve = Arc::new(super::reserve::DiskReserve {
            bytes: tuning.disk_reserve_mb.saturating_mul(1 << 20),
            ..Default::default()
        });
        let helpers = threads::spawn(&engine, &config_dir, &tuning, &hooks, &reserve, events);
        let threads::Helpers {
            ops,
            launches,
            prefetches,
            events_child,
        } = helpers;
        let _ = ops.send(Op::Runtimes);
        let _ = ops.send(Op::Observe);
        let runtime = Runtime {
            engine: (engine.name().to_string(), None),
            engine_restarts: engine.restarts_containers(),
            flap: FlapDetector::new(tuning.restart_loop_threshold, tuning.restart_loop_window),
            followers: Followers::new(engine, tuning.log_tail),
            ran_images: load_images(&config_dir),
            updates: super::updates::load(&config_dir),
            config_dir,
            owner,
            tuning,
            policies: BTreeMap::new(),
            hooks,
            ops,
            launches,
            prefetches,
            desired: BTreeMap::new(),
            observed: None,
            inflight: BTreeSet::new(),
            info: BTreeMap::new(),
            events_child,
            observe_pending: true,
            events_live: false,
            ticks_since_observe: 0,
            recheck_at: None,
            observe_again: false,
            observes_requested: 1,
            observes_landed: 0,
            ever_ready: BTreeSet::new(),
            nvidia_default: false,
            nvidia: false,
            last_container_prune: Instant::now(),
            last_image_prune: Instant::now(),
            last_volume_prune: Instant::now(),
            recreating: BTreeSet::new(),
            displaced: BTreeMap::new(),
            provisional: BTreeSet::new(),
            recreate_waiting: BTreeMap::new(),
            lock_check_at: None,
            reserve,
            gates: Default::default(),
        };
        (runtime, rx)
    }

    /// True once any desired container of `role` has been seen running.
    pub fn any_running(&self, role: Role) -> bool {
        self.ever_ready.contains(&role)
    }

    /// NVIDIA is Docker's default runtime (learned from the engine after start).
    pub fn nvidia_default(&self) -> bool {
        self.nvidia_default
    }

    /// Docker knows an `nvidia` runtime (default or not).
    pub fn nvidia(&self) -> bool {
        self.nvidia
    }

    /// Every desired container of `role` has been launched or adopted (none in flight, each
    /// observed once or failed): the moment a role that starts after another may go.
    pub fn settled(&self, role: Role) -> bool {
        self.observed.is_some()
            && self.desired.iter().all(|(n, (s, _))| {
                s.role != role
                    || (!self.inflight.contains(n)
                        && self
                            .info
                            .get(n)
                            .is_some_and(|i| i.seen || i.launch_failures > 0))
            })
    }

    /// What the engine last said of a container (`running`, `exited`, …), if it exists.
    pub fn observed_state(&self, name: &str) -> Option<&Container> {
        self.observed.as_ref().and_then(|o| o.get(name))
    }

    /// A launch of `name` is under way.
    pub fn launching(&self, name: &str) -> bool {
        self.inflight.contains(name)
    }

    /// Adds a role: its containers are the desired ones of its [`Role`].
    pub fn add_role(&mut self, r: RoleSetup) {
        if let Ok(mut h) = self.hooks.0.lock() {
            h.insert(r.role, r.hooks);
        }
        self.policies.insert(r.role, r.policy);
    }

    /// [`Runtime::set_desired`] from a provisional source (the cache, before the backend's
    /// answer): a running container whose spec is one we switched to ourselves (on trial or
    /// last good) is kept until a live answer decides.
    pub fn set_desired_from(
        &mut self,
        role: Role,
        desired: BTreeMap<String, (ContainerSpec, Value)>,
        provisional: bool,
    ) {
        let was = match provisional {
            true => !self.provisional.insert(role),
            false => self.provisional.remove(&role),
        };
        if was != provisional {
            self.reconcile();
        }
        self.set_desired(role, desired);
    }

    /// The containers `role` wants now, each with what its launch hook needs (the other
    /// roles' stay); reconciles.
    pub fn set_desired(&mut self, role: Role, desired: BTreeMap<String, (ContainerSpec, Value)>) {
        let desired: BTreeMap<_, _> = desired
            .into_iter()
            .filter(|(_, (s, _))| s.role == role)
            .collect();
        let desired = self.substituted(desired);
        let same = desired.len()
            == self
                .desired
                .values()
                .filter(|(s, _)| s.role == role)
                .count()
            && desired.iter().all(|(n, v)| self.desired.get(n) == Some(v));
        if same {
            // Nothing new: no reconcile against a view that may predate the last launch.
            return;
        }
        let new: Vec<String> = desired
            .keys()
            .filter(|n| !self.desired.contains_key(*n))
            .cloned()
            .collect();
        self.desired.retain(|_, (s, _)| s.role != role);
        self.desired.extend(desired);
        self.adopt_running(&new);
        self.reconcile();
    }

    /// Supervisor tick: one container list (unless one is already on its way), cleanup, and
    /// breaker re-arming. While the engine's event stream is open it reports every change
    /// (each event asks for a list), so a quiet tick lists only every
    /// [`OBSERVE_EVERY_TICKS`]th time, as a backstop.
    pub fn tick(&mut self) {
        self.ticks_since_observe += 1;
        if self.tick_lists() {
            self.request_observe();
        }
        self.maybe_cleanup();
        let now = Instant::now();
        for info in self.info.values_mut() {
            if info.breaker.maybe_rearm(now, self.tuning.rearm_after) {
                log::info!("restart-loop breaker re-armed after a quiet period");
            }
        }
    }

    pub fn on_event(&mut self, ev: RuntimeEvent) {
        match ev {
            RuntimeEvent::Exec(ExecEvent::Runtimes {
                nvidia_default,
                nvidia,
                engine,
            }) => {
                self.nvidia_default = nvidia_default;
                self.nvidia = nvidia;
                self.engine = engine;
            }
            RuntimeEvent::Exec(ExecEvent::Ps(Ok(list))) => {
                let answered = self.observation_landed();
                self.on_ps(list, answered);
            }
            RuntimeEvent::Exec(ExecEvent::Ps(Err(e))) => {
                self.observation_landed();
                log::warn!("{e}; keeping the previous view of the containers");
            }
            RuntimeEvent::Launched { spec_name, result } => {
                self.on_launched(spec_name, result);
                // One observation when the batch is done, not one per container: on a
                // 2-core board a list in parallel with 50 launches slows them all.
                if self.inflight.is_empty() {
                    self.request_observe();
                }
            }
            RuntimeEvent::Prefetched {
                spec_name,
                spec_hash,
                result,
            } => self.on_prefetched(&spec_name, &spec_hash, result),
            RuntimeEvent::Discovered { .. } => {}
            RuntimeEvent::Exec(ExecEvent::Container(ev)) => self.on_container_event(ev),
            RuntimeEvent::Exec(ExecEvent::EventStream(live)) => {
                self.events_live = live;
                if live {
                    self.request_observe(); // what happened while no stream was open
                }
            }
            RuntimeEvent::Exec(ExecEvent::LoopStopped {
                name,
                restart_count,
                result,
            }) => {
                self.on_loop_stopped(&name, restart_count);
                if let Err(e) = result {
                    log::warn!("stop {name}: {e}");
                }
                self.request_observe();
            }
            RuntimeEvent::Exec(ExecEvent::OpDone { name, what, result }) => {
                if what == "remove" && self.recreating.remove(&name) {
                    // Forget it: the next observation finds it missing and never seen, so the
                    // plan launches it at once from its spec.
                    self.inflight.remove(&name);
                    self.info.remove(&name);
                }
                if let Err(e) = result {
                    log::warn!("{what} {name}: {e}");
                    if let Some(i) = self.info.get_mut(&name) {
                        i.last_error = Some(e.to_string());
                    }
                }
                self.request_observe();
            }
        }
    }

    fn on_ps(&mut self, list: Vec<Container>, answered: u64) {
        let now_sys = SystemTime::now();
        let mut seen: BTreeMap<String, Container> =
            list.into_iter().map(|e| (e.name.clone(), e)).collect();
        self.keep_launched(&mut seen, answered);
        // Transitions of the containers we run.
        for (name, (spec, _)) in &self.desired {
            let info = self.info.entry(name.clone()).or_default();
            match seen.get(name) {
                // Passing states: the next observation says where it ends up.
                Some(e) if e.state == "removing" => {}
                Some(e) => {
                    if matches!(e.state.as_str(), "exited" | "dead") {
                        info.down_since.get_or_insert_with(Instant::now);
                    } else {
                        info.down_since = None;
                    }
                    if info.state != e.state {
                        if info.state == "running"
                            && e.state != "running"
                            && e.state != "restarting"
                            && let Some(p) = self.policies.get_mut(&spec.role)
                        {
                            p.went_down(spec, &e.state);
                        }
                        info.state = e.state.clone();
                        info.since = Some(now_sys);
                    }
                    info.seen = true;
                    info.removed_at = None;
                    if e.state == "exited" {
                        info.last_exit = e.exit_code().or(info.last_exit);
                    }
                }
                None => {
                    if info.seen && info.removed_at.is_none() && !self.inflight.contains(name) {
                        if info.state == "running"
                            && let Some(p) = self.policies.get_mut(&spec.role)
                        {
                            p.went_down(spec, "removed");
                        }
                        info.removed_at = Some(Instant::now());
                        info.state = "removed".into();
                        info.since = Some(now_sys);
                    }
                }
            }
        }
        self.observed = Some(seen);
        self.refresh_removable();
        self.judge_trials();
        self.reconcile();
    }

    /// What [`plan::plan`] reads: wants, what the engine runs, our book-keeping.
    fn plan_inputs(&self) -> super::book::PlanInputs {
        super::book::plan_inputs(
            &self.desired,
            self.observed.as_ref(),
            &self.info,
            &self.inflight,
            &self.held(),
        )
    }

    fn rules(&self) -> plan::Rules {
        plan::Rules::new(self.tuning.removed_revival, self.engine_restarts)
    }

    /// Plans (pure) and carries the actions out: launches in one batch, revivals as ops.
    fn reconcile(&mut self) {
        let Some(observed) = &self.observed else {
            return;
        };
        for (n, e) in observed {
            if e.state == "running"
                && let Some((spec, _)) = self.desired.get(n)
            {
                self.ever_ready.insert(spec.role);
            }
        }
        let now = Instant::now();
        let (wants, seen, book) = self.plan_inputs();
        let mut batch = Vec::new();
        for action in plan::plan(&wants, &seen, &book, now, &self.rules()) {
            match action {
                Action::Launch { name, replace, why } => {
                    let live = self
                        .observed_state(&name)
                        .is_some_and(|c| matches!(c.state.as_str(), "running" | "restarting"));
                    if why == Why::SpecChanged && live && !self.update_may_switch(&name) {
                        continue;
                    }
                    if self.waits_for(&name, now).is_some() {
                        continue;
                    }
                    let Some((spec, payload)) = self.desired.get(&name) else {
                        continue;
                    };
                    if let Some(i) = self.info.get_mut(&name) {
                        i.asked = false;
                    }
                    match why {
                        Why::RemovedGraceOver => log::info!("reviving removed {name}"),
                        Why::SpecChanged => log::info!("{name} differs from its spec: recreating"),
                        _ => {}
                    }
                    let settle = [next_name(&name), old_name(&name)]
                        .iter()
                        .any(|n| self.observed_state(n).is_some());
                    batch.push(LaunchJob {
                        spec: spec.clone(),
                        payload: payload.clone(),
                        exists: replace,
                        settle,
                    });
                }
                Action::Revive { name, why } => {
                    let Some(policy) = self.desired.get(&name).map(|(s, _)| s.restart.clone())
                    else {
                        continue;
                    };
                    let info = self.info.entry(name.clone()).or_default();
                    info.asked = false;
                    if why == Why::LoopPauseOver {
                        log::info!("retrying {name} after its restart-loop pause");
                        info.breaker.retried(now);
                        info.stopped_for_loop = false;
                    } else {
                        log::info!("reviving stopped {name}");
                        info.last_revival = Some(now);
                    }
                    let _ = self.ops.send(Op::Revive { name, policy });
                }
            }
        }
        if !batch.is_empty() {
            for j in &batch {
                self.inflight.insert(j.spec.name.clone());
            }
            let _ = self.launches.send(batch);
        }
        self.reconcile_followers();
    }

    /// One log follower per running managed container.
    fn reconcile_followers(&mut self) {
        let Some(observed) = &self.observed else {
            return;
        };
        self.followers.prune();
        for (name, (spec, _)) in &self.desired {
            let running = observed.get(name).is_some_and(|e| e.state == "running");
            if running
                && !self.followers.is_following(name)
                && let Some(p) = self.policies.get(&spec.role)
            {
                self.followers.follow(name, p.log_sink(spec));
            }
        }
    }

    /// The next moment a timed decision falls due (breaker retry, launch backoff, removal
    /// grace), so the supervisor reconciles then instead of at the next tick.
    pub fn next_deadline(&mut self) -> Option<Instant> {
        let (wants, _, book) = self.plan_inputs();
        let planned = plan::next_due(&wants, &book, Instant::now(), &self.rules());
        [
            planned,
            self.recheck_at,
            self.next_trial_end(),
            self.next_lock_check(),
            self.next_gate_check(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Called when [`Runtime::next_deadline`] passes.
    pub fn on_deadline(&mut self) {
        if self.recheck_at.is_some_and(|t| t <= Instant::now()) {
            self.recheck_at = None;
            self.request_observe();
        }
        self.promote_due();
        self.recheck_locks();
        self.poll_gates();
        self.reconcile();
    }

    /// Stops helper children (log followers, events stream) on shutdown; containers keep
    /// running.
    pub fn shutdown(&mut self) {
        self.followers.stop_all();
        // Dropping the events child kills and reaps it.
        drop(self.events_child.lock().ok().and_then(|mut c| c.take()));
    }
}

#[cfg(test)]
mod tests;
