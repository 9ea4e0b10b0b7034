//! Probation and rollback on the fake engine: a spec that keeps running for its probation is
//! the last good one; a successor that dies within its probation is switched back to it by
//! image id, its role hears of it, it is not tried again, and all of that survives a restart
//! of the runtime.

use super::*;

const A: &str = "cyberwave-driver-a";

fn quick() -> Tuning {
    Tuning {
        probation: Duration::from_secs(1),
        ..Tuning::example(3)
    }
}

fn on(image: &str, hash: &str) -> ContainerSpec {
    let mut s = spec(A, hash);
    s.image = image.into();
    s
}

fn book(h: &Harness) -> Value {
    let text =
        std::fs::read_to_string(h._dir.path().join(crate::containers::updates::UPDATES_FILE))
            .unwrap_or_default();
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

fn image_of(h: &Harness, name: &str) -> Option<String> {
    h.engine.container_images.lock().unwrap().get(name).cloned()
}

/// A runtime with a short probation, v1 (`drv:local`, `h1`) desired.
fn v1_wanted() -> (Arc<FakeEngine>, Harness) {
    let engine = Arc::new(FakeEngine::with_images(&["drv:local", "drv2:local"]));
    let mut h = start_in(engine.clone(), tempfile::tempdir().unwrap(), quick());
    h.until("first observation", |h| h.called("ps"));
    h.want(&[on("drv:local", "h1")]);
    (engine, h)
}

#[test]
fn a_successor_dying_in_probation_is_rolled_back_by_image_id_and_not_retried() {
    let (engine, mut h) = v1_wanted();
    h.until_timed("last good", Duration::from_secs(5), |h| {
        book(h)[A]["last_good"]["image_id"] == json!("sha256:drv:local")
    });
    // v2: switched to, on probation.
    h.want(&[on("drv2:local", "h2")]);
    h.until("v2 up", |h| image_of(h, A).as_deref() == Some("drv2:local"));
    h.until("v2 on trial", |h| {
        book(h)[A]["trial"]["spec_hash"] == json!("h2")
    });
    // It crashes (Docker restarts it): the events stream says it died.
    assert!(h.engine.event(&format!("die {A} 3")));
    h.until("rolled back", |h| {
        h.heard().iter().any(|l| {
            l == &format!("rolled back {A} drv2:local -> sha256:drv:local (exited with code 3)")
        })
    });
    h.until("v1 back", |h| {
        image_of(h, A).as_deref() == Some("sha256:drv:local")
            && h.engine.state(A).as_deref() == Some("running")
    });
    assert_eq!(book(&h)[A]["failed"]["spec_hash"], json!("h2"));
    let creates = h.calls_of(&format!("create {A}.next"));
    // The role still wants v2: nothing is tried again.
    h.want(&[on("drv2:local", "h2")]);
    h.quiet_for(Duration::from_millis(1500));
    assert_eq!(
        h.calls_of(&format!("create {A}.next")),
        creates,
        "{:?}",
        h.engine.calls()
    );
    h.runtime.shutdown();

    // A new runtime (the daemon restarted) still wanting v2 keeps v1, by the book.
    let Harness { _dir, .. } = h;
    let mut h = start_in(engine, _dir, quick());
    h.until("first observation", |h| {
        h.runtime.observed_state(A).is_some()
    });
    h.want(&[on("drv2:local", "h2")]);
    h.until("seen running", |h| h.runtime.any_running(Role::Driver));
    assert_eq!(h.calls_of(&format!("create {A}.next")), creates);
    let status = h.runtime.snapshot();
    let update = &status[0].1["update"];
    assert_eq!(
        update["rolled_back"]["image"],
        json!("drv2:local"),
        "{update}"
    );
    assert_eq!(update["last_good"]["image"], json!("drv:local"), "{update}");
    // The role moves on to v3: it is tried.
    h.want(&[on("drv2:local", "h3")]);
    h.until("v3 up", |h| {
        h.calls_of(&format!("create {A}.next")) == creates + 1
    });
    h.until("failure forgotten", |h| book(h)[A]["failed"].is_null());
    h.runtime.shutdown();
}

#[test]
fn a_restart_reading_an_older_cached_spec_keeps_the_newer_container_until_the_live_answer() {
    let (engine, mut h) = v1_wanted();
    h.until("v1 up", |h| image_of(h, A).is_some());
    h.want(&[on("drv2:local", "h2")]);
    h.until_timed("v2 last good", Duration::from_secs(5), |h| {
        book(h)[A]["last_good"]["spec"]["spec_hash"] == json!("h2")
    });
    h.runtime.shutdown();
    let Harness { _dir, .. } = h;
    let mut h = start_in(engine, _dir, quick());
    h.until("first observation", |h| {
        h.runtime.observed_state(A).is_some()
    });
    let creates = h.calls_of(&format!("create {A}.next"));
    let cached = |h: &mut Harness, provisional| {
        let s = on("drv:local", "h1");
        let desired = BTreeMap::from([(A.to_string(), (s, json!({"uuid": "o"})))]);
        h.runtime
            .set_desired_from(Role::Driver, desired, provisional);
    };
    // The cache still says v1: v2, which we switched to ourselves, is kept.
    cached(&mut h, true);
    h.quiet_for(Duration::from_millis(1500));
    assert_eq!(
        h.calls_of(&format!("create {A}.next")),
        creates,
        "{:?}",
        h.engine.calls()
    );
    // The live answer says v1 too: now it decides.
    cached(&mut h, false);
    h.until("back to v1", |h| {
        h.calls_of(&format!("create {A}.next")) == creates + 1
    });
    h.runtime.shutdown();
}
