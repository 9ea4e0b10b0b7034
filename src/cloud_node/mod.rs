//! `cyberwave-cloud-node`: a GPU host that registers an instance, heartbeats, and runs
//! `inference` / `training` shell commands received over MQTT, replying with their output.
//! Each command is a function with a timeout, a memory limit and a concurrency limit; every
//! invocation is measured.

pub mod config;
pub mod metrics;
pub mod protocol;
pub mod runner;

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{Sender, after, bounded, never, select, tick, unbounded};
use serde_json::{Map, Value, json};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use self::config::{Flags, FunctionLimits, NodeSettings, WhenBusy};
use self::metrics::Metrics;
use self::protocol::{Command, Function, Who};
use self::runner::{Groups, Outcome};
use crate::backend::{Backend, BackendError};
use crate::control::{self, ControlRequest, Request};
use crate::mqtt::{Link, LinkEvent, MqttHandle};

/// Why the node stopped with an error.
#[derive(Debug)]
pub enum NodeError {
    /// Bad configuration or no token (exit 2).
    Config(String),
    /// Install script, registration or setup failed (exit 1).
    Startup(String),
}

impl std::fmt::Display for NodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NodeError::Config(e) | NodeError::Startup(e) => f.write_str(e),
        }
    }
}

impl NodeError {
    pub fn exit_code(&self) -> i32 {
        match self {
            NodeError::Config(_) => 2,
            NodeError::Startup(_) => 1,
        }
    }
}

/// `instance_identity.json`: who this node is, kept across restarts.
#[derive(Debug, Clone, PartialEq)]
pub struct Identity {
    pub uuid: String,
    pub slug: String,
}

const IDENTITY_FILE: &str = "instance_identity.json";

pub fn load_identity(dir: &Path) -> Option<Identity> {
    let v: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join(IDENTITY_FILE)).ok()?).ok()?;
    Some(Identity {
        uuid: crate::config::parse_uuid(v.get("uuid")?.as_str()?)?,
        slug: v
            .get("slug")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
    })
}

fn save_identity(dir: &Path, id: &Identity) {
    let _ = crate::fsutil::ensure_dir(dir, 0o700);
    if let Err(e) = crate::fsutil::write_json_atomic(
        &dir.join(IDENTITY_FILE),
        &json!({"uuid": id.uuid, "slug": id.slug}),
        0o600,
    ) {
        log::error!("cannot write {}: {e}", dir.join(IDENTITY_FILE).display());
    }
}

fn backend_for(s: &NodeSettings) -> Backend {
    Backend::with_base(
        &s.api_url,
        s.token.clone(),
        None,
        Duration::from_secs(10),
        3,
    )
}

/// Registers (creating the instance when this host has none yet) and returns the identity.
fn register(
    b: &Backend,
    s: &NodeSettings,
    known: Option<Identity>,
) -> Result<Identity, BackendError> {
    let id = match known {
        Some(id) => id,
        None => {
            let mut body = json!({"profile_slug": s.profile_slug, "provider": "self-hosted"});
            if let Some(slug) = &s.slug_hint {
                body["slug"] = json!(slug);
            }
            let created = b.post_json("/api/v1/cloud-node", &body)?;
            let uuid = created
                .get("uuid")
                .and_then(Value::as_str)
                .and_then(crate::config::parse_uuid)
                .ok_or_else(|| BackendError::BadResponse {
                    endpoint: "POST /api/v1/cloud-node".into(),
                    status: 200,
                    detail: "no uuid in the answer".into(),
                    snippet: created.to_string().chars().take(200).collect(),
                })?;
            Identity {
                uuid,
                slug: created
                    .get("slug")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
            }
        }
    };
    let mut body = json!({"profile_slug": s.profile_slug});
    if let Some(e) = &s.environment_uuid {
        body["environment_uuid"] = json!(e);
    }
    let r = b.post_json(&format!("/api/v1/cloud-node/{}/register", id.uuid), &body)?;
    Ok(Identity {
        uuid: r
            .get("uuid")
            .and_then(Value::as_str)
            .and_then(crate::config::parse_uuid)
            .unwrap_or(id.uuid),
        slug: r
            .get("slug")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .unwrap_or(id.slug),
    })
}

struct Job {
    function: Function,
    request_id: String,
    params: Value,
}

struct Done {
    function: Function,
    request_id: String,
    outcome: Outcome,
}

struct Node {
    s: NodeSettings,
    id: Identity,
    mqtt: MqttHandle,
    started: Instant,
    running: BTreeMap<Function, usize>,
    queued: BTreeMap<Function, VecDeque<Job>>,
    seen: HashSet<String>,
    seen_order: VecDeque<String>,
    metrics: Metrics,
    groups: Groups,
    done_tx: Sender<Done>,
    shutting_down: bool,
}

impl Node {
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

    fn limits(&self, f: Function) -> &FunctionLimits {
        match f {
            Function::Inference => &self.s.inference_limits,
            Function::Training => &self.s.training_limits,
        }
    }

    fn template(&self, f: Function) -> Option<&String> {
        match f {
            Function::Inference => self.s.inference.as_ref(),
            Function::Training => self.s.training.as_ref(),
        }
    }

    /// True the first time a request id is seen (bounded memory of the last 4096).
    fn first_time(&mut self, id: &str) -> bool {
        if !self.seen.insert(id.to_string()) {
            return false;
        }
        self.seen_order.push_back(id.to_string());
        if self.seen_order.len() > 4096
            && let Some(old) = self.seen_order.pop_front()
        {
            self.seen.remove(&old);
        }
        true
    }

    fn status_json(&self) -> Value {
        json!({
            "slug": self.id.slug,
            "instance_uuid": self.id.uuid,
            "profile_slug": self.s.profile_slug,
            "uptime_seconds": (self.started.elapsed().as_secs_f64() * 10.0).round() / 10.0,
            "shutting_down": self.shutting_down,
            "functions": {
                "inference": {"configured": self.s.inference.is_some(), "running": self.running.get(&Function::Inference).copied().unwrap_or(0),
                              "queued": self.queued.get(&Function::Inference).map_or(0, |q| q.len()), "concurrency": self.s.inference_limits.concurrency,
                              "timeout_seconds": self.s.inference_limits.timeout.as_secs_f64(), "memory_mb": self.s.inference_limits.memory_mb},
                "training": {"configured": self.s.training.is_some(), "running": self.running.get(&Function::Training).copied().unwrap_or(0),
                             "queued": self.queued.get(&Function::Training).map_or(0, |q| q.len()), "concurrency": self.s.training_limits.concurrency,
                             "timeout_seconds": self.s.training_limits.timeout.as_secs_f64(), "memory_mb": self.s.training_limits.memory_mb},
            },
            "metrics": self.metrics.to_json(),
            "mqtt": {"connected": self.mqtt.is_connected(), "broker": format!("{}:{}", self.s.mqtt.host, self.s.mqtt.port)},
        })
    }

    fn on_message(&mut self, payload: &[u8]) {
        let cmd = match protocol::parse(payload) {
            Ok(c) => c,
            Err(r) => {
                log::warn!("bad command: {}", r.error);
                self.reply(protocol::reply_error(
                    &self.who(),
                    r.request_id.as_deref(),
                    &r.error,
                    Map::new(),
                ));
                return;
            }
        };
        let request_id = match &cmd {
            Command::Run { request_id, .. } | Command::Status { request_id } => request_id.clone(),
        };
        if !self.first_time(&request_id) {
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
            } => {
                if self.shutting_down {
                    self.reply(protocol::reply_error(
                        &self.who(),
                        Some(&request_id),
                        "node is shutting down",
                        Map::new(),
                    ));
                    return;
                }
                if self.template(function).is_none() {
                    let e = format!("no {} command configured on this node", function.name());
                    self.reply(protocol::reply_error(
                        &self.who(),
                        Some(&request_id),
                        &e,
                        Map::new(),
                    ));
                    return;
                }
                let limits = self.limits(function).clone();
                let running = self.running.get(&function).copied().unwrap_or(0);
                let job = Job {
                    function,
                    request_id,
                    params,
                };
                if running < limits.concurrency {
                    self.start(job);
                } else if limits.when_busy == WhenBusy::Queue {
                    log::info!(
                        "{} busy ({running} running): request {} queued",
                        function.name(),
                        job.request_id
                    );
                    self.queued.entry(function).or_default().push_back(job);
                } else {
                    self.metrics.entry(function.name()).rejected += 1;
                    let e = format!(
                        "{} is busy ({running} running, limit {}): request rejected",
                        function.name(),
                        limits.concurrency
                    );
                    self.reply(protocol::reply_error(
                        &self.who(),
                        Some(&job.request_id),
                        &e,
                        Map::new(),
                    ));
                }
            }
        }
    }

    fn start(&mut self, job: Job) {
        let Some(template) = self.template(job.function).cloned() else {
            return;
        };
        let limits = self.limits(job.function).clone();
        *self.running.entry(job.function).or_default() += 1;
        let script = protocol::render(&template, &job.params);
        let (groups, tx, cap) = (self.groups.clone(), self.done_tx.clone(), self.s.output_cap);
        log::info!("{} {} started", job.function.name(), job.request_id);
        let spawned = thread::Builder::new()
            .name(format!("fn-{}", job.function.name()))
            .spawn(move || {
                let outcome = runner::run(&script, limits.timeout, limits.memory_mb, cap, &groups);
                let _ = tx.send(Done {
                    function: job.function,
                    request_id: job.request_id,
                    outcome,
                });
            });
        if let Err(e) = spawned {
            log::error!("cannot start a function thread: {e}");
        }
    }

    fn on_done(&mut self, d: Done) {
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
            let limits = self.limits(d.function);
            let error = if o.timed_out {
                extra.insert("timeout".into(), json!(true));
                format!(
                    "timeout: {} exceeded {} s; its process group was killed",
                    d.function.name(),
                    limits.timeout.as_secs_f64()
                )
            } else if let Some(sig) = o.signal {
                format!("killed by signal {sig}: {}", o.stderr.trim())
            } else {
                format!(
                    "exit code {}: {}",
                    o.exit_code.unwrap_or(-1),
                    o.stderr.trim()
                )
            };
            extra.insert("stdout".into(), json!(o.stdout));
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
            self.start(job);
        }
    }

    fn running_total(&self) -> usize {
        self.running.values().sum()
    }

    fn heartbeat_message(&self) -> Value {
        json!({"type": "heartbeat", "status": if self.shutting_down { "terminating" } else { "online" },
               "slug": self.id.slug, "instance_uuid": self.id.uuid, "timestamp": crate::epoch_seconds(),
               "uptime_seconds": self.started.elapsed().as_secs(), "running": self.running_total(), "metrics": self.metrics.to_json()})
    }
}

/// Runs the node until SIGTERM/SIGINT.
pub fn run(flags: Flags, verbose: bool) -> Result<(), NodeError> {
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/root"));
    let s = config::load(&flags, &cwd, &home).map_err(NodeError::Config)?;
    let level = if verbose {
        "debug".to_string()
    } else {
        std::env::var("CYBERWAVE_LOG_LEVEL").unwrap_or_else(|_| "info".into())
    };
    crate::logging::init(&level);
    log::info!(
        "cyberwave-cloud-node {} starting: api {}, broker {}:{}, profile {}, token {}",
        crate::VERSION,
        s.api_url,
        s.mqtt.host,
        s.mqtt.port,
        s.profile_slug,
        s.token
    );

    let mut signals =
        Signals::new([SIGTERM, SIGINT]).map_err(|e| NodeError::Startup(format!("signals: {e}")))?;
    let (sig_tx, sig_rx) = bounded::<i32>(4);
    thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for sig in signals.forever() {
                if sig_tx.send(sig).is_err() {
                    break;
                }
            }
        })
        .map_err(|e| NodeError::Startup(e.to_string()))?;

    let backend = backend_for(&s);
    let known = load_identity(&s.state_dir);
    if let Some(script) = &s.install_script {
        log::info!("running install script: {script}");
        if let Err(e) = runner::install(script, Duration::from_secs(3600)) {
            log::error!("{e}");
            let id = known.clone().or_else(|| register(&backend, &s, None).ok());
            if let Some(id) = id {
                save_identity(&s.state_dir, &id);
                let body = json!({"error": e, "slug": id.slug, "instance_uuid": id.uuid});
                if let Err(re) =
                    backend.post_json(&format!("/api/v1/cloud-node/{}/failed", id.uuid), &body)
                {
                    log::error!("could not report the failure: {re}");
                }
            }
            return Err(NodeError::Startup(e));
        }
    }

    // Register, retrying with backoff while the backend is unreachable (SIGTERM still works).
    let mut backoff = crate::backoff::Backoff::new(Duration::from_secs(2), Duration::from_secs(60));
    let mut known = known;
    let id = loop {
        match register(&backend, &s, known.clone()) {
            Ok(id) => break id,
            Err(BackendError::NotFound { .. }) if known.is_some() => {
                log::warn!(
                    "instance {} is unknown to the backend: creating a new one",
                    known.as_ref().map(|k| k.uuid.as_str()).unwrap_or("")
                );
                known = None;
            }
            Err(e) if e.is_transient() => {
                let d = backoff.next_delay();
                log::warn!("registration: {e}; retrying in {:.0} s", d.as_secs_f64());
                if sig_rx.recv_timeout(d).is_ok() {
                    return Ok(());
                }
            }
            Err(e) => return Err(NodeError::Startup(format!("registration failed: {e}"))),
        }
    };
    save_identity(&s.state_dir, &id);
    log::info!("registered as {} ({})", id.slug, id.uuid);

    let (link_tx, link_rx) = unbounded::<LinkEvent>();
    let link = Link::start(&s.mqtt, crate::mqtt::new_client_id(), 10_000, link_tx)
        .map_err(|e| NodeError::Startup(e.to_string()))?;
    let mqtt = link.handle();
    let mut command_topics = vec![protocol::command_topic(mqtt.prefix(), &id.uuid)];
    if !id.slug.is_empty() {
        command_topics.push(protocol::command_topic(mqtt.prefix(), &id.slug));
    }
    for t in &command_topics {
        mqtt.subscribe(t);
        log::info!("listening on {t}");
    }

    let (control_tx, mut control_rx) = unbounded::<ControlRequest>();
    let _socket = control::serve(&s.control_socket, control_tx)
        .map_err(|e| NodeError::Startup(e.to_string()))?;

    // REST heartbeats on their own thread: a slow backend never delays commands.
    let (hb_tx, hb_rx) = bounded::<()>(1);
    {
        let b = backend.clone();
        let uuid = id.uuid.clone();
        thread::Builder::new()
            .name("heartbeat".into())
            .spawn(move || {
                for () in hb_rx {
                    if let Err(e) = b.post_empty(&format!("/api/v1/cloud-node/{uuid}/heartbeat")) {
                        log::warn!("heartbeat: {e}");
                    }
                }
            })
            .map_err(|e| NodeError::Startup(e.to_string()))?;
    }

    let (done_tx, done_rx) = unbounded::<Done>();
    let mut node = Node {
        s,
        id,
        mqtt,
        started: Instant::now(),
        running: BTreeMap::new(),
        queued: BTreeMap::new(),
        seen: HashSet::new(),
        seen_order: VecDeque::new(),
        metrics: Metrics::default(),
        groups: Groups::default(),
        done_tx,
        shutting_down: false,
    };
    let heartbeat = tick(node.s.heartbeat_interval);
    let _ = hb_tx.try_send(());
    let mut link_rx = link_rx;
    let mut grace_deadline = never::<Instant>();
    loop {
        select! {
            recv(sig_rx) -> sig => {
                if node.shutting_down {
                    continue;
                }
                log::info!("signal {}: no new commands; {} running get {} s to finish", sig.unwrap_or(0), node.running_total(), node.s.shutdown_grace.as_secs());
                node.shutting_down = true;
                for t in &command_topics {
                    node.mqtt.unsubscribe(t);
                }
                let queued: Vec<Job> = node.queued.values_mut().flat_map(std::mem::take).collect();
                for j in queued {
                    node.reply(protocol::reply_error(&node.who(), Some(&j.request_id), "node is shutting down", Map::new()));
                }
                if node.running_total() == 0 {
                    break;
                }
                grace_deadline = after(node.s.shutdown_grace);
            },
            recv(grace_deadline) -> _ => {
                log::warn!("grace period over: killing {} running command(s)", node.running_total());
                node.groups.kill_all();
                grace_deadline = never();
            },
            recv(done_rx) -> d => {
                if let Ok(d) = d {
                    node.on_done(d);
                    if node.shutting_down && node.running_total() == 0 {
                        break;
                    }
                }
            },
            recv(link_rx) -> ev => match ev {
                Ok(LinkEvent::Message { topic, payload }) if command_topics.contains(&topic) => node.on_message(&payload),
                Ok(_) => {}
                Err(_) => link_rx = never(),
            },
            recv(control_rx) -> req => match req {
                Ok(req) => match req.request {
                    Request::Status => { let _ = req.reply.send(node.status_json()); }
                },
                Err(_) => control_rx = never(),
            },
            recv(heartbeat) -> _ => {
                let _ = hb_tx.try_send(());
                let msg = node.heartbeat_message();
                node.mqtt.publish_json(&protocol::status_topic(node.mqtt.prefix(), &node.id.uuid), msg);
            },
        }
    }

    // Termination: tell MQTT and the backend, then leave.
    let mut msg = node.heartbeat_message();
    msg["type"] = json!("terminated");
    msg["status"] = json!("terminated");
    node.mqtt.publish_json(
        &protocol::status_topic(node.mqtt.prefix(), &node.id.uuid),
        msg,
    );
    let body = json!({"slug": node.id.slug, "instance_uuid": node.id.uuid});
    let quick = Backend::with_base(
        &node.s.api_url,
        node.s.token.clone(),
        None,
        Duration::from_secs(5),
        1,
    );
    if let Err(e) = quick.post_json(
        &format!("/api/v1/cloud-node/{}/terminated", node.id.uuid),
        &body,
    ) {
        log::warn!("terminated notice: {e}");
    }
    link.shutdown(Duration::from_secs(2));
    log::info!("cloud node stopped");
    Ok(())
}

/// `cyberwave-cloud-node status`: asks the running node; exit 0 healthy, 1 degraded (MQTT
/// down), 2 not running.
pub fn status(as_json: bool) -> i32 {
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/root"));
    let socket = std::env::var("CYBERWAVE_CLOUD_NODE_CONTROL_SOCKET")
        .map(PathBuf::from)
        .unwrap_or_else(|_| home.join(".cyberwave/cloud-node.sock"));
    let (code, report) = match control::query(&socket, "status", Duration::from_millis(900)) {
        Ok(v) => {
            let up = v.pointer("/mqtt/connected") == Some(&json!(true));
            let code = if up { 0 } else { 1 };
            (
                code,
                json!({"state": if up { "healthy" } else { "degraded" }, "exit_code": code, "running": true, "node": v}),
            )
        }
        Err(e) => (
            2,
            json!({"state": "not_running", "exit_code": 2, "running": false, "problem": e.to_string()}),
        ),
    };
    let text = if as_json {
        format!("{report}\n")
    } else if let Some(n) = report.get("node") {
        let mut t = format!(
            "\nCyberwave Cloud Node — Status\n\n  Node:     {} ({})\n  Profile:  {}\n  MQTT:     {} {}\n  Uptime:   {} s\n",
            n["slug"].as_str().unwrap_or("-"),
            n["instance_uuid"].as_str().unwrap_or("-"),
            n["profile_slug"].as_str().unwrap_or("-"),
            n.pointer("/mqtt/broker")
                .and_then(Value::as_str)
                .unwrap_or("-"),
            if n.pointer("/mqtt/connected") == Some(&json!(true)) {
                "connected"
            } else {
                "DISCONNECTED"
            },
            n["uptime_seconds"]
        );
        for f in ["inference", "training"] {
            let m = &n["metrics"][f];
            t += &format!(
                "  {f:<9} running {}  queued {}  total {}  success {}  avg {} ms  p95 {} ms  errors {}  timeouts {}\n",
                n["functions"][f]["running"],
                n["functions"][f]["queued"],
                m["total"].as_u64().unwrap_or(0),
                m["success_rate"]
                    .as_f64()
                    .map(|r| format!("{:.0}%", r * 100.0))
                    .unwrap_or_else(|| "-".into()),
                m["avg_ms"]
                    .as_f64()
                    .map(|x| format!("{x:.0}"))
                    .unwrap_or_else(|| "-".into()),
                m["p95_ms"]
                    .as_f64()
                    .map(|x| format!("{x:.0}"))
                    .unwrap_or_else(|| "-".into()),
                m["errors"].as_u64().unwrap_or(0),
                m["timeouts"].as_u64().unwrap_or(0)
            );
        }
        t += &format!(
            "\n  State: {} (exit {code})\n\n",
            report["state"].as_str().unwrap_or("-")
        );
        t
    } else {
        format!(
            "\nCyberwave Cloud Node — Status\n\n  ✗ not running ({})\n\n  State: not_running (exit 2)\n\n",
            report["problem"].as_str().unwrap_or("-")
        )
    };
    use std::io::Write;
    let _ = std::io::stdout().write_all(text.as_bytes());
    code
}
