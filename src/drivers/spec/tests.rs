use std::path::Path;

use super::*;
use serde_json::json;

const T: &str = "11111111-2222-4333-8444-555555555555";
const CAM: &str = "cccccccc-2222-4333-8444-555555555555";
const A: &str = "aaaaaaaa-0000-4000-8000-000000000001";
const A_CAM: &str = "aaaaaaaa-0000-4000-8000-000000000002";

/// The twins as the desired state carries them: parsed once.
fn typed(twins: &[Value]) -> Vec<Twin> {
    Twin::parse_all(twins).0
}

fn ctx() -> LaunchContext {
    example_context()
}

fn twins() -> (Vec<Value>, BTreeMap<String, Value>) {
    let twins = vec![
        json!({"uuid": T, "name": "arm", "asset_uuid": A, "metadata": {"edge_fingerprint": "fp"}}),
        json!({"uuid": CAM, "name": "wrist cam", "asset_uuid": A_CAM, "attach_to_twin_uuid": T, "metadata": {"edge_fingerprint": "fp"}}),
    ];
    let assets = BTreeMap::from([
        (
            A.to_string(),
            json!({"uuid": A, "registry_id": "so101", "metadata": {"drivers": {
                "default": {"docker_image": "cyberwaveos/so101-driver", "params": ["-e", "CYBERWAVE_TWIN_UUID=mine", "-e", "ZENOH_CONNECT=tcp/1.2.3.4:7447", "--device", "/dev/ttyACM0", "--env=EXTRA=1"], "prefer_gpu": true}
            }}}),
        ),
        (
            A_CAM.to_string(),
            json!({"uuid": A_CAM, "registry_id": "cyberwave/standard-cam"}),
        ),
    ]);
    (twins, assets)
}

#[test]
fn camera_child_rides_on_its_parent() {
    let (t, a) = twins();
    let plans = plan_twins(&typed(&t), &a, &[T.to_string(), CAM.to_string()], &ctx());
    assert_eq!(
        plans[1].outcome,
        TwinOutcome::CameraChild { parent: T.into() }
    );
    let TwinOutcome::Containers(specs) = &plans[0].outcome else {
        panic!("{:?}", plans[0].outcome)
    };
    assert_eq!(specs.len(), 1);
    let s = &specs[0];
    assert_eq!(s.name, "cyberwave-driver-11111111");
    assert_eq!(s.env["CYBERWAVE_CHILD_TWIN_UUIDS"], CAM);
    assert_eq!(plans[0].twin_file["asset"]["uuid"], json!(A));
}

#[test]
fn env_rules() {
    let (t, a) = twins();
    let plans = plan_twins(&typed(&t), &a, &[T.to_string()], &ctx());
    let TwinOutcome::Containers(specs) = &plans[0].outcome else {
        panic!()
    };
    let e = &specs[0].env;
    // edge-injected wins over params, except the keys the driver may set
    assert_eq!(e["CYBERWAVE_TWIN_UUID"], T);
    assert_eq!(e["ZENOH_CONNECT"], "tcp/1.2.3.4:7447");
    assert_eq!(e["EXTRA"], "1");
    assert_eq!(e["CYBERWAVE_API_KEY"], "cw_secret_token_abcdef");
    assert_eq!(e["CYBERWAVE_TWIN_JSON_FILE"], format!("/app/{T}.json"));
    assert_eq!(e["CYBERWAVE_EDGE_CONFIG_DIR"], "/app/.cyberwave");
    assert_eq!(e["CYBERWAVE_MQTT_USE_TLS"], "true");
    assert_eq!(e["CYBERWAVE_ENVIRONMENT"], "dev");
    assert_eq!(e["CYBERWAVE_CUSTOM"], "x");
    assert_eq!(e["CYBERWAVE_DATA_BACKEND"], "zenoh");
    assert_eq!(e["ZENOH_SHARED_MEMORY"], "false");
    assert_eq!(e["CYBERWAVE_EDGE_LOG_LEVEL"], "debug");
    assert_eq!(e["CYBERWAVE_BASE_URL"], "https://api.cyberwave.com");
    assert!(!e.contains_key("CYBERWAVE_MQTT_HOST"));
}

#[test]
fn argv_shape_and_no_secret_in_it() {
    let (t, a) = twins();
    let plans = plan_twins(&typed(&t), &a, &[T.to_string()], &ctx());
    let TwinOutcome::Containers(specs) = &plans[0].outcome else {
        panic!()
    };
    let s = &specs[0];
    assert_eq!(s.image, "cyberwaveos/so101-driver:dev");
    let argv = s.create_argv(Path::new("/run/x.env"));
    let joined = argv.join(" ");
    assert!(joined.starts_with("create --init --stop-timeout 5 --restart unless-stopped --privileged --log-driver json-file --log-opt max-size=10m --log-opt max-file=3 --network host --name cyberwave-driver-11111111 --device /dev/ttyACM0"), "{joined}");
    assert!(joined.contains(&format!("-v /home/pi/.cyberwave/{T}.json:/app/{T}.json")));
    assert!(joined.contains("-v /home/pi/.cyberwave:/app/.cyberwave:ro"));
    assert!(joined.contains("-v /home/pi/.cyberwave/so101_lib:/app/.cyberwave/so101_lib"));
    assert!(joined.contains(&format!("--label io.cyberwave.edge.twin={T}")));
    assert!(joined.contains(&format!(
        "--label io.cyberwave.edge.spec-hash={}",
        s.spec_hash
    )));
    assert!(joined.contains("--label io.cyberwave.edge.created-by=cyberwave-edge-core/"));
    assert!(joined.ends_with("--env-file /run/x.env cyberwaveos/so101-driver:dev"));
    assert!(!joined.contains("cw_secret_token_abcdef"));
    assert!(!joined.contains(" -e "));
    assert!(!joined.contains("--gpus"), "no nvidia runtime → no --gpus");
    assert!(
        s.env_file_text()
            .contains("CYBERWAVE_API_KEY=cw_secret_token_abcdef\n")
    );
}

#[test]
fn spec_hash_tracks_what_matters() {
    let (t, a) = twins();
    let h = |c: &LaunchContext| match &plan_twins(&typed(&t), &a, &[T.to_string()], c)[0].outcome {
        TwinOutcome::Containers(s) => s[0].spec_hash.clone(),
        o => panic!("{o:?}"),
    };
    let base = h(&ctx());
    assert_eq!(base, h(&ctx()), "deterministic");
    let mut c = ctx();
    c.nvidia_default_runtime = true;
    assert_ne!(base, h(&c), "--gpus changes the hash");
    let mut c = ctx();
    c.token = Secret::new("cw_other_token_123456");
    assert_ne!(base, h(&c), "a new token recreates the container");
}

#[test]
fn gpu_network_and_log_overrides() {
    let mut c = ctx();
    c.nvidia_default_runtime = true;
    c.host.jetson = true;
    let svc = ServiceProfile {
        name: Some("cam".into()),
        image: "r/cam:1.0".into(),
        params: vec![
            "--network".into(),
            "bridge".into(),
            "--log-opt".into(),
            "max-size=1m".into(),
        ],
        command: vec!["run".into()],
        env: BTreeMap::from([("CYBERWAVE_TWIN_UUID".to_string(), "svc".to_string())]),
        prefer_gpu: true,
        gpu: "device=0".into(),
        restart: "on-failure".into(),
        stop_timeout_s: 20,
        privileged: false,
        min_restart_interval_s: Some(45),
        host_env_file: None,
        graph: Default::default(),
    };
    let s = build_spec(&c, T, "arm", &svc, &[], None);
    let j = s.create_argv(Path::new("/e")).join(" ");
    assert_eq!(s.name, "cyberwave-driver-11111111-cam");
    assert_eq!(
        (s.image.as_str(), s.fallback_image.as_deref()),
        ("r/cam:jetson-1.0", Some("r/cam:1.0"))
    );
    assert!(j.contains("--gpus device=0"));
    assert!(!j.contains("--network host"));
    assert!(!j.contains("max-size=10m") && j.contains("max-file=3"));
    assert!(!j.contains("--privileged"));
    assert!(j.contains("--restart on-failure") && j.contains("--stop-timeout 20"));
    assert!(j.contains("--label io.cyberwave.edge.service=cam"));
    assert!(j.contains("--label cyberwave.min_restart_interval_s=45 --name"));
    assert_eq!(s.floor, Some(std::time::Duration::from_secs(45)));
    assert!(j.ends_with("r/cam:jetson-1.0 run"));
    assert_eq!(
        s.env["CYBERWAVE_TWIN_UUID"], "svc",
        "service env overrides the injected one"
    );
    c.log_max_size = None;
    let j = build_spec(&c, T, "arm", &svc, &[], None)
        .create_argv(Path::new("/e"))
        .join(" ");
    assert!(!j.contains("--log-driver json-file"));
}

#[test]
fn problems_and_overrides() {
    let twins = vec![
        json!({"uuid": T, "name": "no asset"}),
        json!({"uuid": CAM, "name": "bare", "asset_uuid": A_CAM}),
    ];
    let assets = BTreeMap::from([(
        A_CAM.to_string(),
        json!({"uuid": A_CAM, "registry_id": "x"}),
    )]);
    let p = plan_twins(
        &typed(&twins),
        &assets,
        &[T.to_string(), CAM.to_string()],
        &ctx(),
    );
    assert!(
        matches!(&p[0].outcome, TwinOutcome::Problem { title, .. } if title == "Twin has no asset")
    );
    assert!(
        matches!(&p[1].outcome, TwinOutcome::Problem { title, .. } if title == "No drivers specified")
    );
    let (t, a) = twins_with_override();
    let mut c = ctx();
    c.driver_overrides
        .insert(T.into(), "mine/driver:local".into());
    let TwinOutcome::Containers(s) = &plan_twins(&typed(&t), &a, &[T.to_string()], &c)[0].outcome
    else {
        panic!()
    };
    assert_eq!(s[0].image, "mine/driver:local");
    assert!(
        !s[0].options.contains(&"/dev/ttyACM0".to_string()),
        "override clears params"
    );
}

fn twins_with_override() -> (Vec<Value>, BTreeMap<String, Value>) {
    twins()
}

#[test]
fn env_param_forms() {
    let p: Vec<String> = [
        "-e", "A=1", "--env", "B=2=3", "--env=C=", "-e", "NOEQ", "--rm",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let (env, rest) = split_env_params(&p);
    assert_eq!(
        env,
        vec![
            ("A".into(), "1".into()),
            ("B".into(), "2=3".into()),
            ("C".into(), "".into())
        ]
    );
    assert_eq!(rest, vec!["--rm".to_string()]);
}

#[test]
fn twins_sharing_the_first_8_hex_digits_are_a_problem_not_a_silent_skip() {
    let (mut twins, mut assets) = twins();
    let twin2 = format!("{}-9999-4999-8999-999999999999", &T[..8]);
    let mut t2 = twins[0].clone();
    t2["uuid"] = json!(twin2);
    twins.push(t2);
    assets.insert(A.to_string(), assets[A].clone());
    let plans = plan_twins(
        &typed(&twins),
        &assets,
        &[T.to_string(), twin2.clone()],
        &ctx(),
    );
    assert!(matches!(plans[0].outcome, TwinOutcome::Containers(_)));
    match &plans[1].outcome {
        TwinOutcome::Problem { title, detail, .. } => {
            assert_eq!(title, NAME_COLLISION);
            assert!(detail.contains(T) && detail.contains(&twin2), "{detail}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn env_keys_that_would_inject_lines_are_refused() {
    for (k, ok) in [
        ("CYBERWAVE_X", true),
        ("_a1", true),
        ("A\nCYBERWAVE_API_KEY", false),
        ("1A", false),
        ("", false),
        ("A B", false),
        ("A=B", false),
    ] {
        assert_eq!(valid_env_key(k), ok, "{k:?}");
    }
    let (mut twins, assets) = twins_with_override();
    twins[0]["metadata"]["drivers"] = json!({"default": {
        "docker_image": "cyberwave/so101:local",
        "params": ["-e", "EVIL\nCYBERWAVE_API_KEY=x"]}});
    let plans = plan_twins(&typed(&twins), &assets, &[T.to_string()], &ctx());
    match &plans[0].outcome {
        TwinOutcome::Problem { title, detail, .. } => {
            assert!(title.contains("Invalid environment variable"), "{title}");
            assert!(detail.contains("EVIL\\nCYBERWAVE_API_KEY"), "{detail}");
        }
        other => panic!("{other:?}"),
    }
    twins[0]["metadata"]["drivers"] = json!({"default": {
        "shared_env": {"BAD KEY": "1"},
        "services": [{"name": "main", "image": "cyberwave/so101:local"}]}});
    let plans = plan_twins(&typed(&twins), &assets, &[T.to_string()], &ctx());
    assert!(matches!(plans[0].outcome, TwinOutcome::Problem { .. }));
}

#[test]
fn rgb_detection() {
    assert!(has_rgb_sensor(
        &json!({"metadata": {"universal_schema": {"sensors": [{"type": "RGB"}]}}})
    ));
    assert!(has_rgb_sensor(
        &json!({"metadata": {"capabilities": {"sensors": [{"type": "rgbd"}]}}})
    ));
    assert!(has_rgb_sensor(
        &json!({"registry_id": "intel/RealSense-d435"})
    ));
    assert!(!has_rgb_sensor(
        &json!({"registry_id": "so101", "metadata": {"universal_schema": {"sensors": [{"type": "imu"}]}}})
    ));
}

#[test]
fn local_base_url_points_drivers_at_the_local_broker() {
    let mut c = ctx();
    c.base_url = "http://192.168.1.10:8000".into();
    c.mqtt_port = 1883;
    let (t, a) = twins();
    let TwinOutcome::Containers(s) = &plan_twins(&typed(&t), &a, &[T.to_string()], &c)[0].outcome
    else {
        panic!()
    };
    assert_eq!(s[0].env["CYBERWAVE_MQTT_HOST"], "192.168.1.10");
    assert_eq!(s[0].env["CYBERWAVE_MQTT_PORT"], "1883");
    assert!(!s[0].env.contains_key("CYBERWAVE_MQTT_USE_TLS"));
}

/// One linked twin per image, each pinned to its own camera (seed 004's multi-camera rig).
fn camera_rig(images: &[(&str, &str, Value)]) -> (Vec<Value>, BTreeMap<String, Value>) {
    let mut twins = Vec::new();
    let mut assets = BTreeMap::new();
    for (twin, image, params) in images {
        let asset = format!("a{}", &twin[1..]);
        twins.push(json!({"uuid": twin, "name": twin, "asset_uuid": asset, "metadata": {}}));
        assets.insert(
            asset.clone(),
            json!({"uuid": asset, "metadata": {"drivers": {"default": {"docker_image": image, "params": params}}}}),
        );
    }
    (twins, assets)
}

#[test]
fn each_driver_is_told_its_own_camera_and_gets_v4l_read_only() {
    const C1: &str = "c1c1c1c1-0000-4000-8000-000000000001";
    const C2: &str = "c2c2c2c2-0000-4000-8000-000000000002";
    const MIC: &str = "d3d3d3d3-0000-4000-8000-000000000003";
    const OWN: &str = "e4e4e4e4-0000-4000-8000-000000000004";
    let (t, a) = camera_rig(&[
        (C1, "cyberwaveos/camera-driver", json!([])),
        (C2, "acme/usb-cam", json!([])),
        (
            MIC,
            "cyberwaveos/generic-microphone",
            json!(["--device", "/dev/snd/pcmC0D0c"]),
        ),
        (
            OWN,
            "acme/usb-cam",
            json!([
                "-e",
                "CYBERWAVE_METADATA_VIDEO_DEVICE=/dev/video9",
                "-v",
                "/dev/v4l:/dev/v4l"
            ]),
        ),
    ]);
    let mut c = ctx();
    c.host_has_v4l = true;
    c.cameras = camera::CameraConfig::merge(
        None,
        Some(&json!({"selected_device": 0, "twin_to_device": {
            C1: 1, C2: "/dev/v4l/by-id/usb-cam-2", MIC: 5, OWN: 6}})),
    );
    let linked: Vec<String> = [C1, C2, MIC, OWN].iter().map(|s| s.to_string()).collect();
    let plans = plan_twins(&typed(&t), &a, &linked, &c);
    let spec = |i: usize| match &plans[i].outcome {
        TwinOutcome::Containers(s) => s[0].clone(),
        o => panic!("{o:?}"),
    };
    let v4l = |s: &DriverSpec| {
        s.options
            .windows(2)
            .filter(|w| w[0] == "-v" && w[1].starts_with("/dev/v4l"))
            .count()
    };
    let (c1, c2, mic, own) = (spec(0), spec(1), spec(2), spec(3));
    assert_eq!(c1.env[camera::VIDEO_DEVICE], "/dev/video1");
    assert_eq!(v4l(&c1), 1, "camera image: {:?}", c1.options);
    assert_eq!(c2.env[camera::VIDEO_DEVICE], "/dev/v4l/by-id/usb-cam-2");
    assert_eq!(v4l(&c2), 1, "by-id device: {:?}", c2.options);
    assert!(
        !mic.env.contains_key(camera::VIDEO_DEVICE),
        "audio images get no camera"
    );
    assert!(
        mic.options
            .windows(2)
            .any(|w| w == ["-v", "/dev/snd:/dev/snd"])
    );
    assert!(!mic.options.contains(&"/dev/snd/pcmC0D0c".to_string()));
    assert_eq!(
        own.env[camera::VIDEO_DEVICE],
        "/dev/video9",
        "the driver's own -e wins"
    );
    assert_eq!(v4l(&own), 1, "its own mount, not a second one");
    // No /dev/v4l on the host: no mount; another pin: another spec (the drift recreates it).
    c.host_has_v4l = false;
    let before = c1.spec_hash.clone();
    let plans = plan_twins(&typed(&t), &a, &linked, &c);
    let TwinOutcome::Containers(s) = &plans[0].outcome else {
        panic!()
    };
    assert_eq!(v4l(&s[0]), 0);
    assert_ne!(s[0].spec_hash, before);
}

#[test]
fn so101_lib_is_mounted_for_so101_images_or_when_it_exists() {
    const X: &str = "f5f5f5f5-0000-4000-8000-000000000005";
    let (t, a) = camera_rig(&[(X, "acme/arm-driver", json!([]))]);
    let mounts =
        |c: &LaunchContext| match &plan_twins(&typed(&t), &a, &[X.to_string()], c)[0].outcome {
            TwinOutcome::Containers(s) => s[0]
                .options
                .iter()
                .any(|o| o.ends_with(":/app/.cyberwave/so101_lib")),
            o => panic!("{o:?}"),
        };
    let mut c = ctx();
    assert!(!mounts(&c));
    c.has_so101_lib = true;
    assert!(mounts(&c));
}

mod graph;
mod tokens;
