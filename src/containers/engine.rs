//! The seam around the container engine: what the runtime asks of Docker, implemented by the
//! real client ([`Docker`]: the CLI with deadlines, the Engine API where cheaper) and, in tests,
//! by a recording fake (the pattern of youki's `Syscall` / `TestHelperSyscall`), so launch and
//! executor decisions are tested without an engine.

use crate::docker::{Docker, DockerError, Inspect, PsEntry};

/// Everything the runtime needs from the engine. Every call is bounded in time.
pub trait Engine: Send + Sync {
    /// Every container this edge's runtime manages (any role, any state): one call per tick.
    fn ps(&self) -> Result<Vec<PsEntry>, DockerError>;
    fn inspect(&self, name: &str) -> Result<Option<Inspect>, DockerError>;
    fn image_exists(&self, image: &str) -> Result<bool, DockerError>;
    /// Pulls `image`, handing each progress line to `on_line`; `anonymous`: without the
    /// stored registry credentials (the retry after an `unauthorized`).
    fn pull(
        &self,
        image: &str,
        anonymous: bool,
        on_line: &mut dyn FnMut(&str),
    ) -> Result<(), DockerError>;
    /// `docker create` with a full argv (after `create`); returns the id.
    fn create(&self, argv: &[String]) -> Result<String, DockerError>;
    fn start(&self, name: &str) -> Result<(), DockerError>;
    fn stop(&self, name: &str, timeout_s: u64) -> Result<(), DockerError>;
    /// Force-removes a container with its anonymous volumes; a missing one is not an error.
    /// SIGKILLs whatever still runs in it: call it only through [`super::retire::retire`],
    /// which stops the container gracefully first.
    fn force_remove(&self, name: &str) -> Result<(), DockerError>;
    fn set_restart_policy(&self, name: &str, policy: &str) -> Result<(), DockerError>;
    fn remove_image(&self, image: &str) -> Result<(), DockerError>;
    /// Volumes no container uses that carry this edge's owner label.
    fn unused_volumes(&self, owner: &str) -> Result<Vec<String>, DockerError>;
    fn remove_volume(&self, name: &str) -> Result<(), DockerError>;
    /// Runtimes the engine knows and its default one (`nvidia` for GPUs).
    fn runtimes(&self) -> Result<(Vec<String>, String), DockerError>;
}

impl Engine for Docker {
    fn ps(&self) -> Result<Vec<PsEntry>, DockerError> {
        self.ps_managed()
    }
    fn inspect(&self, name: &str) -> Result<Option<Inspect>, DockerError> {
        Docker::inspect(self, name)
    }
    fn image_exists(&self, image: &str) -> Result<bool, DockerError> {
        Docker::image_exists(self, image)
    }
    fn pull(
        &self,
        image: &str,
        anonymous: bool,
        on_line: &mut dyn FnMut(&str),
    ) -> Result<(), DockerError> {
        Docker::pull(self, image, anonymous, on_line)
    }
    fn create(&self, argv: &[String]) -> Result<String, DockerError> {
        Docker::create(self, argv)
    }
    fn start(&self, name: &str) -> Result<(), DockerError> {
        Docker::start(self, name)
    }
    fn stop(&self, name: &str, timeout_s: u64) -> Result<(), DockerError> {
        Docker::stop(self, name, timeout_s)
    }
    fn force_remove(&self, name: &str) -> Result<(), DockerError> {
        Docker::remove(self, name)
    }
    fn set_restart_policy(&self, name: &str, policy: &str) -> Result<(), DockerError> {
        Docker::set_restart_policy(self, name, policy)
    }
    fn remove_image(&self, image: &str) -> Result<(), DockerError> {
        self.run(&["image", "rm", image], crate::docker::RM_TIMEOUT)
            .map(|_| ())
    }
    fn runtimes(&self) -> Result<(Vec<String>, String), DockerError> {
        Docker::runtimes(self)
    }
    fn unused_volumes(&self, owner: &str) -> Result<Vec<String>, DockerError> {
        let filter = format!("label={}={owner}", super::LABEL_OWNER);
        let out = self.run(
            &[
                "volume",
                "ls",
                "-q",
                "--filter",
                "dangling=true",
                "--filter",
                &filter,
            ],
            crate::docker::PS_TIMEOUT,
        )?;
        Ok(out
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect())
    }
    fn remove_volume(&self, name: &str) -> Result<(), DockerError> {
        self.run(&["volume", "rm", name], crate::docker::RM_TIMEOUT)
            .map(|_| ())
    }
}

/// A recording fake engine for unit tests: containers and images in memory, every call
/// recorded as a short text, failures injected per call prefix.
#[cfg(test)]
pub mod fake {
    use std::collections::{BTreeMap, BTreeSet};
    use std::sync::Mutex;

    use super::*;

    /// A fake container: state, labels, restart policy.
    pub type FakeContainer = (String, BTreeMap<String, String>, String);

    #[derive(Default)]
    pub struct FakeEngine {
        pub calls: Mutex<Vec<String>>,
        /// name → (state, labels, restart policy)
        pub containers: Mutex<BTreeMap<String, FakeContainer>>,
        pub images: Mutex<BTreeSet<String>>,
        /// A call whose text starts with a key fails with that message.
        pub failures: Mutex<BTreeMap<String, String>>,
        /// Env files as `docker create` saw them (path → text), read at create time.
        pub env_files: Mutex<Vec<String>>,
        /// name → `--stop-timeout` given at create (inspect's `StopTimeout`).
        pub stop_timeouts: Mutex<BTreeMap<String, u64>>,
        /// Unused volumes: name → owner label.
        pub volumes: Mutex<BTreeMap<String, String>>,
    }

    impl FakeEngine {
        pub fn with_images(images: &[&str]) -> Self {
            let f = FakeEngine::default();
            if let Ok(mut i) = f.images.lock() {
                i.extend(images.iter().map(|s| s.to_string()));
            }
            f
        }

        pub fn fail(&self, call_prefix: &str, message: &str) {
            if let Ok(mut f) = self.failures.lock() {
                f.insert(call_prefix.to_string(), message.to_string());
            }
        }

        pub fn calls(&self) -> Vec<String> {
            self.calls.lock().map(|c| c.clone()).unwrap_or_default()
        }

        fn record(&self, call: String) -> Result<(), DockerError> {
            if let Ok(mut c) = self.calls.lock() {
                c.push(call.clone());
            }
            let failure = self.failures.lock().ok().and_then(|f| {
                f.iter()
                    .find(|(k, _)| call.starts_with(k.as_str()))
                    .map(|(_, m)| m.clone())
            });
            match failure {
                Some(message) => Err(DockerError::Failed {
                    command: format!("docker {call}"),
                    code: Some(1),
                    message,
                }),
                None => Ok(()),
            }
        }

        fn set_state(&self, name: &str, state: &str) {
            if let Ok(mut c) = self.containers.lock()
                && let Some(entry) = c.get_mut(name)
            {
                entry.0 = state.to_string();
            }
        }
    }

    impl Engine for FakeEngine {
        fn ps(&self) -> Result<Vec<PsEntry>, DockerError> {
            self.record("ps".into())?;
            let c = self
                .containers
                .lock()
                .map(|c| c.clone())
                .unwrap_or_default();
            Ok(c.into_iter()
                .map(|(name, (state, labels, _))| PsEntry {
                    id: format!("id-{name}"),
                    name,
                    image: String::new(),
                    status: state.clone(),
                    state,
                    labels,
                })
                .collect())
        }
        fn inspect(&self, name: &str) -> Result<Option<Inspect>, DockerError> {
            self.record(format!("inspect {name}"))?;
            let c = self
                .containers
                .lock()
                .map(|c| c.clone())
                .unwrap_or_default();
            Ok(c.get(name).map(|(state, labels, policy)| Inspect {
                id: format!("id-{name}"),
                name: name.to_string(),
                status: state.clone(),
                running: state == "running",
                exit_code: 0,
                restart_count: 0,
                started_at: String::new(),
                finished_at: String::new(),
                image: String::new(),
                labels: labels.clone(),
                env: Vec::new(),
                mounts: Vec::new(),
                restart_policy: policy.clone(),
                stop_timeout_s: self
                    .stop_timeouts
                    .lock()
                    .ok()
                    .and_then(|t| t.get(name).copied()),
            }))
        }
        fn image_exists(&self, image: &str) -> Result<bool, DockerError> {
            self.record(format!("image_exists {image}"))?;
            Ok(self.images.lock().is_ok_and(|i| i.contains(image)))
        }
        fn pull(
            &self,
            image: &str,
            anonymous: bool,
            on_line: &mut dyn FnMut(&str),
        ) -> Result<(), DockerError> {
            let verb = if anonymous { "pull-anon" } else { "pull" };
            self.record(format!("{verb} {image}"))?;
            // What `docker pull` prints for a two-layer image, one layer already present.
            for line in [
                "1.0: Pulling from repo/drv",
                "a1b2: Pulling fs layer",
                "c3d4: Already exists",
                "a1b2: Downloading [=====>    ]  5MB/10MB",
                "a1b2: Downloading [=========>]  10MB/10MB",
                "a1b2: Download complete",
                "a1b2: Pull complete",
            ] {
                on_line(line);
            }
            on_line(&format!("Status: Downloaded newer image for {image}"));
            if let Ok(mut i) = self.images.lock() {
                i.insert(image.to_string());
            }
            Ok(())
        }
        fn create(&self, argv: &[String]) -> Result<String, DockerError> {
            let name = argv
                .iter()
                .position(|a| a == "--name")
                .and_then(|i| argv.get(i + 1))
                .cloned()
                .unwrap_or_default();
            if let Some(i) = argv.iter().position(|a| a == "--env-file")
                && let Some(path) = argv.get(i + 1)
                && let Ok(mut files) = self.env_files.lock()
            {
                files.push(std::fs::read_to_string(path).unwrap_or_default());
            }
            self.record(format!("create {name}"))?;
            if self.containers.lock().is_ok_and(|c| c.contains_key(&name)) {
                return Err(DockerError::Failed {
                    command: "docker create".into(),
                    code: Some(125),
                    message: format!("Conflict. The container name \"/{name}\" is already in use"),
                });
            }
            let mut labels = BTreeMap::new();
            for w in argv.windows(2).filter(|w| w[0] == "--label") {
                if let Some((k, v)) = w[1].split_once('=') {
                    labels.insert(k.to_string(), v.to_string());
                }
            }
            let policy = argv
                .iter()
                .position(|a| a == "--restart")
                .and_then(|i| argv.get(i + 1))
                .cloned()
                .unwrap_or_else(|| "no".into());
            if let Some(t) = argv
                .iter()
                .position(|a| a == "--stop-timeout")
                .and_then(|i| argv.get(i + 1))
                .and_then(|t| t.parse().ok())
                && let Ok(mut timeouts) = self.stop_timeouts.lock()
            {
                timeouts.insert(name.clone(), t);
            }
            if let Ok(mut c) = self.containers.lock() {
                c.insert(name.clone(), ("created".into(), labels, policy));
            }
            Ok(format!("id-{name}"))
        }
        fn start(&self, name: &str) -> Result<(), DockerError> {
            self.record(format!("start {name}"))?;
            self.set_state(name, "running");
            Ok(())
        }
        fn stop(&self, name: &str, timeout_s: u64) -> Result<(), DockerError> {
            self.record(format!("stop {name} {timeout_s}"))?;
            self.set_state(name, "exited");
            Ok(())
        }
        fn force_remove(&self, name: &str) -> Result<(), DockerError> {
            self.record(format!("remove {name}"))?;
            if let Ok(mut c) = self.containers.lock() {
                c.remove(name);
            }
            Ok(())
        }
        fn set_restart_policy(&self, name: &str, policy: &str) -> Result<(), DockerError> {
            self.record(format!("restart-policy {name} {policy}"))?;
            if let Ok(mut c) = self.containers.lock()
                && let Some(entry) = c.get_mut(name)
            {
                entry.2 = policy.to_string();
            }
            Ok(())
        }
        fn remove_image(&self, image: &str) -> Result<(), DockerError> {
            self.record(format!("rmi {image}"))?;
            if let Ok(mut i) = self.images.lock() {
                i.remove(image);
            }
            Ok(())
        }
        fn runtimes(&self) -> Result<(Vec<String>, String), DockerError> {
            self.record("runtimes".into())?;
            Ok((vec!["runc".into()], "runc".into()))
        }
        fn unused_volumes(&self, owner: &str) -> Result<Vec<String>, DockerError> {
            self.record(format!("volumes {owner}"))?;
            Ok(self
                .volumes
                .lock()
                .map(|v| {
                    v.iter()
                        .filter(|(_, o)| o.as_str() == owner)
                        .map(|(n, _)| n.clone())
                        .collect()
                })
                .unwrap_or_default())
        }
        fn remove_volume(&self, name: &str) -> Result<(), DockerError> {
            self.record(format!("rmv {name}"))?;
            if let Ok(mut v) = self.volumes.lock() {
                v.remove(name);
            }
            Ok(())
        }
    }
}
