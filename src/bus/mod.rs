//! The zenoh data bus (reference §9, seed 000): the settings drivers and the worker get, the
//! router this edge runs for them (a container role, or embedded in the daemon), and whether
//! each running driver actually publishes data. zenoh itself (its blocking API and its own
//! runtime) stays inside `session.rs`; the build without the `zenoh` feature keeps
//! everything else and says that liveness and the embedded router are not in it.

pub mod liveness;
pub mod router;
#[cfg(feature = "zenoh")]
mod session;
pub mod settings;

use std::sync::{Arc, Mutex};
use std::time::Instant;

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
    /// The twins to subscribe, to the bus thread; dropped to close the session (and the
    /// embedded router with it).
    ctl: Option<Sender<Vec<String>>>,
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
        use crossbeam_channel::RecvTimeoutError;
        let state = Arc::new(Mutex::new(SessionState::Opening));
        let (ctl_tx, ctl_rx) = crossbeam_channel::unbounded::<Vec<String>>();
        let (s, t, st) = (settings.clone(), traffic.clone(), state.clone());
        std::thread::Builder::new()
            .name("bus".into())
            .spawn(move || {
                let set = |v: SessionState| {
                    if let Ok(mut g) = st.lock() {
                        *g = v;
                    }
                };
                let mut twins: Vec<String> = Vec::new();
                loop {
                    match session::open(&s, &host, t.clone()) {
                        Ok(mut session) => {
                            log::info!(
                                "zenoh session {} open ({})",
                                session.id(),
                                s.diagnostics()["mode"].as_str().unwrap_or("-")
                            );
                            set(SessionState::Open {
                                id: session.id(),
                                since: crate::epoch_seconds(),
                                at: Instant::now(),
                            });
                            session.watch(&twins);
                            // Until the daemon stops (the sender is dropped).
                            for list in ctl_rx.iter() {
                                session.watch(&list);
                            }
                            return;
                        }
                        Err(e) => {
                            log::warn!("{e}; trying again in 30 s");
                            set(SessionState::Failed(e));
                            let retry_at = Instant::now() + std::time::Duration::from_secs(30);
                            loop {
                                match ctl_rx.recv_deadline(retry_at) {
                                    Ok(list) => twins = list,
                                    Err(RecvTimeoutError::Timeout) => break,
                                    Err(RecvTimeoutError::Disconnected) => return,
                                }
                            }
                        }
                    }
                }
            })?;
        Ok(Bus {
            settings,
            traffic,
            state,
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
        if let Some(ctl) = &self.ctl {
            let _ = ctl.send(list);
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
        if let Ok(t) = self.traffic.lock() {
            v["twins"] = t.views(Instant::now(), epoch_second());
            v["worker_stats"] = t.worker_view(Instant::now());
        }
        v
    }
}
