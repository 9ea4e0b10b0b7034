use std::collections::BTreeMap;

use serde_json::json;

use super::*;

#[test]
fn entries_are_rechecked_and_reduced() {
    let ok = normalize(
        &json!({"name": "plans", "port": 8765, "path": "/p/x", "service": "gateway",
        "audience": "lan", "description": "  Flight   plans ", "token": "leak"}),
    )
    .unwrap();
    assert_eq!(ok.name, "plans");
    assert_eq!(ok.description.as_deref(), Some("Flight plans"));
    assert_eq!(ok.service.as_deref(), Some("gateway"));
    #[rustfmt::skip]
    let refused = [
        json!({"name": "Plans", "port": 1}),
        json!({"name": "-x", "port": 1}),
        json!({"name": "x", "port": 0}),
        json!({"name": "x", "port": 70000}),
        json!({"name": "x", "port": "80"}),
        json!({"name": "x", "port": true}),
        json!({"name": "x", "port": 80, "path": "noslash"}),
        json!({"name": "x", "port": 80, "path": "//evil.example/"}),
        json!({"name": "x", "port": 80, "path": "/a?token=1"}),
        json!({"name": "x", "port": 80, "path": "/a/../b"}),
        json!({"name": "x", "port": 80, "path": "/a/.."}),
        json!({"name": "x", "port": 80, "path": "/<script>"}),
        json!({"name": "x", "port": 80, "audience": "host"}),
        json!({"name": "x", "port": 80, "scheme": "javascript"}),
        json!({"name": "x", "port": 80, "service": "Bad Service"}),
        json!("x"),
    ];
    for r in refused {
        assert_eq!(normalize(&r), None, "{r}");
    }
    let long =
        normalize(&json!({"name": "x", "port": 80, "description": "d".repeat(500)})).unwrap();
    assert_eq!(long.description.unwrap().len(), 200);
}

fn input(uuid: &str, name: &str, pages: serde_json::Value, running: &[(&str, &str)]) -> Input {
    Input {
        twin_uuid: uuid.into(),
        twin_name: name.into(),
        registry_id: Some("acme/drone".into()),
        local_http: pages,
        running: running
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
    }
}

#[test]
fn running_drivers_with_pages_are_listed_with_their_health() {
    let inputs = vec![
        input(
            "bbbbbbbb-1",
            "Zeta drone",
            json!([{"name": "plans", "port": 8765}]),
            &[("", "Up 3 minutes (healthy)")],
        ),
        input(
            "aaaaaaaa-1",
            "alpha arm",
            json!([
            {"name": "ui", "port": 80, "service": "gateway"},
            {"name": "ui", "port": 81},
            {"name": "moveit", "port": 8080, "service": "moveit"}]),
            &[("gateway", "Up 1 second (health: starting)")],
        ),
        input(
            "cccccccc-1",
            "stopped",
            json!([{"name": "x", "port": 1}]),
            &[],
        ),
        input("dddddddd-1", "no pages", json!(null), &[("", "Up")]),
    ];
    let l = build(&inputs);
    let names: Vec<&str> = l.iter().map(|d| d.twin_name.as_str()).collect();
    assert_eq!(names, ["alpha arm", "Zeta drone"]);
    let arm = &l[0];
    assert_eq!(arm.id, "aaaaaaaa");
    let pages: Vec<(&str, &str)> = arm
        .pages
        .iter()
        .map(|p| (p.name.as_str(), p.health))
        .collect();
    assert_eq!(pages, [("ui", "starting"), ("moveit", "stopped")]);
    assert_eq!(arm.health, "stopped");
    assert_eq!(l[1].health, "healthy");
}
