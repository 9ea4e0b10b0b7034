//! Host saturation (reference §11.2): CPU, memory or disk at `CYBERWAVE_RESOURCE_SATURATION_
//! PERCENT` (95) for two snapshots in a row raises `edge_<resource>_saturation` on every twin
//! with a driver; two snapshots below the threshold − 5 resolve it. Alerts an earlier process
//! may have left open are resolved at the first reading below that level. The rule is
//! [`Saturation::step`], pure; [`run`] samples every 30 s on its own thread, so the
//! supervisor never waits for `/proc`, a filesystem or `docker stats`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};
use serde_json::{Value, json};

use super::Sampler;

/// Default threshold and the margin below it that counts as clear again.
pub const DEFAULT_PERCENT: f64 = 95.0;
const CLEAR_MARGIN: f64 = 5.0;
/// Snapshots in a row before a resource flips.
const SNAPSHOTS_TO_FLIP: u32 = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Resource {
    Cpu,
    Memory,
    Disk,
}

impl Resource {
    pub const ALL: [Resource; 3] = [Resource::Cpu, Resource::Memory, Resource::Disk];

    pub fn key(self) -> &'static str {
        match self {
            Resource::Cpu => "cpu",
            Resource::Memory => "memory",
            Resource::Disk => "disk",
        }
    }

    /// The original's label (`CPU`, `memory`, `disk`).
    fn label(self) -> &'static str {
        match self {
            Resource::Cpu => "CPU",
            Resource::Memory => "memory",
            Resource::Disk => "disk",
        }
    }

    pub fn alert_type(self) -> String {
        format!("edge_{}_saturation", self.key())
    }
}

/// What the supervisor does for every twin with a driver.
#[derive(Debug, Clone, PartialEq)]
pub enum SaturationEvent {
    Raise {
        resource: Resource,
        title: String,
        description: String,
        metadata: Value,
    },
    Resolve {
        resource: Resource,
    },
}

/// The original's words: `Edge CPU saturated`, "CPU usage on edge pi is 97% (threshold 95%).
/// Top containers: a 80%, b 10%."
pub fn words(
    resource: Resource,
    host: &str,
    percent: f64,
    threshold: f64,
    top: &str,
) -> (String, String) {
    let label = resource.label();
    let mut cap = label.to_string();
    if let Some(first) = cap.get(..1) {
        cap = format!("{}{}", first.to_uppercase(), &cap[1..]);
    }
    let mut description =
        format!("{cap} usage on edge {host} is {percent:.0}% (threshold {threshold:.0}%).");
    if !top.is_empty() {
        description.push_str(&format!(" Top containers: {top}."));
    }
    (format!("Edge {label} saturated"), description)
}

/// The threshold from its variable: a number in (5, 100], else the default (with a warning).
pub fn threshold(raw: Option<&str>) -> (f64, Option<String>) {
    let Some(raw) = raw.map(str::trim).filter(|r| !r.is_empty()) else {
        return (DEFAULT_PERCENT, None);
    };
    match raw.parse::<f64>() {
        Ok(v) if v > CLEAR_MARGIN && v <= 100.0 => (v, None),
        _ => (
            DEFAULT_PERCENT,
            Some(format!(
                "Ignoring invalid CYBERWAVE_RESOURCE_SATURATION_PERCENT={raw:?}; using 95%"
            )),
        ),
    }
}

/// The state between snapshots.
#[derive(Debug)]
pub struct Saturation {
    threshold: f64,
    streaks: BTreeMap<Resource, u32>,
    saturated: BTreeSet<Resource>,
    /// Possibly alerted by an earlier process: resolved at the first clear reading.
    left_open: BTreeSet<Resource>,
}

impl Saturation {
    pub fn new(threshold: f64) -> Self {
        Saturation {
            threshold,
            streaks: BTreeMap::new(),
            saturated: BTreeSet::new(),
            left_open: Resource::ALL.into_iter().collect(),
        }
    }

    fn clear(&self) -> f64 {
        self.threshold - CLEAR_MARGIN
    }

    /// One snapshot: `readings` in percent (`None`: not available now). `top` names the
    /// busiest containers for a resource that is about to be raised.
    pub fn step(
        &mut self,
        readings: &[(Resource, Option<f64>)],
        host: &str,
        top: &mut dyn FnMut(Resource) -> String,
    ) -> Vec<SaturationEvent> {
        let mut out = Vec::new();
        for &(resource, percent) in readings {
            let saturated = self.saturated.contains(&resource);
            if let Some(p) = percent
                && p < self.clear()
                && self.left_open.remove(&resource)
                && !saturated
            {
                out.push(SaturationEvent::Resolve { resource });
            }
            let Some(p) = percent else {
                self.streaks.remove(&resource);
                continue;
            };
            let steady = if saturated {
                p >= self.clear()
            } else {
                p < self.threshold
            };
            if steady {
                self.streaks.remove(&resource);
                continue;
            }
            let n = self.streaks.entry(resource).or_insert(0);
            *n += 1;
            if *n < SNAPSHOTS_TO_FLIP {
                continue;
            }
            self.streaks.remove(&resource);
            if saturated {
                log::info!("Edge {} no longer saturated: {p:.0}%", resource.label());
                self.saturated.remove(&resource);
                out.push(SaturationEvent::Resolve { resource });
            } else {
                self.left_open.remove(&resource);
                self.saturated.insert(resource);
                let (title, description) = words(resource, host, p, self.threshold, &top(resource));
                log::warn!("{description}");
                out.push(SaturationEvent::Raise {
                    resource,
                    title,
                    description,
                    metadata: json!({"resource": resource.key(),
                                     "percent": (p * 10.0).round() / 10.0,
                                     "threshold": self.threshold}),
                });
            }
        }
        out
    }
}

/// The three busiest containers by CPU or memory (the engine's `stats`, 10 s), as
/// "name 80%, other 10%"; empty for disk or when the engine does not answer.
fn top_containers(engine: &dyn crate::engine::Engine, resource: Resource) -> String {
    match resource {
        Resource::Disk => String::new(),
        r => top_of(&engine.usage().unwrap_or_default(), r),
    }
}

fn top_of(usage: &[crate::engine::Usage], resource: Resource) -> String {
    let share = |u: &crate::engine::Usage| match resource {
        Resource::Memory => u.memory_percent,
        _ => u.cpu_percent,
    };
    let mut ranked: Vec<(f64, &str)> = usage
        .iter()
        .filter(|u| share(u).is_finite())
        .map(|u| (share(u), u.name.as_str()))
        .collect();
    ranked.sort_by(|a, b| b.partial_cmp(a).unwrap_or(std::cmp::Ordering::Equal));
    ranked
        .iter()
        .take(3)
        .map(|(p, n)| format!("{n} {p:.0}%"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// What the monitor thread needs.
pub struct MonitorConfig {
    pub threshold: f64,
    pub every: Duration,
    pub engine: std::sync::Arc<dyn crate::engine::Engine>,
    /// This edge's host name (in the alert text).
    pub host: String,
}

/// Samples the host every `every` until `stop` closes, sending what changes.
pub fn run(cfg: MonitorConfig, tx: Sender<SaturationEvent>, stop: Receiver<()>) {
    // The disk that fills is the one the engine keeps its images and logs on.
    let mut sampler = Sampler::new(cfg.engine.data_root(), None);
    let mut state = Saturation::new(cfg.threshold);
    let host = cfg.host.clone();
    loop {
        let s = sampler.sample();
        let readings = [
            (Resource::Cpu, s.cpu_percent),
            (Resource::Memory, s.memory_percent),
            (Resource::Disk, s.disk_percent),
        ];
        for ev in state.step(&readings, &host, &mut |r| {
            top_containers(cfg.engine.as_ref(), r)
        }) {
            if tx.send(ev).is_err() {
                return;
            }
        }
        if !matches!(
            stop.recv_timeout(cfg.every),
            Err(crossbeam_channel::RecvTimeoutError::Timeout)
        ) {
            return;
        }
    }
}

#[cfg(test)]
mod tests;
