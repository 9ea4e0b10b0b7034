//! The Jetson power mode a driver service may ask for (reference §5.2 step 9, §11.3
//! `CYBERWAVE_JETSON_NVP_MODEL`): a numeric `nvpmodel` id (or `auto`: no request) in a
//! service's `env`. It is host-wide, so one explicit id across a launch pass is applied with
//! `nvpmodel -m <id>` before the containers start — only after checking it against the
//! `<POWER_MODEL ID=…>` entries of this Jetson's `/etc/nvpmodel.conf` (ids are not portable
//! between Jetson variants) — and conflicting ids leave the power mode alone. The value is a
//! number, never a command: twin metadata cannot run host shell input. We apply an id once
//! per process (the original re-ran `nvpmodel` at every launch pass).

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

pub const ENV: &str = "CYBERWAVE_JETSON_NVP_MODEL";
/// The label that carries a service's request to the launch (only when it made one).
pub const LABEL: &str = "io.cyberwave.edge.jetson-nvp-model";
/// Where the vendor's configuration lives (`CYBERWAVE_NVPMODEL_CONF` overrides it, ours).
pub const CONF: &str = "/etc/nvpmodel.conf";
const RUN_DEADLINE: Duration = Duration::from_secs(20);

/// An explicit request: digits without leading zeros; `None` for empty or `auto`.
pub fn normalize(value: &str) -> Option<String> {
    let v = value.trim().to_ascii_lowercase();
    if v.is_empty() || v == "auto" {
        return None;
    }
    let stripped = v.trim_start_matches('0');
    Some(if stripped.is_empty() {
        "0".into()
    } else {
        stripped.to_string()
    })
}

/// The one id a pass asks for; `Err` names the conflicting ids.
pub fn resolve<'a>(values: impl IntoIterator<Item = &'a str>) -> Result<Option<String>, String> {
    let ids: BTreeSet<String> = values.into_iter().filter_map(normalize).collect();
    match ids.len() {
        0 => Ok(None),
        1 => Ok(ids.into_iter().next()),
        _ => Err(ids.into_iter().collect::<Vec<_>>().join(", ")),
    }
}

/// The ids of `<POWER_MODEL … ID=n …>` in an nvpmodel configuration; `None` when it has none.
pub fn supported_ids(conf: &str) -> Option<BTreeSet<String>> {
    let mut ids = BTreeSet::new();
    let mut rest = conf;
    while let Some(at) = rest.find('<') {
        rest = &rest[at + 1..];
        let tag = rest.split('>').next().unwrap_or("");
        let body = tag.trim_start();
        let Some(attrs) = body.strip_prefix("POWER_MODEL") else {
            continue;
        };
        if !attrs.starts_with(char::is_whitespace) {
            continue;
        }
        if let Some(id) = attr_id(attrs) {
            ids.insert(normalize(&id).unwrap_or(id));
        }
    }
    (!ids.is_empty()).then_some(ids)
}

/// The digits of an ` ID = n` attribute (the word `ID` on its own).
fn attr_id(attrs: &str) -> Option<String> {
    let bytes = attrs.as_bytes();
    let mut i = 0;
    while let Some(pos) = attrs[i..].find("ID") {
        let at = i + pos;
        let before_ok =
            at == 0 || !(bytes[at - 1].is_ascii_alphanumeric() || bytes[at - 1] == b'_');
        let after = attrs[at + 2..].trim_start();
        if before_ok && let Some(value) = after.strip_prefix('=') {
            let digits: String = value
                .trim_start()
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            if !digits.is_empty() {
                return Some(digits);
            }
        }
        i = at + 2;
    }
    None
}

/// What to do with a request (pure).
#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    Apply(String),
    Refuse(String),
}

pub fn decide(requested: &str, supported: Option<&BTreeSet<String>>) -> Decision {
    if !requested.chars().all(|c| c.is_ascii_digit()) {
        return Decision::Refuse(format!(
            "{ENV} must be a numeric nvpmodel id or 'auto'; ignoring {requested:?}"
        ));
    }
    match supported {
        None => Decision::Refuse(format!(
            "{ENV}={requested} ignored: unable to determine supported nvpmodel IDs on this host"
        )),
        Some(ids) if !ids.contains(requested) => {
            let mut list: Vec<&String> = ids.iter().collect();
            list.sort_by_key(|s| s.parse::<u64>().unwrap_or(u64::MAX));
            let list: Vec<&str> = list.iter().map(|s| s.as_str()).collect();
            Decision::Refuse(format!(
                "{ENV}={requested} ignored: supported nvpmodel IDs are {}",
                list.join(", ")
            ))
        }
        Some(_) => Decision::Apply(requested.to_string()),
    }
}

/// `nvpmodel` on PATH.
fn find_nvpmodel() -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("nvpmodel"))
        .find(|p| std::fs::metadata(p).is_ok_and(|m| m.is_file()))
}

/// Applies `requested` on this host: validated against the configuration, run with a
/// deadline. Returns whether the mode is now in force.
pub fn apply(requested: &str, conf: &Path) -> bool {
    let Some(bin) = find_nvpmodel() else {
        log::warn!("{ENV}={requested} ignored: nvpmodel is unavailable on this host");
        return false;
    };
    let text = match crate::fsutil::read_regular_text(conf, 1 << 20) {
        Ok(t) => Some(t),
        Err(e) => {
            log::warn!("Could not read Jetson nvpmodel configuration: {e}");
            None
        }
    };
    let supported = text.as_deref().and_then(supported_ids);
    if text.is_some() && supported.is_none() {
        log::warn!("Jetson nvpmodel configuration contains no power-mode IDs");
    }
    match decide(requested, supported.as_ref()) {
        Decision::Refuse(why) => {
            log::warn!("{why}");
            false
        }
        Decision::Apply(id) => run(&bin, &id),
    }
}

fn run(bin: &Path, id: &str) -> bool {
    let mut cmd = std::process::Command::new(bin);
    cmd.args(["-m", id]).stdin(std::process::Stdio::null());
    match crate::process::run_with_deadline(cmd, RUN_DEADLINE) {
        Err(e) => {
            log::warn!("Could not apply Jetson nvpmodel {id}: {e:?}");
            false
        }
        Ok(out) => {
            let output = format!("{}{}", out.stderr, out.stdout);
            if output.to_lowercase().contains("reboot required") {
                log::warn!("Jetson nvpmodel {id} requires a full reboot before it takes effect");
                false
            } else if out.status != Some(0) {
                let detail: String = output.trim().chars().take(500).collect();
                log::warn!("Jetson nvpmodel {id} failed: {detail}");
                false
            } else {
                log::info!("Applied Jetson nvpmodel id {id} before starting driver services");
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_normalize_and_conflicts_are_refused() {
        assert_eq!(normalize(" 02 ").as_deref(), Some("2"));
        assert_eq!(normalize("000").as_deref(), Some("0"));
        assert_eq!(normalize("AUTO"), None);
        assert_eq!(normalize(""), None);
        assert_eq!(resolve(["2", "02", "auto", ""]), Ok(Some("2".into())));
        assert_eq!(resolve(["auto"]), Ok(None));
        assert_eq!(resolve(["1", "2"]), Err("1, 2".into()));
    }

    #[test]
    fn ids_come_from_the_power_model_tags() {
        let conf = "< PARAM TYPE=FILE NAME=CPU_ONLINE >\n<POWER_MODEL ID=0 NAME=MAXN>\n<POWER_MODEL  NAME=15W ID = 01 >\n<POWER_MODELS ID=9>\n<POWER_MODEL NAME=x PID=7>\n";
        let ids = supported_ids(conf).unwrap();
        assert_eq!(ids, ["0", "1"].iter().map(|s| s.to_string()).collect());
        assert_eq!(supported_ids("no tags here"), None);
    }

    #[test]
    fn decisions() {
        let ids: BTreeSet<String> = ["0", "1", "10"].iter().map(|s| s.to_string()).collect();
        assert_eq!(decide("1", Some(&ids)), Decision::Apply("1".into()));
        assert_eq!(
            decide("7", Some(&ids)),
            Decision::Refuse(format!(
                "{ENV}=7 ignored: supported nvpmodel IDs are 0, 1, 10"
            ))
        );
        assert!(
            matches!(decide("1; reboot", Some(&ids)), Decision::Refuse(m) if m.contains("numeric"))
        );
        assert!(
            matches!(decide("1", None), Decision::Refuse(m) if m.contains("unable to determine"))
        );
    }
}
