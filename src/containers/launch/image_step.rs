//! The image step of a launch (reference §5.6): a local build is never pulled; others are
//! pulled once per image with the progress fanned out to every container that uses it; a
//! registry that refuses the stored credentials as unauthorized gets one anonymous retry; a
//! failed pull falls back to a local copy, then to the non-Jetson tag.

use std::time::{Duration, Instant};

use super::{LaunchFailure, Launcher};
use crate::containers::image::is_local_build;
use crate::containers::reserve;
use crate::containers::spec::ContainerSpec;
use crate::engine::EngineError;
use crate::engine::pull::PullProgress;

/// At most one `docker pull: <line>` per this period, unless the layer picture changed.
const PULL_LINE_EVERY: Duration = Duration::from_millis(100);

/// The registry refused the stored credentials (the original's
/// `unauthorized|incorrect username or password`, any case).
pub fn is_unauthorized(e: &EngineError) -> bool {
    match e {
        EngineError::Failed { message, .. } => {
            let m = message.to_lowercase();
            m.contains("unauthorized") || m.contains("incorrect username or password")
        }
        _ => false,
    }
}

/// One pull attempt's view: the progress tracker and what was last shown.
struct Feed {
    progress: PullProgress,
    shown_percent: f64,
    last_line_at: Option<Instant>,
    /// The last line the rate bound held back: sent when the pull ends, so the final word
    /// (`Status: …`) is never the one lost.
    held_back: Option<String>,
}

impl Feed {
    fn new() -> Self {
        Feed {
            progress: PullProgress::default(),
            shown_percent: -1.0,
            last_line_at: None,
            held_back: None,
        }
    }

    fn line(&mut self, l: &Launcher, specs: &[&ContainerSpec], image: &str, line: &str) {
        let coarse = self.progress.feed(line);
        let now = Instant::now();
        if coarse
            || self
                .last_line_at
                .is_none_or(|t| now.duration_since(t) >= PULL_LINE_EVERY)
        {
            self.last_line_at = Some(now);
            self.held_back = None;
            send_line(l, specs, image, line);
        } else {
            self.held_back = Some(line.to_string());
        }
        if coarse {
            log::info!("{}", self.progress.summary(image));
        }
        let pct = self.progress.percent().floor();
        if coarse || pct != self.shown_percent {
            self.shown_percent = pct;
            let patch = self.progress.card_patch(image);
            for spec in specs {
                l.hooks.pull_progress(spec, &patch);
            }
        }
    }
}

fn send_line(l: &Launcher, specs: &[&ContainerSpec], image: &str, line: &str) {
    let text = format!("docker pull: {line}");
    for spec in specs {
        l.hooks.pull_line(spec, image, &text);
    }
}

impl Launcher {
    /// A phase-boundary message of a pull: the journal and every container's role.
    fn tell(&self, specs: &[&ContainerSpec], image: &str, message: &str) {
        for spec in specs {
            self.hooks.progress(spec, image, message);
        }
    }

    /// Makes the image of `specs` (all the same) available locally. Returns the image to run.
    pub(super) fn ensure_image(&self, specs: &[&ContainerSpec]) -> Result<String, LaunchFailure> {
        let Some(spec) = specs.first() else {
            return Err(LaunchFailure {
                phase: "pull_unexpected",
                message: "no container uses the image".into(),
            });
        };
        let (image, fallback) = (spec.image.as_str(), spec.fallback_image.as_deref());
        if let Some(bad) = [Some(image), fallback]
            .into_iter()
            .flatten()
            .find(|i| !crate::containers::image::valid_reference(i))
        {
            return Err(LaunchFailure {
                phase: "pull_failed",
                message: format!("refusing the image reference {bad:?}"),
            });
        }
        let exists = |i: &str| self.engine.image_exists(i).unwrap_or(false);
        if is_local_build(image) && exists(image) {
            log::info!("Using the local build of {image}; local-only tags are not pulled");
            return Ok(image.to_string());
        }
        if spec.pull == crate::containers::spec::Pull::IfMissing && exists(image) {
            log::info!("{image} is present and its tag is immutable: not pulled");
            return Ok(image.to_string());
        }
        if let Err(short) = self.make_room(image) {
            let message = format!("{image} is not pulled: {short}");
            log::error!("{message}");
            self.tell(specs, image, &message);
            return Err(LaunchFailure {
                phase: reserve::PHASE,
                message,
            });
        }
        match self.pull(image, specs) {
            Ok(()) => Ok(image.to_string()),
            Err(EngineError::Failed { message, .. }) if reserve::is_no_space(&message) => {
                Err(LaunchFailure {
                    phase: reserve::PHASE,
                    message: format!("the pull of {image} ran out of disk space: {message}"),
                })
            }
            Err(e) if exists(image) => {
                log::warn!("Pull failed for {image}; using local copy ({e})");
                Ok(image.to_string())
            }
            Err(e) => {
                if let Some(fb) = fallback {
                    log::warn!("pull of {image} failed ({e}); trying {fb}");
                    if self.pull(fb, specs).is_ok() || exists(fb) {
                        return Ok(fb.to_string());
                    }
                }
                let phase = match e {
                    EngineError::TimedOut { .. } => "pull_timeout",
                    EngineError::Spawn { .. } => "pull_spawn_failed",
                    _ => "pull_failed",
                };
                Err(LaunchFailure {
                    phase,
                    message: e.to_string(),
                })
            }
        }
    }

    /// Keeps the disk reserve for a pull of `image`: when the download would leave less, the
    /// images nothing needs go first; what is still short is returned.
    fn make_room(&self, image: &str) -> Result<(), reserve::Short> {
        let Some(r) = &self.reserve else {
            return Ok(());
        };
        let need = self.engine.announced_size(image).unwrap_or(0);
        let root = r.data_root.get_or_init(|| self.engine.data_root());
        let places = [root.as_path(), self.config_dir.as_path()];
        let check = || reserve::short(&reserve::free_space(&places), need, r.bytes);
        let Some(mut short) = check() else {
            return Ok(());
        };
        let removable = r.removable.lock().map(|v| v.clone()).unwrap_or_default();
        for old in removable {
            match self.engine.remove_image(&old) {
                Ok(()) => log::info!("removed the unused image {old} to keep the disk reserve"),
                Err(e) => log::debug!("{old} stays: {e}"),
            }
            match check() {
                None => return Ok(()),
                Some(s) => short = s,
            }
        }
        Err(short)
    }

    /// One pull of `image` (a fresh tracker per attempt; one anonymous retry when the stored
    /// credentials are refused), its phase lines to the journal and every container's role.
    fn pull(&self, image: &str, specs: &[&ContainerSpec]) -> Result<(), EngineError> {
        let started = format!("docker pull started for image {image}");
        log::info!("{started}");
        self.tell(specs, image, &started);
        let attempt = |anonymous: bool| {
            let mut feed = Feed::new();
            let result = self.engine.pull(image, anonymous, &mut |line| {
                feed.line(self, specs, image, line)
            });
            if let Some(last) = feed.held_back.take() {
                send_line(self, specs, image, &last);
            }
            result
        };
        let attempts = specs
            .iter()
            .map(|s| s.pull_attempts)
            .max()
            .unwrap_or(1)
            .max(1);
        let mut result = attempt(false);
        if let Err(e) = &result
            && is_unauthorized(e)
        {
            let retry = format!(
                "docker pull: registry refused {image} as unauthorized; retrying without stored credentials"
            );
            log::warn!("{retry}");
            self.tell(specs, image, &retry);
            result = attempt(true);
        }
        // A role that asks for it (the worker) retries a failed pull within the launch, with
        // backoff (2 s, 4 s, …); never a refusal to authorise it.
        let mut tried = 1;
        while tried < attempts
            && let Err(e) = &result
            && !is_unauthorized(e)
        {
            let pause = Duration::from_secs(2u64 << (tried - 1).min(5));
            log::warn!(
                "docker pull of {image} failed (attempt {tried} of {attempts}): {e}; again in {} s",
                pause.as_secs()
            );
            std::thread::sleep(pause);
            tried += 1;
            result = attempt(false);
        }
        let end = match &result {
            Ok(()) => format!("docker pull completed for image {image}"),
            Err(EngineError::TimedOut { .. }) => format!("docker pull timed out for image {image}"),
            Err(e) => format!("docker pull failed for image {image}: {e}"),
        };
        log::info!("{end}");
        self.tell(specs, image, &end);
        result
    }
}
