use std::ffi::{CStr, CString};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Where the Python edge core kept its files before 0.1.x moved them to `~/.cyberwave`.
pub const LEGACY_CONFIG_DIR: &str = "/etc/cyberwave";

/// Resolves the config directory (reference §4.1): `CYBERWAVE_EDGE_CONFIG_DIR`, else the
/// `SUDO_USER`'s `~/.cyberwave`, else the current user's. Returns whether the override was used,
/// because legacy migration only runs without it.
pub fn resolve_config_dir(get: &dyn Fn(&str) -> Option<String>) -> (PathBuf, bool) {
    if let Some(dir) = get("CYBERWAVE_EDGE_CONFIG_DIR") {
        return (PathBuf::from(dir), true);
    }
    if let Some(user) = get("SUDO_USER")
        && let Some(home) = home_of_user(&user)
    {
        return (home.join(".cyberwave"), false);
    }
    let home = get("HOME")
        .map(PathBuf::from)
        .or_else(home_of_current_user)
        .unwrap_or_else(|| PathBuf::from("/root"));
    (home.join(".cyberwave"), false)
}

fn home_of_user(name: &str) -> Option<PathBuf> {
    let cname = CString::new(name).ok()?;
    passwd_home(|pwd, buf, len, result| unsafe {
        libc::getpwnam_r(cname.as_ptr(), pwd, buf, len, result)
    })
}

fn home_of_current_user() -> Option<PathBuf> {
    let uid = unsafe { libc::geteuid() };
    passwd_home(|pwd, buf, len, result| unsafe { libc::getpwuid_r(uid, pwd, buf, len, result) })
}

fn passwd_home(
    lookup: impl Fn(
        *mut libc::passwd,
        *mut libc::c_char,
        libc::size_t,
        *mut *mut libc::passwd,
    ) -> libc::c_int,
) -> Option<PathBuf> {
    let mut buf = vec![0 as libc::c_char; 4096];
    // SAFETY: passwd is a plain C struct; zeroed is a valid initial value for getpw*_r.
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    let rc = lookup(&mut pwd, buf.as_mut_ptr(), buf.len(), &mut result);
    if rc != 0 || result.is_null() || pwd.pw_dir.is_null() {
        return None;
    }
    // SAFETY: getpw*_r succeeded, so pw_dir points at a NUL-terminated string inside `buf`.
    let dir = unsafe { CStr::from_ptr(pwd.pw_dir) }
        .to_string_lossy()
        .into_owned();
    (!dir.is_empty()).then(|| PathBuf::from(dir))
}

/// Copies `legacy/*.json` into `config_dir` when the name is not there yet (reference §4.2).
/// Never overwrites, never deletes the source; copies are 0600. Returns how many were copied.
pub fn migrate_legacy(config_dir: &Path, legacy: &Path) -> std::io::Result<usize> {
    if config_dir == legacy || !legacy.is_dir() {
        return Ok(0);
    }
    crate::fsutil::ensure_dir(config_dir, 0o700)?;
    let mut copied = 0;
    for entry in fs::read_dir(legacy)? {
        let entry = entry?;
        let path = entry.path();
        let is_json = path.extension().is_some_and(|e| e == "json");
        if !is_json || !entry.file_type()?.is_file() {
            continue;
        }
        let target = config_dir.join(entry.file_name());
        if target.exists() {
            continue;
        }
        let data = crate::fsutil::read_regular(&path, 4 << 20)?;
        crate::fsutil::write_atomic(&target, &data, 0o600)?;
        fs::set_permissions(&target, fs::Permissions::from_mode(0o600))?;
        copied += 1;
    }
    Ok(copied)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn getter(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn override_wins() {
        let g = getter(&[("CYBERWAVE_EDGE_CONFIG_DIR", "/x/y"), ("HOME", "/home/a")]);
        assert_eq!(resolve_config_dir(&g), (PathBuf::from("/x/y"), true));
    }

    #[test]
    fn sudo_user_home_then_home() {
        let g = getter(&[("SUDO_USER", "root"), ("HOME", "/home/a")]);
        let (dir, over) = resolve_config_dir(&g);
        assert!(!over);
        assert_eq!(dir, PathBuf::from("/root/.cyberwave"));
        let g = getter(&[("SUDO_USER", "no-such-user-xyz"), ("HOME", "/home/a")]);
        assert_eq!(
            resolve_config_dir(&g).0,
            PathBuf::from("/home/a/.cyberwave")
        );
    }

    #[test]
    fn migration_copies_missing_json_only() {
        let legacy = tempfile::tempdir().unwrap();
        let cfg = tempfile::tempdir().unwrap();
        fs::write(
            legacy.path().join("credentials.json"),
            "{\"token\":\"old\"}",
        )
        .unwrap();
        fs::write(legacy.path().join("environment.json"), "{}").unwrap();
        fs::write(legacy.path().join("notes.txt"), "x").unwrap();
        fs::write(cfg.path().join("credentials.json"), "{\"token\":\"new\"}").unwrap();
        assert_eq!(migrate_legacy(cfg.path(), legacy.path()).unwrap(), 1);
        let creds = fs::read_to_string(cfg.path().join("credentials.json")).unwrap();
        assert!(creds.contains("new"));
        assert!(cfg.path().join("environment.json").exists());
        assert!(!cfg.path().join("notes.txt").exists());
        assert!(legacy.path().join("environment.json").exists());
    }
}
