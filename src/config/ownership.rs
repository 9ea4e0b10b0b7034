//! Who owns the config dir's files when the daemon runs as root for a user (reference §4.3):
//! `SUDO_UID`/`SUDO_GID`, else the owner of the config dir's parent when that is not root.
//! Files we create there get that owner, so the user's own `cyberwave` CLI can still write
//! them; a startup walk gives back whatever an earlier root run left.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// The target owner; `None` unless we run as root (euid 0) and someone else is the user.
/// `parent_owner` is the owner of the config dir's parent (e.g. `/home/pi`).
pub fn target(
    euid: u32,
    sudo_uid: Option<&str>,
    sudo_gid: Option<&str>,
    parent_owner: Option<(u32, u32)>,
) -> Option<(u32, u32)> {
    if euid != 0 {
        return None;
    }
    let id = |v: Option<&str>| v.and_then(|s| s.trim().parse::<u32>().ok());
    match id(sudo_uid) {
        Some(0) => None,
        Some(uid) => Some((uid, id(sudo_gid).unwrap_or(uid))),
        None => parent_owner.filter(|(uid, _)| *uid != 0),
    }
}

/// At start: works out the owner for `config_dir` (we run as root; `SUDO_UID`/`SUDO_GID`, else
/// the parent's owner), gives back what an earlier root run left, and has every file we create
/// there from now on made theirs. Returns the owner, if any.
pub fn take_over(
    config_dir: &Path,
    sudo_uid: Option<&str>,
    sudo_gid: Option<&str>,
) -> Option<(u32, u32)> {
    let parent_owner = config_dir
        .parent()
        .and_then(|p| std::fs::metadata(p).ok())
        .map(|m| (m.uid(), m.gid()));
    // SAFETY: geteuid has no preconditions.
    let owner = target(unsafe { libc::geteuid() }, sudo_uid, sudo_gid, parent_owner);
    if let Some(o) = owner {
        let n = fix_tree(config_dir, o);
        if n > 0 {
            log::info!(
                "{n} entries under {} given back to uid {} gid {}",
                config_dir.display(),
                o.0,
                o.1
            );
        }
    }
    crate::fsutil::set_owner(config_dir, owner);
    owner
}

/// Most entries the startup walk visits (a config dir holds tens; a model cache hundreds).
const MAX_ENTRIES: usize = 100_000;
const MAX_DEPTH: usize = 8;

/// Gives every entry under `dir` (and `dir`) whose owner differs to `owner`, never following
/// symlinks (`lchown`). Returns how many changed. Silent on errors, as the original.
pub fn fix_tree(dir: &Path, owner: (u32, u32)) -> usize {
    let mut changed = 0;
    let mut seen = 0;
    let mut stack = vec![(dir.to_path_buf(), 0usize)];
    while let Some((p, depth)) = stack.pop() {
        seen += 1;
        if seen > MAX_ENTRIES {
            break;
        }
        let Ok(m) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        if (m.uid(), m.gid()) != owner
            && std::os::unix::fs::lchown(&p, Some(owner.0), Some(owner.1)).is_ok()
        {
            changed += 1;
        }
        if m.is_dir()
            && depth < MAX_DEPTH
            && let Ok(entries) = std::fs::read_dir(&p)
        {
            stack.extend(entries.flatten().map(|e| (e.path(), depth + 1)));
        }
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;

    /// what, euid, SUDO_UID, SUDO_GID, parent's owner, expected owner.
    type Row<'a> = (
        &'a str,
        u32,
        Option<&'a str>,
        Option<&'a str>,
        Option<(u32, u32)>,
        Option<(u32, u32)>,
    );

    #[test]
    fn the_user_behind_sudo_or_the_home_owner() {
        let rows: [Row; 8] = [
            (
                "not root: nothing",
                1000,
                Some("1000"),
                None,
                Some((1000, 1000)),
                None,
            ),
            (
                "sudo user",
                0,
                Some("1000"),
                Some("1001"),
                None,
                Some((1000, 1001)),
            ),
            (
                "sudo without gid: gid = uid",
                0,
                Some("1000"),
                None,
                None,
                Some((1000, 1000)),
            ),
            (
                "sudo from root: nothing",
                0,
                Some("0"),
                Some("0"),
                Some((1000, 1000)),
                None,
            ),
            (
                "no sudo: the home's owner",
                0,
                None,
                None,
                Some((1000, 100)),
                Some((1000, 100)),
            ),
            (
                "no sudo, root's home: nothing",
                0,
                None,
                None,
                Some((0, 0)),
                None,
            ),
            (
                "garbage SUDO_UID: the home's owner",
                0,
                Some("x"),
                None,
                Some((7, 7)),
                Some((7, 7)),
            ),
            ("nothing known", 0, None, None, None, None),
        ];
        for (what, euid, uid, gid, parent, want) in rows {
            assert_eq!(target(euid, uid, gid, parent), want, "{what}");
        }
    }

    #[test]
    fn the_walk_changes_only_what_differs_and_never_follows_links() {
        if unsafe { libc::geteuid() } != 0 {
            return; // chown to another user needs root
        }
        let d = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("models")).unwrap();
        std::fs::write(d.path().join("models/w.pt"), b"x").unwrap();
        std::fs::write(d.path().join("edge.json"), b"{}").unwrap();
        std::os::unix::fs::symlink(outside.path(), d.path().join("link")).unwrap();
        let n = fix_tree(d.path(), (4321, 4321));
        assert_eq!(n, 5, "dir, models, w.pt, edge.json, the link itself");
        let owner = |p: &Path| {
            let m = std::fs::symlink_metadata(p).unwrap();
            (m.uid(), m.gid())
        };
        assert_eq!(owner(&d.path().join("models/w.pt")), (4321, 4321));
        assert_eq!(
            owner(outside.path()),
            (0, 0),
            "a link's target is not touched"
        );
        assert_eq!(fix_tree(d.path(), (4321, 4321)), 0);
    }
}
