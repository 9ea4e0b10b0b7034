//! Pulls from a real registry (Debian's `docker-registry` on a loopback port): a registry
//! that refuses the stored credentials gets one anonymous retry (reference §5.6), and the
//! pull's own lines reach the `driverlog` of every twin whose driver uses the image (§3.6).

use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::support::docker::{self as dk, Cleanup, IMAGE};
use crate::support::drivers::container;
use crate::support::registry::{AuthProxy, Registry};
use crate::support::*;
use serde_json::json;

const SEC: Duration = Duration::from_secs(1);

#[test]
fn stale_stored_credentials_get_one_anonymous_retry_and_every_twin_sees_the_pull() {
    if !dk::available() {
        return;
    }
    let Some(registry) = Registry::start() else {
        return;
    };
    dk::ensure_image();
    let repo = registry.push(IMAGE, "cw/anon-driver:1.0");
    // "stale:creds": what `docker login` stored before the registry's password changed.
    let stale = "c3RhbGU6Y3JlZHM=";
    let proxy = AuthProxy::start(registry.port, stale);
    let image = format!("127.0.0.1:{}/{repo}", proxy.port);
    let _ = std::process::Command::new("docker")
        .args(["rmi", &image])
        .output();

    let arm = dk::twin_uuid("anon_pull_arm");
    let cam = dk::twin_uuid("anon_pull_cam");
    let _c = Cleanup(vec![container(&arm), container(&cam)]);
    for t in [&arm, &cam] {
        dk::rm(&container(t));
    }
    let backend = FakeBackend::start(TOKEN);
    let asset = |t: &str| format!("a55e7{}", &t[5..]);
    backend.add_environment(
        ENV_UUID,
        [&arm, &cam]
            .iter()
            .map(|t| {
                json!({"uuid": t, "name": "shared image", "asset_uuid": asset(t),
                    "environment_uuid": ENV_UUID, "metadata": {"edge_fingerprint": FINGERPRINT}})
            })
            .collect(),
    );
    for t in [&arm, &cam] {
        backend.add_asset(
            json!({"uuid": asset(t), "metadata": {"drivers": {"default": {
            "docker_image": image, "privileged": false, "params": ["-e", "DRIVER_MODE=run"]}}}}),
        );
    }
    let broker = broker_for_token();
    let mut dir = EdgeDir::standard(&backend.url(), broker.port);
    let docker_config = dir.tmp.path().join("docker-config");
    std::fs::create_dir_all(&docker_config).unwrap();
    std::fs::write(
        docker_config.join("config.json"),
        json!({"auths": {format!("127.0.0.1:{}", proxy.port): {"auth": stale}}}).to_string(),
    )
    .unwrap();
    dir.set_env("DOCKER_CONFIG", docker_config.to_str().unwrap());
    let logs = broker.subscribe("devcyberwave/twin/+/driverlog");
    let d = Daemon::start(&dir);
    assert!(
        wait_until(90 * SEC, || [&arm, &cam]
            .iter()
            .all(|t| dk::inspect(&container(t))
                .is_some_and(|i| i["State"]["Status"] == json!("running")))),
        "{}",
        d.log()
    );
    assert!(proxy.counts.refused_stale.load(Ordering::SeqCst) >= 1);
    assert!(proxy.counts.passed_anonymous.load(Ordering::SeqCst) >= 1);
    // The stored credentials were not thrown away: only that one pull went without them.
    assert!(
        std::fs::read_to_string(docker_config.join("config.json"))
            .unwrap()
            .contains(stale)
    );
    let retry = format!(
        "docker pull: registry refused {image} as unauthorized; retrying without stored credentials"
    );
    assert!(d.log().contains(&retry), "{}", d.log());
    let got = logs.collect(3 * SEC);
    for t in [&arm, &cam] {
        let mine: Vec<&str> = got
            .iter()
            .filter(|(topic, _)| topic.contains(t.as_str()))
            .filter_map(|(_, p)| p["message"].as_str())
            .collect();
        assert!(mine.contains(&retry.as_str()), "{t}: {mine:?}");
        assert!(
            mine.contains(&"docker pull: 1.0: Pulling from cw/anon-driver"),
            "{t}: no pull lines: {mine:?}\n{}",
            d.log()
        );
        assert!(
            mine.contains(&format!("docker pull completed for image {image}").as_str()),
            "{t}: {mine:?}"
        );
    }
}
