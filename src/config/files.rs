use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde_json::Value;

/// A config file that could not be used, naming the file and what is wrong with it.
#[derive(Debug, Clone, PartialEq)]
pub struct FileError {
    pub path: PathBuf,
    pub problem: FileProblem,
}

#[derive(Debug, Clone, PartialEq)]
pub enum FileProblem {
    Missing,
    Unreadable(String),
    InvalidJson {
        line: usize,
        column: usize,
        message: String,
    },
    Invalid(String),
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = self.path.display();
        match &self.problem {
            FileProblem::Missing => write!(f, "{p}: file not found"),
            FileProblem::Unreadable(e) => write!(f, "{p}: cannot read: {e}"),
            FileProblem::InvalidJson {
                line,
                column,
                message,
            } => write!(
                f,
                "{p}: invalid JSON at line {line}, column {column}: {message}"
            ),
            FileProblem::Invalid(m) => write!(f, "{p}: {m}"),
        }
    }
}

impl std::error::Error for FileError {}

/// Reads and parses a JSON object file, mapping each failure to a [`FileError`].
/// Config files are a few KiB; 4 MiB bounds a hostile one, and a FIFO never blocks us.
pub(crate) fn read_json_object(path: &Path) -> Result<serde_json::Map<String, Value>, FileError> {
    read_json_object_max(path, 4 << 20)
}

/// [`read_json_object`] for a file of at most `max` bytes (state files copied from backend
/// answers are larger than config files).
pub(crate) fn read_json_object_max(
    path: &Path,
    max: u64,
) -> Result<serde_json::Map<String, Value>, FileError> {
    let err = |problem| FileError {
        path: path.to_path_buf(),
        problem,
    };
    let text = match crate::fsutil::read_regular_text(path, max) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(err(FileProblem::Missing));
        }
        Err(e) => return Err(err(FileProblem::Unreadable(e.to_string()))),
    };
    match serde_json::from_str::<Value>(&text) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Err(err(FileProblem::Invalid(format!(
            "expected a JSON object, found {}",
            json_kind(&other)
        )))),
        Err(e) => Err(err(FileProblem::InvalidJson {
            line: e.line(),
            column: e.column(),
            message: e
                .to_string()
                .split(" at line")
                .next()
                .unwrap_or("")
                .to_string(),
        })),
    }
}

pub(crate) fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// `credentials.json`, written by `cyberwave login` / `cyberwave edge install` (reference §4.5).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Credentials {
    /// The API token (`cw_…`); `None` when the field is missing or blank.
    pub token: Option<String>,
    /// Runtime env defaults, layered under the process environment.
    pub envs: BTreeMap<String, String>,
    pub workspace_uuid: Option<String>,
    /// `driver_overrides`: twin uuid → image (single-container drivers).
    pub driver_overrides: BTreeMap<String, String>,
    /// Entries we skipped, for a warning each (non-string `envs` values and the like).
    pub warnings: Vec<String>,
}

impl Credentials {
    pub fn load(path: &Path) -> Result<Self, FileError> {
        let map = read_json_object(path)?;
        let invalid = |m: String| FileError {
            path: path.to_path_buf(),
            problem: FileProblem::Invalid(m),
        };
        let mut creds = Credentials::default();
        match map.get("token") {
            None | Some(Value::Null) => {}
            Some(Value::String(s)) => {
                let t = s.trim();
                if !t.is_empty() {
                    creds.token = Some(t.to_string());
                }
            }
            Some(other) => {
                return Err(invalid(format!(
                    "\"token\" must be a string, found {}",
                    json_kind(other)
                )));
            }
        }
        if let Some(Value::String(ws)) = map.get("workspace_uuid") {
            creds.workspace_uuid = Some(ws.trim().to_string()).filter(|s| !s.is_empty());
        }
        // Legacy flat layout: CYBERWAVE_* keys at the top level, below `envs`.
        for (k, v) in &map {
            if k.starts_with("CYBERWAVE_")
                && let Value::String(s) = v
                && !s.trim().is_empty()
            {
                creds.envs.insert(k.clone(), s.trim().to_string());
            }
        }
        if let Some(Value::Object(o)) = map.get("driver_overrides") {
            for (twin, image) in o {
                match (parse_uuid(twin), image.as_str()) {
                    (Some(t), Some(i)) if !i.trim().is_empty() => {
                        creds.driver_overrides.insert(t, i.trim().to_string());
                    }
                    _ => creds.warnings.push(format!(
                        "{}: driver_overrides.{twin} ignored: expected a twin UUID and an image",
                        path.display()
                    )),
                }
            }
        }
        match map.get("envs") {
            None | Some(Value::Null) => {}
            Some(Value::Object(envs)) => {
                for (k, v) in envs {
                    match v {
                        Value::String(s) if !s.trim().is_empty() => {
                            creds.envs.insert(k.clone(), s.trim().to_string());
                        }
                        Value::String(_) => {}
                        other => creds.warnings.push(format!(
                            "{}: envs.{k} ignored: expected a string, found {}",
                            path.display(),
                            json_kind(other)
                        )),
                    }
                }
            }
            Some(other) => {
                return Err(invalid(format!(
                    "\"envs\" must be an object of strings, found {}",
                    json_kind(other)
                )));
            }
        }
        Ok(creds)
    }
}

/// `environment.json`: the environment this edge is linked to (reference §4.6).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EnvironmentFile {
    /// Canonical lowercase environment UUID.
    pub uuid: Option<String>,
    pub name: Option<String>,
    /// Worker / twin-command scope when the key is a list (an empty list is honoured).
    pub twin_uuids: Option<Vec<String>>,
}

impl EnvironmentFile {
    pub fn load(path: &Path) -> Result<Self, FileError> {
        let map = read_json_object(path)?;
        let invalid = |m: String| FileError {
            path: path.to_path_buf(),
            problem: FileProblem::Invalid(m),
        };
        let mut env = EnvironmentFile::default();
        match map.get("uuid") {
            None | Some(Value::Null) => {
                return Err(invalid(
                    "no \"uuid\" field: expected {\"uuid\": \"<environment uuid>\"}".into(),
                ));
            }
            Some(Value::String(s)) => match parse_uuid(s) {
                Some(u) => env.uuid = Some(u),
                None => return Err(invalid(format!("\"uuid\" is not a UUID: {s:?}"))),
            },
            Some(other) => {
                return Err(invalid(format!(
                    "\"uuid\" must be a string, found {}",
                    json_kind(other)
                )));
            }
        }
        if let Some(Value::String(n)) = map.get("name") {
            env.name = Some(n.clone());
        }
        if let Some(Value::Array(items)) = map.get("twin_uuids") {
            let mut out: Vec<String> = Vec::new();
            for item in items {
                if let Value::String(s) = item {
                    let s = s.trim();
                    if !s.is_empty() && !out.iter().any(|o| o == s) {
                        out.push(s.to_string());
                    }
                }
            }
            env.twin_uuids = Some(out);
        }
        Ok(env)
    }
}

/// Parses a UUID the way Python's `uuid.UUID()` accepts it (hyphens optional, braces and
/// `urn:uuid:` allowed) and returns the canonical lowercase hyphenated form. Used on every id
/// before it becomes part of a file name, topic or container name.
pub fn parse_uuid(s: &str) -> Option<String> {
    let mut t = s.trim();
    if let Some(rest) = t.strip_prefix("urn:uuid:") {
        t = rest;
    }
    let t = t.trim_start_matches('{').trim_end_matches('}');
    let hex: String = t.chars().filter(|c| *c != '-').collect();
    if hex.len() != 32 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let h = hex.to_ascii_lowercase();
    Some(format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    ))
}

/// The edge uuid recorded in `edge.json`, if the file holds a valid one.
pub fn edge_uuid(config_dir: &Path) -> Option<String> {
    let text =
        crate::fsutil::read_regular_text(&config_dir.join(super::EDGE_FILE), 4 << 20).ok()?;
    let v: Value = serde_json::from_str(&text).ok()?;
    v.get("uuid").and_then(Value::as_str).and_then(parse_uuid)
}

/// Writes `edge.json` (the backend's `EdgeSchema`), indent 2, mode 0644 (reference §4.7).
pub fn write_edge_json(config_dir: &Path, edge: &Value) -> std::io::Result<()> {
    crate::fsutil::write_json_atomic(&config_dir.join(super::EDGE_FILE), edge, 0o644)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(content: &str) -> (tempfile::TempDir, PathBuf) {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f.json");
        std::fs::write(&p, content).unwrap();
        (d, p)
    }

    #[test]
    fn credentials_token_and_envs() {
        let (_d, p) = file(
            r#"{"token":" cw_abc ","envs":{"CYBERWAVE_ENVIRONMENT":"dev","N":3,"E":""},"CYBERWAVE_BASE_URL":"http://x"}"#,
        );
        let c = Credentials::load(&p).unwrap();
        assert_eq!(c.token.as_deref(), Some("cw_abc"));
        assert_eq!(c.envs.get("CYBERWAVE_ENVIRONMENT").unwrap(), "dev");
        assert_eq!(c.envs.get("CYBERWAVE_BASE_URL").unwrap(), "http://x");
        assert!(!c.envs.contains_key("E"));
        assert_eq!(c.warnings.len(), 1);
        assert!(c.warnings[0].contains("envs.N"));
    }

    #[test]
    fn credentials_errors_name_file_and_problem() {
        let (_d, p) = file("{\"token\": ");
        let e = Credentials::load(&p).unwrap_err();
        assert!(matches!(
            e.problem,
            FileProblem::InvalidJson { line: 1, .. }
        ));
        assert!(e.to_string().contains("f.json: invalid JSON at line 1"));
        let (_d, p) = file("[1]");
        assert!(
            Credentials::load(&p)
                .unwrap_err()
                .to_string()
                .contains("expected a JSON object")
        );
        let (_d, p) = file("{\"token\": 5}");
        assert!(
            Credentials::load(&p)
                .unwrap_err()
                .to_string()
                .contains("\"token\" must be a string")
        );
        let e = Credentials::load(Path::new("/nonexistent/credentials.json")).unwrap_err();
        assert_eq!(e.problem, FileProblem::Missing);
    }

    #[test]
    fn environment_uuid_is_canonicalised() {
        let (_d, p) = file(
            r#"{"uuid":"{6BA7B810-9DAD-11D1-80B4-00C04FD430C8}","twin_uuids":["a"," a ",1,"b",""]}"#,
        );
        let e = EnvironmentFile::load(&p).unwrap();
        assert_eq!(
            e.uuid.as_deref(),
            Some("6ba7b810-9dad-11d1-80b4-00c04fd430c8")
        );
        assert_eq!(e.twin_uuids, Some(vec!["a".to_string(), "b".to_string()]));
        let (_d, p) = file(r#"{"uuid":"not-a-uuid"}"#);
        let err = EnvironmentFile::load(&p).unwrap_err().to_string();
        assert!(err.contains("\"uuid\" is not a UUID"), "{err}");
        let (_d, p) = file(r#"{"name":"x"}"#);
        assert!(
            EnvironmentFile::load(&p)
                .unwrap_err()
                .to_string()
                .contains("no \"uuid\"")
        );
    }

    #[test]
    fn uuid_forms() {
        let c = "6ba7b810-9dad-11d1-80b4-00c04fd430c8";
        assert_eq!(
            parse_uuid("6ba7b8109dad11d180b400c04fd430c8").as_deref(),
            Some(c)
        );
        assert_eq!(
            parse_uuid("urn:uuid:6ba7b810-9dad-11d1-80b4-00c04fd430c8").as_deref(),
            Some(c)
        );
        assert_eq!(parse_uuid("../../etc/passwd"), None);
        assert_eq!(parse_uuid("6ba7b810-9dad-11d1-80b4-00c04fd430c"), None);
    }
}
