use super::*;

fn ctx() -> WorkerContext {
    example_context()
}

#[test]
fn base_image_rules() {
    let cases = [
        (None, "production", "cyberwaveos/edge-ml-worker:latest"),
        (None, "", "cyberwaveos/edge-ml-worker:latest"),
        (None, "dev", "cyberwaveos/edge-ml-worker:dev"),
        (Some("me/w"), "staging", "me/w:staging"),
        (Some("me/w"), "production", "me/w"),
        (Some("me/w:1.2"), "dev", "me/w:1.2"),
        (Some("me/w@sha256:ab"), "dev", "me/w@sha256:ab"),
        (Some("  "), "dev", "cyberwaveos/edge-ml-worker:dev"),
    ];
    for (o, env, want) in cases {
        assert_eq!(base_image(o, env), want, "{o:?} {env}");
    }
}

#[test]
fn accelerator_rules() {
    let ours = "cyberwaveos/edge-ml-worker:latest";
    let jet = |m: Option<u32>, allow| Accelerators {
        jetson: Some(Jetson {
            l4t_major: m,
            allow_unsupported: allow,
        }),
        ..Default::default()
    };
    // (base, accelerators, image, fallback, accelerator)
    let cases: Vec<(&str, Accelerators, &str, Option<&str>, &str)> = vec![
        (ours, Accelerators::default(), ours, None, "cpu"),
        (
            ours,
            jet(Some(38), false),
            "cyberwaveos/edge-ml-worker:latest-jetson",
            Some(ours),
            "jetson",
        ),
        (
            ours,
            jet(None, false),
            "cyberwaveos/edge-ml-worker:latest-jetson",
            Some(ours),
            "jetson",
        ),
        (ours, jet(Some(36), false), ours, None, "cpu"),
        (
            ours,
            jet(Some(36), true),
            "cyberwaveos/edge-ml-worker:latest-jetson",
            Some(ours),
            "jetson",
        ),
        (
            "cyberwaveos/edge-ml-worker:1.0-jetson",
            jet(Some(35), false),
            "cyberwaveos/edge-ml-worker:1.0",
            Some("cyberwaveos/edge-ml-worker:1.0-jetson"),
            "cpu",
        ),
        ("me/w:1", jet(Some(35), false), "me/w:1", None, "jetson"),
        (
            ours,
            Accelerators {
                nvidia: true,
                ..Default::default()
            },
            "cyberwaveos/edge-ml-worker:latest-gpu",
            Some(ours),
            "nvidia",
        ),
        (
            "cyberwaveos/edge-ml-worker:dev-gpu",
            Accelerators {
                nvidia: true,
                ..Default::default()
            },
            "cyberwaveos/edge-ml-worker:dev-gpu",
            None,
            "nvidia",
        ),
        (
            ours,
            Accelerators {
                hailo: Some(Some(44)),
                ..Default::default()
            },
            "cyberwaveos/edge-ml-worker:latest-hailo",
            Some(ours),
            "hailo",
        ),
        (
            ours,
            Accelerators {
                nvidia: true,
                hailo: Some(None),
                ..Default::default()
            },
            "cyberwaveos/edge-ml-worker:latest-gpu",
            Some(ours),
            "nvidia",
        ),
    ];
    for (base, acc, image, fallback, kind) in cases {
        let c = choose_image(base, &acc);
        assert_eq!(c.image, image, "{base} {acc:?}");
        assert_eq!(c.fallback.as_deref(), fallback, "{base} {acc:?}");
        assert_eq!(c.accelerator, kind, "{base} {acc:?}");
    }
    let c = choose_image(ours, &jet(Some(38), false));
    assert_eq!(c.options, ["--runtime", "nvidia"]);
    assert!(
        c.env
            .contains(&("NVIDIA_DRIVER_CAPABILITIES".into(), "all".into()))
    );
    let c = choose_image(
        ours,
        &Accelerators {
            hailo: Some(Some(44)),
            ..Default::default()
        },
    );
    assert_eq!(
        c.options,
        [
            "--device",
            "/dev/hailo0:/dev/hailo0:rwm",
            "--group-add",
            "44"
        ]
    );
    assert!(
        c.env
            .contains(&("CYBERWAVE_REQUIRED_DEVICES".into(), "/dev/hailo0".into()))
    );
    assert!(choose_image(ours, &jet(Some(36), false)).note.is_some());
}

#[test]
fn pull_policy() {
    for (image, mutable) in [
        ("w", true),
        ("reg:5000/w", true),
        ("w:latest", true),
        ("w:dev-gpu", true),
        ("w:Nightly", true),
        ("w:main", true),
        ("w:1.2.3", false),
        ("w:local", false),
        ("w:latest@sha256:ab", false),
        ("w@sha256:ab", false),
    ] {
        assert_eq!(is_mutable(image), mutable, "{image}");
    }
}

#[test]
fn limits() {
    let l = |cpu, mem, auto, host| Limits {
        cpu_percent: cpu,
        memory_mb: mem,
        auto_memory: auto,
        host_memory_mb: host,
        gpu_mem_fraction: None,
    };
    let cases: Vec<(Limits, Vec<&str>)> = vec![
        (l(None, None, true, Some(8000)), vec![]),
        (l(None, None, true, Some(4096)), vec!["--memory", "3072m"]),
        (l(None, None, true, Some(1024)), vec!["--memory", "512m"]),
        (l(None, None, true, Some(600)), vec!["--memory", "256m"]),
        (l(None, None, false, Some(1024)), vec![]),
        (
            l(None, Some(700), true, Some(1024)),
            vec!["--memory", "700m"],
        ),
        (
            l(Some(50.0), None, true, Some(1024)),
            vec!["--cpu-period", "100000", "--cpu-quota", "50000"],
        ),
        (
            l(Some(250.0), Some(2048), true, None),
            vec![
                "--cpu-period",
                "100000",
                "--cpu-quota",
                "250000",
                "--memory",
                "2048m",
            ],
        ),
    ];
    for (lim, want) in cases {
        assert_eq!(resource_args(&lim), want, "{lim:?}");
    }
}

#[test]
fn the_worker_container() {
    let twins = vec!["t1".to_string(), "t2".to_string()];
    let (s, choice) = worker_spec(&ctx(), &twins);
    assert_eq!(s.name, "cyberwave-worker-0a1b2c3d");
    assert_eq!(s.role, Role::Worker);
    assert_eq!(choice.accelerator, "cpu");
    assert_eq!(s.image, "cyberwaveos/edge-ml-worker:latest");
    assert_eq!(s.pull, Pull::Always);
    assert_eq!(s.env["CYBERWAVE_TWIN_UUIDS"], "t1,t2");
    assert_eq!(s.env["CYBERWAVE_TWIN_UUID"], "t1");
    assert_eq!(s.env["CYBERWAVE_API_KEY"], "cw_tok");
    assert_eq!(s.env["CYBERWAVE_EDGE_CONFIG_DIR"], "/app/.cyberwave");
    assert_eq!(s.env["CYBERWAVE_DATA_BACKEND"], "zenoh");
    assert_eq!(
        s.env["CYBERWAVE_WORKER_STATUS_PATH"],
        "/run/cyberwave/worker-status.json"
    );
    assert_eq!(s.env["CYBERWAVE_BASE_URL"], "https://api.cyberwave.com");
    assert_eq!(s.env["CYBERWAVE_WORKER_LOG_LEVEL"], "DEBUG");
    assert_eq!(s.env["CYBERWAVE_MQTT_USE_TLS"], "true");
    assert_eq!(s.env["ZENOH_LISTEN"], "tcp/0.0.0.0:7447");
    assert!(!s.env.contains_key("CYBERWAVE_ENVIRONMENT"));
    let o = s.options.join(" ");
    for part in [
        "--restart unless-stopped",
        "--log-opt max-size=10m --log-opt max-file=3",
        "--network host",
        "--user 1000:1000",
        "--name cyberwave-worker-0a1b2c3d",
        "-v /home/pi/.cyberwave:/app/.cyberwave ",
        "-v /home/pi/.cyberwave/workers:/app/workers:ro",
        "-v /home/pi/.cyberwave/models:/app/models",
        "-v /run/cyberwave:/run/cyberwave",
        "--label io.cyberwave.edge.service=worker",
        "--label io.cyberwave.edge.owner=fp",
    ] {
        assert!(o.contains(part), "{part} not in {o}");
    }
    // The token never reaches argv; the hash does not carry it either.
    assert!(!o.contains("cw_tok"));
    // The hash follows the twins and the image, not the owner.
    let (again, _) = worker_spec(&ctx(), &twins);
    assert_eq!(again.spec_hash, s.spec_hash);
    let (other, _) = worker_spec(&ctx(), &twins[..1]);
    assert_ne!(other.spec_hash, s.spec_hash);
    let mut c = ctx();
    c.owner = "other".into();
    assert_eq!(worker_spec(&c, &twins).0.spec_hash, s.spec_hash);
}

#[test]
fn environment_password_and_gpu_fraction() {
    let mut c = ctx();
    c.environment = "dev".into();
    c.mqtt_password = Some(Secret::new("pw"));
    c.mqtt_port = 1883;
    c.limits.gpu_mem_fraction = Some(0.5);
    c.image_override = Some("me/w:1.0".into());
    c.bus_env.push(("ZENOH_MODE", "client".into()));
    let (s, _) = worker_spec(&c, &[]);
    assert_eq!(s.env["CYBERWAVE_API_KEY"], "pw");
    assert_eq!(s.env["CYBERWAVE_ENVIRONMENT"], "dev");
    assert_eq!(s.env["CYBERWAVE_GPU_MEM_FRACTION"], "0.5000");
    assert_eq!(s.env["ZENOH_MODE"], "client");
    assert!(!s.env.contains_key("CYBERWAVE_MQTT_USE_TLS"));
    assert!(!s.env.contains_key("CYBERWAVE_TWIN_UUID"));
    assert_eq!(s.image, "me/w:1.0");
    assert_eq!(s.pull, Pull::IfMissing);
}
