//! Cloud-node MQTT messages (seed 001): commands in, replies out. Pure.

use serde_json::{Map, Value, json};

pub fn command_topic(prefix: &str, id: &str) -> String {
    format!("{prefix}cyberwave/cloud-node/{id}/command")
}

pub fn response_topic(prefix: &str, uuid: &str) -> String {
    format!("{prefix}cyberwave/cloud-node/{uuid}/response")
}

pub fn status_topic(prefix: &str, uuid: &str) -> String {
    format!("{prefix}cyberwave/cloud-node/{uuid}/status")
}

/// Longest request id we accept: ids are remembered (across restarts) to refuse repeats.
pub const MAX_REQUEST_ID: usize = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Function {
    Inference,
    Training,
}

impl Function {
    pub fn name(self) -> &'static str {
        match self {
            Function::Inference => "inference",
            Function::Training => "training",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Run {
        function: Function,
        request_id: String,
        params: Value,
    },
    Status {
        request_id: String,
    },
}

/// A command that cannot run, answered with an error reply (`request_id` when known).
#[derive(Debug, Clone, PartialEq)]
pub struct Rejected {
    pub request_id: Option<String>,
    pub error: String,
}

pub fn parse(payload: &[u8]) -> Result<Command, Rejected> {
    let reject = |request_id: Option<String>, error: String| Rejected { request_id, error };
    let v: Value = serde_json::from_slice(payload)
        .map_err(|e| reject(None, format!("malformed JSON: {e}")))?;
    let Value::Object(m) = v else {
        return Err(reject(None, "the command must be a JSON object".into()));
    };
    let request_id =
        checked_id(m.get("request_id").unwrap_or(&Value::Null)).map_err(|e| reject(None, e))?;
    let command = m
        .get("command")
        .and_then(Value::as_str)
        .map(|c| c.trim().to_lowercase())
        .unwrap_or_default();
    let params = m
        .get("params")
        .cloned()
        .unwrap_or(Value::Object(Map::new()));
    match command.as_str() {
        "inference" => Ok(Command::Run {
            function: Function::Inference,
            request_id,
            params,
        }),
        "training" => Ok(Command::Run {
            function: Function::Training,
            request_id,
            params,
        }),
        "status" => Ok(Command::Status { request_id }),
        "" => Err(reject(Some(request_id), "missing command".into())),
        other => Err(reject(
            Some(request_id),
            format!("unknown command {other:?} (expected inference, training or status)"),
        )),
    }
}

/// The request id of a command too large to handle, read without keeping the rest: the
/// params are skipped by the parser, never stored.
pub fn request_id_only(payload: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct IdOnly {
        request_id: Option<Value>,
    }
    let id = serde_json::from_slice::<IdOnly>(payload).ok()?.request_id?;
    checked_id(&id).ok()
}

/// A request id as a string: a non-blank string or a number, at most [`MAX_REQUEST_ID`]
/// characters, no control characters (it reaches logs and the command's environment).
fn checked_id(v: &Value) -> Result<String, String> {
    let id = match v {
        Value::String(s) if !s.trim().is_empty() => s.trim().to_string(),
        Value::Number(n) => n.to_string(),
        _ => return Err("missing request_id".into()),
    };
    if id.chars().count() > MAX_REQUEST_ID {
        return Err(format!(
            "request_id is {} characters long; the limit is {MAX_REQUEST_ID}",
            id.chars().count()
        ));
    }
    if id.chars().any(char::is_control) {
        return Err("request_id contains control characters".into());
    }
    Ok(id)
}

/// Identity fields every reply carries.
pub struct Who<'a> {
    pub slug: &'a str,
    pub instance_uuid: &'a str,
}

pub fn reply_ok(who: &Who, request_id: &str, output: Value, extra: Map<String, Value>) -> Value {
    let mut m = Map::new();
    m.insert("status".into(), json!("ok"));
    m.insert("request_id".into(), json!(request_id));
    m.insert("slug".into(), json!(who.slug));
    m.insert("instance_uuid".into(), json!(who.instance_uuid));
    m.insert("output".into(), output);
    m.extend(extra);
    Value::Object(m)
}

pub fn reply_error(
    who: &Who,
    request_id: Option<&str>,
    error: &str,
    extra: Map<String, Value>,
) -> Value {
    let mut m = Map::new();
    m.insert("status".into(), json!("error"));
    m.insert("request_id".into(), json!(request_id));
    m.insert("slug".into(), json!(who.slug));
    m.insert("instance_uuid".into(), json!(who.instance_uuid));
    m.insert("error".into(), json!(error));
    m.extend(extra);
    Value::Object(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsing() {
        assert_eq!(
            parse(br#"{"command":"Inference","request_id":"r1","params":{"a":1}}"#).unwrap(),
            Command::Run {
                function: Function::Inference,
                request_id: "r1".into(),
                params: json!({"a":1})
            }
        );
        assert_eq!(
            parse(br#"{"command":"status","request_id":7}"#).unwrap(),
            Command::Status {
                request_id: "7".into()
            }
        );
        assert_eq!(parse(b"nope").unwrap_err().request_id, None);
        assert_eq!(
            parse(br#"{"command":"inference"}"#).unwrap_err().error,
            "missing request_id"
        );
        let e = parse(br#"{"command":"dance","request_id":"r"}"#).unwrap_err();
        assert_eq!(e.request_id.as_deref(), Some("r"));
        assert!(e.error.contains("unknown command"));
    }

    /// No input makes the parser panic (a quick run; `scripts/fuzz` runs millions).
    #[test]
    fn arbitrary_bytes_never_panic() {
        let mut rng = crate::cloud_node::fuzz::Rng::new(11);
        for _ in 0..20_000 {
            let b = rng.command_like(48);
            assert_eq!(parse(&b), parse(&b));
            let _ = request_id_only(&b);
        }
    }

    #[test]
    fn request_ids_are_bounded() {
        let long = "x".repeat(MAX_REQUEST_ID + 1);
        let e = parse(
            json!({"command": "status", "request_id": long})
                .to_string()
                .as_bytes(),
        )
        .unwrap_err();
        assert!(
            e.error.contains("the limit is 256") && e.request_id.is_none(),
            "{e:?}"
        );
        let e = parse(br#"{"command":"status","request_id":"a\u0000b"}"#).unwrap_err();
        assert!(e.error.contains("control characters"), "{e:?}");
        assert_eq!(
            request_id_only(br#"{"params":{"big":"xxxxxxxx"},"request_id":"r9"}"#).as_deref(),
            Some("r9")
        );
        assert_eq!(request_id_only(b"{not json"), None);
    }

    #[test]
    fn replies() {
        let who = Who {
            slug: "s",
            instance_uuid: "u",
        };
        let ok = reply_ok(&who, "r", json!("out"), Map::new());
        assert_eq!(
            ok,
            json!({"status":"ok","request_id":"r","slug":"s","instance_uuid":"u","output":"out"})
        );
        let err = reply_error(&who, None, "bad", Map::new());
        assert_eq!(err["request_id"], Value::Null);
        assert_eq!(err["error"], json!("bad"));
        assert_eq!(
            command_topic("dev", "x"),
            "devcyberwave/cloud-node/x/command"
        );
    }
}
