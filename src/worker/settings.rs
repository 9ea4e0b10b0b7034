//! The worker's settings, read from the daemon's [`Settings`] and the host (reference §6.2–§6.4,
//! §11.3 names). Bad values are warnings and the setting is ignored, never a crash.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::spec::{Accelerators, Jetson, Limits, WorkerContext};
use crate::config::{EnvLayer, Secret, Settings, truthy};

/// The worker role's knobs (reference §11.3 names; ours are marked in the README).
#[derive(Debug, Clone)]
pub struct WorkerTuning {
    /// Ticks between workflow syncs (`CYBERWAVE_WORKER_SYNC_INTERVAL_LOOPS`, 20).
    pub sync_every_ticks: u64,
    /// `CYBERWAVE_WORKER_READY_TIMEOUT_SECONDS` (900).
    pub ready_timeout: Duration,
    /// Longest wait for the drivers before the worker starts anyway (30 s).
    pub driver_wait: Duration,
    /// Minimum time between automatic restarts (`CYBERWAVE_WORKER_RELOAD_COOLDOWN_SECONDS`,
    /// 10 s: the original's cooldown).
    pub reload_cooldown: Duration,
    /// Quiet time after the last write in `workers/` before a reload
    /// (`CYBERWAVE_WORKER_RELOAD_SETTLE_MS`, 300).
    pub settle: Duration,
    /// `docker stop` grace on a reload or stop (`CYBERWAVE_WORKER_STOP_TIMEOUT_SECONDS`, 10).
    pub stop_timeout: Duration,
}

fn optional_number(
    env: &EnvLayer,
    name: &str,
    ok: impl Fn(f64) -> bool,
    warnings: &mut Vec<String>,
) -> Option<f64> {
    let v = env.get(name)?;
    match v.trim().parse::<f64>() {
        Ok(x) if x.is_finite() && ok(x) => Some(x),
        _ => {
            warnings.push(format!("{name}={v:?} is not a usable value; ignored"));
            None
        }
    }
}

/// The worker's tuning, bad values replaced by defaults (returned as warnings).
pub fn tuning(s: &Settings, warnings: &mut Vec<String>) -> WorkerTuning {
    let env = &s.env;
    let mut num = |k: &str, default: f64, min: f64, max: f64| {
        crate::config::parse_or_warn(env, k, default, min, warnings).min(max)
    };
    WorkerTuning {
        sync_every_ticks: num("CYBERWAVE_WORKER_SYNC_INTERVAL_LOOPS", 20.0, 1.0, 1e6) as u64,
        ready_timeout: Duration::from_secs_f64(num(
            "CYBERWAVE_WORKER_READY_TIMEOUT_SECONDS",
            900.0,
            1.0,
            86_400.0,
        )),
        driver_wait: Duration::from_secs(30),
        reload_cooldown: Duration::from_secs_f64(num(
            "CYBERWAVE_WORKER_RELOAD_COOLDOWN_SECONDS",
            10.0,
            0.0,
            3600.0,
        )),
        settle: Duration::from_millis(num(
            "CYBERWAVE_WORKER_RELOAD_SETTLE_MS",
            300.0,
            50.0,
            60_000.0,
        ) as u64),
        stop_timeout: Duration::from_secs_f64(num(
            "CYBERWAVE_WORKER_STOP_TIMEOUT_SECONDS",
            10.0,
            1.0,
            600.0,
        )),
    }
}

/// §6.4 limits: the README's `CYBERWAVE_WORKER_CPU_QUOTA_PERCENT` and the code's
/// `CYBERWAVE_WORKER_CPU_PERCENT` both count (the original reads only the second).
pub fn limits(env: &EnvLayer, host_memory_mb: Option<u64>, warnings: &mut Vec<String>) -> Limits {
    let cpu =
        |k: &str, w: &mut Vec<String>| optional_number(env, k, |x| x > 0.0 && x <= 102_400.0, w);
    let code = cpu("CYBERWAVE_WORKER_CPU_PERCENT", warnings);
    let readme = cpu("CYBERWAVE_WORKER_CPU_QUOTA_PERCENT", warnings);
    if let (Some(a), Some(b)) = (code, readme)
        && a != b
    {
        warnings.push(format!(
            "CYBERWAVE_WORKER_CPU_PERCENT={a} and CYBERWAVE_WORKER_CPU_QUOTA_PERCENT={b} differ; using {a}"
        ));
    }
    Limits {
        cpu_percent: code.or(readme),
        memory_mb: optional_number(
            env,
            "CYBERWAVE_WORKER_MEMORY_MB",
            |x| (6.0..=16.0 * 1024.0 * 1024.0).contains(&x) && x.fract() == 0.0,
            warnings,
        )
        .map(|x| x as u64),
        auto_memory: env
            .get("CYBERWAVE_WORKER_AUTO_MEMORY_LIMIT")
            .is_none_or(|v| {
                !matches!(
                    v.trim().to_lowercase().as_str(),
                    "0" | "false" | "no" | "off"
                )
            }),
        host_memory_mb,
        gpu_mem_fraction: optional_number(
            env,
            "CYBERWAVE_GPU_MEM_FRACTION",
            |x| x > 0.0 && x <= 1.0,
            warnings,
        ),
    }
}

/// `MemTotal` of `/proc/meminfo`, in MB.
pub fn host_memory_mb(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024)
}

/// The L4T major release from the first line of `/etc/nv_tegra_release` (`# R36 (release), …`).
pub fn l4t_major(first_line: &str) -> Option<u32> {
    let i = first_line.find('R')?;
    let rest = &first_line[i + 1..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    let after = rest[digits.len()..].trim_start();
    (!digits.is_empty() && after.starts_with("(release)"))
        .then(|| digits.parse().ok())
        .flatten()
}

/// The gid of `group` in an `/etc/group` text.
pub fn group_gid(etc_group: &str, group: &str) -> Option<u32> {
    etc_group.lines().find_map(|l| {
        let mut f = l.split(':');
        (f.next() == Some(group)).then(|| f.nth(1)?.parse().ok())?
    })
}

/// What this host offers (Jetson, Hailo); NVIDIA is learned from Docker later.
pub fn detect_accelerators(env: &EnvLayer) -> Accelerators {
    let tegra = Path::new("/etc/nv_tegra_release");
    let variant = env
        .get("CYBERWAVE_PLATFORM_VARIANT")
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("jetson"));
    let jetson = (tegra.exists() || variant).then(|| Jetson {
        l4t_major: crate::fsutil::read_regular_text(tegra, 64 * 1024)
            .ok()
            .and_then(|t| t.lines().next().and_then(l4t_major)),
        allow_unsupported: env
            .get("CYBERWAVE_JETSON_ALLOW_UNSUPPORTED_L4T")
            .is_some_and(|v| truthy(&v)),
    });
    let hailo = Path::new("/dev/hailo0").exists().then(|| {
        crate::fsutil::read_regular_text(Path::new("/etc/group"), 1 << 20)
            .ok()
            .and_then(|g| group_gid(&g, "hailo"))
    });
    Accelerators {
        jetson,
        nvidia: false,
        hailo,
    }
}

/// Who the worker runs as: the owner of the config dir (the user whose files it reads and
/// writes), else our own ids. The original uses the daemon's ids, so a root daemon serving a
/// user's `~/.cyberwave` ran its worker as root and left root-owned files there.
pub fn worker_user(config_dir: &Path) -> (u32, u32) {
    match std::fs::metadata(config_dir) {
        Ok(m) => (m.uid(), m.gid()),
        Err(_) => unsafe { (libc::geteuid(), libc::getegid()) },
    }
}

/// Where the worker writes `worker-status.json`: `CYBERWAVE_WORKER_STATUS_DIR`, else
/// `/run/cyberwave` when we can create it, else `<config dir>/run/worker`.
pub fn status_dir(env: &EnvLayer, config_dir: &Path, user: (u32, u32)) -> PathBuf {
    let candidates: Vec<PathBuf> = match env.get("CYBERWAVE_WORKER_STATUS_DIR") {
        Some(d) if !d.trim().is_empty() => vec![PathBuf::from(d.trim())],
        _ => vec![
            "/run/cyberwave".into(),
            config_dir.join("run").join("worker"),
        ],
    };
    for dir in &candidates {
        let existed = dir.exists();
        if crate::fsutil::ensure_dir(dir, 0o755).is_ok() {
            // The worker (its own uid) writes here; we only read. Only a directory we made is
            // handed over: never chown what an operator pointed us at.
            if !existed {
                let _ = std::os::unix::fs::chown(dir, Some(user.0), Some(user.1));
            }
            return dir.clone();
        }
    }
    candidates.last().cloned().unwrap_or_default()
}

/// Worker-shaping facts from the settings (reference §6.3).
pub fn context(
    s: &Settings,
    environment_uuid: &str,
    owner: &str,
    warnings: &mut Vec<String>,
) -> WorkerContext {
    let env = &s.env;
    let meminfo = crate::fsutil::read_regular_text(Path::new("/proc/meminfo"), 1 << 20).ok();
    let user = worker_user(&s.config_dir);
    let mut forwarded = s.forwarded_env();
    forwarded.remove("CYBERWAVE_WORKER_STATUS_DIR");
    let (log_max_size, log_max_file) = s.docker_log_caps();
    WorkerContext {
        config_dir: s.config_dir.clone(),
        environment_uuid: environment_uuid.to_string(),
        environment: s.environment.clone(),
        base_url: s.base_url.clone(),
        token: s.token.clone(),
        mqtt_password: env.get("CYBERWAVE_MQTT_PASSWORD").map(Secret::new),
        mqtt_host_var: env.get("CYBERWAVE_MQTT_HOST"),
        mqtt_port_var: env.get("CYBERWAVE_MQTT_PORT"),
        mqtt_username_var: env.get("CYBERWAVE_MQTT_USERNAME"),
        mqtt_use_tls_var: env.get("CYBERWAVE_MQTT_USE_TLS"),
        mqtt_port: s.mqtt.port,
        bus_env: crate::bus::BusSettings::from_env(env).worker_env(),
        forwarded,
        image_override: env.get("CYBERWAVE_WORKER_IMAGE").filter(|i| {
            let ok = crate::containers::image::valid_reference(i.trim());
            if !ok {
                warnings.push(format!(
                    "CYBERWAVE_WORKER_IMAGE={i:?} is not an image reference; using the default image"
                ));
            }
            ok
        }),
        log_max_size,
        log_max_file,
        status_dir: status_dir(env, &s.config_dir, user),
        user,
        limits: limits(env, meminfo.as_deref().and_then(host_memory_mb), warnings),
        accelerators: detect_accelerators(env),
        owner: owner.to_string(),
        startup_probe: crate::config::seconds_or_warn(
            env,
            "CYBERWAVE_WORKER_STARTUP_PROBE_SECONDS",
            30.0,
            1.0,
            warnings,
        ),
        pull_attempts: crate::config::parse_or_warn(
            env,
            "CYBERWAVE_WORKER_IMAGE_PULL_RETRIES",
            3.0,
            1.0,
            warnings,
        )
        .min(20.0) as u32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_facts() {
        assert_eq!(
            host_memory_mb("MemTotal:        3884292 kB\nMemFree: 1 kB\n"),
            Some(3793)
        );
        assert_eq!(host_memory_mb("nothing"), None);
        assert_eq!(
            l4t_major("# R36 (release), REVISION: 3.0, GCID: 1"),
            Some(36)
        );
        assert_eq!(l4t_major("# R38 (release)"), Some(38));
        assert_eq!(l4t_major("# R3x (release)"), None);
        assert_eq!(l4t_major("garbage"), None);
        assert_eq!(group_gid("root:x:0:\nhailo:x:995:pi\n", "hailo"), Some(995));
        assert_eq!(group_gid("root:x:0:\n", "hailo"), None);
    }

    fn layer(pairs: &[(&str, &str)]) -> EnvLayer {
        EnvLayer::new(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            Default::default(),
        )
    }

    #[test]
    fn limits_from_either_name_and_bad_values_ignored() {
        type Case<'a> = (
            Vec<(&'a str, &'a str)>,
            Option<f64>,
            Option<u64>,
            Option<f64>,
            usize,
        );
        let cases: Vec<Case> = vec![
            (
                vec![("CYBERWAVE_WORKER_CPU_PERCENT", "50")],
                Some(50.0),
                None,
                None,
                0,
            ),
            (
                vec![("CYBERWAVE_WORKER_CPU_QUOTA_PERCENT", "75")],
                Some(75.0),
                None,
                None,
                0,
            ),
            (
                vec![
                    ("CYBERWAVE_WORKER_CPU_PERCENT", "50"),
                    ("CYBERWAVE_WORKER_CPU_QUOTA_PERCENT", "75"),
                ],
                Some(50.0),
                None,
                None,
                1,
            ),
            (
                vec![("CYBERWAVE_WORKER_CPU_PERCENT", "inf")],
                None,
                None,
                None,
                1,
            ),
            (
                vec![("CYBERWAVE_WORKER_CPU_PERCENT", "-3")],
                None,
                None,
                None,
                1,
            ),
            (
                vec![("CYBERWAVE_WORKER_MEMORY_MB", "512")],
                None,
                Some(512),
                None,
                0,
            ),
            (
                vec![("CYBERWAVE_WORKER_MEMORY_MB", "1e30")],
                None,
                None,
                None,
                1,
            ),
            (
                vec![("CYBERWAVE_WORKER_MEMORY_MB", "12.5")],
                None,
                None,
                None,
                1,
            ),
            (
                vec![("CYBERWAVE_GPU_MEM_FRACTION", "0.25")],
                None,
                None,
                Some(0.25),
                0,
            ),
            (
                vec![("CYBERWAVE_GPU_MEM_FRACTION", "2")],
                None,
                None,
                None,
                1,
            ),
        ];
        for (pairs, cpu, mem, gpu, nwarn) in cases {
            let mut w = Vec::new();
            let l = limits(&layer(&pairs), Some(2048), &mut w);
            assert_eq!(
                (l.cpu_percent, l.memory_mb, l.gpu_mem_fraction),
                (cpu, mem, gpu),
                "{pairs:?}"
            );
            assert_eq!(w.len(), nwarn, "{pairs:?}: {w:?}");
            assert!(l.auto_memory);
        }
        let l = limits(
            &layer(&[("CYBERWAVE_WORKER_AUTO_MEMORY_LIMIT", "off")]),
            None,
            &mut Vec::new(),
        );
        assert!(!l.auto_memory);
    }
}
