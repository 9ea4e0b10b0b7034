//! Driver containers on the real Docker engine, with the example driver image built locally
//! (no registry), a real Mosquitto and the fake backend.

use std::time::{Duration, Instant};

use crate::support::docker::{self as dk, Cleanup, IMAGE};
use crate::support::drivers::*;
use crate::support::*;
use serde_json::json;

const SEC: Duration = Duration::from_secs(1);

#[test]
fn driver_starts_with_env_labels_mounts_and_reads_its_twin_file() {
    let Some((twin, backend, broker, dir, _c)) = setup("driver_starts", "run") else {
        return;
    };
    let name = container(&twin);
    let logs_sub = broker.subscribe(&format!("devcyberwave/twin/{twin}/driverlog"));
    let mut d = Daemon::start(&dir);
    let (_, s) = dir.wait_status(30 * SEC, |_, s| {
        driver_state(s, &name).as_deref() == Some("running")
    });
    // The driver_starting card (forced, one per start) went to container_running and resolved.
    assert!(wait_until(10 * SEC, || backend
        .alerts_of_type("driver_starting")
        .iter()
        .any(|a| a["status"] == json!("resolved"))));
    let card = &backend.alerts_of_type("driver_starting")[0];
    assert_eq!(card["force"], json!(true));
    assert_eq!(card["name"], json!("Driver starting"));
    assert_eq!(card["metadata"]["container_name"], json!(name));
    assert_eq!(
        card["metadata"]["phase"],
        json!("container_running"),
        "{card}"
    );
    assert_eq!(card["metadata"]["overall_progress_percent"], json!(80));
    assert_eq!(
        driver_state(&s, &name).as_deref(),
        Some("running"),
        "{s}\n{}",
        d.log()
    );
    // The status text is worked out when asked, not kept from the last container list.
    std::thread::sleep(3 * SEC);
    let (_, later) = dir.status();
    let text = later
        .pointer("/drivers/containers/0/status")
        .and_then(|v| v.as_str())
        .unwrap_or_default()
        .to_string();
    let secs: u64 = text
        .strip_prefix("running for ")
        .and_then(|t| t.strip_suffix('s'))
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("{later}"));
    assert!(secs >= 3, "{text}");

    let i = dk::inspect(&name).expect("container exists");
    let env: Vec<String> = i["Config"]["Env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap().to_string())
        .collect();
    let has = |kv: &str| env.iter().any(|e| e == kv);
    assert!(
        has(&format!("CYBERWAVE_TWIN_UUID={twin}")),
        "edge value wins over params: {env:?}"
    );
    assert!(has(&format!("CYBERWAVE_API_KEY={TOKEN}")));
    assert!(has(&format!("CYBERWAVE_TWIN_JSON_FILE=/app/{twin}.json")));
    assert!(has("CYBERWAVE_EDGE_CONFIG_DIR=/app/.cyberwave"));
    assert!(has("CYBERWAVE_ENVIRONMENT=dev"));
    assert!(has("CYBERWAVE_DATA_BACKEND=zenoh"));
    assert!(has("ZENOH_SHARED_MEMORY=false"));
    assert!(has("DRIVER_MODE=run"));
    assert!(has("CYBERWAVE_MQTT_HOST=127.0.0.1"), "{env:?}");
    assert!(has(&format!("CYBERWAVE_MQTT_PORT={}", broker.port)));
    let labels = &i["Config"]["Labels"];
    assert_eq!(labels["io.cyberwave.edge.twin"], json!(twin));
    assert!(
        labels["io.cyberwave.edge.spec-hash"]
            .as_str()
            .unwrap()
            .len()
            == 64
    );
    assert!(
        labels["io.cyberwave.edge.created-by"]
            .as_str()
            .unwrap()
            .starts_with("cyberwave-edge-core/")
    );
    assert_eq!(labels["extra.label"], json!("yes"));
    assert_eq!(
        i["HostConfig"]["RestartPolicy"]["Name"],
        json!("unless-stopped")
    );
    assert_eq!(i["HostConfig"]["NetworkMode"], json!("host"));
    assert_eq!(i["HostConfig"]["Init"], json!(true));
    assert_eq!(
        i["HostConfig"]["LogConfig"]["Config"]["max-size"],
        json!("10m")
    );
    let mounts = i["Mounts"].as_array().unwrap();
    let mount = |dst: &str| {
        mounts
            .iter()
            .find(|m| m["Destination"] == json!(dst))
            .cloned()
    };
    let cfg = mount("/app/.cyberwave").expect("config dir mounted");
    assert_eq!(cfg["RW"], json!(false));
    let tf = mount(&format!("/app/{twin}.json")).expect("twin file mounted");
    assert_eq!(tf["RW"], json!(true));
    // the token never went through argv (a 0600 env file), and that file is gone once
    // `docker create` has read it
    let envf = dir.file(&format!("run/{name}.env"));
    assert!(
        !envf.exists(),
        "the env file holding the token stayed on disk"
    );
    assert!(!i["Args"].to_string().contains(TOKEN) && !i["Path"].to_string().contains(TOKEN));

    // The driver itself read the twin file through CYBERWAVE_TWIN_JSON_FILE.
    wait_until(10 * SEC, || dk::logs(&name).contains("TWINFILE"));
    let logs = dk::logs(&name);
    assert!(
        logs.contains("TWINFILE")
            && logs.contains("driver twin run")
            && logs.contains("camera_config"),
        "{logs}"
    );
    // ... and its log lines reach MQTT as driver_log.
    let (_, p) = logs_sub
        .wait_for(15 * SEC, |_, p| {
            p["message"]
                .as_str()
                .is_some_and(|m| m.contains("TWINFILE"))
        })
        .unwrap_or_else(|| panic!("no driverlog\n{}", d.log()));
    assert_eq!(p["type"], json!("driver_log"));
    assert_eq!(p["container_name"], json!(name));
    assert_eq!(p["level"], json!("INFO"));
    assert_eq!(p["driver_image"], json!(IMAGE));

    // Bootstrap edge_health stopped once the driver runs.
    let health = broker.subscribe("devcyberwave/twin/+/edge_health");
    assert!(
        health.collect(3 * SEC).is_empty(),
        "bootstrap health still publishing"
    );
    let (code, s) = dir.status();
    assert_eq!(code, 0, "{s}");
    assert_eq!(s["daemon"]["running"], json!(true));

    // Daemon restart: the running driver is adopted, not recreated.
    let id_before = i["Id"].as_str().unwrap().to_string();
    d.signal(libc::SIGTERM);
    assert_eq!(d.wait_exit(5 * SEC).and_then(|s| s.code()), Some(0));
    assert_eq!(
        dk::inspect(&name).unwrap()["State"]["Running"],
        json!(true),
        "SIGTERM must not stop drivers"
    );
    let mut d2 = Daemon::start(&dir);
    let (_, s) = dir.wait_status(20 * SEC, |_, s| {
        driver_state(s, &name).as_deref() == Some("running")
    });
    assert_eq!(driver_state(&s, &name).as_deref(), Some("running"), "{s}");
    std::thread::sleep(2 * SEC);
    assert_eq!(
        dk::inspect(&name).unwrap()["Id"].as_str().unwrap(),
        id_before,
        "container was recreated\n{}",
        d2.log()
    );
    d2.signal(libc::SIGTERM);
    assert_eq!(d2.wait_exit(5 * SEC).and_then(|s| s.code()), Some(0));
}

#[test]
fn crash_loop_is_stopped_alerted_and_retried_with_backoff() {
    let Some((twin, backend, _broker, mut dir, _c)) = setup("crash_loop", "crash") else {
        return;
    };
    let name = container(&twin);
    dir.set_env("CYBERWAVE_DRIVER_RETRY_BASE_SECONDS", "3");
    let mut d = Daemon::start(&dir);
    // Docker restarts it (unless-stopped) every few hundred ms; >4 deaths in 60 s trips the loop.
    wait_until(40 * SEC, || {
        !backend.alerts_of_type("driver_restart_loop").is_empty()
    });
    let alerts = backend.alerts_of_type("driver_restart_loop");
    assert_eq!(alerts.len(), 1, "{alerts:?}\n{}", d.log());
    let a = &alerts[0];
    assert_eq!(a["twin_uuid"], json!(twin));
    assert_eq!(a["severity"], json!("error"));
    assert_eq!(a["source_type"], json!("edge"));
    assert_eq!(a["name"], json!("Driver restart loop detected"));
    // The original's words, with Docker's own restart count (read when it was stopped).
    std::thread::sleep(SEC);
    let docker_restarts = dk::inspect(&name).unwrap()["RestartCount"]
        .as_u64()
        .unwrap();
    assert!(docker_restarts >= 4, "{docker_restarts}");
    assert_eq!(
        a["description"],
        json!(format!(
            "Driver container '{name}' for twin 'twin-{}' restarted {} times in the last 60 seconds (total restarts reported by Docker: {docker_restarts}). The container was stopped automatically to prevent continuous rebooting. Troubleshooting: https://docs.cyberwave.com",
            &twin[..8],
            a["metadata"]["restarts_in_window"]
        ))
    );
    // stopped, with Docker's restart policy switched off
    std::thread::sleep(SEC);
    let i = dk::inspect(&name).unwrap();
    assert_eq!(i["State"]["Running"], json!(false));
    assert_eq!(i["HostConfig"]["RestartPolicy"]["Name"], json!("no"));
    let (code, s) = dir.status();
    assert_eq!(code, 1, "{s}");
    assert_eq!(
        driver_state(&s, &name).as_deref(),
        Some("stopped (restart loop)")
    );
    // After the backoff (3 s here) it is tried again, loops again, and the pause doubles.
    wait_until(40 * SEC, || {
        backend.alerts_of_type("driver_restart_loop").len() >= 2
    });
    let alerts = backend.alerts_of_type("driver_restart_loop");
    assert_eq!(alerts.len(), 2, "not retried\n{}", d.log());
    assert_eq!(alerts[0]["metadata"]["retry_in_seconds"], json!(3));
    assert_eq!(alerts[1]["metadata"]["retry_in_seconds"], json!(6));
    d.signal(libc::SIGTERM);
    assert_eq!(d.wait_exit(5 * SEC).and_then(|s| s.code()), Some(0));
}

#[test]
fn removed_driver_is_revived_after_the_grace_period() {
    let Some((twin, backend, _broker, mut dir, _c)) = setup("removed_revival", "run") else {
        return;
    };
    let name = container(&twin);
    dir.set_env("CYBERWAVE_DRIVER_REMOVED_REVIVAL_SECONDS", "3");
    let mut d = Daemon::start(&dir);
    let (_, s) = dir.wait_status(30 * SEC, |_, s| {
        driver_state(s, &name).as_deref() == Some("running")
    });
    assert_eq!(
        driver_state(&s, &name).as_deref(),
        Some("running"),
        "{s}\n{}",
        d.log()
    );
    let id = dk::inspect(&name).unwrap()["Id"]
        .as_str()
        .unwrap()
        .to_string();
    let removed_at = Instant::now();
    dk::rm(&name);
    // seen as removed within a second or two (docker events), alert raised
    let (_, s) = dir.wait_status(5 * SEC, |_, s| {
        driver_state(s, &name).as_deref() == Some("removed")
    });
    assert_eq!(driver_state(&s, &name).as_deref(), Some("removed"), "{s}");
    wait_until(10 * SEC, || {
        !backend.alerts_of_type("driver_health").is_empty()
    });
    let health = backend.alerts_of_type("driver_health");
    assert_eq!(health.len(), 1);
    assert_eq!(health[0]["severity"], json!("warning"));
    // `docker rm -f` kills first: the edge may see it exited before it is gone.
    assert_eq!(health[0]["name"], json!("Driver container stopped"));
    let said = |status: &str| {
        json!(format!(
            "Driver container '{name}' is no longer running ({status}). Frames from this camera will not be available to the worker."
        ))
    };
    assert!(
        [said("removed"), said("down")].contains(&health[0]["description"]),
        "{}",
        health[0]["description"]
    );
    // revived after the 3 s grace, not before
    let (_, s) = dir.wait_status(20 * SEC, |_, s| {
        driver_state(s, &name).as_deref() == Some("running")
    });
    assert_eq!(
        driver_state(&s, &name).as_deref(),
        Some("running"),
        "{s}\n{}",
        d.log()
    );
    assert!(removed_at.elapsed() >= 3 * SEC);
    let new_id = dk::inspect(&name).unwrap()["Id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(new_id, id);
    d.signal(libc::SIGTERM);
    assert_eq!(d.wait_exit(5 * SEC).and_then(|s| s.code()), Some(0));
}

#[test]
fn alerts_raised_offline_arrive_once_when_the_backend_returns() {
    let Some((twin, backend, _broker, dir, _c)) = setup("offline_alerts", "run") else {
        return;
    };
    let name = container(&twin);
    let mut d = Daemon::start(&dir);
    let (_, s) = dir.wait_status(30 * SEC, |_, s| {
        driver_state(s, &name).as_deref() == Some("running")
    });
    assert_eq!(
        driver_state(&s, &name).as_deref(),
        Some("running"),
        "{s}\n{}",
        d.log()
    );
    backend.set_offline(true);
    dk::rm(&name); // driver_health alert raised while the backend is unreachable
    std::thread::sleep(5 * SEC);
    assert!(backend.alerts_of_type("driver_health").is_empty());
    let outbox = std::fs::read_to_string(dir.file("alerts-outbox.json")).unwrap_or_default();
    assert!(
        outbox.contains("driver_health"),
        "not queued durably: {outbox}"
    );
    backend.set_offline(false);
    wait_until(60 * SEC, || {
        !backend.alerts_of_type("driver_health").is_empty()
    });
    std::thread::sleep(3 * SEC);
    assert_eq!(
        backend.alerts_of_type("driver_health").len(),
        1,
        "{:?}\n{}",
        backend.alerts(),
        d.log()
    );
    d.signal(libc::SIGTERM);
    assert_eq!(d.wait_exit(5 * SEC).and_then(|s| s.code()), Some(0));
}

#[test]
fn hung_docker_does_not_freeze_sigterm_or_status() {
    if !dk::available() {
        return;
    }
    let twin = dk::twin_uuid("hung_docker");
    let backend = backend_with_driver(&twin, "run");
    let mut dir = EdgeDir::standard(&backend.url(), crate::support::broker::free_port());
    let wrapper = dir.tmp.path().join("docker-hangs");
    std::fs::write(&wrapper, "#!/bin/sh\nsleep 120\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    dir.set_env("CYBERWAVE_DOCKER_BIN", wrapper.to_str().unwrap());
    let mut d = Daemon::start(&dir);
    d.wait_ready(&dir);
    std::thread::sleep(2 * SEC);
    let t = Instant::now();
    let (_, s) = dir.status();
    assert!(t.elapsed() < 2 * SEC, "status took {:?}", t.elapsed());
    assert_eq!(s["daemon"]["running"], json!(true));
    let t = Instant::now();
    d.signal(libc::SIGTERM);
    assert_eq!(
        d.wait_exit(5 * SEC).and_then(|s| s.code()),
        Some(0),
        "{}",
        d.log()
    );
    assert!(t.elapsed() < 5 * SEC);
}

#[test]
fn local_mode_runs_the_example_manifest_without_backend_or_broker() {
    if !dk::available() {
        return;
    }
    dk::ensure_image();
    // The example's twins under uuids of this test's own: a demo running the example on this
    // engine keeps its containers (the same names would make the two daemons fight).
    let example = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/local/manifest.json"
    ))
    .unwrap();
    let (t1, t2) = (dk::twin_uuid("local-mode-1"), dk::twin_uuid("local-mode-2"));
    let text = example
        .replace("0c0ffee0-0000-4000-8000-000000000001", &t1)
        .replace("0c0ffee1-0000-4000-8000-000000000002", &t2);
    assert_ne!(
        text, example,
        "the example's twin uuids changed: update this test"
    );
    let names = [container(&t1), container(&t2)];
    let _c = Cleanup(names.to_vec());
    for n in &names {
        dk::rm(n);
    }
    let mut dir = EdgeDir::empty();
    dir.env.clear();
    let manifest = dir.file("local-manifest.json");
    std::fs::write(&manifest, text).unwrap();
    let manifest = manifest.display().to_string();
    let mut d = Daemon::start_with(&dir, &["run", "--local", &manifest]);
    let (code, s) = dir.wait_status(30 * SEC, |c, _| c == 0);
    assert_eq!(code, 0, "{s}\n{}", d.log());
    assert_eq!(s["mode"], json!("local"));
    for n in &names {
        assert_eq!(driver_state(&s, n).as_deref(), Some("running"), "{s}");
        assert_eq!(dk::inspect(n).unwrap()["State"]["Running"], json!(true));
    }
    assert!(!dir.file("credentials.json").exists());
    // Idle means idle: a busy supervisor loop once burnt a whole core here.
    let cpu = |pid: i32| -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        let f: Vec<&str> = stat
            .rsplit_once(')')
            .unwrap()
            .1
            .split_whitespace()
            .collect();
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
        (f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap()) / hz
    };
    let before = cpu(d.pid());
    std::thread::sleep(3 * SEC);
    let used = cpu(d.pid()) - before;
    assert!(
        used < 0.3,
        "daemon used {used:.2} s of CPU in 3 s of idling\n{}",
        d.log()
    );
    d.signal(libc::SIGTERM);
    assert_eq!(d.wait_exit(5 * SEC).and_then(|s| s.code()), Some(0));
}

#[test]
fn failed_pull_is_reported_on_driverlog_and_as_an_alert() {
    if !dk::available() {
        return;
    }
    let twin = dk::twin_uuid("failed_pull");
    let backend = backend_with_unpullable(&twin, "registry.invalid/cyberwave/none:1.0");
    let broker = broker_for_token();
    let mut dir = EdgeDir::standard(&backend.url(), broker.port);
    dir.set_env("CYBERWAVE_DRIVER_RETRY_BASE_SECONDS", "1");
    let sub = broker.subscribe(&format!("devcyberwave/twin/{twin}/driverlog"));
    let mut d = Daemon::start(&dir);
    let (_, p) = sub
        .wait_for(60 * SEC, |_, p| {
            p["message"].as_str().is_some_and(|m| {
                m.starts_with("docker pull failed for image registry.invalid/cyberwave/none:1.0")
            })
        })
        .unwrap_or_else(|| panic!("no pull failure on driverlog\n{}", d.log()));
    assert_eq!(p["container_name"], json!(container(&twin)));
    wait_until(10 * SEC, || {
        !backend.alerts_of_type("driver_start_failure").is_empty()
    });
    let a = backend.alerts_of_type("driver_start_failure");
    assert_eq!(a.len(), 1, "{a:?}");
    assert_eq!(a[0]["name"], json!("Driver image not available"));
    assert_eq!(a[0]["metadata"]["phase"], json!("pull_failed"));
    assert_eq!(
        a[0]["description"],
        json!(
            "Driver image 'registry.invalid/cyberwave/none:1.0' could not be pulled for twin 'unpullable'. Troubleshooting: https://docs.cyberwave.com"
        )
    );
    let (code, s) = dir.status();
    assert_eq!(code, 1, "{s}");
    assert!(
        s["drivers"]["containers"][0]["last_error"]
            .as_str()
            .unwrap()
            .contains("pull_failed")
    );
    // Retries that fail the same way are not POSTed again: one card, not one per retry.
    let mut failures = 1;
    let end = std::time::Instant::now() + 30 * SEC;
    while failures < 3 && std::time::Instant::now() < end {
        if sub
            .wait_for(5 * SEC, |_, p| {
                p["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with("docker pull failed"))
            })
            .is_some()
        {
            failures += 1;
        }
    }
    assert!(failures >= 3, "the launch was not retried\n{}", d.log());
    assert_eq!(backend.alerts_of_type("driver_start_failure").len(), 1);
    // Each start's card says what failed, in plain words, and is resolved.
    let cards = backend.alerts_of_type("driver_starting");
    assert!(!cards.is_empty());
    let first = &cards[0];
    assert_eq!(first["metadata"]["failed"], json!(true), "{first}");
    assert_eq!(first["severity"], json!("critical"));
    assert_eq!(first["status"], json!("resolved"));
    d.signal(libc::SIGTERM);
    assert_eq!(d.wait_exit(5 * SEC).and_then(|s| s.code()), Some(0));
}

#[test]
fn cleanup_removes_only_our_stale_containers() {
    let Some((twin, _backend, _broker, mut dir, _c)) = setup("cleanup", "run") else {
        return;
    };
    let stale = format!("cyberwave-driver-{}", &dk::twin_uuid("cleanup-stale")[..8]);
    let foreign = format!(
        "cyberwave-driver-{}",
        &dk::twin_uuid("cleanup-foreign")[..8]
    );
    let _c2 = Cleanup(vec![stale.clone(), foreign.clone()]);
    let other_edge = format!(
        "cyberwave-driver-{}",
        &dk::twin_uuid("cleanup-other-edge")[..8]
    );
    let _c3 = Cleanup(vec![other_edge.clone()]);
    for (name, created_by, owner) in [
        (&stale, "cyberwave-edge-core/0.1.0", FINGERPRINT),
        (&foreign, "someone-else", FINGERPRINT),
        // another edge on the same engine: its stopped drivers are its business
        (
            &other_edge,
            "cyberwave-edge-core/0.2.0",
            "another-edge-fingerprint",
        ),
    ] {
        dk::rm(name);
        let out = std::process::Command::new("docker")
            .args([
                "create",
                "--name",
                name,
                "--label",
                &format!("io.cyberwave.edge.twin={twin}"),
                "--label",
                &format!("io.cyberwave.edge.created-by={created_by}"),
                "--label",
                &format!("io.cyberwave.edge.owner={owner}"),
                IMAGE,
                "true",
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // Unused volumes: ours (owner label) go, another edge's and unlabelled ones stay.
    let vols = [
        ("cw-test-vol-ours", Some(FINGERPRINT)),
        ("cw-test-vol-other-edge", Some("another-edge-fingerprint")),
        ("cw-test-vol-unlabelled", None),
    ];
    let volume = |args: &[&str]| {
        std::process::Command::new("docker")
            .args(args)
            .output()
            .unwrap()
    };
    for (v, owner) in vols {
        let _ = volume(&["volume", "rm", v]);
        let label = owner.map(|o| format!("io.cyberwave.edge.owner={o}"));
        let mut args = vec!["volume", "create"];
        if let Some(l) = &label {
            args.extend(["--label", l.as_str()]);
        }
        args.push(v);
        assert!(volume(&args).status.success());
    }
    let exists = |v: &str| volume(&["volume", "inspect", v]).status.success();
    dir.set_env("CYBERWAVE_CONTAINER_PRUNE_INTERVAL_SECONDS", "1");
    dir.set_env("CYBERWAVE_VOLUME_PRUNE_INTERVAL_SECONDS", "1");
    let mut d = Daemon::start(&dir);
    wait_until(40 * SEC, || dk::inspect(&stale).is_none());
    assert!(
        wait_until(20 * SEC, || !exists("cw-test-vol-ours")),
        "{}",
        d.log()
    );
    assert!(exists("cw-test-vol-other-edge") && exists("cw-test-vol-unlabelled"));
    for (v, _) in vols {
        let _ = volume(&["volume", "rm", v]);
    }
    assert!(
        dk::inspect(&stale).is_none(),
        "stale container of ours not pruned\n{}",
        d.log()
    );
    assert!(
        dk::inspect(&foreign).is_some(),
        "a container we did not create was removed"
    );
    assert!(
        dk::inspect(&other_edge).is_some(),
        "another edge's stopped driver was removed"
    );
    // Our running driver carries our owner label, and its image is on record for cleanup.
    let i = dk::inspect(&container(&twin)).unwrap();
    assert_eq!(
        i["Config"]["Labels"]["io.cyberwave.edge.owner"],
        json!(FINGERPRINT)
    );
    let images = std::fs::read_to_string(dir.file("edge-core-images.json")).unwrap_or_default();
    assert!(
        images.contains(IMAGE),
        "images run are not recorded: {images:?}"
    );
    assert_eq!(
        dk::inspect(&container(&twin)).unwrap()["State"]["Running"],
        json!(true)
    );
    d.signal(libc::SIGTERM);
    assert_eq!(d.wait_exit(5 * SEC).and_then(|s| s.code()), Some(0));
}

#[test]
fn chatty_driver_is_rate_limited_on_mqtt_and_drops_are_reported() {
    let Some((twin, _backend, broker, mut dir, _c)) = setup("chatty", "chatty") else {
        return;
    };
    dir.set_env("CYBERWAVE_DRIVER_LOG_LINES_PER_SECOND", "5");
    let sub = broker.subscribe(&format!("devcyberwave/twin/{twin}/driverlog"));
    let mut d = Daemon::start(&dir);
    let got = sub.collect(14 * SEC);
    let lines = got
        .iter()
        .filter(|(_, p)| {
            p["message"]
                .as_str()
                .is_some_and(|m| m.contains("chatty line"))
        })
        .count();
    let report = got.iter().find(|(_, p)| {
        p["message"]
            .as_str()
            .is_some_and(|m| m.contains("dropped by the rate limit"))
    });
    assert!(lines > 0, "no driver lines\n{}", d.log());
    // 5/s with a burst of 25 over at most ~14 s
    assert!(lines <= 25 + 5 * 14, "{lines} lines passed a 5/s limit");
    let (_, r) = report.unwrap_or_else(|| panic!("no drop report in {} messages", got.len()));
    assert_eq!(r["level"], json!("WARNING"));
    d.signal(libc::SIGTERM);
    assert_eq!(d.wait_exit(5 * SEC).and_then(|s| s.code()), Some(0));
}

/// `restart_edge_core` (reference §8.4): the backend's card goes in_progress → completed, our
/// driver container is recreated (new id) with a fresh twin file, and a second request while
/// the first runs is refused as `concurrent_restart`.
#[test]
fn remote_restart_recreates_our_containers_and_drives_the_alert() {
    let Some((twin, backend, broker, dir, _c)) = setup("remote_restart", "run") else {
        return;
    };
    // A service with a restart floor: stopped and kept by the restart, not recreated.
    let floored = dk::twin_uuid("remote_restart_floor");
    let floored_name = format!("cyberwave-driver-{}-svc", &floored[..8]);
    let _c2 = Cleanup(vec![floored_name.clone()]);
    dk::rm(&floored_name);
    let floored_asset = format!("a55e7{}", &floored[5..]);
    backend.add_twin(
        ENV_UUID,
        json!({"uuid": floored, "name": "floored", "asset_uuid": floored_asset,
               "environment_uuid": ENV_UUID, "metadata": {"edge_fingerprint": FINGERPRINT}}),
    );
    backend.add_asset(
        json!({"uuid": floored_asset, "metadata": {"drivers": {"default": {"services": [
        {"name": "svc", "image": IMAGE, "privileged": false, "min_restart_interval_s": 600,
         "env": {"DRIVER_MODE": "run"}}]}}}}),
    );
    let name = container(&twin);
    let d = Daemon::start(&dir);
    let (_, s) = dir.wait_status(30 * SEC, |_, s| {
        driver_state(s, &name).as_deref() == Some("running")
            && driver_state(s, &floored_name).as_deref() == Some("running")
    });
    assert_eq!(
        driver_state(&s, &name).as_deref(),
        Some("running"),
        "{}",
        d.log()
    );
    let old_id = dk::inspect(&name).unwrap()["Id"].clone();
    let floored_id = dk::inspect(&floored_name).unwrap()["Id"].clone();
    let first = request_restart(&backend, &broker, "r1");
    let second = request_restart(&backend, &broker, "r2");
    assert!(
        wait_until(60 * SEC, || backend
            .alert(&first)
            .is_some_and(|a| a["status"] == json!("resolved"))),
        "{}",
        d.log()
    );
    let a = backend.alert(&first).unwrap();
    assert_eq!(a["metadata"]["phase"], json!("completed"), "{a}");
    assert!(a["metadata"]["in_progress_at"].is_string());
    assert!(a["metadata"]["completed_at"].is_string());
    let b = backend.alert(&second).unwrap();
    assert_eq!(b["metadata"]["phase"], json!("failed"), "{b}");
    assert_eq!(b["metadata"]["reason"], json!("concurrent_restart"));
    assert_eq!(b["status"], json!("resolved"));
    // Recreated: a new container, running, with its twin file written again.
    assert!(wait_until(30 * SEC, || dk::inspect(&name).is_some_and(
        |i| i["Id"] != old_id && i["State"]["Status"] == json!("running")
    )));
    assert!(dir.file(&format!("{twin}.json")).exists());
    let kept = dk::inspect(&floored_name).unwrap();
    assert_eq!(
        kept["Id"], floored_id,
        "the floored container was recreated"
    );
    assert!(
        dir.file(&format!("{floored}.json")).exists(),
        "a kept container's twin file is written again"
    );
    assert_ne!(
        kept["State"]["Status"],
        json!("running"),
        "it rests for its floor"
    );
    let s = dir.status().1;
    assert_eq!(s["restart"]["last"]["result"], json!("completed"), "{s}");
    // A third request right after is rate-limited, not another restart.
    let third = request_restart(&backend, &broker, "r3");
    assert!(wait_until(10 * SEC, || backend.alert(&third).is_some_and(
        |a| a["metadata"]["reason"] == json!("rate_limited")
    )));
}

/// §8.3: a backend settings change reaches the twin file, and after it settles a sensor
/// driver is recreated with it (new container, file carrying the new value); any other
/// driver gets a `driver_restart_needed` alert instead of a restart.
#[test]
fn backend_setting_changes_restart_sensor_drivers_and_alert_for_others() {
    if !dk::available() {
        return;
    }
    dk::ensure_image();
    let camera_image = "cyberwave-example-camera-driver:local";
    let tagged = std::process::Command::new("docker")
        .args(["tag", IMAGE, camera_image])
        .status()
        .unwrap();
    assert!(tagged.success());
    let cam = dk::twin_uuid("meta_restart_camera");
    let arm = dk::twin_uuid("meta_restart_arm");
    // A camera service with a restart floor, and a gripper attached to the arm with no driver
    // of its own: neither is restarted; both get `driver_restart_needed`.
    let floored = dk::twin_uuid("meta_restart_floor");
    let gripper = dk::twin_uuid("meta_restart_gripper");
    let floored_name = format!("cyberwave-driver-{}-cam", &floored[..8]);
    let _c = Cleanup(vec![container(&cam), container(&arm), floored_name.clone()]);
    for n in [container(&cam), container(&arm), floored_name.clone()] {
        dk::rm(&n);
    }
    let backend = FakeBackend::start(TOKEN);
    let asset = |t: &str| format!("a55e7{}", &t[5..]);
    backend.add_environment(
        ENV_UUID,
        vec![
            json!({"uuid": cam, "name": "cam", "asset_uuid": asset(&cam), "environment_uuid": ENV_UUID,
                   "metadata": {"edge_fingerprint": FINGERPRINT, "fps": 15}}),
            json!({"uuid": arm, "name": "arm", "asset_uuid": asset(&arm), "environment_uuid": ENV_UUID,
                   "metadata": {"edge_fingerprint": FINGERPRINT, "speed": 1}}),
            json!({"uuid": floored, "name": "floored", "asset_uuid": asset(&floored), "environment_uuid": ENV_UUID,
                   "metadata": {"edge_fingerprint": FINGERPRINT, "fps": 15}}),
            json!({"uuid": gripper, "name": "gripper", "asset_uuid": asset(&gripper), "environment_uuid": ENV_UUID,
                   "attach_to_twin_uuid": arm,
                   "metadata": {"edge_fingerprint": FINGERPRINT, "force": 1}}),
        ],
    );
    backend.add_asset(
        json!({"uuid": asset(&floored), "metadata": {"drivers": {"default": {"services": [
        {"name": "cam", "image": camera_image, "privileged": false, "min_restart_interval_s": 600,
         "env": {"DRIVER_MODE": "run"}}]}}}}),
    );
    backend.add_asset(json!({"uuid": asset(&gripper), "metadata": {}}));
    // The camera parks on SIGTERM: its metadata restart must give it the chance.
    for (t, image, mode) in [(&cam, camera_image, "park"), (&arm, IMAGE, "run")] {
        backend.add_asset(
            json!({"uuid": asset(t), "metadata": {"drivers": {"default": {
            "docker_image": image, "privileged": false, "params": ["-e", format!("DRIVER_MODE={mode}")]}}}}),
        );
    }
    let broker = broker_for_token();
    let dir = EdgeDir::standard(&backend.url(), broker.port);
    let events = dk::Events::watch(&[&container(&cam)]);
    let d = Daemon::start(&dir);
    let (_, s) = dir.wait_status(30 * SEC, |_, s| {
        driver_state(s, &container(&cam)).as_deref() == Some("running")
            && driver_state(s, &container(&arm)).as_deref() == Some("running")
    });
    assert_eq!(
        driver_state(&s, &container(&cam)).as_deref(),
        Some("running"),
        "{}",
        d.log()
    );
    let cam_id = dk::inspect(&container(&cam)).unwrap()["Id"].clone();
    let arm_id = dk::inspect(&container(&arm)).unwrap()["Id"].clone();
    assert!(
        wait_until(30 * SEC, || dk::inspect(&floored_name)
            .is_some_and(|i| i["State"]["Status"] == json!("running"))),
        "{}",
        d.log()
    );
    let floored_info = dk::inspect(&floored_name).unwrap();
    assert_eq!(
        floored_info["Config"]["Labels"]["cyberwave.min_restart_interval_s"],
        json!("600")
    );
    // Volatile keys never restart anything; a real setting does.
    backend.edit_twin(&cam, |t| {
        t["metadata"]["fps"] = json!(30);
        t["metadata"]["status"] = json!("busy");
    });
    backend.edit_twin(&arm, |t| t["metadata"]["speed"] = json!(2));
    backend.edit_twin(&floored, |t| t["metadata"]["fps"] = json!(30));
    backend.edit_twin(&gripper, |t| t["metadata"]["force"] = json!(2));
    // A driver started less than 90 s before the change may still be reading it: the restart
    // waits that long (reference §8.3).
    assert!(
        wait_until(150 * SEC, || dk::inspect(&container(&cam)).is_some_and(
            |i| i["Id"] != cam_id && i["State"]["Status"] == json!("running")
        )),
        "camera driver not recreated\n{}",
        d.log()
    );
    events.assert_graceful(cam_id.as_str().unwrap(), "metadata restart");
    assert!(
        d.log().lines().any(|l| l == "driver: INFO parked"),
        "{}",
        d.log()
    );
    let file: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.file(&format!("{cam}.json"))).unwrap())
            .unwrap();
    assert_eq!(
        file["metadata"]["fps"],
        json!(30),
        "the relaunch kept the new setting"
    );
    let needed = |t: &str| {
        backend
            .alerts_of_type("driver_restart_needed")
            .into_iter()
            .find(|a| a["twin_uuid"] == json!(t))
    };
    assert!(
        wait_until(10 * SEC, || [&arm, &floored, &gripper]
            .iter()
            .all(|t| needed(t).is_some())),
        "{:?}\n{}",
        backend.alerts_of_type("driver_restart_needed"),
        d.log()
    );
    assert_eq!(needed(&arm).unwrap()["metadata"]["keys"], json!(["speed"]));
    assert_eq!(
        needed(&floored).unwrap()["metadata"]["keys"],
        json!(["fps"])
    );
    assert_eq!(
        needed(&gripper).unwrap()["metadata"]["keys"],
        json!(["force"])
    );
    assert_eq!(
        dk::inspect(&container(&arm)).unwrap()["Id"],
        arm_id,
        "a non-sensor driver is not restarted"
    );
    assert_eq!(
        dk::inspect(&floored_name).unwrap()["Id"],
        floored_info["Id"],
        "a sensor driver with a restart floor is not restarted"
    );
}
