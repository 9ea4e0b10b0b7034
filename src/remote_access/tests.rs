//! The tunnel role on the runtime, against the recording fake engine: what the thread is told
//! (up, exited — once, never revived), and how a stop and a next session follow each other
//! (the old container removed before the new one is created).

use std::path::Path;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, unbounded};

use super::*;
use crate::containers::runtime::{Setup, Tuning};
use crate::engine::fake::FakeEngine;

const S1: &str = "5e551001-0000-4000-8000-000000000001";
const S2: &str = "5e551002-0000-4000-8000-000000000002";

struct Harness {
    engine: Arc<FakeEngine>,
    runtime: Runtime,
    events: Receiver<RuntimeEvent>,
    tunnel: Tunnel,
    told: Receiver<Ctl>,
    _dir: tempfile::TempDir,
}

fn spec_for(session: &str) -> ContainerSpec {
    frpc::spec(
        session,
        &frpc::SpecContext {
            image: "frpc:local",
            config_file: Path::new("/cfg/remote-access/frpc.toml"),
            ca_file: None,
            owner: "fp-1",
            log_max_size: None,
            log_max_file: "3",
            user: (0, 0),
        },
    )
}

fn start() -> Harness {
    let engine = Arc::new(FakeEngine::with_images(&["frpc:local"]));
    let dir = tempfile::tempdir().unwrap();
    let (mut runtime, events) = Runtime::start(Setup {
        engine: engine.clone(),
        config_dir: dir.path().to_path_buf(),
        owner: "fp-1".into(),
        tuning: Tuning::example(3),
    });
    runtime.add_role(role(Redactions::default()));
    let (tx, told) = unbounded();
    let tunnel = Tunnel::new(Some(tx), engine.clone(), Default::default());
    Harness {
        engine,
        runtime,
        events,
        tunnel,
        told,
        _dir: dir,
    }
}

impl Harness {
    /// Runs the supervisor's part for `for_` (or until `done`), collecting what the thread
    /// was told.
    fn pump(&mut self, for_: Duration, done: impl Fn(&[String], &[String]) -> bool) -> Vec<String> {
        let deadline = Instant::now() + for_;
        let mut told = Vec::new();
        while Instant::now() < deadline && !done(&told, &self.engine.calls()) {
            if let Ok(ev) = self.events.recv_timeout(Duration::from_millis(20)) {
                self.tunnel.before_runtime_event(&ev);
                self.runtime.on_event(ev);
                self.tunnel.after_runtime_event(&mut self.runtime);
            }
            for m in self.told.try_iter() {
                told.push(match m {
                    Ctl::Up(s) => format!("up {s}"),
                    Ctl::Exited(s) => format!("exited {s}"),
                    Ctl::LaunchFailed { session, .. } => format!("failed {session}"),
                    _ => "other".into(),
                });
            }
        }
        told
    }

    fn count(&self, call: &str) -> usize {
        self.engine.calls().iter().filter(|c| *c == call).count()
    }
}

#[test]
fn an_exit_is_told_once_and_never_revived_and_the_next_session_waits_for_the_removal() {
    let mut h = start();
    h.pump(Duration::from_secs(5), |_, calls| {
        calls.iter().any(|c| c == "ps")
    });
    let s1 = spec_for(S1);
    h.tunnel
        .on_event(TunnelEvent::Run(Box::new(s1.clone())), &mut h.runtime);
    let told = h.pump(Duration::from_secs(5), |t, _| !t.is_empty());
    assert_eq!(told, [format!("up {S1}")]);
    assert_eq!(h.count("create cyberwave-remote-access"), 1);

    // frpc exits: the thread hears it once; the runtime does not start it again.
    let hash = s1.spec_hash.clone();
    h.engine.put(
        CONTAINER_NAME,
        "exited",
        &[(crate::containers::LABEL_SPEC_HASH, hash.as_str())],
        "no",
    );
    assert!(h.engine.event(&format!("die {CONTAINER_NAME} 1")));
    let told = h.pump(Duration::from_secs(5), |t, _| !t.is_empty());
    assert_eq!(told, [format!("exited {S1}")]);
    h.runtime.tick();
    let told = h.pump(Duration::from_secs(1), |_, _| false);
    assert!(told.is_empty(), "{told:?}");
    assert_eq!(
        h.count("start cyberwave-remote-access"),
        1,
        "{:?}",
        h.engine.calls()
    );

    // The thread stops it and opens another session at once: the removal comes first.
    h.tunnel
        .on_event(TunnelEvent::Stop { session: S1.into() }, &mut h.runtime);
    h.tunnel
        .on_event(TunnelEvent::Run(Box::new(spec_for(S2))), &mut h.runtime);
    let told = h.pump(Duration::from_secs(5), |t, _| !t.is_empty());
    assert_eq!(told, [format!("up {S2}")]);
    let calls = h.engine.calls();
    let at = |c: &str| calls.iter().rposition(|x| x == c).unwrap_or(usize::MAX);
    assert!(
        at("remove cyberwave-remote-access") < at("create cyberwave-remote-access"),
        "{calls:?}"
    );
    assert_eq!(h.count("create cyberwave-remote-access"), 2);

    // A close of the running session removes it, gracefully: stop before remove.
    h.tunnel
        .on_event(TunnelEvent::Stop { session: S2.into() }, &mut h.runtime);
    h.pump(Duration::from_secs(5), |_, calls| {
        calls
            .iter()
            .filter(|c| *c == "remove cyberwave-remote-access")
            .count()
            == 2
    });
    let calls = h.engine.calls();
    let stop = calls
        .iter()
        .rposition(|c| c.starts_with("stop cyberwave-remote-access"));
    let remove = calls
        .iter()
        .rposition(|c| c == "remove cyberwave-remote-access");
    assert!(stop.is_some() && stop < remove, "{calls:?}");
    h.runtime.shutdown();
}
