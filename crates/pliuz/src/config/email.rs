//! `[email]`: the SMTP server request e-mails go through, and the links in
//! them. Every setting is checked at start; a mistake names the setting.
//! The password comes from a file or the environment, never the config
//! file, and is never logged.

use crate::policy::parse_duration;
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

/// The environment variable that may carry the SMTP password.
pub const PASSWORD_ENV: &str = "PLIUZ_EMAIL_PASSWORD";
/// Accepted range of `email.link_ttl`.
pub const LINK_TTL_RANGE: (Duration, Duration) =
    (Duration::from_secs(1), Duration::from_secs(30 * 24 * 3600));
/// `email.link_ttl` when unset.
pub const DEFAULT_LINK_TTL: Duration = Duration::from_secs(24 * 3600);

#[derive(Debug, Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
pub struct FileEmail {
    host: Option<String>,
    port: Option<i64>,
    tls: Option<String>,
    username: Option<String>,
    password_file: Option<PathBuf>,
    from: Option<String>,
    link_base_url: Option<String>,
    link_ttl: Option<String>,
}

/// How the connection to the SMTP server is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tls {
    /// TLS from the first byte (SMTPS, usually port 465).
    Tls,
    /// Plain connection upgraded with STARTTLS, which is required (usually 587).
    StartTls,
    /// No encryption: only for a relay on the same host or in tests.
    None,
}

impl Tls {
    fn parse(s: &str) -> Result<Tls, String> {
        match s {
            "tls" => Ok(Tls::Tls),
            "starttls" => Ok(Tls::StartTls),
            "none" => Ok(Tls::None),
            other => Err(format!(
                "email.tls '{other}' must be \"starttls\", \"tls\" or \"none\""
            )),
        }
    }

    fn default_port(self) -> u16 {
        match self {
            Tls::Tls => 465,
            Tls::StartTls => 587,
            Tls::None => 25,
        }
    }
}

/// The SMTP password: redacted in every `Debug`.
#[derive(Clone)]
pub struct Password(pub String);

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(redacted)")
    }
}

#[derive(Debug, Clone)]
pub struct EmailSettings {
    pub host: String,
    pub port: u16,
    pub tls: Tls,
    pub username: Option<String>,
    pub password: Option<Password>,
    /// The `From:` mailbox, e.g. `Pliuz <pliuz@example.com>`.
    pub from: String,
    /// Where links in e-mails point (default: `public_url`).
    pub link_base_url: String,
    /// How long a link in an e-mail works.
    pub link_ttl: Duration,
}

impl FileEmail {
    /// The settings, or every mistake (each naming its setting).
    /// `env` reads an environment variable; `public_url` is the default
    /// link base.
    pub fn resolve(
        self,
        env: &dyn Fn(&str) -> Option<String>,
        public_url: &str,
    ) -> Result<EmailSettings, Vec<String>> {
        let mut errors = Vec::new();
        let host = self.host.unwrap_or_default().trim().to_owned();
        if host.is_empty() {
            errors.push("email.host is required: the SMTP server's name".to_owned());
        }
        let tls = match self.tls.as_deref() {
            None => Tls::StartTls,
            Some(t) => Tls::parse(t).unwrap_or_else(|m| {
                errors.push(m);
                Tls::StartTls
            }),
        };
        let port = match self.port {
            None => tls.default_port(),
            Some(p) => u16::try_from(p).ok().filter(|p| *p > 0).unwrap_or_else(|| {
                errors.push(format!("email.port {p} must be between 1 and 65535"));
                25
            }),
        };
        let from = self.from.unwrap_or_default();
        if from.parse::<lettre::message::Mailbox>().is_err() {
            errors.push(format!(
                "email.from '{from}' is not a mailbox; write e.g. \"Pliuz <pliuz@example.com>\""
            ));
        }
        let password = match (env(PASSWORD_ENV), &self.password_file) {
            (Some(p), _) => Some(Password(p)),
            (None, Some(path)) => match std::fs::read_to_string(path) {
                Ok(p) => Some(Password(p.trim_end_matches(['\r', '\n']).to_owned())),
                Err(e) => {
                    errors.push(format!(
                        "email.password_file {}: cannot read it: {e}",
                        path.display()
                    ));
                    None
                }
            },
            (None, None) => None,
        };
        let username = self.username.filter(|u| !u.is_empty());
        if password.is_some() != username.is_some() {
            errors.push(format!(
                "email.username and a password (email.password_file or {PASSWORD_ENV}) go together: give both, or neither for a server without log-in"
            ));
        }
        let link_base_url = self
            .link_base_url
            .unwrap_or_else(|| public_url.to_owned())
            .trim_end_matches('/')
            .to_owned();
        if !(link_base_url.starts_with("http://") || link_base_url.starts_with("https://")) {
            errors.push(format!(
                "email.link_base_url '{link_base_url}' must start with http:// or https://"
            ));
        }
        let link_ttl = match self.link_ttl {
            None => DEFAULT_LINK_TTL,
            Some(t) => match parse_duration(&t) {
                Ok(d) if d >= LINK_TTL_RANGE.0 && d <= LINK_TTL_RANGE.1 => d,
                Ok(_) => {
                    errors.push(format!(
                        "email.link_ttl '{t}' must be between 1s and 30 days"
                    ));
                    DEFAULT_LINK_TTL
                }
                Err(m) => {
                    errors.push(format!("email.link_ttl {m}"));
                    DEFAULT_LINK_TTL
                }
            },
        };
        super::fail_on_any(errors)?;
        Ok(EmailSettings {
            host,
            port,
            tls,
            username,
            password,
            from,
            link_base_url,
            link_ttl,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(toml_text: &str) -> FileEmail {
        toml::from_str(toml_text).unwrap()
    }

    #[test]
    fn defaults_and_every_mistake_named() {
        let ok = file("host = \"smtp.example.com\"\nfrom = \"Pliuz <p@example.com>\"")
            .resolve(&|_| None, "https://pliuz.example.com/")
            .unwrap();
        assert_eq!((ok.port, ok.tls), (587, Tls::StartTls));
        assert_eq!(ok.link_base_url, "https://pliuz.example.com");
        assert_eq!(ok.link_ttl, DEFAULT_LINK_TTL);
        let errs = file(
            "port = 70000\ntls = \"ssl\"\nfrom = \"nobody\"\nusername = \"u\"\nlink_ttl = \"0s\"",
        )
        .resolve(&|_| None, "x")
        .unwrap_err();
        for key in [
            "email.host",
            "email.tls",
            "email.port",
            "email.from",
            "email.username",
            "email.link_base_url",
            "email.link_ttl",
        ] {
            assert!(errs.iter().any(|e| e.contains(key)), "{key}: {errs:?}");
        }
    }

    #[test]
    fn the_password_comes_from_the_environment_and_is_never_shown() {
        let s = file("host = \"h\"\nfrom = \"p@example.com\"\nusername = \"u\"")
            .resolve(
                &|k| (k == PASSWORD_ENV).then(|| "s3cret-pw".to_owned()),
                "http://x",
            )
            .unwrap();
        assert_eq!(s.password.as_ref().map(|p| p.0.as_str()), Some("s3cret-pw"));
        assert!(!format!("{s:?}").contains("s3cret-pw"));
    }
}
