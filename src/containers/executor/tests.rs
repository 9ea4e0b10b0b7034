//! The executor against the recording fake engine: which engine calls each op makes, in
//! which order, and what it reports back to the supervisor.

use std::sync::Arc;

use crossbeam_channel::unbounded;

use super::*;
use crate::engine::fake::FakeEngine;
use crate::engine::{LABEL_OWNER, Runtimes};

/// Runs `ops` through the executor over `engine`; returns what it reported.
fn run(engine: &FakeEngine, ops: Vec<Op>) -> Vec<ExecEvent> {
    let (tx, rx) = unbounded();
    for op in ops {
        tx.send(op).unwrap();
    }
    drop(tx);
    let reported = std::sync::Mutex::new(Vec::new());
    run_ops(engine, &rx, &|ev| {
        reported.lock().unwrap().push(ev);
        true
    });
    reported.into_inner().unwrap()
}

fn running(name: &str) -> FakeEngine {
    let e = FakeEngine::default();
    e.put(name, "running", &[], "unless-stopped");
    e
}

#[test]
fn each_op_makes_its_calls_in_order() {
    let name = "cyberwave-driver-1";
    // (op, the calls it makes)
    let rows: Vec<(Op, Vec<String>)> = vec![
        (Op::Observe, vec!["ps".into()]),
        (
            Op::Restart {
                name: name.into(),
                timeout_s: 4,
            },
            vec![format!("stop {name} 4"), format!("start {name}")],
        ),
        (
            Op::Stop {
                name: name.into(),
                timeout_s: 9,
            },
            vec![format!("stop {name} 9")],
        ),
        (
            Op::Revive {
                name: name.into(),
                policy: "unless-stopped".into(),
            },
            vec![
                format!("restart-policy {name} unless-stopped"),
                format!("start {name}"),
            ],
        ),
        // A remote restart: a graceful stop with Docker's default grace, then the removal.
        (
            Op::Remove { name: name.into() },
            vec![
                format!("inspect {name}"),
                format!("stop {name} 10"),
                format!("remove {name}"),
            ],
        ),
        // A restart loop: the policy off first, so the engine does not start it again.
        (
            Op::StopLooping { name: name.into() },
            vec![
                format!("inspect {name}"),
                format!("restart-policy {name} no"),
                format!("stop {name} 10"),
            ],
        ),
    ];
    for (op, want) in rows {
        let e = running(name);
        let what = format!("{:?}", std::mem::discriminant(&op));
        let reported = run(&e, vec![op]);
        assert_eq!(e.calls(), want, "{what}");
        assert_eq!(reported.len(), 1, "{what}");
    }
}

#[test]
fn results_reach_the_supervisor() {
    let e = running("c");
    e.fail(
        "start c",
        "Error response from daemon: no space left on device",
    );
    let reported = run(
        &e,
        vec![
            Op::Revive {
                name: "c".into(),
                policy: "no".into(),
            },
            Op::Observe,
        ],
    );
    match &reported[0] {
        ExecEvent::OpDone { name, what, result } => {
            assert_eq!((name.as_str(), *what), ("c", "start"));
            let e = result.as_ref().unwrap_err().to_string();
            assert!(e.contains("no space left on device"), "{e}");
        }
        other => panic!("{other:?}"),
    }
    match &reported[1] {
        ExecEvent::Ps(Ok(list)) => {
            assert_eq!(list.len(), 1);
            assert_eq!(
                (list[0].name.as_str(), list[0].state.as_str()),
                ("c", "running")
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_stopped_loop_reports_the_engine_restart_count_read_before_the_stop() {
    let e = running("c");
    let reported = run(&e, vec![Op::StopLooping { name: "c".into() }]);
    match &reported[0] {
        ExecEvent::LoopStopped {
            name,
            restart_count,
            result,
        } => {
            assert_eq!((name.as_str(), *restart_count), ("c", Some(0)));
            assert!(result.is_ok());
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(e.state("c").as_deref(), Some("exited"));
    // Gone meanwhile: no count, the default grace period.
    let e = FakeEngine::default();
    let reported = run(&e, vec![Op::StopLooping { name: "c".into() }]);
    assert!(matches!(
        &reported[0],
        ExecEvent::LoopStopped {
            restart_count: None,
            ..
        }
    ));
    assert!(e.calls().contains(&"stop c 10".to_string()));
}

#[test]
fn runtimes_say_whether_nvidia_is_known_and_default() {
    let rows = [
        (vec!["runc"], "runc", false, false),
        (vec!["runc", "nvidia"], "runc", true, false),
        (vec!["runc", "nvidia"], "nvidia", true, true),
        // A default the engine does not list is no runtime at all.
        (vec!["runc"], "nvidia", false, false),
    ];
    for (known, default, nvidia, nvidia_default) in rows {
        let e = FakeEngine::default();
        *e.runtimes.lock().unwrap() = Runtimes {
            known: known.iter().map(|s| s.to_string()).collect(),
            default: default.into(),
        };
        match &run(&e, vec![Op::Runtimes])[0] {
            ExecEvent::Runtimes {
                nvidia: n,
                nvidia_default: d,
                ..
            } => assert_eq!((*n, *d), (nvidia, nvidia_default), "{known:?} {default}"),
            other => panic!("{other:?}"),
        }
    }
    // An engine that does not answer: no GPU runtime.
    let e = FakeEngine::default();
    e.fail("runtimes", "Cannot connect to the Docker daemon");
    assert!(matches!(
        &run(&e, vec![Op::Runtimes])[0],
        ExecEvent::Runtimes {
            nvidia: false,
            nvidia_default: false,
            ..
        }
    ));
}

#[test]
fn cleanup_retires_containers_removes_images_and_only_our_volumes() {
    let e = FakeEngine::with_images(&["old:1", "in-use:1"]);
    e.put("stale-running", "running", &[], "unless-stopped");
    e.put("stale-exited", "exited", &[], "no");
    e.fail(
        "rmi in-use:1",
        "conflict: image is being used by running container",
    );
    if let Ok(mut v) = e.volumes.lock() {
        v.insert("ours".into(), "fp-1".into());
        v.insert("theirs".into(), "fp-2".into());
    }
    let reported = run(
        &e,
        vec![Op::Cleanup {
            containers: vec!["stale-running".into(), "stale-exited".into()],
            images: vec!["old:1".into(), "in-use:1".into()],
            volumes_of: Some(("fp-1".into(), Default::default())),
            // The fake's data root is `/`, not an SD card: never deferred.
            sd_card_threshold: 80.0,
        }],
    );
    let calls = e.calls();
    let at = |c: &str| calls.iter().position(|x| x == c);
    // The running one gets its grace period before the removal; the exited one is removed.
    assert!(
        at("stop stale-running 10") < at("remove stale-running"),
        "{calls:?}"
    );
    assert!(at("remove stale-exited").is_some() && at("stop stale-exited 10").is_none());
    assert!(at("rmi old:1").is_some() && at("rmi in-use:1").is_some());
    assert!(
        at("rmv ours").is_some() && at("rmv theirs").is_none(),
        "{calls:?}"
    );
    assert_eq!(LABEL_OWNER, "io.cyberwave.edge.owner");
    match &reported[0] {
        ExecEvent::OpDone { what, result, .. } => {
            assert_eq!(*what, "cleanup");
            assert!(result.is_ok(), "a refused image is not a failed cleanup");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn events_are_forwarded_until_nobody_listens() {
    let e = Arc::new(FakeEngine::default());
    let (tx, rx) = unbounded();
    let slot = Arc::new(Mutex::new(None));
    let follower = {
        let (e, slot) = (e.clone(), slot.clone());
        thread::spawn(move || {
            follow_events(e.as_ref(), &|ev| tx.send(ev).is_ok(), &slot);
        })
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while !e.event("die cyberwave-driver-1 137") {
        assert!(Instant::now() < deadline, "the events stream never opened");
        thread::sleep(Duration::from_millis(10));
    }
    assert!(
        slot.lock().unwrap().is_some(),
        "the stream's handle is kept for shutdown"
    );
    e.event("garbage");
    e.event("start cyberwave-driver-1");
    // First the stream says it opened (events before it may have been missed).
    assert!(matches!(
        rx.recv_timeout(Duration::from_secs(5)).unwrap(),
        ExecEvent::EventStream(true)
    ));
    let got: Vec<(String, String, Option<i32>)> = (0..2)
        .map(|_| match rx.recv_timeout(Duration::from_secs(5)).unwrap() {
            ExecEvent::Container(c) => (c.action, c.name, c.exit_code),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        got,
        [
            ("die".into(), "cyberwave-driver-1".into(), Some(137)),
            ("start".into(), "cyberwave-driver-1".into(), None)
        ]
    );
    // The supervisor is gone: the next event ends the thread.
    drop(rx);
    e.event("stop cyberwave-driver-1");
    follower.join().unwrap();
}
