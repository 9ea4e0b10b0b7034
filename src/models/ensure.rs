//! `ensure_model` (reference §7.4): a model the workers need is in the cache, intact, and the
//! version the catalog names — adopted when pre-staged, checked by SHA-256 on every hit (once
//! per file version per process), downloaded from the signed URL then the upstream URL, and a
//! stale but intact copy kept when the network fails.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use super::download::{self, DownloadError, Request};
use super::store::{self, Cached, Integrity, Manifest, SIDECAR_FILE, Source};
use crate::backend::Backend;

/// What the model catalog tells us (the backend; a fake in tests).
pub trait Catalog {
    /// The catalog entry of a model id (UUID or external id); `Ok(None)` when unknown.
    fn entry(&self, model_id: &str) -> Result<Option<Value>, String>;
    /// The signed URL of hosted weights, if any.
    fn weights_url(&self, uuid: &str) -> Option<String>;
    /// `Authorization` for a download URL (only the backend's own).
    fn bearer_for(&self, url: &str) -> Option<String>;
}

impl Catalog for Backend {
    fn entry(&self, model_id: &str) -> Result<Option<Value>, String> {
        self.mlmodel(model_id).map_err(|e| e.to_string())
    }
    fn weights_url(&self, uuid: &str) -> Option<String> {
        self.mlmodel_weights_url(uuid).ok().flatten()
    }
    fn bearer_for(&self, url: &str) -> Option<String> {
        Backend::bearer_for(self, url)
    }
}

/// How a model was made available.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Cached(PathBuf),
    Downloaded(PathBuf),
    /// The download failed but an intact older copy is there (the error).
    Stale(PathBuf, String),
    /// Only its runtime can fetch it (ultralytics, faster-whisper): not a failure.
    Deferred(String),
}

/// Files already hashed by this process: path → (mtime ns, size). A hit on an unchanged file
/// is not hashed again (the worker restarts on every edit; a 1 GiB model would cost seconds).
pub type Verified = BTreeMap<PathBuf, (i128, u64)>;

/// First string of the keys, at the top level then under `metadata`.
fn field<'a>(entry: &'a Value, keys: &[&str]) -> Option<&'a str> {
    let top = keys
        .iter()
        .find_map(|k| entry.get(*k).and_then(Value::as_str));
    let meta = || {
        keys.iter().find_map(|k| {
            entry
                .pointer(&format!("/metadata/{k}"))
                .and_then(Value::as_str)
        })
    };
    top.or_else(meta).filter(|s| !s.trim().is_empty())
}

fn checksum(entry: &Value) -> Option<String> {
    field(entry, &["checksum_sha256", "sha256", "checksum"])
        .map(|c| c.trim().to_ascii_lowercase())
        .filter(|c| c.len() == 64 && c.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn runtime(entry: &Value) -> Option<String> {
    field(
        entry,
        &["runtime", "framework", "edge_runtime", "edge_package"],
    )
    .map(str::to_lowercase)
}

/// The upstream URL: `download_url`, then `metadata.download_url`, `upstream_weights_url`,
/// `artifact_url`.
fn upstream_url(entry: &Value) -> Option<String> {
    let candidates = [
        entry.get("download_url"),
        entry.pointer("/metadata/download_url"),
        entry.pointer("/metadata/upstream_weights_url"),
        entry.pointer("/metadata/artifact_url"),
    ];
    candidates
        .into_iter()
        .flatten()
        .find_map(Value::as_str)
        .filter(|u| u.starts_with("http://") || u.starts_with("https://"))
        .map(str::to_string)
}

fn safe_filename(name: &str) -> Option<String> {
    let n = name.trim();
    (!n.is_empty()
        && n.len() <= 255
        && !n.contains('/')
        && !n.starts_with('.')
        && n != SIDECAR_FILE
        && !n.chars().any(char::is_control))
    .then(|| n.to_string())
}

/// The weight file's name (§7.4 order), never a path.
pub fn filename_for(model_id: &str, entry: &Value, urls: &[&str]) -> String {
    let external = entry
        .get("model_external_id")
        .and_then(Value::as_str)
        .filter(|e| e.contains('.'));
    let from_url = urls.iter().find_map(|u| {
        let path = u.split(['?', '#']).next().unwrap_or("");
        path.rsplit('/').next().filter(|s| s.contains('.'))
    });
    [
        entry.get("filename").and_then(Value::as_str),
        entry.pointer("/metadata/filename").and_then(Value::as_str),
        external,
        from_url,
    ]
    .into_iter()
    .flatten()
    .find_map(safe_filename)
    .unwrap_or_else(|| format!("{}.pt", store::dir_name(model_id)))
}

/// Is the manifest entry's file intact (hashing it unless this process already did)?
fn intact(entry: &store::Entry, verified: &mut Verified) -> Integrity {
    let path = PathBuf::from(&entry.local_path);
    if let Some(s) = crate::fsutil::stamp(&path)
        && verified.get(&path) == Some(&s)
    {
        return Integrity::Intact;
    }
    let i = store::verify(entry);
    if i == Integrity::Intact
        && let Some(s) = crate::fsutil::stamp(&path)
    {
        verified.insert(path, s);
    }
    i
}

/// Makes `model_id` available under `models_dir` (§7.4); the manifest is saved when changed.
pub fn ensure_model(
    models_dir: &Path,
    model_id: &str,
    catalog: &dyn Catalog,
    verified: &mut Verified,
) -> Result<Outcome, String> {
    let model_id = model_id.trim();
    if model_id.is_empty() {
        return Err("empty model id".into());
    }
    let mut manifest = Manifest::load(models_dir);
    if !manifest.entries.contains_key(model_id)
        && let Ok(Some(c)) = store::adopt_prestaged(models_dir, model_id, &mut manifest)
    {
        log::info!(
            "model {model_id}: adopted the pre-staged {}",
            c.path.display()
        );
        save(&manifest, models_dir)?;
    }
    let mut cached: Option<PathBuf> = None;
    if let Some(entry) = manifest.entries.get(model_id).cloned() {
        let prestaged = entry.downloaded_from.as_deref() == Some("prestaged");
        match intact(&entry, verified) {
            Integrity::Intact if prestaged => return Ok(Outcome::Cached(entry.local_path.into())),
            Integrity::Intact => cached = Some(entry.local_path.clone().into()),
            Integrity::Mismatch(_) if prestaged => {
                // Someone replaced a pre-staged file on purpose: re-stamp it.
                manifest.entries.remove(model_id);
                if let Ok(Some(c)) = store::adopt_prestaged(models_dir, model_id, &mut manifest) {
                    save(&manifest, models_dir)?;
                    return Ok(Outcome::Cached(c.path));
                }
            }
            Integrity::Mismatch(got) => {
                log::warn!("model {model_id}: cached file is corrupt (SHA-256 {got}); downloading")
            }
            Integrity::Missing => log::info!("model {model_id}: cached file is gone; downloading"),
        }
        if let Some(path) = &cached {
            // Best effort: a newer version in the catalog replaces ours.
            match catalog.entry(model_id) {
                Ok(Some(e)) => match (checksum(&e), &entry.checksum_sha256) {
                    (Some(want), Some(have)) if !want.eq_ignore_ascii_case(have) => {
                        log::info!("model {model_id}: the catalog has a new version; downloading");
                    }
                    _ => return Ok(Outcome::Cached(path.clone())),
                },
                _ => return Ok(Outcome::Cached(path.clone())),
            }
        }
    }
    match download(models_dir, model_id, catalog, &mut manifest) {
        Ok(o) => Ok(o),
        Err(e) => {
            prune_staging(&models_dir.join(store::dir_name(model_id)));
            match cached {
                Some(path) => {
                    log::warn!("model {model_id}: {e}; keeping the cached copy");
                    Ok(Outcome::Stale(path, e))
                }
                None => Err(e),
            }
        }
    }
}

fn save(manifest: &Manifest, models_dir: &Path) -> Result<(), String> {
    manifest
        .save(models_dir)
        .map_err(|e| format!("cannot write {}/manifest.json: {e}", models_dir.display()))
}

fn download(
    models_dir: &Path,
    model_id: &str,
    catalog: &dyn Catalog,
    manifest: &mut Manifest,
) -> Result<Outcome, String> {
    let entry = catalog
        .entry(model_id)
        .map_err(|e| format!("model catalog: {e}"))?
        .ok_or_else(|| format!("the model catalog does not know {model_id:?}"))?;
    let mut sources: Vec<(String, Source)> = Vec::new();
    // The catalog's uuid goes into a REST path: only a UUID.
    if let Some(uuid) = entry
        .get("uuid")
        .and_then(Value::as_str)
        .and_then(crate::config::parse_uuid)
        && let Some(url) = catalog.weights_url(&uuid)
    {
        sources.push((url, Source::ArtifactUrl));
    }
    if let Some(url) = upstream_url(&entry) {
        sources.push((url, Source::DownloadUrl));
    }
    let rt = runtime(&entry);
    if sources.is_empty() {
        return match rt.as_deref() {
            Some("ultralytics") | Some("faster_whisper") => Ok(Outcome::Deferred(format!(
                "{model_id} is fetched by its {} runtime inside the worker",
                rt.unwrap_or_default()
            ))),
            _ => Err(format!(
                "No download sources available for model {model_id} (no hosted weights, no download URL)"
            )),
        };
    }
    // The upstream URL names files plainly; a signed URL's object key may be opaque.
    let urls: Vec<&str> = sources.iter().rev().map(|(u, _)| u.as_str()).collect();
    let filename = filename_for(model_id, &entry, &urls);
    let dir = models_dir.join(store::dir_name(model_id));
    if dir.is_file() {
        return Err(format!(
            "{} is a file, not a model directory",
            dir.display()
        ));
    }
    let want = checksum(&entry);
    let mut last = String::new();
    for (url, source) in &sources {
        let bearer = catalog.bearer_for(url);
        let req = Request {
            url,
            dir: &dir,
            filename: &filename,
            sha256: want.as_deref(),
            timeout: Duration::from_secs(300),
            attempts: 3,
            bearer: bearer.as_deref(),
        };
        match download::fetch(&req) {
            Ok(d) => {
                let cached = Cached {
                    model_id: model_id.to_string(),
                    path: d.path.clone(),
                    sha256: d.sha256,
                    size: d.size,
                    runtime: rt
                        .clone()
                        .or_else(|| store::runtime_for(&filename).map(str::to_string)),
                    source: *source,
                    url: Some(url.clone()),
                };
                cached
                    .record(manifest)
                    .map_err(|e| format!("cannot write the sidecar of {model_id}: {e}"))?;
                save(manifest, models_dir)?;
                log::info!(
                    "model {model_id}: downloaded {} ({} bytes, {})",
                    d.path.display(),
                    d.size,
                    source.name()
                );
                return Ok(Outcome::Downloaded(d.path));
            }
            Err(e @ DownloadError::NoSpace { .. }) => return Err(e.to_string()),
            Err(e) => {
                // Never name a signed URL in full: its query string is a credential.
                let shown = url.split('?').next().unwrap_or(url);
                log::warn!("model {model_id}: download from {shown} failed: {e}");
                last = format!("download from {shown} failed: {e}");
            }
        }
    }
    Err(last)
}

/// A failed first download leaves nothing behind but an empty directory (the SDK prunes only
/// `.dl_*.part`; a partial we keep for resuming is that pattern).
fn prune_staging(dir: &Path) {
    let Ok(list) = std::fs::read_dir(dir) else {
        return;
    };
    let names: Vec<String> = list
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    if names.is_empty() {
        let _ = std::fs::remove_dir(dir);
    }
}

#[cfg(test)]
#[path = "ensure/tests.rs"]
mod tests;
