//! What a twin that cannot run says to the fleet (reference §2.5, §5.2): the same alert type,
//! severity, title and description as the original for the same condition, one row per
//! condition, raised by the real binary against the fake backend (and the real engine for
//! the image that cannot be pulled). Rows for conditions other tests drive (a crash loop,
//! a stopped container, a runtime error, a missing camera) assert the same words there.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::daemon::{Daemon, EdgeDir};
use crate::support::docker::{self as dk, Cleanup};
use crate::support::drivers::container;
use crate::support::*;

const SEC: Duration = Duration::from_secs(1);
const URL: &str = "https://docs.cyberwave.com";

struct Row {
    test: &'static str,
    /// The asset (none: the twin has no asset_uuid; `null`: the backend has no such asset).
    asset: Option<Value>,
    title: &'static str,
    description: fn(&str) -> String,
}

#[test]
fn every_twin_that_cannot_run_is_alerted_with_the_originals_words() {
    if !dk::available() {
        return;
    }
    let rows = [
        Row {
            test: "words_no_asset",
            asset: None,
            title: "Twin has no asset",
            description: |n| {
                format!(
                    "Twin '{n}' has no asset attached on the backend. The edge cannot spawn a driver for this twin until an asset is attached via the dashboard."
                )
            },
        },
        Row {
            test: "words_asset_gone",
            asset: Some(Value::Null),
            title: "Driver could not start: asset unavailable",
            description: |n| {
                format!(
                    "The edge could not load the asset for twin '{n}', so its driver was not started. The asset may have been deleted or is no longer accessible. Check the edge logs for details. Troubleshooting: {URL}"
                )
            },
        },
        Row {
            test: "words_no_drivers",
            asset: Some(json!({"metadata": {}})),
            title: "No drivers specified",
            description: |n| format!("No drivers specified in asset metadata for twin '{n}'"),
        },
        Row {
            test: "words_no_image",
            asset: Some(json!({"metadata": {"drivers": {"default": {"params": []}}}})),
            title: "No driver_docker_image in asset metadata",
            description: |n| format!("No driver_docker_image in asset metadata for twin '{n}'"),
        },
        Row {
            test: "words_topology",
            asset: Some(
                json!({"metadata": {"drivers": {"default": {"services": [{"name": "arm"}]}}}}),
            ),
            title: "Unusable declared topology",
            description: |n| {
                format!(
                    "Twin '{n}' declares a topology this edge cannot resolve: service 'arm' of driver 'default' has no \"image\". Troubleshooting: {URL}"
                )
            },
        },
        Row {
            test: "words_unpullable",
            asset: Some(
                json!({"metadata": {"drivers": {"default": {"docker_image": "registry.invalid/cyberwave/words:1.0", "privileged": false}}}}),
            ),
            title: "Driver image not available",
            description: |n| {
                format!(
                    "Driver image 'registry.invalid/cyberwave/words:1.0' could not be pulled for twin '{n}'. Troubleshooting: {URL}"
                )
            },
        },
    ];
    let backend = FakeBackend::start(TOKEN);
    let mut twins = Vec::new();
    let mut names = Vec::new();
    for r in &rows {
        let uuid = dk::twin_uuid(r.test);
        let asset_uuid = format!("a55e7{}", &uuid[5..]);
        let mut t = json!({"uuid": uuid, "name": format!("{} twin", r.test), "environment_uuid": ENV_UUID,
                           "metadata": {"edge_fingerprint": FINGERPRINT}});
        if let Some(a) = &r.asset {
            t["asset_uuid"] = json!(asset_uuid);
            if let Value::Object(_) = a {
                let mut a = a.clone();
                a["uuid"] = json!(asset_uuid);
                backend.add_asset(a);
            }
        }
        names.push(container(&uuid));
        twins.push(t);
    }
    let _c = Cleanup(names.clone());
    for n in &names {
        dk::rm(n);
    }
    backend.add_environment(ENV_UUID, twins);
    let broker = broker_for_token();
    let mut dir = EdgeDir::standard(&backend.url(), broker.port);
    dir.set_env("CYBERWAVE_DRIVER_RETRY_BASE_SECONDS", "30");
    let mut d = Daemon::start(&dir);
    let failures = || backend.alerts_of_type("driver_start_failure");
    assert!(
        wait_until(60 * SEC, || failures().len() >= rows.len()),
        "{:#?}\n{}",
        failures(),
        d.log()
    );
    std::thread::sleep(2 * SEC);
    let got = failures();
    for r in &rows {
        let uuid = dk::twin_uuid(r.test);
        let mine: Vec<&Value> = got
            .iter()
            .filter(|a| a["twin_uuid"] == json!(uuid))
            .collect();
        assert_eq!(mine.len(), 1, "{}: {mine:#?}", r.test);
        let a = mine[0];
        assert_eq!(a["alert_type"], json!("driver_start_failure"), "{}", r.test);
        assert_eq!(a["severity"], json!("error"), "{}", r.test);
        assert_eq!(a["source_type"], json!("edge"), "{}", r.test);
        assert_eq!(a["name"], json!(r.title), "{}", r.test);
        assert_eq!(
            a["description"],
            json!((r.description)(&format!("{} twin", r.test))),
            "{}",
            r.test
        );
    }
    assert_eq!(got.len(), rows.len(), "{got:#?}");
    d.terminate();
}
