use std::collections::{BTreeSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{Receiver, Sender, bounded, select};
use rumqttc::{Client, Connection, Event, Outgoing, Packet, QoS};
use serde_json::Value;

use super::BrokerConfig;
pub use super::options::LinkError;
use super::options::{network_options, options};
use crate::backoff::Backoff;

/// What the link tells its owner.
#[derive(Debug, Clone, PartialEq)]
pub enum LinkEvent {
    Up,
    Down(String),
    /// `retained`: the broker replayed a stored message on subscribe (not a new one).
    Message {
        topic: String,
        payload: Vec<u8>,
        retained: bool,
    },
}

/// Counters shared by the link, the pump and anyone who reports status.
#[derive(Debug, Default)]
pub struct LinkStats {
    pub connected: AtomicBool,
    pub published: AtomicU64,
    /// Messages dropped: outbox overflow while offline, or over the payload cap.
    pub dropped: AtomicU64,
    pub connects: AtomicU64,
    pub received: AtomicU64,
    /// Messages the outbox holds (waiting for the link, or for room in rumqttc's queue).
    pub held: AtomicUsize,
    pub last_error: Mutex<Option<String>>,
    pub connected_since: Mutex<Option<SystemTime>>,
}

enum PumpMsg {
    Publish {
        topic: String,
        payload: Vec<u8>,
    },
    /// Several messages handed over at once: one wake-up of the pump instead of one each.
    Batch(Vec<(String, Vec<u8>)>),
    /// The latest retained message of a topic (QoS 1): sent now when connected and again at
    /// every connect, so it replaces what a last will left on the broker.
    Retained {
        topic: String,
        payload: Vec<u8>,
    },
    Subscribe(String),
    Unsubscribe(String),
    LinkUp,
    LinkDown,
    Shutdown,
}

/// The current link for threads that outlive a reload: SIGHUP may replace the link, and a
/// thread holding a copy of the old handle would publish into a dead one.
#[derive(Clone, Default)]
pub struct SharedHandle(Arc<std::sync::Mutex<Option<MqttHandle>>>);

impl SharedHandle {
    pub fn new(h: Option<MqttHandle>) -> Self {
        SharedHandle(Arc::new(std::sync::Mutex::new(h)))
    }
    pub fn set(&self, h: Option<MqttHandle>) {
        if let Ok(mut g) = self.0.lock() {
            *g = h;
        }
    }
    pub fn get(&self) -> Option<MqttHandle> {
        self.0.lock().ok().and_then(|g| g.clone())
    }
}

/// Cheap to clone; every method returns at once.
#[derive(Clone)]
pub struct MqttHandle {
    tx: Sender<PumpMsg>,
    /// rumqttc's own queue, used directly while the link is up and the outbox holds nothing:
    /// a publish then wakes the connection thread only, not the outbox thread as well.
    client: Option<Client>,
    stats: Arc<LinkStats>,
    session_id: Arc<str>,
    prefix: Arc<str>,
    max_payload: usize,
}

impl MqttHandle {
    pub fn prefix(&self) -> &str {
        &self.prefix
    }
    pub fn session_id(&self) -> &str {
        &self.session_id
    }
    pub fn stats(&self) -> &LinkStats {
        &self.stats
    }
    pub fn is_connected(&self) -> bool {
        self.stats.connected.load(Ordering::Relaxed)
    }

    /// Publishes a JSON payload at QoS 0. Objects get `session_id` = our client id unless they
    /// carry one (as the SDK does). Held in the outbox while offline.
    pub fn publish_json(&self, topic: &str, payload: Value) {
        if let Some(bytes) = self.encode(topic, payload) {
            let mut one = vec![(topic.to_string(), bytes)];
            self.publish_direct(&mut one);
            if let Some((topic, payload)) = one.pop() {
                self.send(PumpMsg::Publish { topic, payload }, 1);
            }
        }
    }

    /// Publishes several JSON payloads (periodic fan-out to many twins): straight to rumqttc
    /// while the outbox is empty, else in one hand-over to the outbox — one wake-up of it
    /// instead of one per message.
    pub fn publish_json_batch(&self, messages: Vec<(String, Value)>) {
        let mut batch: Vec<(String, Vec<u8>)> = messages
            .into_iter()
            .filter_map(|(topic, payload)| self.encode(&topic, payload).map(|b| (topic, b)))
            .collect();
        self.publish_direct(&mut batch);
        let n = batch.len() as u64;
        if n > 0 {
            self.send(PumpMsg::Batch(batch), n);
        }
    }

    /// Publishes `payload` retained on `topic` (QoS 1), and again after every reconnect.
    pub fn publish_retained(&self, topic: &str, payload: Vec<u8>) {
        if self.within_cap(topic, &payload) {
            self.send(
                PumpMsg::Retained {
                    topic: topic.to_string(),
                    payload,
                },
                1,
            );
        }
    }

    pub fn publish_raw(&self, topic: &str, payload: Vec<u8>) {
        if self.within_cap(topic, &payload) {
            let msg = PumpMsg::Publish {
                topic: topic.to_string(),
                payload,
            };
            self.send(msg, 1);
        }
    }

    /// Hands messages from the front of `items` straight to rumqttc while the link is up and
    /// the outbox is empty (so nothing overtakes what it holds); what is left goes through
    /// the outbox.
    fn publish_direct(&self, items: &mut Vec<(String, Vec<u8>)>) {
        let Some(client) = &self.client else {
            return;
        };
        let mut sent = 0;
        for (topic, payload) in items.iter() {
            if !self.is_connected()
                || self.stats.held.load(Ordering::Acquire) > 0
                || !self.tx.is_empty()
                || client
                    .try_publish(topic.as_str(), QoS::AtMostOnce, false, payload.clone())
                    .is_err()
            {
                break;
            }
            sent += 1;
        }
        if sent > 0 {
            self.stats
                .published
                .fetch_add(sent as u64, Ordering::Relaxed);
            items.drain(..sent);
        }
    }

    fn send(&self, msg: PumpMsg, count: u64) {
        if self.tx.try_send(msg).is_err() {
            self.stats.dropped.fetch_add(count, Ordering::Relaxed);
        }
    }

    /// JSON bytes with the SDK's `session_id` default, or None when over the payload cap.
    fn encode(&self, topic: &str, mut payload: Value) -> Option<Vec<u8>> {
        if let Value::Object(m) = &mut payload
            && !m.contains_key("session_id")
        {
            m.insert(
                "session_id".into(),
                Value::String(self.session_id.to_string()),
            );
        }
        match serde_json::to_vec(&payload) {
            Ok(bytes) => self.within_cap(topic, &bytes).then_some(bytes),
            Err(e) => {
                log::warn!("cannot encode payload for {topic}: {e}");
                None
            }
        }
    }

    fn within_cap(&self, topic: &str, payload: &[u8]) -> bool {
        if self.max_payload > 0 && payload.len() > self.max_payload {
            self.stats.dropped.fetch_add(1, Ordering::Relaxed);
            log::warn!(
                "dropping {} byte payload for {topic}: over CYBERWAVE_MQTT_MAX_PAYLOAD_BYTES={}",
                payload.len(),
                self.max_payload
            );
            return false;
        }
        true
    }

    /// Adds a subscription that survives reconnects (re-subscribed on every CONNACK).
    pub fn subscribe(&self, topic: &str) {
        let _ = self.tx.try_send(PumpMsg::Subscribe(topic.to_string()));
    }

    pub fn unsubscribe(&self, topic: &str) {
        let _ = self.tx.try_send(PumpMsg::Unsubscribe(topic.to_string()));
    }
}

impl MqttHandle {
    /// A handle with no broker behind it (local mode): publishes are counted as dropped.
    pub fn detached(prefix: &str) -> Self {
        let (tx, _rx) = bounded(1);
        MqttHandle {
            tx,
            client: None,
            stats: Arc::new(LinkStats::default()),
            session_id: new_client_id().into(),
            prefix: prefix.into(),
            max_payload: 0,
        }
    }
}

/// A running link: the rumqttc connection thread and the outbox pump.
pub struct Link {
    handle: MqttHandle,
    stop_tx: Sender<()>,
    done_rx: Receiver<()>,
}

/// `python-sdk_live_<uuid4 hex>`: the SDK's client-id shape, which the backend also sees as
/// `session_id` in every payload.
pub fn new_client_id() -> String {
    let mut b = [0u8; 16];
    crate::random_bytes(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    format!("python-sdk_live_{}", crate::hex(&b))
}

impl Link {
    /// Starts the link threads; connection happens in the background, with jittered
    /// exponential backoff (1 s … 30 s) between attempts, forever until [`Link::shutdown`].
    pub fn start(
        cfg: &BrokerConfig,
        client_id: String,
        outbox: usize,
        events: Sender<LinkEvent>,
    ) -> Result<Link, LinkError> {
        Self::start_with_will(cfg, client_id, outbox, events, None)
    }

    /// [`Link::start`] with a last will: `(topic, payload)` the broker publishes retained
    /// (QoS 1) when the link dies without a DISCONNECT.
    pub fn start_with_will(
        cfg: &BrokerConfig,
        client_id: String,
        outbox: usize,
        events: Sender<LinkEvent>,
        will: Option<(String, Vec<u8>)>,
    ) -> Result<Link, LinkError> {
        let mut opts = options(cfg, &client_id)?;
        if let Some((topic, payload)) = will {
            opts.set_last_will(rumqttc::LastWill::new(
                topic,
                payload,
                QoS::AtLeastOnce,
                true,
            ));
        }
        let (client, mut connection) = Client::new(opts, 64);
        connection
            .eventloop
            .set_network_options(network_options(cfg));
        let stats = Arc::new(LinkStats::default());
        // The channel is only a hand-off to the pump (which holds up to `outbox` messages in
        // a queue that grows as needed): a bounded channel reserves its slots up front.
        let (pump_tx, pump_rx) = bounded::<PumpMsg>(outbox.clamp(16, 1024));
        let (stop_tx, stop_rx) = bounded::<()>(1);
        let (done_tx, done_rx) = bounded::<()>(2);
        let handle = MqttHandle {
            tx: pump_tx.clone(),
            client: Some(client.clone()),
            stats: stats.clone(),
            session_id: client_id.into(),
            prefix: cfg.topic_prefix.clone().into(),
            max_payload: cfg.max_payload_bytes,
        };
        let endpoint = format!("{}:{}", cfg.host, cfg.port);
        {
            let stats = stats.clone();
            let done_tx = done_tx.clone();
            let spawned = thread::Builder::new()
                .name("mqtt-link".into())
                .spawn(move || {
                    run_connection(
                        &mut connection,
                        &endpoint,
                        &stats,
                        &pump_tx,
                        &events,
                        &stop_rx,
                    );
                    let _ = done_tx.send(());
                });
            if let Err(e) = spawned {
                log::error!("cannot start the mqtt-link thread: {e}");
            }
        }
        {
            let stats = stats.clone();
            let spawned = thread::Builder::new()
                .name("mqtt-outbox".into())
                .spawn(move || {
                    run_pump(&client, &pump_rx, outbox, &stats);
                    let _ = done_tx.send(());
                });
            if let Err(e) = spawned {
                log::error!("cannot start the mqtt-outbox thread: {e}");
            }
        }
        Ok(Link {
            handle,
            stop_tx,
            done_rx,
        })
    }

    pub fn handle(&self) -> MqttHandle {
        self.handle.clone()
    }

    /// Sends DISCONNECT when connected and waits at most `grace` for both threads.
    pub fn shutdown(self, grace: Duration) {
        let _ = self.handle.tx.try_send(PumpMsg::Shutdown);
        let deadline = Instant::now() + grace;
        // The connection thread ends on the outgoing DISCONNECT, or on the stop signal if it is
        // between reconnect attempts. Give the DISCONNECT a moment to be written first.
        let mut finished = 0;
        let first = self
            .done_rx
            .recv_timeout(grace.min(Duration::from_millis(500)));
        if first.is_ok() {
            finished += 1;
        }
        let _ = self.stop_tx.try_send(());
        while finished < 2 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || self.done_rx.recv_timeout(left).is_err() {
                break;
            }
            finished += 1;
        }
    }
}

fn run_connection(
    connection: &mut Connection,
    endpoint: &str,
    stats: &LinkStats,
    pump: &Sender<PumpMsg>,
    events: &Sender<LinkEvent>,
    stop: &Receiver<()>,
) {
    let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(30));
    let mut logged_down = false;
    loop {
        match connection.recv() {
            Ok(Ok(Event::Incoming(Packet::ConnAck(ack)))) => {
                backoff.reset();
                logged_down = false;
                stats.connected.store(true, Ordering::Relaxed);
                stats.connects.fetch_add(1, Ordering::Relaxed);
                if let Ok(mut s) = stats.connected_since.lock() {
                    *s = Some(SystemTime::now());
                }
                log::info!(
                    "MQTT connected to {endpoint} (session_present={})",
                    ack.session_present
                );
                let _ = pump.send(PumpMsg::LinkUp);
                let _ = events.send(LinkEvent::Up);
            }
            Ok(Ok(Event::Incoming(Packet::Publish(p)))) => {
                stats.received.fetch_add(1, Ordering::Relaxed);
                let _ = events.send(LinkEvent::Message {
                    topic: p.topic.clone(),
                    payload: p.payload.to_vec(),
                    retained: p.retain,
                });
            }
            Ok(Ok(Event::Outgoing(Outgoing::Disconnect))) => {
                log::info!("MQTT disconnected from {endpoint}");
                stats.connected.store(false, Ordering::Relaxed);
                return;
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                let was_connected = stats.connected.swap(false, Ordering::Relaxed);
                let msg = e.to_string();
                if let Ok(mut last) = stats.last_error.lock() {
                    *last = Some(msg.clone());
                }
                if was_connected {
                    let _ = pump.send(PumpMsg::LinkDown);
                    let _ = events.send(LinkEvent::Down(msg.clone()));
                }
                let delay = backoff.next_delay();
                if was_connected || !logged_down {
                    log::warn!(
                        "MQTT link to {endpoint} down: {msg}; retrying in {:.1}s",
                        delay.as_secs_f64()
                    );
                    logged_down = true;
                } else {
                    log::debug!(
                        "MQTT connect to {endpoint} failed: {msg}; retrying in {:.1}s",
                        delay.as_secs_f64()
                    );
                }
                match stop.recv_timeout(delay) {
                    Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
                    _ => return,
                }
            }
            Err(_) => return, // every Client handle is gone
        }
    }
}

/// Holds messages while the link is down (dropping the oldest beyond `capacity`), owns the
/// subscription set and re-subscribes on every connect.
fn run_pump(client: &Client, rx: &Receiver<PumpMsg>, capacity: usize, stats: &LinkStats) {
    let mut pending: VecDeque<(String, Vec<u8>)> = VecDeque::new();
    let mut subs: BTreeSet<String> = BTreeSet::new();
    let mut retained: std::collections::BTreeMap<String, Vec<u8>> = Default::default();
    let send_retained = |topic: &str, payload: &[u8]| {
        if client
            .try_publish(topic, QoS::AtLeastOnce, true, payload.to_vec())
            .is_ok()
        {
            stats.published.fetch_add(1, Ordering::Relaxed);
        }
    };
    let mut connected = false;
    let hold = |pending: &mut VecDeque<(String, Vec<u8>)>, item| {
        if pending.len() >= capacity {
            pending.pop_front();
            stats.dropped.fetch_add(1, Ordering::Relaxed);
        }
        pending.push_back(item);
    };
    // Sends held messages; stops (keeping the rest) when rumqttc's own queue is full.
    let flush = |pending: &mut VecDeque<(String, Vec<u8>)>| {
        while let Some((topic, payload)) = pending.pop_front() {
            if client
                .try_publish(topic.clone(), QoS::AtMostOnce, false, payload.clone())
                .is_err()
            {
                pending.push_front((topic, payload));
                return;
            }
            stats.published.fetch_add(1, Ordering::Relaxed);
        }
    };
    loop {
        stats.held.store(pending.len(), Ordering::Release);
        // Only when connected with a backlog do we wake up on a timer, to retry the flush.
        let msg = if connected && !pending.is_empty() {
            select! {
                recv(rx) -> m => m,
                default(Duration::from_millis(100)) => { flush(&mut pending); continue; }
            }
        } else {
            rx.recv()
        };
        let Ok(msg) = msg else { return };
        // Busy with a message: direct publishes must not overtake it.
        stats.held.store(pending.len() + 1, Ordering::Release);
        match msg {
            PumpMsg::Publish { topic, payload } => {
                hold(&mut pending, (topic, payload));
                if connected {
                    flush(&mut pending);
                }
            }
            PumpMsg::Retained { topic, payload } => {
                if connected {
                    send_retained(&topic, &payload);
                }
                retained.insert(topic, payload);
            }
            PumpMsg::Batch(items) => {
                for item in items {
                    hold(&mut pending, item);
                }
                if connected {
                    flush(&mut pending);
                }
            }
            PumpMsg::Subscribe(topic) => {
                if subs.insert(topic.clone()) && connected {
                    let _ = client.try_subscribe(topic, QoS::AtLeastOnce);
                }
            }
            PumpMsg::Unsubscribe(topic) => {
                if subs.remove(&topic) && connected {
                    let _ = client.try_unsubscribe(topic);
                }
            }
            PumpMsg::LinkUp => {
                connected = true;
                for topic in &subs {
                    if let Err(e) = client.try_subscribe(topic.clone(), QoS::AtLeastOnce) {
                        log::warn!("re-subscribe to {topic} failed: {e}");
                    }
                }
                for (topic, payload) in &retained {
                    send_retained(topic, payload);
                }
                flush(&mut pending);
            }
            PumpMsg::LinkDown => connected = false,
            PumpMsg::Shutdown => {
                if connected {
                    flush(&mut pending);
                }
                let _ = client.try_disconnect();
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_id_shape() {
        let id = new_client_id();
        assert!(id.starts_with("python-sdk_live_"));
        assert_eq!(id.len(), "python-sdk_live_".len() + 32);
        assert_ne!(id, new_client_id());
    }
}
