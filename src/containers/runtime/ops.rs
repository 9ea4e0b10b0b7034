//! The runtime's direct operations for roles (a hot reload's restart, a stop, a remote
//! restart's recreate) and its periodic cleanup of only our stale containers and images.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use super::Runtime;
use crate::containers::cleanup::{save_images, stale_containers, stale_images};
use crate::containers::executor::Op;
use crate::containers::spec::Role;
use crate::engine::Container;

impl Runtime {
    /// Stops and starts a running container (a hot reload); its exit is not counted as a crash.
    pub fn restart(&mut self, name: &str, timeout: Duration) {
        self.info.entry(name.to_string()).or_default().expect_die = true;
        let _ = self.ops.send(Op::Restart {
            name: name.to_string(),
            timeout_s: timeout.as_secs().max(1),
        });
    }

    /// An operator asked for `name` to run now (`worker start|restart`): its restart-loop
    /// breaker, launch backoff and revival pacing are forgotten and the next plan launches or
    /// revives it at once (when it is desired).
    pub fn start_now(&mut self, name: &str) {
        let info = self.info.entry(name.to_string()).or_default();
        info.asked = true;
        info.stopped_for_loop = false;
        info.breaker = Default::default();
        info.launch_failures = 0;
        info.next_launch = None;
        info.last_revival = None;
        self.flap.clear(name);
        self.reconcile();
    }

    /// Stops a container no role wants running any more (it stays, stopped; cleanup removes
    /// it later).
    pub fn stop(&mut self, name: &str, timeout: Duration) {
        // Its follower stays until the stream ends with the container: what it says while it
        // stops (a driver parking its arm) still reaches its sink.
        self.info.entry(name.to_string()).or_default().expect_die = true;
        let _ = self.ops.send(Op::Stop {
            name: name.to_string(),
            timeout_s: timeout.as_secs().max(1),
        });
    }

    /// Removes a container no role wants any more: stopped gracefully (its stop timeout),
    /// then removed, on the executor thread; `OpDone { what: "remove" }` says when. What the
    /// runtime remembered of it is forgotten, so a later spec of the same name starts afresh.
    pub fn remove(&mut self, name: &str) {
        self.desired.remove(name);
        self.info.remove(name);
        self.displaced.remove(name);
        self.recreate_waiting.remove(name);
        if self.updates.remove(name).is_some() {
            crate::containers::updates::save(&self.config_dir, &self.updates);
        }
        self.followers.stop(name);
        let _ = self.ops.send(Op::Remove {
            name: name.to_string(),
        });
    }

    /// Removes every desired container of `role` and creates it again from its spec (new
    /// container ids; a remote restart). Nothing else of the host is touched.
    pub fn recreate(&mut self, role: Role) {
        let names: Vec<String> = self
            .desired
            .iter()
            .filter(|(_, (s, _))| s.role == role)
            .map(|(n, _)| n.clone())
            .collect();
        self.recreate_names(&names);
    }

    /// [`Runtime::recreate`] for the named desired containers only. A container with a
    /// restart floor is stopped and kept instead (the original's rule): it starts again once
    /// its floor has passed.
    pub fn recreate_names(&mut self, names: &[String]) {
        let names: Vec<String> = names
            .iter()
            .filter(|n| self.desired.contains_key(*n))
            .cloned()
            .collect();
        self.forget_failures(&names);
        let names = self.hold_locked_recreates(names);
        for name in names {
            if let Some((spec, _)) = self.desired.get(&name)
                && spec.floor.is_some()
            {
                let timeout = Duration::from_secs(spec.stop_timeout_s());
                self.stop(&name, timeout);
                continue;
            }
            if !self.inflight.insert(name.clone()) {
                continue; // a launch is under way: it makes a fresh container anyway
            }
            self.recreating.insert(name.clone());
            if let Some(i) = self.info.get_mut(&name) {
                i.expect_die = true;
            }
            let _ = self.ops.send(Op::Remove { name });
        }
    }

    /// Fetches `spec`'s image off the supervisor thread and reads its labels
    /// ([`RuntimeEvent::Discovered`]); `refresh`: pull even when a copy is present.
    pub fn discover(&mut self, spec: &crate::containers::spec::ContainerSpec, refresh: bool) {
        let _ = self.prefetches.send(super::threads::Fetch::Discover {
            spec: spec.clone(),
            refresh,
        });
    }

    /// Removes the graph containers of the owners in `gone` (gracefully, each with its stop
    /// timeout), then the networks and volumes this edge created for them. False when the
    /// engine was not listed yet (ask again later).
    pub fn remove_graphs_of(&mut self, role: Role, gone: &BTreeSet<String>) -> bool {
        if self.observed.is_none() {
            return false;
        }
        use crate::containers::{LABEL_GRAPH_OWNER, LABEL_OWNER, LABEL_SERVICE};
        let names: Vec<String> = self
            .observed
            .iter()
            .flat_map(|o| o.values())
            .filter(|c| c.labels.get(LABEL_OWNER) == Some(&self.owner))
            .filter(|c| c.labels.contains_key(LABEL_SERVICE))
            .filter(|c| {
                c.labels
                    .get(LABEL_GRAPH_OWNER)
                    .is_some_and(|o| gone.contains(o))
            })
            .filter(|c| {
                self.desired
                    .get(&c.name)
                    .is_none_or(|(s, _)| s.role == role)
            })
            .map(|c| c.name.clone())
            .collect();
        for name in names {
            log::info!("{name}: its graph's owner is no longer here; removing it");
            self.remove(&name);
        }
        let _ = self.ops.send(Op::PruneGraphs {
            owner: self.owner.clone(),
            of: gone.clone(),
        });
        true
    }

    /// Containers still being removed for a recreate.
    pub fn recreating(&self) -> usize {
        self.recreating.len() + self.recreate_waiting.len()
    }

    /// The images cleanup never removes: those of desired containers and those a rollback
    /// may need.
    fn kept_images(&self) -> BTreeSet<String> {
        self.desired
            .values()
            .map(|(s, _)| s.image.clone())
            .chain(self.last_good_images())
            .collect()
    }

    /// What a launcher may remove to keep the disk reserve: images we pulled that no desired
    /// or running container uses and no rollback needs.
    pub(super) fn refresh_removable(&mut self) {
        let running = self
            .observed
            .iter()
            .flat_map(|o| o.values())
            .flat_map(|c| [c.image.clone(), c.image_id.clone()]);
        let mut wanted = self.kept_images();
        wanted.extend(running);
        let list = stale_images(&self.ran_images, &wanted);
        if let Ok(mut r) = self.reserve.removable.lock() {
            *r = list;
        }
    }

    pub(super) fn maybe_cleanup(&mut self) {
        let (Some(c), Some(observed)) = (self.tuning.cleanup.clone(), &self.observed) else {
            return;
        };
        let now = Instant::now();
        let mut containers = Vec::new();
        let mut images = Vec::new();
        let mut volumes_of = None;
        if now.duration_since(self.last_volume_prune) >= c.volume_interval {
            self.last_volume_prune = now;
            let used = self
                .desired
                .values()
                .flat_map(|(s, _)| &s.links.resources)
                .filter(|r| r.kind == crate::engine::ResourceKind::Volume)
                .map(|r| r.name.clone())
                .collect();
            volumes_of = Some((self.owner.clone(), used));
        }
        if now.duration_since(self.last_container_prune) >= c.container_interval {
            self.last_container_prune = now;
            let list: Vec<Container> = observed.values().cloned().collect();
            let desired: BTreeSet<String> = self.desired.keys().cloned().collect();
            containers = stale_containers(&list, &desired, &self.owner);
        }
        if now.duration_since(self.last_image_prune) >= c.image_interval {
            self.last_image_prune = now;
            images = stale_images(&self.ran_images, &self.kept_images());
            for i in &images {
                self.ran_images.remove(i);
            }
            save_images(&self.config_dir, &self.ran_images);
        }
        if !containers.is_empty() || !images.is_empty() || volumes_of.is_some() {
            let _ = self.ops.send(Op::Cleanup {
                containers,
                images,
                volumes_of,
                sd_card_threshold: c.sd_card_threshold,
            });
        }
    }
}
