//! The container runtime under any role (issue 9): log followers, and what the hostile-input
//! campaign found in this layer. Real engine, real Mosquitto, the fake backend.

mod support;

use std::time::Duration;

use support::docker::{self as dk};
use support::drivers::*;
use support::*;

const SEC: Duration = Duration::from_secs(1);

#[test]
fn driver_lines_reach_mqtt_once_capped_without_blanks_and_in_the_daemon_log() {
    let Some((twin, backend, broker, dir, _c)) = setup("log_lines_once", "lines") else {
        return;
    };
    let name = container(&twin);
    let sub = broker.subscribe(&format!("devcyberwave/twin/{twin}/driverlog"));
    let mut d = Daemon::start(&dir);
    // It exits 1 after its lines; Docker restarts it until the restart-loop breaker stops it.
    wait_until(40 * SEC, || {
        !backend.alerts_of_type("driver_restart_loop").is_empty()
    });
    let got = sub.collect(3 * SEC);
    let starts = dk::inspect(&name)
        .and_then(|i| i["RestartCount"].as_u64())
        .unwrap_or(0)
        + 1;
    let messages: Vec<String> = got
        .iter()
        .filter_map(|(_, p)| p["message"].as_str().map(str::to_string))
        .collect();
    let ones = messages.iter().filter(|m| *m == "driver: line one").count();
    assert!(
        ones >= 2 && ones as u64 <= starts,
        "'line one' published {ones} times for {starts} container starts: lines were replayed\n{messages:#?}"
    );
    assert!(
        messages.iter().all(|m| !m.trim().is_empty()),
        "blank lines published"
    );
    assert!(
        messages
            .iter()
            .any(|m| m.len() == 65536 && m.bytes().all(|b| b == b'x')),
        "no 64 KiB piece of the 200 KB line"
    );
    assert!(
        messages
            .iter()
            .any(|m| m.contains("longer than 65536 bytes were cut")),
        "cut lines not reported"
    );
    d.signal(libc::SIGTERM);
    assert_eq!(d.wait_exit(5 * SEC).and_then(|s| s.code()), Some(0));
    let log = d.log();
    assert!(
        log.contains(&format!("[{name}] driver: line one")),
        "driver output missing from the daemon's own log:\n{log}"
    );
}
