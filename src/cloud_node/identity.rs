//! Who this node is: `instance_identity.json` in the config dir (the CLI's `compute status`
//! reads its `uuid` and `slug`), and registration with the backend (reference §2.7).

use std::path::Path;

use serde_json::{Value, json};

use super::config::NodeSettings;
use crate::backend::{Backend, BackendError};

#[derive(Debug, Clone, PartialEq)]
pub struct Identity {
    pub uuid: String,
    pub slug: String,
}

pub const IDENTITY_FILE: &str = "instance_identity.json";

pub fn load(dir: &Path) -> Option<Identity> {
    let text = crate::fsutil::read_regular_text(&dir.join(IDENTITY_FILE), 64 * 1024).ok()?;
    let v: Value = serde_json::from_str(&text).ok()?;
    Some(Identity {
        uuid: crate::config::parse_uuid(v.get("uuid")?.as_str()?)?,
        slug: v
            .get("slug")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
    })
}

pub fn save(dir: &Path, id: &Identity) {
    let _ = crate::fsutil::ensure_dir(dir, 0o700);
    if let Err(e) = crate::fsutil::write_json_atomic(
        &dir.join(IDENTITY_FILE),
        &json!({"uuid": id.uuid, "slug": id.slug}),
        0o600,
    ) {
        log::error!("cannot write {}: {e}", dir.join(IDENTITY_FILE).display());
    }
}

/// Registers (creating the instance when this host has none yet) and returns the identity.
pub fn register(
    b: &Backend,
    s: &NodeSettings,
    known: Option<Identity>,
) -> Result<Identity, BackendError> {
    let id = match known {
        Some(id) => id,
        None => {
            let mut body = json!({"profile_slug": s.profile_slug, "provider": "self-hosted"});
            if let Some(slug) = &s.slug_hint {
                body["slug"] = json!(slug);
            }
            if let Some(ws) = &s.workspace_uuid {
                body["workspace_uuid"] = json!(ws);
            }
            if let Some(e) = &s.environment_uuid {
                body["environment_uuid"] = json!(e);
            }
            let created = b.post_json("/api/v1/cloud-node", &body)?;
            let uuid = created
                .get("uuid")
                .and_then(Value::as_str)
                .and_then(crate::config::parse_uuid)
                .ok_or_else(|| BackendError::BadResponse {
                    endpoint: "POST /api/v1/cloud-node".into(),
                    status: 200,
                    detail: "no uuid in the answer".into(),
                    snippet: created.to_string().chars().take(200).collect(),
                })?;
            Identity {
                uuid,
                slug: slug_of(&created).unwrap_or_default(),
            }
        }
    };
    let mut body = json!({"profile_slug": s.profile_slug});
    if let Some(e) = &s.environment_uuid {
        body["environment_uuid"] = json!(e);
    }
    let r = b.post_json(&format!("/api/v1/cloud-node/{}/register", id.uuid), &body)?;
    Ok(Identity {
        uuid: r
            .get("uuid")
            .and_then(Value::as_str)
            .and_then(crate::config::parse_uuid)
            .unwrap_or(id.uuid),
        slug: slug_of(&r).unwrap_or(id.slug),
    })
}

/// A usable slug from a backend answer: it becomes an MQTT topic level, so no wildcards,
/// separators or control characters, and a sane length.
fn slug_of(v: &Value) -> Option<String> {
    v.get("slug")
        .and_then(Value::as_str)
        .filter(|s| {
            !s.is_empty()
                && s.len() <= 128
                && !s
                    .chars()
                    .any(|c| matches!(c, '/' | '+' | '#') || c.is_control())
        })
        .map(str::to_string)
}

/// The body of `…/terminated` and `…/failed`: who we are, and the workspace when known.
pub fn notice_body(s: &NodeSettings, id: &Identity) -> Value {
    let mut body = json!({"slug": id.slug, "instance_uuid": id.uuid});
    if let Some(ws) = &s.workspace_slug {
        body["workspace_slug"] = json!(ws);
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_that_would_break_topics_are_refused() {
        assert_eq!(slug_of(&json!({"slug": "gpu-1"})).as_deref(), Some("gpu-1"));
        for bad in ["", "a/b", "a+", "#", "a\nb"] {
            assert_eq!(slug_of(&json!({ "slug": bad })), None, "{bad:?}");
        }
        assert_eq!(slug_of(&json!({"slug": 5})), None);
    }
}
