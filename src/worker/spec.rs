//! The worker container's exact `docker create` (reference §6.2–§6.4): image selection for the
//! host's accelerator, resource limits, volumes, environment and labels. Pure: every input is
//! in [`WorkerContext`] and the twin list.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::json;

use crate::config::Secret;
use crate::containers::image::split;
use crate::containers::spec::{ContainerSpec, Pull, Role};

/// The label every role sets to say what a container serves (`worker` here).
pub const LABEL_SERVICE: &str = "io.cyberwave.edge.service";
/// Our worker image, whose tags the accelerator rules may rewrite.
pub const WORKER_REPO: &str = "cyberwaveos/edge-ml-worker";
/// The readiness file the worker writes (sdk-cli-contracts §4), inside the status dir.
pub const STATUS_FILE: &str = "worker-status.json";

/// A Jetson board: its L4T major release (from `/etc/nv_tegra_release`) if known.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Jetson {
    pub l4t_major: Option<u32>,
    /// `CYBERWAVE_JETSON_ALLOW_UNSUPPORTED_L4T`.
    pub allow_unsupported: bool,
}

/// What the host offers the worker, checked in this order (§6.2).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Accelerators {
    pub jetson: Option<Jetson>,
    /// Docker knows an `nvidia` runtime.
    pub nvidia: bool,
    /// `/dev/hailo0` exists: `Some(gid of group "hailo")`.
    pub hailo: Option<Option<u32>>,
}

/// Resource limits (§6.4), already validated.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Limits {
    /// % of one CPU.
    pub cpu_percent: Option<f64>,
    pub memory_mb: Option<u64>,
    /// `CYBERWAVE_WORKER_AUTO_MEMORY_LIMIT` (on unless 0/false/no/off).
    pub auto_memory: bool,
    /// `MemTotal` in MB, for the automatic limit.
    pub host_memory_mb: Option<u64>,
    pub gpu_mem_fraction: Option<f64>,
}

/// Everything about this edge that shapes the worker container.
#[derive(Debug, Clone)]
pub struct WorkerContext {
    pub config_dir: PathBuf,
    pub environment_uuid: String,
    /// `CYBERWAVE_ENVIRONMENT` (tag suffix).
    pub environment: String,
    pub base_url: String,
    pub token: Secret,
    /// `CYBERWAVE_MQTT_PASSWORD` when set: replaces the token as `CYBERWAVE_API_KEY`.
    pub mqtt_password: Option<Secret>,
    pub mqtt_host_var: Option<String>,
    pub mqtt_port_var: Option<String>,
    pub mqtt_username_var: Option<String>,
    pub mqtt_use_tls_var: Option<String>,
    /// The broker port the edge itself uses (TLS flag rule).
    pub mqtt_port: u16,
    /// The data bus variables the worker gets (reference §9.2, validated by `crate::bus`).
    pub bus_env: Vec<(&'static str, String)>,
    /// Non-empty `CYBERWAVE_*` of the process env and credentials `envs` (process first).
    pub forwarded: BTreeMap<String, String>,
    pub image_override: Option<String>,
    pub log_max_size: Option<String>,
    pub log_max_file: String,
    /// `--user uid:gid`.
    pub user: (u32, u32),
    /// Where the worker writes its readiness file (mounted at the same path).
    pub status_dir: PathBuf,
    pub limits: Limits,
    pub accelerators: Accelerators,
    /// This edge's fingerprint (the owner label).
    pub owner: String,
    /// `CYBERWAVE_WORKER_STARTUP_PROBE_SECONDS` (30) and `CYBERWAVE_WORKER_IMAGE_PULL_RETRIES`
    /// (3 attempts).
    pub startup_probe: std::time::Duration,
    pub pull_attempts: u32,
}

/// `cyberwave-worker-{environment[:8]}`.
pub fn container_name(environment_uuid: &str) -> String {
    let short: String = environment_uuid.chars().take(8).collect();
    format!("cyberwave-worker-{short}")
}

/// §6.2 steps 1–2: the override (with `:<env>` when it has no tag outside production), else
/// our image tagged by environment.
pub fn base_image(image_override: Option<&str>, environment: &str) -> String {
    let env = environment.trim().to_lowercase();
    let prod = env.is_empty() || env == "production";
    match image_override.map(str::trim).filter(|s| !s.is_empty()) {
        Some(i) => {
            let (_, tag, digest) = split(i);
            if tag.is_none() && digest.is_none() && !prod {
                format!("{i}:{env}")
            } else {
                i.to_string()
            }
        }
        None if prod => format!("{WORKER_REPO}:latest"),
        None => format!("{WORKER_REPO}:{env}"),
    }
}

const SUFFIXES: [&str; 3] = ["-jetson", "-gpu", "-hailo"];

/// Our image with `suffix` on its tag (never twice, never on a digest or another image).
fn with_suffix(image: &str, suffix: &str) -> String {
    match split(image) {
        (repo, Some(tag), None) if repo == WORKER_REPO => {
            if SUFFIXES.iter().any(|s| tag.ends_with(s)) {
                image.to_string()
            } else {
                format!("{repo}:{tag}{suffix}")
            }
        }
        _ => image.to_string(),
    }
}

fn is_ours(image: &str) -> bool {
    split(image).0 == WORKER_REPO
}

/// The image choice for the host's accelerator.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageChoice {
    pub image: String,
    /// The base tag, tried when the accelerator image cannot be pulled.
    pub fallback: Option<String>,
    pub options: Vec<String>,
    pub env: Vec<(String, String)>,
    /// `jetson`, `nvidia`, `hailo` or `cpu`: for `status`.
    pub accelerator: &'static str,
    /// Why an accelerator was not used (logged).
    pub note: Option<String>,
}

/// §6.2 step 3: Jetson, else an NVIDIA runtime, then Hailo; the base tag as fallback.
pub fn choose_image(base: &str, acc: &Accelerators) -> ImageChoice {
    let mut c = ImageChoice {
        image: base.to_string(),
        fallback: None,
        options: Vec::new(),
        env: Vec::new(),
        accelerator: "cpu",
        note: None,
    };
    let mut gpu = false;
    if let Some(j) = &acc.jetson {
        let supported = j.l4t_major.is_none_or(|m| m >= 38);
        if supported || j.allow_unsupported || !is_ours(base) {
            c.options.extend(["--runtime".into(), "nvidia".into()]);
            c.env.push(("NVIDIA_VISIBLE_DEVICES".into(), "all".into()));
            c.env
                .push(("NVIDIA_DRIVER_CAPABILITIES".into(), "all".into()));
            c.image = with_suffix(base, "-jetson");
            c.accelerator = "jetson";
            gpu = true;
        } else {
            if let (repo, Some(tag), None) = split(base)
                && let Some(t) = tag.strip_suffix("-jetson")
            {
                c.image = format!("{repo}:{t}");
            }
            c.note = Some(format!(
                "JetPack with L4T R{} is not supported by the GPU worker image (R38 or newer); \
                 the worker runs on the CPU (set CYBERWAVE_JETSON_ALLOW_UNSUPPORTED_L4T=1 to try)",
                j.l4t_major.unwrap_or(0)
            ));
        }
    } else if acc.nvidia {
        c.options.extend(["--gpus".into(), "all".into()]);
        c.image = with_suffix(base, "-gpu");
        c.accelerator = "nvidia";
        gpu = true;
    }
    if !gpu && let Some(gid) = acc.hailo {
        c.options
            .extend(["--device".into(), "/dev/hailo0:/dev/hailo0:rwm".into()]);
        if let Some(g) = gid {
            c.options.extend(["--group-add".into(), g.to_string()]);
        }
        c.env
            .push(("CYBERWAVE_REQUIRED_DEVICES".into(), "/dev/hailo0".into()));
        c.image = with_suffix(base, "-hailo");
        c.accelerator = "hailo";
    }
    if c.image != base {
        c.fallback = Some(base.to_string());
    }
    c
}

pub use crate::containers::image::is_mutable;

/// §6.4: `--cpu-period/--cpu-quota`, `--memory` (given, or automatic on hosts ≤ 4 GB).
pub fn resource_args(l: &Limits) -> Vec<String> {
    let mut o = Vec::new();
    if let Some(p) = l.cpu_percent {
        o.extend([
            "--cpu-period".into(),
            "100000".into(),
            "--cpu-quota".into(),
            ((100_000.0 * p / 100.0) as u64).max(1000).to_string(),
        ]);
    }
    if let Some(m) = l.memory_mb {
        o.extend(["--memory".into(), format!("{m}m")]);
    } else if l.cpu_percent.is_none()
        && l.auto_memory
        && let Some(total) = l.host_memory_mb.filter(|t| *t <= 4096)
    {
        let reserved = 512f64.max(0.25 * total as f64);
        let limit = 256f64.max(total as f64 - reserved) as u64;
        o.extend(["--memory".into(), format!("{limit}m")]);
    }
    o
}

/// The worker container for the twins it serves (the first is `CYBERWAVE_TWIN_UUID`).
pub fn worker_spec(ctx: &WorkerContext, twins: &[String]) -> (ContainerSpec, ImageChoice) {
    let name = container_name(&ctx.environment_uuid);
    let base = base_image(ctx.image_override.as_deref(), &ctx.environment);
    let choice = choose_image(&base, &ctx.accelerators);
    let status_dir = ctx.status_dir.display().to_string();

    let mut env: BTreeMap<String, String> = BTreeMap::new();
    let mut set = |k: &str, v: String| {
        env.insert(k.to_string(), v);
    };
    let key = ctx.mqtt_password.as_ref().unwrap_or(&ctx.token);
    set("CYBERWAVE_API_KEY", key.expose().to_string());
    set("CYBERWAVE_EDGE_CONFIG_DIR", "/app/.cyberwave".into());
    set(
        "CYBERWAVE_WORKER_STATUS_PATH",
        format!("{status_dir}/{STATUS_FILE}"),
    );
    set("CYBERWAVE_ENVIRONMENT_UUID", ctx.environment_uuid.clone());
    if !twins.is_empty() {
        set("CYBERWAVE_TWIN_UUIDS", twins.join(","));
        set("CYBERWAVE_TWIN_UUID", twins[0].clone());
    }
    set("CYBERWAVE_BASE_URL", ctx.base_url.clone());
    for (k, v) in [
        ("CYBERWAVE_MQTT_HOST", &ctx.mqtt_host_var),
        ("CYBERWAVE_MQTT_PORT", &ctx.mqtt_port_var),
        ("CYBERWAVE_MQTT_USERNAME", &ctx.mqtt_username_var),
        ("CYBERWAVE_MQTT_USE_TLS", &ctx.mqtt_use_tls_var),
    ] {
        if let Some(v) = v {
            set(k, v.clone());
        }
    }
    let env_name = ctx.environment.trim().to_lowercase();
    if !env_name.is_empty() && env_name != "production" {
        set("CYBERWAVE_ENVIRONMENT", ctx.environment.clone());
    }
    for (k, v) in &ctx.bus_env {
        set(k, v.clone());
    }
    for (k, v) in &ctx.forwarded {
        env.entry(k.clone()).or_insert_with(|| v.clone());
    }
    env.insert("CYBERWAVE_EDGE_HOST_PLATFORM".into(), "linux".into());
    if ctx.mqtt_port == 8883 {
        env.entry("CYBERWAVE_MQTT_USE_TLS".into())
            .or_insert_with(|| "true".into());
    }
    if let Some(f) = ctx.limits.gpu_mem_fraction {
        env.insert("CYBERWAVE_GPU_MEM_FRACTION".into(), format!("{f:.4}"));
    }
    for (k, v) in &choice.env {
        env.insert(k.clone(), v.clone());
    }

    let mut o: Vec<String> = vec!["--restart".into(), "unless-stopped".into()];
    crate::containers::push_log_caps(&mut o, ctx.log_max_size.as_deref(), &ctx.log_max_file);
    o.extend(["--network".into(), "host".into()]);
    o.extend(["--user".into(), format!("{}:{}", ctx.user.0, ctx.user.1)]);
    o.extend(["--name".into(), name.clone()]);
    o.extend(choice.options.iter().cloned());
    o.extend(resource_args(&ctx.limits));
    let dir = ctx.config_dir.display().to_string();
    o.extend(["-v".into(), format!("{dir}:/app/.cyberwave")]);
    o.extend(["-v".into(), format!("{dir}/workers:/app/workers:ro")]);
    o.extend(["-v".into(), format!("{dir}/models:/app/models")]);
    o.extend(["-v".into(), format!("{status_dir}:{status_dir}")]);
    o.extend(["--label".into(), format!("{LABEL_SERVICE}=worker")]);

    let mut hashed_env = env.clone();
    for v in hashed_env.values_mut() {
        if v == ctx.token.expose() || ctx.mqtt_password.as_ref().is_some_and(|p| v == p.expose()) {
            *v = format!("sha256:{}", crate::sha256_hex(v.as_bytes()));
        }
    }
    let canonical = json!({"schema": 1, "image": choice.image, "options": o, "env": hashed_env});
    let spec_hash = crate::sha256_hex(canonical.to_string().as_bytes());
    crate::containers::push_managed_labels(&mut o, &spec_hash, &ctx.owner);

    let pull = if is_mutable(&choice.image) {
        Pull::Always
    } else {
        Pull::IfMissing
    };
    let spec = ContainerSpec {
        name,
        role: Role::Worker,
        owner: ctx.environment_uuid.clone(),
        title: "ML worker".into(),
        service: Some("worker".into()),
        image: choice.image.clone(),
        fallback_image: choice.fallback.clone(),
        options: o,
        env,
        command: Vec::new(),
        spec_hash,
        restart: "unless-stopped".into(),
        pull,
        floor: None,
        probe: Some(ctx.startup_probe),
        pull_attempts: ctx.pull_attempts,
        once: false,
        links: Default::default(),
    };
    (spec, choice)
}

/// A worker context for unit tests (a production environment on a Pi, no GPU).
#[cfg(test)]
pub(crate) fn example_context() -> WorkerContext {
    WorkerContext {
        config_dir: "/home/pi/.cyberwave".into(),
        environment_uuid: "0a1b2c3d-0000-4000-8000-000000000001".into(),
        environment: "production".into(),
        base_url: "https://api.cyberwave.com".into(),
        token: Secret::new("cw_tok"),
        mqtt_password: None,
        mqtt_host_var: None,
        mqtt_port_var: None,
        mqtt_username_var: None,
        mqtt_use_tls_var: None,
        mqtt_port: 8883,
        bus_env: crate::bus::BusSettings::from_env(&crate::config::EnvLayer::default())
            .worker_env(),
        forwarded: [
            (
                "CYBERWAVE_WORKER_LOG_LEVEL".to_string(),
                "DEBUG".to_string(),
            ),
            ("CYBERWAVE_BASE_URL".to_string(), "ignored".to_string()),
        ]
        .into(),
        image_override: None,
        log_max_size: Some("10m".into()),
        log_max_file: "3".into(),
        user: (1000, 1000),
        status_dir: "/run/cyberwave".into(),
        limits: Limits::default(),
        accelerators: Accelerators::default(),
        owner: "fp".into(),
        startup_probe: std::time::Duration::from_secs(30),
        pull_attempts: 3,
    }
}

#[cfg(test)]
#[path = "spec/tests.rs"]
mod tests;
