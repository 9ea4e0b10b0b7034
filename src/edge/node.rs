//! The node state the fleet sees without asking the backend (seeds 002/003): ONLINE, DEGRADED
//! (with the reason), SYNCING (a restart or twin changes in flight), OFFLINE (our last will,
//! or a clean stop). Published retained on `{prefix}edges/{edge_uuid}/status`. Pure decision.

use serde_json::{Value, json};

/// What the decision reads.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NodeInputs {
    pub restarting: bool,
    pub twins_pending: usize,
    pub token_rejected: bool,
    pub backend_unreachable: bool,
    pub drivers_down: usize,
    pub worker_down: bool,
}

/// `(state, reason)`: SYNCING before DEGRADED before ONLINE.
pub fn assess(i: &NodeInputs) -> (&'static str, Option<String>) {
    if i.restarting {
        return ("SYNCING", Some("remote restart in progress".into()));
    }
    if i.twins_pending > 0 {
        return (
            "SYNCING",
            Some(format!(
                "{} twin file change(s) waiting for the backend",
                i.twins_pending
            )),
        );
    }
    let mut why = Vec::new();
    if i.token_rejected {
        why.push("token rejected by the backend".to_string());
    } else if i.backend_unreachable {
        why.push("backend unreachable".to_string());
    }
    if i.drivers_down > 0 {
        why.push(format!("{} driver(s) not running", i.drivers_down));
    }
    if i.worker_down {
        why.push("ML worker not running".to_string());
    }
    if why.is_empty() {
        ("ONLINE", None)
    } else {
        ("DEGRADED", Some(why.join("; ")))
    }
}

/// The retained payload.
pub fn payload(state: &str, reason: Option<&str>, edge_uuid: &str, fingerprint: &str) -> Value {
    json!({"state": state, "reason": reason, "edge_uuid": edge_uuid, "fingerprint": fingerprint,
           "version": crate::VERSION, "timestamp": crate::epoch_seconds()})
}

pub fn topic(prefix: &str, edge_uuid: &str) -> String {
    format!("{prefix}edges/{edge_uuid}/status")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_rules() {
        let ok = NodeInputs::default();
        assert_eq!(assess(&ok), ("ONLINE", None));
        let cases = [
            (
                NodeInputs {
                    restarting: true,
                    drivers_down: 2,
                    ..ok.clone()
                },
                "SYNCING",
                "remote restart",
            ),
            (
                NodeInputs {
                    twins_pending: 1,
                    ..ok.clone()
                },
                "SYNCING",
                "1 twin file change",
            ),
            (
                NodeInputs {
                    backend_unreachable: true,
                    ..ok.clone()
                },
                "DEGRADED",
                "backend unreachable",
            ),
            (
                NodeInputs {
                    token_rejected: true,
                    backend_unreachable: true,
                    ..ok.clone()
                },
                "DEGRADED",
                "token rejected",
            ),
            (
                NodeInputs {
                    drivers_down: 2,
                    worker_down: true,
                    ..ok.clone()
                },
                "DEGRADED",
                "2 driver(s) not running; ML worker",
            ),
        ];
        for (i, state, reason) in cases {
            let (s, r) = assess(&i);
            assert_eq!(s, state, "{i:?}");
            assert!(r.unwrap().contains(reason), "{i:?}");
        }
    }
}
