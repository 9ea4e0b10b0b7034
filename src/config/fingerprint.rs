//! The edge fingerprint: this device's identity towards the backend (reference §4.4).

use std::path::Path;

use serde_json::{Value, json};

use super::files::{FileError, FileProblem, read_json_object};

/// The fingerprint the Python SDK derives from host name, MAC and platform:
/// `<hostname[:15] lowercased, ' ' and '.' → '-', trailing '-' stripped>-<sha256(h-mac-platform)[:12]>`.
pub fn generate(hostname: &str, mac: &str, platform: &str) -> String {
    let digest = crate::sha256_hex(format!("{hostname}-{mac}-{platform}").as_bytes());
    let prefix: String = hostname
        .chars()
        .take(15)
        .collect::<String>()
        .to_lowercase()
        .replace([' ', '.'], "-");
    let prefix = prefix.trim_end_matches('-');
    format!("{prefix}-{}", &digest[..12])
}

/// Reads `fingerprint.json`; when it is missing, empty or unreadable JSON, creates it from
/// `CYBERWAVE_EDGE_UUID` (`override_fp`) or `of_host` (the caller's [`generate`] over this
/// host's facts), mode 0644. The persisted value always wins: a MAC can change (USB dongles),
/// the identity must not.
pub fn load_or_create(
    config_dir: &Path,
    override_fp: Option<&str>,
    of_host: impl FnOnce() -> String,
) -> Result<String, FileError> {
    let path = config_dir.join(super::FINGERPRINT_FILE);
    match read_json_object(&path) {
        Ok(map) => {
            if let Some(Value::String(fp)) = map.get("fingerprint") {
                let fp = fp.trim();
                if !fp.is_empty() {
                    return Ok(fp.to_string());
                }
            }
            log::warn!(
                "{}: no usable \"fingerprint\"; generating a new one",
                path.display()
            );
        }
        Err(FileError {
            problem: FileProblem::Missing,
            ..
        }) => {}
        Err(e) => log::warn!("{e}; generating a new fingerprint"),
    }
    let fp = match override_fp {
        Some(fp) => fp.to_string(),
        None => of_host(),
    };
    crate::fsutil::write_json_atomic(&path, &json!({ "fingerprint": fp }), 0o644).map_err(|e| {
        FileError {
            path: path.clone(),
            problem: FileProblem::Unreadable(format!("cannot write: {e}")),
        }
    })?;
    log::info!("created {} ({fp})", path.display());
    Ok(fp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_matches_python_sdk() {
        // sha256("raspberrypi-dc:a6:32:01:02:03-Linux-aarch64")[:12]
        let fp = generate("raspberrypi", "dc:a6:32:01:02:03", "Linux-aarch64");
        let expected = &crate::sha256_hex(b"raspberrypi-dc:a6:32:01:02:03-Linux-aarch64")[..12];
        assert_eq!(fp, format!("raspberrypi-{expected}"));
        assert_eq!(fp.len(), "raspberrypi-".len() + 12);
    }

    #[test]
    fn prefix_rules() {
        let fp = generate(
            "My Robot.Lab.Example.com",
            "00:11:22:33:44:55",
            "Linux-x86_64",
        );
        // first 15 chars "My Robot.Lab.Ex" → lower → spaces/dots to '-'
        assert!(fp.starts_with("my-robot-lab-ex-"), "{fp}");
        let fp = generate("edge.", "00:11:22:33:44:55", "Linux-x86_64");
        assert!(fp.starts_with("edge-"), "{fp}");
        assert!(!fp.starts_with("edge--"), "{fp}");
    }

    #[test]
    fn persisted_value_wins_and_new_file_is_0644() {
        use std::os::unix::fs::MetadataExt;
        let d = tempfile::tempdir().unwrap();
        let fp = load_or_create(d.path(), Some("my-edge"), String::new).unwrap();
        assert_eq!(fp, "my-edge");
        let p = d.path().join("fingerprint.json");
        assert_eq!(std::fs::metadata(&p).unwrap().mode() & 0o777, 0o644);
        assert_eq!(
            std::fs::read_to_string(&p).unwrap(),
            "{\n  \"fingerprint\": \"my-edge\"\n}\n"
        );
        assert_eq!(
            load_or_create(d.path(), Some("other"), String::new).unwrap(),
            "my-edge"
        );
        std::fs::write(&p, "{broken").unwrap();
        assert_eq!(
            load_or_create(d.path(), Some("other"), String::new).unwrap(),
            "other"
        );
    }
}
