//! The edge core tried as a hostile user would (issue 12): settings that used to abort it,
//! files that used to block or exhaust it, payloads that used to grow it, logs that used to
//! show the token, alerts that used to be dropped. Each test failed before its fix.

use std::os::unix::ffi::OsStrExt;
use std::time::Duration;

use serde_json::json;

use crate::support::backend::FakeBackend;
use crate::support::daemon::{Daemon, EdgeDir};
use crate::support::*;

const SEC: Duration = Duration::from_secs(1);

/// Every duration setting, with values that overflowed `Duration`/`Instant` arithmetic.
const DURATIONS: [&str; 9] = [
    "CYBERWAVE_EDGE_HTTP_TIMEOUT_SECONDS",
    "CYBERWAVE_EDGE_HEALTH_PUBLISH_INTERVAL_SECONDS",
    "CYBERWAVE_DRIVER_STARTUP_PROBE_SECONDS",
    "CYBERWAVE_DRIVER_RESTART_LOOP_WINDOW_SECONDS",
    "CYBERWAVE_DRIVER_REMOVED_REVIVAL_SECONDS",
    "CYBERWAVE_CONTAINER_PRUNE_INTERVAL_SECONDS",
    "CYBERWAVE_IMAGE_PRUNE_INTERVAL_SECONDS",
    "CYBERWAVE_DRIVER_RETRY_BASE_SECONDS",
    "CYBERWAVE_DRIVER_STARTING_ALERT_UPDATE_INTERVAL_SECONDS",
];
const HOSTILE: [&str; 7] = [
    "1e300",
    "inf",
    "-inf",
    "NaN",
    "-1",
    "1e-300",
    "99999999999999999999",
];

fn not_aborted(st: &std::process::ExitStatus, what: &str, log: &str) {
    use std::os::unix::process::ExitStatusExt;
    assert!(
        st.signal().is_none() && !matches!(st.code(), Some(101 | 134)),
        "{what}: {st:?}\n{log}"
    );
}

/// `status` and a running daemon survive every hostile duration, from the process
/// environment and from `credentials.json` `envs`, and a SIGHUP that brings them in.
#[test]
fn hostile_durations_never_abort_status_start_or_reload() {
    let backend = backend_with_twins();
    let broker = broker_for_token();
    for v in HOSTILE {
        let mut dir = EdgeDir::standard(&backend.url(), broker.port);
        for k in DURATIONS {
            dir.set_env(k, v);
        }
        dir.set_env("CYBERWAVE_MQTT_OUTBOX_MESSAGES", "1000000000000");
        dir.set_env("CYBERWAVE_MQTT_KEEPALIVE_SECONDS", v);
        dir.set_env("CYBERWAVE_MQTT_CONNECT_TIMEOUT", v);
        let out = dir.command(&["status", "--json"]).output().unwrap();
        not_aborted(&out.status, &format!("status with {v}"), "");
        let mut d = Daemon::start(&dir);
        d.wait_ready(&dir);
        // The same values from credentials.json, brought in by a reload.
        let mut envs: Vec<(&str, &str)> = DURATIONS.iter().map(|k| (*k, v)).collect();
        let url = backend.url();
        let port = broker.port.to_string();
        envs.extend([
            ("CYBERWAVE_BASE_URL", url.as_str()),
            ("CYBERWAVE_MQTT_PORT", port.as_str()),
            ("CYBERWAVE_ENVIRONMENT", "dev"),
        ]);
        dir.write_credentials(TOKEN, &envs);
        d.signal(libc::SIGHUP);
        std::thread::sleep(SEC);
        assert!(
            d.is_running(),
            "SIGHUP with {v} took the daemon down\n{}",
            d.log()
        );
        let (code, s) = dir.status();
        assert_eq!(s["daemon"]["running"], json!(true), "{code} {s}");
        d.terminate();
    }
}

/// A process variable that is not UTF-8 is skipped (with a warning), not an abort.
#[test]
fn non_utf8_environment_is_skipped() {
    let backend = backend_with_twins();
    let broker = broker_for_token();
    let mut dir = EdgeDir::standard(&backend.url(), broker.port);
    dir.set_env_os(
        std::ffi::OsStr::from_bytes(b"CYBERWAVE_\xff"),
        std::ffi::OsStr::from_bytes(b"\xfe\xff"),
    );
    dir.set_env_os(
        "CYBERWAVE_DOCKER_BIN".as_ref(),
        std::ffi::OsStr::from_bytes(b"docker\xff"),
    );
    let out = dir.command(&["status", "--json"]).output().unwrap();
    not_aborted(&out.status, "status", &String::from_utf8_lossy(&out.stderr));
    let mut d = Daemon::start(&dir);
    d.wait_ready(&dir);
    assert!(d.log().contains("not UTF-8"), "{}", d.log());
    d.terminate();
}

/// `edge.json` as a link to /dev/zero, FIFOs as `edge.json`, the cache and
/// `environment.json`: `status` answers at once, the daemon neither reads gigabytes nor
/// wedges, and SIGHUP then SIGTERM still work.
#[test]
fn devices_and_fifos_as_config_files_never_block_or_exhaust() {
    let backend = backend_with_twins();
    let broker = broker_for_token();
    let dir = EdgeDir::standard(&backend.url(), broker.port);
    std::os::unix::fs::symlink("/dev/zero", dir.file("edge.json")).unwrap();
    let started = std::time::Instant::now();
    let out = dir.command(&["status", "--json"]).output().unwrap();
    not_aborted(&out.status, "status", "");
    assert!(started.elapsed() < 3 * SEC, "{:?}", started.elapsed());
    std::fs::remove_file(dir.file("edge.json")).unwrap();
    for f in [
        "edge.json",
        cyberwave_edge::config::DESIRED_STATE_CACHE_FILE,
    ] {
        mkfifo(&dir.file(f));
    }
    let started = std::time::Instant::now();
    let out = dir.command(&["status", "--json"]).output().unwrap();
    not_aborted(&out.status, "status", "");
    assert!(started.elapsed() < 3 * SEC, "{:?}", started.elapsed());
    let mut d = Daemon::start(&dir);
    d.wait_ready(&dir);
    std::fs::remove_file(dir.file("environment.json")).unwrap();
    mkfifo(&dir.file("environment.json"));
    d.signal(libc::SIGHUP);
    std::thread::sleep(SEC);
    let started = std::time::Instant::now();
    let (_, s) = dir.status();
    assert!(started.elapsed() < 3 * SEC);
    assert_eq!(s["daemon"]["running"], json!(true), "{s}");
    d.terminate();
}

/// A 30 MB command name is cut in the log and in `status`, and not kept in memory; trace
/// logging never shows the token.
#[test]
fn huge_command_names_are_cut_and_trace_logs_never_show_the_token() {
    let backend = backend_with_twins();
    let broker = broker_for_token();
    let mut dir = EdgeDir::standard(&backend.url(), broker.port);
    dir.set_env("RUST_LOG", "trace");
    let mut d = Daemon::start(&dir);
    d.wait_ready(&dir);
    let (_, s) = dir.wait_status(10 * SEC, |_, s| s["mqtt"]["command_topic"].is_string());
    let topic = s["mqtt"]["command_topic"].as_str().unwrap().to_string();
    let huge = "A".repeat(30 << 20);
    broker.publish_with(
        &topic,
        json!({"command": huge, "request_id": "r-huge"})
            .to_string()
            .as_bytes(),
        false,
    );
    let (_, s) = dir.wait_status(20 * SEC, |_, s| s["mqtt"]["commands_received"] == json!(1));
    let last = s["mqtt"]["last_command"]["command"].as_str().unwrap_or("");
    assert!(
        last.len() < 300 && last.contains("bytes)"),
        "{}",
        &last[..last.len().min(300)]
    );
    assert!(
        s.to_string().len() < 200_000,
        "status is {} bytes",
        s.to_string().len()
    );
    std::thread::sleep(2 * SEC);
    let log = d.log();
    let longest = log.lines().map(str::len).max().unwrap_or(0);
    assert!(longest < 100_000, "a {longest}-byte log line");
    assert!(
        rss_kib(d.pid() as u32) < 80 * 1024,
        "RSS {} KiB",
        rss_kib(d.pid() as u32)
    );
    assert!(!log.contains(TOKEN), "token in the trace log");
    let hex: String = TOKEN.bytes().map(|b| format!("{b:02x}")).collect();
    assert!(
        !log.to_lowercase().contains(&hex[..16]),
        "token bytes in the trace log"
    );
    assert!(
        log.lines()
            .filter(|l| l.contains("[TRACE]") || l.contains("[DEBUG]"))
            .all(|l| !l.contains("[ureq") && !l.contains("[rumqttc")),
        "HTTP/MQTT internals at debug/trace"
    );
    d.terminate();
}

/// 429 (with Retry-After) and 401 keep alerts pending; they arrive once the backend takes
/// them; none is dropped.
#[test]
fn throttled_or_unauthorized_alerts_are_kept_and_arrive_once() {
    let backend = FakeBackend::start(TOKEN);
    // A twin without an asset: its driver cannot run, which raises one alert.
    let twin = uuid_from("hostile_alert_twin");
    backend.add_environment(
        ENV_UUID,
        vec![
            json!({"uuid": twin, "name": "no asset", "environment_uuid": ENV_UUID,
                    "metadata": {"edge_fingerprint": FINGERPRINT}}),
        ],
    );
    let broker = broker_for_token();
    let dir = EdgeDir::standard(&backend.url(), broker.port);
    for status in [429, 401] {
        backend.set_alert_status(Some(status));
        let _ = std::fs::remove_file(dir.file("alerts-outbox.json"));
        let mut d = Daemon::start(&dir);
        d.wait_ready(&dir);
        let (_, s) = dir.wait_status(20 * SEC, |_, s| s["alerts"]["pending"] == json!(1));
        assert_eq!(
            s["alerts"]["pending"],
            json!(1),
            "{status}: {s}\n{}",
            d.log()
        );
        std::thread::sleep(3 * SEC);
        assert!(backend.alerts().is_empty());
        backend.set_alert_status(None);
        if status == 401 {
            d.signal(libc::SIGHUP); // the token is "renewed"
        }
        assert!(
            wait_until(90 * SEC, || backend.alerts().len() == 1),
            "{status}: {:?}\n{}",
            backend.alerts(),
            d.log()
        );
        let (_, s) = dir.wait_status(10 * SEC, |_, s| s["alerts"]["pending"] == json!(0));
        assert_eq!(s["alerts"]["dropped"], json!(0), "{s}");
        d.terminate();
        std::thread::sleep(2 * SEC);
        assert_eq!(backend.alerts().len(), 1, "{status}: delivered twice");
        backend.clear_alerts();
    }
}

/// An environment whose twin list is over the HTTP library's default 10 MiB is read.
#[test]
fn backend_answers_over_10_mib_are_read() {
    let backend = FakeBackend::start(TOKEN);
    let parent = uuid_from("hostile_big_parent");
    let filler = "x".repeat(200_000);
    let twins: Vec<serde_json::Value> = (0..60)
        .map(|i| {
            json!({"uuid": uuid_from(&format!("hostile_big_{i}")), "name": format!("big {i}"),
                   "asset_uuid": ASSET_A, "environment_uuid": ENV_UUID,
                   "attach_to_twin_uuid": parent,
                   "metadata": {"edge_fingerprint": FINGERPRINT, "notes": filler}})
        })
        .collect();
    backend.add_environment(ENV_UUID, twins);
    backend.add_asset(json!({"uuid": ASSET_A, "name": "gripper", "metadata": {}}));
    let broker = broker_for_token();
    let dir = EdgeDir::standard(&backend.url(), broker.port);
    let mut d = Daemon::start(&dir);
    d.wait_ready(&dir);
    let first = dir.file(&format!("{}.json", uuid_from("hostile_big_0")));
    assert!(wait_until(60 * SEC, || first.exists()), "{}", d.log());
    d.terminate();
}
