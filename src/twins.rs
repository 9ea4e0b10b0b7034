//! One typed view of a twin as the backend (or a local manifest) describes it, parsed once:
//! its uuid (validated before it becomes a file or container name), name, asset and the twin
//! it is attached to. Roles read these instead of digging in raw JSON.

use serde_json::Value;

use crate::config::parse_uuid;

#[derive(Debug, Clone, PartialEq)]
pub struct Twin {
    /// Canonical (lower-case, hyphenated) uuid.
    pub uuid: String,
    pub name: String,
    pub asset_uuid: Option<String>,
    /// `attach_to_twin_uuid` (top level, or under `metadata` as older twins have it).
    pub attach_parent: Option<String>,
}

impl Twin {
    /// The typed view of a twin object; `None` when it has no valid uuid.
    pub fn parse(v: &Value) -> Option<Twin> {
        let uuid = v.get("uuid").and_then(Value::as_str).and_then(parse_uuid)?;
        Some(Twin {
            name: v
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or(&uuid)
                .to_string(),
            asset_uuid: asset_uuid_of(v),
            attach_parent: v
                .get("attach_to_twin_uuid")
                .or_else(|| v.pointer("/metadata/attach_to_twin_uuid"))
                .and_then(Value::as_str)
                .and_then(parse_uuid),
            uuid,
        })
    }
}

/// Asset uuid of a twin object (`asset_uuid`, or the older `asset_id`).
pub fn asset_uuid_of(twin: &Value) -> Option<String> {
    twin.get("asset_uuid")
        .or_else(|| twin.get("asset_id"))
        .and_then(Value::as_str)
        .and_then(parse_uuid)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parsed_once_and_validated() {
        let t = Twin::parse(&json!({"uuid": "AAAAAAAA-0000-4000-8000-000000000001", "asset_id": "bbbbbbbb-0000-4000-8000-000000000002",
                                    "metadata": {"attach_to_twin_uuid": "cccccccc-0000-4000-8000-000000000003"}}))
        .unwrap();
        assert_eq!(t.uuid, "aaaaaaaa-0000-4000-8000-000000000001");
        assert_eq!(t.name, t.uuid);
        assert_eq!(
            t.asset_uuid.as_deref(),
            Some("bbbbbbbb-0000-4000-8000-000000000002")
        );
        assert_eq!(
            t.attach_parent.as_deref(),
            Some("cccccccc-0000-4000-8000-000000000003")
        );
        assert_eq!(Twin::parse(&json!({"uuid": "../../etc"})), None);
        assert_eq!(Twin::parse(&json!({"name": "no uuid"})), None);
    }
}
