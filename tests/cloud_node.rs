//! Integration tests: the real `cyberwave-cloud-node` binary against a real Mosquitto broker
//! and the fake backend; commands published by an independent client (mosquitto_pub).

use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::cloud_node::*;
use crate::support::*;
use serde_json::{Value, json};

#[test]
fn commands_end_to_end_with_metrics_heartbeats_and_clean_shutdown() {
    let backend = FakeBackend::start(TOKEN);
    let broker = broker_for_token();
    let mut node = Node::new(&backend, YML);
    node.start(broker.port);
    let (uuid, slug) = node.wait_ready();
    let create = backend.requests_to("POST", "/api/v1/cloud-node");
    assert_eq!(create.len(), 1);
    assert_eq!(create[0].body["profile_slug"], json!("gpu-test"));
    assert_eq!(
        create[0].headers["authorization"],
        format!("Bearer {TOKEN}")
    );
    assert!(
        backend
            .wait_for_request(
                "POST",
                &format!("/api/v1/cloud-node/{uuid}/register"),
                5 * SEC
            )
            .is_some()
    );
    let identity: Value = serde_json::from_str(
        &std::fs::read_to_string(node.dir.path().join(".cyberwave/instance_identity.json"))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(identity, json!({"uuid": uuid, "slug": slug}));

    let sub = broker.subscribe(&format!("cyberwave/cloud-node/{uuid}/response"));
    let status_sub = broker.subscribe(&format!("cyberwave/cloud-node/{uuid}/status"));
    let topic = format!("cyberwave/cloud-node/{uuid}/command");
    let params = json!({"model": "m", "input": "hello world", "n": 3});
    broker.publish(&topic, &cmd("inference", "inf-1", params.clone()));
    let r = reply_for(&sub, "inf-1", 10 * SEC);
    assert_eq!(r["status"], json!("ok"), "{r}");
    assert_eq!(r["output"], json!(params.to_string()));
    assert_eq!(
        (r["slug"].as_str(), r["instance_uuid"].as_str()),
        (Some(slug.as_str()), Some(uuid.as_str()))
    );
    assert_eq!(r["exit_code"], json!(0));
    assert!(r["duration_ms"].as_f64().unwrap() >= 0.0);

    // the slug topic works too
    broker.publish(
        &format!("cyberwave/cloud-node/{slug}/command"),
        &cmd("training", "tr-1", json!({"epochs": 1})),
    );
    let r = reply_for(&sub, "tr-1", 10 * SEC);
    assert_eq!(r["output"], json!("training {\"epochs\":1}\n"));

    // errors are replies, never crashes
    broker.publish(&topic, "{not json");
    let r = sub
        .wait_for(5 * SEC, |_, p| {
            p["error"]
                .as_str()
                .is_some_and(|e| e.starts_with("malformed JSON"))
        })
        .expect("malformed reply")
        .1;
    assert_eq!(r["status"], json!("error"));
    assert_eq!(r["request_id"], Value::Null);
    broker.publish(&topic, r#"{"command":"inference","params":{}}"#);
    assert!(
        sub.wait_for(5 * SEC, |_, p| p["error"] == json!("missing request_id"))
            .is_some()
    );
    broker.publish(&topic, &cmd("dance", "bad-1", json!({})));
    assert!(
        reply_for(&sub, "bad-1", 5 * SEC)["error"]
            .as_str()
            .unwrap()
            .contains("unknown command")
    );
    broker.publish(
        &topic,
        r#"{"command":"inference","request_id":"fail-1","params":{}}"#
            .replace("inference", "training")
            .as_str(),
    );
    reply_for(&sub, "fail-1", 5 * SEC);

    // a repeated request id is not run twice
    broker.publish(&topic, &cmd("inference", "inf-1", params.clone()));
    std::thread::sleep(SEC);
    // status command: metrics of what ran
    broker.publish(&topic, &cmd("status", "st-1", json!({})));
    let r = reply_for(&sub, "st-1", 5 * SEC);
    assert_eq!(r["status"], json!("ok"));
    let m = &r["output"]["metrics"];
    assert_eq!(m["inference"]["total"], json!(1), "duplicate was run: {m}");
    assert_eq!(m["training"]["total"], json!(2));
    assert_eq!(m["inference"]["success_rate"], json!(1.0));
    assert!(m["inference"]["p95_ms"].is_number() && m["inference"]["avg_ms"].is_number());

    // heartbeats: REST and MQTT
    assert!(
        backend
            .wait_for_request(
                "POST",
                &format!("/api/v1/cloud-node/{uuid}/heartbeat"),
                5 * SEC
            )
            .is_some()
    );
    let (_, hb) = status_sub
        .wait_for(5 * SEC, |_, p| {
            p["type"] == json!("heartbeat") && p["metrics"]["inference"].is_object()
        })
        .expect("mqtt heartbeat with metrics");
    assert_eq!(hb["instance_uuid"], json!(uuid));
    assert_eq!(hb["metrics"]["inference"]["total"], json!(1));

    // status CLI
    let (code, s) = node.status();
    assert_eq!(code, 0);
    assert_eq!(s["node"]["metrics"]["training"]["total"], json!(2));
    let text = node.command(&["status"]).output().unwrap();
    assert!(String::from_utf8_lossy(&text.stdout).contains("State: healthy (exit 0)"));

    // SIGTERM: termination message and REST call, exit 0
    node.signal(libc::SIGTERM);
    assert_eq!(node.wait_exit(10 * SEC), Some(0), "{}", node.log());
    assert!(
        status_sub
            .wait_for(5 * SEC, |_, p| p["type"] == json!("terminated"))
            .is_some(),
        "no termination message"
    );
    assert_eq!(
        backend
            .requests_to("POST", &format!("/api/v1/cloud-node/{uuid}/terminated"))
            .len(),
        1
    );
    assert_eq!(node.status().0, 2);

    // restart: the same identity is re-used, no second instance is created
    node.start(broker.port);
    let (uuid2, _) = node.wait_ready();
    assert_eq!(uuid2, uuid);
    assert_eq!(backend.requests_to("POST", "/api/v1/cloud-node").len(), 1);
    assert_eq!(
        backend
            .requests_to("POST", &format!("/api/v1/cloud-node/{uuid}/register"))
            .len(),
        2
    );
    assert!(!node.log().contains(TOKEN), "token leaked into the log");
}

#[test]
fn shell_injection_through_params_runs_nothing() {
    let backend = FakeBackend::start(TOKEN);
    let broker = broker_for_token();
    let mut node = Node::new(&backend, YML);
    node.start(broker.port);
    let (uuid, _) = node.wait_ready();
    let sub = broker.subscribe(&format!("cyberwave/cloud-node/{uuid}/response"));
    let pwned = node.dir.path().join("pwned");
    let p = pwned.display().to_string();
    let params = json!({
        "a": format!("\"; touch {p}"),
        "b": format!("'; touch {p}; echo '"),
        "c": format!("$(touch {p})"),
        "d": format!("`touch {p}`"),
        "e": format!("\n touch {p}\n"),
    });
    broker.publish(
        &format!("cyberwave/cloud-node/{uuid}/command"),
        &cmd("inference", "inj-1", params.clone()),
    );
    let r = reply_for(&sub, "inj-1", 10 * SEC);
    assert_eq!(r["status"], json!("ok"), "{r}");
    assert_eq!(r["output"], json!(params.to_string()));
    assert!(!pwned.exists(), "params executed shell code");
}

#[test]
fn timeout_memory_limit_and_concurrency() {
    let backend = FakeBackend::start(TOKEN);
    let broker = broker_for_token();
    let yml = r#"cyberwave-cloud-node:
  inference: sleep 0.3; printf '%s' {body}
  training: sleep 30 & sleep 30
  functions:
    inference: {timeout_seconds: 20, concurrency: 4}
    training: {timeout_seconds: 1, concurrency: 1, when_busy: reject}
"#;
    let mut node = Node::new(&backend, yml);
    node.start(broker.port);
    let (uuid, _) = node.wait_ready();
    let sub = broker.subscribe(&format!("cyberwave/cloud-node/{uuid}/response"));
    let topic = format!("cyberwave/cloud-node/{uuid}/command");

    // Over its timeout: the whole process group is killed and the reply says so.
    let t = Instant::now();
    broker.publish(&topic, &cmd("training", "t-1", json!({})));
    // a second training while the first runs is rejected (concurrency 1, when_busy: reject)
    broker.publish(&topic, &cmd("training", "t-2", json!({})));
    let r2 = reply_for(&sub, "t-2", 5 * SEC);
    assert!(r2["error"].as_str().unwrap().contains("busy"), "{r2}");
    let r = reply_for(&sub, "t-1", 10 * SEC);
    assert_eq!(r["status"], json!("error"));
    assert_eq!(r["timeout"], json!(true));
    assert!(r["error"].as_str().unwrap().starts_with("timeout"), "{r}");
    assert!(t.elapsed() < 5 * SEC);
    std::thread::sleep(Duration::from_millis(300));
    let stray = Command::new("pgrep")
        .args(["-f", "sleep 30"])
        .output()
        .unwrap();
    let pids = String::from_utf8_lossy(&stray.stdout).trim().to_string();
    // our node's children are gone (another test may not run `sleep 30`)
    for pid in pids.lines() {
        let ppid = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| {
                s.rsplit_once(')')
                    .map(|(_, r)| r.split_whitespace().nth(1).unwrap_or("").to_string())
            });
        assert_ne!(
            ppid.as_deref(),
            node.child.as_ref().map(|c| c.id().to_string()).as_deref(),
            "a sleep of the killed group survived"
        );
    }

    // 20 concurrent inference requests, 4 at a time: each answered exactly once.
    for i in 0..20 {
        broker.publish(
            &topic,
            &cmd("inference", &format!("c-{i}"), json!({"i": i})),
        );
    }
    let got = sub.collect(10 * SEC);
    for i in 0..20 {
        let id = format!("c-{i}");
        let n = got
            .iter()
            .filter(|(_, p)| p["request_id"] == json!(id))
            .count();
        assert_eq!(n, 1, "request {id} answered {n} times");
        let r = got
            .iter()
            .find(|(_, p)| p["request_id"] == json!(id))
            .unwrap();
        assert_eq!(r.1["output"], json!(json!({"i": i}).to_string()));
    }
    let (_, s) = node.status();
    assert_eq!(s["node"]["metrics"]["inference"]["total"], json!(20));
    assert_eq!(s["node"]["metrics"]["training"]["timeouts"], json!(1));
    assert_eq!(s["node"]["metrics"]["training"]["rejected"], json!(1));
}

#[test]
fn memory_limit_is_enforced() {
    let backend = FakeBackend::start(TOKEN);
    let broker = broker_for_token();
    let yml = r#"cyberwave-cloud-node:
  inference: v=$(head -c 268435456 /dev/zero | tr '\0' a); echo ${#v}
  functions:
    inference: {memory_mb: 64}
"#;
    let mut node = Node::new(&backend, yml);
    node.start(broker.port);
    let (uuid, _) = node.wait_ready();
    let sub = broker.subscribe(&format!("cyberwave/cloud-node/{uuid}/response"));
    broker.publish(
        &format!("cyberwave/cloud-node/{uuid}/command"),
        &cmd("inference", "mem-1", json!({})),
    );
    let r = reply_for(&sub, "mem-1", 30 * SEC);
    assert_eq!(
        r["status"],
        json!("error"),
        "a 256 MiB string fit in a 64 MiB limit: {r}"
    );
}

#[test]
fn reply_of_a_long_training_survives_a_broker_restart() {
    let backend = FakeBackend::start(TOKEN);
    let mut broker = broker_for_token();
    let yml = "cyberwave-cloud-node:\n  training: sleep 4; echo trained\n";
    let mut node = Node::new(&backend, yml);
    node.start(broker.port);
    let (uuid, _) = node.wait_ready();
    broker.publish(
        &format!("cyberwave/cloud-node/{uuid}/command"),
        &cmd("training", "long-1", json!({})),
    );
    std::thread::sleep(SEC);
    broker.stop();
    std::thread::sleep(SEC);
    broker.restart();
    let sub = broker.subscribe(&format!("cyberwave/cloud-node/{uuid}/response"));
    let r = reply_for(&sub, "long-1", 40 * SEC);
    assert_eq!(r["status"], json!("ok"), "{r}\n{}", node.log());
    assert_eq!(r["output"], json!("trained\n"));
}

#[test]
fn install_script_failure_is_reported_and_exits_nonzero() {
    let backend = FakeBackend::start(TOKEN);
    let broker = broker_for_token();
    let yml = "cyberwave-cloud-node:\n  install_script: echo installing; echo no space left >&2; exit 3\n  inference: echo hi\n";
    let mut node = Node::new(&backend, yml);
    node.start(broker.port);
    assert_eq!(node.wait_exit(20 * SEC), Some(1), "{}", node.log());
    let log = node.log();
    assert!(
        log.contains("installing") && log.contains("no space left"),
        "install output not streamed: {log}"
    );
    let failed: Vec<_> = backend
        .requests()
        .into_iter()
        .filter(|r| r.path.ends_with("/failed"))
        .collect();
    assert_eq!(failed.len(), 1);
    assert!(
        failed[0].body["error"]
            .as_str()
            .unwrap()
            .contains("no space left"),
        "{:?}",
        failed[0].body
    );
}

#[test]
fn bad_config_names_file_key_and_line() {
    let backend = FakeBackend::start(TOKEN);
    let node = Node::new(
        &backend,
        "cyberwave-cloud-node:\n  inference: echo hi\n  heartbeat_interval: [1, 2]\n",
    );
    let out = node.command(&["start"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cyberwave.yml")
            && err.contains("heartbeat_interval")
            && err.contains("line 3"),
        "{err}"
    );
    let node = Node::new(
        &backend,
        "cyberwave-cloud-node:\n  inference: echo hi\n  functions:\n    simulate: {timeout_seconds: 1}\n",
    );
    let out = node.command(&["start"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("functions.simulate"));
}

#[test]
fn sigterm_lets_running_commands_finish_within_the_grace_period_then_kills() {
    let backend = FakeBackend::start(TOKEN);
    let broker = broker_for_token();
    let yml =
        "cyberwave-cloud-node:\n  training: sleep 60\n  inference: sleep 0.5; echo finished\n";
    let mut node = Node::new(&backend, yml);
    node.start(broker.port);
    let (uuid, _) = node.wait_ready();
    let sub = broker.subscribe(&format!("cyberwave/cloud-node/{uuid}/response"));
    let topic = format!("cyberwave/cloud-node/{uuid}/command");
    broker.publish(&topic, &cmd("training", "g-1", json!({})));
    broker.publish(&topic, &cmd("inference", "g-2", json!({})));
    std::thread::sleep(Duration::from_millis(200));
    let t = Instant::now();
    node.signal(libc::SIGTERM);
    assert_eq!(
        reply_for(&sub, "g-2", 5 * SEC)["output"],
        json!("finished\n"),
        "short command not allowed to finish"
    );
    let r = reply_for(&sub, "g-1", 10 * SEC);
    assert_eq!(r["status"], json!("error"), "{r}");
    assert_eq!(node.wait_exit(10 * SEC), Some(0));
    assert!(
        t.elapsed() >= 2 * SEC && t.elapsed() < 8 * SEC,
        "grace not honoured: {:?}",
        t.elapsed()
    );
}
