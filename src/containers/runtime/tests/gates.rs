//! A graph's start order: a dependent is launched once its dependency is healthy, and after
//! the wait's deadline even when it never is (the wait may delay a start, never prevent one).

use super::*;
use crate::containers::spec::Gate;

const ROUTER: &str = "cyberwave-driver-g-router";
const APP: &str = "cyberwave-driver-g-app";

fn graph(timeout: Duration) -> Harness {
    let engine = Arc::new(FakeEngine::with_images(&["drv:local"]));
    let tuning = Tuning {
        gate_poll: Duration::from_millis(100),
        gate_timeout: timeout,
        ..Tuning::example(3)
    };
    let mut h = start_in(engine, tempfile::tempdir().unwrap(), tuning);
    h.until("first observation", |h| h.called("ps"));
    // Docker's list shows the router's healthcheck still starting.
    h.engine
        .statuses
        .lock()
        .unwrap()
        .insert(ROUTER.into(), "Up 1 second (health: starting)".into());
    let mut router = spec(ROUTER, "r1");
    router
        .options
        .extend(["--health-cmd".into(), "true".into()]);
    let mut app = spec(APP, "a1");
    app.links.after = vec![Gate {
        name: ROUTER.into(),
        healthy: true,
    }];
    h.want(&[router, app]);
    h.until_timed("router up", Duration::from_secs(5), |h| {
        h.heard().contains(&format!("up {ROUTER}"))
    });
    h
}

fn created(h: &Harness, name: &str) -> bool {
    h.engine
        .calls()
        .iter()
        .any(|c| c.starts_with("create") && c.contains(name))
}

#[test]
fn a_dependent_starts_once_its_dependency_is_healthy() {
    let mut h = graph(Duration::from_secs(60));
    h.quiet_for(Duration::from_millis(800));
    assert!(
        !created(&h, APP),
        "started before its dependency was healthy"
    );
    let status = h.runtime.snapshot();
    let app = status.iter().find(|(s, _)| s.name == APP).unwrap();
    assert_eq!(app.1["waiting_for"]["container"], json!(ROUTER));
    h.engine
        .statuses
        .lock()
        .unwrap()
        .insert(ROUTER.into(), "Up 4 seconds (healthy)".into());
    h.until_timed("app up", Duration::from_secs(5), |h| {
        h.heard().contains(&format!("up {APP}"))
    });
    let status = h.runtime.snapshot();
    let app = status.iter().find(|(s, _)| s.name == APP).unwrap();
    assert!(app.1["waiting_for"].is_null());
}

#[test]
fn a_dependency_that_never_gets_healthy_delays_but_never_prevents_the_start() {
    let mut h = graph(Duration::from_secs(1));
    let t = Instant::now();
    h.until_timed("app up anyway", Duration::from_secs(5), |h| {
        h.heard().contains(&format!("up {APP}"))
    });
    assert!(
        t.elapsed() >= Duration::from_millis(700),
        "{:?}",
        t.elapsed()
    );
}
