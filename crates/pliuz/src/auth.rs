//! Credentials: agent keys, user API tokens, passwords and who a request
//! comes from. Secrets are random 256-bit values shown once; the store keeps
//! only their SHA-256 (a fast hash is right for high-entropy secrets; slow
//! hashes are for passwords, which get argon2id).

use argon2::password_hash::{rand_core::OsRng, PasswordHash, PasswordHasher, SaltString};
use argon2::Argon2;
use base64::Engine;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub const AGENT_KEY_PREFIX: &str = "pliuz_ak_";
pub const USER_TOKEN_PREFIX: &str = "pliuz_ut_";
pub const SETUP_TOKEN_PREFIX: &str = "pliuz_su_";
pub const SESSION_PREFIX: &str = "pliuz_ss_";

/// A new random secret with a prefix that says what it is (so a leaked one
/// is easy to recognise and scan for).
pub fn new_secret(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    format!(
        "{prefix}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

/// The only form in which a secret is stored.
pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// A short random password for the first admin.
pub fn new_password() -> String {
    let mut bytes = [0u8; 15];
    rand::thread_rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

pub fn hash_password(password: &str) -> anyhow::Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| anyhow::anyhow!("cannot hash password: {e}"))
}

/// Argon2 work areas larger than this are refused (the default is 19 MiB).
const MAX_ARGON2_BLOCKS: usize = 256 * 1024;

thread_local! {
    /// Each thread's argon2 work area, kept between checks: allocating and
    /// freeing 19 MiB per check makes the allocator keep a fresh copy each
    /// time, and resident memory grows with every log-in attempt.
    static ARGON2_MEMORY: std::cell::RefCell<Vec<argon2::Block>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

pub fn verify_password(password: &str, hash: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(hash) else {
        return false;
    };
    let (Some(expected), Some(salt)) = (parsed.hash, parsed.salt) else {
        return false;
    };
    let (Ok(params), Ok(algorithm)) = (
        argon2::Params::try_from(&parsed),
        argon2::Algorithm::try_from(parsed.algorithm),
    ) else {
        return false;
    };
    let version = match parsed.version.map(argon2::Version::try_from).transpose() {
        Ok(v) => v.unwrap_or_default(),
        Err(_) => return false,
    };
    let mut salt_buf = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_buf) else {
        return false;
    };
    let blocks = params.block_count();
    if blocks > MAX_ARGON2_BLOCKS {
        return false;
    }
    let mut out = vec![0u8; expected.len()];
    let hashed = ARGON2_MEMORY.with(|mem| {
        let mut mem = mem.borrow_mut();
        if mem.len() < blocks {
            mem.resize(blocks, argon2::Block::default());
        }
        Argon2::new(algorithm, version, params).hash_password_into_with_memory(
            password.as_bytes(),
            salt,
            &mut out,
            &mut mem[..blocks],
        )
    });
    hashed.is_ok()
        && out
            .iter()
            .zip(expected.as_bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

/// Burns the same time as a real check, so unknown emails and wrong
/// passwords cannot be told apart by timing.
pub fn dummy_password_check(password: &str) {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let hash = DUMMY.get_or_init(|| hash_password("dummy-password").unwrap_or_default());
    let _ = verify_password(password, hash);
}

pub fn check_password_strength(password: &str) -> Result<(), String> {
    if password.chars().count() < 10 {
        return Err("the password must be at least 10 characters long".into());
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Approver,
    Admin,
    Auditor,
}

crate::enum_names::names!(Role {
    Approver => "approver",
    Admin => "admin",
    Auditor => "auditor",
});

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: String,
    pub email: String,
    pub role: Role,
    pub groups: Vec<String>,
    pub disabled: bool,
    pub created_at: i64,
}

/// Who is making a request.
#[derive(Debug, Clone)]
pub enum Principal {
    Agent { name: String },
    User(User),
}

impl Principal {
    pub fn actor(&self) -> crate::approval::Actor {
        match self {
            Principal::Agent { name } => crate::approval::Actor::Agent(name.clone()),
            Principal::User(u) => crate::approval::Actor::User(u.email.clone()),
        }
    }

    /// Admins and auditors see every request; approvers see their policies'.
    pub fn sees_everything(&self) -> bool {
        matches!(self, Principal::User(u) if matches!(u.role, Role::Admin | Role::Auditor))
    }
}

/// Emails are compared and stored lower-case.
pub fn normalize_email(email: &str) -> Result<String, String> {
    let e = email.trim().to_lowercase();
    let valid = e.len() <= 254
        && e.split_once('@')
            .is_some_and(|(l, d)| !l.is_empty() && !d.is_empty() && !d.starts_with('.'))
        && !e.contains(char::is_whitespace);
    if valid {
        Ok(e)
    } else {
        Err(format!("'{email}' is not an email address"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_prefixed_random_and_hashed() {
        let a = new_secret(AGENT_KEY_PREFIX);
        let b = new_secret(AGENT_KEY_PREFIX);
        assert!(a.starts_with(AGENT_KEY_PREFIX));
        assert_ne!(a, b);
        assert_eq!(hash_secret(&a).len(), 64);
        assert_ne!(hash_secret(&a), hash_secret(&b));
    }

    #[test]
    fn passwords_round_trip() {
        let h = hash_password("correct horse battery").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse battery", &h));
        assert!(!verify_password("wrong", &h));
        assert!(!verify_password("x", "not a hash"));
    }

    #[test]
    fn emails_are_normalised() {
        assert_eq!(
            normalize_email(" Ops@Example.COM ").unwrap(),
            "ops@example.com"
        );
        assert!(normalize_email("nope").is_err());
    }
}
