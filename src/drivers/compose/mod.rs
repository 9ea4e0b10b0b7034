//! Image-declared service graphs (reference §5.5): a driver image carries its own multi-
//! container topology as rendered Compose JSON, base64 in a label per variant, so twin metadata
//! only names the image. Pure: labels and the edge's settings in, the services out (each then
//! built like an inline service by `drivers::spec`).
//!
//! Better than the original on purpose: a graph declared for our variant that cannot be used
//! (bad base64 or JSON, a key Edge Core does not translate, a bad value, a cycle) is refused
//! with the `Unusable declared topology` alert and nothing runs; the original logged it and
//! started the image alone as one container, which for a ROS stack is a robot that looks up
//! and does nothing. An image declaring another schema, or nothing for our variant, still
//! runs as one container (it declares nothing we can read), as in the original.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde_json::{Map, Value};

pub mod bundle;
pub mod service;
pub mod subst;

pub use service::{Resource, ResourceKind};

pub const SCHEMA_LABEL: &str = "io.cyberwave.driver.compose.schema";
const LABEL_PREFIX: &str = "io.cyberwave.driver.compose";
pub const VARIANT_ENV: &str = "CYBERWAVE_DRIVER_COMPOSE_VARIANT";
pub const DEFAULT_VARIANT: &str = "robot";
const SUPPORTED_SCHEMA: &str = "2";
/// Largest decoded declaration read (real ones are a few KiB).
const MAX_DOC_BYTES: usize = 1 << 20;
/// Most services one graph may run.
const MAX_SERVICES: usize = 64;

/// What the translation reads besides the labels.
pub struct Inputs<'a> {
    /// The declaring image, as resolved (tag rules applied).
    pub image: &'a str,
    pub labels: &'a BTreeMap<String, String>,
    pub twin_uuid: &'a str,
    /// The edge's own environment (placeholders, the trains' variables, the variant).
    pub env: &'a BTreeMap<String, String>,
    /// The bus settings drivers get (validated: a refused `ZENOH_MODE` is not among them).
    pub zenoh: &'a [(&'static str, String)],
    /// The profile's `service_image_overrides`.
    pub image_overrides: &'a BTreeMap<String, String>,
    /// Our container name of a service of this graph (`network_mode: service:x`).
    pub container_of: &'a dyn Fn(&str) -> String,
    /// What was derived from the image when it was looked at (its navigation bundle's volume,
    /// or why it has none: [`bundle::VOLUME_KEY`], [`bundle::ERROR_KEY`]).
    pub derived: &'a BTreeMap<String, String>,
}

/// One service of a declared graph, translated.
#[derive(Debug, Clone, PartialEq)]
pub struct Service {
    pub name: String,
    pub image: String,
    /// Empty: the image's own.
    pub command: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub params: Vec<String>,
    pub extra_networks: Vec<String>,
    pub resources: Vec<Resource>,
    /// (service, waits for its health) in declaration order.
    pub depends_on: Vec<(String, bool)>,
    pub prefer_gpu: bool,
    pub gpu: String,
}

/// What an image declares for this edge.
#[derive(Debug, Clone, PartialEq)]
pub enum Declared {
    /// No compose schema label: one container.
    Nothing,
    /// A declaration this edge does not read (another schema, not our variant): one container,
    /// and this line is logged.
    Unreadable(String),
    /// The services in dependency order, and the log line naming the trains.
    Graph {
        services: Vec<Service>,
        summary: String,
    },
}

/// Service names become part of container names: `[a-z0-9_.-]`, at most 40.
pub fn valid_service_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 40
        && n.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '.' | '-'))
}

/// The variant this edge runs: `CYBERWAVE_DRIVER_COMPOSE_VARIANT`, else `robot`.
pub fn variant(env: &BTreeMap<String, String>) -> String {
    env.get(VARIANT_ENV)
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| DEFAULT_VARIANT.into())
}

/// A declaration found for our variant, or what to do instead.
enum Found {
    Not(Declared),
    Doc {
        doc: Map<String, Value>,
        raw: String,
        variant: String,
    },
}

/// Reads and translates the graph `inputs.labels` declare. `Err` is why a declared graph
/// cannot run (the `Unusable declared topology` alert's detail).
pub fn declared(inputs: &Inputs) -> Result<Declared, String> {
    match find(inputs.image, inputs.labels, inputs.env)? {
        Found::Not(d) => Ok(d),
        Found::Doc { doc, raw, variant } => translate(&doc, &raw, inputs, &variant),
    }
}

/// The navigation bundle the graph of `labels` declares for this edge's variant, if any.
pub fn declared_bundle(
    image: &str,
    labels: &BTreeMap<String, String>,
    env: &BTreeMap<String, String>,
) -> Result<Option<bundle::Bundle>, String> {
    match find(image, labels, env)? {
        Found::Not(_) => Ok(None),
        Found::Doc { doc, .. } => bundle::declared(&doc, labels),
    }
}

fn find(
    image: &str,
    labels: &BTreeMap<String, String>,
    env: &BTreeMap<String, String>,
) -> Result<Found, String> {
    let Some(schema) = labels.get(SCHEMA_LABEL).filter(|s| !s.is_empty()) else {
        return Ok(Found::Not(Declared::Nothing));
    };
    if schema.trim() != SUPPORTED_SCHEMA {
        return Ok(Found::Not(Declared::Unreadable(format!(
            "image {image} declares compose schema {schema:?}; this edge reads {SUPPORTED_SCHEMA}: running the image as one container"
        ))));
    }
    let variant = variant(env);
    let encoded = labels
        .get(&format!("{LABEL_PREFIX}.{variant}"))
        .map(|s| s.trim())
        .unwrap_or("");
    if encoded.is_empty() {
        return Ok(Found::Not(Declared::Unreadable(format!(
            "image {image} declares compose schema 2 but no variant {variant:?}: running the image as one container"
        ))));
    }
    if encoded.len() > MAX_DOC_BYTES / 3 * 4 + 4 {
        return Err(format!(
            "its compose label for {variant:?} is over {MAX_DOC_BYTES} bytes"
        ));
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map_err(|e| format!("its compose label for {variant:?} is not base64 ({e})"))?;
    let raw = String::from_utf8(raw)
        .map_err(|_| format!("its compose label for {variant:?} is not UTF-8"))?;
    if raw.trim() == "{}" {
        return Ok(Found::Not(Declared::Unreadable(format!(
            "image {image} declares an empty graph for {variant:?}: running the image as one container"
        ))));
    }
    let doc: Value = serde_json::from_str(&raw).map_err(|e| {
        format!(
            "its compose label for {variant:?} is not JSON ({e}; {} bytes)",
            raw.len()
        )
    })?;
    let Value::Object(doc) = doc else {
        return Err(format!(
            "its compose label for {variant:?} is not an object"
        ));
    };
    Ok(Found::Doc { doc, raw, variant })
}

fn translate(
    doc: &Map<String, Value>,
    raw: &str,
    inputs: &Inputs,
    variant: &str,
) -> Result<Declared, String> {
    let Some(services) = doc
        .get("services")
        .and_then(Value::as_object)
        .filter(|s| !s.is_empty())
    else {
        return Ok(Declared::Unreadable(format!(
            "image {} declares no services for {variant:?}: running the image as one container",
            inputs.image
        )));
    };
    if services.len() > MAX_SERVICES {
        return Err(format!(
            "it declares {} services (at most {MAX_SERVICES})",
            services.len()
        ));
    }
    let nav = bundle::declared(doc, inputs.labels)?;
    let env = inputs.env;
    let (channel, channel_from) = subst::channel_tag(inputs.image, inputs.labels, env);
    let (sim_proxy, proxy_from) = subst::sim_proxy_tag(env);
    let moveit = subst::moveit_tag(inputs.labels, &channel, env);
    if let (Err(why), true) = (&moveit, raw.contains(subst::MOVEIT_PLACEHOLDER)) {
        return Err(format!(
            "it needs ${{CW_MOVEIT_TAG}}, which did not resolve ({why}); pin it with {} or rebuild the driver image with the {} label",
            subst::MOVEIT_TAG_ENV,
            subst::MOVEIT_TAG_LABEL
        ));
    }
    let trains = subst::Trains {
        channel: channel.clone(),
        sim_proxy: sim_proxy.clone(),
        moveit: moveit.ok(),
    };
    let mut subs = subst::substitutions(&trains, inputs.twin_uuid, inputs.zenoh);
    if let Some(b) = &nav {
        let d = inputs.derived;
        let volume = match (d.get(bundle::VOLUME_KEY), d.get(bundle::ERROR_KEY)) {
            (Some(v), _) => v,
            (None, Some(e)) => {
                return Err(format!(
                    "invalid navigation bundle in {}: {e}",
                    inputs.image
                ));
            }
            (None, None) => return Err("its navigation bundle is not materialised".into()),
        };
        subs.extend(bundle::substitutions(b, volume).map(|(k, v)| (k.to_string(), v)));
    }
    let pins = subst::pin_overrides(env);
    let empty = Map::new();
    let cx = service::Ctx {
        subs: &subs,
        env,
        networks: doc
            .get("networks")
            .and_then(Value::as_object)
            .unwrap_or(&empty),
        volumes: doc
            .get("volumes")
            .and_then(Value::as_object)
            .unwrap_or(&empty),
        container_of: inputs.container_of,
    };
    let mut out = Vec::new();
    for name in service::dependency_order(services)? {
        let svc = one_service(&name, &services[&name], &cx, &pins)
            .map_err(|e| format!("compose service {name:?}: {e}"))?;
        out.push(svc);
    }
    if let Some(unknown) = inputs
        .image_overrides
        .keys()
        .find(|k| !out.iter().any(|s| &s.name == *k))
    {
        return Err(format!(
            "service_image_overrides names unknown service(s): {unknown}"
        ));
    }
    for s in &mut out {
        if let Some(img) = inputs.image_overrides.get(&s.name) {
            s.image = img.trim().to_string();
        }
    }
    let summary = format!(
        "using image-declared topology from {} (variant={variant}, channel={} from {channel_from}, sim-proxy={sim_proxy} from {proxy_from}): {}",
        inputs.image,
        if channel.is_empty() {
            "<unset>"
        } else {
            &channel
        },
        out.iter()
            .map(|s| s.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(Declared::Graph {
        services: out,
        summary,
    })
}

fn one_service(
    name: &str,
    raw: &Value,
    cx: &service::Ctx,
    pins: &BTreeMap<&'static str, String>,
) -> Result<Service, String> {
    if !valid_service_name(name) {
        return Err("its name is not [a-z0-9_.-], at most 40 characters".into());
    }
    let svc = raw.as_object().ok_or("it is not a mapping")?;
    let unsupported: Vec<&str> = svc
        .keys()
        .map(String::as_str)
        .filter(|k| !service::TRANSLATED.contains(k) && !service::EDGE_OWNED.contains(k))
        .collect();
    if !unsupported.is_empty() {
        return Err(format!(
            "it declares {unsupported:?}, which Edge Core does not translate. Refusing the whole graph rather than starting it without them: a container that silently lacks a device, a capability or a privilege still reports healthy, so the loss would surface as unexplained robot behaviour instead of an error."
        ));
    }
    let image = svc
        .get("image")
        .and_then(Value::as_str)
        .filter(|i| !i.trim().is_empty())
        .ok_or("it has no image")?;
    let ext = svc.get("x-cyberwave").and_then(Value::as_object);
    let mut image = cx.sub(image.trim());
    if let Some(p) = ext
        .and_then(|e| e.get("pinned_from"))
        .and_then(Value::as_str)
        && let Some(tag) = pins.get(p)
    {
        image = subst::retag(&image, tag);
    }
    if !crate::containers::image::valid_reference(&image) {
        return Err(format!(
            "its image {image:?} is not a valid image reference"
        ));
    }
    let command = match svc.get("command") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(parts)) => parts
            .iter()
            .map(|p| cx.sub(&service::scalar(p).unwrap_or_else(|| p.to_string())))
            .collect(),
        Some(Value::String(s)) if s.is_empty() => Vec::new(),
        Some(Value::String(s)) => vec!["/bin/sh".into(), "-c".into(), cx.sub(s)],
        Some(_) => return Err("command must be a list or a string".into()),
    };
    let env: BTreeMap<String, String> = service::environment(svc.get("environment"))?
        .into_iter()
        .map(|(k, v)| (k, cx.sub(&v)))
        .collect();
    if let Some(k) = env.keys().find(|k| !super::params::valid_env_key(k)) {
        return Err(format!(
            "environment variable name {k:?} is not [A-Za-z_][A-Za-z0-9_]*"
        ));
    }
    let flags = service::flags(svc, cx)?;
    let gpu = match ext.and_then(|e| e.get("gpu")) {
        None | Some(Value::Null) => "all".to_string(),
        Some(v) => service::scalar(v).unwrap_or_else(|| v.to_string()),
    };
    Ok(Service {
        name: name.to_string(),
        image,
        command,
        env,
        params: flags.params,
        extra_networks: flags.extra_networks,
        resources: flags.resources,
        depends_on: service::depends_on(svc.get("depends_on")),
        prefer_gpu: ext
            .and_then(|e| e.get("prefer_gpu"))
            .is_some_and(|v| v.as_bool().unwrap_or(!v.is_null())),
        gpu,
    })
}

#[cfg(test)]
mod tests;
