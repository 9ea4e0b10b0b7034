use std::collections::BTreeMap;

use super::*;

const EDGE: &str = "cw_edge_token_0123456789";
const BASE: &str = "http://backend";

fn token(children: &[&str]) -> CachedToken {
    CachedToken {
        token: "cw_driver_abc".into(),
        uuid: "11111111-2222".into(),
        expires_at: Some("2030-01-01T00:00:00Z".into()),
        twin_uuid: "t1".into(),
        child_twin_uuids: children.iter().map(|c| c.to_string()).collect(),
        base_url: BASE.into(),
        edge_token_sha256: crate::sha256_hex(EDGE.as_bytes()),
    }
}

fn tokens(mode: Mode, facts: Option<TokenFacts>) -> DriverTokens {
    DriverTokens {
        settings: TokenSettings {
            mode,
            ..Default::default()
        },
        facts: facts.into_iter().map(|f| ("t1".to_string(), f)).collect(),
    }
}

fn held(t: CachedToken) -> Option<TokenFacts> {
    Some(TokenFacts::Held {
        token: t,
        failing: None,
    })
}

fn unobtainable() -> Option<TokenFacts> {
    Some(TokenFacts::Unobtainable {
        reason: "backend does not support driver tokens".into(),
        unsupported: true,
    })
}

#[test]
fn modes_choose_the_credential_as_the_original() {
    let need = TokenNeed::new("t1", &[]);
    let edge = Credential::Edge { fallback: None };
    let fallback = Credential::Edge {
        fallback: Some("backend does not support driver tokens".into()),
    };
    let refused = Credential::Refused("backend does not support driver tokens".into());
    let scoped = Credential::Scoped(token(&[]));
    // (mode, image opts in, facts, expected)
    let rows: Vec<(Mode, bool, Option<TokenFacts>, Credential)> = vec![
        (Mode::Legacy, true, held(token(&[])), edge.clone()),
        (Mode::Auto, false, held(token(&[])), edge.clone()),
        (Mode::Auto, true, held(token(&[])), scoped.clone()),
        (Mode::Auto, true, None, Credential::Awaiting),
        (Mode::Scoped, false, held(token(&[])), scoped.clone()),
        (Mode::Scoped, false, unobtainable(), fallback),
        (Mode::Strict, false, unobtainable(), refused),
        (Mode::Strict, false, held(token(&[])), scoped),
        // A token minted for other children is not this twin's any more.
        (
            Mode::Strict,
            false,
            held(token(&["c9"])),
            Credential::Awaiting,
        ),
    ];
    for (i, (mode, opts_in, facts, want)) in rows.into_iter().enumerate() {
        let got = tokens(mode, facts).credential(&need, opts_in, BASE, EDGE);
        assert_eq!(got, want, "row {i}");
    }
}

#[test]
fn a_token_of_another_edge_token_or_backend_is_not_reused() {
    let t = token(&["c1", "c2"]);
    assert!(t.matches("http://backend/", EDGE, &["c1".into(), "c2".into()]));
    assert!(!t.matches(BASE, "cw_other_edge_token", &["c1".into(), "c2".into()]));
    assert!(!t.matches("http://elsewhere", EDGE, &["c1".into(), "c2".into()]));
    assert!(!t.matches(BASE, EDGE, &["c1".into()]));
}

#[test]
fn needs_are_sorted_deduplicated_and_leave_the_twin_out() {
    let n = TokenNeed::new(
        "t1",
        &[
            "c2".into(),
            " c1 ".into(),
            "t1".into(),
            "c2".into(),
            "".into(),
        ],
    );
    assert_eq!(n.children, ["c1", "c2"]);
}

#[test]
fn hardening_removes_the_edge_token_everywhere_and_pins_the_broker_identity() {
    let mut env: BTreeMap<String, String> = [
        ("CYBERWAVE_API_KEY", EDGE),
        ("CYBERWAVE_MQTT_PASSWORD", EDGE),
        ("SOME_DRIVER_VAR", EDGE),
        ("CYBERWAVE_MQTT_USERNAME", "mqttcyb"),
        ("CYBERWAVE_TWIN_UUID", "t1"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    harden(&mut env, "cw_driver_abc", EDGE);
    assert!(env.values().all(|v| v != EDGE), "{env:?}");
    assert!(!env.contains_key("SOME_DRIVER_VAR"));
    let user = format!("cwh_{}", crate::sha256_hex(b"cw_driver_abc"));
    assert_eq!(env["CYBERWAVE_API_KEY"], "cw_driver_abc");
    assert_eq!(env["CYBERWAVE_MQTT_USERNAME"], user);
    assert_eq!(env["CYBERWAVE_MQTT_USER"], user);
    assert_eq!(env["CYBERWAVE_MQTT_PASSWORD"], "cw_driver_abc");
    assert_eq!(env["CYBERWAVE_MQTT_API_TOKEN"], "cw_driver_abc");
    assert_eq!(env["CYBERWAVE_TWIN_UUID"], "t1");
}

#[test]
fn the_sdk_username_and_the_rotation_key() {
    // Python: "cwh_" + hashlib.sha256(b"cw_abc").hexdigest()
    assert_eq!(
        mqtt_username("cw_abc"),
        "cwh_a9a662a565ab7b0cfdb7609f7ad91d6f569b9d58ab8d7b30f6584c0e3417439a"
    );
    let key = edge_rotation_key("my-fingerprint");
    assert_eq!(key.len(), 3 + 32);
    assert_eq!(&key[3..], &crate::sha256_hex(b"my-fingerprint")[..32]);
    assert_eq!(edge_rotation_key(""), "");
}

#[test]
fn timestamps_as_the_backend_writes_them() {
    let z = parse_timestamp("2030-01-01T00:00:00Z").unwrap();
    assert_eq!(z, 1_893_456_000.0);
    let rows = [
        ("2030-01-01T00:00:00+00:00", Some(z)),
        ("2030-01-01T02:00:00+02:00", Some(z)),
        ("2029-12-31T19:00:00-05:00", Some(z)),
        ("2030-01-01T00:00:00", Some(z)),
        ("2030-01-01T00:00:00.500000+00:00", Some(z + 0.5)),
        ("2030-01-01", None),
        ("tomorrow", None),
        ("", None),
    ];
    for (s, want) in rows {
        assert_eq!(parse_timestamp(s), want, "{s}");
    }
}

#[test]
fn renewal_is_due_inside_the_refresh_margin_or_without_a_readable_expiry() {
    let week = std::time::Duration::from_secs(7 * 86_400);
    let t = token(&[]);
    let at = t.expires_epoch().unwrap();
    assert!(!renewal_due(&t, at - 8.0 * 86_400.0, week));
    assert!(renewal_due(&t, at - 6.0 * 86_400.0, week));
    assert!(renewal_due(&t, at + 1.0, week));
    let mut none = t.clone();
    none.expires_at = Some("soon".into());
    assert!(renewal_due(&none, 0.0, week));
}

#[test]
fn settings_from_the_environment() {
    let env = |pairs: &[(&str, &str)]| {
        crate::config::EnvLayer::new(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            Default::default(),
        )
    };
    let mut w = Vec::new();
    let s = TokenSettings::from_env(&env(&[]), &mut w);
    assert_eq!(s, TokenSettings::default());
    let s = TokenSettings::from_env(
        &env(&[
            (MODE_ENV, " STRICT "),
            ("CYBERWAVE_EDGE_DRIVER_TOKEN_REFRESH_DAYS", "1"),
            ("CYBERWAVE_EDGE_DRIVER_TOKEN_RENEW_CHECK_SECONDS", "2"),
            ("CYBERWAVE_EDGE_DRIVER_TOKEN_TIMEOUT_S", "0.5"),
        ]),
        &mut w,
    );
    assert_eq!(s.mode, Mode::Strict);
    assert_eq!(s.refresh_before.as_secs(), 86_400);
    assert_eq!(s.renew_check_every.as_secs(), 2);
    assert_eq!(s.timeout.as_millis(), 500);
    assert!(w.is_empty(), "{w:?}");
    let s = TokenSettings::from_env(
        &env(&[
            (MODE_ENV, "paranoid"),
            ("CYBERWAVE_EDGE_DRIVER_TOKEN_REFRESH_DAYS", "-1"),
            ("CYBERWAVE_EDGE_DRIVER_TOKEN_TIMEOUT_S", "nan"),
        ]),
        &mut w,
    );
    assert_eq!(s, TokenSettings::default());
    assert_eq!(w.len(), 3, "{w:?}");
}

#[test]
fn the_mask_hides_credentials_the_token_cache_env_files_and_the_relay_credential() {
    assert_eq!(
        mask_options("/etc/cyberwave"),
        [
            "-v",
            "/etc/cyberwave/driver_credentials.public.json:/app/.cyberwave/credentials.json:ro",
            "--tmpfs",
            "/app/.cyberwave/driver_tokens:ro,size=64k",
            "--tmpfs",
            "/app/.cyberwave/run:ro,size=64k",
            "--tmpfs",
            "/app/.cyberwave/remote-access:ro,size=64k",
        ]
    );
    // The directories as their owners name them.
    assert_eq!(MASKED_DIRS[2], crate::remote_access::files::DIR);
    let env_file = crate::containers::launch::env_file_path(std::path::Path::new("/c"), "x");
    assert!(env_file.starts_with(format!("/c/{}", MASKED_DIRS[1])));
}
