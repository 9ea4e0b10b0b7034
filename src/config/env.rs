use std::collections::{BTreeMap, HashMap};

/// Environment lookup with the original's precedence: the process environment (stripped,
/// non-empty) first, then `credentials.json` → `envs`. The Python original copied `envs` into
/// its own process environment at import; we never mutate ours (unsound with threads) and
/// layer the two instead.
#[derive(Clone, Default)]
pub struct EnvLayer {
    process: HashMap<String, String>,
    credentials: BTreeMap<String, String>,
    /// Process entries that are not UTF-8 and were left out (lossy names, for one warning).
    skipped: Vec<String>,
}

impl std::fmt::Debug for EnvLayer {
    /// Names only: values can be secrets.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut keys: Vec<&String> = self.process.keys().chain(self.credentials.keys()).collect();
        keys.sort();
        keys.dedup();
        f.debug_struct("EnvLayer").field("names", &keys).finish()
    }
}

impl EnvLayer {
    /// Every non-empty variable whose name starts with `prefix`, process env winning.
    pub fn with_prefix(&self, prefix: &str) -> std::collections::BTreeMap<String, String> {
        let mut out = std::collections::BTreeMap::new();
        for k in self.credentials.keys().chain(self.process.keys()) {
            if k.starts_with(prefix)
                && let Some(v) = self.get(k)
            {
                out.insert(k.clone(), v);
            }
        }
        out
    }

    pub fn new(process: HashMap<String, String>, credentials: BTreeMap<String, String>) -> Self {
        Self {
            process,
            credentials,
            skipped: Vec::new(),
        }
    }

    /// The current process environment, without credentials `envs` yet. Entries whose name or
    /// value is not UTF-8 are skipped (`std::env::vars` would panic on them); see [`Self::skipped`].
    pub fn from_process() -> Self {
        let mut process = HashMap::new();
        let mut skipped = Vec::new();
        for (k, v) in std::env::vars_os() {
            match (k.into_string(), v.into_string()) {
                (Ok(k), Ok(v)) => {
                    process.insert(k, v);
                }
                (k, _) => skipped.push(match k {
                    Ok(k) => k,
                    Err(k) => k.to_string_lossy().into_owned(),
                }),
            }
        }
        Self {
            process,
            credentials: BTreeMap::new(),
            skipped,
        }
    }

    /// Names of process variables skipped because they are not UTF-8.
    pub fn skipped(&self) -> &[String] {
        &self.skipped
    }

    pub fn with_credentials(mut self, envs: BTreeMap<String, String>) -> Self {
        self.credentials = envs;
        self
    }

    /// The value of `name`, stripped, or `None` when unset or blank in both layers.
    pub fn get(&self, name: &str) -> Option<String> {
        let clean = |v: &String| {
            let t = v.trim();
            (!t.is_empty()).then(|| t.to_string())
        };
        self.process
            .get(name)
            .and_then(clean)
            .or_else(|| self.credentials.get(name).and_then(clean))
    }

    /// Only the process layer (for variables the original read before the `envs` bootstrap).
    pub fn process(&self, name: &str) -> Option<String> {
        self.process.get(name).and_then(|v| {
            let t = v.trim();
            (!t.is_empty()).then(|| t.to_string())
        })
    }
}

/// Longest any duration setting may be: 30 days. Longer values are cut to it with a warning, so
/// no deadline computed from a setting (`Instant + Duration`) can overflow.
pub const MAX_DURATION_SECONDS: f64 = 30.0 * 24.0 * 3600.0;

/// The one checked parser of duration settings: seconds as a decimal; not a finite number →
/// warning and the default; below `min` → `min`; above [`MAX_DURATION_SECONDS`] → that
/// maximum (both with a warning). Never panics, whatever the text.
pub(crate) fn seconds_or_warn(
    env: &EnvLayer,
    name: &str,
    default: f64,
    min: f64,
    warnings: &mut Vec<String>,
) -> std::time::Duration {
    let mut v = parse_or_warn(env, name, default, min, warnings);
    if v > MAX_DURATION_SECONDS {
        warnings.push(format!(
            "{name}={:?} is above the maximum {MAX_DURATION_SECONDS} s; using {MAX_DURATION_SECONDS}",
            env.get(name).unwrap_or_default()
        ));
        v = MAX_DURATION_SECONDS;
    }
    std::time::Duration::try_from_secs_f64(v).unwrap_or_else(|_| {
        std::time::Duration::from_secs_f64(default.clamp(0.0, MAX_DURATION_SECONDS))
    })
}

/// A duration setting where 0 (or less) turns the feature off; otherwise as [`seconds_or_warn`].
pub(crate) fn optional_seconds_or_warn(
    env: &EnvLayer,
    name: &str,
    default: f64,
    warnings: &mut Vec<String>,
) -> Option<std::time::Duration> {
    match env.get(name).map(|v| v.parse::<f64>()) {
        Some(Ok(x)) if x.is_finite() && x <= 0.0 => None,
        _ => Some(seconds_or_warn(env, name, default, 0.001, warnings)),
    }
}

/// A float knob with a minimum: invalid or too small → warning and the default (reference §11).
pub(crate) fn parse_or_warn(
    env: &EnvLayer,
    name: &str,
    default: f64,
    min: f64,
    warnings: &mut Vec<String>,
) -> f64 {
    match env.get(name) {
        None => default,
        Some(v) => match v.parse::<f64>() {
            Ok(x) if x.is_finite() && x >= min => x,
            Ok(x) if x.is_finite() => {
                warnings.push(format!(
                    "{name}={v:?} is below the minimum {min}; using {min}"
                ));
                min
            }
            _ => {
                warnings.push(format!("{name}={v:?} is not a number; using {default}"));
                default
            }
        },
    }
}

pub(crate) fn truthy(v: &str) -> bool {
    matches!(
        v.trim().to_ascii_lowercase().as_str(),
        "1" | "true" | "yes" | "on"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_wins_then_credentials() {
        let mut p = HashMap::new();
        p.insert("A".to_string(), "  proc ".to_string());
        p.insert("B".to_string(), "   ".to_string());
        let mut c = BTreeMap::new();
        c.insert("A".to_string(), "cred".to_string());
        c.insert("B".to_string(), "cred-b".to_string());
        let env = EnvLayer::new(p, c);
        assert_eq!(env.get("A").as_deref(), Some("proc"));
        assert_eq!(env.get("B").as_deref(), Some("cred-b"));
        assert_eq!(env.get("C"), None);
        assert_eq!(env.process("B"), None);
    }
}
