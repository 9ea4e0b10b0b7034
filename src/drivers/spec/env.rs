//! The environment the edge injects into a driver container (reference §5.8).

use std::collections::BTreeMap;

use super::LaunchContext;
use crate::drivers::camera;

/// The edge-injected environment of §5.8, before params' `-e` pairs are merged in.
pub(super) fn injected_env(
    ctx: &LaunchContext,
    twin_uuid: &str,
    image: &str,
    children: &[String],
    param_env: &BTreeMap<String, String>,
    service_env: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut env: BTreeMap<String, String> = BTreeMap::new();
    let setdefault = |env: &mut BTreeMap<String, String>, k: &str, v: String| {
        env.entry(k.to_string()).or_insert(v);
    };
    env.insert("CYBERWAVE_TWIN_UUID".into(), twin_uuid.to_string());
    env.insert("CYBERWAVE_EDGE_HOST_PLATFORM".into(), "linux".into());
    if !children.is_empty() {
        env.insert("CYBERWAVE_CHILD_TWIN_UUIDS".into(), children.join(","));
    }
    if !param_env.contains_key(camera::VIDEO_DEVICE)
        && !camera::is_alsa_image(image)
        && let Some(d) = ctx
            .cameras
            .as_ref()
            .and_then(|c| c.device_for(Some(twin_uuid)))
    {
        env.insert(camera::VIDEO_DEVICE.into(), d);
    }
    let local_base = crate::mqtt::url_host(&ctx.base_url).filter(|h| crate::mqtt::is_local_host(h));
    // A local backend has its broker on the same host. The original injected that host only
    // when no MQTT port was configured either, sending drivers with a custom port to the
    // public broker; we inject it whenever no host is configured.
    match (&ctx.mqtt_host_var, &local_base) {
        (Some(h), _) | (None, Some(h)) => {
            env.insert("CYBERWAVE_MQTT_HOST".into(), h.clone());
        }
        _ => {}
    }
    match (&ctx.mqtt_port_var, &local_base) {
        (Some(p), _) => {
            env.insert("CYBERWAVE_MQTT_PORT".into(), p.clone());
        }
        (None, Some(_)) => setdefault(&mut env, "CYBERWAVE_MQTT_PORT", "1883".into()),
        _ => {}
    }
    if let Some(l) = &ctx.log_level {
        setdefault(&mut env, "CYBERWAVE_EDGE_LOG_LEVEL", l.clone());
    }
    if !ctx.environment.eq_ignore_ascii_case("production") {
        env.insert("CYBERWAVE_ENVIRONMENT".into(), ctx.environment.clone());
    }
    for (k, v) in &ctx.forwarded {
        if k.starts_with("CYBERWAVE_") && !v.is_empty() {
            setdefault(&mut env, k, v.clone());
        }
    }
    if !env.contains_key("CYBERWAVE_MQTT_USE_TLS")
        && !param_env.contains_key("CYBERWAVE_MQTT_USE_TLS")
        && ctx.mqtt_port == 8883
    {
        env.insert("CYBERWAVE_MQTT_USE_TLS".into(), "true".into());
    }
    env.insert("CYBERWAVE_EDGE_CONFIG_DIR".into(), "/app/.cyberwave".into());
    for (k, v) in &ctx.bus_env {
        if !param_env.contains_key(*k) {
            setdefault(&mut env, k, v.clone());
        }
    }
    for (k, v) in service_env {
        env.insert(k.clone(), v.clone());
    }
    env.insert("CYBERWAVE_API_KEY".into(), ctx.token.expose().to_string());
    env.insert("CYBERWAVE_BASE_URL".into(), ctx.base_url.clone());
    env.insert("CYBERWAVE_API_URL".into(), ctx.base_url.clone());
    env.insert(
        "CYBERWAVE_TWIN_JSON_FILE".into(),
        format!("/app/{twin_uuid}.json"),
    );
    env
}

/// Keys where a driver's own `-e` wins over the edge (the original checks these explicitly).
pub(super) const DRIVER_WINS: &[&str] = &[
    "CYBERWAVE_METADATA_VIDEO_DEVICE",
    "CYBERWAVE_DATA_BACKEND",
    "ZENOH_SHARED_MEMORY",
    "ZENOH_MODE",
    "ZENOH_CONNECT",
    "CYBERWAVE_MQTT_USE_TLS",
];
