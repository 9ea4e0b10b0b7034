use std::cell::RefCell;
use std::time::Duration;

use super::*;
use crate::drivers::tokens::{CachedToken, TokenFacts, TokenNeed, TokenSettings};

const EDGE: &str = "cw_edge_token_0123456789";
const BASE: &str = "http://backend";
const NOW: f64 = 1_800_000_000.0;
const DAY: f64 = 86_400.0;

/// A backend whose answers the test sets, recording every call.
struct Fake {
    mint: RefCell<Vec<Result<Minted, TokenCallError>>>,
    renew: RefCell<Vec<Result<Option<String>, TokenCallError>>>,
    calls: RefCell<Vec<String>>,
}

impl Fake {
    fn new() -> Self {
        Fake {
            mint: RefCell::new(Vec::new()),
            renew: RefCell::new(Vec::new()),
            calls: RefCell::new(Vec::new()),
        }
    }
    fn mints(self, a: Result<Minted, TokenCallError>) -> Self {
        self.mint.borrow_mut().push(a);
        self
    }
    fn renews(self, a: Result<Option<String>, TokenCallError>) -> Self {
        self.renew.borrow_mut().push(a);
        self
    }
    fn calls(&self) -> Vec<String> {
        self.calls.borrow().clone()
    }
}

impl TokenApi for Fake {
    fn mint(&self, need: &TokenNeed, key: &str, _: Duration) -> Result<Minted, TokenCallError> {
        self.calls.borrow_mut().push(format!(
            "mint {} {:?} {}",
            need.twin,
            need.children,
            &key[..3]
        ));
        self.mint.borrow_mut().remove(0)
    }
    fn renew(&self, twin: &str, uuid: &str, _: Duration) -> Result<Option<String>, TokenCallError> {
        self.calls.borrow_mut().push(format!("renew {twin} {uuid}"));
        self.renew.borrow_mut().remove(0)
    }
    fn base_url(&self) -> &str {
        BASE
    }
    fn edge_token(&self) -> &str {
        EDGE
    }
}

fn iso(epoch: f64) -> String {
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + Duration::from_secs_f64(epoch))
        .to_string()
}

fn minted(token: &str, expires: f64) -> Result<Minted, TokenCallError> {
    Ok(Minted {
        token: token.into(),
        uuid: format!("uuid-{token}"),
        expires_at: Some(iso(expires)),
    })
}

fn cached(expires: f64) -> CachedToken {
    CachedToken {
        token: "cw_cached".into(),
        uuid: "uuid-cached".into(),
        expires_at: Some(iso(expires)),
        twin_uuid: "t1".into(),
        child_twin_uuids: vec![],
        base_url: BASE.into(),
        edge_token_sha256: crate::sha256_hex(EDGE.as_bytes()),
    }
}

fn obtainer(dir: &std::path::Path) -> Obtainer {
    Obtainer::new(dir.to_path_buf(), TokenSettings::default(), "fingerprint")
}

fn need() -> Vec<TokenNeed> {
    vec![TokenNeed::new("t1", &["c1".into()])]
}

fn held_token(f: &[(String, TokenFacts)]) -> (String, Option<String>) {
    match &f[0].1 {
        TokenFacts::Held { token, failing } => (token.token.clone(), failing.clone()),
        other => panic!("not held: {other:?}"),
    }
}

#[test]
fn a_new_twin_is_minted_and_cached_then_reused_without_a_call() {
    let d = tempfile::tempdir().unwrap();
    let api = Fake::new().mints(minted("cw_new", NOW + 30.0 * DAY));
    let mut o = obtainer(d.path());
    let told = o.set_needs(need(), &api, NOW);
    assert_eq!(held_token(&told), ("cw_new".into(), None));
    assert_eq!(api.calls(), ["mint t1 [\"c1\"] fp-"]);
    let file = cache::load(d.path(), "t1").unwrap();
    assert_eq!(file.child_twin_uuids, ["c1"]);
    assert_eq!(file.edge_token_sha256, crate::sha256_hex(EDGE.as_bytes()));
    // Another process (a restart) reads the cache: no call.
    let api2 = Fake::new();
    let told = obtainer(d.path()).set_needs(need(), &api2, NOW);
    assert_eq!(held_token(&told).0, "cw_new");
    assert!(api2.calls().is_empty());
    // The same need again tells nothing new.
    assert!(o.set_needs(need(), &api, NOW).is_empty());
}

#[test]
fn a_token_inside_the_margin_is_renewed_keeping_its_secret() {
    let d = tempfile::tempdir().unwrap();
    cache::write(d.path(), "t1", &cached(NOW + 2.0 * DAY)).unwrap();
    let api = Fake::new().renews(Ok(Some(iso(NOW + 60.0 * DAY))));
    let told = obtainer(d.path()).set_needs(vec![TokenNeed::new("t1", &[])], &api, NOW);
    assert_eq!(held_token(&told), ("cw_cached".into(), None));
    assert_eq!(api.calls(), ["renew t1 uuid-cached"]);
    let file = cache::load(d.path(), "t1").unwrap();
    assert_eq!(file.expires_at, Some(iso(NOW + 60.0 * DAY)));
}

#[test]
fn a_token_the_backend_forgot_is_dropped_and_replaced() {
    let d = tempfile::tempdir().unwrap();
    cache::write(d.path(), "t1", &cached(NOW + DAY)).unwrap();
    let api = Fake::new()
        .renews(Err(TokenCallError::NotRenewable))
        .mints(minted("cw_fresh", NOW + 30.0 * DAY));
    let told = obtainer(d.path()).set_needs(vec![TokenNeed::new("t1", &[])], &api, NOW);
    assert_eq!(held_token(&told).0, "cw_fresh");
    assert_eq!(api.calls().len(), 2);
    assert_eq!(cache::load(d.path(), "t1").unwrap().token, "cw_fresh");
}

#[test]
fn an_offline_backend_keeps_a_valid_token_and_an_expired_one() {
    let d = tempfile::tempdir().unwrap();
    let offline = || TokenCallError::Failed("offline".into());
    cache::write(d.path(), "t1", &cached(NOW + DAY)).unwrap();
    let api = Fake::new().renews(Err(offline()));
    let told = obtainer(d.path()).set_needs(vec![TokenNeed::new("t1", &[])], &api, NOW);
    let (t, failing) = held_token(&told);
    assert_eq!(t, "cw_cached");
    assert!(failing.unwrap().contains("using it until it expires"));
    // Expired: the original handed the driver the edge token; we keep the driver's.
    cache::write(d.path(), "t1", &cached(NOW - DAY)).unwrap();
    let api = Fake::new().renews(Err(offline())).mints(Err(offline()));
    let told = obtainer(d.path()).set_needs(vec![TokenNeed::new("t1", &[])], &api, NOW);
    let (t, failing) = held_token(&told);
    assert_eq!(t, "cw_cached");
    assert!(failing.unwrap().contains("kept until the backend answers"));
}

#[test]
fn the_periodic_check_renews_and_retries_and_tells_only_changes() {
    let d = tempfile::tempdir().unwrap();
    let api = Fake::new()
        .mints(Err(TokenCallError::Failed("HTTP 503".into())))
        .mints(minted("cw_later", NOW + 30.0 * DAY))
        .renews(Ok(Some(iso(NOW + 90.0 * DAY))));
    let mut o = obtainer(d.path());
    let told = o.set_needs(vec![TokenNeed::new("t1", &[])], &api, NOW);
    assert!(matches!(
        told[0].1,
        TokenFacts::Unobtainable {
            unsupported: false,
            ..
        }
    ));
    // Troubled: looked at again within a minute, not an hour.
    assert!(o.due().unwrap() <= std::time::Instant::now() + Duration::from_secs(60));
    let told = o.check(&api, NOW);
    assert_eq!(held_token(&told).0, "cw_later");
    // Healthy: the next look is the renew period away; nothing is due yet.
    assert!(o.due().unwrap() > std::time::Instant::now() + Duration::from_secs(3000));
    assert!(o.check(&api, NOW + DAY).is_empty());
    // Inside the margin: renewed (same secret, new expiry: told).
    let told = o.check(&api, NOW + 25.0 * DAY);
    assert_eq!(held_token(&told).0, "cw_later");
    assert_eq!(api.calls().len(), 3);
}

#[test]
fn a_backend_without_the_endpoint_is_unsupported() {
    let d = tempfile::tempdir().unwrap();
    let api = Fake::new().mints(Err(TokenCallError::Unsupported));
    let told = obtainer(d.path()).set_needs(vec![TokenNeed::new("t1", &[])], &api, NOW);
    assert_eq!(
        told[0].1,
        TokenFacts::Unobtainable {
            reason: "backend does not support driver tokens".into(),
            unsupported: true
        }
    );
}

#[test]
fn a_token_of_another_edge_token_is_not_reused() {
    let d = tempfile::tempdir().unwrap();
    let mut other = cached(NOW + 30.0 * DAY);
    other.edge_token_sha256 = crate::sha256_hex(b"cw_previous_edge_token");
    cache::write(d.path(), "t1", &other).unwrap();
    let api = Fake::new().mints(minted("cw_for_this_edge", NOW + 30.0 * DAY));
    let told = obtainer(d.path()).set_needs(vec![TokenNeed::new("t1", &[])], &api, NOW);
    assert_eq!(held_token(&told).0, "cw_for_this_edge");
}
