//! Request ids already handled, kept across restarts so a command delivered again (a QoS 1
//! redelivery, a client retry after our restart) is not run twice. Bounded: the newest
//! [`KEEP`] ids, each at most `protocol::MAX_REQUEST_ID` characters. Written atomically, at
//! most about once a second (the caller decides when), and at shutdown.

use std::collections::{HashSet, VecDeque};
use std::path::{Path, PathBuf};

use serde_json::Value;

/// How many ids are remembered.
pub const KEEP: usize = 2048;
pub const FILE: &str = "cloud-node-requests.json";

pub struct RecentIds {
    path: PathBuf,
    set: HashSet<String>,
    order: VecDeque<String>,
    dirty: bool,
}

impl RecentIds {
    /// Loads the ids saved in `dir`; a missing or unreadable file starts empty (with a warning
    /// for the latter).
    pub fn load(dir: &Path) -> Self {
        let path = dir.join(FILE);
        let mut r = RecentIds {
            path,
            set: HashSet::new(),
            order: VecDeque::new(),
            dirty: false,
        };
        let max = (KEEP * (super::protocol::MAX_REQUEST_ID * 4 + 8)) as u64;
        match crate::fsutil::read_regular_text(&r.path, max) {
            Ok(text) => match serde_json::from_str::<Value>(&text) {
                Ok(Value::Array(ids)) => {
                    for id in ids.iter().filter_map(Value::as_str) {
                        if id.chars().count() <= super::protocol::MAX_REQUEST_ID {
                            r.insert(id);
                        }
                    }
                    r.dirty = false;
                }
                _ => log::warn!(
                    "{}: not a JSON list of ids: starting afresh",
                    r.path.display()
                ),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => log::warn!("{}: {e}: starting afresh", r.path.display()),
        }
        r
    }

    /// True the first time `id` is seen.
    pub fn insert(&mut self, id: &str) -> bool {
        if self.set.contains(id) {
            return false;
        }
        self.set.insert(id.to_string());
        self.order.push_back(id.to_string());
        while self.order.len() > KEEP {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
        self.dirty = true;
        true
    }

    pub fn is_dirty(&self) -> bool {
        self.dirty
    }

    /// Writes the ids if they changed since the last write.
    pub fn flush(&mut self) {
        if !self.dirty {
            return;
        }
        let list = Value::Array(self.order.iter().map(|s| Value::from(s.as_str())).collect());
        match crate::fsutil::write_atomic(&self.path, list.to_string().as_bytes(), 0o600) {
            Ok(()) => self.dirty = false,
            Err(e) => log::warn!("cannot save request ids to {}: {e}", self.path.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_survive_a_restart_and_stay_bounded() {
        let d = tempfile::tempdir().unwrap();
        let mut r = RecentIds::load(d.path());
        assert!(r.insert("a") && !r.insert("a"));
        r.flush();
        assert!(!r.is_dirty());
        let mut again = RecentIds::load(d.path());
        assert!(!again.insert("a"), "forgotten across a restart");
        for i in 0..KEEP + 10 {
            again.insert(&format!("id-{i}"));
        }
        again.flush();
        let again = RecentIds::load(d.path());
        assert_eq!(again.order.len(), KEEP);
        assert!(
            !again.set.contains("a"),
            "oldest id should have been dropped"
        );
        std::fs::write(d.path().join(FILE), "{broken").unwrap();
        assert_eq!(RecentIds::load(d.path()).order.len(), 0);
    }
}
