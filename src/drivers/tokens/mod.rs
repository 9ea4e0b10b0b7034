//! Twin-scoped driver tokens (reference §2.2, §4.9, §5.8): a driver runs on a token the backend
//! scoped to its twin and child twins, not on the edge's own key. This module decides (which
//! credential a container gets, how its environment is hardened, when a cached token is renewed);
//! `cache` keeps tokens on disk as the original does, and `obtain` mints and renews them on the
//! backend-jobs thread: the supervisor never waits on the backend for a token.

pub mod cache;
pub mod obtain;

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::EnvLayer;

pub const MODE_ENV: &str = "CYBERWAVE_EDGE_DRIVER_TOKEN_MODE";
/// The image label (`true`/`1`/`yes`) a driver sets to run on a scoped token under `auto`.
pub const SCOPED_LABEL: &str = "com.cyberwave.driver-token.scoped";
pub const TOKEN_DIR: &str = "driver_tokens";
pub const PUBLIC_CREDENTIALS: &str = "driver_credentials.public.json";
/// Where the config dir is mounted in a driver.
pub const CONTAINER_CONFIG_DIR: &str = "/app/.cyberwave";
/// Broker-credential overrides drivers honour ahead of `CYBERWAVE_API_KEY`: all pinned to the
/// driver token in a scoped container.
const MQTT_USERNAME_KEYS: [&str; 2] = ["CYBERWAVE_MQTT_USERNAME", "CYBERWAVE_MQTT_USER"];
const MQTT_PASSWORD_KEYS: [&str; 2] = ["CYBERWAVE_MQTT_PASSWORD", "CYBERWAVE_MQTT_API_TOKEN"];
/// Substrings marking a credentials.json `envs` key as secret (never in the public view).
const SECRET_MARKERS: [&str; 5] = ["TOKEN", "KEY", "PASSWORD", "SECRET", "CREDENTIAL"];

/// `CYBERWAVE_EDGE_DRIVER_TOKEN_MODE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Scoped for images carrying [`SCOPED_LABEL`], legacy for the others.
    #[default]
    Auto,
    /// Scoped for every driver; the edge token when none can be had.
    Scoped,
    /// The edge token for every driver (the behaviour before driver tokens).
    Legacy,
    /// Scoped for every driver, or the driver does not start.
    Strict,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Auto => "auto",
            Mode::Scoped => "scoped",
            Mode::Legacy => "legacy",
            Mode::Strict => "strict",
        }
    }

    /// The mode one container runs in: `auto` resolves by its image's label.
    pub fn effective(self, image_opts_in: bool) -> Mode {
        match self {
            Mode::Auto if image_opts_in => Mode::Scoped,
            Mode::Auto => Mode::Legacy,
            m => m,
        }
    }
}

/// The driver-token knobs (reference §11), bad values replaced by the defaults (warned).
#[derive(Debug, Clone, PartialEq)]
pub struct TokenSettings {
    pub mode: Mode,
    /// Renew once less than this is left on the lease (`_REFRESH_DAYS`, 7).
    pub refresh_before: Duration,
    /// How often running drivers' tokens are looked at (`_RENEW_CHECK_SECONDS`, 3600).
    pub renew_check_every: Duration,
    /// Each mint or renew call's deadline (`_TIMEOUT_S`, 2.5).
    pub timeout: Duration,
}

impl Default for TokenSettings {
    fn default() -> Self {
        TokenSettings {
            mode: Mode::Auto,
            refresh_before: Duration::from_secs(7 * 86_400),
            renew_check_every: Duration::from_secs(3600),
            timeout: Duration::from_millis(2500),
        }
    }
}

impl TokenSettings {
    /// As the original: an unknown mode or a value that is not a positive number is ignored
    /// with a warning.
    pub fn from_env(env: &EnvLayer, warnings: &mut Vec<String>) -> Self {
        let raw = env.get(MODE_ENV).unwrap_or_default();
        let mode = match raw.trim().to_ascii_lowercase().as_str() {
            "" | "auto" => Mode::Auto,
            "scoped" => Mode::Scoped,
            "legacy" => Mode::Legacy,
            "strict" => Mode::Strict,
            _ => {
                warnings.push(format!("Unknown {MODE_ENV}={raw:?}; using auto"));
                Mode::Auto
            }
        };
        let mut positive = |name: &str, default: f64| -> f64 {
            let raw = env.get(name).unwrap_or_default();
            if raw.trim().is_empty() {
                return default;
            }
            match raw.trim().parse::<f64>() {
                Ok(v) if v.is_finite() && v > 0.0 => v.min(crate::config::MAX_DURATION_SECONDS),
                _ => {
                    warnings.push(format!("Ignoring {name}={raw:?}; using {default}"));
                    default
                }
            }
        };
        let days = positive("CYBERWAVE_EDGE_DRIVER_TOKEN_REFRESH_DAYS", 7.0);
        let check = positive("CYBERWAVE_EDGE_DRIVER_TOKEN_RENEW_CHECK_SECONDS", 3600.0);
        let timeout = positive("CYBERWAVE_EDGE_DRIVER_TOKEN_TIMEOUT_S", 2.5).min(300.0);
        TokenSettings {
            mode,
            refresh_before: Duration::from_secs_f64((days * 86_400.0).min(1e9)),
            renew_check_every: Duration::from_secs_f64(check),
            timeout: Duration::from_secs_f64(timeout),
        }
    }
}

/// One cached token, with the original's fields (`driver_tokens/<twin>.json`).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct CachedToken {
    pub token: String,
    pub uuid: String,
    #[serde(default)]
    pub expires_at: Option<String>,
    #[serde(default)]
    pub twin_uuid: String,
    #[serde(default)]
    pub child_twin_uuids: Vec<String>,
    #[serde(default)]
    pub base_url: String,
    #[serde(default)]
    pub edge_token_sha256: String,
}

impl std::fmt::Debug for CachedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedToken")
            .field("uuid", &self.uuid)
            .field("expires_at", &self.expires_at)
            .field("twin_uuid", &self.twin_uuid)
            .finish_non_exhaustive()
    }
}

impl CachedToken {
    /// Minted for this launch context: the same backend, edge token and child twins (a
    /// re-paired edge or a new camera child needs a token minted for it).
    pub fn matches(&self, base_url: &str, edge_token: &str, children: &[String]) -> bool {
        let mut mine = self.child_twin_uuids.clone();
        mine.sort();
        self.base_url == base_url.trim_end_matches('/')
            && self.edge_token_sha256 == crate::sha256_hex(edge_token.as_bytes())
            && mine == children
    }

    /// Its expiry in epoch seconds (`None`: absent or unreadable).
    pub fn expires_epoch(&self) -> Option<f64> {
        self.expires_at.as_deref().and_then(parse_timestamp)
    }
}

/// What this edge knows of one twin's token.
#[derive(Debug, Clone, PartialEq)]
pub enum TokenFacts {
    /// A token to run on; `failing`: why its due renewal did not happen (the backend did not
    /// answer): it is used as it is, past its expiry too, until the backend answers.
    Held {
        token: CachedToken,
        failing: Option<String>,
    },
    /// None could be had: why (`unsupported`: the backend has no driver-token endpoint).
    Unobtainable { reason: String, unsupported: bool },
}

/// A twin that runs scoped: its sorted child twins (the token's scope).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct TokenNeed {
    pub twin: String,
    pub children: Vec<String>,
}

impl TokenNeed {
    /// As the original: children trimmed, deduplicated, sorted, the twin itself left out.
    pub fn new(twin: &str, children: &[String]) -> Self {
        let mut c: Vec<String> = children
            .iter()
            .map(|c| c.trim().to_string())
            .filter(|c| !c.is_empty() && c != twin)
            .collect();
        c.sort();
        c.dedup();
        TokenNeed {
            twin: twin.to_string(),
            children: c,
        }
    }
}

/// The driver-token state a plan reads: settings and what is known per twin.
#[derive(Debug, Clone, Default)]
pub struct DriverTokens {
    pub settings: TokenSettings,
    pub facts: BTreeMap<String, TokenFacts>,
}

/// What one container is launched with.
#[derive(Debug, Clone, PartialEq)]
pub enum Credential {
    /// The edge's token (legacy, or the fallback of `scoped`: `fallback` says why).
    Edge {
        fallback: Option<String>,
    },
    Scoped(CachedToken),
    /// No answer yet for this twin: nothing of it starts until there is one.
    Awaiting,
    /// `strict` and no token: why.
    Refused(String),
}

impl DriverTokens {
    /// The credential of a container of `need.twin` whose image opts in (or not).
    pub fn credential(
        &self,
        need: &TokenNeed,
        image_opts_in: bool,
        base_url: &str,
        edge_token: &str,
    ) -> Credential {
        let mode = self.settings.mode.effective(image_opts_in);
        if mode == Mode::Legacy {
            return Credential::Edge { fallback: None };
        }
        match self.facts.get(&need.twin) {
            Some(TokenFacts::Held { token, .. })
                if token.matches(base_url, edge_token, &need.children) =>
            {
                Credential::Scoped(token.clone())
            }
            Some(TokenFacts::Unobtainable { reason, .. }) if mode == Mode::Strict => {
                Credential::Refused(reason.clone())
            }
            Some(TokenFacts::Unobtainable { reason, .. }) => Credential::Edge {
                fallback: Some(reason.clone()),
            },
            // Nothing, or a token of another context: the obtainer mints one for this.
            _ => Credential::Awaiting,
        }
    }
}

impl DriverTokens {
    /// A driver container's credential for `status`: `scoped` with the token's uuid prefix,
    /// expiry and renewal trouble, or `legacy` (with why, when it is `scoped`'s fallback).
    /// Never the token.
    pub fn status_of(&self, twin: &str, api_key: Option<&str>, now: f64) -> serde_json::Value {
        use serde_json::json;
        match self.facts.get(twin) {
            Some(TokenFacts::Held { token, failing }) if api_key == Some(token.token.as_str()) => {
                json!({
                    "mode": "scoped",
                    "token_uuid": token.uuid.get(..8).unwrap_or(&token.uuid),
                    "expires_at": token.expires_at,
                    "expired": token.expires_epoch().is_some_and(|at| at <= now),
                    "renewal_failing": failing,
                })
            }
            Some(TokenFacts::Unobtainable { reason, .. }) if self.settings.mode != Mode::Legacy => {
                json!({"mode": "legacy", "fallback": reason})
            }
            _ => json!({"mode": "legacy"}),
        }
    }
}

/// The MQTT username a client holding `token` connects as (the SDK's `mqtt_identity`):
/// `cwh_` + sha256 of the token, so broker logs identify the session without the secret.
pub fn mqtt_username(token: &str) -> String {
    format!("cwh_{}", crate::sha256_hex(token.as_bytes()))
}

/// The per-edge rotation key the mint sends: `fp-` + sha256(fingerprint)[:32].
pub fn edge_rotation_key(fingerprint: &str) -> String {
    match fingerprint {
        "" => String::new(),
        f => format!("fp-{}", &crate::sha256_hex(f.as_bytes())[..32]),
    }
}

/// Installs a scoped token in a driver's final environment (§5.8 "scoped credential
/// hardening"): `CYBERWAVE_API_KEY` and the broker overrides are the driver token, and every
/// other variable holding the edge token is removed.
pub fn harden(env: &mut BTreeMap<String, String>, driver_token: &str, edge_token: &str) {
    if !edge_token.is_empty() {
        env.retain(|_, v| v != edge_token);
    }
    env.insert("CYBERWAVE_API_KEY".into(), driver_token.to_string());
    let username = mqtt_username(driver_token);
    for k in MQTT_USERNAME_KEYS {
        env.insert(k.into(), username.clone());
    }
    for k in MQTT_PASSWORD_KEYS {
        env.insert(k.into(), driver_token.to_string());
    }
}

/// Config-dir directories a scoped driver sees as empty: every twin's cached token (the
/// original's mask), and, ours, a launch's env file while `docker create` reads it (it holds
/// the edge token of a legacy driver) and the remote-access relay credential.
pub const MASKED_DIRS: [&str; 3] = [TOKEN_DIR, "run", "remote-access"];

/// The `docker create` options that hide the edge's secrets behind the read-only config-dir
/// mount: `credentials.json` replaced by its public view, [`MASKED_DIRS`] by empty tmpfs.
pub fn mask_options(config_dir: &str) -> Vec<String> {
    let mut o = vec![
        "-v".into(),
        format!("{config_dir}/{PUBLIC_CREDENTIALS}:{CONTAINER_CONFIG_DIR}/credentials.json:ro"),
    ];
    for d in MASKED_DIRS {
        o.extend([
            "--tmpfs".into(),
            format!("{CONTAINER_CONFIG_DIR}/{d}:ro,size=64k"),
        ]);
    }
    o
}

/// The public view of `credentials.json`: its string `envs` whose names mark no secret
/// (drivers read audio and video settings there).
pub fn public_credentials(credentials: &serde_json::Value) -> serde_json::Value {
    let envs: serde_json::Map<String, serde_json::Value> = credentials
        .get("envs")
        .and_then(serde_json::Value::as_object)
        .into_iter()
        .flatten()
        .filter(|(k, v)| {
            v.is_string() && !SECRET_MARKERS.iter().any(|m| k.to_uppercase().contains(m))
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    serde_json::json!({ "envs": envs })
}

/// Whether a renewal is due at `now` (epoch seconds): less than `refresh_before` left, or an
/// expiry that cannot be read.
pub fn renewal_due(token: &CachedToken, now: f64, refresh_before: Duration) -> bool {
    token
        .expires_epoch()
        .is_none_or(|at| at - now <= refresh_before.as_secs_f64())
}

/// An ISO 8601 timestamp as the backend writes it (`Z`, `+00:00`, `-05:30` or no offset =
/// UTC; fractional seconds allowed) in epoch seconds.
pub fn parse_timestamp(s: &str) -> Option<f64> {
    let s = s.trim();
    if s.len() > 64 || s.len() < 19 {
        return None;
    }
    let (base, offset_s) = match s.strip_suffix('Z').or_else(|| s.strip_suffix('z')) {
        Some(b) => (b, 0i64),
        None => split_offset(s)?,
    };
    let t = humantime::parse_rfc3339_weak(base).ok()?;
    let secs = t.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs_f64();
    Some(secs - offset_s as f64)
}

/// `2026-01-01T00:00:00+02:00` → (`2026-01-01T00:00:00`, 7200).
fn split_offset(s: &str) -> Option<(&str, i64)> {
    let tail = s.get(s.len() - 6..)?;
    let b = tail.as_bytes();
    if (b[0] == b'+' || b[0] == b'-') && b[3] == b':' {
        let h: i64 = tail.get(1..3)?.parse().ok()?;
        let m: i64 = tail.get(4..6)?.parse().ok()?;
        let sign = if b[0] == b'-' { -1 } else { 1 };
        return Some((s.get(..s.len() - 6)?, sign * (h * 3600 + m * 60)));
    }
    Some((s, 0))
}

#[cfg(test)]
mod tests;
