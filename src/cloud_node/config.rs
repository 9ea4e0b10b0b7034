//! Cloud node configuration: `cyberwave.yml` (key `cyberwave-cloud-node`), environment
//! variables and command-line flags (flags over file over env), and the API token from
//! `CYBERWAVE_API_TOKEN` → `./.env` → `~/.cyberwave/.env` → `~/.cyberwave/credentials.json`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::config::{Secret, SettingsError};
use crate::mqtt::BrokerConfig;

/// What to do with a command when its function is at its concurrency limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WhenBusy {
    Queue,
    Reject,
}

/// Per-function limits (`functions.inference`, `functions.training` in the file).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FunctionFile {
    pub timeout_seconds: Option<f64>,
    pub memory_mb: Option<u64>,
    pub concurrency: Option<usize>,
    pub when_busy: Option<WhenBusy>,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeFile {
    pub install_script: Option<String>,
    pub inference: Option<String>,
    pub training: Option<String>,
    pub profile_slug: Option<String>,
    pub heartbeat_interval: Option<f64>,
    pub mqtt_host: Option<String>,
    pub mqtt_port: Option<u16>,
    #[serde(default)]
    pub functions: BTreeMap<String, FunctionFile>,
}

#[derive(Debug, Deserialize)]
struct Document {
    #[serde(rename = "cyberwave-cloud-node")]
    node: Option<NodeFile>,
}

/// Reads `cyberwave.yml`; errors name the file, the key path, line and column.
pub fn load_file(path: &Path) -> Result<NodeFile, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
    let doc: Document =
        serde_yaml_ng::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    doc.node
        .ok_or_else(|| format!("{}: no `cyberwave-cloud-node:` section", path.display()))
}

/// A function's effective limits.
#[derive(Debug, Clone, PartialEq)]
pub struct FunctionLimits {
    pub timeout: Duration,
    pub memory_mb: Option<u64>,
    pub concurrency: usize,
    pub when_busy: WhenBusy,
}

#[derive(Debug, Clone)]
pub struct NodeSettings {
    pub install_script: Option<String>,
    pub inference: Option<String>,
    pub training: Option<String>,
    pub profile_slug: String,
    pub slug_hint: Option<String>,
    pub workspace_slug: Option<String>,
    pub environment_uuid: Option<String>,
    pub heartbeat_interval: Duration,
    pub api_url: String,
    pub token: Secret,
    pub mqtt: BrokerConfig,
    pub inference_limits: FunctionLimits,
    pub training_limits: FunctionLimits,
    pub shutdown_grace: Duration,
    pub output_cap: usize,
    pub state_dir: PathBuf,
    pub control_socket: PathBuf,
}

/// Command-line overrides.
#[derive(Debug, Clone, Default)]
pub struct Flags {
    pub slug: Option<String>,
    pub config: Option<PathBuf>,
    pub profile: Option<String>,
    pub mqtt_host: Option<String>,
    pub mqtt_port: Option<u16>,
}

/// Token lookup in the documented order; returns the token and where it came from.
pub fn find_token(
    get: &dyn Fn(&str) -> Option<String>,
    cwd: &Path,
    home: &Path,
) -> Option<(String, String)> {
    if let Some(t) = get("CYBERWAVE_API_TOKEN") {
        return Some((t, "CYBERWAVE_API_TOKEN".into()));
    }
    for env_file in [cwd.join(".env"), home.join(".cyberwave/.env")] {
        if let Ok(iter) = dotenvy::from_path_iter(&env_file) {
            for (k, v) in iter.flatten() {
                if k == "CYBERWAVE_API_TOKEN" && !v.trim().is_empty() {
                    return Some((v.trim().to_string(), env_file.display().to_string()));
                }
            }
        }
    }
    let creds = home.join(".cyberwave/credentials.json");
    crate::config::Credentials::load(&creds)
        .ok()
        .and_then(|c| c.token)
        .map(|t| (t, creds.display().to_string()))
}

/// Values of `./.env` and `~/.cyberwave/.env` (process env wins over them).
fn dotenv_values(cwd: &Path, home: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for env_file in [home.join(".cyberwave/.env"), cwd.join(".env")] {
        if let Ok(iter) = dotenvy::from_path_iter(&env_file) {
            for (k, v) in iter.flatten() {
                out.insert(k, v);
            }
        }
    }
    out
}

fn limits(
    file: Option<&FunctionFile>,
    timeout: f64,
    concurrency: usize,
    when_busy: WhenBusy,
) -> FunctionLimits {
    FunctionLimits {
        timeout: Duration::from_secs_f64(
            file.and_then(|f| f.timeout_seconds)
                .filter(|t| *t > 0.0)
                .unwrap_or(timeout),
        ),
        memory_mb: file.and_then(|f| f.memory_mb).filter(|m| *m > 0),
        concurrency: file
            .and_then(|f| f.concurrency)
            .filter(|c| *c > 0)
            .unwrap_or(concurrency),
        when_busy: file.and_then(|f| f.when_busy).unwrap_or(when_busy),
    }
}

/// Builds the settings: flags over file over environment over defaults.
pub fn load(flags: &Flags, cwd: &Path, home: &Path) -> Result<NodeSettings, String> {
    let dotenv = dotenv_values(cwd, home);
    let process: std::collections::HashMap<String, String> = std::env::vars().collect();
    let env = crate::config::EnvLayer::new(process, dotenv);
    let get = |k: &str| env.get(k);
    let file_path = flags
        .config
        .clone()
        .or_else(|| Some(cwd.join("cyberwave.yml")).filter(|p| p.exists()));
    let file = match &file_path {
        Some(p) => load_file(p)?,
        None => NodeFile::default(),
    };
    for key in file.functions.keys() {
        if key != "inference" && key != "training" {
            return Err(format!(
                "{}: functions.{key}: unknown function (expected inference or training)",
                file_path
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default()
            ));
        }
    }
    let (token, _) = find_token(&get, cwd, home).ok_or_else(|| {
        "no API token: set CYBERWAVE_API_TOKEN, put it in ./.env or ~/.cyberwave/.env, or run 'cyberwave login'".to_string()
    })?;
    let api_url = get("CYBERWAVE_API_URL")
        .or_else(|| get("CYBERWAVE_BASE_URL"))
        .unwrap_or_else(|| "https://api.cyberwave.com".into())
        .trim_end_matches('/')
        .to_string();
    let num = |k: &str| -> Result<Option<f64>, String> {
        get(k)
            .map(|v| {
                v.parse::<f64>()
                    .map_err(|_| format!("invalid {k}={v:?}: expected a number"))
            })
            .transpose()
    };
    let heartbeat = file
        .heartbeat_interval
        .or(num("CYBERWAVE_HEARTBEAT_INTERVAL")?)
        .unwrap_or(30.0)
        .max(1.0);

    // MQTT: flags, then file, then the SDK variables. The cloud node's documented default port
    // is 1883 (plain); 8883 or CYBERWAVE_MQTT_USE_TLS turn TLS on.
    let mut mqtt_env: std::collections::HashMap<String, String> = std::collections::HashMap::new();
    for k in [
        "CYBERWAVE_MQTT_USE_TLS",
        "CYBERWAVE_MQTT_TLS_CA_CERT",
        "CYBERWAVE_MQTT_USERNAME",
        "CYBERWAVE_MQTT_PASSWORD",
        "CYBERWAVE_MQTT_TOPIC_PREFIX",
        "CYBERWAVE_TOPIC_PREFIX",
        "CYBERWAVE_ENVIRONMENT",
        "CYBERWAVE_MQTT_CONNECT_TIMEOUT",
    ] {
        if let Some(v) = get(k) {
            mqtt_env.insert(k.into(), v);
        }
    }
    let host = flags
        .mqtt_host
        .clone()
        .or(file.mqtt_host.clone())
        .or(get("CYBERWAVE_MQTT_HOST"))
        .unwrap_or_else(|| crate::mqtt::DEFAULT_MQTT_HOST.into());
    let port = match flags.mqtt_port.or(file.mqtt_port) {
        Some(p) => p,
        None => match get("CYBERWAVE_MQTT_PORT") {
            Some(p) => p.parse().map_err(|_| {
                format!("invalid CYBERWAVE_MQTT_PORT={p:?}: expected a port number")
            })?,
            None => 1883,
        },
    };
    mqtt_env.insert("CYBERWAVE_MQTT_HOST".into(), host);
    mqtt_env.insert("CYBERWAVE_MQTT_PORT".into(), port.to_string());
    let mqtt_layer = crate::config::EnvLayer::new(mqtt_env, BTreeMap::new());
    // A public base URL keeps the explicit host; the private-URL inference of the edge core
    // does not apply to cloud nodes, so resolve against a public placeholder.
    let (mqtt, _) = BrokerConfig::resolve(&mqtt_layer, "https://api.cyberwave.com", Some(&token))
        .map_err(|e: SettingsError| e.to_string())?;

    let grace = num("CYBERWAVE_CLOUD_NODE_SHUTDOWN_GRACE_SECONDS")?
        .unwrap_or(30.0)
        .max(0.0);
    let state_dir = home.join(".cyberwave");
    Ok(NodeSettings {
        install_script: file
            .install_script
            .clone()
            .or(get("CYBERWAVE_INSTALL_SCRIPT")),
        inference: file.inference.clone().or(get("CYBERWAVE_INFERENCE_CMD")),
        training: file.training.clone().or(get("CYBERWAVE_TRAINING_CMD")),
        profile_slug: flags
            .profile
            .clone()
            .or(file.profile_slug.clone())
            .or(get("CYBERWAVE_PROFILE_SLUG"))
            .unwrap_or_else(|| "default".into()),
        slug_hint: flags.slug.clone().or(get("CYBERWAVE_INSTANCE_SLUG")),
        workspace_slug: get("CYBERWAVE_WORKSPACE_SLUG"),
        environment_uuid: get("CYBERWAVE_ENVIRONMENT_UUID"),
        heartbeat_interval: Duration::from_secs_f64(heartbeat),
        api_url,
        token: Secret::new(token),
        mqtt,
        inference_limits: limits(file.functions.get("inference"), 300.0, 4, WhenBusy::Queue),
        training_limits: limits(file.functions.get("training"), 86_400.0, 1, WhenBusy::Queue),
        shutdown_grace: Duration::from_secs_f64(grace),
        output_cap: 1024 * 1024,
        control_socket: get("CYBERWAVE_CLOUD_NODE_CONTROL_SOCKET")
            .map(PathBuf::from)
            .unwrap_or_else(|| state_dir.join("cloud-node.sock")),
        state_dir,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_errors_name_file_key_and_line() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("cyberwave.yml");
        std::fs::write(
            &p,
            "cyberwave-cloud-node:\n  inference: echo hi\n  heartbeat_interval: often\n",
        )
        .unwrap();
        let e = load_file(&p).unwrap_err();
        assert!(
            e.contains("cyberwave.yml") && e.contains("heartbeat_interval") && e.contains("line 3"),
            "{e}"
        );
        std::fs::write(&p, "cyberwave-cloud-node:\n  inferance: echo hi\n").unwrap();
        let e = load_file(&p).unwrap_err();
        assert!(
            e.contains("unknown field `inferance`") && e.contains("line 2"),
            "{e}"
        );
        std::fs::write(&p, "other: 1\n").unwrap();
        assert!(
            load_file(&p)
                .unwrap_err()
                .contains("no `cyberwave-cloud-node:` section")
        );
        std::fs::write(&p, "cyberwave-cloud-node:\n  functions:\n    training: {timeout_seconds: 5, memory_mb: 64, concurrency: 1, when_busy: reject}\n").unwrap();
        let f = load_file(&p).unwrap();
        assert_eq!(f.functions["training"].when_busy, Some(WhenBusy::Reject));
    }

    #[test]
    fn token_priority() {
        let cwd = tempfile::tempdir().unwrap();
        let home = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(home.path().join(".cyberwave")).unwrap();
        std::fs::write(
            home.path().join(".cyberwave/credentials.json"),
            r#"{"token":"cw_from_credentials"}"#,
        )
        .unwrap();
        let none = |_: &str| None;
        assert_eq!(
            find_token(&none, cwd.path(), home.path()).unwrap().0,
            "cw_from_credentials"
        );
        std::fs::write(
            home.path().join(".cyberwave/.env"),
            "CYBERWAVE_API_TOKEN=cw_from_home_env\n",
        )
        .unwrap();
        assert_eq!(
            find_token(&none, cwd.path(), home.path()).unwrap().0,
            "cw_from_home_env"
        );
        std::fs::write(
            cwd.path().join(".env"),
            "# comment\nCYBERWAVE_API_TOKEN=\"cw_from_cwd_env\"\n",
        )
        .unwrap();
        assert_eq!(
            find_token(&none, cwd.path(), home.path()).unwrap().0,
            "cw_from_cwd_env"
        );
        let env = |k: &str| (k == "CYBERWAVE_API_TOKEN").then(|| "cw_from_process".to_string());
        assert_eq!(
            find_token(&env, cwd.path(), home.path()).unwrap().0,
            "cw_from_process"
        );
    }
}
