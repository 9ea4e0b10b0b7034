//! Commands on `{prefix}edges/{edge_uuid}/command` (reference §3.5): parsing and dedupe.

use std::collections::{HashSet, VecDeque};

use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
pub enum EdgeCommand {
    RestartEdgeCore {
        request_id: Option<String>,
        alert_uuid: Option<String>,
    },
    OpenTunnel {
        session_id: String,
    },
    CloseTunnel {
        session_id: String,
    },
    /// A well-formed command this edge does not know; ignored (as the original does).
    Unknown {
        command: String,
        request_id: Option<String>,
    },
}

impl EdgeCommand {
    pub fn name(&self) -> &str {
        match self {
            EdgeCommand::RestartEdgeCore { .. } => "restart_edge_core",
            EdgeCommand::OpenTunnel { .. } => "open_tunnel",
            EdgeCommand::CloseTunnel { .. } => "close_tunnel",
            EdgeCommand::Unknown { command, .. } => command,
        }
    }
}

fn str_field(m: &serde_json::Map<String, Value>, key: &str) -> Option<String> {
    m.get(key)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// Parses one payload. Errors say what is wrong, for a warning naming the topic.
/// Longest command name kept (logs, `status`); real ones are under 30 characters.
const MAX_NAME: usize = 128;
/// Longest request id kept as sent; a longer one is kept as a prefix and its digest, so the
/// duplicate check still tells two long ids apart.
const MAX_ID: usize = 128;

pub(super) fn bounded_id(id: &str) -> String {
    if id.len() <= MAX_ID {
        return id.to_string();
    }
    let prefix: String = id.chars().take(64).collect();
    format!(
        "{prefix}…sha256:{}",
        &crate::sha256_hex(id.as_bytes())[..32]
    )
}

pub fn parse(payload: &[u8]) -> Result<(EdgeCommand, Option<String>), String> {
    let v: Value = serde_json::from_slice(payload).map_err(|e| format!("not JSON: {e}"))?;
    let Value::Object(m) = v else {
        return Err("payload is not a JSON object".into());
    };
    let command = match m.get("command") {
        Some(Value::String(s)) => crate::clip(s.trim(), MAX_NAME).to_lowercase(),
        Some(other) => crate::clip(&other.to_string(), MAX_NAME)
            .trim_matches('"')
            .trim()
            .to_lowercase(),
        None => return Err("no \"command\" field".into()),
    };
    let request_id = str_field(&m, "request_id").map(|id| bounded_id(&id));
    let session = || {
        let raw =
            str_field(&m, "session_id").ok_or_else(|| format!("{command}: no \"session_id\""))?;
        crate::config::parse_uuid(&raw).ok_or_else(|| {
            format!(
                "{command}: session_id {:?} is not a UUID",
                crate::clip(&raw, 80)
            )
        })
    };
    let cmd = match command.as_str() {
        "restart_edge_core" => EdgeCommand::RestartEdgeCore {
            request_id: request_id.clone(),
            // It goes into a REST path: only a UUID (anything else restarts without a card).
            alert_uuid: str_field(&m, "alert_uuid").and_then(|a| {
                let u = crate::config::parse_uuid(&a);
                if u.is_none() {
                    log::warn!(
                        "restart_edge_core: alert_uuid {:?} is not a UUID; ignored",
                        a.chars().take(80).collect::<String>()
                    );
                }
                u
            }),
        },
        "open_tunnel" => EdgeCommand::OpenTunnel {
            session_id: session()?,
        },
        "close_tunnel" => EdgeCommand::CloseTunnel {
            session_id: session()?,
        },
        _ => EdgeCommand::Unknown {
            command,
            request_id: request_id.clone(),
        },
    };
    Ok((cmd, request_id))
}

/// FIFO of the last N request ids: a redelivered command runs once.
pub struct Dedupe {
    order: VecDeque<String>,
    seen: HashSet<String>,
    capacity: usize,
}

impl Dedupe {
    pub fn new(capacity: usize) -> Self {
        Dedupe {
            order: VecDeque::new(),
            seen: HashSet::new(),
            capacity,
        }
    }

    /// True the first time an id is seen (and records it).
    pub fn first_time(&mut self, id: &str) -> bool {
        if self.seen.contains(id) {
            return false;
        }
        if self.order.len() >= self.capacity
            && let Some(old) = self.order.pop_front()
        {
            self.seen.remove(&old);
        }
        self.order.push_back(id.to_string());
        self.seen.insert(id.to_string());
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_names_and_ids_are_bounded() {
        let huge = "x".repeat(30 << 20);
        let payload = serde_json::json!({"command": huge, "request_id": huge}).to_string();
        let (cmd, id) = parse(payload.as_bytes()).unwrap();
        assert!(cmd.name().len() < 200, "{}", cmd.name().len());
        assert!(cmd.name().ends_with(&format!("({} bytes)", 30 << 20)));
        let id = id.unwrap();
        assert!(id.len() < 200);
        // two long ids with the same prefix stay apart
        let other = format!("{}y", &huge[..1000]);
        let p2 = serde_json::json!({"command": "x", "request_id": other}).to_string();
        assert_ne!(parse(p2.as_bytes()).unwrap().1.unwrap(), id);
        assert_eq!(bounded_id("r1"), "r1");
        assert_eq!(crate::clip("héllo", 2), "hé…(6 bytes)");
        assert_eq!(crate::clip("héllo", 5), "héllo");
    }

    #[test]
    fn parses_known_and_unknown() {
        let (c, id) = parse(
            br#"{"command":" Restart_Edge_Core ","request_id":"r1","alert_uuid":"A1E70000-0000-4000-8000-000000000001"}"#,
        )
        .unwrap();
        assert_eq!(id.as_deref(), Some("r1"));
        assert_eq!(
            c,
            EdgeCommand::RestartEdgeCore {
                request_id: Some("r1".into()),
                alert_uuid: Some("a1e70000-0000-4000-8000-000000000001".into())
            }
        );
        // An alert id that is not a UUID never reaches a REST path.
        let (c, _) =
            parse(br#"{"command":"restart_edge_core","alert_uuid":"../../edges/x"}"#).unwrap();
        assert_eq!(
            c,
            EdgeCommand::RestartEdgeCore {
                request_id: None,
                alert_uuid: None
            }
        );
        let (c, _) = parse(br#"{"command":"dance"}"#).unwrap();
        assert_eq!(c.name(), "dance");
        assert!(
            parse(br#"{"command":"open_tunnel","session_id":"nope"}"#)
                .unwrap_err()
                .contains("not a UUID")
        );
        assert!(parse(b"[1,2]").unwrap_err().contains("not a JSON object"));
        assert!(parse(b"{").unwrap_err().contains("not JSON"));
        assert!(parse(b"{}").unwrap_err().contains("no \"command\""));
    }

    #[test]
    fn dedupe_is_bounded_fifo() {
        let mut d = Dedupe::new(2);
        assert!(d.first_time("a"));
        assert!(!d.first_time("a"));
        assert!(d.first_time("b"));
        assert!(d.first_time("c")); // evicts a
        assert!(d.first_time("a"));
        assert!(!d.first_time("c"));
    }
}
