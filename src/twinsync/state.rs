//! The versioned sync state of every twin file (seeds 002/003), persisted atomically in
//! `twin-sync.json` (0600) so an edit made offline or just before a crash is still pushed once
//! the backend is reachable: per twin the version, the SHA-256 and content last confirmed by
//! both sides (the merge base, and the copy an unreadable file is rebuilt from), whether local
//! changes wait for the backend, and the conflicts the backend won.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub const STATE_FILE: &str = "twin-sync.json";
/// Conflicts kept per twin (the newest).
const MAX_CONFLICTS: usize = 20;
/// A confirmed copy larger than this is not kept for repair (the merge base is its metadata).
const MAX_KEPT: usize = 1 << 20;

/// A key the backend won: the local value that lost, and when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LostEdit {
    pub key: String,
    pub local: Value,
    pub backend: Value,
    pub at: f64,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct TwinSync {
    /// Bumped each time both sides agree on new content.
    pub version: u64,
    /// SHA-256 of the file bytes last confirmed (ours or pushed).
    pub confirmed_sha256: String,
    /// The `metadata` last confirmed: the base of the three-way merge.
    pub confirmed_metadata: Value,
    /// The whole file last confirmed, for rebuilding an unreadable file (dropped when large).
    #[serde(default)]
    pub confirmed: Option<Value>,
    pub confirmed_at: f64,
    /// Local changes wait for the backend.
    pub pending: bool,
    #[serde(default)]
    pub conflicts: Vec<LostEdit>,
    #[serde(default)]
    pub last_error: Option<String>,
    /// mtime (ns) and size of the file when it was last read: unchanged → not read again.
    #[serde(default)]
    pub stamp: Option<(i128, u64)>,
}

impl TwinSync {
    /// Records `content` (with these file bytes' hash) as agreed by both sides.
    pub fn confirm(&mut self, content: &Value, sha256: &str) {
        if self.confirmed_sha256 != sha256 {
            self.version += 1;
        }
        self.confirmed_sha256 = sha256.to_string();
        self.confirmed_metadata = content.get("metadata").cloned().unwrap_or(Value::Null);
        self.confirmed = (content.to_string().len() <= MAX_KEPT).then(|| content.clone());
        self.confirmed_at = now_ms();
        self.pending = false;
        self.last_error = None;
    }

    pub fn lost(&mut self, key: &str, local: &Value, backend: &Value) {
        if self.conflicts.len() >= MAX_CONFLICTS {
            self.conflicts.remove(0);
        }
        self.conflicts.push(LostEdit {
            key: key.to_string(),
            local: local.clone(),
            backend: backend.clone(),
            at: now_ms(),
        });
    }
}

/// Epoch seconds to the millisecond (exact through a JSON round trip).
fn now_ms() -> f64 {
    (crate::epoch_seconds() * 1000.0).round() / 1000.0
}

/// Every twin's record, by twin uuid.
pub type SyncState = BTreeMap<String, TwinSync>;

/// Reads the state; missing or unreadable → empty (the next tick re-baselines).
pub fn load(config_dir: &Path) -> SyncState {
    crate::fsutil::read_regular_text(&config_dir.join(STATE_FILE), 64 << 20)
        .ok()
        .and_then(|t| serde_json::from_str::<Value>(&t).ok())
        .and_then(|v| serde_json::from_value(v.get("twins")?.clone()).ok())
        .unwrap_or_default()
}

pub fn save(config_dir: &Path, state: &SyncState) -> std::io::Result<()> {
    let v = serde_json::json!({"version": 1, "twins": state});
    crate::fsutil::write_json_atomic(&config_dir.join(STATE_FILE), &v, 0o600)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn versions_bump_on_new_content_and_state_roundtrips() {
        let d = tempfile::tempdir().unwrap();
        let mut t = TwinSync::default();
        t.confirm(&json!({"metadata": {"fps": 15}}), "aa");
        t.confirm(&json!({"metadata": {"fps": 15}}), "aa");
        assert_eq!(t.version, 1);
        t.pending = true;
        t.confirm(&json!({"metadata": {"fps": 30}}), "bb");
        assert_eq!((t.version, t.pending), (2, false));
        assert_eq!(t.confirmed_metadata, json!({"fps": 30}));
        for i in 0..25 {
            t.lost("fps", &json!(i), &json!(60));
        }
        assert_eq!(t.conflicts.len(), 20);
        assert_eq!(t.conflicts[0].local, json!(5));
        let state: SyncState = [("u".to_string(), t.clone())].into();
        save(d.path(), &state).unwrap();
        assert_eq!(load(d.path()), state);
        std::fs::write(d.path().join(STATE_FILE), "{broken").unwrap();
        assert!(load(d.path()).is_empty());
    }
}
