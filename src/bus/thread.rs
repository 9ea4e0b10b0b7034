//! The `bus` thread: holds the daemon's zenoh session and keeps its subscriptions and links
//! current. It parks on its channel until the next real deadline — a retry of a session that
//! would not open, or a look for our containers' peers after they changed — and never wakes
//! on a timer for nothing.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};

use super::SessionState;
use super::liveness::Traffic;
use super::peers::{self, LOOK_EVERY, LOOKS_AFTER_CHANGE};
use super::session;
use super::settings::{BusSettings, Router};

/// How long a session that would not open (a port in use) waits before the next try.
const RETRY: Duration = Duration::from_secs(30);
/// How long a look waits for this host's peers to answer (they answer in milliseconds).
const SCOUT_WINDOW: Duration = Duration::from_millis(800);

/// What the supervisor tells the bus thread.
pub(super) enum Ctl {
    /// The twins whose data to subscribe.
    Watch(Vec<String>),
    /// The full ids of our running containers (drivers, the worker, the router).
    Containers(BTreeSet<String>),
}

/// What the thread shares with `status`.
#[derive(Clone)]
pub(super) struct Shared {
    pub(super) state: Arc<Mutex<SessionState>>,
    /// endpoint → container id, of the links to our containers' peers.
    pub(super) links: Arc<Mutex<BTreeMap<String, String>>>,
}

struct Loop {
    settings: BusSettings,
    host: String,
    traffic: Arc<Mutex<Traffic>>,
    shared: Shared,
    /// Peer mode with nothing configured: we find our containers' peers ourselves.
    discover: bool,
    twins: Vec<String>,
    containers: BTreeSet<String>,
    links: BTreeMap<String, String>,
    looks: VecDeque<Instant>,
    session: Option<session::Session>,
    open_at: Option<Instant>,
}

pub(super) fn run(
    settings: BusSettings,
    host: String,
    traffic: Arc<Mutex<Traffic>>,
    shared: Shared,
    ctl: Receiver<Ctl>,
) {
    let discover = settings.connect_for_containers().is_empty()
        && !matches!(settings.router, Router::Embedded { .. });
    let mut l = Loop {
        settings,
        host,
        traffic,
        shared,
        discover,
        twins: Vec::new(),
        containers: BTreeSet::new(),
        links: BTreeMap::new(),
        looks: VecDeque::new(),
        session: None,
        open_at: Some(Instant::now()),
    };
    loop {
        l.open_if_due();
        let due = [l.open_at, l.looks.front().copied()]
            .into_iter()
            .flatten()
            .min();
        let msg = match due {
            Some(d) => ctl.recv_deadline(d),
            None => ctl.recv().map_err(|_| RecvTimeoutError::Disconnected),
        };
        match msg {
            Ok(Ctl::Watch(list)) => {
                l.twins = list;
                if let Some(s) = l.session.as_mut() {
                    s.watch(&l.twins);
                }
            }
            Ok(Ctl::Containers(set)) => l.containers_changed(set),
            Err(RecvTimeoutError::Timeout) => l.look_if_due(),
            Err(RecvTimeoutError::Disconnected) => return,
        }
    }
}

impl Loop {
    fn set(&self, v: SessionState) {
        if let Ok(mut g) = self.shared.state.lock() {
            *g = v;
        }
    }

    fn open_if_due(&mut self) {
        if self.open_at.is_none_or(|t| t > Instant::now()) {
            return;
        }
        self.session = None; // the old one closes before the new one opens
        let extra: Vec<String> = self.links.keys().cloned().collect();
        match session::open(&self.settings, &extra, &self.host, self.traffic.clone()) {
            Ok(mut s) => {
                log::info!(
                    "zenoh session {} open ({}{})",
                    s.id(),
                    self.settings.diagnostics()["mode"].as_str().unwrap_or("-"),
                    if self.discover {
                        format!("; linked to {} peer(s) of our containers", extra.len())
                    } else {
                        String::new()
                    }
                );
                self.set(SessionState::Open {
                    id: s.id(),
                    since: crate::epoch_seconds(),
                    at: Instant::now(),
                });
                s.watch(&self.twins);
                self.session = Some(s);
                self.open_at = None;
            }
            Err(e) => {
                log::warn!("{e}; trying again in {} s", RETRY.as_secs());
                self.set(SessionState::Failed(e));
                self.open_at = Some(Instant::now() + RETRY);
            }
        }
        if let Ok(mut g) = self.shared.links.lock() {
            *g = self.links.clone();
        }
    }

    /// Links to containers that stopped are dropped at once (zenoh would keep retrying
    /// them); new containers are looked at a few times while their peers start. (`Bus`
    /// sends a set only when it changed.)
    fn containers_changed(&mut self, set: BTreeSet<String>) {
        self.containers = set;
        let before = self.links.len();
        let containers = &self.containers;
        self.links.retain(|_, c| containers.contains(c));
        if self.links.len() != before {
            self.reopen();
        }
        self.looks.clear();
        if self.discover && !self.containers.is_empty() {
            let now = Instant::now();
            self.looks
                .extend(LOOKS_AFTER_CHANGE.iter().map(|d| now + *d));
        }
    }

    fn look_if_due(&mut self) {
        let now = Instant::now();
        if self.looks.front().is_none_or(|t| *t > now) {
            return;
        }
        self.looks.pop_front();
        if self.looks.is_empty() && !self.containers.is_empty() {
            self.looks.push_back(now + LOOK_EVERY);
        }
        let hellos = match session::scout_host(SCOUT_WINDOW) {
            Ok(h) => h,
            Err(e) => {
                log::debug!("{e}");
                return;
            }
        };
        let found = peers::choose(&hellos, &peers::listeners_of(&self.containers));
        if found != self.links {
            log::debug!(
                "zenoh peers of our containers: {} of {} on this host",
                found.len(),
                hellos.len()
            );
            self.links = found;
            self.reopen();
        }
    }

    fn reopen(&mut self) {
        self.open_at = Some(Instant::now());
    }
}
