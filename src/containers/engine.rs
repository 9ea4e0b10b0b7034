//! Which container engine this edge drives. Everything in `containers` and above holds an
//! `Arc<dyn Engine>` ([`crate::engine`]) made here, once, at start; nothing above this line
//! names an engine's implementation.

use std::sync::Arc;
use std::time::Duration;

pub use crate::engine::Engine;

/// The Docker engine through `docker_bin`, with the deadlines of `create` and `rm`
/// (`CYBERWAVE_DRIVER_CREATE_TIMEOUT_SECONDS`, `CYBERWAVE_DRIVER_REMOVE_TIMEOUT_SECONDS`).
pub fn open(
    docker_bin: &str,
    create_timeout: Duration,
    remove_timeout: Duration,
) -> Arc<dyn Engine> {
    Arc::new(crate::docker::Docker::new(docker_bin).with_timeouts(create_timeout, remove_timeout))
}

/// The engine with its default deadlines (the control commands, the health monitor).
pub fn open_default(docker_bin: &str) -> Arc<dyn Engine> {
    Arc::new(crate::docker::Docker::new(docker_bin))
}
