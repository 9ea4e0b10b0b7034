//! The `twin-sync` thread: each tracked twin's file is synced every tick (15 s: backend changes
//! arrive within one), and within about a second of a local edit (the inotify watch on the
//! config dir), never on the supervisor thread. The state is saved after every change and
//! shared with `status`.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, after, select, unbounded};

use super::engine::{Outcome, Remote, sync_twin};
use super::state::{self, SyncState};
use crate::backend::Backend;
use crate::watch::Signature;

/// What the supervisor tells the sync thread.
pub enum SyncCtl {
    /// The twins whose files are synced (the linked ones).
    Track(Vec<String>),
    /// A new client after a reload.
    Backend(Box<Backend>),
    /// The environment whose twin list is fetched once per tick (one `GET` for every twin,
    /// instead of one per twin); `None`: each twin is fetched on its own.
    Environment(Option<String>),
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

/// The backend as the sync sees it: twins from the latest environment snapshot while it is
/// fresh (at most two ticks old), a live `GET` for a twin we pushed recently (a snapshot may
/// predate the push) or one the snapshot lacks. Pushes go to the backend.
struct Snapshotted<'a, R: Remote> {
    backend: &'a R,
    twins: &'a BTreeMap<String, serde_json::Value>,
    taken: Option<Instant>,
    max_age: Duration,
    pushed: &'a RefCell<BTreeMap<String, Instant>>,
}

/// After a push, the snapshot is not trusted for that twin for this long.
const AFTER_PUSH: Duration = Duration::from_secs(60);

impl<R: Remote> Remote for Snapshotted<'_, R> {
    fn fetch(&self, uuid: &str) -> Result<Option<serde_json::Value>, String> {
        let fresh = self.taken.is_some_and(|t| t.elapsed() <= self.max_age);
        let pushed_lately = self
            .pushed
            .borrow()
            .get(uuid)
            .is_some_and(|t| t.elapsed() < AFTER_PUSH);
        match self.twins.get(uuid) {
            Some(t) if fresh && !pushed_lately => Ok(Some(t.clone())),
            _ => self.backend.fetch(uuid),
        }
    }

    fn push(&self, uuid: &str, body: &serde_json::Value) -> Result<(), String> {
        self.backend.push(uuid, body)?;
        self.pushed
            .borrow_mut()
            .insert(uuid.to_string(), Instant::now());
        Ok(())
    }
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
    let mut snapshot: BTreeMap<String, serde_json::Value> = BTreeMap::new();
    let mut snapshot_at: Option<Instant> = None;
    let mut environment: Option<String> = None;
    let pushed: RefCell<BTreeMap<String, Instant>> = RefCell::new(BTreeMap::new());
    let mut last_sig: BTreeMap<String, (i128, u64)> = BTreeMap::new();
    let mut next_tick = Instant::now() + tick_every;
    let mut watch_rx = watch_rx;
    loop {
        // Only twins with a file are pulled: with none (no driver wrote one yet), the thread
        // parks until a file appears (the watch) or the tracked set changes — no twin-list
        // fetch that could change nothing.
        let with_files: Vec<String> = tracked
            .iter()
            .filter(|u| crate::twins::file::path_for(&config_dir, u).is_file())
            .cloned()
            .collect();
        let ticker = if with_files.is_empty() {
            crossbeam_channel::never()
        } else {
            after(next_tick.saturating_duration_since(Instant::now()))
        };
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
                Ok(SyncCtl::Environment(e)) => {
                    environment = e;
                    snapshot_at = None;
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
                        if std::fs::remove_file(crate::twins::file::path_for(&config_dir, uuid)).is_ok() {
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
            recv(ticker) -> _ => {
                next_tick = Instant::now() + tick_every;
                if let Some(env) = environment.as_deref() {
                    match backend.environment_twins(env) {
                        Ok(twins) => {
                            snapshot = twins
                                .into_iter()
                                .filter_map(|t| {
                                    let u = crate::config::parse_uuid(t.get("uuid")?.as_str()?)?;
                                    Some((u, t))
                                })
                                .collect();
                            snapshot_at = Some(Instant::now());
                        }
                        Err(e) => log::debug!("twin list not fetched ({e}); fetching twins one by one"),
                    }
                }
                pushed.borrow_mut().retain(|_, t| t.elapsed() < AFTER_PUSH);
                with_files
            }
        };
        let remote = Snapshotted {
            backend: &backend,
            twins: &snapshot,
            taken: snapshot_at,
            max_age: tick_every * 2,
            pushed: &pushed,
        };
        let mut dirty = false;
        for uuid in due.iter().filter(|u| tracked.contains(*u)) {
            let rec = st.entry(uuid.clone()).or_default();
            let before = rec.clone();
            let outcome = sync_twin(&config_dir, uuid, &remote, rec);
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

    /// Counts live fetches; answers every twin with a "live" value.
    #[derive(Default)]
    struct Live {
        fetches: RefCell<usize>,
    }

    impl Remote for Live {
        fn fetch(&self, uuid: &str) -> Result<Option<serde_json::Value>, String> {
            *self.fetches.borrow_mut() += 1;
            Ok(Some(
                serde_json::json!({"uuid": uuid, "metadata": {"value": "live"}}),
            ))
        }
        fn push(&self, _: &str, _: &serde_json::Value) -> Result<(), String> {
            Ok(())
        }
    }

    #[test]
    fn fresh_snapshots_replace_per_twin_gets_except_after_a_push() {
        let live = Live::default();
        let twins = BTreeMap::from([(
            "a".to_string(),
            serde_json::json!({"metadata": {"value": "snap"}}),
        )]);
        let pushed = RefCell::new(BTreeMap::new());
        let r = Snapshotted {
            backend: &live,
            twins: &twins,
            taken: Some(Instant::now()),
            max_age: Duration::from_secs(30),
            pushed: &pushed,
        };
        let value = |r: &Snapshotted<Live>, u: &str| {
            r.fetch(u).unwrap().unwrap()["metadata"]["value"].clone()
        };
        assert_eq!(value(&r, "a"), "snap");
        assert_eq!(*live.fetches.borrow(), 0);
        // not in the snapshot: live
        assert_eq!(value(&r, "b"), "live");
        // pushed lately: the snapshot may predate the push, so live
        r.push("a", &serde_json::json!({})).unwrap();
        assert_eq!(value(&r, "a"), "live");
        // a stale snapshot: live
        let none = RefCell::new(BTreeMap::new());
        let old = Snapshotted {
            backend: &live,
            twins: &twins,
            taken: Instant::now().checked_sub(Duration::from_secs(60)),
            max_age: Duration::from_secs(30),
            pushed: &none,
        };
        assert_eq!(value(&old, "a"), "live");
        assert_eq!(*live.fetches.borrow(), 3);
    }
}
