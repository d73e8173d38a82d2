//! Single sign-on records: log-ins in flight (the `state`, `nonce` and PKCE
//! verifier of each authorization request, bound to the browser that
//! started it, used once) and the link between an IdP account and a user.
//!
//! Opening and taking a pending log-in is housekeeping with no audit entry
//! (nothing is granted yet); linking an identity happens in the sign-in's
//! [`WriteTx`], next to its audit entries.

use super::sql::{self, from_columns};
use super::{Result, Store, WriteTx};

/// One authorization request in flight. `state_hash` and `browser_hash`
/// are SHA-256 of secrets only the browser holds.
#[derive(Debug, Clone)]
pub struct PendingLogin {
    pub state_hash: String,
    pub browser_hash: String,
    pub nonce: String,
    pub pkce_verifier: String,
    pub next_path: String,
    pub created_at: i64,
    pub expires_at: i64,
}

from_columns!(PendingLogin: state_hash, browser_hash, nonce, pkce_verifier, next_path, created_at, expires_at);

/// Log-ins in flight that have expired.
pub(crate) const PURGE_LOGINS_SQL: &str = "DELETE FROM oidc_logins WHERE expires_at <= $1";

impl Store {
    /// Stores a log-in in flight, unless `max_pending` are already open
    /// (returns `false`): anyone can start one, so the table stays bounded.
    pub async fn insert_pending_login(&self, p: &PendingLogin, max_pending: i64) -> Result<bool> {
        sql::execute(&self.pool, PURGE_LOGINS_SQL, (p.created_at,)).await?;
        let open: i64 =
            sql::fetch_scalar(&self.pool, "SELECT COUNT(*) FROM oidc_logins", ()).await?;
        if open >= max_pending {
            return Ok(false);
        }
        let q = "INSERT INTO oidc_logins (state_hash, browser_hash, nonce, pkce_verifier, next_path, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)";
        let values = (
            &p.state_hash,
            &p.browser_hash,
            &p.nonce,
            &p.pkce_verifier,
            &p.next_path,
            p.created_at,
            p.expires_at,
        );
        sql::execute(&self.pool, q, values).await?;
        Ok(true)
    }

    /// Removes and returns the pending log-in for this state, if it has not
    /// expired: a state can be used once, whatever happens next.
    pub async fn take_pending_login(
        &self,
        state_hash: &str,
        now: i64,
    ) -> Result<Option<PendingLogin>> {
        let q = "DELETE FROM oidc_logins WHERE state_hash = $1 RETURNING state_hash, browser_hash, nonce, pkce_verifier, next_path, created_at, expires_at";
        let Some(p) = sql::fetch_optional::<PendingLogin>(&self.pool, q, (state_hash,)).await?
        else {
            return Ok(None);
        };
        Ok((p.expires_at > now).then_some(p))
    }

    /// The user linked to this IdP account.
    pub async fn user_id_for_identity(
        &self,
        issuer: &str,
        subject: &str,
    ) -> Result<Option<String>> {
        let q = "SELECT user_id FROM oidc_identities WHERE issuer = $1 AND subject = $2";
        sql::fetch_optional_scalar(&self.pool, q, (issuer, subject)).await
    }
}

impl WriteTx {
    /// Links (or re-confirms) an IdP account to a user.
    pub async fn upsert_identity(
        &mut self,
        issuer: &str,
        subject: &str,
        user_id: &str,
        now: i64,
    ) -> Result<()> {
        let q = "UPDATE oidc_identities SET last_login_at = $1 WHERE issuer = $2 AND subject = $3 AND user_id = $4";
        let n = sql::execute(&mut *self.tx, q, (now, issuer, subject, user_id)).await?;
        if n == 0 {
            let q = "INSERT INTO oidc_identities (issuer, subject, user_id, created_at, last_login_at) VALUES ($1, $2, $3, $4, $5)";
            sql::execute(&mut *self.tx, q, (issuer, subject, user_id, now, now)).await?;
        }
        Ok(())
    }

    /// Ends every session of a user (their role or groups changed).
    pub async fn delete_sessions_of(&mut self, user_id: &str) -> Result<u64> {
        let q = "DELETE FROM inbox_sessions WHERE user_id = $1";
        sql::execute(&mut *self.tx, q, (user_id,)).await
    }
}
