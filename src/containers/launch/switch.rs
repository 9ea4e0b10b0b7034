//! Switching a running container to its successor with the least downtime the engine allows:
//! the successor is created beside it (its image already present), the two swap names while
//! the old one still runs, and only then is the old one stopped (SIGTERM, its own grace
//! period) and the new one started. The robot is down for one stop and one start, whatever
//! the image's size. The old container is kept, stopped, until the new one passes its startup
//! probe: if it does not, the old one gets its name back and runs again at once.
//!
//! A switch interrupted by our own death leaves at most a `<name>.next` (created, never
//! started) and a `<name>.old` (the previous container, perhaps still running);
//! [`Launcher::settle_switch`] puts that right before anything else is done with the name.

use super::{LaunchFailure, Launcher, Up};
use crate::containers::retire::{grace_period, retire};
use crate::engine::{Details, EngineError};

/// The successor's name until the swap.
pub fn next_name(name: &str) -> String {
    format!("{name}.next")
}

/// The previous container's name from the swap until it is removed.
pub fn old_name(name: &str) -> String {
    format!("{name}.old")
}

/// `name` without a switch suffix, when it has one.
pub fn switching_base(name: &str) -> Option<&str> {
    name.strip_suffix(".next")
        .or_else(|| name.strip_suffix(".old"))
}

/// The argv with its `--name` value replaced.
fn renamed(argv: &[String], name: &str) -> Vec<String> {
    let mut out = argv.to_vec();
    if let Some(i) = out.iter().position(|a| a == "--name")
        && let Some(v) = out.get_mut(i + 1)
    {
        *v = name.to_string();
    }
    out
}

fn fail(phase: &'static str, e: &dyn std::fmt::Display) -> LaunchFailure {
    LaunchFailure {
        phase,
        message: e.to_string(),
    }
}

impl Launcher {
    /// Puts right what an interrupted switch of `name` left: a `.next` is removed (it never
    /// ran under that name); a `.old` goes back to its name when nothing has it (it is what
    /// the robot ran last), else it is retired gracefully.
    pub(super) fn settle_switch(&self, name: &str) -> Result<(), LaunchFailure> {
        let engine = self.engine.as_ref();
        let next = next_name(name);
        if engine
            .inspect(&next)
            .map_err(|e| fail("container_remove_failed", &e))?
            .is_some()
        {
            log::warn!("removing {next}, left by an interrupted switch");
            retire(engine, &next).map_err(|e| fail("container_remove_failed", &e))?;
        }
        let old = old_name(name);
        if engine
            .inspect(&old)
            .map_err(|e| fail("container_remove_failed", &e))?
            .is_none()
        {
            return Ok(());
        }
        let taken = engine
            .inspect(name)
            .map_err(|e| fail("container_remove_failed", &e))?
            .is_some();
        if taken {
            log::warn!("retiring {old}, left by an interrupted switch");
            retire(engine, &old).map_err(|e| fail("container_remove_failed", &e))?;
        } else {
            log::warn!("{old} was left by an interrupted switch: it is {name} again");
            engine
                .rename(&old, name)
                .map_err(|e| fail("container_remove_failed", &e))?;
        }
        Ok(())
    }

    /// `name`'s details when it is up and serving now (a switch keeps it until its successor is
    /// ready). One the engine is restarting serves nothing, and the engine refuses to rename it
    /// while its network is set up again: it is retired first, as before switches existed.
    pub(super) fn serving(&self, name: &str) -> Option<Details> {
        self.engine
            .inspect(name)
            .ok()
            .flatten()
            .filter(|i| i.running && i.status == "running")
    }

    /// Replaces the running `old_one` (named `name`) by a container created from `argv`;
    /// returns the new container's id once it passed its startup probe.
    pub(super) fn switch(
        &self,
        spec: &super::ContainerSpec,
        argv: &[String],
        env_file: &std::path::Path,
        probe: std::time::Duration,
        old_one: &Details,
    ) -> Result<Up, LaunchFailure> {
        let (engine, name) = (self.engine.as_ref(), spec.name.as_str());
        let (next, old) = (next_name(name), old_name(name));
        let created = engine.create(&renamed(argv, &next));
        // Docker has read it (or never will): the token does not stay on disk.
        let _ = std::fs::remove_file(env_file);
        created.map_err(|e| fail(create_phase(&e), &e))?;
        self.attach_networks(spec, &next)?;
        let grace = grace_period(old_one);
        if let Err(e) = engine.rename(name, &old) {
            // It went down meanwhile (a crash the engine is restarting): nothing to keep.
            log::warn!("{name} cannot be renamed ({e}); it is stopped before its successor starts");
            if let Err(e) = retire(engine, name) {
                let _ = engine.force_remove(&next); // created, never started
                return Err(fail("container_remove_failed", &e));
            }
            if let Err(e) = engine.rename(&next, name) {
                let _ = engine.force_remove(&next);
                return Err(fail("container_rename_failed", &e));
            }
            if let Err(e) = engine.start(name) {
                let _ = retire(engine, name);
                return Err(fail("docker_start_failed", &e));
            }
            return self.probe(name, probe);
        }
        if let Err(e) = engine.rename(&next, name) {
            let _ = engine.force_remove(&next);
            let _ = engine.rename(&old, name);
            return Err(fail("container_rename_failed", &e));
        }
        log::info!("switching {name}: stopping the previous container (grace period {grace} s)");
        if let Err(e) = engine.stop(&old, grace)
            && self.serving(&old).is_some()
        {
            self.restore(name, false);
            return Err(fail("container_stop_failed", &e));
        }
        if let Err(e) = engine.start(name) {
            self.restore(name, true);
            return Err(fail("docker_start_failed", &e));
        }
        match self.probe(name, probe) {
            Ok(up) => {
                if let Err(e) = engine.force_remove(&old) {
                    log::warn!("{old}: {e}; removed at the next launch of {name}");
                }
                Ok(up)
            }
            Err(f) => {
                self.restore(name, true);
                Err(LaunchFailure {
                    phase: f.phase,
                    message: format!("{}; the previous container runs again", f.message),
                })
            }
        }
    }

    /// Puts the previous container back under `name` (removing the successor, which is
    /// stopped gracefully if it runs) and starts it again when it was stopped.
    fn restore(&self, name: &str, start: bool) {
        let engine = self.engine.as_ref();
        let old = old_name(name);
        if let Err(e) = retire(engine, name) {
            log::error!("{name}: cannot remove the failed successor ({e}); {old} stays");
            return;
        }
        if let Err(e) = engine.rename(&old, name) {
            log::error!("{old}: cannot take back its name ({e})");
            return;
        }
        if start && let Err(e) = engine.start(name) {
            log::error!("{name}: the previous container does not start again ({e})");
        }
    }
}

fn create_phase(e: &EngineError) -> &'static str {
    match e {
        EngineError::TimedOut { .. } => "docker_create_timeout",
        _ => "docker_create_failed",
    }
}
