//! Twin files in sync with the backend (issue 11): the real daemon against the fake backend,
//! a twin file edited as a driver would, and the backend edited as the web UI would.

use std::os::unix::fs::MetadataExt;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::*;

const SEC: Duration = Duration::from_secs(1);

fn read(dir: &EdgeDir, twin: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir.file(&format!("{twin}.json"))).unwrap())
        .unwrap()
}

/// Edits the file in place, as a driver does (same inode).
fn edit(dir: &EdgeDir, twin: &str, f: impl FnOnce(&mut Value)) {
    let mut v = read(dir, twin);
    f(&mut v);
    std::fs::write(
        dir.file(&format!("{twin}.json")),
        serde_json::to_string_pretty(&v).unwrap(),
    )
    .unwrap();
}

fn puts(b: &FakeBackend, twin: &str) -> Vec<Value> {
    b.requests_to("PUT", &format!("/api/v1/twins/{twin}"))
        .into_iter()
        .map(|r| r.body)
        .collect()
}

#[test]
fn edits_reach_the_backend_once_backend_edits_reach_the_file_and_conflicts_are_kept() {
    let backend = backend_with_twins();
    let broker = broker_for_token();
    let dir = EdgeDir::standard(&backend.url(), broker.port);
    // The file of a linked twin, as a launch leaves it.
    backend.edit_twin(TWIN_B, |t| t["metadata"]["camera"] = json!({"fps": 15}));
    let mut file = backend.twin(TWIN_B).unwrap();
    file["asset"] = json!({"uuid": "a"});
    dir.write_raw(&format!("{TWIN_B}.json"), &file.to_string());
    let mut d = Daemon::start(&dir);
    d.wait_ready(&dir);
    assert!(
        wait_until(10 * SEC, || dir.status().1["twin_sync"][TWIN_B]["version"]
            == json!(1)),
        "{}",
        d.log()
    );
    assert!(
        puts(&backend, TWIN_B).is_empty(),
        "first sight is a base, not an edit"
    );

    // A driver's edit reaches the backend once, within about a second.
    edit(&dir, TWIN_B, |v| v["metadata"]["camera"]["fps"] = json!(30));
    let t = Instant::now();
    assert!(
        wait_until(10 * SEC, || !puts(&backend, TWIN_B).is_empty()),
        "{}",
        d.log()
    );
    let took = t.elapsed();
    eprintln!("twin file edit -> PUT seen by the backend: {took:?}");
    assert!(took < 3 * SEC, "push took {took:?}");
    std::thread::sleep(2 * SEC);
    let sent = puts(&backend, TWIN_B);
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0]["metadata"]["camera"], json!({"fps": 30}));
    assert!(sent[0].get("asset").is_none() && sent[0].get("uuid").is_none());

    // A backend change reaches the file, in place, within one tick.
    let inode = std::fs::metadata(dir.file(&format!("{TWIN_B}.json")))
        .unwrap()
        .ino();
    backend.edit_twin(TWIN_B, |t| t["metadata"]["mode"] = json!("night"));
    assert!(
        wait_until(20 * SEC, || read(&dir, TWIN_B)["metadata"]["mode"]
            == json!("night")),
        "{}",
        d.log()
    );
    assert_eq!(
        std::fs::metadata(dir.file(&format!("{TWIN_B}.json")))
            .unwrap()
            .ino(),
        inode
    );
    std::thread::sleep(2 * SEC);
    assert_eq!(
        puts(&backend, TWIN_B).len(),
        1,
        "our own write is not pushed back"
    );

    // Offline: a local edit waits, survives kill -9, and arrives once when the backend returns.
    backend.set_offline(true);
    edit(&dir, TWIN_B, |v| v["metadata"]["exposure"] = json!(7));
    assert!(wait_until(10 * SEC, || dir.status().1["twin_sync"][TWIN_B]
        ["pending"]
        == json!(true)));
    d.signal(libc::SIGKILL);
    assert!(d.wait_exit(5 * SEC).is_some());
    // Meanwhile the same key is changed in the backend: it will win, the local value is kept.
    backend.edit_twin(TWIN_B, |t| t["metadata"]["camera"] = json!({"fps": 60}));
    edit(&dir, TWIN_B, |v| {
        v["metadata"]["camera"] = json!({"fps": 45})
    });
    let d = Daemon::start(&dir);
    backend.set_offline(false);
    assert!(
        wait_until(
            25 * SEC,
            || backend.twin(TWIN_B).unwrap()["metadata"]["exposure"] == json!(7)
        ),
        "{}",
        d.log()
    );
    assert!(wait_until(
        10 * SEC,
        || read(&dir, TWIN_B)["metadata"]["camera"] == json!({"fps": 60})
    ));
    let after = puts(&backend, TWIN_B);
    assert_eq!(after.len(), 2, "the offline edit arrives once: {after:?}");
    assert_eq!(after[1]["metadata"]["mode"], json!("night"));
    let s = dir.status().1;
    let conflicts = s["twin_sync"][TWIN_B]["conflicts"]
        .as_array()
        .unwrap()
        .clone();
    assert!(
        conflicts
            .iter()
            .any(|c| c["key"] == json!("camera") && c["local"] == json!({"fps": 45})),
        "{s}"
    );
}

#[test]
fn edge_json_is_rewritten_only_when_the_cameras_change() {
    let backend = backend_with_twins();
    let broker = broker_for_token();
    let mut dir = EdgeDir::standard(&backend.url(), broker.port);
    dir.set_env("CYBERWAVE_EDGE_JSON_SYNC_INTERVAL_LOOPS", "0.1");
    let mut d = Daemon::start(&dir);
    d.wait_ready(&dir);
    assert!(wait_until(10 * SEC, || dir.file("edge.json").exists()));
    backend.edit_edge(FINGERPRINT, |e| e["name"] = json!("renamed in the UI"));
    std::thread::sleep(4 * SEC);
    assert_ne!(
        dir.read_json("edge.json")["name"],
        json!("renamed in the UI")
    );
    backend.edit_edge(FINGERPRINT, |e| {
        e["metadata"]["cameras"] =
            json!({"selected_device": 1, "twin_to_device": {TWIN_B: "/dev/video2"}})
    });
    assert!(
        wait_until(
            10 * SEC,
            || dir.read_json("edge.json")["metadata"]["cameras"]["selected_device"] == json!(1)
        ),
        "{}",
        d.log()
    );
    assert_eq!(
        dir.read_json("edge.json")["name"],
        json!("renamed in the UI")
    );
}

/// The node state on `{prefix}edges/{edge_uuid}/status`, retained: ONLINE while all is well,
/// OFFLINE from our last will when the daemon dies without a word, OFFLINE `stopped` on SIGTERM.
#[test]
fn the_fleet_sees_online_and_offline_without_asking_the_backend() {
    let backend = backend_with_twins();
    let broker = broker_for_token();
    let mut dir = EdgeDir::standard(&backend.url(), broker.port);
    dir.set_env("CYBERWAVE_MQTT_KEEPALIVE_SECONDS", "5");
    let edge = FakeBackend::edge_uuid_for(FINGERPRINT);
    let topic = format!("devedges/{edge}/status");
    let mut d = Daemon::start(&dir);
    d.wait_ready(&dir);
    // TWIN_A has no drivers declared: it is a problem, not a container that is down.
    let sub = broker.subscribe(&topic);
    let (_, v) = sub
        .wait_for(15 * SEC, |_, v| v["state"] == json!("ONLINE"))
        .unwrap_or_else(|| panic!("no ONLINE\n{}", d.log()));
    assert_eq!(v["edge_uuid"], json!(edge));
    assert_eq!(v["fingerprint"], json!(FINGERPRINT));
    assert_eq!(dir.status().1["node"]["state"], json!("ONLINE"));
    // A late subscriber gets it too (retained).
    let late = broker.subscribe(&topic);
    assert!(
        late.wait_for(5 * SEC, |_, v| v["state"] == json!("ONLINE"))
            .is_some()
    );
    // Killed without a word: the broker publishes our last will within the keepalive window.
    d.signal(libc::SIGKILL);
    assert!(d.wait_exit(5 * SEC).is_some());
    let t = Instant::now();
    let (_, v) = sub
        .wait_for(20 * SEC, |_, v| v["state"] == json!("OFFLINE"))
        .expect("no OFFLINE after SIGKILL");
    assert_eq!(v["reason"], json!("connection lost"));
    assert!(t.elapsed() < 12 * SEC, "{:?}", t.elapsed());
    // Back: ONLINE again (replacing the will); a clean stop says so.
    let d = Daemon::start(&dir);
    assert!(
        sub.wait_for(15 * SEC, |_, v| v["state"] == json!("ONLINE"))
            .is_some(),
        "{}",
        d.log()
    );
    d.signal(libc::SIGTERM);
    let (_, v) = sub
        .wait_for(10 * SEC, |_, v| v["state"] == json!("OFFLINE"))
        .expect("no OFFLINE on SIGTERM");
    assert_eq!(v["reason"], json!("stopped"));
}

/// A real driver container edits its twin file (bind-mounted): the edit reaches the backend
/// once, within about a second.
#[test]
fn a_driver_editing_its_twin_file_reaches_the_backend_once() {
    use crate::support::docker as dk;
    use crate::support::drivers::{container, setup};
    let Some((twin, backend, _broker, dir, _c)) = setup("driver_edits_twin_file", "edit") else {
        return;
    };
    let d = Daemon::start(&dir);
    assert!(
        wait_until(60 * SEC, || !puts(&backend, &twin).is_empty()),
        "no PUT\n{}\n{}",
        d.log(),
        dk::logs(&container(&twin))
    );
    std::thread::sleep(3 * SEC);
    let sent = puts(&backend, &twin);
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(
        sent[0]["metadata"]["edge_configs"]["camera_config"]["fps"],
        json!(31)
    );
    assert_eq!(
        backend.twin(&twin).unwrap()["metadata"]["edge_configs"]["camera_config"]["fps"],
        json!(31)
    );
}
