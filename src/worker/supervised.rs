//! The worker as a role of the daemon's supervisor.

use std::time::Instant;

use super::runtime::Worker;
use crate::containers::executor::ExecEvent;
use crate::containers::runtime::{Runtime, RuntimeEvent};
use crate::containers::supervised::Supervised;

impl Supervised for Worker {
    fn next_deadline(&self) -> Option<Instant> {
        Worker::next_deadline(self)
    }

    fn on_deadline(&mut self, runtime: &mut Runtime) {
        Worker::on_deadline(self, runtime);
    }

    /// The engine's runtimes decide the worker's accelerator: taken in once the runtime has
    /// them too.
    fn before_runtime_event(&mut self, ev: &RuntimeEvent) {
        if let RuntimeEvent::Exec(ExecEvent::Runtimes { nvidia, .. }) = ev {
            self.nvidia_heard = Some(*nvidia);
        }
    }

    fn after_runtime_event(&mut self, runtime: &mut Runtime) {
        if let Some(n) = self.nvidia_heard.take() {
            self.set_nvidia(n, runtime);
        }
        Worker::after_runtime_event(self, runtime);
    }

    fn tick(&mut self, runtime: &mut Runtime) {
        Worker::tick(self, runtime);
    }
}
