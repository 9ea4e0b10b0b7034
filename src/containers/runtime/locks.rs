//! Update locks on the runtime (the rules are in [`crate::containers::lock`]): an update of a
//! running container — a spec change, a rollback, a metadata or remote restart — waits while
//! any container of its graph (the same owner and role) holds its lock; its images are
//! fetched meanwhile, and once they are, the maximum deferral starts. While an update waits
//! the locks are looked at once a second; with none waiting, never.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

use serde_json::{Value, json};

use super::Runtime;
use crate::containers::book::Deferred;
use crate::containers::launch::LaunchFailure;
use crate::containers::lock::{self, Gate, gate};

/// How often held locks are looked at while an update waits for them.
const LOCK_CHECK_EVERY: Duration = Duration::from_secs(1);

impl Runtime {
    /// The held locks of `name`'s graph: (container, held since).
    pub(super) fn graph_locks(&self, name: &str) -> Vec<(String, SystemTime)> {
        let Some((spec, _)) = self.desired.get(name) else {
            return Vec::new();
        };
        if !lock::has_lock(spec.role) {
            return Vec::new();
        }
        self.desired
            .iter()
            .filter(|(_, (s, _))| s.owner == spec.owner && s.role == spec.role)
            .filter_map(|(n, _)| Some((n.clone(), lock::held_since(&self.config_dir, n)?)))
            .collect()
    }

    /// Whether an update of the running `name` to its desired spec may switch now. While a
    /// lock holds it, its images are fetched and it waits; past the maximum deferral it goes,
    /// and its role hears of it.
    pub(super) fn update_may_switch(&mut self, name: &str) -> bool {
        let holders = self.graph_locks(name);
        let Some((spec, _)) = self.desired.get(name) else {
            return true;
        };
        let now = Instant::now();
        let info = self.info.entry(name.to_string()).or_default();
        if holders.is_empty() {
            info.deferred = None;
            return true;
        }
        let d = match &mut info.deferred {
            Some(d) if d.spec_hash == spec.spec_hash => d,
            slot => {
                let names: Vec<&str> = holders.iter().map(|(n, _)| n.as_str()).collect();
                log::info!(
                    "the update of {name} to {} waits: update lock held by {}",
                    spec.image,
                    names.join(", ")
                );
                slot.insert(Deferred {
                    spec_hash: spec.spec_hash.clone(),
                    ready_at: None,
                    fetching: false,
                    retry_at: None,
                })
            }
        };
        if d.ready_at.is_none() && !d.fetching && d.retry_at.is_none_or(|t| now >= t) {
            d.fetching = true;
            let _ = self
                .prefetches
                .send(super::threads::Fetch::Update(spec.clone()));
        }
        match gate(true, d.ready_at, now, self.tuning.lock_max_defer) {
            Gate::Go => true,
            Gate::Wait => {
                self.lock_check_at.get_or_insert(now + LOCK_CHECK_EVERY);
                false
            }
            Gate::Override { waited } => {
                info.deferred = None;
                self.overridden(name, holders, waited);
                true
            }
        }
    }

    /// The images of a waiting update are present (or could not be had).
    pub(super) fn on_prefetched(
        &mut self,
        name: &str,
        hash: &str,
        result: Result<String, LaunchFailure>,
    ) {
        let retry = self.tuning.retry_base;
        let Some(d) = self
            .info
            .get_mut(name)
            .and_then(|i| i.deferred.as_mut())
            .filter(|d| d.spec_hash == hash)
        else {
            return;
        };
        d.fetching = false;
        match result {
            Ok(image) => {
                log::info!("{name}: {image} is present; the update switches once its lock goes");
                d.ready_at = Some(Instant::now());
            }
            Err(f) => {
                log::warn!("{name}: fetching the waiting update failed ({f}); trying again later");
                d.retry_at = Some(Instant::now() + retry);
            }
        }
        self.reconcile();
    }

    /// Containers whose recreation (a remote or metadata restart) waits for a lock: the
    /// others are returned, to be recreated now.
    pub(super) fn hold_locked_recreates(&mut self, names: Vec<String>) -> Vec<String> {
        let now = Instant::now();
        let mut go = Vec::new();
        for name in names {
            let holders = self.graph_locks(&name);
            let since = self.recreate_waiting.get(&name).copied();
            match gate(
                !holders.is_empty(),
                since.or(Some(now)),
                now,
                self.tuning.lock_max_defer,
            ) {
                Gate::Go => {
                    self.recreate_waiting.remove(&name);
                    go.push(name);
                }
                Gate::Wait => {
                    self.lock_check_at.get_or_insert(now + LOCK_CHECK_EVERY);
                    if since.is_none() {
                        log::info!("the restart of {name} waits for its update lock");
                    }
                    self.recreate_waiting.entry(name).or_insert(now);
                }
                Gate::Override { waited } => {
                    self.recreate_waiting.remove(&name);
                    self.overridden(&name, holders, waited);
                    go.push(name);
                }
            }
        }
        go
    }

    /// An update of `name` waited its longest for the locks of `holders`: it goes ahead, and
    /// its role hears of it.
    fn overridden(&mut self, name: &str, holders: Vec<(String, SystemTime)>, waited: Duration) {
        let names: Vec<String> = holders.into_iter().map(|(n, _)| n).collect();
        log::warn!(
            "the update of {name} waited {} s for the update lock of {}: going ahead",
            waited.as_secs(),
            names.join(", ")
        );
        if let Some((spec, _)) = self.desired.get(name)
            && let Some(p) = self.policies.get_mut(&spec.role)
        {
            p.lock_overridden(spec, &names, waited);
        }
    }

    /// When the locks are next looked at: a second after an update found one held, else
    /// never.
    pub(super) fn next_lock_check(&self) -> Option<Instant> {
        self.lock_check_at
    }

    /// Looks at the locks again once [`Runtime::next_lock_check`] passed (the reconcile that
    /// follows retries the deferred switches).
    pub(super) fn recheck_locks(&mut self) {
        if self.lock_check_at.is_none_or(|t| t > Instant::now()) {
            return;
        }
        self.lock_check_at = None;
        let waiting: Vec<String> = self.recreate_waiting.keys().cloned().collect();
        if !waiting.is_empty() {
            self.recreate_names(&waiting);
        }
    }

    /// The held locks of our containers and for how long, for `status` and a remote restart's
    /// card: (container, seconds held).
    pub fn held_locks(&self) -> BTreeMap<String, u64> {
        self.desired
            .keys()
            .filter_map(|n| Some((n.clone(), self.held_for(n)?)))
            .collect()
    }

    /// What `status` shows of `name`'s lock.
    pub(super) fn lock_status(&self, name: &str) -> Value {
        match self.held_for(name) {
            Some(held) => json!({"held_s": held}),
            None => Value::Null,
        }
    }

    /// For how many seconds `name`'s lock has been held, if it is.
    fn held_for(&self, name: &str) -> Option<u64> {
        let since = lock::held_since(&self.config_dir, name)?;
        Some(
            SystemTime::now()
                .duration_since(since)
                .unwrap_or_default()
                .as_secs(),
        )
    }
}
