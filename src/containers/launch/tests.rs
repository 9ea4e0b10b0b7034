//! The launcher against the recording fake engine: which engine calls a launch makes, in
//! which order, and what reaches the engine (never the token in argv; the env file gone after).

use std::sync::{Arc, Mutex};

use serde_json::json;

use super::*;
use crate::engine::fake::FakeEngine;

/// Role hooks that record into the fake engine's call list, so their order shows.
struct Recording(Arc<FakeEngine>);

impl LaunchHooks for Recording {
    fn prepare(&self, spec: &ContainerSpec, payload: &Value) -> Result<(), LaunchFailure> {
        if let Ok(mut c) = self.0.calls.lock() {
            c.push(format!(
                "prepare {} {}",
                spec.name,
                payload["uuid"].as_str().unwrap_or("")
            ));
        }
        Ok(())
    }
    fn progress(&self, spec: &ContainerSpec, image: &str, message: &str) {
        if let Ok(mut c) = self.0.calls.lock() {
            c.push(format!("progress {} {image}: {message}", spec.name));
        }
    }
    fn pull_line(&self, spec: &ContainerSpec, _image: &str, line: &str) {
        if let Ok(mut c) = self.0.calls.lock() {
            c.push(format!("line {} {line}", spec.name));
        }
    }
    fn pull_progress(&self, spec: &ContainerSpec, patch: &Value) {
        if let Ok(mut c) = self.0.calls.lock() {
            c.push(format!(
                "card {} {} {}% {}",
                spec.name, patch["phase"], patch["progress_percent"], patch["downloaded_bytes"]
            ));
        }
    }
}

const TOKEN: &str = "cw_secret_token_for_launch_tests";

fn spec(name: &str, image: &str) -> ContainerSpec {
    ContainerSpec {
        name: name.into(),
        role: crate::containers::spec::Role::Driver,
        owner: "11111111-2222-4333-8444-555555555555".into(),
        title: "arm".into(),
        service: None,
        image: image.into(),
        fallback_image: None,
        pull: crate::containers::spec::Pull::Always,
        floor: None,
        probe: None,
        pull_attempts: 1,
        once: false,
        links: Default::default(),
        options: [
            "--restart",
            "unless-stopped",
            "--name",
            name,
            "--label",
            "io.cyberwave.edge.spec-hash=h",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect(),
        env: [("CYBERWAVE_API_KEY".to_string(), TOKEN.to_string())].into(),
        command: Vec::new(),
        spec_hash: "h".into(),
        restart: "unless-stopped".into(),
    }
}

fn launcher(engine: Arc<FakeEngine>, dir: &std::path::Path) -> Launcher {
    Launcher {
        hooks: Arc::new(Recording(engine.clone())),
        engine,
        config_dir: dir.to_path_buf(),
        probe: Duration::from_secs(5),
        reserve: None,
    }
}

fn launch(l: &Launcher, specs: Vec<ContainerSpec>) -> Vec<(String, Result<Up, LaunchFailure>)> {
    let jobs = specs
        .into_iter()
        .map(|spec| LaunchJob {
            payload: json!({"uuid": spec.owner}),
            spec,
            exists: false,
            settle: false,
        })
        .collect();
    let out = Mutex::new(Vec::new());
    l.launch_batch(jobs, |s, r| {
        if let Ok(mut o) = out.lock() {
            o.push((s.name.clone(), r));
        }
    });
    out.into_inner().unwrap()
}

#[test]
fn a_local_build_is_not_pulled_and_the_token_stays_out_of_argv_and_off_disk() {
    let d = tempfile::tempdir().unwrap();
    let engine = Arc::new(FakeEngine::with_images(&["drv:local"]));
    let l = launcher(engine.clone(), d.path());
    let got = launch(&l, vec![spec("cyberwave-driver-11111111", "drv:local")]);
    assert_eq!(
        got[0].1,
        Ok(Up {
            id: "id-cyberwave-driver-11111111".into(),
            image_id: "sha256:drv:local".into()
        })
    );
    let calls = engine.calls();
    assert_eq!(
        calls,
        [
            "image_exists drv:local",
            "prepare cyberwave-driver-11111111 11111111-2222-4333-8444-555555555555",
            "create cyberwave-driver-11111111",
            "start cyberwave-driver-11111111",
            "inspect cyberwave-driver-11111111"
        ],
        "{calls:?}"
    );
    let env_files = engine.env_files.lock().unwrap().clone();
    // The token, and the update lock every driver gets (its directory made for it).
    assert_eq!(
        env_files,
        [format!(
            "CYBERWAVE_API_KEY={TOKEN}\nCYBERWAVE_UPDATE_LOCK_FILE=/run/cyberwave/lock/updates.lock\n"
        )]
    );
    assert!(crate::containers::lock::lock_dir(d.path(), "cyberwave-driver-11111111").is_dir());
    assert!(!env_file_path(d.path(), "cyberwave-driver-11111111").exists());
    assert!(calls.iter().all(|c| !c.contains(TOKEN)));
}

#[test]
fn pulls_fallbacks_and_failures_name_their_phase() {
    let d = tempfile::tempdir().unwrap();
    // not local: pulled first
    let engine = Arc::new(FakeEngine::default());
    let l = launcher(engine.clone(), d.path());
    assert!(launch(&l, vec![spec("c1", "repo/drv:1.0")])[0].1.is_ok());
    let calls = engine.calls();
    assert_eq!(
        calls[0],
        "progress c1 repo/drv:1.0: docker pull started for image repo/drv:1.0"
    );
    assert_eq!(calls[1], "pull repo/drv:1.0");
    // The card follows the pull layer by layer and byte by byte; the log by layers.
    let cards: Vec<&str> = calls
        .iter()
        .filter(|c| c.starts_with("card "))
        .map(String::as_str)
        .collect();
    assert_eq!(
        cards,
        [
            "card c1 \"pull_started\" 0.0% 0",  // 1 layer known
            "card c1 \"pull_started\" 0.0% 0",  // 2 layers known
            "card c1 \"pull_started\" 50.0% 0", // one already exists
            "card c1 \"downloading\" 75.0% 5000000",
            "card c1 \"downloading\" 99.0% 10000000", // below 100 until the end
            "card c1 \"installing\" 99.0% 10000000",
            "card c1 \"installing\" 99.0% 10000000", // layers_complete 2/2
            "card c1 \"pull_complete\" 100.0% 10000000",
        ]
    );
    // The pull's own lines go to the role as `docker pull: <line>`, bounded (a line per
    // 100 ms unless the layer picture changed): here every change, first to last.
    let lines: Vec<&str> = calls
        .iter()
        .filter_map(|c| c.strip_prefix("line c1 "))
        .collect();
    assert_eq!(
        lines.first(),
        Some(&"docker pull: 1.0: Pulling from repo/drv")
    );
    assert!(
        lines.contains(&"docker pull: a1b2: Pull complete"),
        "{lines:?}"
    );
    assert_eq!(
        lines.last(),
        Some(&"docker pull: Status: Downloaded newer image for repo/drv:1.0")
    );
    assert!(lines.len() <= 8, "{lines:?}");

    // a failed pull with a local copy runs the local copy
    let engine = Arc::new(FakeEngine::with_images(&["repo/drv:1.0"]));
    engine.fail("pull", "registry unreachable");
    let l = launcher(engine.clone(), d.path());
    assert!(launch(&l, vec![spec("c2", "repo/drv:1.0")])[0].1.is_ok());

    // no copy anywhere: pull_failed
    let engine = Arc::new(FakeEngine::default());
    engine.fail("pull", "registry unreachable");
    let l = launcher(engine.clone(), d.path());
    let r = launch(&l, vec![spec("c3", "repo/drv:1.0")]);
    assert_eq!(r[0].1.as_ref().unwrap_err().phase, "pull_failed");
    assert!(!engine.calls().iter().any(|c| c.starts_with("create")));

    // Jetson: the jetson- tag fails, the original tag is tried
    let engine = Arc::new(FakeEngine::default());
    engine.fail("pull repo/drv:jetson-1.0", "not found");
    let l = launcher(engine.clone(), d.path());
    let mut s = spec("c4", "repo/drv:jetson-1.0");
    s.fallback_image = Some("repo/drv:1.0".into());
    assert!(launch(&l, vec![s])[0].1.is_ok());
    assert!(engine.calls().contains(&"pull repo/drv:1.0".to_string()));

    // a failed start removes the half-made container
    let engine = Arc::new(FakeEngine::with_images(&["drv:local"]));
    engine.fail("start", "no such device /dev/ttyACM0");
    let l = launcher(engine.clone(), d.path());
    let r = launch(&l, vec![spec("c5", "drv:local")]);
    assert_eq!(r[0].1.as_ref().unwrap_err().phase, "docker_start_failed");
    assert_eq!(engine.calls().last().map(String::as_str), Some("remove c5"));
}

#[test]
fn a_name_already_in_use_is_replaced_and_batches_launch_everything() {
    let d = tempfile::tempdir().unwrap();
    let engine = Arc::new(FakeEngine::with_images(&["drv:local"]));
    let l = launcher(engine.clone(), d.path());
    assert!(launch(&l, vec![spec("c1", "drv:local")])[0].1.is_ok());
    // someone left a running container of that name: it is stopped with its grace period
    // (Docker's 10 s: it set none), removed, and the create repeated
    let got = launch(&l, vec![spec("c1", "drv:local")]);
    assert!(got[0].1.is_ok(), "{got:?}");
    let calls = engine.calls();
    let tail: Vec<&str> = calls
        .iter()
        .rev()
        .take(7)
        .rev()
        .map(String::as_str)
        .collect();
    assert_eq!(
        tail,
        [
            "create c1",
            "inspect c1",
            "stop c1 10",
            "remove c1",
            "create c1",
            "start c1",
            "inspect c1"
        ][..],
        "{calls:?}"
    );

    let engine = Arc::new(FakeEngine::with_images(&["drv:local"]));
    let l = launcher(engine.clone(), d.path());
    let specs: Vec<ContainerSpec> = (0..10)
        .map(|i| spec(&format!("d{i}"), "drv:local"))
        .collect();
    let got = launch(&l, specs);
    assert_eq!(got.len(), 10);
    assert!(got.iter().all(|(_, r)| r.is_ok()), "{got:?}");
    // one image check for the batch, not one per container
    let checks = engine
        .calls()
        .iter()
        .filter(|c| c.starts_with("image_exists"))
        .count();
    assert_eq!(checks, 1);
}

#[test]
fn env_files_must_be_regular_files_that_stay_inside_the_config_dir() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    std::fs::create_dir(dir.join("robots")).unwrap();
    std::fs::write(dir.join("robots/arm.env"), "A=1\n").unwrap();
    std::os::unix::fs::symlink("/etc/hostname", dir.join("robots/evil.env")).unwrap();
    std::os::unix::fs::symlink(dir.join("robots/arm.env"), dir.join("alias.env")).unwrap();
    let opts = |f: &str| vec!["--env-file".to_string(), dir.join(f).display().to_string()];
    assert_eq!(env_file_problem(dir, &opts("robots/arm.env")), None);
    assert_eq!(
        env_file_problem(dir, &opts("alias.env")),
        None,
        "a link inside is fine"
    );
    let evil = env_file_problem(dir, &opts("robots/evil.env")).unwrap();
    assert!(evil.contains("does not resolve to a file inside"), "{evil}");
    let missing = env_file_problem(dir, &opts("nope.env")).unwrap();
    assert!(missing.ends_with("is not a regular file"), "{missing}");
    assert!(env_file_problem(dir, &opts("robots/../../x.env")).is_some());
    assert!(
        env_file_problem(dir, &opts("robots")).is_some(),
        "a directory"
    );
    // A driver's own --env-file elsewhere is the driver's business (passed through).
    let own = vec!["--env-file".to_string(), "/etc/hostname".to_string()];
    assert_eq!(env_file_problem(dir, &own), None);
}

#[test]
fn one_pull_reports_to_every_container_using_the_image() {
    let d = tempfile::tempdir().unwrap();
    let engine = Arc::new(FakeEngine::default());
    let l = launcher(engine.clone(), d.path());
    let got = launch(
        &l,
        vec![spec("arm", "repo/drv:1.0"), spec("cam", "repo/drv:1.0")],
    );
    assert!(got.iter().all(|(_, r)| r.is_ok()), "{got:?}");
    let calls = engine.calls();
    assert_eq!(calls.iter().filter(|c| c.starts_with("pull ")).count(), 1);
    for name in ["arm", "cam"] {
        for want in [
            format!("progress {name} repo/drv:1.0: docker pull started for image repo/drv:1.0"),
            format!("line {name} docker pull: a1b2: Pull complete"),
            format!("progress {name} repo/drv:1.0: docker pull completed for image repo/drv:1.0"),
        ] {
            assert!(calls.contains(&want), "{want} not in {calls:?}");
        }
        assert!(
            calls
                .iter()
                .any(|c| c.starts_with(&format!("card {name} \"pull_complete\"")))
        );
    }
}

#[test]
fn a_registry_refusing_stored_credentials_gets_one_anonymous_retry() {
    let d = tempfile::tempdir().unwrap();
    let engine = Arc::new(FakeEngine::default());
    engine.fail("pull repo", "unauthorized: authentication required");
    let l = launcher(engine.clone(), d.path());
    let got = launch(&l, vec![spec("c1", "repo/drv:1.0")]);
    assert!(got[0].1.is_ok(), "{got:?}");
    let calls = engine.calls();
    let retry = "progress c1 repo/drv:1.0: docker pull: registry refused repo/drv:1.0 as unauthorized; retrying without stored credentials";
    let at = |c: &str| calls.iter().position(|x| x == c);
    assert!(at("pull repo/drv:1.0") < at(retry), "{calls:?}");
    assert!(at(retry) < at("pull-anon repo/drv:1.0"), "{calls:?}");

    // Another failure is not retried anonymously; "incorrect username or password" is.
    let engine = Arc::new(FakeEngine::default());
    engine.fail("pull repo", "manifest unknown");
    let l = launcher(engine.clone(), d.path());
    assert!(launch(&l, vec![spec("c2", "repo/drv:1.0")])[0].1.is_err());
    assert!(!engine.calls().iter().any(|c| c.starts_with("pull-anon")));
    let engine = Arc::new(FakeEngine::default());
    engine.fail("pull repo", "Error: Incorrect Username or Password");
    engine.fail("pull-anon", "pull access denied");
    let l = launcher(engine.clone(), d.path());
    let r = launch(&l, vec![spec("c3", "repo/drv:1.0")]);
    assert_eq!(r[0].1.as_ref().unwrap_err().phase, "pull_failed");
    assert!(engine.calls().iter().any(|c| c == "pull-anon repo/drv:1.0"));
}

#[test]
fn the_probe_judges_as_the_original() {
    let info = |status: &str, running: bool, code: i64, restarts: u64, policy: &str| {
        crate::engine::Details {
            exit_code: code,
            restart_count: restarts,
            restart_policy: policy.into(),
            ..crate::engine::Details::example(status, running)
        }
    };
    let rows = [
        ("running", true, 0, 0, "unless-stopped", Verdict::Ready),
        ("exited", false, 0, 0, "no", Verdict::Ready),
        ("restarting", false, 0, 1, "unless-stopped", Verdict::Ready),
        ("dead", false, 1, 0, "unless-stopped", Verdict::Failed),
        // Docker restarted it already: its policy is at work, keep waiting.
        ("exited", false, 1, 3, "unless-stopped", Verdict::Wait),
        ("exited", false, 1, 2, "no", Verdict::Wait),
        // Exited for good.
        ("exited", false, 1, 0, "no", Verdict::Failed),
        ("exited", false, 1, 0, "", Verdict::Failed),
        // The policy will restart it.
        ("exited", false, 1, 0, "unless-stopped", Verdict::Wait),
        ("restarting", false, 1, 1, "unless-stopped", Verdict::Wait),
        ("created", false, 0, 0, "unless-stopped", Verdict::Wait),
    ];
    for (status, running, code, restarts, policy, want) in rows {
        assert_eq!(
            probe_verdict(&info(status, running, code, restarts, policy)),
            want,
            "{status} code {code} restarts {restarts} policy {policy}"
        );
    }
}

#[test]
fn a_role_may_ask_for_more_pull_attempts_within_one_launch() {
    let d = tempfile::tempdir().unwrap();
    let engine = Arc::new(FakeEngine::default());
    engine.fail("pull repo", "net/http: TLS handshake timeout");
    let l = launcher(engine.clone(), d.path());
    let mut s = spec("w", "repo/worker:1.0");
    s.pull_attempts = 2;
    let t = std::time::Instant::now();
    let r = launch(&l, vec![s]);
    assert_eq!(r[0].1.as_ref().unwrap_err().phase, "pull_failed");
    let pulls = engine
        .calls()
        .iter()
        .filter(|c| *c == "pull repo/worker:1.0")
        .count();
    assert_eq!(pulls, 2);
    assert!(t.elapsed() >= Duration::from_secs(2), "with backoff");
    // A driver (one attempt) is retried by its launch backoff instead.
    let engine = Arc::new(FakeEngine::default());
    engine.fail("pull repo", "net/http: TLS handshake timeout");
    let l = launcher(engine.clone(), d.path());
    let _ = launch(&l, vec![spec("c", "repo/drv:1.0")]);
    assert_eq!(
        engine
            .calls()
            .iter()
            .filter(|c| c.starts_with("pull "))
            .count(),
        1
    );
}

#[test]
fn a_pull_that_would_eat_the_disk_reserve_removes_unused_images_then_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let engine = Arc::new(FakeEngine::with_images(&["old/drv:1"]));
    engine
        .sizes
        .lock()
        .unwrap()
        .insert("repo/drv:2".into(), 300 << 20);
    let mut l = launcher(engine.clone(), d.path());
    // More than any disk has: nothing removed can make room.
    let reserve = Arc::new(crate::containers::reserve::DiskReserve {
        bytes: u64::MAX / 2,
        ..Default::default()
    });
    *reserve.removable.lock().unwrap() = vec!["old/drv:1".into()];
    l.reserve = Some(reserve);
    let got = launch(&l, vec![spec("arm", "repo/drv:2")]);
    let f = got[0].1.clone().unwrap_err();
    assert_eq!(f.phase, "disk_reserve");
    assert!(f.message.contains("300 MB"), "{f}");
    let calls = engine.calls();
    assert!(calls.contains(&"rmi old/drv:1".to_string()), "{calls:?}");
    assert!(
        !calls
            .iter()
            .any(|c| c.starts_with("pull") || c.starts_with("create")),
        "{calls:?}"
    );
    // A reserve the disk can keep: pulled as usual.
    l.reserve = Some(Arc::new(crate::containers::reserve::DiskReserve {
        bytes: 1,
        ..Default::default()
    }));
    assert!(launch(&l, vec![spec("arm", "repo/drv:2")])[0].1.is_ok());
}

mod switch;
