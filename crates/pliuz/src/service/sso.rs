//! Signing in through the identity provider: the user is created on first
//! sign-in, and their role and groups are set from the IdP's groups at every
//! sign-in. Everything — the user, each change, the linked identity, the
//! session and their audit entries — is written in one transaction.

use super::directory::change_membership;
use super::{ControlPlane, Result, ServiceError};
use crate::approval::Actor;
use crate::audit_event::{AuditEvent, SsoGroups, SsoOrigin, SsoSession};
use crate::auth::{Role, User};
use crate::store::oidc::PendingLogin;
use crate::store::SessionRecord;

/// What the IdP vouched for, after the ID token was verified.
#[derive(Debug, Clone)]
pub struct IdpIdentity {
    pub issuer: String,
    pub subject: String,
    /// Normalised (lower-case) and within the allowed domains.
    pub email: String,
    /// The role and Pliuz groups the IdP groups map to.
    pub role: Role,
    pub groups: Vec<String>,
    /// The IdP group names as received (kept in the audit entry).
    pub idp_groups: Vec<String>,
}

/// A new session for `user`; the caller hands out the secret behind
/// `session.token_hash`.
pub struct SsoSignIn {
    pub user: User,
    pub created: bool,
}

impl ControlPlane {
    /// Records a log-in in flight (no audit entry: nothing is granted yet).
    /// `false` when `max_pending` are already open.
    pub async fn open_sso_login(&self, login: &PendingLogin, max_pending: i64) -> Result<bool> {
        Ok(self.store.insert_pending_login(login, max_pending).await?)
    }

    /// Takes (deletes) the log-in in flight for this state hash: each state
    /// is usable once, whatever happens next. `None` if unknown or expired.
    pub async fn take_sso_login(&self, state_hash: &str) -> Result<Option<PendingLogin>> {
        Ok(self
            .store
            .take_pending_login(state_hash, crate::store::now_millis())
            .await?)
    }

    pub async fn sign_in_with_idp(
        &self,
        who: &IdpIdentity,
        session: SessionRecord,
    ) -> Result<SsoSignIn> {
        let now = crate::store::now_millis();
        let linked = self
            .store
            .user_id_for_identity(&who.issuer, &who.subject)
            .await?;
        let existing = match &linked {
            Some(id) => self.store.user_by_id(id).await?,
            None => self.store.user_by_email(&who.email).await?,
        };
        let actor = Actor::User(who.email.clone()).to_string();
        let mut tx = self.store.begin_write().await?;
        let (user, created) = match existing {
            Some(rec) => {
                if rec.user.disabled {
                    return Err(ServiceError::Forbidden(format!(
                        "the account {} is disabled in Pliuz; ask an admin",
                        rec.user.email
                    )));
                }
                let mut user = rec.user;
                let grants_changed = user.role != who.role || user.groups != who.groups;
                if user.role != who.role {
                    tx.set_user_role(&user.id, who.role).await?;
                    let changed = AuditEvent::UserRoleChanged {
                        email: user.email.clone(),
                        from: user.role,
                        to: who.role,
                        via: "oidc",
                        idp_groups: who.idp_groups.clone(),
                    };
                    tx.audit(&actor, None, changed).await?;
                    user.role = who.role;
                }
                let removed = user.groups.iter().filter(|g| !who.groups.contains(g));
                let added = who.groups.iter().filter(|g| !user.groups.contains(g));
                let changes = removed.map(|g| (g, false)).chain(added.map(|g| (g, true)));
                for (g, add) in changes {
                    let sso = Some(sso_groups(who));
                    change_membership(&mut tx, &actor, &user, g, add, sso).await?;
                }
                if grants_changed || linked.is_none() {
                    // Sessions opened under the old grants end now.
                    tx.delete_sessions_of(&user.id).await?;
                }
                user.groups = who.groups.clone();
                (user, false)
            }
            None => {
                let user = User {
                    id: uuid::Uuid::now_v7().to_string(),
                    email: who.email.clone(),
                    role: who.role,
                    groups: who.groups.clone(),
                    disabled: false,
                    created_at: now,
                };
                tx.insert_user(&user, None, None, None).await?;
                let created = AuditEvent::UserCreated {
                    email: user.email.clone(),
                    role: user.role,
                    groups: user.groups.clone(),
                    sso: Some(SsoOrigin {
                        via: "oidc",
                        issuer: who.issuer.clone(),
                        idp_groups: who.idp_groups.clone(),
                    }),
                };
                tx.audit(&actor, None, created).await?;
                (user, true)
            }
        };
        tx.upsert_identity(&who.issuer, &who.subject, &user.id, now)
            .await?;
        let session = SessionRecord {
            user_id: user.id.clone(),
            ..session
        };
        tx.insert_session(&session).await?;
        let logged_in = AuditEvent::UserLoggedIn {
            email: user.email.clone(),
            via: "oidc".to_owned(),
            sso: Some(SsoSession {
                issuer: who.issuer.clone(),
                role: user.role,
                groups: user.groups.clone(),
            }),
            session_expires_at: crate::store::format_time(session.expires_at),
        };
        tx.audit(&actor, None, logged_in).await?;
        tx.commit().await?;
        Ok(SsoSignIn { user, created })
    }
}

/// The single-sign-on side of a group change: what the identity provider said.
fn sso_groups(who: &IdpIdentity) -> SsoGroups {
    SsoGroups {
        via: "oidc",
        idp_groups: who.idp_groups.clone(),
    }
}
