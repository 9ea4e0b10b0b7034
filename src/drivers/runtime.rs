//! The driver role on the container runtime: twins' plans become desired containers (and twin
//! files, and `driver_start_failure` alerts for twins that cannot run); everything else (launch,
//! adoption, restart loops, revival, logs, cleanup) is the runtime's, which the supervisor owns
//! for every role, with the driver policy (`policy.rs`) saying what is alerted and where log
//! lines go.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use super::policy::{DriverHooks, DriverPolicy};
use crate::alerts::{Alert, AlertSink};
use crate::backend::Backend;
use crate::containers::executor::ExecEvent;
use crate::containers::runtime::{RoleSetup, Runtime, RuntimeEvent};
use crate::containers::spec::Role;
use crate::drivers::{LaunchContext, TwinOutcome, TwinPlan};
use crate::mqtt::{MqttHandle, SharedHandle};

use super::settings::DriverTuning;

/// A saturation alert as raised: title, description, metadata.
type Saturated = (String, String, Value);

pub struct Drivers {
    pub ctx: LaunchContext,
    alerts: Arc<Mutex<AlertSink>>,
    mqtt: SharedHandle,
    /// Twins that cannot run, by uuid: the problem title.
    problems: BTreeMap<String, String>,
    /// Metadata-change restarts (§8.3).
    meta: super::meta_restart::Tracker,
    /// Attached twin → the twin it is attached to (whose containers a settings change of a
    /// container-less attached twin restarts).
    parents: BTreeMap<String, String>,
    /// Twins with driver containers (the ones alerted about their devices and the host).
    managed: std::collections::BTreeSet<String>,
    /// Pinned camera devices that went missing (§5.13) and when they are next looked at.
    presence: super::camera::Presence,
    next_device_check: std::time::Instant,
    device_check_every: std::time::Duration,
    /// Per saturated host resource: its alert and the twins alerted (resolved on the same
    /// twins; a twin whose driver appears meanwhile is alerted too).
    saturation: BTreeMap<String, (Saturated, std::collections::BTreeSet<String>)>,
    /// The plan of every twin linked to this edge, by uuid.
    plans: BTreeMap<String, TwinPlan>,
    /// What driver images declare, as it is learnt.
    pub(super) discovery: super::discovery::Discovery,
    /// Twins no longer linked whose graphs are still to be removed (waiting for the engine's
    /// first list).
    graphs_gone: std::collections::BTreeSet<String>,
}

impl Drivers {
    /// The plan of every twin linked to this edge.
    pub fn plans(&self) -> impl Iterator<Item = &TwinPlan> {
        self.plans.values()
    }

    /// The driver role, and what it registers on the runtime (its hooks and policy).
    pub fn new(
        ctx: LaunchContext,
        engine: Arc<dyn crate::containers::engine::Engine>,
        tuning: &DriverTuning,
        mqtt: Option<MqttHandle>,
        alerts: AlertSink,
    ) -> (Self, RoleSetup) {
        let mqtt = SharedHandle::new(mqtt);
        let alerts = Arc::new(Mutex::new(alerts));
        let cards = super::card::Cards::new(tuning.card_update_interval);
        let policy = DriverPolicy {
            alerts: alerts.clone(),
            mqtt: mqtt.clone(),
            log_lines_per_second: tuning.log_lines_per_second,
            troubleshooting_url: tuning.troubleshooting_url.clone(),
            alerted: Default::default(),
            cards: cards.clone(),
        };
        let hooks = DriverHooks {
            config_dir: ctx.config_dir.clone(),
            mqtt: mqtt.clone(),
            alerts: alerts.clone(),
            cards: cards.clone(),
            engine,
            robots: Default::default(),
            nvp_applied: Default::default(),
            nvp_conf: ctx
                .forwarded
                .get("CYBERWAVE_NVPMODEL_CONF")
                .map(std::path::PathBuf::from)
                .unwrap_or_else(|| super::jetson_power::CONF.into()),
            owner: ctx.owner.clone(),
            edge_env: ctx.edge_env.clone(),
            bundle_session: super::navigation::new_session(),
        };
        let role = RoleSetup {
            role: Role::Driver,
            hooks: Arc::new(hooks),
            policy: Box::new(policy),
        };
        let drivers = Drivers {
            ctx,
            alerts,
            mqtt,
            problems: BTreeMap::new(),
            meta: Default::default(),
            parents: BTreeMap::new(),
            managed: Default::default(),
            presence: Default::default(),
            next_device_check: std::time::Instant::now() + tuning.device_check_every,
            device_check_every: tuning.device_check_every,
            saturation: BTreeMap::new(),
            plans: BTreeMap::new(),
            discovery: Default::default(),
            graphs_gone: Default::default(),
        };
        (drivers, role)
    }

    /// After a reload: the client, environment and workspace alerts are sent with.
    pub fn reconfigure_alerts(
        &mut self,
        backend: Backend,
        environment_uuid: Option<String>,
        workspace_uuid: Option<String>,
    ) {
        if let Ok(mut a) = self.alerts.lock() {
            a.reconfigure(backend, environment_uuid, workspace_uuid);
        }
    }

    /// A copy of the alert sink as configured now (for other roles after a reload).
    pub fn alerts(&self) -> AlertSink {
        self.alerts
            .lock()
            .map(|a| a.clone())
            .unwrap_or_else(|_| AlertSink::new(None, None, None))
    }

    /// The link after a reload; every helper thread sees it at once.
    pub fn set_mqtt(&mut self, mqtt: Option<MqttHandle>) {
        self.mqtt.set(mqtt);
    }

    /// New plans: problems alerted, twin files of container-less twins written, the desired
    /// containers handed to the runtime.
    /// `provisional`: the plans come from the offline cache a moment before the backend
    /// answers; an asset missing from the cache is not alerted (the answer brings it).
    pub fn set_plans(&mut self, runtime: &mut Runtime, plans: Vec<TwinPlan>, provisional: bool) {
        let before = std::mem::take(&mut self.plans);
        self.plans = plans
            .into_iter()
            .map(|p| (p.twin_uuid.clone(), p))
            .collect();
        if !provisional {
            let plans = &self.plans;
            self.graphs_gone
                .extend(before.into_keys().filter(|t| !plans.contains_key(t)));
        }
        let plans = &self.plans;
        self.graphs_gone.retain(|t| !plans.contains_key(t));
        self.apply_plans(runtime, provisional);
        self.remove_unlinked_graphs(runtime);
    }

    /// New plans for some twins (one twin's pulled metadata, with its parent and attached
    /// twins); every other twin keeps its plan.
    pub fn replan(&mut self, runtime: &mut Runtime, plans: Vec<TwinPlan>, provisional: bool) {
        for p in plans {
            self.plans.insert(p.twin_uuid.clone(), p);
        }
        self.apply_plans(runtime, provisional);
    }

    /// A remote restart: every image that declares a graph is pulled and read again.
    pub fn look_again(&mut self, runtime: &mut Runtime) {
        let graphs: Vec<String> = self
            .ctx
            .images
            .facts
            .iter()
            .filter(|(_, f)| {
                matches!(f, super::spec::ImageFacts::Known(l)
                    if l.labels.contains_key(super::compose::SCHEMA_LABEL))
            })
            .map(|(i, _)| i.clone())
            .collect();
        self.discovery.refresh_all(&graphs);
        self.discovery.send_due(runtime);
    }

    /// How many twins wait for their driver image's labels or their first token answer (their
    /// containers are not known yet: they run no driver).
    pub fn discovering(&self) -> usize {
        self.plans
            .values()
            .filter(|p| {
                matches!(
                    p.outcome,
                    TwinOutcome::Discovering(_) | TwinOutcome::AwaitingToken
                )
            })
            .count()
    }

    /// The twins that run on a twin-scoped token (or wait for one), with their scope.
    pub fn token_needs(&self) -> Vec<crate::drivers::tokens::TokenNeed> {
        self.plans
            .values()
            .filter_map(|p| p.token.clone())
            .collect()
    }

    /// Twins to plan again: what their driver image declares became known or changed.
    pub fn take_replans(&mut self) -> Vec<String> {
        self.discovery.take_replans()
    }

    /// The twins planned now (linked to this edge), by uuid.
    pub fn planned(&self) -> impl Iterator<Item = &str> {
        self.plans.keys().map(String::as_str)
    }

    fn apply_plans(&mut self, runtime: &mut Runtime, provisional: bool) {
        let plans = std::mem::take(&mut self.plans);
        let mut desired = BTreeMap::new();
        self.managed = plans
            .values()
            .filter(|p| matches!(p.outcome, TwinOutcome::Containers(_)))
            .map(|p| p.twin_uuid.clone())
            .collect();
        self.raise_saturation();
        self.parents = plans
            .values()
            .filter_map(|p| Some((p.twin_uuid.clone(), p.attach_parent.clone()?)))
            .collect();
        for p in plans.values() {
            match &p.outcome {
                TwinOutcome::Containers(specs) => {
                    self.meta
                        .launched_with(&p.twin_uuid, &p.twin_file["metadata"]);
                    // A kept container (adopted, or resting for its restart floor after a
                    // remote restart removed the files) still reads its file; launches write
                    // it anyway.
                    self.write_twin_file_if_missing(p);
                    for s in specs {
                        desired.insert(s.name.clone(), (s.clone(), p.twin_file.clone()));
                    }
                    if self.problems.remove(&p.twin_uuid).is_some()
                        && let Ok(a) = self.alerts.lock()
                    {
                        a.resolve(&p.twin_uuid, "driver_start_failure");
                    }
                }
                TwinOutcome::Problem { title, .. }
                    if provisional && title == super::words::ASSET_UNAVAILABLE =>
                {
                    log::info!(
                        "twin {}: its asset is not in the offline cache; waiting for the backend",
                        p.twin_uuid
                    );
                }
                TwinOutcome::Problem {
                    title,
                    detail,
                    technical,
                } => {
                    if self.problems.get(&p.twin_uuid) != Some(title)
                        && let Ok(a) = self.alerts.lock()
                    {
                        if let Some(t) = technical {
                            log::warn!("twin {}: {title}: {t}", p.twin_uuid);
                        }
                        let alert = Alert {
                            alert_type: "driver_start_failure",
                            name: title,
                            description: detail,
                            severity: "error",
                            twin_uuid: &p.twin_uuid,
                            metadata: technical.as_ref().map(|t| json!({ "technical_detail": t })),
                        };
                        a.raise(
                            &format!("driver_start_failure:{}:{title}", p.twin_uuid),
                            alert,
                        );
                        self.problems.insert(p.twin_uuid.clone(), title.clone());
                    }
                }
                TwinOutcome::Discovering(spec) => {
                    // Whatever of it runs is left alone until its image's labels say what the
                    // twin is (a lone container or a graph).
                    self.discovery.want(runtime, &p.twin_uuid, spec);
                }
                // Left alone until its token's first answer (the supervisor asks for it).
                TwinOutcome::AwaitingToken => {}
                TwinOutcome::CameraChild { .. } | TwinOutcome::FileOnly => {
                    // Its settings are read by its parent's driver (§8.3 restarts that).
                    self.meta
                        .launched_with(&p.twin_uuid, &p.twin_file["metadata"]);
                    self.write_twin_file_if_missing(p);
                }
            }
        }
        runtime.set_desired_from(Role::Driver, desired, provisional);
        self.plans = plans;
    }

    /// The graphs of twins no longer linked here (by the backend's answer) go as a unit, with
    /// the networks and volumes they created; only twins this process planned are judged (a
    /// graph of another edge sharing the engine and the fingerprint is not ours to remove).
    /// Called again after runtime events while it waits for the engine's first list.
    pub(super) fn remove_unlinked_graphs(&mut self, runtime: &mut Runtime) {
        if !self.graphs_gone.is_empty() && runtime.remove_graphs_of(Role::Driver, &self.graphs_gone)
        {
            self.graphs_gone.clear();
        }
    }

    /// Writes a twin's file from its plan when there is none. An existing file is the twin
    /// sync's: it merges backend changes with local edits not yet pushed (a plain rewrite here
    /// lost such an edit made just before a kill -9; found by the fault campaign).
    fn write_twin_file_if_missing(&self, p: &TwinPlan) {
        let path = crate::twins::file::path_for(&self.ctx.config_dir, &p.twin_uuid);
        if !path.is_file()
            && let Err(e) =
                crate::twins::file::write(&self.ctx.config_dir, &p.twin_uuid, &p.twin_file)
        {
            log::error!("twin file for {}: {e}", p.twin_uuid);
        }
    }

    /// Backend metadata reached a twin's file: its drivers may need a restart (§8.3).
    pub fn on_pulled(&mut self, twin: &str, metadata: &Value) {
        self.meta.pulled(twin, metadata, std::time::Instant::now());
    }

    /// When a metadata change next settles, or the pinned devices are next looked at (only
    /// while some device is pinned or was missing: otherwise there is nothing to look at).
    pub fn next_deadline(&self) -> Option<std::time::Instant> {
        let pinned = self
            .ctx
            .cameras
            .as_ref()
            .is_some_and(|c| !super::camera::pinned_devices(c, &self.managed).is_empty());
        let devices = (pinned || !self.presence.idle()).then_some(self.next_device_check);
        [self.meta.next_due(), devices].into_iter().flatten().min()
    }

    /// Re-reads the camera pins (a camera file changed); true when what drivers are told
    /// changed, so the plans are redone and exactly the drifted drivers recreated (§5.12).
    pub fn refresh_cameras(&mut self) -> bool {
        let files = super::camera::read(&self.ctx.config_dir, &self.ctx.camera_files);
        let cameras = files.config();
        self.ctx.camera_files = files;
        let v4l = super::camera::host_has_v4l();
        if cameras == self.ctx.cameras && v4l == self.ctx.host_has_v4l {
            return false;
        }
        log::info!("camera pins changed; drivers whose device changed are recreated");
        self.ctx.cameras = cameras;
        self.ctx.host_has_v4l = v4l;
        true
    }

    /// §5.13: a pinned `/dev` device of a driver's twin missing for two checks in a row raises
    /// `sensor_device_missing`; back again (or no longer pinned) resolves it. Stat calls only.
    pub fn check_devices(&mut self) {
        let now = std::time::Instant::now();
        if now < self.next_device_check {
            return;
        }
        self.next_device_check = now + self.device_check_every;
        let pinned = match &self.ctx.cameras {
            Some(c) => super::camera::pinned_devices(c, &self.managed),
            None => Vec::new(),
        };
        let observed: Vec<(String, String, bool)> = pinned
            .into_iter()
            .map(|(t, d)| {
                let exists = std::path::Path::new(&d).exists();
                (t, d, exists)
            })
            .collect();
        let Ok(a) = self.alerts.lock() else { return };
        for ev in self.presence.check(&observed) {
            match ev {
                super::camera::PresenceEvent::Missing { twin, device } => {
                    let w = super::words::sensor_device_missing(&device);
                    a.raise(
                        &format!("sensor_device_missing:{twin}:{device}"),
                        Alert {
                            alert_type: "sensor_device_missing",
                            name: w.title,
                            description: &w.description,
                            severity: "error",
                            twin_uuid: &twin,
                            metadata: Some(json!({ "device": device })),
                        },
                    )
                }
                super::camera::PresenceEvent::Resolve { twin } => {
                    a.resolve(&twin, "sensor_device_missing")
                }
            }
        }
    }

    /// Acts on settled metadata changes: sensor drivers are recreated (rate-limited), others
    /// get a `driver_restart_needed` alert.
    pub fn check_meta_restarts(&mut self, runtime: &mut Runtime) {
        use super::meta_restart::{Decision, Target};
        let twins = self.meta.pending_twins();
        if twins.is_empty() {
            return;
        }
        let now = std::time::Instant::now();
        let all: Vec<(crate::containers::spec::ContainerSpec, Value)> = runtime
            .snapshot()
            .into_iter()
            .filter(|(s, _)| s.role == Role::Driver)
            .map(|(s, v)| (s.clone(), v))
            .collect();
        for twin in twins {
            // The twin's own containers, else those of the twin it is attached to.
            let own = all.iter().any(|(s, _)| s.owner == twin);
            let target_twin = super::meta_restart::target_twin(
                &twin,
                own,
                self.parents.get(&twin).map(String::as_str),
            );
            let targets: Vec<Target> = all
                .iter()
                .filter(|(s, _)| s.owner == *target_twin)
                .map(|(s, v)| {
                    let running = v["state"] == "running";
                    let started = v["since"]
                        .as_f64()
                        .filter(|_| running)
                        .and_then(crate::instant_of_epoch);
                    Target {
                        name: s.name.clone(),
                        image: s.image.clone(),
                        running,
                        started,
                        floor: s.floor.is_some(),
                    }
                })
                .collect();
            let keys = self.meta.changed_keys(&twin);
            let alert = |t: &'static str, w: super::words::Words| {
                if let Ok(a) = self.alerts.lock() {
                    a.raise(
                        &format!("{t}:{twin}:{keys:?}"),
                        Alert {
                            alert_type: t,
                            name: w.title,
                            description: &w.description,
                            severity: "warning",
                            twin_uuid: &twin,
                            metadata: Some(json!({"keys": keys})),
                        },
                    );
                }
            };
            match self.meta.decide(&twin, &targets, now) {
                Decision::Wait | Decision::Taken => {}
                Decision::Restart(names) => {
                    log::info!("twin {twin}: settings {keys:?} changed; restarting {names:?}");
                    runtime.recreate_names(&names);
                }
                Decision::NeedsManualRestart => {
                    alert("driver_restart_needed", super::words::restart_needed())
                }
                Decision::Suppressed => alert(
                    "driver_metadata_restart_suppressed",
                    super::words::restarts_suppressed(),
                ),
            }
        }
    }

    /// The host saturated or cleared (§11.2): every twin with a driver hears of it.
    pub fn on_saturation(&mut self, ev: crate::health::saturation::SaturationEvent) {
        use crate::health::saturation::SaturationEvent as E;
        match ev {
            E::Raise {
                resource,
                title,
                description,
                metadata,
            } => {
                let kind = resource.alert_type();
                self.saturation
                    .insert(kind, ((title, description, metadata), Default::default()));
                self.raise_saturation();
            }
            E::Resolve { resource } => {
                let kind = resource.alert_type();
                let mut twins = self
                    .saturation
                    .remove(&kind)
                    .map(|(_, t)| t)
                    .unwrap_or_default();
                twins.extend(self.managed.iter().cloned());
                if let Ok(a) = self.alerts.lock() {
                    for twin in &twins {
                        a.resolve(twin, &kind);
                    }
                }
            }
        }
    }

    /// Raises each open saturation on the twins with drivers that do not have it yet.
    fn raise_saturation(&mut self) {
        let Ok(a) = self.alerts.lock() else { return };
        for (kind, ((title, description, metadata), alerted)) in &mut self.saturation {
            let new: Vec<String> = self
                .managed
                .iter()
                .filter(|t| !alerted.contains(*t))
                .cloned()
                .collect();
            for twin in &new {
                a.raise(
                    &format!("{kind}:{twin}:{}", crate::epoch_seconds() as u64),
                    Alert {
                        alert_type: kind,
                        name: title,
                        description,
                        severity: "warning",
                        twin_uuid: twin,
                        metadata: Some(metadata.clone()),
                    },
                );
                alerted.insert(twin.clone());
            }
        }
    }

    /// What the engine says that shapes driver specs (NVIDIA as Docker's default runtime).
    pub fn on_event(&mut self, ev: &RuntimeEvent) {
        self.discovery.on_event(ev, &mut self.ctx.images);
        if let RuntimeEvent::Exec(ExecEvent::Runtimes { nvidia_default, .. }) = ev
            && *nvidia_default != self.ctx.nvidia_default_runtime
        {
            self.ctx.nvidia_default_runtime = *nvidia_default;
            log::info!("NVIDIA runtime is Docker's default: GPU drivers get --gpus");
        }
    }
}

mod status;
#[cfg(test)]
mod tests;
