//! The cache's files, in the original's exact formats (reference §7.1, §7.2), so the SDK and
//! the original's tools read what we write:
//!
//! * `models/manifest.json`: `{"<model_id>": {model_id, local_path (absolute host path),
//!   size_bytes, downloaded_at ("YYYY-MM-DDTHH:MM:SSZ"), source_url, checksum_sha256, runtime,
//!   downloaded_from}}`, indent 2; unreadable or not an object → empty.
//! * `models/<dir>/metadata.json` beside the weight file: the SDK reads only
//!   `checksum_sha256` (lowercase hex) from it, and deletes a weight that does not match.
//!
//! One directory per model (the SDK checks a weight against the `metadata.json` in its own
//! directory); its name is the model id made safe (the SDK's slug rule).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

pub const MANIFEST_FILE: &str = "manifest.json";
pub const SIDECAR_FILE: &str = "metadata.json";

/// One manifest entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub model_id: String,
    pub local_path: String,
    pub size_bytes: u64,
    pub downloaded_at: String,
    pub source_url: Option<String>,
    pub checksum_sha256: Option<String>,
    pub runtime: Option<String>,
    pub downloaded_from: Option<String>,
}

/// `models/manifest.json`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Manifest {
    pub entries: BTreeMap<String, Entry>,
}

impl Manifest {
    /// Reads the manifest; missing, unreadable or malformed → empty (as the original).
    pub fn load(models_dir: &Path) -> Self {
        let path = models_dir.join(MANIFEST_FILE);
        let Ok(text) = crate::fsutil::read_regular_text(&path, 16 << 20) else {
            return Manifest::default();
        };
        let Ok(Value::Object(m)) = serde_json::from_str::<Value>(&text) else {
            log::warn!("{}: not a JSON object: treated as empty", path.display());
            return Manifest::default();
        };
        let entries = m
            .into_iter()
            .filter_map(|(k, v)| serde_json::from_value::<Entry>(v).ok().map(|e| (k, e)))
            .collect();
        Manifest { entries }
    }

    /// Writes it atomically (temp file, fsync, rename), indent 2.
    pub fn save(&self, models_dir: &Path) -> std::io::Result<()> {
        let v = serde_json::to_value(&self.entries).map_err(std::io::Error::other)?;
        crate::fsutil::write_json_atomic(&models_dir.join(MANIFEST_FILE), &v, 0o644)
    }
}

/// The directory name of a model id: `/` → `__`, only alphanumerics and `-_.` kept, runs of
/// two or more dots → `_`, leading dots stripped, `_` when nothing is left (the SDK's rule for
/// cloud slugs; a plain local id such as `yolov8n` is unchanged). Never a path outside
/// `models/`.
pub fn dir_name(model_id: &str) -> String {
    let kept: String = model_id
        .replace('/', "__")
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        .collect();
    let mut out = String::with_capacity(kept.len());
    let mut dots = 0;
    for c in kept.chars().chain(std::iter::once('\0')) {
        if c == '.' {
            dots += 1;
            continue;
        }
        match dots {
            0 => {}
            1 => out.push('.'),
            _ => out.push('_'),
        }
        dots = 0;
        if c != '\0' {
            out.push(c);
        }
    }
    let out = out.trim_start_matches('.').to_string();
    if out.is_empty() { "_".into() } else { out }
}

/// The runtime of a weight file by its extension (reference §7.2).
pub fn runtime_for(filename: &str) -> Option<&'static str> {
    let ext = filename
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())?;
    Some(match ext.as_str() {
        "pt" => "ultralytics",
        "pth" => "torch",
        "onnx" => "onnxruntime",
        "tflite" => "tflite",
        "engine" | "trt" => "tensorrt",
        "xml" => "opencv",
        "hef" => "hailo",
        _ => return None,
    })
}

/// `YYYY-MM-DDTHH:MM:SSZ` (UTC, seconds).
pub fn timestamp_now() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

/// Where a downloaded (or pre-staged) weight came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A Cyberwave signed URL (`source_url` is null).
    ArtifactUrl,
    /// The model's upstream URL (`source_url` = it).
    DownloadUrl,
    Prestaged,
}

impl Source {
    pub fn name(self) -> &'static str {
        match self {
            Source::ArtifactUrl => "artifact_url",
            Source::DownloadUrl => "download_url",
            Source::Prestaged => "prestaged",
        }
    }
}

/// A cached weight file, described once for both the sidecar and the manifest.
#[derive(Debug, Clone, PartialEq)]
pub struct Cached {
    pub model_id: String,
    pub path: PathBuf,
    pub sha256: String,
    pub size: u64,
    pub runtime: Option<String>,
    pub source: Source,
    /// The URL it was fetched from (signed or upstream); `None` when pre-staged.
    pub url: Option<String>,
}

impl Cached {
    fn filename(&self) -> String {
        self.path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    /// `metadata.json` in the original's shape: the downloaded form, or the pre-staged one
    /// (no URL keys).
    pub fn sidecar(&self, at: &str) -> Value {
        let mut v = json!({
            "model_id": self.model_id,
            "runtime": self.runtime,
            "filename": self.filename(),
            "checksum_sha256": self.sha256,
            "size_bytes": self.size,
            "downloaded_at": at,
            "downloaded_from": self.source.name(),
        });
        if self.source != Source::Prestaged {
            let upstream = (self.source == Source::DownloadUrl).then(|| self.url.clone());
            v["source_url"] = json!(upstream.clone().flatten());
            v["upstream_url"] = json!(upstream.flatten());
        }
        v
    }

    pub fn entry(&self, at: &str) -> Entry {
        Entry {
            model_id: self.model_id.clone(),
            local_path: self.path.display().to_string(),
            size_bytes: self.size,
            downloaded_at: at.to_string(),
            source_url: if self.source == Source::DownloadUrl {
                self.url.clone()
            } else {
                None
            },
            checksum_sha256: Some(self.sha256.clone()),
            runtime: self.runtime.clone(),
            downloaded_from: Some(self.source.name().to_string()),
        }
    }

    /// Writes the sidecar and records the entry (the caller saves the manifest).
    pub fn record(&self, manifest: &mut Manifest) -> std::io::Result<()> {
        let at = timestamp_now();
        let dir = self.path.parent().unwrap_or_else(|| Path::new("."));
        crate::fsutil::write_json_atomic(&dir.join(SIDECAR_FILE), &self.sidecar(&at), 0o644)?;
        manifest
            .entries
            .insert(self.model_id.clone(), self.entry(&at));
        Ok(())
    }
}

/// What a cache hit is worth.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Integrity {
    Intact,
    Missing,
    /// The file's SHA-256 differs from the recorded one (the actual value).
    Mismatch(String),
}

/// Checks a manifest entry against the file on disk (SHA-256 on every hit, reference §7.4).
pub fn verify(entry: &Entry) -> Integrity {
    let path = Path::new(&entry.local_path);
    if !path.is_file() {
        return Integrity::Missing;
    }
    let Some(want) = &entry.checksum_sha256 else {
        return Integrity::Intact;
    };
    match super::hash::sha256_file(path) {
        Ok((got, _)) if got.eq_ignore_ascii_case(want) => Integrity::Intact,
        Ok((got, _)) => Integrity::Mismatch(got),
        Err(_) => Integrity::Missing,
    }
}

/// A model someone put in the cache by hand (`models/<id>` as a file, or `models/<dir>/` with
/// one weight file): moved into its own directory when flat, hashed, described and recorded as
/// `prestaged`. `None` when there is nothing (or nothing unambiguous) to adopt.
pub fn adopt_prestaged(
    models_dir: &Path,
    model_id: &str,
    manifest: &mut Manifest,
) -> std::io::Result<Option<Cached>> {
    let dir = models_dir.join(dir_name(model_id));
    if dir.is_file() {
        // Flat file → <dir>/<dir>, through a side name so a crash leaves one of the two.
        let side = models_dir.join(format!("{}.__cw_normalize__", dir_name(model_id)));
        std::fs::rename(&dir, &side)?;
        if let Err(e) = std::fs::create_dir(&dir)
            .and_then(|_| std::fs::rename(&side, dir.join(dir_name(model_id))))
        {
            let _ = std::fs::remove_dir(&dir);
            std::fs::rename(&side, &dir)?;
            return Err(e);
        }
    }
    if !dir.is_dir() {
        return Ok(None);
    }
    let sidecar: Value = crate::fsutil::read_regular_text(&dir.join(SIDECAR_FILE), 1 << 20)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(Value::Null);
    let named = sidecar["filename"]
        .as_str()
        .filter(|f| !f.contains('/') && !f.starts_with('.'))
        .map(|f| dir.join(f))
        .filter(|p| p.is_file());
    let weight = match named {
        Some(p) => p,
        None => {
            let files: Vec<PathBuf> = std::fs::read_dir(&dir)?
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.is_file())
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| !n.starts_with('.') && n != SIDECAR_FILE)
                })
                .collect();
            match files.as_slice() {
                [one] => one.clone(),
                _ => return Ok(None),
            }
        }
    };
    let (sha256, size) = super::hash::sha256_file(&weight)?;
    let filename = weight
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let cached = Cached {
        model_id: model_id.to_string(),
        runtime: sidecar["runtime"]
            .as_str()
            .map(str::to_string)
            .or_else(|| runtime_for(&filename).map(str::to_string)),
        path: weight,
        sha256,
        size,
        source: Source::Prestaged,
        url: None,
    };
    cached.record(manifest)?;
    Ok(Some(cached))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directory_names_follow_the_sdk_rule() {
        for (id, want) in [
            ("yolov8n", "yolov8n"),
            ("acme/models/yolo", "acme__models__yolo"),
            ("../../etc/passwd", "______etc__passwd"),
            ("a..b...c", "a_b_c"),
            ("...hidden", "_hidden"),
            (".hidden", "hidden"),
            ("$%^", "_"),
            ("yolov8n.pt", "yolov8n.pt"),
        ] {
            assert_eq!(dir_name(id), want, "{id}");
        }
        assert_eq!(runtime_for("w.PT"), Some("ultralytics"));
        assert_eq!(runtime_for("w.trt"), Some("tensorrt"));
        assert_eq!(runtime_for("w.bin"), None);
    }

    #[test]
    fn manifest_and_sidecars_have_the_original_shape() {
        let d = tempfile::tempdir().unwrap();
        let models = d.path();
        let c = Cached {
            model_id: "yolov8n".into(),
            path: models.join("yolov8n/yolov8n.pt"),
            sha256: "ab".repeat(32),
            size: 6,
            runtime: Some("ultralytics".into()),
            source: Source::DownloadUrl,
            url: Some("https://example.com/yolov8n.pt".into()),
        };
        std::fs::create_dir_all(models.join("yolov8n")).unwrap();
        let mut m = Manifest::default();
        c.record(&mut m).unwrap();
        m.save(models).unwrap();
        let side: Value = serde_json::from_str(
            &std::fs::read_to_string(models.join("yolov8n/metadata.json")).unwrap(),
        )
        .unwrap();
        let keys: Vec<&String> = side.as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            [
                "model_id",
                "runtime",
                "filename",
                "checksum_sha256",
                "size_bytes",
                "downloaded_at",
                "downloaded_from",
                "source_url",
                "upstream_url"
            ]
        );
        assert_eq!(side["filename"], json!("yolov8n.pt"));
        assert_eq!(side["source_url"], json!("https://example.com/yolov8n.pt"));
        let at = side["downloaded_at"].as_str().unwrap();
        assert!(at.len() == 20 && at.ends_with('Z'), "{at}");
        let again = Manifest::load(models);
        assert_eq!(again, m);
        let e = &again.entries["yolov8n"];
        assert_eq!(e.downloaded_from.as_deref(), Some("download_url"));
        // a signed URL is not recorded as the source
        let signed = Cached {
            source: Source::ArtifactUrl,
            ..c
        };
        assert_eq!(signed.entry("t").source_url, None);
        assert_eq!(signed.sidecar("t")["upstream_url"], Value::Null);
        std::fs::write(models.join(MANIFEST_FILE), "[1]").unwrap();
        assert!(Manifest::load(models).entries.is_empty());
    }

    #[test]
    fn prestaged_models_are_adopted_and_verified() {
        let d = tempfile::tempdir().unwrap();
        let models = d.path();
        // a flat file is moved into its own directory
        std::fs::write(models.join("yolov8n"), b"weights").unwrap();
        let mut m = Manifest::default();
        let c = adopt_prestaged(models, "yolov8n", &mut m).unwrap().unwrap();
        assert_eq!(c.path, models.join("yolov8n/yolov8n"));
        assert_eq!(c.sha256, crate::sha256_hex(b"weights"));
        let e = m.entries["yolov8n"].clone();
        assert_eq!(e.downloaded_from.as_deref(), Some("prestaged"));
        assert_eq!(verify(&e), Integrity::Intact);
        let side: Value = serde_json::from_str(
            &std::fs::read_to_string(models.join("yolov8n/metadata.json")).unwrap(),
        )
        .unwrap();
        assert!(side.get("source_url").is_none() && side["downloaded_from"] == json!("prestaged"));
        // the SDK's check: the sidecar's checksum matches the file
        assert_eq!(
            side["checksum_sha256"],
            json!(crate::sha256_hex(b"weights"))
        );
        std::fs::write(&c.path, b"tampered").unwrap();
        assert!(matches!(verify(&e), Integrity::Mismatch(_)));
        std::fs::remove_file(&c.path).unwrap();
        assert_eq!(verify(&e), Integrity::Missing);
        // a directory with two candidate files is ambiguous: not adopted
        std::fs::create_dir_all(models.join("two")).unwrap();
        std::fs::write(models.join("two/a.pt"), b"a").unwrap();
        std::fs::write(models.join("two/b.pt"), b"b").unwrap();
        assert_eq!(adopt_prestaged(models, "two", &mut m).unwrap(), None);
        assert_eq!(adopt_prestaged(models, "absent", &mut m).unwrap(), None);
    }
}
