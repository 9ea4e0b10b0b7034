//! The driver role on the runtime over the recording fake engine: plans become containers,
//! and one twin re-planned touches that twin's containers only.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use serde_json::json;

use super::*;
use crate::containers::runtime::{RuntimeEvent, Setup, Tuning};
use crate::drivers::spec::plan_twins;
use crate::engine::fake::FakeEngine;
use crate::twins::Twin;

const A: &str = "aaaaaaaa-1111-4000-8000-000000000001";
const B: &str = "bbbbbbbb-1111-4000-8000-000000000002";

fn tuning() -> DriverTuning {
    DriverTuning {
        runtime: Tuning::example(3),
        log_lines_per_second: 100.0,
        troubleshooting_url: "https://docs.cyberwave.com".into(),
        card_update_interval: Duration::from_secs(1),
        device_check_every: Duration::from_secs(60),
        create_timeout: Duration::from_secs(30),
        remove_timeout: Duration::from_secs(60),
    }
}

/// Two twins, each with its asset's local image; `b_param` is in B's params.
fn desired(b_param: &str) -> (Vec<Twin>, BTreeMap<String, Value>) {
    let twin = |uuid: &str, asset: &str| json!({"uuid": uuid, "name": uuid, "asset_uuid": asset, "metadata": {"edge_fingerprint": "fp"}});
    let asset = |image: &str, param: &str| json!({"metadata": {"drivers": {"default": {"docker_image": image, "privileged": false, "params": ["-e", param]}}}});
    let a_asset = "aaaaaaaa-2222-4000-8000-000000000001";
    let b_asset = "bbbbbbbb-2222-4000-8000-000000000002";
    let twins = Twin::parse_all(&[twin(A, a_asset), twin(B, b_asset)]).0;
    let assets = BTreeMap::from([
        (a_asset.to_string(), asset("drv-a:local", "MODE=a")),
        (b_asset.to_string(), asset("drv-b:local", b_param)),
    ]);
    (twins, assets)
}

struct Harness {
    engine: Arc<FakeEngine>,
    drivers: Drivers,
    runtime: Runtime,
    rx: Receiver<RuntimeEvent>,
    _dir: tempfile::TempDir,
}

fn start() -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let engine = Arc::new(FakeEngine::with_images(&["drv-a:local", "drv-b:local"]));
    let mut ctx = crate::drivers::spec::example_context();
    ctx.config_dir = dir.path().to_path_buf();
    let tuning = tuning();
    let (drivers, role) = Drivers::new(
        ctx,
        engine.clone(),
        &tuning,
        None,
        AlertSink::new(None, None, None),
    );
    let (mut runtime, rx) = Runtime::start(Setup {
        engine: engine.clone(),
        config_dir: dir.path().to_path_buf(),
        owner: "fp".into(),
        tuning: tuning.runtime.clone(),
    });
    runtime.add_role(role);
    Harness {
        engine,
        drivers,
        runtime,
        rx,
        _dir: dir,
    }
}

impl Harness {
    fn until(&mut self, what: &str, done: impl Fn(&Harness) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !done(self) {
            assert!(
                Instant::now() < deadline,
                "{what}: {:?}",
                self.engine.calls()
            );
            if let Ok(ev) = self.rx.recv_timeout(Duration::from_millis(50)) {
                self.drivers.on_event(&ev);
                self.runtime.on_event(ev);
            }
        }
    }

    fn count(&self, call: &str) -> usize {
        self.engine.calls().iter().filter(|c| *c == call).count()
    }
}

fn name(twin: &str) -> String {
    format!("cyberwave-driver-{}", &twin[..8])
}

#[test]
fn plans_become_containers_and_a_replanned_twin_touches_only_its_own() {
    let mut h = start();
    h.until("first observation", |h| h.count("ps") > 0);
    let (twins, assets) = desired("MODE=b1");
    let linked = vec![A.to_string(), B.to_string()];
    let plans = plan_twins(&twins, &assets, &linked, &h.drivers.ctx);
    h.drivers.set_plans(&mut h.runtime, plans, false);
    h.until("both up", |h| {
        h.count(&format!("start {}", name(A))) == 1 && h.count(&format!("start {}", name(B))) == 1
    });
    let planned: Vec<&str> = h.drivers.planned().collect();
    assert_eq!(planned, [A, B]);
    // B's settings change: only B is planned again and replaced; A is left running as it is.
    let calls_before = h.engine.calls().len();
    let (twins, assets) = desired("MODE=b2");
    let plans = plan_twins(&twins, &assets, &[B.to_string()], &h.drivers.ctx);
    h.drivers.replan(&mut h.runtime, plans, false);
    h.until("B replaced", |h| {
        h.count(&format!("start {}", name(B))) == 2
    });
    let after: Vec<String> = h.engine.calls()[calls_before..].to_vec();
    // Its log may be (re)attached meanwhile: following is not touching it.
    let ops_on_a = after
        .iter()
        .filter(|c| c.contains(&name(A)) && !c.starts_with("logs "));
    assert_eq!(ops_on_a.count(), 0, "A was touched: {after:?}");
    // B's successor is created beside it; the running B is then stopped with its grace
    // period before the successor starts.
    let at = |c: &str| after.iter().position(|x| x.starts_with(c));
    let (create, stop, start) = (
        at(&format!("create {}.next", name(B))),
        at(&format!("stop {}.old ", name(B))),
        at(&format!("start {}", name(B))),
    );
    assert!(
        create.is_some() && create < stop && stop < start,
        "{after:?}"
    );
    let planned: Vec<&str> = h.drivers.planned().collect();
    assert_eq!(planned, [A, B], "A keeps its plan");
    h.runtime.shutdown();
}
