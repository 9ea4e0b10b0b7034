//! Driver graph details of the reference (§5.3, §5.7) on the real engine: a service's
//! `host_env_file` reaches the container under the edge's own variables, a missing one refuses
//! the launch, one that leaves the config dir is refused in the plan, and a second twin for the
//! same robot (`ROBOT_IP`) is not started while the first runs.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::daemon::{Daemon, EdgeDir};
use crate::support::docker::{self as dk, Cleanup, IMAGE};
use crate::support::*;

const SEC: Duration = Duration::from_secs(1);

fn service_twin(backend: &FakeBackend, uuid: &str, name: &str, service: Value) -> Value {
    let asset = format!("a55e7{}", &uuid[5..]);
    backend.add_asset(
        json!({"uuid": asset, "metadata": {"drivers": {"default": {"services": [service]}}}}),
    );
    json!({"uuid": uuid, "name": name, "asset_uuid": asset, "environment_uuid": ENV_UUID,
           "metadata": {"edge_fingerprint": FINGERPRINT}})
}

#[test]
fn host_env_files_and_the_robot_conflict_guard() {
    if !dk::available() {
        return;
    }
    dk::ensure_image();
    let first = dk::twin_uuid("graph_robot_first");
    let second = dk::twin_uuid("graph_robot_second");
    let missing = dk::twin_uuid("graph_env_missing");
    let escape = dk::twin_uuid("graph_env_escape");
    let name = |t: &str| format!("cyberwave-driver-{}-arm", &t[..8]);
    let _c = Cleanup(vec![
        name(&first),
        name(&second),
        name(&missing),
        name(&escape),
    ]);
    for t in [&first, &second, &missing, &escape] {
        dk::rm(&name(t));
    }
    let arm = |extra: Value| {
        let mut s = json!({"name": "arm", "image": IMAGE, "privileged": false,
                           "env": {"ROBOT_IP": "10.9.9.9", "DRIVER_MODE": "run"}});
        for (k, v) in extra.as_object().unwrap() {
            s[k] = v.clone();
        }
        s
    };
    let backend = FakeBackend::start(TOKEN);
    let twins = vec![
        service_twin(
            &backend,
            &first,
            "first arm",
            arm(json!({"host_env_file": "robots/arm.env"})),
        ),
        service_twin(
            &backend,
            &missing,
            "missing env",
            arm(json!({"host_env_file": "nope.env", "env": {"DRIVER_MODE": "run"}})),
        ),
        service_twin(
            &backend,
            &escape,
            "escaping env",
            arm(json!({"host_env_file": "../../etc/shadow"})),
        ),
    ];
    backend.add_environment(ENV_UUID, twins);
    let broker = broker_for_token();
    let dir = EdgeDir::standard(&backend.url(), broker.port);
    std::fs::create_dir_all(dir.file("robots")).unwrap();
    std::fs::write(
        dir.file("robots/arm.env"),
        "ROBOT_MODEL=so101\nCYBERWAVE_TWIN_UUID=spoofed\n",
    )
    .unwrap();
    let mut d = Daemon::start(&dir);
    let running =
        |n: &str| dk::inspect(n).is_some_and(|i| i.pointer("/State/Running") == Some(&json!(true)));
    assert!(
        wait_until(60 * SEC, || running(&name(&first))),
        "{}",
        d.log()
    );
    let env = dk::env_of(&name(&first));
    assert!(env.contains(&"ROBOT_MODEL=so101".to_string()), "{env:?}");
    assert!(
        env.contains(&format!("CYBERWAVE_TWIN_UUID={first}")),
        "the edge's variables win over the file: {env:?}"
    );
    let failure = |t: &str| -> Option<Value> {
        backend
            .alerts_of_type("driver_start_failure")
            .into_iter()
            .find(|a| a["twin_uuid"] == json!(t))
    };
    assert!(
        wait_until(30 * SEC, || failure(&missing).is_some()),
        "{}",
        d.log()
    );
    let a = failure(&missing).unwrap();
    assert_eq!(a["name"], json!("Driver failed to start"));
    assert_eq!(a["metadata"]["phase"], json!("host_env_file_missing"));
    assert!(dk::inspect(&name(&missing)).is_none());
    assert!(
        wait_until(30 * SEC, || failure(&escape).is_some()),
        "{}",
        d.log()
    );
    assert_eq!(
        failure(&escape).unwrap()["name"],
        json!("Unusable declared topology")
    );
    assert!(dk::inspect(&name(&escape)).is_none());

    // A second twin for the same robot: refused while the first one runs.
    backend.add_twin(
        ENV_UUID,
        service_twin(&backend, &second, "second arm", arm(json!({}))),
    );
    d.signal(libc::SIGHUP);
    assert!(
        wait_until(60 * SEC, || failure(&second).is_some()),
        "{}",
        d.log()
    );
    let a = failure(&second).unwrap();
    assert_eq!(a["name"], json!("Driver failed to start"));
    assert_eq!(a["metadata"]["phase"], json!("driver_conflict"));
    assert!(
        a["metadata"]["technical_detail"]
            .as_str()
            .is_some_and(|t| t.contains("ROBOT_IP=10.9.9.9")),
        "{a}"
    );
    assert!(!running(&name(&second)));
    assert!(running(&name(&first)));
    d.terminate();
}

/// A service asking for a Jetson power mode (`CYBERWAVE_JETSON_NVP_MODEL` in its `env`) gets
/// `nvpmodel -m <id>` once, before its container starts, after the id was checked against the
/// host's nvpmodel configuration (a fake `nvpmodel` on PATH and a fake configuration here).
#[test]
fn a_service_power_mode_is_validated_and_applied_once() {
    let Some((_twin, name, backend, _c)) = crate::support::drivers::setup_profile(
        "jetson_power",
        Some("arm"),
        json!({"default": {"services": [{"name": "arm", "image": IMAGE, "privileged": false,
            "env": {"DRIVER_MODE": "run", "CYBERWAVE_JETSON_NVP_MODEL": "02"}}]}}),
    ) else {
        return;
    };
    let broker = broker_for_token();
    let mut dir = EdgeDir::standard(&backend.url(), broker.port);
    let bin = dir.tmp.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let calls = dir.tmp.path().join("nvpmodel-calls");
    let fake = bin.join("nvpmodel");
    std::fs::write(
        &fake,
        format!(
            "#!/bin/sh\necho \"$@\" >> {}\necho 'NVPM: mode set'\n",
            calls.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let conf = dir.tmp.path().join("nvpmodel.conf");
    std::fs::write(
        &conf,
        "< PARAM TYPE=FILE NAME=CPU_ONLINE >\n<POWER_MODEL ID=0 NAME=MAXN>\n<POWER_MODEL ID=2 NAME=30W>\n",
    )
    .unwrap();
    dir.set_env(
        "PATH",
        &format!(
            "{}:{}",
            bin.display(),
            std::env::var("PATH").unwrap_or_default()
        ),
    );
    dir.set_env("CYBERWAVE_NVPMODEL_CONF", conf.to_str().unwrap());
    dir.set_env("CYBERWAVE_DRIVER_REMOVED_REVIVAL_SECONDS", "1");
    let d = Daemon::start(&dir);
    assert!(
        wait_until(60 * SEC, || dk::inspect(&name)
            .is_some_and(|i| i["State"]["Status"] == json!("running"))),
        "{}",
        d.log()
    );
    assert_eq!(
        std::fs::read_to_string(&calls).unwrap_or_default(),
        "-m 2\n"
    );
    assert!(
        d.log().contains("Applied Jetson nvpmodel id 2"),
        "{}",
        d.log()
    );
    // A relaunch of the driver (removed under us, recreated after 1 s here) does not run it
    // again: the mode is in force. (Removed once the daemon has it as running.)
    let (_, s) = dir.wait_status(30 * SEC, |_, s| {
        crate::support::drivers::driver_state(s, &name).as_deref() == Some("running")
    });
    assert_eq!(
        crate::support::drivers::driver_state(&s, &name).as_deref(),
        Some("running")
    );
    let first = dk::inspect(&name).unwrap()["Id"].clone();
    dk::rm(&name);
    assert!(
        wait_until(60 * SEC, || dk::inspect(&name).is_some_and(|i| i["Id"]
            != first
            && i["State"]["Status"] == json!("running"))),
        "{}",
        d.log()
    );
    assert_eq!(
        std::fs::read_to_string(&calls).unwrap_or_default(),
        "-m 2\n"
    );
}
