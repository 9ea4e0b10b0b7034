//! Remote restart (`restart_edge_core`, reference §8.4, §3.5) as a pure step function: the
//! restart's state and an event in, the next state and the actions out. The supervisor's
//! side (`super`) performs the actions and feeds the events; nothing here waits or does I/O,
//! so every rule is a row of the table test.

use std::time::{Duration, Instant, SystemTime};

use serde_json::{Value, json};

/// Minimum time between the end of one restart and the start of the next.
pub const MIN_INTERVAL: Duration = Duration::from_secs(30);
/// A restart not finished by then has failed.
pub const DEADLINE: Duration = Duration::from_secs(300);

/// Where a restart under way stands.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Phase {
    /// Twin files being pushed and removed.
    Flushing,
    /// Containers being recreated and the desired state refetched.
    Recreating { refetched: bool },
}

impl Phase {
    /// The phase's name in `status`.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Flushing => "flushing_twin_files",
            Phase::Recreating { .. } => "recreating_containers",
        }
    }
}

/// A restart under way.
#[derive(Debug, Clone, PartialEq)]
pub struct Running {
    pub alert_uuid: Option<String>,
    pub started: Instant,
    pub started_at: SystemTime,
    pub phase: Phase,
}

/// How the last restart ended, for `status`.
#[derive(Debug, Clone, PartialEq)]
pub struct Finished {
    pub result: &'static str,
    pub error: Option<String>,
    pub started_at: SystemTime,
    pub finished_at: SystemTime,
}

/// The remote restart's whole state.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Machine {
    pub running: Option<Running>,
    /// When the last restart ended (the rate limit counts from it).
    pub last_done: Option<Instant>,
    pub last: Option<Finished>,
}

/// What happens to a restart.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A `restart_edge_core` command, with its alert card.
    Asked { alert_uuid: Option<String> },
    /// The twin-sync thread pushed and removed the twin files.
    Flushed { removed: usize },
    /// The backend answered the refetch of the desired state.
    Refetched,
    /// A look after runtime events and ticks: are our containers all back? Is their
    /// recreation waiting for a robot task's update lock (its own bound, not the deadline's)?
    Look {
        containers_back: bool,
        held_by_lock: bool,
    },
}

/// What the supervisor does for a step.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Moves the restart's alert card to `status` with `details` and a `<at_key>` timestamp
    /// (resolved when `resolve`).
    Card {
        alert_uuid: String,
        status: &'static str,
        details: Value,
        at_key: &'static str,
        resolve: bool,
    },
    /// Logs why a request was refused.
    Refused { error: &'static str },
    /// Push and remove the twin files (the twin-sync thread; at once when there is none).
    FlushTwinFiles,
    /// Re-read `environment.json`, recreate the router, drivers and worker from their
    /// specs, and refetch the desired state.
    Recreate { removed: usize },
    /// The restart ended: log it (`error` when it failed).
    Ended {
        took: Duration,
        error: Option<String>,
    },
}

/// One step: the next state and what to do.
pub fn step(m: &Machine, ev: Event, now: Instant, wall: SystemTime) -> (Machine, Vec<Action>) {
    let mut next = m.clone();
    let actions = match ev {
        Event::Asked { alert_uuid } => ask(&mut next, alert_uuid, now, wall),
        Event::Flushed { removed } => match &mut next.running {
            Some(r) if r.phase == Phase::Flushing => {
                r.phase = Phase::Recreating { refetched: false };
                vec![Action::Recreate { removed }]
            }
            _ => Vec::new(),
        },
        Event::Refetched => match &mut next.running {
            Some(r) if matches!(r.phase, Phase::Recreating { .. }) => {
                r.phase = Phase::Recreating { refetched: true };
                // The containers may all be back already: the caller looks next.
                Vec::new()
            }
            _ => Vec::new(),
        },
        Event::Look {
            containers_back,
            held_by_lock,
        } => look(&mut next, containers_back, held_by_lock, now, wall),
    };
    (next, actions)
}

fn refuse(alert_uuid: Option<String>, reason: &str, error: &'static str) -> Vec<Action> {
    let mut out = vec![Action::Refused { error }];
    if let Some(alert_uuid) = alert_uuid {
        out.push(Action::Card {
            alert_uuid,
            status: "failed",
            details: json!({"reason": reason, "error": error}),
            at_key: "failed_at",
            resolve: true,
        });
    }
    out
}

fn ask(m: &mut Machine, alert_uuid: Option<String>, now: Instant, wall: SystemTime) -> Vec<Action> {
    if m.running.is_some() {
        return refuse(
            alert_uuid,
            "concurrent_restart",
            "another edge-core restart was already in progress",
        );
    }
    if m.last_done
        .is_some_and(|t| now.saturating_duration_since(t) < MIN_INTERVAL)
    {
        return refuse(
            alert_uuid,
            "rate_limited",
            "an edge-core restart finished less than 30 s ago",
        );
    }
    let mut out = Vec::new();
    if let Some(uuid) = &alert_uuid {
        out.push(Action::Card {
            alert_uuid: uuid.clone(),
            status: "in_progress",
            details: json!({}),
            at_key: "in_progress_at",
            resolve: false,
        });
    }
    m.running = Some(Running {
        alert_uuid,
        started: now,
        started_at: wall,
        phase: Phase::Flushing,
    });
    out.push(Action::FlushTwinFiles);
    out
}

/// Done when refetched and every container is back; failed once past [`DEADLINE`], unless an
/// update lock holds the recreation (it is bounded by `CYBERWAVE_UPDATE_LOCK_MAX_DEFER_SECONDS`).
fn look(
    m: &mut Machine,
    containers_back: bool,
    held_by_lock: bool,
    now: Instant,
    wall: SystemTime,
) -> Vec<Action> {
    let Some(r) = &m.running else {
        return Vec::new();
    };
    let done = r.phase == (Phase::Recreating { refetched: true }) && containers_back;
    let took = now.saturating_duration_since(r.started);
    if !done && (took <= DEADLINE || held_by_lock) {
        return Vec::new();
    }
    let (result, error) = if done {
        ("completed", None)
    } else {
        let e = format!(
            "the restart did not finish within {} s ({:?})",
            DEADLINE.as_secs(),
            r.phase
        );
        ("failed", Some(e))
    };
    let mut out = Vec::new();
    if let Some(uuid) = &r.alert_uuid {
        out.push(Action::Card {
            alert_uuid: uuid.clone(),
            status: result,
            details: match &error {
                Some(e) => json!({"error": e}),
                None => json!({}),
            },
            at_key: if done { "completed_at" } else { "failed_at" },
            resolve: true,
        });
    }
    out.push(Action::Ended {
        took,
        error: error.clone(),
    });
    m.last = Some(Finished {
        result,
        error,
        started_at: r.started_at,
        finished_at: wall,
    });
    m.running = None;
    m.last_done = Some(now);
    out
}

impl Machine {
    /// `status`: the restart under way, if any, and the last one.
    pub fn snapshot(&self) -> Value {
        let m = self;
        let r = m.running.as_ref();
        json!({
            "in_progress": r.is_some(),
            "phase": r.map(|r| r.phase.as_str()),
            "started_at": r.map(|r| crate::epoch_of(r.started_at)),
            "alert_uuid": r.and_then(|r| r.alert_uuid.clone()),
            "last": m.last.as_ref().map(|l| json!({
                "result": l.result,
                "error": l.error,
                "started_at": crate::epoch_of(l.started_at),
                "finished_at": crate::epoch_of(l.finished_at),
            })),
        })
    }
}

#[cfg(test)]
mod tests;
