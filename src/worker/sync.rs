//! Workflow files from the cloud (reference §6.6, §3.8): `GET /api/v1/workflows/edge-sync/{twin}`
//! lists `workflows[].{worker_filename, worker_source}` per twin; the files land in
//! `workers/` as `wf_<hex>.py` (0644, atomic), identical content is left untouched, and a file
//! no twin lists any more is deleted on its second consecutive clean miss, only when every twin
//! answered. Done better: the strikes survive a daemon restart (the original kept them in
//! memory), and every name is checked against `^wf_[a-f0-9]{1,32}\.py$` before it becomes a
//! path, so nothing outside `workers/` is ever written or removed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::Value;

/// Where the strikes are kept, in the config dir.
pub const STRIKES_FILE: &str = "worker-sync-strikes.json";
/// Largest workflow file we read or write.
pub const MAX_SOURCE_BYTES: usize = 4 << 20;

/// `^wf_[a-f0-9]{1,32}\.py$`.
pub fn valid_filename(name: &str) -> bool {
    name.strip_prefix("wf_")
        .and_then(|n| n.strip_suffix(".py"))
        .is_some_and(|hex| {
            (1..=32).contains(&hex.len())
                && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        })
}

/// What the edge-sync answers of all twins ask for.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Expected {
    /// file name → source.
    pub files: BTreeMap<String, String>,
    /// Names (or descriptions) refused: not `wf_<hex>.py`, or too large.
    pub refused: Vec<String>,
    /// The backend's `skipped_workflows[]`, as `name: reason`.
    pub skipped: Vec<String>,
}

impl Expected {
    /// Adds one twin's edge-sync answer.
    pub fn add(&mut self, payload: &Value) {
        for w in payload["workflows"].as_array().into_iter().flatten() {
            let name = w["worker_filename"].as_str().unwrap_or("");
            let source = w["worker_source"].as_str().unwrap_or("");
            if !name.starts_with("wf_") || source.is_empty() {
                continue; // not a generated worker (the original's rule)
            }
            if !valid_filename(name) || source.len() > MAX_SOURCE_BYTES {
                self.refused.push(name.chars().take(80).collect());
                continue;
            }
            self.files.insert(name.to_string(), source.to_string());
        }
        for s in payload["skipped_workflows"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let name = s["workflow_name"]
                .as_str()
                .or_else(|| s["workflow_uuid"].as_str())
                .unwrap_or("?");
            let reason = s["reason"].as_str().unwrap_or("");
            self.skipped.push(format!("{name}: {reason}"));
        }
    }
}

/// What a sync does, decided without touching the disk.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Plan {
    pub write: Vec<String>,
    pub unchanged: Vec<String>,
    /// Missing from every answer for the first time: kept, struck.
    pub first_strike: Vec<String>,
    /// Missing for the second time in a row: deleted.
    pub delete: Vec<String>,
    /// The strikes after this sync.
    pub strikes: BTreeSet<String>,
}

/// The sync decision: `existing` are the `wf_*.py` files in `workers/` with their content;
/// deletion only when `all_answered` (every twin's edge-sync succeeded).
pub fn plan(
    expected: &BTreeMap<String, String>,
    existing: &BTreeMap<String, String>,
    strikes: &BTreeSet<String>,
    all_answered: bool,
) -> Plan {
    let mut p = Plan::default();
    for (name, source) in expected {
        if existing.get(name) == Some(source) {
            p.unchanged.push(name.clone());
        } else {
            p.write.push(name.clone());
        }
    }
    for name in existing.keys().filter(|n| !expected.contains_key(*n)) {
        if !all_answered {
            if strikes.contains(name) {
                p.strikes.insert(name.clone());
            }
        } else if strikes.contains(name) {
            p.delete.push(name.clone());
        } else {
            p.first_strike.push(name.clone());
            p.strikes.insert(name.clone());
        }
    }
    p
}

/// The `wf_*.py` files in `dir` (valid names only) with their content.
pub fn existing(dir: &Path) -> BTreeMap<String, String> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            if !valid_filename(&name) {
                return None;
            }
            // Never through a symlink (root reads it; a link is replaced by the next write).
            let bytes =
                crate::fsutil::read_regular_nofollow(&e.path(), MAX_SOURCE_BYTES as u64).ok()?;
            Some((name, String::from_utf8(bytes).ok()?))
        })
        .collect()
}

/// The strikes kept across restarts (missing or unreadable → none).
pub fn load_strikes(config_dir: &Path) -> BTreeSet<String> {
    crate::fsutil::read_regular_text(&config_dir.join(STRIKES_FILE), 1 << 20)
        .ok()
        .and_then(|t| serde_json::from_str::<Vec<String>>(&t).ok())
        .map(|v| v.into_iter().filter(|n| valid_filename(n)).collect())
        .unwrap_or_default()
}

pub fn save_strikes(config_dir: &Path, strikes: &BTreeSet<String>) -> std::io::Result<()> {
    let v = serde_json::json!(strikes.iter().collect::<Vec<_>>());
    crate::fsutil::write_json_atomic(&config_dir.join(STRIKES_FILE), &v, 0o600)
}

/// Carries a plan out in `workers_dir`: writes (0644, atomic), deletes. Returns whether any
/// file changed (the worker then reloads).
pub fn apply(
    workers_dir: &Path,
    expected: &BTreeMap<String, String>,
    p: &Plan,
) -> std::io::Result<bool> {
    crate::fsutil::ensure_dir(workers_dir, 0o755)?;
    for name in &p.write {
        if let Some(source) = expected.get(name) {
            crate::fsutil::write_atomic(&workers_dir.join(name), source.as_bytes(), 0o644)?;
        }
    }
    for name in &p.delete {
        match std::fs::remove_file(workers_dir.join(name)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(!p.write.is_empty() || !p.delete.is_empty())
}

/// `remove_workflow_worker`: deletes the listed files (valid names only; missing is fine) and
/// clears their strikes. Returns (removed paths, refused names).
pub fn remove(
    workers_dir: &Path,
    names: &Value,
    strikes: &mut BTreeSet<String>,
) -> (Vec<PathBuf>, Vec<String>) {
    let mut removed = Vec::new();
    let mut refused = Vec::new();
    for n in names.as_array().into_iter().flatten() {
        match n.as_str().filter(|n| valid_filename(n)) {
            Some(name) => {
                strikes.remove(name);
                let path = workers_dir.join(name);
                if std::fs::remove_file(&path).is_ok() {
                    removed.push(path);
                }
            }
            None => refused.push(n.to_string().chars().take(80).collect()),
        }
    }
    if !names.is_array() {
        refused.push(format!("worker_filenames is not a list: {names}"));
    }
    (removed, refused)
}

#[cfg(test)]
mod tests;
