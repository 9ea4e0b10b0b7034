//! Launching managed containers of any role: the role's preparation (a driver's twin file),
//! image (local build, pull with progress, fallback), env file, `docker create`, `docker
//! start`, readiness probe. Runs on the launcher thread, never on the supervisor.

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::engine::Engine;
use super::lock;
use super::retire::retire;
use super::spec::ContainerSpec;
use crate::engine::EngineError;

/// Containers created, started and probed at once.
const PARALLEL_LAUNCHES: usize = 4;

/// What a role adds to a launch.
pub trait LaunchHooks: Send + Sync {
    /// Runs before the container is created (a driver writes its twin file from `payload`).
    fn prepare(&self, spec: &ContainerSpec, payload: &Value) -> Result<(), LaunchFailure>;
    /// A pull progress message about `image`, for the container `spec` (a driver's go to
    /// `driverlog`).
    fn progress(&self, spec: &ContainerSpec, image: &str, message: &str);
    /// The pull's detailed progress (reference §5.6 card metadata), on every change of its
    /// phase, layer counts or whole percent.
    fn pull_progress(&self, _spec: &ContainerSpec, _patch: &Value) {}
    /// One line of the pull's own output, `docker pull: <line>`, rate-bounded: a driver's go
    /// to its twin's `driverlog` only (not the journal, as the original).
    fn pull_line(&self, _spec: &ContainerSpec, _image: &str, _line: &str) {}
    /// Once per batch, after the images and before any container is created (host-wide
    /// settings a role applies for its containers: a Jetson power mode).
    fn before_start(&self, _specs: &[&ContainerSpec]) {}
    /// What the role derives from an image it asked to look at, once its labels were read (a
    /// driver image's navigation bundle, copied into a volume). On the prefetcher thread.
    fn derive(
        &self,
        _spec: &ContainerSpec,
        _image: &crate::engine::ImageConfig,
    ) -> BTreeMap<String, String> {
        BTreeMap::new()
    }
}

/// What a look at a role's image found: its labels, and what the role derived from it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ImageLook {
    pub labels: BTreeMap<String, String>,
    pub derived: BTreeMap<String, String>,
}

#[derive(Debug, Clone)]
pub struct LaunchJob {
    pub spec: ContainerSpec,
    /// What the role's [`LaunchHooks::prepare`] needs (a driver's twin file).
    pub payload: Value,
    /// A container of that name was observed: remove it first (or switch to the new one
    /// when it runs).
    pub exists: bool,
    /// The last observation showed what an interrupted switch of it left (`.next`, `.old`).
    pub settle: bool,
}

/// A container that came up: its id and the id of the image it runs (what a rollback to it
/// starts again).
#[derive(Debug, Clone, PartialEq)]
pub struct Up {
    pub id: String,
    pub image_id: String,
}

/// A failed launch; `phase` names the step (the original's failure phases).
#[derive(Debug, Clone, PartialEq)]
pub struct LaunchFailure {
    pub phase: &'static str,
    pub message: String,
}

impl std::fmt::Display for LaunchFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.phase, self.message)
    }
}

pub struct Launcher {
    pub engine: std::sync::Arc<dyn Engine>,
    /// Where env files are written (`<dir>/run/<name>.env`, 0600, removed after create).
    pub config_dir: PathBuf,
    pub probe: Duration,
    pub hooks: std::sync::Arc<dyn LaunchHooks>,
    /// The disk reserve pulls keep (`None`: not judged).
    pub reserve: Option<std::sync::Arc<super::reserve::DiskReserve>>,
}

/// Where a container's env file lives (0600, outside argv) while `docker create` reads it.
pub fn env_file_path(config_dir: &std::path::Path, name: &str) -> PathBuf {
    config_dir.join("run").join(format!("{name}.env"))
}

impl Launcher {
    /// Launches a batch: pulls the unique images in parallel (at most 4 at a time), then
    /// creates, starts and probes the containers, [`PARALLEL_LAUNCHES`] at a time. `report`
    /// gets each result as it comes.
    pub fn launch_batch(
        &self,
        jobs: Vec<LaunchJob>,
        mut report: impl FnMut(&ContainerSpec, Result<Up, LaunchFailure>),
    ) {
        // One pull per image; its progress goes to every container using it (each twin's
        // `driverlog` and card), in order of first use.
        let mut images: Vec<Vec<&ContainerSpec>> = Vec::new();
        for j in &jobs {
            match images.iter_mut().find(|g| g[0].image == j.spec.image) {
                Some(group) => group.push(&j.spec),
                None => images.push(vec![&j.spec]),
            }
        }
        let mut resolved: BTreeMap<String, Result<String, LaunchFailure>> = BTreeMap::new();
        for chunk in images.chunks(4) {
            let results: Vec<(String, Result<String, LaunchFailure>)> = std::thread::scope(|s| {
                let handles: Vec<_> = chunk
                    .iter()
                    .map(|specs| {
                        s.spawn(move || (specs[0].image.clone(), self.ensure_image(specs)))
                    })
                    .collect();
                handles.into_iter().filter_map(|h| h.join().ok()).collect()
            });
            resolved.extend(results);
        }
        let held = held_graphs(&jobs, &resolved);
        let ready: Vec<&ContainerSpec> = jobs
            .iter()
            .filter(|j| matches!(resolved.get(&j.spec.image), Some(Ok(_))))
            .map(|j| &j.spec)
            .collect();
        if !ready.is_empty() {
            self.hooks.before_start(&ready);
        }
        // Create, start and probe in bounded parallel: the engine does the work, and a probe
        // mostly waits.
        let queue = std::sync::Mutex::new(jobs.into_iter().collect::<VecDeque<LaunchJob>>());
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::scope(|s| {
            for _ in 0..PARALLEL_LAUNCHES {
                let (queue, tx, resolved, held) = (&queue, tx.clone(), &resolved, &held);
                s.spawn(move || {
                    while let Some(job) = queue.lock().ok().and_then(|mut q| q.pop_front()) {
                        let result = match resolved.get(&job.spec.image).cloned() {
                            Some(Ok(_)) if held.contains(&graph_of(&job.spec)) => {
                                Err(LaunchFailure {
                                    phase: "pull_failed",
                                    message: "another container of its graph could not get its image: the graph is switched as a unit".into(),
                                })
                            }
                            Some(Ok(image)) => self.launch_one(&job, &image),
                            Some(Err(e)) => Err(e),
                            None => Err(LaunchFailure {
                                phase: "pull_unexpected",
                                message: "image step did not finish".into(),
                            }),
                        };
                        if tx.send((job.spec, result)).is_err() {
                            return;
                        }
                    }
                });
            }
            drop(tx);
            for (spec, result) in rx {
                report(&spec, result);
            }
        });
    }

    /// Makes `spec`'s image present without touching any container: an update that waits for
    /// an update lock is ready to switch the moment the lock goes.
    pub fn prefetch(&self, spec: &ContainerSpec) -> Result<String, LaunchFailure> {
        self.ensure_image(&[spec])
    }

    fn launch_one(&self, job: &LaunchJob, image: &str) -> Result<Up, LaunchFailure> {
        let spec = &job.spec;
        let fail = |phase: &'static str, e: &dyn std::fmt::Display| LaunchFailure {
            phase,
            message: e.to_string(),
        };
        // Before the role's hooks: a refused env file takes no robot claim, writes no file.
        if let Some(problem) = env_file_problem(&self.config_dir, &spec.options) {
            return Err(fail("host_env_file_missing", &problem));
        }
        self.hooks.prepare(spec, &job.payload)?;
        let mut run_spec = spec.clone();
        run_spec.image = image.to_string();
        if lock::has_lock(spec.role) {
            crate::fsutil::ensure_dir(&lock::lock_dir(&self.config_dir, &spec.name), 0o755)
                .map_err(|e| fail("lock_dir_failed", &e))?;
            lock::add_to(&mut run_spec, &self.config_dir);
        }
        let env_file = env_file_path(&self.config_dir, &spec.name);
        if let Some(dir) = env_file.parent() {
            crate::fsutil::ensure_dir(dir, 0o700).map_err(|e| fail("env_file_failed", &e))?;
        }
        crate::fsutil::write_atomic(&env_file, run_spec.env_file_text().as_bytes(), 0o600)
            .map_err(|e| fail("env_file_failed", &e))?;
        if job.settle {
            self.settle_switch(&spec.name)?;
        }
        if let Err(f) = self.ensure_resources(spec) {
            let _ = std::fs::remove_file(&env_file);
            return Err(f);
        }
        let argv = run_spec.create_argv(&env_file);
        let probe = spec.probe.unwrap_or(self.probe);
        if (job.exists || job.settle)
            && let Some(old_one) = self.serving(&spec.name)
        {
            return self.switch(spec, &argv, &env_file, probe, &old_one);
        }
        // Usually nothing to remove: skip the CLI call unless the last observation saw one
        // (a stale `created` leftover still fails `docker create` and is removed below).
        if job.exists {
            retire(self.engine.as_ref(), &spec.name)
                .map_err(|e| fail("container_remove_failed", &e))?;
        }
        let mut created = self.engine.create(&argv);
        if let Err(EngineError::Failed { message, .. }) = &created
            && message.contains("already in use")
        {
            // Someone (or a previous run) left a container with this name: replace it.
            if let Err(e) = retire(self.engine.as_ref(), &spec.name) {
                let _ = std::fs::remove_file(&env_file);
                return Err(fail("container_remove_failed", &e));
            }
            created = self.engine.create(&argv);
        }
        // Docker has read it (or never will): the token does not stay on disk.
        let _ = std::fs::remove_file(&env_file);
        match created {
            Ok(_) => {}
            Err(e @ EngineError::TimedOut { .. }) => {
                // A slow SD card can finish the create after our deadline: give it 10 s.
                let appeared = (0..10).any(|_| {
                    std::thread::sleep(Duration::from_secs(1));
                    matches!(self.engine.inspect(&spec.name), Ok(Some(_)))
                });
                if !appeared {
                    return Err(fail("docker_create_timeout", &e));
                }
            }
            Err(e) => return Err(fail("docker_create_failed", &e)),
        }
        self.attach_networks(spec, &spec.name)?;
        if let Err(e) = self.engine.start(&spec.name) {
            let _ = retire(self.engine.as_ref(), &spec.name);
            return Err(fail("docker_start_failed", &e));
        }
        self.probe(&spec.name, probe)
    }

    /// The startup probe (reference §5.7 step 13): ready = running, or exited (or
    /// restarting) with code 0; an exited container Docker has already restarted keeps being
    /// waited for (its restart policy is at work; the restart-loop detector judges loops); one
    /// that exited for good (no restart, policy `no`) or is dead has failed. A container still
    /// `created` when the probe ends gets one synchronous `docker start` and 30 s more.
    fn probe(&self, name: &str, within: Duration) -> Result<Up, LaunchFailure> {
        match self.probe_for(name, within) {
            Probe::StillCreated => {
                log::warn!(
                    "{name} is still created after {} s: starting it once more",
                    within.as_secs()
                );
                if let Err(e) = self.engine.start(name) {
                    return Err(LaunchFailure {
                        phase: "docker_start_failed",
                        message: e.to_string(),
                    });
                }
                match self.probe_for(name, Duration::from_secs(30)) {
                    Probe::Done(r) => r,
                    Probe::StillCreated => Err(timeout_failure(name, "created", within)),
                }
            }
            Probe::Done(r) => r,
        }
    }

    fn probe_for(&self, name: &str, within: Duration) -> Probe {
        let deadline = Instant::now() + within;
        let mut last = String::from("none");
        let mut pause = Duration::from_millis(25);
        while Instant::now() < deadline {
            match self.engine.inspect(name) {
                Ok(Some(i)) => {
                    last = i.status.clone();
                    match probe_verdict(&i) {
                        Verdict::Ready => {
                            return Probe::Done(Ok(Up {
                                id: i.id,
                                image_id: i.image_id,
                            }));
                        }
                        Verdict::Failed => {
                            return Probe::Done(Err(LaunchFailure {
                                phase: "container_unhealthy",
                                message: format!(
                                    "{name} is {} (exit code {}, {} restarts)",
                                    i.status, i.exit_code, i.restart_count
                                ),
                            }));
                        }
                        Verdict::Wait => {}
                    }
                }
                // Removed under us after it was there: nothing left to wait for.
                Ok(None) if last != "none" => {
                    return Probe::Done(Err(LaunchFailure {
                        phase: "container_unhealthy",
                        message: format!(
                            "{name} was removed while it started (last state: {last})"
                        ),
                    }));
                }
                Ok(None) => {}
                Err(e) => last = e.to_string(),
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(250));
        }
        if last == "created" {
            return Probe::StillCreated;
        }
        Probe::Done(Err(timeout_failure(name, &last, within)))
    }
}

/// The graph a container belongs to: the containers of one owner (a twin's services) in one
/// role.
fn graph_of(spec: &ContainerSpec) -> (String, super::spec::Role) {
    (spec.owner.clone(), spec.role)
}

/// Graphs being updated (a job replacing a running container) of which some image could not
/// be had: none of their containers is switched, so a graph is never half old, half new.
fn held_graphs(
    jobs: &[LaunchJob],
    resolved: &BTreeMap<String, Result<String, LaunchFailure>>,
) -> std::collections::BTreeSet<(String, super::spec::Role)> {
    jobs.iter()
        .filter(|j| j.exists && !matches!(resolved.get(&j.spec.image), Some(Ok(_))))
        .map(|j| graph_of(&j.spec))
        .collect()
}

enum Probe {
    Done(Result<Up, LaunchFailure>),
    StillCreated,
}

#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    Ready,
    Failed,
    Wait,
}

/// One look of the startup probe at a container (pure; reference §5.7 step 13).
fn probe_verdict(i: &crate::engine::Details) -> Verdict {
    match i.status.as_str() {
        "running" if i.running => Verdict::Ready,
        "exited" | "restarting" if i.exit_code == 0 && !i.running => Verdict::Ready,
        "dead" => Verdict::Failed,
        // Docker restarted it before: its policy is at work.
        "exited" if i.restart_count > 0 => Verdict::Wait,
        // Exited for good: no restart policy will bring it back.
        "exited" if i.restart_policy == "no" || i.restart_policy.is_empty() => Verdict::Failed,
        _ => Verdict::Wait,
    }
}

fn timeout_failure(name: &str, last: &str, after: Duration) -> LaunchFailure {
    LaunchFailure {
        phase: "container_startup_timeout",
        message: format!(
            "{name} not running after {} s (last state: {last})",
            after.as_secs()
        ),
    }
}

/// What is wrong with the first bad `--env-file` the options name, as the original refuses
/// `host_env_file_missing`: not a regular file (missing, a directory, or a FIFO the `docker`
/// CLI would block on), or one named inside the config dir that resolves outside it once its
/// symlinks are followed (the daemon runs as root and Docker reads the file for it, so a link
/// to `/etc/shadow` would hand that file's lines to a container as variables). An env file
/// elsewhere is a driver's own param, passed through as the original does.
fn env_file_problem(config_dir: &std::path::Path, options: &[String]) -> Option<String> {
    let root = config_dir.canonicalize().ok();
    crate::engine::args::flag_values(options, &["--env-file"])
        .into_iter()
        .find_map(|f| {
            let path = std::path::Path::new(f);
            if !std::fs::metadata(path).is_ok_and(|m| m.is_file()) {
                return Some(format!("{f} is not a regular file"));
            }
            let root = root.as_ref().filter(|_| path.starts_with(config_dir))?;
            let inside = path.canonicalize().is_ok_and(|p| p.starts_with(root));
            (!inside).then(|| format!("{f} does not resolve to a file inside {}", root.display()))
        })
}

/// The image step: local build, pull with progress (and the anonymous retry), fallbacks.
pub mod graph;
mod image_step;
/// Replacing a running container: create beside it, swap names, stop, start.
pub mod switch;

#[cfg(test)]
mod tests;
