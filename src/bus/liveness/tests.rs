use super::*;

const T: &str = "11111111-1111-4111-8111-111111111111";

fn key(ch: &str) -> String {
    format!("cw/{T}/data/{ch}")
}

#[test]
fn keys_follow_the_sdk_layout() {
    assert_eq!(parse_data_key(&key("frames")), Some((T, "frames")));
    assert_eq!(
        parse_data_key(&format!("cw/{T}/data/depth/left")),
        Some((T, "depth"))
    );
    for bad in [
        "cw/x/state/a",
        "cw//data/a",
        "cw/x/data",
        "zz/x/data/a",
        "cw/x/data/",
    ] {
        assert_eq!(parse_data_key(bad), None, "{bad}");
    }
}

#[test]
fn only_watched_twins_are_counted_and_the_rate_is_per_second() {
    let mut t = Traffic::default();
    let t0 = Instant::now();
    t.record(&key("frames"), 10, t0, 100);
    assert_eq!(t.view(T, t0, 100), Value::Null, "not watched yet");
    t.watch([T.to_string()]);
    // 20 samples a second for 12 seconds.
    for s in 0..12u64 {
        for i in 0..20u32 {
            let at = t0 + Duration::from_millis(s * 1000 + u64::from(i) * 50);
            t.record(&key("frames"), 1024, at, 100 + s);
        }
    }
    t.record("cw/other/data/frames", 1, t0, 111);
    let now = t0 + Duration::from_secs(12);
    let v = t.view(T, now, 112);
    assert_eq!(v["samples"], 240);
    assert_eq!(v["bytes"], 240 * 1024);
    assert_eq!(v["rate_hz"], 20.0);
    assert_eq!(v["channels"], json!(["frames"]));
    assert!(v["last_sample_age_s"].as_f64().unwrap() <= 0.1);
    // Quiet for 30 s: no rate, an old last sample.
    let later = now + Duration::from_secs(30);
    let v = t.view(T, later, 142);
    assert_eq!(v["rate_hz"], 0.0);
    assert!(v["last_sample_age_s"].as_f64().unwrap() >= 30.0);
    // Unwatched twins are forgotten.
    t.watch(Vec::new());
    assert_eq!(t.view(T, later, 142), Value::Null);
}

#[test]
fn hostile_channel_names_and_stats_stay_bounded() {
    let mut t = Traffic::default();
    t.watch([T.to_string()]);
    let now = Instant::now();
    for i in 0..1000 {
        t.record(&key(&format!("c{i}")), 1, now, 1);
    }
    assert_eq!(
        t.view(T, now, 2)["channels"].as_array().unwrap().len(),
        MAX_CHANNELS
    );
    for i in 0..100 {
        t.record_worker_stats(
            &format!("cw/_monitor/h{i}/worker_stats"),
            b"{\"zenoh_connected\": true}",
            now,
        );
    }
    t.record_worker_stats("cw/_monitor/edge/other", b"{}", now);
    let w = t.worker_view(now);
    assert_eq!(w.as_object().unwrap().len(), 8);
    assert_eq!(w["h0"]["zenoh_connected"], true);
    t.record_worker_stats(
        "cw/_monitor/h0/worker_stats",
        &vec![b'x'; MAX_STATS_BYTES + 1],
        now,
    );
    assert_eq!(t.worker_view(now)["h0"]["zenoh_connected"], Value::Null);
}

#[test]
fn a_quiet_running_driver_stalls_and_data_resolves_it() {
    let mut s = Stalls::default();
    let t0 = Instant::now();
    let after = Duration::from_secs(5);
    let run = |last: Option<Instant>| {
        vec![Running {
            twin: T.into(),
            since: t0,
            last_sample: last,
        }]
    };
    // Just started: not yet.
    assert_eq!(
        s.check(after, &run(None), t0 + Duration::from_secs(4)),
        vec![]
    );
    assert_eq!(
        s.check(after, &run(None), t0 + Duration::from_secs(5)),
        vec![StallEvent::Stalled {
            twin: T.into(),
            idle: after
        }]
    );
    // Still quiet: alerted once.
    assert_eq!(
        s.check(after, &run(None), t0 + Duration::from_secs(9)),
        vec![]
    );
    // Data: resolved.
    let t10 = t0 + Duration::from_secs(10);
    assert_eq!(
        s.check(after, &run(Some(t10)), t10),
        vec![StallEvent::Resolved { twin: T.into() }]
    );
    // A sample from before this container started does not count.
    let old = vec![Running {
        twin: T.into(),
        since: t10,
        last_sample: Some(t0),
    }];
    assert_eq!(s.check(after, &old, t10 + Duration::from_secs(4)), vec![]);
    assert_eq!(s.check(after, &old, t10 + Duration::from_secs(6)).len(), 1);
    // The driver stops: its stall is resolved (driver_health speaks for it).
    assert_eq!(
        s.check(after, &[], t10 + Duration::from_secs(7)),
        vec![StallEvent::Resolved { twin: T.into() }]
    );
}
