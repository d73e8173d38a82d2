//! Web inbox log-in sessions. The session secret lives only in the person's
//! cookie; the table keeps its SHA-256, the user, the CSRF token tied to the
//! session and when it ends.
//!
//! Opening and closing a session goes through a [`WriteTx`] (the caller
//! audits `user.logged_in` / `user.logged_out`); purging sessions that have
//! already expired is housekeeping and writes directly.

use super::sql::{self, from_columns};
use super::{Result, Store, WriteTx};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    pub token_hash: String,
    pub user_id: String,
    /// The synchronizer token every state-changing request must echo.
    pub csrf_token: String,
    pub created_at: i64,
    pub expires_at: i64,
}

from_columns!(SessionRecord: token_hash, user_id, csrf_token, created_at, expires_at);

/// Sessions that have ended.
pub(crate) const PURGE_SESSIONS_SQL: &str = "DELETE FROM inbox_sessions WHERE expires_at <= $1";

impl Store {
    /// The live session with this token hash (`None` once expired).
    pub async fn session_by_hash(
        &self,
        token_hash: &str,
        now: i64,
    ) -> Result<Option<SessionRecord>> {
        let q = "SELECT token_hash, user_id, csrf_token, created_at, expires_at FROM inbox_sessions WHERE token_hash = $1 AND expires_at > $2";
        sql::fetch_optional(&self.pool, q, (token_hash, now)).await
    }

    /// Deletes sessions that ended before `now`; returns how many.
    pub async fn purge_expired_sessions(&self, now: i64) -> Result<u64> {
        sql::execute(&self.pool, PURGE_SESSIONS_SQL, (now,)).await
    }
}

impl WriteTx {
    pub async fn insert_session(&mut self, s: &SessionRecord) -> Result<()> {
        let q = "INSERT INTO inbox_sessions (token_hash, user_id, csrf_token, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)";
        let values = (
            &s.token_hash,
            &s.user_id,
            &s.csrf_token,
            s.created_at,
            s.expires_at,
        );
        sql::execute(&mut *self.tx, q, values).await?;
        Ok(())
    }

    pub async fn delete_session(&mut self, token_hash: &str) -> Result<bool> {
        let q = "DELETE FROM inbox_sessions WHERE token_hash = $1";
        Ok(sql::execute(&mut *self.tx, q, (token_hash,)).await? > 0)
    }
}
