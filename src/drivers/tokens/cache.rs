//! The token cache on disk, as the original keeps it: `<config dir>/driver_tokens/<twin>.json`
//! (file 0600, directory 0700), written atomically so a kill at any moment leaves the old file
//! or the new one, never half of one; and the public view of `credentials.json` a scoped
//! driver sees in its place (`driver_credentials.public.json`, 0644).

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use super::{CachedToken, PUBLIC_CREDENTIALS, TOKEN_DIR, public_credentials};

/// A cache file is a few hundred bytes; anything larger is not ours.
const MAX_FILE: u64 = 64 * 1024;
/// At most this many cached twins are read at start (one per driver twin of this edge).
const MAX_FILES: usize = 1024;

pub fn dir(config_dir: &Path) -> PathBuf {
    config_dir.join(TOKEN_DIR)
}

/// The file of `twin` (the original keeps only alphanumerics and `-` of the uuid).
pub fn path(config_dir: &Path, twin: &str) -> PathBuf {
    let safe: String = twin
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .collect();
    dir(config_dir).join(format!("{safe}.json"))
}

/// The cached token of `twin`; `None` when absent or unusable (a token and its uuid needed).
pub fn load(config_dir: &Path, twin: &str) -> Option<CachedToken> {
    let p = path(config_dir, twin);
    let text = crate::fsutil::read_regular_text(&p, MAX_FILE).ok()?;
    match serde_json::from_str::<CachedToken>(&text) {
        Ok(t) if !t.token.is_empty() && !t.uuid.is_empty() => Some(t),
        Ok(_) => None,
        Err(e) => {
            log::warn!("{}: not a driver token file ({e}); ignored", p.display());
            None
        }
    }
}

/// Every cached token, by twin (what a restarted edge runs its scoped drivers on at once).
pub fn load_all(config_dir: &Path) -> BTreeMap<String, CachedToken> {
    let Ok(entries) = std::fs::read_dir(dir(config_dir)) else {
        return BTreeMap::new();
    };
    entries
        .flatten()
        .take(MAX_FILES)
        .filter_map(|e| {
            let name = e.file_name().to_str()?.strip_suffix(".json")?.to_string();
            let t = load(config_dir, &name)?;
            (t.twin_uuid.is_empty() || t.twin_uuid == name).then_some((name, t))
        })
        .collect()
}

pub fn write(config_dir: &Path, twin: &str, token: &CachedToken) -> io::Result<()> {
    let d = dir(config_dir);
    crate::fsutil::ensure_dir(&d, 0o700)?;
    // An existing directory of a looser mode is tightened, as the original does.
    std::fs::set_permissions(&d, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
    let data = serde_json::to_vec_pretty(token).map_err(io::Error::other)?;
    crate::fsutil::write_atomic(&path(config_dir, twin), &data, 0o600)
}

pub fn remove(config_dir: &Path, twin: &str) {
    match std::fs::remove_file(path(config_dir, twin)) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => {
            log::warn!("driver token of {twin}: could not remove its cache file: {e}")
        }
        _ => {}
    }
}

/// What a scoped driver's masks need on the host before `docker create`: the public view of
/// `credentials.json` and the masked directories (a mount point cannot be made inside the
/// read-only config-dir mount).
pub fn prepare_masks(config_dir: &Path) -> io::Result<()> {
    for d in super::MASKED_DIRS {
        crate::fsutil::ensure_dir(&config_dir.join(d), 0o700)?;
    }
    write_public(config_dir).map(|_| ())
}

/// Writes `driver_credentials.public.json` from `credentials.json` (a missing or unreadable
/// file gives an empty `envs`, as in the original); the file a scoped driver reads instead.
pub fn write_public(config_dir: &Path) -> io::Result<PathBuf> {
    let creds = crate::fsutil::read_regular_text(&config_dir.join("credentials.json"), 1 << 20)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(serde_json::Value::Null);
    let target = config_dir.join(PUBLIC_CREDENTIALS);
    crate::fsutil::write_json_atomic(&target, &public_credentials(&creds), 0o644)?;
    Ok(target)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn token(twin: &str) -> CachedToken {
        CachedToken {
            token: "cw_drv_secret".into(),
            uuid: "tok-1".into(),
            expires_at: Some("2030-01-01T00:00:00Z".into()),
            twin_uuid: twin.into(),
            child_twin_uuids: vec![],
            base_url: "http://x".into(),
            edge_token_sha256: "ab".into(),
        }
    }

    #[test]
    fn written_with_the_originals_modes_and_read_back() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "t-1", &token("t-1")).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir(d.path())), 0o700);
        assert_eq!(mode(&path(d.path(), "t-1")), 0o600);
        assert_eq!(load(d.path(), "t-1"), Some(token("t-1")));
        assert_eq!(load_all(d.path()).len(), 1);
        remove(d.path(), "t-1");
        assert_eq!(load(d.path(), "t-1"), None);
    }

    #[test]
    fn unusable_files_are_ignored() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir(d.path())).unwrap();
        for (name, text) in [
            ("a", "{"),
            ("b", r#"{"token":"","uuid":"u"}"#),
            ("c", r#"[1]"#),
            ("d", r#"{"token":"t","uuid":"u","twin_uuid":"other"}"#),
        ] {
            std::fs::write(path(d.path(), name), text).unwrap();
        }
        assert!(load_all(d.path()).is_empty());
        assert!(load(d.path(), "a").is_none() && load(d.path(), "c").is_none());
    }

    #[test]
    fn the_public_view_keeps_no_secret() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            d.path().join("credentials.json"),
            r#"{"token":"cw_edge","envs":{"CYBERWAVE_API_KEY":"cw_edge","CYBERWAVE_AUDIO_RATE":"48000","X_SECRET_Y":"s","n":1}}"#,
        )
        .unwrap();
        let p = write_public(d.path()).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(
            !text.contains("cw_edge") && !text.contains("\"s\""),
            "{text}"
        );
        assert!(text.contains("CYBERWAVE_AUDIO_RATE"));
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o644
        );
    }
}
