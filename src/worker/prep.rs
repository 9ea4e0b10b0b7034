//! The worker's helper thread: everything that waits on the network or the disk (workflow sync,
//! removals, model downloads and checks) runs here, one job at a time, so the supervisor never
//! does. Results come back as [`PrepEvent`]s.

use std::collections::BTreeSet;
use std::path::PathBuf;

use crossbeam_channel::{Receiver, Sender};
use serde_json::Value;

use super::sync;
use crate::backend::Backend;
use crate::models::ensure::{self, Catalog, Outcome, Verified};

/// Why models are being checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelsFor {
    /// Before the worker starts: a genuine failure keeps it from starting.
    Start,
    /// Before a hot reload: failures are alerted, the reload goes on.
    Reload,
}

pub enum PrepJob {
    /// Fetch every scope twin's workflow workers and write `workers/`.
    Sync { twins: Vec<String> },
    /// `remove_workflow_worker`: unlink these file names (validated here).
    Remove { filenames: Value },
    /// Discover the model ids in `workers/` and ensure each.
    Models(ModelsFor),
    /// After a reload: the client with the new token / URL (`None`: local mode).
    Backend(Option<Box<Backend>>),
}

#[derive(Debug)]
pub enum PrepEvent {
    Synced {
        /// Twins whose fetch failed, with the error.
        failed: Vec<(String, String)>,
        answered: Vec<String>,
        /// Files written or deleted.
        changed: bool,
        /// How many were written and removed (the startup report's counts).
        written: usize,
        removed: usize,
    },
    Removed {
        removed: usize,
    },
    Models {
        why: ModelsFor,
        /// Model id → error (genuine failures; deferrals excluded).
        failures: Vec<(String, String)>,
        ready: usize,
    },
}

/// The catalog when there is no backend (local mode): only cached and pre-staged models.
struct NoCatalog;

impl Catalog for NoCatalog {
    fn entry(&self, _: &str) -> Result<Option<Value>, String> {
        Err("no backend in local mode".into())
    }
    fn weights_url(&self, _: &str) -> Option<String> {
        None
    }
    fn bearer_for(&self, _: &str) -> Option<String> {
        None
    }
}

struct Prep {
    config_dir: PathBuf,
    backend: Option<Backend>,
    strikes: BTreeSet<String>,
    verified: Verified,
    /// Skipped-workflow notes already logged (logged once per change).
    skipped: Vec<String>,
}

/// Runs the helper until the supervisor drops its sender.
pub fn run(
    config_dir: PathBuf,
    backend: Option<Backend>,
    jobs: Receiver<PrepJob>,
    events: Sender<PrepEvent>,
) {
    let mut p = Prep {
        strikes: sync::load_strikes(&config_dir),
        config_dir,
        backend,
        verified: Verified::new(),
        skipped: Vec::new(),
    };
    for job in jobs {
        let ev = match job {
            PrepJob::Backend(b) => {
                p.backend = b.map(|b| *b);
                continue;
            }
            PrepJob::Sync { twins } => p.sync(&twins),
            PrepJob::Remove { filenames } => p.remove(&filenames),
            PrepJob::Models(why) => p.models(why),
        };
        if events.send(ev).is_err() {
            return;
        }
    }
}

impl Prep {
    fn workers_dir(&self) -> PathBuf {
        self.config_dir.join("workers")
    }

    fn sync(&mut self, twins: &[String]) -> PrepEvent {
        let Some(backend) = &self.backend else {
            return PrepEvent::Synced {
                failed: Vec::new(),
                answered: Vec::new(),
                changed: false,
                written: 0,
                removed: 0,
            };
        };
        let mut expected = sync::Expected::default();
        let mut failed = Vec::new();
        let mut answered = Vec::new();
        for t in twins {
            match backend.edge_sync(t) {
                Ok(payload) => {
                    expected.add(&payload);
                    answered.push(t.clone());
                }
                Err(e) => {
                    log::warn!("workflow sync for twin {t}: {e}");
                    failed.push((t.clone(), e.to_string()));
                }
            }
        }
        for r in &expected.refused {
            log::warn!("workflow sync: refused worker file name {r:?} (must match wf_<hex>.py)");
        }
        if expected.skipped != self.skipped {
            for s in &expected.skipped {
                log::info!("workflow sync: skipped {s}");
            }
            self.skipped = expected.skipped.clone();
        }
        let dir = self.workers_dir();
        let existing = sync::existing(&dir);
        let plan = sync::plan(&expected.files, &existing, &self.strikes, failed.is_empty());
        for n in &plan.first_strike {
            log::warn!(
                "workflow sync: {n} is no longer in any workflow; removed at the next sync if still absent"
            );
        }
        let changed = match sync::apply(&dir, &expected.files, &plan) {
            Ok(c) => c,
            Err(e) => {
                log::error!("workflow sync: cannot write {}: {e}", dir.display());
                failed.extend(twins.iter().map(|t| (t.clone(), e.to_string())));
                false
            }
        };
        for n in &plan.write {
            log::info!("workflow sync: wrote {n}");
        }
        for n in &plan.delete {
            log::info!("workflow sync: removed {n} (absent from two syncs in a row)");
        }
        if plan.strikes != self.strikes {
            self.strikes = plan.strikes.clone();
            if let Err(e) = sync::save_strikes(&self.config_dir, &self.strikes) {
                log::warn!("cannot save {}: {e}", sync::STRIKES_FILE);
            }
        }
        PrepEvent::Synced {
            failed,
            answered,
            changed,
            written: plan.write.len(),
            removed: plan.delete.len(),
        }
    }

    fn remove(&mut self, filenames: &Value) -> PrepEvent {
        let (removed, refused) = sync::remove(&self.workers_dir(), filenames, &mut self.strikes);
        for r in &refused {
            log::warn!("remove_workflow_worker: refused {r} (must be a wf_<hex>.py file name)");
        }
        for p in &removed {
            log::info!("remove_workflow_worker: removed {}", p.display());
        }
        let _ = sync::save_strikes(&self.config_dir, &self.strikes);
        PrepEvent::Removed {
            removed: removed.len(),
        }
    }

    fn models(&mut self, why: ModelsFor) -> PrepEvent {
        let (ids, problems) = crate::models::discover::discover(&self.workers_dir());
        for p in problems {
            log::warn!("{p}");
        }
        let models_dir = self.config_dir.join("models");
        let _ = crate::fsutil::ensure_dir(&models_dir, 0o755);
        let catalog: &dyn Catalog = match &self.backend {
            Some(b) => b,
            None => &NoCatalog,
        };
        let mut failures = Vec::new();
        let mut ready = 0;
        for id in &ids {
            match ensure::ensure_model(&models_dir, id, catalog, &mut self.verified) {
                Ok(Outcome::Deferred(why)) => log::info!("model {id}: deferred ({why})"),
                Ok(_) => ready += 1,
                Err(e) => {
                    log::error!("model {id} could not be loaded: {e}");
                    failures.push((id.clone(), e));
                }
            }
        }
        PrepEvent::Models {
            why,
            failures,
            ready,
        }
    }
}

/// At most one workflow sync in flight and one waiting, however many are asked for: a burst
/// of `sync_workflows` commands (each with its own request id, so deduplication lets them
/// through) costs the backend two fetches, not one per command. The waiting one syncs the
/// scope as it is when it goes.
#[derive(Debug, Default)]
pub struct SyncGate {
    inflight: bool,
    pending: bool,
}

impl SyncGate {
    /// A sync is wanted: true when it should be sent now (else it waits, merged).
    pub fn request(&mut self) -> bool {
        if self.inflight {
            self.pending = true;
            false
        } else {
            self.inflight = true;
            true
        }
    }

    /// The sync in flight finished: true when the waiting one should be sent now.
    pub fn done(&mut self) -> bool {
        self.inflight = std::mem::take(&mut self.pending);
        self.inflight
    }
}

#[cfg(test)]
mod gate_tests {
    use super::SyncGate;

    #[test]
    fn a_burst_merges_into_one_in_flight_and_one_waiting() {
        let mut g = SyncGate::default();
        assert!(g.request());
        let sent_during = (0..1000).filter(|_| g.request()).count();
        assert_eq!(sent_during, 0);
        assert!(g.done(), "the merged request goes once the first is done");
        assert!(!g.request(), "one in flight again: waits");
        assert!(g.done());
        assert!(!g.done(), "nothing waits any more");
        assert!(g.request());
    }
}
