use std::collections::{BTreeMap, HashMap};

use super::*;

fn env(pairs: &[(&str, &str)]) -> EnvLayer {
    let p: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    EnvLayer::new(p, BTreeMap::new())
}

fn get<'a>(list: &'a [(&'static str, String)], k: &str) -> Option<&'a str> {
    list.iter().find(|(n, _)| *n == k).map(|(_, v)| v.as_str())
}

#[test]
fn defaults_are_the_originals() {
    let s = BusSettings::from_env(&env(&[]));
    assert_eq!(s.backend, "zenoh");
    assert_eq!(s.router, Router::Off);
    let d = s.driver_env();
    assert_eq!(
        d,
        vec![
            ("CYBERWAVE_DATA_BACKEND", "zenoh".to_string()),
            ("ZENOH_SHARED_MEMORY", "false".to_string())
        ]
    );
    let w = s.worker_env();
    assert_eq!(get(&w, "ZENOH_LISTEN"), Some("tcp/0.0.0.0:7447"));
    assert_eq!(
        s.diagnostics()["mode"],
        "peer-to-peer (multicast discovery, no router)"
    );
    assert!(s.warnings.is_empty());
}

#[test]
fn a_mode_the_sdk_refuses_is_reported_not_injected() {
    for bad in ["router", "Routr", "p2p", "1"] {
        let s = BusSettings::from_env(&env(&[("ZENOH_MODE", bad)]));
        assert_eq!(s.mode, None, "{bad}");
        assert!(get(&s.driver_env(), "ZENOH_MODE").is_none());
        assert!(get(&s.worker_env(), "ZENOH_MODE").is_none());
        assert_eq!(s.warnings.len(), 1, "{bad}");
        assert!(
            s.diagnostics()["warnings"][0]
                .as_str()
                .unwrap()
                .contains("not peer or client")
        );
    }
    let s = BusSettings::from_env(&env(&[("ZENOH_MODE", "Client")]));
    assert_eq!(get(&s.driver_env(), "ZENOH_MODE"), Some("client"));
}

#[test]
fn bad_endpoints_are_dropped_good_ones_kept() {
    let s = BusSettings::from_env(&env(&[(
        "ZENOH_CONNECT",
        "tcp/10.0.0.1:7447, nonsense ,udp/1.2.3.4:7447,http/x,tcp/",
    )]));
    assert_eq!(s.connect, vec!["tcp/10.0.0.1:7447", "udp/1.2.3.4:7447"]);
    assert_eq!(s.warnings.len(), 3, "{:?}", s.warnings);
    assert_eq!(
        get(&s.driver_env(), "ZENOH_CONNECT"),
        Some("tcp/10.0.0.1:7447,udp/1.2.3.4:7447")
    );
    assert_eq!(
        s.diagnostics()["mode"],
        "router-connected (endpoints: tcp/10.0.0.1:7447, udp/1.2.3.4:7447)"
    );
}

#[test]
fn routers_point_containers_at_themselves() {
    let s = BusSettings::from_env(&env(&[("ZENOH_ROUTER_ENABLED", "true")]));
    assert_eq!(
        s.router,
        Router::Container {
            image: DEFAULT_ROUTER_IMAGE.into(),
            port: 7447
        }
    );
    assert_eq!(
        get(&s.driver_env(), "ZENOH_CONNECT"),
        Some("tcp/127.0.0.1:7447")
    );
    // The router holds 7447 on the host network: the worker does not listen there too.
    assert_eq!(get(&s.worker_env(), "ZENOH_LISTEN"), None);
    assert_eq!(
        s.diagnostics()["mode"],
        "router-managed (router-connected (endpoints: tcp/127.0.0.1:7447))"
    );
    let s = BusSettings::from_env(&env(&[
        ("ZENOH_ROUTER_ENABLED", "1"),
        ("ZENOH_ROUTER_PORT", "17447"),
        ("ZENOH_ROUTER_IMAGE", "--privileged"),
    ]));
    assert_eq!(
        s.router,
        Router::Container {
            image: DEFAULT_ROUTER_IMAGE.into(),
            port: 17447
        }
    );
    assert_eq!(s.warnings.len(), 1);
    assert_eq!(
        get(&s.worker_env(), "ZENOH_LISTEN"),
        Some("tcp/0.0.0.0:7447")
    );
    // An explicit ZENOH_CONNECT wins over our router's endpoint.
    let s = BusSettings::from_env(&env(&[
        ("ZENOH_ROUTER_ENABLED", "yes"),
        ("ZENOH_CONNECT", "tcp/10.1.1.1:7447"),
    ]));
    assert_eq!(
        get(&s.driver_env(), "ZENOH_CONNECT"),
        Some("tcp/10.1.1.1:7447")
    );
    for bad_port in ["0", "70000", "x"] {
        let s = BusSettings::from_env(&env(&[
            ("ZENOH_ROUTER_ENABLED", "true"),
            ("ZENOH_ROUTER_PORT", bad_port),
        ]));
        assert_eq!(s.router_port(), Some(7447), "{bad_port}");
    }
}

#[test]
fn the_embedded_router_needs_no_enable_flag() {
    let s = BusSettings::from_env(&env(&[
        ("ZENOH_ROUTER_MODE", "embedded"),
        ("ZENOH_ROUTER_PORT", "17448"),
    ]));
    if cfg!(feature = "zenoh") {
        assert_eq!(s.router, Router::Embedded { port: 17448 });
        assert_eq!(s.diagnostics()["router"]["kind"], "embedded");
    } else {
        assert_eq!(s.router, Router::Off);
        assert_eq!(s.warnings.len(), 1);
    }
}

#[test]
fn another_backend_gets_only_its_name() {
    let s = BusSettings::from_env(&env(&[
        ("CYBERWAVE_DATA_BACKEND", "filesystem"),
        ("ZENOH_CONNECT", "tcp/1.1.1.1:7447"),
    ]));
    assert_eq!(
        s.driver_env(),
        vec![("CYBERWAVE_DATA_BACKEND", "filesystem".to_string())]
    );
    assert_eq!(
        s.diagnostics()["mode"],
        "filesystem (CYBERWAVE_DATA_BACKEND='filesystem')"
    );
    assert_eq!(
        router_container_name(None),
        "cyberwave-zenoh-router-default"
    );
    assert_eq!(
        router_container_name(Some("6ba7b810-9dad-11d1-80b4-00c04fd430c8")),
        "cyberwave-zenoh-router-6ba7b810"
    );
}

#[test]
fn huge_or_malformed_connect_values_give_a_few_bounded_warnings() {
    let mut w = Vec::new();
    let ok = connect_endpoints("tcp/10.0.0.1:7447, bogus ,udp/x:1", &mut w);
    assert_eq!(ok, ["tcp/10.0.0.1:7447", "udp/x:1"]);
    assert_eq!(w.len(), 1, "{w:?}");

    // 100 KB of malformed endpoints: one line, not 50,000.
    let mut w = Vec::new();
    let huge = "x,".repeat(50_000);
    assert!(connect_endpoints(&huge, &mut w).is_empty());
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(w[0].contains("100000 bytes"), "{w:?}");

    // Under the size cap, many bad ones: three named, the rest counted.
    let mut w = Vec::new();
    let many = "x,".repeat(1000);
    assert!(connect_endpoints(&many, &mut w).is_empty());
    assert_eq!(w.len(), 4, "{w:?}");
    assert!(w[3].contains("997 more malformed"), "{w:?}");

    // Too many valid ones: the first 32 go on.
    let mut w = Vec::new();
    let valid: Vec<String> = (0..40).map(|i| format!("tcp/10.0.0.{i}:7447")).collect();
    let ok = connect_endpoints(&valid.join(","), &mut w);
    assert_eq!(ok.len(), MAX_CONNECT_ENDPOINTS);
    assert!(w[0].contains("names 40 endpoints"), "{w:?}");

    // Through the settings, a huge ZENOH_MODE is clipped in its warning too.
    let s = BusSettings::from_env(&env(&[("ZENOH_MODE", &"r".repeat(1 << 20))]));
    let total: usize = s.warnings.iter().map(String::len).sum();
    assert!(total < 1000, "{total}");
}
