//! The original's words for the alerts about a twin's driver (reference §2.5): a dashboard,
//! a fleet's alert rules and the people reading them see the same title and description for
//! the same condition. One function per condition; `tests` holds the table.

/// Title and description of one alert (type and severity are fixed per condition at the
/// call site and checked in the table).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Words {
    pub title: &'static str,
    pub description: String,
}

/// Ours (the original has no rollback): a switched driver failed its probation and the last
/// good one runs again.
pub fn update_rolled_back(twin: &str, failed: &str, reason: &str, back: &str) -> Words {
    Words {
        title: "Driver update rolled back",
        description: format!(
            "The driver update of twin '{twin}' to {failed} failed within its probation ({reason}). The edge switched back to the last good driver, {back}, and will not try {failed} again until the driver's configuration changes or a remote restart asks for it."
        ),
    }
}

/// Ours: an update waited for a robot task's update lock as long as allowed and went ahead.
pub fn lock_overridden(
    twin: &str,
    image: &str,
    holders: &[String],
    waited: std::time::Duration,
) -> Words {
    Words {
        title: "Driver update lock overridden",
        description: format!(
            "The driver update of twin '{twin}' to {image} waited {} s for the update lock held by {} and went ahead (CYBERWAVE_UPDATE_LOCK_MAX_DEFER_SECONDS).",
            waited.as_secs(),
            holders.join(", ")
        ),
    }
}

/// The original's refusal (`driver_token_unavailable`) of a driver under `strict` without a
/// twin-scoped token.
pub fn driver_token_unavailable() -> Words {
    Words {
        title: "Driver token unavailable",
        description: "Could not obtain a twin-scoped driver token and CYBERWAVE_EDGE_DRIVER_TOKEN_MODE=strict forbids the edge token fallback.".into(),
    }
}

pub fn twin_has_no_asset(twin: &str) -> Words {
    Words {
        title: "Twin has no asset",
        description: format!(
            "Twin '{twin}' has no asset attached on the backend. The edge cannot spawn a driver for this twin until an asset is attached via the dashboard."
        ),
    }
}

/// The title of a linked twin whose asset could not be fetched (not alerted from the offline
/// cache: the backend's answer brings the asset).
pub const ASSET_UNAVAILABLE: &str = "Driver could not start: asset unavailable";

pub fn asset_unavailable(twin: &str, url: &str) -> Words {
    Words {
        title: ASSET_UNAVAILABLE,
        description: format!(
            "The edge could not load the asset for twin '{twin}', so its driver was not started. The asset may have been deleted or is no longer accessible. Check the edge logs for details. Troubleshooting: {url}"
        ),
    }
}

pub fn no_drivers(twin: &str) -> Words {
    Words {
        title: "No drivers specified",
        description: format!("No drivers specified in asset metadata for twin '{twin}'"),
    }
}

pub fn no_driver_image(twin: &str) -> Words {
    Words {
        title: "No driver_docker_image in asset metadata",
        description: format!("No driver_docker_image in asset metadata for twin '{twin}'"),
    }
}

pub fn unusable_topology(twin: &str, why: &str, url: &str) -> Words {
    Words {
        title: "Unusable declared topology",
        description: format!(
            "Twin '{twin}' declares a topology this edge cannot resolve: {why}. Troubleshooting: {url}"
        ),
    }
}

pub fn image_not_available(image: &str, twin: &str, url: &str) -> Words {
    Words {
        title: "Driver image not available",
        description: format!(
            "Driver image '{image}' could not be pulled for twin '{twin}'. Troubleshooting: {url}"
        ),
    }
}

pub fn failed_to_start(image: &str, twin: &str, url: &str) -> Words {
    Words {
        title: "Driver failed to start",
        description: format!(
            "Driver image '{image}' for twin '{twin}' failed to start on this edge. Check that required hardware is connected and accessible. Troubleshooting: {url}"
        ),
    }
}

/// `twin_label` is the original's `twin-<first 8 of the uuid>`; `docker_restarts` Docker's
/// own `RestartCount`.
pub fn restart_loop(
    container: &str,
    twin_label: &str,
    in_window: usize,
    window_s: u64,
    docker_restarts: u64,
    url: &str,
) -> Words {
    Words {
        title: "Driver restart loop detected",
        description: format!(
            "Driver container '{container}' for twin '{twin_label}' restarted {in_window} times in the last {window_s} seconds (total restarts reported by Docker: {docker_restarts}). The container was stopped automatically to prevent continuous rebooting. Troubleshooting: {url}"
        ),
    }
}

/// `status` is `down` or `removed` (reference §5.11).
pub fn container_stopped(container: &str, status: &str) -> Words {
    Words {
        title: "Driver container stopped",
        description: format!(
            "Driver container '{container}' is no longer running ({status}). Frames from this camera will not be available to the worker."
        ),
    }
}

pub fn runtime_error() -> Words {
    Words {
        title: "Driver runtime error",
        description: "Your robot's driver ran into a problem and may not work correctly.".into(),
    }
}

pub fn sensor_device_missing(device: &str) -> Words {
    Words {
        title: "Sensor device missing",
        description: format!("The pinned device {device} is not present on the edge host."),
    }
}

pub fn restart_needed() -> Words {
    Words {
        title: "Driver restart needed",
        description: "Settings changed; restart the driver to apply them.".into(),
    }
}

pub fn restarts_suppressed() -> Words {
    Words {
        title: "Driver restarts suppressed",
        description:
            "Settings changed too often to restart the driver each time; restart it to apply them."
                .into(),
    }
}

/// Ours (no original has it): a running driver that publishes nothing on the data bus.
pub fn data_stalled(container: &str, twin: &str, idle_s: u64) -> Words {
    Words {
        title: "Driver data stalled",
        description: format!(
            "Driver container '{container}' for twin '{twin}' is running but has published no data on the data bus for {idle_s} seconds. The worker and anything else reading this twin's data receive nothing."
        ),
    }
}

#[cfg(test)]
mod tests;
