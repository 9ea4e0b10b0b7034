//! A fake Cyberwave REST backend on a loopback port: stateful (edges, environments, twins,
//! assets, alerts), records every request, and can inject latency, 5xx, 401 and an offline
//! period (the port refuses connections). Plain std sockets, `Connection: close` always, so
//! "offline" really is offline for the client under test.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

mod driver_tokens;
mod remote_access;

pub use driver_tokens::TokenBehaviour;

#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    #[allow(dead_code)] // recorded for debugging output (`{:?}`) of failing tests
    pub query: String,
    pub headers: BTreeMap<String, String>,
    pub body: Value,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mode {
    Normal,
    Unauthorized,
    #[allow(dead_code)] // the fake's 5xx injection, kept for tests of retry paths
    ServerError,
}

struct Inner {
    token: String,
    mode: Mode,
    latency: Duration,
    requests: Vec<Recorded>,
    edges: BTreeMap<String, Value>,
    environments: BTreeMap<String, Vec<Value>>,
    assets: BTreeMap<String, Value>,
    alerts: Vec<Value>,
    cloud_nodes: BTreeMap<String, Value>,
    /// Twin → `GET /api/v1/workflows/edge-sync/{twin}` answer (absent: 404; `null`: 500).
    workflows: BTreeMap<String, Value>,
    /// Catalog entries by uuid and by `model_external_id`.
    mlmodels: Vec<Value>,
    /// Model uuid → signed URL of its weights.
    signed: BTreeMap<String, String>,
    /// Raw files served at `/files/...` (no auth: a storage host).
    files: BTreeMap<String, Vec<u8>>,
    /// When set, every `/api/v1/alerts` call answers this status (with `Retry-After: 1`).
    alert_status: Option<u16>,
    remote: remote_access::Remote,
    driver_tokens: driver_tokens::Tokens,
}

pub struct FakeBackend {
    pub port: u16,
    inner: Arc<Mutex<Inner>>,
    offline: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
}

impl FakeBackend {
    pub fn start(token: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind fake backend");
        let port = listener.local_addr().unwrap().port();
        let inner = Arc::new(Mutex::new(Inner {
            token: token.to_string(),
            mode: Mode::Normal,
            alert_status: None,
            latency: Duration::ZERO,
            requests: Vec::new(),
            edges: BTreeMap::new(),
            environments: BTreeMap::new(),
            assets: BTreeMap::new(),
            alerts: Vec::new(),
            cloud_nodes: BTreeMap::new(),
            workflows: BTreeMap::new(),
            mlmodels: Vec::new(),
            signed: BTreeMap::new(),
            files: BTreeMap::new(),
            remote: Default::default(),
            driver_tokens: Default::default(),
        }));
        let offline = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        {
            let (inner, offline, stop) = (inner.clone(), offline.clone(), stop.clone());
            thread::spawn(move || accept_loop(Some(listener), port, inner, offline, stop));
        }
        FakeBackend {
            port,
            inner,
            offline,
            stop,
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn set_mode(&self, mode: Mode) {
        self.inner.lock().unwrap().mode = mode;
    }

    /// Every alert call answers `status` (e.g. 429, 401) until set back to `None`.
    pub fn set_alert_status(&self, status: Option<u16>) {
        self.inner.lock().unwrap().alert_status = status;
    }

    pub fn set_latency(&self, d: Duration) {
        self.inner.lock().unwrap().latency = d;
    }

    /// Offline: the port refuses connections until set back online.
    pub fn set_offline(&self, offline: bool) {
        self.offline.store(offline, Ordering::SeqCst);
        // let the accept loop notice
        thread::sleep(Duration::from_millis(100));
    }

    pub fn add_environment(&self, env_uuid: &str, twins: Vec<Value>) {
        self.inner
            .lock()
            .unwrap()
            .environments
            .insert(env_uuid.to_string(), twins);
    }

    /// Adds one twin to an environment's list.
    pub fn add_twin(&self, env_uuid: &str, twin: Value) {
        self.inner
            .lock()
            .unwrap()
            .environments
            .entry(env_uuid.to_string())
            .or_default()
            .push(twin);
    }

    /// Changes a twin as another client would (e.g. the web UI editing its metadata).
    pub fn edit_twin(&self, uuid: &str, f: impl FnOnce(&mut Value)) {
        let mut g = self.inner.lock().unwrap();
        if let Some(t) = g
            .environments
            .values_mut()
            .flatten()
            .find(|t| t["uuid"] == json!(uuid))
        {
            f(t);
        }
    }

    /// Changes the registered edge of `fingerprint` as the web UI would.
    pub fn edit_edge(&self, fingerprint: &str, f: impl FnOnce(&mut Value)) {
        if let Some(e) = self.inner.lock().unwrap().edges.get_mut(fingerprint) {
            f(e);
        }
    }

    /// The twin as the backend has it now.
    pub fn twin(&self, uuid: &str) -> Option<Value> {
        let g = self.inner.lock().unwrap();
        g.environments
            .values()
            .flatten()
            .find(|t| t["uuid"] == json!(uuid))
            .cloned()
    }

    pub fn add_asset(&self, asset: Value) {
        let uuid = asset["uuid"].as_str().unwrap().to_string();
        self.inner.lock().unwrap().assets.insert(uuid, asset);
    }

    /// What edge-sync answers for `twin` (`Value::Null`: HTTP 500).
    pub fn set_workflows(&self, twin: &str, payload: Value) {
        self.inner
            .lock()
            .unwrap()
            .workflows
            .insert(twin.to_string(), payload);
    }

    /// A catalog entry (found by its `uuid` and its `model_external_id`).
    pub fn add_mlmodel(&self, entry: Value) {
        self.inner.lock().unwrap().mlmodels.push(entry);
    }

    /// Hosted weights of model `uuid` at a signed URL.
    pub fn set_signed_url(&self, uuid: &str, url: &str) {
        self.inner
            .lock()
            .unwrap()
            .signed
            .insert(uuid.to_string(), url.to_string());
    }

    /// Serves `body` at `{url}/files/{name}`; returns that URL.
    pub fn add_file(&self, name: &str, body: Vec<u8>) -> String {
        self.inner
            .lock()
            .unwrap()
            .files
            .insert(format!("/files/{name}"), body);
        format!("{}/files/{name}", self.url())
    }

    /// An alert the backend created itself (the remote-restart card); returns its uuid.
    pub fn add_alert(&self, mut alert: Value) -> String {
        let mut g = self.inner.lock().unwrap();
        let uuid = format!("a1e7b000-0000-4000-8000-{:012}", g.alerts.len());
        alert["uuid"] = json!(uuid);
        alert["status"] = json!("active");
        g.alerts.push(alert);
        uuid
    }

    pub fn alert(&self, uuid: &str) -> Option<Value> {
        self.alerts().into_iter().find(|a| a["uuid"] == json!(uuid))
    }

    /// Alerts created so far (with `uuid` and `status`).
    pub fn alerts(&self) -> Vec<Value> {
        self.inner.lock().unwrap().alerts.clone()
    }

    pub fn clear_alerts(&self) {
        self.inner.lock().unwrap().alerts.clear();
    }

    pub fn alerts_of_type(&self, alert_type: &str) -> Vec<Value> {
        self.alerts()
            .into_iter()
            .filter(|a| a["alert_type"] == json!(alert_type))
            .collect()
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.inner.lock().unwrap().requests.clone()
    }

    pub fn requests_to(&self, method: &str, path: &str) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|r| r.method == method && r.path == path)
            .collect()
    }

    /// Waits until a request matching method+path arrives; returns it.
    pub fn wait_for_request(
        &self,
        method: &str,
        path: &str,
        timeout: Duration,
    ) -> Option<Recorded> {
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            if let Some(r) = self.requests_to(method, path).into_iter().next() {
                return Some(r);
            }
            thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// The uuid the fake gives the edge with this fingerprint.
    pub fn edge_uuid_for(fingerprint: &str) -> String {
        super::uuid_from(fingerprint)
    }
}

impl Drop for FakeBackend {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn accept_loop(
    mut listener: Option<TcpListener>,
    port: u16,
    inner: Arc<Mutex<Inner>>,
    offline: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
) {
    while !stop.load(Ordering::SeqCst) {
        if offline.load(Ordering::SeqCst) {
            listener = None; // close the port: connections are refused
            thread::sleep(Duration::from_millis(20));
            continue;
        }
        if listener.is_none() {
            match TcpListener::bind(("127.0.0.1", port)) {
                Ok(l) => listener = Some(l),
                Err(_) => {
                    thread::sleep(Duration::from_millis(50));
                    continue;
                }
            }
        }
        let l = listener.as_ref().unwrap();
        l.set_nonblocking(true).unwrap();
        match l.accept() {
            Ok((stream, _)) => {
                let inner = inner.clone();
                thread::spawn(move || {
                    let _ = handle(stream, &inner);
                });
            }
            Err(_) => thread::sleep(Duration::from_millis(10)),
        }
    }
}

fn handle(stream: TcpStream, inner: &Arc<Mutex<Inner>>) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let target = parts.next().unwrap_or("").to_string();
    let mut headers = BTreeMap::new();
    loop {
        let mut h = String::new();
        reader.read_line(&mut h)?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let len: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    reader.read_exact(&mut body)?;
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_string(), q.to_string()),
        None => (target.clone(), String::new()),
    };
    let body_json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let latency = {
        let mut g = inner.lock().unwrap();
        g.requests.push(Recorded {
            method: method.clone(),
            path: path.clone(),
            query,
            headers: headers.clone(),
            body: body_json.clone(),
        });
        g.latency
    };
    if !latency.is_zero() {
        thread::sleep(latency);
    }
    let query = target
        .split_once('?')
        .map(|(_, q)| q.to_string())
        .unwrap_or_default();
    let raw = inner.lock().unwrap().files.get(&path).cloned();
    if let Some(bytes) = raw {
        let mut out = stream;
        write!(
            out,
            "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            bytes.len()
        )?;
        out.write_all(&bytes)?;
        return out.flush();
    }
    let (status, answer) = route(inner, &method, &path, &query, &headers, &body_json);
    let text = answer.to_string();
    let reason = match status {
        200 => "OK",
        201 => "Created",
        401 => "Unauthorized",
        404 => "Not Found",
        429 => "Too Many Requests",
        _ => "Error",
    };
    let retry = if status == 429 {
        "Retry-After: 1\r\n"
    } else {
        ""
    };
    let mut out = stream;
    write!(
        out,
        "HTTP/1.1 {status} {reason}\r\n{retry}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
        text.len()
    )?;
    out.flush()
}

fn route(
    inner: &Arc<Mutex<Inner>>,
    method: &str,
    path: &str,
    query: &str,
    headers: &BTreeMap<String, String>,
    body: &Value,
) -> (u16, Value) {
    let mut g = inner.lock().unwrap();
    if let Some(s) = g.alert_status
        && path.starts_with("/api/v1/alerts")
    {
        return (s, json!({"detail": "alert calls refused by the test"}));
    }
    match g.mode {
        Mode::Unauthorized => return (401, json!({"detail": "Invalid token."})),
        Mode::ServerError => return (500, json!({"detail": "Internal server error"})),
        Mode::Normal => {}
    }
    if headers.get("authorization") != Some(&format!("Bearer {}", g.token)) {
        return (
            401,
            json!({"detail": "Authentication credentials were not provided."}),
        );
    }
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    if let ["api", "v1", "twins", twin, "driver-token", rest @ ..] = segs.as_slice() {
        return driver_tokens::route(&mut g.driver_tokens, method, twin, rest);
    }
    if let ["api", "v1", "edges", _, "remote-access", rest @ ..] = segs.as_slice() {
        return remote_access::route(&mut g.remote, method, rest, headers, body);
    }
    match (method, segs.as_slice()) {
        ("GET", ["api", "v1", "users", "workspaces"]) => (
            200,
            json!([{"uuid": "5b1f3a9e-0000-4000-8000-000000000001", "name": "Test workspace"}]),
        ),
        ("POST", ["api", "v1", "edges"]) => {
            let Some(fp) = body.get("fingerprint").and_then(Value::as_str) else {
                return (400, json!({"detail": "fingerprint is required"}));
            };
            let uuid = FakeBackend::edge_uuid_for(fp);
            let edge = g.edges.entry(fp.to_string()).or_insert_with(|| {
                json!({
                    "uuid": uuid, "fingerprint": fp, "name": fp, "workspace_uuid": "5b1f3a9e-0000-4000-8000-000000000001",
                    "hostname": null, "platform": null, "status": "active", "is_online": false,
                    "liveness_state": "offline", "last_heartbeat": null, "last_seen_at": null,
                    "last_ip_address": null, "created_at": "2026-11-22T00:00:00Z", "updated_at": "2026-11-22T00:00:00Z",
                    "organization_uuid": null, "metadata": {}
                })
            });
            (201, edge.clone())
        }
        ("GET", ["api", "v1", "edges", uuid]) => {
            match g.edges.values().find(|e| e["uuid"] == json!(uuid)) {
                Some(e) => (200, e.clone()),
                None => (404, json!({"detail": "Not found."})),
            }
        }
        ("POST", ["api", "v1", "edges", "discover"]) => {
            let fp = body
                .get("fingerprint")
                .and_then(Value::as_str)
                .unwrap_or("");
            // The twins bound to this edge (by the driver rule), as the backend lists them.
            let twins: Vec<Value> = g
                .environments
                .values()
                .flatten()
                .filter(|t| {
                    t.pointer("/metadata/edge_fingerprint")
                        .and_then(Value::as_str)
                        == Some(fp)
                })
                .filter_map(|t| t.get("uuid").cloned())
                .map(|u| json!({"twin_uuid": u}))
                .collect();
            (
                200,
                json!({"edge_uuid": FakeBackend::edge_uuid_for(fp), "fingerprint": fp, "twins": twins}),
            )
        }
        ("GET", ["api", "v1", "environments", env, "twins"]) => match g.environments.get(*env) {
            Some(t) => (200, Value::Array(t.clone())),
            None => (404, json!({"detail": "Not found."})),
        },
        ("GET", ["api", "v1", "twins", uuid]) => {
            let twin = g
                .environments
                .values()
                .flatten()
                .find(|t| t["uuid"] == json!(uuid))
                .cloned();
            match twin {
                Some(t) => (200, t),
                None => (404, json!({"detail": "Not found."})),
            }
        }
        ("PUT", ["api", "v1", "twins", uuid]) => {
            let twin = g
                .environments
                .values_mut()
                .flatten()
                .find(|t| t["uuid"] == json!(uuid));
            match (twin, body) {
                (Some(t), Value::Object(patch)) => {
                    for (k, v) in patch {
                        t[k.as_str()] = v.clone();
                    }
                    (200, t.clone())
                }
                (Some(_), _) => (422, json!({"detail": "body must be an object"})),
                (None, _) => (404, json!({"detail": "Not found."})),
            }
        }
        ("GET", ["api", "v1", "assets", uuid]) => match g.assets.get(*uuid) {
            Some(a) => (200, a.clone()),
            None => (404, json!({"detail": "Not found."})),
        },
        ("POST", ["api", "v1", "cloud-node"]) => {
            let n = g.cloud_nodes.len();
            let uuid = format!("c10d0000-0000-4000-8000-{n:012}");
            let slug = body
                .get("slug")
                .and_then(Value::as_str)
                .map(str::to_string)
                .unwrap_or_else(|| format!("node-{n}"));
            let node = json!({"uuid": uuid, "slug": slug, "status": "pending", "profile_slug": body.get("profile_slug"), "provider": "self-hosted"});
            g.cloud_nodes.insert(uuid, node.clone());
            (201, node)
        }
        ("POST", ["api", "v1", "cloud-node", uuid, action]) => match g.cloud_nodes.get_mut(*uuid) {
            None => (404, json!({"detail": "Not found."})),
            Some(node) => {
                match *action {
                    "register" => node["status"] = json!("running"),
                    "terminated" => node["status"] = json!("terminated"),
                    "failed" => node["status"] = json!("failed"),
                    _ => {}
                }
                (
                    200,
                    json!({"success": true, "message": action, "uuid": node["uuid"], "slug": node["slug"]}),
                )
            }
        },
        ("GET", ["api", "v1", "workflows", "edge-sync", twin]) => match g.workflows.get(*twin) {
            Some(Value::Null) => (500, json!({"detail": "boom"})),
            Some(v) => (200, v.clone()),
            None => (200, json!({"workflows": [], "skipped_workflows": []})),
        },
        ("GET", ["api", "v1", "mlmodels"]) => {
            let id = query
                .split('&')
                .find_map(|kv| kv.strip_prefix("model_external_id="))
                .unwrap_or("");
            let list: Vec<Value> = g
                .mlmodels
                .iter()
                .filter(|m| m["model_external_id"] == json!(id))
                .cloned()
                .collect();
            (200, Value::Array(list))
        }
        ("GET", ["api", "v1", "mlmodels", uuid]) => {
            match g.mlmodels.iter().find(|m| m["uuid"] == json!(uuid)) {
                Some(m) => (200, m.clone()),
                None => (404, json!({"detail": "Not found."})),
            }
        }
        ("GET", ["api", "v1", "mlmodels", uuid, "weights"]) => match g.signed.get(*uuid) {
            Some(u) => (
                200,
                json!({"signed_url": u, "expires_at": "2099-01-01T00:00:00Z"}),
            ),
            None => (404, json!({"detail": "Not hosted."})),
        },
        ("POST", ["api", "v1", "alerts"]) => {
            let n = g.alerts.len();
            let mut alert = body.clone();
            alert["uuid"] = json!(format!("a1e70000-0000-4000-8000-{n:012}"));
            alert["status"] = json!("active");
            g.alerts.push(alert.clone());
            (201, alert)
        }
        ("GET", ["api", "v1", "alerts"]) => {
            let param = |k: &str| {
                query
                    .split('&')
                    .find_map(|kv| kv.strip_prefix(&format!("{k}=")))
                    .map(str::to_string)
            };
            let twin = param("twin_uuid");
            let status = param("status");
            let list: Vec<Value> = g
                .alerts
                .iter()
                .filter(|a| twin.as_ref().is_none_or(|t| a["twin_uuid"] == json!(t)))
                .filter(|a| status.as_ref().is_none_or(|s| a["status"] == json!(s)))
                .cloned()
                .collect();
            (200, Value::Array(list))
        }
        ("GET", ["api", "v1", "alerts", uuid]) => {
            match g.alerts.iter().find(|a| a["uuid"] == json!(uuid)) {
                Some(a) => (200, a.clone()),
                None => (404, json!({"detail": "Not found."})),
            }
        }
        ("PUT", ["api", "v1", "alerts", uuid]) => {
            match g.alerts.iter_mut().find(|a| a["uuid"] == json!(uuid)) {
                Some(a) => {
                    if let Value::Object(patch) = body {
                        for (k, v) in patch {
                            a[k.as_str()] = v.clone();
                        }
                    }
                    (200, a.clone())
                }
                None => (404, json!({"detail": "Not found."})),
            }
        }
        ("POST", ["api", "v1", "alerts", uuid, "resolve"]) => {
            match g.alerts.iter_mut().find(|a| a["uuid"] == json!(uuid)) {
                Some(a) => {
                    a["status"] = json!("resolved");
                    (200, a.clone())
                }
                None => (404, json!({"detail": "Not found."})),
            }
        }
        _ => (404, json!({"detail": "Not found."})),
    }
}
