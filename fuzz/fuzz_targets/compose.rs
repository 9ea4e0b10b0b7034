//! An image's compose label (any bytes, base64-encoded as the `robot` variant, and the bytes as
//! a label map) → `drivers::compose::declared`: no panic, bounded, and every translated service
//! keeps an image reference `docker create` cannot read as an option.
#![no_main]
use std::collections::BTreeMap;

use base64::Engine as _;
use cyberwave_edge::drivers::compose::{Declared, Inputs, SCHEMA_LABEL, declared};
use libfuzzer_sys::fuzz_target;

fn check(labels: &BTreeMap<String, String>) {
    let env = BTreeMap::from([("SITE".to_string(), "lab".to_string())]);
    let zenoh = [("ZENOH_CONNECT", "tcp/10.0.0.1:7447".to_string())];
    let overrides = BTreeMap::new();
    let inputs = Inputs {
        image: "reg.example/driver:humble-dev",
        labels,
        twin_uuid: "8e2f7a10-1b2c-4d5e-8f90-123456789abc",
        env: &env,
        zenoh: &zenoh,
        image_overrides: &overrides,
        container_of: &|s| format!("cyberwave-driver-8e2f7a10-{s}"),
        derived: &BTreeMap::new(),
    };
    if let Ok(Declared::Graph { services, .. }) = declared(&inputs) {
        for s in services {
            assert!(!s.image.starts_with('-'), "{}", s.image);
            assert!(!s.name.is_empty() && s.name.len() <= 40);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut labels = BTreeMap::from([
        (SCHEMA_LABEL.to_string(), "2".to_string()),
        (
            "io.cyberwave.driver.compose.robot".to_string(),
            base64::engine::general_purpose::STANDARD.encode(data),
        ),
    ]);
    check(&labels);
    if let Ok(map) = serde_json::from_slice::<BTreeMap<String, String>>(data) {
        labels = map;
        check(&labels);
    }
});
