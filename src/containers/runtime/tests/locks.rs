//! Update locks on the fake engine: a held lock defers a switch (its image is fetched
//! meanwhile), its release lets it through within a second, and past the maximum deferral the
//! update goes ahead and the role hears of it.

use super::*;
use crate::containers::lock::{LOCK_FILE, lock_dir};

const A: &str = "cyberwave-driver-a";

fn harness(max_defer: Option<Duration>) -> Harness {
    harness_with(Tuning {
        lock_max_defer: max_defer,
        ..Tuning::example(3)
    })
}

/// v1 up on a runtime with these knobs.
fn harness_with(tuning: Tuning) -> Harness {
    let engine = Arc::new(FakeEngine::with_images(&["drv:local", "drv2:local"]));
    let mut h = start_in(engine, tempfile::tempdir().unwrap(), tuning);
    h.until("first observation", |h| h.called("ps"));
    let mut v1 = spec(A, "h1");
    v1.image = "drv:local".into();
    h.want(&[v1]);
    h.until("v1 up", |h| h.heard().contains(&format!("up {A}")));
    h
}

fn hold(h: &Harness) -> std::path::PathBuf {
    let file = lock_dir(h._dir.path(), A).join(LOCK_FILE);
    std::fs::write(&file, "arm mid-trajectory").unwrap();
    file
}

fn v2() -> ContainerSpec {
    let mut s = spec(A, "h2");
    s.image = "drv2:local".into();
    s
}

#[test]
fn a_held_lock_defers_the_switch_until_it_is_released() {
    let mut h = harness(None);
    let file = hold(&h);
    h.want(&[v2()]);
    // Fetched meanwhile, not switched.
    h.until_timed("prefetched", Duration::from_secs(3), |h| {
        h.calls_of("image_exists drv2:local") >= 1
    });
    h.quiet_for(Duration::from_millis(1500));
    assert_eq!(
        h.calls_of(&format!("create {A}.next")),
        0,
        "{:?}",
        h.engine.calls()
    );
    let status = h.runtime.snapshot();
    assert!(
        status[0].1["update_lock"]["held_s"].is_u64(),
        "{}",
        status[0].1
    );
    assert_eq!(h.runtime.held_locks().len(), 1);
    std::fs::remove_file(file).unwrap();
    h.until_timed("switched", Duration::from_secs(3), |h| {
        h.calls_of(&format!("create {A}.next")) == 1
    });
    h.runtime.shutdown();
}

#[test]
fn past_the_maximum_deferral_the_update_goes_ahead_and_is_told() {
    let mut h = harness(Some(Duration::from_secs(1)));
    hold(&h);
    h.want(&[v2()]);
    h.until_timed("switched anyway", Duration::from_secs(5), |h| {
        h.calls_of(&format!("create {A}.next")) == 1
    });
    h.until("told", |h| {
        h.heard()
            .iter()
            .any(|l| l.starts_with(&format!("lock overridden {A}")))
    });
    h.runtime.shutdown();
}

#[test]
fn a_remote_restart_waits_for_the_lock_too() {
    let mut h = harness(None);
    let file = hold(&h);
    h.runtime.recreate(Role::Driver);
    assert_eq!(h.runtime.recreating(), 1);
    h.quiet_for(Duration::from_millis(1500));
    assert!(!h.called(&format!("remove {A}")), "{:?}", h.engine.calls());
    std::fs::remove_file(file).unwrap();
    h.until_timed("recreated", Duration::from_secs(5), |h| {
        h.called(&format!("remove {A}")) && h.runtime.recreating() == 0
    });
    h.runtime.shutdown();
}

#[test]
fn a_trial_overdue_behind_a_deferred_update_sets_no_deadline_that_is_always_due() {
    let mut h = harness_with(Tuning {
        probation: Duration::from_secs(1),
        lock_max_defer: None,
        ..Tuning::example(3)
    });
    // v2 waits for the lock while v1's probation runs out: v1 cannot be promoted (its spec is
    // not the desired one any more).
    hold(&h);
    h.want(&[v2()]);
    h.quiet_for(Duration::from_millis(2500));
    let due = h.runtime.next_deadline();
    assert!(due.is_none_or(|t| t > Instant::now()), "{due:?}");
    h.runtime.shutdown();
}
