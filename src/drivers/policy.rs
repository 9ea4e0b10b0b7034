//! The driver policy on top of the container runtime: alert texts (the reference's), the record
//! of images this edge ran, and where driver log lines go (`driverlog` and the daemon's log).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;

use super::DriverSpec;
use super::logs::{self, RateLimit};
use super::tokens;
use crate::alerts::{Alert, AlertSink};
use crate::containers::follow::{LogEvent, Sink};
use crate::containers::launch::{LaunchFailure, LaunchHooks};
use crate::containers::runtime::{self, Policy};
use crate::containers::spec::ContainerSpec;
use crate::containers::updates::{Failed, Good};
use crate::mqtt::{SharedHandle, topics};

/// The label of an image that declares its own Compose topology (reference §5.5).
const COMPOSE_SCHEMA_LABEL: &str = "io.cyberwave.driver.compose.schema";

/// What a driver launch adds: the twin file before create, pull progress on `driverlog`.
pub struct DriverHooks {
    pub config_dir: std::path::PathBuf,
    /// The current link (replaced on reload).
    pub mqtt: SharedHandle,
    pub alerts: Arc<Mutex<AlertSink>>,
    pub cards: super::card::Cards,
    /// The engine and the robots claimed by launches under way (the conflict guard).
    pub engine: Arc<dyn crate::containers::engine::Engine>,
    pub robots: super::conflict::Claims,
    /// The Jetson power mode applied by this process, and the nvpmodel configuration.
    pub nvp_applied: Mutex<Option<String>>,
    pub nvp_conf: std::path::PathBuf,
    /// This edge's fingerprint, its environment (a graph's variant) and this process's
    /// navigation-bundle session.
    pub owner: String,
    pub edge_env: std::collections::BTreeMap<String, String>,
    pub bundle_session: String,
}

impl LaunchHooks for DriverHooks {
    fn derive(
        &self,
        spec: &ContainerSpec,
        image: &crate::engine::ImageConfig,
    ) -> std::collections::BTreeMap<String, String> {
        super::navigation::derive(
            self.engine.as_ref(),
            &self.owner,
            &self.bundle_session,
            &self.edge_env,
            spec,
            image,
        )
    }

    fn prepare(
        &self,
        spec: &ContainerSpec,
        payload: &serde_json::Value,
    ) -> Result<(), LaunchFailure> {
        self.cards.phase(&self.alerts, spec, "starting_container");
        let image = self.engine.image_config(&spec.image);
        if spec.service.is_none() && image.labels.contains_key(COMPOSE_SCHEMA_LABEL) {
            let text = format!(
                "{} declares a Compose topology ({COMPOSE_SCHEMA_LABEL}) that was not read before this launch (the image could not be fetched earlier): it starts as one container, and the twin is planned again from the labels now that the image is here",
                spec.image
            );
            log::warn!("{}: {text}", spec.name);
            self.progress(spec, &spec.image, &text);
        }
        super::conflict::check(
            self.engine.as_ref(),
            &self.robots,
            spec,
            &image.env,
            super::spec::LABEL_TWIN,
        )?;
        if spec
            .options
            .iter()
            .any(|o| o.contains(tokens::PUBLIC_CREDENTIALS))
        {
            // A scoped driver reads this in place of credentials.json: fail closed without it.
            tokens::cache::prepare_masks(&self.config_dir).map_err(|e| LaunchFailure {
                phase: "driver_token_mask_failed",
                message: format!("Could not hide the edge credentials from the driver: {e}"),
            })?;
        }
        crate::twins::file::write(&self.config_dir, &spec.owner, payload)
            .map(|_| ())
            .map_err(|e| LaunchFailure {
                phase: "twin_file_failed",
                message: e.to_string(),
            })
    }

    fn progress(&self, spec: &ContainerSpec, image: &str, message: &str) {
        if message.starts_with("docker pull started") {
            self.cards.phase(&self.alerts, spec, "pull_started");
        } else if message.starts_with("docker pull completed") {
            self.cards.phase(&self.alerts, spec, "pull_complete");
        }
        self.publish_pull(spec, image, message);
    }

    fn pull_progress(&self, spec: &ContainerSpec, patch: &serde_json::Value) {
        self.cards.pull(&self.alerts, spec, patch);
    }

    fn before_start(&self, specs: &[&ContainerSpec]) {
        use super::jetson_power as jp;
        let requests: Vec<&str> = specs
            .iter()
            .filter_map(|s| crate::engine::args::label_value(&s.options, jp::LABEL))
            .collect();
        match jp::resolve(requests) {
            Err(ids) => log::error!(
                "Conflicting {} values on one Jetson host: {ids}; preserving the current power mode",
                jp::ENV
            ),
            Ok(None) => {}
            Ok(Some(id)) => {
                let Ok(mut applied) = self.nvp_applied.lock() else {
                    return;
                };
                if applied.as_deref() != Some(id.as_str()) && jp::apply(&id, &self.nvp_conf) {
                    *applied = Some(id);
                }
            }
        }
    }

    fn pull_line(&self, spec: &ContainerSpec, image: &str, line: &str) {
        self.publish_pull(spec, image, line);
    }
}

impl DriverHooks {
    /// A pull message on the twin's `driverlog`, under its base driver container name.
    fn publish_pull(&self, spec: &ContainerSpec, image: &str, message: &str) {
        if let Some(m) = self.mqtt.get() {
            let p = logs::payload(
                message,
                logs::detect_level(message),
                base_name(spec),
                Some(image),
                crate::epoch_seconds(),
            );
            m.publish_json(&topics::driverlog(m.prefix(), &spec.owner), p);
        }
    }
}

fn phase_text(phase: &str) -> &'static str {
    match phase {
        "container_remove_failed" => "Could not restart your robot. Please try again.",
        "docker_create_failed" | "docker_start_failed" => {
            "Could not start your robot. Please try again."
        }
        "docker_create_timeout" | "container_startup_timeout" => {
            "Your robot took too long to start. Please try again."
        }
        "container_unhealthy" => "Your robot stopped unexpectedly. Please try again.",
        "pull_failed" => {
            "Could not download the robot software. Check your connection and try again."
        }
        "pull_timeout" => "Download timed out. Check your connection and try again.",
        "pull_spawn_failed" => "Could not start the download. Please try again.",
        _ => "An unexpected error occurred. Please contact support.",
    }
}

/// The driver policy for the runtime: alerts with the reference's texts, and log lines to
/// `driverlog` and the daemon's log.
pub struct DriverPolicy {
    pub alerts: Arc<Mutex<AlertSink>>,
    pub mqtt: SharedHandle,
    pub log_lines_per_second: f64,
    pub troubleshooting_url: String,
    /// The failure phase last alerted per container: a retry that fails the same way is not
    /// POSTed again (one card, not one per retry).
    pub alerted: std::collections::BTreeMap<String, &'static str>,
    /// The `driver_starting` cards (shared with the hooks).
    pub cards: super::card::Cards,
}

impl Policy for DriverPolicy {
    fn up(&mut self, spec: &ContainerSpec, _id: &str) {
        self.alerted.remove(&spec.name);
        self.cards.done(&self.alerts, spec);
        if let Ok(a) = self.alerts.lock() {
            a.resolve(&spec.owner, "driver_start_failure");
            a.resolve(&spec.owner, "edge_disk_reserve");
        }
    }

    fn launch_failed(&mut self, spec: &ContainerSpec, failure: &LaunchFailure, _retry: Duration) {
        self.cards.failed(
            &self.alerts,
            spec,
            failure.phase,
            phase_text(failure.phase),
            &failure.message,
        );
        if failure.phase == crate::containers::reserve::PHASE {
            if let Ok(a) = self.alerts.lock() {
                disk_reserve(&a, spec, &failure.message);
            }
            return;
        }
        if self.alerted.insert(spec.name.clone(), failure.phase) == Some(failure.phase) {
            log::debug!(
                "{}: failed again ({}); already alerted",
                spec.name,
                failure.phase
            );
            return;
        }
        if let Ok(a) = self.alerts.lock() {
            launch_failed(&a, spec, failure, &self.troubleshooting_url);
        }
    }

    fn restart_loop(&mut self, spec: &ContainerSpec, l: &runtime::Loop) {
        if let Ok(a) = self.alerts.lock() {
            let lp = Loop {
                name: &spec.name,
                twin: &spec.owner,
                deaths: l.deaths_in_window,
                deaths_total: l.deaths_total,
                window: l.window,
                retry_in: l.retry_in,
                troubleshooting_url: &self.troubleshooting_url,
            };
            restart_loop(&a, &lp);
        }
    }

    fn went_down(&mut self, spec: &ContainerSpec, state: &str) {
        // The original's two words: gone from the engine, or there and not running.
        let status = if state == "removed" {
            "removed"
        } else {
            "down"
        };
        if let Ok(a) = self.alerts.lock() {
            raise_health(&a, spec, &spec.name, status);
        }
    }

    fn lock_overridden(&mut self, spec: &ContainerSpec, holders: &[String], waited: Duration) {
        let w = super::words::lock_overridden(&spec.title, &spec.image, holders, waited);
        let alert = Alert {
            alert_type: "driver_update_lock_overridden",
            name: w.title,
            description: &w.description,
            severity: "warning",
            twin_uuid: &spec.owner,
            metadata: Some(json!({"container_name": spec.name, "image": spec.image,
                "lock_holders": holders, "waited_s": waited.as_secs()})),
        };
        if let Ok(a) = self.alerts.lock() {
            a.raise(
                &format!(
                    "driver_update_lock_overridden:{}:{}",
                    spec.name, spec.spec_hash
                ),
                alert,
            );
        }
    }

    fn rolled_back(&mut self, failed: &ContainerSpec, why: &Failed, back: &Good) {
        let good = crate::containers::updates::image_with_id(&back.spec.image, &back.image_id);
        let w = super::words::update_rolled_back(&failed.title, &why.image, &why.reason, &good);
        let alert = Alert {
            alert_type: "driver_update_rolled_back",
            name: w.title,
            description: &w.description,
            severity: "error",
            twin_uuid: &failed.owner,
            metadata: Some(
                json!({"container_name": failed.name, "failed_image": why.image,
                "failed_image_id": why.image_id, "reason": why.reason,
                "running_image": back.spec.image, "running_image_id": back.image_id}),
            ),
        };
        if let Ok(a) = self.alerts.lock() {
            a.raise(
                &format!(
                    "driver_update_rolled_back:{}:{}",
                    failed.name, why.spec_hash
                ),
                alert,
            );
        }
    }

    fn log_sink(&self, spec: &ContainerSpec) -> Sink {
        driver_log_sink(
            &spec.name,
            &spec.owner,
            &spec.image,
            self.mqtt.clone(),
            self.log_lines_per_second,
            self.alerts.clone(),
        )
    }
}

/// The twin's base driver container name (without a service suffix): pull lines name it, as
/// the original's do.
fn base_name(spec: &ContainerSpec) -> &str {
    spec.service
        .as_deref()
        .and_then(|svc| spec.name.strip_suffix(svc)?.strip_suffix('-'))
        .unwrap_or(&spec.name)
}

/// `driver_start_failure` for a failed launch: "Driver image not available" when the image
/// could not be had, else "Driver failed to start"; the phase and the engine's words go in
/// the metadata.
fn launch_failed(alerts: &AlertSink, spec: &ContainerSpec, f: &LaunchFailure, url: &str) {
    let w = if f.phase.starts_with("pull_") {
        super::words::image_not_available(&spec.image, &spec.title, url)
    } else {
        super::words::failed_to_start(&spec.image, &spec.title, url)
    };
    let name = &spec.name;
    let alert = Alert {
        alert_type: "driver_start_failure",
        name: w.title,
        description: &w.description,
        severity: "error",
        twin_uuid: &spec.owner,
        metadata: Some(
            json!({"phase": f.phase, "container_name": name, "technical_detail": f.message}),
        ),
    };
    alerts.raise(&format!("driver_start_failure:{name}:{}", f.phase), alert);
}

/// A restart loop the breaker stopped.
struct Loop<'a> {
    name: &'a str,
    twin: &'a str,
    deaths: usize,
    deaths_total: u64,
    window: Duration,
    retry_in: Duration,
    troubleshooting_url: &'a str,
}

/// `driver_restart_loop`, with the reference's text.
fn restart_loop(alerts: &AlertSink, l: &Loop) {
    let window = l.window.as_secs();
    let short: String = l.twin.chars().take(8).collect();
    let w = super::words::restart_loop(
        l.name,
        &format!("twin-{short}"),
        l.deaths,
        window,
        l.deaths_total,
        l.troubleshooting_url,
    );
    log::error!("{} Next try in {} s.", w.description, l.retry_in.as_secs());
    let alert = Alert {
        alert_type: "driver_restart_loop",
        name: w.title,
        description: &w.description,
        severity: "error",
        twin_uuid: l.twin,
        metadata: Some(
            json!({"container_name": l.name, "restarts_in_window": l.deaths, "window_seconds": window, "retry_in_seconds": l.retry_in.as_secs()}),
        ),
    };
    alerts.raise(
        &format!(
            "driver_restart_loop:{}:{}",
            l.name,
            crate::epoch_seconds() as u64
        ),
        alert,
    );
}

fn raise_health(alerts: &AlertSink, spec: &DriverSpec, name: &str, status: &str) {
    let w = super::words::container_stopped(name, status);
    let alert = Alert {
        alert_type: "driver_health",
        name: w.title,
        description: &w.description,
        severity: "warning",
        twin_uuid: &spec.owner,
        metadata: Some(json!({"container_name": name, "status": status})),
    };
    alerts.raise(
        &format!("driver_health:{name}:{}", crate::epoch_seconds() as u64),
        alert,
    );
}

/// Where a driver's log lines go: every non-blank line to our stderr verbatim, and to
/// `driverlog` on MQTT (when linked) rate-limited, with a report of what the limit dropped.
fn driver_log_sink(
    name: &str,
    twin: &str,
    image: &str,
    mqtt: SharedHandle,
    rate: f64,
    alerts: Arc<Mutex<AlertSink>>,
) -> Sink {
    let (name, twin, image) = (name.to_string(), twin.to_string(), image.to_string());
    let mut limit = RateLimit::new(rate, rate * 5.0, Instant::now());
    // `driver_runtime_error` once per log-follow session, as the original.
    let session = crate::epoch_seconds();
    let mut runtime_error_seen = false;
    let mut last_report = Instant::now();
    Box::new(move |ev| {
        let link = mqtt.get();
        let publish = |line: &str, level: &str| {
            if let Some(m) = &link {
                m.publish_json(
                    &topics::driverlog(m.prefix(), &twin),
                    logs::payload(line, level, &name, Some(&image), crate::epoch_seconds()),
                );
            }
        };
        let now = Instant::now();
        match ev {
            LogEvent::Line(line) if line.trim().is_empty() => {}
            LogEvent::Line(line) => {
                if !runtime_error_seen && let Some(detail) = logs::runtime_error(line) {
                    runtime_error_seen = true;
                    if let Ok(a) = alerts.lock() {
                        let w = super::words::runtime_error();
                        a.raise(
                            &format!("driver_runtime_error:{name}:{session}"),
                            Alert {
                                alert_type: "driver_runtime_error",
                                name: w.title,
                                description: &w.description,
                                severity: "error",
                                twin_uuid: &twin,
                                metadata: Some(json!({"error_code": "RuntimeError", "technical_detail": detail})),
                            },
                        );
                    }
                }
                // The journal gets every line, verbatim (the original's `print` to stderr);
                // the rate limit is MQTT's alone.
                crate::logging::verbatim(line);
                if limit.allow(now) {
                    publish(line, logs::detect_level(line));
                }
            }
            LogEvent::Cut(n) => {
                let msg = format!(
                    "edge: {n} log line(s) of {name} longer than {} bytes were cut",
                    crate::engine::MAX_LINE
                );
                log::warn!("{msg}");
                publish(&msg, "WARNING");
            }
        }
        if now.duration_since(last_report) >= logs::DROP_REPORT_EVERY {
            last_report = now;
            let dropped = limit.take_dropped();
            if dropped > 0 {
                let msg = format!(
                    "edge: {dropped} log line(s) of {name} dropped by the rate limit ({rate}/s)"
                );
                log::warn!("{msg}");
                publish(&msg, "WARNING");
            }
        }
    })
}

#[cfg(test)]
mod tests;

/// `edge_disk_reserve` (ours) on the twin whose update was refused: the old driver runs on.
fn disk_reserve(alerts: &AlertSink, spec: &ContainerSpec, message: &str) {
    let description = format!(
        "An update of the driver of twin '{}' was not downloaded: {message}. The running driver is kept; the update is tried again once space is freed.",
        spec.title
    );
    let alert = Alert {
        alert_type: "edge_disk_reserve",
        name: "Edge disk reserve reached",
        description: &description,
        severity: "warning",
        twin_uuid: &spec.owner,
        metadata: Some(json!({"container_name": spec.name, "image": spec.image})),
    };
    alerts.raise(&format!("edge_disk_reserve:{}", spec.name), alert);
}
