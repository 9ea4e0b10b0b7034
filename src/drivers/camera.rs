//! Camera devices (reference §4.7, §5.8, §5.12, §5.13): which video device each driver is
//! told (`CYBERWAVE_METADATA_VIDEO_DEVICE`), whether it gets the read-only `/dev/v4l` tree,
//! and when a pinned device that went missing is alerted. Pure, apart from [`read`].
//!
//! The pins come from the CLI (`cameras.json`) and the backend (`edge.json`
//! `metadata.cameras`), each `{"selected_device": <index>, "twin_to_device": {twin: source}}`.
//! A multi-camera rig pins each twin to its own source, so each driver opens its own camera.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_json::{Map, Value};

/// The env variable a driver reads its camera from.
pub const VIDEO_DEVICE: &str = "CYBERWAVE_METADATA_VIDEO_DEVICE";
/// Stable udev names of one camera (they survive re-plugging and reboots).
const STABLE_PREFIXES: [&str; 2] = ["/dev/v4l/by-id/", "/dev/v4l/by-path/"];
/// A RealSense serial: not a video source, the driver reads it from the twin file.
const SERIAL_PREFIX: &str = "serial:";
/// Neither camera file is worth more than this; a bigger one is refused, not read.
const MAX_FILE_BYTES: u64 = 1 << 20;

/// The camera pins in force: `selected_device` and `twin_to_device` as stored (any JSON).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CameraConfig {
    pub selected_device: Option<Value>,
    pub twin_to_device: Map<String, Value>,
}

impl CameraConfig {
    fn from_object(m: &Map<String, Value>) -> Self {
        CameraConfig {
            selected_device: m.get("selected_device").cloned(),
            twin_to_device: m
                .get("twin_to_device")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default(),
        }
    }

    /// §4.7 precedence: a non-empty `edge.json` `metadata.cameras` wins, with the twins only
    /// `cameras.json` pins merged in; else `cameras.json`.
    pub fn merge(edge_json: Option<&Value>, cameras_json: Option<&Value>) -> Option<Self> {
        let local = cameras_json
            .and_then(Value::as_object)
            .map(Self::from_object);
        let backend = edge_json
            .and_then(|e| e.pointer("/metadata/cameras"))
            .and_then(Value::as_object)
            .filter(|m| !m.is_empty())
            .map(Self::from_object);
        match (backend, local) {
            (Some(mut b), Some(l)) => {
                for (twin, source) in l.twin_to_device {
                    b.twin_to_device.entry(twin).or_insert(source);
                }
                Some(b)
            }
            (Some(b), None) => Some(b),
            (None, l) => l,
        }
    }

    /// The device a twin's driver is told, or none (§5.8): a `serial:` pin gives none (no
    /// global fallback); a stable source (by-id, by-path, a URL, any non-index name) is passed
    /// verbatim; an index becomes `/dev/video<N>`; anything else falls back to the global
    /// `selected_device`.
    pub fn device_for(&self, twin: Option<&str>) -> Option<String> {
        if let Some(raw) = twin.and_then(|t| self.twin_to_device.get(t)) {
            if let Value::String(s) = raw {
                let s = s.trim();
                if s.starts_with(SERIAL_PREFIX) {
                    return None;
                }
                if is_stable_source(s) {
                    return Some(s.to_string());
                }
            }
            if let Some(n) = video_index(raw) {
                return Some(format!("/dev/video{n}"));
            }
        }
        video_index(self.selected_device.as_ref()?).map(|n| format!("/dev/video{n}"))
    }
}

/// A source naming one specific camera: a by-id/by-path node, a URL, any other explicit name.
/// A bare index or another `/dev/…` node is positional (it may name another camera tomorrow).
pub fn is_stable_source(s: &str) -> bool {
    let s = s.trim();
    if s.is_empty() {
        return false;
    }
    if STABLE_PREFIXES.iter().any(|p| s.starts_with(p)) {
        return true;
    }
    !s.starts_with("/dev/") && python_int(s).is_none()
}

/// A stored index as Python's `int()` reads it: integers, floats (truncated), booleans, and
/// strings of an optionally signed decimal with `_` between digits.
fn video_index(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64().or_else(|| {
            n.as_f64()
                .filter(|f| f.is_finite())
                .map(|f| f.trunc() as i64)
        }),
        Value::Bool(b) => Some(i64::from(*b)),
        Value::String(s) => python_int(s),
        _ => None,
    }
}

fn python_int(s: &str) -> Option<i64> {
    let t = s.trim();
    let (neg, digits) = match t.as_bytes().first()? {
        b'-' => (true, &t[1..]),
        b'+' => (false, &t[1..]),
        _ => (false, t),
    };
    let ok = !digits.is_empty()
        && !digits.starts_with('_')
        && !digits.ends_with('_')
        && !digits.contains("__")
        && digits.bytes().all(|b| b.is_ascii_digit() || b == b'_');
    if !ok {
        return None;
    }
    let n: i64 = digits.replace('_', "").parse().ok()?;
    Some(if neg { -n } else { n })
}

/// What each camera file last gave: `edge.json`'s `metadata.cameras` part and `cameras.json`.
/// Kept so that a file that turns unusable on a running edge (too big, malformed, not a
/// regular file) keeps its last good pins instead of counting as absent: otherwise a camera
/// driver would be recreated without its device.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CameraFiles {
    edge: Option<Value>,
    local: Option<Value>,
}

impl CameraFiles {
    /// The pins in force (§4.7 precedence).
    pub fn config(&self) -> Option<CameraConfig> {
        CameraConfig::merge(self.edge.as_ref(), self.local.as_ref())
    }
}

/// One camera file: absent, usable, or present but unusable (why).
enum FileRead {
    Absent,
    Good(Value),
    Unusable(String),
}

fn load(path: &Path) -> FileRead {
    if std::fs::symlink_metadata(path).is_err() {
        return FileRead::Absent;
    }
    let parsed = crate::fsutil::read_regular(path, MAX_FILE_BYTES)
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice::<Value>(&b).map_err(|e| e.to_string()));
    match parsed {
        Ok(v) => FileRead::Good(v),
        Err(e) => FileRead::Unusable(e),
    }
}

/// Reads both camera files of `config_dir` (regular files up to 1 MiB). A missing file counts
/// as absent; one that exists but cannot be used keeps what `last` had from it, with a warning
/// naming it and saying so.
pub fn read(config_dir: &Path, last: &CameraFiles) -> CameraFiles {
    let pick = |name: &str, kept: &Option<Value>, part: fn(Value) -> Value| {
        let path = config_dir.join(name);
        match load(&path) {
            FileRead::Absent => None,
            FileRead::Good(v) => Some(part(v)),
            FileRead::Unusable(e) => {
                let keeps = if kept.is_some() {
                    "the last good camera pins from it are kept"
                } else {
                    "camera pins from it ignored"
                };
                log::warn!("{}: {e}; {keeps}", path.display());
                kept.clone()
            }
        }
    };
    let edge_part = |v: Value| {
        let cameras = v
            .pointer("/metadata/cameras")
            .cloned()
            .unwrap_or(Value::Null);
        serde_json::json!({"metadata": {"cameras": cameras}})
    };
    CameraFiles {
        edge: pick(crate::config::EDGE_FILE, &last.edge, edge_part),
        local: pick("cameras.json", &last.local, |v| v),
    }
}

/// Whether this host has the udev camera tree (`/dev/v4l`): camera drivers then get it.
pub fn host_has_v4l() -> bool {
    Path::new("/dev/v4l").is_dir()
}

/// Camera driver images by the original's name rule.
pub fn is_camera_image(image: &str) -> bool {
    image.contains("camera-driver") || image.contains("camera_driver")
}

/// ALSA audio images by the original's name rule: they get `/dev/snd`, never a video device.
pub fn is_alsa_image(image: &str) -> bool {
    [
        "generic-microphone",
        "microphone-driver",
        "generic-speaker",
        "speaker-driver",
    ]
    .iter()
    .any(|k| image.contains(k))
}

/// Whether a driver gets `-v /dev/v4l:/dev/v4l:ro`: a camera image, or one whose device is a
/// by-id/by-path node (it must resolve inside the container), when the host has the tree.
pub fn wants_v4l(image: &str, device: Option<&str>, host_has_v4l: bool) -> bool {
    host_has_v4l && (is_camera_image(image) || device.is_some_and(|d| d.starts_with("/dev/v4l/")))
}

/// What the presence check asks the backend to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PresenceEvent {
    /// Raise `sensor_device_missing` on the twin.
    Missing { twin: String, device: String },
    /// Resolve the twin's `sensor_device_missing` alerts (the device is back, is no longer
    /// checked, or an earlier process may have left one open).
    Resolve { twin: String },
}

/// Checks in a row before a device counts as gone or back (a re-plug is not an alert).
const CHECKS_TO_FLIP: u32 = 2;

/// §5.13: pinned `/dev` devices of twins with a driver container, checked on every pass.
#[derive(Debug, Default)]
pub struct Presence {
    missing: BTreeMap<String, String>,
    streaks: BTreeMap<String, u32>,
    /// Twins whose leftover alerts were resolved once in this process.
    cleared: BTreeSet<String>,
}

impl Presence {
    /// Nothing missing and nothing on its way to be: no check is needed until a device is
    /// pinned.
    pub fn idle(&self) -> bool {
        self.missing.is_empty() && self.streaks.is_empty()
    }

    /// One pass: `observed` holds `(twin, device, exists)` for every checked twin.
    pub fn check(&mut self, observed: &[(String, String, bool)]) -> Vec<PresenceEvent> {
        let mut out = Vec::new();
        let mut checked = BTreeSet::new();
        for (twin, device, exists) in observed {
            checked.insert(twin.clone());
            let missing = !exists;
            if missing == self.missing.contains_key(twin) {
                self.streaks.remove(twin);
                if !missing && self.cleared.insert(twin.clone()) {
                    out.push(PresenceEvent::Resolve { twin: twin.clone() });
                }
                continue;
            }
            let streak = self.streaks.get(twin).copied().unwrap_or(0) + 1;
            if streak < CHECKS_TO_FLIP {
                self.streaks.insert(twin.clone(), streak);
                continue;
            }
            self.streaks.remove(twin);
            if missing {
                log::warn!("pinned sensor device {device} of twin {twin} is missing");
                self.missing.insert(twin.clone(), device.clone());
                out.push(PresenceEvent::Missing {
                    twin: twin.clone(),
                    device: device.clone(),
                });
            } else {
                log::info!("pinned sensor device {device} of twin {twin} is back");
                self.missing.remove(twin);
                self.cleared.insert(twin.clone());
                out.push(PresenceEvent::Resolve { twin: twin.clone() });
            }
        }
        self.streaks.retain(|t, _| checked.contains(t));
        let gone: Vec<String> = self
            .missing
            .keys()
            .filter(|t| !checked.contains(*t))
            .cloned()
            .collect();
        for twin in gone {
            self.missing.remove(&twin);
            out.push(PresenceEvent::Resolve { twin });
        }
        out
    }
}

/// The `(twin, device)` pairs a presence pass checks: pinned twins with a driver container
/// whose device is a `/dev/` path.
pub fn pinned_devices(cfg: &CameraConfig, managed: &BTreeSet<String>) -> Vec<(String, String)> {
    cfg.twin_to_device
        .keys()
        .filter(|t| managed.contains(*t))
        .filter_map(|t| {
            let d = cfg.device_for(Some(t))?;
            d.starts_with("/dev/").then(|| (t.clone(), d))
        })
        .collect()
}

#[cfg(test)]
mod tests;
