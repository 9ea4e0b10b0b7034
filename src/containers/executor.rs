//! The runtime's executor threads: one runs engine operations (observe, stop, revive, cleanup)
//! so the supervisor never waits on the engine; one keeps the events stream of every managed
//! container alive. Both report through `emit`, which returns false when nobody listens.

use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;

use super::LABEL_GRAPH_OWNER;
use crate::engine::{
    Container, ContainerEvent, Engine, EngineError, EventStream, ResourceKind, StreamHandle,
};

/// What the executor threads report.
#[derive(Debug)]
pub enum ExecEvent {
    Runtimes {
        /// NVIDIA is the engine's default runtime.
        nvidia_default: bool,
        /// The engine knows an `nvidia` runtime (default or not).
        nvidia: bool,
        /// The engine's name and version, as it says (`status`, host facts).
        engine: (String, Option<String>),
    },
    Ps(Result<Vec<Container>, EngineError>),
    Container(ContainerEvent),
    /// The engine's event stream opened (`true`; events may have been missed before it) or
    /// ended (`false`: until it is back, only the tick's observation sees changes).
    EventStream(bool),
    OpDone {
        name: String,
        what: &'static str,
        result: Result<(), EngineError>,
    },
    /// A restart loop was stopped; `restart_count` is Docker's own, read before the stop.
    LoopStopped {
        name: String,
        restart_count: Option<u64>,
        result: Result<(), EngineError>,
    },
}

/// Work for the executor thread.
pub enum Op {
    Runtimes,
    /// Remove stale containers and images, unless the data root is on an SD card with room.
    Cleanup {
        containers: Vec<String>,
        images: Vec<String>,
        /// Remove the unused volumes carrying this owner label (§5.14's volume prune, ours
        /// only), except the ones desired containers use (a graph's, a navigation bundle's:
        /// unused only while their containers are recreated).
        volumes_of: Option<(String, std::collections::BTreeSet<String>)>,
        sd_card_threshold: f64,
    },
    Observe,
    /// Restart loop: `docker update --restart=no` then stop.
    StopLooping {
        name: String,
    },
    /// `docker stop -t <timeout>` then `docker start` (a hot reload).
    Restart {
        name: String,
        timeout_s: u64,
    },
    /// Graceful stop then `docker rm -f -v` ([`super::retire`]): recreated from its spec
    /// afterwards (a remote restart).
    Remove {
        name: String,
    },
    /// `docker stop -t <timeout>`: the role no longer wants it running.
    Stop {
        name: String,
        timeout_s: u64,
    },
    /// `docker update --restart=<policy>` (when needed) then `docker start`.
    Revive {
        name: String,
        policy: String,
    },
    /// Removes the networks and volumes this edge created for the graphs of the owners in
    /// `of` (twins no longer linked here).
    PruneGraphs {
        owner: String,
        of: std::collections::BTreeSet<String>,
    },
}

/// The executor of ops (observe, stop, revive, cleanup): one thread, so the supervisor never
/// waits on the engine.
pub fn run_ops(engine: &dyn Engine, rx: &Receiver<Op>, emit: &dyn Fn(ExecEvent) -> bool) {
    for op in rx {
        let ev = match op {
            Op::Runtimes => {
                let runtimes = engine.runtimes().unwrap_or_default();
                ExecEvent::Runtimes {
                    nvidia_default: runtimes.nvidia_default(),
                    nvidia: runtimes.nvidia(),
                    engine: (engine.name().to_string(), engine.version()),
                }
            }
            Op::Observe => ExecEvent::Ps(engine.ps()),
            Op::Cleanup {
                containers,
                images,
                volumes_of,
                sd_card_threshold,
            } => match cleanup(engine, &containers, &images, volumes_of, sd_card_threshold) {
                Some(ev) => ev,
                None => continue,
            },
            Op::StopLooping { name } => stop_loop(engine, name),
            Op::Restart { name, timeout_s } => {
                let result = engine
                    .stop(&name, timeout_s)
                    .and_then(|_| engine.start(&name));
                ExecEvent::OpDone {
                    result,
                    name,
                    what: "restart",
                }
            }
            Op::Remove { name } => ExecEvent::OpDone {
                result: super::retire::retire(engine, &name).map(|_| ()),
                name,
                what: "remove",
            },
            Op::PruneGraphs { owner, of } => {
                prune_graphs(engine, &owner, &of);
                continue;
            }
            Op::Stop { name, timeout_s } => ExecEvent::OpDone {
                result: engine.stop(&name, timeout_s),
                name,
                what: "stop",
            },
            Op::Revive { name, policy } => {
                let _ = engine.set_restart_policy(&name, &policy);
                ExecEvent::OpDone {
                    result: engine.start(&name),
                    name,
                    what: "start",
                }
            }
        };
        if !emit(ev) {
            return;
        }
    }
}

/// Removes stale containers (gracefully), images and our unused volumes, unless the data root
/// is on an SD card with room (then `None`: deferred, nothing to report).
fn cleanup(
    engine: &dyn Engine,
    containers: &[String],
    images: &[String],
    volumes_of: Option<(String, std::collections::BTreeSet<String>)>,
    sd_card_threshold: f64,
) -> Option<ExecEvent> {
    let root = engine.data_root();
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    let device = super::cleanup::device_of(&mounts, &root);
    let used = crate::fsutil::disk_percent(&root);
    if super::cleanup::deferred_on_sd_card(device.as_deref(), used, sd_card_threshold) {
        log::info!(
            "cleanup deferred: the engine's data root {} is on an SD card ({:?}% used)",
            root.display(),
            used
        );
        return None;
    }
    let mut result = Ok(());
    for c in containers {
        log::info!("cleanup: removing stopped container {c} (no twin wants it)");
        if let Err(e) = super::retire::retire(engine, c) {
            result = Err(e);
        }
    }
    for i in images {
        // Refused by Docker while any container uses it: that is the point.
        match engine.remove_image(i) {
            Ok(_) => log::info!("cleanup: removed image {i} (no driver uses it)"),
            Err(e) => log::debug!("cleanup: image {i} kept: {e}"),
        }
    }
    if let Some((owner, keep)) = volumes_of {
        prune_volumes(engine, &owner, &keep);
    }
    Some(ExecEvent::OpDone {
        name: "cleanup".into(),
        what: "cleanup",
        result,
    })
}

/// A restart loop: no restart policy any more, then a stop with the container's own grace
/// period (the original's 30 s was the CLI's deadline, not the container's). Docker's restart
/// count is read before the stop.
fn stop_loop(engine: &dyn Engine, name: String) -> ExecEvent {
    let info = engine.inspect(&name).ok().flatten();
    let restart_count = info.as_ref().map(|i| i.restart_count);
    let timeout_s = info
        .as_ref()
        .map(super::retire::grace_period)
        .unwrap_or(super::retire::DEFAULT_STOP_TIMEOUT_S);
    let _ = engine.set_restart_policy(&name, "no");
    ExecEvent::LoopStopped {
        result: engine.stop(&name, timeout_s),
        name,
        restart_count,
    }
}

/// Removes the volumes no container uses that this edge made (its owner label); never a
/// volume of anyone else (the original's `docker volume prune` took every unused volume).
fn prune_volumes(engine: &dyn Engine, owner: &str, keep: &std::collections::BTreeSet<String>) {
    // A graph's volume (a robot's map) lives as long as its twin is linked here, in use or not.
    let of_graphs: Vec<String> = graph_resources(engine, ResourceKind::Volume, owner)
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    match engine.unused_volumes(owner) {
        Ok(list) => {
            for v in list
                .into_iter()
                .filter(|v| !of_graphs.contains(v) && !keep.contains(v))
            {
                match engine.remove_volume(&v) {
                    Ok(()) => log::info!("cleanup: removed unused volume {v}"),
                    Err(e) => log::debug!("cleanup: volume {v} kept: {e}"),
                }
            }
        }
        Err(e) => log::debug!("cleanup: volumes not listed: {e}"),
    }
}

/// This edge's networks or volumes created for a graph: (name, its graph's owner).
fn graph_resources(engine: &dyn Engine, kind: ResourceKind, owner: &str) -> Vec<(String, String)> {
    match engine.owned_resources(kind, owner, LABEL_GRAPH_OWNER) {
        Ok(list) => list.into_iter().filter(|(_, o)| !o.is_empty()).collect(),
        Err(e) => {
            log::debug!("cleanup: {}s not listed: {e}", kind.as_str());
            Vec::new()
        }
    }
}

/// Removes what the graphs of the owners in `gone` created (their containers are removed
/// first, on this same thread).
fn prune_graphs(engine: &dyn Engine, owner: &str, gone: &std::collections::BTreeSet<String>) {
    for kind in [ResourceKind::Network, ResourceKind::Volume] {
        for (name, of) in graph_resources(engine, kind, owner) {
            if !gone.contains(&of) {
                continue;
            }
            match engine.remove_resource(kind, &name) {
                Ok(()) => log::info!("removed {} {name} of {of} (no longer here)", kind.as_str()),
                Err(e) => log::warn!("{} {name} of {of} kept: {e}", kind.as_str()),
            }
        }
    }
}

/// Keeps one event stream alive (the engine's own: Docker's Engine API socket, else its
/// CLI), restarted with backoff when the engine restarts. The open stream's handle sits in
/// `slot`, so shutdown can end it.
pub fn follow_events(
    engine: &dyn Engine,
    emit: &dyn Fn(ExecEvent) -> bool,
    slot: &Arc<Mutex<Option<StreamHandle>>>,
) {
    let mut backoff = crate::backoff::Backoff::new(Duration::from_secs(1), Duration::from_secs(30));
    loop {
        let started = Instant::now();
        match engine.events() {
            Ok(EventStream {
                mut lines,
                handle,
                parse,
            }) => {
                if let Ok(mut s) = slot.lock() {
                    *s = Some(handle);
                }
                if !emit(ExecEvent::EventStream(true)) {
                    return;
                }
                while let Ok(Some(line)) = lines.next_line() {
                    if let Some(ev) = parse(&line)
                        && !emit(ExecEvent::Container(ev))
                    {
                        return;
                    }
                }
                // Dropping a process handle kills and reaps it (unless shutdown already did).
                drop(slot.lock().ok().and_then(|mut s| s.take()));
                if !emit(ExecEvent::EventStream(false)) {
                    return;
                }
            }
            Err(e) => log::warn!("cannot follow {} events: {e}", engine.name()),
        }
        if started.elapsed() > Duration::from_secs(60) {
            backoff.reset();
        }
        thread::sleep(backoff.next_delay());
    }
}

#[cfg(test)]
mod tests;
