//! Camera devices on the real engine (reference §4.7, §5.8, §5.12, §5.13): each driver of a
//! multi-camera rig is told its own pinned device and gets `/dev/v4l` read-only; a changed pin
//! recreates exactly the driver whose device changed; a pinned device that goes missing raises
//! `sensor_device_missing` with the original's words and coming back resolves it.

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::daemon::Daemon;
use crate::support::docker::{self as dk, Cleanup, IMAGE};
use crate::support::drivers::container;
use crate::support::*;

const SEC: Duration = Duration::from_secs(1);

fn id_of(name: &str) -> Option<String> {
    dk::inspect(name).and_then(|i| i["Id"].as_str().map(str::to_string))
}

fn video_device(name: &str) -> Option<String> {
    dk::env_of(name).into_iter().find_map(|e| {
        e.strip_prefix("CYBERWAVE_METADATA_VIDEO_DEVICE=")
            .map(str::to_string)
    })
}

fn mounts_v4l_read_only(name: &str) -> bool {
    dk::inspect(name)
        .and_then(|i| i["Mounts"].as_array().cloned())
        .unwrap_or_default()
        .iter()
        .any(|m| m["Source"] == json!("/dev/v4l") && m["RW"] == json!(false))
}

/// A stand-in for a udev by-id node (this machine has no camera); removed with the tree we
/// created.
struct FakeV4l {
    created_tree: bool,
    node: std::path::PathBuf,
}

impl FakeV4l {
    fn new(name: &str) -> Self {
        let created_tree = !Path::new("/dev/v4l").exists();
        let node = Path::new("/dev/v4l/by-id").join(name);
        std::fs::create_dir_all(node.parent().unwrap()).unwrap();
        std::fs::write(&node, b"").unwrap();
        FakeV4l { created_tree, node }
    }
}

impl Drop for FakeV4l {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.node);
        if self.created_tree {
            let _ = std::fs::remove_dir_all("/dev/v4l");
        }
    }
}

#[test]
fn a_multi_camera_rig_pins_each_driver_and_follows_its_devices() {
    if !dk::available()
        || !Path::new("/dev")
            .metadata()
            .is_ok_and(|m| !m.permissions().readonly())
    {
        return;
    }
    dk::ensure_image();
    let (a, b) = (dk::twin_uuid("camera_rig_a"), dk::twin_uuid("camera_rig_b"));
    let _c = Cleanup(vec![container(&a), container(&b)]);
    dk::rm(&container(&a));
    dk::rm(&container(&b));
    let node = format!("usb-cyberwave-test-{}-video-index0", &a[..8]);
    let v4l = FakeV4l::new(&node);
    let pinned = v4l.node.display().to_string();

    let backend = FakeBackend::start(TOKEN);
    let twins: Vec<Value> = [&a, &b]
        .iter()
        .map(|t| {
            json!({"uuid": t, "name": format!("camera {}", &t[..4]), "asset_uuid": format!("a55e7{}", &t[5..]),
                   "environment_uuid": ENV_UUID, "metadata": {"edge_fingerprint": FINGERPRINT}})
        })
        .collect();
    backend.add_environment(ENV_UUID, twins);
    for t in [&a, &b] {
        backend.add_asset(
            json!({"uuid": format!("a55e7{}", &t[5..]), "registry_id": "acme/usb-cam",
            "metadata": {"drivers": {"default": {"docker_image": IMAGE, "privileged": false,
                "params": ["-e", "DRIVER_MODE=run"]}}}}),
        );
    }
    let broker = broker_for_token();
    let mut dir = crate::support::daemon::EdgeDir::standard(&backend.url(), broker.port);
    dir.set_env("CYBERWAVE_SENSOR_DEVICE_CHECK_SECONDS", "1");
    dir.write_raw(
        "cameras.json",
        &json!({"selected_device": 0, "twin_to_device": {&a: pinned, &b: 7}}).to_string(),
    );
    let mut d = Daemon::start(&dir);
    let running =
        |n: &str| dk::inspect(n).is_some_and(|i| i.pointer("/State/Running") == Some(&json!(true)));
    assert!(
        wait_until(90 * SEC, || running(&container(&a))
            && running(&container(&b))),
        "{}",
        d.log()
    );
    assert_eq!(
        video_device(&container(&a)).as_deref(),
        Some(pinned.as_str())
    );
    assert_eq!(video_device(&container(&b)).as_deref(), Some("/dev/video7"));
    assert!(
        mounts_v4l_read_only(&container(&a)),
        "by-id pin: /dev/v4l mounted read-only"
    );
    assert!(
        !mounts_v4l_read_only(&container(&b)),
        "index pin, not a camera image: no mount"
    );

    let missing_on = |t: &str| -> Vec<Value> {
        backend
            .alerts_of_type("sensor_device_missing")
            .into_iter()
            .filter(|x| x["twin_uuid"] == json!(t))
            .collect()
    };
    // Camera b's /dev/video7 does not exist on this host: alerted like the original does.
    assert!(
        wait_until(20 * SEC, || !missing_on(&b).is_empty()),
        "{}",
        d.log()
    );
    assert_eq!(
        missing_on(&b)[0]["metadata"],
        json!({"device": "/dev/video7"})
    );
    assert!(missing_on(&a).is_empty(), "camera a's device is there");
    // Camera a's device goes away: two checks later the alert, with the original's words.
    std::fs::remove_file(&v4l.node).unwrap();
    assert!(
        wait_until(20 * SEC, || !missing_on(&a).is_empty()),
        "{}",
        d.log()
    );
    std::thread::sleep(3 * SEC);
    let alerts = missing_on(&a);
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    let al = &alerts[0];
    assert_eq!(al["twin_uuid"], json!(a));
    assert_eq!(al["severity"], json!("error"));
    assert_eq!(al["name"], json!("Sensor device missing"));
    assert_eq!(
        al["description"],
        json!(format!(
            "The pinned device {pinned} is not present on the edge host."
        ))
    );
    assert_eq!(al["metadata"], json!({"device": pinned}));
    // Back again: resolved.
    std::fs::write(&v4l.node, b"").unwrap();
    assert!(
        wait_until(20 * SEC, || missing_on(&a)[0]["status"]
            == json!("resolved")),
        "{}",
        d.log()
    );

    // The CLI re-pins camera b: b is recreated with its new device, a is left alone.
    let (id_a, id_b) = (id_of(&container(&a)), id_of(&container(&b)));
    dir.write_raw(
        "cameras.json",
        &json!({"selected_device": 0, "twin_to_device": {&a: pinned, &b: "rtsp://10.0.0.9/cam"}})
            .to_string(),
    );
    assert!(
        wait_until(60 * SEC, || video_device(&container(&b)).as_deref()
            == Some("rtsp://10.0.0.9/cam")
            && running(&container(&b))),
        "{}",
        d.log()
    );
    assert_ne!(id_of(&container(&b)), id_b);
    assert_eq!(id_of(&container(&a)), id_a, "camera a's pin did not change");
    // b's pin is no longer a /dev path: its alert is resolved.
    assert!(
        wait_until(20 * SEC, || missing_on(&b)[0]["status"]
            == json!("resolved")),
        "{}",
        d.log()
    );
    d.terminate();
}
