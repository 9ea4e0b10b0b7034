//! Whether a running driver actually produces data: per linked twin, the samples seen on
//! `cw/{twin}/data/**` (reference: the SDK's key layout), their rate and the age of the last;
//! the worker's `cw/_monitor/{host}/worker_stats`; and the stall rule. Pure: the bus's
//! subscriber calls [`Traffic::record`] (a map lookup and two additions per sample, at any
//! rate), the supervisor reads views and runs [`Stalls::check`].

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// Seconds of per-second counts kept for the rate.
const WINDOW: usize = 10;
/// Channel names remembered per twin (hostile peers can publish any key).
const MAX_CHANNELS: usize = 16;
/// Bytes of a worker-stats payload worth reading.
pub const MAX_STATS_BYTES: usize = 64 * 1024;

#[derive(Debug, Default, Clone)]
struct Flow {
    samples: u64,
    bytes: u64,
    first: Option<Instant>,
    last: Option<Instant>,
    /// (second, count) ring for the rate.
    buckets: [(u64, u32); WINDOW],
    channels: BTreeSet<String>,
}

/// What the bus saw, shared between the subscriber and the supervisor.
#[derive(Debug, Default)]
pub struct Traffic {
    /// Only these twins are counted.
    watched: BTreeSet<String>,
    flows: HashMap<String, Flow>,
    worker_stats: BTreeMap<String, (Instant, Value)>,
}

/// `cw/{twin}/data/{channel}[/…]` → (twin, channel), for what a driver publishes: the
/// SDK's `commands/…` channels are written *to* the driver (by workers and policies), so they
/// say nothing about whether the driver produces data.
pub fn parse_data_key(key: &str) -> Option<(&str, &str)> {
    let mut parts = key.split('/');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some("cw"), Some(twin), Some("data"), Some(channel))
            if !twin.is_empty() && !channel.is_empty() && channel != "commands" =>
        {
            Some((twin, channel))
        }
        _ => None,
    }
}

impl Traffic {
    /// The twins worth counting (the linked ones); others' samples are ignored.
    pub fn watch(&mut self, twins: impl IntoIterator<Item = String>) {
        self.watched = twins.into_iter().collect();
        let watched = &self.watched;
        self.flows.retain(|t, _| watched.contains(t));
    }

    /// One sample on `key` of `bytes`; `sec` is the wall-clock second (for the rate buckets).
    pub fn record(&mut self, key: &str, bytes: usize, now: Instant, sec: u64) {
        let Some((twin, channel)) = parse_data_key(key) else {
            return;
        };
        if !self.watched.contains(twin) {
            return;
        }
        let f = self.flows.entry(twin.to_string()).or_default();
        f.samples += 1;
        f.bytes += bytes as u64;
        f.first.get_or_insert(now);
        f.last = Some(now);
        let b = &mut f.buckets[(sec % WINDOW as u64) as usize];
        if b.0 != sec {
            *b = (sec, 0);
        }
        b.1 += 1;
        if f.channels.len() < MAX_CHANNELS && !f.channels.contains(channel) {
            f.channels.insert(channel.to_string());
        }
    }

    /// A worker's stats sample on `cw/_monitor/{host}/worker_stats`.
    pub fn record_worker_stats(&mut self, key: &str, payload: &[u8], now: Instant) {
        let mut parts = key.split('/');
        let host = match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some("cw"), Some("_monitor"), Some(host), Some("worker_stats")) => host,
            _ => return,
        };
        let v = (payload.len() <= MAX_STATS_BYTES)
            .then(|| serde_json::from_slice::<Value>(payload).ok())
            .flatten()
            .unwrap_or(Value::Null);
        // One host is this edge's worker; a few more are kept, never an unbounded map.
        if self.worker_stats.len() < 8 || self.worker_stats.contains_key(host) {
            self.worker_stats.insert(host.to_string(), (now, v));
        }
    }

    /// When a twin's last sample arrived.
    pub fn last(&self, twin: &str) -> Option<Instant> {
        self.flows.get(twin).and_then(|f| f.last)
    }

    /// `{samples, bytes, rate_hz, last_sample_age_s, channels}` of a twin, or null.
    pub fn view(&self, twin: &str, now: Instant, sec: u64) -> Value {
        let Some(f) = self.flows.get(twin) else {
            return Value::Null;
        };
        // Complete seconds of the window (the current one is still filling).
        let counted: u64 = f
            .buckets
            .iter()
            .filter(|(s, _)| *s < sec && *s + WINDOW as u64 >= sec)
            .map(|(_, c)| u64::from(*c))
            .sum();
        let seen_for = f
            .first
            .map(|t| now.saturating_duration_since(t).as_secs())
            .unwrap_or(0);
        let span = seen_for.clamp(1, WINDOW as u64) as f64;
        json!({
            "samples": f.samples,
            "bytes": f.bytes,
            "rate_hz": (counted as f64 / span * 10.0).round() / 10.0,
            "last_sample_age_s": f.last.map(|t| (now.saturating_duration_since(t).as_secs_f64() * 10.0).round() / 10.0),
            "channels": f.channels,
        })
    }

    /// Every counted twin's [`Traffic::view`].
    pub fn views(&self, now: Instant, sec: u64) -> Value {
        let mut twins: Vec<&String> = self.flows.keys().collect();
        twins.sort();
        twins
            .into_iter()
            .map(|t| (t.clone(), self.view(t, now, sec)))
            .collect::<serde_json::Map<_, _>>()
            .into()
    }

    /// The workers' stats: host → `{age_s, zenoh_connected}`.
    pub fn worker_view(&self, now: Instant) -> Value {
        self.worker_stats
            .iter()
            .map(|(h, (at, v))| {
                (
                    h.clone(),
                    json!({"age_s": (now.saturating_duration_since(*at).as_secs_f64() * 10.0).round() / 10.0,
                           "zenoh_connected": v.get("zenoh_connected").cloned().unwrap_or(Value::Null)}),
                )
            })
            .collect::<serde_json::Map<_, _>>()
            .into()
    }
}

/// A twin whose driver runs: since when, and when its last sample arrived.
#[derive(Debug, Clone, PartialEq)]
pub struct Running {
    pub twin: String,
    pub since: Instant,
    pub last_sample: Option<Instant>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StallEvent {
    /// Nothing for `idle` although the driver ran all that time.
    Stalled { twin: String, idle: Duration },
    /// Data again, or the driver no longer runs.
    Resolved { twin: String },
}

/// Which twins are alerted as stalled.
#[derive(Debug, Default)]
pub struct Stalls {
    stalled: BTreeSet<String>,
}

impl Stalls {
    /// The twins alerted as stalled now.
    pub fn stalled(&self) -> Vec<String> {
        self.stalled.iter().cloned().collect()
    }

    /// `after`: how long a running driver may publish nothing.
    pub fn check(&mut self, after: Duration, running: &[Running], now: Instant) -> Vec<StallEvent> {
        let mut out = Vec::new();
        let mut seen = BTreeSet::new();
        for r in running {
            seen.insert(r.twin.clone());
            let quiet_since = match r.last_sample {
                Some(t) if t > r.since => t,
                _ => r.since,
            };
            let idle = now.saturating_duration_since(quiet_since);
            let stalled = idle >= after;
            match (stalled, self.stalled.contains(&r.twin)) {
                (true, false) => {
                    self.stalled.insert(r.twin.clone());
                    out.push(StallEvent::Stalled {
                        twin: r.twin.clone(),
                        idle,
                    });
                }
                (false, true) => {
                    self.stalled.remove(&r.twin);
                    out.push(StallEvent::Resolved {
                        twin: r.twin.clone(),
                    });
                }
                _ => {}
            }
        }
        let gone: Vec<String> = self.stalled.difference(&seen).cloned().collect();
        for twin in gone {
            self.stalled.remove(&twin);
            out.push(StallEvent::Resolved { twin });
        }
        out
    }
}

#[cfg(test)]
mod tests;
