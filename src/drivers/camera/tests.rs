use serde_json::json;

use super::*;

const A: &str = "11111111-1111-4111-8111-111111111111";
const B: &str = "22222222-2222-4222-8222-222222222222";

fn cfg(v: Value) -> CameraConfig {
    CameraConfig::merge(None, Some(&v)).unwrap()
}

#[test]
fn device_for_follows_the_originals_rules() {
    // (twin_to_device entry, selected_device, expected)
    let rows: Vec<(Option<Value>, Value, Option<&str>)> = vec![
        (Some(json!(2)), json!(0), Some("/dev/video2")),
        (Some(json!("3")), json!(0), Some("/dev/video3")),
        (Some(json!(" 1_0 ")), json!(0), Some("/dev/video10")),
        (Some(json!(2.9)), json!(0), Some("/dev/video2")),
        (Some(json!(true)), json!(0), Some("/dev/video1")),
        (
            Some(json!("/dev/v4l/by-id/usb-Logitech-video-index0")),
            json!(0),
            Some("/dev/v4l/by-id/usb-Logitech-video-index0"),
        ),
        (
            Some(json!(
                "/dev/v4l/by-path/pci-0000:00:14.0-usb-0:1:1.0-video-index0"
            )),
            json!(0),
            Some("/dev/v4l/by-path/pci-0000:00:14.0-usb-0:1:1.0-video-index0"),
        ),
        (
            Some(json!("rtsp://cam.local/stream")),
            json!(0),
            Some("rtsp://cam.local/stream"),
        ),
        (Some(json!("front-left")), json!(0), Some("front-left")),
        // A serial is not a video source: none, and no global fallback.
        (Some(json!("serial:213722070420")), json!(0), None),
        // Positional /dev nodes, empty strings, junk: the global selection.
        (Some(json!("/dev/video7")), json!(1), Some("/dev/video1")),
        (Some(json!("")), json!(1), Some("/dev/video1")),
        (Some(json!({"x": 1})), json!("4"), Some("/dev/video4")),
        (None, json!(5), Some("/dev/video5")),
        (None, json!("x"), None),
        (None, Value::Null, None),
        (Some(json!("1__0")), Value::Null, Some("1__0")),
    ];
    for (entry, selected, want) in rows {
        let mut map = Map::new();
        if let Some(e) = &entry {
            map.insert(A.into(), e.clone());
        }
        let c = cfg(json!({"selected_device": selected, "twin_to_device": map}));
        assert_eq!(
            c.device_for(Some(A)).as_deref(),
            want,
            "{entry:?} / {selected:?}"
        );
    }
}

#[test]
fn backend_cameras_win_and_local_only_pins_are_kept() {
    let edge = json!({"metadata": {"cameras": {"selected_device": 1,
        "twin_to_device": {A: "/dev/v4l/by-id/backend"}}}});
    let local = json!({"selected_device": 0,
        "twin_to_device": {A: "/dev/v4l/by-id/local", B: "rtsp://b"}});
    let c = CameraConfig::merge(Some(&edge), Some(&local)).unwrap();
    assert_eq!(
        c.device_for(Some(A)).as_deref(),
        Some("/dev/v4l/by-id/backend")
    );
    assert_eq!(c.device_for(Some(B)).as_deref(), Some("rtsp://b"));
    assert_eq!(c.device_for(None).as_deref(), Some("/dev/video1"));
    // Empty backend cameras: the CLI's file alone.
    let empty = json!({"metadata": {"cameras": {}}});
    let c = CameraConfig::merge(Some(&empty), Some(&local)).unwrap();
    assert_eq!(c.device_for(None).as_deref(), Some("/dev/video0"));
    assert_eq!(CameraConfig::merge(Some(&empty), None), None);
    assert_eq!(
        CameraConfig::merge(Some(&json!([1])), Some(&json!("x"))),
        None
    );
}

#[test]
fn a_multi_camera_rig_gives_each_twin_its_own_device() {
    let c =
        cfg(json!({"selected_device": 0, "twin_to_device": {A: 0, B: "/dev/v4l/by-id/usb-cam-b"}}));
    assert_eq!(c.device_for(Some(A)).as_deref(), Some("/dev/video0"));
    assert_eq!(
        c.device_for(Some(B)).as_deref(),
        Some("/dev/v4l/by-id/usb-cam-b")
    );
}

#[test]
fn v4l_mount_rule() {
    assert!(wants_v4l("cyberwave/camera-driver:1", None, true));
    assert!(wants_v4l("x/y", Some("/dev/v4l/by-id/c"), true));
    assert!(!wants_v4l("x/y", Some("/dev/video0"), true));
    assert!(!wants_v4l("cyberwave/camera-driver:1", None, false));
    assert!(is_alsa_image("cyberwave/generic-microphone:2"));
    assert!(!is_alsa_image("cyberwave/camera-driver"));
}

fn obs(rows: &[(&str, bool)]) -> Vec<(String, String, bool)> {
    rows.iter()
        .map(|(t, e)| (t.to_string(), format!("/dev/v4l/by-id/{t}"), *e))
        .collect()
}

#[test]
fn presence_flips_after_two_checks_and_resolves() {
    let mut p = Presence::default();
    // First present sighting resolves leftovers once.
    assert_eq!(
        p.check(&obs(&[(A, true)])),
        vec![PresenceEvent::Resolve { twin: A.into() }]
    );
    assert_eq!(p.check(&obs(&[(A, true)])), vec![]);
    // One missing check is a re-plug, not an alert.
    assert_eq!(p.check(&obs(&[(A, false)])), vec![]);
    assert_eq!(p.check(&obs(&[(A, true)])), vec![]);
    assert_eq!(p.check(&obs(&[(A, false)])), vec![]);
    let missing = PresenceEvent::Missing {
        twin: A.into(),
        device: format!("/dev/v4l/by-id/{A}"),
    };
    assert_eq!(p.check(&obs(&[(A, false)])), vec![missing]);
    assert_eq!(p.check(&obs(&[(A, false)])), vec![]);
    assert_eq!(p.check(&obs(&[(A, true)])), vec![]);
    assert_eq!(
        p.check(&obs(&[(A, true)])),
        vec![PresenceEvent::Resolve { twin: A.into() }]
    );
    // Missing, then no longer checked (unpinned, driver gone): resolved.
    p.check(&obs(&[(A, false)]));
    assert_eq!(p.check(&obs(&[(A, false)])).len(), 1);
    assert_eq!(
        p.check(&[]),
        vec![PresenceEvent::Resolve { twin: A.into() }]
    );
}

#[test]
fn only_managed_twins_with_dev_paths_are_checked() {
    let c = cfg(json!({"selected_device": 0,
        "twin_to_device": {A: "/dev/v4l/by-id/a", B: "rtsp://b", "33333333-3333-4333-8333-333333333333": 2}}));
    let managed: BTreeSet<String> = [A, B].iter().map(|s| s.to_string()).collect();
    assert_eq!(
        pinned_devices(&c, &managed),
        vec![(A.to_string(), "/dev/v4l/by-id/a".to_string())]
    );
}

#[test]
fn camera_files_are_read_bounded_and_hostile_ones_ignored() {
    let d = tempfile::tempdir().unwrap();
    assert_eq!(read(d.path(), &CameraFiles::default()).config(), None);
    std::fs::write(d.path().join("cameras.json"), r#"{"selected_device": 3}"#).unwrap();
    assert_eq!(
        read(d.path(), &CameraFiles::default())
            .config()
            .unwrap()
            .device_for(None)
            .as_deref(),
        Some("/dev/video3")
    );
    std::fs::write(d.path().join("edge.json"), "{not json").unwrap();
    assert_eq!(
        read(d.path(), &CameraFiles::default())
            .config()
            .unwrap()
            .device_for(None)
            .as_deref(),
        Some("/dev/video3")
    );
    std::fs::write(d.path().join("cameras.json"), vec![b' '; 2 << 20]).unwrap();
    assert_eq!(read(d.path(), &CameraFiles::default()).config(), None);
}

#[test]
fn a_camera_file_gone_bad_keeps_its_last_good_pins() {
    let d = tempfile::tempdir().unwrap();
    let cameras = d.path().join("cameras.json");
    std::fs::write(&cameras, r#"{"twin_to_device": {"t1": 4}}"#).unwrap();
    let good = read(d.path(), &CameraFiles::default());
    assert_eq!(
        good.config().unwrap().device_for(Some("t1")).as_deref(),
        Some("/dev/video4")
    );
    // Too big to read (over 1 MiB): the pins stay.
    std::fs::write(&cameras, vec![b' '; (1 << 20) + 1]).unwrap();
    let kept = read(d.path(), &good);
    assert_eq!(kept, good);
    // Malformed: the pins stay.
    std::fs::write(&cameras, "{not json").unwrap();
    assert_eq!(read(d.path(), &good), good);
    // At boot there is nothing to keep: ignored.
    assert_eq!(read(d.path(), &CameraFiles::default()).config(), None);
    // Removed on purpose: the pins go.
    std::fs::remove_file(&cameras).unwrap();
    assert_eq!(read(d.path(), &good).config(), None);
    // edge.json: only its metadata.cameras part is kept.
    std::fs::write(
        d.path().join("edge.json"),
        r#"{"uuid": "e", "metadata": {"cameras": {"selected_device": 2}, "other": "x"}}"#,
    )
    .unwrap();
    let e = read(d.path(), &CameraFiles::default());
    assert_eq!(
        e.config().unwrap().device_for(None).as_deref(),
        Some("/dev/video2")
    );
    std::fs::write(d.path().join("edge.json"), "[").unwrap();
    assert_eq!(read(d.path(), &e), e);
}
