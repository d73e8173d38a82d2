//! Web inbox log-in sessions. The session secret lives only in the person's
//! cookie; the table keeps its SHA-256, the user, the CSRF token tied to the
//! session and when it ends.
//!
//! Opening and closing a session goes through a [`WriteTx`] (the caller
//! audits `user.logged_in` / `user.logged_out`); purging sessions that have
//! already expired is housekeeping and writes directly.

use super::{col, Result, Store, WriteTx};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    pub token_hash: String,
    pub user_id: String,
    /// The synchronizer token every state-changing request must echo.
    pub csrf_token: String,
    pub created_at: i64,
    pub expires_at: i64,
}

fn session_from_row(r: &sqlx::any::AnyRow) -> Result<SessionRecord> {
    Ok(SessionRecord {
        token_hash: col(r, "token_hash")?,
        user_id: col(r, "user_id")?,
        csrf_token: col(r, "csrf_token")?,
        created_at: col(r, "created_at")?,
        expires_at: col(r, "expires_at")?,
    })
}

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
        let row = sqlx::query(q)
            .bind(token_hash)
            .bind(now)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(session_from_row).transpose()
    }

    /// Deletes sessions that ended before `now`; returns how many.
    pub async fn purge_expired_sessions(&self, now: i64) -> Result<u64> {
        let q = PURGE_SESSIONS_SQL;
        Ok(sqlx::query(q)
            .bind(now)
            .execute(&self.pool)
            .await?
            .rows_affected())
    }
}

impl WriteTx {
    pub async fn insert_session(&mut self, s: &SessionRecord) -> Result<()> {
        let q = "INSERT INTO inbox_sessions (token_hash, user_id, csrf_token, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)";
        sqlx::query(q)
            .bind(&s.token_hash)
            .bind(&s.user_id)
            .bind(&s.csrf_token)
            .bind(s.created_at)
            .bind(s.expires_at)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    pub async fn delete_session(&mut self, token_hash: &str) -> Result<bool> {
        let q = "DELETE FROM inbox_sessions WHERE token_hash = $1";
        Ok(sqlx::query(q)
            .bind(token_hash)
            .execute(&mut *self.tx)
            .await?
            .rows_affected()
            > 0)
    }
}
