//! Driver updates against a real registry (Debian's `docker-registry` on a loopback port):
//! a new release is switched to with one stop and one start of the robot's container; a
//! release that crashes within its probation is rolled back to the last good one by image id,
//! alerted in our words, and not tried again — also not after the daemon is killed with -9 in
//! the middle of it.

use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::docker::{self as dk, Events, IMAGE};
use crate::support::drivers::setup_profile;
use crate::support::registry::Registry;
use crate::support::*;

const SEC: Duration = Duration::from_secs(1);

/// Builds a release of the example driver (its own image id: a label says which), with an
/// image-level `DRIVER_MODE` when given, and pushes it to the registry as `cw/upd:<tag>`.
/// Returns the reference a twin's profile names.
fn release(registry: &Registry, tag: &str, mode: Option<&str>) -> String {
    let local = format!("cyberwave-upd-release:{tag}-local");
    let mut dockerfile = format!("FROM {IMAGE}\nLABEL io.cyberwave.test.release={tag}\n");
    if let Some(m) = mode {
        dockerfile.push_str(&format!("ENV DRIVER_MODE={m}\n"));
    }
    let mut child = Command::new("docker")
        .args(["build", "-q", "-t", &local, "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(dockerfile.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "docker build: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let repo = registry.push(&local, &format!("cw/upd:{tag}"));
    format!("127.0.0.1:{}/{repo}", registry.port)
}

fn image_id(reference: &str) -> String {
    let out = Command::new("docker")
        .args(["image", "inspect", "-f", "{{.Id}}", reference])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn profile(image: &str) -> Value {
    json!({"default": {"docker_image": image, "privileged": false}})
}

/// The asset of `twin` now names `image`; the daemon is told to look again (SIGHUP).
fn publish(backend: &FakeBackend, twin: &str, image: &str, d: &Daemon) {
    let asset = format!("a55e7{}", &twin[5..]);
    backend.add_asset(json!({"uuid": asset, "metadata": {"drivers": profile(image)}}));
    d.signal(libc::SIGHUP);
}

fn update_of(v: &Value, name: &str) -> Value {
    v.pointer("/drivers/containers")
        .and_then(Value::as_array)
        .and_then(|a| a.iter().find(|c| c["name"] == json!(name)))
        .map(|c| c["update"].clone())
        .unwrap_or(Value::Null)
}

fn running_image(name: &str) -> Option<String> {
    dk::inspect(name)
        .filter(|i| i["State"]["Status"] == json!("running"))
        .and_then(|i| i["Image"].as_str().map(str::to_string))
}

#[test]
fn an_update_switches_with_one_stop_and_start_and_a_crashing_one_is_rolled_back() {
    let Some(registry) = Registry::start() else {
        return;
    };
    let Some((twin, name, backend, _c)) = setup_profile("updates_rollback", None, json!({})) else {
        return;
    };
    let v1 = release(&registry, "1", None);
    let v2 = release(&registry, "2", None);
    let v3 = release(&registry, "3", Some("crash"));
    let asset = format!("a55e7{}", &twin[5..]);
    backend.add_asset(json!({"uuid": asset, "metadata": {"drivers": profile(&v1)}}));
    let broker = broker_for_token();
    let mut dir = EdgeDir::standard(&backend.url(), broker.port);
    dir.set_env("CYBERWAVE_UPDATE_PROBATION_SECONDS", "3");
    let events = Events::watch(&[&name]);
    let mut d = Daemon::start(&dir);

    // v1 runs its probation and becomes the last good spec.
    let (_, st) = dir.wait_status(60 * SEC, |_, v| {
        update_of(v, &name)["last_good"]["image"] == json!(v1)
    });
    assert_eq!(
        update_of(&st, &name)["last_good"]["image"],
        json!(v1),
        "{st}\n{}",
        d.log()
    );
    let id1 = dk::id_of(&name);

    // v2: pulled while v1 runs, then switched: v1 stops (SIGTERM) before v2 starts.
    publish(&backend, &twin, &v2, &d);
    let (_, st) = dir.wait_status(60 * SEC, |_, v| {
        update_of(v, &name)["last_good"]["image"] == json!(v2)
    });
    assert_eq!(
        update_of(&st, &name)["last_good"]["image"],
        json!(v2),
        "{st}\n{}",
        d.log()
    );
    let id2 = dk::id_of(&name);
    assert_ne!(id1, id2);
    events.assert_graceful(&id1, "switch to v2");
    let at = |id: &str, action: &str| {
        events
            .of(id)
            .iter()
            .find(|(a, _, _)| a == action)
            .map(|(_, _, t)| *t)
    };
    let (died, started) = (at(&id1, "die").unwrap(), at(&id2, "start").unwrap());
    assert!(started > died, "v2 started before v1 stopped");
    let created = at(&id2, "create").unwrap();
    assert!(created < died, "v2 was created only after v1 stopped");
    let downtime = Duration::from_nanos((started - died) as u64);
    eprintln!("switch downtime (v1 died → v2 started): {downtime:?}");
    assert!(downtime < 5 * SEC, "{downtime:?}");

    // v3 crashes: back on v2, by image id, alerted, not tried again.
    let v2_id = image_id(&v2);
    publish(&backend, &twin, &v3, &d);
    assert!(
        wait_until(60 * SEC, || d.log().contains("rolling back to")),
        "{}",
        d.log()
    );
    // Killed in the middle of it; the next daemon finishes the rollback from its book.
    d.signal(libc::SIGKILL);
    let _ = d.wait_exit(5 * SEC);
    let first_log = d.log();
    let d = Daemon::start(&dir);
    let (_, st) = dir.wait_status(60 * SEC, |_, v| {
        update_of(v, &name)["rolled_back"]["image"] == json!(v3)
            && running_image(&name).as_deref() == Some(v2_id.as_str())
    });
    assert_eq!(
        running_image(&name),
        Some(v2_id.clone()),
        "{st}\nkilled daemon:\n{first_log}\nnext daemon:\n{}",
        d.log()
    );
    let u = update_of(&st, &name);
    assert_eq!(u["last_good"]["image"], json!(v2), "{u}");
    let back = dk::id_of(&name);
    let alerts = backend.alerts_of_type("driver_update_rolled_back");
    let want = format!(
        "The driver update of twin 'updates_rollback' to {v3} failed within its probation ({reason}). The edge switched back to the last good driver, {v2} (image {id12}), and will not try {v3} again until the driver's configuration changes or a remote restart asks for it.",
        reason = u["rolled_back"]["reason"].as_str().unwrap_or(""),
        id12 = &v2_id["sha256:".len().."sha256:".len() + 12],
    );
    assert!(
        alerts.iter().any(|a| a["description"] == json!(want)
            && a["name"] == json!("Driver update rolled back")
            && a["severity"] == json!("error")),
        "{want}\n{alerts:?}"
    );
    // Not tried again: the same container keeps running on v2.
    std::thread::sleep(6 * SEC);
    assert_eq!(dk::id_of(&name), back, "{}", d.log());
    assert_eq!(running_image(&name), Some(v2_id));
}
