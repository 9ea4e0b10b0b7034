//! Image-declared service graphs (reference §5.5, §5.9) on the real engine: a driver image
//! built here whose labels carry a rendered Compose JSON of three services — a router whose
//! healthcheck passes after ~3 s, an app gated on its health, a sidecar on a second network with
//! a tmpfs, a bind mount and a named volume. They run with the exact names, networks, mounts,
//! env and labels; the app starts only after the router is healthy (the engine's own events);
//! a restarted daemon adopts them; a remote restart recreates them in order; a graph with a key
//! Edge Core does not translate is refused with the original's words; unlinking the twin
//! removes its containers, networks and volume and nothing else.

use std::process::Command;
use std::time::Duration;

use base64::Engine as _;
use serde_json::{Value, json};

use crate::support::daemon::{Daemon, EdgeDir};
use crate::support::docker::{self as dk, Cleanup, IMAGE};
use crate::support::drivers::request_restart;
use crate::support::*;

const SEC: Duration = Duration::from_secs(1);

/// Tags the example driver image as `tag` with the compose labels of `doc` (variant robot).
fn declaring_image(tag: &str, doc: &Value) {
    let b64 = base64::engine::general_purpose::STANDARD.encode(doc.to_string());
    let dockerfile = format!(
        "FROM {IMAGE}\nLABEL io.cyberwave.driver.compose.schema=2 io.cyberwave.driver.compose.robot={b64}\n"
    );
    dk::build(tag, &dockerfile);
}

fn graph_doc(bind_source: &str) -> Value {
    json!({
        "name": "stack",
        "services": {
            "app": {
                "image": "cyberwave-example-driver:${CW_CHANNEL_TAG}",
                "depends_on": {"router": {"condition": "service_healthy", "required": true}},
                "environment": {"DRIVER_MODE": "run", "NS": "${CW_TWIN_NS}", "SHELL_DEFAULT": "${X:-y}"},
                "networks": {"stack": null},
                "restart": "always"
            },
            "router": {
                "image": IMAGE,
                "command": ["/bin/sh", "-c", "sleep 3; echo up > /tmp/up; exec /bin/sh /driver.sh"],
                "healthcheck": {"test": ["CMD-SHELL", "test -f /tmp/up"], "interval": "1s", "retries": 60},
                "networks": {"stack": null}
            },
            "sidecar": {
                "image": IMAGE,
                "networks": {"side": null, "stack": null},
                "tmpfs": "/run/secret:size=1m",
                "volumes": [
                    {"type": "bind", "source": bind_source, "target": "/data", "read_only": true},
                    {"type": "volume", "source": "maps", "target": "/maps"}
                ]
            }
        },
        "networks": {"stack": {"name": "cw-${CW_TWIN8}-stack"}, "side": {"name": "cw-${CW_TWIN8}-side"}},
        "volumes": {"maps": {"name": "cw-${CW_TWIN8}-maps"}}
    })
}

fn docker_ok(args: &[&str]) -> bool {
    Command::new("docker")
        .args(args)
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Every network of that name (Docker lets several share one).
fn remove_networks_named(name: &str) {
    let out = Command::new("docker")
        .args(["network", "ls", "-q", "--filter", &format!("name=^{name}$")])
        .output()
        .unwrap();
    for id in String::from_utf8_lossy(&out.stdout).split_whitespace() {
        let _ = docker_ok(&["network", "rm", id]);
    }
}

/// How many networks carry that name.
fn networks_named(name: &str) -> usize {
    let out = Command::new("docker")
        .args(["network", "ls", "-q", "--filter", &format!("name=^{name}$")])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .count()
}

fn labels_of(kind: &str, name: &str) -> Value {
    let out = Command::new("docker")
        .args([kind, "inspect", "--format", "{{json .Labels}}", name])
        .output()
        .unwrap();
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
}

fn running(name: &str) -> bool {
    dk::inspect(name).is_some_and(|i| i["State"]["Status"] == json!("running"))
}

/// Epoch ns of the first event `action` of container `id`.
fn at(ev: &dk::Events, id: &str, action: &str) -> Option<u128> {
    ev.of(id)
        .into_iter()
        .find(|(a, _, _)| a == action)
        .map(|(_, _, t)| t)
}

/// The app's `start` came after the router's `health_status: healthy`.
fn assert_started_after_healthy(ev: &dk::Events, router: &str, app: &str, log: &str) {
    let (r, a) = (dk::id_of(router), dk::id_of(app));
    let healthy = at(ev, &r, "health_status: healthy");
    let start = at(ev, &a, "start");
    assert!(
        healthy.is_some() && start.is_some() && healthy < start,
        "router healthy {healthy:?}, app start {start:?}\n{:?}\n{:?}\n{log}",
        ev.of(&r),
        ev.of(&a)
    );
}

#[test]
fn a_declared_graph_runs_in_order_is_adopted_recreated_and_goes_with_its_twin() {
    if !dk::available() {
        return;
    }
    dk::ensure_image();
    let twin = dk::twin_uuid("compose_graph");
    let refused = dk::twin_uuid("compose_refused");
    let t8 = &twin[..8];
    let name = |s: &str| format!("cyberwave-driver-{t8}-{s}");
    let (router, app, sidecar) = (name("router"), name("app"), name("sidecar"));
    let _c = Cleanup(vec![router.clone(), app.clone(), sidecar.clone()]);
    for n in [&router, &app, &sidecar] {
        dk::rm(n);
    }
    let (stack, side, maps) = (
        format!("cw-{t8}-stack"),
        format!("cw-{t8}-side"),
        format!("cw-{t8}-maps"),
    );
    for n in [&stack, &side] {
        remove_networks_named(n);
    }
    let _ = docker_ok(&["volume", "rm", &maps]);
    // Someone else's network on the same engine: never touched.
    let foreign = format!("cw-foreign-{t8}");
    let _ = docker_ok(&["network", "create", &foreign]);

    let backend = FakeBackend::start(TOKEN);
    let broker = broker_for_token();
    let dir = EdgeDir::standard(&backend.url(), broker.port);
    let bind = dir.tmp.path().join("robot-data");
    std::fs::create_dir_all(&bind).unwrap();
    declaring_image(
        "cyberwave-graph-driver:local",
        &graph_doc(bind.to_str().unwrap()),
    );
    let mut bad = graph_doc(bind.to_str().unwrap());
    bad["services"]["sidecar"]["devices"] = json!(["/dev/ttyUSB0"]);
    declaring_image("cyberwave-graph-refused:local", &bad);
    let twin_of = |uuid: &str, image: &str| {
        let asset = format!("a55e7{}", &uuid[5..]);
        backend.add_asset(json!({"uuid": asset, "metadata": {"drivers": {"default": {
            "docker_image": image, "privileged": false, "shared_env": {"SHARED": 1}}}}}));
        json!({"uuid": uuid, "name": "go2", "asset_uuid": asset, "environment_uuid": ENV_UUID,
               "metadata": {"edge_fingerprint": FINGERPRINT}})
    };
    backend.add_environment(
        ENV_UUID,
        vec![
            twin_of(&twin, "cyberwave-graph-driver:local"),
            twin_of(&refused, "cyberwave-graph-refused:local"),
        ],
    );
    let events = dk::Events::watch(&[&router, &app, &sidecar]);
    let mut d = Daemon::start(&dir);

    // While the router is not healthy yet, status says what the app waits for.
    let mut saw_wait = false;
    let up = wait_until(90 * SEC, || {
        let s = dir.status().1;
        saw_wait |= s["drivers"]["containers"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["name"] == json!(app) && c["waiting_for"]["container"] == json!(router));
        [&router, &app, &sidecar].iter().all(|n| running(n))
    });
    assert!(up, "graph not up\n{}", d.log());
    assert!(saw_wait, "status never showed the app waiting\n{}", d.log());
    assert_started_after_healthy(&events, &router, &app, &d.log());

    // Exact names, networks, mounts, env and labels.
    let a = dk::inspect(&app).unwrap();
    assert_eq!(a["HostConfig"]["NetworkMode"], json!(stack));
    assert_eq!(
        a["Config"]["Image"],
        json!(IMAGE),
        "${{CW_CHANNEL_TAG}} = local"
    );
    let env = dk::env_of(&app);
    let ns = format!("NS=twin_{}", twin.replace('-', "_"));
    for want in [
        ns.as_str(),
        "SHELL_DEFAULT=${X:-y}",
        "SHARED=1",
        "DRIVER_MODE=run",
    ] {
        assert!(env.iter().any(|e| e == want), "{want} not in {env:?}");
    }
    assert_eq!(
        a["HostConfig"]["RestartPolicy"]["Name"],
        json!("unless-stopped")
    );
    assert_eq!(a["HostConfig"]["Privileged"], json!(false));
    let l = &a["Config"]["Labels"];
    assert_eq!(l["io.cyberwave.edge.service"], json!("app"));
    assert_eq!(l["io.cyberwave.edge.twin"], json!(twin));
    assert_eq!(l["io.cyberwave.edge.owner"], json!(FINGERPRINT));
    assert!(
        l["io.cyberwave.edge.spec-hash"]
            .as_str()
            .is_some_and(|h| h.len() == 64)
    );
    let s = dk::inspect(&sidecar).unwrap();
    assert_eq!(s["HostConfig"]["NetworkMode"], json!(side));
    let nets = s["NetworkSettings"]["Networks"].as_object().unwrap();
    assert!(
        nets.contains_key(&stack) && nets.contains_key(&side),
        "{nets:?}"
    );
    assert_eq!(s["HostConfig"]["Tmpfs"]["/run/secret"], json!("size=1m"));
    let mounts = s["Mounts"].as_array().unwrap();
    assert!(mounts.iter().any(|m| m["Type"] == json!("bind")
        && m["Destination"] == json!("/data")
        && m["RW"] == json!(false)));
    assert!(
        mounts
            .iter()
            .any(|m| m["Type"] == json!("volume") && m["Name"] == json!(maps))
    );
    let r = dk::inspect(&router).unwrap();
    assert_eq!(
        r["Config"]["Healthcheck"]["Test"],
        json!(["CMD-SHELL", "test -f /tmp/up"])
    );
    assert_eq!(networks_named(&stack), 1, "one network per name, made once");
    for (kind, n) in [("network", &stack), ("network", &side), ("volume", &maps)] {
        let l = labels_of(kind, n);
        assert_eq!(
            l["io.cyberwave.edge.owner"],
            json!(FINGERPRINT),
            "{kind} {n}: {l}"
        );
        assert_eq!(l["io.cyberwave.edge.twin"], json!(twin), "{kind} {n}: {l}");
    }

    // The graph with a key Edge Core does not translate: refused, nothing runs.
    assert!(wait_until(20 * SEC, || !backend
        .alerts_of_type("driver_start_failure")
        .is_empty()));
    let alerts = backend.alerts_of_type("driver_start_failure");
    let refusal = alerts
        .iter()
        .find(|a| a["twin_uuid"] == json!(refused))
        .unwrap_or_else(|| panic!("{alerts:?}"));
    assert_eq!(refusal["name"], json!("Unusable declared topology"));
    assert!(
        refusal["description"].as_str().unwrap().starts_with(
            "Twin 'go2' declares a topology this edge cannot resolve: compose service \"sidecar\": it declares [\"devices\"], which Edge Core does not translate."
        ),
        "{refusal}"
    );
    assert!(dk::inspect(&format!("cyberwave-driver-{}", &refused[..8])).is_none());

    // A restarted daemon adopts the running graph: same containers.
    let ids: Vec<String> = [&router, &app, &sidecar]
        .iter()
        .map(|n| dk::id_of(n))
        .collect();
    d.terminate();
    let mut d = Daemon::start(&dir);
    d.wait_ready(&dir);
    std::thread::sleep(5 * SEC);
    let again: Vec<String> = [&router, &app, &sidecar]
        .iter()
        .map(|n| dk::id_of(n))
        .collect();
    assert_eq!(ids, again, "not adopted\n{}", d.log());

    // A remote restart recreates the graph, in order again.
    let events = dk::Events::watch(&[&router, &app, &sidecar]);
    request_restart(&backend, &broker, "graph-restart");
    let recreated = wait_until(90 * SEC, || {
        [&router, &app, &sidecar]
            .iter()
            .zip(&ids)
            .all(|(n, old)| running(n) && dk::id_of(n) != *old)
    });
    assert!(recreated, "graph not recreated\n{}", d.log());
    assert_started_after_healthy(&events, &router, &app, &d.log());

    // Unlinked: its containers, networks and volume go; nothing else does.
    backend.edit_twin(&twin, |t| {
        t["metadata"]["edge_fingerprint"] = json!("another-edge")
    });
    let gone = wait_until(60 * SEC, || {
        [&router, &app, &sidecar]
            .iter()
            .all(|n| dk::inspect(n).is_none())
            && !docker_ok(&["network", "inspect", &stack])
            && !docker_ok(&["network", "inspect", &side])
            && !docker_ok(&["volume", "inspect", &maps])
    });
    assert!(gone, "graph not removed\n{}", d.log());
    assert!(docker_ok(&["network", "inspect", &foreign]));
    let _ = docker_ok(&["network", "rm", &foreign]);
    d.terminate();
}

/// An image with a navigation bundle under /opt/nav (its marker and a profile), built here
/// from a static busybox with the applets the copy needs.
fn bundle_image(tag: &str, doc: &Value) {
    let b64 = base64::engine::general_purpose::STANDARD.encode(doc.to_string());
    let script = format!(
        r#"set -euo pipefail
. "{dir}/examples/local/busybox-rootfs.sh"
busybox_rootfs sh cat echo sleep test find cp rm mkdir
mkdir -p "$root/opt/nav/go2"
echo "speed: 0.5" > "$root/opt/nav/go2/params.yaml"
echo "abc123" > "$root/opt/nav/.cyberwave-navigation-bundle.sha256"
tar -C "$root" -c . | docker import \
  --change 'CMD ["/bin/sh", "-c", "sleep 3600"]' \
  --change 'LABEL io.cyberwave.driver.compose.schema=2 io.cyberwave.driver.compose.robot={b64} io.cyberwave.navigation.config-profile=humble io.cyberwave.navigation.ros-distro=humble' \
  - {tag} >/dev/null
"#,
        dir = env!("CARGO_MANIFEST_DIR"),
    );
    let out = Command::new("bash").args(["-c", &script]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn volumes_named(prefix: &str) -> Vec<String> {
    let out = Command::new("docker")
        .args(["volume", "ls", "-q", "--filter", &format!("name={prefix}")])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter(|v| v.starts_with(prefix))
        .map(str::to_string)
        .collect()
}

#[test]
fn a_navigation_bundle_is_copied_once_mounted_adopted_and_copied_again_when_gone() {
    if !dk::available() {
        return;
    }
    let twin = dk::twin_uuid("compose_nav_bundle");
    let nav = format!("cyberwave-driver-{}-nav", &twin[..8]);
    let _c = Cleanup(vec![nav.clone()]);
    dk::rm(&nav);
    let image = "cyberwave-nav-driver:local";
    let doc = json!({"services": {"nav": {
            "image": image,
            "command": ["/bin/sh", "-c", "cat /nav/go2/params.yaml; exec sleep 3600"],
            "environment": {"PROFILE": "${CW_NAVIGATION_PROFILE}", "DISTRO": "${CW_ROS_DISTRO}"},
            "volumes": [{"type": "volume", "source": "bundle", "target": "/nav", "read_only": true}]}},
        "volumes": {"bundle": {"name": "${CW_NAVIGATION_BUNDLE}", "external": true}},
        "x-cyberwave": {"navigation_bundle": {"schema": 1, "source": "/opt/nav", "target": "/nav", "profile": "go2/params.yaml"}}});
    bundle_image(image, &doc);
    let image_id = {
        let out = Command::new("docker")
            .args(["image", "inspect", "--format", "{{.Id}}", image])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let before: std::collections::BTreeSet<String> =
        volumes_named("cyberwave-navigation-").into_iter().collect();
    let backend = FakeBackend::start(TOKEN);
    let asset = format!("a55e7{}", &twin[5..]);
    backend.add_asset(json!({"uuid": asset, "metadata": {"drivers": {"default": {
        "docker_image": image, "privileged": false}}}}));
    backend.add_environment(
        ENV_UUID,
        vec![
            json!({"uuid": twin, "name": "go2", "asset_uuid": asset, "environment_uuid": ENV_UUID,
                    "metadata": {"edge_fingerprint": FINGERPRINT}}),
        ],
    );
    let broker = broker_for_token();
    let dir = EdgeDir::standard(&backend.url(), broker.port);
    let mut d = Daemon::start(&dir);
    assert!(
        wait_until(60 * SEC, || running(&nav)),
        "not up\n{}",
        d.log()
    );
    let ours: Vec<String> = volumes_named("cyberwave-navigation-")
        .into_iter()
        .filter(|v| !before.contains(v))
        .collect();
    assert_eq!(ours.len(), 1, "{ours:?}\n{}", d.log());
    let volume = &ours[0];
    let l = labels_of("volume", volume);
    assert_eq!(l["io.cyberwave.navigation.bundle"], json!("1"));
    assert_eq!(l["io.cyberwave.navigation.image"], json!(image_id));
    assert!(
        wait_until(10 * SEC, || dk::logs(&nav).contains("speed: 0.5")),
        "the service did not read the bundle: {}",
        dk::logs(&nav)
    );
    let env = dk::env_of(&nav);
    assert!(
        env.iter().any(|e| e == "PROFILE=/nav/go2/params.yaml"),
        "{env:?}"
    );
    assert!(env.iter().any(|e| e == "DISTRO=humble"), "{env:?}");

    // A restarted edge finds the complete copy: same volume, same container.
    let id = dk::id_of(&nav);
    d.terminate();
    let mut d = Daemon::start(&dir);
    d.wait_ready(&dir);
    std::thread::sleep(5 * SEC);
    assert_eq!(dk::id_of(&nav), id, "not adopted\n{}", d.log());
    d.terminate();

    // The bundle gone (and its container): the next edge copies it again, never mounts an
    // empty volume.
    dk::rm(&nav);
    assert!(docker_ok(&["volume", "rm", volume]));
    let d = Daemon::start(&dir);
    assert!(
        wait_until(60 * SEC, || running(&nav)
            && dk::logs(&nav).contains("speed: 0.5")),
        "not copied again\n{}",
        d.log()
    );
    for v in volumes_named("cyberwave-navigation-") {
        if !before.contains(&v) {
            let _ = Command::new("docker").args(["rm", "-f", &nav]).output();
            let _ = docker_ok(&["volume", "rm", &v]);
        }
    }
}
