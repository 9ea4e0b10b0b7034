//! The fake backend's four remote-access endpoints (reference §2.2, Appendix B): the edge key
//! claim (409 when another key is held), a session's credential (403 without the claimed key,
//! 404 for an unknown session), its state and failure reports, all recorded.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::FakeBackend;

#[derive(Default)]
pub(super) struct Remote {
    /// The key the backend holds for the edge (one edge per fake in these tests).
    key: Option<String>,
    /// Session → (credential answer, live, status).
    sessions: BTreeMap<String, (Value, bool, String)>,
    /// (session, error) of every failure report.
    failures: Vec<(String, String)>,
}

impl FakeBackend {
    /// A session the dashboard opened: its credential answer, live.
    pub fn open_remote_session(&self, session: &str, credential: Value) {
        self.inner
            .lock()
            .unwrap()
            .remote
            .sessions
            .insert(session.to_string(), (credential, true, "active".into()));
    }

    /// The session ends on the backend's side (`live: false` with `status`).
    pub fn end_remote_session(&self, session: &str, status: &str) {
        if let Some(s) = self.inner.lock().unwrap().remote.sessions.get_mut(session) {
            s.1 = false;
            s.2 = status.to_string();
        }
    }

    /// The key the backend holds (`None`: reset by an admin); `set_remote_key` plants one.
    pub fn remote_key(&self) -> Option<String> {
        self.inner.lock().unwrap().remote.key.clone()
    }

    pub fn set_remote_key(&self, key: Option<&str>) {
        self.inner.lock().unwrap().remote.key = key.map(str::to_string);
    }

    /// Every failure report so far: (session, error).
    pub fn remote_failures(&self) -> Vec<(String, String)> {
        self.inner.lock().unwrap().remote.failures.clone()
    }
}

/// Answers `…/edges/{edge}/remote-access/…` (`rest` is what follows `remote-access`).
pub(super) fn route(
    r: &mut Remote,
    method: &str,
    rest: &[&str],
    headers: &BTreeMap<String, String>,
    body: &Value,
) -> (u16, Value) {
    let sent = headers.get("x-cyberwave-edge-key").cloned();
    let key_ok = sent.is_some() && sent == r.key;
    match (method, rest) {
        ("POST", ["key"]) => match (&r.key, sent) {
            (_, None) => (400, json!({"detail": "X-Cyberwave-Edge-Key is required"})),
            (None, Some(k)) => {
                r.key = Some(k);
                (200, json!({"claimed": true}))
            }
            (Some(held), Some(k)) if *held == k => (200, json!({"claimed": true})),
            (Some(_), Some(_)) => (409, json!({"detail": "key mismatch"})),
        },
        (_, ["sessions", ..]) if !key_ok => (403, json!({"detail": "edge key not accepted"})),
        ("POST", ["sessions", sid, "credential"]) => match r.sessions.get(*sid) {
            Some((c, true, _)) => (200, c.clone()),
            Some(_) => (409, json!({"detail": "session is not live"})),
            None => (404, json!({"detail": "Not found."})),
        },
        ("GET", ["sessions", sid, "state"]) => match r.sessions.get(*sid) {
            Some((_, live, status)) => (200, json!({"live": live, "status": status})),
            None => (404, json!({"detail": "Not found."})),
        },
        ("POST", ["sessions", sid, "failure"]) => {
            let error = body["error"].as_str().unwrap_or("").to_string();
            r.failures.push((sid.to_string(), error));
            (200, json!({}))
        }
        _ => (404, json!({"detail": "Not found."})),
    }
}
