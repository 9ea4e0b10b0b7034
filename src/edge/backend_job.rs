//! The backend-jobs thread: boot-time REST work retried with backoff until it succeeds
//! (token check, edge registration, desired state), then the `/edges/discover` keepalive
//! every 30 s and a desired-state refresh every 5 min. The supervisor never waits on it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use serde_json::Value;

use super::desired::{self, DesiredState, Source};
use crate::backend::{Backend, BackendError};
use crate::backoff::Backoff;
use crate::drivers::tokens::obtain::Obtainer;
use crate::drivers::tokens::{TokenFacts, TokenNeed, TokenSettings};
use crate::health::Sampler;
use crate::twins::linkage::linked_twins_strict;

pub const DISCOVER_INTERVAL: Duration = Duration::from_secs(30);
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(300);

#[derive(Debug)]
pub enum BackendEvent {
    TokenValid {
        latency: Duration,
    },
    /// `during_boot`: the first validation; the daemon cannot do its job and exits.
    TokenRejected {
        error: BackendError,
        during_boot: bool,
    },
    /// Any call failed; transient failures are retried by this thread.
    CallFailed(BackendError),
    Registered(Value),
    Desired(DesiredState),
    DiscoverOk {
        latency: Duration,
        /// The twins the answer binds to this edge, and the interfaces we reported.
        twins: Vec<String>,
        interfaces: Vec<Value>,
    },
    /// What changed about a twin's driver token.
    DriverToken {
        twin: String,
        facts: TokenFacts,
    },
}

pub enum JobCtl {
    /// New settings (SIGHUP): re-validate, re-register, refetch.
    Reload {
        backend: Box<Backend>,
        environment_uuid: Option<String>,
        tokens: TokenSettings,
    },
    /// The twins that run on twin-scoped driver tokens now.
    DriverTokens(Vec<TokenNeed>),
    /// Refetch registration and desired state now (remote restart command).
    Resync,
}

pub struct JobConfig {
    pub backend: Backend,
    pub fingerprint: String,
    pub environment_uuid: Option<String>,
    pub config_dir: PathBuf,
    pub battery_wh: Option<f64>,
    pub watchdog_layers: Vec<&'static str>,
    /// How often `edge.json` is refreshed from the backend (reference §4.7).
    pub edge_json_every: Duration,
    pub tokens: TokenSettings,
    /// The container engine (named with its version in the host facts).
    pub engine: std::sync::Arc<dyn crate::engine::Engine>,
}

struct Job {
    cfg: JobConfig,
    events: Sender<BackendEvent>,
    token_checked: bool,
    ever_validated: bool,
    registered: bool,
    desired_ok: bool,
    backoff: Backoff,
    next_boot: Instant,
    next_discover: Option<Instant>,
    next_refresh: Instant,
    /// The registered edge and when its `edge.json` is next refreshed.
    edge_uuid: Option<String>,
    next_edge_json: Option<Instant>,
    sampler: Sampler,
    /// Driver tokens: minted and renewed here, never on the supervisor.
    tokens: Obtainer,
    /// The engine's version, once asked.
    engine_version: Option<Option<String>>,
}

pub fn run(cfg: JobConfig, events: Sender<BackendEvent>, ctl: Receiver<JobCtl>) {
    let now = Instant::now();
    let mut job = Job {
        sampler: Sampler::new("/".into(), cfg.battery_wh),
        tokens: Obtainer::new(cfg.config_dir.clone(), cfg.tokens.clone(), &cfg.fingerprint),
        engine_version: None,
        cfg,
        events,
        token_checked: false,
        ever_validated: false,
        registered: false,
        desired_ok: false,
        backoff: Backoff::new(Duration::from_secs(2), Duration::from_secs(60)),
        next_boot: now,
        next_discover: None,
        next_refresh: now + REFRESH_INTERVAL,
        edge_uuid: None,
        next_edge_json: None,
    };
    loop {
        let now = Instant::now();
        if !job.boot_done() && now >= job.next_boot {
            job.boot_pass();
        }
        if let Some(at) = job.next_discover
            && Instant::now() >= at
        {
            job.discover();
            job.next_discover = Some(Instant::now() + DISCOVER_INTERVAL);
        }
        if job.boot_done() && Instant::now() >= job.next_refresh {
            job.desired_ok = false;
            job.next_refresh = Instant::now() + REFRESH_INTERVAL;
            job.boot_pass();
        }
        if let Some(at) = job.next_edge_json
            && Instant::now() >= at
        {
            job.refresh_edge_json();
            job.next_edge_json = Some(Instant::now() + job.cfg.edge_json_every);
        }
        let mut due = job.next_refresh;
        if let Some(d) = job.next_edge_json {
            due = due.min(d);
        }
        if !job.boot_done() {
            due = due.min(job.next_boot);
        }
        if let Some(d) = job.next_discover {
            due = due.min(d);
        }
        if let Some(at) = job.tokens.due() {
            if Instant::now() >= at {
                let told = job.tokens.check(&job.cfg.backend, crate::epoch_seconds());
                job.tell_tokens(told);
            }
            due = due.min(job.tokens.due().unwrap_or(due));
        }
        match ctl.recv_timeout(due.saturating_duration_since(Instant::now())) {
            Ok(JobCtl::Reload {
                backend,
                environment_uuid,
                tokens,
            }) => {
                job.tokens.reset(tokens);
                job.cfg.backend = *backend;
                job.cfg.environment_uuid = environment_uuid;
                job.token_checked = false;
                job.registered = false;
                job.desired_ok = false;
                job.backoff.reset();
                job.next_boot = Instant::now();
            }
            Ok(JobCtl::DriverTokens(needs)) => {
                let told = job
                    .tokens
                    .set_needs(needs, &job.cfg.backend, crate::epoch_seconds());
                job.tell_tokens(told);
            }
            Ok(JobCtl::Resync) => {
                job.registered = false;
                job.desired_ok = false;
                job.backoff.reset();
                job.next_boot = Instant::now();
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
    }
}

impl Job {
    fn boot_done(&self) -> bool {
        self.token_checked
            && self.registered
            && (self.desired_ok || self.cfg.environment_uuid.is_none())
    }

    fn tell_tokens(&self, told: Vec<(String, TokenFacts)>) {
        for (twin, facts) in told {
            self.send(BackendEvent::DriverToken { twin, facts });
        }
    }

    fn send(&self, e: BackendEvent) {
        let _ = self.events.send(e);
    }

    /// Runs the unfinished boot steps in order; a failure schedules a retry with backoff.
    fn boot_pass(&mut self) {
        if let Err(e) = self.boot_steps() {
            let delay = self.backoff.next_delay();
            log::warn!("{e}; retrying in {:.0}s", delay.as_secs_f64());
            self.next_boot = Instant::now() + delay;
            if e.is_unauthorized() {
                let during_boot = !self.ever_validated;
                self.send(BackendEvent::TokenRejected {
                    error: e,
                    during_boot,
                });
            } else {
                self.send(BackendEvent::CallFailed(e));
            }
        } else {
            self.backoff.reset();
        }
    }

    fn boot_steps(&mut self) -> Result<(), BackendError> {
        if !self.token_checked {
            let latency = self.cfg.backend.validate_token()?;
            self.token_checked = true;
            self.ever_validated = true;
            self.send(BackendEvent::TokenValid { latency });
            // Host facts go up at once with a (re)validated token: new settings or a new
            // token are the backend's to see without waiting for the 30 s keepalive.
            self.next_discover = Some(Instant::now());
        }
        if !self.registered {
            let edge = self.cfg.backend.register_edge(&self.cfg.fingerprint)?;
            if let Err(e) = crate::config::write_edge_json(&self.cfg.config_dir, &edge) {
                log::error!(
                    "cannot write {}/edge.json: {e}",
                    self.cfg.config_dir.display()
                );
            }
            self.registered = true;
            self.edge_uuid = edge
                .get("uuid")
                .and_then(Value::as_str)
                .and_then(crate::config::parse_uuid);
            self.next_edge_json = Some(Instant::now() + self.cfg.edge_json_every);
            self.send(BackendEvent::Registered(edge));
        }
        if !self.desired_ok
            && let Some(env) = self.cfg.environment_uuid.clone()
        {
            let state = self.fetch_desired(&env)?;
            if let Err(e) = desired::save(&self.cfg.config_dir, &state) {
                log::error!(
                    "cannot write the desired-state cache in {}: {e}",
                    self.cfg.config_dir.display()
                );
            }
            self.desired_ok = true;
            self.send(BackendEvent::Desired(state));
        }
        Ok(())
    }

    fn fetch_desired(&self, env: &str) -> Result<DesiredState, BackendError> {
        let raw = self.cfg.backend.environment_twins(env)?;
        let mut desired = DesiredState::new(
            env,
            &raw,
            BTreeMap::new(),
            crate::epoch_seconds(),
            Source::Backend,
        );
        let mut assets = BTreeMap::new();
        for uuid in linked_twins_strict(&desired.twins, &self.cfg.fingerprint) {
            let twin = desired.twins.iter().find(|t| t.uuid == uuid);
            let Some(asset_uuid) = twin.and_then(|t| t.asset_uuid.clone()) else {
                continue;
            };
            if assets.contains_key(&asset_uuid) {
                continue;
            }
            match self.cfg.backend.asset(&asset_uuid) {
                Ok(a) => {
                    assets.insert(asset_uuid, a);
                }
                Err(BackendError::NotFound { endpoint }) => {
                    log::warn!("twin {uuid}: asset not found ({endpoint})");
                }
                Err(e) => return Err(e),
            }
        }
        desired.assets = assets;
        Ok(desired)
    }

    /// §4.7: the backend's `EdgeSchema`, written to `edge.json` only when `metadata.cameras`
    /// differs (anything else changing does not rewrite the file).
    fn refresh_edge_json(&mut self) {
        let Some(uuid) = self.edge_uuid.clone() else {
            return;
        };
        match self.cfg.backend.edge(&uuid) {
            Ok(edge) => {
                let current = crate::fsutil::read_regular_text(
                    &self.cfg.config_dir.join(crate::config::EDGE_FILE),
                    4 << 20,
                )
                .ok()
                .and_then(|t| serde_json::from_str::<Value>(&t).ok())
                .unwrap_or(Value::Null);
                if cameras_changed(&current, &edge) {
                    log::info!("edge.json: metadata.cameras changed in the backend; rewriting");
                    if let Err(e) = crate::config::write_edge_json(&self.cfg.config_dir, &edge) {
                        log::error!("cannot write edge.json: {e}");
                    }
                }
            }
            Err(e) => log::debug!("edge.json refresh: {e}"),
        }
    }

    fn discover(&mut self) {
        let snapshot = self.sampler.sample();
        let mut facts = crate::host::host_facts(&snapshot, &self.cfg.watchdog_layers);
        // Which container engine runs the robot's containers (asked once; ours, not the
        // original's: the backend ignores keys it does not know).
        let engine = &self.cfg.engine;
        let version = self
            .engine_version
            .get_or_insert_with(|| engine.version())
            .clone();
        if let Some(obj) = facts.as_object_mut() {
            obj.insert(
                "container_engine".into(),
                serde_json::json!({"name": engine.name(), "version": version}),
            );
        }
        let interfaces = facts
            .get("network_interfaces")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let start = Instant::now();
        match self.cfg.backend.discover(
            &self.cfg.fingerprint,
            &crate::host::hostname(),
            &crate::host::platform_short(),
            facts,
        ) {
            Ok(answer) => self.send(BackendEvent::DiscoverOk {
                latency: start.elapsed(),
                twins: super::network::answer_twins(&answer),
                interfaces,
            }),
            Err(e) if e.is_unauthorized() => {
                log::error!("{e}");
                self.send(BackendEvent::TokenRejected {
                    error: e,
                    during_boot: false,
                })
            }
            Err(e) => {
                log::warn!("host-facts keepalive: {e}");
                self.send(BackendEvent::CallFailed(e));
            }
        }
    }
}

/// Whether the backend's edge has other `metadata.cameras` than the file (reference §4.7).
pub fn cameras_changed(file: &Value, backend: &Value) -> bool {
    file.pointer("/metadata/cameras") != backend.pointer("/metadata/cameras")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_cameras_rewrite_edge_json() {
        let file =
            json!({"uuid": "e", "name": "a", "metadata": {"cameras": {"selected_device": 0}}});
        for (backend, changed) in [
            (
                json!({"uuid": "e", "name": "renamed", "metadata": {"cameras": {"selected_device": 0}}}),
                false,
            ),
            (
                json!({"uuid": "e", "name": "a", "metadata": {"cameras": {"selected_device": 1}}}),
                true,
            ),
            (json!({"uuid": "e", "name": "a", "metadata": {}}), true),
        ] {
            assert_eq!(cameras_changed(&file, &backend), changed, "{backend}");
        }
        assert!(!cameras_changed(&json!({}), &json!({"metadata": {}})));
    }
}
