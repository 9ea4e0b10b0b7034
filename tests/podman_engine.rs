//! The edge core on Podman (`CYBERWAVE_CONTAINER_ENGINE=podman`): Debian's podman with runc,
//! the example driver image loaded from Docker, a real Mosquitto and the fake backend. The
//! same container names, labels and env as on Docker; adoption after our restart; an exited
//! driver started again by us at once (no daemon does it for Podman); log lines on
//! `driverlog`; a spec change with the graceful stop; both through Podman's API socket and,
//! without one, through the CLI (`podman events --format json`, `podman logs -f`).

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::daemon::{Daemon, EdgeDir};
use crate::support::docker::IMAGE;
use crate::support::podman::{self as pm, Cleanup, Service};
use crate::support::*;

const SEC: Duration = Duration::from_secs(1);

/// One Podman test at a time: the daemons under test share one fingerprint, so a remote
/// restart or a cleanup of one would act on another's containers.
fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

fn backend_with(twin: &str, mode: &str) -> FakeBackend {
    let asset = format!("a55e7{}", &twin[5..]);
    let b = FakeBackend::start(TOKEN);
    b.add_environment(
        ENV_UUID,
        vec![
            json!({"uuid": twin, "name": "podman twin", "asset_uuid": asset,
                    "environment_uuid": ENV_UUID, "metadata": {"edge_fingerprint": FINGERPRINT}}),
        ],
    );
    b.add_asset(json!({"uuid": asset, "metadata": {"drivers": {"default": {
        "docker_image": IMAGE, "privileged": false,
        "params": ["-e", format!("DRIVER_MODE={mode}")]}}}}));
    b
}

fn edge_dir(backend: &FakeBackend, broker: &Broker, socket: Option<&std::path::Path>) -> EdgeDir {
    let mut dir = EdgeDir::standard(&backend.url(), broker.port);
    dir.set_env("CYBERWAVE_CONTAINER_ENGINE", "podman");
    dir.set_env_os("CONTAINERS_CONF".as_ref(), pm::conf().as_os_str());
    let sock = socket.map_or_else(
        || dir.tmp.path().join("no-podman.sock"),
        |s| s.to_path_buf(),
    );
    dir.set_env_os("CYBERWAVE_PODMAN_SOCKET".as_ref(), sock.as_os_str());
    dir
}

/// The exit code of the latest `died` event of container `id` (podman's event log), and
/// every event of it (for the failure message).
fn died_with(id: &str) -> (Option<i64>, Vec<Value>) {
    // The event log is written by several processes (conmon, cleanup): read until it settles.
    std::thread::sleep(2 * SEC);
    let out = pm::podman(&[
        "events",
        "--since",
        "10m",
        "--stream=false",
        "--format",
        "json",
    ]);
    let mut events: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["ID"] == json!(id))
        .collect();
    events.sort_by(|a, b| a["Time"].as_str().cmp(&b["Time"].as_str()));
    let code = events
        .iter()
        .rfind(|e| e["Status"] == json!("died"))
        // Podman leaves an exit code of 0 out.
        .map(|e| e["ContainerExitCode"].as_i64().unwrap_or(0));
    (code, events)
}

fn scenario(test: &str, with_socket: bool) {
    if !pm::available() {
        return;
    }
    let _one = one_at_a_time();
    pm::ensure_image();
    let twin = crate::support::docker::twin_uuid(test);
    let name = format!("cyberwave-driver-{}", &twin[..8]);
    let _c = Cleanup(vec![
        name.clone(),
        format!("{name}.old"),
        format!("{name}.next"),
    ]);
    for n in &_c.0 {
        pm::rm(n);
    }
    let backend = backend_with(&twin, "park");
    let broker = broker_for_token();
    let tmp = tempfile::tempdir().unwrap();
    let service = with_socket.then(|| Service::start(tmp.path()));
    let dir = edge_dir(
        &backend,
        &broker,
        service.as_ref().map(|s| s.socket.as_path()),
    );
    let logs = broker.subscribe(&format!("devcyberwave/twin/{twin}/driverlog"));
    let mut d = Daemon::start(&dir);

    // Launched on Podman with the names, labels and env it has on Docker.
    assert!(wait_until(60 * SEC, || pm::running(&name)), "{}", d.log());
    let i = pm::inspect(&name).unwrap();
    let labels = &i["Config"]["Labels"];
    assert_eq!(labels["io.cyberwave.edge.twin"], json!(twin));
    assert_eq!(labels["io.cyberwave.edge.owner"], json!(FINGERPRINT));
    assert!(
        labels["io.cyberwave.edge.spec-hash"].is_string(),
        "{labels}"
    );
    let env: Vec<String> = serde_json::from_value(i["Config"]["Env"].clone()).unwrap();
    assert!(
        env.contains(&format!("CYBERWAVE_TWIN_UUID={twin}")),
        "{env:?}"
    );
    assert!(docker_has_none(&name), "the container went to Docker");
    let (_, s) = dir.wait_status(20 * SEC, |_, s| {
        s["drivers"]["containers"][0]["state"] == json!("running")
    });
    assert_eq!(s["engine"]["name"], json!("podman"), "{s}");
    assert!(
        s["engine"]["version"]
            .as_str()
            .is_some_and(|v| v.starts_with('4')),
        "{s}"
    );

    // The host facts name the engine too.
    let facts = wait_until(40 * SEC, || {
        backend
            .requests_to("POST", "/api/v1/edges/discover")
            .iter()
            .any(|r| r.body.pointer("/host_facts/container_engine/name") == Some(&json!("podman")))
    });
    assert!(facts, "no container_engine in the host facts\n{}", d.log());

    // Its lines reach the driverlog topic.
    let line = logs.wait_for(20 * SEC, |_, p| {
        p["message"]
            .as_str()
            .is_some_and(|m| m.contains("starting for twin"))
    });
    assert!(line.is_some(), "no driverlog\n{}", d.log());

    // Our restart adopts it: same container.
    let id = pm::id_of(&name);
    d.terminate();
    assert!(pm::running(&name), "our SIGTERM stopped the driver");
    let mut d = Daemon::start(&dir);
    std::thread::sleep(5 * SEC);
    assert_eq!(pm::id_of(&name), id, "not adopted\n{}", d.log());

    // It exits (a crash): started again by us, at once (Podman has no daemon to do it).
    let out = pm::podman(&["kill", "--signal", "KILL", &name]);
    assert!(out.status.success());
    let t = std::time::Instant::now();
    assert!(
        wait_until(30 * SEC, || pm::running(&name)),
        "not revived\n{}",
        d.log()
    );
    assert!(t.elapsed() < 20 * SEC, "revived after {:?}", t.elapsed());

    // A spec change: the old driver gets SIGTERM (it parks and exits 0), never SIGKILL.
    let id = pm::id_of(&name);
    d.terminate();
    let mut dir = dir;
    dir.set_env("CYBERWAVE_EDGE_LOG_LEVEL", "debug");
    dir.set_env("CYBERWAVE_SOME_NEW_SETTING", "1");
    let d = Daemon::start(&dir);
    assert!(
        wait_until(60 * SEC, || pm::running(&name) && pm::id_of(&name) != id),
        "not recreated\n{}",
        d.log()
    );
    let (code, events) = died_with(&id);
    assert_eq!(
        code,
        Some(0),
        "the old driver was not stopped gracefully: {events:?}\n{}",
        d.log()
    );
    drop(service);
}

fn docker_has_none(name: &str) -> bool {
    crate::support::docker::inspect(name).is_none()
}

#[test]
fn drivers_run_on_podman_through_its_api_socket() {
    scenario("podman_socket", true);
}

#[test]
fn drivers_run_on_podman_through_its_cli() {
    scenario("podman_cli", false);
}

/// A driver that keeps crashing on Podman: the restart-loop breaker stops it, alerts, and
/// tries it again after the backoff (whoever restarted it meanwhile: Podman's conmon or us).
#[test]
fn a_crash_loop_on_podman_is_stopped_alerted_and_retried() {
    if !pm::available() {
        return;
    }
    let _one = one_at_a_time();
    pm::ensure_image();
    let twin = crate::support::docker::twin_uuid("podman_loop");
    let name = format!("cyberwave-driver-{}", &twin[..8]);
    let _c = Cleanup(vec![
        name.clone(),
        format!("{name}.old"),
        format!("{name}.next"),
    ]);
    for n in &_c.0 {
        pm::rm(n);
    }
    let backend = backend_with(&twin, "crash");
    let broker = broker_for_token();
    let mut dir = edge_dir(&backend, &broker, None);
    dir.set_env("CYBERWAVE_DRIVER_RETRY_BASE_SECONDS", "3");
    let mut d = Daemon::start(&dir);
    let looped = wait_until(60 * SEC, || {
        !backend.alerts_of_type("driver_restart_loop").is_empty()
    });
    assert!(looped, "no restart loop\n{}", d.log());
    let a = &backend.alerts_of_type("driver_restart_loop")[0];
    assert_eq!(a["name"], json!("Driver restart loop detected"));
    assert_eq!(a["twin_uuid"], json!(twin));
    let (_, s) = dir.wait_status(10 * SEC, |_, s| {
        s["drivers"]["containers"][0]["state"] == json!("stopped (restart loop)")
    });
    assert_eq!(
        s["drivers"]["containers"][0]["state"],
        json!("stopped (restart loop)"),
        "{s}"
    );
    assert!(!pm::running(&name));
    let retried = wait_until(60 * SEC, || {
        backend.alerts_of_type("driver_restart_loop").len() >= 2
    });
    assert!(retried, "not retried\n{}", d.log());
    let alerts = backend.alerts_of_type("driver_restart_loop");
    assert_eq!(alerts[0]["metadata"]["retry_in_seconds"], json!(3));
    assert_eq!(alerts[1]["metadata"]["retry_in_seconds"], json!(6));
    d.terminate();
}
