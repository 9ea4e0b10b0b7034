//! What a role supplies to the runtime besides its specs: the [`Setup`] it starts with and
//! the [`Policy`] that says what happens when its containers change.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::follow::Sink;
use super::launch::{LaunchFailure, LaunchHooks};
use super::runtime::Tuning;
use super::spec::ContainerSpec;
use crate::docker::Docker;

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
}

/// Where the runtime keeps its files and whose containers it may clean up.
pub struct Setup {
    pub docker: Docker,
    pub config_dir: PathBuf,
    /// This edge's fingerprint: the owner label of what it creates.
    pub owner: String,
    pub tuning: Tuning,
    pub hooks: Arc<dyn LaunchHooks>,
    pub policy: Box<dyn Policy>,
}
