//! The start order of a service graph (reference §5.9): a container whose `depends_on` names
//! another is launched only once that one was started, and for `service_healthy` once Docker
//! says it is healthy (or it has no healthcheck, or it exited). As the original, the wait may
//! delay a start and never prevents one: after `CYBERWAVE_DRIVER_DEPENDENCY_HEALTH_TIMEOUT_SECONDS`
//! it starts anyway. Better: the wait is a decision of the plan, not a sleep, so it never holds
//! the supervisor, another twin's launch or another service of the same graph.

use std::collections::BTreeMap;
use std::time::Instant;

use serde_json::{Value, json};

use super::Runtime;
use crate::engine::Container;

/// What the engine's list says of a container's health (`Up 3 s (health: starting)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// No healthcheck.
    None,
    Starting,
    Healthy,
    Unhealthy,
}

pub fn health_of(status: &str) -> Health {
    if status.contains("(health: starting)") {
        Health::Starting
    } else if status.contains("(unhealthy)") {
        Health::Unhealthy
    } else if status.contains("(healthy)") {
        Health::Healthy
    } else {
        Health::None
    }
}

/// Whether a dependency seen as `seen` lets a container gated on it start: it was started
/// (an exited one releases the wait for supervision to handle), and for `healthy` it is not
/// still starting or unhealthy.
pub fn opens(healthy: bool, seen: Option<&Container>) -> bool {
    let Some(c) = seen else {
        return false;
    };
    match c.state.as_str() {
        "exited" | "dead" => true,
        "created" | "removing" => false,
        _ => !healthy || matches!(health_of(&c.status), Health::None | Health::Healthy),
    }
}

/// The launches a gate holds: container → (the dependency it waits for, since when).
#[derive(Debug, Default)]
pub struct Gates {
    waiting: BTreeMap<String, (String, Instant)>,
    /// When the engine is listed again for them.
    poll_at: Option<Instant>,
}

impl Runtime {
    /// The dependency `name` still waits for, or `None` when it may be launched now.
    pub(super) fn waits_for(&mut self, name: &str, now: Instant) -> Option<String> {
        let after = &self.desired.get(name)?.0.links.after;
        let observed = self.observed.as_ref();
        let closed = after
            .iter()
            .find(|g| {
                self.desired.contains_key(&g.name)
                    && !opens(g.healthy, observed.and_then(|o| o.get(&g.name)))
            })
            .map(|g| (g.name.clone(), g.healthy));
        let Some((dep, healthy)) = closed else {
            self.gates.waiting.remove(name);
            return None;
        };
        let since = match self.gates.waiting.get(name) {
            Some((d, t)) if *d == dep => *t,
            _ => {
                let what = if healthy { "healthy" } else { "started" };
                log::info!("{name} waits for {dep} to be {what}");
                self.gates
                    .waiting
                    .insert(name.to_string(), (dep.clone(), now));
                now
            }
        };
        if now.duration_since(since) >= self.tuning.gate_timeout {
            log::warn!(
                "dependency {dep} of {name} still not ready after {} s; starting {name} anyway",
                self.tuning.gate_timeout.as_secs()
            );
            self.gates.waiting.remove(name);
            return None;
        }
        Some(dep)
    }

    /// When a held launch is looked at again: the next list, or its wait's end.
    pub(super) fn next_gate_check(&mut self) -> Option<Instant> {
        let ends = self
            .gates
            .waiting
            .values()
            .map(|(_, t)| *t + self.tuning.gate_timeout)
            .min()?;
        let poll = *self
            .gates
            .poll_at
            .get_or_insert_with(|| Instant::now() + self.tuning.gate_poll);
        Some(ends.min(poll))
    }

    /// Lists the engine again when a held launch's poll is due (its dependency's health comes
    /// with the list; a `health_status` event lists at once).
    pub(super) fn poll_gates(&mut self) {
        if self.gates.poll_at.is_some_and(|t| t <= Instant::now()) {
            self.gates.poll_at = None;
            if !self.gates.waiting.is_empty() {
                self.request_observe();
            }
        }
    }

    /// `status`: what `name` waits for before it starts.
    pub(super) fn gate_status(&self, name: &str) -> Value {
        match self.gates.waiting.get(name) {
            Some((dep, since)) => json!({"container": dep, "for_s": since.elapsed().as_secs()}),
            None => Value::Null,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(state: &str, status: &str) -> Container {
        Container {
            id: "i".into(),
            name: "dep".into(),
            image: String::new(),
            image_id: String::new(),
            state: state.into(),
            status: status.into(),
            labels: BTreeMap::new(),
        }
    }

    #[test]
    fn a_gate_opens_per_the_dependencys_state_and_health() {
        let cases = [
            (true, None, false),
            (false, None, false),
            (true, Some(("created", "Created")), false),
            (false, Some(("running", "Up 1 second")), true),
            (true, Some(("running", "Up 1 second")), true), // no healthcheck
            (
                true,
                Some(("running", "Up 2 seconds (health: starting)")),
                false,
            ),
            (
                false,
                Some(("running", "Up 2 seconds (health: starting)")),
                true,
            ),
            (true, Some(("running", "Up 9 seconds (healthy)")), true),
            (true, Some(("running", "Up 9 seconds (unhealthy)")), false),
            (true, Some(("exited", "Exited (1) 2 seconds ago")), true),
            (true, Some(("dead", "Dead")), true),
            (
                true,
                Some(("restarting", "Restarting (1) 1 second ago")),
                true,
            ),
        ];
        for (healthy, s, want) in cases {
            let c = s.map(|(st, text)| seen(st, text));
            assert_eq!(opens(healthy, c.as_ref()), want, "{healthy} {s:?}");
        }
    }
}
