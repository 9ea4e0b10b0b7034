//! What the daemon sets up or reads before and around its supervisor loop: signals, OOM
//! protection, crash leftovers, the watchdog layers it reports, and the settings-derived
//! contexts of the worker and the `edge.json` refresh.

use std::thread;
use std::time::Duration;

use crossbeam_channel::{Receiver, bounded};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use super::error::DaemonError;
use super::sources::{Signal, TICK};
use crate::config::{self, EnvironmentFile, Settings};

/// `systemd` when systemd supervises us with a watchdog, `hardware` when `/dev/watchdog` is
/// armed.
pub(super) fn watchdog_layers() -> Vec<&'static str> {
    let mut layers = Vec::new();
    if std::env::var_os("WATCHDOG_USEC").is_some() && std::env::var_os("NOTIFY_SOCKET").is_some() {
        layers.push("systemd");
    }
    if crate::watchdog::armed() {
        layers.push("hardware");
    }
    layers
}

/// Temp files of interrupted atomic writes, and env files of interrupted launches.
pub(super) fn remove_crash_leftovers(config_dir: &std::path::Path) {
    let old = Duration::from_secs(60);
    let run = config_dir.join("run");
    let mut n = crate::fsutil::remove_stale_temps(config_dir, old)
        + crate::fsutil::remove_stale_temps(&run, old);
    for e in std::fs::read_dir(&run).into_iter().flatten().flatten() {
        if e.path().extension().is_some_and(|x| x == "env")
            && std::fs::remove_file(e.path()).is_ok()
        {
            n += 1;
        }
    }
    if n > 0 {
        log::info!("removed {n} file(s) left by an interrupted run");
    }
}

pub(super) fn load_environment(settings: &Settings) -> Result<EnvironmentFile, String> {
    EnvironmentFile::load(&settings.config_dir.join(config::ENVIRONMENT_FILE))
        .map_err(|e| e.to_string())
}

/// Attempts at reading `environment.json` at boot, 0.2 s apart (the original's 5 × 0.2 s): the
/// CLI may be writing it while the service starts.
const ENVIRONMENT_ATTEMPTS: u32 = 5;

/// A missing, unreadable or half-written file may be there a moment later; a file that says
/// something wrong (no or a bad uuid) will not.
pub(super) fn worth_retrying(problem: &config::FileProblem) -> bool {
    !matches!(problem, config::FileProblem::Invalid(_))
}

/// [`load_environment`] at boot, before the supervisor loop runs: retried as the original.
pub(super) fn load_environment_at_boot(settings: &Settings) -> Result<EnvironmentFile, String> {
    let path = settings.config_dir.join(config::ENVIRONMENT_FILE);
    let mut attempt = 1;
    loop {
        match EnvironmentFile::load(&path) {
            Ok(e) => return Ok(e),
            Err(e) if attempt < ENVIRONMENT_ATTEMPTS && worth_retrying(&e.problem) => {
                attempt += 1;
                std::thread::sleep(std::time::Duration::from_millis(200));
            }
            Err(e) => return Err(e.to_string()),
        }
    }
}

pub(super) fn spawn_signals() -> Result<Receiver<Signal>, DaemonError> {
    let mut signals = Signals::new([SIGTERM, SIGINT, SIGHUP])
        .map_err(|e| DaemonError::Startup(format!("cannot install signal handlers: {e}")))?;
    let (tx, rx) = bounded(8);
    thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for sig in signals.forever() {
                let msg = if sig == SIGHUP {
                    Signal::Reload
                } else {
                    Signal::Shutdown(sig)
                };
                if tx.send(msg).is_err() {
                    break;
                }
            }
        })
        .map_err(|e| DaemonError::Startup(format!("cannot start the signal thread: {e}")))?;
    Ok(rx)
}

/// Best effort: make the kernel's OOM killer pick anything before us (as the original).
pub(super) fn protect_from_oom() {
    if let Err(e) = std::fs::write("/proc/self/oom_score_adj", "-800") {
        log::debug!("oom_score_adj not set: {e}");
    }
}

/// The worker's container context, once this edge has an environment (warnings logged).
pub(super) fn worker_context(
    settings: &Settings,
    environment_uuid: Option<&str>,
    fingerprint: &str,
) -> Option<crate::worker::spec::WorkerContext> {
    let env = environment_uuid?;
    let mut warnings = Vec::new();
    let ctx = crate::worker::settings::context(settings, env, fingerprint, &mut warnings);
    for w in warnings {
        log::warn!("{w}");
    }
    Some(ctx)
}

pub(super) fn worker_tuning(settings: &Settings) -> crate::worker::settings::WorkerTuning {
    let mut warnings = Vec::new();
    let t = crate::worker::settings::tuning(settings, &mut warnings);
    for w in warnings {
        log::warn!("{w}");
    }
    t
}

/// `CYBERWAVE_EDGE_JSON_SYNC_INTERVAL_LOOPS` (20) ticks between `edge.json` refreshes.
pub(super) fn edge_json_every(settings: &Settings) -> Duration {
    let mut warnings = Vec::new();
    let loops = config::parse_or_warn(
        &settings.env,
        "CYBERWAVE_EDGE_JSON_SYNC_INTERVAL_LOOPS",
        20.0,
        0.05,
        &mut warnings,
    )
    .min(1e5);
    for w in warnings {
        log::warn!("{w}");
    }
    TICK.mul_f64(loops)
}

/// The saturation monitor's settings (reference §11.2): `CYBERWAVE_RESOURCE_SATURATION_PERCENT`
/// and how often the host is sampled (`CYBERWAVE_RESOURCE_MONITOR_INTERVAL_SECONDS`, 30).
pub(super) fn saturation_config(
    settings: &Settings,
    engine: std::sync::Arc<dyn crate::engine::Engine>,
) -> crate::health::saturation::MonitorConfig {
    let (threshold, warning) = crate::health::saturation::threshold(
        settings
            .env
            .get("CYBERWAVE_RESOURCE_SATURATION_PERCENT")
            .as_deref(),
    );
    let mut warnings: Vec<String> = warning.into_iter().collect();
    let every = config::seconds_or_warn(
        &settings.env,
        "CYBERWAVE_RESOURCE_MONITOR_INTERVAL_SECONDS",
        30.0,
        1.0,
        &mut warnings,
    );
    for w in warnings {
        log::warn!("{w}");
    }
    crate::health::saturation::MonitorConfig {
        threshold,
        every,
        engine,
        host: crate::host::hostname(),
    }
}

/// Reads configuration the way the daemon and `status` both need it.
pub fn load_settings() -> Result<(Settings, Vec<String>), crate::config::SettingsError> {
    let env = crate::config::EnvLayer::from_process();
    let (dir, overridden) = config::resolve_config_dir(&|k| env.process(k));
    Settings::load(dir, overridden, &env)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_file_that_may_still_be_written_is_read_again() {
        use config::FileProblem::*;
        assert!(worth_retrying(&Missing));
        assert!(worth_retrying(&Unreadable("busy".into())));
        let half = InvalidJson {
            line: 1,
            column: 5,
            message: "EOF".into(),
        };
        assert!(worth_retrying(&half));
        assert!(!worth_retrying(&Invalid("no uuid".into())));
    }
}
