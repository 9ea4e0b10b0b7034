//! Remote access from the dashboard (reference Appendix B, §3.5): `open_tunnel` /
//! `close_tunnel` on the edge command topic run frpc as the container
//! `cyberwave-remote-access`, a role of the container runtime (owner label, graceful stop,
//! runs once: never revived). The backend calls and the watch live on the remote-access
//! thread ([`agent`]); the supervisor side here ([`Tunnel`]) turns its [`TunnelEvent`]s into
//! desired containers and tells it what the container did. The local portal ([`portal`]) is
//! the other way in: a LAN page index of the drivers' `local_http` pages.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crossbeam_channel::Sender;
use serde_json::{Value, json};

pub mod agent;
pub mod failure;
pub mod files;
pub mod frpc;
pub mod host;
pub mod portal;
pub mod settings;
mod view;

pub use agent::{AgentConfig, Ctl, TunnelEvent};
pub use view::View;

use crate::containers::follow::{LogEvent, Sink};
use crate::containers::launch::{LaunchFailure, LaunchHooks};
use crate::containers::runtime::{Loop, Policy, RoleSetup, Runtime, RuntimeEvent};
use crate::containers::spec::{ContainerSpec, Role};
use crate::containers::supervised::Supervised;
use crate::engine::Engine;
use frpc::CONTAINER_NAME;

/// The secrets frpc's own lines may repeat (the relay token, the edge key), set by the thread
/// while a tunnel runs: its log lines are masked with them before anything logs them.
#[derive(Clone, Default)]
pub struct Redactions(Arc<Mutex<Vec<crate::config::Secret>>>);

impl Redactions {
    pub fn set(&self, secrets: Vec<crate::config::Secret>) {
        if let Ok(mut s) = self.0.lock() {
            *s = secrets;
        }
    }

    /// `line` with ANSI removed and every secret masked.
    pub fn apply(&self, line: &str) -> String {
        let secrets = self.0.lock().map(|s| s.clone()).unwrap_or_default();
        let raw: Vec<&str> = secrets.iter().map(|s| s.expose()).collect();
        failure::redact(line, &raw)
    }
}

/// The tunnel on the supervisor: the one container it wants, and what it tells the thread.
pub struct Tunnel {
    /// `None` in local mode (no backend: no remote access).
    ctl: Option<Sender<Ctl>>,
    engine: Arc<dyn Engine>,
    view: Arc<Mutex<View>>,
    /// The container wanted now.
    spec: Option<ContainerSpec>,
    /// A spec waiting for the previous container's removal.
    pending: Option<ContainerSpec>,
    removing: bool,
    /// Stop the container once its launch ends (a close during the launch).
    remove_after_launch: bool,
    /// The spec hash whose exit the thread was told of.
    exit_told: Option<String>,
}

impl Tunnel {
    pub fn new(ctl: Option<Sender<Ctl>>, engine: Arc<dyn Engine>, view: Arc<Mutex<View>>) -> Self {
        Tunnel {
            ctl,
            engine,
            view,
            spec: None,
            pending: None,
            removing: false,
            remove_after_launch: false,
            exit_told: None,
        }
    }

    fn tell(&self, m: Ctl) {
        if let Some(tx) = &self.ctl {
            let _ = tx.send(m);
        }
    }

    /// The edge uuid is known (every resolution; the thread acts on the first).
    pub fn edge_resolved(&self, uuid: &str) {
        self.tell(Ctl::Edge(uuid.to_string()));
    }

    /// `open_tunnel` (true) or `close_tunnel` for a session (already a UUID).
    pub fn command(&self, open: bool, session: String) {
        if self.ctl.is_none() {
            log::warn!("remote access needs the backend: session {session} ignored in local mode");
            return;
        }
        self.tell(if open {
            Ctl::Open(session)
        } else {
            Ctl::Close(session)
        });
    }

    /// New settings: the thread's backend client with the new token.
    pub fn reload(&self, backend: crate::backend::Backend) {
        self.tell(Ctl::Reload(Box::new(backend)));
    }

    /// What the thread asks for.
    pub fn on_event(&mut self, ev: TunnelEvent, runtime: &mut Runtime) {
        match ev {
            TunnelEvent::Run(spec) if self.removing => self.pending = Some(*spec),
            TunnelEvent::Run(spec) => self.want(*spec, runtime),
            TunnelEvent::Stop { session } => {
                self.pending = self.pending.take().filter(|p| p.owner != session);
                if self.spec.as_ref().is_some_and(|s| s.owner == session) {
                    self.spec = None;
                    if runtime.launching(CONTAINER_NAME) {
                        self.remove_after_launch = true;
                    } else {
                        self.remove(runtime);
                    }
                }
            }
        }
    }

    fn want(&mut self, spec: ContainerSpec, runtime: &mut Runtime) {
        self.exit_told = None;
        let desired = BTreeMap::from([(spec.name.clone(), (spec.clone(), Value::Null))]);
        self.spec = Some(spec);
        runtime.set_desired(Role::Tunnel, desired);
    }

    fn remove(&mut self, runtime: &mut Runtime) {
        self.removing = true;
        runtime.remove(CONTAINER_NAME);
    }

    /// Our SIGTERM: frpc stops with us (gracefully); the session file stays, so the next start
    /// resumes the session if the backend still calls it live.
    pub fn shutdown(&mut self) {
        if self.spec.take().is_none() && !self.removing {
            return;
        }
        match crate::containers::retire::retire(self.engine.as_ref(), CONTAINER_NAME) {
            Ok(_) => log::info!("remote access tunnel stopped on shutdown (session kept)"),
            Err(e) => log::warn!("cannot stop {CONTAINER_NAME} on shutdown: {e}"),
        }
    }

    /// `status`: the thread's view and what the engine says of the container.
    pub fn snapshot(&self, runtime: &Runtime) -> Value {
        let mut v = self.view.lock().map(|v| v.to_json()).unwrap_or(Value::Null);
        if let Some(c) = runtime.observed_state(CONTAINER_NAME) {
            v["container"] = json!({"name": c.name, "state": c.state, "image": c.image});
        }
        v
    }
}

impl Supervised for Tunnel {
    fn next_deadline(&self) -> Option<Instant> {
        None
    }

    fn on_deadline(&mut self, _: &mut Runtime) {}

    fn before_runtime_event(&mut self, ev: &RuntimeEvent) {
        use crate::containers::executor::ExecEvent;
        match ev {
            RuntimeEvent::Launched { spec_name, result } if spec_name == CONTAINER_NAME => {
                let Some(session) = self.spec.as_ref().map(|s| s.owner.clone()) else {
                    return;
                };
                match result {
                    Ok(_) => self.tell(Ctl::Up(session)),
                    Err(f) => {
                        self.exit_told = self.spec.as_ref().map(|s| s.spec_hash.clone());
                        self.tell(Ctl::LaunchFailed {
                            session,
                            message: f.to_string(),
                        })
                    }
                }
            }
            RuntimeEvent::Exec(ExecEvent::OpDone { name, what, .. })
                if name == CONTAINER_NAME && *what == "remove" =>
            {
                self.removing = false;
            }
            _ => {}
        }
    }

    fn after_runtime_event(&mut self, runtime: &mut Runtime) {
        if std::mem::take(&mut self.remove_after_launch) && !runtime.launching(CONTAINER_NAME) {
            self.remove(runtime);
            return;
        }
        if !self.removing
            && let Some(p) = self.pending.take()
        {
            self.want(p, runtime);
            return;
        }
        let Some(spec) = &self.spec else {
            return;
        };
        let exited = runtime.observed_state(CONTAINER_NAME).is_some_and(|c| {
            matches!(c.state.as_str(), "exited" | "dead")
                && c.labels.get(crate::containers::LABEL_SPEC_HASH) == Some(&spec.spec_hash)
        });
        if exited && self.exit_told.as_ref() != Some(&spec.spec_hash) {
            self.exit_told = Some(spec.spec_hash.clone());
            self.tell(Ctl::Exited(spec.owner.clone()));
        }
    }

    fn tick(&mut self, runtime: &mut Runtime) {
        self.after_runtime_event(runtime);
    }
}

struct Hooks;

impl LaunchHooks for Hooks {
    fn prepare(&self, _: &ContainerSpec, _: &Value) -> Result<(), LaunchFailure> {
        Ok(())
    }

    fn progress(&self, _: &ContainerSpec, _: &str, message: &str) {
        log::info!("remote access: {message}");
    }
}

/// The tunnel's policy: logs only; what follows an exit is the thread's to decide.
struct TunnelPolicy(Redactions);

impl Policy for TunnelPolicy {
    fn up(&mut self, spec: &ContainerSpec, id: &str) {
        let short: String = id.chars().take(12).collect();
        log::info!("{} running for session {} ({short})", spec.name, spec.owner);
    }

    fn launch_failed(&mut self, spec: &ContainerSpec, f: &LaunchFailure, _: std::time::Duration) {
        log::warn!("{} could not start ({}: {})", spec.name, f.phase, f.message);
    }

    fn restart_loop(&mut self, _: &ContainerSpec, _: &Loop) {}

    fn went_down(&mut self, spec: &ContainerSpec, status: &str) {
        log::info!("{} is no longer running ({status})", spec.name);
    }

    /// frpc's lines, at debug level, with the relay token and the edge key masked.
    fn log_sink(&self, spec: &ContainerSpec) -> Sink {
        let name = spec.name.clone();
        let redactions = self.0.clone();
        Box::new(move |ev: LogEvent| {
            if let LogEvent::Line(line) = ev {
                log::debug!("{name}: {}", redactions.apply(&crate::clip(line, 1000)));
            }
        })
    }
}

/// The tunnel role for [`Runtime::add_role`].
pub fn role(redactions: Redactions) -> RoleSetup {
    RoleSetup {
        role: Role::Tunnel,
        hooks: Arc::new(Hooks),
        policy: Box::new(TunnelPolicy(redactions)),
    }
}

#[cfg(test)]
mod tests;
