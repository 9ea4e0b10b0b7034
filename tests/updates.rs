//! Driver updates against a real registry (Debian's `docker-registry` on a loopback port):
//! a new release is switched to with one stop and one start of the robot's container; a
//! release that crashes within its probation is rolled back to the last good one by image id,
//! alerted in our words, and not tried again — also not after the daemon is killed with -9 in
//! the middle of it.

use std::process::Command;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::docker::{self as dk, Events, IMAGE};
use crate::support::drivers::setup_profile;
use crate::support::registry::Registry;
use crate::support::throttle::Throttle;
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
    dk::build(&local, &dockerfile);
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

/// The twin's driver runs `image` under a daemon with these settings: (broker, config dir,
/// daemon). The daemon has started; its driver may not run yet.
fn edge_running(
    twin: &str,
    backend: &FakeBackend,
    image: &str,
    env: &[(&str, &str)],
) -> (Broker, EdgeDir, Daemon) {
    let asset = format!("a55e7{}", &twin[5..]);
    backend.add_asset(json!({"uuid": asset, "metadata": {"drivers": profile(image)}}));
    let broker = broker_for_token();
    let mut dir = EdgeDir::standard(&backend.url(), broker.port);
    for (k, v) in env {
        dir.set_env(k, v);
    }
    let d = Daemon::start(&dir);
    (broker, dir, d)
}

/// Waits until `name` runs, as another container than `than` (`""`: any), within `within`.
fn until_running_other_than(name: &str, than: &str, within: Duration, d: &Daemon) {
    assert!(
        wait_until(within, || dk::id_of(name) != than
            && running_image(name).is_some()),
        "{name} not running (other than {than:?})\n{}",
        d.log()
    );
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
    let events = Events::watch(&[&name]);
    let (_broker, dir, mut d) = edge_running(
        &twin,
        &backend,
        &v1,
        &[("CYBERWAVE_UPDATE_PROBATION_SECONDS", "3")],
    );

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
    let want = format!(
        "The driver update of twin 'updates_rollback' to {v3} failed within its probation ({reason}). The edge switched back to the last good driver, {v2} (image {id12}), and will not try {v3} again until the driver's configuration changes or a remote restart asks for it.",
        reason = u["rolled_back"]["reason"].as_str().unwrap_or(""),
        id12 = &v2_id["sha256:".len().."sha256:".len() + 12],
    );
    // Alerts go through the durable outbox, delivered on their own thread (by the next
    // daemon when the first was killed before it delivered).
    let alerted = || {
        backend
            .alerts_of_type("driver_update_rolled_back")
            .iter()
            .any(|a| {
                a["description"] == json!(want)
                    && a["name"] == json!("Driver update rolled back")
                    && a["severity"] == json!("error")
            })
    };
    assert!(
        wait_until(30 * SEC, alerted),
        "{want}\n{:?}\nkilled daemon:\n{first_log}\nnext daemon:\n{}",
        backend.alerts_of_type("driver_update_rolled_back"),
        d.log()
    );
    // Not tried again: the same container keeps running on v2.
    std::thread::sleep(6 * SEC);
    assert_eq!(dk::id_of(&name), back, "{}", d.log());
    assert_eq!(running_image(&name), Some(v2_id));
}

/// Builds a release carrying `mb` MB of random bytes (a layer nothing compresses) and pushes
/// it; the local copies go, so a pull has to fetch every byte of that layer.
fn big_release(registry: &Registry, tag: &str, mb: u64) -> String {
    let local = format!("cyberwave-upd-release:{tag}-local");
    let dockerfile = format!(
        "FROM {IMAGE}\nRUN head -c {} /dev/urandom > /payload\nLABEL io.cyberwave.test.release={tag}\n",
        mb * 1_000_000
    );
    dk::build(&local, &dockerfile);
    registry.push(&local, &format!("cw/upd:{tag}"));
    let _ = Command::new("docker").args(["rmi", &local]).output();
    format!("cw/upd:{tag}")
}

#[test]
fn a_slow_and_broken_pull_never_takes_the_running_driver_down() {
    let Some(registry) = Registry::start() else {
        return;
    };
    let Some((twin, name, backend, _c)) = setup_profile("updates_slow", None, json!({})) else {
        return;
    };
    release(&registry, "small", None);
    let big = big_release(&registry, "big", 100);
    // Everything the daemon pulls goes through a 5 MB/s link.
    let link = Throttle::start(registry.port, 5_000_000);
    let via = |repo: &str| format!("127.0.0.1:{}/{repo}", link.port);
    let (v1, v2) = (via("cw/upd:small"), via(&big));
    let _ = Command::new("docker").args(["rmi", &v2]).output();
    let (_broker, dir, d) = edge_running(
        &twin,
        &backend,
        &v1,
        &[
            ("CYBERWAVE_UPDATE_PROBATION_SECONDS", "2"),
            ("CYBERWAVE_DRIVER_RETRY_BASE_SECONDS", "2"),
        ],
    );
    until_running_other_than(&name, "", 60 * SEC, &d);
    let id1 = dk::id_of(&name);
    let idle_kib = rss_kib(d.pid() as u32);

    publish(&backend, &twin, &v2, &d);
    let sent = |n: u64| link.link.sent.load(Ordering::SeqCst) >= n;
    let base = link.link.sent.load(Ordering::SeqCst);
    assert!(
        wait_until(60 * SEC, || sent(base + 20_000_000)),
        "{}",
        d.log()
    );
    let mut peak_kib = rss_kib(d.pid() as u32);
    // The link breaks mid-pull: the pull fails, v1 runs on, `status` says what waits and why.
    link.link.break_now();
    let (_, st) = dir.wait_status(60 * SEC, |_, v| {
        update_of(v, &name)["pending"]["image"] == json!(v2)
    });
    let pending = &update_of(&st, &name)["pending"];
    assert_eq!(pending["image"], json!(v2), "{st}\n{}", d.log());
    assert!(
        pending["waiting"].as_str().unwrap_or("").contains("pull"),
        "{pending}"
    );
    assert_eq!(dk::id_of(&name), id1);
    assert!(running_image(&name).is_some(), "v1 must still run");
    link.link.mend();
    // Retried: the whole layer comes down at 5 MB/s while v1 runs; only then the switch.
    let mut sent_when_v1_stopped = 0;
    let switched = wait_until(120 * SEC, || {
        peak_kib = peak_kib.max(rss_kib(d.pid() as u32));
        let v1_runs = dk::inspect(&id1).is_some_and(|i| i["State"]["Running"] == json!(true));
        if !v1_runs && sent_when_v1_stopped == 0 {
            sent_when_v1_stopped = link.link.sent.load(Ordering::SeqCst) - base;
        }
        dk::id_of(&name) != id1 && running_image(&name).is_some()
    });
    assert!(switched, "{}", d.log());
    assert!(
        sent_when_v1_stopped >= 100_000_000,
        "v1 stopped after only {sent_when_v1_stopped} bytes of the new image\n{}",
        d.log()
    );
    eprintln!(
        "daemon RSS: idle {idle_kib} KiB, peak during the 100 MB pull {peak_kib} KiB (+{} KiB)",
        peak_kib.saturating_sub(idle_kib)
    );
}

#[test]
fn a_held_update_lock_defers_the_switch_and_the_maximum_deferral_overrides_it() {
    let Some(registry) = Registry::start() else {
        return;
    };
    let Some((twin, name, backend, _c)) = setup_profile("updates_lock", None, json!({})) else {
        return;
    };
    let (v1, v2, v3) = (
        release(&registry, "l1", None),
        release(&registry, "l2", None),
        release(&registry, "l3", None),
    );
    let (_broker, dir, d) = edge_running(
        &twin,
        &backend,
        &v1,
        &[
            ("CYBERWAVE_UPDATE_PROBATION_SECONDS", "2"),
            ("CYBERWAVE_UPDATE_LOCK_MAX_DEFER_SECONDS", "6"),
        ],
    );
    until_running_other_than(&name, "", 60 * SEC, &d);
    // The driver sees its lock file's path and its directory.
    let env = dk::env_of(&name);
    assert!(
        env.iter()
            .any(|e| e == "CYBERWAVE_UPDATE_LOCK_FILE=/run/cyberwave/lock/updates.lock"),
        "{env:?}"
    );
    let id1 = dk::id_of(&name);
    // The robot's task takes the lock from inside its container.
    let take = Command::new("docker")
        .args([
            "exec",
            &name,
            "sh",
            "-c",
            "echo task > \"$CYBERWAVE_UPDATE_LOCK_FILE\"",
        ])
        .output()
        .unwrap();
    assert!(
        take.status.success(),
        "{}",
        String::from_utf8_lossy(&take.stderr)
    );
    let lock = dir.file(&format!("locks/{name}/updates.lock"));
    assert!(lock.exists());
    publish(&backend, &twin, &v2, &d);
    // Fetched, not switched; `status` names the lock.
    let (_, st) = dir.wait_status(30 * SEC, |_, v| {
        v.pointer("/drivers/containers/0/update_lock/held_s")
            .is_some()
    });
    assert!(
        st.pointer("/drivers/containers/0/update_lock/held_s")
            .is_some(),
        "{st}"
    );
    assert!(
        wait_until(30 * SEC, || d
            .log()
            .contains("the update switches once its lock goes")),
        "{}",
        d.log()
    );
    std::thread::sleep(2 * SEC);
    assert_eq!(dk::id_of(&name), id1, "switched while the lock was held");
    // Released: switched within a few seconds, before the maximum deferral.
    std::fs::remove_file(&lock).unwrap();
    until_running_other_than(&name, &id1, 15 * SEC, &d);
    assert!(
        backend
            .alerts_of_type("driver_update_lock_overridden")
            .is_empty()
    );
    // Held again and never released: after 6 s ready to switch, it goes ahead, alerted.
    let id2 = dk::id_of(&name);
    std::fs::write(&lock, "task").unwrap();
    publish(&backend, &twin, &v3, &d);
    until_running_other_than(&name, &id2, 60 * SEC, &d);
    let alerts = backend.alerts_of_type("driver_update_lock_overridden");
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    let text = alerts[0]["description"].as_str().unwrap_or("");
    assert!(
        text.starts_with(&format!(
            "The driver update of twin 'updates_lock' to {v3} waited "
        )) && text.ends_with(&format!(
            "s for the update lock held by {name} and went ahead (CYBERWAVE_UPDATE_LOCK_MAX_DEFER_SECONDS)."
        )),
        "{text}"
    );
}

#[test]
fn a_mutable_tag_moved_to_a_crashing_image_is_rolled_back_to_the_image_that_ran() {
    let Some(registry) = Registry::start() else {
        return;
    };
    let Some((twin, name, backend, _c)) = setup_profile("updates_mutable", None, json!({})) else {
        return;
    };
    let _ = release(&registry, "good", None);
    let good_id = {
        let local = "cyberwave-upd-release:good-local";
        registry.push(local, "cw/mut:latest");
        image_id(local)
    };
    let latest = format!("127.0.0.1:{}/cw/mut:latest", registry.port);
    let (broker, dir, d) = edge_running(
        &twin,
        &backend,
        &latest,
        &[("CYBERWAVE_UPDATE_PROBATION_SECONDS", "2")],
    );
    let (_, st) = dir.wait_status(60 * SEC, |_, v| {
        update_of(v, &name)["last_good"]["image_id"] == json!(good_id)
    });
    assert_eq!(
        update_of(&st, &name)["last_good"]["image_id"],
        json!(good_id),
        "{st}\n{}",
        d.log()
    );
    // The tag moves to a crashing image; it is pulled when the driver is recreated (a
    // remote restart), not polled.
    let _ = release(&registry, "bad", Some("crash"));
    registry.push("cyberwave-upd-release:bad-local", "cw/mut:latest");
    crate::support::drivers::request_restart(&backend, &broker, "mutable-r1");
    assert!(
        wait_until(90 * SEC, || !backend
            .alerts_of_type("driver_update_rolled_back")
            .is_empty()
            && running_image(&name).as_deref() == Some(good_id.as_str())),
        "{}",
        d.log()
    );
    let inspect = dk::inspect(&name).unwrap();
    assert_eq!(
        inspect["Config"]["Image"],
        json!(good_id),
        "started by image id"
    );
}

/// A small tmpfs, unmounted when dropped.
struct Tmpfs(std::path::PathBuf);

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn an_update_that_would_eat_the_disk_reserve_is_refused_until_space_returns() {
    let Some(registry) = Registry::start() else {
        return;
    };
    let Some((twin, name, backend, _c)) = setup_profile("updates_reserve", None, json!({})) else {
        return;
    };
    let v2 = release(&registry, "r2", None);
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("docker-root");
    std::fs::create_dir_all(&root).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=64m", "tmpfs"])
        .arg(&root)
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!("cannot mount a tmpfs here: skipped");
        return;
    }
    let fs = Tmpfs(root.clone());
    // Docker as usual, except that it says it keeps its data on the small tmpfs.
    let wrapper = work.path().join("docker");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nif [ \"$*\" = 'info --format {{{{.DockerRootDir}}}}' ]; then echo {}; exit 0; fi\nexec docker \"$@\"\n",
            root.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let filler = root.join("fill");
    let _ = std::fs::write(&filler, vec![7u8; 60 << 20]);
    let (_broker, _dir, d) = edge_running(
        &twin,
        &backend,
        IMAGE,
        &[
            ("CYBERWAVE_DOCKER_BIN", wrapper.to_str().unwrap()),
            ("CYBERWAVE_DISK_RESERVE_MB", "16"),
            ("CYBERWAVE_DRIVER_RETRY_BASE_SECONDS", "2"),
        ],
    );
    until_running_other_than(&name, "", 60 * SEC, &d);
    let id1 = dk::id_of(&name);
    publish(&backend, &twin, &v2, &d);
    let alerts = || backend.alerts_of_type("edge_disk_reserve");
    assert!(wait_until(60 * SEC, || !alerts().is_empty()), "{}", d.log());
    let a = &alerts()[0];
    assert_eq!(a["twin_uuid"], json!(twin));
    assert_eq!(a["name"], json!("Edge disk reserve reached"));
    let text = a["description"].as_str().unwrap_or("");
    assert!(
        text.starts_with(&format!(
            "An update of the driver of twin 'updates_reserve' was not downloaded: {v2} is not pulled: {} has "
        , root.display())) && text.ends_with("The running driver is kept; the update is tried again once space is freed."),
        "{text}"
    );
    assert_eq!(dk::id_of(&name), id1, "the old driver is untouched");
    assert!(running_image(&name).is_some());
    // Room again: the retry pulls and switches, and the alert is resolved.
    std::fs::remove_file(&filler).unwrap();
    until_running_other_than(&name, &id1, 60 * SEC, &d);
    assert!(
        wait_until(20 * SEC, || alerts()[0]["status"] == json!("resolved")),
        "{:?}",
        alerts()
    );
    drop(fs);
}

#[test]
fn a_remote_restart_waits_for_a_held_lock_and_its_card_names_the_holder() {
    let Some((twin, name, backend, _c)) = setup_profile("updates_restart_lock", None, json!({}))
    else {
        return;
    };
    let (broker, dir, d) = edge_running(&twin, &backend, IMAGE, &[]);
    until_running_other_than(&name, "", 60 * SEC, &d);
    let id1 = dk::id_of(&name);
    let lock = dir.file(&format!("locks/{name}/updates.lock"));
    std::fs::write(&lock, "mapping run").unwrap();
    let card = crate::support::drivers::request_restart(&backend, &broker, "restart-lock-r1");
    assert!(
        wait_until(30 * SEC, || backend.alert(&card).is_some_and(
            |a| a["metadata"]["waiting_for_update_lock"] == json!([name])
        )),
        "{:?}\n{}",
        backend.alert(&card),
        d.log()
    );
    std::thread::sleep(2 * SEC);
    assert_eq!(dk::id_of(&name), id1, "recreated while the lock was held");
    std::fs::remove_file(&lock).unwrap();
    assert!(
        wait_until(30 * SEC, || dk::id_of(&name) != id1
            && running_image(&name).is_some()
            && backend
                .alert(&card)
                .is_some_and(|a| a["metadata"]["phase"] == json!("completed"))),
        "{:?}\n{}",
        backend.alert(&card),
        d.log()
    );
}
