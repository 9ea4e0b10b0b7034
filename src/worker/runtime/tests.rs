//! The worker role on the runtime over the recording fake engine, with its prep and watch
//! threads: what starts it, and that an edit in `workers/` reloads it with a graceful stop.

use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, select};

use super::*;
use crate::containers::runtime::{RuntimeEvent, Setup, Tuning};
use crate::engine::fake::FakeEngine;

fn tuning() -> WorkerTuning {
    WorkerTuning {
        sync_every_ticks: 20,
        ready_timeout: Duration::from_secs(900),
        driver_wait: Duration::from_secs(30),
        reload_cooldown: Duration::from_millis(200),
        settle: Duration::from_millis(100),
        stop_timeout: Duration::from_secs(7),
    }
}

struct Harness {
    engine: Arc<FakeEngine>,
    worker: Worker,
    runtime: Runtime,
    runtime_rx: Receiver<RuntimeEvent>,
    prep: Receiver<PrepEvent>,
    watch: Receiver<crate::watch::Changed>,
    dir: tempfile::TempDir,
}

fn start() -> Harness {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("workers")).unwrap();
    std::fs::write(dir.path().join("workers/detect.py"), "print('v1')\n").unwrap();
    let mut ctx = super::super::spec::example_context();
    ctx.config_dir = dir.path().to_path_buf();
    ctx.status_dir = dir.path().join("run");
    let engine = Arc::new(FakeEngine::default());
    let parts = Worker::start(
        dir.path().to_path_buf(),
        Some(ctx),
        tuning(),
        None,
        SharedHandle::new(None),
        AlertSink::new(None, None, None),
    );
    let (mut runtime, runtime_rx) = Runtime::start(Setup {
        engine: engine.clone(),
        config_dir: dir.path().to_path_buf(),
        owner: "fp".into(),
        tuning: Tuning::example(5),
    });
    runtime.add_role(parts.role);
    Harness {
        engine,
        worker: parts.worker,
        runtime,
        runtime_rx,
        prep: parts.prep,
        watch: parts.watch,
        dir,
    }
}

impl Harness {
    /// Runs the supervisor's part (as `edge` does) until `done` holds (10 s at most).
    fn until(&mut self, what: &str, done: impl Fn(&Harness) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !done(self) {
            assert!(
                Instant::now() < deadline,
                "{what}: {:?}",
                self.engine.calls()
            );
            let due = self.worker.next_deadline();
            let wait = due
                .map(|d| d.saturating_duration_since(Instant::now()))
                .unwrap_or(Duration::from_millis(50))
                .min(Duration::from_millis(50));
            select! {
                recv(self.runtime_rx) -> ev => if let Ok(ev) = ev {
                    self.runtime.on_event(ev);
                    self.worker.after_runtime_event(&mut self.runtime);
                },
                recv(self.prep) -> ev => if let Ok(ev) = ev {
                    self.worker.on_prep(ev, &mut self.runtime);
                },
                recv(self.watch) -> ev => if let Ok(crate::watch::Changed(sig)) = ev {
                    self.worker.on_files(sig, &mut self.runtime);
                },
                default(wait) => if due.is_some_and(|d| d <= Instant::now()) {
                    self.worker.on_deadline(&mut self.runtime);
                },
            }
        }
    }

    fn name(&self) -> String {
        self.worker.name().unwrap()
    }

    fn count(&self, call: &str) -> usize {
        self.engine.calls().iter().filter(|c| *c == call).count()
    }
}

#[test]
fn the_worker_starts_once_the_drivers_have_settled_and_an_edit_reloads_it_gracefully() {
    let mut h = start();
    let name = h.name();
    h.until("first observation", |h| h.count("ps") > 0);
    assert_eq!(
        h.count(&format!("create {name}")),
        0,
        "not before the drivers"
    );
    // The drivers are planned (none here) and settled: the worker goes.
    h.worker.set_scope(Vec::new(), &mut h.runtime);
    h.until("started", |h| h.count(&format!("start {}", h.name())) == 1);
    assert!(h.worker.wanted_now());
    assert_eq!(h.engine.state(&name).as_deref(), Some("running"));
    // An edit: one reload, a graceful stop with the worker's own grace, then a start.
    std::fs::write(h.dir.path().join("workers/detect.py"), "print('v2')\n").unwrap();
    h.until("reloaded", |h| h.count(&format!("start {}", h.name())) == 2);
    let calls = h.engine.calls();
    let stop = calls.iter().position(|c| *c == format!("stop {name} 7"));
    let second_start = calls.iter().rposition(|c| *c == format!("start {name}"));
    assert!(stop.is_some() && stop < second_start, "{calls:?}");
    assert_eq!(
        h.count(&format!("create {name}")),
        1,
        "a reload is not a recreate"
    );
    // No files any more: the worker is stopped and no longer wanted.
    std::fs::remove_file(h.dir.path().join("workers/detect.py")).unwrap();
    h.until("stopped", |h| !h.worker.wanted_now());
    h.until("stop asked", |h| {
        h.count(&format!("stop {} 7", h.name())) >= 2
    });
    assert_eq!(h.engine.state(&name).as_deref(), Some("exited"));
    assert_eq!(h.count(&format!("start {name}")), 2, "not started again");
    h.runtime.shutdown();
}
