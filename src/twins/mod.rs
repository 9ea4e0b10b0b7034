//! The twin model, parsed once: a [`Twin`] as the backend (or a local manifest) describes
//! it — its uuid validated before it becomes a file, topic or container name, its name, asset
//! and the twin it is attached to, and the object as given (the twin file's content); which
//! twins belong to this edge ([`linkage`]); and the twin files in the config dir ([`file`]).
//! Roles and the daemon read these instead of digging in raw JSON.

pub mod file;
pub mod linkage;

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
    /// The object as the backend gave it (metadata included): what the twin file holds and
    /// the offline cache keeps.
    pub raw: Value,
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
            attach_parent: attach_parent_of(v),
            uuid,
            raw: v.clone(),
        })
    }

    /// Every twin of a list that has a valid uuid, in order, and how many had none.
    pub fn parse_all(list: &[Value]) -> (Vec<Twin>, usize) {
        let twins: Vec<Twin> = list.iter().filter_map(Twin::parse).collect();
        let ignored = list.len() - twins.len();
        (twins, ignored)
    }

    /// `metadata` (`Null` when the twin has none).
    pub fn metadata(&self) -> &Value {
        self.raw.get("metadata").unwrap_or(&Value::Null)
    }

    /// New metadata pulled from the backend (the attach parent may live in it).
    pub fn set_metadata(&mut self, metadata: Value) {
        if let Value::Object(m) = &mut self.raw {
            m.insert("metadata".into(), metadata);
        }
        self.attach_parent = attach_parent_of(&self.raw);
    }
}

fn attach_parent_of(v: &Value) -> Option<String> {
    v.get("attach_to_twin_uuid")
        .or_else(|| v.pointer("/metadata/attach_to_twin_uuid"))
        .and_then(Value::as_str)
        .and_then(parse_uuid)
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
        let (all, ignored) = Twin::parse_all(&[
            json!({"uuid": "AAAAAAAA-0000-4000-8000-000000000001"}),
            json!({"uuid": "../../etc"}),
        ]);
        assert_eq!((all.len(), ignored), (1, 1));
    }

    #[test]
    fn pulled_metadata_replaces_the_old_and_may_attach_it() {
        let mut t = Twin::parse(
            &json!({"uuid": "aaaaaaaa-0000-4000-8000-000000000001", "name": "arm",
                                        "metadata": {"edge_fingerprint": "fp"}}),
        )
        .unwrap();
        assert_eq!(t.metadata()["edge_fingerprint"], "fp");
        t.set_metadata(json!({"attach_to_twin_uuid": "cccccccc-0000-4000-8000-000000000003"}));
        assert_eq!(t.metadata().get("edge_fingerprint"), None);
        assert_eq!(t.raw["name"], "arm");
        assert_eq!(
            t.attach_parent.as_deref(),
            Some("cccccccc-0000-4000-8000-000000000003")
        );
    }
}
