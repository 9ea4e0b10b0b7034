use std::collections::BTreeMap;

use base64::Engine as _;
use serde_json::{Value, json};

use super::*;

type Map = BTreeMap<String, String>;

const TWIN: &str = "8e2f7a10-1b2c-4d5e-8f90-123456789abc";

fn labels(doc: &Value, extra: &[(&str, &str)]) -> BTreeMap<String, String> {
    let mut l = BTreeMap::from([
        (SCHEMA_LABEL.to_string(), "2".to_string()),
        (
            "io.cyberwave.driver.compose.robot".to_string(),
            base64::engine::general_purpose::STANDARD.encode(doc.to_string()),
        ),
    ]);
    for (k, v) in extra {
        l.insert(k.to_string(), v.to_string());
    }
    l
}

fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn run(
    labels: &BTreeMap<String, String>,
    env: &BTreeMap<String, String>,
    overrides: &BTreeMap<String, String>,
) -> Result<Declared, String> {
    run_with(labels, env, overrides, &BTreeMap::new())
}

fn run_with(
    labels: &BTreeMap<String, String>,
    env: &BTreeMap<String, String>,
    overrides: &BTreeMap<String, String>,
    derived: &BTreeMap<String, String>,
) -> Result<Declared, String> {
    let zenoh = [("ZENOH_CONNECT", "tcp/10.0.0.1:7447".to_string())];
    declared(&Inputs {
        image: "reg.example/go2-driver:humble-dev",
        labels,
        twin_uuid: TWIN,
        env,
        zenoh: &zenoh,
        image_overrides: overrides,
        container_of: &|s| format!("cyberwave-driver-8e2f7a10-{s}"),
        derived,
    })
}

fn graph(doc: Value, env_pairs: &[(&str, &str)]) -> Vec<Service> {
    match run(&labels(&doc, &[]), &env(env_pairs), &BTreeMap::new()) {
        Ok(Declared::Graph { services, .. }) => services,
        other => panic!("not a graph: {other:?}"),
    }
}

fn refusal(doc: Value) -> String {
    match run(&labels(&doc, &[]), &env(&[]), &BTreeMap::new()) {
        Err(e) => e,
        other => panic!("not refused: {other:?}"),
    }
}

/// The three services: a router with a healthcheck, an app gated on its health, a
/// sidecar on a second network with a tmpfs and a bind volume.
fn three_services() -> Value {
    json!({
        "name": "stack",
        "services": {
            "app": {
                "image": "reg.example/app:${CW_CHANNEL_TAG}",
                "command": ["run", "--ns", "${CW_TWIN_NS}"],
                "depends_on": {"router": {"condition": "service_healthy", "required": true}},
                "environment": {"ROUTER": "${ZENOH_CONNECT}", "MODE": "${ZENOH_MODE}", "KEEP": "${ENABLE_X:-false}"},
                "networks": {"stacknet": null},
                "restart": "always",
                "container_name": "ignored"
            },
            "router": {
                "image": "reg.example/router:1.0",
                "healthcheck": {"test": ["CMD-SHELL", "test -f /tmp/up"], "interval": "1s", "retries": 30, "start_period": "0s"},
                "networks": {"stacknet": null},
                "stop_signal": "SIGINT"
            },
            "sidecar": {
                "image": "reg.example/sidecar:1.0",
                "command": "echo $$HOME && sleep 1",
                "networks": {"sidenet": null, "stacknet": null},
                "tmpfs": "/run/secret:size=1m",
                "volumes": [
                    {"type": "bind", "source": "/var/lib/robot", "target": "/data", "read_only": true},
                    {"type": "volume", "source": "maps", "target": "/maps"},
                    {"type": "tmpfs", "target": "/scratch", "tmpfs": {"size": 1048576, "mode": 448}}
                ],
                "cap_add": ["SYS_NICE", ""],
                "ulimits": {"rtprio": 99, "nofile": {"soft": 1024, "hard": 2048}, "bad": true}
            }
        },
        "networks": {"stacknet": {"name": "cw-${CW_TWIN8}-stack"}, "sidenet": {"external": true, "name": "robot-lan"}},
        "volumes": {"maps": {"name": "cw-${CW_TWIN8}-maps"}}
    })
}

#[test]
fn three_services_translate_in_dependency_order_with_their_flags() {
    let s = graph(three_services(), &[]);
    let names: Vec<&str> = s.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["router", "app", "sidecar"]);
    let (router, app, sidecar) = (&s[0], &s[1], &s[2]);
    assert_eq!(
        router.params,
        [
            "--network",
            "cw-8e2f7a10-stack",
            "--health-cmd",
            "test -f /tmp/up",
            "--health-interval",
            "1s",
            "--health-start-period",
            "0s",
            "--health-retries",
            "30",
            "--stop-signal",
            "SIGINT"
        ]
    );
    assert_eq!(app.image, "reg.example/app:humble-dev");
    assert_eq!(
        app.command,
        ["run", "--ns", "twin_8e2f7a10_1b2c_4d5e_8f90_123456789abc"]
    );
    assert_eq!(app.depends_on, [("router".to_string(), true)]);
    assert_eq!(app.env["ROUTER"], "tcp/10.0.0.1:7447");
    assert_eq!(
        app.env["MODE"], "",
        "an unset ZENOH_MODE is empty, never literal"
    );
    assert_eq!(
        app.env["KEEP"], "${ENABLE_X:-false}",
        "the container's shell expands it"
    );
    assert_eq!(sidecar.command, ["/bin/sh", "-c", "echo $HOME && sleep 1"]);
    assert_eq!(
        sidecar.params,
        [
            "--network",
            "robot-lan",
            "-v",
            "/var/lib/robot:/data:ro",
            "-v",
            "cw-8e2f7a10-maps:/maps",
            "--mount",
            "type=tmpfs,destination=/scratch,tmpfs-size=1048576,tmpfs-mode=700",
            "--tmpfs",
            "/run/secret:size=1m",
            "--cap-add",
            "SYS_NICE",
            "--ulimit",
            "nofile=1024:2048",
            "--ulimit",
            "rtprio=99"
        ]
    );
    assert_eq!(sidecar.extra_networks, ["cw-8e2f7a10-stack"]);
    let res: Vec<(ResourceKind, &str, bool)> = sidecar
        .resources
        .iter()
        .map(|r| (r.kind, r.name.as_str(), r.external))
        .collect();
    assert_eq!(
        res,
        [
            (ResourceKind::Network, "robot-lan", true),
            (ResourceKind::Network, "cw-8e2f7a10-stack", false),
            (ResourceKind::Volume, "cw-8e2f7a10-maps", false)
        ]
    );
}

#[test]
fn what_an_image_declares_decides_one_container_a_graph_or_a_refusal() {
    let doc = three_services();
    let no_variant = BTreeMap::from([(SCHEMA_LABEL.to_string(), "2".to_string())]);
    let schema1 = labels(&doc, &[(SCHEMA_LABEL, "1")]);
    let not_b64 = labels(
        &doc,
        &[("io.cyberwave.driver.compose.robot", "{not base64}")],
    );
    let not_json = labels(
        &doc,
        &[("io.cyberwave.driver.compose.robot", "bm90IGpzb24=")],
    );
    let empty = labels(&doc, &[("io.cyberwave.driver.compose.robot", "e30=")]);
    let none = BTreeMap::new();
    let good = labels(&doc, &[]);
    let sim = env(&[(VARIANT_ENV, "sim")]);
    let plain = env(&[]);
    let cases: Vec<(&Map, &Map, &str)> = vec![
        (&none, &plain, "nothing"),
        (&schema1, &plain, "unreadable"),
        (&no_variant, &plain, "unreadable"),
        (&good, &sim, "unreadable"),
        (&empty, &plain, "unreadable"),
        (&not_b64, &plain, "refused"),
        (&not_json, &plain, "refused"),
        (&good, &plain, "graph"),
    ];
    for (i, (l, e, want)) in cases.into_iter().enumerate() {
        let got = match run(l, e, &BTreeMap::new()) {
            Ok(Declared::Nothing) => "nothing",
            Ok(Declared::Unreadable(_)) => "unreadable",
            Ok(Declared::Graph { .. }) => "graph",
            Err(_) => "refused",
        };
        assert_eq!(got, want, "case {i}");
    }
}

#[test]
fn a_key_edge_core_does_not_translate_refuses_the_whole_graph() {
    let mut doc = three_services();
    doc["services"]["sidecar"]["privileged"] = json!(true);
    doc["services"]["sidecar"]["devices"] = json!(["/dev/ttyUSB0"]);
    let e = refusal(doc);
    assert!(
        e.starts_with("compose service \"sidecar\": it declares [\"privileged\", \"devices\"], which Edge Core does not translate. Refusing the whole graph"),
        "{e}"
    );
}

#[test]
fn bad_values_are_refused_naming_the_service() {
    let cases = [
        (
            json!({"image": "a:1", "tmpfs": 5}),
            "tmpfs must be a string or a list",
        ),
        (
            json!({"image": "a:1", "tmpfs": "relative"}),
            "is not an absolute PATH",
        ),
        (
            json!({"image": "a:1", "volumes": [{"type": "tmpfs", "target": "/x", "bind": {}}]}),
            "tmpfs volume key \"bind\"",
        ),
        (
            json!({"image": "a:1", "volumes": [{"type": "tmpfs", "target": "/x", "tmpfs": {"mode": true}}]}),
            "mode must be an integer",
        ),
        (
            json!({"image": "a:1", "healthcheck": {"test": "true", "retries": "many"}}),
            "retries",
        ),
        (json!({"image": "-rm:1"}), "not a valid image reference"),
        (json!({"command": ["x"]}), "has no image"),
        (
            json!({"image": "a:1", "environment": {"BAD-NAME": "x"}}),
            "BAD-NAME",
        ),
        (
            json!({"image": "a:1", "command": 7}),
            "command must be a list or a string",
        ),
    ];
    for (svc, want) in cases {
        let e = refusal(json!({"services": {"one": svc}}));
        assert!(
            e.starts_with("compose service \"one\": ") && e.contains(want),
            "{e} / {want}"
        );
    }
    let e = refusal(json!({"services": {"Bad Name": {"image": "a:1"}}}));
    assert!(e.contains("not [a-z0-9_.-]"), "{e}");
    let e = refusal(json!({"services": {
        "a": {"image": "a:1", "depends_on": ["b"]},
        "b": {"image": "b:1", "depends_on": {"a": {"condition": "service_started"}}}
    }}));
    assert!(e.contains("depends_on cycle"), "{e}");
}

#[test]
fn placeholders_resolve_from_the_trains_then_the_edge_env_and_never_to_a_secret() {
    let doc = json!({"services": {"a": {
        "image": "reg:5000/a:${CW_CHANNEL_TAG}",
        "command": ["${CW_SIM_PROXY_TAG}", "${SITE}", "${UNSET}", "${CYBERWAVE_API_KEY}", "$$x", "$", "${1BAD}"],
    }}});
    let s = graph(
        doc.clone(),
        &[("SITE", "lab"), ("CYBERWAVE_API_KEY", "cw_secret")],
    );
    assert_eq!(s[0].image, "reg:5000/a:humble-dev", "the reference's tag");
    assert_eq!(
        s[0].command,
        [
            "dev",
            "lab",
            "${UNSET}",
            "${CYBERWAVE_API_KEY}",
            "$x",
            "$",
            "${1BAD}"
        ]
    );
    let pinned = graph(
        doc.clone(),
        &[
            ("CYBERWAVE_DRIVER_CHANNEL_TAG", "humble-pr-7"),
            ("CYBERWAVE_ENVIRONMENT", "staging"),
        ],
    );
    assert_eq!(pinned[0].image, "reg:5000/a:humble-pr-7");
    assert_eq!(pinned[0].command[0], "staging");
    let l = labels(&doc, &[(subst::CHANNEL_TAG_LABEL, "humble-staging")]);
    let Ok(Declared::Graph { services, summary }) = run(&l, &env(&[]), &BTreeMap::new()) else {
        panic!("graph")
    };
    assert_eq!(
        services[0].image, "reg:5000/a:humble-staging",
        "the label beats the tag"
    );
    assert!(
        summary.contains("channel=humble-staging from io.cyberwave.image.channel-tag"),
        "{summary}"
    );
}

#[test]
fn moveit_must_resolve_when_named_and_pins_repoint_only_explicitly() {
    let doc = json!({"services": {"moveit": {"image": "reg/ros2-moveit:${CW_MOVEIT_TAG}"}}});
    let s = graph(doc.clone(), &[("CYBERWAVE_ENVIRONMENT", "dev")]);
    assert_eq!(s[0].image, "reg/ros2-moveit:humble-dev");
    let s = graph(doc.clone(), &[("CYBERWAVE_ENVIRONMENT", "production")]);
    assert_eq!(s[0].image, "reg/ros2-moveit:humble");
    let l = labels(&doc, &[(subst::CHANNEL_TAG_LABEL, "dev")]);
    let e = run(
        &l,
        &env(&[("CYBERWAVE_ENVIRONMENT", "dev")]),
        &BTreeMap::new(),
    );
    assert!(matches!(&e, Err(m) if m.contains("CW_MOVEIT_TAG")), "{e:?}");
    let pinned = json!({"services": {"drv": {"image": "reg/drv:humble-sha-abc1234",
        "x-cyberwave": {"pinned_from": "CW_CHANNEL_TAG", "prefer_gpu": true, "gpu": 1}}}});
    let s = graph(pinned.clone(), &[]);
    assert_eq!(
        s[0].image, "reg/drv:humble-sha-abc1234",
        "a pinned tag runs as written"
    );
    assert!(s[0].prefer_gpu);
    assert_eq!(s[0].gpu, "1");
    let s = graph(pinned, &[("CYBERWAVE_DRIVER_CHANNEL_TAG", "humble-pr-9")]);
    assert_eq!(s[0].image, "reg/drv:humble-pr-9");
}

#[test]
fn image_overrides_replace_named_services_and_refuse_unknown_ones() {
    let l = labels(&three_services(), &[]);
    let ok = BTreeMap::from([("router".to_string(), "reg/router:test".to_string())]);
    let Ok(Declared::Graph { services, .. }) = run(&l, &env(&[]), &ok) else {
        panic!("graph")
    };
    assert_eq!(services[0].image, "reg/router:test");
    let bad = BTreeMap::from([("nope".to_string(), "x:1".to_string())]);
    assert!(matches!(run(&l, &env(&[]), &bad), Err(e) if e.contains("unknown service(s): nope")));
}

#[test]
fn healthchecks_in_every_shape() {
    let hc = |h: Value| {
        let s = graph(
            json!({"services": {"a": {"image": "a:1", "healthcheck": h}}}),
            &[],
        );
        s[0].params.clone()
    };
    assert_eq!(
        hc(json!({"test": ["CMD", "curl", "-f", "http://x/a b"]})),
        ["--health-cmd", "curl -f 'http://x/a b'"]
    );
    assert_eq!(hc(json!({"test": ["NONE"]})), ["--no-healthcheck"]);
    assert_eq!(
        hc(json!({"disable": true, "test": "x"})),
        ["--no-healthcheck"]
    );
    assert_eq!(
        hc(json!({"test": "pgrep ros"})),
        ["--health-cmd", "pgrep ros"]
    );
    assert!(hc(json!({"test": []})).is_empty());
    assert_eq!(
        hc(json!({"test": ["echo", "it's"]})),
        ["--health-cmd", "echo 'it'\"'\"'s'"]
    );
}

#[test]
fn network_mode_wins_and_names_our_container_for_a_service() {
    let s = graph(
        json!({"services": {
            "a": {"image": "a:1", "network_mode": "host", "networks": {"x": null}},
            "b": {"image": "b:1", "network_mode": "service:a"}
        }}),
        &[],
    );
    assert_eq!(s[0].params, ["--network", "host"]);
    assert_eq!(
        s[1].params,
        ["--network", "container:cyberwave-driver-8e2f7a10-a"]
    );
    assert!(s[0].resources.is_empty());
}

#[test]
fn oversized_or_deep_labels_are_refused_without_panicking() {
    let huge = "A".repeat(2 << 20);
    let l = labels(&json!({}), &[("io.cyberwave.driver.compose.robot", &huge)]);
    assert!(run(&l, &env(&[]), &BTreeMap::new()).is_err());
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let l = labels(
        &json!({}),
        &[(
            "io.cyberwave.driver.compose.robot",
            &base64::engine::general_purpose::STANDARD.encode(deep),
        )],
    );
    assert!(run(&l, &env(&[]), &BTreeMap::new()).is_err());
    let many: serde_json::Map<String, Value> = (0..65)
        .map(|i| (format!("s{i}"), json!({"image": "a:1"})))
        .collect();
    assert!(refusal(json!({"services": many})).contains("at most 64"));
}

fn nav_doc(bundle: Value) -> Value {
    json!({"services": {"nav": {"image": "a:1",
        "command": ["run", "${CW_NAVIGATION_PROFILE}", "${CW_CONFIG_PROFILE}", "${CW_ROS_DISTRO}"],
        "volumes": [{"type": "volume", "source": "bundle", "target": "/nav", "read_only": true}]}},
        "volumes": {"bundle": {"name": "${CW_NAVIGATION_BUNDLE}", "external": true}},
        "x-cyberwave": {"navigation_bundle": bundle}})
}

#[test]
fn a_navigation_bundle_runs_from_its_copy_and_is_checked_first() {
    let good =
        json!({"schema": 1, "source": "/opt/nav", "target": "/nav/", "profile": "go2/params.yaml"});
    let nav_labels = [
        (bundle::CONFIG_PROFILE_LABEL, "humble"),
        (bundle::ROS_DISTRO_LABEL, "humble"),
    ];
    let l = labels(&nav_doc(good.clone()), &nav_labels);
    let volume = "cyberwave-navigation-0123456789abcdef-0a0b0c0d";
    let derived = BTreeMap::from([(bundle::VOLUME_KEY.to_string(), volume.to_string())]);
    let Ok(Declared::Graph { services, .. }) = run_with(&l, &env(&[]), &BTreeMap::new(), &derived)
    else {
        panic!("graph")
    };
    assert_eq!(
        services[0].command,
        ["run", "/nav/go2/params.yaml", "humble", "humble"]
    );
    assert_eq!(services[0].params, ["-v", &format!("{volume}:/nav:ro")]);
    assert!(
        services[0].resources[0].external,
        "never created empty by a launch"
    );
    // Not copied (yet, or it failed): refused with the reason.
    assert!(
        matches!(run(&l, &env(&[]), &BTreeMap::new()), Err(e) if e.contains("not materialised"))
    );
    let failed = BTreeMap::from([(bundle::ERROR_KEY.to_string(), "copy failed".to_string())]);
    let e = run_with(&l, &env(&[]), &BTreeMap::new(), &failed);
    assert!(
        matches!(&e, Err(m) if m.contains("invalid navigation bundle") && m.contains("copy failed")),
        "{e:?}"
    );
    let cases = [
        (
            json!({"schema": 2, "source": "/a", "target": "/b", "profile": "p"}),
            &nav_labels[..],
            "schema",
        ),
        (
            json!({"schema": 1, "source": "rel", "target": "/b", "profile": "p"}),
            &nav_labels[..],
            "absolute",
        ),
        (
            json!({"schema": 1, "source": "/a", "target": "/b", "profile": "../p"}),
            &nav_labels[..],
            "safe relative",
        ),
        (
            json!({"schema": 1, "source": "/a", "target": "/b", "profile": "/p"}),
            &nav_labels[..],
            "safe relative",
        ),
        (
            good.clone(),
            &nav_labels[..1],
            "missing io.cyberwave.navigation.ros-distro",
        ),
        (
            good.clone(),
            &[
                (bundle::CONFIG_PROFILE_LABEL, "jazzy"),
                (bundle::ROS_DISTRO_LABEL, "humble"),
            ][..],
            "does not match",
        ),
        (json!("x"), &nav_labels[..], "must be a mapping"),
    ];
    for (b, extra, want) in cases {
        let l = labels(&nav_doc(b), extra);
        let e = run_with(&l, &env(&[]), &BTreeMap::new(), &derived);
        assert!(matches!(&e, Err(m) if m.contains(want)), "{want}: {e:?}");
    }
    let jetson = labels(
        &nav_doc(good),
        &[
            (bundle::CONFIG_PROFILE_LABEL, "jetson"),
            (bundle::ROS_DISTRO_LABEL, "humble"),
        ],
    );
    assert!(run_with(&jetson, &env(&[]), &BTreeMap::new(), &derived).is_ok());
}
