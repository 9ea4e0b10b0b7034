//! Which container engine this edge drives. Everything in `containers` and above holds an
//! `Arc<dyn Engine>` ([`crate::engine`]) made here, once, at start; nothing above this line
//! names an engine's implementation.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub use crate::engine::Engine;

/// What `CYBERWAVE_CONTAINER_ENGINE` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice {
    Docker,
    Podman,
    /// Docker when its socket answers, else Podman.
    Auto,
}

impl Choice {
    /// `docker`, `podman`, `auto`; anything else is Docker, with the warning it returns.
    pub fn parse(raw: &str) -> (Choice, Option<String>) {
        match raw.trim().to_ascii_lowercase().as_str() {
            "" | "docker" => (Choice::Docker, None),
            "podman" => (Choice::Podman, None),
            "auto" => (Choice::Auto, None),
            other => (
                Choice::Docker,
                Some(format!(
                    "CYBERWAVE_CONTAINER_ENGINE={other:?} is not docker, podman or auto; using docker"
                )),
            ),
        }
    }
}

/// Where the engine is and how long its slow calls may take.
#[derive(Debug, Clone)]
pub struct EngineSettings {
    pub choice: Choice,
    pub docker_bin: String,
    pub podman_socket: Option<PathBuf>,
    pub create_timeout: Duration,
    pub remove_timeout: Duration,
}

impl EngineSettings {
    /// From the daemon's settings, with the given `create` / `rm` deadlines.
    pub fn from(s: &crate::config::Settings, create: Duration, remove: Duration) -> Self {
        let (choice, warning) = Choice::parse(&s.container_engine);
        if let Some(w) = warning {
            log::warn!("{w}");
        }
        EngineSettings {
            choice,
            docker_bin: s.docker_bin.clone(),
            podman_socket: s.podman_socket.clone(),
            create_timeout: create,
            remove_timeout: remove,
        }
    }
}

/// The engine chosen: Docker through `docker_bin`, or Podman (`podman`, its socket).
pub fn open(s: &EngineSettings) -> Arc<dyn Engine> {
    let podman = match s.choice {
        Choice::Docker => false,
        Choice::Podman => true,
        Choice::Auto => !docker_answers(),
    };
    if podman {
        let bin = if s.docker_bin == "docker" {
            "podman"
        } else {
            &s.docker_bin
        };
        return Arc::new(
            crate::podman::Podman::new(bin, s.podman_socket.clone())
                .with_timeouts(s.create_timeout, s.remove_timeout),
        );
    }
    Arc::new(
        crate::docker::Docker::new(&s.docker_bin).with_timeouts(s.create_timeout, s.remove_timeout),
    )
}

/// The engine with its default deadlines (the control commands, the health monitor).
pub fn open_default(settings: &crate::config::Settings) -> Arc<dyn Engine> {
    open(&EngineSettings::from(
        settings,
        crate::docker::CREATE_TIMEOUT,
        crate::docker::RM_TIMEOUT,
    ))
}

/// Docker's API socket is there and answers `GET /_ping` within a second.
fn docker_answers() -> bool {
    crate::docker::api::configured_socket().is_some_and(|p| ping(&p))
}

fn ping(socket: &Path) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = std::os::unix::net::UnixStream::connect(socket) else {
        return false;
    };
    let t = Some(Duration::from_secs(1));
    if s.set_read_timeout(t).is_err() || s.set_write_timeout(t).is_err() {
        return false;
    }
    if s.write_all(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut head = [0u8; 16];
    s.read(&mut head).is_ok_and(|n| {
        head[..n].starts_with(b"HTTP/1.") && head[..n].windows(3).any(|w| w == b"200")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_choice_of_engine() {
        assert_eq!(Choice::parse(""), (Choice::Docker, None));
        assert_eq!(Choice::parse(" Podman "), (Choice::Podman, None));
        assert_eq!(Choice::parse("auto"), (Choice::Auto, None));
        let (c, w) = Choice::parse("containerd");
        assert_eq!(c, Choice::Docker);
        assert!(w.is_some_and(|w| w.contains("containerd")));
    }

    #[test]
    fn a_socket_that_is_not_there_does_not_answer() {
        assert!(!ping(Path::new("/nonexistent/docker.sock")));
    }
}
