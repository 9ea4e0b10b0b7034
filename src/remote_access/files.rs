//! The remote-access files under the config dir (reference §4.9): the per-edge key
//! (`remote_access_key`, 0600, created once), and in `remote-access/` (0700) the frpc config
//! and the running session's id (both 0600). Reads never follow into a FIFO and are bounded.

use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use base64::Engine as _;

use crate::config::Secret;

pub const KEY_FILE: &str = "remote_access_key";
pub const DIR: &str = "remote-access";
pub const CONFIG_FILE: &str = "frpc.toml";
pub const SESSION_FILE: &str = "session";

/// Where the files live.
#[derive(Debug, Clone)]
pub struct Files {
    pub config_dir: PathBuf,
}

impl Files {
    pub fn key(&self) -> PathBuf {
        self.config_dir.join(KEY_FILE)
    }

    pub fn dir(&self) -> PathBuf {
        self.config_dir.join(DIR)
    }

    pub fn config(&self) -> PathBuf {
        self.dir().join(CONFIG_FILE)
    }

    pub fn session(&self) -> PathBuf {
        self.dir().join(SESSION_FILE)
    }

    /// This edge's key, created on first use (`secrets.token_urlsafe(32)`: 32 random bytes,
    /// URL-safe base64 without padding). An existing key is kept and made private again.
    pub fn load_or_create_key(&self) -> io::Result<Secret> {
        let path = self.key();
        match crate::fsutil::read_regular_text(&path, 4096) {
            Ok(text) if !text.trim().is_empty() => {
                if let Ok(m) = std::fs::metadata(&path)
                    && m.permissions().mode() & 0o077 != 0
                {
                    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
                }
                return Ok(Secret::new(text.trim()));
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io::Error::new(e.kind(), format!("{}: {e}", path.display()))),
        }
        let mut raw = [0u8; 32];
        crate::random_bytes(&mut raw);
        let key = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
        crate::fsutil::write_atomic(&path, format!("{key}\n").as_bytes(), 0o600)?;
        log::info!("created the remote access edge key at {}", path.display());
        Ok(Secret::new(key))
    }

    fn write_private(&self, path: &Path, text: &str) -> io::Result<()> {
        let dir = self.dir();
        crate::fsutil::ensure_dir(&dir, 0o700)?;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
        crate::fsutil::write_atomic(path, text.as_bytes(), 0o600)
    }

    /// Writes the frpc config (it holds the relay token: 0600, in a 0700 directory).
    pub fn write_config(&self, text: &str) -> io::Result<PathBuf> {
        let path = self.config();
        self.write_private(&path, text)?;
        Ok(path)
    }

    pub fn remove_config(&self) {
        unlink(&self.config());
    }

    /// Remembers the running session, so a restarted daemon resumes it.
    pub fn save_session(&self, session: &str) {
        if let Err(e) = self.write_private(&self.session(), &format!("{session}\n")) {
            log::warn!("remote access: cannot save session {session}: {e}");
        }
    }

    /// The saved session, when the file holds a UUID (anything else is discarded).
    pub fn saved_session(&self) -> Option<String> {
        let path = self.session();
        let raw = match crate::fsutil::read_regular_text(&path, 4096) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return None,
            Err(e) => {
                log::warn!("remote access: unreadable {}: {e}", path.display());
                String::new()
            }
        };
        let session = crate::config::parse_uuid(raw.trim());
        if session.is_none() {
            log::warn!(
                "remote access: discarding invalid saved session {:?}",
                crate::clip(raw.trim(), 64)
            );
            self.forget_session();
        }
        session
    }

    pub fn forget_session(&self) {
        unlink(&self.session());
    }
}

fn unlink(path: &Path) {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => log::warn!("cannot remove {}: {e}", path.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_is_created_once_private_and_url_safe() {
        let dir = tempfile::tempdir().unwrap();
        let f = Files {
            config_dir: dir.path().to_path_buf(),
        };
        let k1 = f.load_or_create_key().unwrap();
        assert_eq!(k1.expose().len(), 43);
        assert!(
            k1.expose()
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
        let mode = std::fs::metadata(f.key()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        std::fs::set_permissions(f.key(), std::fs::Permissions::from_mode(0o644)).unwrap();
        let k2 = f.load_or_create_key().unwrap();
        assert_eq!(k1, k2);
        let mode = std::fs::metadata(f.key()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn sessions_are_uuids_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let f = Files {
            config_dir: dir.path().to_path_buf(),
        };
        assert_eq!(f.saved_session(), None);
        let sid = "5e55104e-0000-4000-8000-000000000001";
        f.save_session(sid);
        assert_eq!(f.saved_session().as_deref(), Some(sid));
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&f.session()), 0o600);
        assert_eq!(mode(&f.dir()), 0o700);
        std::fs::write(f.session(), "../../etc\n").unwrap();
        assert_eq!(f.saved_session(), None);
        assert!(!f.session().exists(), "an invalid session file is removed");
        let p = f.write_config("serverAddr = \"x\"\n").unwrap();
        assert_eq!(mode(&p), 0o600);
        f.remove_config();
        assert!(!p.exists());
    }
}
