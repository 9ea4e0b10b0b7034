//! The reconcile decision, pure: what this edge wants, what the engine runs, what we remember
//! of each container and the time in; actions out. No engine, no clock, no I/O, so every rule
//! is a row in the tables below:
//!
//! * missing → launch (after a launch backoff; a container that *vanished* while we ran it is
//!   relaunched only after the removal grace, or never when that is off);
//! * present with another spec hash → recreate (unless held: a newer spec than a provisional
//!   desired state's); present as `created` → recreate;
//! * running, restarting, paused, removing → leave alone (adoption: same hash, same container);
//! * exited or dead → revive: at once after a clean exit, else once Docker's own restart
//!   policy has had `revive_after` to act, and at most once per `revive_every`;
//! * stopped for a restart loop → nothing until the breaker's pause is over, then revive;
//! * asked for by an operator (`worker start`) → now: no pause, backoff or rate applies;
//! * runs once (the tunnel) → launched when missing and never seen; once seen, whatever
//!   happens to it is its role's to decide.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// What the plan needs of a desired container.
#[derive(Debug, Clone, PartialEq)]
pub struct Want {
    pub spec_hash: String,
    /// Restart floor: kept while live even with another spec; revived only this long after
    /// it went down.
    pub floor: Option<Duration>,
    /// Runs once: launched while never seen, then left to its role (never revived, replaced
    /// or relaunched here).
    pub once: bool,
    /// Kept while live whatever its spec: it runs a spec we switched to after the answer the
    /// desired state comes from (a restart reading its cache must not step back).
    pub hold: bool,
}

/// What the engine reported of a container.
#[derive(Debug, Clone, PartialEq)]
pub struct Seen {
    pub state: String,
    pub exit_code: Option<i32>,
    /// Its spec-hash label.
    pub spec_hash: Option<String>,
}

/// What the runtime remembers of a container between observations.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Book {
    /// A launch of it is under way.
    pub inflight: bool,
    /// Stopped by us for a restart loop; `retry_at` is when the breaker lets it run again.
    pub stopped_for_loop: bool,
    pub retry_at: Option<Instant>,
    /// Launch backoff after failed launches.
    pub next_launch: Option<Instant>,
    /// When we saw it vanish while we ran it.
    pub removed_at: Option<Instant>,
    /// When we first saw it exited or dead.
    pub down_since: Option<Instant>,
    pub last_revival: Option<Instant>,
    /// An operator asked for it to run now (`worker start|restart`).
    pub asked: bool,
}

/// The runtime's timing rules.
#[derive(Debug, Clone, PartialEq)]
pub struct Rules {
    /// Grace before relaunching a container someone removed; `None`: never.
    pub removed_revival: Option<Duration>,
    /// How long Docker's own restart policy gets before we start an exited container.
    pub revive_after: Duration,
    /// At most one revival per this period.
    pub revive_every: Duration,
}

/// How long an exited container is left to Docker's restart policy before we start it.
const REVIVE_AFTER: Duration = Duration::from_secs(10);
/// At most one revival of a container per minute.
const REVIVE_EVERY: Duration = Duration::from_secs(60);

impl Rules {
    /// The rules for an engine that restarts containers by their policy itself (Docker) or
    /// not (Podman): there the revival is the restart policy, at once and every time, the
    /// restart-loop breaker counting the deaths as it does Docker's restarts.
    pub fn new(removed_revival: Option<Duration>, engine_restarts: bool) -> Self {
        let (revive_after, revive_every) = match engine_restarts {
            true => (REVIVE_AFTER, REVIVE_EVERY),
            false => (Duration::ZERO, Duration::ZERO),
        };
        Rules {
            removed_revival,
            revive_after,
            revive_every,
        }
    }
}

/// Why an action was chosen (logged, and asserted by the tables).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    Missing,
    RemovedGraceOver,
    SpecChanged,
    LeftCreated,
    Exited,
    LoopPauseOver,
    /// An operator asked for it.
    Asked,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Create and start it; `replace`: a container of that name exists and goes first.
    Launch {
        name: String,
        replace: bool,
        why: Why,
    },
    /// Start the existing container again, restoring its restart policy.
    Revive { name: String, why: Why },
}

/// Decides, for every desired container, what to do now.
pub fn plan(
    desired: &BTreeMap<String, Want>,
    observed: &BTreeMap<String, Seen>,
    book: &BTreeMap<String, Book>,
    now: Instant,
    rules: &Rules,
) -> Vec<Action> {
    let none = Book::default();
    let mut out = Vec::new();
    for (name, want) in desired {
        let b = book.get(name).unwrap_or(&none);
        if b.inflight {
            continue;
        }
        let launch = |replace, why| Action::Launch {
            name: name.clone(),
            replace,
            why,
        };
        let revive = |why| Action::Revive {
            name: name.clone(),
            why,
        };
        if want.once {
            let fresh = b.removed_at.is_none() && b.down_since.is_none();
            let launch_allowed = b.next_launch.is_none_or(|t| now >= t);
            match observed.get(name) {
                None if fresh && launch_allowed => out.push(launch(false, Why::Missing)),
                // A leftover of another run (another hash): replaced by this one.
                Some(s)
                    if fresh
                        && launch_allowed
                        && s.spec_hash.as_deref() != Some(want.spec_hash.as_str()) =>
                {
                    out.push(launch(true, Why::SpecChanged))
                }
                _ => {}
            }
            continue;
        }
        if b.asked {
            match observed.get(name) {
                None => out.push(launch(false, Why::Asked)),
                Some(s) if s.spec_hash.as_deref() != Some(want.spec_hash.as_str()) => {
                    out.push(launch(true, Why::Asked))
                }
                Some(s) if live(&s.state) => {}
                Some(s) if s.state == "created" => out.push(launch(true, Why::Asked)),
                Some(_) => out.push(revive(Why::Asked)),
            }
            continue;
        }
        if b.stopped_for_loop {
            if b.retry_at.is_some_and(|t| now >= t) {
                out.push(revive(Why::LoopPauseOver));
            }
            continue;
        }
        let launch_allowed = b.next_launch.is_none_or(|t| now >= t);
        match observed.get(name) {
            None if !launch_allowed => {}
            None => match (b.removed_at, rules.removed_revival) {
                (None, _) => out.push(launch(false, Why::Missing)),
                (Some(_), None) => {}
                (Some(at), Some(grace)) if now.duration_since(at) >= grace => {
                    out.push(launch(false, Why::RemovedGraceOver))
                }
                (Some(_), Some(_)) => {}
            },
            // A container with a restart floor, or one held, is adopted while it runs,
            // whatever its spec.
            Some(s) if (want.floor.is_some() || want.hold) && live(&s.state) => {}
            Some(s) if s.spec_hash.as_deref() != Some(want.spec_hash.as_str()) => {
                if launch_allowed {
                    out.push(launch(true, Why::SpecChanged));
                }
            }
            Some(s) => match s.state.as_str() {
                state if live(state) => {}
                "created" if launch_allowed => out.push(launch(true, Why::LeftCreated)),
                "created" => {}
                _ => {
                    let settled = s.exit_code == Some(0)
                        || b.down_since
                            .is_some_and(|t| now.duration_since(t) >= rules.revive_after);
                    let rate_ok = b
                        .last_revival
                        .is_none_or(|t| now.duration_since(t) >= rules.revive_every);
                    let rested = want
                        .floor
                        .is_none_or(|f| b.down_since.is_some_and(|t| now.duration_since(t) >= f));
                    if settled && rate_ok && rested {
                        out.push(revive(Why::Exited));
                    }
                }
            },
        }
    }
    out
}

fn live(state: &str) -> bool {
    matches!(state, "running" | "restarting" | "removing" | "paused")
}

/// The next moment a timed rule falls due for any desired container (so the caller plans
/// again then instead of at its next tick).
pub fn next_due(
    desired: &BTreeMap<String, Want>,
    book: &BTreeMap<String, Book>,
    now: Instant,
    rules: &Rules,
) -> Option<Instant> {
    let mut due: Option<Instant> = None;
    let mut consider = |t: Option<Instant>| {
        if let Some(t) = t.filter(|t| *t > now) {
            due = Some(due.map_or(t, |d| d.min(t)));
        }
    };
    for (name, b) in book {
        let Some(want) = desired.get(name) else {
            continue;
        };
        if b.stopped_for_loop {
            consider(b.retry_at);
        }
        consider(b.next_launch);
        if b.down_since.is_some() {
            consider(b.down_since.map(|t| t + rules.revive_after));
            consider(b.last_revival.map(|t| t + rules.revive_every));
            consider(b.down_since.zip(want.floor).map(|(t, f)| t + f));
        }
        if let (Some(at), Some(grace)) = (b.removed_at, rules.removed_revival) {
            consider(Some(at + grace));
        }
    }
    due
}

#[cfg(test)]
mod tests;
