//! Broker address, TLS, credentials and topic prefix, resolved exactly as the Python SDK and
//! edge core do (reference §3.1, §3.2; SDK contracts §1.3–§1.5). Pure: no I/O.

use std::net::IpAddr;

pub(crate) use super::env::{parse_or_warn, truthy};
use super::{EnvLayer, MqttProtocol, Secret, SettingsError};

pub const DEFAULT_MQTT_HOST: &str = "mqtt.cyberwave.com";
pub const DEFAULT_MQTT_PORT: u16 = 8883;
/// The SDK's placeholder username; replaced by `cwh_<sha256(token)>` for API tokens.
pub const PLACEHOLDER_USERNAME: &str = "mqttcyb";
pub const API_TOKEN_PREFIX: &str = "cw_";

#[derive(Debug, Clone, PartialEq)]
pub struct BrokerConfig {
    pub host: String,
    pub port: u16,
    pub tls: bool,
    /// PEM CA bundle path; `None` = the bundled Mozilla roots.
    pub ca_cert: Option<String>,
    pub username: String,
    pub password: Option<Secret>,
    pub protocol: MqttProtocol,
    /// Prepended verbatim, no separator (`dev` → `devcyberwave/…`).
    pub topic_prefix: String,
    pub keepalive_secs: u64,
    pub connect_timeout_secs: u64,
    /// Local cap on one payload; 0 disables it.
    pub max_payload_bytes: usize,
}

impl BrokerConfig {
    /// Resolves the broker settings from the layered environment, the base URL and the token.
    pub fn resolve(
        env: &EnvLayer,
        base_url: &str,
        token: Option<&str>,
    ) -> Result<(Self, Vec<String>), SettingsError> {
        let mut warnings = Vec::new();
        let explicit_port = match env.get("CYBERWAVE_MQTT_PORT") {
            Some(p) => Some(p.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(|| {
                SettingsError::InvalidValue {
                    name: "CYBERWAVE_MQTT_PORT".into(),
                    value: p.clone(),
                    expected: "a TCP port number (1-65535)".into(),
                }
            })?),
            None => None,
        };
        let (host, port) = match url_host(base_url).filter(|h| is_local_host(h)) {
            // A local/private backend has its broker next to it on the plain port. Unlike the
            // original we let an explicit CYBERWAVE_MQTT_PORT win over the inferred 1883.
            Some(h) => (h, explicit_port.unwrap_or(1883)),
            None => (
                env.get("CYBERWAVE_MQTT_HOST")
                    .unwrap_or_else(|| DEFAULT_MQTT_HOST.into()),
                explicit_port.unwrap_or(DEFAULT_MQTT_PORT),
            ),
        };
        let tls = port == 8883
            || env
                .get("CYBERWAVE_MQTT_USE_TLS")
                .is_some_and(|v| truthy(&v));
        let protocol = match env.get("CYBERWAVE_MQTT_PROTOCOL") {
            None => MqttProtocol::V311,
            Some(v) => MqttProtocol::parse(&v).ok_or_else(|| SettingsError::InvalidValue {
                name: "CYBERWAVE_MQTT_PROTOCOL".into(),
                value: v.clone(),
                expected: "5, v5, mqtt5, mqttv5, 311, 3, v311, mqtt3, mqttv311 or v3.1.1".into(),
            })?,
        };
        let explicit_password = env.get("CYBERWAVE_MQTT_PASSWORD");
        let configured_user = env
            .get("CYBERWAVE_MQTT_USERNAME")
            .unwrap_or_else(|| PLACEHOLDER_USERNAME.into());
        let (username, password) = broker_credentials(&configured_user, explicit_password, token);
        let connect_timeout_secs = parse_or_warn(
            env,
            "CYBERWAVE_MQTT_CONNECT_TIMEOUT",
            10.0,
            1.0,
            &mut warnings,
        )
        .min(3600.0) as u64;
        let keepalive_secs = parse_or_warn(
            env,
            "CYBERWAVE_MQTT_KEEPALIVE_SECONDS",
            60.0,
            5.0,
            &mut warnings,
        )
        .min(3600.0) as u64;
        let max_payload_bytes = match env.get("CYBERWAVE_MQTT_MAX_PAYLOAD_BYTES") {
            None => 32 * 1024 * 1024,
            Some(v) => v.parse::<usize>().unwrap_or_else(|_| {
                warnings.push(format!(
                    "CYBERWAVE_MQTT_MAX_PAYLOAD_BYTES={v:?} is not a byte count; using 33554432"
                ));
                32 * 1024 * 1024
            }),
        };
        Ok((
            BrokerConfig {
                host,
                port,
                tls,
                ca_cert: env.get("CYBERWAVE_MQTT_TLS_CA_CERT"),
                username,
                password: password.map(Secret::new),
                protocol,
                topic_prefix: topic_prefix(env),
                keepalive_secs,
                connect_timeout_secs,
                max_payload_bytes,
            },
            warnings,
        ))
    }
}

/// Username/password per SDK `resolve_mqtt_credentials`: the password is the explicit broker
/// password or the API token; the placeholder username becomes `cwh_<sha256(password)>` unless
/// the explicit password is a legacy broker account (not `cw_…`).
pub fn broker_credentials(
    configured_user: &str,
    explicit_password: Option<String>,
    token: Option<&str>,
) -> (String, Option<String>) {
    let legacy_password = explicit_password
        .as_deref()
        .is_some_and(|p| !p.starts_with(API_TOKEN_PREFIX));
    let password = explicit_password.or_else(|| token.map(str::to_string));
    let username = match &password {
        Some(p) if configured_user == PLACEHOLDER_USERNAME && !legacy_password => {
            username_for_token(p)
        }
        _ => configured_user.to_string(),
    };
    (username, password)
}

/// `cwh_` + lowercase hex SHA-256 of the token (68 characters); the backend derives the same.
pub fn username_for_token(token: &str) -> String {
    format!("cwh_{}", crate::sha256_hex(token.as_bytes()))
}

/// Topic prefix (SDK contracts §1.5): explicit prefix variables, else a non-production
/// `CYBERWAVE_ENVIRONMENT`, else empty.
pub fn topic_prefix(env: &EnvLayer) -> String {
    if let Some(p) = env
        .get("CYBERWAVE_MQTT_TOPIC_PREFIX")
        .or_else(|| env.get("CYBERWAVE_TOPIC_PREFIX"))
    {
        return p;
    }
    match env.get("CYBERWAVE_ENVIRONMENT") {
        Some(e) if !e.eq_ignore_ascii_case("production") => e,
        _ => String::new(),
    }
}

/// Host part of an http(s) URL (IPv6 brackets removed), lowercased.
pub fn url_host(url: &str) -> Option<String> {
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority
        .rsplit_once('@')
        .map(|(_, h)| h)
        .unwrap_or(authority);
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next()?
    } else {
        authority.split(':').next()?
    };
    (!host.is_empty()).then(|| host.to_ascii_lowercase())
}

/// `localhost`, `0.0.0.0` or a private/special-purpose IP literal (Python's `is_private`).
pub fn is_local_host(host: &str) -> bool {
    if host == "localhost" {
        return true;
    }
    match host.parse::<IpAddr>() {
        Ok(IpAddr::V4(ip)) => {
            let o = ip.octets();
            ip.is_private()
                || ip.is_loopback()
                || ip.is_link_local()
                || ip.is_unspecified()
                || ip.is_documentation()
                || ip.is_broadcast()
                || (o[0] == 198 && (o[1] & 0xfe) == 18)
                || o[0] >= 240
                || (o[0] == 192 && o[1] == 0 && o[2] == 0)
        }
        Ok(IpAddr::V6(ip)) => {
            let s = ip.segments();
            ip.is_loopback()
                || ip.is_unspecified()
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80
                || (s[0] == 0x2001 && s[1] == 0x0db8)
        }
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeMap, HashMap};

    fn env(pairs: &[(&str, &str)]) -> EnvLayer {
        EnvLayer::new(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<HashMap<_, _>>(),
            BTreeMap::new(),
        )
    }

    #[test]
    fn username_is_cwh_sha256_of_token() {
        let u = username_for_token("cw_test");
        assert_eq!(u.len(), 68);
        assert_eq!(u, format!("cwh_{}", crate::sha256_hex(b"cw_test")));
        // sha256("abc") is a well-known vector
        assert_eq!(
            username_for_token("abc"),
            "cwh_ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn credential_rules() {
        let hashed = username_for_token("cw_tok");
        assert_eq!(
            broker_credentials("mqttcyb", None, Some("cw_tok")),
            (hashed.clone(), Some("cw_tok".into()))
        );
        // explicit cw_ password is hashed too
        assert_eq!(
            broker_credentials("mqttcyb", Some("cw_tok".into()), Some("cw_x")).0,
            hashed
        );
        // legacy broker password keeps the placeholder
        assert_eq!(
            broker_credentials("mqttcyb", Some("legacy".into()), Some("cw_x")),
            ("mqttcyb".into(), Some("legacy".into()))
        );
        // explicit username always wins
        assert_eq!(broker_credentials("alice", None, Some("cw_x")).0, "alice");
    }

    #[test]
    fn prefix_rule() {
        assert_eq!(topic_prefix(&env(&[])), "");
        assert_eq!(
            topic_prefix(&env(&[("CYBERWAVE_ENVIRONMENT", "Production")])),
            ""
        );
        assert_eq!(
            topic_prefix(&env(&[("CYBERWAVE_ENVIRONMENT", " dev ")])),
            "dev"
        );
        assert_eq!(
            topic_prefix(&env(&[
                ("CYBERWAVE_ENVIRONMENT", "dev"),
                ("CYBERWAVE_TOPIC_PREFIX", "sim/")
            ])),
            "sim/"
        );
        assert_eq!(
            topic_prefix(&env(&[
                ("CYBERWAVE_MQTT_TOPIC_PREFIX", "a"),
                ("CYBERWAVE_TOPIC_PREFIX", "b")
            ])),
            "a"
        );
    }

    #[test]
    fn host_port_tls_resolution() {
        let r = |pairs: &[(&str, &str)], base: &str| {
            BrokerConfig::resolve(&env(pairs), base, Some("cw_t"))
                .unwrap()
                .0
        };
        let c = r(&[], "https://api.cyberwave.com");
        assert_eq!(
            (c.host.as_str(), c.port, c.tls),
            ("mqtt.cyberwave.com", 8883, true)
        );
        let c = r(
            &[("CYBERWAVE_MQTT_HOST", "b.example")],
            "https://api.cyberwave.com",
        );
        assert_eq!((c.host.as_str(), c.port), ("b.example", 8883));
        // private base URL: broker on that host, plain 1883, CYBERWAVE_MQTT_HOST ignored
        let c = r(
            &[("CYBERWAVE_MQTT_HOST", "b.example")],
            "http://192.168.1.5:8000",
        );
        assert_eq!(
            (c.host.as_str(), c.port, c.tls),
            ("192.168.1.5", 1883, false)
        );
        let c = r(
            &[("CYBERWAVE_MQTT_PORT", "18830")],
            "http://localhost:8000/api",
        );
        assert_eq!(
            (c.host.as_str(), c.port, c.tls),
            ("localhost", 18830, false)
        );
        let c = r(&[("CYBERWAVE_MQTT_USE_TLS", "yes")], "http://10.0.0.2");
        assert!(c.tls);
        assert_eq!(c.protocol, MqttProtocol::V311);
        let e = BrokerConfig::resolve(&env(&[("CYBERWAVE_MQTT_PORT", "abc")]), "http://x", None)
            .unwrap_err();
        assert!(e.to_string().contains("CYBERWAVE_MQTT_PORT"));
        assert!(e.to_string().contains("\"abc\""));
    }

    #[test]
    fn private_hosts() {
        for h in [
            "localhost",
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
        ] {
            assert!(is_local_host(h), "{h}");
        }
        for h in ["8.8.8.8", "api.cyberwave.com", "172.32.0.1", "2606:4700::1"] {
            assert!(!is_local_host(h), "{h}");
        }
        assert_eq!(url_host("http://[::1]:8000/x").as_deref(), Some("::1"));
        assert_eq!(
            url_host("https://API.cyberwave.com").as_deref(),
            Some("api.cyberwave.com")
        );
    }
}
