//! The worker on the container runtime: launch hooks (a fresh status file, pull progress in the
//! log) and the policy, which notes what happened for the worker role to act on (alerts,
//! readiness, spontaneous exits) on the supervisor thread.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

use crate::containers::follow::{LogEvent, Sink};
use crate::containers::launch::{LaunchFailure, LaunchHooks};
use crate::containers::runtime::{Loop, Policy};
use crate::containers::spec::ContainerSpec;

/// What the runtime told the worker policy, drained by the worker role.
#[derive(Debug, Clone, PartialEq)]
pub enum Note {
    Up,
    LaunchFailed {
        phase: &'static str,
        message: String,
    },
    RestartLoop {
        deaths: usize,
    },
    WentDown {
        status: String,
    },
    /// An update waited for the worker's update lock as long as allowed and went ahead.
    LockOverridden {
        image: String,
        waited_s: u64,
    },
    /// A new worker image failed its probation; the last good one runs again.
    RolledBack {
        failed_image: String,
        reason: String,
        back_image: String,
    },
}

pub type Notes = Arc<Mutex<Vec<Note>>>;

/// Worker log lines copied into the daemon's log per second (the rest are counted).
const LINES_PER_SECOND: u32 = 50;

pub struct WorkerHooks {
    /// The readiness file of the previous container must not speak for the next one.
    pub status_file: PathBuf,
}

impl LaunchHooks for WorkerHooks {
    fn prepare(&self, _: &ContainerSpec, _: &Value) -> Result<(), LaunchFailure> {
        match std::fs::remove_file(&self.status_file) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(LaunchFailure {
                phase: "container_start_failed",
                message: format!("cannot clear {}: {e}", self.status_file.display()),
            }),
        }
    }

    fn progress(&self, _: &ContainerSpec, _: &str, message: &str) {
        log::info!("worker: {message}");
    }
}

pub struct WorkerPolicy {
    pub notes: Notes,
}

impl WorkerPolicy {
    fn note(&self, n: Note) {
        if let Ok(mut v) = self.notes.lock() {
            v.push(n);
        }
    }
}

impl Policy for WorkerPolicy {
    fn up(&mut self, _: &ContainerSpec, _: &str) {
        self.note(Note::Up);
    }

    fn launch_failed(&mut self, _: &ContainerSpec, f: &LaunchFailure, _: Duration) {
        self.note(Note::LaunchFailed {
            phase: f.phase,
            message: f.message.clone(),
        });
    }

    fn restart_loop(&mut self, spec: &ContainerSpec, l: &Loop) {
        log::error!(
            "{} exited {} times in {} s: stopped for {} s",
            spec.name,
            l.deaths_in_window,
            l.window.as_secs(),
            l.retry_in.as_secs()
        );
        self.note(Note::RestartLoop {
            deaths: l.deaths_in_window,
        });
    }

    fn lock_overridden(&mut self, spec: &ContainerSpec, _: &[String], waited: Duration) {
        self.note(Note::LockOverridden {
            image: spec.image.clone(),
            waited_s: waited.as_secs(),
        });
    }

    fn rolled_back(
        &mut self,
        _: &ContainerSpec,
        why: &crate::containers::updates::Failed,
        back: &crate::containers::updates::Good,
    ) {
        self.note(Note::RolledBack {
            failed_image: why.image.clone(),
            reason: why.reason.clone(),
            back_image: crate::containers::updates::image_with_id(&back.spec.image, &back.image_id),
        });
    }

    fn went_down(&mut self, _: &ContainerSpec, status: &str) {
        self.note(Note::WentDown {
            status: status.to_string(),
        });
    }

    /// Worker lines go to the daemon's log, at most [`LINES_PER_SECOND`] (drops counted).
    fn log_sink(&self, spec: &ContainerSpec) -> Sink {
        let name = spec.name.clone();
        let mut window = std::time::Instant::now();
        let (mut lines, mut dropped) = (0u32, 0u64);
        Box::new(move |ev| match ev {
            LogEvent::Line(l) => {
                if window.elapsed() >= Duration::from_secs(1) {
                    if dropped > 0 {
                        log::info!(
                            "[{name}] {dropped} line(s) dropped (over {LINES_PER_SECOND}/s)"
                        );
                    }
                    window = std::time::Instant::now();
                    (lines, dropped) = (0, 0);
                }
                if lines < LINES_PER_SECOND {
                    lines += 1;
                    log::info!("[{name}] {l}");
                } else {
                    dropped += 1;
                }
            }
            LogEvent::Cut(n) => log::info!("[{name}] {n} over-long line(s) cut"),
        })
    }
}
