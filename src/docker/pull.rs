//! `docker pull` progress: layer states from the CLI's lines, so the edge can report
//! "3/7 layers" in `driverlog` and the log (reference §5.6).

use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LayerState {
    Pending,
    Waiting,
    Downloading,
    Verifying,
    Downloaded,
    Extracting,
    Complete,
}

/// Tracks the layers of one pull.
#[derive(Debug, Clone, Default)]
pub struct PullProgress {
    layers: BTreeMap<String, LayerState>,
    pub finished: bool,
}

impl PullProgress {
    /// Feeds one CLI line; returns true when the visible summary changed.
    pub fn feed(&mut self, line: &str) -> bool {
        let before = self.summary_counts();
        let line = line.trim();
        if line.starts_with("Status:") || line.starts_with("Digest:") {
            self.finished = true;
            for s in self.layers.values_mut() {
                *s = LayerState::Complete;
            }
        } else if let Some((id, rest)) = line.split_once(':') {
            let id = id.trim();
            let valid_id = !id.is_empty()
                && !id.contains(char::is_whitespace)
                && id.chars().all(|c| c.is_ascii_hexdigit());
            if valid_id {
                let r = rest.trim().to_lowercase();
                let state = if r.starts_with("pull complete") || r.starts_with("already exists") {
                    Some(LayerState::Complete)
                } else if r.starts_with("download complete") {
                    Some(LayerState::Downloaded)
                } else if r.starts_with("extracting") {
                    Some(LayerState::Extracting)
                } else if r.starts_with("verifying checksum") {
                    Some(LayerState::Verifying)
                } else if r.starts_with("downloading") {
                    Some(LayerState::Downloading)
                } else if r.starts_with("waiting") {
                    Some(LayerState::Waiting)
                } else if r.starts_with("pulling fs layer") {
                    Some(LayerState::Pending)
                } else {
                    None
                };
                if let Some(st) = state {
                    let e = self.layers.entry(id.to_string()).or_insert(st);
                    // phases only move forward
                    if st > *e {
                        *e = st;
                    }
                }
            }
        }
        before != self.summary_counts()
    }

    /// (layers fetched, layers complete, total).
    pub fn summary_counts(&self) -> (usize, usize, usize) {
        let fetched = self
            .layers
            .values()
            .filter(|s| **s >= LayerState::Downloaded)
            .count();
        let complete = self
            .layers
            .values()
            .filter(|s| **s == LayerState::Complete)
            .count();
        (fetched, complete, self.layers.len())
    }

    /// `X pull complete`, `X installing (a/b layers)`, `X pulling (a/b layers)`, `X starting`.
    pub fn summary(&self, image: &str) -> String {
        let (fetched, complete, total) = self.summary_counts();
        if self.finished {
            format!("{image} pull complete")
        } else if total == 0 {
            format!("{image} starting")
        } else if fetched == total {
            format!("{image} installing ({complete}/{total} layers)")
        } else {
            format!("{image} pulling ({fetched}/{total} layers)")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_layers_forward_only() {
        let mut p = PullProgress::default();
        assert!(!p.feed("dev: Pulling from cyberwaveos/cam"));
        assert!(p.feed("a1b2c3: Pulling fs layer"));
        assert!(p.feed("d4e5f6: Pulling fs layer"));
        assert_eq!(p.summary("cam"), "cam pulling (0/2 layers)");
        p.feed("a1b2c3: Downloading [=====>     ]  5.2MB/10.4MB");
        assert!(p.feed("a1b2c3: Download complete"));
        assert_eq!(p.summary("cam"), "cam pulling (1/2 layers)");
        p.feed("d4e5f6: Already exists");
        assert_eq!(p.summary("cam"), "cam installing (1/2 layers)");
        p.feed("a1b2c3: Extracting 1MB/10MB");
        p.feed("a1b2c3: Downloading 1MB/10MB"); // out of order: ignored
        p.feed("a1b2c3: Pull complete");
        assert_eq!(p.summary_counts(), (2, 2, 2));
        assert!(p.feed("Digest: sha256:abc") || p.finished);
        p.feed("Status: Downloaded newer image for cyberwaveos/cam:dev");
        assert_eq!(p.summary("cam"), "cam pull complete");
    }
}
