//! §2.6: after a host-facts upload, the twins the backend binds to this edge get the
//! "Network interfaces: …" line on their `driverlog` — once per change of the addresses.

use std::time::Duration;

use serde_json::Value;

use crate::support::*;

const SEC: Duration = Duration::from_secs(1);

/// This host's interfaces with an IPv4 address, as the line lists them (from `ip -4 -o addr`).
fn host_line() -> String {
    let out = std::process::Command::new("ip")
        .args(["-4", "-o", "addr", "show"])
        .output()
        .unwrap();
    let mut parts = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for l in String::from_utf8_lossy(&out.stdout).lines() {
        let f: Vec<&str> = l.split_whitespace().collect();
        let (Some(name), Some(addr)) = (f.get(1), f.get(3)) else {
            continue;
        };
        if *name == "lo" || !seen.insert(name.to_string()) {
            continue;
        }
        parts.push((
            name.to_string(),
            addr.split('/').next().unwrap_or("").to_string(),
        ));
    }
    parts.sort();
    parts
        .iter()
        .map(|(n, a)| format!("{n}={a}"))
        .collect::<Vec<_>>()
        .join(",")
}

#[test]
fn bound_twins_get_the_network_interfaces_line_once() {
    let backend = backend_with_twins();
    let broker = broker_for_token();
    let dir = EdgeDir::standard(&backend.url(), broker.port);
    let sub = broker.subscribe("devcyberwave/twin/+/driverlog");
    let d = Daemon::start(&dir);
    let (topic, p) = sub
        .wait_for(20 * SEC, |_, p| {
            p["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("Network interfaces: "))
        })
        .unwrap_or_else(|| panic!("no network line\n{}", d.log()));
    // TWIN_A is bound by the driver rule: the backend's discover answer lists it.
    assert_eq!(topic, format!("devcyberwave/twin/{TWIN_A}/driverlog"));
    assert_eq!(p["container_name"], "network");
    assert_eq!(p["type"], "driver_log");
    let msg = p["message"].as_str().unwrap();
    // Every addressed interface of this host, with its address (the order is the host's).
    let mut listed: Vec<String> = msg
        .trim_start_matches("Network interfaces: ")
        .split(", ")
        .map(|e| e.split(' ').next().unwrap_or("").to_string())
        .collect();
    listed.sort();
    assert_eq!(listed.join(","), host_line(), "{msg}");
    // The same line once on stderr, verbatim.
    assert!(d.log().lines().any(|l| l == msg), "{}", d.log());
    // Nothing changed: the next upload (SIGHUP re-validates and uploads again) does not
    // repeat it.
    let uploads = || backend.requests_to("POST", "/api/v1/edges/discover").len();
    let before = uploads();
    d.signal(libc::SIGHUP);
    assert!(wait_until(20 * SEC, || uploads() > before), "{}", d.log());
    let again: Vec<(String, Value)> = sub.collect(2 * SEC);
    assert!(
        !again.iter().any(|(_, p)| p["container_name"] == "network"),
        "{again:?}"
    );
}
