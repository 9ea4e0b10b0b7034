//! Which driver profile of `metadata.drivers` runs on this host, and what it asks for
//! (reference §5.3). Pure.

use std::collections::BTreeMap;

use serde_json::Value;

/// The host facts profile selection depends on.
#[derive(Debug, Clone, PartialEq)]
pub struct HostPlatform {
    /// `platform.machine().lower()`: `aarch64`, `x86_64`, `armv7l`.
    pub machine: String,
    /// `/etc/nv_tegra_release` exists or `CYBERWAVE_PLATFORM_VARIANT=jetson`.
    pub jetson: bool,
}

impl HostPlatform {
    pub fn detect(platform_variant: Option<&str>) -> Self {
        let (_, _, machine) = crate::host::uname();
        HostPlatform {
            machine: machine.to_lowercase(),
            jetson: std::path::Path::new("/etc/nv_tegra_release").exists()
                || platform_variant.is_some_and(|v| v.trim().eq_ignore_ascii_case("jetson")),
        }
    }

    /// Profile keys, most specific first (Linux).
    pub fn driver_keys(&self) -> Vec<String> {
        let m = &self.machine;
        let mut keys = Vec::new();
        if self.jetson {
            keys.push(format!("linux-{m}-jetson"));
        }
        keys.push(format!("linux-{m}"));
        keys.push("linux".into());
        keys
    }
}

/// One container of a driver.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceProfile {
    /// `None` for a single-container driver.
    pub name: Option<String>,
    pub image: String,
    pub params: Vec<String>,
    pub command: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub prefer_gpu: bool,
    pub gpu: String,
    pub restart: String,
    pub stop_timeout_s: u64,
    pub privileged: bool,
    /// `min_restart_interval_s` (0 or absent: none).
    pub min_restart_interval_s: Option<u64>,
    /// `host_env_file`: a file under the config dir handed to Docker as `--env-file`.
    pub host_env_file: Option<String>,
    /// Its place in the twin's graph (start order, networks, what it needs created).
    pub graph: GraphLinks,
}

/// A service's links to the rest of its graph, by service name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GraphLinks {
    pub extra_networks: Vec<String>,
    /// (service, waits for its health).
    pub depends_on: Vec<(String, bool)>,
    pub resources: Vec<crate::containers::spec::Resource>,
}

/// `host_env_file` as the original accepts it: a relative path inside the config dir, no `..`
/// (it must not name `/etc/shadow` or the daemon's own credentials' neighbours above it).
pub fn valid_host_env_file(p: &str) -> bool {
    let path = std::path::Path::new(p);
    !p.is_empty()
        && p.len() <= 255
        && !p.chars().any(char::is_control)
        && path.is_relative()
        && path.components().all(|c| {
            matches!(
                c,
                std::path::Component::Normal(_) | std::path::Component::CurDir
            )
        })
}

/// Why a twin's driver metadata cannot be used; becomes a `driver_start_failure` alert.
#[derive(Debug, Clone, PartialEq)]
pub struct ProfileError(pub String);

impl std::fmt::Display for ProfileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Picks the profile key: a child registry id (when the parent has several profiles), then the
/// host platform keys, then `default`.
pub fn select_profile_key(
    drivers: &serde_json::Map<String, Value>,
    host: &HostPlatform,
    child_registry_ids: &[String],
) -> Option<String> {
    if !child_registry_ids.is_empty() && drivers.len() > 1 {
        for key in drivers.keys() {
            if key != "default" && child_registry_ids.iter().any(|c| c == key) {
                return Some(key.clone());
            }
        }
    }
    for key in host.driver_keys() {
        if drivers.contains_key(&key) {
            return Some(key);
        }
    }
    drivers
        .contains_key("default")
        .then(|| "default".to_string())
}

/// The driver profiles a twin runs by: its own `metadata.drivers` when not empty, else its
/// asset's.
pub fn drivers_of<'a>(
    twin: &'a Value,
    asset: Option<&'a Value>,
) -> Option<&'a serde_json::Map<String, Value>> {
    twin.pointer("/metadata/drivers")
        .filter(|d| d.as_object().is_some_and(|m| !m.is_empty()))
        .or_else(|| asset.and_then(|a| a.pointer("/metadata/drivers")))
        .and_then(Value::as_object)
}

/// The `local_http` pages a twin's driver declares (reference §12, the local portal): from the
/// profile its launch uses (the twin's `metadata.drivers` over the asset's; the key chosen for
/// this host and the twin's children), else `default`'s; `Null` when there are none.
pub fn local_http(
    twin: &Value,
    asset: Option<&Value>,
    host: &HostPlatform,
    children: &[String],
) -> Value {
    let Some(d) = drivers_of(twin, asset) else {
        return Value::Null;
    };
    select_profile_key(d, host, children)
        .and_then(|k| d.get(&k))
        .and_then(|p| p.get("local_http"))
        .or_else(|| d.get("default").and_then(|p| p.get("local_http")))
        .cloned()
        .unwrap_or(Value::Null)
}

fn string_list(v: Option<&Value>, what: &str) -> Result<Vec<String>, ProfileError> {
    match v {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| match i {
                Value::String(s) => Ok(s.clone()),
                other => Err(ProfileError(format!(
                    "{what} must be a list of strings, found {other}"
                ))),
            })
            .collect(),
        Some(other) => Err(ProfileError(format!(
            "{what} must be a list of strings, found {other}"
        ))),
    }
}

fn string_map(v: Option<&Value>, what: &str) -> Result<BTreeMap<String, String>, ProfileError> {
    match v {
        None | Some(Value::Null) => Ok(BTreeMap::new()),
        Some(Value::Object(m)) => Ok(m
            .iter()
            .map(|(k, v)| {
                let s = match v {
                    Value::String(s) => s.clone(),
                    Value::Bool(b) => b.to_string(),
                    other => other.to_string(),
                };
                (k.clone(), s)
            })
            .collect()),
        Some(other) => Err(ProfileError(format!(
            "{what} must be an object, found {other}"
        ))),
    }
}

fn gpu_of(p: &serde_json::Map<String, Value>) -> String {
    match p.get("gpu") {
        None | Some(Value::Null) => "all".into(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// The containers a profile asks for: one for `docker_image` profiles, one per entry of a
/// `services` list (with `shared_env`/`shared_params` layered under each service's own).
pub fn services_of(key: &str, profile: &Value) -> Result<Vec<ServiceProfile>, ProfileError> {
    let Some(p) = profile.as_object() else {
        return Err(ProfileError(format!("Invalid config for driver '{key}'")));
    };
    if let Some(Value::Array(services)) = p
        .get("services")
        .filter(|s| s.as_array().is_some_and(|a| !a.is_empty()))
    {
        let shared_env = string_map(p.get("shared_env"), "shared_env")?;
        let shared_params = string_list(p.get("shared_params"), "shared_params")?;
        let mut out = Vec::new();
        for (i, s) in services.iter().enumerate() {
            let Some(s) = s.as_object() else {
                return Err(ProfileError(format!(
                    "services[{i}] of driver '{key}' is not an object"
                )));
            };
            let name = s
                .get("name")
                .and_then(Value::as_str)
                .filter(|n| super::compose::valid_service_name(n))
                .ok_or_else(|| {
                    ProfileError(format!(
                        "services[{i}] of driver '{key}' needs a \"name\" of [a-z0-9_.-]"
                    ))
                })?;
            let image = s
                .get("image")
                .and_then(Value::as_str)
                .filter(|i| !i.trim().is_empty())
                .ok_or_else(|| {
                    ProfileError(format!(
                        "service '{name}' of driver '{key}' has no \"image\""
                    ))
                })?;
            let mut env = shared_env.clone();
            env.extend(string_map(s.get("env"), &format!("service '{name}' env"))?);
            let mut params = shared_params.clone();
            params.extend(string_list(
                s.get("params"),
                &format!("service '{name}' params"),
            )?);
            let restart = match s.get("restart").and_then(Value::as_str) {
                None => "unless-stopped".to_string(),
                Some(r @ ("no" | "on-failure" | "unless-stopped")) => r.to_string(),
                Some(other) => {
                    return Err(ProfileError(format!(
                        "service '{name}': restart {other:?} is not no, on-failure or unless-stopped"
                    )));
                }
            };
            // A week is far beyond any real rest period; larger is a typo.
            let floor = match s.get("min_restart_interval_s") {
                None | Some(Value::Null) => None,
                Some(v) => match v.as_u64().filter(|n| *n <= 604_800) {
                    Some(0) => None,
                    Some(n) => Some(n),
                    None => {
                        return Err(ProfileError(format!(
                            "service '{name}': min_restart_interval_s {v} is not a whole number of seconds from 0 to 604800"
                        )));
                    }
                },
            };
            let host_env_file = match s.get("host_env_file") {
                None | Some(Value::Null) => None,
                Some(Value::String(p)) if valid_host_env_file(p) => Some(p.clone()),
                Some(v) => {
                    return Err(ProfileError(format!(
                        "service '{name}': host_env_file {v} is not a relative path inside the config directory"
                    )));
                }
            };
            out.push(ServiceProfile {
                name: Some(name.to_string()),
                image: image.trim().to_string(),
                params,
                command: string_list(s.get("command"), &format!("service '{name}' command"))?,
                env,
                prefer_gpu: s
                    .get("prefer_gpu")
                    .and_then(Value::as_bool)
                    .unwrap_or(false),
                gpu: gpu_of(s),
                restart,
                stop_timeout_s: s.get("stop_timeout_s").and_then(Value::as_u64).unwrap_or(5),
                privileged: s.get("privileged").and_then(Value::as_bool).unwrap_or(true),
                min_restart_interval_s: floor,
                host_env_file,
                // Ours (the original reads `depends_on` only in image-declared graphs): the
                // same start order and health gate for inline services.
                graph: GraphLinks {
                    depends_on: super::compose::service::depends_on(s.get("depends_on")),
                    ..Default::default()
                },
            });
        }
        return Ok(out);
    }
    let image = match p.get("docker_image") {
        Some(Value::String(s)) if !s.trim().is_empty() => s.trim().to_string(),
        _ => {
            return Err(ProfileError(format!(
                "No docker_image specified for driver '{key}'"
            )));
        }
    };
    Ok(vec![ServiceProfile {
        name: None,
        image,
        params: string_list(p.get("params"), &format!("params of driver '{key}'"))?,
        command: Vec::new(),
        env: BTreeMap::new(),
        prefer_gpu: p
            .get("prefer_gpu")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        gpu: gpu_of(p),
        restart: "unless-stopped".into(),
        stop_timeout_s: 5,
        // The original always runs single-container drivers privileged; we let a profile opt out
        // (`"privileged": false`) for hosts or drivers that need no device access.
        privileged: p.get("privileged").and_then(Value::as_bool).unwrap_or(true),
        min_restart_interval_s: None,
        host_env_file: None,
        graph: GraphLinks::default(),
    }])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn host(machine: &str, jetson: bool) -> HostPlatform {
        HostPlatform {
            machine: machine.into(),
            jetson,
        }
    }

    #[test]
    fn platform_keys_most_specific_first() {
        assert_eq!(
            host("aarch64", true).driver_keys(),
            ["linux-aarch64-jetson", "linux-aarch64", "linux"]
        );
        assert_eq!(
            host("x86_64", false).driver_keys(),
            ["linux-x86_64", "linux"]
        );
    }

    #[test]
    fn selection_order() {
        let d = json!({"default": {}, "linux": {}, "linux-aarch64": {}, "so101-follower": {}});
        let d = d.as_object().unwrap();
        assert_eq!(
            select_profile_key(d, &host("aarch64", false), &[]).as_deref(),
            Some("linux-aarch64")
        );
        assert_eq!(
            select_profile_key(d, &host("x86_64", false), &[]).as_deref(),
            Some("linux")
        );
        assert_eq!(
            select_profile_key(d, &host("aarch64", false), &["so101-follower".into()]).as_deref(),
            Some("so101-follower")
        );
        let only_default = json!({"default": {}});
        assert_eq!(
            select_profile_key(
                only_default.as_object().unwrap(),
                &host("x86_64", false),
                &["default".into()]
            )
            .as_deref(),
            Some("default")
        );
        assert_eq!(
            select_profile_key(
                json!({"darwin": {}}).as_object().unwrap(),
                &host("x86_64", false),
                &[]
            ),
            None
        );
    }

    #[test]
    fn single_container_profile() {
        let s = services_of("default", &json!({"docker_image": " cyberwaveos/cam ", "params": ["-e", "A=1"], "prefer_gpu": true, "version": "1"})).unwrap();
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].image, "cyberwaveos/cam");
        assert_eq!(s[0].params, ["-e", "A=1"]);
        assert!(s[0].prefer_gpu && s[0].privileged);
        assert_eq!(
            (
                s[0].gpu.as_str(),
                s[0].restart.as_str(),
                s[0].stop_timeout_s
            ),
            ("all", "unless-stopped", 5)
        );
        assert_eq!(
            services_of("default", &json!({"params": []}))
                .unwrap_err()
                .0,
            "No docker_image specified for driver 'default'"
        );
        assert!(
            services_of("x", &json!({"docker_image": "a", "params": "-e A=1"}))
                .unwrap_err()
                .0
                .contains("list of strings")
        );
    }

    #[test]
    fn services_layering() {
        let p = json!({
            "shared_env": {"A": "shared", "B": true},
            "shared_params": ["--device", "/dev/ttyUSB0"],
            "services": [
                {"name": "arm", "image": "r/arm", "env": {"A": "own"}, "params": ["-e", "X=1"], "restart": "on-failure", "stop_timeout_s": 20, "privileged": false, "command": ["run", "--fast"]},
                {"name": "cam", "image": "r/cam"}
            ]
        });
        let s = services_of("default", &p).unwrap();
        assert_eq!(s[0].env.get("A").unwrap(), "own");
        assert_eq!(s[0].env.get("B").unwrap(), "true");
        assert_eq!(s[0].params, ["--device", "/dev/ttyUSB0", "-e", "X=1"]);
        assert_eq!(
            (s[0].restart.as_str(), s[0].stop_timeout_s, s[0].privileged),
            ("on-failure", 20, false)
        );
        assert_eq!(s[0].command, ["run", "--fast"]);
        assert_eq!(s[1].name.as_deref(), Some("cam"));
        assert_eq!(s[1].env.get("A").unwrap(), "shared");
        let bad = json!({"services": [{"name": "Bad Name", "image": "x"}]});
        assert!(services_of("default", &bad).is_err());
        for floor in [json!(-1), json!(1.5), json!("30"), json!(10_000_000)] {
            let bad =
                json!({"services": [{"name": "a", "image": "x", "min_restart_interval_s": floor}]});
            assert!(services_of("default", &bad).is_err(), "{floor}");
        }
        let ok = json!({"services": [{"name": "a", "image": "x", "min_restart_interval_s": 0},
                                     {"name": "b", "image": "x", "min_restart_interval_s": 30}]});
        let s = services_of("default", &ok).unwrap();
        assert_eq!(
            (s[0].min_restart_interval_s, s[1].min_restart_interval_s),
            (None, Some(30))
        );
        let bad = json!({"services": [{"name": "a", "image": "x", "restart": "always"}]});
        assert!(
            services_of("default", &bad)
                .unwrap_err()
                .0
                .contains("restart")
        );
    }
}
