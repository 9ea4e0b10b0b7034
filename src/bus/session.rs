//! The daemon's own zenoh session (zenoh's blocking API; its tokio runtime stays in here): the
//! embedded router when configured, else a peer on the drivers' bus, and the two subscriptions
//! that count what drivers and the worker publish.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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

/// Our side of each link's lease (see [`config`]).
const LEASE_MS: u64 = 120_000;

/// The zenoh configuration of our session: router or peer, where it listens and connects
/// (`extra`: the local peers of our containers, when nothing else is configured).
fn config(s: &BusSettings, extra: &[String]) -> Result<zenoh::Config, String> {
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
            // Only the endpoints we chose: the router's or the configured ones, else this
            // host's peers that belong to our containers (found by `peers`). zenoh's own
            // multicast would scout the LAN every 8 s, answer every robot's scouts and link
            // to whatever it found; gossip would hand us our drivers' LAN peers.
            set("scouting/multicast/enabled", "false".into())?;
            set("scouting/gossip/enabled", "false".into())?;
            let configured = s.connect_for_containers();
            let connect = if configured.is_empty() {
                extra
            } else {
                &configured[..]
            };
            set("connect/endpoints", json_list(connect))?;
            // A peer that goes away (a driver restarting its session) is dropped at the next
            // look at our containers; until then zenoh retries it at most once a minute.
            set(
                "connect/retry",
                "{period_init_ms: 1000, period_max_ms: 60000, period_increase_factor: 2}".into(),
            )?;
            // Our listener is on the loopback only (a peer would open one on every
            // interface): nothing on the network can link to us.
            set("listen/endpoints", "[\"tcp/127.0.0.1:0\"]".into())?;
            // Links to this host's processes: a dead peer closes its socket at once, so a
            // long lease costs nothing, and our keep-alives go out every 30 s, not 2.5 s.
            set("transport/link/tx/lease", LEASE_MS.to_string())?;
            set("transport/link/tx/keep_alive", "4".into())?;
        }
    }
    Ok(c)
}

/// Opens the session and subscribes this host's worker stats
/// (`cw/_monitor/{host}/worker_stats`); driver data is subscribed per watched twin
/// ([`Session::watch`]), so another robot's frames on the same network never reach us.
pub fn open(
    s: &BusSettings,
    extra: &[String],
    host: &str,
    traffic: Arc<Mutex<Traffic>>,
) -> Result<Session, String> {
    let session = zenoh::open(config(s, extra)?)
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

/// The zenoh peers and routers of this host that answer a scout within `window`, as
/// [`super::peers::Hello`]s. The scout goes out with TTL 0: the kernel loops it back to this
/// host's listeners and never puts it on the wire, so no other robot ever hears it.
pub fn scout_host(window: Duration) -> Result<Vec<super::peers::Hello>, String> {
    use zenoh::config::WhatAmI;
    let mut c = zenoh::Config::default();
    c.insert_json5("scouting/multicast/ttl", "0")
        .map_err(|e| format!("zenoh scouting ttl: {e}"))?;
    let scout = zenoh::scout(WhatAmI::Peer | WhatAmI::Router, c)
        .wait()
        .map_err(|e| format!("cannot scout this host's zenoh peers: {e}"))?;
    let deadline = Instant::now() + window;
    let mut found: BTreeMap<String, super::peers::Hello> = BTreeMap::new();
    while let Ok(Some(h)) = scout.recv_deadline(deadline) {
        let zid = h.zid().to_string();
        let locators = h.locators().iter().map(|l| l.to_string()).collect();
        found.insert(zid.clone(), super::peers::Hello { zid, locators });
        if found.len() >= super::peers::MAX_PEERS {
            break;
        }
    }
    scout.stop();
    Ok(found.into_values().collect())
}
