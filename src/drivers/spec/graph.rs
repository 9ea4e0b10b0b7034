//! A twin's containers from its profile: inline `services`, one container, or the service
//! graph its image declares (reference §5.5) once the image's labels are known.

use std::collections::BTreeMap;

use serde_json::Value;

use super::{DriverSpec, LaunchContext, TwinOutcome, build, build_spec, container_name};
pub use crate::containers::launch::ImageLook;
use crate::drivers::compose::{self, Declared};
use crate::drivers::profile::{GraphLinks, ServiceProfile};
use crate::drivers::tokens::{Credential, Mode, SCOPED_LABEL, TokenNeed};
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
/// profile, which may declare a graph), and its token need when it runs scoped.
pub(super) fn outcome(
    ctx: &LaunchContext,
    twin: (&str, &str),
    profile: &Value,
    services: Vec<ServiceProfile>,
    cams: &[String],
) -> (TwinOutcome, Option<TokenNeed>) {
    match services_to_run(ctx, twin, profile, services, cams) {
        Ok(services) => with_credentials(ctx, twin, &services, cams),
        Err(stop) => (stop, None),
    }
}

/// The services a twin runs: inline ones as they are; a single image as one container or as
/// the graph it declares, once its labels are known. `Err`: what stops the twin for now.
fn services_to_run(
    ctx: &LaunchContext,
    (uuid, name): (&str, &str),
    profile: &Value,
    services: Vec<ServiceProfile>,
    cams: &[String],
) -> Result<Vec<ServiceProfile>, TwinOutcome> {
    let single = match services.as_slice() {
        [s] if s.name.is_none() && !ctx.driver_overrides.contains_key(uuid) => s.clone(),
        _ => return Ok(services),
    };
    let spec = build_spec(ctx, uuid, name, &single, cams, None);
    let look = match ctx.images.facts.get(&spec.image) {
        None if ctx.images.unknown_is_plain => return Ok(vec![single]),
        None => return Err(TwinOutcome::Discovering(Box::new(spec))),
        // As the original: the launch then pulls, retries and alerts as for any image; once a
        // launch brought the image, its labels are read again.
        Some(ImageFacts::Unavailable(_)) => return Ok(vec![single]),
        Some(ImageFacts::Known(look)) => look,
    };
    match declared_services(ctx, uuid, &spec, look, profile, &single) {
        Ok(None) => Ok(vec![single]),
        Ok(Some(graph)) => Ok(graph),
        Err(why) => {
            let w = words::unusable_topology(name, &why, &ctx.troubleshooting_url);
            Err(TwinOutcome::Problem {
                title: w.title.into(),
                detail: w.description,
                technical: Some(why),
            })
        }
    }
}

/// Each container with the credential its mode gives it (reference §5.8, driver tokens): under
/// `auto` that is its image's label, so an image not looked at yet is looked at first. A twin
/// waits for its token's first answer; `strict` without a token is a problem.
fn with_credentials(
    ctx: &LaunchContext,
    (uuid, name): (&str, &str),
    services: &[ServiceProfile],
    cams: &[String],
) -> (TwinOutcome, Option<TokenNeed>) {
    let need = TokenNeed::new(uuid, cams);
    let (mut specs, mut scoped) = (Vec::new(), false);
    for s in services {
        let image = build::final_image(ctx, s).0;
        let opts_in = match ctx.images.facts.get(&image) {
            Some(ImageFacts::Known(look)) => opts_in(&look.labels),
            None if ctx.tokens.settings.mode == Mode::Auto && !ctx.images.unknown_is_plain => {
                let spec = build_spec(ctx, uuid, name, s, cams, None);
                return (TwinOutcome::Discovering(Box::new(spec)), None);
            }
            // Not inspectable: as the original, no label.
            _ => false,
        };
        match ctx
            .tokens
            .credential(&need, opts_in, &ctx.base_url, ctx.token.expose())
        {
            Credential::Edge { fallback } => {
                scoped |= fallback.is_some();
                specs.push(build_spec(ctx, uuid, name, s, cams, None));
            }
            Credential::Scoped(t) => {
                scoped = true;
                specs.push(build_spec(ctx, uuid, name, s, cams, Some(&t)));
            }
            Credential::Awaiting => return (TwinOutcome::AwaitingToken, Some(need)),
            Credential::Refused(why) => {
                let w = words::driver_token_unavailable();
                let stop = TwinOutcome::Problem {
                    title: w.title.into(),
                    detail: w.description,
                    technical: Some(why),
                };
                return (stop, Some(need));
            }
        }
    }
    (TwinOutcome::Containers(specs), scoped.then_some(need))
}

/// The original's test of an image's opt-in label.
fn opts_in(labels: &BTreeMap<String, String>) -> bool {
    labels
        .get(SCOPED_LABEL)
        .is_some_and(|v| matches!(v.trim(), "1" | "true" | "yes"))
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
