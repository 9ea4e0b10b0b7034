//! The container runtime under any role (issue 9): log followers, and what the hostile-input
//! campaign found in this layer. Real engine, real Mosquitto, the fake backend.

use std::time::Duration;

use crate::support::docker::{self as dk};
use crate::support::drivers::*;
use crate::support::*;

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
    // Verbatim, as the original prints it (§3.6): the line alone, no prefix.
    assert!(
        log.lines().any(|l| l == "driver: line one"),
        "driver output missing from the daemon's own log ({name}):\n{log}"
    );
}

#[test]
fn a_hung_engine_socket_freezes_neither_sigterm_nor_status() {
    let Some((_twin, _backend, _broker, mut dir, _c)) = setup("hung_engine", "run") else {
        return;
    };
    // An "engine" that accepts every connection and never answers.
    let sock_dir = tempfile::tempdir().unwrap();
    let sock = sock_dir.path().join("engine.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for c in listener.incoming() {
            held.push(c);
        }
    });
    dir.set_env("DOCKER_HOST", &format!("unix://{}", sock.display()));
    let mut d = Daemon::start(&dir);
    std::thread::sleep(3 * SEC); // it has asked the engine for ps, events and logs by now
    for _ in 0..3 {
        let t = std::time::Instant::now();
        let (code, _) = dir.status();
        assert!(t.elapsed() < SEC, "status took {:?}", t.elapsed());
        assert_ne!(code, 2, "daemon not answering\n{}", d.log());
    }
    let t = std::time::Instant::now();
    d.signal(libc::SIGTERM);
    assert_eq!(
        d.wait_exit(5 * SEC).and_then(|s| s.code()),
        Some(0),
        "{}",
        d.log()
    );
    assert!(t.elapsed() < SEC, "SIGTERM took {:?}", t.elapsed());
}

#[test]
fn leftovers_of_a_crash_are_removed_at_start() {
    let backend = backend_with_twins();
    let broker = broker_for_token();
    let dir = EdgeDir::standard(&backend.url(), broker.port);
    let run = dir.file("run");
    std::fs::create_dir_all(&run).unwrap();
    let env_file = run.join("cyberwave-driver-0c0ffee0.env");
    std::fs::write(&env_file, format!("CYBERWAVE_API_KEY={TOKEN}\n")).unwrap();
    let tmp = dir.file(".edge.json.0123456789ab.tmp");
    let theirs = dir.file(".credentials.json.cli-writing.tmp");
    for f in [&tmp, &theirs] {
        std::fs::write(f, "{}").unwrap();
        let st = std::process::Command::new("touch")
            .args(["-d", "2 hours ago"])
            .arg(f)
            .status()
            .unwrap();
        assert!(st.success());
    }
    let mut d = Daemon::start(&dir);
    dir.wait_status(20 * SEC, |c, _| c != 2);
    assert!(!env_file.exists(), "an env file holding the token survived");
    assert!(!tmp.exists(), "a temp file of ours survived");
    assert!(theirs.exists(), "a temp file that is not ours was removed");
    d.signal(libc::SIGTERM);
    assert_eq!(d.wait_exit(5 * SEC).and_then(|s| s.code()), Some(0));
}

#[test]
fn after_sighup_the_launcher_publishes_on_the_new_broker() {
    if !dk::available() {
        return;
    }
    let twin = dk::twin_uuid("sighup_new_link");
    // Every launch attempt reports its failed pull on driverlog, through the launcher.
    let backend = backend_with_unpullable(&twin, "registry.invalid/cyberwave/none:2.0");
    let (a, b) = (broker_for_token(), broker_for_token());
    let mut dir = EdgeDir::standard(&backend.url(), a.port);
    dir.set_env("CYBERWAVE_DRIVER_RETRY_BASE_SECONDS", "1");
    let topic = format!("devcyberwave/twin/{twin}/driverlog");
    let on_a = a.subscribe(&topic);
    let mut d = Daemon::start(&dir);
    let pull_failed = |_: &str, p: &serde_json::Value| {
        p["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("docker pull failed"))
    };
    assert!(
        on_a.wait_for(60 * SEC, pull_failed).is_some(),
        "no pull report on the first broker\n{}",
        d.log()
    );
    // Move the edge to broker B and reload.
    dir.write_credentials(
        TOKEN,
        &[
            ("CYBERWAVE_BASE_URL", &backend.url()),
            ("CYBERWAVE_MQTT_PORT", &b.port.to_string()),
            ("CYBERWAVE_ENVIRONMENT", "dev"),
        ],
    );
    let on_b = b.subscribe(&topic);
    d.signal(libc::SIGHUP);
    assert!(
        on_b.wait_for(60 * SEC, pull_failed).is_some(),
        "the launcher kept publishing into the old link after SIGHUP\n{}",
        d.log()
    );
    d.signal(libc::SIGTERM);
    assert_eq!(d.wait_exit(5 * SEC).and_then(|s| s.code()), Some(0));
}
