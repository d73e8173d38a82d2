//! Users, groups, personal API tokens and agent keys. Secrets arrive here
//! already hashed; nothing in this file ever sees one in clear.

use super::sql::{self, col, from_columns};
use super::{Result, Store, StoreError, WriteTx};
use crate::auth::{Principal, Role, User};

#[derive(Debug, Clone)]
pub struct AgentRecord {
    pub name: String,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

/// A personal API token as listed: never its secret or hash.
#[derive(Debug, Clone)]
pub struct UserTokenRecord {
    pub id: String,
    pub label: Option<String>,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

/// The active agent holding a key (by its hash): revoked keys match nothing.
/// One statement for the pool and the inline reader alike.
pub(super) const AGENT_FOR_KEY_HASH_SQL: &str =
    "SELECT name FROM agents WHERE key_hash = $1 AND revoked_at IS NULL";

/// A user's tokens, newest first (index `user_tokens_by_user`).
pub(crate) const USER_TOKENS_SQL: &str =
    "SELECT id, label, created_at, revoked_at FROM user_tokens \
     WHERE user_id = $1 ORDER BY created_at DESC, id DESC";

#[derive(Debug, Clone)]
pub struct UserRecord {
    pub user: User,
    pub password_hash: Option<String>,
}

fn user_from_row(r: &sqlx::any::AnyRow, groups: Vec<String>) -> Result<UserRecord> {
    let role_s: String = col(r, "role")?;
    Ok(UserRecord {
        user: User {
            id: col(r, "id")?,
            email: col(r, "email")?,
            role: Role::parse(&role_s)
                .ok_or_else(|| StoreError::Corrupt(format!("role {role_s}")))?,
            groups,
            disabled: col::<i64>(r, "disabled")? != 0,
            created_at: col(r, "created_at")?,
        },
        password_hash: col(r, "password_hash")?,
    })
}

from_columns!(AgentRecord: name, created_at, revoked_at);
from_columns!(UserTokenRecord: id, label, created_at, revoked_at);

const USER_COLS: &str = "id, email, role, password_hash, disabled, created_at";

impl Store {
    async fn groups_of(&self, user_id: &str) -> Result<Vec<String>> {
        let q = "SELECT group_name FROM user_groups WHERE user_id = $1 ORDER BY group_name";
        sql::fetch_scalars(&self.pool, q, (user_id,)).await
    }

    pub async fn user_by_email(&self, email: &str) -> Result<Option<UserRecord>> {
        let q = format!("SELECT {USER_COLS} FROM users WHERE email = $1");
        match sql::fetch_optional_row(&self.pool, &q, (email,)).await? {
            None => Ok(None),
            Some(r) => {
                let id: String = col(&r, "id")?;
                let groups = self.groups_of(&id).await?;
                Ok(Some(user_from_row(&r, groups)?))
            }
        }
    }

    pub async fn user_by_id(&self, id: &str) -> Result<Option<UserRecord>> {
        let q = format!("SELECT {USER_COLS} FROM users WHERE id = $1");
        match sql::fetch_optional_row(&self.pool, &q, (id,)).await? {
            None => Ok(None),
            Some(r) => {
                let groups = self.groups_of(id).await?;
                Ok(Some(user_from_row(&r, groups)?))
            }
        }
    }

    pub async fn list_users(&self) -> Result<Vec<User>> {
        let q = format!("SELECT {USER_COLS} FROM users ORDER BY email");
        let rows = sql::fetch_rows(&self.pool, &q, ()).await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let id: String = col(r, "id")?;
            let groups = self.groups_of(&id).await?;
            out.push(user_from_row(r, groups)?.user);
        }
        Ok(out)
    }

    pub async fn count_users(&self) -> Result<i64> {
        sql::fetch_scalar(&self.pool, "SELECT COUNT(*) FROM users", ()).await
    }

    pub async fn list_agents(&self) -> Result<Vec<AgentRecord>> {
        let q = "SELECT name, created_at, revoked_at FROM agents ORDER BY name";
        sql::fetch_all(&self.pool, q, ()).await
    }

    pub async fn agent_by_name(&self, name: &str) -> Result<Option<AgentRecord>> {
        let q = "SELECT name, created_at, revoked_at FROM agents WHERE name = $1";
        sql::fetch_optional(&self.pool, q, (name,)).await
    }

    pub async fn user_tokens(&self, user_id: &str) -> Result<Vec<UserTokenRecord>> {
        sql::fetch_all(&self.pool, USER_TOKENS_SQL, (user_id,)).await
    }

    /// Who holds this bearer secret (by its hash)? Revoked keys, revoked
    /// tokens and disabled users resolve to nobody. `user_token_first`
    /// looks among user tokens before agent keys.
    pub async fn principal_for_secret_hash(
        &self,
        hash: &str,
        user_token_first: bool,
    ) -> Result<Option<Principal>> {
        if user_token_first {
            if let Some(user) = self.user_for_token_hash(hash).await? {
                return Ok(Some(user));
            }
            return self.agent_for_key_hash(hash).await;
        }
        if let Some(agent) = self.agent_for_key_hash(hash).await? {
            return Ok(Some(agent));
        }
        self.user_for_token_hash(hash).await
    }

    /// On SQLite read inline, on this thread (`inline_read`); through the
    /// pool on PostgreSQL, or when the inline read fails.
    async fn agent_for_key_hash(&self, hash: &str) -> Result<Option<Principal>> {
        if let Some(inline) = &self.inline {
            match inline.agent_name(AGENT_FOR_KEY_HASH_SQL, hash) {
                Ok(name) => return Ok(name.map(|name| Principal::Agent { name })),
                Err(e) => inline.fell_back(&e),
            }
        }
        let name = sql::fetch_optional_scalar(&self.pool, AGENT_FOR_KEY_HASH_SQL, (hash,)).await?;
        Ok(name.map(|name| Principal::Agent { name }))
    }

    /// The user holding this API token, with their groups, in one
    /// statement: a row per group (one row with none when they have none).
    async fn user_for_token_hash(&self, hash: &str) -> Result<Option<Principal>> {
        let columns = sql::qualified("u", USER_COLS);
        let q = format!(
            "SELECT {columns}, g.group_name AS group_name FROM user_tokens t \
             JOIN users u ON u.id = t.user_id \
             LEFT JOIN user_groups g ON g.user_id = u.id \
             WHERE t.token_hash = $1 AND t.revoked_at IS NULL ORDER BY g.group_name"
        );
        let rows = sql::fetch_rows(&self.pool, &q, (hash,)).await?;
        let Some(first) = rows.first() else {
            return Ok(None);
        };
        let mut groups = Vec::with_capacity(rows.len());
        for r in &rows {
            if let Some(g) = col::<Option<String>>(r, "group_name")? {
                groups.push(g);
            }
        }
        Ok(Some(user_from_row(first, groups)?)
            .filter(|u| !u.user.disabled)
            .map(|u| Principal::User(u.user)))
    }

    /// The user a one-time setup link belongs to, if it is still valid.
    pub async fn user_by_setup_token_hash(&self, hash: &str, now: i64) -> Result<Option<User>> {
        let q = "SELECT id FROM users WHERE setup_token_hash = $1 AND setup_expires_at > $2";
        let id: Option<String> = sql::fetch_optional_scalar(&self.pool, q, (hash, now)).await?;
        match id {
            None => Ok(None),
            Some(id) => Ok(self.user_by_id(&id).await?.map(|u| u.user)),
        }
    }
}

impl WriteTx {
    pub async fn insert_user(
        &mut self,
        user: &User,
        password_hash: Option<&str>,
        setup_token_hash: Option<&str>,
        setup_expires_at: Option<i64>,
    ) -> Result<()> {
        let q = "INSERT INTO users (id, email, role, password_hash, setup_token_hash, setup_expires_at, disabled, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
        let values = (
            &user.id,
            &user.email,
            user.role.as_str(),
            password_hash,
            setup_token_hash,
            setup_expires_at,
            i64::from(user.disabled),
            user.created_at,
        );
        sql::execute(&mut *self.tx, q, values).await?;
        for g in &user.groups {
            self.add_group(&user.id, g).await?;
        }
        Ok(())
    }

    pub async fn add_group(&mut self, user_id: &str, group: &str) -> Result<bool> {
        let q = "SELECT COUNT(*) FROM user_groups WHERE user_id = $1 AND group_name = $2";
        let n: i64 = sql::fetch_scalar(&mut *self.tx, q, (user_id, group)).await?;
        if n > 0 {
            return Ok(false);
        }
        let q = "INSERT INTO user_groups (user_id, group_name) VALUES ($1, $2)";
        sql::execute(&mut *self.tx, q, (user_id, group)).await?;
        Ok(true)
    }

    pub async fn remove_group(&mut self, user_id: &str, group: &str) -> Result<bool> {
        let q = "DELETE FROM user_groups WHERE user_id = $1 AND group_name = $2";
        Ok(sql::execute(&mut *self.tx, q, (user_id, group)).await? > 0)
    }

    pub async fn set_password(&mut self, user_id: &str, password_hash: &str) -> Result<()> {
        let q = "UPDATE users SET password_hash = $1, setup_token_hash = NULL, setup_expires_at = NULL WHERE id = $2";
        sql::execute(&mut *self.tx, q, (password_hash, user_id)).await?;
        Ok(())
    }

    pub async fn set_user_disabled(&mut self, user_id: &str, disabled: bool) -> Result<()> {
        let q = "UPDATE users SET disabled = $1 WHERE id = $2";
        sql::execute(&mut *self.tx, q, (i64::from(disabled), user_id)).await?;
        Ok(())
    }

    pub async fn set_user_role(&mut self, user_id: &str, role: Role) -> Result<()> {
        let q = "UPDATE users SET role = $1 WHERE id = $2";
        sql::execute(&mut *self.tx, q, (role.as_str(), user_id)).await?;
        Ok(())
    }

    pub async fn insert_user_token(
        &mut self,
        id: &str,
        user_id: &str,
        token_hash: &str,
        label: Option<&str>,
        now: i64,
    ) -> Result<()> {
        let q = "INSERT INTO user_tokens (id, user_id, token_hash, label, created_at) VALUES ($1, $2, $3, $4, $5)";
        let values = (id, user_id, token_hash, label, now);
        sql::execute(&mut *self.tx, q, values).await?;
        Ok(())
    }

    pub async fn revoke_user_tokens(&mut self, user_id: &str, now: i64) -> Result<u64> {
        let q = "UPDATE user_tokens SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL";
        sql::execute(&mut *self.tx, q, (now, user_id)).await
    }

    /// Revokes one of `user_id`'s tokens; `false` when it has no such
    /// active token.
    pub async fn revoke_user_token(
        &mut self,
        user_id: &str,
        token_id: &str,
        now: i64,
    ) -> Result<bool> {
        let q = "UPDATE user_tokens SET revoked_at = $1 WHERE id = $2 AND user_id = $3 AND revoked_at IS NULL";
        Ok(sql::execute(&mut *self.tx, q, (now, token_id, user_id)).await? > 0)
    }

    pub async fn insert_agent(
        &mut self,
        id: &str,
        name: &str,
        key_hash: &str,
        now: i64,
    ) -> Result<()> {
        let q = "INSERT INTO agents (id, name, key_hash, created_at) VALUES ($1, $2, $3, $4)";
        sql::execute(&mut *self.tx, q, (id, name, key_hash, now)).await?;
        Ok(())
    }

    pub async fn revoke_agent(&mut self, name: &str, now: i64) -> Result<bool> {
        let q = "UPDATE agents SET revoked_at = $1 WHERE name = $2 AND revoked_at IS NULL";
        Ok(sql::execute(&mut *self.tx, q, (now, name)).await? > 0)
    }
}
