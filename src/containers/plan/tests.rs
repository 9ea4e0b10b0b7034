use super::*;

const S: Duration = Duration::from_secs(1);

fn rules() -> Rules {
    Rules {
        removed_revival: Some(300 * S),
        revive_after: 10 * S,
        revive_every: 60 * S,
    }
}

fn seen(state: &str, exit: Option<i32>, hash: &str) -> Seen {
    Seen {
        state: state.into(),
        exit_code: exit,
        spec_hash: Some(hash.into()),
    }
}

/// One container "c" wanted with hash "h"; returns the actions for `observed` and `book`.
fn decide(observed: Option<Seen>, book: Book, now: Instant, rules: &Rules) -> Vec<Action> {
    decide_floor(None, observed, book, now, rules)
}

/// [`decide`] for a container with a restart floor.
fn decide_floor(
    floor: Option<Duration>,
    observed: Option<Seen>,
    book: Book,
    now: Instant,
    rules: &Rules,
) -> Vec<Action> {
    let desired = BTreeMap::from([(
        "c".to_string(),
        Want {
            spec_hash: "h".into(),
            floor,
            once: false,
            hold: false,
        },
    )]);
    let observed: BTreeMap<String, Seen> =
        observed.map(|s| ("c".to_string(), s)).into_iter().collect();
    let book = BTreeMap::from([("c".to_string(), book)]);
    plan(&desired, &observed, &book, now, rules)
}

fn launch(replace: bool, why: Why) -> Vec<Action> {
    vec![Action::Launch {
        name: "c".into(),
        replace,
        why,
    }]
}

fn revive(why: Why) -> Vec<Action> {
    vec![Action::Revive {
        name: "c".into(),
        why,
    }]
}

/// A table row: what, observed, book, now, rules, expected actions.
type Row<'a> = (&'a str, Option<Seen>, Book, Instant, &'a Rules, Vec<Action>);

#[test]
fn decisions() {
    let t0 = Instant::now();
    let at = |s: u64| t0 + Duration::from_secs(s);
    let r = rules();
    let never = Rules {
        removed_revival: None,
        ..rules()
    };
    #[rustfmt::skip]
    let table: Vec<Row> = vec![
        ("missing: launch", None, Book::default(), at(0), &r, launch(false, Why::Missing)),
        ("missing, launch backoff running: wait", None,
            Book { next_launch: Some(at(20)), ..Book::default() }, at(10), &r, vec![]),
        ("missing, launch backoff over: launch", None,
            Book { next_launch: Some(at(20)), ..Book::default() }, at(20), &r, launch(false, Why::Missing)),
        ("launch in flight: nothing", None, Book { inflight: true, ..Book::default() }, at(0), &r, vec![]),
        ("adopt: same hash, running", Some(seen("running", None, "h")), Book::default(), at(0), &r, vec![]),
        ("restarting / paused / removing: leave alone", Some(seen("restarting", None, "h")),
            Book::default(), at(0), &r, vec![]),
        ("spec changed: recreate", Some(seen("running", None, "old")), Book::default(), at(0), &r,
            launch(true, Why::SpecChanged)),
        ("spec changed during launch backoff: wait", Some(seen("running", None, "old")),
            Book { next_launch: Some(at(5)), ..Book::default() }, at(0), &r, vec![]),
        ("no hash label: recreate", Some(Seen { state: "running".into(), exit_code: None, spec_hash: None }),
            Book::default(), at(0), &r, launch(true, Why::SpecChanged)),
        ("left in created: recreate", Some(seen("created", None, "h")), Book::default(), at(0), &r,
            launch(true, Why::LeftCreated)),
        ("clean exit: revive at once", Some(seen("exited", Some(0), "h")),
            Book { down_since: Some(at(0)), ..Book::default() }, at(0), &r, revive(Why::Exited)),
        ("crash: Docker's restart policy gets revive_after first", Some(seen("exited", Some(1), "h")),
            Book { down_since: Some(at(0)), ..Book::default() }, at(9), &r, vec![]),
        ("crash, grace over: revive", Some(seen("exited", Some(1), "h")),
            Book { down_since: Some(at(0)), ..Book::default() }, at(10), &r, revive(Why::Exited)),
        ("dead, grace over: revive", Some(seen("dead", None, "h")),
            Book { down_since: Some(at(0)), ..Book::default() }, at(11), &r, revive(Why::Exited)),
        ("revived a moment ago: at most once per revive_every", Some(seen("exited", Some(0), "h")),
            Book { down_since: Some(at(0)), last_revival: Some(at(30)), ..Book::default() }, at(60), &r, vec![]),
        ("revive rate limit over", Some(seen("exited", Some(0), "h")),
            Book { down_since: Some(at(0)), last_revival: Some(at(30)), ..Book::default() }, at(90), &r,
            revive(Why::Exited)),
        ("asked for, stopped for a loop and paused: revive now", Some(seen("exited", Some(143), "h")),
            Book { stopped_for_loop: true, retry_at: Some(at(300)), asked: true, ..Book::default() },
            at(1), &r, revive(Why::Asked)),
        ("asked for, revived a moment ago: revive now", Some(seen("exited", Some(143), "h")),
            Book { down_since: Some(at(0)), last_revival: Some(at(0)), asked: true, ..Book::default() },
            at(1), &r, revive(Why::Asked)),
        ("asked for, missing during a launch backoff: launch now", None,
            Book { next_launch: Some(at(200)), asked: true, ..Book::default() }, at(1), &r,
            launch(false, Why::Asked)),
        ("asked for, running: nothing", Some(seen("running", None, "h")),
            Book { asked: true, ..Book::default() }, at(1), &r, vec![]),
        ("asked for, another spec: recreate", Some(seen("exited", Some(0), "old")),
            Book { asked: true, ..Book::default() }, at(1), &r, launch(true, Why::Asked)),
        ("removed under us: wait for the grace", None,
            Book { removed_at: Some(at(0)), ..Book::default() }, at(299), &r, vec![]),
        ("removed, grace over: relaunch", None,
            Book { removed_at: Some(at(0)), ..Book::default() }, at(300), &r, launch(false, Why::RemovedGraceOver)),
        ("removed, revival off: never", None,
            Book { removed_at: Some(at(0)), ..Book::default() }, at(9999), &never, vec![]),
        ("breaker tripped: stay stopped", Some(seen("exited", Some(137), "h")),
            Book { stopped_for_loop: true, retry_at: Some(at(20)), down_since: Some(at(0)), ..Book::default() },
            at(19), &r, vec![]),
        ("breaker pause over: retry", Some(seen("exited", Some(137), "h")),
            Book { stopped_for_loop: true, retry_at: Some(at(20)), ..Book::default() }, at(20), &r,
            revive(Why::LoopPauseOver)),
        ("breaker pause over even if it vanished: retry (the revival relaunches)", None,
            Book { stopped_for_loop: true, retry_at: Some(at(20)), ..Book::default() }, at(25), &r,
            revive(Why::LoopPauseOver)),
    ];
    for (what, observed, book, now, rules, want) in table {
        assert_eq!(decide(observed, book, now, rules), want, "{what}");
    }
}

/// A floor-table row: what, observed, book, now, expected actions.
type FloorRow<'a> = (&'a str, Option<Seen>, Book, Instant, Vec<Action>);

#[test]
fn a_restart_floor_keeps_a_live_container_and_rests_a_stopped_one() {
    let t0 = Instant::now();
    let at = |s: u64| t0 + Duration::from_secs(s);
    let r = rules();
    let f = Some(120 * S);
    let down = |s: u64| Book {
        down_since: Some(at(s)),
        ..Book::default()
    };
    #[rustfmt::skip]
    let table: Vec<FloorRow> = vec![
        ("running with another spec: adopted, not recreated", Some(seen("running", None, "old")),
            Book::default(), at(0), vec![]),
        ("missing: launched as usual", None, Book::default(), at(0), launch(false, Why::Missing)),
        ("left in created: recreated", Some(seen("created", None, "h")), Book::default(), at(0),
            launch(true, Why::LeftCreated)),
        ("clean exit: rests for the floor first", Some(seen("exited", Some(0), "h")), down(0), at(119), vec![]),
        ("clean exit, floor over: revived", Some(seen("exited", Some(0), "h")), down(0), at(120),
            revive(Why::Exited)),
        ("not yet seen down: waits", Some(seen("exited", Some(1), "h")), Book::default(), at(500), vec![]),
        ("stopped with another spec: recreated", Some(seen("exited", Some(0), "old")), down(0), at(1),
            launch(true, Why::SpecChanged)),
    ];
    for (what, observed, book, now, want) in table {
        assert_eq!(decide_floor(f, observed, book, now, &r), want, "{what}");
    }
    // the floor is a deadline of its own
    let desired = BTreeMap::from([(
        "c".to_string(),
        Want {
            spec_hash: "h".into(),
            floor: f,
            once: false,
            hold: false,
        },
    )]);
    let book = BTreeMap::from([("c".to_string(), down(0))]);
    let r = Rules {
        revive_after: 1000 * S,
        revive_every: 1000 * S,
        ..rules()
    };
    assert_eq!(next_due(&desired, &book, at(1), &r), Some(at(120)));
}

#[test]
fn undesired_containers_are_not_planned_and_deadlines_are_the_next_rule() {
    let t0 = Instant::now();
    let desired = BTreeMap::from([(
        "c".to_string(),
        Want {
            spec_hash: "h".into(),
            floor: None,
            once: false,
            hold: false,
        },
    )]);
    let observed = BTreeMap::from([("stale".to_string(), seen("exited", Some(1), "x"))]);
    let book = BTreeMap::from([
        (
            "c".to_string(),
            Book {
                inflight: true,
                ..Book::default()
            },
        ),
        (
            "stale".to_string(),
            Book {
                down_since: Some(t0),
                ..Book::default()
            },
        ),
    ]);
    assert_eq!(plan(&desired, &observed, &book, t0, &rules()), vec![]);

    let book = BTreeMap::from([(
        "c".to_string(),
        Book {
            down_since: Some(t0),
            next_launch: Some(t0 + 30 * S),
            removed_at: Some(t0),
            ..Book::default()
        },
    )]);
    // revive_after (10 s) comes before the launch backoff (30 s) and the removal grace (300 s)
    assert_eq!(next_due(&desired, &book, t0, &rules()), Some(t0 + 10 * S));
    assert_eq!(
        next_due(&desired, &book, t0 + 15 * S, &rules()),
        Some(t0 + 30 * S)
    );
    assert_eq!(next_due(&BTreeMap::new(), &book, t0, &rules()), None);
}

/// A row of the run-once table: what, observed, book, now, expected actions.
type OnceRow<'a> = (&'a str, Option<Seen>, Book, Instant, Vec<Action>);

#[test]
fn a_container_that_runs_once_is_never_revived_or_relaunched() {
    let t0 = Instant::now();
    let at = |s: u64| t0 + Duration::from_secs(s);
    let r = rules();
    let decide_once = |observed: Option<Seen>, book: Book, now| {
        let desired = BTreeMap::from([(
            "c".to_string(),
            Want {
                spec_hash: "h".into(),
                floor: None,
                once: true,
                hold: false,
            },
        )]);
        let observed: BTreeMap<String, Seen> =
            observed.map(|s| ("c".to_string(), s)).into_iter().collect();
        plan(
            &desired,
            &observed,
            &BTreeMap::from([("c".to_string(), book)]),
            now,
            &r,
        )
    };
    let down = Book {
        down_since: Some(at(0)),
        ..Book::default()
    };
    let removed = Book {
        removed_at: Some(at(0)),
        ..Book::default()
    };
    #[rustfmt::skip]
    let table: Vec<OnceRow> = vec![
        ("missing, never seen: launch", None, Book::default(), at(0), launch(false, Why::Missing)),
        ("missing, launch backoff: wait", None,
            Book { next_launch: Some(at(20)), ..Book::default() }, at(10), vec![]),
        ("a leftover of another session: replaced", Some(seen("running", None, "old")),
            Book::default(), at(0), launch(true, Why::SpecChanged)),
        ("running: left alone", Some(seen("running", None, "h")), Book::default(), at(0), vec![]),
        ("exited 0: not revived", Some(seen("exited", Some(0), "h")), down.clone(), at(500), vec![]),
        ("exited 1: not revived", Some(seen("exited", Some(1), "h")), down, at(500), vec![]),
        ("left created: not relaunched", Some(seen("created", None, "h")), Book::default(), at(0),
            vec![]),
        ("removed after it ran: not relaunched", None, removed, at(5000), vec![]),
    ];
    for (what, observed, book, now, want) in table {
        assert_eq!(decide_once(observed, book, now), want, "{what}");
    }
}

#[test]
fn a_held_container_is_kept_while_it_runs_whatever_its_spec() {
    let t0 = Instant::now();
    let want = |hold| {
        BTreeMap::from([(
            "c".to_string(),
            Want {
                spec_hash: "cached".into(),
                floor: None,
                once: false,
                hold,
            },
        )])
    };
    let seen = |state: &str| {
        BTreeMap::from([(
            "c".to_string(),
            Seen {
                state: state.into(),
                exit_code: Some(1),
                spec_hash: Some("newer".into()),
            },
        )])
    };
    let book = BTreeMap::new();
    assert_eq!(
        plan(&want(true), &seen("running"), &book, t0, &rules()),
        vec![]
    );
    assert_eq!(
        plan(&want(false), &seen("running"), &book, t0, &rules()),
        launch(true, Why::SpecChanged)
    );
    // Held only while it runs: a dead one is replaced by the desired spec.
    assert_eq!(
        plan(&want(true), &seen("dead"), &book, t0, &rules()),
        launch(true, Why::SpecChanged)
    );
}
