//! Who is who: users, groups, personal tokens and agent keys. Every change is
//! audited; secrets are returned once to the caller and stored as hashes.

use super::{ControlPlane, Result, ServiceError};
use crate::approval::Actor;
use crate::audit_event::{AuditEvent, SsoGroups};
use crate::auth::{self, Role, User};
use crate::store::{AgentRecord, UserTokenRecord, WriteTx};

/// How long a one-time setup link stays valid.
pub const SETUP_LINK_TTL_MS: i64 = 72 * 3600 * 1000;

/// How a new user gets their first password.
pub enum InitialPassword {
    Given(String),
    /// A one-time setup link; the returned secret goes into `/setup/{token}`.
    SetupLink,
}

/// A personal API token just issued: its id (to list and revoke it by) and
/// the secret, shown once.
pub struct IssuedToken {
    pub id: String,
    pub token: String,
}

/// Commits an account change with its audit entry (it concerns no
/// request).
async fn commit_audited(mut tx: WriteTx, actor: &Actor, event: AuditEvent) -> Result<()> {
    tx.audit(actor, None, event).await?;
    tx.commit().await?;
    Ok(())
}

/// Adds `user` to `group` (`add`) or removes them, with its audit entry;
/// `sso` names the IdP groups when single sign-on made the change.
/// Whether the membership changed.
pub(super) async fn change_membership(
    tx: &mut WriteTx,
    actor: impl std::fmt::Display,
    user: &User,
    group: &str,
    add: bool,
    sso: Option<SsoGroups>,
) -> Result<bool> {
    let changed = if add {
        tx.add_group(&user.id, group).await?
    } else {
        tx.remove_group(&user.id, group).await?
    };
    let (email, group) = (user.email.clone(), group.to_owned());
    let event = if add {
        AuditEvent::UserGroupAdded {
            email,
            group,
            changed,
            sso,
        }
    } else {
        AuditEvent::UserGroupRemoved {
            email,
            group,
            changed,
            sso,
        }
    };
    tx.audit(actor, None, event).await?;
    Ok(changed)
}

/// What [`ControlPlane::change_group`] did, in the words the CLI and the
/// inbox both use.
pub fn group_change_text(email: &str, group: &str, add: bool, changed: bool) -> String {
    match (add, changed) {
        (true, true) => format!("Added {email} to {group}."),
        (true, false) => format!("{email} was already in {group}."),
        (false, true) => format!("Removed {email} from {group}."),
        (false, false) => format!("{email} was not in {group}."),
    }
}

/// Refuses an admin's change that would lock themselves out: disabling or
/// demoting oneself is done by another admin.
fn not_oneself(actor: &Actor, user: &User, what: &str) -> Result<()> {
    if matches!(actor, Actor::User(e) if e.eq_ignore_ascii_case(&user.email)) {
        return Err(ServiceError::Forbidden(format!(
            "you cannot {what} your own account; ask another admin"
        )));
    }
    Ok(())
}

pub struct CreatedUser {
    pub user: User,
    /// The setup token, when a link was asked for.
    pub setup_token: Option<String>,
}

fn valid_name(field: &str, name: &str) -> Result<()> {
    if name.is_empty()
        || name.len() > 100
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        return Err(ServiceError::invalid(
            field,
            format!("'{name}' must be 1-100 letters, digits, '-', '_' or '.'"),
        ));
    }
    Ok(())
}

impl ControlPlane {
    pub async fn create_user(
        &self,
        actor: &Actor,
        email: &str,
        role: Role,
        groups: &[String],
        password: InitialPassword,
    ) -> Result<CreatedUser> {
        let email = auth::normalize_email(email).map_err(|m| ServiceError::invalid("email", m))?;
        for g in groups {
            valid_name("group", g)?;
        }
        if self.store.user_by_email(&email).await?.is_some() {
            return Err(ServiceError::Refused {
                code: "already_exists",
                message: format!("a user with email {email} already exists"),
            });
        }
        let now = crate::store::now_millis();
        let (password_hash, setup_token) = match password {
            InitialPassword::Given(p) => {
                auth::check_password_strength(&p)
                    .map_err(|m| ServiceError::invalid("password", m))?;
                (Some(bounded_hash(p).await?), None)
            }
            InitialPassword::SetupLink => (None, Some(auth::new_secret(auth::SETUP_TOKEN_PREFIX))),
        };
        let mut groups = groups.to_vec();
        groups.sort();
        groups.dedup();
        let user = User {
            id: uuid::Uuid::now_v7().to_string(),
            email: email.clone(),
            role,
            groups: groups.clone(),
            disabled: false,
            created_at: now,
        };
        let mut tx = self.store.begin_write().await?;
        tx.insert_user(
            &user,
            password_hash.as_deref(),
            setup_token.as_deref().map(auth::hash_secret).as_deref(),
            setup_token.as_ref().map(|_| now + SETUP_LINK_TTL_MS),
        )
        .await?;
        let created = AuditEvent::UserCreated {
            email: email.clone(),
            role,
            groups: groups.clone(),
            sso: None,
        };
        commit_audited(tx, actor, created).await?;
        Ok(CreatedUser { user, setup_token })
    }

    /// The user with this email (404 when there is none).
    pub async fn user(&self, email: &str) -> Result<User> {
        self.user_or_not_found(email).await
    }

    async fn user_or_not_found(&self, email: &str) -> Result<User> {
        let email = auth::normalize_email(email).map_err(|m| ServiceError::invalid("email", m))?;
        self.store
            .user_by_email(&email)
            .await?
            .map(|u| u.user)
            .ok_or_else(|| ServiceError::NoSuch(format!("user {email}")))
    }

    /// Issues a personal API token for a human; returns the secret (shown once).
    pub async fn issue_user_token(
        &self,
        actor: &Actor,
        email: &str,
        label: Option<&str>,
    ) -> Result<IssuedToken> {
        if let Some(l) = label {
            if l.chars().count() > 200 {
                return Err(ServiceError::invalid(
                    "label",
                    "must be at most 200 characters",
                ));
            }
            if let Some(e) = super::unstorable("label", l) {
                return Err(ServiceError::Validation(vec![e]));
            }
        }
        let user = self.user_or_not_found(email).await?;
        let token = auth::new_secret(auth::USER_TOKEN_PREFIX);
        let id = uuid::Uuid::now_v7().to_string();
        let mut tx = self.store.begin_write().await?;
        tx.insert_user_token(
            &id,
            &user.id,
            &auth::hash_secret(&token),
            label,
            crate::store::now_millis(),
        )
        .await?;
        let issued = AuditEvent::UserTokenIssued {
            email: user.email.clone(),
            token_id: id.clone(),
            label: label.map(str::to_owned),
        };
        commit_audited(tx, actor, issued).await?;
        Ok(IssuedToken { id, token })
    }

    /// A user's personal API tokens, newest first (never their secrets).
    pub async fn user_tokens(&self, email: &str) -> Result<Vec<UserTokenRecord>> {
        let user = self.user_or_not_found(email).await?;
        Ok(self.store.user_tokens(&user.id).await?)
    }

    /// Revokes one personal API token of `email`.
    pub async fn revoke_user_token(
        &self,
        actor: &Actor,
        email: &str,
        token_id: &str,
    ) -> Result<()> {
        let user = self.user_or_not_found(email).await?;
        let mut tx = self.store.begin_write().await?;
        if !tx
            .revoke_user_token(&user.id, token_id, crate::store::now_millis())
            .await?
        {
            return Err(ServiceError::NoSuch(format!(
                "active token '{token_id}' of {}",
                user.email
            )));
        }
        let revoked = AuditEvent::UserTokenRevoked {
            email: user.email.clone(),
            token_id: token_id.to_owned(),
        };
        commit_audited(tx, actor, revoked).await?;
        Ok(())
    }

    /// Gives a user exactly these groups: each one added or removed is its
    /// own audit entry, all in one transaction.
    pub async fn set_user_groups(
        &self,
        actor: &Actor,
        email: &str,
        groups: &[String],
    ) -> Result<User> {
        for g in groups {
            valid_name("groups", g)?;
        }
        let mut user = self.user_or_not_found(email).await?;
        let mut wanted = groups.to_vec();
        wanted.sort();
        wanted.dedup();
        let removed: Vec<&String> = user.groups.iter().filter(|g| !wanted.contains(g)).collect();
        let added: Vec<&String> = wanted.iter().filter(|g| !user.groups.contains(g)).collect();
        if removed.is_empty() && added.is_empty() {
            return Ok(user);
        }
        let mut tx = self.store.begin_write().await?;
        for g in removed {
            change_membership(&mut tx, actor, &user, g, false, None).await?;
        }
        for g in added {
            change_membership(&mut tx, actor, &user, g, true, None).await?;
        }
        tx.commit().await?;
        user.groups = wanted;
        Ok(user)
    }

    /// Changes a user's role (an admin cannot change their own).
    pub async fn set_user_role(&self, actor: &Actor, email: &str, role: Role) -> Result<User> {
        let mut user = self.user_or_not_found(email).await?;
        if user.role == role {
            return Ok(user);
        }
        not_oneself(actor, &user, "change the role of")?;
        let mut tx = self.store.begin_write().await?;
        tx.set_user_role(&user.id, role).await?;
        let changed = AuditEvent::UserRoleChanged {
            email: user.email.clone(),
            from: user.role,
            to: role,
            via: "admin",
            idp_groups: Vec::new(),
        };
        commit_audited(tx, actor, changed).await?;
        user.role = role;
        Ok(user)
    }

    /// One agent by name, active or revoked (404 when there is none).
    pub async fn agent(&self, name: &str) -> Result<AgentRecord> {
        self.store
            .agent_by_name(name)
            .await?
            .ok_or_else(|| ServiceError::NoSuch(format!("agent '{name}'")))
    }

    pub async fn revoke_user_tokens(&self, actor: &Actor, email: &str) -> Result<u64> {
        let user = self.user_or_not_found(email).await?;
        let mut tx = self.store.begin_write().await?;
        let n = tx
            .revoke_user_tokens(&user.id, crate::store::now_millis())
            .await?;
        let revoked = AuditEvent::UserTokensRevoked {
            email: user.email.clone(),
            count: n,
        };
        commit_audited(tx, actor, revoked).await?;
        Ok(n)
    }

    pub async fn change_group(
        &self,
        actor: &Actor,
        email: &str,
        group: &str,
        add: bool,
    ) -> Result<bool> {
        valid_name("group", group)?;
        let user = self.user_or_not_found(email).await?;
        let mut tx = self.store.begin_write().await?;
        let changed = change_membership(&mut tx, actor, &user, group, add, None).await?;
        tx.commit().await?;
        Ok(changed)
    }

    pub async fn set_user_disabled(
        &self,
        actor: &Actor,
        email: &str,
        disabled: bool,
    ) -> Result<()> {
        let user = self.user_or_not_found(email).await?;
        if disabled {
            not_oneself(actor, &user, "disable")?;
        }
        let mut tx = self.store.begin_write().await?;
        tx.set_user_disabled(&user.id, disabled).await?;
        let email = user.email.clone();
        let event = if disabled {
            AuditEvent::UserDisabled { email }
        } else {
            AuditEvent::UserEnabled { email }
        };
        commit_audited(tx, actor, event).await?;
        Ok(())
    }

    pub async fn set_password(&self, actor: &Actor, user_id: &str, password: &str) -> Result<()> {
        auth::check_password_strength(password)
            .map_err(|m| ServiceError::invalid("password", m))?;
        let user = self
            .store
            .user_by_id(user_id)
            .await?
            .ok_or_else(|| ServiceError::NoSuch(format!("user {user_id}")))?;
        let hash = bounded_hash(password.to_owned()).await?;
        let mut tx = self.store.begin_write().await?;
        tx.set_password(user_id, &hash).await?;
        let password_set = AuditEvent::UserPasswordSet {
            email: user.user.email.clone(),
        };
        commit_audited(tx, actor, password_set).await?;
        Ok(())
    }

    /// Creates an agent and returns its API key (shown once).
    pub async fn create_agent(&self, actor: &Actor, name: &str) -> Result<String> {
        valid_name("name", name)?;
        let key = auth::new_secret(auth::AGENT_KEY_PREFIX);
        let mut tx = self.store.begin_write().await?;
        tx.insert_agent(
            &uuid::Uuid::now_v7().to_string(),
            name,
            &auth::hash_secret(&key),
            crate::store::now_millis(),
        )
        .await
        .map_err(|e| {
            if e.is_unique_violation() {
                ServiceError::Refused {
                    code: "already_exists",
                    message: format!(
                        "an agent named '{name}' already exists (revoked agents keep their name)"
                    ),
                }
            } else {
                e.into()
            }
        })?;
        let created = AuditEvent::AgentCreated {
            name: name.to_owned(),
        };
        commit_audited(tx, actor, created).await?;
        Ok(key)
    }

    pub async fn revoke_agent(&self, actor: &Actor, name: &str) -> Result<()> {
        let mut tx = self.store.begin_write().await?;
        if !tx.revoke_agent(name, crate::store::now_millis()).await? {
            return Err(ServiceError::NoSuch(format!("active agent '{name}'")));
        }
        let revoked = AuditEvent::AgentRevoked {
            name: name.to_owned(),
        };
        commit_audited(tx, actor, revoked).await?;
        Ok(())
    }
}

/// Hashes a password through the process-wide gate (bounded, off the runtime).
async fn bounded_hash(password: String) -> Result<String> {
    crate::password_gate::PasswordGate::global()
        .run(move || auth::hash_password(&password))
        .await
        .map_err(|_| {
            ServiceError::Conflict(
                "the server is busy with other password checks; try again in a moment".into(),
            )
        })?
        .map_err(|e| ServiceError::Conflict(e.to_string()))
}
