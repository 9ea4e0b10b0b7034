//! One row per condition, the right-hand side copied from cyberwave-edge-core 0.1.30
//! (`startup.py`, `driver_logs.py`) with the placeholders filled in.

use super::*;

const URL: &str = "https://docs.cyberwave.com";

#[test]
fn every_condition_has_the_originals_words() {
    let rows: Vec<(Words, &str, &str)> = vec![
        (
            twin_has_no_asset("arm"),
            "Twin has no asset",
            "Twin 'arm' has no asset attached on the backend. The edge cannot spawn a driver for this twin until an asset is attached via the dashboard.",
        ),
        (
            asset_unavailable("arm", URL),
            "Driver could not start: asset unavailable",
            "The edge could not load the asset for twin 'arm', so its driver was not started. The asset may have been deleted or is no longer accessible. Check the edge logs for details. Troubleshooting: https://docs.cyberwave.com",
        ),
        (
            no_drivers("arm"),
            "No drivers specified",
            "No drivers specified in asset metadata for twin 'arm'",
        ),
        (
            no_driver_image("arm"),
            "No driver_docker_image in asset metadata",
            "No driver_docker_image in asset metadata for twin 'arm'",
        ),
        (
            unusable_topology("arm", "service 'x' has no image", URL),
            "Unusable declared topology",
            "Twin 'arm' declares a topology this edge cannot resolve: service 'x' has no image. Troubleshooting: https://docs.cyberwave.com",
        ),
        (
            image_not_available("cyberwaveos/so101:dev", "arm", URL),
            "Driver image not available",
            "Driver image 'cyberwaveos/so101:dev' could not be pulled for twin 'arm'. Troubleshooting: https://docs.cyberwave.com",
        ),
        (
            failed_to_start("cyberwaveos/so101:dev", "arm", URL),
            "Driver failed to start",
            "Driver image 'cyberwaveos/so101:dev' for twin 'arm' failed to start on this edge. Check that required hardware is connected and accessible. Troubleshooting: https://docs.cyberwave.com",
        ),
        (
            restart_loop("cyberwave-driver-11111111", "twin-11111111", 5, 60, 7, URL),
            "Driver restart loop detected",
            "Driver container 'cyberwave-driver-11111111' for twin 'twin-11111111' restarted 5 times in the last 60 seconds (total restarts reported by Docker: 7). The container was stopped automatically to prevent continuous rebooting. Troubleshooting: https://docs.cyberwave.com",
        ),
        (
            container_stopped("cyberwave-driver-11111111", "down"),
            "Driver container stopped",
            "Driver container 'cyberwave-driver-11111111' is no longer running (down). Frames from this camera will not be available to the worker.",
        ),
        (
            runtime_error(),
            "Driver runtime error",
            "Your robot's driver ran into a problem and may not work correctly.",
        ),
        (
            sensor_device_missing("/dev/v4l/by-id/usb-cam"),
            "Sensor device missing",
            "The pinned device /dev/v4l/by-id/usb-cam is not present on the edge host.",
        ),
        (
            restart_needed(),
            "Driver restart needed",
            "Settings changed; restart the driver to apply them.",
        ),
        (
            restarts_suppressed(),
            "Driver restarts suppressed",
            "Settings changed too often to restart the driver each time; restart it to apply them.",
        ),
    ];
    for (words, title, description) in rows {
        assert_eq!(words.title, title);
        assert_eq!(words.description, description, "{title}");
    }
}
