//! `<twin-uuid>.json` in the config dir (reference §4.8): the twin plus its asset, written before
//! each launch. An existing file is deep-merged and rewritten **in place** (same inode), because
//! it is bind-mounted into the running container and a rename would leave the container
//! looking at the old file.

use std::fs::{self, OpenOptions};
use std::io::{self, Seek, SeekFrom, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde_json::Value;

/// `base` with `overlay` merged on top: objects recursively, other values replaced.
pub fn deep_merge(base: &mut Value, overlay: &Value) {
    match (base, overlay) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                match b.get_mut(k) {
                    Some(existing) if existing.is_object() && v.is_object() => {
                        deep_merge(existing, v)
                    }
                    _ => {
                        b.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (b, o) => *b = o.clone(),
    }
}

pub fn path_for(config_dir: &Path, twin_uuid: &str) -> PathBuf {
    config_dir.join(format!("{twin_uuid}.json"))
}

/// Writes the twin file; returns its path. Local-only keys of an existing file are kept.
pub fn write(config_dir: &Path, twin_uuid: &str, twin: &Value) -> io::Result<PathBuf> {
    let path = path_for(config_dir, twin_uuid);
    let mut value = twin.clone();
    if path.is_file()
        && let Ok(text) = crate::fsutil::read_regular_text(&path, MAX_TWIN_FILE)
        && let Ok(mut existing) = serde_json::from_str::<Value>(&text)
    {
        deep_merge(&mut existing, twin);
        value = existing;
    }
    replace(config_dir, twin_uuid, &value)
}

/// Largest twin file we read back (a twin with its asset is tens of KiB).
pub const MAX_TWIN_FILE: u64 = 8 << 20;

/// SHA-256 of the bytes we last wrote to each twin file: the twin sync never pushes our own
/// writes back (reference §8.2). Process-wide, as the files are.
static OURS: std::sync::Mutex<std::collections::BTreeMap<String, String>> =
    std::sync::Mutex::new(std::collections::BTreeMap::new());

/// Files we created in this process whose content the twin sync has not taken as its base yet:
/// an edit made before the sync first looks (it waits for writes to settle) is then merged
/// against what we wrote, not mistaken for the base. Taken (freed) at that first look.
static CREATED: std::sync::Mutex<std::collections::BTreeMap<String, Value>> =
    std::sync::Mutex::new(std::collections::BTreeMap::new());

/// What we wrote when we created this twin's file, if the twin sync has not taken it yet.
pub fn take_created(config_dir: &Path, twin_uuid: &str) -> Option<Value> {
    let key = path_for(config_dir, twin_uuid).display().to_string();
    CREATED.lock().ok()?.remove(&key)
}

/// The SHA-256 of what we last wrote to this twin's file, if we wrote it in this process.
pub fn written_by_us(twin_uuid: &str) -> Option<String> {
    OURS.lock().ok()?.get(twin_uuid).cloned()
}

/// Writes `value` as the twin's file exactly (no merge), in place when it exists.
pub fn replace(config_dir: &Path, twin_uuid: &str, value: &Value) -> io::Result<PathBuf> {
    let path = path_for(config_dir, twin_uuid);
    if path.is_dir() {
        // Docker creates a directory when it bind-mounts a missing file.
        fs::remove_dir_all(&path)?;
    }
    let mut text = serde_json::to_string_pretty(value).map_err(io::Error::other)?;
    text.push('\n');
    if let Ok(mut ours) = OURS.lock() {
        ours.insert(twin_uuid.to_string(), crate::sha256_hex(text.as_bytes()));
    }
    if path.is_file() {
        rewrite_in_place(&path, text.as_bytes())?;
    } else {
        crate::fsutil::write_atomic(&path, text.as_bytes(), 0o644)?;
        if let Ok(mut created) = CREATED.lock() {
            created.insert(path.display().to_string(), value.clone());
        }
    }
    Ok(path)
}

/// Overwrites the file's bytes without replacing the inode: first proves the bytes fit on disk
/// (temp file + fsync), then writes them padded with spaces to the old length (one write: a
/// kill leaves the old bytes or the new JSON followed by blanks, which still parses), fsyncs,
/// truncates to the new length and fsyncs again (reference §4.8).
fn rewrite_in_place(path: &Path, data: &[u8]) -> io::Result<()> {
    rewrite_in_place_upto(path, data, usize::MAX)
}

/// [`rewrite_in_place`] stopping after `steps` steps: tests kill it at every step.
fn rewrite_in_place_upto(path: &Path, data: &[u8], steps: usize) -> io::Result<()> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let probe = dir.join(format!(
        ".{}.probe",
        path.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default()
    ));
    {
        let mut f = fs::File::create(&probe)?;
        let r = f.write_all(data).and_then(|_| f.sync_all());
        let _ = fs::remove_file(&probe);
        r?;
    }
    if steps == 0 {
        return Ok(());
    }
    let mut f = OpenOptions::new().write(true).open(path)?;
    let old_len = f.metadata()?.len() as usize;
    let mut padded = data.to_vec();
    if padded.len() < old_len {
        padded.resize(old_len, b' ');
    }
    f.seek(SeekFrom::Start(0))?;
    f.write_all(&padded)?;
    if steps == 1 {
        return Ok(());
    }
    f.sync_all()?;
    if steps == 2 {
        return Ok(());
    }
    f.set_len(data.len() as u64)?;
    if steps == 3 {
        return Ok(());
    }
    f.sync_all()?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o644))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn merge_rules() {
        let mut a = json!({"name": "old", "metadata": {"local": 1, "x": {"y": 1}}, "list": [1, 2]});
        deep_merge(
            &mut a,
            &json!({"name": "new", "metadata": {"x": {"z": 2}}, "list": [3]}),
        );
        assert_eq!(
            a,
            json!({"name": "new", "metadata": {"local": 1, "x": {"y": 1, "z": 2}}, "list": [3]})
        );
    }

    #[test]
    fn a_kill_at_any_step_leaves_a_file_that_parses() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("t.json");
        let long = json!({"name": "a long name that makes the old file longer", "driver_key": 1});
        let short = json!({"name": "b", "driver_key": 1});
        for (old, new) in [(&long, &short), (&short, &long)] {
            for steps in 0..=4 {
                fs::write(&p, serde_json::to_string_pretty(old).unwrap()).unwrap();
                let data = serde_json::to_string_pretty(new).unwrap();
                rewrite_in_place_upto(&p, data.as_bytes(), steps).unwrap();
                let got: Value = serde_json::from_str(&fs::read_to_string(&p).unwrap())
                    .unwrap_or_else(|e| panic!("step {steps}: {e}"));
                assert!(got == *old || got == *new, "step {steps}: {got}");
                assert_eq!(got["driver_key"], json!(1), "a driver's key was lost");
            }
        }
    }

    #[test]
    fn rewrite_keeps_inode_and_local_keys() {
        let d = tempfile::tempdir().unwrap();
        let t = "11111111-2222-4333-8444-555555555555";
        let p = write(
            d.path(),
            t,
            &json!({"uuid": t, "name": "a long name to shrink later", "metadata": {"k": 1}}),
        )
        .unwrap();
        assert_eq!(fs::metadata(&p).unwrap().mode() & 0o777, 0o644);
        let inode = fs::metadata(&p).unwrap().ino();
        let mut v: Value = serde_json::from_str(&fs::read_to_string(&p).unwrap()).unwrap();
        v["local_only"] = json!(true);
        fs::write(&p, v.to_string()).unwrap();
        write(
            d.path(),
            t,
            &json!({"uuid": t, "name": "b", "metadata": {"k": 2}}),
        )
        .unwrap();
        assert_eq!(fs::metadata(&p).unwrap().ino(), inode);
        let v: Value = serde_json::from_str(&fs::read_to_string(&p).unwrap()).unwrap();
        assert_eq!(v["name"], json!("b"));
        assert_eq!(v["metadata"]["k"], json!(2));
        assert_eq!(v["local_only"], json!(true));
        // a directory left by a bind mount of a missing file is replaced
        let t2 = "22222222-2222-4333-8444-555555555555";
        fs::create_dir(path_for(d.path(), t2)).unwrap();
        write(d.path(), t2, &json!({"uuid": t2})).unwrap();
        assert!(path_for(d.path(), t2).is_file());
    }
}
