//! The cloud node's template lexer: any text, no panic; an accepted template's script keeps
//! no placeholder outside comments and here-documents that the shell could run as code.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = cyberwave_edge::cloud_node::template::compile(s);
    }
});
