//! The runtime's helper threads: engine operations, launches, prefetches and the events
//! stream. Each reports to the supervisor through the runtime's event channel.

use std::path::Path;
use std::sync::{Arc, Mutex};

use crossbeam_channel::{Sender, unbounded};

use super::{RoleHooks, RuntimeEvent, Tuning, spawn_named};
use crate::containers::executor::{Op, follow_events, run_ops};
use crate::containers::launch::{LaunchJob, Launcher};
use crate::containers::reserve::DiskReserve;
use crate::containers::spec::ContainerSpec;
use crate::engine::{Engine, StreamHandle};

/// The senders to the helper threads, and the events stream's handle.
pub(super) struct Helpers {
    pub ops: Sender<Op>,
    pub launches: Sender<Vec<LaunchJob>>,
    /// Images to fetch for an update that waits (an update lock is held).
    pub prefetches: Sender<Fetch>,
    pub events_child: Arc<Mutex<Option<StreamHandle>>>,
}

pub(super) fn spawn(
    engine: &Arc<dyn Engine>,
    config_dir: &Path,
    tuning: &Tuning,
    hooks: &RoleHooks,
    reserve: &Arc<DiskReserve>,
    events: Sender<RuntimeEvent>,
) -> Helpers {
    let (ops, ops_rx) = unbounded::<Op>();
    let (launches, launch_rx) = unbounded::<Vec<LaunchJob>>();
    let (prefetches, prefetch_rx) = unbounded::<Fetch>();
    {
        let (events, engine) = (events.clone(), engine.clone());
        spawn_named("docker-ops", move || {
            let emit = |ev| events.send(RuntimeEvent::Exec(ev)).is_ok();
            run_ops(engine.as_ref(), &ops_rx, &emit)
        });
    }
    let launcher = || Launcher {
        engine: engine.clone(),
        config_dir: config_dir.to_path_buf(),
        probe: tuning.probe,
        hooks: Arc::new(hooks.clone()),
        reserve: Some(reserve.clone()),
    };
    {
        let (launcher, events) = (launcher(), events.clone());
        spawn_named("launcher", move || {
            for batch in launch_rx {
                launcher.launch_batch(batch, |spec, result| {
                    let _ = events.send(RuntimeEvent::Launched {
                        spec_name: spec.name.clone(),
                        result,
                    });
                });
            }
        });
    }
    {
        // Apart from the launcher: a long download for a deferred update must not hold a
        // crashed container's relaunch.
        let (launcher, events) = (launcher(), events.clone());
        spawn_named("prefetcher", move || {
            for fetch in prefetch_rx {
                let ev = match fetch {
                    Fetch::Update(spec) => RuntimeEvent::Prefetched {
                        spec_name: spec.name.clone(),
                        spec_hash: spec.spec_hash.clone(),
                        result: launcher.prefetch(&spec),
                    },
                    Fetch::Discover { spec, refresh } => RuntimeEvent::Discovered {
                        image: spec.image.clone(),
                        refresh,
                        result: discover(&launcher, &spec, refresh),
                    },
                };
                let _ = events.send(ev);
            }
        });
    }
    let events_child = Arc::new(Mutex::new(None));
    {
        let (engine, slot) = (engine.clone(), events_child.clone());
        spawn_named("docker-events", move || {
            let emit = |ev| events.send(RuntimeEvent::Exec(ev)).is_ok();
            follow_events(engine.as_ref(), &emit, &slot)
        });
    }
    Helpers {
        ops,
        launches,
        prefetches,
        events_child,
    }
}

/// What the prefetcher thread is asked for.
pub enum Fetch {
    /// An update's image, ahead of its switch.
    Update(ContainerSpec),
    /// The labels of `spec`'s image (a driver image may declare a service graph): read from
    /// the local copy when there is one and `refresh` is off, else after a pull (a failed pull
    /// with a local copy reads that copy).
    Discover { spec: ContainerSpec, refresh: bool },
}

fn discover(
    launcher: &Launcher,
    spec: &ContainerSpec,
    refresh: bool,
) -> Result<crate::containers::launch::ImageLook, String> {
    let local = launcher.engine.image_exists(&spec.image).unwrap_or(false);
    let image = if local && !refresh {
        spec.image.clone()
    } else {
        launcher.prefetch(spec).map_err(|f| f.to_string())?
    };
    let config = launcher.engine.image_config(&image);
    Ok(crate::containers::launch::ImageLook {
        derived: launcher.hooks.derive(spec, &config),
        labels: config.labels,
    })
}
