//! `cyberwave-cloud-node`: a GPU host that registers an instance, heartbeats, and runs
//! `inference` / `training` shell commands received over MQTT, replying with their output.
//! Each command is a function with a timeout, a memory limit and a concurrency limit; every
//! invocation is measured. The params reach commands as data, never as shell code
//! (see [`template`]); nothing a command starts outlives the node (see [`groups`]).

pub mod config;
#[cfg(test)]
mod fuzz;
pub mod groups;
pub mod identity;
pub mod manifest;
pub mod metrics;
pub mod node;
mod procfs;
pub mod protocol;
pub mod recent;
pub mod runner;
pub mod status;
pub mod template;

use std::path::PathBuf;
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, after, bounded, never, select, tick, unbounded};
use serde_json::json;
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use self::config::{Flags, NodeSettings};
use self::groups::Groups;
use self::identity::Identity;
use self::node::{Done, Node};
use self::runner::InstallError;
use crate::backend::{Backend, BackendError};
use crate::control::{self, ControlRequest, Request};
use crate::mqtt::{Link, LinkEvent};

pub use self::status::status;

/// Why the node stopped with an error.
#[derive(Debug)]
#[non_exhaustive]
pub enum NodeError {
    /// Bad configuration, no token, or a token the backend rejects (exit 2).
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

/// How long a command may keep running after the shutdown grace before the node leaves anyway.
const AFTER_GRACE: Duration = Duration::from_secs(3);

fn backend_for(s: &NodeSettings, timeout: Duration, attempts: u32) -> Backend {
    Backend::with_base(
        "cyberwave-cloud-node",
        &s.api_url,
        s.token.clone(),
        None,
        timeout,
        attempts,
    )
}

fn spawn_signals() -> Result<Receiver<i32>, NodeError> {
    let mut signals =
        Signals::new([SIGTERM, SIGINT]).map_err(|e| NodeError::Startup(format!("signals: {e}")))?;
    let (tx, rx) = bounded::<i32>(4);
    thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for sig in signals.forever() {
                if tx.send(sig).is_err() {
                    break;
                }
            }
        })
        .map_err(|e| NodeError::Startup(e.to_string()))?;
    Ok(rx)
}

/// Runs the install script; a failure is reported to the backend. `Ok(false)`: a signal
/// stopped it and the node should leave quietly.
fn install(
    s: &NodeSettings,
    backend: &Backend,
    known: Option<&Identity>,
    groups: &Groups,
    sig_rx: &Receiver<i32>,
) -> Result<bool, NodeError> {
    let Some(script) = &s.install_script else {
        return Ok(true);
    };
    log::info!("running install script: {script}");
    match runner::install(
        script,
        &s.workdir,
        Duration::from_secs(3600),
        groups,
        sig_rx,
    ) {
        Ok(()) => Ok(true),
        Err(InstallError::Interrupted(sig)) => {
            log::info!("signal {sig} during the install script: stopped it, leaving");
            Ok(false)
        }
        Err(InstallError::Failed(e)) => {
            log::error!("{e}");
            let id = known
                .cloned()
                .or_else(|| identity::register(backend, s, None).ok());
            if let Some(id) = id {
                identity::save(&s.state_dir, &id);
                let mut body = identity::notice_body(s, &id);
                body["error"] = json!(e);
                if let Err(re) =
                    backend.post_json(&format!("/api/v1/cloud-node/{}/failed", id.uuid), &body)
                {
                    log::error!("could not report the failure: {re}");
                }
            }
            Err(NodeError::Startup(e))
        }
    }
}

/// Registers, retrying with backoff while the backend is unreachable. `Ok(None)`: a signal
/// arrived meanwhile.
fn register(
    s: &NodeSettings,
    backend: &Backend,
    mut known: Option<Identity>,
    sig_rx: &Receiver<i32>,
) -> Result<Option<Identity>, NodeError> {
    let mut backoff = crate::backoff::Backoff::new(Duration::from_secs(2), Duration::from_secs(60));
    loop {
        match identity::register(backend, s, known.clone()) {
            Ok(id) => return Ok(Some(id)),
            Err(BackendError::NotFound { .. }) if known.is_some() => {
                log::warn!(
                    "instance {} is unknown to the backend: creating a new one",
                    known.as_ref().map(|k| k.uuid.as_str()).unwrap_or("")
                );
                known = None;
            }
            Err(e) if e.is_unauthorized() => {
                return Err(NodeError::Config(format!("cloud node registration: {e}")));
            }
            Err(e) if e.is_transient() => {
                let d = backoff.next_delay();
                log::warn!("registration: {e}; retrying in {:.0} s", d.as_secs_f64());
                if sig_rx.recv_timeout(d).is_ok() {
                    return Ok(None);
                }
            }
            Err(e) => {
                return Err(NodeError::Startup(format!(
                    "cloud node registration failed: {e}"
                )));
            }
        }
    }
}

/// Runs the node until SIGTERM/SIGINT.
pub fn run(flags: Flags, verbose: bool) -> Result<(), NodeError> {
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
    let s = config::load(&flags, &cwd).map_err(NodeError::Config)?;
    let level = if verbose {
        "debug".to_string()
    } else {
        std::env::var("CYBERWAVE_LOG_LEVEL").unwrap_or_else(|_| "info".into())
    };
    crate::logging::init(&level);
    for w in &s.warnings {
        log::warn!("{w}");
    }
    log::info!(
        "cyberwave-cloud-node {} starting: api {}, broker {}:{}, profile {}, commands run in {}, token {}",
        crate::VERSION,
        s.api_url,
        s.mqtt.host,
        s.mqtt.port,
        s.profile_slug,
        s.workdir.display(),
        s.token
    );
    let sig_rx = spawn_signals()?;
    let groups = match std::env::current_exe() {
        Ok(exe) => Groups::with_reaper(&exe),
        Err(e) => {
            log::warn!("cannot find our own binary ({e}): no reaper");
            Groups::default()
        }
    };
    let result = serve(s, &groups, &sig_rx);
    groups.kill_all();
    groups.close();
    result
}

fn serve(s: NodeSettings, groups: &Groups, sig_rx: &Receiver<i32>) -> Result<(), NodeError> {
    let backend = backend_for(&s, Duration::from_secs(10), 3);
    let known = identity::load(&s.state_dir);
    if !install(&s, &backend, known.as_ref(), groups, sig_rx)? {
        return Ok(());
    }
    let Some(id) = register(&s, &backend, known, sig_rx)? else {
        return Ok(());
    };
    identity::save(&s.state_dir, &id);
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
    let mut node = Node::new(s, id, mqtt, groups.clone(), done_tx);
    let heartbeat = tick(node.s.heartbeat_interval);
    let _ = hb_tx.try_send(());
    let mut link_rx = link_rx;
    let mut grace_deadline = never::<Instant>();
    let mut save_ids = never::<Instant>();
    loop {
        select! {
            recv(sig_rx) -> sig => {
                if node.shutting_down {
                    continue;
                }
                log::info!("signal {}: no new commands; {} running get {} s to finish", sig.unwrap_or(0), node.running_total(), node.s.shutdown_grace.as_secs_f64());
                for t in &command_topics {
                    node.mqtt.unsubscribe(t);
                }
                node.begin_shutdown();
                if node.running_total() == 0 {
                    break;
                }
                grace_deadline = after(node.s.shutdown_grace);
            },
            recv(grace_deadline) -> _ => {
                if node.groups.count() == 0 {
                    log::warn!("{} command(s) still not finished after the grace period: leaving", node.running_total());
                    break;
                }
                log::warn!("grace period over: killing {} running command(s)", node.running_total());
                node.groups.kill_all();
                // Their runners report within a moment; leave anyway if one does not.
                grace_deadline = after(AFTER_GRACE);
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
                Ok(LinkEvent::Message { topic, payload, retained }) if command_topics.contains(&topic) => {
                    node.on_message(&topic, &payload, retained);
                    if node.recent.is_dirty() {
                        save_ids = after(Duration::from_secs(1));
                    }
                }
                Ok(_) => {}
                Err(_) => link_rx = never(),
            },
            recv(save_ids) -> _ => {
                node.recent.flush();
                save_ids = never();
            },
            recv(control_rx) -> req => match req {
                Ok(req) => match req.request {
                    Request::Status => { let _ = req.reply.send(node.status_json()); }
                    Request::Worker(_) => {
                        let _ = req.reply.send(serde_json::json!({"error": "a cloud node has no ML worker"}));
                    }
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
    node.recent.flush();

    // Termination: tell MQTT and the backend, then leave.
    let mut msg = node.heartbeat_message();
    msg["type"] = json!("terminated");
    msg["status"] = json!("terminated");
    node.mqtt.publish_json(
        &protocol::status_topic(node.mqtt.prefix(), &node.id.uuid),
        msg,
    );
    let quick = backend_for(&node.s, Duration::from_secs(5), 1);
    if let Err(e) = quick.post_json(
        &format!("/api/v1/cloud-node/{}/terminated", node.id.uuid),
        &identity::notice_body(&node.s, &node.id),
    ) {
        log::warn!("terminated notice: {e}");
    }
    link.shutdown(Duration::from_secs(2));
    log::info!("cloud node stopped");
    Ok(())
}
