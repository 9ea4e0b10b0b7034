//! The driver runtime's settings, read from the daemon's [`Settings`]: what shapes a driver
//! container (reference §5.8, §9.1) and the runtime's knobs (§11.3 names).

use std::time::Duration;

use super::{HostPlatform, LaunchContext};
use crate::config::Settings;

pub use crate::containers::runtime::{CleanupTuning, Tuning};

/// Knobs of the drivers (reference §11.3 names): the runtime's, and the driver policy's.
#[derive(Debug, Clone)]
pub struct DriverTuning {
    pub runtime: Tuning,
    pub log_lines_per_second: f64,
    pub troubleshooting_url: String,
    /// At most one pull-progress update of a `driver_starting` card per this period.
    pub card_update_interval: Duration,
    /// How often pinned camera devices are looked for (§5.13; the original's loop interval).
    pub device_check_every: Duration,
    /// `docker create` / `docker rm` deadlines (the original's 30 s / 60 s).
    pub create_timeout: Duration,
    pub remove_timeout: Duration,
}

/// Driver-shaping facts from the settings (reference §5.8, §9.1, §11.3).
pub fn launch_context(s: &Settings, owner: &str) -> LaunchContext {
    launch_context_keeping(s, owner, &Default::default())
}

/// [`launch_context`] on a running edge (SIGHUP): a camera file gone bad keeps the pins it
/// last gave.
pub fn launch_context_keeping(
    s: &Settings,
    owner: &str,
    last_camera_files: &super::camera::CameraFiles,
) -> LaunchContext {
    let env = &s.env;
    let camera_files = super::camera::read(&s.config_dir, last_camera_files);
    let (log_max_size, log_max_file) = s.docker_log_caps();
    let forwarded = s.forwarded_env();
    LaunchContext {
        config_dir: s.config_dir.clone(),
        host: HostPlatform::detect(env.get("CYBERWAVE_PLATFORM_VARIANT").as_deref()),
        environment: s.environment.clone(),
        base_url: s.base_url.clone(),
        mqtt_host_var: env.get("CYBERWAVE_MQTT_HOST"),
        mqtt_port_var: env.get("CYBERWAVE_MQTT_PORT"),
        mqtt_port: s.mqtt.port,
        log_level: env.get("CYBERWAVE_EDGE_LOG_LEVEL"),
        forwarded,
        bus_env: crate::bus::BusSettings::from_env(env).driver_env(),
        log_max_size,
        log_max_file,
        nvidia_default_runtime: false,
        driver_overrides: s.driver_overrides.clone(),
        token: s.token.clone(),
        owner: owner.to_string(),
        cameras: camera_files.config(),
        camera_files,
        host_has_v4l: super::camera::host_has_v4l(),
        troubleshooting_url: troubleshooting_url(s),
        has_so101_lib: s.config_dir.join("so101_lib").is_dir(),
        // Credentials left out: a graph's placeholder never expands to one.
        edge_env: s
            .env
            .with_prefix("")
            .into_iter()
            .filter(|(k, _)| !crate::containers::updates::is_secret_name(k))
            .collect(),
        images: Default::default(),
        tokens: tokens(s),
    }
}

/// The driver-token settings and the tokens cached by an earlier run (a restarted edge runs
/// its scoped drivers on them at once, backend or not).
fn tokens(s: &Settings) -> crate::drivers::tokens::DriverTokens {
    use crate::drivers::tokens::{DriverTokens, TokenFacts, TokenSettings, cache};
    let mut warnings = Vec::new();
    let settings = TokenSettings::from_env(&s.env, &mut warnings);
    for w in warnings {
        log::warn!("{w}");
    }
    let facts = match settings.mode {
        crate::drivers::tokens::Mode::Legacy => Default::default(),
        _ => cache::load_all(&s.config_dir)
            .into_iter()
            .map(|(twin, token)| {
                let facts = TokenFacts::Held {
                    token,
                    failing: None,
                };
                (twin, facts)
            })
            .collect(),
    };
    DriverTokens { settings, facts }
}

/// Restart-loop, revival, probe and log knobs, bad values replaced by defaults (logged).
pub fn driver_tuning(s: &Settings) -> DriverTuning {
    let env = &s.env;
    let mut warnings = Vec::new();
    let mut num = |k: &str, default: f64, min: f64| {
        crate::config::parse_or_warn(env, k, default, min, &mut warnings)
    };
    let threshold = num("CYBERWAVE_DRIVER_RESTART_LOOP_THRESHOLD", 4.0, 1.0).min(1e6) as usize;
    let tail = num("CYBERWAVE_DRIVER_LOG_COLD_START_TAIL", 500.0, 0.0).min(100_000.0) as u64;
    let rate = num("CYBERWAVE_DRIVER_LOG_LINES_PER_SECOND", 20.0, 0.1).min(1e6);
    let disk_reserve_mb = num("CYBERWAVE_DISK_RESERVE_MB", 512.0, 0.0).min(1e9) as u64;
    let sd_card_threshold = num("CYBERWAVE_SD_CARD_CLEANUP_USAGE_PERCENT", 80.0, 0.0).min(100.0);
    let mut secs = |k: &str, default: f64, min: f64| {
        crate::config::seconds_or_warn(env, k, default, min, &mut warnings)
    };
    let window = secs("CYBERWAVE_DRIVER_RESTART_LOOP_WINDOW_SECONDS", 60.0, 1.0);
    let probe = secs("CYBERWAVE_DRIVER_STARTUP_PROBE_SECONDS", 120.0, 1.0);
    let retry_base = secs("CYBERWAVE_DRIVER_RETRY_BASE_SECONDS", 10.0, 0.1);
    let card_every = secs(
        "CYBERWAVE_DRIVER_STARTING_ALERT_UPDATE_INTERVAL_SECONDS",
        2.0,
        0.5,
    );
    let device_check = secs("CYBERWAVE_SENSOR_DEVICE_CHECK_SECONDS", 15.0, 1.0);
    let create_timeout = secs("CYBERWAVE_DRIVER_CREATE_TIMEOUT_SECONDS", 30.0, 1.0);
    let remove_timeout = secs("CYBERWAVE_DRIVER_REMOVE_TIMEOUT_SECONDS", 60.0, 1.0);
    let container_interval = secs("CYBERWAVE_CONTAINER_PRUNE_INTERVAL_SECONDS", 1800.0, 1.0);
    let image_interval = secs("CYBERWAVE_IMAGE_PRUNE_INTERVAL_SECONDS", 10800.0, 1.0);
    let volume_interval = secs("CYBERWAVE_VOLUME_PRUNE_INTERVAL_SECONDS", 10800.0, 1.0);
    let probation = secs("CYBERWAVE_UPDATE_PROBATION_SECONDS", 120.0, 1.0);
    let lock_max_defer = secs("CYBERWAVE_UPDATE_LOCK_MAX_DEFER_SECONDS", 3600.0, 0.0);
    let gate_poll = secs("CYBERWAVE_DRIVER_DEPENDENCY_HEALTH_POLL_SECONDS", 2.0, 0.1);
    let gate_timeout = secs(
        "CYBERWAVE_DRIVER_DEPENDENCY_HEALTH_TIMEOUT_SECONDS",
        180.0,
        0.0,
    );

    let removed_revival = crate::config::optional_seconds_or_warn(
        env,
        "CYBERWAVE_DRIVER_REMOVED_REVIVAL_SECONDS",
        300.0,
        &mut warnings,
    );
    let skip_cleanup = env
        .get("CYBERWAVE_SKIP_PERIODIC_DOCKER_CLEANUP")
        .is_some_and(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes"));
    let cleanup = (!skip_cleanup).then_some(CleanupTuning {
        container_interval,
        image_interval,
        volume_interval,
        sd_card_threshold,
    });
    for w in warnings {
        log::warn!("{w}");
    }
    DriverTuning {
        runtime: Tuning {
            restart_loop_threshold: threshold,
            restart_loop_window: window,
            removed_revival,
            probe,
            retry_base,
            retry_cap: Duration::from_secs(300),
            rearm_after: (window * 10).max(Duration::from_secs(600)),
            log_tail: tail,
            cleanup,
            probation,
            lock_max_defer: (!lock_max_defer.is_zero()).then_some(lock_max_defer),
            disk_reserve_mb,
            gate_poll,
            gate_timeout,
        },
        log_lines_per_second: rate,
        card_update_interval: card_every,
        device_check_every: device_check,
        troubleshooting_url: troubleshooting_url(s),
        create_timeout,
        remove_timeout,
    }
}

/// Where driver alerts send people.
fn troubleshooting_url(s: &Settings) -> String {
    s.env
        .get("CYBERWAVE_DRIVER_TROUBLESHOOTING_URL")
        .unwrap_or_else(|| "https://docs.cyberwave.com".into())
}
