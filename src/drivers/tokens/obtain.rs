//! Minting and renewing driver tokens, on the backend-jobs thread (reference §2.2, §8.1 step
//! 12). The supervisor sends the twins that run scoped ([`TokenNeed`]); each new one is
//! resolved at once (the cache first, then renew or mint, each call within the token timeout)
//! and every `_RENEW_CHECK_SECONDS` the tokens are looked at again. What changed goes back as
//! [`TokenFacts`]. Unlike the original, a twin left on the edge token because no token could be
//! minted, or on a token whose renewal failed, is tried again within a minute (the original
//! waited for the driver's next launch), and an expired token is kept while the backend does not
//! answer instead of handing the driver the edge token.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::{CachedToken, TokenFacts, TokenNeed, TokenSettings, cache, edge_rotation_key};
use crate::backend::{Backend, Minted, TokenCallError};

/// How soon a twin without a good token is tried again (at most the renew check period).
const RETRY_EVERY: Duration = Duration::from_secs(60);

/// The two backend calls, so the decisions can be tested without a backend.
pub trait TokenApi {
    fn mint(
        &self,
        need: &TokenNeed,
        edge_key: &str,
        deadline: Duration,
    ) -> Result<Minted, TokenCallError>;
    fn renew(
        &self,
        twin: &str,
        uuid: &str,
        deadline: Duration,
    ) -> Result<Option<String>, TokenCallError>;
    fn base_url(&self) -> &str;
    fn edge_token(&self) -> &str;
}

impl TokenApi for Backend {
    fn mint(&self, need: &TokenNeed, key: &str, d: Duration) -> Result<Minted, TokenCallError> {
        self.mint_driver_token(&need.twin, &need.children, key, d)
    }
    fn renew(&self, twin: &str, uuid: &str, d: Duration) -> Result<Option<String>, TokenCallError> {
        self.renew_driver_token(twin, uuid, d)
    }
    fn base_url(&self) -> &str {
        Backend::base_url(self)
    }
    fn edge_token(&self) -> &str {
        self.token().expose()
    }
}

pub struct Obtainer {
    config_dir: PathBuf,
    settings: TokenSettings,
    edge_key: String,
    /// The twins that run scoped, with their children.
    needs: BTreeMap<String, TokenNeed>,
    /// What the supervisor was told, per twin.
    told: BTreeMap<String, TokenFacts>,
    next_check: Option<Instant>,
    warned_unsupported: bool,
}

impl Obtainer {
    pub fn new(config_dir: PathBuf, settings: TokenSettings, fingerprint: &str) -> Self {
        Obtainer {
            config_dir,
            settings,
            edge_key: edge_rotation_key(fingerprint),
            needs: BTreeMap::new(),
            told: BTreeMap::new(),
            next_check: None,
            warned_unsupported: false,
        }
    }

    /// The twins that run scoped now: new ones (or ones whose children changed) are resolved
    /// at once; returns what changed.
    pub fn set_needs(
        &mut self,
        needs: Vec<TokenNeed>,
        api: &dyn TokenApi,
        now: f64,
    ) -> Vec<(String, TokenFacts)> {
        let needs: BTreeMap<String, TokenNeed> =
            needs.into_iter().map(|n| (n.twin.clone(), n)).collect();
        let fresh: Vec<TokenNeed> = needs
            .values()
            .filter(|n| self.needs.get(&n.twin) != Some(n) || !self.told.contains_key(&n.twin))
            .cloned()
            .collect();
        self.told.retain(|t, _| needs.contains_key(t));
        self.needs = needs;
        if self.next_check.is_none() && !self.needs.is_empty() {
            self.next_check = Some(Instant::now() + self.settings.renew_check_every);
        }
        fresh
            .iter()
            .filter_map(|n| self.resolve_and_tell(n, api, now))
            .collect()
    }

    /// New settings or another edge token (SIGHUP): every twin is resolved again.
    pub fn reset(&mut self, settings: TokenSettings) {
        self.settings = settings;
        self.told.clear();
        self.next_check = Some(Instant::now());
    }

    /// When the tokens are next looked at (`None`: no twin runs scoped).
    pub fn due(&self) -> Option<Instant> {
        self.next_check.filter(|_| !self.needs.is_empty())
    }

    /// The periodic look: tokens close to expiry renewed, twins without a good token tried
    /// again. Returns what changed.
    pub fn check(&mut self, api: &dyn TokenApi, now: f64) -> Vec<(String, TokenFacts)> {
        let due: Vec<TokenNeed> = self
            .needs
            .values()
            .filter(|n| match self.told.get(&n.twin) {
                Some(TokenFacts::Held {
                    token,
                    failing: None,
                }) => super::renewal_due(token, now, self.settings.refresh_before),
                _ => true,
            })
            .cloned()
            .collect();
        let changed = due
            .iter()
            .filter_map(|n| self.resolve_and_tell(n, api, now))
            .collect();
        let troubled = self.told.values().any(facts_troubled);
        let every = self.settings.renew_check_every;
        let next = if troubled {
            every.min(RETRY_EVERY)
        } else {
            every
        };
        self.next_check = Some(Instant::now() + next);
        changed
    }

    fn resolve_and_tell(
        &mut self,
        need: &TokenNeed,
        api: &dyn TokenApi,
        now: f64,
    ) -> Option<(String, TokenFacts)> {
        let facts = self.resolve(need, api, now);
        if let TokenFacts::Unobtainable {
            unsupported: true, ..
        } = &facts
            && !std::mem::replace(&mut self.warned_unsupported, true)
        {
            log::warn!("Backend has no driver-token endpoint (HTTP 404)");
        }
        if self.told.get(&need.twin) == Some(&facts) {
            return None;
        }
        self.told.insert(need.twin.clone(), facts.clone());
        if facts_troubled(&facts)
            && self
                .next_check
                .is_none_or(|n| n > Instant::now() + RETRY_EVERY)
        {
            self.next_check =
                Some(Instant::now() + RETRY_EVERY.min(self.settings.renew_check_every));
        }
        Some((need.twin.clone(), facts))
    }

    /// The original's `resolve_driver_credential`: a cached token of this context is used
    /// while it has more than the refresh margin left, renewed when not; a token the backend no
    /// longer knows is dropped and one is minted.
    fn resolve(&self, need: &TokenNeed, api: &dyn TokenApi, now: f64) -> TokenFacts {
        let (base, edge) = (api.base_url(), api.edge_token());
        let deadline = self.settings.timeout;
        let twin = short(&need.twin);
        let cached = cache::load(&self.config_dir, &need.twin)
            .filter(|t| t.matches(base, edge, &need.children));
        let mut kept = None;
        if let Some(mut c) = cached {
            if !super::renewal_due(&c, now, self.settings.refresh_before) {
                return TokenFacts::Held {
                    token: c,
                    failing: None,
                };
            }
            match api.renew(&need.twin, &c.uuid, deadline) {
                Ok(expires_at) => {
                    c.expires_at = expires_at;
                    self.store(&need.twin, &c);
                    log::info!("driver token {} for {twin} renewed", short(&c.uuid));
                    return TokenFacts::Held {
                        token: c,
                        failing: None,
                    };
                }
                Err(TokenCallError::NotRenewable) => {
                    log::info!("Cached driver token for {twin} is no longer valid");
                    cache::remove(&self.config_dir, &need.twin);
                }
                Err(e) => match c.expires_epoch() {
                    Some(at) if at > now => {
                        let why = format!("could not renew ({e}); using it until it expires");
                        log::warn!("driver token for {twin}: {why}");
                        return TokenFacts::Held {
                            token: c,
                            failing: Some(why),
                        };
                    }
                    _ => kept = Some((c, e)),
                },
            }
        }
        match api.mint(need, &self.edge_key, deadline) {
            Ok(m) => {
                let token = CachedToken {
                    token: m.token,
                    uuid: m.uuid,
                    expires_at: m.expires_at,
                    twin_uuid: need.twin.clone(),
                    child_twin_uuids: need.children.clone(),
                    base_url: base.trim_end_matches('/').to_string(),
                    edge_token_sha256: crate::sha256_hex(edge.as_bytes()),
                };
                self.store(&need.twin, &token);
                log::info!(
                    "Using twin-scoped driver token {} for {twin} (expires {})",
                    short(&token.uuid),
                    token.expires_at.as_deref().unwrap_or("never")
                );
                TokenFacts::Held {
                    token,
                    failing: None,
                }
            }
            Err(e) => match kept {
                // Expired and the backend does not answer: the driver keeps it until it does.
                Some((token, renew_error)) => {
                    let why = format!(
                        "expired; not renewed ({renew_error}) nor replaced ({e}); kept until the backend answers"
                    );
                    log::warn!("driver token for {twin}: {why}");
                    TokenFacts::Held {
                        token,
                        failing: Some(why),
                    }
                }
                None => {
                    log::warn!("No twin-scoped driver token for {twin}: {e}");
                    TokenFacts::Unobtainable {
                        unsupported: e == TokenCallError::Unsupported,
                        reason: e.to_string(),
                    }
                }
            },
        }
    }

    fn store(&self, twin: &str, token: &CachedToken) {
        if let Err(e) = cache::write(&self.config_dir, twin, token) {
            log::warn!("Could not cache driver token for {}: {e}", short(twin));
        }
    }
}

fn facts_troubled(f: &TokenFacts) -> bool {
    matches!(
        f,
        TokenFacts::Held {
            failing: Some(_),
            ..
        } | TokenFacts::Unobtainable {
            unsupported: false,
            ..
        }
    )
}

fn short(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}

#[cfg(test)]
#[path = "obtain_tests.rs"]
mod tests;
