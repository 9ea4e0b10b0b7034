//! The four remote-access calls (reference §2.2, Appendix B): the edge key claim, a session's
//! relay credential, its state and a failure report. Each carries the edge key in
//! `X-Cyberwave-Edge-Key` beside the Bearer token, and ends within 15 s (the original's).

use std::time::Duration;

use serde_json::{Value, json};

use super::{Backend, BackendError};
use crate::config::Secret;

/// The original's deadline for every remote-access call.
pub const REMOTE_ACCESS_DEADLINE: Duration = Duration::from_secs(15);
pub const EDGE_KEY_HEADER: &str = "X-Cyberwave-Edge-Key";

impl Backend {
    fn remote_access(
        &self,
        method: &str,
        edge: &str,
        tail: &str,
        key: &Secret,
        body: Option<&Value>,
    ) -> Result<Value, BackendError> {
        let path = format!("/api/v1/edges/{edge}/remote-access{tail}");
        self.send(
            method,
            &path,
            body,
            Some(REMOTE_ACCESS_DEADLINE),
            &[(EDGE_KEY_HEADER, key.expose())],
        )
    }

    /// `POST …/remote-access/key`: this edge's key becomes the one the backend holds (409:
    /// it holds another one).
    pub fn claim_remote_access_key(&self, edge: &str, key: &Secret) -> Result<(), BackendError> {
        self.remote_access("POST", edge, "/key", key, None)
            .map(|_| ())
    }

    /// `POST …/sessions/{sid}/credential` with the host's SSH keys and login user. The answer
    /// holds the relay token: its errors never carry the body.
    pub fn remote_access_credential(
        &self,
        edge: &str,
        session: &str,
        key: &Secret,
        body: &Value,
    ) -> Result<Value, BackendError> {
        let tail = format!("/sessions/{session}/credential");
        self.remote_access("POST", edge, &tail, key, Some(body))
            .map_err(BackendError::without_snippet)
    }

    /// `GET …/sessions/{sid}/state`: `live` and `status`.
    pub fn remote_access_state(
        &self,
        edge: &str,
        session: &str,
        key: &Secret,
    ) -> Result<Value, BackendError> {
        let tail = format!("/sessions/{session}/state");
        self.remote_access("GET", edge, &tail, key, None)
    }

    /// `POST …/sessions/{sid}/failure` with the (already redacted) error text.
    pub fn remote_access_failure(
        &self,
        edge: &str,
        session: &str,
        key: &Secret,
        error: &str,
    ) -> Result<(), BackendError> {
        let tail = format!("/sessions/{session}/failure");
        self.remote_access("POST", edge, &tail, key, Some(&json!({"error": error})))
            .map(|_| ())
    }
}
