//! Docker, one implementation of [`crate::engine::Engine`] (`engine.rs`): the `docker` CLI,
//! every call bounded by a deadline (the child is killed when it overruns), with errors that
//! name the command and carry Docker's own message; the Engine API socket for the container
//! list and the streams (`api.rs`); what Docker prints read into the engine's vocabulary
//! (`shape.rs`); `docker pull` line by line (`pulling.rs`).

pub mod api;
mod engine;
mod pulling;
mod resources;
pub mod shape;

use std::process::{Child, Command};
use std::time::Duration;

use crate::process::{RunError, run_with_deadline};

pub const PS_TIMEOUT: Duration = Duration::from_secs(10);
pub const INSPECT_TIMEOUT: Duration = Duration::from_secs(10);
pub const CREATE_TIMEOUT: Duration = Duration::from_secs(30);
pub const START_TIMEOUT: Duration = Duration::from_secs(30);
pub const RM_TIMEOUT: Duration = Duration::from_secs(60);
pub const PULL_TIMEOUT: Duration = Duration::from_secs(600);

pub use shape::ShapeError;

use crate::engine::{EngineError, LABEL_CREATED_BY, error_summary};

/// The docker CLI.
#[derive(Debug, Clone)]
pub struct Docker {
    bin: String,
    /// Deadlines of `docker create` and `docker rm` (`CYBERWAVE_DRIVER_CREATE_TIMEOUT_SECONDS`,
    /// `CYBERWAVE_DRIVER_REMOVE_TIMEOUT_SECONDS`).
    create_timeout: Duration,
    remove_timeout: Duration,
    /// The engine's API socket (used while it exists; the CLI otherwise).
    socket: Option<std::path::PathBuf>,
}

impl Docker {
    pub fn new(bin: &str) -> Self {
        Docker {
            bin: bin.to_string(),
            create_timeout: CREATE_TIMEOUT,
            remove_timeout: RM_TIMEOUT,
            socket: api::configured_socket(),
        }
    }

    /// The same client on another engine's Docker-compatible API socket (Podman's).
    pub fn with_socket(mut self, socket: Option<std::path::PathBuf>) -> Self {
        self.socket = socket;
        self
    }

    /// The API socket, when it is there.
    pub fn socket(&self) -> Option<std::path::PathBuf> {
        self.socket.clone().filter(|p| p.exists())
    }

    /// The same client with other `create` and `rm` deadlines.
    pub fn with_timeouts(mut self, create: Duration, remove: Duration) -> Self {
        self.create_timeout = create;
        self.remove_timeout = remove;
        self
    }

    pub fn bin(&self) -> &str {
        &self.bin
    }

    /// Runs `docker <args>`; a non-zero exit is [`EngineError::Failed`] with Docker's stderr.
    pub fn run(&self, args: &[&str], deadline: Duration) -> Result<String, EngineError> {
        let command = describe(args);
        let mut cmd = Command::new(&self.bin);
        cmd.args(args);
        match run_with_deadline(cmd, deadline) {
            Ok(out) if out.status == Some(0) => Ok(out.stdout),
            Ok(out) => Err(EngineError::Failed {
                command,
                code: out.status,
                message: error_summary(&out.stderr),
            }),
            Err(RunError::Spawn(detail)) => Err(EngineError::Spawn { command, detail }),
            Err(RunError::TimedOut(after)) => Err(EngineError::TimedOut { command, after }),
        }
    }
}

pub(super) fn kill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// `docker <args>` for messages; never includes env values (we pass env through files).
fn describe(args: &[&str]) -> String {
    let shown: Vec<&str> = args.iter().take(6).copied().collect();
    let more = if args.len() > 6 { " …" } else { "" };
    format!("docker {}{more}", shown.join(" "))
}

#[cfg(test)]
mod tests;
