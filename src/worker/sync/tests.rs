use serde_json::json;

use super::*;

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

#[test]
fn file_names_are_checked_before_they_become_paths() {
    for (n, ok) in [
        ("wf_ab12.py", true),
        ("wf_0123456789abcdef0123456789abcdef.py", true),
        ("wf_0123456789abcdef0123456789abcdef0.py", false),
        ("wf_.py", false),
        ("wf_AB12.py", false),
        ("wf_ab12.py/../../x", false),
        ("../wf_ab12.py", false),
        ("wf_ab12.pyc", false),
        ("detect.py", false),
    ] {
        assert_eq!(valid_filename(n), ok, "{n}");
    }
}

#[test]
fn answers_become_expected_files_and_hostile_names_are_refused() {
    let mut e = Expected::default();
    e.add(&json!({"workflows": [
        {"worker_filename": "wf_ab12.py", "worker_source": "print(1)"},
        {"worker_filename": "wf_../../etc/cron.d/x.py", "worker_source": "evil"},
        {"worker_filename": "wf_cd34.py", "worker_source": ""},
        {"worker_filename": "user.py", "worker_source": "x"},
    ], "skipped_workflows": [{"workflow_name": "w", "reason": "no worker node"}]}));
    e.add(&json!({"workflows": [{"worker_filename": "wf_ef56.py", "worker_source": "print(2)"}]}));
    assert_eq!(
        e.files,
        map(&[("wf_ab12.py", "print(1)"), ("wf_ef56.py", "print(2)")])
    );
    assert_eq!(e.refused, ["wf_../../etc/cron.d/x.py"]);
    assert_eq!(e.skipped, ["w: no worker node"]);
}

#[test]
fn sync_decisions() {
    let expected = map(&[("wf_a.py", "new"), ("wf_b.py", "same")]);
    let existing = map(&[("wf_b.py", "same"), ("wf_c.py", "x"), ("wf_d.py", "y")]);
    // c struck before, d not: c goes, d gets its first strike
    let p = plan(&expected, &existing, &set(&["wf_c.py"]), true);
    assert_eq!(p.write, ["wf_a.py"]);
    assert_eq!(p.unchanged, ["wf_b.py"]);
    assert_eq!(p.delete, ["wf_c.py"]);
    assert_eq!(p.first_strike, ["wf_d.py"]);
    assert_eq!(p.strikes, set(&["wf_d.py"]));
    // one twin did not answer: nothing is deleted or newly struck, old strikes stay
    let p = plan(&expected, &existing, &set(&["wf_c.py"]), false);
    assert!(p.delete.is_empty() && p.first_strike.is_empty());
    assert_eq!(p.strikes, set(&["wf_c.py"]));
    // a file listed again loses its strike
    let p = plan(
        &map(&[("wf_c.py", "x")]),
        &map(&[("wf_c.py", "x")]),
        &set(&["wf_c.py"]),
        true,
    );
    assert!(p.strikes.is_empty() && p.unchanged == ["wf_c.py"]);
}

#[test]
fn two_strike_deletion_survives_a_restart_and_writes_are_minimal() {
    let d = tempfile::tempdir().unwrap();
    let (cfg, workers) = (d.path(), d.path().join("workers"));
    std::fs::create_dir_all(&workers).unwrap();
    std::fs::write(workers.join("wf_aa.py"), "old").unwrap();
    std::fs::write(workers.join("wf_bb.py"), "same").unwrap();
    std::fs::write(workers.join("mine.py"), "user file").unwrap();
    let expected = map(&[("wf_bb.py", "same"), ("wf_cc.py", "fresh")]);
    let before = std::fs::metadata(workers.join("wf_bb.py"))
        .unwrap()
        .modified()
        .unwrap();

    // first sync: cc written, aa struck (kept)
    let p = plan(&expected, &existing(&workers), &load_strikes(cfg), true);
    assert!(apply(&workers, &expected, &p).unwrap());
    save_strikes(cfg, &p.strikes).unwrap();
    assert!(workers.join("wf_aa.py").exists());
    assert_eq!(
        std::fs::read_to_string(workers.join("wf_cc.py")).unwrap(),
        "fresh"
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(workers.join("wf_cc.py"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o644);
    assert_eq!(
        std::fs::metadata(workers.join("wf_bb.py"))
            .unwrap()
            .modified()
            .unwrap(),
        before,
        "an identical file was rewritten"
    );

    // the daemon restarts; the second clean miss deletes aa; the user's file is never touched
    let p = plan(&expected, &existing(&workers), &load_strikes(cfg), true);
    assert_eq!(p.delete, ["wf_aa.py"]);
    assert!(apply(&workers, &expected, &p).unwrap());
    save_strikes(cfg, &p.strikes).unwrap();
    assert!(!workers.join("wf_aa.py").exists());
    assert!(workers.join("mine.py").exists());
    assert!(load_strikes(cfg).is_empty());

    // a third sync with nothing new changes nothing
    let p = plan(&expected, &existing(&workers), &load_strikes(cfg), true);
    assert!(!apply(&workers, &expected, &p).unwrap());
}

#[test]
fn remove_takes_only_valid_names() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("wf_ab.py"), "x").unwrap();
    std::fs::write(d.path().join("keep.py"), "x").unwrap();
    let mut strikes = set(&["wf_ab.py"]);
    let (removed, refused) = remove(
        d.path(),
        &json!(["wf_ab.py", "../keep.py", "keep.py", 7, "wf_dead.py"]),
        &mut strikes,
    );
    assert_eq!(removed, [d.path().join("wf_ab.py")]);
    assert_eq!(refused.len(), 3, "{refused:?}");
    assert!(strikes.is_empty());
    assert!(d.path().join("keep.py").exists());
    let (_, refused) = remove(d.path(), &json!("wf_ab.py"), &mut strikes);
    assert!(refused[0].contains("not a list"));
}
