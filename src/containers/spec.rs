//! What the runtime runs: one container's exact spec, whatever its role. Roles build it (a
//! driver from its twin, the worker from the environment); the runtime only creates, starts,
//! adopts (by `spec_hash`) and heals it.

use std::collections::BTreeMap;
use std::path::Path;

/// Which kind of managed container: each role writes its spec and its policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    Driver,
    Worker,
    Router,
    /// The remote-access tunnel (frpc): runs once per session, never revived.
    Tunnel,
}

/// When the launcher pulls a spec's image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pull {
    /// Every launch (mutable tags such as `latest`; drivers).
    Always,
    /// Only when the engine has no copy (immutable tags: a pinned version, a digest).
    IfMissing,
}

/// One container to run.
#[derive(Clone, PartialEq)]
pub struct ContainerSpec {
    pub name: String,
    pub role: Role,
    /// What it serves: a twin uuid for a driver, the environment for the worker.
    pub owner: String,
    /// A human name for logs and `status` (the twin's name for a driver).
    pub title: String,
    pub service: Option<String>,
    /// Image after tag rules (Jetson variant first when applicable).
    pub image: String,
    /// Jetson: the original tag, tried when the `jetson-` variant cannot be pulled.
    pub fallback_image: Option<String>,
    /// `docker create` options before the image, except `--env-file` (added at launch).
    pub options: Vec<String>,
    /// Environment, written to a 0600 env file so secrets never reach argv. Values may be
    /// secrets: `Debug` shows only the names.
    pub env: BTreeMap<String, String>,
    pub command: Vec<String>,
    pub spec_hash: String,
    pub restart: String,
    pub pull: Pull,
    /// Restart floor (a profile's `min_restart_interval_s`): a running container is kept even
    /// when its spec changed, and a stopped one is started again only this long after it went
    /// down (hardware that must rest between runs).
    pub floor: Option<std::time::Duration>,
    /// Its own startup probe (the worker's `CYBERWAVE_WORKER_STARTUP_PROBE_SECONDS`); `None`:
    /// the runtime's (drivers: `CYBERWAVE_DRIVER_STARTUP_PROBE_SECONDS`).
    pub probe: Option<std::time::Duration>,
    /// Pull attempts within one launch, with backoff (the worker's
    /// `CYBERWAVE_WORKER_IMAGE_PULL_RETRIES`, 3); drivers pull once per launch (their launch
    /// backoff retries).
    pub pull_attempts: u32,
    /// Runs until it exits, once: never revived, restarted or relaunched by the runtime after
    /// it was seen; its role decides what follows (the remote-access tunnel reports the exit
    /// and removes it).
    pub once: bool,
    /// Its place in a service graph (networks, start order, what it needs created).
    pub links: Links,
}

/// What a container of a service graph (an image-declared Compose topology, inline
/// `services`) needs around it; empty for a lone container.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Links {
    /// Networks connected after create, before start (`docker create` takes one).
    pub extra_networks: Vec<String>,
    /// Containers it starts after.
    pub after: Vec<Gate>,
    /// Networks and volumes it uses that are created, labelled ours, when missing.
    pub resources: Vec<Resource>,
}

/// A dependency of a container's start (`depends_on`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gate {
    /// The container it waits for.
    pub name: String,
    /// `service_healthy`: until Docker says healthy (or it has no healthcheck, or has exited,
    /// or the wait's deadline passed); otherwise until it was started.
    pub healthy: bool,
}

/// A network or volume a graph uses: created when missing (labelled with this edge and the
/// graph's owner, so it goes with the graph), unless declared `external`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Resource {
    pub kind: ResourceKind,
    pub name: String,
    pub external: bool,
}

pub use crate::engine::ResourceKind;

impl std::fmt::Debug for ContainerSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContainerSpec")
            .field("name", &self.name)
            .field("role", &self.role)
            .field("owner", &self.owner)
            .field("image", &self.image)
            .field("options", &self.options)
            .field("env", &self.env.keys().collect::<Vec<_>>())
            .field("command", &self.command)
            .field("spec_hash", &self.spec_hash)
            .finish_non_exhaustive()
    }
}

impl ContainerSpec {
    /// Its `--stop-timeout` (Docker's default 10 s when it sets none).
    pub fn stop_timeout_s(&self) -> u64 {
        self.options
            .iter()
            .position(|o| o == "--stop-timeout")
            .and_then(|i| self.options.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(10)
    }

    /// Full `docker create` argv (without the binary) for an env file at `env_file`.
    pub fn create_argv(&self, env_file: &Path) -> Vec<String> {
        let mut argv = vec!["create".to_string()];
        argv.extend(self.options.iter().cloned());
        argv.push("--env-file".into());
        argv.push(env_file.display().to_string());
        argv.push(self.image.clone());
        argv.extend(self.command.iter().cloned());
        argv
    }

    /// Env file text: `KEY=VALUE` lines (values cannot carry newlines in this format). A name
    /// that is not `[A-Za-z_][A-Za-z0-9_]*` is left out: it could otherwise smuggle a line in.
    pub fn env_file_text(&self) -> String {
        let mut s = String::new();
        for (k, v) in &self.env {
            if !valid_env_name(k) {
                log::warn!(
                    "{}: environment name {k:?} left out (not a valid name)",
                    self.name
                );
                continue;
            }
            s.push_str(k);
            s.push('=');
            s.push_str(&v.replace(['\n', '\r'], " "));
            s.push('\n');
        }
        s
    }
}

/// `[A-Za-z_][A-Za-z0-9_]*`: what a shell, Docker's env files and every runtime accept.
pub fn valid_env_name(k: &str) -> bool {
    let mut cs = k.chars();
    cs.next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && cs.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A minimal spec for unit tests of any module.
#[cfg(test)]
pub fn example(role: Role) -> ContainerSpec {
    ContainerSpec {
        name: "c".into(),
        role,
        owner: "o".into(),
        title: "t".into(),
        service: None,
        image: "i".into(),
        fallback_image: None,
        options: Vec::new(),
        env: [("CYBERWAVE_API_KEY".to_string(), "cw_secret".to_string())].into(),
        command: Vec::new(),
        spec_hash: "h".into(),
        restart: "no".into(),
        pull: Pull::Always,
        floor: None,
        probe: None,
        pull_attempts: 1,
        once: false,
        links: Default::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_env_values() {
        let d = format!("{:?}", example(Role::Driver));
        assert!(
            d.contains("CYBERWAVE_API_KEY") && !d.contains("cw_secret"),
            "{d}"
        );
    }
}
