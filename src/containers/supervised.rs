//! What a role answers to the daemon's supervisor, so a new role is registered in one list,
//! not woven into the select loop: its next deadline, what it does then, how it hears the
//! runtime's events, and its share of the periodic tick. Called on the supervisor thread.

use std::time::Instant;

use super::runtime::{Runtime, RuntimeEvent};

pub trait Supervised {
    /// The next moment this role needs the supervisor (`None`: only events wake it).
    fn next_deadline(&self) -> Option<Instant>;
    /// A deadline passed (this role's or another's: check what is due, do nothing else).
    fn on_deadline(&mut self, runtime: &mut Runtime);
    /// A runtime event, before the runtime itself has seen it.
    fn before_runtime_event(&mut self, _ev: &RuntimeEvent) {}
    /// After the runtime has handled an event.
    fn after_runtime_event(&mut self, runtime: &mut Runtime);
    /// The supervisor's periodic tick (after the runtime's own).
    fn tick(&mut self, runtime: &mut Runtime);
}
