//! `cyberwave.yml` parsing (depth guard + three shapes): any text, no panic, no hang.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = cyberwave_edge::cloud_node::manifest::parse(s);
    }
});
