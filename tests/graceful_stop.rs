//! Every way a running driver is replaced stops it as a robot's driver must be stopped: its
//! stop signal and its own grace period first, SIGKILL only after that (reference §5.7 step
//! 5). The engine's own events are the witness; the driver image parks on SIGTERM and says
//! so, and that line must reach `driverlog` and our stderr.

use std::process::Command;
use std::time::Duration;

use crate::support::docker::{self as dk, Events, IMAGE};
use crate::support::drivers::*;
use crate::support::*;
use serde_json::json;

const SEC: Duration = Duration::from_secs(1);

fn parked(broker_sub: &crate::support::broker::Subscriber, what: &str, log: &dyn Fn() -> String) {
    assert!(
        broker_sub
            .wait_for(15 * SEC, |_, p| p["message"]
                == json!("driver: INFO parked"))
            .is_some(),
        "{what}: the driver's `parked` line never reached driverlog\n{}",
        log()
    );
}

/// The new container's first line reached driverlog: it is followed (and has set its trap).
fn started(logs: &crate::support::broker::Subscriber, log: &dyn Fn() -> String) {
    let line = logs.wait_for(15 * SEC, |_, p| {
        p["message"]
            .as_str()
            .is_some_and(|m| m.contains("starting for twin"))
    });
    assert!(line.is_some(), "{}", log());
}

/// Waits until `name` runs as a container other than `old`; returns its id.
fn replaced(name: &str, old: &str, timeout: Duration, log: &dyn Fn() -> String) -> String {
    assert!(
        wait_until(timeout, || {
            let id = dk::id_of(name);
            !id.is_empty()
                && id != old
                && dk::inspect(name).is_some_and(|i| i["State"]["Status"] == json!("running"))
        }),
        "{name} not replaced\n{}",
        log()
    );
    dk::id_of(name)
}

#[test]
fn a_leftover_a_spec_change_and_a_remote_restart_all_stop_the_driver_gracefully() {
    let Some((twin, backend, broker, dir, _c)) = setup("graceful_paths", "park") else {
        return;
    };
    let name = container(&twin);
    // A leftover of that name from before (not ours: no labels), parking on SIGTERM too.
    let run = Command::new("docker")
        .args([
            "run",
            "-d",
            "--init",
            "--name",
            &name,
            "-e",
            "DRIVER_MODE=park",
            IMAGE,
        ])
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let leftover = dk::id_of(&name);
    let events = Events::watch(&[&name]);
    let logs = broker.subscribe(&format!("devcyberwave/twin/{twin}/driverlog"));
    let d = Daemon::start(&dir);
    let log = || d.log();

    let first = replaced(&name, &leftover, 60 * SEC, &log);
    events.assert_graceful(&leftover, "stale leftover");
    // Followed: its first line reached driverlog.
    started(&logs, &log);

    // The backend changes the driver's profile: the spec differs, the driver is recreated.
    let asset = format!("a55e7{}", &twin[5..]);
    backend.add_asset(json!({"uuid": asset, "name": "example",
        "metadata": {"drivers": {"default": {"docker_image": IMAGE, "privileged": false,
            "params": ["-e", "DRIVER_MODE=park", "-e", "ARM_SPEED=2"]}}}}));
    d.signal(libc::SIGHUP);
    let second = replaced(&name, &first, 60 * SEC, &log);
    events.assert_graceful(&first, "spec change");
    parked(&logs, "spec change", &log);
    assert!(
        dk::env_of(&name).iter().any(|e| e == "ARM_SPEED=2"),
        "the new spec runs"
    );
    started(&logs, &log);

    // The dashboard asks for a remote restart: our containers are recreated.
    let card = request_restart(&backend, &broker, "graceful-r1");
    replaced(&name, &second, 60 * SEC, &log);
    events.assert_graceful(&second, "remote restart");
    parked(&logs, "remote restart", &log);
    assert!(wait_until(30 * SEC, || backend
        .alert(&card)
        .is_some_and(|a| a["metadata"]["phase"] == json!("completed"))));

    // Every line a driver writes reaches the journal verbatim (our stderr), once per line.
    let stderr = d.log();
    let verbatim = stderr
        .lines()
        .filter(|l| *l == "driver: INFO parked")
        .count();
    assert_eq!(verbatim, 2, "{stderr}");
}

#[test]
fn a_driver_that_ignores_sigterm_is_killed_only_after_its_stop_timeout() {
    let Some((_twin, name, backend, _c)) = setup_profile(
        "graceful_stubborn",
        Some("arm"),
        json!({"default": {"services": [{"name": "arm", "image": IMAGE, "privileged": false,
            "stop_timeout_s": 3, "env": {"DRIVER_MODE": "stubborn"}}]}}),
    ) else {
        return;
    };
    let broker = broker_for_token();
    let dir = EdgeDir::standard(&backend.url(), broker.port);
    let events = Events::watch(&[&name]);
    let d = Daemon::start(&dir);
    let log = || d.log();
    let first = replaced(&name, "", 60 * SEC, &log);
    assert_eq!(
        dk::inspect(&name).unwrap()["Config"]["StopTimeout"],
        json!(3)
    );
    // Let the driver set its trap before it is asked to stop, and the daemon see it up (a
    // restart during its launch leaves the container just created as it is).
    assert!(wait_until(15 * SEC, || dk::logs(&name).contains("starting")));
    let (_, st) = dir.wait_status(15 * SEC, |_, v| {
        driver_state(v, &name).as_deref() == Some("running")
    });
    assert_eq!(driver_state(&st, &name).as_deref(), Some("running"), "{st}");
    request_restart(&backend, &broker, "stubborn-r1");
    replaced(&name, &first, 60 * SEC, &log);
    let ev = events.assert_graceful(&first, "stubborn driver");
    let at = |sig: u32| {
        ev.iter()
            .find(|(a, s, _)| a == "kill" && *s == Some(sig))
            .map(|(_, _, t)| *t)
    };
    let (term, kill) = (at(15).unwrap(), at(9));
    let kill = kill.unwrap_or_else(|| panic!("a driver ignoring SIGTERM must get SIGKILL: {ev:?}"));
    let waited = Duration::from_nanos((kill - term) as u64);
    assert!(
        waited >= Duration::from_millis(2800) && waited <= Duration::from_secs(8),
        "SIGKILL came {waited:?} after SIGTERM (stop timeout 3 s): {ev:?}"
    );
}
