//! The driver side of the supervisor: desired containers (from the plan) against observed ones
//! (one `docker ps` per tick plus `docker events`), and the actions that close the gap. All
//! Docker calls run on helper threads (`docker-ops`, `driver-launcher`, `docker-events`, log
//! followers); this module only decides, on the supervisor thread.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{Receiver, Sender, unbounded};
use serde_json::{Value, json};

use super::policy::{self, driver_log_sink, load_images, raise_health, save_images};
use crate::alerts::{Alert, AlertSink};
use crate::containers::book::Record as Info;
use crate::containers::breaker::{Breaker, FlapDetector};
use crate::containers::engine::Engine;
use crate::containers::executor::{ExecEvent, Op, follow_events, run_ops};
use crate::containers::follow::Followers;
use crate::containers::plan::{self, Action, Why};
use crate::docker::{ContainerEvent, Docker, PsEntry};
use crate::drivers::launch::{LaunchFailure, LaunchJob, Launcher};
use crate::drivers::spec::LABEL_SPEC_HASH;
use crate::drivers::{DriverSpec, LaunchContext, TwinOutcome, TwinPlan};
use crate::mqtt::{MqttHandle, SharedHandle};
use crate::process::OwnedChild;

pub use super::settings::{CleanupTuning, DriverTuning};

/// How long an exited driver is left to Docker's restart policy before we start it.
const REVIVE_AFTER: Duration = Duration::from_secs(10);
/// At most one revival of a driver per minute.
const REVIVE_EVERY: Duration = Duration::from_secs(60);

/// What the helper threads tell the supervisor.
#[derive(Debug)]
pub enum DriverEvent {
    /// From the runtime's executor threads.
    Exec(ExecEvent),
    Launched {
        spec_name: String,
        twin: String,
        result: Result<String, LaunchFailure>,
    },
}

pub struct Drivers {
    pub ctx: LaunchContext,
    tuning: DriverTuning,
    mqtt: SharedHandle,
    alerts: AlertSink,
    ops: Sender<Op>,
    launches: Sender<Vec<LaunchJob>>,
    desired: BTreeMap<String, (DriverSpec, Value)>,
    observed: Option<BTreeMap<String, PsEntry>>,
    inflight: BTreeSet<String>,
    info: BTreeMap<String, Info>,
    flap: FlapDetector,
    problems: BTreeMap<String, String>,
    followers: Followers,
    events_child: Arc<Mutex<Option<OwnedChild>>>,
    observe_pending: bool,
    /// An observation was asked for while one was in flight: run another when it lands.
    observe_again: bool,
    ever_ready: bool,
    ran_images: BTreeSet<String>,
    last_container_prune: Instant,
    last_image_prune: Instant,
}

fn spawn_named(name: &str, f: impl FnOnce() + Send + 'static) {
    if let Err(e) = thread::Builder::new().name(name.into()).spawn(f) {
        log::error!("cannot start thread {name}: {e}");
    }
}

impl Drivers {
    /// Starts the helper threads; returns the manager and the receiver of its events.
    pub fn start(
        docker: Docker,
        ctx: LaunchContext,
        tuning: DriverTuning,
        mqtt: Option<MqttHandle>,
        alerts: AlertSink,
    ) -> (Self, Receiver<DriverEvent>) {
        let (events, rx) = unbounded::<DriverEvent>();
        let (ops, ops_rx) = unbounded::<Op>();
        let (launches, launch_rx) = unbounded::<Vec<LaunchJob>>();
        let mqtt = SharedHandle::new(mqtt);
        {
            let docker = docker.clone();
            let events = events.clone();
            let engine: Arc<dyn Engine> = Arc::new(docker.clone());
            spawn_named("docker-ops", move || {
                let emit = |ev| events.send(DriverEvent::Exec(ev)).is_ok();
                run_ops(engine.as_ref(), &docker, &ops_rx, &emit)
            });
        }
        {
            let launcher = Launcher {
                engine: Arc::new(docker.clone()),
                config_dir: ctx.config_dir.clone(),
                probe: tuning.probe,
                hooks: Arc::new(policy::DriverHooks {
                    config_dir: ctx.config_dir.clone(),
                    mqtt: mqtt.clone(),
                }),
            };
            let events = events.clone();
            spawn_named("driver-launcher", move || {
                for batch in launch_rx {
                    launcher.launch_batch(batch, |spec, result| {
                        let _ = events.send(DriverEvent::Launched {
                            spec_name: spec.name.clone(),
                            twin: spec.owner.clone(),
                            result,
                        });
                    });
                }
            });
        }
        let events_child = Arc::new(Mutex::new(None));
        {
            let docker = docker.clone();
            let events = events.clone();
            let slot = events_child.clone();
            spawn_named("docker-events", move || {
                let emit = |ev| events.send(DriverEvent::Exec(ev)).is_ok();
                follow_events(&docker, &emit, &slot)
            });
        }
        let _ = ops.send(Op::Runtimes);
        let _ = ops.send(Op::Observe);
        let flap = FlapDetector::new(tuning.restart_loop_threshold, tuning.restart_loop_window);
        let ctx_dir = ctx.config_dir.clone();
        let followers = Followers::new(docker.clone(), tuning.log_tail);
        let d = Drivers {
            ctx,
            tuning,
            mqtt,
            alerts,
            ops,
            launches,
            desired: BTreeMap::new(),
            observed: None,
            inflight: BTreeSet::new(),
            info: BTreeMap::new(),
            flap,
            problems: BTreeMap::new(),
            followers,
            events_child,
            observe_pending: true,
            observe_again: false,
            ever_ready: false,
            ran_images: load_images(&ctx_dir),
            last_container_prune: Instant::now(),
            last_image_prune: Instant::now(),
        };
        (d, rx)
    }

    /// True once any driver has been seen running (the bootstrap health publisher stops).
    pub fn any_running(&self) -> bool {
        self.ever_ready
    }

    /// The alerts client and context after a reload.
    pub fn alerts_mut(&mut self) -> &mut AlertSink {
        &mut self.alerts
    }

    /// The link after a reload; every helper thread sees it at once.
    pub fn set_mqtt(&mut self, mqtt: Option<MqttHandle>) {
        self.mqtt.set(mqtt);
    }

    /// New desired state: re-plan and reconcile.
    pub fn set_plans(&mut self, plans: Vec<TwinPlan>) {
        let mut desired = BTreeMap::new();
        for p in &plans {
            match &p.outcome {
                TwinOutcome::Containers(specs) => {
                    for s in specs {
                        desired.insert(s.name.clone(), (s.clone(), p.twin_file.clone()));
                    }
                    if self.problems.remove(&p.twin_uuid).is_some() {
                        self.alerts.resolve(&p.twin_uuid, "driver_start_failure");
                    }
                }
                TwinOutcome::Problem { title, detail } => {
                    if self.problems.get(&p.twin_uuid) != Some(title) {
                        let alert = Alert {
                            alert_type: "driver_start_failure",
                            name: title,
                            description: detail,
                            severity: "error",
                            twin_uuid: &p.twin_uuid,
                            metadata: None,
                        };
                        self.alerts.raise(
                            &format!("driver_start_failure:{}:{title}", p.twin_uuid),
                            alert,
                        );
                        self.problems.insert(p.twin_uuid.clone(), title.clone());
                    }
                }
                TwinOutcome::CameraChild { .. } | TwinOutcome::FileOnly => {
                    if let Err(e) = crate::drivers::twin_file::write(
                        &self.ctx.config_dir,
                        &p.twin_uuid,
                        &p.twin_file,
                    ) {
                        log::error!("twin file for {}: {e}", p.twin_uuid);
                    }
                }
            }
        }
        self.desired = desired;
        self.reconcile();
    }

    /// Supervisor tick: one `docker ps` (unless one is already on its way).
    pub fn tick(&mut self) {
        self.request_observe();
        self.maybe_cleanup();
        let now = Instant::now();
        for info in self.info.values_mut() {
            if info.breaker.maybe_rearm(now, self.tuning.rearm_after) {
                log::info!("restart-loop breaker re-armed after a quiet period");
            }
        }
    }

    fn request_observe(&mut self) {
        if self.observe_pending {
            self.observe_again = true;
        } else {
            self.observe_pending = true;
            let _ = self.ops.send(Op::Observe);
        }
    }

    fn observation_landed(&mut self) {
        self.observe_pending = false;
        if std::mem::take(&mut self.observe_again) {
            self.request_observe();
        }
    }

    pub fn on_event(&mut self, ev: DriverEvent) {
        match ev {
            DriverEvent::Exec(ExecEvent::Runtimes { nvidia_default }) => {
                if nvidia_default != self.ctx.nvidia_default_runtime {
                    self.ctx.nvidia_default_runtime = nvidia_default;
                    log::info!("NVIDIA runtime is Docker's default: GPU drivers get --gpus");
                }
            }
            DriverEvent::Exec(ExecEvent::Ps(Ok(list))) => {
                self.observation_landed();
                self.on_ps(list);
            }
            DriverEvent::Exec(ExecEvent::Ps(Err(e))) => {
                self.observation_landed();
                log::warn!("{e}; keeping the previous view of the containers");
            }
            DriverEvent::Launched {
                spec_name,
                twin,
                result,
            } => {
                self.inflight.remove(&spec_name);
                let info = self.info.entry(spec_name.clone()).or_default();
                match result {
                    Ok(id) => {
                        log::info!(
                            "driver {spec_name} for twin {twin} is up ({})",
                            &id.chars().take(12).collect::<String>()
                        );
                        info.last_error = None;
                        info.id = Some(id);
                        // Remember what we ran, so image cleanup knows what is ours.
                        if let Some((spec, _)) = self.desired.get(&spec_name)
                            && self.ran_images.insert(spec.image.clone())
                        {
                            save_images(&self.ctx.config_dir, &self.ran_images);
                        }
                        info.stopped_for_loop = false;
                        self.alerts.resolve(&twin, "driver_start_failure");
                    }
                    Err(f) => {
                        info.launch_failures += 1;
                        let delay = Breaker::delay(
                            self.tuning.retry_base,
                            self.tuning.retry_cap,
                            info.launch_failures,
                        );
                        info.next_launch = Some(Instant::now() + delay);
                        log::error!(
                            "driver {spec_name} for twin {twin} failed to start: {f}; next try in {} s",
                            delay.as_secs()
                        );
                        info.last_error = Some(f.to_string());
                        policy::launch_failed(&self.alerts, &spec_name, &twin, &f);
                    }
                }
                // One observation when the batch is done, not one per container: on a
                // 2-core board `docker ps` in parallel with 50 launches slows them all.
                if self.inflight.is_empty() {
                    self.request_observe();
                }
            }
            DriverEvent::Exec(ExecEvent::Container(ev)) => self.on_container_event(ev),
            DriverEvent::Exec(ExecEvent::OpDone { name, what, result }) => {
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

    fn on_container_event(&mut self, ev: ContainerEvent) {
        if !self.desired.contains_key(&ev.name) {
            return;
        }
        match ev.action.as_str() {
            "die" => {
                let info = self.info.entry(ev.name.clone()).or_default();
                info.deaths += 1;
                info.last_exit = ev.exit_code;
                if info.stopped_for_loop {
                    return;
                }
                if let Some(n) = self.flap.record_death(&ev.name, Instant::now()) {
                    self.trip(&ev.name, n);
                }
                self.request_observe();
            }
            "oom" => log::warn!("driver {} was killed for running out of memory", ev.name),
            "destroy" | "start" if self.inflight.is_empty() => self.request_observe(),
            _ => {}
        }
    }

    /// Restart loop: stop the driver, alert, schedule a retry with backoff.
    fn trip(&mut self, name: &str, deaths: usize) {
        let Some((spec, _)) = self.desired.get(name) else {
            return;
        };
        let twin = spec.owner.clone();
        let info = self.info.entry(name.to_string()).or_default();
        let delay = info.breaker.trip(
            Instant::now(),
            self.tuning.retry_base,
            self.tuning.retry_cap,
        );
        info.stopped_for_loop = true;
        self.flap.clear(name);
        let deaths_total = info.deaths;
        self.stop_follower(name);
        let _ = self.ops.send(Op::StopLooping {
            name: name.to_string(),
        });
        let lp = policy::Loop {
            name,
            twin: &twin,
            deaths,
            deaths_total,
            window: self.tuning.restart_loop_window,
            retry_in: delay,
            troubleshooting_url: &self.tuning.troubleshooting_url,
        };
        policy::restart_loop(&self.alerts, &lp);
    }

    fn on_ps(&mut self, list: Vec<PsEntry>) {
        let now_sys = SystemTime::now();
        let mut seen: BTreeMap<String, PsEntry> = BTreeMap::new();
        for e in list {
            seen.insert(e.name.clone(), e);
        }
        // Transitions of the containers we run.
        for name in self.desired.keys() {
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
                        {
                            raise_health(&self.alerts, &self.desired[name].0, name, &e.state);
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
                        if info.state == "running" {
                            raise_health(&self.alerts, &self.desired[name].0, name, "removed");
                        }
                        info.removed_at = Some(Instant::now());
                        info.state = "removed".into();
                        info.since = Some(now_sys);
                    }
                }
            }
        }
        self.observed = Some(seen);
        self.reconcile();
    }

    /// What [`plan::plan`] reads: wants, what the engine runs, our book-keeping.
    fn plan_inputs(
        &self,
    ) -> (
        BTreeMap<String, plan::Want>,
        BTreeMap<String, plan::Seen>,
        BTreeMap<String, plan::Book>,
    ) {
        let wants = self
            .desired
            .iter()
            .map(|(n, (s, _))| {
                let want = plan::Want {
                    spec_hash: s.spec_hash.clone(),
                };
                (n.clone(), want)
            })
            .collect();
        let seen = self
            .observed
            .iter()
            .flatten()
            .map(|(n, e)| {
                let seen = plan::Seen {
                    state: e.state.clone(),
                    exit_code: e.exit_code(),
                    spec_hash: e.labels.get(LABEL_SPEC_HASH).cloned(),
                };
                (n.clone(), seen)
            })
            .collect();
        let book = self
            .desired
            .keys()
            .map(|n| {
                let i = self.info.get(n).cloned().unwrap_or_default();
                (n.clone(), i.plan_book(self.inflight.contains(n)))
            })
            .collect();
        (wants, seen, book)
    }

    fn rules(&self) -> plan::Rules {
        plan::Rules {
            removed_revival: self.tuning.removed_revival,
            revive_after: REVIVE_AFTER,
            revive_every: REVIVE_EVERY,
        }
    }

    /// Plans (pure) and carries the actions out: launches in one batch, revivals as ops.
    fn reconcile(&mut self) {
        let Some(observed) = &self.observed else {
            return;
        };
        if observed
            .iter()
            .any(|(n, e)| e.state == "running" && self.desired.contains_key(n))
        {
            self.ever_ready = true;
        }
        let now = Instant::now();
        let (wants, seen, book) = self.plan_inputs();
        let mut batch = Vec::new();
        for action in plan::plan(&wants, &seen, &book, now, &self.rules()) {
            match action {
                Action::Launch { name, replace, why } => {
                    let Some((spec, twin_file)) = self.desired.get(&name) else {
                        continue;
                    };
                    match why {
                        Why::RemovedGraceOver => log::info!("reviving removed driver {name}"),
                        Why::SpecChanged => {
                            log::info!("driver {name} differs from its spec: recreating")
                        }
                        _ => {}
                    }
                    batch.push(LaunchJob {
                        spec: spec.clone(),
                        payload: twin_file.clone(),
                        exists: replace,
                    });
                }
                Action::Revive { name, why } => {
                    let Some(policy) = self.desired.get(&name).map(|(s, _)| s.restart.clone())
                    else {
                        continue;
                    };
                    let info = self.info.entry(name.clone()).or_default();
                    if why == Why::LoopPauseOver {
                        log::info!("retrying {name} after its restart-loop pause");
                        info.breaker.retried(now);
                        info.stopped_for_loop = false;
                    } else {
                        log::info!("reviving stopped driver {name}");
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

    /// One log follower per running managed driver.
    fn reconcile_followers(&mut self) {
        let Some(observed) = &self.observed else {
            return;
        };
        self.followers.prune();
        let running: Vec<(String, String, String)> = self
            .desired
            .iter()
            .filter(|(n, _)| observed.get(*n).is_some_and(|e| e.state == "running"))
            .map(|(n, (s, _))| (n.clone(), s.owner.clone(), s.image.clone()))
            .collect();
        for (name, twin, image) in running {
            if !self.followers.is_following(&name) {
                let sink = driver_log_sink(
                    &name,
                    &twin,
                    &image,
                    self.mqtt.clone(),
                    self.tuning.log_lines_per_second,
                );
                self.followers.follow(&name, sink);
            }
        }
    }

    fn stop_follower(&mut self, name: &str) {
        self.followers.stop(name);
    }

    fn maybe_cleanup(&mut self) {
        let (Some(c), Some(observed)) = (self.tuning.cleanup.clone(), &self.observed) else {
            return;
        };
        let now = Instant::now();
        let mut containers = Vec::new();
        let mut images = Vec::new();
        if now.duration_since(self.last_container_prune) >= c.container_interval {
            self.last_container_prune = now;
            let list: Vec<PsEntry> = observed.values().cloned().collect();
            let desired: BTreeSet<String> = self.desired.keys().cloned().collect();
            containers =
                crate::containers::cleanup::stale_containers(&list, &desired, &self.ctx.owner);
        }
        if now.duration_since(self.last_image_prune) >= c.image_interval {
            self.last_image_prune = now;
            let wanted: BTreeSet<String> = self
                .desired
                .values()
                .map(|(s, _)| s.image.clone())
                .collect();
            images = crate::containers::cleanup::stale_images(&self.ran_images, &wanted);
            for i in &images {
                self.ran_images.remove(i);
            }
            save_images(&self.ctx.config_dir, &self.ran_images);
        }
        if !containers.is_empty() || !images.is_empty() {
            let _ = self.ops.send(Op::Cleanup {
                containers,
                images,
                sd_card_threshold: c.sd_card_threshold,
            });
        }
    }

    /// The next moment a timed decision falls due (breaker retry, launch backoff, removal
    /// grace), so the supervisor reconciles then instead of at the next 15 s tick.
    pub fn next_deadline(&self) -> Option<Instant> {
        let (wants, _, book) = self.plan_inputs();
        plan::next_due(&wants, &book, Instant::now(), &self.rules())
    }

    /// Called when [`Drivers::next_deadline`] passes.
    pub fn on_deadline(&mut self) {
        self.reconcile();
    }

    /// Stops helper children (log followers, events stream) on shutdown; containers keep running.
    pub fn shutdown(&mut self) {
        self.followers.stop_all();
        // Dropping the events child kills and reaps it.
        drop(self.events_child.lock().ok().and_then(|mut c| c.take()));
    }

    /// Containers for `status`.
    pub fn snapshot(&self) -> Value {
        let observed = self.observed.as_ref();
        let list: Vec<Value> = self
            .desired
            .iter()
            .map(|(name, (spec, _))| {
                let info = self.info.get(name).cloned().unwrap_or_default();
                let ps = observed.and_then(|o| o.get(name));
                let state = info.state_text(self.inflight.contains(name), ps);
                json!({
                    "name": name,
                    "twin_uuid": spec.owner,
                    "twin_name": spec.title,
                    "service": spec.service,
                    "image": ps.map(|e| e.image.clone()).unwrap_or_else(|| spec.image.clone()),
                    "state": state,
                    "status": ps.map(|e| e.status.clone()),
                    "id": ps.map(|e| e.id.chars().take(12).collect::<String>()),
                    "restarts": info.deaths,
                    "last_exit": info.last_exit,
                    "since": info.since.map(crate::epoch_of),
                    "breaker_trips": info.breaker.trips,
                    "last_error": info.last_error,
                })
            })
            .collect();
        let problems: Vec<Value> = self
            .problems
            .iter()
            .map(|(t, p)| {
                json!({"twin_uuid": t, "problem": p,
                       "degrades": p == crate::drivers::spec::NAME_COLLISION})
            })
            .collect();
        json!({"containers": list, "problems": problems})
    }
}
