//! The cloud node's MQTT command parser and the oversized-command id reader: any bytes, no panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = cyberwave_edge::cloud_node::protocol::parse(data);
    let _ = cyberwave_edge::cloud_node::protocol::request_id_only(data);
});
