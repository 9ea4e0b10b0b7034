//! Name resolution for the backend client. ureq resolves the host before every request, even
//! one that reuses a kept connection, and with a deadline it does so on a new thread each time:
//! a thread spawned and joined per tick for the same answer. We keep an answer for a minute
//! (the backend's address does not move faster than that), resolve IP literals without any
//! lookup, and leave the rest to ureq's own resolver, deadline included.

use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ureq::config::Config;
use ureq::http::Uri;
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::NextTimeout;

/// How long an answer is used again.
const KEEP: Duration = Duration::from_secs(60);
/// Hosts remembered (a client talks to one or two).
const MAX_HOSTS: usize = 8;

#[derive(Debug, Default)]
pub struct KeptResolver {
    inner: DefaultResolver,
    kept: Mutex<Vec<(String, Instant, ResolvedSocketAddrs)>>,
}

/// `host:port` of a URI (the default port of its scheme when it names none).
fn host_port(uri: &Uri) -> Option<(String, u16)> {
    let port = uri.port_u16().or(match uri.scheme_str() {
        Some("https") => Some(443),
        Some("http") => Some(80),
        _ => None,
    })?;
    let host = uri.host()?.trim_start_matches('[').trim_end_matches(']');
    Some((host.to_string(), port))
}

impl Resolver for KeptResolver {
    fn resolve(
        &self,
        uri: &Uri,
        config: &Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let Some((host, port)) = host_port(uri) else {
            return self.inner.resolve(uri, config, timeout);
        };
        if let Ok(ip) = host.parse::<IpAddr>() {
            let mut out = self.empty();
            out.push(SocketAddr::new(ip, port));
            return Ok(out);
        }
        let key = format!("{host}:{port}");
        let now = Instant::now();
        if let Ok(kept) = self.kept.lock()
            && let Some((_, _, addrs)) = kept
                .iter()
                .find(|(k, at, _)| *k == key && now.duration_since(*at) < KEEP)
        {
            return Ok(addrs.clone());
        }
        let addrs = self.inner.resolve(uri, config, timeout)?;
        if let Ok(mut kept) = self.kept.lock() {
            kept.retain(|(k, at, _)| *k != key && now.duration_since(*at) < KEEP);
            if kept.len() >= MAX_HOSTS {
                kept.remove(0);
            }
            kept.push((key, now, addrs.clone()));
        }
        Ok(addrs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(r: &KeptResolver, url: &str) -> Vec<SocketAddr> {
        let uri: Uri = url.parse().unwrap();
        let config = Config::default();
        r.resolve(&uri, &config, NextTimeout::default())
            .unwrap()
            .iter()
            .copied()
            .collect()
    }

    #[test]
    fn literals_need_no_lookup_and_names_are_kept() {
        let r = KeptResolver::default();
        assert_eq!(
            resolve(&r, "http://127.0.0.1:8080/x"),
            ["127.0.0.1:8080".parse::<SocketAddr>().unwrap()]
        );
        assert_eq!(
            resolve(&r, "https://[::1]/x"),
            ["[::1]:443".parse::<SocketAddr>().unwrap()]
        );
        assert!(r.kept.lock().unwrap().is_empty());
        let first = resolve(&r, "http://localhost:9/x");
        assert!(!first.is_empty());
        assert_eq!(r.kept.lock().unwrap().len(), 1);
        assert_eq!(resolve(&r, "http://localhost:9/y"), first);
        assert_eq!(r.kept.lock().unwrap().len(), 1);
    }
}
