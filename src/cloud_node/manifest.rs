//! `cyberwave.yml`, in every shape the Cyberwave tools write it: the seed's
//! `cyberwave-cloud-node:` section, the SDK manifest's `cyberwave:` section, or a flat file
//! (SDK `cyberwave/manifest/schema.py`). Unknown keys are refused, as the SDK does. The file is
//! untrusted input: read only from a regular file, at most [`MAX_FILE_BYTES`], and refused
//! before parsing when its flow nesting is deeper than [`MAX_FLOW_DEPTH`] (the YAML scanner is
//! quadratic in it: 100,000 `[` cost 18 s of CPU).

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use serde_yaml_ng::Value as Yaml;

/// Largest `cyberwave.yml` we read; real ones are well under 10 KiB.
pub const MAX_FILE_BYTES: u64 = 1 << 20;
/// Deepest `[`/`{` nesting we hand to the YAML parser.
pub const MAX_FLOW_DEPTH: usize = 64;

/// What to do with a command when its function is at its concurrency limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WhenBusy {
    Queue,
    Reject,
}

/// Per-function limits (`functions.inference`, `functions.training`): our own extension.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FunctionFile {
    pub timeout_seconds: Option<f64>,
    pub memory_mb: Option<u64>,
    pub concurrency: Option<usize>,
    pub when_busy: Option<WhenBusy>,
}

/// The manifest's fields. Those this node does not act on are accepted (a valid SDK manifest
/// must start) and named in a warning by [`NodeFile::unused`].
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeFile {
    pub version: Option<Yaml>,
    pub name: Option<String>,
    pub install_script: Option<String>,
    /// The SDK manifest's name for `install_script`.
    pub install: Option<String>,
    pub inference: Option<String>,
    pub training: Option<String>,
    pub simulate: Option<String>,
    pub profile_slug: Option<String>,
    pub heartbeat_interval: Option<f64>,
    pub mqtt_host: Option<String>,
    pub mqtt_port: Option<u16>,
    pub mqtt_use_tls: Option<bool>,
    pub mqtt_tls_ca_certs: Option<String>,
    pub mqtt_username: Option<String>,
    pub mqtt_password: Option<String>,
    pub requirements: Option<Vec<Yaml>>,
    pub models: Option<Vec<Yaml>>,
    pub workers: Option<Vec<Yaml>>,
    pub input: Option<Vec<Yaml>>,
    pub gpu: Option<bool>,
    pub runtime: Option<String>,
    pub model: Option<String>,
    pub upload_results: Option<bool>,
    pub results_folder: Option<String>,
    pub resources: Option<Yaml>,
    #[serde(default)]
    pub functions: BTreeMap<String, FunctionFile>,
}

impl NodeFile {
    /// Keys that are set but that this node does not act on (yet).
    pub fn unused(&self) -> Vec<&'static str> {
        let set = [
            ("simulate", self.simulate.is_some()),
            ("requirements", self.requirements.is_some()),
            ("models", self.models.is_some()),
            ("workers", self.workers.is_some()),
            ("input", self.input.is_some()),
            ("gpu", self.gpu.is_some()),
            ("runtime", self.runtime.is_some()),
            ("model", self.model.is_some()),
            ("upload_results", self.upload_results.is_some()),
            ("results_folder", self.results_folder.is_some()),
            ("resources", self.resources.is_some()),
        ];
        set.iter().filter(|(_, on)| *on).map(|(k, _)| *k).collect()
    }

    /// The install script under either of its names.
    pub fn install_command(&self) -> Option<&String> {
        self.install_script.as_ref().or(self.install.as_ref())
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SdkShape {
    cyberwave: NodeFile,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SeedShape {
    #[serde(rename = "cyberwave-cloud-node")]
    node: NodeFile,
}

/// Reads and checks `cyberwave.yml`; every error names the file (and the key path, line and
/// column where the parser knows them).
pub fn load(path: &Path) -> Result<NodeFile, String> {
    let shown = path.display();
    let text = crate::fsutil::read_regular_text(path, MAX_FILE_BYTES)
        .map_err(|e| format!("{shown}: cannot read: {e}"))?;
    parse(&text).map_err(|e| format!("{shown}: {e}"))
}

/// Parses the text of a manifest in any of its three shapes.
pub fn parse(text: &str) -> Result<NodeFile, String> {
    if let Some(line) = crate::yaml::too_deep(text, MAX_FLOW_DEPTH) {
        return Err(format!(
            "nesting deeper than {MAX_FLOW_DEPTH} levels at line {line}"
        ));
    }
    let top: Yaml = serde_yaml_ng::from_str(text).map_err(|e| e.to_string())?;
    let key = |k: &str| top.as_mapping().is_some_and(|m| m.contains_key(k));
    let file = match (key("cyberwave"), key("cyberwave-cloud-node")) {
        (true, true) => {
            return Err("both `cyberwave:` and `cyberwave-cloud-node:` sections: keep one".into());
        }
        (true, false) => {
            serde_yaml_ng::from_str::<SdkShape>(text)
                .map_err(|e| e.to_string())?
                .cyberwave
        }
        (false, true) => {
            serde_yaml_ng::from_str::<SeedShape>(text)
                .map_err(|e| e.to_string())?
                .node
        }
        (false, false) if top.is_null() => return Err("the file is empty".into()),
        (false, false) => serde_yaml_ng::from_str::<NodeFile>(text).map_err(|e| e.to_string())?,
    };
    check(&file)?;
    Ok(file)
}

fn check(f: &NodeFile) -> Result<(), String> {
    if f.install.is_some() && f.install_script.is_some() {
        return Err("`install` and `install_script` are the same setting: keep one".into());
    }
    if let Some(v) = &f.version {
        let ok = match v {
            Yaml::String(s) => s == "1",
            Yaml::Number(n) => n.as_u64() == Some(1),
            _ => false,
        };
        if !ok {
            return Err(format!(
                "version: unsupported manifest version {} (expected \"1\")",
                serde_yaml_ng::to_string(v).unwrap_or_default().trim()
            ));
        }
    }
    if f.runtime.is_some() && f.model.is_none() && f.inference.is_none() {
        return Err("runtime: needs `model` or `inference` as well".into());
    }
    for key in f.functions.keys() {
        if key != "inference" && key != "training" {
            return Err(format!(
                "functions.{key}: unknown function (expected inference or training)"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_shapes() {
        let seed =
            parse("cyberwave-cloud-node:\n  inference: echo {body}\n  install_script: ./i.sh\n")
                .unwrap();
        assert_eq!(seed.inference.as_deref(), Some("echo {body}"));
        assert_eq!(seed.install_command().map(String::as_str), Some("./i.sh"));
        let sdk = parse(
            "cyberwave:\n  version: \"1\"\n  name: demo\n  install: ./i.sh\n  training: t {body}\n  mqtt_use_tls: true\n  mqtt_username: u\n  mqtt_password: p\n  mqtt_tls_ca_certs: /ca.pem\n  gpu: true\n",
        )
        .unwrap();
        assert_eq!(sdk.install_command().map(String::as_str), Some("./i.sh"));
        assert_eq!(sdk.mqtt_use_tls, Some(true));
        assert_eq!(sdk.mqtt_tls_ca_certs.as_deref(), Some("/ca.pem"));
        assert_eq!(sdk.unused(), vec!["gpu"]);
        let flat = parse("inference: x {body}\nprofile_slug: gpu\n").unwrap();
        assert_eq!(flat.profile_slug.as_deref(), Some("gpu"));
    }

    #[test]
    fn refusals_name_the_key() {
        for (text, want) in [
            ("cyberwave:\n  inferance: x\n", "unknown field `inferance`"),
            ("other: 1\n", "unknown field `other`"),
            ("cyberwave: {}\ncyberwave-cloud-node: {}\n", "keep one"),
            ("cyberwave:\n  version: 2\n", "unsupported manifest version"),
            ("cyberwave:\n  runtime: onnx\n", "runtime"),
            ("install: a\ninstall_script: b\n", "keep one"),
            (
                "functions:\n  simulate: {timeout_seconds: 1}\n",
                "functions.simulate",
            ),
            ("", "empty"),
            (
                "cyberwave-cloud-node:\n  heartbeat_interval: often\n",
                "heartbeat_interval",
            ),
        ] {
            let e = parse(text).unwrap_err();
            assert!(e.contains(want), "{text:?}: {e}");
        }
    }

    #[test]
    fn deep_nesting_is_refused_before_parsing() {
        let deep = format!("a: {}{}", "[".repeat(100_000), "]".repeat(100_000));
        let t = std::time::Instant::now();
        assert!(parse(&deep).unwrap_err().contains("nesting deeper than 64"));
        assert!(t.elapsed() < std::time::Duration::from_secs(1));
        let block = format!("a:\n{}x\n", "- ".repeat(100_000));
        assert!(parse(&block).is_err());
        // brackets in quotes and comments do not count
        let quoted = format!(
            "inference: '{}'\n# {}\ntraining: \"{}\"\n",
            "[".repeat(100),
            "{".repeat(100),
            "[".repeat(100)
        );
        assert_eq!(crate::yaml::too_deep(&quoted, 64), None);
        assert_eq!(crate::yaml::too_deep("a: [[[\n", 2), Some(1));
    }
}
