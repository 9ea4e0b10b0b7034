//! Podman, the second implementation of [`crate::engine::Engine`]. Podman's CLI and its
//! Docker-compatible API socket take Docker's words for nearly everything, so this engine is
//! the Docker one pointed at `podman` and Podman's socket (rootful `/run/podman/podman.sock`,
//! `CYBERWAVE_PODMAN_SOCKET`), with the differences handled here, each in one place:
//! * GPUs through CDI, Podman's log driver (`shape::create_argv`);
//! * events: the socket's stream cannot be filtered by a label key, and the CLI fallback
//!   (`podman events --format json`) has its own shape (`shape::parse_event`);
//! * `podman info` for the runtimes (CDI specs stand for NVIDIA's runtime) and the store;
//! * no daemon restarts containers after a reboot in every version: the runtime's revival is
//!   this engine's restart policy ([`Engine::restarts_containers`]).

pub mod shape;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::docker::{Docker, api};
use crate::engine::{
    Container, Details, Engine, EngineError, EventStream, ImageConfig, LineStream, LogStart,
    ResourceKind, Runtimes, StreamHandle, Usage,
};
use crate::process::OwnedChild;

/// Podman's rootful API socket (`podman.socket`).
pub const DEFAULT_SOCKET: &str = "/run/podman/podman.sock";

#[derive(Debug, Clone)]
pub struct Podman {
    cli: Docker,
}

impl Podman {
    /// `bin` (`podman`) on `socket` (`None`: [`DEFAULT_SOCKET`]).
    pub fn new(bin: &str, socket: Option<PathBuf>) -> Self {
        let socket = socket.unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET));
        Podman {
            cli: Docker::new(bin).with_socket(Some(socket)),
        }
    }

    /// The same client with other `create` and `rm` deadlines.
    pub fn with_timeouts(mut self, create: Duration, remove: Duration) -> Self {
        self.cli = self.cli.with_timeouts(create, remove);
        self
    }

    fn info(&self, format: &str) -> Result<String, EngineError> {
        self.cli
            .run(&["info", "--format", format], Duration::from_secs(10))
    }
}

impl Engine for Podman {
    fn name(&self) -> &str {
        "podman"
    }
    fn restarts_containers(&self) -> bool {
        false
    }
    fn version(&self) -> Option<String> {
        let out = self.cli.run(
            &["version", "--format", "{{.Client.Version}}"],
            Duration::from_secs(5),
        );
        out.ok()
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    }
    /// Through the compatible API when its socket is there, else `podman ps --format json`.
    fn ps(&self) -> Result<Vec<Container>, EngineError> {
        self.cli.list_managed("json", shape::parse_ps)
    }
    fn inspect(&self, name: &str) -> Result<Option<Details>, EngineError> {
        self.cli.inspect(name)
    }
    fn running(&self) -> Result<Vec<Details>, EngineError> {
        self.cli.running()
    }
    fn image_exists(&self, image: &str) -> Result<bool, EngineError> {
        self.cli.image_exists(image)
    }
    fn image_config(&self, image: &str) -> ImageConfig {
        self.cli.image_config(image)
    }
    fn pull(
        &self,
        image: &str,
        anonymous: bool,
        on_line: &mut dyn FnMut(&str),
    ) -> Result<(), EngineError> {
        self.cli.pull(image, anonymous, on_line)
    }
    /// Podman's `manifest inspect` has no `-v` with layer sizes: unknown (the disk reserve
    /// then relies on the pull's own ENOSPC).
    fn announced_size(&self, _image: &str) -> Option<u64> {
        None
    }
    fn create(&self, argv: &[String]) -> Result<String, EngineError> {
        self.cli.create(&shape::create_argv(argv))
    }
    fn start(&self, name: &str) -> Result<(), EngineError> {
        self.cli.start(name)
    }
    fn rename(&self, from: &str, to: &str) -> Result<(), EngineError> {
        self.cli.rename(from, to)
    }
    fn stop(&self, name: &str, timeout_s: u64) -> Result<(), EngineError> {
        self.cli.stop(name, timeout_s)
    }
    fn force_remove(&self, name: &str) -> Result<(), EngineError> {
        self.cli.force_remove(name)
    }
    /// Podman 4 cannot change a container's restart policy (`podman update` has no
    /// `--restart` before 5.0); a container we stop stays stopped there anyway (the policy
    /// does not restart a container stopped on purpose), which is all the callers need.
    fn set_restart_policy(&self, name: &str, policy: &str) -> Result<(), EngineError> {
        match self.cli.set_restart_policy(name, policy) {
            Err(EngineError::Failed { message, .. })
                if message.contains("unknown flag") || message.contains("unknown command") =>
            {
                log::debug!("{name}: this Podman cannot change a restart policy; not needed");
                Ok(())
            }
            other => other,
        }
    }
    fn remove_image(&self, image: &str) -> Result<(), EngineError> {
        self.cli.remove_image(image)
    }
    fn unused_volumes(&self, owner: &str) -> Result<Vec<String>, EngineError> {
        self.cli.unused_volumes(owner)
    }
    fn remove_volume(&self, name: &str) -> Result<(), EngineError> {
        self.cli.remove_volume(name)
    }
    fn ensure_resource(
        &self,
        kind: ResourceKind,
        name: &str,
        labels: &[(String, String)],
    ) -> Result<bool, EngineError> {
        self.cli.ensure_resource(kind, name, labels)
    }
    fn resource_exists(&self, kind: ResourceKind, name: &str) -> Result<bool, EngineError> {
        self.cli.resource_exists(kind, name)
    }
    fn connect_network(&self, network: &str, container: &str) -> Result<(), EngineError> {
        self.cli.connect_network(network, container)
    }
    fn owned_resources(
        &self,
        kind: ResourceKind,
        owner: &str,
        label: &str,
    ) -> Result<Vec<(String, String)>, EngineError> {
        self.cli.owned_resources(kind, owner, label)
    }
    fn remove_resource(&self, kind: ResourceKind, name: &str) -> Result<(), EngineError> {
        self.cli.remove_resource(kind, name)
    }
    fn run_helper(&self, args: &[String], deadline: Duration) -> Result<String, EngineError> {
        self.cli.run_helper(args, deadline)
    }
    /// The OCI runtime Podman uses; NVIDIA's "runtime" when a CDI spec of its GPUs is there
    /// (GPU containers then get `--gpus`, which `create` turns into CDI devices).
    fn runtimes(&self) -> Result<Runtimes, EngineError> {
        let oci = self.info("{{.Host.OCIRuntime.Name}}")?.trim().to_string();
        let cdi = shape::CDI_SPECS
            .iter()
            .any(|p| std::path::Path::new(p).is_file());
        let default = if cdi {
            "nvidia".to_string()
        } else {
            oci.clone()
        };
        let mut known = vec![oci];
        if cdi {
            known.push("nvidia".into());
        }
        Ok(Runtimes { known, default })
    }
    /// Podman's image store (`/var/lib/containers/storage` for root), or `/`.
    fn data_root(&self) -> PathBuf {
        match self.info("{{.Store.GraphRoot}}") {
            Ok(dir) if dir.trim().starts_with('/') => PathBuf::from(dir.trim()),
            _ => PathBuf::from("/"),
        }
    }
    fn usage(&self) -> Result<Vec<Usage>, EngineError> {
        self.cli.usage()
    }
    /// The compatible API's `/events` of every container, ours picked out while reading; else
    /// `podman events --format json`.
    fn events(&self) -> Result<EventStream, EngineError> {
        if let Some(sock) = self.cli.socket() {
            match api::follow_all_events(&sock) {
                Ok((lines, handle)) => {
                    return Ok(EventStream {
                        lines: Box::new(lines),
                        handle: StreamHandle::Socket(handle),
                        parse: shape::parse_event,
                    });
                }
                Err(e) => {
                    log::debug!("events through Podman's API unavailable ({e}); using the CLI")
                }
            }
        }
        let args = ["events", "--filter", "type=container", "--format", "json"];
        let spawned = Command::new(self.cli.bin())
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn();
        let mut child = spawned.map_err(|e| EngineError::Spawn {
            command: "podman events".into(),
            detail: e.to_string(),
        })?;
        let out = child.stdout.take();
        let handle = StreamHandle::Process(OwnedChild(child));
        let out = out.ok_or_else(|| EngineError::Spawn {
            command: "podman events".into(),
            detail: "no stdout".into(),
        })?;
        Ok(EventStream {
            lines: Box::new(api::LogStream::new(Box::new(out))),
            handle,
            parse: shape::parse_event,
        })
    }
    fn follow_logs(&self, name: &str, from: LogStart) -> Result<LineStream, EngineError> {
        self.cli.follow_logs(name, from)
    }
    fn logs_command(&self, name: &str, tail: u64, follow: bool) -> Command {
        self.cli.logs_command(name, tail, follow)
    }
}
