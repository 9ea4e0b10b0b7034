//! Remote-access settings (reference §11.3, Appendix B): the relay (`CYBERWAVE_REMOTE_ACCESS_
//! RELAY_HOST` / `_PORT`, default `relay.edge.cyberwave.com:443`), its CA file, the SSH login
//! user override, and the frpc image (`CYBERWAVE_REMOTE_ACCESS_IMAGE`, ours: air-gapped sites
//! and tests). A relay host that is not a host name or an address is refused, not written
//! into a config file.

use std::net::IpAddr;
use std::path::PathBuf;

use crate::config::EnvLayer;

pub const RELAY_HOST_ENV: &str = "CYBERWAVE_REMOTE_ACCESS_RELAY_HOST";
pub const RELAY_PORT_ENV: &str = "CYBERWAVE_REMOTE_ACCESS_RELAY_PORT";
pub const RELAY_CA_FILE_ENV: &str = "CYBERWAVE_REMOTE_ACCESS_RELAY_CA_FILE";
pub const SSH_USER_ENV: &str = "CYBERWAVE_REMOTE_ACCESS_SSH_USER";
pub const IMAGE_ENV: &str = "CYBERWAVE_REMOTE_ACCESS_IMAGE";

pub const DEFAULT_RELAY_HOST: &str = "relay.edge.cyberwave.com";
/// 443, not a port of our own: corporate allowlists permit 80/443 only (the original's note).
pub const DEFAULT_RELAY_PORT: u16 = 443;
/// The original's pin: `fatedier/frpc:v0.71.0`, multi-arch index digest.
pub const DEFAULT_IMAGE: &str =
    "fatedier/frpc:v0.71.0@sha256:99ece6a2b62cfc68731e0df289af804ff1c699911cfc47871856434f1d6d53ee";

/// Where frpc dials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relay {
    pub host: String,
    pub port: u16,
}

impl Relay {
    /// A loopback relay (a developer's frps): TLS without verification, as the original.
    pub fn is_loopback(&self) -> bool {
        self.host.eq_ignore_ascii_case("localhost")
            || self
                .host
                .trim_matches(['[', ']'])
                .parse::<IpAddr>()
                .is_ok_and(|a| a.is_loopback())
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct RemoteSettings {
    /// The relay, or why the configured one is refused.
    pub relay: Result<Relay, String>,
    pub ca_file: Option<PathBuf>,
    /// `CYBERWAVE_REMOTE_ACCESS_SSH_USER` and `SUDO_USER` (process environment only).
    pub ssh_user: Option<String>,
    pub sudo_user: Option<String>,
    pub image: String,
}

impl RemoteSettings {
    pub fn from_env(env: &EnvLayer) -> Self {
        let host = env
            .get(RELAY_HOST_ENV)
            .unwrap_or_else(|| DEFAULT_RELAY_HOST.into());
        let port = match env.get(RELAY_PORT_ENV) {
            None => DEFAULT_RELAY_PORT,
            Some(raw) => match raw.parse::<u16>() {
                Ok(p) if p > 0 => p,
                _ => {
                    log::warn!(
                        "invalid {RELAY_PORT_ENV}={:?}; using {DEFAULT_RELAY_PORT}",
                        crate::clip(&raw, 40)
                    );
                    DEFAULT_RELAY_PORT
                }
            },
        };
        let relay = check_host(&host)
            .map(|host| Relay { host, port })
            .map_err(|why| {
                format!(
                    "{RELAY_HOST_ENV}={:?} refused: {why}",
                    crate::clip(&host, 80)
                )
            });
        RemoteSettings {
            relay,
            ca_file: env.get(RELAY_CA_FILE_ENV).map(PathBuf::from),
            ssh_user: env.process(SSH_USER_ENV),
            sudo_user: env.process("SUDO_USER"),
            image: env.get(IMAGE_ENV).unwrap_or_else(|| DEFAULT_IMAGE.into()),
        }
    }
}

/// A host name (RFC 1123 labels) or an IP address (IPv6 with or without brackets); anything
/// else — a URL, a path, spaces, quotes, a newline that would end the TOML string — is refused.
pub fn check_host(host: &str) -> Result<String, &'static str> {
    if let Ok(a) = host.trim_matches(['[', ']']).parse::<IpAddr>() {
        return Ok(a.to_string());
    }
    if host.is_empty() || host.len() > 253 {
        return Err("not a host name (1 to 253 characters)");
    }
    let name = host.strip_suffix('.').unwrap_or(host);
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    };
    if name.split('.').all(label_ok) {
        Ok(name.to_ascii_lowercase())
    } else {
        Err("not a host name or an IP address")
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashMap};

    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> RemoteSettings {
        let p: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        RemoteSettings::from_env(&EnvLayer::new(p, BTreeMap::new()))
    }

    #[test]
    fn defaults_are_the_originals() {
        let s = settings(&[]);
        assert_eq!(
            s.relay,
            Ok(Relay {
                host: DEFAULT_RELAY_HOST.into(),
                port: 443
            })
        );
        assert_eq!(s.image, DEFAULT_IMAGE);
        assert_eq!(s.ca_file, None);
        assert!(!s.relay.unwrap().is_loopback());
    }

    #[test]
    fn hosts_are_names_or_addresses() {
        for (raw, want) in [
            ("relay.example.com", Ok("relay.example.com")),
            ("Relay.Example.COM.", Ok("relay.example.com")),
            ("127.0.0.1", Ok("127.0.0.1")),
            ("[::1]", Ok("::1")),
            ("localhost", Ok("localhost")),
            ("relay\"\nserverPort = 1", Err(())),
            ("http://relay.example.com", Err(())),
            ("-relay.example.com", Err(())),
            ("a..b", Err(())),
            ("relay example", Err(())),
            ("", Err(())),
        ] {
            let got = check_host(raw).map_err(|_| ());
            assert_eq!(got, want.map(str::to_string), "{raw:?}");
        }
        assert!(check_host(&"a".repeat(254)).is_err());
        assert!(check_host(&format!("{}.com", "a".repeat(64))).is_err());
    }

    #[test]
    fn a_bad_relay_is_refused_and_a_bad_port_falls_back() {
        let s = settings(&[(RELAY_HOST_ENV, "evil\"host"), (RELAY_PORT_ENV, "99999")]);
        assert!(s.relay.unwrap_err().contains("refused"));
        let s = settings(&[(RELAY_HOST_ENV, "127.0.0.1"), (RELAY_PORT_ENV, "7000")]);
        let r = s.relay.unwrap();
        assert_eq!(r.port, 7000);
        assert!(r.is_loopback());
        let s = settings(&[(RELAY_PORT_ENV, "0")]);
        assert_eq!(s.relay.unwrap().port, 443);
    }
}
