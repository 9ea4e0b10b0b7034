//! Twin-scoped driver tokens (reference §2.2, §4.9, §5.8) on the real engine, a real Mosquitto
//! and the fake backend: under `auto` a driver image labelled
//! `com.cyberwave.driver-token.scoped` runs on a token minted for its twin and an unlabelled one
//! on the edge token; the edge token is nowhere in the scoped driver (env, mounts, `docker
//! inspect`, a search of everything it can read); the MQTT identity it gets is accepted by a
//! broker configured for the driver token and refused for anything else; `strict` without a
//! token alerts and starts nothing; tokens are renewed in place, replaced (the driver switched
//! gracefully) when the backend forgets them, kept past expiry while the backend is away; and a
//! kill -9 during a mint leaves a parseable cache.

use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::backend::TokenBehaviour;
use crate::support::daemon::{Daemon, EdgeDir};
use crate::support::docker::{self as dk, Cleanup, IMAGE};
use crate::support::*;

const SEC: Duration = Duration::from_secs(1);
const SCOPED_IMAGE: &str = "cyberwave-scoped-driver:local";

fn scoped_image() {
    dk::build(
        SCOPED_IMAGE,
        &format!("FROM {IMAGE}\nLABEL com.cyberwave.driver-token.scoped=true\n"),
    );
}

/// A backend whose environment links `twins` (uuid, image) to this edge.
fn backend_with(twins: &[(&str, &str)]) -> FakeBackend {
    let b = FakeBackend::start(TOKEN);
    let list = twins
        .iter()
        .map(|(uuid, image)| {
            let asset = format!("a55e7{}", &uuid[5..]);
            b.add_asset(json!({"uuid": asset, "metadata": {"drivers": {"default": {
                "docker_image": image, "privileged": false}}}}));
            json!({"uuid": uuid, "name": format!("twin {}", &uuid[..8]), "asset_uuid": asset,
                   "environment_uuid": ENV_UUID, "metadata": {"edge_fingerprint": FINGERPRINT}})
        })
        .collect();
    b.add_environment(ENV_UUID, list);
    b
}

fn name(twin: &str) -> String {
    format!("cyberwave-driver-{}", &twin[..8])
}

fn running(n: &str) -> bool {
    dk::inspect(n).is_some_and(|i| i["State"]["Status"] == json!("running"))
}

fn env_var(n: &str, key: &str) -> Option<String> {
    dk::env_of(n)
        .into_iter()
        .find_map(|e| e.strip_prefix(&format!("{key}=")).map(str::to_string))
}

fn credential(dir: &EdgeDir, n: &str) -> Value {
    dir.status().1["drivers"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["name"] == json!(n))
        .map(|c| c["credential"].clone())
        .unwrap_or(Value::Null)
}

/// Every file the container can read under `/app` and its process environment, searched for
/// `needle` with a busybox copied in (the driver image has no grep): the paths that hold it.
fn readable_in(container: &str, needle: &str) -> String {
    let cp = Command::new("docker")
        .args(["cp", "/bin/busybox", &format!("{container}:/tmp/busybox")])
        .output()
        .unwrap();
    assert!(
        cp.status.success(),
        "{}",
        String::from_utf8_lossy(&cp.stderr)
    );
    let out = Command::new("docker")
        .args(["exec", container, "/tmp/busybox", "sh", "-c"])
        .arg(format!(
            "/tmp/busybox grep -rl -- '{needle}' /app /proc/1/environ 2>/dev/null; \
             /tmp/busybox ls -la /app/.cyberwave /app/.cyberwave/driver_tokens /app/.cyberwave/run >&2"
        ))
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        listing.contains("credentials.json"),
        "the config dir is not visible: {listing}"
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Whether a broker on `port` lets `user`/`pass` connect and publish (mosquitto_pub, 5 s).
fn broker_accepts(port: u16, user: &str, pass: &str) -> bool {
    Command::new("timeout")
        .args(["5", "mosquitto_pub", "-h", "127.0.0.1", "-p"])
        .arg(port.to_string())
        .args([
            "-u",
            user,
            "-P",
            pass,
            "-t",
            "cyberwave/test",
            "-m",
            "x",
            "-q",
            "1",
        ])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn auto_scopes_a_labelled_driver_hides_the_edge_token_and_leaves_the_others_alone() {
    if !dk::available() {
        return;
    }
    dk::ensure_image();
    scoped_image();
    let (scoped, plain) = (dk::twin_uuid("token_scoped"), dk::twin_uuid("token_legacy"));
    let (sn, pn) = (name(&scoped), name(&plain));
    let _c = Cleanup(vec![sn.clone(), pn.clone()]);
    dk::rm(&sn);
    dk::rm(&pn);
    let backend = backend_with(&[(&scoped, SCOPED_IMAGE), (&plain, IMAGE)]);
    let broker = broker_for_token();
    let dir = EdgeDir::standard(&backend.url(), broker.port);
    // An operator's setting that holds the edge token: forwarded to drivers (CYBERWAVE_*).
    dir.write_credentials(
        TOKEN,
        &[
            ("CYBERWAVE_BASE_URL", &backend.url()),
            ("CYBERWAVE_MQTT_PORT", &broker.port.to_string()),
            ("CYBERWAVE_ENVIRONMENT", "dev"),
            ("CYBERWAVE_ROBOT_CLOUD_KEY", TOKEN),
            ("CYBERWAVE_AUDIO_RATE", "48000"),
        ],
    );
    let d = Daemon::start(&dir);
    assert!(
        wait_until(60 * SEC, || running(&sn) && running(&pn)),
        "drivers not up\n{}",
        d.log()
    );

    // One mint, for the labelled driver's twin, with the original's body.
    let mints = backend.requests_to("POST", &format!("/api/v1/twins/{scoped}/driver-token"));
    assert_eq!(mints.len(), 1, "{mints:?}");
    let fp = cyberwave_edge::sha256_hex(FINGERPRINT.as_bytes());
    assert_eq!(
        mints[0].body,
        json!({"child_twin_uuids": [], "edge_fingerprint": format!("fp-{}", &fp[..32])})
    );
    assert!(
        backend
            .requests()
            .iter()
            .all(|r| !r.path.contains(&format!("{plain}/driver-token")))
    );
    let driver_token = backend.driver_tokens().remove(0);

    // The scoped driver: its own token and broker identity, the edge token nowhere.
    let user = format!(
        "cwh_{}",
        cyberwave_edge::sha256_hex(driver_token.as_bytes())
    );
    assert_eq!(
        env_var(&sn, "CYBERWAVE_API_KEY").as_deref(),
        Some(driver_token.as_str())
    );
    assert_eq!(
        env_var(&sn, "CYBERWAVE_MQTT_USERNAME").as_deref(),
        Some(user.as_str())
    );
    assert_eq!(
        env_var(&sn, "CYBERWAVE_MQTT_PASSWORD").as_deref(),
        Some(driver_token.as_str())
    );
    assert_eq!(env_var(&sn, "CYBERWAVE_ROBOT_CLOUD_KEY"), None);
    assert_eq!(
        env_var(&pn, "CYBERWAVE_ROBOT_CLOUD_KEY").as_deref(),
        Some(TOKEN)
    );
    let inspect = dk::inspect(&sn).unwrap().to_string();
    assert!(
        !inspect.contains(TOKEN),
        "docker inspect shows the edge token"
    );
    assert_eq!(
        readable_in(&sn, TOKEN),
        "",
        "the scoped driver can read the edge token"
    );
    // …and cannot read its own cached token through the config dir either.
    assert_eq!(readable_in(&sn, &driver_token), "/proc/1/environ");

    // No launch left an env file behind (they hold the edge token of a legacy driver).
    let leftovers: Vec<_> = std::fs::read_dir(dir.path.join("run"))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "env"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // The unlabelled driver keeps the edge token (legacy), as in the original.
    assert_eq!(env_var(&pn, "CYBERWAVE_API_KEY").as_deref(), Some(TOKEN));

    // The cache: the original's fields and modes.
    let cache_dir = dir.path.join("driver_tokens");
    let file = cache_dir.join(format!("{scoped}.json"));
    let cached: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(cached["token"], json!(driver_token));
    assert_eq!(cached["twin_uuid"], json!(scoped));
    assert_eq!(
        cached["edge_token_sha256"],
        json!(cyberwave_edge::sha256_hex(TOKEN.as_bytes()))
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!((mode(&cache_dir), mode(&file)), (0o700, 0o600));
    assert_eq!(
        mode(&dir.path.join("driver_credentials.public.json")),
        0o644
    );

    // status: scoped with its expiry, legacy for the other; never a token.
    let c = credential(&dir, &sn);
    assert_eq!(c["mode"], json!("scoped"), "{c}");
    assert!(
        c["expires_at"].is_string() && c["expired"] == json!(false),
        "{c}"
    );
    assert_eq!(credential(&dir, &pn)["mode"], json!("legacy"));
    let human =
        String::from_utf8_lossy(&dir.command(&["status"]).output().unwrap().stdout).to_string();
    let json_status = dir.status().1.to_string();
    for out in [&human, &json_status] {
        assert!(
            !out.contains(&driver_token) && !out.contains(TOKEN),
            "{out}"
        );
    }
    assert!(human.contains("credential: twin-scoped token"), "{human}");

    // A broker configured for the driver token accepts exactly the identity the driver got.
    let driver_broker = Broker::start(&[(user.as_str(), driver_token.as_str())]);
    assert!(broker_accepts(driver_broker.port, &user, &driver_token));
    let edge_user = cyberwave_edge::mqtt::username_for_token(TOKEN);
    assert!(!broker_accepts(driver_broker.port, &edge_user, TOKEN));
    assert!(!broker_accepts(driver_broker.port, &user, TOKEN));
    assert!(!broker_accepts(
        driver_broker.port,
        "mqttcyb",
        &driver_token
    ));
    drop(d);
}

#[test]
fn strict_without_a_token_alerts_and_starts_nothing_scoped_falls_back() {
    if !dk::available() {
        return;
    }
    dk::ensure_image();
    let twin = dk::twin_uuid("token_strict");
    let n = name(&twin);
    let _c = Cleanup(vec![n.clone()]);
    dk::rm(&n);
    let backend = backend_with(&[(&twin, IMAGE)]);
    backend.set_token_behaviour(TokenBehaviour::Unsupported);
    let broker = broker_for_token();
    let mut dir = EdgeDir::standard(&backend.url(), broker.port);
    dir.set_env("CYBERWAVE_EDGE_DRIVER_TOKEN_MODE", "strict");
    let mut d = Daemon::start(&dir);
    let alerted = wait_until(30 * SEC, || {
        backend
            .alerts_of_type("driver_start_failure")
            .iter()
            .any(|a| a["name"] == json!("Driver token unavailable"))
    });
    assert!(alerted, "no alert\n{}", d.log());
    let a = backend.alerts_of_type("driver_start_failure").remove(0);
    assert!(
        a["description"]
            .as_str()
            .is_some_and(|t| t.contains("CYBERWAVE_EDGE_DRIVER_TOKEN_MODE=strict forbids")),
        "{a}"
    );
    std::thread::sleep(3 * SEC);
    assert!(dk::inspect(&n).is_none(), "strict started a driver");
    d.terminate();

    // `scoped`: the same backend gives the edge token as the fallback, and status says why.
    dir.set_env("CYBERWAVE_EDGE_DRIVER_TOKEN_MODE", "scoped");
    let d = Daemon::start(&dir);
    assert!(wait_until(60 * SEC, || running(&n)), "{}", d.log());
    assert_eq!(env_var(&n, "CYBERWAVE_API_KEY").as_deref(), Some(TOKEN));
    let c = credential(&dir, &n);
    assert_eq!(c["mode"], json!("legacy"));
    assert_eq!(
        c["fallback"],
        json!("backend does not support driver tokens")
    );
}

#[test]
fn tokens_are_renewed_in_place_replaced_gracefully_and_kept_while_the_backend_is_away() {
    if !dk::available() {
        return;
    }
    dk::ensure_image();
    let twin = dk::twin_uuid("token_renew");
    let n = name(&twin);
    let _c = Cleanup(vec![n.clone()]);
    dk::rm(&n);
    let backend = backend_with(&[(&twin, IMAGE)]);
    backend.set_token_lifetime(Duration::from_secs(6));
    let broker = broker_for_token();
    let mut dir = EdgeDir::standard(&backend.url(), broker.port);
    dir.set_env("CYBERWAVE_EDGE_DRIVER_TOKEN_MODE", "scoped");
    // Renew when less than ~4 s are left; look every second.
    dir.set_env("CYBERWAVE_EDGE_DRIVER_TOKEN_REFRESH_DAYS", "0.00005");
    dir.set_env("CYBERWAVE_EDGE_DRIVER_TOKEN_RENEW_CHECK_SECONDS", "1");
    let d = Daemon::start(&dir);
    assert!(wait_until(60 * SEC, || running(&n)), "{}", d.log());
    let first = backend.driver_tokens().remove(0);
    let id = dk::id_of(&n);
    // Renewed (same secret, longer lease): the driver runs on, untouched.
    let renewed = wait_until(20 * SEC, || {
        backend
            .requests()
            .iter()
            .any(|r| r.path.ends_with("/renew") && r.path.contains(&twin))
    });
    assert!(renewed, "no renewal\n{}", d.log());
    std::thread::sleep(3 * SEC);
    assert_eq!(dk::id_of(&n), id, "a renewal recreated the driver");
    assert_eq!(env_var(&n, "CYBERWAVE_API_KEY"), Some(first.clone()));

    // The backend is away past the token's expiry: the driver keeps running on it.
    backend.set_offline(true);
    let (_, s) = dir.wait_status(20 * SEC, |_, s| {
        let c = &s["drivers"]["containers"][0]["credential"];
        c["expired"] == json!(true)
            && c["renewal_failing"]
                .as_str()
                .is_some_and(|f| f.contains("kept until"))
    });
    let c = &s["drivers"]["containers"][0]["credential"];
    assert_eq!(c["expired"], json!(true), "{s}");
    assert!(
        c["renewal_failing"]
            .as_str()
            .is_some_and(|f| f.contains("kept until the backend answers")),
        "{c}"
    );
    assert_eq!(dk::id_of(&n), id, "the driver was stopped while offline");
    // Back: renewed, not expired, same driver.
    backend.set_offline(false);
    let (_, s) = dir.wait_status(20 * SEC, |_, s| {
        s["drivers"]["containers"][0]["credential"]["expired"] == json!(false)
    });
    assert_eq!(
        s["drivers"]["containers"][0]["credential"]["expired"],
        json!(false),
        "{s}\n{}",
        d.log()
    );
    assert_eq!(dk::id_of(&n), id);

    // The backend forgets the token (410 on renew): a new one is minted and the driver is
    // switched to it with its graceful stop.
    let events = dk::Events::watch(&[&n]);
    backend.revoke_driver_tokens();
    let switched = wait_until(30 * SEC, || {
        env_var(&n, "CYBERWAVE_API_KEY").is_some_and(|k| k != first) && running(&n)
    });
    assert!(switched, "not switched to a new token\n{}", d.log());
    assert_eq!(
        env_var(&n, "CYBERWAVE_API_KEY"),
        backend.driver_tokens().last().cloned()
    );
    events.assert_graceful(&id, "the driver on a revoked token");
}

#[test]
fn a_kill_during_a_mint_leaves_a_parseable_cache() {
    if !dk::available() {
        return;
    }
    dk::ensure_image();
    let twin = dk::twin_uuid("token_kill");
    let n = name(&twin);
    let _c = Cleanup(vec![n.clone()]);
    dk::rm(&n);
    let backend = backend_with(&[(&twin, IMAGE)]);
    let broker = broker_for_token();
    let mut dir = EdgeDir::standard(&backend.url(), broker.port);
    dir.set_env("CYBERWAVE_EDGE_DRIVER_TOKEN_MODE", "scoped");
    let file = dir.path.join("driver_tokens").join(format!("{twin}.json"));
    for round in 0..5u64 {
        // A token the backend no longer knows, so each start renews (410) and mints.
        let _ = std::fs::remove_file(&file);
        backend.revoke_driver_tokens();
        let before = backend
            .requests_to("POST", &format!("/api/v1/twins/{twin}/driver-token"))
            .len();
        let mut d = Daemon::start(&dir);
        let minted = wait_until(30 * SEC, || {
            backend
                .requests_to("POST", &format!("/api/v1/twins/{twin}/driver-token"))
                .len()
                > before
        });
        assert!(minted, "no mint\n{}", d.log());
        // At the moment the answer is being written, give or take.
        std::thread::sleep(Duration::from_millis(round * 3));
        d.signal(libc::SIGKILL);
        let _ = d.wait_exit(5 * SEC);
        if let Ok(text) = std::fs::read_to_string(&file) {
            let v: Value = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("round {round}: a torn cache file ({e}): {text:?}"));
            assert!(v["token"].is_string() && v["uuid"].is_string(), "{v}");
        }
    }
    // The next start runs on what is cached (or mints), and the driver comes up.
    let d = Daemon::start(&dir);
    assert!(wait_until(60 * SEC, || running(&n)), "{}", d.log());
}
