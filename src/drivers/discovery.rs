//! Learning what a driver image declares before its twin is planned: an image may carry its
//! own service graph (reference §5.5), which is known only once the image is on this machine.
//! The fetch and the label read run on the runtime's prefetcher thread; this module decides
//! what to ask for and what the answers change. As in the original, an image whose tag can
//! move is pulled once per run before its labels are trusted; unlike it, a copy already here
//! is read first, so a restarted edge adopts its running drivers at once instead of waiting
//! for a registry. An image that cannot be fetched runs as one container, as in the original
//! (its launch pulls, retries and alerts); once a launch brought it, its labels are read.

use std::collections::{BTreeMap, BTreeSet};

use super::spec::{DriverSpec, ImageFacts, KnownImages};
use crate::containers::runtime::{Runtime, RuntimeEvent};

#[derive(Debug, Default)]
pub struct Discovery {
    /// Asked and not answered yet.
    pending: BTreeSet<String>,
    /// Pulled once this run (a moving tag's labels are then current).
    refreshed: BTreeSet<String>,
    /// The single-container spec that names each image (what a fetch needs).
    specs: BTreeMap<String, DriverSpec>,
    /// The twins planned from each image.
    users: BTreeMap<String, BTreeSet<String>>,
    /// Images that could not be fetched.
    unavailable: BTreeSet<String>,
    /// Images to pull again now that their local copy was read.
    to_refresh: BTreeSet<String>,
    /// Images to read again (a launch brought one that could not be fetched).
    to_read: BTreeSet<String>,
    /// Twins to plan again: what their image declares became known or changed.
    replan: BTreeSet<String>,
}

impl Discovery {
    /// Twin `twin` waits for `spec.image`'s labels: asked for unless already under way.
    pub fn want(&mut self, runtime: &mut Runtime, twin: &str, spec: &DriverSpec) {
        let image = spec.image.clone();
        self.users
            .entry(image.clone())
            .or_default()
            .insert(twin.to_string());
        self.specs.insert(image.clone(), spec.clone());
        if !self.unavailable.contains(&image) && self.pending.insert(image) {
            runtime.discover(spec, false);
        }
    }

    /// Twins to plan again, once.
    pub fn take_replans(&mut self) -> Vec<String> {
        std::mem::take(&mut self.replan).into_iter().collect()
    }

    /// Asks for what is due: moving tags read from their local copy are pulled, images a
    /// launch brought are read.
    pub fn send_due(&mut self, runtime: &mut Runtime) {
        let refresh = std::mem::take(&mut self.to_refresh)
            .into_iter()
            .map(|i| (i, true));
        let read = std::mem::take(&mut self.to_read)
            .into_iter()
            .map(|i| (i, false));
        for (image, pull) in refresh.chain(read) {
            if let Some(spec) = self.specs.get(&image)
                && self.pending.insert(image.clone())
            {
                runtime.discover(spec, pull);
            }
        }
    }

    /// A container came up: when it runs an image that could not be fetched, that image is on
    /// this machine now and what it declares is read.
    fn launched(&mut self, container: &str) {
        let brought = self
            .unavailable
            .iter()
            .find(|i| self.specs.get(*i).is_some_and(|s| s.name == container))
            .cloned();
        if let Some(image) = brought {
            self.unavailable.remove(&image);
            self.to_read.insert(image);
        }
    }

    /// Pulls these images again and reads them (a remote restart).
    pub fn refresh_all(&mut self, images: &[String]) {
        for i in images {
            self.refreshed.remove(i);
            self.to_refresh.insert(i.clone());
        }
    }

    /// Looks at `image` again (what was derived from it may be gone).
    pub fn read_again(&mut self, image: &str) {
        self.to_read.insert(image.to_string());
    }

    /// An answer: the labels (or why not) of `image`; returns the facts to keep.
    fn answered(
        &mut self,
        image: &str,
        refresh: bool,
        result: &Result<crate::containers::launch::ImageLook, String>,
        known: Option<&ImageFacts>,
    ) -> Option<ImageFacts> {
        self.pending.remove(image);
        let facts = match result {
            Ok(look) => {
                self.unavailable.remove(image);
                if refresh {
                    self.refreshed.insert(image.to_string());
                } else if crate::containers::image::is_mutable(image)
                    && !self.refreshed.contains(image)
                    // A plain driver image is kept current by its launches' pulls; a graph's
                    // declaring image is not launched itself.
                    && look.labels.contains_key(super::compose::SCHEMA_LABEL)
                {
                    self.to_refresh.insert(image.to_string());
                }
                ImageFacts::Known(look.clone())
            }
            // A refresh that failed keeps what the local copy said.
            Err(why) if matches!(known, Some(ImageFacts::Known(_))) => {
                log::warn!("{image}: {why}; its labels are read from the local copy");
                self.refreshed.insert(image.to_string());
                return None;
            }
            Err(why) => {
                log::warn!(
                    "{image} cannot be fetched to read what it declares ({why}); it is launched as one container and read once a launch brought it"
                );
                self.unavailable.insert(image.to_string());
                ImageFacts::Unavailable(why.clone())
            }
        };
        if known != Some(&facts) {
            self.replan
                .extend(self.users.get(image).into_iter().flatten().cloned());
        }
        Some(facts)
    }
}

impl Discovery {
    /// A runtime event about a driver image: what its look found (kept in `images`), a
    /// launch that brought an image that could not be fetched, a bundle volume gone.
    pub fn on_event(&mut self, ev: &RuntimeEvent, images: &mut KnownImages) {
        match ev {
            RuntimeEvent::Launched {
                spec_name,
                result: Ok(_),
            } => self.launched(spec_name),
            // A navigation bundle's volume went away: every bundle is looked at (and copied)
            // again before the launch's next try.
            RuntimeEvent::Launched { result: Err(f), .. }
                if f.phase == crate::containers::launch::graph::VOLUME_MISSING =>
            {
                for (image, facts) in &images.facts {
                    if let ImageFacts::Known(look) = facts
                        && look
                            .derived
                            .contains_key(super::compose::bundle::VOLUME_KEY)
                    {
                        self.read_again(image);
                    }
                }
            }
            RuntimeEvent::Discovered {
                image,
                refresh,
                result,
            } => {
                let known = images.facts.get(image).cloned();
                if let Some(f) = self.answered(image, *refresh, result, known.as_ref()) {
                    images.facts.insert(image.clone(), f);
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::containers::launch::ImageLook;

    fn look(graph: bool) -> Result<ImageLook, String> {
        let mut l = ImageLook::default();
        if graph {
            l.labels
                .insert(crate::drivers::compose::SCHEMA_LABEL.into(), "2".into());
        }
        Ok(l)
    }

    fn used_by(d: &mut Discovery, image: &str, twin: &str) {
        d.users.entry(image.into()).or_default().insert(twin.into());
        d.pending.insert(image.into());
    }

    #[test]
    fn answers_decide_refreshes_replans_and_what_is_kept() {
        let mut d = Discovery::default();
        used_by(&mut d, "r/plain:dev", "t1");
        used_by(&mut d, "r/graph:dev", "t2");
        used_by(&mut d, "r/graph:1.0", "t3");
        // Local copies read: only a graph's moving tag is pulled again.
        let plain = d.answered("r/plain:dev", false, &look(false), None);
        let graph = d.answered("r/graph:dev", false, &look(true), None);
        let pinned = d.answered("r/graph:1.0", false, &look(true), None);
        assert!(plain.is_some() && graph.is_some() && pinned.is_some());
        assert_eq!(d.to_refresh, BTreeSet::from(["r/graph:dev".to_string()]));
        assert_eq!(d.take_replans(), ["t1", "t2", "t3"]);
        // The refresh fails (offline): the local copy's labels stand, nothing re-planned.
        let known = graph.clone();
        let kept = d.answered("r/graph:dev", true, &Err("offline".into()), known.as_ref());
        assert!(kept.is_none() && d.take_replans().is_empty());
        // The same answer again changes nothing; an image that cannot be had runs as one
        // container and is read once a launch brought it.
        assert_eq!(
            d.answered("r/graph:dev", true, &look(true), known.as_ref()),
            known
        );
        assert!(d.take_replans().is_empty());
        let gone = d.answered("r/new:1", false, &Err("404".into()), None);
        assert_eq!(gone, Some(ImageFacts::Unavailable("404".into())));
        d.specs.insert("r/new:1".into(), {
            let mut s = crate::containers::spec::example(crate::containers::spec::Role::Driver);
            s.name = "cyberwave-driver-t4".into();
            s
        });
        d.launched("cyberwave-driver-t4");
        assert!(d.to_read.contains("r/new:1"));
    }
}
