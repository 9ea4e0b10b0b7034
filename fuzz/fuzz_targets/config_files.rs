//! Every config and state file reader of the edge core (credentials.json, environment.json,
//! fingerprint.json, edge.json, cameras.json, the desired-state cache) and the settings built over
//! credentials.json `envs` (every duration and number setting): any bytes, no panic.
#![no_main]
use std::path::PathBuf;
use std::sync::OnceLock;

use cyberwave_edge::config::{self, EnvLayer, Settings};
use libfuzzer_sys::fuzz_target;

fn dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        // Memory-backed when possible: every input is written as five files (and fsynced).
        let base = if std::path::Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        let d = base.join(format!("cw-fuzz-config-{}", std::process::id()));
        std::fs::create_dir_all(&d).expect("fuzz scratch dir");
        d
    })
}

fuzz_target!(|data: &[u8]| {
    let d = dir();
    for f in [
        "credentials.json",
        "environment.json",
        "fingerprint.json",
        "edge.json",
        "cameras.json",
        config::DESIRED_STATE_CACHE_FILE,
    ] {
        let _ = std::fs::write(d.join(f), data);
    }
    let _ = config::Credentials::load(&d.join("credentials.json"));
    let _ = config::EnvironmentFile::load(&d.join("environment.json"));
    let _ = config::edge_uuid(d);
    let _ = config::fingerprint::load_or_create(d, None, || "fuzz-host".into());
    let _ = cyberwave_edge::edge::desired::load(d, "6ba7b810-9dad-11d1-80b4-00c04fd430c8");
    let files = cyberwave_edge::drivers::camera::read(d, &Default::default());
    if let Some(c) = cyberwave_edge::drivers::camera::read(d, &files).config() {
        for t in c.twin_to_device.keys() {
            let _ = c.device_for(Some(t));
        }
        let _ = c.device_for(None);
    }
    if let Ok((s, _)) = Settings::load(d.clone(), true, &EnvLayer::default()) {
        let _ = cyberwave_edge::drivers::settings::driver_tuning(&s);
        let _ = cyberwave_edge::drivers::settings::launch_context(&s, "fuzz");
        let mut w = Vec::new();
        let _ = cyberwave_edge::worker::settings::tuning(&s, &mut w);
        let _ = cyberwave_edge::worker::settings::limits(&s.env, Some(4096), &mut w);
    }
});
