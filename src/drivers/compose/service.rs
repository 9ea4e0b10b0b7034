//! One Compose service → the `docker create` flags the launcher passes (reference §5.5): the
//! keys Edge Core translates, each in the shapes `docker compose config` renders and a
//! hand-written label may hold. A value that cannot be translated refuses the whole graph.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::subst::{Subs, substitute};
pub use crate::containers::spec::{Resource, ResourceKind};

/// Keys translated; `restart`, `container_name` and `logging` are ours to decide and ignored;
/// anything else refuses the graph (a container silently missing a device or a privilege still
/// reports healthy).
pub const TRANSLATED: &[&str] = &[
    "image",
    "command",
    "environment",
    "networks",
    "network_mode",
    "volumes",
    "healthcheck",
    "depends_on",
    "stop_signal",
    "cap_add",
    "ulimits",
    "tmpfs",
    "x-cyberwave",
];
pub const EDGE_OWNED: &[&str] = &["restart", "container_name", "logging"];

/// What one translated service needs beyond its flags.
pub struct Flags {
    pub params: Vec<String>,
    /// Connected after create (`docker create` takes one `--network` before Docker 25).
    pub extra_networks: Vec<String>,
    pub resources: Vec<Resource>,
}

/// The substitution context of a translation.
pub struct Ctx<'a> {
    pub subs: &'a Subs,
    pub env: &'a BTreeMap<String, String>,
    /// The graph's top-level `networks` and `volumes`.
    pub networks: &'a Map<String, Value>,
    pub volumes: &'a Map<String, Value>,
    /// Our container name of another service of the graph (`network_mode: service:x`).
    pub container_of: &'a dyn Fn(&str) -> String,
}

impl Ctx<'_> {
    pub fn sub(&self, v: &str) -> String {
        substitute(v, self.subs, self.env)
    }
}

/// A scalar as Compose would write it into a string (`5`, `true`, `"5s"`).
pub fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// `environment` as a mapping or a `["K=v"]` list (both come out of `config`).
pub fn environment(raw: Option<&Value>) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    match raw {
        None | Some(Value::Null) => {}
        Some(Value::Object(m)) => {
            for (k, v) in m {
                let v = match v {
                    Value::Null => String::new(),
                    other => scalar(other)
                        .ok_or_else(|| format!("environment {k:?} is not a string or number"))?,
                };
                out.insert(k.clone(), v);
            }
        }
        Some(Value::Array(items)) => {
            for item in items {
                let s = scalar(item).ok_or("environment entries must be \"K=v\" strings")?;
                let (k, v) = s.split_once('=').unwrap_or((&s, ""));
                if !k.is_empty() {
                    out.insert(k.to_string(), v.to_string());
                }
            }
        }
        Some(_) => return Err("environment must be a mapping or a list".into()),
    }
    Ok(out)
}

/// The flags of a service, with the networks to connect after create and what to create.
pub fn flags(svc: &Map<String, Value>, cx: &Ctx) -> Result<Flags, String> {
    let mut f = Flags {
        params: Vec::new(),
        extra_networks: Vec::new(),
        resources: Vec::new(),
    };
    networks(svc, cx, &mut f)?;
    volumes(svc, cx, &mut f)?;
    f.params.extend(tmpfs(svc.get("tmpfs"), cx)?);
    f.params.extend(privileges(svc, cx));
    f.params.extend(healthcheck(svc.get("healthcheck"), cx)?);
    if let Some(sig) = svc
        .get("stop_signal")
        .and_then(scalar)
        .filter(|s| !s.is_empty())
    {
        f.params.extend(["--stop-signal".into(), cx.sub(&sig)]);
    }
    Ok(f)
}

fn networks(svc: &Map<String, Value>, cx: &Ctx, f: &mut Flags) -> Result<(), String> {
    if let Some(mode) = svc
        .get("network_mode")
        .and_then(Value::as_str)
        .filter(|m| !m.is_empty())
    {
        let mode = cx.sub(mode);
        // Compose's `service:x` is another service's container: ours is named for the twin.
        let mode = match mode.strip_prefix("service:") {
            Some(other) => format!("container:{}", (cx.container_of)(other)),
            None => mode,
        };
        f.params.extend(["--network".into(), mode]);
        return Ok(());
    }
    let aliases: Vec<String> = match svc.get("networks") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Object(m)) => m.keys().cloned().collect(),
        Some(Value::Array(a)) => a.iter().filter_map(scalar).collect(),
        Some(_) => return Err("networks must be a mapping or a list".into()),
    };
    for (i, alias) in aliases.iter().enumerate() {
        let declared = cx.networks.get(alias).and_then(Value::as_object);
        let name = declared
            .and_then(|d| d.get("name"))
            .and_then(Value::as_str)
            .unwrap_or(alias);
        let name = cx.sub(name);
        let external = declared
            .and_then(|d| d.get("external"))
            .is_some_and(|e| e.as_bool().unwrap_or(true));
        if !matches!(name.as_str(), "host" | "bridge" | "none" | "default") {
            f.resources.push(Resource {
                kind: ResourceKind::Network,
                name: name.clone(),
                external,
            });
        }
        if i == 0 {
            f.params.extend(["--network".into(), name]);
        } else {
            f.extra_networks.push(name);
        }
    }
    Ok(())
}

fn volumes(svc: &Map<String, Value>, cx: &Ctx, f: &mut Flags) -> Result<(), String> {
    let Some(list) = svc.get("volumes").and_then(Value::as_array) else {
        return Ok(());
    };
    for v in list {
        let Some(v) = v.as_object() else { continue };
        if v.get("type").and_then(Value::as_str) == Some("tmpfs") {
            f.params.extend(tmpfs_volume(v, cx)?);
            continue;
        }
        let (Some(source), Some(target)) = (
            v.get("source").and_then(scalar).filter(|s| !s.is_empty()),
            v.get("target").and_then(scalar).filter(|s| !s.is_empty()),
        ) else {
            continue;
        };
        let declared = cx.volumes.get(&source).and_then(Value::as_object);
        let name = declared
            .and_then(|d| d.get("name"))
            .and_then(Value::as_str)
            .unwrap_or(&source);
        let resolved = cx.sub(name);
        let named = v.get("type").and_then(Value::as_str) == Some("volume")
            || (declared.is_some() && !resolved.starts_with(['/', '.', '~']));
        if named {
            // A navigation bundle's volume is made by its copy, never empty by a launch.
            let external = resolved.starts_with(super::bundle::VOLUME_PREFIX)
                || declared
                    .and_then(|d| d.get("external"))
                    .is_some_and(|e| e.as_bool().unwrap_or(true));
            f.resources.push(Resource {
                kind: ResourceKind::Volume,
                name: resolved.clone(),
                external,
            });
        }
        let mut mount = format!("{resolved}:{}", cx.sub(&target));
        if v.get("read_only").and_then(Value::as_bool) == Some(true) {
            mount.push_str(":ro");
        }
        f.params.extend(["-v".into(), mount]);
    }
    Ok(())
}

/// The service-level `tmpfs` (a string or a list of `PATH[:OPTIONS]`), passed verbatim: the
/// Spot plant keeps a password there so it never lands on the disk.
fn tmpfs(raw: Option<&Value>, cx: &Ctx) -> Result<Vec<String>, String> {
    let entries: Vec<&Value> = match raw {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(v @ Value::String(_)) => vec![v],
        Some(Value::Array(a)) => a.iter().collect(),
        Some(other) => {
            return Err(format!(
                "tmpfs must be a string or a list of strings, got {other}"
            ));
        }
    };
    let mut out = Vec::new();
    for e in entries {
        let s = e
            .as_str()
            .ok_or_else(|| format!("tmpfs entry must be a string, got {e}"))?;
        let resolved = cx.sub(s.trim());
        if !resolved.starts_with('/') {
            return Err(format!(
                "tmpfs entry {s:?} is not an absolute PATH[:OPTIONS]"
            ));
        }
        out.extend(["--tmpfs".into(), resolved]);
    }
    Ok(out)
}

/// A long-form `type: tmpfs` volume → `--mount type=tmpfs,…` (`mode` arrives as the decimal
/// of an octal and is given back in octal).
fn tmpfs_volume(v: &Map<String, Value>, cx: &Ctx) -> Result<Vec<String>, String> {
    if let Some(k) = v
        .keys()
        .find(|k| !["type", "target", "read_only", "tmpfs"].contains(&k.as_str()))
    {
        return Err(format!(
            "tmpfs volume key {k:?} is not translated by Edge Core"
        ));
    }
    let target = v
        .get("target")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or("tmpfs volume has no target")?;
    let mut fields = vec![
        "type=tmpfs".to_string(),
        format!("destination={}", cx.sub(target)),
    ];
    let opts = match v.get("tmpfs") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(other) => {
            return Err(format!(
                "tmpfs volume options must be a mapping, got {other}"
            ));
        }
    };
    if let Some(k) = opts
        .keys()
        .find(|k| !["size", "mode"].contains(&k.as_str()))
    {
        return Err(format!(
            "tmpfs volume option {k:?} is not translated by Edge Core"
        ));
    }
    match opts.get("size") {
        None | Some(Value::Null) => {}
        Some(Value::Number(n)) if n.is_u64() => fields.push(format!("tmpfs-size={n}")),
        Some(Value::String(s)) if !s.trim().is_empty() => {
            fields.push(format!("tmpfs-size={}", cx.sub(s.trim())))
        }
        Some(other) => {
            return Err(format!(
                "tmpfs volume size must be bytes or a string, got {other}"
            ));
        }
    }
    match opts.get("mode") {
        None | Some(Value::Null) => {}
        Some(Value::Number(n)) if n.is_u64() => {
            fields.push(format!("tmpfs-mode={:o}", n.as_u64().unwrap_or(0)))
        }
        Some(other) => return Err(format!("tmpfs volume mode must be an integer, got {other}")),
    }
    if v.get("read_only").and_then(Value::as_bool) == Some(true) {
        fields.push("readonly".into());
    }
    Ok(vec!["--mount".into(), fields.join(",")])
}

/// `cap_add` and `ulimits`: narrow, additive grants (`privileged` and `devices` stay refused).
fn privileges(svc: &Map<String, Value>, cx: &Ctx) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(caps) = svc.get("cap_add").and_then(Value::as_array) {
        for c in caps.iter().filter_map(Value::as_str).map(str::trim) {
            if !c.is_empty() {
                out.extend(["--cap-add".into(), cx.sub(c)]);
            }
        }
    }
    if let Some(limits) = svc.get("ulimits").and_then(Value::as_object) {
        let mut sorted: Vec<(&String, &Value)> = limits.iter().collect();
        sorted.sort_by(|a, b| a.0.cmp(b.0));
        for (name, v) in sorted {
            if let Some(limit) = ulimit(v) {
                out.extend(["--ulimit".into(), format!("{name}={limit}")]);
            }
        }
    }
    out
}

/// `99` → `99`; `{"soft": 1024, "hard": 2048}` → `1024:2048`; a bool is no limit.
fn ulimit(v: &Value) -> Option<String> {
    match v {
        Value::Number(n) if n.is_i64() => Some(n.to_string()),
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Value::Object(m) => {
            let soft = m.get("soft").and_then(Value::as_i64);
            let hard = m.get("hard").and_then(Value::as_i64);
            match (soft, hard) {
                (Some(s), Some(h)) => Some(format!("{s}:{h}")),
                (Some(x), None) | (None, Some(x)) => Some(x.to_string()),
                (None, None) => None,
            }
        }
        _ => None,
    }
}

/// Python's `shlex.quote`: what joins an exec-form test into one shell string.
fn shell_quote(s: &str) -> String {
    if s.is_empty() {
        return "''".into();
    }
    if s.chars()
        .all(|c| c.is_ascii_alphanumeric() || "@%+=:,./-_".contains(c))
    {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', "'\"'\"'"))
}

fn shell_join(parts: &[String]) -> String {
    parts
        .iter()
        .map(|p| shell_quote(p))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `healthcheck` → `--health-*` (without it `depends_on: service_healthy` has nothing to wait
/// on); `disable` or `NONE` → `--no-healthcheck`.
fn healthcheck(raw: Option<&Value>, cx: &Ctx) -> Result<Vec<String>, String> {
    let Some(h) = raw.and_then(Value::as_object).filter(|h| !h.is_empty()) else {
        return Ok(Vec::new());
    };
    if h.get("disable")
        .is_some_and(|d| d.as_bool().unwrap_or(!d.is_null()))
    {
        return Ok(vec!["--no-healthcheck".into()]);
    }
    let test: Vec<String> = match h.get("test") {
        Some(Value::String(s)) => vec!["CMD-SHELL".into(), s.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .map(|p| scalar(p).unwrap_or_else(|| p.to_string()))
            .collect(),
        _ => return Ok(Vec::new()),
    };
    let Some((kind, rest)) = test.split_first() else {
        return Ok(Vec::new());
    };
    let command = match kind.as_str() {
        "NONE" => return Ok(vec!["--no-healthcheck".into()]),
        "CMD-SHELL" | "CMD" if rest.is_empty() => return Ok(Vec::new()),
        "CMD-SHELL" if rest.len() == 1 => rest[0].clone(),
        "CMD-SHELL" | "CMD" => shell_join(rest),
        _ => shell_join(&test),
    };
    let mut out = vec!["--health-cmd".into(), cx.sub(&command)];
    for (key, flag) in [
        ("interval", "--health-interval"),
        ("timeout", "--health-timeout"),
        ("start_period", "--health-start-period"),
        ("start_interval", "--health-start-interval"),
    ] {
        if let Some(v) = h.get(key).and_then(scalar).filter(|v| !v.is_empty()) {
            out.extend([flag.into(), cx.sub(&v)]);
        }
    }
    match h.get("retries") {
        None | Some(Value::Null) => {}
        Some(v) => {
            let n = v
                .as_u64()
                .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
                .filter(|n| *n <= 10_000)
                .ok_or_else(|| format!("healthcheck retries {v} is not a whole number"))?;
            out.extend(["--health-retries".into(), n.to_string()]);
        }
    }
    Ok(out)
}

/// `depends_on` → (service, waits for health): the long form's condition, or the list form
/// (`service_started`, which dependency order already gives).
pub fn depends_on(raw: Option<&Value>) -> Vec<(String, bool)> {
    match raw {
        Some(Value::Array(a)) => a.iter().filter_map(scalar).map(|n| (n, false)).collect(),
        Some(Value::Object(m)) => m
            .iter()
            .map(|(n, spec)| {
                let cond = spec.get("condition").and_then(Value::as_str);
                (n.clone(), cond == Some("service_healthy"))
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// Service names in an order that starts every dependency first (`config` emits them
/// alphabetically); a dependency outside this graph is ignored, a cycle refused.
pub fn dependency_order(services: &Map<String, Value>) -> Result<Vec<String>, String> {
    fn visit(
        name: &str,
        services: &Map<String, Value>,
        ordered: &mut Vec<String>,
        visiting: &mut Vec<String>,
    ) -> Result<(), String> {
        if ordered.iter().any(|o| o == name) || !services.contains_key(name) {
            return Ok(());
        }
        if visiting.iter().any(|v| v == name) {
            return Err(format!("depends_on cycle through service {name:?}"));
        }
        visiting.push(name.to_string());
        for (dep, _) in depends_on(services.get(name).and_then(|s| s.get("depends_on"))) {
            visit(&dep, services, ordered, visiting)?;
        }
        visiting.pop();
        ordered.push(name.to_string());
        Ok(())
    }
    let mut ordered = Vec::new();
    for name in services.keys() {
        visit(name, services, &mut ordered, &mut Vec::new())?;
    }
    Ok(ordered)
}
