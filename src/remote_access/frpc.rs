//! frpc, pure: the relay credential as the backend answers it, the TOML config for frp v0.71
//! with every field of Appendix B, and the `cyberwave-remote-access` container spec
//! (`--network host --restart no --read-only --security-opt no-new-privileges`, log caps, the
//! config and CA mounted read-only). The relay token lives only in the config text: never in
//! the spec, its argv, its env or its hash.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{Value, json};

use super::settings::Relay;
use crate::config::Secret;
use crate::containers::spec::{ContainerSpec, Pull, Role};

pub const CONTAINER_NAME: &str = "cyberwave-remote-access";
pub const CONTAINER_CONFIG_PATH: &str = "/etc/frp/frpc.toml";
pub const CONTAINER_CA_PATH: &str = "/etc/frp/relay-ca.pem";
/// Present in the pinned frpc image.
pub const CONTAINER_SYSTEM_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// What `POST …/credential` answers: the relay token and the proxy to open.
#[derive(Clone, PartialEq)]
pub struct Credential {
    pub token: Secret,
    pub proxy_name: String,
    pub local_port: u16,
    pub remote_port: u16,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential")
            .field("proxy_name", &self.proxy_name)
            .field("local_port", &self.local_port)
            .field("remote_port", &self.remote_port)
            .finish_non_exhaustive()
    }
}

fn port(v: Option<&Value>, name: &str) -> Result<u16, String> {
    let n = match v {
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s)) => s.trim().parse().ok(),
        _ => None,
    };
    match n {
        Some(p @ 1..=65535) => Ok(p as u16),
        _ => Err(format!("{name} is not a port (1..65535)")),
    }
}

impl Credential {
    /// Reads the backend's answer; the error names the field, never its value.
    pub fn parse(v: &Value) -> Result<Credential, String> {
        let text = |k: &str| match v.get(k) {
            Some(Value::String(s)) if !s.trim().is_empty() && s.len() <= 4096 => {
                Ok(s.trim().to_string())
            }
            _ => Err(format!("{k} is not a non-empty string")),
        };
        Ok(Credential {
            token: Secret::new(text("token")?),
            proxy_name: text("proxy_name")?,
            local_port: port(v.get("local_port"), "local_port")?,
            remote_port: port(v.get("remote_port"), "remote_port")?,
        })
    }
}

/// A TOML basic string: quotes, backslashes and control characters escaped.
pub fn toml_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The CA frpc verifies the relay against, inside the container: the mounted CA file when one
/// is configured, none for a loopback relay (a developer's self-signed frps), else the image's
/// system bundle.
pub fn trusted_ca(relay: &Relay, ca_file: bool) -> Option<&'static str> {
    if ca_file {
        Some(CONTAINER_CA_PATH)
    } else if relay.is_loopback() {
        None
    } else {
        Some(CONTAINER_SYSTEM_CA_BUNDLE)
    }
}

/// The frpc config for one session (frp v0.71 TOML). Linux: host network, so the proxy's
/// local side is `127.0.0.1` and the relay is dialled as configured.
pub fn render(session: &str, c: &Credential, relay: &Relay, ca_file: bool) -> String {
    let ca = trusted_ca(relay, ca_file);
    let mut lines = vec![
        format!("serverAddr = {}", toml_string(&relay.host)),
        format!("serverPort = {}", relay.port),
        "loginFailExit = true".to_string(),
        format!("metadatas.session_id = {}", toml_string(session)),
        format!("metadatas.token = {}", toml_string(c.token.expose())),
        "transport.heartbeatInterval = 30".to_string(),
        "transport.heartbeatTimeout = 90".to_string(),
        "transport.tls.enable = true".to_string(),
    ];
    if let Some(ca) = ca {
        lines.push(format!("transport.tls.trustedCaFile = {}", toml_string(ca)));
        lines.push(format!(
            "transport.tls.serverName = {}",
            toml_string(&relay.host)
        ));
    }
    lines.extend([
        "log.to = \"console\"".to_string(),
        String::new(),
        "[[proxies]]".to_string(),
        format!("name = {}", toml_string(&c.proxy_name)),
        "type = \"tcp\"".to_string(),
        format!("localIP = {}", toml_string("127.0.0.1")),
        format!("localPort = {}", c.local_port),
        format!("remotePort = {}", c.remote_port),
        String::new(),
    ]);
    lines.join("\n")
}

/// What shapes the container besides the session.
pub struct SpecContext<'a> {
    pub image: &'a str,
    pub config_file: &'a Path,
    pub ca_file: Option<&'a Path>,
    /// This edge's fingerprint (the owner label).
    pub owner: &'a str,
    /// `None` = `CYBERWAVE_DOCKER_LOG_MAX_SIZE=off`.
    pub log_max_size: Option<&'a str>,
    pub log_max_file: &'a str,
    /// `--user uid:gid`: the daemon's own ids, as the original.
    pub user: (u32, u32),
}

/// The tunnel container for `session`.
pub fn spec(session: &str, c: &SpecContext) -> ContainerSpec {
    let mut o: Vec<String> = ["--network", "host", "--restart", "no", "--read-only"]
        .map(String::from)
        .to_vec();
    o.extend(["--security-opt".into(), "no-new-privileges".into()]);
    o.extend(["--user".into(), format!("{}:{}", c.user.0, c.user.1)]);
    crate::containers::push_log_caps(&mut o, c.log_max_size, c.log_max_file);
    o.extend([
        "-v".into(),
        format!("{}:{CONTAINER_CONFIG_PATH}:ro", c.config_file.display()),
    ]);
    if let Some(ca) = c.ca_file {
        o.extend([
            "-v".into(),
            format!("{}:{CONTAINER_CA_PATH}:ro", ca.display()),
        ]);
    }
    o.extend(["--name".into(), CONTAINER_NAME.into()]);
    let command = vec!["-c".to_string(), CONTAINER_CONFIG_PATH.to_string()];
    // Every open is a new container (a new credential in its config): a nonce in the hash, so
    // a leftover of the same session from a killed daemon is never taken for this one.
    let mut nonce = [0u8; 8];
    crate::random_bytes(&mut nonce);
    let canonical = json!({"schema": 1, "session": session, "image": c.image, "options": o,
                           "command": command, "open": crate::hex(&nonce)});
    let spec_hash = crate::sha256_hex(canonical.to_string().as_bytes());
    crate::containers::push_managed_labels(&mut o, &spec_hash, c.owner);
    let pull = if crate::containers::image::is_mutable(c.image) {
        Pull::Always
    } else {
        Pull::IfMissing
    };
    ContainerSpec {
        name: CONTAINER_NAME.into(),
        role: Role::Tunnel,
        owner: session.to_string(),
        title: "remote access".into(),
        service: Some("frpc".into()),
        image: c.image.to_string(),
        fallback_image: None,
        options: o,
        env: BTreeMap::new(),
        command,
        spec_hash,
        restart: "no".into(),
        pull,
        floor: None,
        probe: None,
        pull_attempts: 3,
        once: true,
        links: Default::default(),
    }
}

#[cfg(test)]
mod tests;
