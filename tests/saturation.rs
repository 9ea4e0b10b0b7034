//! Host saturation (reference §11.2) on the real binary: Docker's data root on a full 1 MiB
//! tmpfs raises `edge_disk_saturation` on the driver's twin with the original's words; emptied,
//! two snapshots later it is resolved.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::Duration;

use serde_json::json;

use crate::support::daemon::Daemon;
use crate::support::drivers::*;
use crate::support::*;

const SEC: Duration = Duration::from_secs(1);

/// A small tmpfs, unmounted when dropped.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(at: &std::path::Path) -> Option<Self> {
        std::fs::create_dir_all(at).ok()?;
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
            .arg(at)
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Tmpfs(at.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_docker_disk_raises_the_saturation_alert_and_clearing_it_resolves() {
    let Some((twin, backend, _broker, mut dir, _c)) = setup("saturation", "run") else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let Some(fs) = Tmpfs::mount(&work.path().join("docker-root")) else {
        eprintln!("cannot mount a tmpfs here: skipped");
        return;
    };
    // Docker as usual, except that it keeps its data on the small tmpfs.
    let wrapper = work.path().join("docker");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nif [ \"$*\" = 'info --format {{{{.DockerRootDir}}}}' ]; then echo {}; exit 0; fi\nexec docker \"$@\"\n",
            fs.0.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let filler = fs.0.join("fill");
    let _ = std::fs::write(&filler, vec![7u8; 1 << 20]); // ENOSPC at the end: full
    dir.set_env("CYBERWAVE_DOCKER_BIN", wrapper.to_str().unwrap());
    dir.set_env("CYBERWAVE_RESOURCE_SATURATION_PERCENT", "90");
    dir.set_env("CYBERWAVE_RESOURCE_MONITOR_INTERVAL_SECONDS", "1");
    let mut d = Daemon::start(&dir);
    let disk = || backend.alerts_of_type("edge_disk_saturation");
    assert!(wait_until(60 * SEC, || !disk().is_empty()), "{}", d.log());
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let a = &disk()[0];
    assert_eq!(a["twin_uuid"], json!(twin));
    assert_eq!(a["severity"], json!("warning"));
    assert_eq!(a["source_type"], json!("edge"));
    assert_eq!(a["name"], json!("Edge disk saturated"));
    assert_eq!(
        a["description"],
        json!(format!(
            "Disk usage on edge {} is 100% (threshold 90%).",
            host.trim()
        ))
    );
    assert_eq!(
        a["metadata"],
        json!({"resource": "disk", "percent": 100.0, "threshold": 90.0})
    );
    std::thread::sleep(2 * SEC);
    assert_eq!(disk().len(), 1, "raised once: {:?}", disk());
    // Room again: two clear snapshots later, resolved.
    std::fs::remove_file(&filler).unwrap();
    assert!(
        wait_until(20 * SEC, || disk()[0]["status"] == json!("resolved")),
        "{}",
        d.log()
    );
    d.terminate();
    drop(fs);
}
