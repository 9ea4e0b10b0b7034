//! The desired state the backend gave us for this edge (twins of the linked environment and
//! the assets of the twins that run drivers), cached atomically in the config dir so an
//! offline boot knows what this edge is for.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{Value, json};

use crate::config::{DESIRED_STATE_CACHE_FILE, FileError, FileProblem};
use crate::twins::Twin;

#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    Backend,
    Cache,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DesiredState {
    pub environment_uuid: String,
    /// `GET /environments/{uuid}/twins`, each parsed once (a twin without a valid uuid is
    /// dropped with a warning: it could never become a file, topic or container name).
    pub twins: Vec<Twin>,
    /// Asset objects by asset UUID, for the twins linked by the driver rule.
    pub assets: BTreeMap<String, Value>,
    /// Epoch seconds of the backend answer.
    pub fetched_at: f64,
    pub source: Source,
}

impl DesiredState {
    /// Parses the twins of an answer, the cache or a manifest, once.
    pub fn new(
        environment_uuid: &str,
        twins: &[Value],
        assets: BTreeMap<String, Value>,
        fetched_at: f64,
        source: Source,
    ) -> Self {
        let (twins, ignored) = Twin::parse_all(twins);
        if ignored > 0 {
            log::warn!(
                "environment {environment_uuid}: {ignored} twin(s) without a valid uuid ignored"
            );
        }
        DesiredState {
            environment_uuid: environment_uuid.to_string(),
            twins,
            assets,
            fetched_at,
            source,
        }
    }

    /// The twin with this uuid.
    pub fn twin_mut(&mut self, uuid: &str) -> Option<&mut Twin> {
        self.twins.iter_mut().find(|t| t.uuid == uuid)
    }

    pub fn to_json(&self) -> Value {
        let twins: Vec<&Value> = self.twins.iter().map(|t| &t.raw).collect();
        json!({
            "version": 1,
            "environment_uuid": self.environment_uuid,
            "fetched_at": self.fetched_at,
            "twins": twins,
            "assets": self.assets,
        })
    }

    /// Parses the cache file's JSON; anything malformed is an error naming the field.
    pub fn from_json(v: &Value) -> Result<Self, String> {
        let env = v
            .get("environment_uuid")
            .and_then(Value::as_str)
            .ok_or("missing \"environment_uuid\"")?;
        let twins = v
            .get("twins")
            .and_then(Value::as_array)
            .ok_or("missing \"twins\" list")?;
        let assets = match v.get("assets") {
            None | Some(Value::Null) => BTreeMap::new(),
            Some(Value::Object(m)) => m.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            Some(_) => return Err("\"assets\" must be an object".into()),
        };
        let fetched_at = v.get("fetched_at").and_then(Value::as_f64).unwrap_or(0.0);
        Ok(DesiredState::new(
            env,
            twins,
            assets,
            fetched_at,
            Source::Cache,
        ))
    }
}

/// Writes the cache (0600: twin metadata can carry site details).
pub fn save(config_dir: &Path, state: &DesiredState) -> std::io::Result<()> {
    crate::fsutil::write_json_atomic(
        &config_dir.join(DESIRED_STATE_CACHE_FILE),
        &state.to_json(),
        0o600,
    )
}

/// Loads the cache if it exists and is for `environment_uuid`.
pub fn load(config_dir: &Path, environment_uuid: &str) -> Result<Option<DesiredState>, FileError> {
    let path = config_dir.join(DESIRED_STATE_CACHE_FILE);
    // The cache holds backend answers: it may be as large as they are.
    let map = match crate::config::read_json_object_max(&path, crate::backend::MAX_ANSWER_BYTES * 2)
    {
        Ok(m) => m,
        Err(FileError {
            problem: FileProblem::Missing,
            ..
        }) => return Ok(None),
        Err(e) => return Err(e),
    };
    let state = DesiredState::from_json(&Value::Object(map)).map_err(|m| FileError {
        path: path.clone(),
        problem: FileProblem::Invalid(m),
    })?;
    Ok((state.environment_uuid == environment_uuid).then_some(state))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_environment_match() {
        let d = tempfile::tempdir().unwrap();
        let s = DesiredState::new(
            "e1",
            &[
                json!({"uuid": "aaaaaaaa-0000-4000-8000-000000000001", "asset_id": "6ba7b810-9dad-11d1-80b4-00c04fd430c8"}),
                json!({"uuid": "t1"}),
            ],
            BTreeMap::from([("a".to_string(), json!({"uuid": "a"}))]),
            12.5,
            Source::Backend,
        );
        assert_eq!(s.twins.len(), 1, "a twin without a valid uuid is dropped");
        save(d.path(), &s).unwrap();
        let back = load(d.path(), "e1").unwrap().unwrap();
        assert_eq!(back.twins, s.twins);
        assert_eq!(back.assets, s.assets);
        assert_eq!(back.source, Source::Cache);
        assert!(load(d.path(), "e2").unwrap().is_none());
        assert_eq!(
            s.twins[0].asset_uuid.as_deref(),
            Some("6ba7b810-9dad-11d1-80b4-00c04fd430c8")
        );
        std::fs::write(d.path().join(DESIRED_STATE_CACHE_FILE), "{\"twins\":[]}").unwrap();
        let e = load(d.path(), "e1").unwrap_err().to_string();
        assert!(e.contains("environment_uuid"), "{e}");
    }
}
