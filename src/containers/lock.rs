//! The update lock: a robot's task that must not be interrupted (an arm mid-trajectory, a
//! mapping run) holds off every update of its container by creating one file. Each driver and
//! worker container gets a directory of its own mounted at [`LOCK_MOUNT`] and the file's path
//! in [`LOCK_ENV`]; the config-dir side is `locks/<container name>/`. While the file exists
//! an update (spec change, metadata restart, rollback, remote restart) waits — its images are
//! fetched meanwhile — for at most the role's maximum deferral counted from the moment it is
//! ready to switch; then it proceeds and the role raises `…_update_lock_overridden`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use super::spec::{ContainerSpec, Role};

/// Where the lock directory appears inside the container.
pub const LOCK_MOUNT: &str = "/run/cyberwave/lock";
/// The variable naming the lock file inside the container.
pub const LOCK_ENV: &str = "CYBERWAVE_UPDATE_LOCK_FILE";
/// The lock file's name in its directory.
pub const LOCK_FILE: &str = "updates.lock";

/// The config-dir side of a container's lock directory.
pub fn lock_dir(config_dir: &Path, name: &str) -> PathBuf {
    config_dir.join("locks").join(name)
}

/// Roles whose containers get a lock: those running a robot's or a model's work.
pub fn has_lock(role: Role) -> bool {
    matches!(role, Role::Driver | Role::Worker)
}

/// Gives `spec` its lock directory and variable (at launch: not part of its spec hash, so a
/// container created before locks existed is not replaced for it).
pub fn add_to(spec: &mut ContainerSpec, config_dir: &Path) {
    if !has_lock(spec.role) {
        return;
    }
    let dir = lock_dir(config_dir, &spec.name);
    spec.options
        .extend(["-v".into(), format!("{}:{LOCK_MOUNT}", dir.display())]);
    spec.env
        .insert(LOCK_ENV.into(), format!("{LOCK_MOUNT}/{LOCK_FILE}"));
}

/// Since when `name`'s lock is held (the file's modification time), if it is. Anything at
/// the path counts (a directory, a FIFO): only its presence is looked at, never its content.
pub fn held_since(config_dir: &Path, name: &str) -> Option<SystemTime> {
    let m = std::fs::symlink_metadata(lock_dir(config_dir, name).join(LOCK_FILE)).ok()?;
    Some(m.modified().unwrap_or_else(|_| SystemTime::now()))
}

/// What an update of a container does about its lock now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// No lock held: switch.
    Go,
    /// Held: wait (fetching meanwhile).
    Wait,
    /// Held past the maximum deferral since the update was ready: switch anyway.
    Override { waited: Duration },
}

/// The gate for an update whose container's lock is `held`, ready to switch since `ready`
/// (`None`: still fetching), at most `max` deferred (`None`: no limit).
pub fn gate(held: bool, ready: Option<Instant>, now: Instant, max: Option<Duration>) -> Gate {
    if !held {
        return Gate::Go;
    }
    match (ready, max) {
        (Some(r), Some(max)) if now.duration_since(r) >= max => Gate::Override {
            waited: now.duration_since(r),
        },
        _ => Gate::Wait,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gate() {
        let t0 = Instant::now();
        let s = |n| t0 + Duration::from_secs(n);
        let hour = Some(Duration::from_secs(3600));
        let rows = [
            (false, None, s(0), hour, Gate::Go),
            (true, None, s(9000), hour, Gate::Wait), // still fetching: the clock has not started
            (true, Some(s(0)), s(3599), hour, Gate::Wait),
            (
                true,
                Some(s(0)),
                s(3600),
                hour,
                Gate::Override {
                    waited: Duration::from_secs(3600),
                },
            ),
            (true, Some(s(0)), s(99_999), None, Gate::Wait), // 0 = no limit
        ];
        for (held, ready, now, max, want) in rows {
            assert_eq!(
                gate(held, ready, now, max),
                want,
                "{held} {ready:?} {max:?}"
            );
        }
    }

    #[test]
    fn a_lock_is_a_file_of_any_kind_and_only_drivers_and_the_worker_get_one() {
        let d = tempfile::tempdir().unwrap();
        assert!(held_since(d.path(), "c").is_none());
        std::fs::create_dir_all(lock_dir(d.path(), "c")).unwrap();
        std::fs::write(lock_dir(d.path(), "c").join(LOCK_FILE), "").unwrap();
        assert!(held_since(d.path(), "c").is_some());
        let mut s = crate::containers::spec::example(Role::Driver);
        add_to(&mut s, d.path());
        assert_eq!(s.env[LOCK_ENV], "/run/cyberwave/lock/updates.lock");
        let mount = format!("{}:/run/cyberwave/lock", lock_dir(d.path(), "c").display());
        assert!(s.options.contains(&mount), "{:?}", s.options);
        let mut r = crate::containers::spec::example(Role::Router);
        add_to(&mut r, d.path());
        assert!(!r.env.contains_key(LOCK_ENV));
    }
}
