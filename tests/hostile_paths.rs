//! The new paths of issues 13 and 14 tried as a hostile user would (issue 20, item 11): a
//! command burst, huge bus settings, a docker error that hides its reason, an oversized camera
//! file, a symlink in `workers/`. Each test failed before its fix.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::*;

const SEC: Duration = Duration::from_secs(1);

/// 1,000 `sync_workflows` with distinct request ids in one burst used to cost the backend
/// 1,000 edge-sync fetches over 45 s: queued syncs merge (one in flight, one waiting).
#[test]
fn a_burst_of_sync_workflows_costs_the_backend_a_handful_of_fetches() {
    let backend = backend_with_twins();
    let broker = broker_for_token();
    let dir = EdgeDir::standard(&backend.url(), broker.port);
    let d = Daemon::start(&dir);
    let path = format!("/api/v1/workflows/edge-sync/{TWIN_A}");
    assert!(
        wait_until(20 * SEC, || !backend.requests_to("GET", &path).is_empty()),
        "no boot sync\n{}",
        d.log()
    );
    // Subscribed once the boot sync ran: give the link a moment to be sure.
    std::thread::sleep(2 * SEC);
    let before = backend.requests_to("GET", &path).len();
    backend.set_latency(Duration::from_millis(50));
    let lines: Vec<String> = (0..1000)
        .map(|i| {
            json!({"command": "sync_workflows", "request_id": format!("burst-{i}")}).to_string()
        })
        .collect();
    let started = Instant::now();
    broker.publish_lines(&format!("devcyberwave/twin/{TWIN_A}/command"), &lines);
    assert!(
        started.elapsed() < 5 * SEC,
        "the burst took {:?}",
        started.elapsed()
    );
    assert!(
        wait_until(10 * SEC, || d
            .log()
            .matches("sync_workflows requested")
            .count()
            >= 1000),
        "not every command arrived: {}",
        d.log().matches("sync_workflows requested").count()
    );
    std::thread::sleep(3 * SEC);
    let fetches = backend.requests_to("GET", &path).len() - before;
    assert!(
        (1..=6).contains(&fetches),
        "{fetches} edge-sync fetches for one burst"
    );
}

/// A failed `docker create` used to be reported by its last line only — "Run 'docker create
/// --help' for more information" — in the log, `status` and the alert. The reason stays.
#[test]
fn a_failed_docker_call_is_reported_with_its_reason() {
    use crate::support::docker as dk;
    let Some((twin, _name, backend, _c)) = crate::support::drivers::setup_profile(
        "hostile_docker_error",
        None,
        json!({"default": {"docker_image": dk::IMAGE, "privileged": false,
            "params": ["--bogus-flag"]}}),
    ) else {
        return;
    };
    let broker = broker_for_token();
    let dir = EdgeDir::standard(&backend.url(), broker.port);
    let d = Daemon::start(&dir);
    let alert = || {
        backend
            .alerts_of_type("driver_start_failure")
            .into_iter()
            .find(|a| a["twin_uuid"] == json!(twin))
    };
    assert!(wait_until(30 * SEC, || alert().is_some()), "{}", d.log());
    let detail = alert().unwrap()["metadata"]["technical_detail"].to_string();
    assert!(detail.contains("unknown flag: --bogus-flag"), "{detail}");
    let (_, s) = dir.status();
    let last_error = s.pointer("/drivers/containers/0/last_error").cloned();
    assert!(
        last_error
            .as_ref()
            .and_then(|e| e.as_str())
            .is_some_and(|e| e.contains("unknown flag: --bogus-flag")),
        "{last_error:?}"
    );
    assert!(
        d.log().contains("unknown flag: --bogus-flag"),
        "{}",
        d.log()
    );
}

/// A 1 MiB `ZENOH_CONNECT` through `credentials.json` used to yield one warning per malformed
/// endpoint: a 41 MB `status`, 1.6 s, 329 MB of daemon memory. Now a line or two.
#[test]
fn a_huge_zenoh_connect_gives_a_bounded_status_and_log() {
    let backend = backend_with_twins();
    let broker = broker_for_token();
    let dir = EdgeDir::standard(&backend.url(), broker.port);
    let huge = "x,".repeat(512 * 1024);
    dir.write_credentials(TOKEN, &[("ZENOH_CONNECT", &huge)]);
    let d = Daemon::start(&dir);
    assert!(
        wait_until(20 * SEC, || dir.status().1["mode"].is_string()),
        "{}",
        &d.log()[..d.log().len().min(4000)]
    );
    let started = Instant::now();
    let out = dir.command(&["status", "--json"]).output().unwrap();
    let took = started.elapsed();
    assert!(
        out.stdout.len() < 64 * 1024,
        "status is {} bytes",
        out.stdout.len()
    );
    assert!(took < 2 * SEC, "status took {took:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let warnings = v.pointer("/bus/warnings").cloned().unwrap_or_default();
    assert!(
        warnings
            .to_string()
            .contains("ZENOH_CONNECT is 1048576 bytes"),
        "{warnings}"
    );
    let text = dir.command(&["status"]).output().unwrap();
    assert!(
        text.stdout.len() < 64 * 1024,
        "text status is {} bytes",
        text.stdout.len()
    );
    std::thread::sleep(2 * SEC);
    assert!(
        d.log().len() < 1 << 20,
        "the log is {} bytes",
        d.log().len()
    );
    assert!(
        rss_kib(d.pid() as u32) < 64 * 1024,
        "{} KiB",
        rss_kib(d.pid() as u32)
    );
}

/// Running as root, the model-id scan used to follow a symlink in `workers/`: an "id" read
/// from a root-only file reached the backend, the log and an alert. Links are not followed.
#[test]
fn the_model_scan_never_reads_through_a_symlink_in_workers() {
    let Some(w) = crate::support::worker::setup("hostile_workers_symlink") else {
        return;
    };
    let secret = w.dir.tmp.path().join("root-only.conf");
    std::fs::write(&secret, "cw.models.load('root-only-secret-7f3a')\n").unwrap();
    let workers = w.workers();
    std::fs::create_dir_all(&workers).unwrap();
    std::os::unix::fs::symlink(&secret, workers.join("wf_link.py")).unwrap();
    std::fs::write(workers.join("wf_ok.py"), "print('ok')\n").unwrap();
    let d = Daemon::start(&w.dir);
    assert!(
        wait_until(30 * SEC, || d.log().contains("a symlink (not followed)")),
        "{}",
        d.log()
    );
    std::thread::sleep(2 * SEC);
    let leaked = |s: &str| s.contains("root-only-secret-7f3a");
    assert!(!leaked(&d.log()), "{}", d.log());
    for r in w.backend.requests() {
        assert!(!leaked(&format!("{r:?}")), "{r:?}");
    }
    for a in w.backend.alerts() {
        assert!(!leaked(&a.to_string()), "{a}");
    }
}

/// A `cameras.json` refused for its size used to count as absent on a running edge: the camera
/// driver was recreated without its device. The last good pins stay, and the log says so.
#[test]
fn an_oversized_cameras_json_keeps_the_last_good_pins() {
    use crate::support::docker as dk;
    use crate::support::drivers::{container, setup};
    let Some((twin, _backend, _broker, dir, _c)) = setup("hostile_cameras_size", "run") else {
        return;
    };
    let pin = "rtsp://10.0.0.9/stream1";
    dir.write_raw(
        "cameras.json",
        &json!({"twin_to_device": {twin.clone(): pin}}).to_string(),
    );
    let d = Daemon::start(&dir);
    let name = container(&twin);
    let device = format!("CYBERWAVE_METADATA_VIDEO_DEVICE={pin}");
    assert!(
        wait_until(30 * SEC, || dk::env_of(&name).contains(&device)),
        "{}",
        d.log()
    );
    let id = dk::id_of(&name);
    // 50 MB of pins: over the 1 MiB a camera file may have.
    let big = vec![b' '; 50 << 20];
    std::fs::write(dir.file("cameras.json.tmp"), &big).unwrap();
    std::fs::rename(dir.file("cameras.json.tmp"), dir.file("cameras.json")).unwrap();
    assert!(
        wait_until(10 * SEC, || d
            .log()
            .contains("last good camera pins from it are kept")),
        "{}",
        d.log()
    );
    std::thread::sleep(3 * SEC);
    assert_eq!(dk::id_of(&name), id, "recreated\n{}", d.log());
    assert!(dk::env_of(&name).contains(&device));
}
