//! The hardware watchdog on a stand-in device file: armed after start-up and fed `1`, reported
//! in `watchdog_layers`, disarmed with the magic `V` on SIGTERM; left alone when disabled.

use std::time::Duration;

use serde_json::json;

use crate::support::daemon::{Daemon, EdgeDir};
use crate::support::*;

const SEC: Duration = Duration::from_secs(1);

#[test]
fn hardware_watchdog_is_armed_fed_reported_and_disarmed() {
    let backend = backend_with_twins();
    let broker = broker_for_token();
    let mut dir = EdgeDir::standard(&backend.url(), broker.port);
    let device = dir.tmp.path().join("watchdog");
    std::fs::write(&device, b"").unwrap();
    dir.set_env("CYBERWAVE_HARDWARE_WATCHDOG", "true");
    dir.set_env(
        "CYBERWAVE_HARDWARE_WATCHDOG_DEVICE",
        device.to_str().unwrap(),
    );
    let mut d = Daemon::start(&dir);
    d.wait_ready(&dir);
    let disc = backend
        .wait_for_request("POST", "/api/v1/edges/discover", 10 * SEC)
        .expect("discover");
    assert_eq!(
        disc.body["host_facts"]["watchdog_layers"],
        json!(["hardware"]),
        "{}",
        d.log()
    );
    assert!(std::fs::read(&device).unwrap().starts_with(b"1"));
    d.terminate();
    let fed = std::fs::read(&device).unwrap();
    assert!(fed.ends_with(b"V"), "no magic close: {fed:?}");

    // Disabled: the device is never touched.
    std::fs::write(&device, b"").unwrap();
    dir.set_env("CYBERWAVE_HARDWARE_WATCHDOG", "false");
    let mut d = Daemon::start(&dir);
    d.wait_ready(&dir);
    std::thread::sleep(SEC);
    d.terminate();
    assert!(std::fs::read(&device).unwrap().is_empty());
}
