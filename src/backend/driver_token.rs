//! The driver-token calls (reference §2.2): mint a token scoped to one twin and its child twins,
//! and renew one (same secret, longer lease). Each ends within the caller's deadline (the
//! original's 2.5 s) and is tried once: the caller falls back or tries again later. Answers hold
//! the token: no error carries a body.

use std::time::Duration;

use serde_json::{Value, json};

use super::{Backend, BackendError};

/// Why a driver-token call gave no token.
#[derive(Debug, Clone, PartialEq)]
pub enum TokenCallError {
    /// The mint answered 404: this backend has no driver-token endpoint.
    Unsupported,
    /// The renew answered 404 or 410: the backend no longer knows the token.
    NotRenewable,
    /// Anything else (offline, 5xx, a refused request, an answer without a token).
    Failed(String),
}

impl std::fmt::Display for TokenCallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TokenCallError::Unsupported => f.write_str("backend does not support driver tokens"),
            TokenCallError::NotRenewable => f.write_str("the backend no longer knows the token"),
            TokenCallError::Failed(why) => write!(f, "driver-token request failed: {why}"),
        }
    }
}

/// A minted token.
#[derive(Clone, PartialEq)]
pub struct Minted {
    pub token: String,
    pub uuid: String,
    pub expires_at: Option<String>,
}

impl std::fmt::Debug for Minted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Minted")
            .field("uuid", &self.uuid)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// A token uuid goes into the renew path: only what a uuid is made of.
fn plain_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

fn expires(v: &Value) -> Option<String> {
    v.get("expires_at")
        .and_then(Value::as_str)
        .map(|s| s.chars().take(64).collect())
}

impl Backend {
    /// `POST /api/v1/twins/{twin}/driver-token` with the sorted child twins and, when there is
    /// a fingerprint, the edge's rotation key.
    pub fn mint_driver_token(
        &self,
        twin: &str,
        children: &[String],
        edge_key: &str,
        deadline: Duration,
    ) -> Result<Minted, TokenCallError> {
        let mut body = json!({ "child_twin_uuids": children });
        if !edge_key.is_empty() {
            body["edge_fingerprint"] = json!(edge_key);
        }
        let path = format!("/api/v1/twins/{twin}/driver-token");
        let v = match self.send("POST", &path, Some(&body), Some(deadline), &[]) {
            Ok(v) => v,
            Err(BackendError::NotFound { .. }) => return Err(TokenCallError::Unsupported),
            Err(e) => return Err(TokenCallError::Failed(e.without_snippet().to_string())),
        };
        let text = |k: &str| v.get(k).and_then(Value::as_str).filter(|s| !s.is_empty());
        match (text("token"), text("uuid")) {
            (Some(token), Some(uuid)) if plain_id(uuid) && token.len() <= 4096 => Ok(Minted {
                token: token.to_string(),
                uuid: uuid.to_string(),
                expires_at: expires(&v),
            }),
            _ => Err(TokenCallError::Failed(format!(
                "POST {path}: the answer has no usable \"token\" and \"uuid\""
            ))),
        }
    }

    /// `POST /api/v1/twins/{twin}/driver-token/{uuid}/renew` (`{}`): the new `expires_at`.
    pub fn renew_driver_token(
        &self,
        twin: &str,
        token_uuid: &str,
        deadline: Duration,
    ) -> Result<Option<String>, TokenCallError> {
        if !plain_id(token_uuid) {
            return Err(TokenCallError::NotRenewable);
        }
        let path = format!("/api/v1/twins/{twin}/driver-token/{token_uuid}/renew");
        match self.send("POST", &path, Some(&json!({})), Some(deadline), &[]) {
            Ok(v) if v.is_object() => Ok(expires(&v)),
            Ok(_) => Err(TokenCallError::Failed(format!(
                "POST {path}: the answer is not an object"
            ))),
            Err(BackendError::NotFound { .. }) => Err(TokenCallError::NotRenewable),
            Err(e) if e.status() == Some(410) => Err(TokenCallError::NotRenewable),
            Err(e) => Err(TokenCallError::Failed(e.without_snippet().to_string())),
        }
    }
}
