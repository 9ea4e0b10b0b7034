//! The cloud node tried as a hostile user would (issue 8): quoted templates, params that try
//! to run code, commands that leave daemons holding their output, signals during install, a
//! killed node, retained and oversized commands, huge ids, bad numbers, FIFOs and deep YAML
//! as config; and the ways the Cyberwave CLI and SDK start and configure it. Real binary, real
//! Mosquitto, the fake backend, mosquitto_pub as the third party.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::cloud_node::*;
use crate::support::*;
use serde_json::json;

const INJECTION: &str =
    r#"$(touch pwned1) `touch pwned2` '; touch pwned3; echo ' "; touch pwned4; echo ""#;

fn no_pwned(dir: &Path) {
    for i in 1..=4 {
        assert!(
            !dir.join(format!("pwned{i}")).exists(),
            "params ran as code"
        );
    }
}

/// Processes whose command line contains `needle` (ours use unique sleep lengths).
fn running(needle: &str) -> Vec<i32> {
    let out = Command::new("pgrep").args(["-f", needle]).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .filter(|pid: &i32| {
            // a zombie waiting for an init that does not reap is not running
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| {
                    s.rsplit_once(')')
                        .map(|(_, r)| !r.trim_start().starts_with('Z'))
                })
                .unwrap_or(false)
        })
        .collect()
}

fn exit_of(node: &Node, args: &[&str]) -> (Option<i32>, String, Duration) {
    let t = Instant::now();
    let mut child = node
        .command(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let end = Instant::now() + 10 * SEC;
    while Instant::now() < end {
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        t.elapsed(),
    )
}

#[test]
fn quoted_templates_are_refused_and_params_never_run_as_code() {
    let backend = FakeBackend::start(TOKEN);
    for (template, line, column) in [
        ("python x.py --params '{body}'", 1, 23),
        ("echo \"{body}\"", 1, 7),
        ("printf '%s\\n' \"{body}\"", 1, 16),
        ("cat <<EOF\n{body}\nEOF", 2, 1),
    ] {
        let block: Vec<String> = template.lines().map(|l| format!("    {l}")).collect();
        let yml = format!(
            "cyberwave-cloud-node:\n  inference: |-\n{}\n",
            block.join("\n")
        );
        let node = Node::new(&backend, &yml);
        let (code, err, _) = exit_of(&node, &["start"]);
        assert_eq!(code, Some(2), "{template}: {err}");
        assert!(
            err.contains("cyberwave.yml: inference: {body}")
                && err.contains(&format!("line {line}, column {column}")),
            "{template}: {err}"
        );
        no_pwned(node.dir.path());
    }

    let broker = broker_for_token();
    let yml = "cyberwave-cloud-node:\n  inference: cat {body_file}; printf '|'; cat\n  training: touch ran; printf '%s' --params={body}\n";
    let mut node = Node::new(&backend, yml);
    node.start(broker.port);
    let (uuid, _) = node.wait_ready();
    let sub = broker.subscribe(&format!("cyberwave/cloud-node/{uuid}/response"));
    let topic = format!("cyberwave/cloud-node/{uuid}/command");

    // Params beyond one environment string: {body_file} and stdin carry them ...
    let big = json!({"image": "A".repeat(300 * 1024)});
    broker.publish(&topic, &cmd("inference", "big-1", big.clone()));
    let r = reply_for(&sub, "big-1", 10 * SEC);
    let b = big.to_string();
    assert_eq!(r["output"], json!(format!("{b}|{b}")), "{}", r["error"]);
    // ... and a template using {body} refuses them before anything runs.
    broker.publish(&topic, &cmd("training", "big-2", big));
    let r = reply_for(&sub, "big-2", 10 * SEC);
    assert!(
        r["error"].as_str().unwrap().contains("use {body_file}"),
        "{r}"
    );
    assert!(!node.dir.path().join("ran").exists());

    // The injection payload through all three ways in: data, never code.
    let params = json!({"x": INJECTION, "y": [INJECTION]});
    let p = params.to_string();
    broker.publish(&topic, &cmd("inference", "inj-1", params.clone()));
    assert_eq!(
        reply_for(&sub, "inj-1", 10 * SEC)["output"],
        json!(format!("{p}|{p}"))
    );
    broker.publish(&topic, &cmd("training", "inj-2", params));
    assert_eq!(
        reply_for(&sub, "inj-2", 10 * SEC)["output"],
        json!(format!("--params={p}"))
    );
    no_pwned(node.dir.path());
}

#[test]
fn a_daemon_holding_the_output_hangs_neither_the_request_nor_shutdown() {
    let backend = FakeBackend::start(TOKEN);
    let broker = broker_for_token();
    let yml = "cyberwave-cloud-node:\n  inference: setsid sleep 41.25 & echo started\n  training: setsid sleep 42.25 & sleep 60.25\n  functions:\n    inference: {timeout_seconds: 5}\n    training: {timeout_seconds: 2}\n";
    let mut node = Node::new(&backend, yml);
    node.env.push((
        "CYBERWAVE_CLOUD_NODE_SHUTDOWN_GRACE_SECONDS".into(),
        "3".into(),
    ));
    node.start(broker.port);
    let (uuid, _) = node.wait_ready();
    let sub = broker.subscribe(&format!("cyberwave/cloud-node/{uuid}/response"));
    let status_sub = broker.subscribe(&format!("cyberwave/cloud-node/{uuid}/status"));
    let topic = format!("cyberwave/cloud-node/{uuid}/command");

    let t = Instant::now();
    broker.publish(&topic, &cmd("inference", "held-1", json!({})));
    let r = reply_for(&sub, "held-1", 10 * SEC);
    assert_eq!(r["status"], json!("ok"), "{r}");
    assert_eq!(r["output"], json!("started\n"));
    assert!(t.elapsed() < 3 * SEC, "reply after {:?}", t.elapsed());
    assert!(wait_until(2 * SEC, || running("sleep 41.25").is_empty()));

    // over its timeout: the reply comes at the timeout, not when the daemon lets go
    let t = Instant::now();
    broker.publish(&topic, &cmd("training", "held-2", json!({})));
    let r = reply_for(&sub, "held-2", 10 * SEC);
    assert_eq!(r["timeout"], json!(true), "{r}");
    assert!(t.elapsed() < 5 * SEC, "reply after {:?}", t.elapsed());
    assert!(wait_until(2 * SEC, || running("sleep 42.25").is_empty()));

    // SIGTERM while such a command runs: the node leaves within its grace and says so
    broker.publish(&topic, &cmd("training", "held-3", json!({})));
    std::thread::sleep(Duration::from_millis(500));
    let t = Instant::now();
    node.signal(libc::SIGTERM);
    assert_eq!(node.wait_exit(10 * SEC), Some(0), "{}", node.log());
    assert!(t.elapsed() < 7 * SEC, "shutdown took {:?}", t.elapsed());
    assert!(
        status_sub
            .wait_for(5 * SEC, |_, p| p["type"] == json!("terminated"))
            .is_some()
    );
    assert!(wait_until(2 * SEC, || running("sleep 42.25").is_empty()
        && running("sleep 60.25").is_empty()));
}

#[test]
fn sigterm_stops_the_install_script_and_children_die_with_the_node() {
    let backend = FakeBackend::start(TOKEN);
    let broker = broker_for_token();
    let mut node = Node::new(
        &backend,
        "cyberwave-cloud-node:\n  install_script: sleep 301.25\n  inference: echo hi\n",
    );
    node.start(broker.port);
    assert!(wait_until(5 * SEC, || !running("sleep 301.25").is_empty()));
    let t = Instant::now();
    node.signal(libc::SIGTERM);
    assert_eq!(node.wait_exit(5 * SEC), Some(0), "{}", node.log());
    assert!(t.elapsed() < 3 * SEC);
    assert!(wait_until(2 * SEC, || running("sleep 301.25").is_empty()));

    // kill -9 during the install script: the script dies too
    node.start(broker.port);
    assert!(wait_until(5 * SEC, || !running("sleep 301.25").is_empty()));
    node.signal(libc::SIGKILL);
    node.wait_exit(5 * SEC);
    assert!(
        wait_until(3 * SEC, || running("sleep 301.25").is_empty()),
        "install script outlived the node"
    );

    // kill -9 while a command runs: its whole group dies too, background jobs included
    let mut node = Node::new(
        &backend,
        "cyberwave-cloud-node:\n  training: sleep 302.25 & sleep 303.25\n",
    );
    node.start(broker.port);
    let (uuid, _) = node.wait_ready();
    broker.publish(
        &format!("cyberwave/cloud-node/{uuid}/command"),
        &cmd("training", "k-1", json!({})),
    );
    assert!(wait_until(5 * SEC, || !running("sleep 302.25").is_empty()
        && !running("sleep 303.25").is_empty()));
    node.signal(libc::SIGKILL);
    node.wait_exit(5 * SEC);
    assert!(
        wait_until(3 * SEC, || running("sleep 302.25").is_empty()
            && running("sleep 303.25").is_empty()),
        "command outlived the node"
    );
}

#[test]
fn started_the_cli_way_from_root_with_a_relative_command() {
    let backend = FakeBackend::start(TOKEN);
    let broker = broker_for_token();
    let mut node = Node::new(
        &backend,
        "cyberwave-cloud-node:\n  inference: echo not this one\n",
    );
    let sub_dir = node.dir.path().join("project");
    std::fs::create_dir_all(&sub_dir).unwrap();
    std::fs::write(
        sub_dir.join("cyberwave.yml"),
        "cyberwave-cloud-node:\n  install_script: ./install.sh\n  inference: ./infer.sh {body}\n",
    )
    .unwrap();
    for (name, body) in [
        ("install.sh", "#!/bin/sh\ntouch installed\n"),
        ("infer.sh", "#!/bin/sh\nprintf 'infer %s' \"$1\"\n"),
    ] {
        let p = sub_dir.join(name);
        std::fs::write(&p, body).unwrap();
        Command::new("chmod").arg("755").arg(&p).status().unwrap();
    }
    // `cyberwave-cloud-node --config /abs/cyberwave.yml` (no `start`), working dir `/`
    let config = sub_dir.join("cyberwave.yml").display().to_string();
    let port = broker.port.to_string();
    let log = std::fs::File::create(&node.log).unwrap();
    let child = node
        .command(&[
            "--config",
            &config,
            "--mqtt-host",
            "127.0.0.1",
            "--mqtt-port",
            &port,
        ])
        .current_dir("/")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    node.child = Some(child);
    let (uuid, _) = node.wait_ready();
    assert!(sub_dir.join("installed").exists(), "{}", node.log());
    let sub = broker.subscribe(&format!("cyberwave/cloud-node/{uuid}/response"));
    broker.publish(
        &format!("cyberwave/cloud-node/{uuid}/command"),
        &cmd("inference", "cli-1", json!({"a": 1})),
    );
    let r = reply_for(&sub, "cli-1", 10 * SEC);
    assert_eq!(r["output"], json!("infer {\"a\":1}"), "{r}");
}

#[test]
fn retained_commands_are_ignored_and_ids_are_kept_across_a_restart() {
    let backend = FakeBackend::start(TOKEN);
    let broker = broker_for_token();
    let yml = "cyberwave-cloud-node:\n  inference: printf '%s\\n' {body} >> runs.log; echo done\n";
    let mut node = Node::new(&backend, yml);
    node.start(broker.port);
    let (uuid, _) = node.wait_ready();
    let topic = format!("cyberwave/cloud-node/{uuid}/command");
    let runs_log = node.dir.path().join("runs.log");
    let runs = || {
        std::fs::read_to_string(&runs_log)
            .unwrap_or_default()
            .lines()
            .count()
    };
    let sub = broker.subscribe(&format!("cyberwave/cloud-node/{uuid}/response"));
    broker.publish(&topic, &cmd("inference", "once-1", json!({"n": 1})));
    reply_for(&sub, "once-1", 10 * SEC);
    assert_eq!(runs(), 1);
    node.signal(libc::SIGTERM);
    assert_eq!(node.wait_exit(10 * SEC), Some(0));

    // While it is down, a retained command waits on the broker.
    broker.publish_with(
        &topic,
        cmd("inference", "ret-1", json!({"n": 2})).as_bytes(),
        true,
    );
    node.start(broker.port);
    node.wait_ready();
    let sub = broker.subscribe(&format!("cyberwave/cloud-node/{uuid}/response"));
    // the id handled before the restart is not run again
    broker.publish(&topic, &cmd("inference", "once-1", json!({"n": 1})));
    broker.publish(&topic, &cmd("inference", "fresh-1", json!({"n": 3})));
    reply_for(&sub, "fresh-1", 10 * SEC);
    std::thread::sleep(SEC);
    assert_eq!(runs(), 2, "retained or repeated command ran");
    assert!(node.log().contains("ignoring a retained command"));
}

#[test]
fn huge_ids_oversized_commands_and_full_queues_get_error_replies() {
    let backend = FakeBackend::start(TOKEN);
    let broker = broker_for_token();
    let yml = "cyberwave-cloud-node:\n  inference: echo ok\n  training: sleep 30.75\n";
    let mut node = Node::new(&backend, yml);
    node.start(broker.port);
    let (uuid, _) = node.wait_ready();
    let pid = node.child.as_ref().unwrap().id();
    let sub = broker.subscribe(&format!("cyberwave/cloud-node/{uuid}/response"));
    let topic = format!("cyberwave/cloud-node/{uuid}/command");
    let before = rss_kib(pid);

    let long_id = "i".repeat(10 << 20);
    for _ in 0..20 {
        broker.publish(&topic, &cmd("inference", &long_id, json!({})));
    }
    let got = sub.collect(5 * SEC);
    let refused = got
        .iter()
        .filter(|(_, p)| {
            p["error"]
                .as_str()
                .is_some_and(|e| e.contains("the limit is 256"))
        })
        .count();
    assert_eq!(refused, 20, "{:?}", got.len());
    let after = rss_kib(pid);
    eprintln!("node RSS: {before} KiB before, {after} KiB after 20 commands with 10 MB ids");
    assert!(after < 96 * 1024, "RSS grew to {after} KiB");

    // over the command limit: an error reply naming the request, and the link stays up
    let huge = json!({"command": "inference", "request_id": "huge-1", "params": {"x": "y".repeat(20 << 20)}});
    broker.publish_with(&topic, huge.to_string().as_bytes(), false);
    let r = reply_for(&sub, "huge-1", 10 * SEC);
    assert!(
        r["error"]
            .as_str()
            .unwrap()
            .contains("the limit is 16777216"),
        "{r}"
    );
    broker.publish(&topic, &cmd("inference", "after-huge", json!({})));
    assert_eq!(
        reply_for(&sub, "after-huge", 10 * SEC)["status"],
        json!("ok")
    );

    // retained and oversized: a restarted node ignores it and keeps its link
    broker.publish_with(&topic, huge.to_string().as_bytes(), true);
    node.signal(libc::SIGTERM);
    node.wait_exit(10 * SEC);
    node.start(broker.port);
    node.wait_ready();
    let sub = broker.subscribe(&format!("cyberwave/cloud-node/{uuid}/response"));
    std::thread::sleep(2 * SEC);
    assert_eq!(node.status().0, 0, "link down: {}", node.log());
    broker.publish(&topic, &cmd("inference", "after-retained", json!({})));
    assert_eq!(
        reply_for(&sub, "after-retained", 10 * SEC)["status"],
        json!("ok")
    );
    assert_eq!(
        node.log().matches("MQTT connected").count(),
        2,
        "reconnect loop: {}",
        node.log()
    );

    // queue: 1 running + 64 waiting; the rest are refused with a reply
    for i in 0..70 {
        broker.publish(&topic, &cmd("training", &format!("q-{i}"), json!({})));
    }
    let got = sub.collect(5 * SEC);
    let full = got
        .iter()
        .filter(|(_, p)| {
            p["error"]
                .as_str()
                .is_some_and(|e| e.contains("queue is full"))
        })
        .count();
    assert_eq!(full, 5, "{got:?}");
    let (_, s) = node.status();
    assert_eq!(s["node"]["functions"]["training"]["queued"], json!(64));
}

#[test]
fn bad_values_fifos_and_deep_yaml_exit_2_naming_the_key() {
    let backend = FakeBackend::start(TOKEN);
    let base = "cyberwave-cloud-node:\n  inference: echo hi\n";
    for (extra, env, key) in [
        (
            "  functions:\n    inference: {timeout_seconds: .inf}\n",
            None,
            "functions.inference.timeout_seconds",
        ),
        (
            "  functions:\n    training: {timeout_seconds: 1e300}\n",
            None,
            "functions.training.timeout_seconds",
        ),
        ("  heartbeat_interval: 1e300\n", None, "heartbeat_interval"),
        (
            "",
            Some(("CYBERWAVE_HEARTBEAT_INTERVAL", "inf")),
            "CYBERWAVE_HEARTBEAT_INTERVAL",
        ),
        (
            "",
            Some(("CYBERWAVE_CLOUD_NODE_SHUTDOWN_GRACE_SECONDS", "1e30")),
            "CYBERWAVE_CLOUD_NODE_SHUTDOWN_GRACE_SECONDS",
        ),
        (
            "  functions:\n    inference: {memory_mb: 99999999999}\n",
            None,
            "functions.inference.memory_mb",
        ),
    ] {
        let mut node = Node::new(&backend, &format!("{base}{extra}"));
        if let Some((k, v)) = env {
            node.env.push((k.into(), v.into()));
        }
        let (code, err, _) = exit_of(&node, &["start"]);
        assert_eq!(code, Some(2), "{key}: {err}");
        assert!(err.contains(key), "{key}: {err}");
    }

    // a FIFO as cyberwave.yml: refused at once, never read
    let node = Node::new(&backend, base);
    let yml = node.dir.path().join("cyberwave.yml");
    std::fs::remove_file(&yml).unwrap();
    mkfifo(&yml);
    let (code, err, took) = exit_of(&node, &["start"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("not a regular file") && took < 3 * SEC,
        "{err} {took:?}"
    );

    // 100,000-deep YAML: refused before the parser spends minutes on it
    let deep = format!(
        "cyberwave-cloud-node:\n  inference: {}{}\n",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let node = Node::new(&backend, &deep);
    let (code, err, took) = exit_of(&node, &["start"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("nesting deeper than 64") && took < 3 * SEC,
        "{err} {took:?}"
    );
}

#[test]
fn non_utf8_environment_is_skipped_and_a_rejected_token_exits_2() {
    use std::os::unix::ffi::OsStrExt;
    let backend = FakeBackend::start(TOKEN);
    let broker = broker_for_token();
    let mut node = Node::new(&backend, "cyberwave-cloud-node:\n  inference: echo hi\n");
    let file = std::fs::File::create(&node.log).unwrap();
    let port = broker.port.to_string();
    let child = node
        .command(&["start", "--mqtt-host", "127.0.0.1", "--mqtt-port", &port])
        .env(
            std::ffi::OsStr::from_bytes(b"ODD_\xff"),
            std::ffi::OsStr::from_bytes(b"\xfe\xff"),
        )
        .env("ODD_VALUE", std::ffi::OsStr::from_bytes(b"\xc3\x28"))
        .stderr(file)
        .spawn()
        .unwrap();
    node.child = Some(child);
    node.wait_ready();
    assert!(
        node.log().contains("is not UTF-8: ignored"),
        "{}",
        node.log()
    );

    let mut node = Node::new(&backend, "cyberwave-cloud-node:\n  inference: echo hi\n");
    node.env.retain(|(k, _)| k != "CYBERWAVE_API_TOKEN");
    node.env
        .push(("CYBERWAVE_API_TOKEN".into(), "cw_wrong".into()));
    let (code, err, _) = exit_of(&node, &["start"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("token rejected") && err.contains("cloud node"),
        "{err}"
    );
}

#[test]
fn sdk_manifest_credentials_envs_and_config_dir_are_honoured() {
    let backend = FakeBackend::start(TOKEN);
    let broker = broker_for_token();
    let mut node = Node::new(
        &backend,
        &format!(
            "cyberwave:\n  version: \"1\"\n  name: demo\n  inference: printf '%s' {{body}}\n  mqtt_use_tls: false\n  mqtt_username: {}\n  mqtt_password: {TOKEN}\n  gpu: true\n",
            cyberwave_edge::mqtt::username_for_token(TOKEN)
        ),
    );
    // Everything comes from the config dir, as `cyberwave login` leaves it.
    let cfg = node.dir.path().join("edge-config");
    std::fs::create_dir_all(&cfg).unwrap();
    std::fs::write(
        cfg.join("credentials.json"),
        json!({"token": TOKEN, "workspace_uuid": ENV_UUID,
               "envs": {"CYBERWAVE_BASE_URL": backend.url(), "CYBERWAVE_WORKSPACE_SLUG": "acme"}})
        .to_string(),
    )
    .unwrap();
    node.env = vec![
        (
            "CYBERWAVE_EDGE_CONFIG_DIR".into(),
            cfg.display().to_string(),
        ),
        (
            "CYBERWAVE_CLOUD_NODE_SHUTDOWN_GRACE_SECONDS".into(),
            "2".into(),
        ),
    ];
    node.env.push((
        "CYBERWAVE_CLOUD_NODE_CONTROL_SOCKET".into(),
        cfg.join("cloud-node.sock").display().to_string(),
    ));
    node.start(broker.port);
    let (uuid, _) = node.wait_ready();
    let create = backend.requests_to("POST", "/api/v1/cloud-node");
    assert_eq!(create[0].body["workspace_uuid"], json!(ENV_UUID));
    let ua = create[0].headers["user-agent"].clone();
    assert!(ua.starts_with("cyberwave-cloud-node/"), "{ua}");
    assert!(cfg.join("instance_identity.json").exists());
    assert!(node.log().contains("`gpu` is not used"), "{}", node.log());
    node.signal(libc::SIGTERM);
    assert_eq!(node.wait_exit(10 * SEC), Some(0));
    let t = backend.requests_to("POST", &format!("/api/v1/cloud-node/{uuid}/terminated"));
    assert_eq!(
        t[0].body["workspace_slug"],
        json!("acme"),
        "{:?}",
        t[0].body
    );
}

/// The real Cyberwave CLI (`cyberwave compute start --config FILE`, cyberwave-cli 0.12.7 in the
/// test venv) starts our binary the way it starts the original: no `start`, a detached process,
/// the working directory of the CLI, credentials `envs` in its environment.
#[test]
fn the_cyberwave_cli_starts_our_node() {
    let Some(cli) = std::env::var_os("CYBERWAVE_TEST_CLI").map(std::path::PathBuf::from) else {
        assert_ne!(
            std::env::var("CYBERWAVE_TEST_REQUIRE_DOCKER").as_deref(),
            Ok("1"),
            "CI needs the cyberwave-cli venv (scripts/test installs it)"
        );
        eprintln!("skipped: no CYBERWAVE_TEST_CLI (run scripts/test)");
        return;
    };
    // The CLI finds the binary next to its own Python (`<venv>/bin/cyberwave-cloud-node`).
    let link = cli.with_file_name("cyberwave-cloud-node");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(BIN, &link).unwrap();

    let backend = FakeBackend::start(TOKEN);
    let broker = broker_for_token();
    let node = Node::new(
        &backend,
        "cyberwave-cloud-node:\n  inference: echo unused\n",
    );
    let cfg = node.dir.path().join("cfg");
    std::fs::create_dir_all(&cfg).unwrap();
    std::fs::write(
        cfg.join("credentials.json"),
        json!({"token": TOKEN, "email": "", "envs": {
            "CYBERWAVE_BASE_URL": backend.url(),
            "CYBERWAVE_MQTT_HOST": "127.0.0.1",
            "CYBERWAVE_MQTT_PORT": broker.port.to_string()}})
        .to_string(),
    )
    .unwrap();
    let project = node.dir.path().join("cli-project");
    std::fs::create_dir_all(&project).unwrap();
    let yml = project.join("cyberwave.yml");
    std::fs::write(
        &yml,
        "cyberwave-cloud-node:\n  inference: printf 'via cli %s' {body}\n",
    )
    .unwrap();
    let out = Command::new(&cli)
        .args(["compute", "start", "--config"])
        .arg(&yml)
        .current_dir("/")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", node.dir.path())
        .env("CYBERWAVE_EDGE_CONFIG_DIR", &cfg)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && said.contains("Cloud node started"),
        "{said}"
    );

    // Detached, with the config path on its command line: found and stopped by it at the end.
    let needle = yml.display().to_string();
    struct Stop(String);
    impl Drop for Stop {
        fn drop(&mut self) {
            let _ = Command::new("pkill")
                .args(["-TERM", "-f", &self.0])
                .status();
        }
    }
    let _stop = Stop(needle.clone());
    let identity = cfg.join("instance_identity.json");
    assert!(
        wait_until(20 * SEC, || identity.exists()),
        "the node the CLI started did not register"
    );
    let uuid =
        serde_json::from_str::<serde_json::Value>(&std::fs::read_to_string(&identity).unwrap())
            .unwrap()["uuid"]
            .as_str()
            .unwrap()
            .to_string();
    let sub = broker.subscribe(&format!("cyberwave/cloud-node/{uuid}/response"));
    std::thread::sleep(SEC); // subscribed
    broker.publish(
        &format!("cyberwave/cloud-node/{uuid}/command"),
        &cmd("inference", "cli-1", json!({"k": 1})),
    );
    let r = reply_for(&sub, "cli-1", 10 * SEC);
    assert_eq!(r["output"], json!("via cli {\"k\":1}"), "{r}");

    // `cyberwave compute status` reads the identity file we wrote.
    let out = Command::new(&cli)
        .args(["compute", "status"])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", node.dir.path())
        .env("CYBERWAVE_EDGE_CONFIG_DIR", &cfg)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains(&uuid), "{said}");
    assert!(!running(&needle).is_empty());
}
