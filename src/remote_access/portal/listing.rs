//! The portal's listing, pure (reference §12, the original's `local_portal.py` rules): each
//! running driver's declared LAN pages, every entry re-checked (metadata is editable after the
//! backend validated it), reduced to a fixed set of fields — twin name, registry id, page
//! name, description, port, path, service, health — so nothing else of a twin can leak.

use std::collections::BTreeMap;

use serde_json::Value;

const MAX_ENTRIES_PER_TWIN: usize = 16;
const MAX_TEXT: usize = 200;
/// RFC 3986 path characters, no query or fragment (so no link can carry a token).
const PATH_CHARS: &str =
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~!$&'()*+,;=:@%/";

/// One running driver as the supervisor sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Input {
    pub twin_uuid: String,
    pub twin_name: String,
    pub registry_id: Option<String>,
    /// The profile's raw `local_http` list.
    pub local_http: Value,
    /// Service (`""` for a single-container driver) → the engine's status text, running ones.
    pub running: BTreeMap<String, String>,
}

/// One page a driver serves.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    pub name: String,
    pub port: u16,
    pub path: String,
    pub scheme: &'static str,
    pub service: Option<String>,
    pub description: Option<String>,
    /// `healthy`, `unhealthy`, `starting`, `running`, or `stopped` (its service is not running).
    pub health: &'static str,
}

/// One driver with pages.
#[derive(Debug, Clone, PartialEq)]
pub struct Driver {
    pub id: String,
    pub twin_name: String,
    pub registry_id: Option<String>,
    pub health: &'static str,
    pub pages: Vec<Page>,
}

fn slug(v: Option<&Value>) -> Option<String> {
    let t = v?.as_str()?.trim();
    let ok = !t.is_empty()
        && t.len() <= 63
        && !t.starts_with(['-', '_'])
        && t.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    ok.then(|| t.to_string())
}

/// Whitespace collapsed, at most 200 characters; `None` when absent or empty.
pub fn short_text(v: Option<&str>) -> Option<String> {
    let t = v?.split_whitespace().collect::<Vec<_>>().join(" ");
    let t: String = t.chars().take(MAX_TEXT).collect();
    (!t.is_empty()).then_some(t)
}

/// One `local_http` entry reduced to what the portal may show; `None` when invalid or not
/// meant for the LAN (`audience: host`).
pub fn normalize(raw: &Value) -> Option<Page> {
    let m = raw.as_object()?;
    let name = slug(m.get("name"))?;
    let port = match m.get("port") {
        Some(Value::Number(n)) => n.as_u64().filter(|p| (1..=65535).contains(p))? as u16,
        _ => return None,
    };
    let path = match m.get("path") {
        None => "/".to_string(),
        Some(Value::String(p)) => p.clone(),
        Some(_) => return None,
    };
    let path_ok = path.starts_with('/')
        && !path.starts_with("//")
        && path.len() <= 512
        && path.chars().all(|c| PATH_CHARS.contains(c))
        && !format!("{path}/").contains("/../");
    if !path_ok {
        return None;
    }
    if m.get("audience").is_some_and(|a| a != "lan") {
        return None;
    }
    let scheme = match m.get("scheme").map(|s| s.as_str()) {
        None | Some(Some("http")) => "http",
        Some(Some("https")) => "https",
        _ => return None,
    };
    let service = match m.get("service") {
        None | Some(Value::Null) => None,
        s => Some(slug(s)?),
    };
    Some(Page {
        name,
        port,
        path,
        scheme,
        service,
        description: short_text(m.get("description").and_then(Value::as_str)),
        health: "running",
    })
}

/// `docker ps` status text → the page's health.
fn health_of(status: &str) -> &'static str {
    let s = status.to_lowercase();
    if s.contains("(unhealthy)") {
        "unhealthy"
    } else if s.contains("(healthy)") {
        "healthy"
    } else if s.contains("health: starting") {
        "starting"
    } else {
        "running"
    }
}

fn overall(pages: &[Page]) -> &'static str {
    ["unhealthy", "stopped", "starting", "running"]
        .into_iter()
        .find(|h| pages.iter().any(|p| p.health == *h))
        .unwrap_or("healthy")
}

/// The drivers with at least one running container and a declared LAN page, sorted by name.
pub fn build(inputs: &[Input]) -> Vec<Driver> {
    let mut out: Vec<Driver> = inputs
        .iter()
        .filter(|i| !i.running.is_empty())
        .filter_map(|i| {
            let raw = i.local_http.as_array()?;
            let mut seen = Vec::new();
            let pages: Vec<Page> = raw
                .iter()
                .take(MAX_ENTRIES_PER_TWIN)
                .filter_map(normalize)
                .filter(|p| {
                    let fresh = !seen.contains(&p.name);
                    seen.push(p.name.clone());
                    fresh
                })
                .map(|mut p| {
                    let status = match &p.service {
                        Some(s) => i.running.get(s),
                        None => i.running.get("").or_else(|| i.running.values().next()),
                    };
                    p.health = status.map_or("stopped", |s| health_of(s));
                    p
                })
                .collect();
            (!pages.is_empty()).then(|| Driver {
                id: i.twin_uuid.chars().take(8).collect(),
                twin_name: short_text(Some(&i.twin_name))
                    .unwrap_or_else(|| i.twin_uuid.chars().take(8).collect()),
                registry_id: short_text(i.registry_id.as_deref()),
                health: overall(&pages),
                pages,
            })
        })
        .collect();
    out.sort_by(|a, b| {
        (a.twin_name.to_lowercase(), &a.id).cmp(&(b.twin_name.to_lowercase(), &b.id))
    });
    out
}

#[cfg(test)]
mod tests;
