//! A twin's containers from its profile: inline `services`, one container, or the service
//! graph its image declares (reference §5.5) once the image's labels are known.

use std::collections::BTreeMap;

use serde_json::Value;

use super::{DriverSpec, LaunchContext, TwinOutcome, build_spec, container_name};
pub use crate::containers::launch::ImageLook;
use crate::drivers::compose::{self, Declared};
use crate::drivers::profile::{GraphLinks, ServiceProfile};
use crate::drivers::words;

/// What this edge knows of driver images, by reference (tag rules applied): their labels, read
/// after the image was fetched off the supervisor thread.
#[derive(Debug, Clone, Default)]
pub struct KnownImages {
    pub facts: BTreeMap<String, ImageFacts>,
    /// Plan an image not looked at yet as one plain container instead of waiting for its
    /// labels (a planner that never fetches images: the fuzz target, unit tests).
    pub unknown_is_plain: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ImageFacts {
    /// Its labels, and what was derived from it (its navigation bundle's volume).
    Known(ImageLook),
    /// It could not be fetched: why (read again once a launch brought it).
    Unavailable(String),
}

/// The outcome of a twin whose profile gave `services` (one unnamed service: a single-image
/// profile, which may declare a graph).
pub(super) fn outcome(
    ctx: &LaunchContext,
    twin: (&str, &str),
    profile: &Value,
    services: Vec<ServiceProfile>,
    cams: &[String],
) -> TwinOutcome {
    let (uuid, name) = twin;
    let build = |s: &ServiceProfile| build_spec(ctx, uuid, name, s, cams);
    let single = match services.as_slice() {
        [s] if s.name.is_none() && !ctx.driver_overrides.contains_key(uuid) => s,
        _ => return TwinOutcome::Containers(services.iter().map(build).collect()),
    };
    let spec = build(single);
    let look = match ctx.images.facts.get(&spec.image) {
        None if ctx.images.unknown_is_plain => return TwinOutcome::Containers(vec![spec]),
        None => return TwinOutcome::Discovering(Box::new(spec)),
        // As the original: the launch then pulls, retries and alerts as for any image; once a
        // launch brought the image, its labels are read again.
        Some(ImageFacts::Unavailable(_)) => return TwinOutcome::Containers(vec![spec]),
        Some(ImageFacts::Known(look)) => look,
    };
    match declared_services(ctx, uuid, &spec, look, profile, single) {
        Ok(None) => TwinOutcome::Containers(vec![spec]),
        Ok(Some(graph)) => TwinOutcome::Containers(graph.iter().map(build).collect()),
        Err(why) => {
            let w = words::unusable_topology(name, &why, &ctx.troubleshooting_url);
            TwinOutcome::Problem {
                title: w.title.into(),
                detail: w.description,
                technical: Some(why),
            }
        }
    }
}

/// The services `labels` declare, as inline services of the twin; `None`: run it as one.
fn declared_services(
    ctx: &LaunchContext,
    uuid: &str,
    single: &DriverSpec,
    look: &ImageLook,
    profile: &Value,
    base: &ServiceProfile,
) -> Result<Option<Vec<ServiceProfile>>, String> {
    let image_overrides = image_overrides(profile)?;
    let container_of = |s: &str| container_name(uuid, Some(s));
    let declared = compose::declared(&compose::Inputs {
        image: &single.image,
        labels: &look.labels,
        derived: &look.derived,
        twin_uuid: uuid,
        env: &ctx.edge_env,
        zenoh: &ctx.bus_env,
        image_overrides: &image_overrides,
        container_of: &container_of,
    })?;
    let (services, summary) = match declared {
        Declared::Nothing => return Ok(None),
        Declared::Unreadable(why) => {
            log::warn!("twin {uuid}: {why}");
            return Ok(None);
        }
        Declared::Graph { services, summary } => (services, summary),
    };
    log::debug!("twin {uuid}: {summary}");
    let shared = shared_env(profile);
    Ok(Some(
        services
            .into_iter()
            .map(|s| {
                // The profile's `shared_env` under the declaration's own `environment`.
                let mut env = shared.clone();
                env.extend(s.env);
                ServiceProfile {
                    name: Some(s.name),
                    image: s.image,
                    params: s.params,
                    command: s.command,
                    env,
                    prefer_gpu: s.prefer_gpu,
                    gpu: s.gpu,
                    restart: "unless-stopped".into(),
                    stop_timeout_s: 5,
                    privileged: base.privileged,
                    min_restart_interval_s: None,
                    host_env_file: None,
                    graph: GraphLinks {
                        extra_networks: s.extra_networks,
                        depends_on: s.depends_on,
                        resources: s.resources,
                    },
                }
            })
            .collect(),
    ))
}

/// The profile's `shared_env`, stringified as a shell would read it (`true`, `1.5`); nulls
/// left out.
fn shared_env(profile: &Value) -> BTreeMap<String, String> {
    profile
        .get("shared_env")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| {
                    let v = match v {
                        Value::Null => return None,
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    Some((k.clone(), v))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// `service_image_overrides`: service → image; any other shape is refused.
fn image_overrides(profile: &Value) -> Result<BTreeMap<String, String>, String> {
    let bad = || "service_image_overrides must map service names to image references".to_string();
    match profile.get("service_image_overrides") {
        None | Some(Value::Null) => Ok(BTreeMap::new()),
        Some(Value::Object(m)) => m
            .iter()
            .map(|(k, v)| match v.as_str().map(str::trim) {
                Some(i) if !k.trim().is_empty() && crate::containers::image::valid_reference(i) => {
                    Ok((k.clone(), i.to_string()))
                }
                _ => Err(bad()),
            })
            .collect(),
        Some(_) => Err(bad()),
    }
}
