//! What the runtime remembers of each managed container between observations: its last
//! state, deaths, breaker, launch backoff and revival times. The plan reads a [`plan::Book`]
//! view of it.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Instant, SystemTime};

use serde_json::Value;

use super::LABEL_SPEC_HASH;
use super::breaker::Breaker;
use super::plan;
use super::spec::ContainerSpec;
use crate::engine::Container;

/// What [`plan::plan`] reads: wants, what the engine runs, and our book-keeping.
pub type PlanInputs = (
    BTreeMap<String, plan::Want>,
    BTreeMap<String, plan::Seen>,
    BTreeMap<String, plan::Book>,
);

/// The plan's view of the desired containers, the last observation and the records.
pub fn plan_inputs(
    desired: &BTreeMap<String, (ContainerSpec, Value)>,
    observed: Option<&BTreeMap<String, Container>>,
    info: &BTreeMap<String, Record>,
    inflight: &BTreeSet<String>,
    held: &BTreeSet<String>,
) -> PlanInputs {
    let wants = desired
        .iter()
        .map(|(n, (s, _))| {
            let want = plan::Want {
                spec_hash: s.spec_hash.clone(),
                floor: s.floor,
                once: s.once,
                hold: held.contains(n),
            };
            (n.clone(), want)
        })
        .collect();
    let seen = observed
        .into_iter()
        .flatten()
        .map(|(n, e)| {
            let seen = plan::Seen {
                state: e.state.clone(),
                exit_code: e.exit_code(),
                spec_hash: e.labels.get(LABEL_SPEC_HASH).cloned(),
            };
            (n.clone(), seen)
        })
        .collect();
    let book = desired
        .keys()
        .map(|n| {
            let r = info.get(n).cloned().unwrap_or_default();
            (n.clone(), r.plan_book(inflight.contains(n)))
        })
        .collect();
    (wants, seen, book)
}

#[derive(Debug, Clone, Default)]
pub struct Record {
    pub state: String,
    pub since: Option<SystemTime>,
    pub deaths: u64,
    pub last_exit: Option<i32>,
    pub seen: bool,
    pub removed_at: Option<Instant>,
    pub last_revival: Option<Instant>,
    pub breaker: Breaker,
    pub stopped_for_loop: bool,
    pub last_error: Option<String>,
    pub id: Option<String>,
    /// The image id of the container it last launched.
    pub image_id: String,
    /// Consecutive failed launches, and when the next launch may be tried.
    pub launch_failures: u32,
    pub next_launch: Option<Instant>,
    /// When we first saw it exited/dead (revival waits a little for Docker's own restart).
    pub down_since: Option<Instant>,
    /// We stopped it on purpose (a restart, a stop): its next death is not a crash.
    pub expect_die: bool,
    /// A restart loop being stopped: told to the role once the engine says how many times
    /// Docker restarted it.
    pub stopping_loop: Option<super::role::Loop>,
    /// An operator asked for it to run now: the next plan launches or revives it at once.
    pub asked: bool,
    /// The first list (by request number) known to be taken after its last launch: earlier
    /// ones may predate the create and must not make it look gone.
    pub trust_lists_from: u64,
    /// An update that waits while the old container runs: its image and why it waits.
    pub pending_update: Option<(String, String)>,
    /// An update held off by an update lock.
    pub deferred: Option<Deferred>,
}

/// An update of a running container that waits for an update lock.
#[derive(Debug, Clone)]
pub struct Deferred {
    /// The spec it updates to.
    pub spec_hash: String,
    /// Its images are present since then: the maximum deferral counts from here.
    pub ready_at: Option<Instant>,
    /// A prefetch is under way.
    pub fetching: bool,
    /// After a failed prefetch, the next one waits until then.
    pub retry_at: Option<Instant>,
}

impl Record {
    /// The view [`plan::plan`] decides on.
    pub fn plan_book(&self, inflight: bool) -> plan::Book {
        plan::Book {
            inflight,
            stopped_for_loop: self.stopped_for_loop,
            retry_at: self.breaker.retry_at,
            next_launch: self.next_launch,
            removed_at: self.removed_at,
            down_since: self.down_since,
            last_revival: self.last_revival,
            asked: self.asked,
        }
    }

    /// The state `status` shows: ours where we know better than the engine.
    pub fn state_text(&self, inflight: bool, observed: Option<&Container>) -> String {
        if inflight {
            "starting".into()
        } else if self.stopped_for_loop {
            "stopped (restart loop)".into()
        } else if let Some(e) = observed {
            e.state.clone()
        } else if self.seen {
            "removed".into()
        } else {
            "pending".into()
        }
    }
}
