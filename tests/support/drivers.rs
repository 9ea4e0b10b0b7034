//! One driver twin on the real engine: the backend that links it, its container name, its
//! state in `status`, and a per-test setup.

use serde_json::{Value, json};

use super::docker::{self as dk, Cleanup, IMAGE};
use super::*;

/// A backend whose environment has one twin linked to this edge, running the example driver
/// with `mode` (run, crash, exit0, chatty).
pub fn backend_with_driver(twin: &str, mode: &str) -> FakeBackend {
    let asset = format!("a55e7{}", &twin[5..]);
    let b = FakeBackend::start(TOKEN);
    b.add_environment(
        ENV_UUID,
        vec![json!({"uuid": twin, "name": format!("driver twin {mode}"), "asset_uuid": asset, "environment_uuid": ENV_UUID,
                    "metadata": {"edge_fingerprint": FINGERPRINT, "edge_configs": {"camera_config": {"fps": 15}}}})],
    );
    b.add_asset(json!({"uuid": asset, "name": "example", "registry_id": "example/sensor",
        "metadata": {"drivers": {"default": {"docker_image": IMAGE, "privileged": false,
            "params": ["-e", format!("DRIVER_MODE={mode}"), "-e", "CYBERWAVE_TWIN_UUID=spoofed", "--label", "extra.label=yes"]}}}}));
    b
}

pub fn container(twin: &str) -> String {
    format!("cyberwave-driver-{}", &twin[..8])
}

pub fn driver_state(s: &Value, name: &str) -> Option<String> {
    s.pointer("/drivers/containers")?
        .as_array()?
        .iter()
        .find(|c| c["name"] == json!(name))
        .and_then(|c| c["state"].as_str().map(str::to_string))
}

pub fn setup(test: &str, mode: &str) -> Option<(String, FakeBackend, Broker, EdgeDir, Cleanup)> {
    if !dk::available() {
        return None;
    }
    dk::ensure_image();
    let twin = dk::twin_uuid(test);
    let cleanup = Cleanup(vec![container(&twin)]);
    dk::rm(&container(&twin));
    let backend = backend_with_driver(&twin, mode);
    let broker = broker_for_token();
    let mut dir = EdgeDir::standard(&backend.url(), broker.port);
    dir.set_env("CYBERWAVE_EDGE_HEALTH_PUBLISH_INTERVAL_SECONDS", "1");
    Some((twin, backend, broker, dir, cleanup))
}

/// A backend whose one linked twin runs `image`, which no registry serves: every launch
/// attempt fails at the pull and reports it on `driverlog`.
pub fn backend_with_unpullable(twin: &str, image: &str) -> FakeBackend {
    let asset = format!("a55e7{}", &twin[5..]);
    let b = FakeBackend::start(TOKEN);
    b.add_environment(
        ENV_UUID,
        vec![
            json!({"uuid": twin, "name": "unpullable", "asset_uuid": asset,
                    "metadata": {"edge_fingerprint": FINGERPRINT}}),
        ],
    );
    b.add_asset(json!({"uuid": asset, "metadata": {"drivers": {"default": {
        "docker_image": image, "privileged": false}}}}));
    b
}

/// Asks this edge for a remote restart as the backend does: it creates the card alert, then
/// sends `restart_edge_core` with its uuid on the edge's command topic. Returns the card's uuid.
pub fn request_restart(backend: &FakeBackend, broker: &Broker, request_id: &str) -> String {
    let alert = backend
        .add_alert(json!({"alert_type": "edge_core_restart", "metadata": {"phase": "requested"}}));
    let topic = format!(
        "devedges/{}/command",
        FakeBackend::edge_uuid_for(FINGERPRINT)
    );
    broker.publish(
        &topic,
        &json!({"command": "restart_edge_core", "request_id": request_id, "alert_uuid": alert})
            .to_string(),
    );
    alert
}

/// One twin linked to this edge on the real engine, whose asset's driver profile is `drivers`
/// (its `metadata.drivers`): (twin, container name — `-<service>` appended when given —,
/// backend, clean-up). None without Docker.
pub fn setup_profile(
    test: &str,
    service: Option<&str>,
    drivers: Value,
) -> Option<(String, String, FakeBackend, Cleanup)> {
    if !dk::available() {
        return None;
    }
    dk::ensure_image();
    let twin = dk::twin_uuid(test);
    let name = match service {
        Some(s) => format!("{}-{s}", container(&twin)),
        None => container(&twin),
    };
    let cleanup = Cleanup(vec![name.clone()]);
    dk::rm(&name);
    let asset = format!("a55e7{}", &twin[5..]);
    let b = FakeBackend::start(TOKEN);
    b.add_environment(
        ENV_UUID,
        vec![json!({"uuid": twin, "name": test, "asset_uuid": asset,
                    "environment_uuid": ENV_UUID, "metadata": {"edge_fingerprint": FINGERPRINT}})],
    );
    b.add_asset(json!({"uuid": asset, "metadata": {"drivers": drivers}}));
    Some((twin, name, b, cleanup))
}
