//! Updates that cannot take a robot down, as data and pure decisions: per container the
//! *last good* spec (one that ran its probation, with the id of the image it ran), the spec
//! on *trial* (switched to, probation running) and the *failed* spec we rolled back from.
//! The runtime keeps this book in `edge-core-updates.json` (0600) and writes it on every
//! change, so a daemon killed at any point of a switch or a rollback takes up where it was.
//!
//! A stored spec never holds a secret: values of secret-looking variables are left out and
//! taken from the current spec of the same container when a rollback needs them (the edge's
//! token is the same for every spec of a container).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::spec::{ContainerSpec, Pull, Role};

/// The book's file in the config dir.
pub const UPDATES_FILE: &str = "edge-core-updates.json";
/// The book is small (a few specs); a larger file is not ours.
const MAX_FILE: u64 = 4 << 20;

/// A spec as stored: everything but secret values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredSpec {
    pub name: String,
    pub role: String,
    pub owner: String,
    pub title: String,
    #[serde(default)]
    pub service: Option<String>,
    pub image: String,
    pub options: Vec<String>,
    /// Variables whose values are kept; `secrets` names those left out.
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub secrets: Vec<String>,
    pub command: Vec<String>,
    pub spec_hash: String,
    pub restart: String,
    #[serde(default)]
    pub floor_s: Option<u64>,
    #[serde(default)]
    pub probe_s: Option<u64>,
}

/// The spec that last ran its probation, and the image it ran.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Good {
    pub spec: StoredSpec,
    pub image_id: String,
    /// Epoch seconds it became the last good one.
    pub since: u64,
}

/// A spec on probation since `started` (epoch seconds).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trial {
    pub spec_hash: String,
    pub image: String,
    pub image_id: String,
    pub started: u64,
}

/// A spec that failed its probation: not tried again until the desired spec changes or an
/// operator asks (a remote restart).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Failed {
    pub spec_hash: String,
    pub image: String,
    pub image_id: String,
    pub reason: String,
    pub at: u64,
}

/// What the book says of one container.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    #[serde(default)]
    pub last_good: Option<Good>,
    #[serde(default)]
    pub trial: Option<Trial>,
    #[serde(default)]
    pub failed: Option<Failed>,
}

/// Every container's entry, by container name.
pub type Book = BTreeMap<String, Entry>;

/// A variable whose value is a credential (`CYBERWAVE_API_KEY`, `MQTT_PASSWORD`, …).
pub fn is_secret_name(k: &str) -> bool {
    let k = k.to_ascii_uppercase();
    ["KEY", "TOKEN", "PASSWORD", "SECRET", "CREDENTIAL"]
        .iter()
        .any(|w| k.contains(w))
}

fn role_name(r: Role) -> &'static str {
    match r {
        Role::Driver => "driver",
        Role::Worker => "worker",
        Role::Router => "router",
        Role::Tunnel => "tunnel",
    }
}

fn role_of(s: &str) -> Option<Role> {
    Some(match s {
        "driver" => Role::Driver,
        "worker" => Role::Worker,
        "router" => Role::Router,
        "tunnel" => Role::Tunnel,
        _ => return None,
    })
}

/// `spec` without its secret values.
pub fn store(spec: &ContainerSpec) -> StoredSpec {
    let (secret, env): (BTreeMap<_, _>, BTreeMap<_, _>) = spec
        .env
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .partition(|(k, _)| is_secret_name(k));
    StoredSpec {
        name: spec.name.clone(),
        role: role_name(spec.role).into(),
        owner: spec.owner.clone(),
        title: spec.title.clone(),
        service: spec.service.clone(),
        image: spec.image.clone(),
        options: spec.options.clone(),
        env,
        secrets: secret.into_keys().collect(),
        command: spec.command.clone(),
        spec_hash: spec.spec_hash.clone(),
        restart: spec.restart.clone(),
        floor_s: spec.floor.map(|d| d.as_secs()),
        probe_s: spec.probe.map(|d| d.as_secs()),
    }
}

/// The spec a rollback runs: the last good one on the image it ran (by id, whatever its tag
/// points at now), its secrets from `current` (the spec being rolled back). Its hash is the
/// last good one's, unless that is the failed spec's too (a mutable tag that moved): then a
/// hash of its own, so the failed container is told apart and replaced.
pub fn rollback_spec(good: &Good, current: &ContainerSpec) -> ContainerSpec {
    let s = &good.spec;
    let mut env = s.env.clone();
    for k in &s.secrets {
        if let Some(v) = current.env.get(k) {
            env.insert(k.clone(), v.clone());
        }
    }
    let image = if good.image_id.is_empty() {
        s.image.clone()
    } else {
        good.image_id.clone()
    };
    let spec_hash = if s.spec_hash == current.spec_hash {
        let short: String = good
            .image_id
            .trim_start_matches("sha256:")
            .chars()
            .take(12)
            .collect();
        format!("{}-rollback-{short}", s.spec_hash)
    } else {
        s.spec_hash.clone()
    };
    let label = format!("{}=", super::LABEL_SPEC_HASH);
    let options = s
        .options
        .iter()
        .map(|o| match o.starts_with(&label) {
            true => format!("{label}{spec_hash}"),
            false => o.clone(),
        })
        .collect();
    ContainerSpec {
        name: s.name.clone(),
        role: role_of(&s.role).unwrap_or(current.role),
        owner: s.owner.clone(),
        title: s.title.clone(),
        service: s.service.clone(),
        image,
        fallback_image: None,
        options,
        env,
        command: s.command.clone(),
        spec_hash,
        restart: s.restart.clone(),
        pull: Pull::IfMissing,
        floor: s.floor_s.map(Duration::from_secs),
        probe: s.probe_s.map(Duration::from_secs),
        pull_attempts: 1,
        once: false,
        links: Default::default(),
    }
}

/// What runs for a container whose role wants `wanted`.
#[derive(Debug, Clone, PartialEq)]
pub enum Choice {
    /// The role's spec.
    Wanted,
    /// The role's spec failed its probation: the last good one runs instead.
    RolledBack(Box<ContainerSpec>),
}

/// Decides between the role's spec and the last good one, and forgets a failure the role
/// has moved on from (returns whether the entry changed).
pub fn choose(entry: &mut Entry, wanted: &ContainerSpec) -> (Choice, bool) {
    match (&entry.failed, &entry.last_good) {
        (Some(f), Some(good)) if f.spec_hash == wanted.spec_hash => (
            Choice::RolledBack(Box::new(rollback_spec(good, wanted))),
            false,
        ),
        (Some(_), _) => {
            entry.failed = None;
            (Choice::Wanted, true)
        }
        (None, _) => (Choice::Wanted, false),
    }
}

/// Whether a container that came up with `spec` on `image_id` goes on probation: anything
/// but the last good spec on its own image (a revival, a rollback's relaunch) does.
pub fn needs_trial(entry: &Entry, spec: &ContainerSpec, image_id: &str) -> bool {
    match &entry.last_good {
        Some(g) => {
            let same_hash = g.spec.spec_hash == spec.spec_hash
                || spec
                    .spec_hash
                    .starts_with(&format!("{}-rollback-", g.spec.spec_hash));
            !(same_hash && (g.image_id == image_id || image_id.is_empty()))
        }
        None => true,
    }
}

/// Whether a failed trial can be rolled back: there is a last good spec and it is not the
/// one that failed.
pub fn can_roll_back(entry: &Entry, trial: &Trial) -> bool {
    entry
        .last_good
        .as_ref()
        .is_some_and(|g| g.spec.spec_hash != trial.spec_hash || g.image_id != trial.image_id)
}

/// The image a rolled-back container runs, for people: its tag and its short id.
pub fn image_with_id(image: &str, image_id: &str) -> String {
    let short: String = image_id
        .trim_start_matches("sha256:")
        .chars()
        .take(12)
        .collect();
    match short.is_empty() {
        true => image.to_string(),
        false => format!("{image} (image {short})"),
    }
}

/// When the trial ends (epoch seconds).
pub fn trial_ends(t: &Trial, probation: Duration) -> u64 {
    t.started.saturating_add(probation.as_secs())
}

pub fn load(dir: &Path) -> Book {
    let path = dir.join(UPDATES_FILE);
    match crate::fsutil::read_regular_text(&path, MAX_FILE) {
        Ok(t) => serde_json::from_str(&t).unwrap_or_else(|e| {
            log::warn!("{}: {e}; starting with no update history", path.display());
            Book::new()
        }),
        Err(_) => Book::new(),
    }
}

pub fn save(dir: &Path, book: &Book) {
    let path = dir.join(UPDATES_FILE);
    match serde_json::to_value(book) {
        Ok(v) => {
            if let Err(e) = crate::fsutil::write_json_atomic(&path, &v, 0o600) {
                log::warn!("cannot record the update history: {e}");
            }
        }
        Err(e) => log::warn!("cannot record the update history: {e}"),
    }
}

#[cfg(test)]
mod tests;
