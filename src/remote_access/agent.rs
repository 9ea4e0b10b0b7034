//! The remote-access thread: every backend call of Appendix B (key claim, credential, session
//! state, failure report) and every slow look at the exited frpc, so the supervisor never
//! waits on them. It owns the session: what runs, since when, why it stopped. The supervisor
//! side ([`super::Tunnel`]) only carries out [`TunnelEvent`]s on the container runtime and
//! tells this thread what the container did ([`Ctl`]).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use serde_json::Value;

use super::files::Files;
use super::frpc::CONTAINER_NAME;
use super::settings::RemoteSettings;
use super::view::View;
use crate::backend::{Backend, BackendError};
use crate::config::Secret;
use crate::containers::spec::ContainerSpec;
use crate::engine::Engine;

/// The session-state poll while a tunnel runs (the original's watchdog interval).
pub const STATE_POLL: Duration = Duration::from_secs(30);
/// How long the last log lines of an exited frpc may take to read.
const LOG_DEADLINE: Duration = Duration::from_secs(10);

/// What the supervisor tells the thread.
pub enum Ctl {
    /// The edge uuid is known: clear what a previous run left, claim the key, resume.
    Edge(String),
    Open(String),
    Close(String),
    /// The container of this session is up.
    Up(String),
    /// The container of this session could not start.
    LaunchFailed {
        session: String,
        message: String,
    },
    /// The container of this session exited.
    Exited(String),
    /// New settings (SIGHUP): a new token.
    Reload(Box<Backend>),
}

/// What the thread asks of the supervisor.
#[derive(Debug)]
pub enum TunnelEvent {
    /// Run this container (the one tunnel; it replaces any other session's).
    Run(Box<ContainerSpec>),
    /// Stop and remove this session's container.
    Stop { session: String },
}

/// Everything the thread needs.
pub struct AgentConfig {
    pub backend: Backend,
    pub settings: RemoteSettings,
    pub files: Files,
    pub engine: Arc<dyn Engine>,
    /// This edge's fingerprint (the owner label).
    pub owner: String,
    pub log_caps: (Option<String>, String),
    /// Where the SSH host keys and the accounts are (`/etc/ssh`, `/etc/passwd`).
    pub ssh_dir: std::path::PathBuf,
    pub passwd: std::path::PathBuf,
    /// Where the tunnel's log sink learns what to mask.
    pub redactions: super::Redactions,
}

struct Current {
    session: String,
    token: Secret,
}

struct Agent {
    cfg: AgentConfig,
    events: Sender<TunnelEvent>,
    view: Arc<Mutex<View>>,
    edge: Option<String>,
    key: Option<Secret>,
    key_claimed: bool,
    current: Option<Current>,
    next_poll: Option<Instant>,
    /// A saved session whose state the backend could not tell yet (offline at start).
    resume: Option<String>,
}

pub fn run(
    cfg: AgentConfig,
    ctl: Receiver<Ctl>,
    events: Sender<TunnelEvent>,
    view: Arc<Mutex<View>>,
) {
    let mut a = Agent {
        cfg,
        events,
        view,
        edge: None,
        key: None,
        key_claimed: false,
        current: None,
        next_poll: None,
        resume: None,
    };
    loop {
        let msg = match a.next_poll {
            Some(at) => ctl.recv_timeout(at.saturating_duration_since(Instant::now())),
            None => ctl.recv().map_err(|_| RecvTimeoutError::Disconnected),
        };
        match msg {
            Ok(m) => a.handle(m),
            Err(RecvTimeoutError::Timeout) => a.poll(),
            Err(RecvTimeoutError::Disconnected) => return,
        }
    }
}

impl Agent {
    fn handle(&mut self, m: Ctl) {
        match m {
            Ctl::Edge(uuid) => self.on_edge(uuid),
            Ctl::Open(s) => self.open(&s),
            Ctl::Close(s) => self.close(&s),
            Ctl::Up(s) => {
                if self.is_current(&s) {
                    log::info!("remote access tunnel for session {s} is up");
                    self.set_view(|v| v.running());
                }
            }
            Ctl::LaunchFailed { session, message } => {
                if self.is_current(&session) {
                    let text = self
                        .exit_text()
                        .unwrap_or_else(|| format!("frpc could not start: {message}"));
                    self.fail(&session, &text);
                }
            }
            Ctl::Exited(s) => {
                if self.is_current(&s) {
                    let text = self
                        .exit_text()
                        .unwrap_or_else(|| "frpc exited".to_string());
                    self.fail(&s, &text);
                }
            }
            Ctl::Reload(b) => {
                self.cfg.backend = *b;
                self.key_claimed = false;
            }
        }
    }

    fn is_current(&self, session: &str) -> bool {
        self.current.as_ref().is_some_and(|c| c.session == session)
    }

    fn set_view(&self, f: impl FnOnce(&mut View)) {
        if let Ok(mut v) = self.view.lock() {
            f(&mut v);
        }
    }

    /// First resolution: remove a leftover `cyberwave-remote-access` and a stale config, claim
    /// the key, resume a saved session the backend still calls live.
    fn on_edge(&mut self, uuid: String) {
        let first = self.edge.is_none();
        self.edge = Some(uuid);
        if !first {
            return;
        }
        if self.current.is_none() {
            self.remove_leftover();
            self.cfg.files.remove_config();
        }
        self.ensure_key();
        if let Some(s) = self.cfg.files.saved_session() {
            self.try_resume(s);
        }
    }

    /// A tunnel a previous run of this edge left (its owner label is ours): stopped gracefully
    /// and removed. Another edge's container of that name on a shared engine is not touched.
    fn remove_leftover(&self) {
        let engine = self.cfg.engine.as_ref();
        let owner = match engine.inspect(CONTAINER_NAME) {
            Ok(Some(d)) => d.labels.get(crate::engine::LABEL_OWNER).cloned(),
            Ok(None) => return,
            Err(e) => {
                log::warn!("cannot look for a leftover {CONTAINER_NAME}: {e}");
                return;
            }
        };
        if owner.as_deref() != Some(self.cfg.owner.as_str()) {
            log::info!("{CONTAINER_NAME} exists but is not this edge's; left as it is");
            return;
        }
        match crate::containers::retire::retire(engine, CONTAINER_NAME) {
            Ok(_) => log::info!("removed a leftover {CONTAINER_NAME}"),
            Err(e) => log::warn!("cannot remove a leftover {CONTAINER_NAME}: {e}"),
        }
    }

    fn try_resume(&mut self, session: String) {
        match self.state_of(&session) {
            Ok((true, _)) => {
                log::info!("remote access: resuming the tunnel of session {session}");
                self.resume = None;
                self.open(&session);
            }
            Ok((false, status)) => {
                log::info!("remote access: saved session {session} is {status}; not resuming");
                self.resume = None;
                self.cfg.files.forget_session();
            }
            Err(e) if matches!(e.status(), Some(403 | 404 | 409)) => {
                log::warn!("remote access: saved session {session}: {e}; forgotten");
                self.resume = None;
                self.cfg.files.forget_session();
            }
            Err(e) => {
                log::warn!(
                    "remote access: state of saved session {session} unknown ({e}); asking again in {} s",
                    STATE_POLL.as_secs()
                );
                self.resume = Some(session);
                self.next_poll = Some(Instant::now() + STATE_POLL);
            }
        }
    }

    fn key(&mut self) -> Option<Secret> {
        if self.key.is_none() {
            match self.cfg.files.load_or_create_key() {
                Ok(k) => self.key = Some(k),
                Err(e) => log::error!("remote access: no edge key: {e}"),
            }
        }
        self.key.clone()
    }

    /// The key is the backend's: claimed now unless it was already.
    fn ensure_key(&mut self) -> bool {
        if self.key_claimed {
            return true;
        }
        let (Some(edge), Some(key)) = (self.edge.clone(), self.key()) else {
            return false;
        };
        match self.cfg.backend.claim_remote_access_key(&edge, &key) {
            Ok(()) => {
                log::info!("remote access edge key claimed");
                self.key_claimed = true;
                self.set_view(|v| v.key = "claimed");
            }
            Err(e) if e.status() == Some(409) => {
                log::error!(
                    "remote access: this edge's backend record already holds a different key (reinstalled device?). A workspace ADMIN must reset the remote access key for this edge in the Cyberwave UI; the local key at {} is kept.",
                    self.cfg.files.key().display()
                );
                self.set_view(|v| {
                    v.key = "refused: the backend holds another key (reset it in the UI)"
                });
            }
            Err(e) => {
                log::warn!("remote access: key claim failed: {e}");
                self.set_view(|v| v.key = "not claimed");
            }
        }
        self.key_claimed
    }

    fn state_of(&mut self, session: &str) -> Result<(bool, String), BackendError> {
        let (Some(edge), Some(key)) = (self.edge.clone(), self.key()) else {
            return Ok((false, "unknown (no edge)".into()));
        };
        let v = self.cfg.backend.remote_access_state(&edge, session, &key)?;
        let status = v
            .get("status")
            .and_then(Value::as_str)
            .map(|s| crate::clip(s, 40))
            .unwrap_or_else(|| "not live".into());
        Ok((v.get("live").and_then(Value::as_bool) == Some(true), status))
    }
}

mod session;
