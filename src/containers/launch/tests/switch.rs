//! Switching a running container to its successor (`launch/switch.rs`) on the fake engine:
//! the order of the engine calls, the old container given back its name when the successor
//! fails, the fallbacks, what an interrupted switch left, a graph held as a unit.

use super::*;

/// Launches `s` over its running predecessor; returns the result and the engine calls made
/// (image checks and hooks left out).
fn switch_over(
    engine: &Arc<FakeEngine>,
    l: &Launcher,
    s: &ContainerSpec,
) -> (Result<Up, LaunchFailure>, Vec<String>) {
    let before = engine.calls().len();
    let job = LaunchJob {
        spec: s.clone(),
        payload: json!({"uuid": "11111111-2222-4333-8444-555555555555"}),
        exists: true,
        settle: false,
    };
    let mut got = Vec::new();
    l.launch_batch(vec![job], |_, r| got.push(r));
    let calls = engine.calls()[before..]
        .iter()
        .filter(|c| !c.starts_with("image_exists") && !c.starts_with("prepare"))
        .cloned()
        .collect();
    (got.remove(0), calls)
}

#[test]
fn a_running_container_is_switched_stop_then_start_with_its_own_grace_period() {
    let d = tempfile::tempdir().unwrap();
    let engine = Arc::new(FakeEngine::with_images(&["drv:local"]));
    let l = launcher(engine.clone(), d.path());
    let mut s = spec("arm", "drv:local");
    s.options.extend(["--stop-timeout".into(), "3".into()]);
    assert!(launch(&l, vec![s.clone()])[0].1.is_ok());
    let (r, calls) = switch_over(&engine, &l, &s);
    assert!(r.is_ok(), "{r:?}");
    // Created beside it, names swapped while it runs; the robot is down from the stop to
    // the start; the old container goes once the new one passed its probe.
    assert_eq!(
        calls,
        [
            "inspect arm",
            "create arm.next",
            "rename arm arm.old",
            "rename arm.next arm",
            "stop arm.old 3",
            "start arm",
            "inspect arm",
            "remove arm.old",
        ],
    );
    assert_eq!(engine.state("arm").as_deref(), Some("running"));
    assert_eq!(engine.state("arm.old"), None);
}

#[test]
fn a_successor_that_fails_its_probe_gives_the_name_back_to_the_old_container() {
    let d = tempfile::tempdir().unwrap();
    let engine = Arc::new(FakeEngine::with_images(&["drv:local"]));
    let l = launcher(engine.clone(), d.path());
    let s = spec("arm", "drv:local");
    assert!(launch(&l, vec![s.clone()])[0].1.is_ok());
    let (r, calls) = {
        engine.fail("start arm", "exec format error");
        switch_over(&engine, &l, &s)
    };
    let f = r.unwrap_err();
    assert_eq!(f.phase, "docker_start_failed");
    let tail: Vec<&str> = calls.iter().map(String::as_str).skip(5).collect();
    assert_eq!(
        tail,
        [
            "start arm",
            "inspect arm",
            "remove arm",
            "rename arm.old arm",
            "start arm"
        ]
    );
    assert!(engine.state("arm.old").is_none() && engine.state("arm").is_some());
}

#[test]
fn a_container_that_cannot_be_renamed_is_stopped_before_its_successor_starts() {
    let d = tempfile::tempdir().unwrap();
    let engine = Arc::new(FakeEngine::with_images(&["drv:local"]));
    let l = launcher(engine.clone(), d.path());
    let s = spec("arm", "drv:local");
    assert!(launch(&l, vec![s.clone()])[0].1.is_ok());
    // What Docker answers for a container whose network is being set up again.
    engine.fail(
        "rename arm arm.old",
        "Error response from daemon: sandbox 0075c88 not found",
    );
    let (r, calls) = switch_over(&engine, &l, &s);
    assert!(r.is_ok(), "{r:?}");
    let tail: Vec<&str> = calls.iter().map(String::as_str).skip(2).collect();
    assert_eq!(
        tail,
        [
            "rename arm arm.old",
            "inspect arm",
            "stop arm 10",
            "remove arm",
            "rename arm.next arm",
            "start arm",
            "inspect arm"
        ]
    );
}

#[test]
fn what_an_interrupted_switch_left_is_settled_first() {
    let d = tempfile::tempdir().unwrap();
    let engine = Arc::new(FakeEngine::with_images(&["drv:local"]));
    let l = launcher(engine.clone(), d.path());
    // Killed after the names were swapped... and before the new one was renamed: the old
    // container runs as arm.old, a created arm.next waits.
    engine.put("arm.old", "running", &[], "unless-stopped");
    engine.put("arm.next", "created", &[], "unless-stopped");
    let job = LaunchJob {
        spec: spec("arm", "drv:local"),
        payload: json!({"uuid": "11111111-2222-4333-8444-555555555555"}),
        exists: false,
        settle: true,
    };
    let mut got = Vec::new();
    l.launch_batch(vec![job], |_, r| got.push(r));
    assert!(got[0].is_ok(), "{got:?}");
    let calls = engine.calls();
    // The old one got its name back and was then switched like any running container.
    assert!(
        calls.contains(&"rename arm.old arm".to_string()),
        "{calls:?}"
    );
    assert!(calls.contains(&"stop arm.old 10".to_string()), "{calls:?}");
    assert!(engine.state("arm.next").is_none() && engine.state("arm.old").is_none());
    assert_eq!(engine.state("arm").as_deref(), Some("running"));
}

#[test]
fn a_graph_whose_image_cannot_be_had_is_not_switched_half() {
    let d = tempfile::tempdir().unwrap();
    let engine = Arc::new(FakeEngine::with_images(&["drv:local"]));
    let l = launcher(engine.clone(), d.path());
    engine.put("arm-bridge", "running", &[], "unless-stopped");
    engine.put("arm-moveit", "running", &[], "unless-stopped");
    engine.fail("pull repo/moveit:2", "manifest unknown");
    let job = |name: &str, image: &str| LaunchJob {
        spec: spec(name, image),
        payload: json!({"uuid": "11111111-2222-4333-8444-555555555555"}),
        exists: true,
        settle: false,
    };
    let mut got = Vec::new();
    l.launch_batch(
        vec![
            job("arm-bridge", "drv:local"),
            job("arm-moveit", "repo/moveit:2"),
        ],
        |s, r| got.push((s.name.clone(), r.map(|_| ()).map_err(|f| f.phase))),
    );
    got.sort();
    assert_eq!(
        got,
        [
            ("arm-bridge".to_string(), Err("pull_failed")),
            ("arm-moveit".to_string(), Err("pull_failed"))
        ]
    );
    let calls = engine.calls();
    assert!(
        !calls
            .iter()
            .any(|c| c.starts_with("create") || c.starts_with("stop")),
        "{calls:?}"
    );
}
