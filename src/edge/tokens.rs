//! Twin-scoped driver tokens on the supervisor: the twins that run scoped go to the
//! backend-jobs thread whenever they change (it mints and renews); each answer plans its twin
//! again. Nothing here waits on the backend.

use crossbeam_channel::Sender;

use super::backend_job::JobCtl;
use super::state::State;
use crate::drivers::tokens::TokenFacts;

impl State {
    /// Tells the backend-jobs thread which twins run scoped, when that changed. In local mode
    /// there is no backend to mint: such a twin runs on what the cache holds, or falls back.
    pub(super) fn send_token_needs(&mut self, jobctl: &Sender<JobCtl>) {
        let needs = self.drivers.token_needs();
        if self.token_needs_sent.as_ref() == Some(&needs) {
            return;
        }
        self.token_needs_sent = Some(needs.clone());
        if !self.local {
            let _ = jobctl.send(JobCtl::DriverTokens(needs));
            return;
        }
        for n in needs {
            if !matches!(
                self.drivers.ctx.tokens.facts.get(&n.twin),
                Some(TokenFacts::Held { .. } | TokenFacts::Unobtainable { .. })
            ) {
                let facts = TokenFacts::Unobtainable {
                    reason: "local mode: no backend to mint a driver token".into(),
                    unsupported: false,
                };
                self.on_driver_token(n.twin, facts);
            }
        }
    }

    /// The backend-jobs thread's answer about a twin's token: its containers are planned again
    /// (a new token is a new spec: the runtime switches the driver with its graceful stop).
    pub(super) fn on_driver_token(&mut self, twin: String, facts: TokenFacts) {
        match &facts {
            TokenFacts::Held { token, failing } => log::info!(
                "twin {twin}: driver token {} (expires {}){}",
                token.uuid.get(..8).unwrap_or(&token.uuid),
                token.expires_at.as_deref().unwrap_or("never"),
                failing
                    .as_deref()
                    .map(|f| format!("; {f}"))
                    .unwrap_or_default()
            ),
            TokenFacts::Unobtainable { reason, .. } => {
                log::warn!("twin {twin}: no twin-scoped driver token: {reason}")
            }
        }
        self.drivers.ctx.tokens.facts.insert(twin.clone(), facts);
        self.replan(vec![twin]);
    }
}
