//! The drivers as a role of the daemon's supervisor.

use std::time::Instant;

use super::runtime::Drivers;
use crate::containers::runtime::{Runtime, RuntimeEvent};
use crate::containers::supervised::Supervised;

impl Supervised for Drivers {
    fn next_deadline(&self) -> Option<Instant> {
        Drivers::next_deadline(self)
    }

    /// Metadata-change restarts that are due, and the pinned cameras' presence.
    fn on_deadline(&mut self, runtime: &mut Runtime) {
        self.check_meta_restarts(runtime);
        self.check_devices();
    }

    fn before_runtime_event(&mut self, ev: &RuntimeEvent) {
        self.on_event(ev);
    }

    fn after_runtime_event(&mut self, runtime: &mut Runtime) {
        self.discovery.send_due(runtime);
        self.remove_unlinked_graphs(runtime);
    }

    fn tick(&mut self, runtime: &mut Runtime) {
        self.check_meta_restarts(runtime);
    }
}
