//! Alerts through the REST API (reference §2.2, §2.5) via a durable outbox in the config dir:
//! an alert raised while offline is delivered once when the backend returns. Operations are
//! appended to `alerts-outbox.json` (atomically) and removed only after the backend accepted
//! them; a create whose dedupe key is already pending is not queued twice. The daemon's sink
//! writes the outbox itself before `raise` returns, so an alert whose cause was logged or acted
//! on survives the process being killed the next instant (a channel to the delivery thread
//! would lose it).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crossbeam_channel::Sender;
use serde_json::{Value, json};

use crate::backend::Backend;

mod delivery;

pub use delivery::{AlertStats, Retry, on_failure, run};

pub const OUTBOX_FILE: &str = "alerts-outbox.json";

/// What the `alerts` thread is told: an operation to deliver, or the client to use from now
/// on (a SIGHUP may change the token or the backend).
pub enum AlertMsg {
    Op(AlertOp),
    /// The shared outbox has something new (it was persisted by the sender).
    Wake,
    Backend(Box<Backend>),
}

/// The outbox the daemon's sink and the delivery thread share.
pub type SharedOutbox = Arc<Mutex<Outbox>>;

/// Locks the shared outbox; a panic elsewhere while holding it leaves a usable list.
pub(crate) fn lock(outbox: &SharedOutbox) -> std::sync::MutexGuard<'_, Outbox> {
    outbox
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// One alert operation.
#[derive(Debug, Clone, PartialEq)]
pub enum AlertOp {
    /// `POST /api/v1/alerts` with `body`; `key` de-duplicates pending creates.
    Create { key: String, body: Value },
    /// Resolve every active alert of `alert_type` on `twin_uuid`.
    ResolveType {
        twin_uuid: String,
        alert_type: String,
    },
    /// `PUT /api/v1/alerts/{uuid}` on every active alert of `alert_type` on `twin_uuid`:
    /// `patch` with its `metadata` merged over the alert's (progress phases of a card).
    UpdateType {
        twin_uuid: String,
        alert_type: String,
        patch: Value,
    },
    /// An alert the backend created (the remote-restart card): `metadata.phase` and `extra`
    /// merged into its metadata, then resolved when `resolve` (reference §2.4 `transition`).
    Transition {
        uuid: String,
        phase: String,
        extra: Value,
        resolve: bool,
    },
}

/// `patch` over `base`, key by key, `metadata` merged one level deep.
fn merge_patch(base: &Value, patch: &Value) -> Value {
    let mut out = base.clone();
    if let (Value::Object(o), Value::Object(p)) = (&mut out, patch) {
        for (k, v) in p {
            match (o.get_mut(k), v) {
                (Some(Value::Object(old)), Value::Object(new)) if k == "metadata" => {
                    for (mk, mv) in new {
                        old.insert(mk.clone(), mv.clone());
                    }
                }
                _ => {
                    o.insert(k.clone(), v.clone());
                }
            }
        }
    }
    out
}

impl AlertOp {
    fn to_json(&self) -> Value {
        match self {
            AlertOp::Create { key, body } => json!({"op": "create", "key": key, "body": body}),
            AlertOp::ResolveType {
                twin_uuid,
                alert_type,
            } => {
                json!({"op": "resolve_type", "twin_uuid": twin_uuid, "alert_type": alert_type})
            }
            AlertOp::UpdateType {
                twin_uuid,
                alert_type,
                patch,
            } => {
                json!({"op": "update_type", "twin_uuid": twin_uuid, "alert_type": alert_type, "patch": patch})
            }
            AlertOp::Transition {
                uuid,
                phase,
                extra,
                resolve,
            } => {
                json!({"op": "transition", "uuid": uuid, "phase": phase, "extra": extra, "resolve": resolve})
            }
        }
    }

    fn from_json(v: &Value) -> Option<Self> {
        match v.get("op")?.as_str()? {
            "create" => Some(AlertOp::Create {
                key: v.get("key")?.as_str()?.to_string(),
                body: v.get("body")?.clone(),
            }),
            "resolve_type" => Some(AlertOp::ResolveType {
                twin_uuid: v.get("twin_uuid")?.as_str()?.to_string(),
                alert_type: v.get("alert_type")?.as_str()?.to_string(),
            }),
            "transition" => Some(AlertOp::Transition {
                uuid: v.get("uuid")?.as_str()?.to_string(),
                phase: v.get("phase")?.as_str()?.to_string(),
                extra: v.get("extra")?.clone(),
                resolve: v.get("resolve")?.as_bool()?,
            }),
            "update_type" => Some(AlertOp::UpdateType {
                twin_uuid: v.get("twin_uuid")?.as_str()?.to_string(),
                alert_type: v.get("alert_type")?.as_str()?.to_string(),
                patch: v.get("patch")?.clone(),
            }),
            _ => None,
        }
    }
}

/// One alert as the edge raises it (reference §2.5).
#[derive(Debug, Clone)]
pub struct Alert<'a> {
    pub alert_type: &'a str,
    /// The alert's title (`name` in the API).
    pub name: &'a str,
    pub description: &'a str,
    /// `info`, `warning`, `error` or `critical`.
    pub severity: &'a str,
    pub twin_uuid: &'a str,
    pub metadata: Option<Value>,
}

/// The body of `POST /api/v1/alerts` for an edge alert.
pub fn alert_body(
    a: &Alert,
    environment_uuid: Option<&str>,
    workspace_uuid: Option<&str>,
) -> Value {
    let mut m = serde_json::Map::new();
    m.insert("name".into(), json!(crate::clip(a.name, 200)));
    m.insert(
        "description".into(),
        json!(crate::clip(a.description, 2000)),
    );
    m.insert("alert_type".into(), json!(a.alert_type));
    m.insert("severity".into(), json!(a.severity));
    m.insert("source_type".into(), json!("edge"));
    m.insert("category".into(), json!("technical"));
    m.insert("twin_uuid".into(), json!(a.twin_uuid));
    if let Some(e) = environment_uuid {
        m.insert("environment_uuid".into(), json!(e));
    }
    if let Some(w) = workspace_uuid {
        m.insert("workspace_uuid".into(), json!(w));
    }
    if let Some(md) = &a.metadata {
        m.insert("metadata".into(), md.clone());
    }
    if a.alert_type == "driver_starting" {
        // A new card per start, not deduplicated onto an active one (reference §2.4).
        m.insert("force".into(), json!(true));
    }
    Value::Object(m)
}

/// The pending operations on disk.
pub struct Outbox {
    path: PathBuf,
    pending: Vec<AlertOp>,
}

/// Largest alert outbox file read back (thousands of alerts are a few MiB).
const MAX_OUTBOX_FILE: u64 = 64 << 20;

impl Outbox {
    pub fn open(config_dir: &Path) -> Self {
        let path = config_dir.join(OUTBOX_FILE);
        let text = match crate::fsutil::read_regular_text(&path, MAX_OUTBOX_FILE) {
            Ok(t) => Some(t),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => {
                log::error!("{}: {e}; starting with no pending alerts", path.display());
                None
            }
        };
        let pending = text
            .and_then(|t| serde_json::from_str::<Value>(&t).ok())
            .and_then(|v| v.get("pending").and_then(Value::as_array).cloned())
            .map(|items| items.iter().filter_map(AlertOp::from_json).collect())
            .unwrap_or_default();
        Outbox { path, pending }
    }

    pub fn pending(&self) -> &[AlertOp] {
        &self.pending
    }

    fn save(&self) {
        let v = json!({"pending": self.pending.iter().map(AlertOp::to_json).collect::<Vec<_>>()});
        if let Err(e) = crate::fsutil::write_json_atomic(&self.path, &v, 0o600) {
            log::error!("cannot write {}: {e}", self.path.display());
        }
    }

    /// Queues `op` (unless an identical create key is pending; an update of a card that is
    /// still waiting is folded into the waiting one) and persists.
    pub fn push(&mut self, op: AlertOp) {
        if let AlertOp::UpdateType {
            twin_uuid,
            alert_type,
            patch,
        } = &op
            && let Some(AlertOp::UpdateType { patch: waiting, .. }) =
                self.pending.last_mut().filter(|p| {
                    matches!(p, AlertOp::UpdateType { twin_uuid: t, alert_type: a, .. }
                        if t == twin_uuid && a == alert_type)
                })
        {
            *waiting = merge_patch(waiting, patch);
            self.save();
            return;
        }
        if let AlertOp::Create { key, .. } = &op
            && self
                .pending
                .iter()
                .any(|p| matches!(p, AlertOp::Create { key: k, .. } if k == key))
        {
            return;
        }
        self.pending.push(op);
        self.save();
    }

    /// Removes the head once delivered, unless it changed meanwhile (a card update folded into
    /// it): then it stays and is delivered again with the merged patch.
    fn pop_delivered(&mut self, delivered: &AlertOp) {
        if self.pending.first() == Some(delivered) {
            self.pending.remove(0);
            self.save();
        }
    }
}

/// Where the daemon sends alert operations: the outbox thread, or nowhere in local mode.
#[derive(Clone)]
pub struct AlertSink {
    tx: Option<Sender<AlertMsg>>,
    /// The daemon's outbox, written before an operation is announced on `tx`; without it the
    /// operations themselves go over `tx`.
    outbox: Option<SharedOutbox>,
    pub environment_uuid: Option<String>,
    pub workspace_uuid: Option<String>,
    /// (twin, type) pairs resolved with nothing raised since (shared by clones): resolving
    /// one again would only ask the backend for a list that cannot have changed.
    settled: Arc<Mutex<BTreeSet<(String, String)>>>,
}

impl AlertSink {
    pub fn new(
        tx: Option<Sender<AlertMsg>>,
        environment_uuid: Option<String>,
        workspace_uuid: Option<String>,
    ) -> Self {
        AlertSink {
            tx,
            outbox: None,
            environment_uuid,
            workspace_uuid,
            settled: Arc::default(),
        }
    }

    /// The daemon's sink: every operation is persisted in `outbox` before the call returns,
    /// then the delivery thread is woken over `tx`.
    pub fn durable(
        outbox: SharedOutbox,
        tx: Sender<AlertMsg>,
        environment_uuid: Option<String>,
        workspace_uuid: Option<String>,
    ) -> Self {
        AlertSink {
            outbox: Some(outbox),
            ..AlertSink::new(Some(tx), environment_uuid, workspace_uuid)
        }
    }

    fn send(&self, op: AlertOp) {
        let Some(tx) = &self.tx else { return };
        let msg = match &self.outbox {
            Some(outbox) => {
                lock(outbox).push(op);
                AlertMsg::Wake
            }
            None => AlertMsg::Op(op),
        };
        let _ = tx.send(msg);
    }

    /// After a reload: the client, environment and workspace alerts are sent with.
    pub fn reconfigure(
        &mut self,
        backend: Backend,
        environment_uuid: Option<String>,
        workspace_uuid: Option<String>,
    ) {
        self.environment_uuid = environment_uuid;
        self.workspace_uuid = workspace_uuid;
        if let Ok(mut s) = self.settled.lock() {
            s.clear(); // another backend or environment: its alerts are unknown
        }
        if let Some(tx) = &self.tx {
            let _ = tx.send(AlertMsg::Backend(Box::new(backend)));
        }
    }

    /// Queues an alert; `key` de-duplicates it while it waits for the backend.
    pub fn raise(&self, key: &str, alert: Alert) {
        log::warn!(
            "alert {} on twin {}: {}: {}",
            alert.alert_type,
            alert.twin_uuid,
            crate::clip(alert.name, 200),
            crate::clip(alert.description, 2000)
        );
        if let Ok(mut s) = self.settled.lock() {
            s.remove(&(alert.twin_uuid.to_string(), alert.alert_type.to_string()));
        }
        if self.tx.is_some() {
            let body = alert_body(
                &alert,
                self.environment_uuid.as_deref(),
                self.workspace_uuid.as_deref(),
            );
            self.send(AlertOp::Create {
                key: key.to_string(),
                body,
            });
        }
    }

    /// Moves a backend-created alert to `phase` (metadata merged), resolving it when asked.
    pub fn transition(&self, uuid: &str, phase: &str, extra: Value, resolve: bool) {
        log::info!(
            "alert {uuid}: {phase}{}",
            if resolve { " (resolved)" } else { "" }
        );
        self.send(AlertOp::Transition {
            uuid: uuid.to_string(),
            phase: phase.to_string(),
            extra,
            resolve,
        });
    }

    /// Updates the active alerts of `alert_type` on `twin_uuid` (metadata merged).
    pub fn update(&self, twin_uuid: &str, alert_type: &str, patch: Value) {
        self.send(AlertOp::UpdateType {
            twin_uuid: twin_uuid.to_string(),
            alert_type: alert_type.to_string(),
            patch,
        });
    }

    /// Resolves the active alerts of `alert_type` on `twin_uuid`: the first time (one may be
    /// left from an earlier run), then only after one was raised again.
    pub fn resolve(&self, twin_uuid: &str, alert_type: &str) {
        let first = self.settled.lock().map_or(true, |mut s| {
            s.insert((twin_uuid.to_string(), alert_type.to_string()))
        });
        if !first {
            return;
        }
        self.send(AlertOp::ResolveType {
            twin_uuid: twin_uuid.to_string(),
            alert_type: alert_type.to_string(),
        });
    }
}

#[cfg(test)]
mod tests;
