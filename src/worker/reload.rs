//! The worker's hot reload (reference §6.5) as one pure decision: a change in `workers/`
//! (settled by the watch) leaves a reload pending; it goes once the container runs, no model
//! check is under way, the circuit breaker (≥ 5 automatic restarts in 5 min) is closed and the
//! cooldown since the last automatic restart is over. The worker runtime carries it out.

use std::time::{Duration, Instant};

/// What the decision reads.
#[derive(Debug, Clone, PartialEq)]
pub struct Inputs {
    /// A change in `workers/` waits to be loaded.
    pub pending: bool,
    /// A model check is under way (its result decides).
    pub checking_models: bool,
    /// The worker container runs.
    pub running: bool,
    /// The worker is desired (it may be on its way up).
    pub wanted: bool,
    /// The breaker is open.
    pub tripped: bool,
    /// Time still to wait since the last automatic restart.
    pub cooldown_left: Option<Duration>,
}

/// What to do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Nothing pending, or a model check decides first.
    Nothing,
    /// Not running and not wanted: the change has nothing to reload.
    Drop,
    /// Wait for the container to run.
    WaitForRun,
    /// Automatic restarts are suppressed until the breaker re-arms.
    Suppressed,
    /// Wait for the cooldown.
    Cooldown,
    /// Check the models the new files need, then restart.
    Reload,
}

pub fn decide(i: &Inputs) -> Step {
    if !i.pending || i.checking_models {
        return Step::Nothing;
    }
    if !i.running {
        return if i.wanted {
            Step::WaitForRun
        } else {
            Step::Drop
        };
    }
    if i.tripped {
        return Step::Suppressed;
    }
    if i.cooldown_left.is_some_and(|d| !d.is_zero()) {
        return Step::Cooldown;
    }
    Step::Reload
}

/// When a pending reload should be looked at again: the breaker's re-arm first, else the
/// cooldown's end, else shortly (the container is on its way up).
pub fn next_look(
    now: Instant,
    rearms_at: Option<Instant>,
    cooldown_end: Option<Instant>,
) -> Instant {
    match (rearms_at, cooldown_end.filter(|t| *t > now)) {
        (Some(rearm), _) => rearm,
        (None, Some(end)) => end,
        (None, None) => now + Duration::from_millis(500),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reload_rule() {
        let base = Inputs {
            pending: true,
            checking_models: false,
            running: true,
            wanted: true,
            tripped: false,
            cooldown_left: None,
        };
        let s = Duration::from_secs;
        let rows: Vec<(&str, Inputs, Step)> = vec![
            (
                "nothing pending",
                Inputs {
                    pending: false,
                    ..base.clone()
                },
                Step::Nothing,
            ),
            (
                "a model check decides first",
                Inputs {
                    checking_models: true,
                    ..base.clone()
                },
                Step::Nothing,
            ),
            (
                "on its way up",
                Inputs {
                    running: false,
                    ..base.clone()
                },
                Step::WaitForRun,
            ),
            (
                "stopped and not wanted",
                Inputs {
                    running: false,
                    wanted: false,
                    ..base.clone()
                },
                Step::Drop,
            ),
            (
                "breaker open",
                Inputs {
                    tripped: true,
                    ..base.clone()
                },
                Step::Suppressed,
            ),
            (
                "breaker before cooldown",
                Inputs {
                    tripped: true,
                    cooldown_left: Some(s(3)),
                    ..base.clone()
                },
                Step::Suppressed,
            ),
            (
                "cooldown",
                Inputs {
                    cooldown_left: Some(s(3)),
                    ..base.clone()
                },
                Step::Cooldown,
            ),
            (
                "cooldown over",
                Inputs {
                    cooldown_left: Some(s(0)),
                    ..base.clone()
                },
                Step::Reload,
            ),
            ("go", base.clone(), Step::Reload),
        ];
        for (what, i, want) in rows {
            assert_eq!(decide(&i), want, "{what}");
        }
    }

    #[test]
    fn when_to_look_again() {
        let now = Instant::now();
        let s = Duration::from_secs;
        assert_eq!(
            next_look(now, Some(now + s(60)), Some(now + s(5))),
            now + s(60)
        );
        assert_eq!(next_look(now, None, Some(now + s(5))), now + s(5));
        assert_eq!(
            next_look(now, None, Some(now)),
            now + Duration::from_millis(500)
        );
        assert_eq!(next_look(now, None, None), now + Duration::from_millis(500));
    }
}
