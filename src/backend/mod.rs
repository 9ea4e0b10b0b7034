//! The Cyberwave REST client (reference §2.1, §2.2): ureq over rustls, Bearer auth, bounded
//! by connect and overall deadlines, GETs retried with jittered backoff, typed errors.

mod driver_token;
mod error;
mod remote_access;
mod resolver;
mod validators;

pub use driver_token::{Minted, TokenCallError};
pub use error::BackendError;
use error::{retry_after_secs, snippet};

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::backoff::Backoff;
use crate::config::{Secret, Settings};
use validators::Validators;

/// Largest backend answer read (64 MiB): an environment of thousands of twins with their
/// metadata fits; past it the call fails with a clear error and the edge keeps its cached state.
pub const MAX_ANSWER_BYTES: u64 = 64 << 20;

#[derive(Clone)]
pub struct Backend {
    agent: ureq::Agent,
    base_url: String,
    token: Secret,
    workspace_id: Option<String>,
    /// Total attempts for idempotent calls.
    attempts: u32,
    /// Validators of earlier GET answers (shared by clones): the next GET is conditional.
    validators: Arc<Mutex<Validators>>,
}

/// `X-Cyberwave-SDK-Version` on every call: the Python SDK release whose REST contract we
/// implement and test against (the tests install `cyberwave==0.7.4`; the original 0.1.30
/// requires `cyberwave>=0.7.3`), so a backend gating on SDK versions treats us like it.
pub const SDK_CONTRACT_VERSION: &str = "0.7.4";

/// What an answer means: its JSON on 2xx (`null` when empty), else the error its status names.
fn answer(
    endpoint: String,
    status: u16,
    retry_after: Option<Duration>,
    text: &str,
) -> Result<Value, BackendError> {
    match status {
        200..=299 => {
            if text.trim().is_empty() {
                return Ok(Value::Null);
            }
            serde_json::from_str(text).map_err(|e| BackendError::BadResponse {
                endpoint,
                status,
                detail: format!("invalid JSON: {e}"),
                snippet: snippet(text),
            })
        }
        401 | 403 => Err(BackendError::Unauthorized { endpoint, status }),
        404 => Err(BackendError::NotFound { endpoint }),
        408 | 425 | 429 => Err(BackendError::Throttled {
            endpoint,
            status,
            retry_after,
        }),
        500..=599 => Err(BackendError::Server {
            endpoint,
            status,
            snippet: snippet(text),
        }),
        _ => Err(BackendError::BadResponse {
            endpoint,
            status,
            detail: "unexpected status".into(),
            snippet: snippet(text),
        }),
    }
}

/// The original's deadlines for edge-sync (30 s: a twin with many workflows answers slowly)
/// and for model catalog lookups (5 s).
pub const EDGE_SYNC_DEADLINE: Duration = Duration::from_secs(30);
pub const CATALOG_DEADLINE: Duration = Duration::from_secs(5);

impl Backend {
    pub fn new(settings: &Settings) -> Self {
        Self::build(
            "cyberwave-edge-core",
            &settings.base_url,
            settings.token.clone(),
            settings.workspace_id.clone(),
            settings.user_agent_prefix.as_deref(),
            settings.http_timeout,
            3,
        )
    }

    /// A client whose every call ends within `timeout` and is tried once (for `status`).
    pub fn probe(settings: &Settings, timeout: Duration) -> Self {
        Self::build(
            "cyberwave-edge-core",
            &settings.base_url,
            settings.token.clone(),
            settings.workspace_id.clone(),
            settings.user_agent_prefix.as_deref(),
            timeout,
            1,
        )
    }

    fn build(
        product: &str,
        base_url: &str,
        token: Secret,
        workspace_id: Option<String>,
        ua_prefix: Option<&str>,
        timeout: Duration,
        attempts: u32,
    ) -> Self {
        let ua = match ua_prefix {
            Some(p) => format!("{p} {product}/{}", crate::VERSION),
            None => format!("{product}/{}", crate::VERSION),
        };
        let config = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .timeout_connect(Some(timeout.min(Duration::from_secs(5))))
            .http_status_as_error(false)
            .user_agent(ua)
            // Keep the connection of one tick for the next (15 s ticks, the 30 s keepalive):
            // ureq's default 15 s would redo the TCP and TLS handshakes every time. Under
            // the 60 s idle timeout of common load balancers.
            .max_idle_age(Duration::from_secs(50))
            .build();
        let agent = ureq::Agent::with_parts(
            config,
            ureq::unversioned::transport::DefaultConnector::default(),
            resolver::KeptResolver::default(),
        );
        Backend {
            agent,
            base_url: base_url.trim_end_matches('/').to_string(),
            token,
            workspace_id,
            attempts: attempts.max(1),
            validators: Arc::default(),
        }
    }

    /// A client for another program of the family (the cloud node) with its own base URL.
    /// A client for another program of ours (`product` names it in the User-Agent).
    pub fn with_base(
        product: &str,
        base_url: &str,
        token: Secret,
        workspace_id: Option<String>,
        timeout: Duration,
        attempts: u32,
    ) -> Self {
        Self::build(
            product,
            base_url,
            token,
            workspace_id,
            None,
            timeout,
            attempts,
        )
    }

    /// `POST path` with a JSON body (not retried: the caller decides).
    pub fn post_json(&self, path: &str, body: &Value) -> Result<Value, BackendError> {
        self.once("POST", path, Some(body))
    }

    /// `POST path` with no body (the cloud-node heartbeat).
    pub fn post_empty(&self, path: &str) -> Result<Value, BackendError> {
        self.once("POST", path, None)
    }

    fn url(&self, path: &str) -> String {
        let mut url = format!("{}{path}", self.base_url);
        if let Some(ws) = &self.workspace_id
            && !path.contains("workspace_uuid=")
        {
            url.push(if path.contains('?') { '&' } else { '?' });
            url.push_str("workspace_uuid=");
            url.push_str(ws);
        }
        url
    }

    /// One request; `body` = None for GET. Returns the parsed JSON (Null for an empty body).
    fn once(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value, BackendError> {
        self.send(method, path, body, None, &[])
    }

    /// [`Backend::once`] with this call's own deadline (a GET), when the original had one
    /// for it: edge-sync 30 s, the model catalog 5 s.
    fn once_within(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        deadline: Option<Duration>,
    ) -> Result<Value, BackendError> {
        self.send(method, path, body, deadline, &[])
    }

    /// One request with this call's own deadline (`None`: the client's) and extra headers
    /// (the remote-access calls' edge key). Header values are never part of an error.
    fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        deadline: Option<Duration>,
        extra: &[(&str, &str)],
    ) -> Result<Value, BackendError> {
        let endpoint = format!("{method} {}", path.split('?').next().unwrap_or(path));
        let url = self.url(path);
        let auth = format!("Bearer {}", self.token.expose());
        let get = method == "GET" && body.is_none();
        let conditional = match self.validators.lock() {
            Ok(v) if get => v.headers_for(&url),
            _ => Vec::new(),
        };
        let mut headers: Vec<(&str, &str)> = extra.to_vec();
        headers.extend(conditional.iter().map(|(k, v)| (*k, v.as_str())));
        let h = (auth.as_str(), &headers[..], deadline);
        let result = match (method, body) {
            ("POST", None) => with_headers(self.agent.post(&url), h).send_empty(),
            (_, None) => with_headers(self.agent.get(&url), h).call(),
            ("PUT", Some(b)) => with_headers(self.agent.put(&url), h).send_json(b),
            (_, Some(b)) => with_headers(self.agent.post(&url), h).send_json(b),
        };
        let mut resp = result.map_err(|e| BackendError::Unreachable {
            endpoint: endpoint.clone(),
            detail: e.to_string(),
        })?;
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(retry_after_secs);
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let (etag, last_modified) = (header("etag"), header("last-modified"));
        let text = resp
            .body_mut()
            .with_config()
            .limit(MAX_ANSWER_BYTES)
            .read_to_string()
            .map_err(|e| BackendError::Unreachable {
                endpoint: endpoint.clone(),
                detail: match e {
                    ureq::Error::BodyExceedsLimit(_) => format!(
                        "the answer is larger than {} MiB; not read",
                        MAX_ANSWER_BYTES >> 20
                    ),
                    e => format!("reading the response body: {e}"),
                },
            })?;
        if get && let Ok(mut v) = self.validators.lock() {
            match status {
                304 => match v.kept(&url) {
                    Some(kept) => return answer(endpoint, 200, None, &kept),
                    None => v.forget(&url),
                },
                200..=299 => v.remember(&url, etag.as_deref(), last_modified.as_deref(), &text),
                _ => {}
            }
        }
        answer(endpoint, status, retry_after, &text)
    }

    /// GET with retries on transient errors (jittered 0.5 s, 1 s, …).
    fn get(&self, path: &str) -> Result<Value, BackendError> {
        let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(5));
        let mut attempt = 1;
        loop {
            match self.once("GET", path, None) {
                Err(e) if e.is_transient() && attempt < self.attempts => {
                    log::debug!("{e}; retrying");
                    std::thread::sleep(backoff.next_delay());
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    /// `GET /api/v1/users/workspaces`: success means the token is valid. Returns the latency.
    pub fn validate_token(&self) -> Result<Duration, BackendError> {
        let start = Instant::now();
        self.get("/api/v1/users/workspaces")?;
        Ok(start.elapsed())
    }

    /// `POST /api/v1/edges {"fingerprint"}`: registers (or finds) this edge; the `EdgeSchema`.
    pub fn register_edge(&self, fingerprint: &str) -> Result<Value, BackendError> {
        let v = self.once(
            "POST",
            "/api/v1/edges",
            Some(&json!({ "fingerprint": fingerprint })),
        )?;
        expect_object(v, "POST /api/v1/edges", "uuid")
    }

    /// `POST /api/v1/edges/discover`: the liveness keepalive with host facts.
    pub fn discover(
        &self,
        fingerprint: &str,
        hostname: &str,
        platform: &str,
        host_facts: Value,
    ) -> Result<Value, BackendError> {
        let mut body = serde_json::Map::new();
        body.insert("fingerprint".into(), json!(fingerprint));
        if !hostname.is_empty() {
            body.insert("hostname".into(), json!(hostname));
        }
        if !platform.is_empty() {
            body.insert("platform".into(), json!(platform));
        }
        body.insert("host_facts".into(), host_facts);
        self.once("POST", "/api/v1/edges/discover", Some(&Value::Object(body)))
    }

    /// `GET /api/v1/edges/{uuid}`: the `EdgeSchema` (the `edge.json` refresh).
    pub fn edge(&self, uuid: &str) -> Result<Value, BackendError> {
        let path = format!("/api/v1/edges/{uuid}");
        let v = self.get(&path)?;
        expect_object(v, &format!("GET {path}"), "uuid")
    }

    /// `GET /api/v1/environments/{uuid}/twins`.
    pub fn environment_twins(&self, env_uuid: &str) -> Result<Vec<Value>, BackendError> {
        let endpoint = format!("/api/v1/environments/{env_uuid}/twins");
        match self.get(&endpoint)? {
            Value::Array(items) => Ok(items),
            other => Err(BackendError::BadResponse {
                endpoint: format!("GET {endpoint}"),
                status: 200,
                detail: format!("expected a list of twins, found {}", kind(&other)),
                snippet: snippet(&other.to_string()),
            }),
        }
    }

    /// `GET /api/v1/twins/{uuid}`.
    pub fn twin(&self, uuid: &str) -> Result<Value, BackendError> {
        let path = format!("/api/v1/twins/{uuid}");
        let v = self.get(&path)?;
        expect_object(v, &format!("GET {path}"), "uuid")
    }

    /// `PUT /api/v1/twins/{uuid}` (the twin sync's push).
    pub fn update_twin(&self, uuid: &str, body: &Value) -> Result<(), BackendError> {
        self.once("PUT", &format!("/api/v1/twins/{uuid}"), Some(body))
            .map(|_| ())
    }

    /// `GET /api/v1/assets/{uuid}`.
    pub fn asset(&self, uuid: &str) -> Result<Value, BackendError> {
        let path = format!("/api/v1/assets/{uuid}");
        let v = self.get(&path)?;
        expect_object(v, &format!("GET {path}"), "uuid")
    }
}

/// The ML half's calls (reference §2.2): workflow files and the model catalog.
impl Backend {
    /// The edge token this client sends (the driver-token cache records its digest).
    pub(crate) fn token(&self) -> &Secret {
        &self.token
    }

    /// The base URL (downloads send the token only to it).
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// `Authorization` value for a URL on the backend; `None` for any other host.
    pub fn bearer_for(&self, url: &str) -> Option<String> {
        (url.starts_with(&format!("{}/", self.base_url)) || url == self.base_url)
            .then(|| format!("Bearer {}", self.token.expose()))
    }

    /// `GET /api/v1/workflows/edge-sync/{twin}`.
    pub fn edge_sync(&self, twin_uuid: &str) -> Result<Value, BackendError> {
        self.once_within(
            "GET",
            &format!("/api/v1/workflows/edge-sync/{twin_uuid}"),
            None,
            Some(EDGE_SYNC_DEADLINE),
        )
    }

    /// `GET /api/v1/mlmodels/{uuid}` for a UUID, else `GET /api/v1/mlmodels?model_external_id=`
    /// (first element of a list). `None` when the catalog does not know it.
    pub fn mlmodel(&self, model_id: &str) -> Result<Option<Value>, BackendError> {
        let path = match crate::config::parse_uuid(model_id) {
            Some(u) => format!("/api/v1/mlmodels/{u}"),
            None => {
                let q: String = model_id
                    .bytes()
                    .map(|b| match b {
                        b'A'..=b'Z'
                        | b'a'..=b'z'
                        | b'0'..=b'9'
                        | b'-'
                        | b'_'
                        | b'.'
                        | b'~'
                        | b'/' => (b as char).to_string(),
                        _ => format!("%{b:02X}"),
                    })
                    .collect();
                format!("/api/v1/mlmodels?model_external_id={q}")
            }
        };
        match self.once_within("GET", &path, None, Some(CATALOG_DEADLINE)) {
            Ok(Value::Array(items)) => Ok(items.into_iter().find(Value::is_object)),
            Ok(v @ Value::Object(_)) => Ok(Some(v)),
            Ok(_) | Err(BackendError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `GET /api/v1/mlmodels/{uuid}/weights`: the signed URL (`signed_url` or `url`), `None`
    /// when the weights are not hosted (404) or the answer has no URL.
    pub fn mlmodel_weights_url(&self, uuid: &str) -> Result<Option<String>, BackendError> {
        let path = format!("/api/v1/mlmodels/{uuid}/weights");
        match self.once_within("GET", &path, None, Some(CATALOG_DEADLINE)) {
            Ok(v) => Ok(["signed_url", "url"]
                .iter()
                .find_map(|k| v.get(*k).and_then(Value::as_str))
                .filter(|u| u.starts_with("http://") || u.starts_with("https://"))
                .map(str::to_string)),
            Err(BackendError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

impl Backend {
    /// `POST /api/v1/alerts`.
    pub fn create_alert(&self, body: &Value) -> Result<Value, BackendError> {
        self.once("POST", "/api/v1/alerts", Some(body))
    }

    /// `GET /api/v1/alerts?twin_uuid=…&limit=100&status=active`.
    pub fn active_alerts(&self, twin_uuid: &str) -> Result<Vec<Value>, BackendError> {
        let path = format!("/api/v1/alerts?twin_uuid={twin_uuid}&limit=100&status=active");
        match self.get(&path)? {
            Value::Array(items) => Ok(items),
            Value::Object(m) => Ok(m
                .get("items")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()),
            _ => Ok(Vec::new()),
        }
    }

    /// `GET /api/v1/alerts/{uuid}`.
    pub fn alert(&self, uuid: &str) -> Result<Value, BackendError> {
        let path = format!("/api/v1/alerts/{uuid}");
        let v = self.get(&path)?;
        expect_object(v, &format!("GET {path}"), "uuid")
    }

    /// `PUT /api/v1/alerts/{uuid}`.
    pub fn update_alert(&self, uuid: &str, body: &Value) -> Result<(), BackendError> {
        self.once("PUT", &format!("/api/v1/alerts/{uuid}"), Some(body))
            .map(|_| ())
    }

    /// `POST /api/v1/alerts/{uuid}/resolve`.
    pub fn resolve_alert(&self, uuid: &str) -> Result<(), BackendError> {
        self.once(
            "POST",
            &format!("/api/v1/alerts/{uuid}/resolve"),
            Some(&json!({})),
        )
        .map(|_| ())
    }
}

/// Our headers on a request, and its own deadline when it has one.
fn with_headers<B>(
    req: ureq::RequestBuilder<B>,
    (auth, extra, deadline): (&str, &[(&str, &str)], Option<Duration>),
) -> ureq::RequestBuilder<B> {
    let mut req = req
        .header("Authorization", auth)
        .header("X-Cyberwave-SDK-Version", SDK_CONTRACT_VERSION)
        .header("Accept", "application/json");
    for (k, v) in extra {
        req = req.header(*k, *v);
    }
    match deadline {
        Some(d) => req.config().timeout_global(Some(d)).build(),
        None => req,
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// A 2xx body must be an object with `key`; anything else is a [`BackendError::BadResponse`].
fn expect_object(v: Value, endpoint: &str, key: &str) -> Result<Value, BackendError> {
    match &v {
        Value::Object(m) if m.get(key).is_some_and(|k| k.is_string()) => Ok(v),
        _ => Err(BackendError::BadResponse {
            endpoint: endpoint.to_string(),
            status: 200,
            detail: format!(
                "expected an object with a \"{key}\" string, found {}",
                kind(&v)
            ),
            snippet: snippet(&v.to_string()),
        }),
    }
}

#[cfg(test)]
mod tests;
