//! Planning a twin whose driver image's labels decide what runs (reference §5.5).

use base64::Engine as _;

use super::*;
use crate::drivers::spec::graph::ImageLook;

const G: &str = "22222222-2222-4333-8444-555555555555";
const AG: &str = "bbbbbbbb-0000-4000-8000-000000000001";
const IMAGE: &str = "reg.example/go2-driver:1.0";

fn twin(profile: Value) -> (Vec<Twin>, BTreeMap<String, Value>) {
    let twins = vec![json!({"uuid": G, "name": "go2", "asset_uuid": AG,
        "metadata": {"edge_fingerprint": "fp", "drivers": {"default": profile}}})];
    (
        typed(&twins),
        BTreeMap::from([(AG.to_string(), json!({"uuid": AG}))]),
    )
}

fn declaring(doc: &Value) -> ImageFacts {
    ImageFacts::Known(ImageLook {
        labels: BTreeMap::from([
            (
                crate::drivers::compose::SCHEMA_LABEL.to_string(),
                "2".to_string(),
            ),
            (
                "io.cyberwave.driver.compose.robot".to_string(),
                base64::engine::general_purpose::STANDARD.encode(doc.to_string()),
            ),
        ]),
        derived: BTreeMap::new(),
    })
}

fn plan(profile: Value, facts: Option<ImageFacts>) -> TwinOutcome {
    let (t, a) = twin(profile);
    let mut c = ctx();
    c.images.unknown_is_plain = false;
    if let Some(f) = facts {
        c.images.facts.insert(IMAGE.to_string(), f);
    }
    // The graphs' other images, looked at already (under `auto` their labels are read first:
    // `tokens.rs` covers that).
    for img in [
        "reg.example/app:1",
        "reg.example/router:1",
        "r/b:1",
        "r/n:1",
    ] {
        let img = crate::drivers::image::with_environment_tag(img, &c.environment);
        let plain = ImageFacts::Known(ImageLook::default());
        c.images.facts.entry(img).or_insert(plain);
    }
    plan_twins(&t, &a, &[G.to_string()], &c).remove(0).outcome
}

fn graph_doc() -> Value {
    json!({"services": {
        "app": {"image": "reg.example/app:1", "depends_on": {"router": {"condition": "service_healthy"}},
                "networks": {"net": null, "side": null}, "environment": {"MODE": "robot"}},
        "router": {"image": "reg.example/router:1", "network_mode": "host",
                   "healthcheck": {"test": ["CMD-SHELL", "true"], "interval": "1s"}}
    }, "networks": {"net": {"name": "cw-${CW_TWIN8}-net"}, "side": {"name": "cw-${CW_TWIN8}-side"}}})
}

#[test]
fn an_image_not_looked_at_yet_runs_nothing_until_its_labels_are_known() {
    let profile = json!({"docker_image": IMAGE, "privileged": false});
    let TwinOutcome::Discovering(spec) = plan(profile.clone(), None) else {
        panic!("not discovering")
    };
    assert_eq!(
        (spec.image.as_str(), spec.name.as_str()),
        (IMAGE, "cyberwave-driver-22222222")
    );
    let plain = plan(
        profile.clone(),
        Some(ImageFacts::Known(ImageLook::default())),
    );
    assert!(matches!(&plain, TwinOutcome::Containers(s) if s.len() == 1 && s[0].image == IMAGE));
    // Not fetched: launched as one container, whose launch pulls, retries and alerts.
    let gone = plan(
        profile,
        Some(ImageFacts::Unavailable("pull failed: 404".into())),
    );
    assert!(
        matches!(&gone, TwinOutcome::Containers(s) if s.len() == 1),
        "{gone:?}"
    );
}

#[test]
fn a_declared_graph_becomes_the_twins_services_with_their_links() {
    let profile = json!({"docker_image": IMAGE, "privileged": false,
        "shared_env": {"MODE": "ignored", "FPS": 10, "ON": true, "GONE": null}});
    let TwinOutcome::Containers(specs) = plan(profile, Some(declaring(&graph_doc()))) else {
        panic!("not a graph")
    };
    let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "cyberwave-driver-22222222-router",
            "cyberwave-driver-22222222-app"
        ]
    );
    let (router, app) = (&specs[0], &specs[1]);
    assert!(!router.options.contains(&"--privileged".to_string()));
    let j = router.options.join(" ");
    assert!(
        j.contains("--network host") && j.contains("--health-cmd true"),
        "{j}"
    );
    assert!(
        j.contains("io.cyberwave.edge.service=router")
            && j.contains(&format!("io.cyberwave.edge.twin={G}"))
    );
    assert_eq!(
        app.links.after,
        [crate::containers::spec::Gate {
            name: "cyberwave-driver-22222222-router".into(),
            healthy: true
        }]
    );
    assert_eq!(app.links.extra_networks, ["cw-22222222-side"]);
    let nets: Vec<&str> = app
        .links
        .resources
        .iter()
        .map(|r| r.name.as_str())
        .collect();
    assert_eq!(nets, ["cw-22222222-net", "cw-22222222-side"]);
    assert!(app.options.join(" ").contains("--network cw-22222222-net"));
    assert_eq!(
        app.env["MODE"], "robot",
        "the declaration wins over shared_env"
    );
    assert_eq!(
        (app.env["FPS"].as_str(), app.env["ON"].as_str()),
        ("10", "true")
    );
    assert!(!app.env.contains_key("GONE"));
    assert_ne!(router.spec_hash, app.spec_hash);
}

#[test]
fn an_unusable_graph_is_the_twins_problem_in_the_originals_words() {
    let mut doc = graph_doc();
    doc["services"]["router"]["privileged"] = json!(true);
    let out = plan(json!({"docker_image": IMAGE}), Some(declaring(&doc)));
    let TwinOutcome::Problem {
        title,
        detail,
        technical,
    } = out
    else {
        panic!("not refused")
    };
    assert_eq!(title, "Unusable declared topology");
    assert!(
        detail.starts_with(
            "Twin 'go2' declares a topology this edge cannot resolve: compose service \"router\""
        ),
        "{detail}"
    );
    assert!(technical.is_some_and(|t| t.contains("privileged")));
    let bad = plan(
        json!({"docker_image": IMAGE, "service_image_overrides": {"ghost": "x:1"}}),
        Some(declaring(&graph_doc())),
    );
    assert!(
        matches!(bad, TwinOutcome::Problem { title, .. } if title == "Unusable declared topology")
    );
}

#[test]
fn inline_services_get_the_same_start_order() {
    let profile = json!({"services": [
        {"name": "bridge", "image": "r/b:1", "privileged": false},
        {"name": "nav", "image": "r/n:1", "privileged": false, "depends_on": {"bridge": {"condition": "service_healthy"}}}
    ]});
    let TwinOutcome::Containers(specs) = plan(profile, None) else {
        panic!("inline services need no labels")
    };
    assert!(specs[0].links.after.is_empty());
    assert_eq!(
        specs[1].links.after[0].name,
        "cyberwave-driver-22222222-bridge"
    );
}

#[test]
fn a_driver_override_clears_params_before_their_env_names_are_judged() {
    let (t, a) = twin(json!({"docker_image": IMAGE, "params": ["-e", "BAD-NAME=1"]}));
    let mut c = ctx();
    c.driver_overrides
        .insert(G.into(), "mine/driver:local".into());
    let out = plan_twins(&t, &a, &[G.to_string()], &c).remove(0).outcome;
    assert!(
        matches!(&out, TwinOutcome::Containers(s) if s[0].image == "mine/driver:local"),
        "{out:?}"
    );
    let refused = plan_twins(&t, &a, &[G.to_string()], &ctx())
        .remove(0)
        .outcome;
    assert!(matches!(refused, TwinOutcome::Problem { title, .. }
        if title == "Invalid environment variable in driver metadata"));
}
