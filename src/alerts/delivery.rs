//! The `alerts` thread: delivers the outbox in order; what a failed delivery means (retry after
//! a backoff or the backend's `Retry-After`, keep until the token is renewed, drop for good).

use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError};
use serde_json::{Value, json};

use super::{AlertMsg, AlertOp, SharedOutbox, lock, merge_patch};
use crate::backend::{Backend, BackendError};
use crate::backoff::Backoff;

/// Runs `f` on every active alert of `alert_type` on `twin_uuid` (a twin or alert the backend
/// no longer knows is not an error).
fn for_each_active(
    backend: &Backend,
    twin_uuid: &str,
    alert_type: &str,
    f: impl Fn(&str, &Value) -> Result<(), BackendError>,
) -> Result<(), BackendError> {
    let active = match backend.active_alerts(twin_uuid) {
        Ok(a) => a,
        Err(BackendError::NotFound { .. }) => return Ok(()),
        Err(e) => return Err(e),
    };
    for a in &active {
        if a.get("alert_type").and_then(Value::as_str) == Some(alert_type)
            && let Some(uuid) = a.get("uuid").and_then(Value::as_str)
        {
            match f(uuid, a) {
                Ok(()) | Err(BackendError::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}

fn deliver(backend: &Backend, op: &AlertOp) -> Result<(), BackendError> {
    match op {
        AlertOp::Create { body, .. } => backend.create_alert(body).map(|_| ()),
        AlertOp::ResolveType {
            twin_uuid,
            alert_type,
        } => for_each_active(backend, twin_uuid, alert_type, |uuid, _| {
            backend.resolve_alert(uuid)
        }),
        AlertOp::Transition {
            uuid,
            phase,
            extra,
            resolve,
        } => {
            let alert = match backend.alert(uuid) {
                Ok(a) => a,
                Err(BackendError::NotFound { .. }) => return Ok(()),
                Err(e) => return Err(e),
            };
            let mut patch = json!({"metadata": {"phase": phase}});
            if let (Some(Value::Object(m)), Value::Object(x)) = (patch.get_mut("metadata"), extra) {
                m.extend(x.clone());
            }
            let base = json!({"metadata": alert.get("metadata").cloned().unwrap_or(json!({}))});
            match backend.update_alert(uuid, &merge_patch(&base, &patch)) {
                Ok(()) | Err(BackendError::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
            if *resolve {
                match backend.resolve_alert(uuid) {
                    Ok(()) | Err(BackendError::NotFound { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(())
        }
        AlertOp::UpdateType {
            twin_uuid,
            alert_type,
            patch,
        } => for_each_active(backend, twin_uuid, alert_type, |uuid, a| {
            let base = json!({"metadata": a.get("metadata").cloned().unwrap_or(json!({}))});
            backend.update_alert(uuid, &merge_patch(&base, patch))
        }),
    }
}

/// What `status` shows of the alert outbox.
#[derive(Debug, Default)]
pub struct AlertStats {
    pub pending: std::sync::atomic::AtomicU64,
    pub delivered: std::sync::atomic::AtomicU64,
    /// Refused by the backend for good (400, 404, 422).
    pub dropped: std::sync::atomic::AtomicU64,
}

/// How the outbox treats a failed delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Keep it and try again after the outbox's backoff, or longer when the backend asked for
    /// longer (`Retry-After`) (offline, 5xx, 408/425/429, another 4xx).
    After(Option<Duration>),
    /// Keep it until the token is reloaded (401/403; retried slowly in case it was transient).
    Token,
    /// Drop it: the backend refuses it for good (400, 404, 422).
    Drop,
    /// The backend took it (2xx) but answered oddly: done, never sent twice.
    Accepted,
}

/// The decision for a failed delivery.
pub fn on_failure(e: &BackendError) -> Retry {
    if let BackendError::BadResponse {
        status: 200..=299, ..
    } = e
    {
        Retry::Accepted
    } else if e.is_rejected() {
        Retry::Drop
    } else if e.is_unauthorized() {
        Retry::Token
    } else {
        Retry::After(e.retry_after())
    }
}

/// The `alerts` thread: delivers the outbox in order, retrying with backoff while offline or
/// throttled, keeping alerts through a rejected token; counts into `stats`. The outbox is
/// locked only to read its head and to remove it, never across a request.
pub fn run(outbox: SharedOutbox, mut backend: Backend, rx: Receiver<AlertMsg>, stats: &AlertStats) {
    use std::sync::atomic::Ordering::Relaxed;
    let mut backoff = Backoff::new(Duration::from_secs(2), Duration::from_secs(60));
    let mut wait: Option<Duration> = if lock(&outbox).pending().is_empty() {
        None
    } else {
        Some(Duration::ZERO)
    };
    loop {
        let msg = match wait {
            None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
            Some(d) => rx.recv_timeout(d),
        };
        let mut take = |m: AlertMsg| match m {
            AlertMsg::Op(op) => lock(&outbox).push(op),
            AlertMsg::Wake => {}
            AlertMsg::Backend(b) => {
                backend = *b;
                backoff.reset();
            }
        };
        match msg {
            Ok(m) => {
                take(m);
                // drain whatever else is queued before talking to the backend
                while let Ok(m) = rx.try_recv() {
                    take(m);
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        let next = deliver_pending(&outbox, &backend, &mut backoff, stats);
        let left = lock(&outbox).pending().len();
        stats.pending.store(left as u64, Relaxed);
        wait = if left == 0 {
            None
        } else {
            next.or_else(|| Some(backoff.next_delay()))
        };
    }
}

/// Delivers from the head until the outbox is empty or a delivery is kept; returns how long
/// the kept one waits.
fn deliver_pending(
    outbox: &SharedOutbox,
    backend: &Backend,
    backoff: &mut Backoff,
    stats: &AlertStats,
) -> Option<Duration> {
    use std::sync::atomic::Ordering::Relaxed;
    loop {
        let op = lock(outbox).pending().first().cloned()?;
        match deliver(backend, &op) {
            Ok(()) => {
                lock(outbox).pop_delivered(&op);
                stats.delivered.fetch_add(1, Relaxed);
                backoff.reset();
            }
            Err(e) => match on_failure(&e) {
                Retry::Accepted => {
                    log::warn!("alert delivered, odd answer: {e}");
                    lock(outbox).pop_delivered(&op);
                    stats.delivered.fetch_add(1, Relaxed);
                }
                Retry::Drop => {
                    log::error!("alert dropped: {e}");
                    lock(outbox).pop_delivered(&op);
                    stats.dropped.fetch_add(1, Relaxed);
                }
                // A rejected token is fixed by `cyberwave login` and SIGHUP: keep it.
                Retry::Token => {
                    log::warn!("alert kept until the token is renewed: {e}");
                    return Some(backoff.next_delay());
                }
                Retry::After(asked) => {
                    log::debug!("alert delivery deferred: {e}");
                    let d = backoff.next_delay();
                    return Some(asked.map_or(d, |a| a.max(d)));
                }
            },
        }
    }
}
