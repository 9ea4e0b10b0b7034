//! The daemon. Boot (`wire`) reads the settings and starts every thread; the supervisor
//! (`supervisor`) then owns all state on one thread and handles one event at a time
//! (`sources`): other threads (signals, MQTT link, backend jobs, container runtime, health
//! publisher, control socket) send it events; it decides. The roles on the container runtime
//! answer it through `containers::supervised::Supervised`.
//!
//! Inside `edge/`, modules import each other, never this file: it only lists them and
//! offers the daemon's entry points.

mod backend_job;
mod boot;
pub mod commands;
mod data;
pub mod desired;
mod error;
mod handlers;
mod link;
pub mod manifest;
mod network;
pub mod node;
mod plans;
mod portal;
mod report;
mod restart;
mod restart_machine;
mod sources;
mod startup;
mod state;
mod supervisor;
mod tokens;
mod wire;

pub use self::boot::load_settings;
pub use self::error::DaemonError;
pub use self::sources::TICK;
pub use self::wire::RunOptions;

/// Runs the daemon until SIGTERM/SIGINT. Returns Ok on a clean shutdown.
pub fn run(opts: RunOptions) -> Result<(), DaemonError> {
    wire::boot(opts)?.run()
}
