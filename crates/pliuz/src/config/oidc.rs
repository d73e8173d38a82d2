//! `[oidc]`: single sign-on for the inbox with an OpenID Connect provider.
//! Every setting is checked at start; a mistake names the setting.

use crate::auth::Role;
use crate::policy::parse_duration;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// The environment variable that may carry the client secret.
pub const CLIENT_SECRET_ENV: &str = "PLIUZ_OIDC_CLIENT_SECRET";

#[derive(Debug, Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
pub struct FileOidc {
    issuer: Option<String>,
    client_id: Option<String>,
    /// Name of an environment variable holding the secret.
    client_secret_env: Option<String>,
    /// A file (mode 0600) holding the secret.
    client_secret_file: Option<PathBuf>,
    scopes: Option<Vec<String>>,
    #[serde(default)]
    allowed_email_domains: Vec<String>,
    groups_claim: Option<String>,
    require_email_verified: Option<bool>,
    local_passwords: Option<bool>,
    session_ttl: Option<String>,
    display_name: Option<String>,
    #[serde(default)]
    groups: BTreeMap<String, FileGroupMapping>,
}

#[derive(Debug, Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
pub struct FileGroupMapping {
    #[serde(default)]
    groups: Vec<String>,
    role: Option<String>,
}

/// What one IdP group grants in Pliuz.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupGrant {
    pub groups: Vec<String>,
    pub role: Option<Role>,
}

#[derive(Clone)]
pub struct OidcSettings {
    pub issuer: String,
    pub client_id: String,
    pub client_secret: Option<String>,
    pub scopes: Vec<String>,
    pub allowed_email_domains: Vec<String>,
    pub groups_claim: String,
    pub require_email_verified: bool,
    /// Whether e-mail + password log-in (and setup links) stay available.
    pub local_passwords: bool,
    /// The longest an SSO session lasts; groups and role are re-read from
    /// the IdP at the next sign-in.
    pub session_ttl: Duration,
    pub display_name: String,
    /// IdP group name -> what it grants.
    pub group_map: BTreeMap<String, GroupGrant>,
}

// The client secret must never reach logs, even through `{:?}`.
impl std::fmt::Debug for OidcSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcSettings")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| "[redacted]"),
            )
            .field("scopes", &self.scopes)
            .field("allowed_email_domains", &self.allowed_email_domains)
            .field("groups_claim", &self.groups_claim)
            .field("require_email_verified", &self.require_email_verified)
            .field("local_passwords", &self.local_passwords)
            .field("session_ttl", &self.session_ttl)
            .field("group_map", &self.group_map)
            .finish()
    }
}

/// The grant of a set of IdP groups: the union of the mapped Pliuz groups
/// and the strongest mapped role. `None` when no IdP group is mapped.
pub fn grant_for(
    map: &BTreeMap<String, GroupGrant>,
    idp_groups: &[String],
) -> Option<(Role, Vec<String>)> {
    let mut matched = false;
    let mut role = Role::Approver;
    let mut groups = Vec::new();
    for g in idp_groups {
        let Some(grant) = map.get(g) else { continue };
        matched = true;
        groups.extend(grant.groups.iter().cloned());
        if let Some(r) = grant.role {
            if rank(r) > rank(role) {
                role = r;
            }
        }
    }
    groups.sort();
    groups.dedup();
    matched.then_some((role, groups))
}

fn rank(r: Role) -> u8 {
    match r {
        Role::Approver => 0,
        Role::Auditor => 1,
        Role::Admin => 2,
    }
}

fn valid_group_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 100
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

fn is_loopback_http(url: &str) -> bool {
    let rest = url.strip_prefix("http://").unwrap_or("");
    let host = rest.split(['/', '?']).next().unwrap_or("");
    let host = host.rsplit_once(':').map(|(h, _)| h).unwrap_or(host);
    matches!(host, "localhost" | "127.0.0.1" | "[::1]")
}

impl FileOidc {
    /// Resolves and checks the section; `env` reads environment variables.
    /// Returns every mistake, each naming its setting.
    pub fn resolve(
        self,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<OidcSettings, Vec<String>> {
        let mut errs = Vec::new();
        let issuer = env("PLIUZ_OIDC_ISSUER")
            .or(self.issuer)
            .unwrap_or_default()
            .trim_end_matches('/')
            .to_owned();
        if issuer.is_empty() {
            errs.push(
                "oidc.issuer is required, e.g. \"https://login.example.com/realms/acme\""
                    .to_owned(),
            );
        } else if !(issuer.starts_with("https://") || is_loopback_http(&issuer)) {
            errs.push(format!(
                "oidc.issuer '{issuer}' must be an https:// URL (plain http only for localhost)"
            ));
        } else if issuer.contains(['?', '#']) {
            errs.push(format!(
                "oidc.issuer '{issuer}' must not have a query or fragment"
            ));
        }
        let client_id = env("PLIUZ_OIDC_CLIENT_ID")
            .or(self.client_id)
            .unwrap_or_default();
        if client_id.trim().is_empty() {
            errs.push(
                "oidc.client_id is required (the client id registered at the identity provider)"
                    .to_owned(),
            );
        }
        let client_secret = match (&self.client_secret_env, &self.client_secret_file) {
            (Some(_), Some(_)) => {
                errs.push(
                    "oidc.client_secret_env and oidc.client_secret_file are both set; choose one"
                        .to_owned(),
                );
                None
            }
            (Some(var), None) => match env(var) {
                Some(s) => Some(s),
                None => {
                    errs.push(format!(
                        "oidc.client_secret_env: the environment variable {var} is not set"
                    ));
                    None
                }
            },
            (None, Some(path)) => match std::fs::read_to_string(path) {
                Ok(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
                Ok(_) => {
                    errs.push(format!(
                        "oidc.client_secret_file: {} is empty",
                        path.display()
                    ));
                    None
                }
                Err(e) => {
                    errs.push(format!(
                        "oidc.client_secret_file: cannot read {}: {e}",
                        path.display()
                    ));
                    None
                }
            },
            (None, None) => env(CLIENT_SECRET_ENV),
        };
        let scopes = self
            .scopes
            .unwrap_or_else(|| vec!["openid".into(), "email".into(), "profile".into()]);
        if !scopes.iter().any(|s| s == "openid") {
            errs.push("oidc.scopes must include \"openid\"".to_owned());
        }
        if scopes
            .iter()
            .any(|s| s.is_empty() || s.contains(char::is_whitespace))
        {
            errs.push("oidc.scopes: a scope is empty or contains a space".to_owned());
        }
        let mut domains = Vec::new();
        for d in &self.allowed_email_domains {
            let d = d.trim().trim_start_matches('@').to_lowercase();
            if d.is_empty() || d.contains(['@', ' ', '/']) || !d.contains('.') && d != "localhost" {
                errs.push(format!(
                    "oidc.allowed_email_domains: '{d}' is not a domain like \"example.com\""
                ));
            } else {
                domains.push(d);
            }
        }
        if self.allowed_email_domains.is_empty() {
            errs.push("oidc.allowed_email_domains is required: list the e-mail domains whose people may sign in, e.g. [\"example.com\"]".to_owned());
        }
        let groups_claim = self.groups_claim.unwrap_or_else(|| "groups".to_owned());
        if groups_claim.trim().is_empty() {
            errs.push(
                "oidc.groups_claim must name the ID token claim that lists the user's groups"
                    .to_owned(),
            );
        }
        let session_ttl = match self.session_ttl.as_deref() {
            None => Duration::from_secs(8 * 3600),
            Some(s) => match parse_duration(s) {
                Ok(d) if d >= Duration::from_secs(60) => d,
                Ok(_) => {
                    errs.push("oidc.session_ttl must be at least 1m".to_owned());
                    Duration::ZERO
                }
                Err(m) => {
                    errs.push(format!("oidc.session_ttl: {m}"));
                    Duration::ZERO
                }
            },
        };
        let mut group_map = BTreeMap::new();
        for (idp, m) in self.groups {
            if idp.is_empty() {
                errs.push("oidc.groups: an IdP group name is empty".to_owned());
            }
            for g in &m.groups {
                if !valid_group_name(g) {
                    errs.push(format!("oidc.groups.\"{idp}\".groups: '{g}' must be 1-100 letters, digits, '-', '_' or '.'"));
                }
            }
            let role = match m.role.as_deref() {
                None => None,
                Some(r) => {
                    match Role::parse(r) {
                        Some(r) => Some(r),
                        None => {
                            errs.push(format!("oidc.groups.\"{idp}\".role: '{r}' must be approver, auditor or admin"));
                            None
                        }
                    }
                }
            };
            if m.groups.is_empty() && role.is_none() {
                errs.push(format!("oidc.groups.\"{idp}\" grants nothing; give it groups = [...] and/or role = \"...\""));
            }
            let mut groups = m.groups;
            groups.sort();
            groups.dedup();
            group_map.insert(idp, GroupGrant { groups, role });
        }
        if group_map.is_empty() {
            errs.push("oidc.groups is required: map at least one IdP group to Pliuz groups or a role, e.g. [oidc.groups.\"finance-approvers\"] groups = [\"finance\"]".to_owned());
        }
        super::fail_on_any(errs)?;
        Ok(OidcSettings {
            issuer,
            client_id,
            client_secret,
            scopes,
            allowed_email_domains: domains,
            groups_claim,
            require_email_verified: self.require_email_verified.unwrap_or(true),
            local_passwords: env("PLIUZ_OIDC_LOCAL_PASSWORDS")
                .map(|v| v == "true" || v == "1")
                .or(self.local_passwords)
                .unwrap_or(true),
            session_ttl,
            display_name: self
                .display_name
                .unwrap_or_else(|| "single sign-on".to_owned()),
            group_map,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<OidcSettings, Vec<String>> {
        let f: FileOidc = toml::from_str(text).map_err(|e| vec![e.to_string()])?;
        f.resolve(&|n| (n == "SECRET").then(|| "s3cret".to_owned()))
    }

    #[test]
    fn a_complete_section_resolves() {
        let s = parse(
            r#"
issuer = "https://idp.example.com/realms/acme/"
client_id = "pliuz"
client_secret_env = "SECRET"
allowed_email_domains = ["Example.com"]
local_passwords = false
[groups."idp-finance"]
groups = ["finance"]
[groups."idp-admins"]
role = "admin"
"#,
        )
        .expect("valid");
        assert_eq!(s.issuer, "https://idp.example.com/realms/acme");
        assert_eq!(s.client_secret.as_deref(), Some("s3cret"));
        assert_eq!(s.allowed_email_domains, vec!["example.com"]);
        assert!(!s.local_passwords);
        assert!(!format!("{s:?}").contains("s3cret"));
    }

    #[test]
    fn every_mistake_names_its_setting() {
        let errs = parse(
            r#"
issuer = "http://idp.example.com"
client_secret_env = "MISSING"
scopes = ["email"]
session_ttl = "soon"
[groups."x"]
role = "boss"
"#,
        )
        .err()
        .unwrap_or_default();
        for needle in [
            "oidc.issuer",
            "oidc.client_id",
            "oidc.client_secret_env",
            "oidc.scopes",
            "oidc.allowed_email_domains",
            "oidc.session_ttl",
            "oidc.groups.\"x\".role",
        ] {
            assert!(
                errs.iter().any(|e| e.contains(needle)),
                "{needle}: {errs:?}"
            );
        }
    }

    #[test]
    fn the_config_check_reports_oidc_mistakes() {
        let errs = crate::config::parse_config_text(
            "[oidc]\nissuer = \"ftp://idp.example.com\"\nclient_id = \"p\"\n",
        )
        .err()
        .unwrap_or_default();
        let messages: Vec<&str> = errs.iter().map(|e| e.message.as_str()).collect();
        assert!(
            messages.iter().any(|m| m.starts_with("oidc.issuer")),
            "{messages:?}"
        );
        assert!(
            messages.iter().any(|m| m.starts_with("oidc.groups")),
            "{messages:?}"
        );
        let unknown = crate::config::parse_config_text("[oidc]\nclient_sekret = \"x\"\n")
            .err()
            .unwrap_or_default();
        assert_eq!(unknown.first().and_then(|e| e.line), Some(2), "{unknown:?}");
    }

    #[test]
    fn grants_union_groups_and_take_the_strongest_role() {
        let mut map = BTreeMap::new();
        map.insert(
            "a".to_owned(),
            GroupGrant {
                groups: vec!["finance".into()],
                role: None,
            },
        );
        map.insert(
            "b".to_owned(),
            GroupGrant {
                groups: vec!["ops".into()],
                role: Some(Role::Auditor),
            },
        );
        let g = grant_for(&map, &["b".into(), "a".into(), "zzz".into()]);
        assert_eq!(
            g,
            Some((Role::Auditor, vec!["finance".into(), "ops".into()]))
        );
        assert_eq!(grant_for(&map, &["zzz".into()]), None);
        assert_eq!(
            grant_for(&map, &["a".into()]),
            Some((Role::Approver, vec!["finance".into()]))
        );
    }
}
