//! Restarting a driver when its twin's metadata changes (reference §8.3): which changes count
//! (a digest of the metadata without volatile keys), when a change is acted on (settled for
//! 10 s, containers not already restarted since), what happens (a sensor image is recreated;
//! anything else, or anything with a restart floor, gets a `driver_restart_needed` alert), which
//! containers (the twin's own, else those of the twin it is attached to), and the rate limits (≥ 120 s apart,
//! ≤ 3 per 1800 s, then one `driver_metadata_restart_suppressed`). Pure.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use serde_json::{Map, Value};

/// Keys whose changes never restart a driver (telemetry the driver itself writes).
const VOLATILE: [&str; 16] = [
    "status",
    "power",
    "motor_temps",
    "performance",
    "active_map_uuid",
    "active_map_type",
    "active_map_resolution",
    "finalize_active_map_request",
    "last_finalized_map_uuid",
    "last_finalized_map_name",
    "navigation_lifecycle",
    "localization",
    "speaker_device",
    "audio_routing",
    "robot_dump",
    "edge_fingerprint",
];

/// Image name parts of sensor drivers, which are safe to restart on a settings change.
const SENSOR_IMAGES: [&str; 7] = [
    "camera-driver",
    "camera_driver",
    "generic-microphone",
    "microphone-driver",
    "generic-speaker",
    "speaker-driver",
    "webcam",
];

pub const SETTLE: Duration = Duration::from_secs(10);
pub const MIN_GAP: Duration = Duration::from_secs(120);
pub const WINDOW: Duration = Duration::from_secs(1800);
pub const MAX_IN_WINDOW: usize = 3;
/// A container started before the change but this recently may still be reading it: wait.
pub const FRESH: Duration = Duration::from_secs(90);

/// The metadata that matters for a restart, as the original filters it.
pub fn filtered(metadata: &Value) -> Value {
    let Some(m) = metadata.as_object() else {
        return metadata.clone();
    };
    let mut out = Map::new();
    for (k, v) in m {
        if VOLATILE.contains(&k.as_str()) || (k == "audio_device" && v.is_object()) {
            continue;
        }
        if k == "sensors"
            && let Some(list) = v.as_array()
        {
            let kept: Vec<Value> = list
                .iter()
                .filter(|s| {
                    s.get("parameters").is_some_and(|p| {
                        !p.is_null()
                            && p != &Value::Bool(false)
                            && p != &serde_json::json!({})
                            && p != &serde_json::json!([])
                    })
                })
                .cloned()
                .collect();
            if !kept.is_empty() {
                out.insert(k.clone(), Value::Array(kept));
            }
            continue;
        }
        out.insert(k.clone(), v.clone());
    }
    Value::Object(out)
}

/// SHA-256 of the filtered metadata with sorted keys.
pub fn digest(metadata: &Value) -> String {
    // serde_json's Map keeps insertion order (preserve_order): sort for a stable digest.
    fn sorted(v: &Value) -> Value {
        match v {
            Value::Object(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                Value::Object(
                    keys.into_iter()
                        .map(|k| (k.clone(), sorted(&m[k])))
                        .collect(),
                )
            }
            Value::Array(a) => Value::Array(a.iter().map(sorted).collect()),
            other => other.clone(),
        }
    }
    crate::sha256_hex(sorted(&filtered(metadata)).to_string().as_bytes())
}

/// Whose containers a settings change of `twin` restarts: its own, or, when it has none, those
/// of the twin it is attached to (a camera attached to an arm is served by the arm's driver).
pub fn target_twin<'a>(twin: &'a str, has_own: bool, parent: Option<&'a str>) -> &'a str {
    match parent {
        Some(p) if !has_own => p,
        _ => twin,
    }
}

pub fn is_sensor_image(image: &str) -> bool {
    SENSOR_IMAGES.iter().any(|p| image.contains(p))
}

/// A target container as the engine shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub name: String,
    pub image: String,
    pub running: bool,
    /// When it (last) started, if known.
    pub started: Option<Instant>,
    /// It has a restart floor: never restarted for a settings change.
    pub floor: bool,
}

/// What to do with a pending change.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Not yet (settling, or a container may still be starting with it).
    Wait,
    /// Every container already runs with it: take the new digest, no restart.
    Taken,
    /// Restart these containers.
    Restart(Vec<String>),
    /// Not a sensor driver: tell the user (alert `driver_restart_needed`) and take it.
    NeedsManualRestart,
    /// Too many restarts: alert `driver_metadata_restart_suppressed` (once) and take it.
    Suppressed,
}

/// §8.3 for one twin: a change made at `changed_at` (last edit), its containers, and the
/// restarts already made (newest last).
pub fn decide(
    changed_at: Instant,
    targets: &[Target],
    restarts: &VecDeque<Instant>,
    now: Instant,
) -> Decision {
    if now.saturating_duration_since(changed_at) < SETTLE || targets.is_empty() {
        return Decision::Wait;
    }
    let mut stale = Vec::new();
    for t in targets {
        match t.started {
            _ if !t.running => {}
            Some(s) if s > changed_at => {}
            Some(s) if now.saturating_duration_since(s) < FRESH => return Decision::Wait,
            _ => stale.push(t),
        }
    }
    if stale.is_empty() {
        return Decision::Taken;
    }
    if targets
        .iter()
        .any(|t| t.floor || !is_sensor_image(&t.image))
    {
        return Decision::NeedsManualRestart;
    }
    let recent: Vec<&Instant> = restarts
        .iter()
        .filter(|r| now.saturating_duration_since(**r) < WINDOW)
        .collect();
    if recent
        .last()
        .is_some_and(|r| now.saturating_duration_since(**r) < MIN_GAP)
        || recent.len() >= MAX_IN_WINDOW
    {
        return Decision::Suppressed;
    }
    Decision::Restart(targets.iter().map(|t| t.name.clone()).collect())
}

/// Per twin: the metadata its running drivers were started with, a change waiting to settle,
/// and the restarts made for metadata changes.
#[derive(Debug, Default)]
pub struct Tracker {
    baseline: std::collections::BTreeMap<String, Value>,
    /// Twin → (changed at, new filtered metadata, next look).
    pending: std::collections::BTreeMap<String, (Instant, Value, Instant)>,
    restarts: std::collections::BTreeMap<String, VecDeque<Instant>>,
    suppressed: std::collections::BTreeSet<String>,
}

impl Tracker {
    /// The metadata a twin's containers are launched with (kept if already known).
    pub fn launched_with(&mut self, twin: &str, metadata: &Value) {
        self.baseline
            .entry(twin.to_string())
            .or_insert_with(|| filtered(metadata));
    }

    /// Backend metadata reached the twin's file at `now`.
    pub fn pulled(&mut self, twin: &str, metadata: &Value, now: Instant) {
        let f = filtered(metadata);
        match self.baseline.get(twin) {
            Some(b) if digest(b) != digest(&f) => {
                self.pending
                    .insert(twin.to_string(), (now, f, now + SETTLE));
            }
            Some(_) => {
                self.pending.remove(twin);
            }
            None => {
                self.baseline.insert(twin.to_string(), f);
            }
        }
    }

    /// Twins with a change waiting, and the earliest moment one may be acted on.
    pub fn next_due(&self) -> Option<Instant> {
        self.pending.values().map(|(_, _, next)| *next).min()
    }

    pub fn pending_twins(&self) -> Vec<String> {
        self.pending.keys().cloned().collect()
    }

    /// The top-level keys of the waiting change (for alerts).
    pub fn changed_keys(&self, twin: &str) -> Vec<String> {
        let (Some(b), Some((_, n, _))) = (self.baseline.get(twin), self.pending.get(twin)) else {
            return Vec::new();
        };
        let (b, n) = (
            b.as_object().cloned().unwrap_or_default(),
            n.as_object().cloned().unwrap_or_default(),
        );
        let mut keys: Vec<String> = b
            .keys()
            .chain(n.keys())
            .filter(|k| b.get(*k) != n.get(*k))
            .cloned()
            .collect();
        keys.sort();
        keys.dedup();
        keys
    }

    /// §8.3 for `twin` against its containers; the decision is taken (baseline moved) unless
    /// it is [`Decision::Wait`]. A suppression is reported once per twin until a restart.
    pub fn decide(&mut self, twin: &str, targets: &[Target], now: Instant) -> Decision {
        let Some((at, new, _)) = self.pending.get(twin).cloned() else {
            return Decision::Wait;
        };
        let history = self.restarts.entry(twin.to_string()).or_default();
        let d = decide(at, targets, history, now);
        match &d {
            Decision::Wait => {
                // Look again in a few seconds (a container may still be starting with it).
                if let Some(p) = self.pending.get_mut(twin) {
                    p.2 = (at + SETTLE).max(now + Duration::from_secs(5));
                }
                return d;
            }
            Decision::Restart(_) => {
                history.push_back(now);
                while history.len() > MAX_IN_WINDOW * 2 {
                    history.pop_front();
                }
                self.suppressed.remove(twin);
            }
            _ => {}
        }
        self.pending.remove(twin);
        self.baseline.insert(twin.to_string(), new);
        if d == Decision::Suppressed && !self.suppressed.insert(twin.to_string()) {
            // Already said once: take it quietly.
            return Decision::Taken;
        }
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn digest_ignores_what_drivers_write_themselves() {
        let a = json!({"fps": 15, "status": "ok", "power": 3, "audio_device": {"x": 1},
                       "sensors": [{"id": 1, "parameters": {"gain": 2}}, {"id": 2}], "edge_fingerprint": "f"});
        let b = json!({"sensors": [{"parameters": {"gain": 2}, "id": 1}, {"id": 3, "parameters": null}],
                       "status": "changed", "fps": 15, "audio_device": {"y": 2}});
        assert_eq!(digest(&a), digest(&b));
        assert_ne!(digest(&a), digest(&json!({"fps": 30})));
        assert_eq!(filtered(&json!({"sensors": [{"id": 1}]})), json!({}));
        assert!(
            filtered(&json!({"audio_device": "hw:1"}))
                .get("audio_device")
                .is_some()
        );
    }

    #[test]
    fn tracker_settles_then_decides_once() {
        let t0 = Instant::now();
        let mut tr = Tracker::default();
        tr.launched_with("t", &json!({"fps": 15, "status": "x"}));
        tr.pulled("t", &json!({"fps": 15, "status": "y"}), t0);
        assert!(tr.pending_twins().is_empty(), "volatile keys do not count");
        tr.pulled("t", &json!({"fps": 30}), t0);
        assert_eq!(tr.changed_keys("t"), ["fps"]);
        assert_eq!(tr.next_due(), Some(t0 + SETTLE));
        let cam = Target {
            name: "c".into(),
            image: "x/camera-driver:1".into(),
            running: true,
            started: t0.checked_sub(Duration::from_secs(600)),
            floor: false,
        };
        assert_eq!(
            tr.decide("t", std::slice::from_ref(&cam), t0 + Duration::from_secs(5)),
            Decision::Wait
        );
        assert_eq!(
            tr.decide(
                "t",
                std::slice::from_ref(&cam),
                t0 + Duration::from_secs(11)
            ),
            Decision::Restart(vec!["c".into()])
        );
        assert!(tr.pending_twins().is_empty());
        // The same metadata again is no change.
        tr.pulled("t", &json!({"fps": 30}), t0 + Duration::from_secs(20));
        assert!(tr.pending_twins().is_empty());
    }

    #[test]
    fn attached_twins_restart_their_parents_containers() {
        assert_eq!(target_twin("cam", false, Some("arm")), "arm");
        assert_eq!(target_twin("cam", true, Some("arm")), "cam");
        assert_eq!(target_twin("cam", false, None), "cam");
    }

    #[test]
    fn decisions() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let cam = |running, started: Option<Instant>| Target {
            name: "cyberwave-driver-a".into(),
            image: "cyberwaveos/camera-driver:1".into(),
            running,
            started,
            floor: false,
        };
        let none = VecDeque::new();
        // (change at, targets, restarts, now, decision)
        type Case = (Instant, Vec<Target>, VecDeque<Instant>, Instant, Decision);
        let cases: Vec<Case> = vec![
            (
                at(1000),
                vec![cam(true, Some(at(0)))],
                none.clone(),
                at(1005),
                Decision::Wait,
            ),
            (
                at(1000),
                vec![cam(true, Some(at(0)))],
                none.clone(),
                at(1011),
                Decision::Restart(vec!["cyberwave-driver-a".into()]),
            ),
            (
                at(1000),
                vec![cam(true, Some(at(1001)))],
                none.clone(),
                at(1011),
                Decision::Taken,
            ),
            (
                at(1000),
                vec![cam(false, None)],
                none.clone(),
                at(1011),
                Decision::Taken,
            ),
            (
                at(1000),
                vec![cam(true, Some(at(950)))],
                none.clone(),
                at(1011),
                Decision::Wait,
            ),
            (
                at(1000),
                vec![Target {
                    image: "acme/arm-driver:2".into(),
                    ..cam(true, Some(at(0)))
                }],
                none.clone(),
                at(1011),
                Decision::NeedsManualRestart,
            ),
            // a sensor image with a restart floor is not restarted either
            (
                at(1000),
                vec![Target {
                    floor: true,
                    ..cam(true, Some(at(0)))
                }],
                none.clone(),
                at(1011),
                Decision::NeedsManualRestart,
            ),
            (
                at(1000),
                vec![cam(true, Some(at(0)))],
                VecDeque::from([at(950)]),
                at(1011),
                Decision::Suppressed,
            ),
            (
                at(1000),
                vec![cam(true, Some(at(0)))],
                VecDeque::from([at(100), at(300), at(600)]),
                at(1011),
                Decision::Suppressed,
            ),
            (
                at(3000),
                vec![cam(true, Some(at(0)))],
                VecDeque::from([at(100), at(300), at(600)]),
                at(3011),
                Decision::Restart(vec!["cyberwave-driver-a".into()]),
            ),
            (at(1000), vec![], none.clone(), at(1011), Decision::Wait),
        ];
        for (changed, targets, restarts, now, want) in cases {
            assert_eq!(
                decide(changed, &targets, &restarts, now),
                want,
                "{targets:?} {restarts:?}"
            );
        }
    }
}
