//! Learning what a driver image declares before its twin is planned: an image may carry its
//! own service graph (reference §5.5), which is known only once the image is on this machine.
//! The fetch and the label read run on the runtime's prefetcher thread; this module decides
//! what to ask for and what the answers change. As in the original, an image whose tag can
//! move is pulled once per run before its labels are trusted; unlike it, a copy already here
//! is read first, so a restarted edge adopts its running drivers at once instead of waiting
//! for a registry.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use super::runtime::Drivers;
use super::spec::{DriverSpec, ImageFacts};
use crate::containers::runtime::{Runtime, RuntimeEvent};

/// First wait before an image that could not be fetched is tried again (doubling to 5 min).
const RETRY_FIRST: Duration = Duration::from_secs(15);
const RETRY_CAP: Duration = Duration::from_secs(300);

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
    /// Images that could not be fetched: when next, after how many failures.
    retry: BTreeMap<String, (Instant, u32)>,
    /// Images to pull again now that their local copy was read.
    to_refresh: BTreeSet<String>,
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
        if !self.retry.contains_key(&image) && self.pending.insert(image) {
            runtime.discover(spec, false);
        }
    }

    /// Twins to plan again, once.
    pub fn take_replans(&mut self) -> Vec<String> {
        std::mem::take(&mut self.replan).into_iter().collect()
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        self.retry.values().map(|(t, _)| *t).min()
    }

    /// Fetches again what is due: failed images, moving tags read from their local copy.
    pub fn send_due(&mut self, runtime: &mut Runtime) {
        let now = Instant::now();
        let due: Vec<String> = self
            .retry
            .iter()
            .filter(|(i, (t, _))| *t <= now && !self.pending.contains(*i))
            .map(|(i, _)| i.clone())
            .collect();
        for image in due.into_iter().chain(std::mem::take(&mut self.to_refresh)) {
            if let Some(spec) = self.specs.get(&image)
                && self.pending.insert(image.clone())
            {
                runtime.discover(spec, true);
            }
        }
    }

    /// An answer: the labels (or why not) of `image`; returns the facts to keep.
    fn answered(
        &mut self,
        image: &str,
        refresh: bool,
        result: &Result<BTreeMap<String, String>, String>,
        known: Option<&ImageFacts>,
    ) -> Option<ImageFacts> {
        self.pending.remove(image);
        let facts = match result {
            Ok(labels) => {
                self.retry.remove(image);
                if refresh {
                    self.refreshed.insert(image.to_string());
                } else if crate::containers::image::is_mutable(image)
                    && !self.refreshed.contains(image)
                {
                    self.to_refresh.insert(image.to_string());
                }
                ImageFacts::Labels(labels.clone())
            }
            // A refresh that failed keeps what the local copy said.
            Err(why) if matches!(known, Some(ImageFacts::Labels(_))) => {
                log::warn!("{image}: {why}; its labels are read from the local copy");
                self.refreshed.insert(image.to_string());
                return None;
            }
            Err(why) => {
                let failures = self.retry.get(image).map_or(0, |(_, n)| *n) + 1;
                let wait = (RETRY_FIRST * 2u32.saturating_pow(failures - 1)).min(RETRY_CAP);
                log::warn!(
                    "{image} cannot be fetched to read what it declares ({why}); trying again in {} s",
                    wait.as_secs()
                );
                self.retry
                    .insert(image.to_string(), (Instant::now() + wait, failures));
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

impl Drivers {
    /// A runtime event about a driver image's labels.
    pub(super) fn on_discovered(&mut self, ev: &RuntimeEvent) {
        if let RuntimeEvent::Discovered {
            image,
            refresh,
            result,
        } = ev
        {
            let known = self.ctx.images.facts.get(image).cloned();
            if let Some(f) = self
                .discovery
                .answered(image, *refresh, result, known.as_ref())
            {
                self.ctx.images.facts.insert(image.clone(), f);
            }
        }
    }
}
