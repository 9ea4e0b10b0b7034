//! The config dir's files as the user sees them (reference §4.3): owner and reach.

use std::time::Duration;

use crate::support::daemon::{Daemon, EdgeDir};
use crate::support::*;

const SEC: Duration = Duration::from_secs(1);

/// Run as root for a sudo user (reference §4.3): what an earlier root run left and everything
/// the daemon creates in the config dir belongs to `SUDO_UID`/`SUDO_GID`, so the user's own
/// `cyberwave` CLI can still write there.
#[test]
fn files_created_for_a_sudo_user_are_theirs() {
    use std::os::unix::fs::MetadataExt;
    if unsafe { libc::geteuid() } != 0 {
        return;
    }
    let backend = backend_with_twins();
    let broker = broker_for_token();
    let mut dir = EdgeDir::standard(&backend.url(), broker.port);
    dir.set_env("SUDO_UID", "4242");
    dir.set_env("SUDO_GID", "4243");
    dir.write_raw("left-by-root.json", "{}");
    let mut d = Daemon::start(&dir);
    d.wait_ready(&dir);
    assert!(
        wait_until(10 * SEC, || dir.file("edge.json").exists()),
        "{}",
        d.log()
    );
    std::thread::sleep(SEC);
    let mut wrong = Vec::new();
    for e in std::fs::read_dir(&dir.path).unwrap().flatten() {
        let m = std::fs::symlink_metadata(e.path()).unwrap();
        if (m.uid(), m.gid()) != (4242, 4243) {
            wrong.push(format!(
                "{} {}:{}",
                e.file_name().to_string_lossy(),
                m.uid(),
                m.gid()
            ));
        }
    }
    assert!(wrong.is_empty(), "not the sudo user's: {wrong:?}");
    d.terminate();
}
