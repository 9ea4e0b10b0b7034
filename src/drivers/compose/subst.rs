//! The `${NAME}` placeholders of an image-declared graph (reference §5.5) and the release
//! trains they name: the driver stack's channel tag, the sim proxy's, MoveIt's.

use std::collections::BTreeMap;

use crate::containers::updates::is_secret_name;

pub const CHANNEL_TAG_ENV: &str = "CYBERWAVE_DRIVER_CHANNEL_TAG";
pub const SIM_PROXY_TAG_ENV: &str = "CYBERWAVE_SIM_PROXY_TAG";
pub const MOVEIT_TAG_ENV: &str = "CYBERWAVE_MOVEIT_TAG";
pub const CHANNEL_TAG_LABEL: &str = "io.cyberwave.image.channel-tag";
pub const MOVEIT_TAG_LABEL: &str = "io.cyberwave.moveit.channel-tag";
pub const MOVEIT_PLACEHOLDER: &str = "${CW_MOVEIT_TAG}";

/// The names a graph may use and their values.
pub type Subs = BTreeMap<String, String>;

/// A non-empty, trimmed value of `name` in the edge's environment.
fn env_value<'a>(env: &'a BTreeMap<String, String>, name: &str) -> Option<&'a str> {
    env.get(name).map(|v| v.trim()).filter(|v| !v.is_empty())
}

/// `CYBERWAVE_ENVIRONMENT` (else `ENVIRONMENT`), lowercased.
fn deployment(env: &BTreeMap<String, String>) -> String {
    env_value(env, "CYBERWAVE_ENVIRONMENT")
        .or_else(|| env_value(env, "ENVIRONMENT"))
        .unwrap_or("")
        .to_lowercase()
}

/// The driver stack's train: `CYBERWAVE_DRIVER_CHANNEL_TAG`, the image's
/// `io.cyberwave.image.channel-tag` label, then the tag of the image reference; with where it
/// came from (logged: "which train, and why" is the first question when a graph runs the wrong
/// images).
pub fn channel_tag(
    image: &str,
    labels: &BTreeMap<String, String>,
    env: &BTreeMap<String, String>,
) -> (String, &'static str) {
    if let Some(v) = env_value(env, CHANNEL_TAG_ENV) {
        return (v.to_string(), CHANNEL_TAG_ENV);
    }
    if let Some(v) = labels.get(CHANNEL_TAG_LABEL).filter(|v| !v.is_empty()) {
        return (v.clone(), CHANNEL_TAG_LABEL);
    }
    // The original's rule: whatever follows the reference's last `:`.
    match image.rsplit_once(':') {
        Some((_, t)) => (t.to_string(), "image reference"),
        None => (String::new(), "unset"),
    }
}

/// The sim proxy's train: `CYBERWAVE_SIM_PROXY_TAG`, else the deployment environment when it is
/// one the proxy publishes (`dev`, `staging`, `production`), else `dev`.
pub fn sim_proxy_tag(env: &BTreeMap<String, String>) -> (String, &'static str) {
    if let Some(v) = env_value(env, SIM_PROXY_TAG_ENV) {
        return (v.to_string(), SIM_PROXY_TAG_ENV);
    }
    let d = deployment(env);
    if matches!(d.as_str(), "dev" | "staging" | "production") {
        return (d, "CYBERWAVE_ENVIRONMENT");
    }
    ("dev".into(), "default")
}

/// MoveIt's train: `CYBERWAVE_MOVEIT_TAG`, the image's `io.cyberwave.moveit.channel-tag`
/// label, else the ROS distro the channel tag starts with plus the deployment's suffix. `Err`
/// says why it cannot be known (a graph that names it is then refused: `ros2-moveit:` with no
/// tag is accepted by `create` and fails at `start`).
pub fn moveit_tag(
    labels: &BTreeMap<String, String>,
    channel: &str,
    env: &BTreeMap<String, String>,
) -> Result<String, String> {
    if let Some(v) = env_value(env, MOVEIT_TAG_ENV) {
        return Ok(v.to_string());
    }
    if let Some(v) = labels
        .get(MOVEIT_TAG_LABEL)
        .map(|v| v.trim())
        .filter(|v| !v.is_empty())
    {
        return Ok(v.to_string());
    }
    let Some(distro) = ["jazzy", "humble"]
        .into_iter()
        .find(|d| channel.starts_with(d))
    else {
        return Err(format!(
            "driver channel tag {channel:?} carries no ros distro and the image declares no {MOVEIT_TAG_LABEL}"
        ));
    };
    let suffix = match deployment(env).as_str() {
        "dev" => "-dev",
        "staging" => "-staging",
        "production" => "",
        other => {
            return Err(format!(
                "no {MOVEIT_TAG_LABEL} on the image and environment {other:?} is not one ros2-moveit publishes for"
            ));
        }
    };
    Ok(format!("{distro}{suffix}"))
}

/// Tags set explicitly (environment only), by placeholder: they repoint services CI pinned and
/// marked `x-cyberwave.pinned_from`. The label and the reference's tag never do.
pub fn pin_overrides(env: &BTreeMap<String, String>) -> BTreeMap<&'static str, String> {
    [
        ("CW_CHANNEL_TAG", CHANNEL_TAG_ENV),
        ("CW_MOVEIT_TAG", MOVEIT_TAG_ENV),
        ("CW_SIM_PROXY_TAG", SIM_PROXY_TAG_ENV),
    ]
    .into_iter()
    .filter_map(|(p, e)| Some((p, env_value(env, e)?.to_string())))
    .collect()
}

/// `image` with its tag replaced (a registry port is not a tag; a digest is left alone).
pub fn retag(image: &str, tag: &str) -> String {
    match crate::containers::image::split(image) {
        (_, _, Some(_)) => image.to_string(),
        (repo, _, None) => format!("{repo}:{tag}"),
    }
}

/// Expands `${NAME}` from `subs`, then from the edge's environment (what Compose would have
/// done at `up`), then leaves it literal (an obviously wrong `${X}` in a docker error is easier
/// to diagnose than an empty argument); `$$` becomes `$`. `${NAME:-default}` is not a
/// placeholder here: it reaches the container's shell. Better than the original: a credential
/// of the edge's own environment (`*KEY*`, `*TOKEN*`, `*PASSWORD*`…) is never expanded, since
/// the result may reach `docker create`'s argv or a container that should not hold it.
pub fn substitute(value: &str, subs: &Subs, env: &BTreeMap<String, String>) -> String {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        if let Some(after) = tail.strip_prefix("$$") {
            out.push('$');
            rest = after;
            continue;
        }
        match placeholder(tail) {
            Some((name, len)) => {
                match subs
                    .get(name)
                    .or_else(|| env.get(name).filter(|_| !is_secret_name(name)))
                {
                    Some(v) => out.push_str(v),
                    None => out.push_str(&tail[..len]),
                }
                rest = &tail[len..];
            }
            None => {
                out.push('$');
                rest = &tail[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// `${NAME}` at the start of `s` (`NAME` = `[A-Za-z_][A-Za-z0-9_]*`): the name and the length.
fn placeholder(s: &str) -> Option<(&str, usize)> {
    let body = s.strip_prefix("${")?;
    let end = body.find('}')?;
    let name = &body[..end];
    let mut chars = name.chars();
    let first = chars.next()?;
    (first.is_ascii_alphabetic() || first == '_')
        .then_some(())
        .filter(|_| chars.all(|c| c.is_ascii_alphanumeric() || c == '_'))?;
    Some((name, end + 3))
}

/// The fixed substitutions of one graph (reference §5.5 `compose_substitutions`).
pub struct Trains {
    pub channel: String,
    pub sim_proxy: String,
    pub moveit: Option<String>,
}

pub fn substitutions(trains: &Trains, twin_uuid: &str, zenoh: &[(&str, String)]) -> Subs {
    let mut s = Subs::new();
    s.insert("CW_CHANNEL_TAG".into(), trains.channel.clone());
    // Always present: a literal `${ZENOH_CONNECT}` must never reach a container; empty keeps
    // peer-to-peer scouting.
    for k in ["ZENOH_CONNECT", "ZENOH_MODE"] {
        let v = zenoh.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone());
        s.insert(k.into(), v.unwrap_or_default());
    }
    s.insert("CW_SIM_PROXY_TAG".into(), trains.sim_proxy.clone());
    if let Some(m) = &trains.moveit {
        s.insert("CW_MOVEIT_TAG".into(), m.clone());
    }
    if !twin_uuid.is_empty() {
        s.insert("CW_TWIN8".into(), twin_uuid.chars().take(8).collect());
        s.insert(
            "CW_TWIN_NS".into(),
            format!("twin_{}", twin_uuid.to_lowercase().replace('-', "_")),
        );
    }
    s
}
