//! Inbox log-in sessions: created at log-in and ended at log-out, each with
//! its audit entry in the same transaction. The cookie and CSRF handling is
//! the HTTP layer's (`crate::http::session`).

use super::ControlPlane;
use crate::approval::Actor;
use crate::audit_event::AuditEvent;
use crate::auth::{self, User};
use crate::store::{SessionRecord, StoreError};

/// A session just created: the secret goes into the cookie, once.
pub struct NewSession {
    pub token: String,
    pub record: SessionRecord,
}

impl ControlPlane {
    /// Starts a session for `user` (who has just proved who they are, `via`
    /// says how), lasting `inbox.session_ttl`. Expired sessions are purged
    /// on the way (best effort: a failed purge does not stop the log-in).
    pub async fn log_in(&self, user: &User, via: &str) -> Result<NewSession, StoreError> {
        let now = crate::store::now_millis();
        let _ = self.purge_expired_sessions(now).await;
        let token = auth::new_secret(auth::SESSION_PREFIX);
        let ttl =
            i64::try_from(self.settings.inbox.session_ttl.as_millis()).unwrap_or(i64::MAX / 4);
        let record = SessionRecord {
            token_hash: auth::hash_secret(&token),
            user_id: user.id.clone(),
            csrf_token: auth::new_secret(""),
            created_at: now,
            expires_at: now.saturating_add(ttl),
        };
        let mut tx = self.store.begin_write().await?;
        tx.insert_session(&record).await?;
        let logged_in = AuditEvent::UserLoggedIn {
            email: user.email.clone(),
            via: via.to_owned(),
            sso: None,
            session_expires_at: crate::store::format_time(record.expires_at),
        };
        tx.audit(Actor::User(user.email.clone()), None, logged_in)
            .await?;
        tx.commit().await?;
        Ok(NewSession { token, record })
    }

    /// Deletes sessions that ended before `now` (best effort, callers may
    /// ignore a failure).
    pub async fn purge_expired_sessions(&self, now: i64) -> Result<(), StoreError> {
        self.store.purge_expired_sessions(now).await.map(drop)
    }

    /// Ends the session `token_hash` of `user`.
    pub async fn log_out(
        &self,
        token_hash: &str,
        user: &User,
        via: &str,
    ) -> Result<(), StoreError> {
        let mut tx = self.store.begin_write().await?;
        tx.delete_session(token_hash).await?;
        let logged_out = AuditEvent::UserLoggedOut {
            email: user.email.clone(),
            via: via.to_owned(),
        };
        tx.audit(Actor::User(user.email.clone()), None, logged_out)
            .await?;
        tx.commit().await?;
        Ok(())
    }
}
