//! One twin file's sync step (reference §8.2, done better): our own writes are the new base and
//! never pushed; a local edit is pushed (the allowed fields, metadata three-way merged with the
//! backend's); a backend change is written into the file in place; the same key changed on both
//! sides → the backend wins and the local value is kept in the sync state; a failed push keeps
//! the local edit pending (the original overwrote it with the backend's metadata ⚠); an
//! unreadable file is rebuilt from the last confirmed copy.

use std::path::Path;

use serde_json::Value;

use super::merge::merge;
use super::payload::push_body;
use super::state::TwinSync;
use crate::backend::{Backend, BackendError};
use crate::twins::file as twin_file;

/// The backend side of the sync (the real client; a fake in tests).
pub trait Remote {
    /// The twin as the backend has it; `Ok(None)` when the backend no longer knows it.
    fn fetch(&self, uuid: &str) -> Result<Option<Value>, String>;
    fn push(&self, uuid: &str, body: &Value) -> Result<(), String>;
}

impl Remote for Backend {
    fn fetch(&self, uuid: &str) -> Result<Option<Value>, String> {
        match self.twin(uuid) {
            Ok(t) => Ok(Some(t)),
            Err(BackendError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.to_string()),
        }
    }
    fn push(&self, uuid: &str, body: &Value) -> Result<(), String> {
        self.update_twin(uuid, body).map_err(|e| e.to_string())
    }
}

/// What a step did.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// No file (drivers write it at launch), or the backend does not know the twin.
    Skipped,
    Unchanged,
    /// Local changes sent (and, when `pulled`, backend changes written too).
    Pushed {
        pulled: bool,
    },
    /// Backend changes written into the file.
    Pulled,
    /// Local changes wait: the backend is unreachable or refused them.
    Pending(String),
    /// The file was unreadable and was rebuilt from the last confirmed copy.
    Rebuilt,
}

fn read(path: &Path) -> Option<(Value, String)> {
    let bytes = crate::fsutil::read_regular(path, twin_file::MAX_TWIN_FILE).ok()?;
    let v: Value = serde_json::from_slice(&bytes).ok()?;
    v.is_object().then(|| (v, crate::sha256_hex(&bytes)))
}

/// The merge base of a file seen for the first time: the file's value of every key the
/// backend also has.
fn first_base(local: &Value, backend: &Value) -> Value {
    let (Some(l), Some(b)) = (local.as_object(), backend.as_object()) else {
        return local.clone();
    };
    Value::Object(
        l.iter()
            .filter(|(k, _)| b.contains_key(*k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    )
}

/// One sync step of `uuid`'s file against `remote`, updating `rec`.
pub fn sync_twin(
    config_dir: &Path,
    uuid: &str,
    remote: &dyn Remote,
    rec: &mut TwinSync,
) -> Outcome {
    let path = twin_file::path_for(config_dir, uuid);
    if !path.exists() {
        return Outcome::Skipped;
    }
    // An idle file is not read or hashed again: same mtime and size as when it was confirmed.
    // The stamp is taken before the read: an edit landing while we sync changes the stamp, so
    // it is read next time (a stamp taken afterwards hid such an edit; found by kill -9 runs).
    let seen_stamp = crate::fsutil::stamp(&path);
    let unchanged = rec.stamp.is_some() && rec.stamp == seen_stamp && !rec.pending;
    // The idle tick: the file as confirmed and the backend's metadata too — nothing to do,
    // nothing copied or merged.
    let mut prefetched = None;
    if unchanged && rec.confirmed.is_some() {
        let fetched = remote.fetch(uuid);
        if let Ok(Some(b)) = &fetched
            && b.get("metadata") == Some(&rec.confirmed_metadata)
        {
            return Outcome::Unchanged;
        }
        prefetched = Some(fetched);
    }
    let cached = unchanged
        .then(|| {
            rec.confirmed
                .clone()
                .map(|c| (c, rec.confirmed_sha256.clone()))
        })
        .flatten();
    let Some((local, sha)) = cached.or_else(|| read(&path)) else {
        return match rec.confirmed.clone() {
            Some(copy) => match twin_file::replace(config_dir, uuid, &copy) {
                Ok(_) => {
                    log::warn!(
                        "twin file {} was unreadable: rebuilt from the last good copy",
                        path.display()
                    );
                    if let Some(sha) = twin_file::written_by_us(uuid) {
                        rec.confirm(&copy, &sha);
                    }
                    Outcome::Rebuilt
                }
                Err(e) => Outcome::Pending(format!("cannot rebuild {}: {e}", path.display())),
            },
            None => Outcome::Pending(format!(
                "{} is unreadable and no good copy is known",
                path.display()
            )),
        };
    };
    let ours = twin_file::written_by_us(uuid).as_deref() == Some(sha.as_str());
    let created = twin_file::take_created(config_dir, uuid);
    if rec.confirmed_sha256.is_empty()
        && !ours
        && let Some(what_we_wrote) = created
    {
        // We created the file and it was edited before this first look: what we wrote is
        // the base, so the edit is a local change (pushed), not history.
        rec.confirm(&what_we_wrote, "created");
    }
    let first_sight = rec.confirmed_sha256.is_empty() && !ours;
    if rec.confirmed_sha256.is_empty() || (ours && sha != rec.confirmed_sha256) {
        // First sight, or our own write (a launch, a pull): the new base, never pushed back.
        rec.confirm(&local, &sha);
    }
    let local_changed = sha != rec.confirmed_sha256;
    let backend = match prefetched.unwrap_or_else(|| remote.fetch(uuid)) {
        Ok(Some(t)) => t,
        Ok(None) => return Outcome::Skipped,
        Err(e) => {
            if local_changed {
                rec.pending = true;
                rec.last_error = Some(e.clone());
                return Outcome::Pending(e);
            }
            return Outcome::Skipped;
        }
    };
    let null = Value::Null;
    if first_sight {
        // No history: what both sides have is the base where they agree or where the backend
        // differs (the backend wins), and a key only the file has is a local addition (kept).
        rec.confirmed_metadata = first_base(
            local.get("metadata").unwrap_or(&null),
            backend.get("metadata").unwrap_or(&null),
        );
    }
    let m = merge(
        &rec.confirmed_metadata,
        local.get("metadata").unwrap_or(&null),
        backend.get("metadata").unwrap_or(&null),
    );
    for c in &m.conflicts {
        log::warn!(
            "twin {uuid}: metadata key {:?} changed here and in the backend; the backend's value wins, the local one ({}) is kept in the sync state",
            c.key,
            c.local
        );
        rec.lost(&c.key, &c.local, &c.backend);
    }
    let mut content = local.clone();
    content["metadata"] = m.metadata.clone();
    let mut pushed = false;
    if local_changed || m.push_needed {
        let (body, refused) = push_body(&content);
        if !refused.is_empty() {
            log::warn!("twin {uuid}: fields with the wrong type not pushed: {refused:?}");
        }
        if body != push_body(&backend).0 {
            if let Err(e) = remote.push(uuid, &body) {
                rec.pending = true;
                rec.last_error = Some(e.clone());
                return Outcome::Pending(e);
            }
            pushed = true;
        }
    }
    let mut final_sha = sha;
    let mut final_stamp = seen_stamp;
    if m.local_changed {
        match twin_file::replace(config_dir, uuid, &content) {
            Ok(_) => {
                if let Some(s) = twin_file::written_by_us(uuid) {
                    final_sha = s;
                }
                final_stamp = crate::fsutil::stamp(&path);
            }
            Err(e) => {
                rec.last_error = Some(format!("cannot write {}: {e}", path.display()));
                return Outcome::Pending(e.to_string());
            }
        }
    }
    // Nothing new: the record stays as it is (no state write on an idle tick).
    if pushed || m.local_changed || rec.pending || final_sha != rec.confirmed_sha256 {
        rec.confirm(&content, &final_sha);
    }
    rec.stamp = final_stamp;
    match (pushed, m.local_changed) {
        (true, pulled) => Outcome::Pushed { pulled },
        (false, true) => Outcome::Pulled,
        (false, false) => Outcome::Unchanged,
    }
}

#[cfg(test)]
#[path = "engine/tests.rs"]
mod tests;
