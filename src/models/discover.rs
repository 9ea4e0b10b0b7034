//! Which models the workers need: every `cw.models.load("<id>")` in `workers/*.py` (sorted,
//! as the original's regex `cw\.models\.load\s*\(\s*['"]([^'"]+)['"]\s*` finds them) and the
//! `models:` list of `workers/cyberwave.yml` (seed 000 documents it; ⚠ the original never reads
//! it). Ids are deduplicated in first-seen order. Files are read only when regular, bounded
//! and not symlinks.

use std::path::Path;

/// Largest worker file read for discovery.
const MAX_SOURCE_BYTES: u64 = 4 << 20;

/// The ids `cw.models.load(...)` is called with in one Python source.
pub fn ids_in_source(text: &str) -> Vec<String> {
    const CALL: &str = "cw.models.load";
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find(CALL) {
        rest = &rest[at + CALL.len()..];
        let after = rest.trim_start();
        let Some(after) = after.strip_prefix('(') else {
            continue;
        };
        let after = after.trim_start();
        let Some(after) = after.strip_prefix(['\'', '"']) else {
            continue;
        };
        let Some(end) = after.find(['\'', '"']) else {
            continue;
        };
        let id = after[..end].trim();
        if end > 0 && !id.is_empty() {
            out.push(id.to_string());
        }
    }
    out
}

/// The `models:` list of a workers `cyberwave.yml` (strings; other keys are not ours).
pub fn ids_in_manifest(text: &str) -> Result<Vec<String>, String> {
    #[derive(serde::Deserialize)]
    struct Doc {
        #[serde(default)]
        models: Vec<String>,
    }
    if crate::yaml::too_deep(text, 64).is_some() {
        return Err("nesting deeper than 64 levels".into());
    }
    let doc: Option<Doc> = serde_yaml_ng::from_str(text).map_err(|e| e.to_string())?;
    Ok(doc
        .map(|d| d.models)
        .unwrap_or_default()
        .into_iter()
        .map(|m| m.trim().to_string())
        .filter(|m| !m.is_empty())
        .collect())
}

/// Every model id the workers in `workers_dir` need, and a warning per file that could not be
/// read.
pub fn discover(workers_dir: &Path) -> (Vec<String>, Vec<String>) {
    let mut ids: Vec<String> = Vec::new();
    let mut warnings = Vec::new();
    let mut push = |found: Vec<String>| {
        for id in found {
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
    };
    let mut sources: Vec<_> = std::fs::read_dir(workers_dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "py"))
        .collect();
    sources.sort();
    // Regular files only, never through a symlink: the daemon runs as root, and a link to a
    // root-only file would carry its contents (as "model ids") to the backend, the log and
    // an alert; the worker container would not even see that file.
    let read = |p: &Path, max: u64| {
        crate::fsutil::read_regular_nofollow(p, max).and_then(|b| {
            String::from_utf8(b).map_err(|e| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("not UTF-8 text: {e}"),
                )
            })
        })
    };
    for p in sources {
        match read(&p, MAX_SOURCE_BYTES) {
            Ok(text) => push(ids_in_source(&text)),
            Err(e) => warnings.push(format!("{}: {e}", p.display())),
        }
    }
    let yml = workers_dir.join("cyberwave.yml");
    match read(&yml, 1 << 20) {
        Ok(text) => match ids_in_manifest(&text) {
            Ok(found) => push(found),
            Err(e) => warnings.push(format!("{}: {e}", yml.display())),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => warnings.push(format!("{}: {e}", yml.display())),
    }
    (ids, warnings)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_found_like_the_original_regex() {
        let src = r#"
import cyberwave as cw
a = cw.models.load("yolov8n")
b = cw.models.load( 'acme/models/detector' , device="cpu")
c = cw.models.load(
    "  spaced-id  ")
d = cw.models.load(model_id)          # not a literal: not found
e = cw.models.load("")                # empty: not found
f = cw.models.loader("x")             # another function
"#;
        assert_eq!(
            ids_in_source(src),
            ["yolov8n", "acme/models/detector", "spaced-id"]
        );
        // like the regex, either quote closes the literal
        assert_eq!(ids_in_source(r#"cw.models.load("a'b")"#), ["a"]);
    }

    #[test]
    fn discovery_reads_workers_and_their_cyberwave_yml_in_order() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            d.path().join("b.py"),
            "cw.models.load('m2')\ncw.models.load('m1')",
        )
        .unwrap();
        std::fs::write(d.path().join("a.py"), "cw.models.load('m1')").unwrap();
        std::fs::write(d.path().join("notes.txt"), "cw.models.load('ignored')").unwrap();
        std::fs::write(
            d.path().join("cyberwave.yml"),
            "models:\n  - yolov8n\n  - m2\nother: 1\n",
        )
        .unwrap();
        let (ids, warnings) = discover(d.path());
        assert_eq!(ids, ["m1", "m2", "yolov8n"]);
        assert!(warnings.is_empty(), "{warnings:?}");
        std::fs::write(d.path().join("cyberwave.yml"), "models: {not: a list}\n").unwrap();
        let (ids, warnings) = discover(d.path());
        assert_eq!(ids, ["m1", "m2"]);
        assert!(warnings[0].contains("cyberwave.yml"), "{warnings:?}");
    }

    #[test]
    fn symlinks_in_workers_are_never_followed() {
        let d = tempfile::tempdir().unwrap();
        let secret = d.path().join("root-only.txt");
        std::fs::write(
            &secret,
            "cw.models.load('root-secret-id')\nmodels:\n  - root-secret-yml\n",
        )
        .unwrap();
        let workers = d.path().join("workers");
        std::fs::create_dir(&workers).unwrap();
        std::os::unix::fs::symlink(&secret, workers.join("wf_link.py")).unwrap();
        std::os::unix::fs::symlink(&secret, workers.join("cyberwave.yml")).unwrap();
        std::fs::write(workers.join("wf_ok.py"), "cw.models.load('fine')").unwrap();
        let (ids, warnings) = discover(&workers);
        assert_eq!(ids, ["fine"]);
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(
            warnings
                .iter()
                .all(|w| w.contains("symlink") && !w.contains("root-secret")),
            "{warnings:?}"
        );
    }
}
