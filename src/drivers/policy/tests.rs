//! The driver's launch hooks against the recording fake engine: what the engine is asked
//! before a create (the image's declarations, the running containers), and when a launch is
//! refused.

use std::collections::BTreeMap;

use super::*;
use crate::engine::fake::FakeEngine;
use crate::engine::{Details, ImageConfig};

fn hooks(engine: Arc<FakeEngine>, dir: &std::path::Path) -> DriverHooks {
    DriverHooks {
        config_dir: dir.to_path_buf(),
        mqtt: SharedHandle::new(None),
        alerts: Arc::new(Mutex::new(AlertSink::new(None, None, None))),
        cards: super::super::card::Cards::new(Duration::from_secs(1)),
        engine,
        robots: Default::default(),
        nvp_applied: Default::default(),
        nvp_conf: dir.join("nvpmodel.conf"),
        owner: "fp".into(),
        edge_env: BTreeMap::new(),
        bundle_session: "0a0b0c0d".into(),
    }
}

const TWIN: &str = "11111111-2222-4333-8444-555555555555";

fn spec(name: &str, twin: &str, robot_ip: Option<&str>) -> ContainerSpec {
    let mut s = crate::containers::spec::example(crate::containers::spec::Role::Driver);
    s.name = name.into();
    s.owner = twin.into();
    s.image = "drv:1".into();
    if let Some(ip) = robot_ip {
        s.env.insert("ROBOT_IP".into(), ip.into());
    }
    s
}

/// Another twin's running driver, with its env.
fn other(name: &str, twin: &str, env: &[&str]) -> Details {
    Details {
        name: name.into(),
        labels: BTreeMap::from([(super::super::spec::LABEL_TWIN.to_string(), twin.to_string())]),
        env: env.iter().map(|e| e.to_string()).collect(),
        ..Details::example("running", true)
    }
}

#[test]
fn prepare_writes_the_twin_file_after_asking_the_image_and_the_engine() {
    let d = tempfile::tempdir().unwrap();
    let engine = Arc::new(FakeEngine::default());
    let h = hooks(engine.clone(), d.path());
    let payload = json!({"uuid": TWIN, "name": "arm"});
    h.prepare(
        &spec("cyberwave-driver-11111111", TWIN, Some("10.0.0.5")),
        &payload,
    )
    .unwrap();
    assert_eq!(engine.calls(), ["image_config drv:1", "running"]);
    let file = crate::twins::file::path_for(d.path(), TWIN);
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
    assert_eq!(written["name"], "arm");
    // No robot address, no conflict to look for: the engine's list is not asked.
    let engine = Arc::new(FakeEngine::default());
    let h = hooks(engine.clone(), d.path());
    h.prepare(&spec("cyberwave-driver-11111111", TWIN, None), &payload)
        .unwrap();
    assert_eq!(engine.calls(), ["image_config drv:1"]);
}

#[test]
fn a_robot_another_twin_drives_is_refused_and_released_when_that_driver_is_gone() {
    let d = tempfile::tempdir().unwrap();
    let engine = Arc::new(FakeEngine::default());
    // The address comes from the image's own env, not the profile's.
    engine.image_configs.lock().unwrap().insert(
        "drv:1".into(),
        ImageConfig {
            env: vec!["ROBOT_IP=10.0.0.5".into()],
            ..Default::default()
        },
    );
    engine.others.lock().unwrap().extend([
        other(
            "cyberwave-driver-22222222",
            "22222222-twin",
            &["ROBOT_IP=10.0.0.5"],
        ),
        other("unrelated", "", &["ROBOT_IP=10.0.0.9"]),
    ]);
    let h = hooks(engine.clone(), d.path());
    let s = spec("cyberwave-driver-11111111", TWIN, None);
    let refused = h.prepare(&s, &json!({"uuid": TWIN})).unwrap_err();
    assert_eq!(refused.phase, "driver_conflict");
    assert!(
        refused.message.contains("cyberwave-driver-22222222")
            && refused.message.contains("10.0.0.5"),
        "{}",
        refused.message
    );
    assert!(!crate::twins::file::path_for(d.path(), TWIN).exists());
    // The other driver went away: the claim was released, the launch goes ahead.
    engine.others.lock().unwrap().clear();
    h.prepare(&s, &json!({"uuid": TWIN})).unwrap();
}

#[test]
fn an_engine_that_cannot_list_refuses_a_launch_with_a_robot_address() {
    let d = tempfile::tempdir().unwrap();
    let engine = Arc::new(FakeEngine::default());
    engine.fail("running", "Cannot connect to the Docker daemon");
    let h = hooks(engine.clone(), d.path());
    let s = spec("cyberwave-driver-11111111", TWIN, Some("10.0.0.5"));
    let refused = h.prepare(&s, &json!({"uuid": TWIN})).unwrap_err();
    assert_eq!(refused.phase, "docker_error");
    assert!(
        refused.message.contains("Cannot connect"),
        "{}",
        refused.message
    );
    // Two launches of one robot in the same pass: the second is refused by the claim.
    engine.failures.lock().unwrap().clear();
    let first = spec("cyberwave-driver-11111111", TWIN, Some("10.0.0.7"));
    let second = spec(
        "cyberwave-driver-33333333",
        "33333333-twin",
        Some("10.0.0.7"),
    );
    h.prepare(&first, &json!({"uuid": TWIN})).unwrap();
    let refused = h
        .prepare(&second, &json!({"uuid": "33333333-twin"}))
        .unwrap_err();
    assert_eq!(refused.phase, "driver_conflict");
    assert!(refused.message.contains(TWIN), "{}", refused.message);
}
