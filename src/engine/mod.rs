//! The seam around a container engine: the [`Engine`] trait and the engine's own vocabulary
//! ([`Container`], [`Details`], [`ContainerEvent`], [`EngineError`], log and event streams).
//! Everything above this module — the container runtime, every role, the control commands —
//! talks to an engine only through it; the engines themselves (Docker, in `src/docker`, today) sit
//! beside it and implement it, and a recording fake ([`fake`]) stands in for them in unit
//! tests (the pattern of youki's `Syscall` / `TestHelperSyscall`).
//!
//! This module is the floor of the container stack: it imports nothing of the crate but
//! `process` (owned children), so an engine implementation never reaches up.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

pub mod args;
mod error;
#[cfg(test)]
pub mod fake;
pub mod pull;
mod stream;

pub use error::{EngineError, error_summary};
pub use stream::{
    EventStream, LineStream, Lines, LogStart, MAX_LINE, StreamHandle, split_timestamp,
};

/// `cyberwave-edge-core/<version>`, on every container our runtime creates (any role): what
/// `ps` and the events stream select on.
pub const LABEL_CREATED_BY: &str = "io.cyberwave.edge.created-by";
/// The fingerprint of the edge that created a container or volume: cleanup touches only its
/// own.
pub const LABEL_OWNER: &str = "io.cyberwave.edge.owner";

/// A container as the engine lists it (`docker ps -a`, `GET /containers/json`).
#[derive(Debug, Clone, PartialEq)]
pub struct Container {
    pub id: String,
    pub name: String,
    pub image: String,
    /// The id of its image (`sha256:…`) where the engine lists it (the Engine API does, the
    /// CLI's `ps` does not: empty then).
    pub image_id: String,
    /// `created`, `running`, `paused`, `restarting`, `removing`, `exited`, `dead`.
    pub state: String,
    /// Human status, e.g. `Exited (1) 3 seconds ago`.
    pub status: String,
    pub labels: BTreeMap<String, String>,
}

impl Container {
    /// Exit code from the `Exited (N) …` status text.
    pub fn exit_code(&self) -> Option<i32> {
        let rest = self.status.strip_prefix("Exited (")?;
        rest.split(')').next()?.trim().parse().ok()
    }
}

/// What we read of one container's details (`docker inspect`).
#[derive(Debug, Clone, PartialEq)]
pub struct Details {
    pub id: String,
    pub name: String,
    pub status: String,
    pub running: bool,
    pub exit_code: i64,
    pub restart_count: u64,
    pub started_at: String,
    pub finished_at: String,
    pub image: String,
    /// The id of the image it runs (`sha256:…`): what a rollback starts again, whatever a
    /// tag points at by then.
    pub image_id: String,
    pub labels: BTreeMap<String, String>,
    pub env: Vec<String>,
    pub mounts: Vec<Value>,
    pub restart_policy: String,
    /// `Config.StopTimeout`: the container's own grace period (`--stop-timeout`), if set.
    pub stop_timeout_s: Option<u64>,
}

#[cfg(test)]
impl Details {
    /// A container in `status` for unit tests; other fields empty or the engine's defaults.
    pub fn example(status: &str, running: bool) -> Self {
        Details {
            id: "id".into(),
            name: "c".into(),
            status: status.into(),
            running,
            exit_code: 0,
            restart_count: 0,
            started_at: String::new(),
            finished_at: String::new(),
            image: String::new(),
            image_id: String::new(),
            labels: BTreeMap::new(),
            env: Vec::new(),
            mounts: Vec::new(),
            restart_policy: "no".into(),
            stop_timeout_s: None,
        }
    }
}

/// One event of a managed container (`start`, `die`, `destroy`, …).
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerEvent {
    pub action: String,
    pub id: String,
    pub name: String,
    pub exit_code: Option<i32>,
    pub labels: BTreeMap<String, String>,
}

/// What an image declares: its `Config.Env` and `Config.Labels`, and its id.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ImageConfig {
    /// `sha256:…`; empty when the engine could not say.
    pub id: String,
    pub env: Vec<String>,
    pub labels: BTreeMap<String, String>,
}

/// The objects a service graph creates around its containers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ResourceKind {
    Network,
    Volume,
}

impl ResourceKind {
    /// The CLI's word for it (`docker network …`, `docker volume …`).
    pub fn as_str(self) -> &'static str {
        match self {
            ResourceKind::Network => "network",
            ResourceKind::Volume => "volume",
        }
    }
}

/// One running container's share of the host (`docker stats --no-stream`), in percent.
#[derive(Debug, Clone, PartialEq)]
pub struct Usage {
    pub name: String,
    pub cpu_percent: f64,
    pub memory_percent: f64,
}

/// The runtimes an engine knows and its default one (`nvidia` for GPUs).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Runtimes {
    pub known: Vec<String>,
    pub default: String,
}

impl Runtimes {
    /// The engine knows an `nvidia` runtime (default or not).
    pub fn nvidia(&self) -> bool {
        self.known.iter().any(|r| r == "nvidia")
    }

    /// NVIDIA is the engine's default runtime.
    pub fn nvidia_default(&self) -> bool {
        self.nvidia() && self.default == "nvidia"
    }
}

/// Everything the edge needs from a container engine. Every call is bounded in time; the
/// two streams end when the engine closes them or their [`StreamHandle`] is closed.
pub trait Engine: Send + Sync {
    /// The engine's name for messages (`docker`).
    fn name(&self) -> &str;
    /// Its version, as it says (for `status` and the host facts; `None`: it did not answer).
    fn version(&self) -> Option<String> {
        None
    }
    /// Whether the engine itself restarts a container by its restart policy (after it exits
    /// and after a reboot). Docker's daemon does; where no daemon does, the runtime revives
    /// exited containers at once instead of leaving the engine time to.
    fn restarts_containers(&self) -> bool {
        true
    }
    /// Every container this edge's runtime manages (any role, any state): one call per tick.
    fn ps(&self) -> Result<Vec<Container>, EngineError>;
    fn inspect(&self, name: &str) -> Result<Option<Details>, EngineError>;
    /// Details of every running container, ours or not (the robot-conflict check).
    fn running(&self) -> Result<Vec<Details>, EngineError>;
    fn image_exists(&self, image: &str) -> Result<bool, EngineError>;
    /// What `image` declares; empty when the engine cannot say within its deadline (callers
    /// treat that as "declares nothing").
    fn image_config(&self, image: &str) -> ImageConfig;
    /// Pulls `image`, handing each progress line to `on_line`; `anonymous`: without the
    /// stored registry credentials (the retry after an `unauthorized`).
    fn pull(
        &self,
        image: &str,
        anonymous: bool,
        on_line: &mut dyn FnMut(&str),
    ) -> Result<(), EngineError>;
    /// `create` with a full argv (after `create`); returns the id.
    /// The bytes the registry's manifest of `image` announces for this machine, when the
    /// registry answers within the engine's deadline (the disk reserve's estimate).
    fn announced_size(&self, image: &str) -> Option<u64>;
    fn create(&self, argv: &[String]) -> Result<String, EngineError>;
    fn start(&self, name: &str) -> Result<(), EngineError>;
    /// Renames a container (running or not): a switch creates the successor beside the
    /// running one and swaps their names before the stop, so downtime is a stop and a start.
    fn rename(&self, from: &str, to: &str) -> Result<(), EngineError>;
    fn stop(&self, name: &str, timeout_s: u64) -> Result<(), EngineError>;
    /// Force-removes a container with its anonymous volumes; a missing one is not an error.
    /// SIGKILLs whatever still runs in it: call it only through `containers::retire`, which
    /// stops the container gracefully first.
    fn force_remove(&self, name: &str) -> Result<(), EngineError>;
    fn set_restart_policy(&self, name: &str, policy: &str) -> Result<(), EngineError>;
    fn remove_image(&self, image: &str) -> Result<(), EngineError>;
    /// Volumes no container uses that carry this edge's owner label.
    fn unused_volumes(&self, owner: &str) -> Result<Vec<String>, EngineError>;
    fn remove_volume(&self, name: &str) -> Result<(), EngineError>;
    /// Creates the network or volume `name` with `labels` unless one of that name exists;
    /// `Ok(true)` when it was created.
    fn ensure_resource(
        &self,
        kind: ResourceKind,
        name: &str,
        labels: &[(String, String)],
    ) -> Result<bool, EngineError>;
    /// Whether a network or volume of that name exists.
    fn resource_exists(&self, kind: ResourceKind, name: &str) -> Result<bool, EngineError>;
    /// Connects a created container to another network.
    fn connect_network(&self, network: &str, container: &str) -> Result<(), EngineError>;
    /// Networks or volumes carrying this edge's owner label: (name, value of `label`).
    fn owned_resources(
        &self,
        kind: ResourceKind,
        owner: &str,
        label: &str,
    ) -> Result<Vec<(String, String)>, EngineError>;
    /// Removes a network or volume (the engine refuses one still in use).
    fn remove_resource(&self, kind: ResourceKind, name: &str) -> Result<(), EngineError>;
    /// Runs a short-lived helper container to its end and returns what it printed:
    /// `run --rm` with `args` (options, image, command), within `deadline`.
    fn run_helper(
        &self,
        args: &[String],
        deadline: std::time::Duration,
    ) -> Result<String, EngineError>;
    fn runtimes(&self) -> Result<Runtimes, EngineError>;
    /// Where the engine keeps images, containers and their logs (the disk that fills).
    fn data_root(&self) -> PathBuf;
    /// Every running container's CPU and memory share.
    fn usage(&self) -> Result<Vec<Usage>, EngineError>;
    /// The events of every managed container, as they happen.
    fn events(&self) -> Result<EventStream, EngineError>;
    /// A container's log lines (stdout and stderr), each starting with its RFC 3339
    /// timestamp, from `from` on, following until the container stops.
    fn follow_logs(&self, name: &str, from: LogStart) -> Result<LineStream, EngineError>;
    /// The engine's own command that prints a container's last `tail` log lines (and follows
    /// them): `worker logs` in a terminal.
    fn logs_command(&self, name: &str, tail: u64, follow: bool) -> Command;
}
