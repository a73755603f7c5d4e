//! Shared handler state and the clock.

use std::sync::Arc;

use postern_auth::challenge::ChallengeBook;
use postern_auth::pipeline::Pipeline;
use postern_auth::proof_cache::ProofCache;
use postern_auth::relying_party::RelyingParty;
use postern_core::UnixNanos;
use postern_store::{SessionAuthority, SessionStore};

use crate::config::SessionMode;
use crate::cookie::SessionCookie;
use crate::metrics::Metrics;

/// The edge owns the clock; everything below takes `now` as a parameter.
pub trait Clock: Send + Sync {
    fn now(&self) -> UnixNanos;
}

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> UnixNanos {
        crate::time::system_now()
    }
}

/// What every handler can reach. Cheap to clone (one `Arc`).
#[derive(Clone)]
pub struct AppState(pub Arc<Shared>);

pub struct Shared {
    pub authority: Arc<SessionAuthority>,
    /// The biometric stage's public side, when that stage is on.
    pub biometric: Option<Biometric>,
    /// Turbo mode: concurrent mints share one signature and one write.
    pub mint_batcher: Option<postern_store::batch_mint::MintBatcher>,
    pub store: Arc<dyn SessionStore>,
    pub challenges: ChallengeBook,
    pub pipeline: Pipeline,
    /// Verified identity proofs by digest (see `postern_auth::proof_cache`).
    pub proofs: Arc<ProofCache>,
    /// How recent a session's full authentication must be to change the
    /// account's credentials (add, remove or confirm a passkey, revoke or
    /// replace the identity key), in nanoseconds (`[auth] reauth_max_age`).
    pub reauth_max_age: u64,
    /// The origins identity proofs may be bound to; the first is assumed
    /// when a request names none (`[auth] audiences`).
    pub audiences: Vec<String>,
    /// The WebAuthn relying party and its outstanding ceremonies.
    pub passkeys: RelyingParty,
    /// The stages a passkey login runs (the passkey stage).
    pub passkey_pipeline: Pipeline,
    pub delivery: Delivery,
    /// JWT mode's keys and lifetime (`None` in the other modes).
    pub jwt: Option<crate::routes::jwt::JwtDelivery>,
    pub metrics: Arc<Metrics>,
    pub clock: Arc<dyn Clock>,
    /// Gate mode: validation of an upstream identity provider's tokens.
    pub gate: Option<Arc<postern_tower::Gate>>,
    /// Shares the gate's logouts with other instances (`--redis`).
    pub revocation_feed: Option<Arc<postern_tower::redis_feed::RedisRevocations>>,
    /// Proxies whose `X-Forwarded-For` / `X-Real-IP` are believed (see
    /// `crate::client_ip`).
    pub trusted_proxies: crate::client_ip::TrustedProxies,
    /// The roots the gate's upstream clients trust (`--upstream-ca`).
    pub upstream_trust: postern_tower::tls::TrustRoots,
    /// Keeps the gate cache's sweeper thread alive as long as the state.
    pub _sweeper: Option<postern_cache::sweeper::Sweeper>,
}

/// What the HTTP layer needs of the biometric stage: the key holder's
/// public key (clients encrypt under it) and an evaluator to check that an
/// enrolled template is a well-formed ciphertext before it is stored.
pub struct Biometric {
    pub public_key: Vec<u8>,
    pub evaluator: Arc<postern_auth::biometric::Evaluator>,
    /// The stage's prepared templates: a revoked user's entry is dropped.
    pub prepared: Arc<postern_auth::biometric::PreparedCache>,
}

/// How sessions reach clients, and which browser origin may use them.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub mode: SessionMode,
    pub cookie: SessionCookie,
    /// The configured passkey origins, as browsers send them in `Origin`
    /// (`http://localhost:8080`): cookie-authenticated requests that change
    /// state must come from one of them.
    pub origins: Vec<String>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("authority", &self.0.authority)
            .finish_non_exhaustive()
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}
