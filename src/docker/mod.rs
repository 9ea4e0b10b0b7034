//! The `docker` CLI, every call bounded by a deadline (the child is killed when it overruns),
//! with errors that name the command and carry Docker's own message. Typed parsing of
//! `ps`, `inspect`, `info` and `events` output; pull progress in `pull.rs`.

pub mod api;
pub mod args;
mod error;
pub mod pull;
mod pulling;

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::process::{RunError, run_with_deadline};

pub const PS_TIMEOUT: Duration = Duration::from_secs(10);
pub const INSPECT_TIMEOUT: Duration = Duration::from_secs(10);
pub const CREATE_TIMEOUT: Duration = Duration::from_secs(30);
pub const START_TIMEOUT: Duration = Duration::from_secs(30);
pub const RM_TIMEOUT: Duration = Duration::from_secs(60);
pub const PULL_TIMEOUT: Duration = Duration::from_secs(600);

pub use error::{DockerError, error_summary};

/// A container as `docker ps --format '{{json .}}'` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct PsEntry {
    pub id: String,
    pub name: String,
    pub image: String,
    /// `created`, `running`, `paused`, `restarting`, `removing`, `exited`, `dead`.
    pub state: String,
    /// Human status, e.g. `Exited (1) 3 seconds ago`.
    pub status: String,
    pub labels: BTreeMap<String, String>,
}

impl PsEntry {
    /// Exit code from the `Exited (N) …` status text.
    pub fn exit_code(&self) -> Option<i32> {
        let rest = self.status.strip_prefix("Exited (")?;
        rest.split(')').next()?.trim().parse().ok()
    }
}

/// A JSON object of labels (the Engine API's shape) as a map; anything else is empty.
pub fn labels_of(v: Option<&Value>) -> BTreeMap<String, String> {
    v.and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
                .collect()
        })
        .unwrap_or_default()
}

fn parse_labels(s: &str) -> BTreeMap<String, String> {
    s.split(',')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.to_string()))
        .collect()
}

/// Parses `docker ps --format '{{json .}}'` output, one object per line.
pub fn parse_ps(out: &str) -> Result<Vec<PsEntry>, String> {
    let mut list = Vec::new();
    for (i, line) in out.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let v: Value = serde_json::from_str(line).map_err(|e| format!("line {}: {e}", i + 1))?;
        let s = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        list.push(PsEntry {
            id: s("ID"),
            name: s("Names").split(',').next().unwrap_or("").to_string(),
            image: s("Image"),
            state: s("State"),
            status: s("Status"),
            labels: parse_labels(&s("Labels")),
        });
    }
    Ok(list)
}

/// What we read from `docker inspect` of a container.
#[derive(Debug, Clone, PartialEq)]
pub struct Inspect {
    pub id: String,
    pub name: String,
    pub status: String,
    pub running: bool,
    pub exit_code: i64,
    pub restart_count: u64,
    pub started_at: String,
    pub finished_at: String,
    pub image: String,
    pub labels: BTreeMap<String, String>,
    pub env: Vec<String>,
    pub mounts: Vec<Value>,
    pub restart_policy: String,
    /// `Config.StopTimeout`: the container's own grace period (`--stop-timeout`), if set.
    pub stop_timeout_s: Option<u64>,
}

#[cfg(test)]
impl Inspect {
    /// A container in `status` for unit tests; other fields empty or Docker's defaults.
    pub fn example(status: &str, running: bool) -> Self {
        Inspect {
            id: "id".into(),
            name: "c".into(),
            status: status.into(),
            running,
            exit_code: 0,
            restart_count: 0,
            started_at: String::new(),
            finished_at: String::new(),
            image: String::new(),
            labels: BTreeMap::new(),
            env: Vec::new(),
            mounts: Vec::new(),
            restart_policy: "no".into(),
            stop_timeout_s: None,
        }
    }
}

pub fn parse_inspect(v: &Value) -> Result<Inspect, String> {
    let s = |p: &str| {
        v.pointer(p)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    if v.get("Id").is_none() {
        return Err("no Id".into());
    }
    Ok(Inspect {
        id: s("/Id"),
        name: s("/Name").trim_start_matches('/').to_string(),
        status: s("/State/Status"),
        running: v
            .pointer("/State/Running")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        exit_code: v
            .pointer("/State/ExitCode")
            .and_then(Value::as_i64)
            .unwrap_or(0),
        restart_count: v.get("RestartCount").and_then(Value::as_u64).unwrap_or(0),
        started_at: s("/State/StartedAt"),
        finished_at: s("/State/FinishedAt"),
        image: s("/Config/Image"),
        labels: labels_of(v.pointer("/Config/Labels")),
        env: v
            .pointer("/Config/Env")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|e| e.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default(),
        mounts: v
            .get("Mounts")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default(),
        restart_policy: s("/HostConfig/RestartPolicy/Name"),
        stop_timeout_s: v.pointer("/Config/StopTimeout").and_then(Value::as_u64),
    })
}

/// One container event from `docker events --format '{{json .}}'`.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerEvent {
    pub action: String,
    pub id: String,
    pub name: String,
    pub exit_code: Option<i32>,
    pub labels: BTreeMap<String, String>,
}

pub fn parse_event(line: &str) -> Option<ContainerEvent> {
    let v: Value = serde_json::from_str(line).ok()?;
    if v.get("Type").and_then(Value::as_str) != Some("container") {
        return None;
    }
    let attrs = v.pointer("/Actor/Attributes").and_then(Value::as_object);
    let attr = |k: &str| {
        attrs
            .and_then(|a| a.get(k))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let labels = attrs
        .map(|a| {
            a.iter()
                .filter(|(k, _)| k.starts_with("io.cyberwave."))
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
                .collect()
        })
        .unwrap_or_default();
    Some(ContainerEvent {
        action: v
            .get("Action")
            .or_else(|| v.get("status"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        id: v
            .pointer("/Actor/ID")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        name: attr("name").unwrap_or_default(),
        exit_code: attr("exitCode").and_then(|c| c.parse().ok()),
        labels,
    })
}

/// Docker's data root (`docker info`), bounded to 5 s; `/var/lib/docker` or `/` otherwise.
pub fn data_root(docker_bin: &str) -> std::path::PathBuf {
    let mut cmd = Command::new(docker_bin);
    cmd.args(["info", "--format", "{{.DockerRootDir}}"]);
    if let Ok(out) = crate::process::run_with_deadline(cmd, Duration::from_secs(5)) {
        let dir = out.stdout.trim();
        if out.status == Some(0) && dir.starts_with('/') {
            return std::path::PathBuf::from(dir);
        }
    }
    let default = std::path::PathBuf::from("/var/lib/docker");
    if default.is_dir() {
        default
    } else {
        std::path::PathBuf::from("/")
    }
}

/// The docker CLI.
#[derive(Debug, Clone)]
pub struct Docker {
    bin: String,
    /// Deadlines of `docker create` and `docker rm` (`CYBERWAVE_DRIVER_CREATE_TIMEOUT_SECONDS`,
    /// `CYBERWAVE_DRIVER_REMOVE_TIMEOUT_SECONDS`).
    create_timeout: Duration,
    remove_timeout: Duration,
}

impl Docker {
    pub fn new(bin: &str) -> Self {
        Docker {
            bin: bin.to_string(),
            create_timeout: CREATE_TIMEOUT,
            remove_timeout: RM_TIMEOUT,
        }
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

    /// Runs `docker <args>`; a non-zero exit is [`DockerError::Failed`] with Docker's stderr.
    pub fn run(&self, args: &[&str], deadline: Duration) -> Result<String, DockerError> {
        let command = describe(args);
        let mut cmd = Command::new(&self.bin);
        cmd.args(args);
        match run_with_deadline(cmd, deadline) {
            Ok(out) if out.status == Some(0) => Ok(out.stdout),
            Ok(out) => Err(DockerError::Failed {
                command,
                code: out.status,
                message: error_summary(&out.stderr),
            }),
            Err(RunError::Spawn(detail)) => Err(DockerError::Spawn { command, detail }),
            Err(RunError::TimedOut(after)) => Err(DockerError::TimedOut { command, after }),
        }
    }

    /// All containers our runtime manages (the created-by label, any role), any state: the one
    /// call per reconcile tick. Through the Engine API when its socket is reachable (no CLI
    /// process), else `docker ps`.
    pub fn ps_managed(&self) -> Result<Vec<PsEntry>, DockerError> {
        if let Some(sock) = api::socket_path() {
            match api::list_managed(&sock) {
                Ok(list) => return Ok(list),
                Err(e) => {
                    log::debug!("container list through the Engine API failed ({e}); using the CLI")
                }
            }
        }
        let args = [
            "ps",
            "-a",
            "--no-trunc",
            "--filter",
            "label=io.cyberwave.edge.created-by",
            "--format",
            "{{json .}}",
        ];
        let out = self.run(&args, PS_TIMEOUT)?;
        parse_ps(&out).map_err(|detail| DockerError::Parse {
            command: describe(&args),
            detail,
        })
    }

    /// `docker inspect`; `Ok(None)` when there is no such container.
    pub fn inspect(&self, name: &str) -> Result<Option<Inspect>, DockerError> {
        let args = ["container", "inspect", name];
        match self.run(&args, INSPECT_TIMEOUT) {
            Ok(out) => {
                let v: Value = serde_json::from_str(&out).map_err(|e| DockerError::Parse {
                    command: describe(&args),
                    detail: e.to_string(),
                })?;
                let first = v.get(0).ok_or_else(|| DockerError::Parse {
                    command: describe(&args),
                    detail: "empty list".into(),
                })?;
                parse_inspect(first)
                    .map(Some)
                    .map_err(|detail| DockerError::Parse {
                        command: describe(&args),
                        detail,
                    })
            }
            Err(DockerError::Failed { message, .. })
                if message.to_lowercase().contains("no such") =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    pub fn image_exists(&self, image: &str) -> Result<bool, DockerError> {
        match self.run(
            &["image", "inspect", "--format", "{{.Id}}", image],
            INSPECT_TIMEOUT,
        ) {
            Ok(_) => Ok(true),
            Err(DockerError::Failed { message, .. })
                if message.to_lowercase().contains("no such") =>
            {
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// What an image declares: its `Config.Env` and `Config.Labels` (both empty when the
    /// engine cannot say within the deadline: callers treat that as "declares nothing").
    pub fn image_config(&self, image: &str) -> (Vec<String>, BTreeMap<String, String>) {
        let v: Value = self
            .run(
                &["image", "inspect", "--format", "{{json .Config}}", image],
                INSPECT_TIMEOUT,
            )
            .ok()
            .and_then(|out| serde_json::from_str(out.trim()).ok())
            .unwrap_or_default();
        let env = v["Env"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|e| e.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        (env, labels_of(v.get("Labels")))
    }

    /// Runtimes known to the engine (`nvidia` for GPUs) and the default one.
    pub fn runtimes(&self) -> Result<(Vec<String>, String), DockerError> {
        let out = self.run(
            &["info", "--format", "{{json .Runtimes}}|{{.DefaultRuntime}}"],
            INSPECT_TIMEOUT,
        )?;
        let (json, default) = out.trim().rsplit_once('|').unwrap_or((out.trim(), ""));
        let v: Value = serde_json::from_str(json).unwrap_or(Value::Null);
        let names = v
            .as_object()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        Ok((names, default.trim().to_string()))
    }

    pub fn create(&self, argv: &[String]) -> Result<String, DockerError> {
        let args: Vec<&str> = argv.iter().map(String::as_str).collect();
        self.run(&args, self.create_timeout)
            .map(|o| o.trim().to_string())
    }

    pub fn start(&self, name: &str) -> Result<(), DockerError> {
        self.run(&["start", name], START_TIMEOUT).map(|_| ())
    }

    pub fn stop(&self, name: &str, timeout_s: u64) -> Result<(), DockerError> {
        let t = timeout_s.to_string();
        self.run(
            &["stop", "--time", &t, name],
            Duration::from_secs(timeout_s + 30),
        )
        .map(|_| ())
    }

    /// `docker rm -f -v`; a missing container is not an error. Only the runtime's graceful
    /// retire (`containers::retire`) calls it, after the container has stopped.
    pub fn remove(&self, name: &str) -> Result<(), DockerError> {
        match self.run(&["rm", "-f", "-v", name], self.remove_timeout) {
            Err(DockerError::Failed { message, .. })
                if message.to_lowercase().contains("no such") =>
            {
                Ok(())
            }
            other => other.map(|_| ()),
        }
    }

    pub fn set_restart_policy(&self, name: &str, policy: &str) -> Result<(), DockerError> {
        let p = format!("--restart={policy}");
        self.run(&["update", &p, name], INSPECT_TIMEOUT).map(|_| ())
    }

    /// A long-lived `docker events` child for our containers (one JSON object per line).
    pub fn events(&self) -> std::io::Result<Child> {
        Command::new(&self.bin)
            .args([
                "events",
                "--filter",
                "type=container",
                "--filter",
                "label=io.cyberwave.edge.created-by",
                "--format",
                "{{json .}}",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
    }

    /// `docker logs -f --tail N <name>`, stdout and stderr merged into the returned pipe.
    pub fn follow_logs(
        &self,
        name: &str,
        from: api::LogStart,
    ) -> std::io::Result<(Child, std::io::PipeReader)> {
        let (r, w) = std::io::pipe()?;
        let mut cmd = Command::new(&self.bin);
        cmd.args(["logs", "-f", "--timestamps"]);
        match from {
            api::LogStart::Tail(0) => {}
            api::LogStart::Tail(n) => {
                cmd.args(["--tail", &n.to_string()]);
            }
            api::LogStart::Since { secs, nanos } => {
                cmd.args(["--since", &format!("{secs}.{nanos:09}")]);
            }
        }
        let child = cmd
            .arg(name)
            .stdin(Stdio::null())
            .stdout(w.try_clone()?)
            .stderr(w)
            .spawn()?;
        // `cmd` (holding the write ends) is dropped here, so EOF arrives when the child exits.
        Ok((child, r))
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
