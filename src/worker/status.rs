//! What the worker role tells `worker status` / `worker health` and the daemon's `status`, the
//! `worker start|stop|restart` verbs the CLI sends through the control socket (so the daemon's
//! accounting, breaker and alerts stay right), and the twin commands' workflow sync and removal.

use std::time::Instant;

use serde_json::{Value, json};

use super::prep::PrepJob;
use super::runtime::{Models, Worker};
use crate::containers::runtime::Runtime;
use crate::models::store::Manifest;

/// The cached models of a config dir, for `status` (model id, size, checksum, origin).
pub fn cached_models(config_dir: &std::path::Path) -> Vec<Value> {
    Manifest::load(&config_dir.join("models"))
        .entries
        .values()
        .map(|e| {
            json!({"model_id": e.model_id, "size_bytes": e.size_bytes,
                   "checksum_sha256": e.checksum_sha256, "downloaded_from": e.downloaded_from})
        })
        .collect()
}

impl Worker {
    pub fn snapshot(&self, runtime: &Runtime) -> Value {
        let Some(ctx) = &self.ctx else {
            return json!({"configured": false, "problem": "no linked environment"});
        };
        let name = self.name().unwrap_or_default();
        let observed = runtime.observed_state(&name);
        let now = Instant::now();
        let history: Vec<Value> = self
            .history
            .last(10)
            .map(|e| json!({"at": crate::epoch_of(e.wall), "reason": e.reason, "ok": e.ok}))
            .collect();
        json!({
            "configured": true,
            "name": name,
            "state": if runtime.launching(&name) { "starting".to_string() }
                     else { observed.map(|e| e.state.clone()).unwrap_or_else(|| "not created".into()) },
            "image": observed.map(|e| e.image.clone()),
            "accelerator": self.accelerator,
            "gpu": self.accelerator != "cpu",
            "wanted": self.wanted_now(),
            "held": self.held,
            "ready": self.ready,
            "models_state": match self.models {
                Models::Unknown => "unknown",
                Models::Checking(_) => "checking",
                Models::Ready => "ready",
                Models::Failed => "failed",
            },
            "model_failures": self.model_failures.iter().map(|(id, e)| json!({"model_id": id, "error": e})).collect::<Vec<_>>(),
            "files": self.files.iter().map(|(n, _, size)| json!({"name": n, "size_bytes": size})).collect::<Vec<_>>(),
            "workers_dir": ctx.config_dir.join("workers"),
            "models_dir": ctx.config_dir.join("models"),
            "status_file": ctx.status_dir.join(super::spec::STATUS_FILE),
            "models": cached_models(&ctx.config_dir),
            "twins": self.scope,
            "health": {
                "total_restarts": self.history.total(),
                "recent_restarts": self.history.recent(now),
                "circuit_breaker_tripped": self.history.tripped(now),
                "uptime_seconds": self.running_since.map(|t| t.elapsed().as_secs()),
            },
            "history": history,
            "last_error": self.last_error,
        })
    }

    /// The first workflow sync's (written, removed, failed twins), once it ran.
    pub fn first_sync(&self) -> Option<(usize, usize, usize)> {
        self.first_sync
    }

    /// Any worker file in `workers/`.
    pub fn has_files(&self) -> bool {
        !self.files.is_empty()
    }

    /// An operator's explicit start re-arms the hot-reload breaker (it only guards automatic
    /// restarts).
    fn operator_rearm(&mut self) {
        let now = std::time::Instant::now();
        if self.history.tripped(now) {
            log::info!("worker circuit breaker re-armed by an operator's worker start/restart");
        }
        self.history.rearm(now);
        self.breaker_logged = false;
    }

    /// `worker start|stop|restart` from the CLI. The answer comes at once; the CLI follows
    /// the container's state through `worker_status`.
    pub fn control(&mut self, verb: &str, runtime: &mut Runtime) -> Value {
        if self.ctx.is_none() {
            return json!({"error": "this edge has no linked environment"});
        }
        if matches!(verb, "start" | "restart") {
            self.operator_rearm();
        }
        match verb {
            "start" => {
                self.held = false;
                if self.models == Models::Failed {
                    self.models = Models::Unknown;
                }
                self.reconcile(runtime);
                if let Some(name) = self.name() {
                    runtime.start_now(&name);
                }
            }
            "stop" => {
                self.held = true;
                self.reconcile(runtime);
            }
            "restart" => {
                if self.models == Models::Failed {
                    self.models = Models::Unknown;
                }
                self.held = false;
                self.restart(runtime, "cli-restart");
                if let Some(name) = self.name() {
                    runtime.start_now(&name);
                }
            }
            _ => {}
        }
        let mut v = self.snapshot(runtime);
        v["accepted"] = json!(verb);
        v
    }

    /// Asks for a workflow sync of the scope; merged with one already asked for (at most one
    /// in flight and one waiting).
    pub fn sync_now(&mut self) {
        if !self.scope.is_empty() && self.sync_gate.request() {
            self.send_sync();
        }
    }

    pub(super) fn send_sync(&self) {
        let _ = self.jobs.send(PrepJob::Sync {
            twins: self.scope.clone(),
        });
    }

    pub fn remove_files(&self, filenames: Value) {
        let _ = self.jobs.send(PrepJob::Remove { filenames });
    }
}
