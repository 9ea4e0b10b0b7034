//! What a role supplies to the runtime besides its specs: its launch hooks and the
//! [`Policy`] that says what happens when its containers change ([`RoleSetup`]); and the
//! runtime's own [`Setup`]. One runtime serves every role: one desired map, one container
//! list per tick, one events stream.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

use super::follow::Sink;
use super::launch::{LaunchFailure, LaunchHooks};
use super::spec::{ContainerSpec, Role};
use crate::engine::Engine;

/// Knobs of the runtime (reference §11.3 names, read by the role's settings).
#[derive(Debug, Clone)]
pub struct Tuning {
    pub restart_loop_threshold: usize,
    pub restart_loop_window: Duration,
    pub removed_revival: Option<Duration>,
    pub probe: Duration,
    pub retry_base: Duration,
    pub retry_cap: Duration,
    /// Running this long after a retry re-arms the breaker.
    pub rearm_after: Duration,
    pub log_tail: u64,
    /// `None` when `CYBERWAVE_SKIP_PERIODIC_DOCKER_CLEANUP` is set.
    pub cleanup: Option<CleanupTuning>,
    /// `CYBERWAVE_UPDATE_PROBATION_SECONDS` (120): how long a new spec runs before it is the
    /// last good one.
    pub probation: Duration,
    /// `CYBERWAVE_UPDATE_LOCK_MAX_DEFER_SECONDS` (3600; `None`: 0, no limit): how long a held
    /// update lock defers an update that is ready to switch.
    pub lock_max_defer: Option<Duration>,
    /// `CYBERWAVE_DISK_RESERVE_MB` (512): free space pulls and model downloads leave.
    pub disk_reserve_mb: u64,
    /// `CYBERWAVE_DRIVER_DEPENDENCY_HEALTH_POLL_SECONDS` (2) / `…_TIMEOUT_SECONDS` (180): how
    /// often a start waiting for a dependency's health looks again, and how long it waits.
    pub gate_poll: Duration,
    pub gate_timeout: Duration,
}

#[cfg(test)]
impl Tuning {
    /// Knobs for unit tests: a loop is more than `threshold` deaths in a minute, retries
    /// wait 30 s (longer than any test), no cleanup.
    pub fn example(threshold: usize) -> Self {
        Tuning {
            restart_loop_threshold: threshold,
            restart_loop_window: Duration::from_secs(60),
            removed_revival: None,
            probe: Duration::from_secs(2),
            retry_base: Duration::from_secs(30),
            retry_cap: Duration::from_secs(300),
            rearm_after: Duration::from_secs(300),
            log_tail: 10,
            cleanup: None,
            probation: Duration::from_secs(120),
            lock_max_defer: Some(Duration::from_secs(3600)),
            disk_reserve_mb: 0,
            gate_poll: Duration::from_secs(2),
            gate_timeout: Duration::from_secs(180),
        }
    }
}

#[derive(Debug, Clone)]
pub struct CleanupTuning {
    pub container_interval: Duration,
    pub image_interval: Duration,
    /// `CYBERWAVE_VOLUME_PRUNE_INTERVAL_SECONDS` (10800).
    pub volume_interval: Duration,
    pub sd_card_threshold: f64,
}

/// A restart loop the breaker stopped.
#[derive(Debug, Clone)]
pub struct Loop {
    pub deaths_in_window: usize,
    pub deaths_total: u64,
    pub window: Duration,
    pub retry_in: Duration,
}

/// What a role says and does when its containers change. Called on the supervisor thread.
pub trait Policy: Send {
    /// The container came up (after a launch).
    fn up(&mut self, spec: &ContainerSpec, id: &str);
    fn launch_failed(&mut self, spec: &ContainerSpec, failure: &LaunchFailure, retry_in: Duration);
    fn restart_loop(&mut self, spec: &ContainerSpec, l: &Loop);
    /// A container that was running is not any more (`status`: `exited`, `removed`, …).
    fn went_down(&mut self, spec: &ContainerSpec, status: &str);
    /// Where the running container's log lines go.
    fn log_sink(&self, spec: &ContainerSpec) -> Sink;
    /// An update of `spec` waited `waited` for the update locks of `holders` and goes ahead
    /// anyway (the maximum deferral passed).
    fn lock_overridden(&mut self, _spec: &ContainerSpec, _holders: &[String], _waited: Duration) {}
    /// `failed` did not pass its probation (`why`); `back`, the last good spec, runs again.
    fn rolled_back(
        &mut self,
        _failed: &ContainerSpec,
        _why: &super::updates::Failed,
        _back: &super::updates::Good,
    ) {
    }
}

/// Where the runtime keeps its files and whose containers it may clean up.
pub struct Setup {
    pub engine: Arc<dyn Engine>,
    pub config_dir: PathBuf,
    /// This edge's fingerprint: the owner label of what it creates.
    pub owner: String,
    pub tuning: Tuning,
}

/// One role on the runtime: its launch hooks and its policy. Its containers are the
/// desired ones whose spec has this role.
pub struct RoleSetup {
    pub role: Role,
    pub hooks: Arc<dyn LaunchHooks>,
    pub policy: Box<dyn Policy>,
}

/// The launch hooks of every role, chosen by the spec's role (shared with the launcher
/// thread, so roles can be added after start).
#[derive(Clone, Default)]
pub struct RoleHooks(pub Arc<Mutex<BTreeMap<Role, Arc<dyn LaunchHooks>>>>);

impl RoleHooks {
    fn of(&self, role: Role) -> Option<Arc<dyn LaunchHooks>> {
        self.0.lock().ok().and_then(|m| m.get(&role).cloned())
    }
}

impl LaunchHooks for RoleHooks {
    fn prepare(&self, spec: &ContainerSpec, payload: &Value) -> Result<(), LaunchFailure> {
        match self.of(spec.role) {
            Some(h) => h.prepare(spec, payload),
            None => Err(LaunchFailure {
                phase: "no_role",
                message: format!("no {:?} role is registered", spec.role),
            }),
        }
    }

    fn progress(&self, spec: &ContainerSpec, image: &str, message: &str) {
        if let Some(h) = self.of(spec.role) {
            h.progress(spec, image, message);
        }
    }

    fn pull_progress(&self, spec: &ContainerSpec, patch: &Value) {
        if let Some(h) = self.of(spec.role) {
            h.pull_progress(spec, patch);
        }
    }

    fn pull_line(&self, spec: &ContainerSpec, image: &str, line: &str) {
        if let Some(h) = self.of(spec.role) {
            h.pull_line(spec, image, line);
        }
    }

    fn before_start(&self, specs: &[&ContainerSpec]) {
        let mut roles: Vec<Role> = specs.iter().map(|s| s.role).collect();
        roles.dedup();
        for role in roles {
            let mine: Vec<&ContainerSpec> =
                specs.iter().copied().filter(|s| s.role == role).collect();
            if let Some(h) = self.of(role) {
                h.before_start(&mine);
            }
        }
    }

    fn derive(
        &self,
        spec: &ContainerSpec,
        image: &crate::engine::ImageConfig,
    ) -> std::collections::BTreeMap<String, String> {
        self.of(spec.role)
            .map(|h| h.derive(spec, image))
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Named(&'static str);

    impl LaunchHooks for Named {
        fn prepare(&self, _: &ContainerSpec, _: &Value) -> Result<(), LaunchFailure> {
            Err(LaunchFailure {
                phase: self.0,
                message: String::new(),
            })
        }
        fn progress(&self, _: &ContainerSpec, _: &str, _: &str) {}
    }

    #[test]
    fn hooks_are_chosen_by_the_spec_role() {
        let hooks = RoleHooks::default();
        if let Ok(mut m) = hooks.0.lock() {
            m.insert(
                Role::Driver,
                Arc::new(Named("driver")) as Arc<dyn LaunchHooks>,
            );
            m.insert(
                Role::Worker,
                Arc::new(Named("worker")) as Arc<dyn LaunchHooks>,
            );
        }
        let phase = |r| {
            hooks
                .prepare(&super::super::spec::example(r), &Value::Null)
                .unwrap_err()
                .phase
        };
        assert_eq!(phase(Role::Driver), "driver");
        assert_eq!(phase(Role::Worker), "worker");
        assert_eq!(phase(Role::Router), "no_role");
    }
}
