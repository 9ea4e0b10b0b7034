//! The edge core's MQTT command parser (edge command topic): any bytes, no panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = cyberwave_edge::edge::commands::parse(data);
});
