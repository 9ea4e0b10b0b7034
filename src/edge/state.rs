//! The supervisor's state: everything the daemon knows, owned by the supervisor thread.

use std::collections::VecDeque;
use std::time::{Instant, SystemTime};

use serde_json::{Value, json};

use super::boot::watchdog_layers;
use super::commands::Dedupe;
use super::desired::{DesiredState, Source};
use crate::config::{self, EnvironmentFile, Settings};
use crate::containers::runtime::Runtime;
use crate::containers::spec::Role;
use crate::drivers::plan_twins;
use crate::drivers::runtime::Drivers;
use crate::health::{HealthConfig, HealthPublisher};
use crate::mqtt::{Link, MqttHandle, topics};
use crate::twins::linkage::{
    is_linked_broad, is_linked_strict, linked_twins_broad, linked_twins_strict,
};

#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub(super) enum TokenState {
    #[default]
    Unknown,
    Valid,
    Rejected,
}

impl TokenState {
    pub(super) fn name(self) -> &'static str {
        match self {
            TokenState::Unknown => "unknown",
            TokenState::Valid => "valid",
            TokenState::Rejected => "rejected",
        }
    }
}

/// Everything the supervisor knows. Only the supervisor thread touches it.
pub(super) struct State {
    /// The container engine every role and monitor shares.
    pub(super) engine: std::sync::Arc<dyn crate::engine::Engine>,
    pub(super) settings: Settings,
    pub(super) started: Instant,
    pub(super) started_at: SystemTime,
    pub(super) fingerprint: String,
    pub(super) environment: Result<EnvironmentFile, String>,
    pub(super) edge_uuid: Option<String>,
    /// What the backend said of us: token, reachability, registration, recent errors.
    pub(super) backend: BackendView,
    pub(super) desired: Option<DesiredState>,
    pub(super) linked_broad: Vec<String>,
    pub(super) mqtt: MqttHandle,
    pub(super) link: Option<Link>,
    /// The edge and twin command topics and what came in on them.
    pub(super) commands: Commands,
    /// The alert outbox's counters (pending, delivered, dropped).
    pub(super) alert_stats: std::sync::Arc<crate::alerts::AlertStats>,
    pub(super) health: Option<HealthPublisher>,
    pub(super) drivers: Drivers,
    /// The data bus: the daemon's session, what it counts, the stall rule.
    pub(super) data: DataBus,
    /// The ML worker role.
    pub(super) worker: crate::worker::runtime::Worker,
    pub(super) worker_mqtt: crate::mqtt::SharedHandle,
    /// The twin-sync thread (none in local mode) and the state it shares for `status`.
    pub(super) twin_sync: TwinSync,
    /// A remote restart under way, the end of the last one, its result, and where the
    /// twin-sync thread says the twin files are flushed.
    pub(super) restart: super::restart_machine::Machine,
    /// The containers whose update locks hold up the remote restart, as its card last said.
    pub(super) restart_waits_on: Vec<String>,
    pub(super) restart_tx: crossbeam_channel::Sender<usize>,
    /// The node state last published, the edge uuid our link's last will names, and where a
    /// new link reports.
    pub(super) node: Option<(&'static str, Option<String>)>,
    pub(super) will_edge_uuid: Option<String>,
    pub(super) link_events: crossbeam_channel::Sender<crate::mqtt::LinkEvent>,
    /// The container runtime every role stands on.
    pub(super) runtime: Runtime,
    /// Remote access: the tunnel role (its thread does the backend calls).
    pub(super) tunnel: crate::remote_access::Tunnel,
    /// The local portal, when `CYBERWAVE_EDGE_LOCAL_PORTAL` is on and its port could be bound.
    pub(super) portal: Option<crate::remote_access::portal::Portal>,
    /// What each bound twin was last told of the network interfaces (§2.6).
    pub(super) network_lines: super::network::NetworkLines,
    /// `run --local`: no backend, no broker.
    pub(super) local: bool,
    /// The twins on driver tokens the backend-jobs thread was last told of.
    pub(super) token_needs_sent: Option<Vec<crate::drivers::tokens::TokenNeed>>,
}

/// What the backend said of us.
#[derive(Default)]
pub(super) struct BackendView {
    pub(super) token: TokenState,
    pub(super) reachable: Option<bool>,
    pub(super) latency_ms: Option<u64>,
    pub(super) last_ok: Option<SystemTime>,
    /// `POST /api/v1/edges` succeeded (or the edge uuid was known already).
    pub(super) registered: bool,
    /// The last errors, newest last, for `status`.
    pub(super) errors: VecDeque<(SystemTime, String)>,
}

/// The command topics and what came in on them.
pub(super) struct Commands {
    /// The edge's command topic, once subscribed.
    pub(super) topic: Option<String>,
    pub(super) dedupe: Dedupe,
    pub(super) received: u64,
    pub(super) last: Option<Value>,
    /// Twin command topics we listen on (§3.8), topic → twin.
    pub(super) twin_topics: std::collections::BTreeMap<String, String>,
    /// `sync_workflows` / `remove_workflow_worker` request ids (one FIFO, as the original).
    pub(super) twin_dedupe: Dedupe,
}

impl Default for Commands {
    fn default() -> Self {
        Commands {
            topic: None,
            dedupe: Dedupe::new(1024),
            received: 0,
            last: None,
            twin_topics: Default::default(),
            twin_dedupe: Dedupe::new(1024),
        }
    }
}

/// The twin-sync thread (none in local mode) and the state it shares for `status`.
#[derive(Default)]
pub(super) struct TwinSync {
    pub(super) tx: Option<crossbeam_channel::Sender<crate::twinsync::run::SyncCtl>>,
    pub(super) shared: std::sync::Arc<std::sync::Mutex<crate::twinsync::state::SyncState>>,
}

/// The data bus: the daemon's session, what it counts, the stall rule.
pub(super) struct DataBus {
    pub(super) bus: crate::bus::Bus,
    pub(super) stalls: crate::bus::Stalls,
    pub(super) stall_after: Option<std::time::Duration>,
}

impl State {
    pub(super) fn record_error(&mut self, message: String) {
        let message = crate::clip(&message, 1000);
        if self
            .backend
            .errors
            .back()
            .is_some_and(|(_, m)| *m == message)
        {
            return;
        }
        if self.backend.errors.len() >= 10 {
            self.backend.errors.pop_front();
        }
        self.backend.errors.push_back((SystemTime::now(), message));
    }

    pub(super) fn environment_uuid(&self) -> Option<String> {
        self.environment.as_ref().ok().and_then(|e| e.uuid.clone())
    }

    /// Applies a desired state (from backend or cache): recompute linked twins, feed health.
    pub(super) fn apply_desired(&mut self, state: DesiredState) {
        let broad = linked_twins_broad(&state.twins, &self.fingerprint);
        let strict = linked_twins_strict(&state.twins, &self.fingerprint);
        if self.local {
            log::info!(
                "local manifest: {} twin(s), every one runs here (no fingerprint rule in local mode)",
                state.twins.len()
            );
        } else {
            log::info!(
                "environment {}: {} twin(s), {} linked to this edge ({} by the driver rule) [{}]",
                state.environment_uuid,
                state.twins.len(),
                broad.len(),
                strict.len(),
                match state.source {
                    Source::Backend => "backend",
                    Source::Cache => "cache",
                }
            );
        }
        let linked = if self.local {
            state.twins.iter().map(|t| t.uuid.clone()).collect()
        } else {
            strict
        };
        let plans = plan_twins(&state.twins, &state.assets, &linked, &self.drivers.ctx);
        self.data.bus.watch(
            linked
                .iter()
                .chain(broad.iter())
                .cloned()
                .collect::<Vec<_>>(),
        );
        let provisional = !self.local && state.source == Source::Cache;
        self.drivers
            .set_plans(&mut self.runtime, plans, provisional);
        self.linked_broad = broad;
        self.desired = Some(state);
        self.update_worker_scope();
        self.track_twins();
        self.ensure_health();
    }

    /// A camera file changed: drivers whose device changed are recreated (their spec changed).
    pub(super) fn on_cameras_changed(&mut self) {
        if self.drivers.refresh_cameras()
            && let Some(d) = self.desired.clone()
        {
            self.apply_desired(d);
        }
    }

    /// The worker's twins: `environment.json` `twin_uuids` when it is a list (even empty), else
    /// the twins linked by the broad rule (§2.3); their command topics are subscribed.
    pub(super) fn update_worker_scope(&mut self) {
        // Twin ids go into REST paths and topics: UUIDs only.
        let from_file = self
            .environment
            .as_ref()
            .ok()
            .and_then(|e| e.twin_uuids.clone());
        let scope: Vec<String> = match from_file {
            Some(list) => list.iter().filter_map(|t| config::parse_uuid(t)).collect(),
            None => self.linked_broad.clone(),
        };
        let wanted: std::collections::BTreeMap<String, String> = if self.local {
            Default::default()
        } else {
            scope
                .iter()
                .map(|t| (topics::twin_command(self.mqtt.prefix(), t), t.clone()))
                .collect()
        };
        for old in self.commands.twin_topics.keys() {
            if !wanted.contains_key(old) {
                self.mqtt.unsubscribe(old);
            }
        }
        for new in wanted.keys() {
            if !self.commands.twin_topics.contains_key(new) {
                self.mqtt.subscribe(new);
            }
        }
        self.commands.twin_topics = wanted;
        // The worker waits for the first plan (drivers first, reference §6.1): a reconnect or
        // a reload before the backend answered must not start it without its twins.
        if self.desired.is_some() {
            self.worker.set_scope(scope, &mut self.runtime);
        }
    }

    /// Backend metadata reached a twin's file: plans carry it from now on (a relaunch must not
    /// write older metadata back), and the driver role decides about a restart (§8.3).
    pub(super) fn on_pulled(&mut self, p: crate::twinsync::run::Pulled) {
        let fp = self.fingerprint.clone();
        let links =
            |t: &crate::twins::Twin| (is_linked_strict(&t.raw, &fp), is_linked_broad(&t.raw, &fp));
        let changed = self.desired.as_mut().and_then(|d| {
            let t = d.twin_mut(&p.twin)?;
            let before = links(t);
            t.set_metadata(p.metadata.clone());
            Some(before != links(t))
        });
        // The cache follows every accepted change: a restart reading it must not step back to
        // metadata (and drivers) older than what runs.
        if changed.is_some()
            && !self.local
            && let Some(d) = &self.desired
            && let Err(e) = super::desired::save(&self.settings.config_dir, d)
        {
            log::warn!("cannot update the desired-state cache: {e}");
        }
        match changed {
            // Linked or unlinked by this change: everything that follows the linkage moves.
            Some(true) => {
                if let Some(d) = self.desired.take() {
                    self.apply_desired(d);
                }
            }
            Some(false) => self.replan_around(&p.twin),
            None => {}
        }
        self.drivers.on_pulled(&p.twin, &p.metadata);
    }

    /// The twins whose files the sync thread keeps in step with the backend: every linked one.
    pub(super) fn track_twins(&self) {
        let Some(tx) = &self.twin_sync.tx else {
            return;
        };
        let mut list = self.linked_broad.clone();
        if let Some(d) = &self.desired {
            list.extend(linked_twins_strict(&d.twins, &self.fingerprint));
        }
        list.sort();
        list.dedup();
        let _ = tx.send(crate::twinsync::run::SyncCtl::Track(list));
    }

    /// Per-twin sync state for `status`: version, pending, last confirmed, lost edits.
    fn twin_sync_snapshot(&self) -> Value {
        let Ok(st) = self.twin_sync.shared.lock() else {
            return Value::Null;
        };
        st.iter()
            .map(|(uuid, t)| {
                (
                    uuid.clone(),
                    json!({"version": t.version, "pending": t.pending,
                           "confirmed_at": t.confirmed_at, "last_error": t.last_error,
                           "conflicts": t.conflicts.iter().map(|c| json!({
                               "key": c.key, "local": c.local, "backend": c.backend, "at": c.at})).collect::<Vec<_>>()}),
                )
            })
            .collect::<serde_json::Map<String, Value>>()
            .into()
    }

    /// The bootstrap publisher only bridges the time until drivers publish their own health.
    pub(super) fn stop_health_once_drivers_run(&mut self) {
        if self.runtime.any_running(Role::Driver)
            && let Some(h) = self.health.take()
        {
            log::info!("a driver is running: stopping the bootstrap edge_health publisher");
            h.stop();
        }
    }

    /// Starts the bootstrap health publisher for the linked twins (or updates its twin set).
    pub(super) fn ensure_health(&mut self) {
        if self.linked_broad.is_empty() || self.local || self.runtime.any_running(Role::Driver) {
            return;
        }
        match &self.health {
            Some(h) => h.set_twins(self.linked_broad.clone()),
            None => {
                let cfg = HealthConfig {
                    edge_id: self.fingerprint.clone(),
                    interval: self.settings.health_interval,
                    engine: self.engine.clone(),
                    battery_wh: self.settings.battery_wh,
                    watchdog_layers: watchdog_layers(),
                };
                match HealthPublisher::start(self.mqtt.clone(), cfg, self.linked_broad.clone()) {
                    Ok(h) => {
                        log::info!(
                            "edge_health publisher started for {} twin(s), every {:.1}s",
                            self.linked_broad.len(),
                            self.settings.health_interval.as_secs_f64()
                        );
                        self.health = Some(h);
                    }
                    Err(e) => {
                        self.record_error(format!("cannot start the edge_health publisher: {e}"))
                    }
                }
            }
        }
    }

    /// A new link (new settings, or a last will for a newly known edge uuid); every holder of
    /// the old handle gets the new one.
    pub(super) fn relink(&mut self, settings: &Settings) {
        if self.local {
            return;
        }
        if let Some(old) = self.link.take() {
            old.shutdown(super::link::MQTT_SHUTDOWN_GRACE);
        }
        let will = self
            .edge_uuid
            .as_deref()
            .map(|u| super::link::will_for(settings, u, &self.fingerprint));
        match super::link::start_link(settings, &self.link_events, will) {
            Ok(link) => {
                self.will_edge_uuid = self.edge_uuid.clone();
                self.mqtt = link.handle();
                self.drivers.set_mqtt(Some(link.handle()));
                self.worker_mqtt.set(Some(link.handle()));
                self.commands.twin_topics.clear();
                self.link = Some(link);
                if let Some(h) = self.health.take() {
                    h.stop();
                }
                self.commands.topic = None;
                self.node = None;
                if let Some(uuid) = self.edge_uuid.clone() {
                    self.set_edge_uuid(uuid);
                }
                self.update_worker_scope();
                self.ensure_health();
            }
            Err(e) => self.record_error(format!("MQTT link: {e}")),
        }
    }

    /// What the fleet sees: the node state, published retained when it changes.
    pub(super) fn update_node(&mut self) {
        if self.local {
            return;
        }
        // Runs after every runtime event: read what is in memory, nothing from disk.
        let drivers_down = self
            .runtime
            .snapshot()
            .iter()
            .filter(|(s, v)| s.role == Role::Driver && v["state"] != "running")
            .count()
            + self.drivers.discovering();
        let twins_pending = self
            .twin_sync
            .shared
            .lock()
            .map(|s| s.values().filter(|t| t.pending).count())
            .unwrap_or(0);
        let inputs = super::node::NodeInputs {
            restarting: self.restart.running.is_some(),
            twins_pending,
            token_rejected: self.backend.token == TokenState::Rejected,
            backend_unreachable: self.backend.reachable == Some(false),
            drivers_down,
            worker_down: self.worker.down(&self.runtime),
        };
        let (state, reason) = super::node::assess(&inputs);
        if self.node.as_ref() == Some(&(state, reason.clone())) {
            return;
        }
        if let Some(uuid) = &self.edge_uuid {
            let p = super::node::payload(state, reason.as_deref(), uuid, &self.fingerprint);
            log::info!(
                "node state {state}{}",
                reason
                    .as_deref()
                    .map(|r| format!(" ({r})"))
                    .unwrap_or_default()
            );
            self.mqtt.publish_retained(
                &super::node::topic(self.mqtt.prefix(), uuid),
                p.to_string().into_bytes(),
            );
            self.node = Some((state, reason));
        }
    }

    /// A clean stop: OFFLINE, retained (a DISCONNECT does not fire the last will).
    pub(super) fn publish_node_offline(&self, reason: &str) {
        if let (false, Some(uuid)) = (self.local, &self.edge_uuid) {
            let p = super::node::payload("OFFLINE", Some(reason), uuid, &self.fingerprint);
            self.mqtt.publish_retained(
                &super::node::topic(self.mqtt.prefix(), uuid),
                p.to_string().into_bytes(),
            );
        }
    }

    pub(super) fn set_edge_uuid(&mut self, uuid: String) {
        if self.edge_uuid.as_deref() == Some(uuid.as_str()) && self.commands.topic.is_some() {
            return;
        }
        let topic = topics::edge_command(self.mqtt.prefix(), &uuid);
        if let Some(old) = self.commands.topic.take()
            && old != topic
        {
            self.mqtt.unsubscribe(&old);
        }
        self.mqtt.subscribe(&topic);
        log::info!("listening for edge commands on {topic}");
        self.commands.topic = Some(topic);
        self.tunnel.edge_resolved(&uuid);
        self.edge_uuid = Some(uuid);
        if !self.local && self.will_edge_uuid != self.edge_uuid {
            // First registration: a link whose last will names this edge.
            log::info!("reconnecting with a last will on this edge's status topic");
            let settings = self.settings.clone();
            self.relink(&settings);
        }
        self.update_node();
    }

    pub(super) fn snapshot(&self) -> Value {
        let stats = self.mqtt.stats();
        use std::sync::atomic::Ordering::Relaxed;
        let last_error = stats.last_error.lock().ok().and_then(|e| e.clone());
        let connected_since = stats
            .connected_since
            .lock()
            .ok()
            .and_then(|t| *t)
            .map(crate::epoch_of);
        let (drivers, bus) = self.with_data(self.drivers.snapshot(&self.runtime));
        json!({
            "daemon": {
                "pid": std::process::id(),
                "version": crate::VERSION,
                "started_at": crate::epoch_of(self.started_at),
                "uptime_seconds": (self.started.elapsed().as_secs_f64() * 10.0).round() / 10.0,
            },
            "config_dir": self.settings.config_dir,
            "fingerprint": self.fingerprint,
            "edge_uuid": self.edge_uuid,
            "environment": match &self.environment {
                Ok(e) => json!({"uuid": e.uuid, "problem": null}),
                Err(p) => json!({"uuid": null, "problem": p}),
            },
            "backend": {
                "url": self.settings.base_url,
                "token": self.backend.token.name(),
                "reachable": self.backend.reachable,
                "latency_ms": self.backend.latency_ms,
                "last_ok_at": self.backend.last_ok.map(crate::epoch_of),
                "registered": self.backend.registered,
            },
            "mqtt": {
                "broker": format!("{}:{}", self.settings.mqtt.host, self.settings.mqtt.port),
                "tls": self.settings.mqtt.tls,
                "username": self.settings.mqtt.username,
                "topic_prefix": self.settings.mqtt.topic_prefix,
                "session_id": self.mqtt.session_id(),
                "connected": self.mqtt.is_connected(),
                "connected_since": connected_since,
                "connects": stats.connects.load(Relaxed),
                "published": stats.published.load(Relaxed),
                "dropped": stats.dropped.load(Relaxed),
                "received": stats.received.load(Relaxed),
                "last_error": last_error,
                "command_topic": self.commands.topic,
                "commands_received": self.commands.received,
                "last_command": self.commands.last,
            },
            "alerts": {
                "pending": self.alert_stats.pending.load(Relaxed),
                "delivered": self.alert_stats.delivered.load(Relaxed),
                "dropped": self.alert_stats.dropped.load(Relaxed),
            },
            "twins": {
                "linked": self.linked_broad,
                "source": self.desired.as_ref().map(|d| match d.source { Source::Backend => "backend", Source::Cache => "cache" }),
                "fetched_at": self.desired.as_ref().map(|d| d.fetched_at),
            },
            "mode": if self.local { "local" } else { "cloud" },
            "engine": {"name": self.runtime.engine.0, "version": self.runtime.engine.1},
            "drivers": drivers,
            "bus": bus,
            "worker": self.worker.snapshot(&self.runtime),
            "twin_sync": self.twin_sync_snapshot(),
            "restart": self.restart.snapshot(),
            "remote_access": self.tunnel.snapshot(&self.runtime),
            "local_portal": self.portal.as_ref().map(|p| json!({"address": p.addr.to_string()})),
            "node": self.node.as_ref().map(|(s, r)| json!({"state": s, "reason": r})),
            "health_publisher": {
                "running": self.health.is_some(),
                "interval_seconds": self.settings.health_interval.as_secs_f64(),
            },
            "last_errors": self.backend.errors.iter().map(|(t, m)| json!({"at": crate::epoch_of(*t), "message": m})).collect::<Vec<_>>(),
        })
    }
}
