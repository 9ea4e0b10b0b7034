use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use super::broker::BrokerConfig;
use super::{Credentials, EnvLayer, FileError, FileProblem};

/// A secret string (the API token) that never prints itself: `Debug`/`Display` show the mask.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    /// The raw value, for the one place that must send it (HTTP header, MQTT CONNECT).
    pub fn expose(&self) -> &str {
        &self.0
    }
    /// `first6…last4`, the original's log form (`cw_tes…_123`); short values are fully masked.
    pub fn masked(&self) -> String {
        let chars: Vec<char> = self.0.chars().collect();
        if chars.len() < 12 {
            return "…".into();
        }
        let head: String = chars[..6].iter().collect();
        let tail: String = chars[chars.len() - 4..].iter().collect();
        format!("{head}…{tail}")
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({})", self.masked())
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

/// MQTT protocol level asked for by `CYBERWAVE_MQTT_PROTOCOL`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MqttProtocol {
    V311,
    V5,
}

impl MqttProtocol {
    pub fn parse(v: &str) -> Option<Self> {
        match v.trim().to_ascii_lowercase().as_str() {
            "311" | "3" | "v311" | "mqtt3" | "mqttv311" | "v3.1.1" => Some(Self::V311),
            "5" | "v5" | "mqtt5" | "mqttv5" => Some(Self::V5),
            _ => None,
        }
    }
}

/// Why settings could not be built. Each names the file or variable and the bad value.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum SettingsError {
    /// `credentials.json` missing or without a token: run `cyberwave login`.
    NotConfigured { path: PathBuf, problem: FileProblem },
    /// `credentials.json` exists but cannot be used.
    File(FileError),
    /// A variable or setting whose value is not one we can use: its name, the value, and
    /// what it should be.
    InvalidValue {
        name: String,
        value: String,
        expected: String,
    },
}

impl fmt::Display for SettingsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SettingsError::NotConfigured { path, problem } => {
                let why = match problem {
                    FileProblem::Missing => "no credentials file".to_string(),
                    _ => "no \"token\" in the credentials file".to_string(),
                };
                write!(
                    f,
                    "{}: {why}. Run 'cyberwave login' (or 'cyberwave edge install') on this device first.",
                    path.display()
                )
            }
            SettingsError::File(e) => write!(f, "{e}"),
            SettingsError::InvalidValue {
                name,
                value,
                expected,
            } => write!(f, "invalid {name}={value:?}: expected {expected}"),
        }
    }
}

impl std::error::Error for SettingsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SettingsError::File(e) => Some(e),
            _ => None,
        }
    }
}

/// Most MQTT messages queued while the broker is away (`CYBERWAVE_MQTT_OUTBOX_MESSAGES`): the
/// client library reserves the queue up front, so a huge value would abort at start.
pub const MAX_MQTT_OUTBOX: usize = 100_000;

/// Every knob of the edge core, parsed once at start (and again on SIGHUP).
#[derive(Debug, Clone)]
pub struct Settings {
    pub config_dir: PathBuf,
    pub config_dir_overridden: bool,
    pub token: Secret,
    pub base_url: String,
    /// `CYBERWAVE_ENVIRONMENT` (default `production`): tag suffix and topic prefix source.
    pub environment: String,
    pub workspace_id: Option<String>,
    pub user_agent_prefix: Option<String>,
    pub edge_uuid_override: Option<String>,
    pub mqtt: BrokerConfig,
    pub log_level: String,
    pub health_interval: Duration,
    pub battery_wh: Option<f64>,
    /// Per-attempt deadline of every REST call (the original used 10 s after boot, none before).
    pub http_timeout: Duration,
    pub control_socket: PathBuf,
    pub docker_bin: String,
    /// `CYBERWAVE_CONTAINER_ENGINE`: `docker` (default), `podman`, or `auto`.
    pub container_engine: String,
    /// `CYBERWAVE_PODMAN_SOCKET` (Podman's API socket; default `/run/podman/podman.sock`).
    pub podman_socket: Option<PathBuf>,
    /// Messages held while the broker is unreachable; the oldest are dropped beyond this.
    pub mqtt_outbox: usize,
    pub credentials_envs: std::collections::BTreeMap<String, String>,
    /// The layered environment, for knobs read by later stages (drivers).
    pub env: EnvLayer,
    /// credentials.json `driver_overrides`: twin uuid → image.
    pub driver_overrides: std::collections::BTreeMap<String, String>,
}

impl Settings {
    /// json-file log caps of every managed container: `max-size` (`None` for
    /// `CYBERWAVE_DOCKER_LOG_MAX_SIZE=off`, default `10m`) and `max-file` (default 3).
    pub fn docker_log_caps(&self) -> (Option<String>, String) {
        let size = match self.env.get("CYBERWAVE_DOCKER_LOG_MAX_SIZE") {
            Some(v) if v.eq_ignore_ascii_case("off") => None,
            Some(v) => Some(v),
            None => Some("10m".into()),
        };
        let files = self
            .env
            .get("CYBERWAVE_DOCKER_LOG_MAX_FILE")
            .unwrap_or_else(|| "3".into());
        (size, files)
    }

    /// The non-empty `CYBERWAVE_*` variables managed containers inherit (process first, then
    /// credentials `envs`), never where the edge keeps its own files or its control socket.
    pub fn forwarded_env(&self) -> std::collections::BTreeMap<String, String> {
        let mut forwarded = self.env.with_prefix("CYBERWAVE_");
        forwarded.remove("CYBERWAVE_EDGE_CONFIG_DIR");
        forwarded.remove("CYBERWAVE_EDGE_CONTROL_SOCKET");
        forwarded
    }

    /// Reads `credentials.json` from `config_dir` and builds settings over `process` env.
    /// Returns the warnings (bad optional values replaced by defaults) for the caller to log.
    pub fn load(
        config_dir: PathBuf,
        config_dir_overridden: bool,
        process: &EnvLayer,
    ) -> Result<(Self, Vec<String>), SettingsError> {
        Self::load_with(config_dir, config_dir_overridden, process, true)
    }

    /// Local mode (`run --local`): no backend, so `credentials.json` is optional; a present but
    /// broken file is still an error.
    pub fn load_local(
        config_dir: PathBuf,
        config_dir_overridden: bool,
        process: &EnvLayer,
    ) -> Result<(Self, Vec<String>), SettingsError> {
        Self::load_with(config_dir, config_dir_overridden, process, false)
    }

    fn load_with(
        config_dir: PathBuf,
        config_dir_overridden: bool,
        process: &EnvLayer,
        require_token: bool,
    ) -> Result<(Self, Vec<String>), SettingsError> {
        let cred_path = config_dir.join(super::CREDENTIALS_FILE);
        let creds = match Credentials::load(&cred_path) {
            Ok(c) => c,
            Err(FileError {
                problem: FileProblem::Missing,
                ..
            }) if !require_token => Credentials::default(),
            Err(FileError {
                path,
                problem: FileProblem::Missing,
            }) => {
                return Err(SettingsError::NotConfigured {
                    path,
                    problem: FileProblem::Missing,
                });
            }
            Err(e) => return Err(SettingsError::File(e)),
        };
        let token = match creds.token.clone() {
            Some(t) => t,
            None if !require_token => String::new(),
            None => {
                return Err(SettingsError::NotConfigured {
                    path: cred_path,
                    problem: FileProblem::Invalid("no token".into()),
                });
            }
        };
        let mut warnings = creds.warnings.clone();
        warnings.extend(
            process
                .skipped()
                .iter()
                .map(|k| format!("environment variable {k:?} is not UTF-8: ignored")),
        );
        let env = process.clone().with_credentials(creds.envs.clone());
        let base_url = env
            .get("CYBERWAVE_BASE_URL")
            .unwrap_or_else(|| "https://api.cyberwave.com".into());
        if !(base_url.starts_with("http://") || base_url.starts_with("https://"))
            || super::broker::url_host(&base_url).is_none()
        {
            return Err(SettingsError::InvalidValue {
                name: "CYBERWAVE_BASE_URL".into(),
                value: base_url,
                expected: "an http:// or https:// URL".into(),
            });
        }
        let base_url = base_url.trim_end_matches('/').to_string();
        let (mqtt, mqtt_warnings) = BrokerConfig::resolve(&env, &base_url, Some(&token))?;
        warnings.extend(mqtt_warnings);
        if mqtt.protocol == MqttProtocol::V5 {
            warnings.push(
                "CYBERWAVE_MQTT_PROTOCOL asks for MQTT 5; this build speaks MQTT 3.1.1 (same topics and payloads)".into(),
            );
        }
        let log_level = match env
            .process("CYBERWAVE_EDGE_LOG_LEVEL")
            .or_else(|| env.get("CYBERWAVE_EDGE_LOG_LEVEL"))
        {
            None => "info".to_string(),
            Some(l) => match crate::logging::normalise_level(&l) {
                Some(l) => l.to_string(),
                None => {
                    warnings.push(format!(
                        "CYBERWAVE_EDGE_LOG_LEVEL={l:?} is not a log level (debug, info, warning, error); using info"
                    ));
                    "info".into()
                }
            },
        };
        let health_interval = crate::config::seconds_or_warn(
            &env,
            "CYBERWAVE_EDGE_HEALTH_PUBLISH_INTERVAL_SECONDS",
            5.0,
            1.0,
            &mut warnings,
        );
        let battery_wh = match env.get("CYBERWAVE_BATTERY_WH") {
            None => None,
            Some(v) => match v.parse::<f64>() {
                Ok(x) if x.is_finite() => Some(x),
                _ => {
                    warnings.push(format!(
                        "CYBERWAVE_BATTERY_WH={v:?} is not a number; ignored"
                    ));
                    None
                }
            },
        };
        let http_timeout = crate::config::seconds_or_warn(
            &env,
            "CYBERWAVE_EDGE_HTTP_TIMEOUT_SECONDS",
            10.0,
            0.5,
            &mut warnings,
        );
        let mqtt_outbox = match env.get("CYBERWAVE_MQTT_OUTBOX_MESSAGES") {
            None => 1000,
            Some(v) => match v.parse::<usize>() {
                Ok(n) if n > MAX_MQTT_OUTBOX => {
                    warnings.push(format!(
                        "CYBERWAVE_MQTT_OUTBOX_MESSAGES={v:?} is above the maximum {MAX_MQTT_OUTBOX}; using {MAX_MQTT_OUTBOX}"
                    ));
                    MAX_MQTT_OUTBOX
                }
                Ok(n) if n > 0 => n,
                _ => {
                    warnings.push(format!(
                        "CYBERWAVE_MQTT_OUTBOX_MESSAGES={v:?} is not a positive count; using 1000"
                    ));
                    1000
                }
            },
        };
        let control_socket = env
            .get("CYBERWAVE_EDGE_CONTROL_SOCKET")
            .map(PathBuf::from)
            .unwrap_or_else(|| config_dir.join(crate::config::CONTROL_SOCKET_NAME));
        Ok((
            Settings {
                token: Secret::new(token),
                base_url,
                environment: env
                    .get("CYBERWAVE_ENVIRONMENT")
                    .unwrap_or_else(|| "production".into()),
                workspace_id: env.get("CYBERWAVE_WORKSPACE_ID"),
                user_agent_prefix: env.get("CYBERWAVE_CLIENT_USER_AGENT"),
                edge_uuid_override: env.get("CYBERWAVE_EDGE_UUID"),
                mqtt,
                log_level,
                health_interval,
                battery_wh,
                http_timeout,
                control_socket,
                docker_bin: env
                    .get("CYBERWAVE_DOCKER_BIN")
                    .unwrap_or_else(|| "docker".into()),
                container_engine: env
                    .get("CYBERWAVE_CONTAINER_ENGINE")
                    .map(|e| e.trim().to_ascii_lowercase())
                    .unwrap_or_else(|| "docker".into()),
                podman_socket: env.get("CYBERWAVE_PODMAN_SOCKET").map(PathBuf::from),
                mqtt_outbox,
                credentials_envs: creds.envs,
                env,
                driver_overrides: creds.driver_overrides,
                config_dir,
                config_dir_overridden,
            },
            warnings,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeMap, HashMap};

    fn load(creds: &str, pairs: &[(&str, &str)]) -> Result<(Settings, Vec<String>), SettingsError> {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("credentials.json"), creds).unwrap();
        let env = EnvLayer::new(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<HashMap<_, _>>(),
            BTreeMap::new(),
        );
        Settings::load(d.path().to_path_buf(), true, &env)
    }

    #[test]
    fn defaults() {
        let (s, w) = load(r#"{"token":"cw_test_token_123"}"#, &[]).unwrap();
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(s.base_url, "https://api.cyberwave.com");
        assert_eq!(s.environment, "production");
        assert_eq!(s.health_interval, Duration::from_secs(5));
        assert_eq!(s.http_timeout, Duration::from_secs(10));
        assert_eq!(s.mqtt.topic_prefix, "");
        assert_eq!(s.token.masked(), "cw_tes…_123");
        assert!(!format!("{s:?}").contains("cw_test_token_123"));
    }

    #[test]
    fn credential_envs_layer_under_process_env() {
        let (s, _) = load(
            r#"{"token":"cw_test_token_123","envs":{"CYBERWAVE_ENVIRONMENT":"dev","CYBERWAVE_BASE_URL":"http://127.0.0.1:9/"}}"#,
            &[("CYBERWAVE_ENVIRONMENT", "staging")],
        )
        .unwrap();
        assert_eq!(s.environment, "staging");
        assert_eq!(s.mqtt.topic_prefix, "staging");
        assert_eq!(s.base_url, "http://127.0.0.1:9");
        assert_eq!(s.mqtt.host, "127.0.0.1");
    }

    #[test]
    fn bad_values_warn_or_fail() {
        let (s, w) = load(
            r#"{"token":"cw_test_token_123"}"#,
            &[
                ("CYBERWAVE_EDGE_HEALTH_PUBLISH_INTERVAL_SECONDS", "fast"),
                ("CYBERWAVE_BATTERY_WH", "nan"),
                ("CYBERWAVE_EDGE_LOG_LEVEL", "loud"),
            ],
        )
        .unwrap();
        assert_eq!(s.health_interval, Duration::from_secs(5));
        assert_eq!(s.battery_wh, None);
        assert_eq!(w.len(), 3, "{w:?}");
        assert!(
            w[0].contains("CYBERWAVE_EDGE_LOG_LEVEL") || w.iter().any(|x| x.contains("LOG_LEVEL"))
        );
        let e = load(r#"{"token":"cw_x"}"#, &[("CYBERWAVE_BASE_URL", "ftp://x")]).unwrap_err();
        assert!(e.to_string().contains("CYBERWAVE_BASE_URL"));
        let e = load(r#"{"email":"a"}"#, &[]).unwrap_err();
        assert!(matches!(e, SettingsError::NotConfigured { .. }));
        assert!(e.to_string().contains("cyberwave login"));
        let e = load("{oops", &[]).unwrap_err();
        assert!(
            e.to_string().contains("credentials.json: invalid JSON"),
            "{e}"
        );
    }

    #[test]
    fn interval_minimum() {
        let (s, w) = load(
            r#"{"token":"cw_x"}"#,
            &[("CYBERWAVE_EDGE_HEALTH_PUBLISH_INTERVAL_SECONDS", "0.2")],
        )
        .unwrap();
        assert_eq!(s.health_interval, Duration::from_secs(1));
        assert_eq!(w.len(), 1);
    }
}
