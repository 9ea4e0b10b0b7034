//! The `twin-sync` thread: each tracked twin's file is synced every tick (15 s: backend changes
//! arrive within one), and within about a second of a local edit (the inotify watch on the
//! config dir), never on the supervisor thread. The state is saved after every change and
//! shared with `status`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crossbeam_channel::{Receiver, select, tick, unbounded};

use super::engine::{Outcome, sync_twin};
use super::state::{self, SyncState};
use crate::backend::Backend;
use crate::watch::Signature;

/// What the supervisor tells the sync thread.
pub enum SyncCtl {
    /// The twins whose files are synced (the linked ones).
    Track(Vec<String>),
    /// A new client after a reload.
    Backend(Box<Backend>),
    /// A remote restart: push what changed, then delete every tracked twin's file (launches
    /// write them fresh); `done` gets how many were deleted.
    FlushAndRemove {
        done: crossbeam_channel::Sender<usize>,
    },
}

/// What the sync thread tells the supervisor: backend metadata written into a twin's file
/// (drivers may need a restart, §8.3; plans take the new metadata).
#[derive(Debug, Clone)]
pub struct Pulled {
    pub twin: String,
    pub metadata: serde_json::Value,
}

/// A twin file: `<uuid>.json` in the config dir.
pub fn twin_file_name(name: &str) -> bool {
    name.strip_suffix(".json")
        .is_some_and(|stem| crate::config::parse_uuid(stem).as_deref() == Some(stem))
}

fn stem(name: &str) -> &str {
    name.strip_suffix(".json").unwrap_or(name)
}

/// Runs until the supervisor drops its sender.
pub fn run(
    config_dir: PathBuf,
    mut backend: Backend,
    ctl: Receiver<SyncCtl>,
    shared: Arc<Mutex<SyncState>>,
    tick_every: Duration,
    pulled: crossbeam_channel::Sender<Pulled>,
) {
    let mut st = state::load(&config_dir);
    if let Ok(mut s) = shared.lock() {
        *s = st.clone();
    }
    let (watch_tx, watch_rx) = unbounded();
    {
        let dir = config_dir.clone();
        let spawned = std::thread::Builder::new()
            .name("twin-watch".into())
            .spawn(move || {
                crate::watch::run(dir, Duration::from_millis(300), twin_file_name, watch_tx)
            });
        if let Err(e) = spawned {
            log::error!("cannot watch twin files: {e}");
        }
    }
    let mut tracked: BTreeSet<String> = BTreeSet::new();
    let mut last_sig: BTreeMap<String, (i128, u64)> = BTreeMap::new();
    let ticker = tick(tick_every);
    let mut watch_rx = watch_rx;
    loop {
        let due: Vec<String> = select! {
            recv(ctl) -> m => match m {
                Ok(SyncCtl::Track(list)) => {
                    let new: BTreeSet<String> = list.into_iter().collect();
                    let added: Vec<String> = new.difference(&tracked).cloned().collect();
                    tracked = new;
                    added
                }
                Ok(SyncCtl::Backend(b)) => {
                    backend = *b;
                    Vec::new()
                }
                Ok(SyncCtl::FlushAndRemove { done }) => {
                    let mut removed = 0;
                    for uuid in &tracked {
                        let rec = st.entry(uuid.clone()).or_default();
                        if let Outcome::Pending(e) = sync_twin(&config_dir, uuid, &backend, rec) {
                            // Never lose an edit: the file stays, the relaunch merges onto it
                            // and the sync pushes it later.
                            log::warn!("twin {uuid}: changes not pushed before the restart ({e}); its file is kept");
                            continue;
                        }
                        if std::fs::remove_file(crate::twin_file::path_for(&config_dir, uuid)).is_ok() {
                            removed += 1;
                        }
                    }
                    if let Err(e) = state::save(&config_dir, &st) {
                        log::error!("cannot save the twin sync state: {e}");
                    }
                    let _ = done.send(removed);
                    Vec::new()
                }
                Err(_) => return,
            },
            recv(watch_rx) -> c => match c {
                Ok(crate::watch::Changed(sig)) => changed(&mut last_sig, &sig),
                Err(_) => {
                    watch_rx = crossbeam_channel::never();
                    Vec::new()
                }
            },
            recv(ticker) -> _ => tracked.iter().cloned().collect(),
        };
        let mut dirty = false;
        for uuid in due.iter().filter(|u| tracked.contains(*u)) {
            let rec = st.entry(uuid.clone()).or_default();
            let before = rec.clone();
            let outcome = sync_twin(&config_dir, uuid, &backend, rec);
            if matches!(outcome, Outcome::Pulled | Outcome::Pushed { pulled: true }) {
                let _ = pulled.send(Pulled {
                    twin: uuid.clone(),
                    metadata: rec.confirmed_metadata.clone(),
                });
            }
            match outcome {
                Outcome::Pushed { pulled } => log::info!(
                    "twin {uuid}: local changes sent to the backend{}",
                    if pulled {
                        " (and backend changes written)"
                    } else {
                        ""
                    }
                ),
                Outcome::Pulled => log::info!("twin {uuid}: backend changes written to its file"),
                Outcome::Rebuilt => log::warn!("twin {uuid}: file rebuilt"),
                Outcome::Pending(e) => log::debug!("twin {uuid}: changes pending ({e})"),
                Outcome::Skipped | Outcome::Unchanged => {}
            }
            dirty |= *rec != before;
        }
        if dirty {
            if let Err(e) = state::save(&config_dir, &st) {
                log::error!("cannot save the twin sync state: {e}");
            }
            if let Ok(mut s) = shared.lock() {
                *s = st.clone();
            }
        }
    }
}

/// The twins whose file changed between two signatures.
fn changed(last: &mut BTreeMap<String, (i128, u64)>, sig: &Signature) -> Vec<String> {
    let now: BTreeMap<String, (i128, u64)> = sig
        .iter()
        .map(|(n, m, s)| (stem(n).to_string(), (*m, *s)))
        .collect();
    let out = now
        .iter()
        .filter(|(k, v)| last.get(*k) != Some(v))
        .map(|(k, _)| k.clone())
        .collect();
    *last = now;
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn twin_files_are_uuid_named_json() {
        assert!(twin_file_name("11111111-2222-4333-8444-555555555555.json"));
        assert!(!twin_file_name("credentials.json"));
        assert!(!twin_file_name(
            "11111111-2222-4333-8444-555555555555.json.tmp"
        ));
        assert!(!twin_file_name("11111111222243338444555555555555.json"));
        let mut last = BTreeMap::new();
        let a = vec![("a.json".to_string(), 1, 2), ("b.json".to_string(), 1, 2)];
        assert_eq!(changed(&mut last, &a), ["a", "b"]);
        let b = vec![("a.json".to_string(), 1, 2), ("b.json".to_string(), 5, 2)];
        assert_eq!(changed(&mut last, &b), ["b"]);
    }
}
