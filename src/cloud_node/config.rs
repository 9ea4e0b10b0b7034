//! Cloud node settings: `cyberwave.yml` (see [`super::manifest`]), environment variables and
//! command-line flags (flags over file over environment), with the environment layered like the
//! edge core's: process > `./.env` > `<config dir>/.env` > `credentials.json` `envs`. Every
//! number is checked (finite, in range) and a bad one stops start-up naming its key.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use super::manifest::{FunctionFile, NodeFile, WhenBusy};
use super::template::{self, Template};
use crate::config::{Credentials, EnvLayer, Secret, SettingsError};
use crate::mqtt::BrokerConfig;

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
    pub inference: Option<Template>,
    pub training: Option<Template>,
    pub profile_slug: String,
    pub slug_hint: Option<String>,
    pub workspace_slug: Option<String>,
    pub workspace_uuid: Option<String>,
    pub environment_uuid: Option<String>,
    pub heartbeat_interval: Duration,
    pub api_url: String,
    pub token: Secret,
    pub mqtt: BrokerConfig,
    pub inference_limits: FunctionLimits,
    pub training_limits: FunctionLimits,
    pub shutdown_grace: Duration,
    pub output_cap: usize,
    /// The config dir (`~/.cyberwave` by the edge core's rules): identity, request ids.
    pub state_dir: PathBuf,
    /// Where commands run: the directory of `cyberwave.yml`, else the working directory.
    pub workdir: PathBuf,
    pub control_socket: PathBuf,
    /// Warnings to log once logging is up (unused manifest keys, skipped env entries).
    pub warnings: Vec<String>,
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

/// Longest command timeout we accept (30 days): anything longer is a typo or `.inf`.
const MAX_TIMEOUT_SECS: f64 = 30.0 * 86_400.0;
/// Largest `memory_mb` (16 TiB) and `concurrency` (a thread each) we accept.
const MAX_MEMORY_MB: u64 = 16 << 20;
const MAX_CONCURRENCY: usize = 256;

/// The environment layered like the edge core's: `process` > `./.env` > `<config dir>/.env` >
/// `credentials.json` `envs`; with the credentials (for their token) and a warning when they
/// are unreadable.
fn layered(
    process: EnvLayer,
    cwd: &Path,
    config_dir: &Path,
) -> (EnvLayer, Credentials, Vec<String>) {
    let mut warnings = Vec::new();
    let creds_path = config_dir.join(crate::config::CREDENTIALS_FILE);
    let creds = match Credentials::load(&creds_path) {
        Ok(c) => c,
        Err(e) if e.problem == crate::config::FileProblem::Missing => Credentials::default(),
        Err(e) => {
            warnings.push(format!("{e}: its token and envs are not used"));
            Credentials::default()
        }
    };
    let mut lower = creds.envs.clone();
    lower.extend(dotenv(&config_dir.join(".env")));
    lower.extend(dotenv(&cwd.join(".env")));
    (process.with_credentials(lower), creds, warnings)
}

/// The token in the documented order: `CYBERWAVE_API_TOKEN` from the layered environment
/// (process, `./.env`, `<config dir>/.env`), then `credentials.json`'s token.
pub fn find_token(env: &EnvLayer, creds: &Credentials) -> Option<String> {
    env.get("CYBERWAVE_API_TOKEN")
        .or_else(|| creds.token.clone())
}

/// The non-blank entries of a `.env` file (regular files only, bounded).
fn dotenv(path: &Path) -> BTreeMap<String, String> {
    let Ok(text) = crate::fsutil::read_regular_text(path, 1 << 20) else {
        return BTreeMap::new();
    };
    dotenvy::from_read_iter(text.as_bytes())
        .flatten()
        .filter_map(|(k, v)| {
            let v = v.trim().to_string();
            (!v.is_empty()).then_some((k, v))
        })
        .collect()
}

/// A number of seconds in `[min, max]`, finite; the error names the key.
pub fn seconds(key: &str, v: f64, min: f64, max: f64) -> Result<Duration, String> {
    if !v.is_finite() || v < min || v > max {
        return Err(format!(
            "{key}: {v} is not a number of seconds between {min} and {max}"
        ));
    }
    Duration::try_from_secs_f64(v).map_err(|e| format!("{key}: {v}: {e}"))
}

fn limits(
    name: &str,
    file: Option<&FunctionFile>,
    timeout: f64,
    concurrency: usize,
    when_busy: WhenBusy,
) -> Result<FunctionLimits, String> {
    let key = |k: &str| format!("functions.{name}.{k}");
    let memory_mb = match file.and_then(|f| f.memory_mb) {
        Some(0) | None => None,
        Some(m) if m > MAX_MEMORY_MB => {
            return Err(format!(
                "{}: {m} is over the {MAX_MEMORY_MB} MiB limit",
                key("memory_mb")
            ));
        }
        Some(m) => Some(m),
    };
    let concurrency = match file.and_then(|f| f.concurrency) {
        None => concurrency,
        Some(c) if (1..=MAX_CONCURRENCY).contains(&c) => c,
        Some(c) => {
            return Err(format!(
                "{}: {c} is not between 1 and {MAX_CONCURRENCY}",
                key("concurrency")
            ));
        }
    };
    Ok(FunctionLimits {
        timeout: seconds(
            &key("timeout_seconds"),
            file.and_then(|f| f.timeout_seconds).unwrap_or(timeout),
            0.001,
            MAX_TIMEOUT_SECS,
        )?,
        memory_mb,
        concurrency,
        when_busy: file.and_then(|f| f.when_busy).unwrap_or(when_busy),
    })
}

/// Lexes a template, naming where it came from when it is refused.
fn template(source: Option<String>, origin: &str) -> Result<Option<Template>, String> {
    source
        .map(|s| template::compile(&s).map_err(|e| format!("{origin}: {e}")))
        .transpose()
}

/// Builds the settings: flags over file over environment over defaults.
pub fn load(flags: &Flags, cwd: &Path) -> Result<NodeSettings, String> {
    let process = EnvLayer::from_process();
    let mut warnings: Vec<String> = process
        .skipped()
        .iter()
        .map(|k| format!("environment variable {k:?} is not UTF-8: ignored"))
        .collect();
    let (config_dir, _) = crate::config::resolve_config_dir(&|k| process.process(k));
    let (env, creds, more) = layered(process, cwd, &config_dir);
    warnings.extend(more);
    let get = |k: &str| env.get(k);

    let file_path = flags
        .config
        .clone()
        .or_else(|| Some(cwd.join("cyberwave.yml")).filter(|p| p.exists()));
    let (file, origin, workdir) = match &file_path {
        Some(p) => {
            let dir = p
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
                .map(|d| cwd.join(d))
                .unwrap_or_else(|| cwd.to_path_buf());
            let dir = dir.canonicalize().unwrap_or(dir);
            (super::manifest::load(p)?, p.display().to_string(), dir)
        }
        None => (NodeFile::default(), String::new(), cwd.to_path_buf()),
    };
    for key in file.unused() {
        warnings.push(format!(
            "{origin}: `{key}` is not used by cyberwave-cloud-node"
        ));
    }
    let token = find_token(&env, &creds).ok_or_else(|| {
        format!(
            "no API token: set CYBERWAVE_API_TOKEN, put it in ./.env or {}/.env, or run 'cyberwave login'",
            config_dir.display()
        )
    })?;
    let api_url = get("CYBERWAVE_API_URL")
        .or_else(|| get("CYBERWAVE_BASE_URL"))
        .unwrap_or_else(|| "https://api.cyberwave.com".into())
        .trim_end_matches('/')
        .to_string();
    if !(api_url.starts_with("http://") || api_url.starts_with("https://")) {
        return Err(format!(
            "CYBERWAVE_API_URL={api_url:?}: expected an http:// or https:// URL"
        ));
    }
    let env_num = |k: &str| -> Result<Option<f64>, String> {
        get(k)
            .map(|v| {
                v.parse::<f64>()
                    .map_err(|_| format!("{k}={v:?}: expected a number of seconds"))
            })
            .transpose()
    };
    let heartbeat_interval = match file.heartbeat_interval {
        Some(v) => seconds(&format!("{origin}: heartbeat_interval"), v, 1.0, 86_400.0)?,
        None => seconds(
            "CYBERWAVE_HEARTBEAT_INTERVAL",
            env_num("CYBERWAVE_HEARTBEAT_INTERVAL")?.unwrap_or(30.0),
            1.0,
            86_400.0,
        )?,
    };
    let shutdown_grace = seconds(
        "CYBERWAVE_CLOUD_NODE_SHUTDOWN_GRACE_SECONDS",
        env_num("CYBERWAVE_CLOUD_NODE_SHUTDOWN_GRACE_SECONDS")?.unwrap_or(30.0),
        0.0,
        3600.0,
    )?;

    let mqtt = broker(flags, &file, &get, &token)?;
    let key = |k: &str| {
        if origin.is_empty() {
            k.to_string()
        } else {
            format!("{origin}: {k}")
        }
    };
    let origin_of = |in_file: bool, name: &str, var: &str| {
        if in_file { key(name) } else { var.to_string() }
    };
    let inference_origin = origin_of(
        file.inference.is_some(),
        "inference",
        "CYBERWAVE_INFERENCE_CMD",
    );
    let training_origin = origin_of(
        file.training.is_some(),
        "training",
        "CYBERWAVE_TRAINING_CMD",
    );
    let fn_file = |n: &str| file.functions.get(n);
    Ok(NodeSettings {
        install_script: file
            .install_command()
            .cloned()
            .or(get("CYBERWAVE_INSTALL_SCRIPT")),
        inference: template(
            file.inference.clone().or(get("CYBERWAVE_INFERENCE_CMD")),
            &inference_origin,
        )?,
        training: template(
            file.training.clone().or(get("CYBERWAVE_TRAINING_CMD")),
            &training_origin,
        )?,
        profile_slug: flags
            .profile
            .clone()
            .or(file.profile_slug.clone())
            .or(get("CYBERWAVE_PROFILE_SLUG"))
            .unwrap_or_else(|| "default".into()),
        slug_hint: flags.slug.clone().or(get("CYBERWAVE_INSTANCE_SLUG")),
        workspace_slug: get("CYBERWAVE_WORKSPACE_SLUG"),
        workspace_uuid: get("CYBERWAVE_WORKSPACE_ID").or(creds.workspace_uuid.clone()),
        environment_uuid: get("CYBERWAVE_ENVIRONMENT_UUID"),
        heartbeat_interval,
        api_url,
        token: Secret::new(token),
        mqtt,
        inference_limits: limits("inference", fn_file("inference"), 300.0, 4, WhenBusy::Queue)
            .map_err(|e| key(&e))?,
        training_limits: limits(
            "training",
            fn_file("training"),
            86_400.0,
            1,
            WhenBusy::Queue,
        )
        .map_err(|e| key(&e))?,
        shutdown_grace,
        output_cap: 1024 * 1024,
        control_socket: get("CYBERWAVE_CLOUD_NODE_CONTROL_SOCKET")
            .map(PathBuf::from)
            .unwrap_or_else(|| config_dir.join("cloud-node.sock")),
        state_dir: config_dir,
        workdir,
        warnings,
    })
}

/// MQTT: flags, then the file, then the SDK variables. The cloud node's documented default
/// port is 1883 (plain); 8883 or `mqtt_use_tls` / `CYBERWAVE_MQTT_USE_TLS` turn TLS on.
fn broker(
    flags: &Flags,
    file: &NodeFile,
    get: &dyn Fn(&str) -> Option<String>,
    token: &str,
) -> Result<BrokerConfig, String> {
    let mut vars: HashMap<String, String> = HashMap::new();
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
            vars.insert(k.into(), v);
        }
    }
    let from_file = [
        (
            "CYBERWAVE_MQTT_USE_TLS",
            file.mqtt_use_tls.map(|b| b.to_string()),
        ),
        ("CYBERWAVE_MQTT_TLS_CA_CERT", file.mqtt_tls_ca_certs.clone()),
        ("CYBERWAVE_MQTT_USERNAME", file.mqtt_username.clone()),
        ("CYBERWAVE_MQTT_PASSWORD", file.mqtt_password.clone()),
    ];
    for (k, v) in from_file {
        if let Some(v) = v {
            vars.insert(k.into(), v);
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
            Some(p) => p
                .parse()
                .map_err(|_| format!("CYBERWAVE_MQTT_PORT={p:?}: expected a port number"))?,
            None => 1883,
        },
    };
    vars.insert("CYBERWAVE_MQTT_HOST".into(), host);
    vars.insert("CYBERWAVE_MQTT_PORT".into(), port.to_string());
    // Commands may be large (base64 images): accept any packet the protocol allows, so an
    // oversized command gets an error reply instead of breaking the link (see mod.rs).
    vars.insert("CYBERWAVE_MQTT_MAX_PAYLOAD_BYTES".into(), "0".into());
    let layer = EnvLayer::new(vars, BTreeMap::new());
    // The private-URL broker inference of the edge core does not apply to cloud nodes:
    // resolve against a public placeholder so the explicit host is kept.
    let (mqtt, _) = BrokerConfig::resolve(&layer, "https://api.cyberwave.com", Some(token))
        .map_err(|e: SettingsError| e.to_string())?;
    Ok(mqtt)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_checked_and_named() {
        assert!(seconds("k", 5.0, 1.0, 10.0).is_ok());
        for bad in [f64::INFINITY, f64::NAN, 1e300, -1.0, 0.5] {
            let e = seconds("heartbeat_interval", bad, 1.0, 86_400.0).unwrap_err();
            assert!(e.starts_with("heartbeat_interval:"), "{e}");
        }
        let f = FunctionFile {
            timeout_seconds: Some(f64::INFINITY),
            memory_mb: None,
            concurrency: None,
            when_busy: None,
        };
        let e = limits("training", Some(&f), 1.0, 1, WhenBusy::Queue).unwrap_err();
        assert!(e.contains("functions.training.timeout_seconds"), "{e}");
        let f = FunctionFile {
            timeout_seconds: None,
            memory_mb: Some(u64::MAX),
            concurrency: Some(1_000_000),
            when_busy: None,
        };
        assert!(
            limits("inference", Some(&f), 1.0, 1, WhenBusy::Queue)
                .unwrap_err()
                .contains("memory_mb")
        );
    }

    #[test]
    fn token_priority() {
        let cwd = tempfile::tempdir().unwrap();
        let cfg = tempfile::tempdir().unwrap();
        std::fs::write(
            cfg.path().join("credentials.json"),
            r#"{"token":"cw_from_credentials"}"#,
        )
        .unwrap();
        let none = EnvLayer::default();
        let token = |process: &EnvLayer| {
            let (env, creds, _) = layered(process.clone(), cwd.path(), cfg.path());
            find_token(&env, &creds).unwrap()
        };
        assert_eq!(token(&none), "cw_from_credentials");
        std::fs::write(
            cfg.path().join(".env"),
            "CYBERWAVE_API_TOKEN=cw_from_dir_env\n",
        )
        .unwrap();
        assert_eq!(token(&none), "cw_from_dir_env");
        std::fs::write(
            cwd.path().join(".env"),
            "# comment\nCYBERWAVE_API_TOKEN=\"cw_from_cwd_env\"\n",
        )
        .unwrap();
        assert_eq!(token(&none), "cw_from_cwd_env");
        let env = EnvLayer::new(
            [(
                "CYBERWAVE_API_TOKEN".to_string(),
                "cw_from_process".to_string(),
            )]
            .into(),
            BTreeMap::new(),
        );
        assert_eq!(token(&env), "cw_from_process");
    }
}
