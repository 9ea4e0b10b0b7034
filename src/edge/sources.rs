//! Everything that wakes the supervisor, as one event type: the receivers of every thread
//! and timer, read in one `select!`. A channel whose senders are gone is replaced by
//! `never()`: a closed channel is always ready and would turn the loop into a busy one.

use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, after, never, select, tick};

use super::backend_job::BackendEvent;
use crate::containers::runtime::RuntimeEvent;
use crate::control::ControlRequest;
use crate::health::saturation::SaturationEvent;
use crate::mqtt::LinkEvent;
use crate::remote_access::TunnelEvent;
use crate::twinsync::run::Pulled;
use crate::worker::prep::PrepEvent;

/// Supervisor tick: watchdog ping and housekeeping (the original's runtime loop interval).
pub const TICK: Duration = Duration::from_secs(15);

/// A signal the daemon acts on.
pub(super) enum Signal {
    /// SIGTERM or SIGINT (the number): stop, leaving the containers running.
    Shutdown(i32),
    /// SIGHUP: read the settings and files again.
    Reload,
}

/// What woke the supervisor.
pub(super) enum Event {
    /// The earliest role deadline passed.
    Deadline,
    /// The periodic tick.
    Tick,
    /// The data-stall check (every second when its alert is on).
    DataTick,
    Saturation(SaturationEvent),
    /// `cameras.json` or `edge.json` changed.
    Cameras,
    /// The twin-sync thread pulled a twin's metadata.
    Pulled(Pulled),
    /// The twin-sync thread pushed and removed the twin files for a remote restart.
    Flushed(usize),
    Prep(PrepEvent),
    /// The files in `workers/` settled into a new signature.
    WorkerFiles(crate::watch::Signature),
    Signal(Signal),
    Backend(BackendEvent),
    Link(LinkEvent),
    Runtime(RuntimeEvent),
    /// The remote-access thread asks for its container to run or stop.
    Tunnel(TunnelEvent),
    Control(ControlRequest),
    /// The signal thread ended: the daemon can no longer be stopped cleanly.
    SignalsLost,
}

impl Event {
    /// The event's name, for the trace log of what wakes the supervisor.
    pub(super) fn kind(&self) -> &'static str {
        match self {
            Event::Deadline => "deadline",
            Event::Tick => "tick",
            Event::DataTick => "data tick",
            Event::Saturation(_) => "saturation",
            Event::Cameras => "cameras",
            Event::Pulled(_) => "twin pulled",
            Event::Flushed(_) => "twins flushed",
            Event::Prep(_) => "worker prep",
            Event::WorkerFiles(_) => "worker files",
            Event::Signal(_) => "signal",
            Event::Backend(_) => "backend",
            Event::Link(_) => "mqtt link",
            Event::Runtime(_) => "runtime",
            Event::Tunnel(_) => "tunnel",
            Event::Control(_) => "control",
            Event::SignalsLost => "signals lost",
        }
    }
}

/// The receivers the supervisor reads.
pub(super) struct Sources {
    pub(super) signals: Receiver<Signal>,
    pub(super) backend: Receiver<BackendEvent>,
    pub(super) link: Receiver<LinkEvent>,
    pub(super) runtime: Receiver<RuntimeEvent>,
    pub(super) tunnel: Receiver<TunnelEvent>,
    pub(super) control: Receiver<ControlRequest>,
    pub(super) prep: Receiver<PrepEvent>,
    pub(super) worker_files: Receiver<crate::watch::Changed>,
    pub(super) pulled: Receiver<Pulled>,
    pub(super) flushed: Receiver<usize>,
    pub(super) cameras: Receiver<crate::watch::Changed>,
    pub(super) saturation: Receiver<SaturationEvent>,
    pub(super) ticker: Receiver<Instant>,
    pub(super) data_ticker: Receiver<Instant>,
}

impl Sources {
    /// The timers: the tick, and the data-stall check when its alert is on.
    pub(super) fn timers(data_stalls: bool) -> (Receiver<Instant>, Receiver<Instant>) {
        let data = if data_stalls {
            tick(Duration::from_secs(1))
        } else {
            never()
        };
        (tick(TICK), data)
    }

    /// Waits for the next event, or `due` (the earliest role deadline).
    pub(super) fn next(&mut self, due: Option<Instant>) -> Event {
        loop {
            let deadline = due
                .map(|d| d.saturating_duration_since(Instant::now()))
                .map(after)
                .unwrap_or_else(never);
            if let Some(ev) = self.once(&deadline) {
                return ev;
            }
        }
    }

    /// One `select!`; `None` when the ready channel turned out closed (replaced by `never()`).
    fn once(&mut self, deadline: &Receiver<Instant>) -> Option<Event> {
        fn or_close<T>(
            r: Result<T, crossbeam_channel::RecvError>,
            rx: &mut Receiver<T>,
        ) -> Option<T> {
            match r {
                Ok(v) => Some(v),
                Err(_) => {
                    *rx = never();
                    None
                }
            }
        }
        select! {
            recv(deadline) -> _ => Some(Event::Deadline),
            recv(self.data_ticker) -> _ => Some(Event::DataTick),
            recv(self.saturation) -> ev => or_close(ev, &mut self.saturation).map(Event::Saturation),
            recv(self.cameras) -> ev => or_close(ev, &mut self.cameras).map(|_| Event::Cameras),
            recv(self.pulled) -> p => or_close(p, &mut self.pulled).map(Event::Pulled),
            recv(self.flushed) -> n => or_close(n, &mut self.flushed).map(Event::Flushed),
            recv(self.prep) -> ev => or_close(ev, &mut self.prep).map(Event::Prep),
            recv(self.worker_files) -> ev => or_close(ev, &mut self.worker_files)
                .map(|crate::watch::Changed(sig)| Event::WorkerFiles(sig)),
            recv(self.signals) -> sig => Some(match sig {
                Ok(s) => Event::Signal(s),
                Err(_) => Event::SignalsLost,
            }),
            recv(self.backend) -> ev => or_close(ev, &mut self.backend).map(Event::Backend),
            recv(self.link) -> ev => or_close(ev, &mut self.link).map(Event::Link),
            recv(self.runtime) -> ev => or_close(ev, &mut self.runtime).map(Event::Runtime),
            recv(self.tunnel) -> ev => or_close(ev, &mut self.tunnel).map(Event::Tunnel),
            recv(self.control) -> req => or_close(req, &mut self.control).map(Event::Control),
            recv(self.ticker) -> _ => Some(Event::Tick),
        }
    }
}
