//! Removing a container without harming what it drives: the one way any role's container
//! (driver, worker, router, whatever comes next) leaves the engine. A running container gets
//! its stop signal (SIGTERM unless the image says otherwise) and its own grace period
//! (`--stop-timeout`, Docker's `StopTimeout`) through `docker stop`, and only then
//! `docker rm -f -v` (reference §5.7 step 5). SIGKILL reaches only a container that did not
//! stop in time: an arm driver gets its chance to park and release torque. The original did
//! the same for a recreated driver; we do it for every removal, cleanup included.

use super::engine::Engine;
use crate::engine::{Details, EngineError};

/// Docker's own grace period when a container sets none (`docker stop` without `--time`).
pub const DEFAULT_STOP_TIMEOUT_S: u64 = 10;
/// The longest grace period honoured: a profile's day-long `stop_timeout_s` would hold the
/// executor (and every other container operation behind it) for that day.
pub const MAX_STOP_TIMEOUT_S: u64 = 600;

/// A container's own grace period: its `StopTimeout`, Docker's default when it set none,
/// at most [`MAX_STOP_TIMEOUT_S`]. Every stop of ours gives it.
pub fn grace_period(info: &Details) -> u64 {
    info.stop_timeout_s
        .unwrap_or(DEFAULT_STOP_TIMEOUT_S)
        .min(MAX_STOP_TIMEOUT_S)
}

/// The grace period to give `info`'s container before it is removed, or `None` when nothing
/// runs in it (created, exited, dead: `rm -f` kills nothing).
pub fn stop_first(info: &Details) -> Option<u64> {
    let live = info.running || matches!(info.status.as_str(), "running" | "restarting" | "paused");
    live.then(|| grace_period(info))
}

/// How a container left.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Retired {
    /// There was no such container.
    Absent,
    /// It was not running: removed at once.
    Removed,
    /// Stopped with this grace period, then removed.
    Stopped { timeout_s: u64 },
}

/// Stops `name` gracefully when it runs, then removes it with its anonymous volumes. A
/// container that cannot be inspected, or that still runs after a failed stop, is left as it
/// is and the error returned: never SIGKILL what we could not ask to stop first.
pub fn retire(engine: &dyn Engine, name: &str) -> Result<Retired, EngineError> {
    let Some(info) = engine.inspect(name)? else {
        return Ok(Retired::Absent);
    };
    let outcome = match stop_first(&info) {
        None => Retired::Removed,
        Some(timeout_s) => {
            log::info!("stopping {name} (grace period {timeout_s} s) before removing it");
            if let Err(e) = engine.stop(name, timeout_s) {
                let still_live = engine
                    .inspect(name)?
                    .is_some_and(|i| stop_first(&i).is_some());
                if still_live {
                    return Err(e);
                }
                log::debug!("{name}: stop reported {e}, but it is no longer running");
            }
            Retired::Stopped { timeout_s }
        }
    };
    engine.force_remove(name)?;
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::fake::FakeEngine;

    fn info(status: &str, running: bool, timeout: Option<u64>) -> Details {
        Details {
            stop_timeout_s: timeout,
            ..Details::example(status, running)
        }
    }

    #[test]
    fn stop_first_by_state_and_timeout() {
        let rows = [
            ("running", true, Some(5), Some(5)),
            ("running", true, None, Some(DEFAULT_STOP_TIMEOUT_S)),
            ("restarting", false, Some(3), Some(3)),
            ("paused", true, Some(0), Some(0)),
            ("running", true, Some(86_400), Some(MAX_STOP_TIMEOUT_S)),
            ("exited", false, Some(5), None),
            ("created", false, Some(5), None),
            ("dead", false, None, None),
        ];
        for (status, running, timeout, want) in rows {
            assert_eq!(
                stop_first(&info(status, running, timeout)),
                want,
                "{status} {timeout:?}"
            );
        }
    }

    fn engine_with(name: &str, state: &str, timeout: Option<u64>) -> FakeEngine {
        let e = FakeEngine::default();
        if let Ok(mut c) = e.containers.lock() {
            c.insert(name.into(), (state.into(), Default::default(), "no".into()));
        }
        if let (Some(t), Ok(mut ts)) = (timeout, e.stop_timeouts.lock()) {
            ts.insert(name.into(), t);
        }
        e
    }

    #[test]
    fn running_container_is_stopped_with_its_own_timeout_then_removed() {
        let e = engine_with("cyberwave-driver-1", "running", Some(7));
        assert_eq!(
            retire(&e, "cyberwave-driver-1"),
            Ok(Retired::Stopped { timeout_s: 7 })
        );
        assert_eq!(
            e.calls(),
            [
                "inspect cyberwave-driver-1",
                "stop cyberwave-driver-1 7",
                "remove cyberwave-driver-1"
            ]
        );
    }

    #[test]
    fn stopped_or_missing_containers_are_not_stopped() {
        let e = engine_with("c", "exited", Some(7));
        assert_eq!(retire(&e, "c"), Ok(Retired::Removed));
        assert_eq!(e.calls(), ["inspect c", "remove c"]);
        let e = FakeEngine::default();
        assert_eq!(retire(&e, "gone"), Ok(Retired::Absent));
        assert_eq!(e.calls(), ["inspect gone"]);
    }

    #[test]
    fn never_force_removes_what_could_not_be_stopped_or_inspected() {
        let e = engine_with("c", "running", None);
        e.fail("stop c", "cannot stop container: permission denied");
        assert!(retire(&e, "c").is_err());
        assert!(!e.calls().iter().any(|c| c.starts_with("remove")));

        let e = engine_with("c", "running", None);
        e.fail("inspect c", "daemon busy");
        assert!(retire(&e, "c").is_err());
        assert_eq!(e.calls(), ["inspect c"]);
    }
}
