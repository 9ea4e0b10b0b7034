//! One session's life on the remote-access thread: open (key, credential, config, container),
//! watch (the state poll), close, and the failure report when frpc cannot run.

use std::time::{Duration, Instant, SystemTime};

use serde_json::json;

use super::{Agent, Current, LOG_DEADLINE, STATE_POLL, TunnelEvent};
use crate::remote_access::frpc::{self, CONTAINER_NAME, Credential, SpecContext};
use crate::remote_access::{failure, host};

impl Agent {
    pub(super) fn open(&mut self, session: &str) {
        if self.is_current(session) {
            log::info!("remote access tunnel for session {session} already running");
            return;
        }
        if let Some(old) = &self.current {
            log::info!(
                "remote access: replacing the tunnel of session {} with {session}",
                old.session
            );
            self.cfg.files.forget_session();
            self.set_view(|v| v.stopped(&old.session, "replaced by another session"));
            self.current = None;
        }
        let relay = match self.cfg.settings.relay.clone() {
            Ok(r) => r,
            Err(why) => return self.refuse(session, &why),
        };
        if let Some(ca) = &self.cfg.settings.ca_file
            && !ca.is_file()
        {
            return self.refuse(
                session,
                &format!("relay CA file {} not found", ca.display()),
            );
        }
        if !self.ensure_key() {
            log::warn!(
                "remote access: cannot open a tunnel for session {session} (key not claimed)"
            );
            self.cfg.files.forget_session();
            return;
        }
        let credential = match self.credential(session) {
            Ok(c) => c,
            Err(e) => {
                log::warn!("remote access: credential for session {session} refused: {e}");
                self.cfg.files.forget_session();
                self.set_view(|v| v.failed(session, &format!("credential refused: {e}")));
                return;
            }
        };
        let ca = self.cfg.settings.ca_file.clone();
        let text = frpc::render(session, &credential, &relay, ca.is_some());
        let config = match self.cfg.files.write_config(&text) {
            Ok(p) => p,
            Err(e) => return self.refuse(session, &format!("cannot write the frpc config: {e}")),
        };
        let (size, files) = &self.cfg.log_caps;
        let spec = frpc::spec(
            session,
            &SpecContext {
                image: &self.cfg.settings.image,
                config_file: &config,
                ca_file: ca.as_deref(),
                owner: &self.cfg.owner,
                log_max_size: size.as_deref(),
                log_max_file: files,
                user: unsafe { (libc::getuid(), libc::getgid()) },
            },
        );
        self.cfg.files.save_session(session);
        let mut secrets = vec![credential.token.clone()];
        secrets.extend(self.key.clone());
        self.cfg.redactions.set(secrets);
        self.current = Some(Current {
            session: session.to_string(),
            token: credential.token.clone(),
        });
        self.next_poll = Some(Instant::now() + STATE_POLL);
        let relay_text = format!("{}:{}", relay.host, relay.port);
        self.set_view(|v| v.starting(session, &relay_text, credential.remote_port));
        log::info!(
            "remote access: starting frpc for session {session} (relay {relay_text}, remote port {})",
            credential.remote_port
        );
        let _ = self.events.send(TunnelEvent::Run(Box::new(spec)));
    }

    /// The relay credential, the key claimed again once when the backend lost it (an ADMIN
    /// reset answers 409, a key claimed by another process 403).
    fn credential(&mut self, session: &str) -> Result<Credential, String> {
        let mut body = json!({"host_keys": host::host_keys(&self.cfg.ssh_dir)});
        let passwd =
            crate::fsutil::read_regular_text(&self.cfg.passwd, 4 << 20).unwrap_or_default();
        let s = &self.cfg.settings;
        if let Some(user) = host::ssh_user(s.ssh_user.as_deref(), s.sudo_user.as_deref(), &passwd) {
            body["ssh_user"] = json!(user);
        }
        let (Some(edge), Some(key)) = (self.edge.clone(), self.key()) else {
            return Err("no edge uuid or key".into());
        };
        let mut answer = self
            .cfg
            .backend
            .remote_access_credential(&edge, session, &key, &body);
        if let Err(e) = &answer
            && matches!(e.status(), Some(403 | 409))
        {
            self.key_claimed = false;
            if self.ensure_key() {
                answer = self
                    .cfg
                    .backend
                    .remote_access_credential(&edge, session, &key, &body);
            }
        }
        let v = answer.map_err(|e| e.to_string())?;
        Credential::parse(&v).map_err(|e| format!("invalid relay credential: {e}"))
    }

    /// A session this edge cannot serve (bad relay setting, missing CA, unwritable config):
    /// reported to the backend, nothing started.
    fn refuse(&mut self, session: &str, why: &str) {
        log::error!("remote access: session {session}: {why}");
        self.cfg.files.forget_session();
        self.report(session, why);
    }

    pub(super) fn close(&mut self, session: &str) {
        if !self.is_current(session) {
            log::info!("remote access: no running tunnel for session {session} to close");
            return;
        }
        self.stop(session, "closed by the backend");
    }

    /// Stops the current session's container and forgets the session.
    fn stop(&mut self, session: &str, reason: &str) {
        log::info!("remote access tunnel for session {session} stopped: {reason}");
        self.current = None;
        self.next_poll = self.resume.as_ref().map(|_| Instant::now() + STATE_POLL);
        self.cfg.files.forget_session();
        self.set_view(|v| v.stopped(session, reason));
        let _ = self.events.send(TunnelEvent::Stop {
            session: session.to_string(),
        });
    }

    /// frpc could not start or exited: stopped, and the backend told why (redacted).
    pub(super) fn fail(&mut self, session: &str, text: &str) {
        let token = self
            .current
            .as_ref()
            .map(|c| c.token.expose().to_string())
            .unwrap_or_default();
        let key = self
            .key
            .as_ref()
            .map(|k| k.expose().to_string())
            .unwrap_or_default();
        let text = failure::redact(text, &[&token, &key]);
        log::warn!("remote access tunnel for session {session} failed: {text}");
        self.stop(session, "frpc failed");
        self.set_view(|v| v.failed(session, &text));
        self.report(session, &text);
    }

    fn report(&mut self, session: &str, text: &str) {
        let (Some(edge), Some(key)) = (self.edge.clone(), self.key()) else {
            return;
        };
        if let Err(e) = self
            .cfg
            .backend
            .remote_access_failure(&edge, session, &key, text)
        {
            log::warn!("remote access: failure report for session {session} failed: {e}");
        }
    }

    /// The exited frpc's code and last log lines, if the container is still there.
    pub(super) fn exit_text(&self) -> Option<String> {
        let engine = self.cfg.engine.clone();
        let info = engine.inspect(CONTAINER_NAME).ok()??;
        if info.running {
            return None;
        }
        let lines = last_lines(engine, failure::LOG_LINES, LOG_DEADLINE);
        Some(failure::exit_summary(Some(info.exit_code), &lines, &[]))
    }

    /// The state poll (and a saved session waiting for the backend to answer).
    pub(super) fn poll(&mut self) {
        self.next_poll = None;
        if let Some(s) = self.resume.take() {
            self.try_resume(s);
        }
        let Some(session) = self.current.as_ref().map(|c| c.session.clone()) else {
            return;
        };
        self.next_poll = Some(Instant::now() + STATE_POLL);
        match self.state_of(&session) {
            Ok((true, _)) => self.set_view(|v| v.checked = Some(SystemTime::now())),
            Ok((false, status)) => self.stop(&session, &format!("session is {status}")),
            Err(e) if matches!(e.status(), Some(403 | 404 | 409)) => {
                let code = e.status().unwrap_or_default();
                self.stop(&session, &format!("session state returned {code}"));
            }
            Err(e) => log::debug!("remote access: state poll for session {session}: {e}"),
        }
    }
}

/// The last `n` log lines of the tunnel container (timestamps removed), read within
/// `deadline` on a helper thread: a stream that does not end is closed, never waited on.
fn last_lines(
    engine: std::sync::Arc<dyn crate::engine::Engine>,
    n: u64,
    deadline: Duration,
) -> Vec<String> {
    let Ok(stream) = engine.follow_logs(CONTAINER_NAME, crate::engine::LogStart::Tail(n)) else {
        return Vec::new();
    };
    let crate::engine::LineStream { mut lines, handle } = stream;
    let (tx, rx) = crossbeam_channel::bounded(1);
    let reader = std::thread::Builder::new()
        .name("tunnel-logs".into())
        .spawn(move || {
            let mut out = Vec::new();
            while let Ok(Some(l)) = lines.next_line() {
                let (_, text) = crate::engine::split_timestamp(&l);
                out.push(crate::clip(text, 2000));
                if out.len() as u64 > n {
                    out.remove(0);
                }
            }
            let _ = tx.send(out);
        });
    if reader.is_err() {
        return Vec::new();
    }
    let out = rx.recv_timeout(deadline).unwrap_or_default();
    handle.close();
    out
}
