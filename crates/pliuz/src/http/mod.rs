//! What every HTTP edge shares: the state handlers get ([`AppState`]), errors
//! as RFC 9457 problem+json ([`error::Problem`]), the request extractors
//! (who is calling, strict JSON and query parsing), the inbox session cookie
//! and CSRF checks ([`session`]), and the log-in rate limiter. The route
//! modules (`api`, `inbox`, `slack`) build on this; `server` assembles them.

pub mod error;
pub mod extract;
pub mod oidc;
pub mod ratelimit;
pub mod session;

use crate::service::ControlPlane;
use std::sync::Arc;

/// Everything a handler may need. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub cp: ControlPlane,
    pub extras: Arc<Extras>,
}

/// State owned by the edges (log-in limiter, audit signer, shutdown signal).
#[derive(Default)]
pub struct Extras {
    /// Signs audit checkpoints (`crate::audit`); `None` only in tests.
    pub audit_signer: Option<Arc<crate::audit::Signer>>,
    /// Failed log-in attempts per client address and email (the inbox log-in).
    pub login_limiter: ratelimit::RateLimiter,
    /// Single sign-on: the identity provider's discovered metadata.
    pub oidc: oidc::OidcCache,
    /// Fires at shutdown, so live inbox streams (SSE) end and the server can stop.
    pub shutdown: Option<crate::shutdown::Shutdown>,
}
