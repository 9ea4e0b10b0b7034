use super::*;
use crate::backend::BackendError;
use std::time::Duration;

#[test]
fn a_type_is_resolved_once_until_it_is_raised_again() {
    let (tx, rx) = crossbeam_channel::unbounded();
    let sink = AlertSink::new(Some(tx), None, None);
    let resolves = || {
        rx.try_iter()
            .filter(|m| matches!(m, AlertMsg::Op(AlertOp::ResolveType { .. })))
            .count()
    };
    sink.resolve("t", "driver_start_failure");
    sink.clone().resolve("t", "driver_start_failure");
    sink.resolve("t", "sensor_device_missing");
    assert_eq!(resolves(), 2);
    sink.raise(
        "k",
        Alert {
            alert_type: "driver_start_failure",
            name: "n",
            description: "d",
            severity: "error",
            twin_uuid: "t",
            metadata: None,
        },
    );
    sink.resolve("t", "driver_start_failure");
    sink.resolve("t", "driver_start_failure");
    assert_eq!(resolves(), 1);
}

#[test]
fn failed_deliveries_are_kept_unless_refused_for_good() {
    let e = |status: u16| match status {
        401 | 403 => BackendError::Unauthorized {
            endpoint: "e".into(),
            status,
        },
        404 => BackendError::NotFound {
            endpoint: "e".into(),
        },
        408 | 425 | 429 => BackendError::Throttled {
            endpoint: "e".into(),
            status,
            retry_after: (status == 429).then_some(Duration::from_secs(30)),
        },
        500..=599 => BackendError::Server {
            endpoint: "e".into(),
            status,
            snippet: String::new(),
        },
        _ => BackendError::BadResponse {
            endpoint: "e".into(),
            status,
            detail: String::new(),
            snippet: String::new(),
        },
    };
    let rows = [
        (400, Retry::Drop),
        (404, Retry::Drop),
        (422, Retry::Drop),
        (401, Retry::Token),
        (403, Retry::Token),
        (408, Retry::After(None)),
        (425, Retry::After(None)),
        (429, Retry::After(Some(Duration::from_secs(30)))), // Retry-After honoured
        (409, Retry::After(None)),
        (413, Retry::After(None)),
        (500, Retry::After(None)),
        (503, Retry::After(None)),
        (201, Retry::Accepted), // taken, odd answer: never sent twice
    ];
    for (status, want) in rows {
        assert_eq!(on_failure(&e(status)), want, "HTTP {status}");
    }
    let offline = BackendError::Unreachable {
        endpoint: "e".into(),
        detail: "refused".into(),
    };
    assert_eq!(on_failure(&offline), Retry::After(None));
}

#[test]
fn card_updates_fold_and_merge_metadata() {
    let d = tempfile::tempdir().unwrap();
    let mut o = Outbox::open(d.path());
    let up = |phase: &str, extra: Value| AlertOp::UpdateType {
        twin_uuid: "t".into(),
        alert_type: "worker_starting".into(),
        patch: json!({"metadata": {"phase": phase, "x": extra}}),
    };
    o.push(up("booting", json!(1)));
    o.push(up("ready", json!(2)));
    assert_eq!(o.pending().len(), 1, "folded into the waiting update");
    o.push(AlertOp::ResolveType {
        twin_uuid: "t".into(),
        alert_type: "worker_starting".into(),
    });
    o.push(up("booting", json!(3)));
    assert_eq!(o.pending().len(), 3, "never folded across a resolve");
    assert_eq!(Outbox::open(d.path()).pending(), o.pending(), "persisted");
    let merged = merge_patch(
        &json!({"metadata": {"started_at": 1, "phase": "pull_started"}}),
        &json!({"metadata": {"phase": "ready"}, "severity": "critical"}),
    );
    assert_eq!(
        merged,
        json!({"metadata": {"started_at": 1, "phase": "ready"}, "severity": "critical"})
    );
}

#[test]
fn the_daemons_sink_has_persisted_an_alert_when_raise_returns() {
    let d = tempfile::tempdir().unwrap();
    let (tx, rx) = crossbeam_channel::unbounded();
    let outbox = Arc::new(Mutex::new(Outbox::open(d.path())));
    let sink = AlertSink::durable(outbox, tx, Some("e1".into()), None);
    let alert = Alert {
        alert_type: "driver_update_rolled_back",
        name: "n",
        description: "d",
        severity: "error",
        twin_uuid: "t1",
        metadata: None,
    };
    sink.raise("k", alert);
    // nothing has read the channel: a process killed now still has it on disk
    let on_disk = Outbox::open(d.path());
    assert!(matches!(on_disk.pending(), [AlertOp::Create { key, .. }] if key == "k"));
    assert!(matches!(rx.try_recv(), Ok(AlertMsg::Wake)));
}

#[test]
fn a_card_update_folded_into_the_head_in_flight_is_delivered_again() {
    let d = tempfile::tempdir().unwrap();
    let mut o = Outbox::open(d.path());
    let update = |p: f64| AlertOp::UpdateType {
        twin_uuid: "t".into(),
        alert_type: "driver_pull".into(),
        patch: json!({"metadata": {"progress_percent": p}}),
    };
    o.push(update(1.0));
    let in_flight = o.pending()[0].clone();
    o.push(update(2.0)); // folded while the head was being delivered
    o.pop_delivered(&in_flight);
    assert_eq!(o.pending().len(), 1, "the merged update is still owed");
    let head = o.pending()[0].clone();
    o.pop_delivered(&head);
    assert!(Outbox::open(d.path()).pending().is_empty());
}

#[test]
fn outbox_persists_and_dedupes() {
    let d = tempfile::tempdir().unwrap();
    let mut o = Outbox::open(d.path());
    let alert = Alert {
        alert_type: "driver_restart_loop",
        name: "Driver restart loop detected",
        description: "x",
        severity: "error",
        twin_uuid: "t1",
        metadata: None,
    };
    let body = alert_body(&alert, Some("e1"), None);
    o.push(AlertOp::Create {
        key: "k1".into(),
        body: body.clone(),
    });
    o.push(AlertOp::Create {
        key: "k1".into(),
        body: body.clone(),
    });
    o.push(AlertOp::ResolveType {
        twin_uuid: "t1".into(),
        alert_type: "driver_start_failure".into(),
    });
    let again = Outbox::open(d.path());
    assert_eq!(again.pending().len(), 2);
    assert_eq!(
        again.pending()[0],
        AlertOp::Create {
            key: "k1".into(),
            body
        }
    );
    assert_eq!(
        body_field(&again.pending()[0], "source_type"),
        json!("edge")
    );
    assert_eq!(
        body_field(&again.pending()[0], "category"),
        json!("technical")
    );
    assert_eq!(
        body_field(&again.pending()[0], "environment_uuid"),
        json!("e1")
    );
    assert!(
        matches!(&again.pending()[0], AlertOp::Create { body, .. } if body.get("workspace_uuid").is_none())
    );
}

fn body_field(op: &AlertOp, k: &str) -> Value {
    match op {
        AlertOp::Create { body, .. } => body[k].clone(),
        _ => Value::Null,
    }
}
