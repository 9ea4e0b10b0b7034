//! Reading what Docker prints (`ps`, `inspect`, `events`) into the engine's vocabulary.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::engine::{Container, ContainerEvent, Details, Usage};

/// Docker's output is not in the shape we read.
#[derive(Debug)]
#[non_exhaustive]
pub enum ShapeError {
    /// A line (1-based) of a one-object-per-line answer is not JSON.
    Json {
        line: usize,
        source: serde_json::Error,
    },
    /// A field every answer of this kind has is missing.
    Missing(&'static str),
    /// A list answer is empty where one item was asked for.
    Empty,
}

impl std::fmt::Display for ShapeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ShapeError::Json { line, source } => write!(f, "line {line}: {source}"),
            ShapeError::Missing(field) => write!(f, "no {field}"),
            ShapeError::Empty => f.write_str("empty list"),
        }
    }
}

impl std::error::Error for ShapeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ShapeError::Json { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// A JSON object of labels (the Engine API's shape) as a map; anything else is empty.
pub fn labels_of(v: Option<&Value>) -> BTreeMap<String, String> {
    v.and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
                .collect()
        })
        .unwrap_or_default()
}

fn parse_labels(s: &str) -> BTreeMap<String, String> {
    s.split(',')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.to_string()))
        .collect()
}

/// Parses `docker ps --format '{{json .}}'` output, one object per line.
pub fn parse_ps(out: &str) -> Result<Vec<Container>, ShapeError> {
    let mut list = Vec::new();
    for (i, line) in out.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let v: Value = serde_json::from_str(line).map_err(|source| ShapeError::Json {
            line: i + 1,
            source,
        })?;
        let s = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        list.push(Container {
            id: s("ID"),
            name: s("Names").split(',').next().unwrap_or("").to_string(),
            image: s("Image"),
            image_id: String::new(),
            state: s("State"),
            status: s("Status"),
            labels: parse_labels(&s("Labels")),
        });
    }
    Ok(list)
}

/// One container of `docker inspect`'s list (or the Engine API's `/containers/{id}/json`).
pub fn parse_inspect(v: &Value) -> Result<Details, ShapeError> {
    let s = |p: &str| {
        v.pointer(p)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    if v.get("Id").is_none() {
        return Err(ShapeError::Missing("Id"));
    }
    Ok(Details {
        id: s("/Id"),
        name: s("/Name").trim_start_matches('/').to_string(),
        status: s("/State/Status"),
        running: v
            .pointer("/State/Running")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        exit_code: v
            .pointer("/State/ExitCode")
            .and_then(Value::as_i64)
            .unwrap_or(0),
        restart_count: v.get("RestartCount").and_then(Value::as_u64).unwrap_or(0),
        started_at: s("/State/StartedAt"),
        finished_at: s("/State/FinishedAt"),
        image: s("/Config/Image"),
        image_id: s("/Image"),
        labels: labels_of(v.pointer("/Config/Labels")),
        env: v
            .pointer("/Config/Env")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|e| e.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default(),
        mounts: v
            .get("Mounts")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default(),
        restart_policy: s("/HostConfig/RestartPolicy/Name"),
        stop_timeout_s: v.pointer("/Config/StopTimeout").and_then(Value::as_u64),
    })
}

pub fn parse_event(line: &str) -> Option<ContainerEvent> {
    let v: Value = serde_json::from_str(line).ok()?;
    if v.get("Type").and_then(Value::as_str) != Some("container") {
        return None;
    }
    let attrs = v.pointer("/Actor/Attributes").and_then(Value::as_object);
    let attr = |k: &str| {
        attrs
            .and_then(|a| a.get(k))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let labels = attrs
        .map(|a| {
            a.iter()
                .filter(|(k, _)| k.starts_with("io.cyberwave."))
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
                .collect()
        })
        .unwrap_or_default();
    Some(ContainerEvent {
        action: v
            .get("Action")
            .or_else(|| v.get("status"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        id: v
            .pointer("/Actor/ID")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        name: attr("name").unwrap_or_default(),
        exit_code: attr("exitCode").and_then(|c| c.parse().ok()),
        labels,
    })
}

/// `docker stats --no-stream --format '{{.Name}}\t{{.CPUPerc}}\t{{.MemPerc}}'`: a share that
/// does not read as a number is NaN (ranked nowhere); a line without a name is skipped.
pub fn parse_stats(out: &str) -> Vec<Usage> {
    let percent = |f: Option<&str>| -> f64 {
        f.and_then(|f| f.trim().trim_end_matches('%').parse().ok())
            .unwrap_or(f64::NAN)
    };
    out.lines()
        .filter_map(|l| {
            let mut f = l.split('\t');
            let name = f.next().filter(|n| !n.is_empty())?.to_string();
            let (cpu, mem) = (f.next(), f.next());
            Some(Usage {
                name,
                cpu_percent: percent(cpu),
                memory_percent: percent(mem),
            })
        })
        .collect()
}

/// The registry's word for this machine's architecture.
pub fn registry_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "arm" => "arm",
        other => other,
    }
}

/// The bytes an image's manifest announces (config and layers, compressed) from
/// `docker manifest inspect -v`: one entry, or a list of per-platform entries of which this
/// machine's (`arch`, linux) is taken. `None` when the answer says nothing usable.
pub fn manifest_size(v: &Value, arch: &str) -> Option<u64> {
    let one = |e: &Value| -> Option<u64> {
        let m = e.get("SchemaV2Manifest").or_else(|| e.get("OCIManifest"))?;
        let layers: u64 = m
            .get("layers")?
            .as_array()?
            .iter()
            .filter_map(|l| l.get("size").and_then(Value::as_u64))
            .fold(0u64, u64::saturating_add);
        let config = m
            .pointer("/config/size")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        Some(layers.saturating_add(config))
    };
    match v {
        Value::Array(list) => list
            .iter()
            .find(|e| {
                e.pointer("/Descriptor/platform/architecture")
                    .and_then(Value::as_str)
                    == Some(arch)
                    && e.pointer("/Descriptor/platform/os").and_then(Value::as_str) == Some("linux")
            })
            .and_then(one),
        other => one(other),
    }
}
