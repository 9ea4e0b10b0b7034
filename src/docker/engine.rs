//! Docker as an [`Engine`]: the CLI with deadlines for calls, the Engine API socket where it
//! is cheaper (the container list, the events and logs streams), the CLI where the socket is
//! not reachable (`DOCKER_HOST` over TCP or SSH).

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use super::shape::{labels_of, parse_event, parse_inspect, parse_ps, parse_stats};
use super::{
    Docker, INSPECT_TIMEOUT, LABEL_CREATED_BY, PS_TIMEOUT, RM_TIMEOUT, START_TIMEOUT, api, describe,
};
use crate::engine::{
    Container, Details, Engine, EngineError, EventStream, ImageConfig, LineStream, LogStart,
    ResourceKind, Runtimes, StreamHandle, Usage,
};
use crate::process::OwnedChild;

/// Docker said the object does not exist (`No such container`, `No such image`).
pub(super) fn no_such(e: &EngineError) -> bool {
    matches!(e, EngineError::Failed { message, .. } if message.to_lowercase().contains("no such"))
}

fn parse_error(args: &[&str], detail: impl ToString) -> EngineError {
    EngineError::Parse {
        command: describe(args),
        detail: detail.to_string(),
    }
}

impl Engine for Docker {
    fn name(&self) -> &str {
        "docker"
    }

    fn version(&self) -> Option<String> {
        let out = self.run(
            &["version", "--format", "{{.Server.Version}}"],
            Duration::from_secs(5),
        );
        out.ok()
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    }

    /// Through the Engine API when its socket is reachable (no CLI process), else `docker ps`.
    fn ps(&self) -> Result<Vec<Container>, EngineError> {
        self.list_managed("{{json .}}", |out| parse_ps(out).map_err(|e| e.to_string()))
    }

    /// `Ok(None)` when there is no such container.
    fn inspect(&self, name: &str) -> Result<Option<Details>, EngineError> {
        let args = ["container", "inspect", name];
        match self.run(&args, INSPECT_TIMEOUT) {
            Ok(out) => {
                let v: Value = serde_json::from_str(&out).map_err(|e| parse_error(&args, e))?;
                let first = v
                    .get(0)
                    .ok_or_else(|| parse_error(&args, super::ShapeError::Empty))?;
                parse_inspect(first)
                    .map(Some)
                    .map_err(|e| parse_error(&args, e))
            }
            Err(e) if no_such(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// One `docker ps` and one `docker container inspect` for all of them; when one is gone
    /// meanwhile that call fails, and each is asked on its own.
    fn running(&self) -> Result<Vec<Details>, EngineError> {
        let ids = self.run(&["ps", "--quiet", "--no-trunc"], PS_TIMEOUT)?;
        let ids: Vec<&str> = ids
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut args = vec!["container", "inspect"];
        args.extend(&ids);
        if let Some(list) = self
            .run(&args, INSPECT_TIMEOUT)
            .ok()
            .and_then(|out| serde_json::from_str::<Vec<Value>>(&out).ok())
        {
            return Ok(list.iter().filter_map(|v| parse_inspect(v).ok()).collect());
        }
        let mut each = Vec::new();
        for id in ids {
            if let Some(d) = self.inspect(id)? {
                each.push(d);
            }
        }
        Ok(each)
    }

    fn image_exists(&self, image: &str) -> Result<bool, EngineError> {
        match self.run(
            &["image", "inspect", "--format", "{{.Id}}", image],
            INSPECT_TIMEOUT,
        ) {
            Ok(_) => Ok(true),
            Err(e) if no_such(&e) => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn image_config(&self, image: &str) -> ImageConfig {
        let both: Value = self
            .run(
                &[
                    "image",
                    "inspect",
                    "--format",
                    "{\"Id\":{{json .Id}},\"Config\":{{json .Config}}}",
                    image,
                ],
                INSPECT_TIMEOUT,
            )
            .ok()
            .and_then(|out| serde_json::from_str(out.trim()).ok())
            .unwrap_or_default();
        let v = &both["Config"];
        let env = v["Env"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|e| e.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        ImageConfig {
            id: both["Id"].as_str().unwrap_or_default().to_string(),
            env,
            labels: labels_of(v.get("Labels")),
        }
    }

    fn pull(
        &self,
        image: &str,
        anonymous: bool,
        on_line: &mut dyn FnMut(&str),
    ) -> Result<(), EngineError> {
        self.pull_lines(image, anonymous, on_line)
    }

    /// `docker manifest inspect -v` (15 s; `--insecure` for a loopback registry, which the
    /// engine itself trusts without TLS).
    fn announced_size(&self, image: &str) -> Option<u64> {
        let host = image.split('/').next().unwrap_or("");
        let local = host.starts_with("127.") || host.starts_with("localhost");
        let mut args = vec!["manifest", "inspect", "-v"];
        if local && image.contains('/') {
            args.push("--insecure");
        }
        args.push(image);
        let out = self.run(&args, Duration::from_secs(15)).ok()?;
        let v: Value = serde_json::from_str(out.trim()).ok()?;
        super::shape::manifest_size(&v, super::shape::registry_arch())
    }

    fn create(&self, argv: &[String]) -> Result<String, EngineError> {
        let args: Vec<&str> = argv.iter().map(String::as_str).collect();
        self.run(&args, self.create_timeout)
            .map(|o| o.trim().to_string())
    }

    fn start(&self, name: &str) -> Result<(), EngineError> {
        self.run(&["start", name], START_TIMEOUT).map(|_| ())
    }

    fn rename(&self, from: &str, to: &str) -> Result<(), EngineError> {
        self.run(&["rename", from, to], INSPECT_TIMEOUT).map(|_| ())
    }

    fn stop(&self, name: &str, timeout_s: u64) -> Result<(), EngineError> {
        let t = timeout_s.to_string();
        self.run(
            &["stop", "--time", &t, name],
            Duration::from_secs(timeout_s + 30),
        )
        .map(|_| ())
    }

    /// `docker rm -f -v`; a missing container is not an error.
    fn force_remove(&self, name: &str) -> Result<(), EngineError> {
        match self.run(&["rm", "-f", "-v", name], self.remove_timeout) {
            Err(e) if no_such(&e) => Ok(()),
            other => other.map(|_| ()),
        }
    }

    fn set_restart_policy(&self, name: &str, policy: &str) -> Result<(), EngineError> {
        let p = format!("--restart={policy}");
        self.run(&["update", &p, name], INSPECT_TIMEOUT).map(|_| ())
    }

    fn remove_image(&self, image: &str) -> Result<(), EngineError> {
        self.run(&["image", "rm", image], RM_TIMEOUT).map(|_| ())
    }

    fn unused_volumes(&self, owner: &str) -> Result<Vec<String>, EngineError> {
        let filter = format!("label={}={owner}", crate::engine::LABEL_OWNER);
        let args = [
            "volume",
            "ls",
            "-q",
            "--filter",
            "dangling=true",
            "--filter",
            &filter,
        ];
        let out = self.run(&args, PS_TIMEOUT)?;
        Ok(out
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect())
    }

    fn remove_volume(&self, name: &str) -> Result<(), EngineError> {
        self.run(&["volume", "rm", name], RM_TIMEOUT).map(|_| ())
    }

    fn ensure_resource(
        &self,
        kind: ResourceKind,
        name: &str,
        labels: &[(String, String)],
    ) -> Result<bool, EngineError> {
        self.ensure_resource_cli(kind, name, labels)
    }

    fn resource_exists(&self, kind: ResourceKind, name: &str) -> Result<bool, EngineError> {
        self.resource_exists_cli(kind, name)
    }

    fn connect_network(&self, network: &str, container: &str) -> Result<(), EngineError> {
        self.run(&["network", "connect", network, container], START_TIMEOUT)
            .map(|_| ())
    }

    fn owned_resources(
        &self,
        kind: ResourceKind,
        owner: &str,
        label: &str,
    ) -> Result<Vec<(String, String)>, EngineError> {
        self.owned_resources_cli(kind, owner, label)
    }

    fn remove_resource(&self, kind: ResourceKind, name: &str) -> Result<(), EngineError> {
        self.remove_resource_cli(kind, name)
    }

    fn run_helper(&self, args: &[String], deadline: Duration) -> Result<String, EngineError> {
        let mut all: Vec<&str> = vec!["run", "--rm"];
        all.extend(args.iter().map(String::as_str));
        self.run(&all, deadline)
    }

    fn runtimes(&self) -> Result<Runtimes, EngineError> {
        let out = self.run(
            &["info", "--format", "{{json .Runtimes}}|{{.DefaultRuntime}}"],
            INSPECT_TIMEOUT,
        )?;
        let (json, default) = out.trim().rsplit_once('|').unwrap_or((out.trim(), ""));
        let v: Value = serde_json::from_str(json).unwrap_or(Value::Null);
        let known = v
            .as_object()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        Ok(Runtimes {
            known,
            default: default.trim().to_string(),
        })
    }

    /// `docker info`'s root dir, bounded to 5 s; `/var/lib/docker` or `/` otherwise.
    fn data_root(&self) -> PathBuf {
        if let Ok(out) = self.run(
            &["info", "--format", "{{.DockerRootDir}}"],
            Duration::from_secs(5),
        ) {
            let dir = out.trim();
            if dir.starts_with('/') {
                return PathBuf::from(dir);
            }
        }
        let default = PathBuf::from("/var/lib/docker");
        if default.is_dir() {
            default
        } else {
            PathBuf::from("/")
        }
    }

    /// `docker stats --no-stream` (10 s).
    fn usage(&self) -> Result<Vec<Usage>, EngineError> {
        let out = self.run(
            &[
                "stats",
                "--no-stream",
                "--format",
                "{{.Name}}\t{{.CPUPerc}}\t{{.MemPerc}}",
            ],
            Duration::from_secs(10),
        )?;
        Ok(parse_stats(&out))
    }

    /// `GET /events` on the Engine API socket, else a long-lived `docker events` child.
    fn events(&self) -> Result<EventStream, EngineError> {
        if let Some(sock) = self.socket() {
            match api::follow_events(&sock) {
                Ok((lines, handle)) => {
                    return Ok(EventStream {
                        lines: Box::new(lines),
                        handle: StreamHandle::Socket(handle),
                        parse: parse_event,
                    });
                }
                Err(e) => {
                    log::debug!("events through the Engine API unavailable ({e}); using the CLI")
                }
            }
        }
        let filter = format!("label={LABEL_CREATED_BY}");
        let args = [
            "events",
            "--filter",
            "type=container",
            "--filter",
            &filter,
            "--format",
            "{{json .}}",
        ];
        let mut child = Command::new(self.bin())
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| EngineError::Spawn {
                command: describe(&args),
                detail: e.to_string(),
            })?;
        let out = child.stdout.take();
        let handle = StreamHandle::Process(OwnedChild(child));
        let out = out.ok_or_else(|| parse_error(&args, "no stdout"))?;
        Ok(EventStream {
            lines: Box::new(api::LogStream::new(Box::new(out))),
            handle,
            parse: parse_event,
        })
    }

    /// `GET /containers/{name}/logs?follow=1…` on the socket, else `docker logs -f`.
    fn follow_logs(&self, name: &str, from: LogStart) -> Result<LineStream, EngineError> {
        if let Some(sock) = self.socket() {
            let (lines, handle) =
                api::follow_logs(&sock, name, from).map_err(|e| EngineError::Failed {
                    command: format!("docker API logs {name}"),
                    code: None,
                    message: e.to_string(),
                })?;
            return Ok(LineStream {
                lines: Box::new(lines),
                handle: StreamHandle::Socket(handle),
            });
        }
        self.follow_logs_cli(name, from)
    }

    fn logs_command(&self, name: &str, tail: u64, follow: bool) -> Command {
        let mut cmd = Command::new(self.bin());
        cmd.args(["logs", "--tail", &tail.to_string()]);
        if follow {
            cmd.arg("-f");
        }
        cmd.arg(name);
        cmd
    }
}

impl Docker {
    /// The containers our runtime manages: through the API socket when it is there, else
    /// `ps -a` with `--format <format>`, its output read by `parse` (Docker prints an object
    /// per line, Podman one list).
    pub fn list_managed(
        &self,
        format: &str,
        parse: impl Fn(&str) -> Result<Vec<Container>, String>,
    ) -> Result<Vec<Container>, EngineError> {
        if let Some(sock) = self.socket() {
            match api::list_managed(&sock) {
                Ok(list) => return Ok(list),
                Err(e) => {
                    log::debug!("container list through the Engine API failed ({e}); using the CLI")
                }
            }
        }
        let filter = format!("label={LABEL_CREATED_BY}");
        let args = [
            "ps",
            "-a",
            "--no-trunc",
            "--filter",
            &filter,
            "--format",
            format,
        ];
        let out = self.run(&args, PS_TIMEOUT)?;
        parse(&out).map_err(|e| parse_error(&args, e))
    }

    /// `docker logs -f --timestamps`, stdout and stderr merged into one pipe.
    fn follow_logs_cli(&self, name: &str, from: LogStart) -> Result<LineStream, EngineError> {
        let command = format!("docker logs -f {name}");
        let spawn_error = |e: std::io::Error| EngineError::Spawn {
            command: command.clone(),
            detail: e.to_string(),
        };
        let (r, w) = std::io::pipe().map_err(spawn_error)?;
        let mut cmd = Command::new(self.bin());
        cmd.args(["logs", "-f", "--timestamps"]);
        match from {
            LogStart::Tail(0) => {}
            LogStart::Tail(n) => {
                cmd.args(["--tail", &n.to_string()]);
            }
            LogStart::Since { secs, nanos } => {
                cmd.args(["--since", &format!("{secs}.{nanos:09}")]);
            }
        }
        let child = cmd
            .arg(name)
            .stdin(Stdio::null())
            .stdout(w.try_clone().map_err(spawn_error)?)
            .stderr(w)
            .spawn()
            .map_err(spawn_error)?;
        // `cmd` (holding the write ends) is dropped here, so EOF arrives when the child exits.
        drop(cmd);
        Ok(LineStream {
            lines: Box::new(api::LogStream::new(Box::new(r))),
            handle: StreamHandle::Process(OwnedChild(child)),
        })
    }
}
