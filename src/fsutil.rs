//! Durable file writes: temp file in the same directory, fsync, chmod, rename, fsync dir.
//! A power cut on an SD card leaves either the old file or the new one, never half of each.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Writes `data` to `path` atomically with the given mode.
/// Files created under this root get this owner (set when the daemon runs as root for a user,
/// reference §4.3); elsewhere, and when unset, files keep the creating process's owner.
static OWNER: std::sync::Mutex<Option<(std::path::PathBuf, u32, u32)>> =
    std::sync::Mutex::new(None);

/// Hands files created under `root` to `owner` from now on (`None`: stop).
pub fn set_owner(root: &Path, owner: Option<(u32, u32)>) {
    if let Ok(mut o) = OWNER.lock() {
        *o = owner.map(|(u, g)| (root.to_path_buf(), u, g));
    }
}

/// Gives `path` to the configured owner when it lies under the configured root (best effort).
fn adopt(path: &Path, under: &Path) {
    let owner = OWNER.lock().ok().and_then(|o| o.clone());
    if let Some((root, uid, gid)) = owner
        && under.starts_with(&root)
    {
        let _ = std::os::unix::fs::lchown(path, Some(uid), Some(gid));
    }
}

/// [`adopt`] for a file made some other way (a socket, a downloaded weight file).
pub fn give_to_owner(path: &Path) {
    adopt(path, path);
}

pub fn write_atomic(path: &Path, data: &[u8], mode: u32) -> io::Result<()> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "file".into());
    let mut rnd = [0u8; 6];
    crate::random_bytes(&mut rnd);
    let tmp = dir.join(format!(".{name}.{}.tmp", crate::hex(&rnd)));
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        // The umask may have narrowed the create mode; set it exactly.
        fs::set_permissions(&tmp, fs::Permissions::from_mode(mode))?;
        adopt(&tmp, path);
        fs::rename(&tmp, path)?;
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Pretty JSON (indent 2) plus a trailing newline, the layout the Python tools write.
pub fn write_json_atomic(path: &Path, value: &serde_json::Value, mode: u32) -> io::Result<()> {
    let mut text = serde_json::to_string_pretty(value).map_err(io::Error::other)?;
    text.push('\n');
    write_atomic(path, text.as_bytes(), mode)
}

/// Removes what a crash left of [`write_atomic`] in `dir`: our temp files (`.{name}.{12 hex}.tmp`)
/// older than `older_than` (younger ones may belong to a write in progress). Returns how many.
pub fn remove_stale_temps(dir: &Path, older_than: std::time::Duration) -> usize {
    let Ok(entries) = fs::read_dir(dir) else {
        return 0;
    };
    let ours = |name: &str| {
        name.strip_prefix('.')
            .and_then(|n| n.strip_suffix(".tmp"))
            .and_then(|n| n.rsplit_once('.'))
            .is_some_and(|(_, hex)| hex.len() == 12 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
    };
    let mut removed = 0;
    for e in entries.flatten() {
        let name = e.file_name();
        let old = e
            .metadata()
            .ok()
            .filter(|m| m.is_file())
            .and_then(|m| m.modified().ok())
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age >= older_than);
        if old && name.to_str().is_some_and(ours) && fs::remove_file(e.path()).is_ok() {
            removed += 1;
        }
    }
    removed
}

/// Reads a whole regular file of at most `max` bytes. A FIFO, device or directory is refused
/// without blocking (opened with `O_NONBLOCK`, checked with `fstat`), and a file over `max`
/// bytes is refused before it is read, so no config path can hang or flood the process.
pub fn read_regular(path: &Path, max: u64) -> io::Result<Vec<u8>> {
    read_regular_with(path, max, 0)
}

/// [`read_regular`] of a file that must not be a symlink (`O_NOFOLLOW`): files a container
/// would see through its own mounts (a link in `workers/` to a root-only file of the host
/// resolves elsewhere there), read by a daemon running as root.
pub fn read_regular_nofollow(path: &Path, max: u64) -> io::Result<Vec<u8>> {
    read_regular_with(path, max, libc::O_NOFOLLOW).map_err(|e| {
        if e.raw_os_error() == Some(libc::ELOOP) {
            io::Error::new(io::ErrorKind::InvalidInput, "a symlink (not followed)")
        } else {
            e
        }
    })
}

fn read_regular_with(path: &Path, max: u64, extra_flags: i32) -> io::Result<Vec<u8>> {
    use std::io::Read;
    let f = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY | extra_flags)
        .open(path)?;
    let meta = f.metadata()?;
    if !meta.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    if meta.len() > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} bytes, over the {max}-byte limit", meta.len()),
        ));
    }
    let mut data = Vec::with_capacity(meta.len() as usize);
    f.take(max + 1).read_to_end(&mut data)?;
    if data.len() as u64 > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("grew past the {max}-byte limit while being read"),
        ));
    }
    Ok(data)
}

/// [`read_regular`] as UTF-8 text.
pub fn read_regular_text(path: &Path, max: u64) -> io::Result<String> {
    String::from_utf8(read_regular(path, max)?)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("not UTF-8 text: {e}")))
}

/// Modification time in nanoseconds: what tells a changed file from an unchanged one.
pub fn mtime_ns(m: &std::fs::Metadata) -> i128 {
    use std::os::unix::fs::MetadataExt;
    m.mtime() as i128 * 1_000_000_000 + m.mtime_nsec() as i128
}

/// `(mtime ns, size)` of a file, if it exists: one file version, for caches of work done.
pub fn stamp(path: &Path) -> Option<(i128, u64)> {
    let m = std::fs::metadata(path).ok()?;
    Some((mtime_ns(&m), m.len()))
}

/// Creates a directory (and parents) with the given mode if it does not exist.
pub fn ensure_dir(path: &Path, mode: u32) -> io::Result<()> {
    if !path.is_dir() {
        fs::create_dir_all(path)?;
        fs::set_permissions(path, fs::Permissions::from_mode(mode))?;
        adopt(path, path);
    }
    Ok(())
}

/// Used % of the filesystem holding `path`, as the original (`shutil.disk_usage`: used / total),
/// two decimals.
pub fn disk_percent(path: &Path) -> Option<f64> {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).ok()?;
    // SAFETY: statvfs writes into the zeroed struct; c is a valid NUL-terminated path.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return None;
    }
    let frsize = st.f_frsize as f64;
    let total = st.f_blocks as f64 * frsize;
    let free = st.f_bfree as f64 * frsize;
    let used = total - free;
    if total <= 0.0 {
        return None;
    }
    Some((used / total * 10000.0).round() / 100.0)
}

/// Bytes an unprivileged writer can still put on the filesystem holding `path`.
pub fn available_bytes(path: &Path) -> Option<u64> {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).ok()?;
    // SAFETY: statvfs writes into the zeroed struct; c is a valid NUL-terminated path.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return None;
    }
    Some((st.f_bavail as u64).saturating_mul(st.f_frsize as u64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn atomic_write_sets_mode_and_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.json");
        write_atomic(&p, b"one", 0o600).unwrap();
        write_atomic(&p, b"two", 0o644).unwrap();
        assert_eq!(fs::read_to_string(&p).unwrap(), "two");
        assert_eq!(fs::metadata(&p).unwrap().mode() & 0o777, 0o644);
        // no temp files left behind
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn stale_temps_of_ours_are_removed_others_kept() {
        let dir = tempfile::tempdir().unwrap();
        for n in [
            ".credentials.json.0123456789ab.tmp",
            ".edge.json.abcdefabcdef.tmp",
            ".credentials.json.xyz.tmp",
            "keep.json",
        ] {
            fs::write(dir.path().join(n), "x").unwrap();
        }
        assert_eq!(
            remove_stale_temps(dir.path(), std::time::Duration::from_secs(60)),
            0
        );
        assert_eq!(remove_stale_temps(dir.path(), std::time::Duration::ZERO), 2);
        let left: Vec<String> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(left.len(), 2, "{left:?}");
    }

    #[test]
    fn read_regular_refuses_fifos_and_big_files_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let e = read_regular(&fifo, 1024).unwrap_err();
        assert!(e.to_string().contains("not a regular file"), "{e}");
        assert!(read_regular(dir.path(), 1024).is_err());
        let big = dir.path().join("big");
        fs::write(&big, vec![b'x'; 2048]).unwrap();
        assert!(
            read_regular(&big, 1024)
                .unwrap_err()
                .to_string()
                .contains("limit")
        );
        assert_eq!(read_regular(&big, 4096).unwrap().len(), 2048);
        assert_eq!(
            read_regular(&dir.path().join("none"), 1)
                .unwrap_err()
                .kind(),
            io::ErrorKind::NotFound
        );
    }
}
