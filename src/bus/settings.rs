//! The data bus settings (reference §9.1) as drivers, the worker, the router and `status` see
//! them: read once, validated once. Values the SDK would refuse (its `BackendConfigError` kills
//! the driver at start) are reported here and not passed on, instead of crashing every driver.

use serde_json::{Value, json};

use crate::config::EnvLayer;

/// The router image of the original.
pub const DEFAULT_ROUTER_IMAGE: &str = "eclipse/zenoh:1.9.0";
pub const DEFAULT_PORT: u16 = 7447;
/// What the worker listens on unless told otherwise (§9.2).
const DEFAULT_WORKER_LISTEN: &str = "tcp/0.0.0.0:7447";
/// Endpoint schemes zenoh knows.
const SCHEMES: [&str; 7] = [
    "tcp",
    "udp",
    "tls",
    "quic",
    "ws",
    "unixsock-stream",
    "serial",
];

/// Which router this edge runs for its drivers and worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Router {
    Off,
    /// The original's router container (`eclipse/zenoh`), on the host network.
    Container {
        image: String,
        port: u16,
    },
    /// A router inside the daemon: no image to pull, no extra container.
    Embedded {
        port: u16,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct BusSettings {
    /// `CYBERWAVE_DATA_BACKEND` as given (`zenoh` unless set).
    pub backend: String,
    pub shared_memory: bool,
    /// `peer` or `client`; anything else was refused.
    pub mode: Option<String>,
    /// Valid `ZENOH_CONNECT` endpoints.
    pub connect: Vec<String>,
    /// `ZENOH_LISTEN` for the worker, when set and valid.
    pub listen: Option<String>,
    pub router: Router,
    /// What was refused or looks wrong, for the log and `status`.
    pub warnings: Vec<String>,
}

/// A zenoh endpoint as `ZENOH_CONNECT`/`ZENOH_LISTEN` carry it: `<scheme>/<address>`, one
/// printable word.
pub fn valid_endpoint(e: &str) -> bool {
    e.len() <= 255
        && !e.chars().any(|c| c.is_whitespace() || c.is_control())
        && e.split_once('/')
            .is_some_and(|(scheme, addr)| SCHEMES.contains(&scheme) && !addr.is_empty())
}

/// The longest `ZENOH_CONNECT` read, and the most endpoints passed on: a value past either is
/// a mistake (or an attack through `credentials.json`), not a bus.
pub const MAX_CONNECT_BYTES: usize = 4096;
pub const MAX_CONNECT_ENDPOINTS: usize = 32;
/// Malformed endpoints named one by one; the rest are counted in one line.
const NAMED_BAD_ENDPOINTS: usize = 3;

/// The valid endpoints of a `ZENOH_CONNECT` value, with at most a handful of warnings about
/// the rest however long the value is.
pub fn connect_endpoints(value: &str, warnings: &mut Vec<String>) -> Vec<String> {
    if value.len() > MAX_CONNECT_BYTES {
        warnings.push(format!(
            "ZENOH_CONNECT is {} bytes, more than {MAX_CONNECT_BYTES}: it is not passed on",
            value.len()
        ));
        return Vec::new();
    }
    let mut connect = Vec::new();
    let (mut bad, mut extra) = (0usize, 0usize);
    for e in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        if !valid_endpoint(e) {
            bad += 1;
            if bad <= NAMED_BAD_ENDPOINTS {
                warnings.push(format!(
                    "ZENOH_CONNECT endpoint {:?} is not <scheme>/<address>; it is not passed on",
                    crate::clip(e, 128)
                ));
            }
        } else if connect.len() < MAX_CONNECT_ENDPOINTS {
            connect.push(e.to_string());
        } else {
            extra += 1;
        }
    }
    if bad > NAMED_BAD_ENDPOINTS {
        warnings.push(format!(
            "ZENOH_CONNECT has {} more malformed endpoints; none of them is passed on",
            bad - NAMED_BAD_ENDPOINTS
        ));
    }
    if extra > 0 {
        warnings.push(format!(
            "ZENOH_CONNECT names {} endpoints; only the first {MAX_CONNECT_ENDPOINTS} are passed on",
            MAX_CONNECT_ENDPOINTS + extra
        ));
    }
    connect
}

impl BusSettings {
    pub fn from_env(env: &EnvLayer) -> Self {
        let mut warnings = Vec::new();
        let backend = env
            .get("CYBERWAVE_DATA_BACKEND")
            .unwrap_or_else(|| "zenoh".into());
        let mode = env
            .get("ZENOH_MODE")
            .map(|m| m.to_lowercase())
            .and_then(|m| match m.as_str() {
                "peer" | "client" => Some(m),
                _ => {
                    warnings.push(format!(
                        "ZENOH_MODE={:?} is not peer or client: the SDK refuses it and every driver would stop at start; it is not passed on",
                        crate::clip(&m, 32)
                    ));
                    None
                }
            });
        let connect =
            connect_endpoints(&env.get("ZENOH_CONNECT").unwrap_or_default(), &mut warnings);
        let listen = env.get("ZENOH_LISTEN").filter(|l| {
            let ok = l.split(',').map(str::trim).all(valid_endpoint);
            if !ok {
                warnings.push(format!(
                    "ZENOH_LISTEN={:?} is not a list of <scheme>/<address>; the worker gets the default",
                    crate::clip(l, 128)
                ));
            }
            ok
        });
        let port = match env.get("ZENOH_ROUTER_PORT") {
            None => DEFAULT_PORT,
            Some(p) => match p.parse::<u16>() {
                Ok(n) if n > 0 => n,
                _ => {
                    warnings.push(format!(
                        "ZENOH_ROUTER_PORT={:?} is not a port; using {DEFAULT_PORT}",
                        crate::clip(&p, 32)
                    ));
                    DEFAULT_PORT
                }
            },
        };
        let enabled = env
            .get("ZENOH_ROUTER_ENABLED")
            .is_some_and(|v| crate::config::truthy(&v));
        let router_mode = env.get("ZENOH_ROUTER_MODE").map(|m| m.to_lowercase());
        let router = match router_mode.as_deref() {
            Some("embedded") if cfg!(feature = "zenoh") => Router::Embedded { port },
            Some("embedded") => {
                warnings.push(
                    "ZENOH_ROUTER_MODE=embedded needs the zenoh build of cyberwave-edge-core; using the router container"
                        .into(),
                );
                Self::container(env, enabled, port, &mut warnings)
            }
            None | Some("container") => Self::container(env, enabled, port, &mut warnings),
            Some(other) => {
                warnings.push(format!(
                    "ZENOH_ROUTER_MODE={:?} is not container or embedded; using container",
                    crate::clip(other, 32)
                ));
                Self::container(env, enabled, port, &mut warnings)
            }
        };
        BusSettings {
            shared_memory: env
                .get("ZENOH_SHARED_MEMORY")
                .is_some_and(|v| crate::config::truthy(&v)),
            backend,
            mode,
            connect,
            listen,
            router,
            warnings,
        }
    }

    fn container(env: &EnvLayer, enabled: bool, port: u16, warnings: &mut Vec<String>) -> Router {
        if !enabled {
            return Router::Off;
        }
        let image = env
            .get("ZENOH_ROUTER_IMAGE")
            .filter(|i| {
                let ok = crate::containers::image::valid_reference(i);
                if !ok {
                    warnings.push(format!(
                        "ZENOH_ROUTER_IMAGE={:?} is not an image reference; using {DEFAULT_ROUTER_IMAGE}",
                        crate::clip(i, 128)
                    ));
                }
                ok
            })
            .unwrap_or_else(|| DEFAULT_ROUTER_IMAGE.into());
        Router::Container { image, port }
    }

    pub fn is_zenoh(&self) -> bool {
        self.backend == "zenoh"
    }

    /// The router's port when this edge runs one.
    pub fn router_port(&self) -> Option<u16> {
        match self.router {
            Router::Off => None,
            Router::Container { port, .. } | Router::Embedded { port } => Some(port),
        }
    }

    /// What containers are told to connect to: the configured endpoints, else our router's.
    /// (The original warned "router enabled but ZENOH_CONNECT empty" and left drivers on
    /// multicast discovery; pointing them at the router is what enabling it is for.)
    pub fn connect_for_containers(&self) -> Vec<String> {
        match (self.connect.is_empty(), self.router_port()) {
            (true, Some(port)) => vec![format!("tcp/127.0.0.1:{port}")],
            _ => self.connect.clone(),
        }
    }

    /// §9.2 for drivers, in injection order (each set only when the driver's params do not).
    pub fn driver_env(&self) -> Vec<(&'static str, String)> {
        let mut out = vec![("CYBERWAVE_DATA_BACKEND", self.backend.clone())];
        if self.is_zenoh() {
            out.push(("ZENOH_SHARED_MEMORY", self.shared_memory.to_string()));
            if let Some(m) = &self.mode {
                out.push(("ZENOH_MODE", m.clone()));
            }
            let connect = self.connect_for_containers();
            if !connect.is_empty() {
                out.push(("ZENOH_CONNECT", connect.join(",")));
            }
        }
        out
    }

    /// §9.2 for the worker: always the zenoh backend; it listens on 7447 unless told otherwise,
    /// except when our router holds that port on the same (host) network.
    pub fn worker_env(&self) -> Vec<(&'static str, String)> {
        let mut out = vec![
            ("CYBERWAVE_DATA_BACKEND", "zenoh".to_string()),
            ("ZENOH_SHARED_MEMORY", self.shared_memory.to_string()),
        ];
        if let Some(m) = &self.mode {
            out.push(("ZENOH_MODE", m.clone()));
        }
        let connect = self.connect_for_containers();
        if !connect.is_empty() {
            out.push(("ZENOH_CONNECT", connect.join(",")));
        }
        match (&self.listen, self.router_port()) {
            (Some(l), _) => out.push(("ZENOH_LISTEN", l.clone())),
            (None, Some(DEFAULT_PORT)) => {}
            (None, _) => out.push(("ZENOH_LISTEN", DEFAULT_WORKER_LISTEN.into())),
        }
        out
    }

    /// §9.4: how the bus is wired, in the original's words, and what looks wrong.
    pub fn diagnostics(&self) -> Value {
        let mode = if !self.is_zenoh() {
            format!("filesystem (CYBERWAVE_DATA_BACKEND='{}')", self.backend)
        } else {
            let connect = self.connect_for_containers();
            let base = if connect.is_empty() {
                "peer-to-peer (multicast discovery, no router)".to_string()
            } else {
                format!("router-connected (endpoints: {})", connect.join(", "))
            };
            match self.router {
                Router::Off => base,
                _ => format!("router-managed ({base})"),
            }
        };
        let mut warnings = self.warnings.clone();
        if !self.is_zenoh() {
            warnings.push(format!(
                "CYBERWAVE_DATA_BACKEND={:?}: drivers and the worker do not use zenoh",
                self.backend
            ));
        } else if !self.connect.is_empty() && self.router == Router::Off {
            warnings.push(
                "ZENOH_CONNECT is set but no router runs here: the endpoints must be reachable routers"
                    .into(),
            );
        }
        let router = match &self.router {
            Router::Off => json!(null),
            Router::Container { image, port } => {
                json!({"kind": "container", "image": image, "port": port})
            }
            Router::Embedded { port } => json!({"kind": "embedded", "port": port}),
        };
        json!({
            "backend": self.backend,
            "mode": mode,
            "router": router,
            "connect": self.connect_for_containers(),
            "shared_memory": self.shared_memory,
            "warnings": warnings,
        })
    }
}

/// `cyberwave-zenoh-router-<env[:8]>` (`default` without an environment).
pub fn router_container_name(environment_uuid: Option<&str>) -> String {
    let short: String = environment_uuid
        .unwrap_or("default")
        .chars()
        .take(8)
        .collect();
    format!("cyberwave-zenoh-router-{short}")
}

#[cfg(test)]
mod tests;
