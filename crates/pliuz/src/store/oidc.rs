//! Single sign-on records: log-ins in flight (the `state`, `nonce` and PKCE
//! verifier of each authorization request, bound to the browser that
//! started it, used once) and the link between an IdP account and a user.
//!
//! Opening and taking a pending log-in is housekeeping with no audit entry
//! (nothing is granted yet); linking an identity happens in the sign-in's
//! [`WriteTx`], next to its audit entries.

use super::{col, Result, Store, WriteTx};

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

fn login_from_row(r: &sqlx::any::AnyRow) -> Result<PendingLogin> {
    Ok(PendingLogin {
        state_hash: col(r, "state_hash")?,
        browser_hash: col(r, "browser_hash")?,
        nonce: col(r, "nonce")?,
        pkce_verifier: col(r, "pkce_verifier")?,
        next_path: col(r, "next_path")?,
        created_at: col(r, "created_at")?,
        expires_at: col(r, "expires_at")?,
    })
}

/// Log-ins in flight that have expired.
pub(crate) const PURGE_LOGINS_SQL: &str = "DELETE FROM oidc_logins WHERE expires_at <= $1";

impl Store {
    /// Stores a log-in in flight, unless `max_pending` are already open
    /// (returns `false`): anyone can start one, so the table stays bounded.
    pub async fn insert_pending_login(&self, p: &PendingLogin, max_pending: i64) -> Result<bool> {
        let q = PURGE_LOGINS_SQL;
        sqlx::query(q)
            .bind(p.created_at)
            .execute(&self.pool)
            .await?;
        let open: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM oidc_logins")
            .fetch_one(&self.pool)
            .await?;
        if open >= max_pending {
            return Ok(false);
        }
        let q = "INSERT INTO oidc_logins (state_hash, browser_hash, nonce, pkce_verifier, next_path, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)";
        sqlx::query(q)
            .bind(&p.state_hash)
            .bind(&p.browser_hash)
            .bind(&p.nonce)
            .bind(&p.pkce_verifier)
            .bind(&p.next_path)
            .bind(p.created_at)
            .bind(p.expires_at)
            .execute(&self.pool)
            .await?;
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
        let row = sqlx::query(q)
            .bind(state_hash)
            .fetch_optional(&self.pool)
            .await?;
        let Some(p) = row.as_ref().map(login_from_row).transpose()? else {
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
        Ok(sqlx::query_scalar(q)
            .bind(issuer)
            .bind(subject)
            .fetch_optional(&self.pool)
            .await?)
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
        let n = sqlx::query(q)
            .bind(now)
            .bind(issuer)
            .bind(subject)
            .bind(user_id)
            .execute(&mut *self.tx)
            .await?
            .rows_affected();
        if n == 0 {
            let q = "INSERT INTO oidc_identities (issuer, subject, user_id, created_at, last_login_at) VALUES ($1, $2, $3, $4, $5)";
            sqlx::query(q)
                .bind(issuer)
                .bind(subject)
                .bind(user_id)
                .bind(now)
                .bind(now)
                .execute(&mut *self.tx)
                .await?;
        }
        Ok(())
    }

    /// Ends every session of a user (their role or groups changed).
    pub async fn delete_sessions_of(&mut self, user_id: &str) -> Result<u64> {
        let q = "DELETE FROM inbox_sessions WHERE user_id = $1";
        Ok(sqlx::query(q)
            .bind(user_id)
            .execute(&mut *self.tx)
            .await?
            .rows_affected())
    }
}
