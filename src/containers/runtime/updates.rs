//! Probation and rollback on the runtime (the rules are in [`crate::containers::updates`]):
//! a container that came up goes on trial; one that keeps running for the probation period
//! becomes the last good spec; one that dies, turns unhealthy or fails its startup probe
//! within it is switched back to the last good spec, by image id, and its role hears of it.
//! One deadline per trial (the runtime's), no polling.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::Runtime;
use crate::containers::spec::ContainerSpec;
use crate::containers::updates::{
    self, Choice, Failed, Good, Trial, can_roll_back, choose, needs_trial, trial_ends,
};

/// Launch failures of a switch whose successor ran and failed (not a pull or a create).
const TRIAL_PHASES: [&str; 3] = [
    "container_unhealthy",
    "container_startup_timeout",
    "docker_start_failed",
];

/// Whole seconds since the epoch (the book's clock: it outlives the process).
fn now_s() -> u64 {
    crate::epoch_seconds().max(0.0) as u64
}

impl Runtime {
    /// The role's specs with a rolled-back one replaced by the last good spec (and the
    /// failure forgotten where the role moved on).
    pub(super) fn substituted(
        &mut self,
        desired: BTreeMap<String, (ContainerSpec, Value)>,
    ) -> BTreeMap<String, (ContainerSpec, Value)> {
        let mut changed = false;
        let out = desired
            .into_iter()
            .map(|(name, (spec, payload))| {
                let entry = self.updates.entry(name.clone()).or_default();
                let (choice, did) = choose(entry, &spec);
                changed |= did;
                match choice {
                    Choice::Wanted => {
                        self.displaced.remove(&name);
                        (name, (spec, payload))
                    }
                    Choice::RolledBack(back) => {
                        self.displaced.insert(name.clone(), spec);
                        (name, (*back, payload))
                    }
                }
            })
            .collect();
        self.updates.retain(|_, e| *e != updates::Entry::default());
        if changed {
            updates::save(&self.config_dir, &self.updates);
        }
        out
    }

    /// `name` runs `spec` on `image_id`: on trial unless it is the last good one.
    pub(super) fn on_trial_if_new(&mut self, name: &str, image_id: &str) {
        // A rollback runs the last good spec: nothing to try.
        let Some((spec, _)) = self
            .desired
            .get(name)
            .filter(|_| !self.displaced.contains_key(name))
        else {
            return;
        };
        let entry = self.updates.entry(name.to_string()).or_default();
        let same_trial = entry
            .trial
            .as_ref()
            .is_some_and(|t| t.spec_hash == spec.spec_hash && t.image_id == image_id);
        if same_trial || !needs_trial(entry, spec, image_id) {
            if !same_trial && entry.trial.take().is_some() {
                updates::save(&self.config_dir, &self.updates);
            }
            return;
        }
        log::info!(
            "{name} runs {} on probation for {} s",
            spec.image,
            self.tuning.probation.as_secs()
        );
        entry.trial = Some(Trial {
            spec_hash: spec.spec_hash.clone(),
            image: spec.image.clone(),
            image_id: image_id.to_string(),
            started: now_s(),
        });
        updates::save(&self.config_dir, &self.updates);
    }

    /// Trials whose probation is over while their container runs: last good now.
    pub(super) fn promote_due(&mut self) {
        let now = now_s();
        let probation = self.tuning.probation;
        let due: Vec<String> = self
            .updates
            .iter()
            .filter_map(|(n, e)| Some((n, e.trial.as_ref()?)))
            .filter(|(n, t)| trial_ends(t, probation) <= now && self.promotable(n, t))
            .map(|(n, _)| n.clone())
            .collect();
        for name in &due {
            let (Some((spec, _)), Some(entry)) =
                (self.desired.get(name), self.updates.get_mut(name))
            else {
                continue;
            };
            let Some(t) = entry.trial.take() else {
                continue;
            };
            log::info!(
                "{name} passed its probation: {} is its last good spec",
                t.image
            );
            entry.last_good = Some(Good {
                spec: updates::store(spec),
                image_id: t.image_id,
                since: now,
            });
        }
        if !due.is_empty() {
            updates::save(&self.config_dir, &self.updates);
        }
    }

    /// The earliest end of a running trial still to come, as an instant.
    pub(super) fn next_trial_end(&self) -> Option<Instant> {
        let now = now_s();
        self.updates
            .iter()
            .filter_map(|(n, e)| Some((n, e.trial.as_ref()?)))
            // Only a trial that can pass when its time comes: one whose container runs the
            // desired spec. Another (its update deferred by a lock, its container down) is
            // judged by the next list, never by a deadline that would always be due.
            .filter(|(n, t)| self.promotable(n, t))
            .map(|(_, t)| trial_ends(t, self.tuning.probation))
            .min()
            .map(|end| Instant::now() + Duration::from_secs(end.saturating_sub(now)))
    }

    /// `name` runs the desired spec of its trial `t`.
    fn promotable(&self, name: &str, t: &Trial) -> bool {
        let desired = self
            .desired
            .get(name)
            .is_some_and(|(s, _)| s.spec_hash == t.spec_hash);
        let runs = self
            .observed
            .as_ref()
            .and_then(|o| o.get(name))
            .is_some_and(|c| {
                c.state == "running"
                    && c.labels.get(crate::containers::LABEL_SPEC_HASH) == Some(&t.spec_hash)
            });
        desired && runs
    }

    /// A container on trial died, turned unhealthy or failed its probe: back to the last
    /// good spec when there is one (else the breaker and backoff handle it as any failure).
    /// Returns whether it was rolled back.
    pub(super) fn trial_failed(&mut self, name: &str, reason: &str) -> bool {
        let Some(entry) = self.updates.get_mut(name) else {
            return false;
        };
        let Some(trial) = entry.trial.take() else {
            return false;
        };
        if !can_roll_back(entry, &trial) {
            updates::save(&self.config_dir, &self.updates);
            return false;
        }
        entry.failed = Some(Failed {
            spec_hash: trial.spec_hash,
            image: trial.image,
            image_id: trial.image_id,
            reason: reason.to_string(),
            at: now_s(),
        });
        let failed = entry.failed.clone();
        let good = entry.last_good.clone();
        updates::save(&self.config_dir, &self.updates);
        let Some((wanted, payload)) = self.desired.get(name).cloned() else {
            return false;
        };
        let mut one = BTreeMap::from([(name.to_string(), (wanted.clone(), payload))]);
        one = self.substituted(one);
        let Some((back, payload)) = one.remove(name) else {
            return false;
        };
        // The role's alert is raised before anything else is said or done: it goes to the
        // durable outbox, so a daemon killed from here on has it on record.
        if let (Some(f), Some(g), Some(p)) = (&failed, &good, self.policies.get_mut(&back.role)) {
            p.rolled_back(&wanted, f, g);
        }
        log::error!(
            "{name}: {} failed within its probation ({reason}); rolling back to {}",
            wanted.image,
            back.image
        );
        // A fresh start for the spec that runs again: no loop pause or backoff of the failed one.
        let info = self.info.entry(name.to_string()).or_default();
        info.stopped_for_loop = false;
        info.breaker = Default::default();
        info.launch_failures = 0;
        info.next_launch = None;
        self.flap.clear(name);
        self.desired.insert(name.to_string(), (back, payload));
        true
    }

    /// A launch failed: when it was a switch whose successor ran and failed, that is a failed
    /// trial of the successor's spec.
    pub(super) fn switch_failed(&mut self, name: &str, phase: &str, message: &str) {
        if !TRIAL_PHASES.contains(&phase) {
            return;
        }
        let Some((spec, _)) = self.desired.get(name) else {
            return;
        };
        let entry = self.updates.entry(name.to_string()).or_default();
        if entry.last_good.is_none() {
            return;
        }
        entry.trial = Some(Trial {
            spec_hash: spec.spec_hash.clone(),
            image: spec.image.clone(),
            image_id: String::new(),
            started: now_s(),
        });
        self.trial_failed(name, &format!("{phase}: {message}"));
    }

    /// Desired containers of a provisional role running a spec we switched to ourselves
    /// (on trial or last good) other than the desired one: kept while they run.
    pub(super) fn held(&self) -> std::collections::BTreeSet<String> {
        let Some(observed) = &self.observed else {
            return Default::default();
        };
        self.desired
            .iter()
            .filter(|(_, (s, _))| self.provisional.contains(&s.role))
            .filter(|(n, (s, _))| {
                let Some(hash) = observed
                    .get(*n)
                    .and_then(|c| c.labels.get(crate::containers::LABEL_SPEC_HASH))
                else {
                    return false;
                };
                let e = self.updates.get(*n);
                let ours = e
                    .and_then(|e| e.trial.as_ref())
                    .is_some_and(|t| &t.spec_hash == hash)
                    || e.and_then(|e| e.last_good.as_ref())
                        .is_some_and(|g| &g.spec.spec_hash == hash);
                ours && hash != &s.spec_hash
            })
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// Whether `name` is on trial now.
    pub(super) fn on_trial(&self, name: &str) -> bool {
        self.updates.get(name).is_some_and(|e| e.trial.is_some())
    }

    /// An operator asked for these containers again (a remote restart): their failed specs
    /// may be tried once more.
    pub(super) fn forget_failures(&mut self, names: &[String]) {
        let mut changed = false;
        for name in names {
            if let Some(e) = self.updates.get_mut(name) {
                changed |= e.failed.take().is_some() | e.trial.take().is_some();
            }
            if let Some(wanted) = self.displaced.remove(name)
                && let Some(d) = self.desired.get_mut(name)
            {
                d.0 = wanted;
            }
        }
        if changed {
            updates::save(&self.config_dir, &self.updates);
        }
    }

    /// Images a rollback may need (cleanup keeps them).
    pub(super) fn last_good_images(&self) -> impl Iterator<Item = String> + '_ {
        self.updates
            .values()
            .filter_map(|e| e.last_good.as_ref())
            .flat_map(|g| [g.spec.image.clone(), g.image_id.clone()])
            .filter(|i| !i.is_empty())
    }

    /// Judges the trials by the last list: a container on trial that exited with an error,
    /// is dead or is being restarted by the engine failed; one running its trial's spec past
    /// its probation passed; a running one not on trial and not the last good goes on trial
    /// (adopted after our own restart, or its tag moved).
    pub(super) fn judge_trials(&mut self) {
        let Some(observed) = &self.observed else {
            return;
        };
        let mut failed = Vec::new();
        let mut adopted = Vec::new();
        for (name, (spec, _)) in &self.desired {
            let Some(c) = observed.get(name) else {
                continue;
            };
            let ours = c.labels.get(crate::containers::LABEL_SPEC_HASH) == Some(&spec.spec_hash);
            let bad_exit =
                matches!(c.state.as_str(), "exited" | "dead") && c.exit_code() != Some(0);
            if self.on_trial(name) && ours && (bad_exit || c.state == "restarting") {
                failed.push((name.clone(), down_reason(c)));
            } else if !self.on_trial(name) && ours && c.state == "running" {
                adopted.push((name.clone(), c.image_id.clone()));
            }
        }
        for (name, reason) in failed {
            if !self.trial_failed(&name, &reason) {
                log::debug!("{name} failed its probation with no last good spec to go back to");
            }
        }
        for (name, image_id) in adopted {
            self.on_trial_if_new(&name, &image_id);
        }
        self.promote_due();
    }

    /// What `status` shows of a container's updates.
    pub(super) fn update_status(
        &self,
        name: &str,
        info: &crate::containers::book::Record,
    ) -> Value {
        let pending = info
            .pending_update
            .as_ref()
            .map(|(image, why)| json!({"image": image, "waiting": why}));
        let Some(e) = self.updates.get(name) else {
            return json!({"pending": pending});
        };
        let now = now_s();
        json!({
            "pending": pending,
            "running_spec": self.desired.get(name).map(|(s, _)| s.spec_hash.clone()),
            "last_good": e.last_good.as_ref().map(|g| json!({
                "image": g.spec.image, "image_id": g.image_id, "spec_hash": g.spec.spec_hash,
                "since": g.since})),
            "probation_left_s": e.trial.as_ref()
                .map(|t| trial_ends(t, self.tuning.probation).saturating_sub(now)),
            "rolled_back": e.failed.as_ref().map(|f| json!({
                "image": f.image, "image_id": f.image_id, "spec_hash": f.spec_hash,
                "reason": f.reason, "at": f.at})),
        })
    }
}

/// Why a listed container counts as failed: `exited with code N` (from `Exited (N) …` or
/// `Restarting (N) …`), else its state.
fn down_reason(c: &crate::engine::Container) -> String {
    let code = c
        .status
        .split_once('(')
        .and_then(|(_, rest)| rest.split(')').next())
        .and_then(|n| n.trim().parse::<i32>().ok());
    match (code, c.state.as_str()) {
        (Some(n), "restarting") => format!("exited with code {n} and is being restarted"),
        (Some(n), _) => format!("exited with code {n}"),
        (None, state) => format!("is {state}"),
    }
}
