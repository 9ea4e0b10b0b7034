//! What went wrong talking to the backend, classified for the callers' retry decisions
//! (transient, throttled with `Retry-After`, rejected token, refused for good).

use std::fmt;
use std::time::Duration;

/// What went wrong talking to the backend. The token never appears in these.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum BackendError {
    /// 401/403: the token was rejected. Retrying will not help; the user must log in again.
    Unauthorized { endpoint: String, status: u16 },
    /// DNS, connect, TLS or timeout failure: the device is offline or the backend is down.
    Unreachable { endpoint: String, detail: String },
    /// 5xx.
    Server {
        endpoint: String,
        status: u16,
        snippet: String,
    },
    /// 404: the object (an edge, a twin, a file) is not there.
    NotFound { endpoint: String },
    /// 408, 425 or 429: the backend asks us to come back later (after `retry_after` when it
    /// says so).
    Throttled {
        endpoint: String,
        status: u16,
        retry_after: Option<Duration>,
    },
    /// Another 4xx, or a 2xx whose body is not what the endpoint promises.
    BadResponse {
        endpoint: String,
        status: u16,
        detail: String,
        snippet: String,
    },
}

impl BackendError {
    /// Worth retrying later (the backend may come back), as opposed to a request we got wrong.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            BackendError::Unreachable { .. }
                | BackendError::Server { .. }
                | BackendError::Throttled { .. }
        )
    }

    /// How long the backend asked us to wait (`Retry-After`), if it did.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            BackendError::Throttled { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// The backend refuses this request for good (400, 404, 422): sending it again cannot help.
    pub fn is_rejected(&self) -> bool {
        match self {
            BackendError::NotFound { .. } => true,
            BackendError::BadResponse { status, .. } => matches!(status, 400 | 422),
            _ => false,
        }
    }
    /// The HTTP status the backend answered with (`None`: no answer).
    pub fn status(&self) -> Option<u16> {
        match self {
            BackendError::Unauthorized { status, .. }
            | BackendError::Server { status, .. }
            | BackendError::Throttled { status, .. }
            | BackendError::BadResponse { status, .. } => Some(*status),
            BackendError::NotFound { .. } => Some(404),
            BackendError::Unreachable { .. } => None,
        }
    }

    /// The same error without the body excerpt (an answer that may hold a secret).
    pub fn without_snippet(self) -> Self {
        match self {
            BackendError::Server {
                endpoint, status, ..
            } => BackendError::Server {
                endpoint,
                status,
                snippet: "(body not shown)".into(),
            },
            BackendError::BadResponse {
                endpoint,
                status,
                detail,
                ..
            } => BackendError::BadResponse {
                endpoint,
                status,
                // serde's message can quote the text it choked on: keep only its position.
                detail: detail
                    .split_once(':')
                    .map(|(head, _)| head.to_string())
                    .unwrap_or(detail),
                snippet: "(body not shown)".into(),
            },
            other => other,
        }
    }

    pub fn is_unauthorized(&self) -> bool {
        matches!(self, BackendError::Unauthorized { .. })
    }
}

impl fmt::Display for BackendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BackendError::Unauthorized { endpoint, status } => write!(
                f,
                "{endpoint}: token rejected (HTTP {status}); run 'cyberwave login' on this device to refresh credentials.json"
            ),
            BackendError::Unreachable { endpoint, detail } => {
                write!(f, "{endpoint}: backend unreachable: {detail}")
            }
            BackendError::Server {
                endpoint,
                status,
                snippet,
            } => write!(f, "{endpoint}: server error HTTP {status}: {snippet}"),
            BackendError::NotFound { endpoint } => write!(f, "{endpoint}: not found (HTTP 404)"),
            BackendError::Throttled {
                endpoint,
                status,
                retry_after,
            } => match retry_after {
                Some(d) => write!(
                    f,
                    "{endpoint}: backend busy (HTTP {status}); asked to retry in {} s",
                    d.as_secs()
                ),
                None => write!(f, "{endpoint}: backend busy (HTTP {status})"),
            },
            BackendError::BadResponse {
                endpoint,
                status,
                detail,
                snippet,
            } => write!(
                f,
                "{endpoint}: unexpected response (HTTP {status}): {detail}: {snippet}"
            ),
        }
    }
}

impl std::error::Error for BackendError {}

/// `Retry-After` in seconds (the HTTP-date form is not used by our backend), at most an hour.
pub(super) fn retry_after_secs(v: &str) -> Option<Duration> {
    let secs: u64 = v.trim().parse().ok()?;
    Some(Duration::from_secs(secs.min(3600)))
}

/// First 200 characters of a body, on one line, for error messages.
pub(super) fn snippet(body: &str) -> String {
    let one_line: String = body.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut s: String = one_line.chars().take(200).collect();
    if one_line.chars().count() > 200 {
        s.push('…');
    }
    s
}
