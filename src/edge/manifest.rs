//! Local mode's manifest (`run --local FILE`): twins with driver metadata in the backend's
//! shape, so the same orchestration runs with no account, backend or broker.
//!
//! ```json
//! {"environment_uuid": "…optional…",
//!  "twins": [{"uuid": "…", "name": "cam", "asset_uuid": "…", "metadata": {…}}],
//!  "assets": [{"uuid": "…", "metadata": {"drivers": {"default": {"docker_image": "x:local"}}}}]}
//! ```
//! `assets` may also be an object keyed by asset UUID. Every twin in the file is this edge's.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use super::desired::{DesiredState, Source};
use crate::config::{FileError, FileProblem, parse_uuid};

#[derive(Debug)]
pub struct Manifest {
    pub environment_uuid: String,
    pub twins: Vec<Value>,
    pub assets: BTreeMap<String, Value>,
}

impl Manifest {
    pub fn into_desired(self) -> DesiredState {
        DesiredState::new(
            &self.environment_uuid,
            &self.twins,
            self.assets,
            crate::epoch_seconds(),
            Source::Cache,
        )
    }
}

pub fn load(path: &Path) -> Result<Manifest, FileError> {
    let map = crate::config::read_json_object_pub(path)?;
    let invalid = |m: String| FileError {
        path: path.to_path_buf(),
        problem: FileProblem::Invalid(m),
    };
    let twins = map
        .get("twins")
        .and_then(Value::as_array)
        .ok_or_else(|| invalid("no \"twins\" list".into()))?
        .clone();
    for (i, t) in twins.iter().enumerate() {
        let uuid = t.get("uuid").and_then(Value::as_str).unwrap_or("");
        if parse_uuid(uuid).is_none() {
            return Err(invalid(format!("twins[{i}].uuid is not a UUID: {uuid:?}")));
        }
    }
    let mut assets = BTreeMap::new();
    match map.get("assets") {
        None | Some(Value::Null) => {}
        Some(Value::Array(list)) => {
            for (i, a) in list.iter().enumerate() {
                let uuid = a
                    .get("uuid")
                    .and_then(Value::as_str)
                    .and_then(parse_uuid)
                    .ok_or_else(|| invalid(format!("assets[{i}].uuid is not a UUID")))?;
                assets.insert(uuid, a.clone());
            }
        }
        Some(Value::Object(m)) => {
            for (k, a) in m {
                let uuid = parse_uuid(k)
                    .ok_or_else(|| invalid(format!("assets key {k:?} is not a UUID")))?;
                assets.insert(uuid, a.clone());
            }
        }
        Some(_) => return Err(invalid("\"assets\" must be a list or an object".into())),
    }
    let environment_uuid = map
        .get("environment_uuid")
        .and_then(Value::as_str)
        .and_then(parse_uuid)
        .unwrap_or_else(|| "00000000-0000-4000-8000-000000000000".into());
    Ok(Manifest {
        environment_uuid,
        twins,
        assets,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_names_problems() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("m.json");
        std::fs::write(&p, r#"{"twins":[{"uuid":"11111111-2222-4333-8444-555555555555","asset_uuid":"aaaaaaaa-0000-4000-8000-000000000001"}],"assets":[{"uuid":"aaaaaaaa-0000-4000-8000-000000000001"}]}"#).unwrap();
        let m = load(&p).unwrap();
        assert_eq!(m.twins.len(), 1);
        assert!(
            m.assets
                .contains_key("aaaaaaaa-0000-4000-8000-000000000001")
        );
        std::fs::write(&p, r#"{"twins":[{"uuid":"../etc"}]}"#).unwrap();
        assert!(
            load(&p)
                .unwrap_err()
                .to_string()
                .contains("twins[0].uuid is not a UUID")
        );
        std::fs::write(&p, r#"{"twin":[]}"#).unwrap();
        assert!(
            load(&p)
                .unwrap_err()
                .to_string()
                .contains("no \"twins\" list")
        );
    }
}
