//! The local portal (reference §12, opt-in `CYBERWAVE_EDGE_LOCAL_PORTAL`): a read-only LAN
//! index of the pages running drivers declare (`local_http`), on
//! `CYBERWAVE_EDGE_LOCAL_PORTAL_BIND` (default `0.0.0.0:8700`): `GET /` (HTML),
//! `/portal.json` and `/healthz`. The supervisor hands it a fresh listing every
//! `_REFRESH_SECONDS` (10) and on every container change; requests are answered from that
//! snapshot on the portal's own threads ([`server`]), bounded in size, time and count, so a
//! slow or hostile client holds nothing of the daemon.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use crate::config::EnvLayer;

pub mod listing;
pub mod page;
mod server;

pub use listing::Input;

pub const ENABLED_ENV: &str = "CYBERWAVE_EDGE_LOCAL_PORTAL";
pub const BIND_ENV: &str = "CYBERWAVE_EDGE_LOCAL_PORTAL_BIND";
pub const HOST_ENV: &str = "CYBERWAVE_EDGE_LOCAL_PORTAL_HOST";
pub const REFRESH_ENV: &str = "CYBERWAVE_EDGE_LOCAL_PORTAL_REFRESH_SECONDS";
pub const DEFAULT_BIND: &str = "0.0.0.0:8700";

#[derive(Debug, Clone, PartialEq)]
pub struct PortalSettings {
    pub bind: SocketAddr,
    /// `_HOST`: the host name or address links use instead of the one a client reached.
    pub advertised: Option<String>,
    pub refresh: Duration,
}

/// `host:port`, `[v6]:port`, `:port` or `port`; the host an IP address or `localhost`.
pub fn parse_bind(value: &str) -> Result<SocketAddr, String> {
    let text = if value.trim().is_empty() {
        DEFAULT_BIND
    } else {
        value.trim()
    };
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        rest.split_once("]:")
            .ok_or_else(|| format!("invalid bind address {text:?}"))?
    } else if let Some((h, p)) = text.rsplit_once(':') {
        (h, p)
    } else {
        ("", text)
    };
    let port: u16 = port
        .parse()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| format!("invalid port in bind address {text:?}"))?;
    let host = if host.is_empty() { "0.0.0.0" } else { host };
    if host == "localhost" {
        return ("localhost", port)
            .to_socket_addrs()
            .ok()
            .and_then(|mut a| a.next())
            .ok_or_else(|| "localhost does not resolve".to_string());
    }
    let ip: IpAddr = host
        .parse()
        .map_err(|_| format!("bind host must be an IP address or localhost (got {host:?})"))?;
    Ok(SocketAddr::new(ip, port))
}

/// A host name or address for links, or `None` (with a warning) when unusable.
fn advertised_host(v: Option<String>) -> Option<String> {
    let t = v?.trim().to_string();
    if let Ok(ip) = t.trim_matches(['[', ']']).parse::<IpAddr>() {
        return Some(match ip {
            IpAddr::V6(a) => format!("[{a}]"),
            IpAddr::V4(a) => a.to_string(),
        });
    }
    match super::settings::check_host(&t) {
        Ok(h) => Some(h),
        Err(_) => {
            log::warn!("ignoring invalid {HOST_ENV}={:?}", crate::clip(&t, 80));
            None
        }
    }
}

/// The portal's settings, `Ok(None)` when it is off (the default).
pub fn settings(env: &EnvLayer) -> Result<Option<PortalSettings>, String> {
    let on = env
        .get(ENABLED_ENV)
        .is_some_and(|v| matches!(v.to_lowercase().as_str(), "1" | "true" | "yes" | "on"));
    if !on {
        return Ok(None);
    }
    let bind = parse_bind(&env.get(BIND_ENV).unwrap_or_default())?;
    let mut warnings = Vec::new();
    let refresh = crate::config::seconds_or_warn(env, REFRESH_ENV, 10.0, 1.0, &mut warnings);
    for w in warnings {
        log::warn!("{w}");
    }
    Ok(Some(PortalSettings {
        bind,
        advertised: advertised_host(env.get(HOST_ENV)),
        refresh,
    }))
}

/// What requests are answered from.
#[derive(Debug, Default)]
pub(crate) struct Snapshot {
    drivers: Vec<listing::Driver>,
    generated_at: String,
    refreshed: Option<Instant>,
}

/// The running portal: its address, its snapshot and when the supervisor refreshes it next.
pub struct Portal {
    pub addr: SocketAddr,
    shared: Arc<Mutex<Snapshot>>,
    refresh: Duration,
    next: Instant,
}

impl Portal {
    /// Binds and serves on the portal's threads. A busy port or a bad address is an error for
    /// the caller to log: the daemon runs on without the portal.
    pub fn start(s: &PortalSettings) -> std::io::Result<Portal> {
        let shared = Arc::new(Mutex::new(Snapshot::default()));
        let addr = server::serve(s.bind, s.advertised.clone(), shared.clone())?;
        log::info!("edge local portal serving a read-only driver page index on {addr}");
        Ok(Portal {
            addr,
            shared,
            refresh: s.refresh,
            next: Instant::now(),
        })
    }

    /// When the listing is next refreshed.
    pub fn due(&self) -> Instant {
        self.next
    }

    /// A fresh listing from the supervisor's view of the running drivers.
    pub fn update(&mut self, inputs: &[Input]) {
        let drivers = listing::build(inputs);
        let generated_at = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
        if let Ok(mut s) = self.shared.lock() {
            *s = Snapshot {
                drivers,
                generated_at,
                refreshed: Some(Instant::now()),
            };
        }
        self.next = Instant::now() + self.refresh;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bind_addresses_parse_as_the_original() {
        #[rustfmt::skip]
        let ok = [
            ("", "0.0.0.0:8700"), ("9000", "0.0.0.0:9000"), (":9000", "0.0.0.0:9000"),
            ("127.0.0.1:81", "127.0.0.1:81"), ("[::1]:81", "[::1]:81"),
            ("localhost:82", "127.0.0.1:82"),
        ];
        for (raw, want) in ok {
            assert_eq!(parse_bind(raw).unwrap().to_string(), want, "{raw}");
        }
        for bad in [
            "example.com:80",
            "1.2.3.4:0",
            "1.2.3.4:x",
            "[::1]81",
            "1.2.3.4:70000",
        ] {
            assert!(parse_bind(bad).is_err(), "{bad}");
        }
        assert_eq!(
            advertised_host(Some("::1".into())).as_deref(),
            Some("[::1]")
        );
        assert_eq!(
            advertised_host(Some("Robot-7.lan".into())).as_deref(),
            Some("robot-7.lan")
        );
        assert_eq!(advertised_host(Some("evil'><script>".into())), None);
    }
}
