//! The ML worker on the real Docker engine: workflow files from the fake backend's edge-sync,
//! the example worker image (built locally), models from the fake catalog, readiness, hot
//! reload, the breaker, two-strike deletion across a restart, MQTT commands, and the `worker`
//! CLI (ours, and the real Cyberwave CLI delegating to it).

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::docker as dk;
use crate::support::worker::*;
use crate::support::*;

const SEC: Duration = Duration::from_secs(1);

/// Writes a file the way an editor or `rsync` does: a temp file renamed into place.
fn save(path: &std::path::Path, text: &str) {
    let tmp = path.with_extension("py.part");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

#[test]
fn workflow_files_start_the_worker_which_reloads_on_edit_and_stops_when_removed() {
    let Some(w) = setup("worker_main_flow") else {
        return;
    };
    w.backend.set_workflows(
        &w.twin,
        workflows(&[
            ("wf_ab12.py", "# version 1\nprint('hello')\n"),
            ("../../evil.py", "import os\n"),
            ("wf_UPPER.py", "x = 1\n"),
        ]),
    );
    let health = w
        .broker
        .subscribe(&format!("devcyberwave/twin/{}/worker_health", w.twin));
    let d = Daemon::start(&w.dir);
    let file = w.workers().join("wf_ab12.py");
    assert!(
        wait_until(20 * SEC, || file.exists()),
        "no workflow file\n{}",
        d.log()
    );
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o644);
    let names: Vec<String> = std::fs::read_dir(w.workers())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["wf_ab12.py"], "hostile names refused");
    assert!(!w.dir.tmp.path().join("evil.py").exists());

    // Started and ready (the readiness file says so), seen through our `worker status`.
    let ready = wait_until(60 * SEC, || w.worker_json("status")["ready"] == json!(true));
    let status = w.worker_json("status");
    assert!(ready, "{status}\n{}", d.log());
    assert_eq!(status["state"], "running");
    assert_eq!(status["files"][0]["name"], "wf_ab12.py");
    let i = dk::inspect(&w.name).unwrap();
    let env: Vec<&str> = i["Config"]["Env"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e.as_str())
        .collect();
    for kv in [
        format!("CYBERWAVE_TWIN_UUIDS={}", w.twin),
        format!("CYBERWAVE_TWIN_UUID={}", w.twin),
        format!("CYBERWAVE_API_KEY={TOKEN}"),
        format!("CYBERWAVE_ENVIRONMENT_UUID={}", w.env_uuid),
        "CYBERWAVE_EDGE_CONFIG_DIR=/app/.cyberwave".to_string(),
        "CYBERWAVE_DATA_BACKEND=zenoh".to_string(),
        "CYBERWAVE_ENVIRONMENT=dev".to_string(),
    ] {
        assert!(env.contains(&kv.as_str()), "{kv} not in {env:?}");
    }
    assert_eq!(
        i["Config"]["Labels"]["io.cyberwave.edge.service"],
        json!("worker")
    );
    assert_eq!(
        i["Config"]["Labels"]["io.cyberwave.edge.owner"],
        json!(FINGERPRINT)
    );
    assert_eq!(
        i["HostConfig"]["RestartPolicy"]["Name"],
        json!("unless-stopped")
    );
    assert_eq!(i["HostConfig"]["NetworkMode"], json!("host"));
    let mounts = i["Mounts"].as_array().unwrap();
    let workers_mount = mounts
        .iter()
        .find(|m| m["Destination"] == json!("/app/workers"))
        .unwrap();
    assert_eq!(workers_mount["RW"], json!(false));
    // The token never reaches argv.
    let args = format!("{} {}", i["Args"], i["Config"]["Cmd"]);
    assert!(!args.contains(TOKEN));
    assert!(dk::logs(&w.name).contains("LOADED wf_ab12.py"));
    // The worker_starting card went through its phases and was resolved at `ready`.
    assert!(wait_until(10 * SEC, || w
        .backend
        .alerts_of_type("worker_starting")
        .iter()
        .any(|a| a["status"] == json!("resolved"))));
    let card = &w.backend.alerts_of_type("worker_starting")[0];
    assert_eq!(card["metadata"]["phase"], json!("ready"), "{card}");
    assert_eq!(card["metadata"]["overall_progress_percent"], json!(100));
    assert_eq!(card["name"], json!("Worker starting"));

    // worker_health on MQTT with the original's fields.
    let (_, h) = health
        .wait_for(20 * SEC, |_, v| v["is_ready"] == json!(true))
        .unwrap_or_else(|| panic!("no worker_health\n{}", d.log()));
    assert_eq!(h["container_name"], json!(w.name));
    assert_eq!(h["container_status"], json!("running"));
    assert_eq!(h["circuit_breaker_tripped"], json!(false));
    assert!(h.get("session_id").is_none());

    // Hot reload: a saved edit restarts the worker within about a second of settling.
    let (_, before) = w.started_at().unwrap();
    save(&file, "# version 2\nprint('hello again')\n");
    let t = Instant::now();
    assert!(
        wait_until(15 * SEC, || w
            .started_at()
            .is_some_and(|(s, at)| s == "running" && at != before)),
        "not reloaded\n{}",
        d.log()
    );
    let took = t.elapsed();
    assert!(took < 5 * SEC, "reload took {took:?}");
    assert!(wait_until(10 * SEC, || dk::logs(&w.name)
        .matches("LOADED wf_ab12.py")
        .count()
        >= 2));

    // remove_workflow_worker: hostile names refused, ours removed, the worker stops.
    let creds = w.dir.file("credentials.json");
    w.broker.publish(
        &format!("devcyberwave/twin/{}/command", w.twin),
        &json!({"command": "remove_workflow_worker", "request_id": "r1",
                "worker_filenames": ["../credentials.json", "wf_ab12.py", 7]})
        .to_string(),
    );
    assert!(wait_until(10 * SEC, || !file.exists()), "{}", d.log());
    assert!(creds.exists());
    assert!(
        wait_until(20 * SEC, || !w.running()),
        "worker still running with no files\n{}",
        d.log()
    );
    assert!(d.log().contains("refused"), "{}", d.log());
}

#[test]
fn deleted_workflows_go_after_two_syncs_even_across_a_restart() {
    let Some(mut w) = setup("worker_two_strikes") else {
        return;
    };
    w.dir
        .set_env("CYBERWAVE_WORKER_SYNC_INTERVAL_LOOPS", "1000");
    w.backend
        .set_workflows(&w.twin, workflows(&[("wf_01.py", "print(1)\n")]));
    let mut d = Daemon::start(&w.dir);
    let file = w.workers().join("wf_01.py");
    assert!(wait_until(20 * SEC, || file.exists()), "{}", d.log());
    // Gone from the backend: the first sync only marks it.
    w.backend.set_workflows(&w.twin, workflows(&[]));
    let topic = format!("devcyberwave/twin/{}/command", w.twin);
    w.broker
        .publish(&topic, r#"{"command":"sync_workflows","request_id":"s1"}"#);
    let strikes = w.dir.file("worker-sync-strikes.json");
    assert!(
        wait_until(10 * SEC, || std::fs::read_to_string(&strikes)
            .is_ok_and(|t| t.contains("wf_01.py"))),
        "{}",
        d.log()
    );
    assert!(file.exists(), "deleted on the first miss");
    // The same request id again is a duplicate: no second strike from it.
    w.broker
        .publish(&topic, r#"{"command":"sync_workflows","request_id":"s1"}"#);
    std::thread::sleep(2 * SEC);
    assert!(file.exists());
    d.signal(libc::SIGTERM);
    assert!(d.wait_exit(10 * SEC).is_some());
    // After a restart the boot sync is the second miss.
    let d = Daemon::start(&w.dir);
    assert!(
        wait_until(20 * SEC, || !file.exists()),
        "not deleted after restart\n{}",
        d.log()
    );
}

#[test]
fn models_are_cached_before_the_worker_starts_and_a_missing_one_keeps_it_stopped() {
    let Some(w) = setup("worker_models") else {
        return;
    };
    let weights = b"fake yolo weights 0123456789".repeat(1000);
    let url = w.backend.add_file("yolo/yolov8n.pt", weights.clone());
    let sha = cyberwave_edge::sha256_hex(&weights);
    // The hosted (signed) copy is corrupt: refused by its checksum, the upstream URL wins.
    let signed = w.backend.add_file("signed/abc", b"tampered".to_vec());
    w.backend.set_signed_url(
        "3f1a0000-0000-4000-8000-000000000001",
        &format!("{signed}?sig=s3cr3t"),
    );
    w.backend
        .add_mlmodel(json!({"uuid": "3f1a0000-0000-4000-8000-000000000001",
        "model_external_id": "yolov8n", "download_url": url,
        "metadata": {"checksum_sha256": sha}}));
    std::fs::create_dir_all(w.workers()).unwrap();
    std::fs::write(
        w.workers().join("detect.py"),
        "model = cw.models.load(\"yolov8n\")\nother = cw.models.load('not-in-catalog')\n",
    )
    .unwrap();
    let d = Daemon::start(&w.dir);
    let failed = wait_until(30 * SEC, || {
        !w.backend
            .alerts_of_type("model_download_failure")
            .is_empty()
    });
    assert!(failed, "{}", d.log());
    let a = &w.backend.alerts_of_type("model_download_failure")[0];
    assert_eq!(
        a["name"],
        json!("Model could not be loaded: not-in-catalog")
    );
    assert_eq!(a["twin_uuid"], json!(w.twin));
    wait_until(10 * SEC, || {
        w.worker_json("status")["models_state"] == json!("failed")
    });
    let s = w.worker_json("status");
    assert_eq!(s["models_state"], json!("failed"), "{s}");
    assert!(!w.running(), "started with a model missing");
    // The good one is in the cache, verified, in the original's layout.
    let cached = w.dir.path.join("models/yolov8n/yolov8n.pt");
    assert_eq!(std::fs::read(&cached).unwrap(), weights);
    let manifest = w.dir.read_json("models/manifest.json");
    assert_eq!(manifest["yolov8n"]["checksum_sha256"], json!(sha));
    assert_eq!(
        manifest["yolov8n"]["downloaded_from"],
        json!("download_url")
    );
    // The real SDK (`cw.models.load`'s own lookup and checksum check) accepts what the daemon
    // cached.
    if let Some(python) = crate::models::venv_python() {
        let (ok, said) = crate::models::sdk_check(&python, &w.dir.path.join("models"), "yolov8n");
        assert!(ok, "{said}");
        assert_eq!(said.trim(), cached.display().to_string());
    }
    let hosted = w.backend.requests_to("GET", "/files/signed/abc");
    assert_eq!(
        hosted.len(),
        1,
        "one try: a checksum mismatch is not retried"
    );
    assert!(
        !d.log().contains("s3cr3t"),
        "a signed URL's query is a credential"
    );
    // Fix the worker file; `worker start` (ours, through the daemon) starts it.
    std::fs::write(
        w.workers().join("detect.py"),
        "model = cw.models.load(\"yolov8n\")\n",
    )
    .unwrap();
    // Let the daemon see the edit first (else the start is followed by a reload).
    assert!(wait_until(10 * SEC, || w.worker_json("status")["files"][0]
        ["size_bytes"]
        == json!(34)));
    let out = w.dir.command(&["worker", "start"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        d.log()
    );
    assert!(
        text.contains(&format!("✓ Worker container {} started", w.name)),
        "{text}"
    );
    assert!(w.running(), "{}", d.log());
    assert!(
        wait_until(10 * SEC, || dk::logs(&w.name)
            .contains("MODELS manifest.json yolov8n")),
        "{}\n{}",
        dk::logs(&w.name),
        d.log()
    );
    let s = w.worker_json("status");
    assert_eq!(s["models"][0]["model_id"], json!("yolov8n"));
}

#[test]
fn the_breaker_stops_automatic_restarts_after_five_in_five_minutes() {
    let Some(mut w) = setup("worker_breaker") else {
        return;
    };
    w.dir
        .set_env("CYBERWAVE_WORKER_RELOAD_COOLDOWN_SECONDS", "0");
    std::fs::create_dir_all(w.workers()).unwrap();
    let file = w.workers().join("custom.py");
    std::fs::write(&file, "n = 0\n").unwrap();
    let d = Daemon::start(&w.dir);
    assert!(wait_until(60 * SEC, || w.running()), "{}", d.log());
    for n in 1..=6 {
        let (_, before) = w.started_at().unwrap();
        save(&file, &format!("n = {n}\n"));
        let restarted = wait_until(8 * SEC, || {
            w.started_at()
                .is_some_and(|(s, at)| s == "running" && at != before)
        });
        assert_eq!(restarted, n <= 5, "edit {n}\n{}", d.log());
    }
    let h = w.worker_json("health");
    assert_eq!(h["health"]["circuit_breaker_tripped"], json!(true), "{h}");
    assert_eq!(h["health"]["recent_restarts"], json!(5));
    let text = String::from_utf8_lossy(
        &w.dir
            .command(&["worker", "health"])
            .output()
            .unwrap()
            .stdout,
    )
    .into_owned();
    assert!(
        text.contains("Circuit-breaker: TRIPPED — automatic restarts suppressed"),
        "{text}"
    );
    assert!(text.contains("worker-files-changed"), "{text}");
    // An operator's explicit stop then start: the start re-arms the breaker and starts at once
    // (it used to wait silently for 180 s and never start).
    let stop = w.dir.command(&["worker", "stop"]).output().unwrap();
    assert_eq!(stop.status.code(), Some(0), "{stop:?}\n{}", d.log());
    assert!(!w.running());
    let t = std::time::Instant::now();
    let start = w.dir.command(&["worker", "start"]).output().unwrap();
    let out = String::from_utf8_lossy(&start.stdout);
    assert_eq!(start.status.code(), Some(0), "{start:?}\n{}", d.log());
    assert!(t.elapsed() < 30 * SEC, "start took {:?}", t.elapsed());
    assert!(out.contains("✓ Worker container"), "{out}");
    assert!(w.running());
    let h = w.worker_json("health");
    assert_eq!(h["health"]["circuit_breaker_tripped"], json!(false), "{h}");
    // `worker logs`: blank lines skipped; on a terminal `[LEVEL] [name]` coloured.
    assert!(wait_until(20 * SEC, || w
        .dir
        .command(&["worker", "logs", "--no-follow"])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout)
            .contains("[INFO] [cyberwave.worker] workers loaded"))));
    let plain = w
        .dir
        .command(&["worker", "logs", "--no-follow"])
        .output()
        .unwrap();
    assert_eq!(plain.status.code(), Some(0));
    let text = String::from_utf8_lossy(&plain.stdout);
    assert!(!text.lines().any(|l| l.trim().is_empty()), "{text:?}");
    assert!(!text.contains('\x1b'), "no colour off a terminal: {text:?}");
    let probe = w.dir.command(&["worker", "logs", "--no-follow"]);
    let mut tty = std::process::Command::new("script");
    tty.env_clear().args([
        "-qec",
        &format!(
            "{} worker logs --no-follow",
            probe.get_program().to_string_lossy()
        ),
        "/dev/null",
    ]);
    for (k, v) in probe.get_envs() {
        if let Some(v) = v {
            tty.env(k, v);
        }
    }
    let coloured = String::from_utf8_lossy(&tty.output().unwrap().stdout).into_owned();
    assert!(
        coloured.contains("\x1b[32m[INFO]\x1b[0m\x1b[2m [cyberwave.worker]\x1b[0m workers loaded"),
        "{coloured:?}"
    );
    // Re-armed: the next edit reloads it again.
    let (_, before) = w.started_at().unwrap();
    save(&file, "n = 7\n");
    assert!(
        wait_until(8 * SEC, || w
            .started_at()
            .is_some_and(|(s, at)| s == "running" && at != before)),
        "{}",
        d.log()
    );
}

/// The Cyberwave CLI (pip `cyberwave-cli`, installed by scripts/test) delegates `worker
/// start|stop|restart|health` to the `cyberwave-edge-core` on PATH and forwards its exit code.
#[test]
fn the_cyberwave_cli_drives_the_worker_through_our_binary() {
    let Ok(cli) = std::env::var("CYBERWAVE_TEST_CLI") else {
        assert!(
            std::env::var("CYBERWAVE_TEST_REQUIRE_DOCKER").as_deref() != Ok("1"),
            "CI needs CYBERWAVE_TEST_CLI"
        );
        eprintln!("skipped: CYBERWAVE_TEST_CLI not set");
        return;
    };
    let Some(w) = setup("worker_cli") else {
        return;
    };
    std::fs::create_dir_all(w.workers()).unwrap();
    let file = w.workers().join("custom.py");
    std::fs::write(&file, "print('hi')\n").unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    // Our binary first on PATH, as `cyberwave-edge-core`.
    let bin_dir = w.dir.tmp.path().join("bin");
    std::fs::create_dir_all(&bin_dir).unwrap();
    std::os::unix::fs::symlink(
        crate::support::daemon::BIN,
        bin_dir.join("cyberwave-edge-core"),
    )
    .unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let run = |args: &[&str]| {
        let mut c = std::process::Command::new(&cli);
        c.args(args)
            .env_clear()
            .env("PATH", &path)
            .env("HOME", w.dir.tmp.path())
            .env("CYBERWAVE_EDGE_CONFIG_DIR", &w.dir.path);
        for (k, v) in &w.dir.env {
            c.env(k, v);
        }
        let out = c.output().unwrap();
        (
            out.status.code(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    };
    // Without a daemon our binary acts on Docker directly.
    let (code, text) = run(&["worker", "start", "--skip-preflight"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(w.running(), "{text}");
    // With the daemon running the verbs go through it.
    let d = Daemon::start(&w.dir);
    assert!(
        wait_until(30 * SEC, || w.worker_json("status")["ready"] == json!(true)),
        "{}",
        d.log()
    );
    let (code, text) = run(&["worker", "stop"]);
    assert_eq!(code, Some(0), "{text}\n{}", d.log());
    assert!(text.contains("stopped"), "{text}");
    assert!(!w.running());
    let (code, text) = run(&["worker", "start", "--skip-preflight"]);
    assert_eq!(code, Some(0), "{text}\n{}", d.log());
    assert!(w.running());
    let (code, text) = run(&["worker", "restart"]);
    assert_eq!(code, Some(0), "{text}\n{}", d.log());
    assert!(text.contains("restarted"), "{text}");
    let (code, text) = run(&["worker", "health"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains(&format!("Worker Health — {}", w.name)),
        "{text}"
    );
    assert!(text.contains("cli-restart"), "{text}");
}

/// Settings a hostile (or careless) user can write never reach Docker's argv or env file as
/// something else: an image that would be an option, an env name that would smuggle a line.
#[test]
fn hostile_settings_never_reach_docker_as_options_or_extra_variables() {
    let Some(mut w) = setup("worker_hostile_settings") else {
        return;
    };
    w.dir.write_credentials(
        TOKEN,
        &[
            ("CYBERWAVE_BASE_URL", &w.backend.url()),
            ("CYBERWAVE_MQTT_PORT", &w.broker.port.to_string()),
            ("CYBERWAVE_ENVIRONMENT", "dev"),
            ("CYBERWAVE_X\nCYBERWAVE_SMUGGLED", "evil"),
            ("CYBERWAVE_WORKER_MEMORY_MB", "1e30"),
        ],
    );
    w.dir.set_env("CYBERWAVE_WORKER_IMAGE", "--privileged");
    std::fs::create_dir_all(w.workers()).unwrap();
    std::fs::write(w.workers().join("custom.py"), "x = 1\n").unwrap();
    // With the bad image the default one is used, and it cannot be pulled here: a start failure.
    let d = Daemon::start(&w.dir);
    assert!(
        wait_until(30 * SEC, || !w
            .backend
            .alerts_of_type("worker_start_failure")
            .is_empty()),
        "{}",
        d.log()
    );
    // The card says what failed in plain words, critical, and is resolved.
    assert!(wait_until(10 * SEC, || w
        .backend
        .alerts_of_type("worker_starting")
        .iter()
        .any(|a| a["status"] == json!("resolved"))));
    let card = &w.backend.alerts_of_type("worker_starting")[0];
    assert_eq!(card["metadata"]["failed"], json!(true), "{card}");
    assert_eq!(card["severity"], json!("critical"));
    assert_eq!(
        card["description"],
        json!("Could not download the worker software. Check your connection and try again.")
    );
    let log = d.log();
    assert!(log.contains("is not an image reference"), "{log}");
    assert!(log.contains("CYBERWAVE_WORKER_MEMORY_MB"), "{log}");
    assert!(
        dk::inspect(&w.name).is_none(),
        "no container from a refused image"
    );
    drop(d);
    // A good image: the smuggled name is left out of the env file, the rest runs.
    w.dir.set_env("CYBERWAVE_WORKER_IMAGE", WORKER_IMAGE);
    let d = Daemon::start(&w.dir);
    assert!(wait_until(30 * SEC, || w.running()), "{}", d.log());
    let i = dk::inspect(&w.name).unwrap();
    let env = i["Config"]["Env"].to_string();
    assert!(!env.contains("SMUGGLED"), "{env}");
    assert!(!env.contains("evil"), "{env}");
    assert!(
        i["HostConfig"]["Memory"] == json!(0),
        "bad memory limit ignored"
    );
    // No credentials: the worker CLI says so and exits 1.
    std::fs::remove_file(w.dir.file("credentials.json")).unwrap();
    let out = w.dir.command(&["worker", "stop"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("No credentials found. Run 'cyberwave login' first."),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
