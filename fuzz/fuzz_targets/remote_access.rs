//! Remote access and the local portal on hostile backend answers and twin metadata: a relay
//! credential → the frpc config (never a line more than the template: no value can inject a
//! key), and `local_http` lists → the portal's JSON and page (no value becomes markup).
#![no_main]
use cyberwave_edge::remote_access::frpc::{Credential, render};
use cyberwave_edge::remote_access::portal::{Input, listing, page};
use cyberwave_edge::remote_access::settings::Relay;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    if let Ok(c) = Credential::parse(&v) {
        for (relay, ca) in [("relay.example.com", false), ("127.0.0.1", false), ("127.0.0.1", true)] {
            let relay = Relay { host: relay.into(), port: 443 };
            let text = render("5e551001-0000-4000-8000-000000000001", &c, &relay, ca);
            let lines = text.lines().count();
            assert!(lines == 16 || lines == 18, "{lines} lines:\n{text}");
            assert_eq!(text.matches("[[proxies]]").count(), 1);
        }
    }
    let input = Input {
        twin_uuid: "aaaaaaaa-0000-4000-8000-000000000001".into(),
        twin_name: v.get("name").and_then(|n| n.as_str()).unwrap_or("<x>").into(),
        registry_id: None,
        local_http: v.get("local_http").cloned().unwrap_or(v.clone()),
        running: [(String::new(), "Up".to_string())].into(),
    };
    let drivers = listing::build(&[input]);
    let doc = page::document(&drivers, "192.168.1.5", "t");
    let html = page::html(&doc);
    assert!(!html.contains("<script"), "{html}");
    for href in html.split("href=").skip(1) {
        assert!(
            ["'http://192.168.1.5:", "'https://192.168.1.5:", "/portal.json>"]
                .iter()
                .any(|p| href.starts_with(p)),
            "{href}"
        );
    }
});
