//! The supervisor: one thread that owns all state and handles one [`Event`] at a time. The
//! roles on the container runtime (the worker, the drivers) are served through
//! [`Supervised`], in one list: a new role is added there, not woven into the loop.

use std::time::Instant;

use crossbeam_channel::Sender;

use super::backend_job::JobCtl;
use super::error::DaemonError;
use super::handlers::{on_backend, on_link, reload};
use super::link::MQTT_SHUTDOWN_GRACE;
use super::report::StartupReport;
use super::restart;
use super::sources::{Event, Signal, Sources};
use super::startup;
use super::state::State;
use crate::containers::runtime::Runtime;
use crate::containers::supervised::Supervised;
use crate::control::Request;
use crate::mqtt::LinkEvent;
use crate::systemd::Notifier;

/// The supervisor and what it holds on to while it runs.
pub(super) struct Supervisor {
    pub(super) state: State,
    pub(super) sources: Sources,
    /// The original's startup report on stdout, filled in as the steps are known.
    pub(super) report: Option<StartupReport>,
    pub(super) notifier: Notifier,
    pub(super) hardware: Option<crate::watchdog::Hardware>,
    pub(super) link_tx: Sender<LinkEvent>,
    pub(super) jobctl: Sender<JobCtl>,
    /// Held, not used: dropping them stops the saturation monitor and removes the control
    /// socket.
    pub(super) _saturation_stop: Sender<()>,
    pub(super) _socket: crate::control::SocketGuard,
}

/// The runtime and the roles on it, in the order they hear of things.
fn roles(state: &mut State) -> (&mut Runtime, [&mut dyn Supervised; 3]) {
    (
        &mut state.runtime,
        [&mut state.worker, &mut state.drivers, &mut state.tunnel],
    )
}

impl Supervisor {
    /// Runs until a shutdown signal (Ok) or a fatal error, then shuts down.
    pub(super) fn run(mut self) -> Result<(), DaemonError> {
        self.notifier.ready();
        self.notifier.status("Running");
        log::info!("edge core running (pid {})", std::process::id());
        if !self.state.local {
            self.report = Some(startup::begin(&self.state));
        }
        let outcome = loop {
            if let Some(r) = self.report.as_mut()
                && !startup::observe(r, &self.state)
            {
                self.report = None;
            }
            let due = self.next_deadline();
            let ev = self.sources.next(due);
            log::trace!("supervisor woken by {}", ev.kind());
            if let Some(outcome) = self.handle(ev) {
                break outcome;
            }
        };
        self.shutdown();
        outcome
    }

    fn next_deadline(&mut self) -> Option<Instant> {
        let (runtime, roles) = roles(&mut self.state);
        let own = runtime.next_deadline();
        let roles: Option<Instant> = roles.iter().filter_map(|r| r.next_deadline()).min();
        [roles, own, super::portal::due(&self.state)]
            .into_iter()
            .flatten()
            .min()
    }

    /// Handles one event; `Some` ends the loop with that outcome.
    fn handle(&mut self, ev: Event) -> Option<Result<(), DaemonError>> {
        let (state, jobctl) = (&mut self.state, &self.jobctl);
        match ev {
            Event::Deadline => {
                let (runtime, roles) = roles(state);
                runtime.on_deadline();
                for r in roles {
                    r.on_deadline(runtime);
                }
                super::portal::refresh(state, true);
            }
            Event::DataTick => state.check_data_stalls(),
            Event::Saturation(ev) => state.drivers.on_saturation(ev),
            Event::Cameras => state.on_cameras_changed(),
            Event::Pulled(p) => state.on_pulled(p),
            Event::Flushed(n) => restart::flushed(state, n, jobctl),
            Event::Prep(ev) => state.worker.on_prep(ev, &mut state.runtime),
            Event::WorkerFiles(sig) => state.worker.on_files(sig, &mut state.runtime),
            Event::Signal(Signal::Shutdown(n)) => {
                log::info!("signal {n}: shutting down (driver containers keep running)");
                return Some(Ok(()));
            }
            Event::Signal(Signal::Reload) if !state.local => reload(state, &self.link_tx, jobctl),
            Event::Signal(Signal::Reload) => log::info!("SIGHUP: nothing to reload in local mode"),
            Event::SignalsLost => {
                return Some(Err(DaemonError::Startup("signal thread ended".into())));
            }
            Event::Backend(ev) => {
                if let Some(r) = self.report.as_mut() {
                    startup::on_backend(r, &ev, state);
                }
                if let Err(e) = on_backend(state, ev, jobctl) {
                    return Some(Err(e));
                }
            }
            Event::Link(ev) => {
                if let Some(r) = self.report.as_mut() {
                    startup::on_link(r, &ev);
                }
                on_link(state, ev, jobctl);
            }
            Event::Runtime(ev) => self.on_runtime(ev),
            Event::Tunnel(ev) => state.tunnel.on_event(ev, &mut state.runtime),
            Event::Control(req) => match req.request {
                Request::Status => {
                    let _ = req.reply.send(state.snapshot());
                }
                Request::Worker(verb) => {
                    let answer = state.worker.control(&verb, &mut state.runtime);
                    let _ = req.reply.send(answer);
                }
            },
            Event::Tick => self.on_tick(),
        }
        self.state.send_token_needs(&self.jobctl);
        None
    }

    fn on_runtime(&mut self, ev: crate::containers::runtime::RuntimeEvent) {
        let state = &mut self.state;
        {
            let (runtime, mut roles) = roles(state);
            for r in roles.iter_mut() {
                r.before_runtime_event(&ev);
            }
            runtime.on_event(ev);
            for r in roles {
                r.after_runtime_event(runtime);
            }
        }
        state.replan_discovered();
        state.stop_health_once_drivers_run();
        state.data.bus.containers(state.runtime.running_ids());
        super::portal::refresh(state, false);
        restart::check(state, &self.jobctl);
        state.update_node();
    }

    fn on_tick(&mut self) {
        self.notifier.watchdog();
        if let Some(h) = self.hardware.as_mut() {
            h.feed();
        }
        let state = &mut self.state;
        {
            let (runtime, roles) = roles(state);
            runtime.tick();
            for r in roles {
                r.tick(runtime);
            }
        }
        restart::check(state, &self.jobctl);
        state.update_node();
    }

    fn shutdown(mut self) {
        self.notifier.stopping();
        drop(self.hardware.take()); // the magic close, before we say OFFLINE
        let state = &mut self.state;
        state.publish_node_offline("stopped");
        state.tunnel.shutdown();
        state.runtime.shutdown();
        if let Some(h) = state.health.take() {
            h.stop();
        }
        if let Some(link) = state.link.take() {
            link.shutdown(MQTT_SHUTDOWN_GRACE);
        }
        log::info!("edge core stopped");
    }
}
