//! The runtime against the recording fake engine, threads and all: what it launches, adopts,
//! replaces and stops, in which order, and what its role hears — the decisions that used to
//! be reached only by the integration tests against Docker.

use std::sync::{Arc, Mutex};

use serde_json::json;

use super::*;
use crate::containers::follow::LogEvent;
use crate::containers::launch::LaunchHooks;
use crate::engine::fake::FakeEngine;

/// A role's policy that writes down what it hears.
struct Heard(Arc<Mutex<Vec<String>>>);

impl Heard {
    fn push(&self, s: String) {
        self.0.lock().unwrap().push(s);
    }
}

impl Policy for Heard {
    fn up(&mut self, spec: &ContainerSpec, _id: &str) {
        self.push(format!("up {}", spec.name));
    }
    fn launch_failed(&mut self, spec: &ContainerSpec, f: &LaunchFailure, _retry_in: Duration) {
        self.push(format!("failed {} {}", spec.name, f.phase));
    }
    fn restart_loop(&mut self, spec: &ContainerSpec, l: &Loop) {
        self.push(format!("loop {} {}", spec.name, l.deaths_in_window));
    }
    fn went_down(&mut self, spec: &ContainerSpec, status: &str) {
        self.push(format!("down {} {status}", spec.name));
    }
    fn lock_overridden(&mut self, spec: &ContainerSpec, holders: &[String], _waited: Duration) {
        self.push(format!("lock overridden {} {holders:?}", spec.name));
    }
    fn rolled_back(
        &mut self,
        failed: &ContainerSpec,
        why: &crate::containers::updates::Failed,
        back: &crate::containers::updates::Good,
    ) {
        self.push(format!(
            "rolled back {} {} -> {} ({})",
            failed.name, failed.image, back.image_id, why.reason
        ));
    }
    fn log_sink(&self, spec: &ContainerSpec) -> crate::containers::follow::Sink {
        let (heard, name) = (self.0.clone(), spec.name.clone());
        Box::new(move |ev| {
            if let LogEvent::Line(l) = ev {
                heard.lock().unwrap().push(format!("log {name} {l}"));
            }
        })
    }
}

struct NoHooks;

impl LaunchHooks for NoHooks {
    fn prepare(&self, _: &ContainerSpec, _: &Value) -> Result<(), LaunchFailure> {
        Ok(())
    }
    fn progress(&self, _: &ContainerSpec, _: &str, _: &str) {}
}

struct Harness {
    engine: Arc<FakeEngine>,
    runtime: Runtime,
    rx: Receiver<RuntimeEvent>,
    heard: Arc<Mutex<Vec<String>>>,
    _dir: tempfile::TempDir,
}

fn start(engine: FakeEngine) -> Harness {
    start_in(
        Arc::new(engine),
        tempfile::tempdir().unwrap(),
        Tuning::example(3),
    )
}

/// A runtime on `engine` keeping its files in `dir`.
fn start_in(engine: Arc<FakeEngine>, dir: tempfile::TempDir, tuning: Tuning) -> Harness {
    let (mut runtime, rx) = Runtime::start(Setup {
        engine: engine.clone(),
        config_dir: dir.path().to_path_buf(),
        owner: "fp-1".into(),
        tuning,
    });
    let heard = Arc::new(Mutex::new(Vec::new()));
    runtime.add_role(RoleSetup {
        role: Role::Driver,
        hooks: Arc::new(NoHooks),
        policy: Box::new(Heard(heard.clone())),
    });
    Harness {
        engine,
        runtime,
        rx,
        heard,
        _dir: dir,
    }
}

impl Harness {
    /// Hands the runtime its events until `done` holds (5 s at most).
    fn until(&mut self, what: &str, done: impl Fn(&Harness) -> bool) {
        self.pump(what, Duration::from_secs(5), false, done);
    }

    /// [`Harness::until`], also calling the runtime when its deadline passes (as the
    /// supervisor does).
    fn until_timed(&mut self, what: &str, within: Duration, done: impl Fn(&Harness) -> bool) {
        self.pump(what, within, true, done);
    }

    /// Runs the runtime as the supervisor would for `d`, deadlines included.
    fn quiet_for(&mut self, d: Duration) {
        let end = Instant::now() + d;
        self.pump("a quiet while", d + Duration::from_secs(1), true, |_| {
            Instant::now() >= end
        });
    }

    fn pump(&mut self, what: &str, within: Duration, timed: bool, done: impl Fn(&Harness) -> bool) {
        let deadline = Instant::now() + within;
        while !done(self) {
            assert!(
                Instant::now() < deadline,
                "{what}: calls {:?}, heard {:?}",
                self.engine.calls(),
                self.heard()
            );
            if timed
                && self
                    .runtime
                    .next_deadline()
                    .is_some_and(|t| t <= Instant::now())
            {
                self.runtime.on_deadline();
            }
            if let Ok(ev) = self.rx.recv_timeout(Duration::from_millis(50)) {
                self.runtime.on_event(ev);
            }
        }
    }

    fn heard(&self) -> Vec<String> {
        self.heard.lock().unwrap().clone()
    }

    /// How many times the engine got exactly `call`.
    fn calls_of(&self, call: &str) -> usize {
        self.engine.calls().iter().filter(|c| *c == call).count()
    }

    fn called(&self, call: &str) -> bool {
        self.engine.calls().iter().any(|c| c == call)
    }

    fn want(&mut self, specs: &[ContainerSpec]) {
        let desired = specs
            .iter()
            .map(|s| (s.name.clone(), (s.clone(), json!({"uuid": s.owner}))))
            .collect();
        self.runtime.set_desired(Role::Driver, desired);
    }
}

fn spec(name: &str, hash: &str) -> ContainerSpec {
    let mut s = crate::containers::spec::example(Role::Driver);
    s.name = name.into();
    s.image = "drv:local".into();
    s.pull = crate::containers::spec::Pull::IfMissing;
    s.spec_hash = hash.into();
    s.restart = "unless-stopped".into();
    s.options = ["--name", name, "--restart", "unless-stopped", "--label"]
        .iter()
        .map(|s| s.to_string())
        .chain([format!("{}={hash}", crate::containers::LABEL_SPEC_HASH)])
        .collect();
    s
}

fn ours(hash: &str) -> Vec<(&'static str, String)> {
    vec![(crate::containers::LABEL_SPEC_HASH, hash.to_string())]
}

/// `cyberwave-driver-a` running before the runtime starts, then desired and adopted. The
/// first list lands before it is desired (an adoption at start): a death before the next list
/// is still a transition the role hears of.
fn adopted_running() -> Harness {
    let engine = FakeEngine::with_images(&["drv:local"]);
    put(&engine, "cyberwave-driver-a", "running", "h");
    let mut h = start(engine);
    h.until("first observation", |h| {
        h.runtime.observed_state("cyberwave-driver-a").is_some()
    });
    h.want(&[spec("cyberwave-driver-a", "h")]);
    h.until("seen running", |h| h.runtime.any_running(Role::Driver));
    h
}

fn put(engine: &FakeEngine, name: &str, state: &str, hash: &str) {
    let labels = ours(hash);
    let labels: Vec<(&str, &str)> = labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
    engine.put(name, state, &labels, "unless-stopped");
}

#[test]
fn launches_what_is_missing_and_adopts_what_runs_with_the_same_spec() {
    let engine = FakeEngine::with_images(&["drv:local"]);
    put(&engine, "cyberwave-driver-a", "running", "h");
    let mut h = start(engine);
    h.until("first observation", |h| h.called("ps"));
    h.want(&[
        spec("cyberwave-driver-a", "h"),
        spec("cyberwave-driver-b", "h"),
    ]);
    h.until("b up", |h| {
        h.heard().contains(&"up cyberwave-driver-b".into())
    });
    h.until("settled", |h| h.runtime.settled(Role::Driver));
    let calls = h.engine.calls();
    assert!(h.called("create cyberwave-driver-b") && h.called("start cyberwave-driver-b"));
    // The running container with the same spec is adopted: never recreated, never stopped.
    assert!(
        calls.iter().all(|c| !c.ends_with("cyberwave-driver-a")
            || c == "inspect cyberwave-driver-a"
            || c.starts_with("logs ")),
        "{calls:?}"
    );
    assert!(
        !calls
            .iter()
            .any(|c| c.starts_with("stop cyberwave-driver-a"))
    );
    // Its log is followed and reaches the role's sink.
    h.until("log followed", |h| h.called("logs cyberwave-driver-a"));
    assert!(
        h.engine
            .log_line("cyberwave-driver-a", "2026-12-03T10:00:00.5Z hello")
    );
    h.until("log line", |h| {
        h.heard().contains(&"log cyberwave-driver-a hello".into())
    });
    h.runtime.shutdown();
}

#[test]
fn a_changed_spec_switches_the_running_container_once_its_successor_exists() {
    let engine = FakeEngine::with_images(&["drv:local"]);
    put(&engine, "cyberwave-driver-a", "running", "old");
    let mut h = start(engine);
    h.until("first observation", |h| h.called("ps"));
    h.want(&[spec("cyberwave-driver-a", "new")]);
    h.until("replaced", |h| {
        h.heard().contains(&"up cyberwave-driver-a".into())
    });
    let calls = h.engine.calls();
    let at = |c: &str| calls.iter().position(|x| x == c).unwrap_or(usize::MAX);
    let (create, stop, start, remove) = (
        at("create cyberwave-driver-a.next"),
        at("stop cyberwave-driver-a.old 10"),
        at("start cyberwave-driver-a"),
        at("remove cyberwave-driver-a.old"),
    );
    assert!(
        create < stop && stop < start && start < remove && remove < usize::MAX,
        "{calls:?}"
    );
    h.runtime.shutdown();
}

#[test]
fn a_restart_loop_is_stopped_with_the_policy_off_and_told_to_the_role() {
    let engine = FakeEngine::with_images(&["drv:local"]);
    put(&engine, "cyberwave-driver-a", "running", "h");
    let mut h = start(engine);
    h.until("first observation", |h| h.called("ps"));
    h.want(&[spec("cyberwave-driver-a", "h")]);
    h.until("events open", |h| h.called("events"));
    // Three deaths in the window are the threshold; the fourth is a loop.
    for _ in 0..4 {
        assert!(h.engine.event("die cyberwave-driver-a 1"));
    }
    h.until("loop stopped", |h| {
        h.heard().contains(&"loop cyberwave-driver-a 4".into())
    });
    let calls = h.engine.calls();
    let at = |c: &str| calls.iter().position(|x| x == c).unwrap_or(usize::MAX);
    assert!(
        at("restart-policy cyberwave-driver-a no") < at("stop cyberwave-driver-a 10"),
        "{calls:?}"
    );
    assert_eq!(
        h.engine.state("cyberwave-driver-a").as_deref(),
        Some("exited")
    );
    // The breaker holds it down: observations do not relaunch it before the retry.
    h.runtime.request_observe(); // a list, whatever the tick decides
    h.until("observed again", |h| {
        h.engine.calls().iter().filter(|c| *c == "ps").count() >= 3
    });
    assert!(!h.called("create cyberwave-driver-a") && !h.called("start cyberwave-driver-a"));
    h.runtime.shutdown();
}

#[test]
fn a_container_that_stops_is_told_to_its_role_once() {
    let mut h = adopted_running();
    put(&h.engine, "cyberwave-driver-a", "exited", "h");
    h.runtime.request_observe(); // a list, whatever the tick decides
    h.until("down", |h| {
        h.heard().contains(&"down cyberwave-driver-a exited".into())
    });
    h.runtime.request_observe(); // a list, whatever the tick decides
    h.until("observed again", |h| {
        h.engine.calls().iter().filter(|c| *c == "ps").count() >= 3
    });
    let downs = h.heard().iter().filter(|l| l.starts_with("down ")).count();
    assert_eq!(downs, 1, "{:?}", h.heard());
    h.runtime.shutdown();
}

#[test]
fn a_failed_create_is_told_to_the_role_and_retried_later_not_at_once() {
    let engine = FakeEngine::with_images(&["drv:local"]);
    engine.fail(
        "create cyberwave-driver-a",
        "Error response from daemon: bad mount",
    );
    let mut h = start(engine);
    h.until("first observation", |h| h.called("ps"));
    h.want(&[spec("cyberwave-driver-a", "h")]);
    h.until("failed", |h| {
        h.heard()
            .iter()
            .any(|l| l.starts_with("failed cyberwave-driver-a"))
    });
    h.runtime.request_observe(); // a list, whatever the tick decides
    h.until("observed again", |h| {
        h.engine.calls().iter().filter(|c| *c == "ps").count() >= 3
    });
    let creates = h.calls_of("create cyberwave-driver-a");
    assert_eq!(creates, 1, "the retry waits for its backoff (30 s here)");
    assert!(
        h.runtime.settled(Role::Driver),
        "a failed launch counts as settled"
    );
    h.runtime.shutdown();
}

#[test]
fn a_list_taken_before_a_launch_finished_does_not_launch_it_again() {
    let engine = FakeEngine::with_images(&["drv:local"]);
    if let Ok(mut s) = engine.slow.lock() {
        s.insert("create".into(), Duration::from_millis(400));
    }
    let mut h = start(engine);
    h.until("first observation", |h| h.called("ps"));
    h.until("first list handled", |h| h.runtime.settled(Role::Driver));
    h.want(&[spec("cyberwave-driver-a", "h")]);
    // A list asked for while the create is under way: taken before the container exists.
    h.until("create begun", |h| h.called("create cyberwave-driver-a"));
    h.runtime.request_observe(); // a list, whatever the tick decides
    // Hand the runtime the launch's result first, then that older list.
    let (mut ps, mut launched) = (None, None);
    let deadline = Instant::now() + Duration::from_secs(5);
    while (ps.is_none() || launched.is_none()) && Instant::now() < deadline {
        match h.rx.recv_timeout(Duration::from_millis(50)) {
            Ok(ev @ RuntimeEvent::Exec(ExecEvent::Ps(_))) if ps.is_none() => ps = Some(ev),
            Ok(ev @ RuntimeEvent::Launched { .. }) => launched = Some(ev),
            Ok(other) => h.runtime.on_event(other),
            Err(_) => {}
        }
    }
    h.runtime.on_event(launched.expect("launched"));
    h.runtime.on_event(ps.expect("a list"));
    // Whatever follows (the next lists) must not create it a second time.
    let quiet = Instant::now() + Duration::from_millis(1500);
    while Instant::now() < quiet {
        if let Ok(ev) = h.rx.recv_timeout(Duration::from_millis(50)) {
            h.runtime.on_event(ev);
        }
    }
    let creates = h.calls_of("create cyberwave-driver-a");
    assert_eq!(creates, 1, "{:?}", h.engine.calls());
    assert!(
        !h.called("stop cyberwave-driver-a 10"),
        "{:?}",
        h.engine.calls()
    );
    h.runtime.shutdown();
}

#[test]
fn with_the_event_stream_open_a_quiet_tick_lists_only_every_fourth_time() {
    let mut h = start(FakeEngine::default());
    h.until("the event stream opened and the first list landed", |h| {
        h.runtime.events_live && h.called("ps") && !h.runtime.observe_pending
    });
    let lists = |h: &Harness| h.calls_of("ps");
    let before = lists(&h);
    for _ in 1..super::OBSERVE_EVERY_TICKS {
        h.runtime.tick();
        std::thread::sleep(Duration::from_millis(30));
        while let Ok(ev) = h.rx.try_recv() {
            h.runtime.on_event(ev);
        }
    }
    assert_eq!(
        lists(&h),
        before,
        "quiet ticks listed: {:?}",
        h.engine.calls()
    );
    h.runtime.tick();
    h.until("the backstop list", |h| lists(h) == before + 1);
    // Without the stream, every tick lists.
    h.runtime
        .on_event(RuntimeEvent::Exec(ExecEvent::EventStream(false)));
    h.until("settled again", |h| !h.runtime.observe_pending);
    let before = lists(&h);
    h.runtime.tick();
    h.until("a list on the next tick", |h| lists(h) == before + 1);
    h.runtime.shutdown();
}

#[test]
fn a_death_the_engine_lists_late_is_seen_by_a_second_look() {
    let mut h = adopted_running();
    h.until("the event stream open and the list after adoption", |h| {
        h.runtime.events_live && !h.runtime.observe_pending
    });
    // `die` arrives while the engine still lists the container running (Docker 20.10).
    let lists = h.calls_of("ps");
    assert!(h.engine.event("die cyberwave-driver-a 1"));
    h.until("the list the death asked for", |h| {
        h.runtime.recheck_at.is_some() && h.calls_of("ps") > lists && !h.runtime.observe_pending
    });
    assert!(!h.heard().iter().any(|l| l.starts_with("down ")));
    put(&h.engine, "cyberwave-driver-a", "exited", "h");
    // No tick: the second look is a deadline of its own, two seconds after the death.
    let due = h.runtime.next_deadline().expect("a second look is due");
    assert!(due <= Instant::now() + RECHECK_AFTER_DEATH);
    std::thread::sleep(due.saturating_duration_since(Instant::now()));
    h.runtime.on_deadline();
    h.until("down", |h| {
        h.heard().contains(&"down cyberwave-driver-a exited".into())
    });
    h.runtime.shutdown();
}

mod gates;
mod locks;
mod rollback;
