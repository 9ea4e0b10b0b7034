//! The worker files' model-id scan (`workers/*.py`) and `workers/cyberwave.yml` `models:`:
//! any text, no panic, bounded output.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let ids = cyberwave_edge::models::discover::ids_in_source(&text);
    assert!(ids.len() <= text.len());
    let _ = cyberwave_edge::models::discover::ids_in_manifest(&text);
});
