//! The fake backend's driver-token endpoints (reference §2.2): mint a token scoped to a twin
//! (with a lifetime the test sets), renew it (410 once revoked, 404 when unknown), or answer
//! as a backend without the endpoint (404) or a failing one (503).

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use serde_json::{Value, json};

use super::FakeBackend;

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TokenBehaviour {
    Mint,
    /// A backend that predates the endpoint.
    Unsupported,
}

pub(super) struct Tokens {
    behaviour: TokenBehaviour,
    lifetime: Duration,
    issued: u32,
    /// Token uuid → (twin, secret, revoked).
    tokens: BTreeMap<String, (String, String, bool)>,
}

impl Default for Tokens {
    fn default() -> Self {
        Tokens {
            behaviour: TokenBehaviour::Mint,
            lifetime: Duration::from_secs(30 * 86_400),
            issued: 0,
            tokens: BTreeMap::new(),
        }
    }
}

fn expires_in(d: Duration) -> String {
    humantime::format_rfc3339_seconds(SystemTime::now() + d)
        .to_string()
        .replace('Z', "+00:00")
}

impl FakeBackend {
    pub fn set_token_behaviour(&self, b: TokenBehaviour) {
        self.inner.lock().unwrap().driver_tokens.behaviour = b;
    }

    /// Tokens minted or renewed from now on expire this long after.
    pub fn set_token_lifetime(&self, d: Duration) {
        self.inner.lock().unwrap().driver_tokens.lifetime = d;
    }

    /// The secret of every token minted, in order.
    pub fn driver_tokens(&self) -> Vec<String> {
        let g = self.inner.lock().unwrap();
        let mut v: Vec<(&String, &(String, String, bool))> =
            g.driver_tokens.tokens.iter().collect();
        v.sort_by_key(|(uuid, _)| uuid.to_string());
        v.into_iter().map(|(_, t)| t.1.clone()).collect()
    }

    /// The backend forgets every token it minted (a renew then answers 410).
    pub fn revoke_driver_tokens(&self) {
        for t in self.inner.lock().unwrap().driver_tokens.tokens.values_mut() {
            t.2 = true;
        }
    }
}

/// `rest`: the path after `/api/v1/twins/{twin}/driver-token`.
pub(super) fn route(t: &mut Tokens, method: &str, twin: &str, rest: &[&str]) -> (u16, Value) {
    match t.behaviour {
        TokenBehaviour::Unsupported => return (404, json!({"detail": "Not found."})),
        TokenBehaviour::Mint => {}
    }
    match (method, rest) {
        ("POST", []) => {
            t.issued += 1;
            let uuid = format!("dt{:06}-0000-4000-8000-{:012}", t.issued, t.issued);
            let secret = format!("cw_driver_{}_{}", t.issued, &twin[..8]);
            t.tokens
                .insert(uuid.clone(), (twin.to_string(), secret.clone(), false));
            (
                201,
                json!({"token": secret, "uuid": uuid, "expires_at": expires_in(t.lifetime)}),
            )
        }
        ("POST", [uuid, "renew"]) => match t.tokens.get(*uuid) {
            Some((owner, _, false)) if owner == twin => (
                200,
                json!({"uuid": uuid, "expires_at": expires_in(t.lifetime)}),
            ),
            Some((_, _, true)) => (410, json!({"detail": "Token revoked."})),
            _ => (404, json!({"detail": "Not found."})),
        },
        _ => (405, json!({"detail": "Method not allowed."})),
    }
}
