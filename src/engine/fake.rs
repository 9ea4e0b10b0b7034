//! A recording fake engine for unit tests: containers, images and volumes in memory, every
//! call recorded as a short text, failures injected per call prefix.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
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
    /// Networks and volumes created through `ensure_resource`: (kind, name) → labels.
    pub resources: Mutex<BTreeMap<(ResourceKind, String), BTreeMap<String, String>>>,
    /// name → the status text `ps` shows (its state otherwise): `Up 2 s (health: starting)`.
    pub statuses: Mutex<BTreeMap<String, String>>,
    /// Helper containers run (`run_helper`): their args; each answers with the next of
    /// `helper_answers` (empty output when none is left).
    pub helpers: Mutex<Vec<Vec<String>>>,
    pub helper_answers: Mutex<std::collections::VecDeque<Result<String, String>>>,
    /// name → networks connected after create.
    pub connected: Mutex<BTreeMap<String, Vec<String>>>,
    /// What each image declares (`image_config`); absent: nothing.
    pub image_configs: Mutex<BTreeMap<String, ImageConfig>>,
    /// Other running containers (any owner), for `running`.
    pub others: Mutex<Vec<Details>>,
    pub runtimes: Mutex<Runtimes>,
    /// A call whose text starts with a key takes this long (before it acts).
    pub slow: Mutex<BTreeMap<String, std::time::Duration>>,
    /// What each image's manifest announces (`announced_size`); absent: unknown.
    pub sizes: Mutex<BTreeMap<String, u64>>,
    /// name → the image it was created from (the one after the env file in the argv).
    pub container_images: Mutex<BTreeMap<String, String>>,
    /// The write end of the open events stream: [`FakeEngine::event`] writes to it.
    event_writer: Mutex<Option<UnixStream>>,
    /// The write ends of open log follows, per container.
    log_writers: Mutex<BTreeMap<String, UnixStream>>,
}

impl FakeEngine {
    pub fn with_images(images: &[&str]) -> Self {
        let f = FakeEngine::default();
        if let Ok(mut i) = f.images.lock() {
            i.extend(images.iter().map(|s| s.to_string()));
        }
        f
    }

    /// Adds (or replaces) a container: its state, labels and restart policy.
    pub fn put(&self, name: &str, state: &str, labels: &[(&str, &str)], policy: &str) {
        if let Ok(mut c) = self.containers.lock() {
            let labels = labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            c.insert(name.into(), (state.into(), labels, policy.into()));
        }
    }

    /// The state of a container, if it exists.
    pub fn state(&self, name: &str) -> Option<String> {
        self.containers
            .lock()
            .ok()
            .and_then(|c| c.get(name).map(|e| e.0.clone()))
    }

    pub fn fail(&self, call_prefix: &str, message: &str) {
        if let Ok(mut f) = self.failures.lock() {
            f.insert(call_prefix.to_string(), message.to_string());
        }
    }

    pub fn calls(&self) -> Vec<String> {
        self.calls.lock().map(|c| c.clone()).unwrap_or_default()
    }

    /// Sends an event on the open events stream (`action name [exit code]`); false when no
    /// stream is open.
    pub fn event(&self, line: &str) -> bool {
        self.event_writer
            .lock()
            .ok()
            .and_then(|mut w| w.as_mut().map(|w| writeln!(w, "{line}").is_ok()))
            .unwrap_or(false)
    }

    /// Writes a line to the followed log of `name`; false when it is not followed.
    pub fn log_line(&self, name: &str, line: &str) -> bool {
        self.log_writers
            .lock()
            .ok()
            .and_then(|mut w| w.get_mut(name).map(|w| writeln!(w, "{line}").is_ok()))
            .unwrap_or(false)
    }

    fn record(&self, call: String) -> Result<(), EngineError> {
        if let Ok(mut c) = self.calls.lock() {
            c.push(call.clone());
        }
        let delay = self.slow.lock().ok().and_then(|s| {
            s.iter()
                .find(|(k, _)| call.starts_with(k.as_str()))
                .map(|(_, d)| *d)
        });
        if let Some(d) = delay {
            std::thread::sleep(d);
        }
        let failure = self.failures.lock().ok().and_then(|f| {
            f.iter()
                .find(|(k, _)| call.starts_with(k.as_str()))
                .map(|(_, m)| m.clone())
        });
        match failure {
            Some(message) => Err(EngineError::Failed {
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

/// Lines of a reader, as the fake's streams hand them on.
struct ReadLines(BufReader<UnixStream>);

impl Lines for ReadLines {
    fn next_line(&mut self) -> std::io::Result<Option<String>> {
        let mut line = String::new();
        match (&mut self.0).take(MAX_LINE as u64).read_line(&mut line)? {
            0 => Ok(None),
            _ => Ok(Some(line.trim_end_matches('\n').to_string())),
        }
    }
    fn cut(&self) -> u64 {
        0
    }
}

/// `action name [exit code]`, the fake's event line.
fn parse_fake_event(line: &str) -> Option<ContainerEvent> {
    let mut words = line.split_whitespace();
    let action = words.next()?.to_string();
    let name = words.next()?.to_string();
    Some(ContainerEvent {
        action,
        id: format!("id-{name}"),
        name,
        exit_code: words.next().and_then(|c| c.parse().ok()),
        labels: BTreeMap::new(),
    })
}

fn pair() -> std::io::Result<(UnixStream, UnixStream, UnixStream)> {
    let (read, write) = UnixStream::pair()?;
    let handle = read.try_clone()?;
    Ok((read, write, handle))
}

fn io_error(call: &str, e: std::io::Error) -> EngineError {
    EngineError::Spawn {
        command: call.into(),
        detail: e.to_string(),
    }
}

impl Engine for FakeEngine {
    fn name(&self) -> &str {
        "fake"
    }
    fn running(&self) -> Result<Vec<Details>, EngineError> {
        self.record("running".into())?;
        Ok(self.others.lock().map(|o| o.clone()).unwrap_or_default())
    }
    fn image_config(&self, image: &str) -> ImageConfig {
        let _ = self.record(format!("image_config {image}"));
        self.image_configs
            .lock()
            .ok()
            .and_then(|c| c.get(image).cloned())
            .unwrap_or_default()
    }
    fn data_root(&self) -> std::path::PathBuf {
        std::path::PathBuf::from("/")
    }
    fn usage(&self) -> Result<Vec<Usage>, EngineError> {
        self.record("usage".into())?;
        Ok(Vec::new())
    }
    fn events(&self) -> Result<EventStream, EngineError> {
        // The writer is in place before the call is seen: a test that waits for the call may
        // write at once (recorded first, an event could find no stream: a flaky CI run).
        let (read, write, handle) = pair().map_err(|e| io_error("events", e))?;
        if let Ok(mut w) = self.event_writer.lock() {
            *w = Some(write);
        }
        if let Err(e) = self.record("events".into()) {
            if let Ok(mut w) = self.event_writer.lock() {
                *w = None;
            }
            return Err(e);
        }
        Ok(EventStream {
            lines: Box::new(ReadLines(BufReader::new(read))),
            handle: StreamHandle::Socket(handle),
            parse: parse_fake_event,
        })
    }
    fn follow_logs(&self, name: &str, _from: LogStart) -> Result<LineStream, EngineError> {
        // As `events`: the writer first, then the call.
        let (read, write, handle) = pair().map_err(|e| io_error("logs", e))?;
        if let Ok(mut w) = self.log_writers.lock() {
            w.insert(name.to_string(), write);
        }
        if let Err(e) = self.record(format!("logs {name}")) {
            if let Ok(mut w) = self.log_writers.lock() {
                w.remove(name);
            }
            return Err(e);
        }
        Ok(LineStream {
            lines: Box::new(ReadLines(BufReader::new(read))),
            handle: StreamHandle::Socket(handle),
        })
    }
    fn logs_command(&self, name: &str, tail: u64, _follow: bool) -> std::process::Command {
        let mut cmd = std::process::Command::new("echo");
        cmd.args(["logs", name, &tail.to_string()]);
        cmd
    }
    fn ps(&self) -> Result<Vec<Container>, EngineError> {
        self.record("ps".into())?;
        let c = self
            .containers
            .lock()
            .map(|c| c.clone())
            .unwrap_or_default();
        let statuses = self.statuses.lock().map(|s| s.clone()).unwrap_or_default();
        Ok(c.into_iter()
            .map(|(name, (state, labels, _))| Container {
                id: format!("id-{name}"),
                status: statuses
                    .get(&name)
                    .cloned()
                    .unwrap_or_else(|| state.clone()),
                name,
                image: String::new(),
                image_id: String::new(),
                state,
                labels,
            })
            .collect())
    }
    fn inspect(&self, name: &str) -> Result<Option<Details>, EngineError> {
        self.record(format!("inspect {name}"))?;
        let c = self
            .containers
            .lock()
            .map(|c| c.clone())
            .unwrap_or_default();
        Ok(c.get(name).map(|(state, labels, policy)| Details {
            id: format!("id-{name}"),
            name: name.to_string(),
            status: state.clone(),
            running: state == "running",
            exit_code: 0,
            restart_count: 0,
            started_at: String::new(),
            finished_at: String::new(),
            image: String::new(),
            image_id: self
                .container_images
                .lock()
                .ok()
                .and_then(|m| {
                    m.get(name).map(|i| match i.starts_with("sha256:") {
                        true => i.clone(),
                        false => format!("sha256:{i}"),
                    })
                })
                .unwrap_or_default(),
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
    fn image_exists(&self, image: &str) -> Result<bool, EngineError> {
        self.record(format!("image_exists {image}"))?;
        Ok(self.images.lock().is_ok_and(|i| i.contains(image)))
    }
    fn pull(
        &self,
        image: &str,
        anonymous: bool,
        on_line: &mut dyn FnMut(&str),
    ) -> Result<(), EngineError> {
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
    fn announced_size(&self, image: &str) -> Option<u64> {
        self.sizes.lock().ok().and_then(|s| s.get(image).copied())
    }
    fn create(&self, argv: &[String]) -> Result<String, EngineError> {
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
            return Err(EngineError::Failed {
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
        if let Some(i) = argv.iter().position(|a| a == "--env-file")
            && let Some(image) = argv.get(i + 2)
            && let Ok(mut m) = self.container_images.lock()
        {
            m.insert(name.clone(), image.clone());
        }
        if let Ok(mut c) = self.containers.lock() {
            c.insert(name.clone(), ("created".into(), labels, policy));
        }
        Ok(format!("id-{name}"))
    }
    fn start(&self, name: &str) -> Result<(), EngineError> {
        self.record(format!("start {name}"))?;
        self.set_state(name, "running");
        Ok(())
    }
    fn rename(&self, from: &str, to: &str) -> Result<(), EngineError> {
        self.record(format!("rename {from} {to}"))?;
        let mut c = self
            .containers
            .lock()
            .map_err(|_| io_error("rename", std::io::Error::other("poisoned")))?;
        if c.contains_key(to) {
            return Err(EngineError::Failed {
                command: "docker rename".into(),
                code: Some(1),
                message: format!("Conflict. The container name \"/{to}\" is already in use"),
            });
        }
        let entry = c.remove(from).ok_or_else(|| EngineError::Failed {
            command: "docker rename".into(),
            code: Some(1),
            message: format!("No such container: {from}"),
        })?;
        c.insert(to.to_string(), entry);
        if let Ok(mut t) = self.stop_timeouts.lock()
            && let Some(v) = t.remove(from)
        {
            t.insert(to.to_string(), v);
        }
        if let Ok(mut m) = self.container_images.lock()
            && let Some(v) = m.remove(from)
        {
            m.insert(to.to_string(), v);
        }
        Ok(())
    }
    fn stop(&self, name: &str, timeout_s: u64) -> Result<(), EngineError> {
        self.record(format!("stop {name} {timeout_s}"))?;
        self.set_state(name, "exited");
        Ok(())
    }
    fn force_remove(&self, name: &str) -> Result<(), EngineError> {
        self.record(format!("remove {name}"))?;
        if let Ok(mut c) = self.containers.lock() {
            c.remove(name);
        }
        Ok(())
    }
    fn set_restart_policy(&self, name: &str, policy: &str) -> Result<(), EngineError> {
        self.record(format!("restart-policy {name} {policy}"))?;
        if let Ok(mut c) = self.containers.lock()
            && let Some(entry) = c.get_mut(name)
        {
            entry.2 = policy.to_string();
        }
        Ok(())
    }
    fn remove_image(&self, image: &str) -> Result<(), EngineError> {
        self.record(format!("rmi {image}"))?;
        if let Ok(mut i) = self.images.lock() {
            i.remove(image);
        }
        Ok(())
    }
    fn runtimes(&self) -> Result<Runtimes, EngineError> {
        self.record("runtimes".into())?;
        Ok(self.runtimes.lock().map(|r| r.clone()).unwrap_or_default())
    }
    fn unused_volumes(&self, owner: &str) -> Result<Vec<String>, EngineError> {
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
    fn remove_volume(&self, name: &str) -> Result<(), EngineError> {
        self.record(format!("rmv {name}"))?;
        if let Ok(mut v) = self.volumes.lock() {
            v.remove(name);
        }
        Ok(())
    }
    fn ensure_resource(
        &self,
        kind: ResourceKind,
        name: &str,
        labels: &[(String, String)],
    ) -> Result<bool, EngineError> {
        self.record(format!("{} ensure {name}", kind.as_str()))?;
        let mut r = self
            .resources
            .lock()
            .map_err(|_| io_error("ensure", std::io::Error::other("poisoned")))?;
        let key = (kind, name.to_string());
        if r.contains_key(&key) {
            return Ok(false);
        }
        r.insert(key, labels.iter().cloned().collect());
        Ok(true)
    }
    fn resource_exists(&self, kind: ResourceKind, name: &str) -> Result<bool, EngineError> {
        self.record(format!("{} inspect {name}", kind.as_str()))?;
        Ok(self
            .resources
            .lock()
            .is_ok_and(|r| r.contains_key(&(kind, name.to_string()))))
    }
    fn connect_network(&self, network: &str, container: &str) -> Result<(), EngineError> {
        self.record(format!("network connect {network} {container}"))?;
        if let Ok(mut c) = self.connected.lock() {
            c.entry(container.to_string())
                .or_default()
                .push(network.to_string());
        }
        Ok(())
    }
    fn owned_resources(
        &self,
        kind: ResourceKind,
        owner: &str,
        label: &str,
    ) -> Result<Vec<(String, String)>, EngineError> {
        self.record(format!("{} ls {owner}", kind.as_str()))?;
        Ok(self
            .resources
            .lock()
            .map(|r| {
                r.iter()
                    .filter(|((k, _), l)| {
                        *k == kind && l.get(super::LABEL_OWNER).map(String::as_str) == Some(owner)
                    })
                    .map(|((_, n), l)| (n.clone(), l.get(label).cloned().unwrap_or_default()))
                    .collect()
            })
            .unwrap_or_default())
    }
    fn remove_resource(&self, kind: ResourceKind, name: &str) -> Result<(), EngineError> {
        self.record(format!("{} rm {name}", kind.as_str()))?;
        if let Ok(mut r) = self.resources.lock() {
            r.remove(&(kind, name.to_string()));
        }
        Ok(())
    }
    fn run_helper(
        &self,
        args: &[String],
        _deadline: std::time::Duration,
    ) -> Result<String, EngineError> {
        self.record(format!("run {}", args.join(" ")))?;
        if let Ok(mut h) = self.helpers.lock() {
            h.push(args.to_vec());
        }
        let answer = self
            .helper_answers
            .lock()
            .ok()
            .and_then(|mut a| a.pop_front())
            .unwrap_or(Ok(String::new()));
        answer.map_err(|message| EngineError::Failed {
            command: "docker run".into(),
            code: Some(1),
            message,
        })
    }
}
