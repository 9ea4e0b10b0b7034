//! Twin metadata → container specs: driver profiles, services, `-e` params, env keys, restart
//! floors, attached twins, camera pins; the input is a JSON object `{"twins": [...],
//! "assets": [...], "edge": {...}, "cameras": {...}, "images": {image: {label: value}}}`
//! (`images`: what driver images declare, so image-declared graphs are planned too)
//! (or anything else, which must be refused without a panic).
#![no_main]
use std::collections::BTreeMap;
use std::sync::OnceLock;

use cyberwave_edge::config::{EnvLayer, Settings};
use cyberwave_edge::drivers::LaunchContext;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fn ctx() -> &'static LaunchContext {
    static CTX: OnceLock<LaunchContext> = OnceLock::new();
    CTX.get_or_init(|| {
        let d = std::env::temp_dir().join(format!("cw-fuzz-spec-{}", std::process::id()));
        std::fs::create_dir_all(&d).expect("fuzz scratch dir");
        std::fs::write(d.join("credentials.json"), r#"{"token": "cw_fuzz"}"#).expect("creds");
        let (s, _) = Settings::load(d, true, &EnvLayer::default()).expect("settings");
        cyberwave_edge::drivers::settings::launch_context(&s, "fuzz")
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(v) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let raw_twins: Vec<Value> = v
        .get("twins")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let (twins, _) = cyberwave_edge::twins::Twin::parse_all(&raw_twins);
    let assets: BTreeMap<String, Value> = v
        .get("assets")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|a| Some((a.get("uuid")?.as_str()?.to_string(), a.clone())))
        .collect();
    let linked: Vec<String> = twins.iter().map(|t| t.uuid.clone()).collect();
    // Camera pins as edge.json and cameras.json could hold them.
    let mut c = ctx().clone();
    c.cameras = cyberwave_edge::drivers::camera::CameraConfig::merge(v.get("edge"), v.get("cameras"));
    c.host_has_v4l = true;
    c.images.unknown_is_plain = true;
    for (image, labels) in v.get("images").and_then(Value::as_object).into_iter().flatten() {
        let labels: BTreeMap<String, String> = labels
            .as_object()
            .into_iter()
            .flatten()
            .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
            .collect();
        c.images.facts.insert(
            image.clone(),
            cyberwave_edge::drivers::spec::ImageFacts::Known(
                cyberwave_edge::containers::launch::ImageLook {
                    labels,
                    derived: BTreeMap::new(),
                },
            ),
        );
    }
    for plan in cyberwave_edge::drivers::spec::plan_twins(&twins, &assets, &linked, &c) {
        if let cyberwave_edge::drivers::spec::TwinOutcome::Containers(specs) = plan.outcome {
            for s in specs {
                let _ = s.create_argv(std::path::Path::new("/run/x.env"));
                let _ = s.env_file_text();
            }
        }
    }
    for (k, p) in v.as_object().into_iter().flatten() {
        let _ = cyberwave_edge::drivers::profile::services_of(k, p);
    }
});
