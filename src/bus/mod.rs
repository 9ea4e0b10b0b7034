//! The zenoh data bus (reference §9, seed 000): the settings drivers and the worker get, the
//! router this edge runs for them (a container role, or embedded in the daemon), and whether
//! each running driver actually publishes data. zenoh itself (its blocking API and its own
//! runtime) stays inside `session.rs`; the build without the `zenoh` feature keeps
//! everything else and says that liveness and the embedded router are not in it.

pub mod liveness;
#[cfg(feature = "zenoh")]
pub mod peers;
pub mod router;
#[cfg(feature = "zenoh")]
mod session;
pub mod settings;
#[cfg(feature = "zenoh")]
mod thread;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Instant;

#[cfg(feature = "zenoh")]
use crossbeam_channel::Sender;
use serde_json::{Value, json};

pub use liveness::{Running, StallEvent, Stalls, Traffic};
pub use settings::{BusSettings, Router};

/// What the bus thread says of the daemon's session, for `status`.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(not(feature = "zenoh"), allow(dead_code))] // only the zenoh build opens one
enum SessionState {
    /// Not zenoh, or not this build.
    Off(String),
    Opening,
    Open {
        id: String,
        since: f64,
        at: Instant,
    },
    Failed(String),
}

/// The daemon's side of the bus: its session (on its own thread) and what it counted.
pub struct Bus {
    pub settings: BusSettings,
    traffic: Arc<Mutex<Traffic>>,
    state: Arc<Mutex<SessionState>>,
    /// endpoint → container id: the session's links to our containers' peers.
    links: Arc<Mutex<BTreeMap<String, String>>>,
    /// The running containers last told to the bus thread.
    containers: Mutex<BTreeSet<String>>,
    /// To the bus thread; dropped to close the session (and the embedded router with it).
    #[cfg(feature = "zenoh")]
    ctl: Option<Sender<thread::Ctl>>,
}

/// The wall-clock second (the rate's buckets are per second).
fn epoch_second() -> u64 {
    crate::epoch_seconds() as u64
}

impl Bus {
    /// Opens the daemon's session on the `bus` thread (a router takes about half a second to
    /// open; a port in use is retried every 30 s), unless the backend is not zenoh. `host` is
    /// this machine's name (the worker publishes its stats under it).
    pub fn start(settings: BusSettings, host: &str) -> Self {
        for w in &settings.warnings {
            log::warn!("{w}");
        }
        let traffic = Arc::new(Mutex::new(Traffic::default()));
        let off = |why: &str| Bus {
            settings: settings.clone(),
            traffic: traffic.clone(),
            state: Arc::new(Mutex::new(SessionState::Off(why.into()))),
            links: Arc::default(),
            containers: Mutex::default(),
            #[cfg(feature = "zenoh")]
            ctl: None,
        };
        if !settings.is_zenoh() {
            return off("the data backend is not zenoh");
        }
        if !cfg!(feature = "zenoh") {
            return off("this build has no zenoh: no data liveness, no embedded router");
        }
        // A host name zenoh could not take in a key expression: any host's stats.
        let host = if !host.is_empty()
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            host.to_string()
        } else {
            "*".to_string()
        };
        Self::spawn(settings.clone(), host, traffic.clone()).unwrap_or_else(|e| {
            log::error!("cannot start the bus thread: {e}");
            off("the bus thread could not start")
        })
    }

    #[cfg(feature = "zenoh")]
    fn spawn(
        settings: BusSettings,
        host: String,
        traffic: Arc<Mutex<Traffic>>,
    ) -> std::io::Result<Self> {
        let shared = thread::Shared {
            state: Arc::new(Mutex::new(SessionState::Opening)),
            links: Arc::default(),
        };
        let (ctl_tx, ctl_rx) = crossbeam_channel::unbounded::<thread::Ctl>();
        let (s, t, sh) = (settings.clone(), traffic.clone(), shared.clone());
        std::thread::Builder::new()
            .name("bus".into())
            .spawn(move || thread::run(s, host, t, sh, ctl_rx))?;
        Ok(Bus {
            settings,
            traffic,
            state: shared.state,
            links: shared.links,
            containers: Mutex::default(),
            ctl: Some(ctl_tx),
        })
    }

    #[cfg(not(feature = "zenoh"))]
    fn spawn(_: BusSettings, _: String, _: Arc<Mutex<Traffic>>) -> std::io::Result<Self> {
        Err(std::io::Error::other("no zenoh in this build"))
    }

    /// The twins whose data is subscribed and counted (the linked ones).
    pub fn watch(&self, twins: impl IntoIterator<Item = String>) {
        let mut list: Vec<String> = twins.into_iter().collect();
        list.sort();
        list.dedup();
        if let Ok(mut t) = self.traffic.lock() {
            t.watch(list.iter().cloned());
        }
        #[cfg(feature = "zenoh")]
        if let Some(ctl) = &self.ctl {
            let _ = ctl.send(thread::Ctl::Watch(list));
        }
    }

    /// Our running containers (full ids): the session links to their zenoh peers, and to
    /// no other (see `peers`). Told to the bus thread only when the set changed.
    pub fn containers(&self, ids: BTreeSet<String>) {
        let Ok(mut last) = self.containers.lock() else {
            return;
        };
        if *last == ids {
            return;
        }
        *last = ids.clone();
        #[cfg(feature = "zenoh")]
        if let Some(ctl) = &self.ctl {
            let _ = ctl.send(thread::Ctl::Containers(ids));
        }
    }

    /// When a twin's last sample arrived.
    pub fn last_sample(&self, twin: &str) -> Option<Instant> {
        self.traffic.lock().ok().and_then(|t| t.last(twin))
    }

    /// Since when the session listens to the bus (`None`: it does not, so nothing can be
    /// said about any driver's data).
    pub fn listening_since(&self) -> Option<Instant> {
        match self.state.lock().ok()?.clone() {
            SessionState::Open { at, .. } => Some(at),
            _ => None,
        }
    }

    /// A twin's data flow for `status`.
    pub fn twin_view(&self, twin: &str) -> Value {
        self.traffic
            .lock()
            .map(|t| t.view(twin, Instant::now(), epoch_second()))
            .unwrap_or(Value::Null)
    }

    /// §9.4 and the session, for `status`.
    pub fn status(&self) -> Value {
        let mut v = self.settings.diagnostics();
        let session = match self.state.lock().map(|s| s.clone()) {
            Ok(SessionState::Off(why)) => json!({"state": "off", "reason": why}),
            Ok(SessionState::Opening) => json!({"state": "opening"}),
            Ok(SessionState::Open { id, since, .. }) => {
                json!({"state": "open", "id": id, "since": since})
            }
            Ok(SessionState::Failed(e)) => json!({"state": "failed", "error": e}),
            Err(_) => json!({"state": "unknown"}),
        };
        v["session"] = session;
        if let Ok(links) = self.links.lock() {
            v["links"] = links
                .iter()
                .map(|(endpoint, id)| {
                    let short: String = id.chars().take(12).collect();
                    json!({"endpoint": endpoint, "container": short})
                })
                .collect();
        }
        if let Ok(t) = self.traffic.lock() {
            v["twins"] = t.views(Instant::now(), epoch_second());
            v["worker_stats"] = t.worker_view(Instant::now());
        }
        v
    }
}
