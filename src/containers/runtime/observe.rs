//! The runtime's container lists: one in flight at a time (a second request waits for it),
//! numbered, so a list taken before a launch finished never makes the launched container look
//! gone or replaced (the plan would launch it again and the colliding create would stop the
//! driver that just started).

use std::collections::BTreeMap;

use super::{Runtime, launched_entry};
use crate::containers::executor::Op;
use crate::engine::Container;

impl Runtime {
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
                seen.insert(name.clone(), launched_entry(spec, id));
            }
        }
    }
}
