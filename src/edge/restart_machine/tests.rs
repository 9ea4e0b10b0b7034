//! The remote restart's rules, one row per (state, event).

use super::*;

const CARD: &str = "a1e47000-0000-4000-8000-000000000001";

/// A row: its name, the state, the event, seconds after t0, the phase after (`None`: no
/// restart under way), the actions.
type Row<'a> = (&'a str, &'a Machine, Event, u64, Option<Phase>, Vec<Action>);

fn at(t0: Instant, s: u64) -> Instant {
    t0 + Duration::from_secs(s)
}

fn running(t0: Instant, phase: Phase) -> Machine {
    Machine {
        running: Some(Running {
            alert_uuid: Some(CARD.into()),
            started: t0,
            started_at: SystemTime::UNIX_EPOCH,
            phase,
        }),
        ..Machine::default()
    }
}

fn card(status: &'static str, details: Value, at_key: &'static str, resolve: bool) -> Action {
    Action::Card {
        alert_uuid: CARD.into(),
        status,
        details,
        at_key,
        resolve,
    }
}

fn asked() -> Event {
    Event::Asked {
        alert_uuid: Some(CARD.into()),
    }
}

#[test]
fn each_state_and_event_gives_its_next_phase_and_actions() {
    let t0 = Instant::now();
    let idle = Machine::default();
    let just_done = Machine {
        last_done: Some(t0),
        ..Machine::default()
    };
    let flushing = running(t0, Phase::Flushing);
    let recreating = running(t0, Phase::Recreating { refetched: false });
    let refetched = running(t0, Phase::Recreating { refetched: true });
    let refused = |reason: &str, error: &'static str| {
        vec![
            Action::Refused { error },
            card(
                "failed",
                json!({"reason": reason, "error": error}),
                "failed_at",
                true,
            ),
        ]
    };
    let busy = "another edge-core restart was already in progress";
    let limited = "an edge-core restart finished less than 30 s ago";
    let timeout = |phase: &str| format!("the restart did not finish within 300 s ({phase})");
    let rows: Vec<Row> = vec![
        (
            "asked while idle",
            &idle,
            asked(),
            0,
            Some(Phase::Flushing),
            vec![
                card("in_progress", json!({}), "in_progress_at", false),
                Action::FlushTwinFiles,
            ],
        ),
        (
            "asked 10 s after the last ended",
            &just_done,
            asked(),
            10,
            None,
            refused("rate_limited", limited),
        ),
        (
            "asked 30 s after the last ended",
            &just_done,
            asked(),
            30,
            Some(Phase::Flushing),
            vec![
                card("in_progress", json!({}), "in_progress_at", false),
                Action::FlushTwinFiles,
            ],
        ),
        (
            "asked while one runs",
            &recreating,
            asked(),
            5,
            Some(Phase::Recreating { refetched: false }),
            refused("concurrent_restart", busy),
        ),
        (
            "twin files flushed",
            &flushing,
            Event::Flushed { removed: 3 },
            1,
            Some(Phase::Recreating { refetched: false }),
            vec![Action::Recreate { removed: 3 }],
        ),
        (
            "a stray flush while idle",
            &idle,
            Event::Flushed { removed: 3 },
            1,
            None,
            vec![],
        ),
        (
            "refetched",
            &recreating,
            Event::Refetched,
            2,
            Some(Phase::Recreating { refetched: true }),
            vec![],
        ),
        (
            "refetched before the flush ended",
            &flushing,
            Event::Refetched,
            2,
            Some(Phase::Flushing),
            vec![],
        ),
        (
            "containers back but not refetched",
            &recreating,
            Event::Look {
                containers_back: true,
                held_by_lock: false,
            },
            3,
            Some(Phase::Recreating { refetched: false }),
            vec![],
        ),
        (
            "refetched but containers not back",
            &refetched,
            Event::Look {
                containers_back: false,
                held_by_lock: false,
            },
            3,
            Some(Phase::Recreating { refetched: true }),
            vec![],
        ),
        (
            "refetched and containers back",
            &refetched,
            Event::Look {
                containers_back: true,
                held_by_lock: false,
            },
            4,
            None,
            vec![
                card("completed", json!({}), "completed_at", true),
                Action::Ended {
                    took: Duration::from_secs(4),
                    error: None,
                },
            ],
        ),
        (
            "still flushing at the deadline",
            &flushing,
            Event::Look {
                containers_back: true,
                held_by_lock: false,
            },
            300,
            Some(Phase::Flushing),
            vec![],
        ),
        (
            "still flushing past the deadline",
            &flushing,
            Event::Look {
                containers_back: true,
                held_by_lock: false,
            },
            301,
            None,
            vec![
                card(
                    "failed",
                    json!({"error": timeout("Flushing")}),
                    "failed_at",
                    true,
                ),
                Action::Ended {
                    took: Duration::from_secs(301),
                    error: Some(timeout("Flushing")),
                },
            ],
        ),
        (
            "past the deadline, its recreation held by an update lock: it waits",
            &refetched,
            Event::Look {
                containers_back: false,
                held_by_lock: true,
            },
            3600,
            Some(Phase::Recreating { refetched: true }),
            vec![],
        ),
        (
            "a look while idle",
            &idle,
            Event::Look {
                containers_back: true,
                held_by_lock: false,
            },
            301,
            None,
            vec![],
        ),
    ];
    for (name, state, event, secs, phase, actions) in rows {
        let (next, got) = step(state, event, at(t0, secs), SystemTime::UNIX_EPOCH);
        assert_eq!(
            next.running.as_ref().map(|r| r.phase),
            phase,
            "{name}: phase"
        );
        assert_eq!(got, actions, "{name}: actions");
    }
}

#[test]
fn an_end_is_recorded_and_starts_the_rate_limit() {
    let t0 = Instant::now();
    let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
    let (m, _) = step(
        &Machine::default(),
        Event::Asked { alert_uuid: None },
        t0,
        wall,
    );
    let r = m.running.clone().unwrap();
    assert_eq!((r.alert_uuid, r.started_at), (None, wall));
    let (m, a) = step(&m, Event::Flushed { removed: 0 }, at(t0, 1), wall);
    assert_eq!(a, [Action::Recreate { removed: 0 }]);
    let (m, _) = step(&m, Event::Refetched, at(t0, 2), wall);
    let end = wall + Duration::from_secs(5);
    let (m, a) = step(
        &m,
        Event::Look {
            containers_back: true,
            held_by_lock: false,
        },
        at(t0, 5),
        end,
    );
    // No card to move without an alert: only the end.
    assert_eq!(
        a,
        [Action::Ended {
            took: Duration::from_secs(5),
            error: None
        }]
    );
    assert_eq!(
        m.last,
        Some(Finished {
            result: "completed",
            error: None,
            started_at: wall,
            finished_at: end,
        })
    );
    assert_eq!((m.running, m.last_done), (None, Some(at(t0, 5))));
}
