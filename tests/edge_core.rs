//! Integration tests: the real `cyberwave-edge-core` binary against a real Mosquitto broker
//! and the fake backend in `tests/support`.

use std::os::unix::fs::MetadataExt;
use std::time::{Duration, Instant};

use crate::support::*;
use serde_json::{Value, json};

const SEC: Duration = Duration::from_secs(1);

#[test]
fn version_prints_click_style_line() {
    let out = std::process::Command::new(crate::support::daemon::BIN)
        .arg("--version")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("cyberwave-edge-core, version {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn fresh_config_dir_registers_publishes_health_and_reports_healthy() {
    let backend = backend_with_twins();
    let broker = broker_for_token();
    let dir = EdgeDir::standard(&backend.url(), broker.port);
    let sub = broker.subscribe("devcyberwave/twin/+/edge_health");
    let mut d = Daemon::start(&dir);

    // Registration: exact body, Bearer token, our User-Agent.
    let reg = backend
        .wait_for_request("POST", "/api/v1/edges", 10 * SEC)
        .unwrap_or_else(|| panic!("no registration\n{}", d.log()));
    assert_eq!(reg.body, json!({"fingerprint": FINGERPRINT}));
    assert_eq!(reg.headers["authorization"], format!("Bearer {TOKEN}"));
    assert!(
        reg.headers["user-agent"].starts_with("cyberwave-edge-core/"),
        "{:?}",
        reg.headers
    );
    // The SDK version header names the SDK whose contract we keep: the one the tests install.
    let sdk = std::env::var("CYBERWAVE_TEST_CLI")
        .ok()
        .and_then(|cli| {
            let python = std::path::Path::new(&cli).with_file_name("python");
            std::process::Command::new(python)
                .args(["-c", "import cyberwave; print(cyberwave.__version__)"])
                .output()
                .ok()
        })
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "0.7.4".into());
    assert_eq!(reg.headers["x-cyberwave-sdk-version"], sdk);

    // fingerprint.json: content and mode 0644.
    assert_eq!(
        dir.read_json("fingerprint.json"),
        json!({"fingerprint": FINGERPRINT})
    );
    assert_eq!(
        std::fs::metadata(dir.file("fingerprint.json"))
            .unwrap()
            .mode()
            & 0o777,
        0o644
    );

    // edge_health, as a third party sees it, for each broadly linked twin, prefix "dev".
    let (topic, p) = sub
        .wait_for(15 * SEC, |t, _| t.contains(TWIN_A))
        .unwrap_or_else(|| panic!("no edge_health for twin A\n{}\n{}", d.log(), broker.log()));
    assert_eq!(topic, format!("devcyberwave/twin/{TWIN_A}/edge_health"));
    for key in [
        "type",
        "timestamp",
        "edge_id",
        "uptime_seconds",
        "streams",
        "stream_count",
        "healthy_streams",
        "camera_config",
        "host_memory_percent",
        "host_memory_available_mb",
        "host_disk_percent",
        "consecutive_critical",
        "watchdog_layers",
        "source_type",
        "twin_uuid",
        "session_id",
    ] {
        assert!(p.get(key).is_some(), "edge_health lacks {key}: {p}");
    }
    assert_eq!(p["type"], json!("edge_health"));
    assert_eq!(p["edge_id"], json!(FINGERPRINT));
    assert_eq!(p["source_type"], json!("edge"));
    assert_eq!(p["twin_uuid"], json!(TWIN_A));
    assert_eq!(p["streams"], json!({}));
    assert!(
        p["session_id"]
            .as_str()
            .unwrap()
            .starts_with("python-sdk_live_")
    );
    assert!(
        sub.wait_for(10 * SEC, |t, _| t.contains(TWIN_B)).is_some(),
        "no edge_health for twin B"
    );
    let later = sub.collect(6 * SEC);
    assert!(
        later.iter().all(|(t, _)| !t.contains(TWIN_OTHER)),
        "health for a twin of another edge"
    );
    assert!(
        later
            .iter()
            .any(|(_, p)| p.get("host_cpu_percent").is_some()),
        "no CPU % after the first sample"
    );

    // edge.json from the registration answer, 0644; the desired-state cache, 0600.
    let edge = dir.read_json("edge.json");
    assert_eq!(edge["uuid"], json!(FakeBackend::edge_uuid_for(FINGERPRINT)));
    assert_eq!(edge["fingerprint"], json!(FINGERPRINT));
    assert_eq!(
        std::fs::metadata(dir.file("edge.json")).unwrap().mode() & 0o777,
        0o644
    );
    let cache = dir.read_json("edge-core-cache.json");
    assert_eq!(cache["environment_uuid"], json!(ENV_UUID));
    assert!(
        cache["assets"].get(ASSET_A).is_some(),
        "asset of the driver twin cached: {cache}"
    );
    assert_eq!(
        std::fs::metadata(dir.file("edge-core-cache.json"))
            .unwrap()
            .mode()
            & 0o777,
        0o600
    );

    // Host-facts keepalive.
    let disc = backend
        .wait_for_request("POST", "/api/v1/edges/discover", 10 * SEC)
        .expect("discover");
    assert_eq!(disc.body["fingerprint"], json!(FINGERPRINT));
    assert!(
        disc.body["platform"]
            .as_str()
            .unwrap()
            .starts_with("Linux-")
    );
    assert!(disc.body["host_facts"]["has_hardware_watchdog"].is_boolean());
    assert!(disc.body["host_facts"]["memory_total_mb"].is_f64());
    // `host_facts.platform` is what CPython's `platform.platform()` prints on this host.
    if let Ok(out) = std::process::Command::new("python3")
        .args(["-c", "import platform; print(platform.platform())"])
        .output()
        && out.status.success()
    {
        assert_eq!(
            disc.body["host_facts"]["platform"],
            json!(String::from_utf8_lossy(&out.stdout).trim())
        );
    }

    // The token never reaches the log.
    assert!(!d.log().contains(TOKEN), "token leaked into the log");

    // Status: healthy, exit 0, with the facts a fleet script wants.
    let (code, s) = dir.wait_status(10 * SEC, |c, _| c == 0);
    assert_eq!(code, 0, "{s}\n{}", d.log());
    assert_eq!(s["state"], json!("healthy"));
    assert_eq!(s["credentials"]["token"], json!("cw_tes…6789"));
    assert_eq!(s["fingerprint"], json!(FINGERPRINT));
    assert_eq!(
        s["edge_uuid"],
        json!(FakeBackend::edge_uuid_for(FINGERPRINT))
    );
    assert_eq!(s["mqtt"]["connected"], json!(true));
    assert_eq!(
        s["mqtt"]["username"],
        json!(cyberwave_edge::mqtt::username_for_token(TOKEN))
    );
    assert_eq!(s["backend"]["token"], json!("valid"));
    assert_eq!(s["twins"]["linked"], json!([TWIN_A, TWIN_B]));
    assert!(s["daemon"]["pid"].as_u64().unwrap() > 0);
    assert!(!s.to_string().contains(TOKEN));
    let text = dir.command(&["status"]).output().unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("State: healthy (exit 0)") && text.contains("✓ Daemon"),
        "{text}"
    );

    d.signal(libc::SIGTERM);
    assert_eq!(d.wait_exit(5 * SEC).and_then(|s| s.code()), Some(0));
}

#[test]
fn generated_fingerprint_has_the_sdk_shape() {
    let backend = backend_with_twins();
    let mut dir = EdgeDir::standard(&backend.url(), crate::support::broker::free_port());
    dir.env.retain(|(k, _)| k != "CYBERWAVE_EDGE_UUID");
    let mut d = Daemon::start(&dir);
    let reg = backend
        .wait_for_request("POST", "/api/v1/edges", 10 * SEC)
        .expect("registration");
    let fp = dir.read_json("fingerprint.json")["fingerprint"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(reg.body["fingerprint"], json!(fp));
    let (prefix, suffix) = fp.rsplit_once('-').unwrap();
    assert_eq!(suffix.len(), 12);
    assert!(
        suffix
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()),
        "{fp}"
    );
    assert!(
        !prefix.is_empty() && prefix.len() <= 15 && !prefix.ends_with('-'),
        "{fp}"
    );
    d.signal(libc::SIGTERM);
    assert_eq!(d.wait_exit(5 * SEC).and_then(|s| s.code()), Some(0));
}

#[test]
fn broker_restart_recovers_link_and_command_subscription() {
    let backend = backend_with_twins();
    let mut broker = broker_for_token();
    let dir = EdgeDir::standard(&backend.url(), broker.port);
    let mut d = Daemon::start(&dir);
    d.wait_ready(&dir);
    let edge_uuid = FakeBackend::edge_uuid_for(FINGERPRINT);
    let topic = format!("devedges/{edge_uuid}/command");
    let (_, s) = dir.wait_status(10 * SEC, |_, s| {
        s["mqtt"]["connected"] == json!(true) && s["mqtt"]["command_topic"] == json!(topic)
    });
    assert_eq!(s["mqtt"]["command_topic"], json!(topic), "{s}\n{}", d.log());
    // rumqttc subscribes right after CONNACK; give the SUBACK a moment.
    std::thread::sleep(Duration::from_millis(500));

    broker.publish(&topic, r#"{"command":"ping_test","request_id":"r-1"}"#);
    let (_, s) = dir.wait_status(5 * SEC, |_, s| s["mqtt"]["commands_received"] == json!(1));
    assert_eq!(s["mqtt"]["commands_received"], json!(1), "{s}\n{}", d.log());
    assert_eq!(s["mqtt"]["last_command"]["command"], json!("ping_test"));
    // A redelivered request id is dropped; a bad payload is reported, not fatal.
    broker.publish(&topic, r#"{"command":"ping_test","request_id":"r-1"}"#);
    broker.publish(&topic, "not json at all");
    std::thread::sleep(SEC);
    let (_, s) = dir.status();
    assert_eq!(s["mqtt"]["commands_received"], json!(1));
    assert!(s["last_errors"].to_string().contains("bad command"), "{s}");

    // Broker dies: the daemon keeps running and reports degraded.
    broker.stop();
    let (code, s) = dir.wait_status(10 * SEC, |c, _| c == 1);
    assert_eq!(code, 1, "{s}");
    assert_eq!(s["mqtt"]["connected"], json!(false));
    assert!(d.is_running());

    // Broker returns: the link reconnects by itself and the subscription is back.
    std::thread::sleep(2 * SEC);
    broker.restart();
    let (code, s) = dir.wait_status(40 * SEC, |_, s| s["mqtt"]["connected"] == json!(true));
    assert_eq!(
        s["mqtt"]["connected"],
        json!(true),
        "no reconnect: {s}\n{}",
        d.log()
    );
    assert!(s["mqtt"]["connects"].as_u64().unwrap() >= 2);
    assert_eq!(code, 0);
    std::thread::sleep(Duration::from_millis(500));
    broker.publish(&topic, r#"{"command":"ping_test","request_id":"r-2"}"#);
    let (_, s) = dir.wait_status(5 * SEC, |_, s| s["mqtt"]["commands_received"] == json!(2));
    assert_eq!(
        s["mqtt"]["commands_received"],
        json!(2),
        "subscription lost after reconnect: {s}\n{}",
        d.log()
    );
    let sub = broker.subscribe("devcyberwave/twin/+/edge_health");
    assert!(
        sub.wait_for(10 * SEC, |_, _| true).is_some(),
        "edge_health did not resume"
    );

    d.signal(libc::SIGTERM);
    assert_eq!(d.wait_exit(5 * SEC).and_then(|s| s.code()), Some(0));
}

#[test]
fn rejected_token_exits_2_with_advice() {
    let backend = backend_with_twins();
    backend.set_mode(Mode::Unauthorized);
    let dir = EdgeDir::standard(&backend.url(), crate::support::broker::free_port());
    let mut d = Daemon::start(&dir);
    let st = d
        .wait_exit(15 * SEC)
        .unwrap_or_else(|| panic!("daemon did not exit\n{}", d.log()));
    assert_eq!(st.code(), Some(2), "{}", d.log());
    let log = d.log();
    assert!(
        log.contains("token rejected (HTTP 401)") && log.contains("cyberwave login"),
        "{log}"
    );
    assert!(!log.contains(TOKEN), "token leaked: {log}");
    // status says not configured (2) with the rejection
    let (code, s) = dir.status();
    assert_eq!(code, 2);
    assert_eq!(s["backend"]["token"], json!("rejected"), "{s}");
}

#[test]
fn offline_backend_at_boot_runs_from_cache_and_registers_later() {
    let backend = backend_with_twins();
    let broker = broker_for_token();
    let dir = EdgeDir::standard(&backend.url(), broker.port);
    // First run online: fills the desired-state cache (written before the daemon takes the
    // answer, so `source: backend` in status means it is on disk; `healthy` alone does not).
    {
        let mut d = Daemon::start(&dir);
        let (code, s) = dir.wait_status(15 * SEC, |c, s| {
            c == 0 && s["twins"]["source"] == json!("backend")
        });
        assert_eq!(code, 0, "{}", d.log());
        assert_eq!(s["twins"]["source"], json!("backend"), "{}", d.log());
        d.signal(libc::SIGTERM);
        assert_eq!(d.wait_exit(5 * SEC).and_then(|s| s.code()), Some(0));
    }
    let registrations_before = backend.requests_to("POST", "/api/v1/edges").len();
    backend.set_offline(true);
    let sub = broker.subscribe("devcyberwave/twin/+/edge_health");
    let mut d = Daemon::start(&dir);
    // Health flows from the cached answer while the backend is unreachable.
    let (topic, _) = sub
        .wait_for(15 * SEC, |t, _| t.contains(TWIN_A))
        .unwrap_or_else(|| panic!("no health while offline\n{}", d.log()));
    assert!(topic.ends_with("/edge_health"));
    std::thread::sleep(3 * SEC);
    assert!(d.is_running(), "daemon exited while offline\n{}", d.log());
    let (code, s) = dir.status();
    assert_eq!(code, 1, "{s}");
    assert_eq!(s["state"], json!("degraded"));
    assert_eq!(s["twins"]["source"], json!("cache"));
    assert_eq!(s["backend"]["reachable"], json!(false));

    // Backend back: registration happens in the background.
    backend.set_offline(false);
    let end = Instant::now() + 40 * SEC;
    while backend.requests_to("POST", "/api/v1/edges").len() == registrations_before
        && Instant::now() < end
    {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        backend.requests_to("POST", "/api/v1/edges").len() > registrations_before,
        "no registration after the backend returned\n{}",
        d.log()
    );
    let (code, s) = dir.wait_status(15 * SEC, |c, s| {
        c == 0 && s["twins"]["source"] == json!("backend")
    });
    assert_eq!(code, 0, "{s}");
    d.signal(libc::SIGTERM);
    assert_eq!(d.wait_exit(5 * SEC).and_then(|s| s.code()), Some(0));
}

#[test]
fn sigterm_exits_0_within_5s_and_sends_mqtt_disconnect() {
    let backend = backend_with_twins();
    let broker = broker_for_token();
    let dir = EdgeDir::standard(&backend.url(), broker.port);
    let mut d = Daemon::start(&dir);
    let (code, _) = dir.wait_status(15 * SEC, |c, _| c == 0);
    assert_eq!(code, 0);
    let t = Instant::now();
    d.signal(libc::SIGTERM);
    let st = d
        .wait_exit(5 * SEC)
        .unwrap_or_else(|| panic!("still running 5 s after SIGTERM\n{}", d.log()));
    assert_eq!(st.code(), Some(0));
    assert!(t.elapsed() < 5 * SEC);
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        broker
            .log()
            .contains("Received DISCONNECT from python-sdk_live_"),
        "{}",
        broker.log()
    );
    assert!(
        !dir.file("edge-core.sock").exists(),
        "control socket left behind"
    );
}

#[test]
fn sigterm_is_prompt_with_a_hung_backend_and_no_broker() {
    let backend = backend_with_twins();
    backend.set_latency(Duration::from_secs(60));
    let dir = EdgeDir::standard(&backend.url(), crate::support::broker::free_port());
    let mut d = Daemon::start(&dir);
    d.wait_ready(&dir);
    // status still answers promptly with everything hanging or down
    let t = Instant::now();
    let (code, s) = dir.status();
    assert!(t.elapsed() < 2 * SEC, "status took {:?}", t.elapsed());
    assert_eq!(code, 1, "{s}");
    let t = Instant::now();
    d.signal(libc::SIGINT);
    let st = d
        .wait_exit(5 * SEC)
        .unwrap_or_else(|| panic!("hung on SIGINT\n{}", d.log()));
    assert_eq!(st.code(), Some(0));
    assert!(t.elapsed() < 5 * SEC);
}

#[test]
fn status_without_daemon_and_with_unreachable_network_answers_fast() {
    // A non-routable backend (TEST-NET) makes both probes hang; status must still answer.
    let dir = EdgeDir::standard("http://192.0.2.1:9", 1883);
    let t = Instant::now();
    let (code, s) = dir.status();
    assert!(t.elapsed() < 2 * SEC, "status took {:?}", t.elapsed());
    assert_eq!(code, 2);
    assert_eq!(s["state"], json!("not_running"));
    assert_eq!(s["daemon"]["running"], json!(false));
    assert_eq!(s["backend"]["reachable"], json!(false));
    assert_eq!(s["mqtt"]["connected"], json!(false));
    assert_eq!(s["credentials"]["ok"], json!(true));
}

#[test]
fn missing_or_corrupt_credentials_are_named() {
    let dir = EdgeDir::empty();
    // missing
    let out = dir.command(&[]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("credentials.json: no credentials file") && err.contains("cyberwave login"),
        "{err}"
    );
    let (code, s) = dir.status();
    assert_eq!(code, 2);
    assert_eq!(s["state"], json!("not_configured"));
    assert!(
        s["credentials"]["problem"]
            .as_str()
            .unwrap()
            .contains("credentials.json")
    );
    // corrupt
    dir.write_raw("credentials.json", "{\"token\": \"cw_x\",\n  oops");
    let out = dir.command(&["run"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("credentials.json: invalid JSON at line 2"),
        "{err}"
    );
    assert!(!err.contains("panicked"));
    // wrong shape
    dir.write_raw("credentials.json", "{\"token\": 42}");
    let out = dir.command(&[]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("\"token\" must be a string"));
    // invalid setting value
    dir.write_credentials(TOKEN, &[("CYBERWAVE_MQTT_PORT", "eighty")]);
    let out = dir.command(&[]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("invalid CYBERWAVE_MQTT_PORT=\"eighty\"")
    );
}

#[test]
fn corrupt_or_missing_environment_is_reported_and_the_daemon_keeps_running() {
    let backend = backend_with_twins();
    let broker = broker_for_token();
    let dir = EdgeDir::standard(&backend.url(), broker.port);
    dir.write_raw("environment.json", "{\"uuid\": \"not-a-uuid\"}");
    let mut d = Daemon::start(&dir);
    d.wait_ready(&dir);
    assert!(
        backend
            .wait_for_request("POST", "/api/v1/edges", 10 * SEC)
            .is_some(),
        "registration still happens"
    );
    let (code, s) = dir.status();
    assert_eq!(code, 2, "{s}");
    assert_eq!(s["state"], json!("not_configured"));
    let problem = s["environment"]["problem"].as_str().unwrap();
    assert!(
        problem.contains("environment.json") && problem.contains("not a UUID"),
        "{problem}"
    );
    assert!(d.log().contains("environment.json"));

    // Fix the file and reload with SIGHUP: the environment is picked up without a restart.
    dir.write_environment(ENV_UUID);
    d.signal(libc::SIGHUP);
    let (code, s) = dir.wait_status(15 * SEC, |c, s| {
        c == 0 && s["twins"]["linked"] == json!([TWIN_A, TWIN_B])
    });
    assert_eq!(code, 0, "{s}\n{}", d.log());
    assert_eq!(s["twins"]["linked"], json!([TWIN_A, TWIN_B]));

    std::fs::remove_file(dir.file("environment.json")).unwrap();
    let (code, s) = dir.status();
    assert_eq!(code, 2);
    assert!(
        s["environment"]["problem"]
            .as_str()
            .unwrap()
            .contains("file not found")
    );
    d.signal(libc::SIGTERM);
    assert_eq!(d.wait_exit(5 * SEC).and_then(|s| s.code()), Some(0));
}

#[test]
fn second_daemon_refuses_to_start() {
    let backend = backend_with_twins();
    let dir = EdgeDir::standard(&backend.url(), crate::support::broker::free_port());
    let mut first = Daemon::start(&dir);
    first.wait_ready(&dir);
    let out = dir.command(&[]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("already running"));
    assert!(first.is_running());
    let v: Value = dir.status().1;
    assert_eq!(v["daemon"]["running"], json!(true));
}

#[test]
fn systemd_notify_ready_and_stopping() {
    use std::os::unix::net::UnixDatagram;
    let backend = backend_with_twins();
    let mut dir = EdgeDir::standard(&backend.url(), crate::support::broker::free_port());
    let sock_path = dir.tmp.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(10 * SEC)).unwrap();
    dir.set_env("NOTIFY_SOCKET", sock_path.to_str().unwrap());
    let mut d = Daemon::start(&dir);
    let mut buf = [0u8; 256];
    let mut seen = Vec::new();
    while !seen.iter().any(|m: &String| m.starts_with("READY=1")) {
        let n = sock
            .recv(&mut buf)
            .unwrap_or_else(|e| panic!("no READY=1 ({e})\n{}", d.log()));
        seen.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    assert!(
        seen.iter()
            .any(|m| m.contains(&format!("MAINPID={}", d.pid()))),
        "{seen:?}"
    );
    d.signal(libc::SIGTERM);
    loop {
        let n = sock.recv(&mut buf).expect("no STOPPING=1");
        if &buf[..n] == b"STOPPING=1" {
            break;
        }
    }
    assert_eq!(d.wait_exit(5 * SEC).and_then(|s| s.code()), Some(0));
}

#[test]
fn outbox_holds_newest_messages_while_broker_is_down_and_counts_drops() {
    let backend = backend_with_twins();
    let user = cyberwave_edge::mqtt::username_for_token(TOKEN);
    let mut broker = Broker::start_persistent(&[(user.as_str(), TOKEN)]);
    // A durable third-party session that will be offline while the daemon publishes.
    drop(broker.subscribe_as("devcyberwave/twin/#", "durable-observer", true));
    broker.stop();
    let mut dir = EdgeDir::standard(&backend.url(), broker.port);
    dir.set_env("CYBERWAVE_EDGE_HEALTH_PUBLISH_INTERVAL_SECONDS", "1");
    dir.set_env("CYBERWAVE_MQTT_OUTBOX_MESSAGES", "4");
    let mut d = Daemon::start(&dir);
    d.wait_ready(&dir);
    // 2 twins × 1 message/s into a 4-message outbox: drops start after ~2 s.
    let (_, s) = dir.wait_status(15 * SEC, |_, s| {
        s["mqtt"]["dropped"].as_u64().unwrap_or(0) >= 4
    });
    assert!(
        s["mqtt"]["dropped"].as_u64().unwrap() >= 4,
        "{s}\n{}",
        d.log()
    );
    assert_eq!(s["mqtt"]["connected"], json!(false));
    broker.restart();
    let (_, s) = dir.wait_status(40 * SEC, |_, s| s["mqtt"]["connected"] == json!(true));
    assert_eq!(s["mqtt"]["connected"], json!(true), "{s}\n{}", d.log());
    let reconnected_at = s["mqtt"]["connected_since"].as_f64().unwrap();
    std::thread::sleep(SEC);
    let sub = broker.subscribe_as("devcyberwave/twin/#", "durable-observer", true);
    let got = sub.collect(3 * SEC);
    let held: Vec<f64> = got
        .iter()
        .filter_map(|(_, p)| p["timestamp"].as_f64())
        .filter(|t| *t < reconnected_at)
        .collect();
    // The newest 4 made it through the outage (plus at most the batch in flight at the
    // moment of CONNACK); everything older was dropped and counted.
    assert!(
        (4..=6).contains(&held.len()),
        "held messages delivered: {held:?} of {}",
        got.len()
    );
    assert!(
        held.iter().all(|t| *t > reconnected_at - 4.0),
        "old messages survived: {held:?} (reconnect {reconnected_at})"
    );
    d.signal(libc::SIGTERM);
    assert_eq!(d.wait_exit(5 * SEC).and_then(|s| s.code()), Some(0));
}
