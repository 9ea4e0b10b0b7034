//! The node's request handling: commands in, jobs started, queued or refused, replies out.
//! Owned by the main loop in `mod.rs`; runner threads report back through `Done`.

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::thread;
use std::time::Instant;

use crossbeam_channel::Sender;
use serde_json::{Map, Value, json};

use super::config::{FunctionLimits, NodeSettings, WhenBusy};
use super::groups::Groups;
use super::identity::Identity;
use super::metrics::Metrics;
use super::protocol::{self, Command, Function, Who};
use super::recent::RecentIds;
use super::runner::{self, Outcome, Spec};
use super::template::{PARAMS_FILE_VAR, PARAMS_VAR, Template};
use crate::mqtt::MqttHandle;

/// Largest command payload handled; bigger ones get an error reply (pass large inputs by URL
/// or file reference).
pub const MAX_COMMAND_BYTES: usize = 16 << 20;
/// Jobs waiting per function, and bytes of params waiting in all queues together.
pub const MAX_QUEUE: usize = 64;
pub const MAX_QUEUED_BYTES: usize = 64 << 20;
/// Longest params for `{body}`: the kernel's limit on one environment string (128 KiB,
/// `MAX_ARG_STRLEN`) less `CYBERWAVE_PARAMS=` and the NUL. `{body_file}` and stdin have none.
pub const MAX_BODY_BYTES: usize = 128 * 1024 - PARAMS_VAR.len() - 2;

pub struct Job {
    function: Function,
    request_id: String,
    params: String,
}

pub struct Done {
    function: Function,
    request_id: String,
    outcome: Outcome,
}

pub struct Node {
    pub s: NodeSettings,
    pub id: Identity,
    pub mqtt: MqttHandle,
    pub groups: Groups,
    pub recent: RecentIds,
    pub shutting_down: bool,
    started: Instant,
    running: BTreeMap<Function, usize>,
    queued: BTreeMap<Function, VecDeque<Job>>,
    queued_bytes: usize,
    metrics: Metrics,
    done_tx: Sender<Done>,
    params_dir: PathBuf,
    seq: u64,
}

impl Node {
    pub fn new(
        s: NodeSettings,
        id: Identity,
        mqtt: MqttHandle,
        groups: Groups,
        done_tx: Sender<Done>,
    ) -> Self {
        // Params files of requests that were running when the node last stopped are stale.
        let params_dir = s.state_dir.join("cloud-node-params");
        let _ = std::fs::remove_dir_all(&params_dir);
        if let Err(e) = crate::fsutil::ensure_dir(&params_dir, 0o700) {
            log::warn!("cannot create {}: {e}", params_dir.display());
        }
        Node {
            recent: RecentIds::load(&s.state_dir),
            s,
            id,
            mqtt,
            groups,
            shutting_down: false,
            started: Instant::now(),
            running: BTreeMap::new(),
            queued: BTreeMap::new(),
            queued_bytes: 0,
            metrics: Metrics::default(),
            done_tx,
            params_dir,
            seq: 0,
        }
    }

    fn who(&self) -> Who<'_> {
        Who {
            slug: &self.id.slug,
            instance_uuid: &self.id.uuid,
        }
    }

    fn reply(&self, v: Value) {
        self.mqtt.publish_json(
            &protocol::response_topic(self.mqtt.prefix(), &self.id.uuid),
            v,
        );
    }

    fn reply_error(&self, request_id: Option<&str>, error: &str) {
        self.reply(protocol::reply_error(
            &self.who(),
            request_id,
            error,
            Map::new(),
        ));
    }

    fn limits(&self, f: Function) -> &FunctionLimits {
        match f {
            Function::Inference => &self.s.inference_limits,
            Function::Training => &self.s.training_limits,
        }
    }

    fn template(&self, f: Function) -> Option<&Template> {
        match f {
            Function::Inference => self.s.inference.as_ref(),
            Function::Training => self.s.training.as_ref(),
        }
    }

    pub fn running_total(&self) -> usize {
        self.running.values().sum()
    }

    fn function_json(&self, f: Function) -> Value {
        let l = self.limits(f);
        json!({"configured": self.template(f).is_some(), "running": self.running.get(&f).copied().unwrap_or(0),
               "queued": self.queued.get(&f).map_or(0, VecDeque::len), "concurrency": l.concurrency,
               "timeout_seconds": l.timeout.as_secs_f64(), "memory_mb": l.memory_mb})
    }

    pub fn status_json(&self) -> Value {
        json!({
            "slug": self.id.slug,
            "instance_uuid": self.id.uuid,
            "profile_slug": self.s.profile_slug,
            "uptime_seconds": (self.started.elapsed().as_secs_f64() * 10.0).round() / 10.0,
            "shutting_down": self.shutting_down,
            "functions": {
                "inference": self.function_json(Function::Inference),
                "training": self.function_json(Function::Training),
            },
            "queued_bytes": self.queued_bytes,
            "metrics": self.metrics.to_json(),
            "mqtt": {"connected": self.mqtt.is_connected(), "broker": format!("{}:{}", self.s.mqtt.host, self.s.mqtt.port)},
        })
    }

    pub fn heartbeat_message(&self) -> Value {
        json!({"type": "heartbeat", "status": if self.shutting_down { "terminating" } else { "online" },
               "slug": self.id.slug, "instance_uuid": self.id.uuid, "timestamp": crate::epoch_seconds(),
               "uptime_seconds": self.started.elapsed().as_secs(), "running": self.running_total(), "metrics": self.metrics.to_json()})
    }

    /// One MQTT message on a command topic.
    pub fn on_message(&mut self, topic: &str, payload: &[u8], retained: bool) {
        if payload.len() > MAX_COMMAND_BYTES {
            let id = protocol::request_id_only(payload);
            log::warn!(
                "command of {} bytes on {topic} refused (limit {MAX_COMMAND_BYTES})",
                payload.len()
            );
            if !retained {
                self.reply_error(
                    id.as_deref(),
                    &format!(
                        "command is {} bytes; the limit is {MAX_COMMAND_BYTES}: pass large inputs by URL or file",
                        payload.len()
                    ),
                );
            }
            return;
        }
        if retained {
            log::warn!(
                "ignoring a retained command on {topic} (request {}): commands run only when sent, not replayed",
                protocol::request_id_only(payload).unwrap_or_else(|| "?".into())
            );
            return;
        }
        let cmd = match protocol::parse(payload) {
            Ok(c) => c,
            Err(r) => {
                log::warn!("bad command: {}", r.error);
                self.reply_error(r.request_id.as_deref(), &r.error);
                return;
            }
        };
        let request_id = match &cmd {
            Command::Run { request_id, .. } | Command::Status { request_id } => request_id.clone(),
        };
        if !self.recent.insert(&request_id) {
            log::info!("request {request_id} already handled: not run again");
            return;
        }
        match cmd {
            Command::Status { request_id } => {
                let v =
                    protocol::reply_ok(&self.who(), &request_id, self.status_json(), Map::new());
                self.reply(v);
            }
            Command::Run {
                function,
                request_id,
                params,
            } => self.admit(Job {
                function,
                request_id,
                params: params.to_string(),
            }),
        }
    }

    /// Starts, queues or refuses a job, with an error reply for every refusal.
    fn admit(&mut self, job: Job) {
        let f = job.function;
        let refuse = |node: &mut Node, why: String| {
            node.metrics.entry(f.name()).rejected += 1;
            node.reply_error(Some(&job.request_id), &why);
        };
        if self.shutting_down {
            return refuse(self, "node is shutting down".into());
        }
        let Some(template) = self.template(f) else {
            return refuse(
                self,
                format!("no {} command configured on this node", f.name()),
            );
        };
        if template.uses_body && job.params.len() > MAX_BODY_BYTES {
            let why = format!(
                "params are {} bytes, over the {MAX_BODY_BYTES}-byte limit of {{body}} (one environment string); use {{body_file}} or read the params from stdin",
                job.params.len()
            );
            return refuse(self, why);
        }
        let limits = self.limits(f).clone();
        let running = self.running.get(&f).copied().unwrap_or(0);
        if running < limits.concurrency {
            return self.start(job);
        }
        let queue_len = self.queued.get(&f).map_or(0, VecDeque::len);
        let why = if limits.when_busy == WhenBusy::Reject {
            format!(
                "{} is busy ({running} running, limit {}): request rejected",
                f.name(),
                limits.concurrency
            )
        } else if queue_len >= MAX_QUEUE {
            format!(
                "{} queue is full ({MAX_QUEUE} waiting): request rejected",
                f.name()
            )
        } else if self.queued_bytes + job.params.len() > MAX_QUEUED_BYTES {
            format!("queued params would pass {MAX_QUEUED_BYTES} bytes: request rejected")
        } else {
            log::info!(
                "{} busy ({running} running): request {} queued",
                f.name(),
                job.request_id
            );
            self.queued_bytes += job.params.len();
            self.queued.entry(f).or_default().push_back(job);
            return;
        };
        refuse(self, why);
    }

    fn start(&mut self, job: Job) {
        let Some(script) = self.template(job.function).map(|t| t.script.clone()) else {
            return;
        };
        let limits = self.limits(job.function).clone();
        self.seq += 1;
        let params_file = self.params_dir.join(format!("{}.json", self.seq));
        if let Err(e) = std::fs::write(&params_file, &job.params) {
            let why = format!(
                "cannot write the params file {}: {e}",
                params_file.display()
            );
            log::error!("{why}");
            return self.reply_error(Some(&job.request_id), &why);
        }
        let mut env = vec![
            (
                PARAMS_FILE_VAR.to_string(),
                params_file.display().to_string(),
            ),
            ("CYBERWAVE_REQUEST_ID".into(), job.request_id.clone()),
            ("CYBERWAVE_FUNCTION".into(), job.function.name().into()),
        ];
        if job.params.len() <= MAX_BODY_BYTES {
            env.push((PARAMS_VAR.to_string(), job.params.clone()));
        }
        let spec = Spec {
            script,
            workdir: self.s.workdir.clone(),
            env,
            stdin: Some(params_file.clone()),
            timeout: limits.timeout,
            memory_mb: limits.memory_mb,
            cap: self.s.output_cap,
        };
        *self.running.entry(job.function).or_default() += 1;
        let (groups, tx) = (self.groups.clone(), self.done_tx.clone());
        log::info!("{} {} started", job.function.name(), job.request_id);
        let (function, request_id) = (job.function, job.request_id);
        let spawned = thread::Builder::new()
            .name(format!("fn-{}", function.name()))
            .spawn(move || {
                let outcome = runner::run(&spec, &groups);
                let _ = std::fs::remove_file(&params_file);
                let _ = tx.send(Done {
                    function,
                    request_id,
                    outcome,
                });
            });
        if let Err(e) = spawned {
            log::error!("cannot start a function thread: {e}");
            if let Some(n) = self.running.get_mut(&function) {
                *n = n.saturating_sub(1);
            }
        }
    }

    fn error_text(&self, d: &Done) -> String {
        let (o, limits) = (&d.outcome, self.limits(d.function));
        if o.timed_out {
            format!(
                "timeout: {} exceeded {} s; its process group was killed",
                d.function.name(),
                limits.timeout.as_secs_f64()
            )
        } else if o.memory_exceeded {
            format!(
                "memory: {} used more than {} MiB resident; its process group was killed",
                d.function.name(),
                limits.memory_mb.unwrap_or(0)
            )
        } else if let Some(sig) = o.signal {
            format!("killed by signal {sig}: {}", o.stderr.trim())
        } else {
            format!(
                "exit code {}: {}",
                o.exit_code.unwrap_or(-1),
                o.stderr.trim()
            )
        }
    }

    pub fn on_done(&mut self, d: Done) {
        if let Some(n) = self.running.get_mut(&d.function) {
            *n = n.saturating_sub(1);
        }
        let o = &d.outcome;
        let ms = o.duration.as_secs_f64() * 1000.0;
        self.metrics
            .entry(d.function.name())
            .record(o.success(), o.timed_out, ms);
        let mut extra = Map::new();
        extra.insert("exit_code".into(), json!(o.exit_code));
        extra.insert("duration_ms".into(), json!((ms * 10.0).round() / 10.0));
        extra.insert("function".into(), json!(d.function.name()));
        if o.truncated {
            extra.insert("truncated".into(), json!(true));
        }
        let reply = if o.success() {
            protocol::reply_ok(&self.who(), &d.request_id, json!(o.stdout), extra)
        } else {
            if o.timed_out {
                extra.insert("timeout".into(), json!(true));
            }
            if o.memory_exceeded {
                extra.insert("memory_exceeded".into(), json!(true));
            }
            extra.insert("stdout".into(), json!(o.stdout));
            let error = self.error_text(&d);
            protocol::reply_error(&self.who(), Some(&d.request_id), &error, extra)
        };
        log::info!(
            "{} {} finished in {ms:.0} ms ({})",
            d.function.name(),
            d.request_id,
            if o.success() { "ok" } else { "error" }
        );
        self.reply(reply);
        if !self.shutting_down
            && let Some(job) = self
                .queued
                .get_mut(&d.function)
                .and_then(VecDeque::pop_front)
        {
            self.queued_bytes = self.queued_bytes.saturating_sub(job.params.len());
            self.start(job);
        }
    }

    /// Stops taking commands: queued jobs get an error reply.
    pub fn begin_shutdown(&mut self) {
        self.shutting_down = true;
        let queued: Vec<Job> = self.queued.values_mut().flat_map(std::mem::take).collect();
        self.queued_bytes = 0;
        for j in queued {
            self.reply_error(Some(&j.request_id), "node is shutting down");
        }
    }
}
