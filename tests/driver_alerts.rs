//! Driver alerts raised from what a driver logs (reference §2.5): `driver_runtime_error` for a
//! `RuntimeError: …` line, once per log-follow session, with the original's words.

use std::time::Duration;

use serde_json::json;

use crate::support::daemon::Daemon;
use crate::support::drivers::*;
use crate::support::*;

const SEC: Duration = Duration::from_secs(1);

#[test]
fn a_runtime_error_in_the_log_raises_one_alert_with_the_originals_words() {
    let Some((twin, backend, _broker, dir, _c)) = setup("runtime_error", "runtimeerror") else {
        return;
    };
    let mut d = Daemon::start(&dir);
    assert!(
        wait_until(30 * SEC, || !backend
            .alerts_of_type("driver_runtime_error")
            .is_empty()),
        "{}",
        d.log()
    );
    std::thread::sleep(3 * SEC); // the driver says it again: still one alert
    let alerts = backend.alerts_of_type("driver_runtime_error");
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    let a = &alerts[0];
    assert_eq!(a["twin_uuid"], json!(twin));
    assert_eq!(a["severity"], json!("error"));
    assert_eq!(a["name"], json!("Driver runtime error"));
    assert_eq!(
        a["description"],
        json!("Your robot's driver ran into a problem and may not work correctly.")
    );
    assert_eq!(
        a["metadata"],
        json!({"error_code": "RuntimeError", "technical_detail": "camera not found"})
    );
    d.terminate();
}
