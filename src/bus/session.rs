//! The daemon's own zenoh session (zenoh's blocking API; its tokio runtime stays in here): the
//! embedded router when configured, else a peer on the drivers' bus, and the two subscriptions
//! that count what drivers and the worker publish.

use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use zenoh::Wait;

use super::liveness::Traffic;
use super::settings::{BusSettings, Router};

/// The open session; dropping it closes it (and the router with it).
pub struct Session {
    inner: zenoh::Session,
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = self.inner.close().wait();
    }
}

/// The zenoh configuration of our session: router or peer, where it listens and connects.
fn config(s: &BusSettings) -> Result<zenoh::Config, String> {
    let mut c = zenoh::Config::default();
    let mut set = |key: &str, value: String| {
        c.insert_json5(key, &value)
            .map_err(|e| format!("zenoh setting {key}={value}: {e}"))
    };
    let json_list = |v: &[String]| serde_json::to_string(v).unwrap_or_else(|_| "[]".into());
    match s.router {
        Router::Embedded { port } => {
            set("mode", "\"router\"".into())?;
            set(
                "listen/endpoints",
                json_list(&[format!("tcp/0.0.0.0:{port}")]),
            )?;
            // Other routers to join, when configured; drivers connect to us explicitly.
            set("connect/endpoints", json_list(&s.connect))?;
            set("scouting/multicast/enabled", "false".into())?;
        }
        _ => {
            set("mode", "\"peer\"".into())?;
            let connect = s.connect_for_containers();
            // With no router to connect to, find the drivers the way they find each other.
            set("scouting/multicast/enabled", connect.is_empty().to_string())?;
            set("connect/endpoints", json_list(&connect))?;
            // We only listen to the bus: no TCP listener of ours on the network (a peer would
            // open one on every interface), and we do not answer other peers' scouts; we
            // connect out to the drivers we find.
            set("listen/endpoints", "[]".into())?;
            set("scouting/multicast/listen", "false".into())?;
        }
    }
    Ok(c)
}

fn epoch_second() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Opens the session and subscribes `cw/*/data/**` and `cw/_monitor/*/worker_stats`; each
/// sample costs the callback one short lock of `traffic`.
pub fn open(s: &BusSettings, traffic: Arc<Mutex<Traffic>>) -> Result<Session, String> {
    let session = zenoh::open(config(s)?)
        .wait()
        .map_err(|e| format!("cannot open the zenoh session: {e}"))?;
    let data = traffic.clone();
    session
        .declare_subscriber("cw/*/data/**")
        .callback(move |sample| {
            let key = sample.key_expr().as_str();
            let bytes = sample.payload().len();
            if let Ok(mut t) = data.lock() {
                t.record(key, bytes, Instant::now(), epoch_second());
            }
        })
        .background()
        .wait()
        .map_err(|e| format!("cannot subscribe to driver data: {e}"))?;
    session
        .declare_subscriber("cw/_monitor/*/worker_stats")
        .callback(move |sample| {
            // Copied only when small enough to be read (a peer may publish anything there).
            let payload = if sample.payload().len() <= super::liveness::MAX_STATS_BYTES {
                sample.payload().to_bytes().into_owned()
            } else {
                Vec::new()
            };
            if let Ok(mut t) = traffic.lock() {
                t.record_worker_stats(sample.key_expr().as_str(), &payload, Instant::now());
            }
        })
        .background()
        .wait()
        .map_err(|e| format!("cannot subscribe to worker stats: {e}"))?;
    Ok(Session { inner: session })
}

impl Session {
    /// This session's zenoh id (for `status`).
    pub fn id(&self) -> String {
        self.inner.zid().to_string()
    }
}
