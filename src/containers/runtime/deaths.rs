//! Deaths of the containers we run: Docker's events feed the restart-loop detector, and a
//! loop is stopped (restart policy off) and told to its role with Docker's own restart count.

use std::time::Instant;

use super::{Loop, Runtime};
use crate::containers::executor::Op;
use crate::engine::ContainerEvent;

impl Runtime {
    pub(super) fn on_container_event(&mut self, ev: ContainerEvent) {
        log::trace!("engine event: {} {}", ev.action, ev.name);
        if ev.action == "die" {
            self.recheck_at = Some(Instant::now() + super::RECHECK_AFTER_DEATH);
        }
        if ev.action == "die"
            && let Some(info) = self.info.get_mut(&ev.name)
            && std::mem::take(&mut info.expect_die)
        {
            self.request_observe();
            return;
        }
        if !self.desired.contains_key(&ev.name) {
            return;
        }
        match ev.action.as_str() {
            "die"
                if ev.exit_code != Some(0)
                    && self.on_trial(&ev.name)
                    && self.trial_failed(&ev.name, &died(ev.exit_code)) =>
            {
                self.reconcile();
            }
            "die" => {
                let info = self.info.entry(ev.name.clone()).or_default();
                info.deaths += 1;
                info.last_exit = ev.exit_code;
                if info.stopped_for_loop {
                    return;
                }
                if let Some(n) = self.flap.record_death(&ev.name, Instant::now()) {
                    self.trip(&ev.name, n);
                }
                self.request_observe();
            }
            "oom" => log::warn!("{} was killed for running out of memory", ev.name),
            // A health check changed its verdict: the list shows it (`(healthy)`).
            a if a.contains("unhealthy")
                && self.on_trial(&ev.name)
                && self.trial_failed(&ev.name, "its health check failed") =>
            {
                self.reconcile();
            }
            a if a.starts_with("health_status") => self.request_observe(),
            "destroy" | "start" if self.inflight.is_empty() => self.request_observe(),
            _ => {}
        }
    }

    /// Restart loop: stop the container, tell the role, schedule a retry with backoff.
    fn trip(&mut self, name: &str, deaths: usize) {
        if !self.desired.contains_key(name) {
            return;
        }
        let info = self.info.entry(name.to_string()).or_default();
        let delay = info.breaker.trip(
            Instant::now(),
            self.tuning.retry_base,
            self.tuning.retry_cap,
        );
        info.stopped_for_loop = true;
        let l = Loop {
            deaths_in_window: deaths,
            deaths_total: info.deaths,
            window: self.tuning.restart_loop_window,
            retry_in: delay,
        };
        info.stopping_loop = Some(l);
        self.flap.clear(name);
        self.followers.stop(name);
        let _ = self.ops.send(Op::StopLooping {
            name: name.to_string(),
        });
    }

    /// The engine stopped a looping container: the role hears of it with Docker's own
    /// restart count (ours when the engine could not say).
    pub(super) fn on_loop_stopped(&mut self, name: &str, restart_count: Option<u64>) {
        let Some(mut l) = self.info.get_mut(name).and_then(|i| i.stopping_loop.take()) else {
            return;
        };
        if let Some(n) = restart_count {
            l.deaths_total = n;
        }
        if let Some((spec, _)) = self.desired.get(name)
            && let Some(p) = self.policies.get_mut(&spec.role)
        {
            p.restart_loop(spec, &l);
        }
    }
}

/// Why a container died, for a rollback's words.
fn died(exit_code: Option<i32>) -> String {
    match exit_code {
        Some(c) => format!("exited with code {c}"),
        None => "died".to_string(),
    }
}
