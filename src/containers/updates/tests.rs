use super::*;
use crate::containers::spec::example;

fn spec(hash: &str, image: &str) -> ContainerSpec {
    let mut s = example(Role::Driver);
    s.name = "cyberwave-driver-a".into();
    s.spec_hash = hash.into();
    s.image = image.into();
    s.env.insert("ROBOT_IP".into(), "10.0.0.5".into());
    s.options = vec![
        "--name".into(),
        "cyberwave-driver-a".into(),
        "--label".into(),
        format!("{}={hash}", crate::containers::LABEL_SPEC_HASH),
    ];
    s
}

fn good(hash: &str, image: &str, image_id: &str) -> Good {
    Good {
        spec: store(&spec(hash, image)),
        image_id: image_id.into(),
        since: 100,
    }
}

#[test]
fn a_stored_spec_holds_no_secret_and_a_rollback_takes_them_from_the_current_spec() {
    let mut v2 = spec("h2", "reg/drv:2");
    v2.env.insert("MQTT_PASSWORD".into(), "pw-old".into());
    let stored = store(&v2);
    let text = serde_json::to_string(&stored).unwrap();
    assert!(
        !text.contains("cw_secret") && !text.contains("pw-old"),
        "{text}"
    );
    assert_eq!(stored.secrets, ["CYBERWAVE_API_KEY", "MQTT_PASSWORD"]);
    let g = Good {
        spec: stored,
        image_id: "sha256:2222222222223333".into(),
        since: 1,
    };
    let mut v3 = spec("h3", "reg/drv:3");
    v3.env.insert("CYBERWAVE_API_KEY".into(), "cw_new".into());
    let back = rollback_spec(&g, &v3);
    assert_eq!(back.image, "sha256:2222222222223333", "by image id");
    assert_eq!(back.spec_hash, "h2");
    assert_eq!(back.pull, Pull::IfMissing);
    assert_eq!(back.env["CYBERWAVE_API_KEY"], "cw_new");
    assert!(
        !back.env.contains_key("MQTT_PASSWORD"),
        "not in the current spec"
    );
    assert_eq!(back.env["ROBOT_IP"], "10.0.0.5");
    assert_eq!(back.role, Role::Driver);
}

#[test]
fn a_mutable_tag_rolled_back_gets_a_hash_and_label_of_its_own() {
    let g = good("h", "reg/drv:latest", "sha256:aaaaaaaaaaaabbbb");
    let back = rollback_spec(&g, &spec("h", "reg/drv:latest"));
    assert_eq!(back.spec_hash, "h-rollback-aaaaaaaaaaaa");
    let label = format!(
        "{}=h-rollback-aaaaaaaaaaaa",
        crate::containers::LABEL_SPEC_HASH
    );
    assert!(back.options.contains(&label), "{:?}", back.options);
}

#[test]
fn the_choice_between_the_wanted_spec_and_the_last_good_one() {
    let failed = |hash: &str| Failed {
        spec_hash: hash.into(),
        image: "reg/drv:3".into(),
        image_id: "sha256:3".into(),
        reason: "exited with code 1".into(),
        at: 5,
    };
    // (entry, wanted hash, rolled back?, entry changed?, failure kept?)
    let rows = [
        (Entry::default(), "h3", false, false, false),
        (
            Entry {
                last_good: Some(good("h2", "reg/drv:2", "sha256:2")),
                failed: Some(failed("h3")),
                trial: None,
            },
            "h3",
            true,
            false,
            true,
        ),
        // The role moved on to another spec: it is tried, the failure forgotten.
        (
            Entry {
                last_good: Some(good("h2", "reg/drv:2", "sha256:2")),
                failed: Some(failed("h3")),
                trial: None,
            },
            "h4",
            false,
            true,
            false,
        ),
    ];
    for (mut entry, hash, rolled, changed, kept) in rows {
        let (choice, did) = choose(&mut entry, &spec(hash, "reg/drv:x"));
        assert_eq!(
            matches!(choice, Choice::RolledBack(_)),
            rolled,
            "{hash}: {entry:?}"
        );
        assert_eq!(did, changed, "{hash}");
        assert_eq!(entry.failed.is_some(), kept, "{hash}");
    }
}

#[test]
fn what_goes_on_probation() {
    let entry = Entry {
        last_good: Some(good("h2", "reg/drv:2", "sha256:2")),
        ..Entry::default()
    };
    let rows = [
        ("h2", "sha256:2", false), // the last good one again (a revival)
        ("h2", "", false),         // the engine could not say its image
        ("h2", "sha256:9", true),  // its mutable tag moved
        ("h3", "sha256:3", true),  // a new spec
        ("h2-rollback-2", "sha256:2", false),
    ];
    for (hash, image_id, want) in rows {
        assert_eq!(
            needs_trial(&entry, &spec(hash, "i"), image_id),
            want,
            "{hash} {image_id}"
        );
    }
    assert!(needs_trial(&Entry::default(), &spec("h", "i"), "sha256:1"));
    let trial = |h: &str, id: &str| Trial {
        spec_hash: h.into(),
        image: "i".into(),
        image_id: id.into(),
        started: 0,
    };
    assert!(can_roll_back(&entry, &trial("h3", "sha256:3")));
    assert!(can_roll_back(&entry, &trial("h2", "sha256:9")));
    assert!(!can_roll_back(&entry, &trial("h2", "sha256:2")));
    assert!(!can_roll_back(&Entry::default(), &trial("h3", "sha256:3")));
    assert_eq!(trial_ends(&trial("h", "i"), Duration::from_secs(120)), 120);
}

#[test]
fn the_book_survives_a_round_trip_and_a_bad_file_is_an_empty_book() {
    let d = tempfile::tempdir().unwrap();
    let mut book = Book::new();
    book.insert(
        "cyberwave-driver-a".into(),
        Entry {
            last_good: Some(good("h2", "reg/drv:2", "sha256:2")),
            ..Entry::default()
        },
    );
    save(d.path(), &book);
    assert_eq!(load(d.path()), book);
    std::fs::write(d.path().join(UPDATES_FILE), "{not json").unwrap();
    assert!(load(d.path()).is_empty());
}

#[test]
fn a_hostile_book_is_never_waited_on_or_read_whole() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join(UPDATES_FILE);
    // A FIFO where the book should be: `load` must not block on it.
    let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let t = std::time::Instant::now();
    assert!(load(d.path()).is_empty());
    assert!(t.elapsed() < Duration::from_secs(1));
    std::fs::remove_file(&path).unwrap();
    // Larger than any book: not read.
    std::fs::write(&path, vec![b' '; (MAX_FILE + 1) as usize]).unwrap();
    assert!(load(d.path()).is_empty());
}
