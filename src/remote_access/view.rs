//! What `status` shows of remote access: the session, its state and since when, the relay,
//! the key claim, the last stop and the last failure (already redacted). Never the key or the
//! relay token: nothing here ever held them.

use std::time::SystemTime;

use serde_json::{Value, json};

#[derive(Debug, Clone, Default)]
pub struct View {
    pub session: Option<String>,
    /// `idle`, `starting`, `running`.
    pub state: &'static str,
    pub since: Option<SystemTime>,
    pub relay: Option<String>,
    pub remote_port: Option<u16>,
    pub key: &'static str,
    /// The last time the backend said the session is live.
    pub checked: Option<SystemTime>,
    /// (at, session, reason)
    pub last_stop: Option<(SystemTime, String, String)>,
    /// (at, session, error)
    pub last_failure: Option<(SystemTime, String, String)>,
}

impl View {
    pub fn starting(&mut self, session: &str, relay: &str, remote_port: u16) {
        self.session = Some(session.to_string());
        self.state = "starting";
        self.since = Some(SystemTime::now());
        self.relay = Some(relay.to_string());
        self.remote_port = Some(remote_port);
        self.checked = None;
    }

    pub fn running(&mut self) {
        self.state = "running";
        self.since = Some(SystemTime::now());
    }

    pub fn stopped(&mut self, session: &str, reason: &str) {
        if self.session.as_deref() == Some(session) {
            self.session = None;
            self.state = "idle";
            self.since = Some(SystemTime::now());
        }
        self.last_stop = Some((SystemTime::now(), session.into(), reason.into()));
    }

    pub fn failed(&mut self, session: &str, error: &str) {
        self.last_failure = Some((SystemTime::now(), session.into(), error.into()));
    }

    pub fn to_json(&self) -> Value {
        let at = |t: &Option<SystemTime>| t.map(crate::epoch_of);
        let event = |e: &Option<(SystemTime, String, String)>, what: &str| {
            e.as_ref()
                .map(|(t, s, m)| json!({"at": crate::epoch_of(*t), "session": s, what: m}))
        };
        json!({
            "state": if self.state.is_empty() { "idle" } else { self.state },
            "session": self.session,
            "since": at(&self.since),
            "relay": self.relay,
            "remote_port": self.remote_port,
            "key": if self.key.is_empty() { "not claimed yet" } else { self.key },
            "live_checked_at": at(&self.checked),
            "last_stop": event(&self.last_stop, "reason"),
            "last_failure": event(&self.last_failure, "error"),
        })
    }
}
