//! The data bus on the real binary (issue 14) with third-party peers (the SDK's
//! `eclipse-zenoh`): the embedded router carries samples between two Python clients; a driver
//! that publishes nothing raises `driver_data_stalled` and data resolves it, with its rate in
//! `status`; the router container role; a `ZENOH_MODE` the SDK refuses is reported, not
//! injected.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::daemon::{Daemon, EdgeDir};
use crate::support::docker::{self as dk, Cleanup, IMAGE};
use crate::support::drivers::*;
use crate::support::zenoh as zp;
use crate::support::*;

const SEC: Duration = Duration::from_secs(1);

fn session_open(dir: &EdgeDir) -> bool {
    dir.status().1.pointer("/bus/session/state") == Some(&json!("open"))
}

#[test]
fn the_embedded_router_carries_samples_and_a_silent_driver_is_alerted() {
    let Some(py) = zp::python() else {
        eprintln!("skipped: no eclipse-zenoh in the test venv (run scripts/test)");
        return;
    };
    let Some((twin, backend, _broker, mut dir, _c)) = setup("bus_stall", "run") else {
        return;
    };
    let port = crate::support::broker::free_port();
    let endpoint = format!("tcp/127.0.0.1:{port}");
    dir.set_env("ZENOH_ROUTER_MODE", "embedded");
    dir.set_env("ZENOH_ROUTER_PORT", &port.to_string());
    dir.set_env("CYBERWAVE_DRIVER_DATA_STALL_SECONDS", "3");
    let mut d = Daemon::start(&dir);
    assert!(wait_until(30 * SEC, || session_open(&dir)), "{}", d.log());
    let name = container(&twin);
    assert!(
        wait_until(60 * SEC, || driver_state(&dir.status().1, &name).as_deref()
            == Some("running")),
        "{}",
        d.log()
    );
    // Drivers are pointed at the router.
    assert!(
        dk::env_of(&name).contains(&format!("ZENOH_CONNECT={endpoint}")),
        "{:?}",
        dk::env_of(&name)
    );

    // Two third-party clients exchange samples through it.
    let sub = zp::spawn(&py, &["sub", &endpoint, "demo/**", "20", "20"]);
    let published = zp::run(&py, &["pub", &endpoint, "demo/x", "50", "64", "1"]);
    assert_eq!(published["published"], json!(50));
    let got = zp::result_of(&sub, 25 * SEC).unwrap_or(Value::Null);
    assert!(got["received"].as_u64().unwrap_or(0) >= 20, "{got}");

    // The example driver publishes nothing: three seconds later it is alerted.
    let stalled = || backend.alerts_of_type("driver_data_stalled");
    assert!(
        wait_until(20 * SEC, || !stalled().is_empty()),
        "{}",
        d.log()
    );
    let a = &stalled()[0];
    let (code, s) = dir.status();
    assert_eq!(
        (code, &s["bus"]["stalled"]),
        (1, &json!([twin])),
        "{}",
        s["bus"]
    );
    assert_eq!(a["twin_uuid"], json!(twin));
    assert_eq!(a["severity"], json!("warning"));
    assert_eq!(a["name"], json!("Driver data stalled"));
    assert_eq!(a["metadata"]["container_name"], json!(name));
    // The driver's side, through the SDK's own data API with exactly the container's ZENOH_*
    // variables (cw.data: get_backend() from the environment, DataBus.publish): status shows
    // the flow and the alert resolves.
    let zenv = zp::zenoh_env_of(&dk::env_of(&name));
    let sdk_py = py.clone();
    let sdk_twin = twin.clone();
    let publisher =
        std::thread::spawn(move || zp::run_with(&sdk_py, &["sdk", &sdk_twin, "20", "12"], &zenv));
    assert!(
        wait_until(20 * SEC, || stalled()[0]["status"] == json!("resolved")),
        "{}",
        d.log()
    );
    std::thread::sleep(3 * SEC);
    let (_, s) = dir.status();
    let c = s["drivers"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == json!(name))
        .cloned()
        .unwrap();
    // Two channels at 20 Hz each.
    let rate = c["data"]["rate_hz"].as_f64().unwrap_or(0.0);
    assert!((28.0..=52.0).contains(&rate), "{c}");
    assert!(
        c["data"]["last_sample_age_s"].as_f64().unwrap() < 1.0,
        "{c}"
    );
    assert_eq!(c["data"]["channels"], json!(["frames", "joint_states"]));
    let (ok, out, err) = publisher.join().unwrap();
    assert!(ok, "the SDK publisher failed: {out} {err}");
    assert!(
        s["bus"]["mode"]
            .as_str()
            .unwrap()
            .starts_with("router-managed"),
        "{}",
        s["bus"]
    );
    assert_eq!(s["bus"]["router"]["kind"], json!("embedded"));
    d.terminate();
}

#[test]
fn the_router_container_is_a_role_and_a_bad_mode_is_not_injected() {
    let Some((twin, backend, broker, mut dir, _c)) = setup("bus_router", "run") else {
        return;
    };
    let router = format!("cyberwave-zenoh-router-{}", &ENV_UUID[..8]);
    let _r = Cleanup(vec![router.clone()]);
    dk::rm(&router);
    dir.set_env("ZENOH_ROUTER_ENABLED", "true");
    // No registry here: a local image stands in for eclipse/zenoh.
    dir.set_env("ZENOH_ROUTER_IMAGE", IMAGE);
    dir.set_env("ZENOH_MODE", "router");
    let mut d = Daemon::start(&dir);
    let running =
        |n: &str| dk::inspect(n).is_some_and(|i| i.pointer("/State/Running") == Some(&json!(true)));
    assert!(wait_until(60 * SEC, || running(&router)), "{}", d.log());
    let i = dk::inspect(&router).unwrap();
    assert_eq!(i["HostConfig"]["NetworkMode"], json!("host"));
    assert_eq!(
        i["HostConfig"]["RestartPolicy"]["Name"],
        json!("unless-stopped")
    );
    assert_eq!(
        i["Config"]["Labels"]["io.cyberwave.edge.owner"],
        json!(FINGERPRINT)
    );
    let id = i["Id"].clone();
    let name = container(&twin);
    assert!(wait_until(60 * SEC, || running(&name)), "{}", d.log());
    let env = dk::env_of(&name);
    assert!(!env.iter().any(|e| e.starts_with("ZENOH_MODE=")), "{env:?}");
    assert!(
        env.contains(&"ZENOH_CONNECT=tcp/127.0.0.1:7447".to_string()),
        "{env:?}"
    );
    // What the SDK in the driver makes of that environment: accepted. The same with the mode we
    // refused is the BackendConfigError that would have stopped every driver.
    if let Some(py) = zp::python() {
        let zenv = zp::zenoh_env_of(&env);
        let (ok, cfg, err) = zp::run_with(&py, &["sdkconfig"], &zenv);
        assert!(ok, "{err}");
        assert_eq!(cfg["connect"], json!(["tcp/127.0.0.1:7447"]));
        let mut bad = zenv.clone();
        bad.push(("ZENOH_MODE".into(), "router".into()));
        let (ok, _, err) = zp::run_with(&py, &["sdkconfig"], &bad);
        assert!(
            !ok && err.contains("ZENOH_MODE must be peer or client"),
            "{err}"
        );
    }
    let (_, s) = dir.status();
    assert!(
        s["bus"]["warnings"].as_array().unwrap().iter().any(|w| w
            .as_str()
            .unwrap()
            .contains("ZENOH_MODE=\"router\" is not peer or client")),
        "{}",
        s["bus"]
    );
    // A restarted daemon adopts the router as it is.
    d.terminate();
    let mut d = Daemon::start(&dir);
    std::thread::sleep(5 * SEC);
    assert_eq!(dk::inspect(&router).unwrap()["Id"], id, "{}", d.log());
    // A remote restart recreates it, as it does the drivers.
    assert!(wait_until(30 * SEC, || dir.status().1["mqtt"]["connected"]
        == json!(true)));
    request_restart(&backend, &broker, "bus1");
    assert!(
        wait_until(60 * SEC, || dk::inspect(&router).is_some_and(|i| i["Id"]
            != id
            && i["State"]["Running"] == json!(true))),
        "{}",
        d.log()
    );
    d.terminate();
}

#[test]
fn without_a_router_the_daemon_links_to_its_own_drivers_peers_only() {
    let Some(py) = zp::python() else {
        return;
    };
    if !dk::available() {
        return;
    }
    dk::ensure_image();
    let twin = dk::twin_uuid("bus_p2p");
    let name = container(&twin);
    let _cleanup = Cleanup(vec![name.clone()]);
    dk::rm(&name);
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let host = host.trim();
    let key = format!("cw/{twin}/data/imu");
    // The driver: the SDK's zenoh in a container of ours, with drivers' defaults (multicast
    // discovery), publishing its twin's data, this host's worker stats and another host's.
    let keys =
        format!("{key}+cw/_monitor/{host}/worker_stats+cw/_monitor/another-edge/worker_stats");
    let params = zp::in_container(&py, &["pub", "multicast", &keys, "20", "16", "300"]);
    let asset = format!("a55e7{}", &twin[5..]);
    let mut dir = EdgeDir::empty();
    dir.write_raw(
        "manifest.json",
        &json!({"twins": [{"uuid": twin, "name": "p2p", "asset_uuid": asset, "metadata": {}}],
                "assets": [{"uuid": asset, "metadata": {"drivers": {"default": {
                    "docker_image": IMAGE, "privileged": false, "params": params}}}}]})
        .to_string(),
    );
    dir.set_env("CYBERWAVE_HARDWARE_WATCHDOG", "false");
    let manifest = dir.file("manifest.json");
    let mut d = Daemon::start_with(&dir, &["run", "--local", manifest.to_str().unwrap()]);
    assert!(wait_until(30 * SEC, || session_open(&dir)), "{}", d.log());
    // A foreign peer on this host (not a container of ours) publishes 1000-byte samples on
    // the same key: it is never linked, so none of its bytes are counted.
    let _foreign = zp::spawn(&py, &["pub", "multicast", &key, "20", "1000", "300"]);
    let samples = |s: &Value| {
        s.pointer(&format!("/bus/twins/{twin}/samples"))
            .and_then(Value::as_u64)
            .unwrap_or(0)
    };
    assert!(
        wait_until(90 * SEC, || samples(&dir.status().1) >= 50),
        "{}\n{}",
        dir.status().1["bus"],
        dk::logs(&name)
    );
    let (_, s) = dir.status();
    let bytes = s
        .pointer(&format!("/bus/twins/{twin}/bytes"))
        .and_then(Value::as_u64);
    assert_eq!(bytes, Some(16 * samples(&s)), "{}", s["bus"]);
    assert_eq!(
        s["bus"]["mode"],
        json!("peer-to-peer (multicast discovery, no router)")
    );
    let links = s["bus"]["links"].as_array().cloned().unwrap_or_default();
    assert_eq!(links.len(), 1, "{}", s["bus"]);
    assert!(
        dk::id_of(&name).starts_with(links[0]["container"].as_str().unwrap_or("-")),
        "{}",
        s["bus"]
    );
    // This host's worker stats are listened to, another host's are not.
    let stats = s["bus"]["worker_stats"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    assert!(stats.contains_key(host), "{}", s["bus"]);
    assert!(!stats.contains_key("another-edge"), "{}", s["bus"]);
    // The daemon's session listens on the loopback only, never on the network.
    let inodes: Vec<String> = std::fs::read_dir(format!("/proc/{}/fd", d.pid()))
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter_map(|l| {
            l.to_str()?
                .strip_prefix("socket:[")?
                .strip_suffix(']')
                .map(str::to_string)
        })
        .collect();
    let listening: Vec<String> = std::fs::read_to_string("/proc/net/tcp")
        .unwrap()
        .lines()
        .chain(
            std::fs::read_to_string("/proc/net/tcp6")
                .unwrap_or_default()
                .lines(),
        )
        .filter(|l| l.split_whitespace().nth(3) == Some("0A"))
        .filter(|l| {
            l.split_whitespace()
                .nth(9)
                .is_some_and(|i| inodes.iter().any(|x| x == i))
        })
        .filter_map(|l| l.split_whitespace().nth(1).map(str::to_string))
        .collect();
    assert!(
        listening.iter().all(|a| a.starts_with("0100007F:")),
        "listening beyond the loopback: {listening:?}"
    );
    d.terminate();
}
