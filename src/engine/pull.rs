//! `docker pull` progress: layer states and byte bars from the CLI's lines, so the edge can
//! report "3/7 layers", "745 MB of 1.55 GB (43%)" in `driverlog`, the log and the
//! `driver_starting` card's metadata (reference §5.6).

use std::collections::BTreeMap;

use serde_json::{Value, json};

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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Layer {
    state: LayerState,
    /// Bytes downloaded and the layer's size, from the last `Downloading` bar.
    bytes: Option<(u64, u64)>,
}

/// The pull's phase; only moves forward.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum PullPhase {
    Started,
    Downloading,
    Installing,
    Complete,
}

impl PullPhase {
    pub fn as_str(self) -> &'static str {
        match self {
            PullPhase::Started => "pull_started",
            PullPhase::Downloading => "downloading",
            PullPhase::Installing => "installing",
            PullPhase::Complete => "pull_complete",
        }
    }
}

/// Longest pull line kept for the card (the original's cap).
const LAST_LINE_MAX: usize = 500;
/// Layers tracked per pull; more ids than any image has are ignored (hostile output).
const MAX_LAYERS: usize = 512;

/// Tracks the layers of one pull.
#[derive(Debug, Clone)]
pub struct PullProgress {
    layers: BTreeMap<String, Layer>,
    phase: PullPhase,
    last_line: String,
    pub finished: bool,
}

impl Default for PullProgress {
    fn default() -> Self {
        PullProgress {
            layers: BTreeMap::new(),
            phase: PullPhase::Started,
            last_line: String::new(),
            finished: false,
        }
    }
}

fn layer_state(r: &str) -> Option<LayerState> {
    let r = r.to_lowercase();
    Some(
        if r.starts_with("pull complete") || r.starts_with("already exists") {
            LayerState::Complete
        } else if r.starts_with("download complete") {
            LayerState::Downloaded
        } else if r.starts_with("extracting") {
            LayerState::Extracting
        } else if r.starts_with("verifying checksum") {
            LayerState::Verifying
        } else if r.starts_with("downloading") {
            LayerState::Downloading
        } else if r.starts_with("waiting") {
            LayerState::Waiting
        } else if r.starts_with("pulling fs layer") {
            LayerState::Pending
        } else {
            return None;
        },
    )
}

/// SI multiplier of a byte unit (`kB`/`KB` = 1e3 … `TB` = 1e12).
fn unit(u: &str) -> Option<f64> {
    Some(match u {
        "B" => 1.0,
        "kB" | "KB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        "TB" => 1e12,
        _ => return None,
    })
}

/// `<number><unit>` at the end of `s` (spaces allowed between).
fn amount_at_end(s: &str) -> Option<f64> {
    let s = s.trim_end();
    let u_start = s.rfind(|c: char| !c.is_ascii_alphabetic())? + 1;
    let mult = unit(&s[u_start..])?;
    let num = s[..u_start].trim_end();
    let n_start = num
        .rfind(|c: char| !(c.is_ascii_digit() || c == '.'))
        .map_or(0, |i| i + 1);
    Some(num[n_start..].parse::<f64>().ok()? * mult)
}

/// `<number><unit>` at the start of `s`.
fn amount_at_start(s: &str) -> Option<f64> {
    let s = s.trim_start();
    let n_end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let n = s[..n_end].parse::<f64>().ok()?;
    let rest = s[n_end..].trim_start();
    let u_end = rest
        .find(|c: char| !c.is_ascii_alphabetic())
        .unwrap_or(rest.len());
    Some(n * unit(&rest[..u_end])?)
}

/// The byte bar of a progress line: `5.2MB/10.4MB` → (5_200_000, 10_400_000).
pub fn byte_bar(text: &str) -> Option<(u64, u64)> {
    for (i, _) in text.match_indices('/') {
        if let (Some(cur), Some(tot)) = (amount_at_end(&text[..i]), amount_at_start(&text[i + 1..]))
            && cur.is_finite()
            && tot.is_finite()
        {
            // `as` saturates: a hostile 1e400 cannot wrap.
            return Some((cur as u64, tot as u64));
        }
    }
    None
}

/// `<n> B`, else kB/MB/GB/TB with 0/1/2 decimals for ≥100/≥10/<10 (the original's format).
pub fn human_bytes(n: u64) -> String {
    if n < 1000 {
        return format!("{n} B");
    }
    let mut v = n as f64;
    let mut u = "B";
    for next in ["kB", "MB", "GB", "TB"] {
        if v < 1000.0 {
            break;
        }
        v /= 1000.0;
        u = next;
    }
    if v >= 100.0 {
        format!("{v:.0} {u}")
    } else if v >= 10.0 {
        format!("{v:.1} {u}")
    } else {
        format!("{v:.2} {u}")
    }
}

impl PullProgress {
    /// Feeds one CLI line; returns true when the coarse picture (phase, layer counts) changed.
    pub fn feed(&mut self, line: &str) -> bool {
        let before = (self.phase, self.summary_counts());
        let line = line.trim();
        if !line.is_empty() {
            self.last_line = line.chars().take(LAST_LINE_MAX).collect();
        }
        if line.starts_with("Status:") || line.starts_with("Digest:") {
            self.finished = true;
            for l in self.layers.values_mut() {
                l.state = LayerState::Complete;
            }
        } else if let Some((id, rest)) = line.split_once(':') {
            let id = id.trim();
            let valid_id =
                !id.is_empty() && id.len() <= 128 && id.chars().all(|c| c.is_ascii_hexdigit());
            if let (true, Some(st)) = (valid_id, layer_state(rest.trim())) {
                let room = self.layers.len() < MAX_LAYERS;
                if let Some(l) = self.layers.get_mut(id) {
                    // states only move forward
                    if st > l.state {
                        l.state = st;
                    }
                } else if room {
                    self.layers.insert(
                        id.to_string(),
                        Layer {
                            state: st,
                            bytes: None,
                        },
                    );
                }
                if st == LayerState::Downloading
                    && let (Some(l), Some((cur, tot))) = (self.layers.get_mut(id), byte_bar(rest))
                    && l.state == LayerState::Downloading
                    && tot > 0
                {
                    l.bytes = Some((cur.min(tot), tot));
                }
            }
        }
        let (fetched, _, total) = self.summary_counts();
        let phase = if self.finished {
            PullPhase::Complete
        } else if total > 0 && fetched == total {
            PullPhase::Installing
        } else if self.layers.values().any(|l| {
            l.bytes.is_some()
                || (LayerState::Downloading..=LayerState::Extracting).contains(&l.state)
        }) {
            PullPhase::Downloading
        } else {
            PullPhase::Started
        };
        self.phase = self.phase.max(phase);
        before != (self.phase, self.summary_counts())
    }

    pub fn phase(&self) -> PullPhase {
        self.phase
    }

    /// (layers fetched, layers complete, total).
    pub fn summary_counts(&self) -> (usize, usize, usize) {
        let fetched = self
            .layers
            .values()
            .filter(|l| l.state >= LayerState::Downloaded)
            .count();
        let complete = self
            .layers
            .values()
            .filter(|l| l.state == LayerState::Complete)
            .count();
        (fetched, complete, self.layers.len())
    }

    /// Layers fetched, an in-flight layer counting as its byte fraction.
    fn fetched_fraction(&self) -> f64 {
        self.layers
            .values()
            .map(|l| match (l.state, l.bytes) {
                (s, _) if s >= LayerState::Downloaded => 1.0,
                (_, Some((cur, tot))) if tot > 0 => cur as f64 / tot as f64,
                _ => 0.0,
            })
            .sum()
    }

    /// Percent of the pull: 100 × layers fetched / layers, below 100 until the pull ends.
    pub fn percent(&self) -> f64 {
        if self.finished {
            return 100.0;
        }
        let total = self.layers.len();
        if total == 0 {
            return 0.0;
        }
        (100.0 * self.fetched_fraction() / total as f64).min(99.0)
    }

    /// (downloaded, total known, some layer's size unknown).
    pub fn bytes(&self) -> (u64, u64, bool) {
        let (mut done, mut total, mut partial) = (0u64, 0u64, false);
        for l in self.layers.values() {
            match l.bytes {
                Some((cur, tot)) => {
                    let cur = if l.state >= LayerState::Downloaded {
                        tot
                    } else {
                        cur
                    };
                    done = done.saturating_add(cur);
                    total = total.saturating_add(tot);
                }
                // A layer that already existed costs nothing; one not yet started is unknown.
                None if l.state == LayerState::Complete && !self.finished => {}
                None => partial |= l.state < LayerState::Downloaded,
            }
        }
        (done, total, partial)
    }

    /// The original's one-line summaries: `X pull complete`, `X installing (a/b layers)`,
    /// `X 745 MB of 1.55 GB (43%)`, `X 12.0 MB downloaded, 1.5/8 layers (20%)`,
    /// `X pulling (a/b layers)`, `X starting`.
    pub fn summary(&self, image: &str) -> String {
        let (fetched, complete, total) = self.summary_counts();
        let (done, bytes_total, partial) = self.bytes();
        let pct = self.percent().round();
        if self.finished {
            format!("{image} pull complete")
        } else if total == 0 {
            format!("{image} starting")
        } else if self.phase == PullPhase::Installing {
            format!("{image} installing ({complete}/{total} layers)")
        } else if bytes_total > 0 && !partial {
            format!(
                "{image} {} of {} ({pct}%)",
                human_bytes(done),
                human_bytes(bytes_total)
            )
        } else if done > 0 {
            format!(
                "{image} {} downloaded, {:.1}/{total} layers ({pct}%)",
                human_bytes(done),
                self.fetched_fraction()
            )
        } else {
            format!("{image} pulling ({fetched}/{total} layers)")
        }
    }

    /// The `driver_starting` card's metadata for this pull (reference §5.6 field names).
    pub fn card_patch(&self, image: &str) -> Value {
        let (fetched, complete, total) = self.summary_counts();
        let (done, bytes_total, partial) = self.bytes();
        let active = self
            .layers
            .values()
            .filter(|l| {
                matches!(
                    l.state,
                    LayerState::Downloading | LayerState::Verifying | LayerState::Extracting
                )
            })
            .count();
        json!({
            "image": image,
            "phase": self.phase.as_str(),
            "progress_percent": (self.percent() * 10.0).round() / 10.0,
            "downloaded_bytes": done,
            "total_bytes": bytes_total,
            "downloaded_human": (done > 0).then(|| human_bytes(done)),
            "total_human": (bytes_total > 0).then(|| human_bytes(bytes_total)),
            "total_bytes_partial": partial,
            "layers_fetched": fetched,
            "layers_total": total,
            "layers_complete": complete,
            "layers_active": active,
            "last_docker_pull_line": self.last_line,
        })
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
        assert_eq!(
            p.summary("cam"),
            "cam 10.4 MB downloaded, 1.0/2 layers (50%)"
        );
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

    #[test]
    fn byte_bars_and_human_sizes() {
        let cases: [(&str, Option<(u64, u64)>); 7] = [
            (
                "Downloading [=====>   ]  5.2MB/10.4MB",
                Some((5_200_000, 10_400_000)),
            ),
            ("Downloading  512B/1.5kB", Some((512, 1500))),
            ("Downloading 3 KB / 9 KB", Some((3000, 9000))),
            (
                "Downloading 1.2GB/1.55GB",
                Some((1_200_000_000, 1_550_000_000)),
            ),
            ("Downloading", None),
            ("Downloading 5/10", None),
            // the original's regex reads the digits next to the unit, as we do
            ("Downloading 1e400MB/2MB", Some((400_000_000, 2_000_000))),
        ];
        for (text, want) in cases {
            assert_eq!(byte_bar(text), want, "{text}");
        }
        let sizes = [
            (0, "0 B"),
            (999, "999 B"),
            (1000, "1.00 kB"),
            (12_000_000, "12.0 MB"),
            (745_000_000, "745 MB"),
            (1_550_000_000, "1.55 GB"),
            (u64::MAX, "18446744 TB"),
        ];
        for (n, want) in sizes {
            assert_eq!(human_bytes(n), want);
        }
    }

    #[test]
    fn summaries_and_card_patch_follow_bytes() {
        let mut p = PullProgress::default();
        p.feed("a1: Pulling fs layer");
        p.feed("b2: Pulling fs layer");
        assert_eq!(p.phase(), PullPhase::Started);
        p.feed("a1: Downloading [==>  ] 5MB/10MB");
        assert_eq!(p.phase(), PullPhase::Downloading);
        // b2's size is not known yet: bytes downloaded and fractional layers.
        assert_eq!(
            p.summary("cam"),
            "cam 5.00 MB downloaded, 0.5/2 layers (25%)"
        );
        p.feed("b2: Downloading 1MB/30MB");
        assert_eq!(p.summary("cam"), "cam 6.00 MB of 40.0 MB (27%)");
        let patch = p.card_patch("cam");
        assert_eq!(patch["phase"], "downloading");
        assert_eq!(patch["downloaded_bytes"], 6_000_000);
        assert_eq!(patch["total_bytes"], 40_000_000);
        assert_eq!(patch["total_human"], "40.0 MB");
        assert_eq!(patch["total_bytes_partial"], false);
        assert_eq!(patch["layers_active"], 2);
        assert_eq!(patch["last_docker_pull_line"], "b2: Downloading 1MB/30MB");
        p.feed("a1: Download complete");
        p.feed("b2: Download complete");
        assert_eq!(p.phase(), PullPhase::Installing);
        assert_eq!(p.percent(), 99.0);
        // phases only move forward
        p.feed("c3: Pulling fs layer");
        assert_eq!(p.phase(), PullPhase::Installing);
        p.feed("Status: Downloaded newer image for cam");
        assert_eq!(p.card_patch("cam")["phase"], "pull_complete");
        assert_eq!(p.percent(), 100.0);
    }

    #[test]
    fn hostile_output_stays_bounded() {
        let mut p = PullProgress::default();
        for i in 0..10_000u32 {
            p.feed(&format!("{i:x}0: Pulling fs layer"));
        }
        assert_eq!(p.summary_counts().2, MAX_LAYERS);
        p.feed(&"f".repeat(1 << 20));
        assert!(
            p.card_patch("x")["last_docker_pull_line"]
                .as_str()
                .unwrap()
                .len()
                <= LAST_LINE_MAX
        );
        p.feed("ab: Downloading 99999999999999999999999TB/1TB");
        assert!(p.percent() <= 99.0);
    }
}
