//! From a linked twin to the exact `docker create` of each of its containers (reference §5.1,
//! §5.3, §5.4, §5.7, §5.8). Pure: every input is in [`LaunchContext`] and the desired state.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::Value;

use super::camera;
use super::image;
use super::params::{split_env_params, valid_env_key};
use super::profile::{HostPlatform, ServiceProfile, drivers_of, select_profile_key, services_of};
use super::words;
use crate::config::Secret;

/// A driver graph's owner is its twin.
pub const LABEL_TWIN: &str = crate::containers::LABEL_GRAPH_OWNER;
pub use crate::containers::LABEL_SERVICE;
/// The original's label for a service with a restart floor (kept by restarts and cleanup).
pub const LABEL_RESTART_FLOOR: &str = "cyberwave.min_restart_interval_s";
pub use crate::containers::spec::{ContainerSpec, Role};
pub use crate::containers::{LABEL_CREATED_BY, LABEL_OWNER, LABEL_SPEC_HASH};
use crate::twins::Twin;

/// Everything about this edge that shapes a driver container.
#[derive(Debug, Clone)]
pub struct LaunchContext {
    pub config_dir: PathBuf,
    pub host: HostPlatform,
    pub environment: String,
    pub base_url: String,
    /// `CYBERWAVE_MQTT_HOST` / `_PORT` as configured (runtime vars), not as resolved.
    pub mqtt_host_var: Option<String>,
    pub mqtt_port_var: Option<String>,
    /// The broker port the edge itself uses (TLS flag rule).
    pub mqtt_port: u16,
    pub log_level: Option<String>,
    /// Non-empty `CYBERWAVE_*` of the process env and credentials `envs` (process first).
    pub forwarded: BTreeMap<String, String>,
    /// The data bus variables drivers get (reference §9.2, validated by `crate::bus`).
    pub bus_env: Vec<(&'static str, String)>,
    /// `None` = `CYBERWAVE_DOCKER_LOG_MAX_SIZE=off`.
    pub log_max_size: Option<String>,
    pub log_max_file: String,
    pub nvidia_default_runtime: bool,
    /// credentials.json `driver_overrides`: twin → image (single-container drivers only).
    pub driver_overrides: BTreeMap<String, String>,
    pub token: Secret,
    /// This edge's fingerprint (the owner label).
    pub owner: String,
    /// Camera pins (`edge.json` / `cameras.json`, reference §4.7).
    pub cameras: Option<super::camera::CameraConfig>,
    /// What each camera file last gave (a file gone bad keeps its last good pins).
    pub camera_files: super::camera::CameraFiles,
    /// Whether the host has `/dev/v4l` (camera drivers then get it read-only).
    pub host_has_v4l: bool,
    /// Where alerts send people (`CYBERWAVE_DRIVER_TROUBLESHOOTING_URL`).
    pub troubleshooting_url: String,
    /// `<config dir>/so101_lib` exists: every driver gets it (§5.8), not only SO101 images.
    pub has_so101_lib: bool,
    /// The edge's whole environment (process, then credentials `envs`): what an image-declared
    /// graph's placeholders and trains read.
    pub edge_env: BTreeMap<String, String>,
    /// Driver images' labels, as far as known.
    pub images: KnownImages,
    /// Twin-scoped driver tokens: the mode and each twin's token as last answered.
    pub tokens: crate::drivers::tokens::DriverTokens,
}

/// A driver container is a [`ContainerSpec`] of role [`Role::Driver`] whose owner is its twin.
pub type DriverSpec = ContainerSpec;

/// The problem title of a twin whose containers would take names another twin's already have
/// (names use the first 8 hex digits of the uuid). It degrades `status`.
pub const NAME_COLLISION: &str = "Container name collision";

/// What a linked twin needs.
#[derive(Debug, Clone, PartialEq)]
pub enum TwinOutcome {
    Containers(Vec<DriverSpec>),
    /// A camera attached to a linked parent: its frames go through the parent's driver.
    CameraChild {
        parent: String,
    },
    /// Attached twin without drivers: only its twin file.
    FileOnly,
    /// Its driver image's labels are not known yet (it may declare a service graph): nothing
    /// runs for it until they are; this single-container spec names the image to fetch.
    Discovering(Box<DriverSpec>),
    /// It runs on a twin-scoped token and the first answer about it has not come yet: nothing
    /// of it starts until it has (a cached token answers at once).
    AwaitingToken,
    /// Cannot run: `title` is the `driver_start_failure` alert name.
    Problem {
        title: String,
        /// The alert's description (the original's words where it has the condition).
        detail: String,
        /// What exactly was wrong, for the alert's metadata and the log.
        technical: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct TwinPlan {
    pub twin_uuid: String,
    pub twin_name: String,
    /// The twin object with its asset under `asset` (the twin file's content).
    pub twin_file: Value,
    /// The twin this one is attached to (from the parsed twin, not read again from the file).
    pub attach_parent: Option<String>,
    pub outcome: TwinOutcome,
    /// The `local_http` pages its profile declares (the local portal's listing), raw.
    pub local_http: Value,
    /// It runs scoped (or waits to): the token it needs.
    pub token: Option<crate::drivers::tokens::TokenNeed>,
}

/// `cyberwave-driver-{twin[:8]}[-{service}]`.
pub fn container_name(twin_uuid: &str, service: Option<&str>) -> String {
    let short: String = twin_uuid.chars().take(8).collect();
    match service {
        Some(s) => format!("cyberwave-driver-{short}-{s}"),
        None => format!("cyberwave-driver-{short}"),
    }
}

/// Reference §5.4: RGB sensors in the asset's schema or capabilities, or a camera registry id.
pub fn has_rgb_sensor(asset: &Value) -> bool {
    let rgb = |sensors: Option<&Value>| {
        sensors.and_then(Value::as_array).is_some_and(|list| {
            list.iter().any(|s| {
                s.get("type").and_then(Value::as_str).is_some_and(|t| {
                    matches!(
                        t.to_lowercase().as_str(),
                        "rgb" | "camera" | "rgb_camera" | "rgbd"
                    )
                })
            })
        })
    };
    let schema = asset
        .pointer("/metadata/universal_schema")
        .or_else(|| asset.get("universal_schema"));
    if rgb(schema.and_then(|s| s.get("sensors")))
        || rgb(asset.pointer("/metadata/capabilities/sensors"))
    {
        return true;
    }
    let reg = asset
        .get("registry_id")
        .or_else(|| asset.pointer("/metadata/registry_id"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_lowercase();
    ["standard-cam", "realsense", "camera"]
        .iter()
        .any(|k| reg.contains(k))
}

pub fn registry_id(asset: &Value) -> Option<String> {
    asset
        .get("registry_id")
        .or_else(|| asset.pointer("/metadata/registry_id"))
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// The first environment name of a service (its `env`, `shared_env` or `-e` params) that
/// [`valid_env_key`] refuses.
fn bad_env_key(svc: &ServiceProfile) -> Option<String> {
    let (pairs, _) = split_env_params(&svc.params);
    svc.env
        .keys()
        .cloned()
        .chain(pairs.into_iter().map(|(k, _)| k))
        .find(|k| !valid_env_key(k))
}

/// Plans every twin linked to this edge by the driver rule.
pub fn plan_twins(
    twins: &[Twin],
    assets: &BTreeMap<String, Value>,
    linked: &[String],
    ctx: &LaunchContext,
) -> Vec<TwinPlan> {
    // Each twin parsed once: its typed view (validated uuid, asset, parent) and its raw JSON
    // (the twin file's content).
    let by_uuid: BTreeMap<String, (&Twin, &Value)> = twins
        .iter()
        .map(|t| (t.uuid.clone(), (t, &t.raw)))
        .collect();
    let asset_of =
        |t: &Twin| -> Option<&Value> { t.asset_uuid.as_ref().and_then(|a| assets.get(a)) };
    // Attached children of linked parents: registry ids (profile selection) and cameras.
    let mut child_registry: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut camera_children: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut camera_child_of: BTreeMap<String, String> = BTreeMap::new();
    for uuid in linked {
        let Some((t, _)) = by_uuid.get(uuid) else {
            continue;
        };
        let Some(parent) = t.attach_parent.clone() else {
            continue;
        };
        let Some(asset) = asset_of(t) else { continue };
        if let Some(r) = registry_id(asset) {
            child_registry.entry(parent.clone()).or_default().push(r);
        }
        if has_rgb_sensor(asset) && linked.contains(&parent) {
            let list = camera_children.entry(parent.clone()).or_default();
            if !list.contains(uuid) {
                list.push(uuid.clone());
            }
            camera_child_of.insert(uuid.clone(), parent);
        }
    }

    let mut out = Vec::new();
    for uuid in linked {
        let Some((typed, twin)) = by_uuid.get(uuid) else {
            continue;
        };
        let name = typed.name.clone();
        let asset = asset_of(typed);
        let mut file = (*twin).clone();
        if let (Some(obj), Some(a)) = (file.as_object_mut(), asset) {
            obj.insert("asset".into(), a.clone());
        }
        let url = ctx.troubleshooting_url.as_str();
        let problem = |w: words::Words, technical: Option<String>| TwinOutcome::Problem {
            title: w.title.into(),
            detail: w.description,
            technical,
        };
        let mut token = None;
        let outcome = if typed.asset_uuid.is_none() {
            problem(words::twin_has_no_asset(&name), None)
        } else if asset.is_none() {
            problem(words::asset_unavailable(&name, url), None)
        } else if let Some(parent) = camera_child_of.get(uuid) {
            TwinOutcome::CameraChild {
                parent: parent.clone(),
            }
        } else {
            match drivers_of(twin, asset) {
                None if typed.attach_parent.is_some() => TwinOutcome::FileOnly,
                None => problem(words::no_drivers(&name), None),
                Some(drivers) => {
                    let children = child_registry.get(uuid).cloned().unwrap_or_default();
                    match select_profile_key(drivers, &ctx.host, &children) {
                        None => problem(
                            words::no_driver_image(&name),
                            Some(format!(
                                "no driver profile for {:?} or \"default\"",
                                ctx.host.driver_keys()
                            )),
                        ),
                        Some(key) => match services_of(&key, &drivers[&key]) {
                            // Invalid inline `services` are an unusable topology (as in the
                            // original); an unusable single profile, which stopped the
                            // original's whole pass, is this twin's missing image.
                            Err(e)
                                if drivers[&key]
                                    .get("services")
                                    .and_then(Value::as_array)
                                    .is_some_and(|a| !a.is_empty()) =>
                            {
                                problem(words::unusable_topology(&name, &e.0, url), Some(e.0))
                            }
                            Err(e) => problem(words::no_driver_image(&name), Some(e.0)),
                            Ok(services) => {
                                let services =
                                    with_override(services, ctx.driver_overrides.get(uuid));
                                match services.iter().find_map(bad_env_key) {
                                    Some(key) => TwinOutcome::Problem {
                                        title: "Invalid environment variable in driver metadata"
                                            .into(),
                                        detail: format!(
                                            "twin '{name}': environment variable name {key:?} is not [A-Za-z_][A-Za-z0-9_]*"
                                        ),
                                        technical: None,
                                    },
                                    None => {
                                        let cams =
                                            camera_children.get(uuid).cloned().unwrap_or_default();
                                        let (o, need) = graph::outcome(
                                            ctx,
                                            (uuid, &name),
                                            &drivers[&key],
                                            services,
                                            &cams,
                                        );
                                        token = need;
                                        o
                                    }
                                }
                            }
                        },
                    }
                }
            }
        };
        let children = child_registry.get(uuid).map_or(&[][..], Vec::as_slice);
        out.push(TwinPlan {
            twin_uuid: uuid.clone(),
            local_http: super::profile::local_http(twin, asset, &ctx.host, children),
            twin_name: name,
            twin_file: file,
            attach_parent: typed.attach_parent.clone(),
            outcome,
            token,
        });
    }
    refuse_name_collisions(&mut out);
    out
}

/// credentials.json `driver_overrides` replaces a single-container driver's image (params
/// cleared).
fn with_override(mut services: Vec<ServiceProfile>, image: Option<&String>) -> Vec<ServiceProfile> {
    if let ([s], Some(img)) = (services.as_mut_slice(), image)
        && s.name.is_none()
    {
        s.image = img.clone();
        s.params.clear();
    }
    services
}

/// The first twin to claim a container name keeps it; a later twin whose uuid shares the first
/// 8 hex digits gets a [`NAME_COLLISION`] problem instead of silently no container.
fn refuse_name_collisions(plans: &mut [TwinPlan]) {
    let mut claimed: BTreeMap<String, String> = BTreeMap::new();
    for p in plans.iter_mut() {
        let TwinOutcome::Containers(specs) = &p.outcome else {
            continue;
        };
        let clash = specs
            .iter()
            .find_map(|s| claimed.get(&s.name).map(|t| (s.name.clone(), t.clone())));
        match clash {
            Some((name, other)) => {
                p.outcome = TwinOutcome::Problem {
                    technical: None,
                    title: NAME_COLLISION.into(),
                    detail: format!(
                        "twins {other} and {} share their first 8 hex digits, so both would run as {name}; only {other} runs",
                        p.twin_uuid
                    ),
                };
            }
            None => {
                for s in specs {
                    claimed.insert(s.name.clone(), p.twin_uuid.clone());
                }
            }
        }
    }
}

/// A launch context for unit tests (an aarch64 host of the dev environment, no GPU).
#[cfg(test)]
pub(crate) fn example_context() -> LaunchContext {
    LaunchContext {
        config_dir: PathBuf::from("/home/pi/.cyberwave"),
        host: HostPlatform {
            machine: "aarch64".into(),
            jetson: false,
        },
        environment: "dev".into(),
        base_url: "https://api.cyberwave.com".into(),
        mqtt_host_var: None,
        mqtt_port_var: None,
        mqtt_port: 8883,
        log_level: Some("debug".into()),
        forwarded: BTreeMap::from([
            ("CYBERWAVE_CUSTOM".to_string(), "x".to_string()),
            ("CYBERWAVE_TWIN_UUID".to_string(), "spoof".to_string()),
        ]),
        bus_env: vec![
            ("CYBERWAVE_DATA_BACKEND", "zenoh".into()),
            ("ZENOH_SHARED_MEMORY", "false".into()),
            ("ZENOH_CONNECT", "tcp/10.0.0.1:7447".into()),
        ],
        log_max_size: Some("10m".into()),
        log_max_file: "3".into(),
        nvidia_default_runtime: false,
        driver_overrides: BTreeMap::new(),
        token: Secret::new("cw_secret_token_abcdef"),
        owner: "fp".into(),
        cameras: None,
        camera_files: Default::default(),
        host_has_v4l: false,
        troubleshooting_url: "https://docs.cyberwave.com".into(),
        has_so101_lib: false,
        edge_env: BTreeMap::new(),
        images: KnownImages {
            unknown_is_plain: true,
            ..Default::default()
        },
        tokens: Default::default(),
    }
}

mod build;
mod env;
mod graph;

use build::build_spec;
pub use graph::{ImageFacts, KnownImages};

#[cfg(test)]
mod tests;
