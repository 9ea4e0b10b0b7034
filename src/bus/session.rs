//! The daemon's own zenoh session (zenoh's blocking API; its tokio runtime stays in here): the
//! embedded router when configured, else a peer on the drivers' bus, and the two subscriptions
//! that count what drivers and the worker publish.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use zenoh::Wait;

use super::liveness::Traffic;
use super::settings::{BusSettings, Router};

/// The open session; dropping it closes it (and the router with it).
pub struct Session {
    inner: zenoh::Session,
    traffic: Arc<Mutex<Traffic>>,
    /// One subscriber per watched twin (dropping one undeclares it).
    data: HashMap<String, zenoh::pubsub::Subscriber<()>>,
}

impl Drop for Session {
    fn drop(&mut self) {
        self.data.clear();
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
            // Our listener is on the loopback only (a peer would open one on every
            // interface): drivers on this host that discover us connect to it at once, and
            // nothing on the network can.
            set("listen/endpoints", "[\"tcp/127.0.0.1:0\"]".into())?;
        }
    }
    Ok(c)
}

/// Opens the session and subscribes this host's worker stats
/// (`cw/_monitor/{host}/worker_stats`); driver data is subscribed per watched twin
/// ([`Session::watch`]), so another robot's frames on the same network never reach us.
pub fn open(s: &BusSettings, host: &str, traffic: Arc<Mutex<Traffic>>) -> Result<Session, String> {
    let session = zenoh::open(config(s)?)
        .wait()
        .map_err(|e| format!("cannot open the zenoh session: {e}"))?;
    let stats = traffic.clone();
    session
        .declare_subscriber(format!("cw/_monitor/{host}/worker_stats"))
        .callback(move |sample| {
            // Copied only when small enough to be read (a peer may publish anything there).
            let payload = if sample.payload().len() <= super::liveness::MAX_STATS_BYTES {
                sample.payload().to_bytes().into_owned()
            } else {
                Vec::new()
            };
            if let Ok(mut t) = stats.lock() {
                t.record_worker_stats(sample.key_expr().as_str(), &payload, Instant::now());
            }
        })
        .background()
        .wait()
        .map_err(|e| format!("cannot subscribe to worker stats: {e}"))?;
    Ok(Session {
        inner: session,
        traffic,
        data: HashMap::new(),
    })
}

impl Session {
    /// This session's zenoh id (for `status`).
    pub fn id(&self) -> String {
        self.inner.zid().to_string()
    }

    /// Subscribes `cw/{twin}/data/**` of exactly these twins (each sample costs the callback
    /// one short lock of the counters); subscriptions of twins no longer watched are dropped.
    pub fn watch(&mut self, twins: &[String]) {
        let wanted: BTreeSet<&String> = twins.iter().collect();
        self.data.retain(|t, _| wanted.contains(t));
        for twin in wanted {
            if self.data.contains_key(twin) {
                continue;
            }
            let counters = self.traffic.clone();
            let declared = self
                .inner
                .declare_subscriber(format!("cw/{twin}/data/**"))
                .callback(move |sample| {
                    let key = sample.key_expr().as_str();
                    let bytes = sample.payload().len();
                    if let Ok(mut t) = counters.lock() {
                        t.record(key, bytes, Instant::now(), super::epoch_second());
                    }
                })
                .wait();
            match declared {
                Ok(sub) => {
                    self.data.insert(twin.clone(), sub);
                }
                Err(e) => log::warn!("cannot subscribe to the data of twin {twin}: {e}"),
            }
        }
    }
}
