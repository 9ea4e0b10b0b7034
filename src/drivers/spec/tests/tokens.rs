//! Planning drivers on twin-scoped tokens (reference §5.8 "scoped credential hardening").

use super::*;
use crate::drivers::spec::graph::ImageLook;
use crate::drivers::tokens::{CachedToken, Mode, TokenFacts};

const S: &str = "33333333-2222-4333-8444-555555555555";
const AS: &str = "cccccccc-0000-4000-8000-000000000001";
const SCOPED_IMG: &str = "reg.example/guardian:1";
const PLAIN_IMG: &str = "reg.example/plain:1";
const DRIVER_TOKEN: &str = "cw_driver_scoped_token";

fn twin(profile: Value) -> (Vec<Twin>, BTreeMap<String, Value>) {
    let twins = vec![json!({"uuid": S, "name": "guardian", "asset_uuid": AS,
        "metadata": {"edge_fingerprint": "fp", "drivers": {"default": profile}}})];
    (
        typed(&twins),
        BTreeMap::from([(AS.to_string(), json!({"uuid": AS}))]),
    )
}

fn context(mode: Mode, facts: Option<TokenFacts>) -> LaunchContext {
    let mut c = ctx();
    c.images.unknown_is_plain = false;
    c.tokens.settings.mode = mode;
    let labelled = ImageLook {
        labels: BTreeMap::from([(
            crate::drivers::tokens::SCOPED_LABEL.to_string(),
            "true".to_string(),
        )]),
        derived: BTreeMap::new(),
    };
    let tag = |i: &str| crate::drivers::image::with_environment_tag(i, &c.environment);
    let (scoped, plain) = (tag(SCOPED_IMG), tag(PLAIN_IMG));
    c.images.facts.insert(scoped, ImageFacts::Known(labelled));
    c.images
        .facts
        .insert(plain, ImageFacts::Known(ImageLook::default()));
    if let Some(f) = facts {
        c.tokens.facts.insert(S.to_string(), f);
    }
    c
}

fn held(c: &LaunchContext) -> TokenFacts {
    TokenFacts::Held {
        token: CachedToken {
            token: DRIVER_TOKEN.into(),
            uuid: "tok-uuid-1".into(),
            expires_at: Some("2030-01-01T00:00:00Z".into()),
            twin_uuid: S.into(),
            child_twin_uuids: vec![],
            base_url: c.base_url.trim_end_matches('/').into(),
            edge_token_sha256: crate::sha256_hex(c.token.expose().as_bytes()),
        },
        failing: None,
    }
}

fn unobtainable() -> TokenFacts {
    TokenFacts::Unobtainable {
        reason: "backend does not support driver tokens".into(),
        unsupported: true,
    }
}

fn plan(c: &LaunchContext, image: &str) -> TwinPlan {
    let (t, a) = twin(json!({"docker_image": image, "privileged": false,
        "params": ["-e", format!("LEAKY={}", c.token.expose())]}));
    plan_twins(&t, &a, &[S.to_string()], c).remove(0)
}

#[test]
fn auto_runs_a_labelled_image_scoped_and_an_unlabelled_one_on_the_edge_token() {
    let base = context(Mode::Auto, None);
    let c = context(Mode::Auto, Some(held(&base)));
    let p = plan(&c, SCOPED_IMG);
    let TwinOutcome::Containers(specs) = &p.outcome else {
        panic!("{:?}", p.outcome)
    };
    let s = &specs[0];
    let edge = c.token.expose();
    assert_eq!(s.env["CYBERWAVE_API_KEY"], DRIVER_TOKEN);
    assert_eq!(s.env["CYBERWAVE_MQTT_PASSWORD"], DRIVER_TOKEN);
    assert!(s.env["CYBERWAVE_MQTT_USERNAME"].starts_with("cwh_"));
    assert!(
        !s.env.contains_key("LEAKY"),
        "a variable holding the edge token is removed"
    );
    assert!(s.env.values().chain(&s.options).all(|v| !v.contains(edge)));
    assert!(
        !s.env_file_text().contains(edge),
        "the env file holds the edge token"
    );
    assert!(
        s.options
            .iter()
            .any(|o| o.ends_with(":/app/.cyberwave/credentials.json:ro"))
    );
    assert!(
        s.options
            .iter()
            .any(|o| o == "/app/.cyberwave/driver_tokens:ro,size=64k")
    );
    assert_eq!(p.token.as_ref().map(|n| n.twin.as_str()), Some(S));

    let p = plan(&c, PLAIN_IMG);
    let TwinOutcome::Containers(specs) = &p.outcome else {
        panic!("{:?}", p.outcome)
    };
    assert_eq!(specs[0].env["CYBERWAVE_API_KEY"], edge);
    assert!(!specs[0].options.iter().any(|o| o.contains("driver_tokens")));
    assert_eq!(p.token, None, "a legacy twin needs no token");
}

#[test]
fn a_scoped_twin_waits_for_its_first_answer_then_strict_refuses_and_scoped_falls_back() {
    let c = context(Mode::Scoped, None);
    let p = plan(&c, PLAIN_IMG);
    assert_eq!(p.outcome, TwinOutcome::AwaitingToken);
    assert!(p.token.is_some());

    let c = context(Mode::Strict, Some(unobtainable()));
    let p = plan(&c, PLAIN_IMG);
    let TwinOutcome::Problem {
        title,
        detail,
        technical,
    } = &p.outcome
    else {
        panic!("{:?}", p.outcome)
    };
    assert_eq!(title, "Driver token unavailable");
    assert!(detail.contains("CYBERWAVE_EDGE_DRIVER_TOKEN_MODE=strict forbids"));
    assert_eq!(
        technical.as_deref(),
        Some("backend does not support driver tokens")
    );
    assert!(p.token.is_some(), "asked for again later");

    let c = context(Mode::Scoped, Some(unobtainable()));
    let p = plan(&c, PLAIN_IMG);
    let TwinOutcome::Containers(specs) = &p.outcome else {
        panic!("{:?}", p.outcome)
    };
    assert_eq!(specs[0].env["CYBERWAVE_API_KEY"], c.token.expose());
    assert!(p.token.is_some(), "the fallback is retried");
}

#[test]
fn a_new_token_is_a_new_spec_and_the_hash_holds_no_secret() {
    let base = context(Mode::Scoped, None);
    let c1 = context(Mode::Scoped, Some(held(&base)));
    let mut c2 = c1.clone();
    if let Some(TokenFacts::Held { token, .. }) = c2.tokens.facts.get_mut(S) {
        token.token = "cw_driver_other".into();
    }
    let spec = |c: &LaunchContext| match plan(c, PLAIN_IMG).outcome {
        TwinOutcome::Containers(s) => s[0].clone(),
        o => panic!("{o:?}"),
    };
    let (a, b) = (spec(&c1), spec(&c2));
    assert_ne!(a.spec_hash, b.spec_hash);
    // A renewal (same secret, new expiry) keeps the spec: the driver runs on.
    let mut c3 = c1.clone();
    if let Some(TokenFacts::Held { token, .. }) = c3.tokens.facts.get_mut(S) {
        token.expires_at = Some("2031-01-01T00:00:00Z".into());
    }
    assert_eq!(spec(&c3).spec_hash, a.spec_hash);
}

#[test]
fn under_auto_an_inline_services_image_is_looked_at_before_it_runs() {
    let c = context(Mode::Auto, None);
    let (t, a) = twin(json!({"services": [
        {"name": "one", "image": "reg.example/unknown:1", "privileged": false}
    ]}));
    let out = plan_twins(&t, &a, &[S.to_string()], &c).remove(0).outcome;
    assert!(
        matches!(&out, TwinOutcome::Discovering(s) if s.image.contains("unknown")),
        "{out:?}"
    );
    let mut legacy = c.clone();
    legacy.tokens.settings.mode = Mode::Legacy;
    let out = plan_twins(&t, &a, &[S.to_string()], &legacy)
        .remove(0)
        .outcome;
    assert!(
        matches!(out, TwinOutcome::Containers(_)),
        "legacy needs no labels"
    );
}
