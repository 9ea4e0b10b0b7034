//! The runtime's container lists: one in flight at a time (a second request waits for it),
//! numbered, so a list taken before a launch finished never makes the launched container look
//! gone or replaced (the plan would launch it again and the colliding create would stop the
//! driver that just started).

use std::collections::BTreeMap;
use std::time::SystemTime;

use super::Runtime;
use super::launched::launched_entry;
use crate::containers::executor::Op;
use crate::engine::Container;

impl Runtime {
    /// The full ids of the containers of ours the engine last listed as running.
    pub fn running_ids(&self) -> std::collections::BTreeSet<String> {
        self.observed
            .iter()
            .flat_map(|o| o.values())
            .filter(|c| c.state == "running" && !c.id.is_empty())
            .map(|c| c.id.clone())
            .collect()
    }

    /// Whether this tick lists the containers: always without the event stream or while
    /// anything is not simply running (a launch, a recreation, a container down or gone);
    /// otherwise every [`super::OBSERVE_EVERY_TICKS`]th tick, as a backstop.
    pub(super) fn tick_lists(&self) -> bool {
        let steady = self.inflight.is_empty()
            && self.recreating.is_empty()
            && self
                .desired
                .keys()
                .all(|n| self.observed_state(n).is_some_and(|c| c.state == "running"));
        !self.events_live || !steady || self.ticks_since_observe >= super::OBSERVE_EVERY_TICKS
    }

    pub(super) fn request_observe(&mut self) {
        if self.observe_pending {
            self.observe_again = true;
        } else {
            self.observe_pending = true;
            self.observes_requested += 1;
            let _ = self.ops.send(Op::Observe);
        }
    }

    /// A list landed (or failed); returns the number of the request it answers.
    pub(super) fn observation_landed(&mut self) -> u64 {
        self.observe_pending = false;
        self.ticks_since_observe = 0;
        self.observes_landed += 1;
        let answered = self.observes_landed;
        if std::mem::take(&mut self.observe_again) {
            self.request_observe();
        }
        answered
    }

    /// In list `answered`, a container launched after that list was asked for is what the
    /// launcher saw (running, its spec) unless the list shows that very container.
    pub(super) fn keep_launched(&self, seen: &mut BTreeMap<String, Container>, answered: u64) {
        for (name, (spec, _)) in &self.desired {
            let Some(info) = self.info.get(name) else {
                continue;
            };
            let (Some(id), true) = (&info.id, answered < info.trust_lists_from) else {
                continue;
            };
            let same = seen
                .get(name)
                .is_some_and(|e| e.id.starts_with(id.as_str()) || id.starts_with(&e.id));
            if !same {
                seen.insert(name.clone(), launched_entry(spec, id, &info.image_id));
            }
        }
    }

    /// A newly desired container the last list showed running with its spec (adopted at
    /// start) starts as running, so a death before the next list is still a transition its
    /// role hears of. Only that: a list may predate a removal, and a container it shows in any
    /// other state is left for the next list to tell.
    pub(super) fn adopt_running(&mut self, names: &[String]) {
        let Some(observed) = &self.observed else {
            return;
        };
        for name in names {
            let (Some(e), Some((spec, _))) = (observed.get(name), self.desired.get(name)) else {
                continue;
            };
            let same = e.labels.get(crate::containers::LABEL_SPEC_HASH) == Some(&spec.spec_hash);
            if e.state != "running" || !same || self.inflight.contains(name) {
                continue;
            }
            let info = self.info.entry(name.clone()).or_default();
            if info.state.is_empty() {
                info.state = e.state.clone();
                info.seen = true;
                info.since = Some(SystemTime::now());
            }
        }
    }
}
