//! Navigation bundles (reference §5.5): a graph may declare, in its own `x-cyberwave`, a
//! directory of its driver image (maps, navigation parameters) that every service of the graph
//! mounts. It is copied once into a content-addressed Docker volume
//! (`cyberwave-navigation-<id16>-<session>`, label `io.cyberwave.navigation.bundle=1`) whose
//! name the graph reads as `${CW_NAVIGATION_BUNDLE}`. The rules here are pure; the copy is
//! `drivers::navigation`'s.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

pub const LABEL_BUNDLE: &str = "io.cyberwave.navigation.bundle";
pub const LABEL_IMAGE: &str = "io.cyberwave.navigation.image";
pub const LABEL_CREATED_AT: &str = "io.cyberwave.navigation.created-at";
pub const CONFIG_PROFILE_LABEL: &str = "io.cyberwave.navigation.config-profile";
pub const ROS_DISTRO_LABEL: &str = "io.cyberwave.navigation.ros-distro";
/// Written last into a complete bundle: its digest.
pub const MARKER: &str = ".cyberwave-navigation-bundle.sha256";
pub const VOLUME_PREFIX: &str = "cyberwave-navigation-";
/// What the image look derived: the bundle's volume, or why there is none.
pub const VOLUME_KEY: &str = "navigation_bundle";
pub const ERROR_KEY: &str = "navigation_bundle_error";

/// `x-cyberwave.navigation_bundle` (schema 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bundle {
    /// The directory in the image.
    pub source: String,
    /// Where the services see it.
    pub target: String,
    /// The profile inside it (a safe relative path).
    pub profile: String,
    /// The image's `io.cyberwave.navigation.config-profile` and `…ros-distro`.
    pub config_profile: String,
    pub ros_distro: String,
}

/// The bundle a graph declares, checked against its image's labels; `None`: it declares none.
pub fn declared(
    doc: &Map<String, Value>,
    labels: &BTreeMap<String, String>,
) -> Result<Option<Bundle>, String> {
    let ext = match doc.get("x-cyberwave") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Object(m)) => m,
        Some(_) => return Err("x-cyberwave must be a mapping".into()),
    };
    let raw = match ext.get("navigation_bundle") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Object(m)) => m,
        Some(_) => return Err("x-cyberwave.navigation_bundle must be a mapping".into()),
    };
    if raw.get("schema").and_then(Value::as_u64) != Some(1) {
        return Err(format!(
            "unsupported x-cyberwave.navigation_bundle schema {}; expected 1",
            raw.get("schema").unwrap_or(&Value::Null)
        ));
    }
    let field = |k: &str| {
        raw.get(k)
            .and_then(Value::as_str)
            .map(|s| s.trim().to_string())
            .unwrap_or_default()
    };
    let (source, target, profile) = (field("source"), field("target"), field("profile"));
    let safe =
        |p: &str| p.len() <= 1024 && !p.chars().any(|c| c.is_control() || c == '\'' || c == '"');
    if !source.starts_with('/') || !target.starts_with('/') || !safe(&source) || !safe(&target) {
        return Err("navigation bundle source and target must be absolute paths".into());
    }
    let relative = std::path::Path::new(&profile);
    if profile.is_empty()
        || !safe(&profile)
        || relative.is_absolute()
        || relative
            .components()
            .any(|c| matches!(c, std::path::Component::ParentDir))
    {
        return Err("navigation bundle profile must be a safe relative path".into());
    }
    let label = |k: &str| {
        labels
            .get(k)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
            .ok_or_else(|| format!("image is missing {k}"))
    };
    let config_profile = label(CONFIG_PROFILE_LABEL)?;
    let ros_distro = label(ROS_DISTRO_LABEL)?;
    if config_profile != ros_distro && !(config_profile == "jetson" && ros_distro == "humble") {
        return Err(format!(
            "navigation config profile {config_profile:?} does not match ROS distro {ros_distro:?}"
        ));
    }
    Ok(Some(Bundle {
        source,
        target,
        profile,
        config_profile,
        ros_distro,
    }))
}

/// What names a bundle's content: the image id, the source and the profile.
pub fn identity(image_id: &str, b: &Bundle) -> String {
    crate::sha256_hex(format!("{image_id}\0{}\0{}", b.source, b.profile).as_bytes())
}

/// The volume names of one bundle's copies, up to their session.
pub fn prefix(identity: &str) -> String {
    format!("{VOLUME_PREFIX}{}-", &identity[..16.min(identity.len())])
}

/// The placeholders a graph with a bundle reads.
pub fn substitutions(b: &Bundle, volume: &str) -> [(&'static str, String); 4] {
    [
        ("CW_NAVIGATION_BUNDLE", volume.to_string()),
        ("CW_CONFIG_PROFILE", b.config_profile.clone()),
        ("CW_ROS_DISTRO", b.ros_distro.clone()),
        (
            "CW_NAVIGATION_PROFILE",
            format!("{}/{}", b.target.trim_end_matches('/'), b.profile),
        ),
    ]
}

/// `sh -c` that prints a complete bundle's digest (empty when it is not complete).
pub fn probe_script() -> String {
    format!("test -s \"/bundle/{MARKER}\" && test -f \"/bundle/$1\" && cat \"/bundle/{MARKER}\"")
}

/// `sh -ceu` that fills an empty volume from `$1` (the source), checks `$2` (the profile) is
/// there and writes the marker last: an interrupted copy is never taken for a bundle.
pub fn populate_script() -> String {
    format!(
        "test -d \"$1\"; test -s \"$1/{MARKER}\"; test -f \"$1/$2\"; rm -f \"/bundle/{MARKER}\"; \
         find /bundle -mindepth 1 -maxdepth 1 -exec rm -rf -- {{}} +; \
         find \"$1\" -mindepth 1 -maxdepth 1 ! -name \"{MARKER}\" -exec cp -a -- {{}} /bundle/ \\;; \
         test -f \"/bundle/$2\"; cp \"$1/{MARKER}\" \"/bundle/{MARKER}\"; cat \"/bundle/{MARKER}\""
    )
}
