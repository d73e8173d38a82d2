//! Keeps secrets out of the log, at every level and from every library:
//! the log writer itself scrubs each line ([`RedactingStderr`]), and request
//! URIs are recorded already redacted ([`uri`]).
//!
//! What counts as a secret: Pliuz's own prefixed secrets (`pliuz_ak_`,
//! `pliuz_ut_`, `pliuz_su_` setup links, `pliuz_ss_` sessions, `pliuz_el_`
//! e-mail links), Slack tokens
//! (`xoxb-`…, `xapp-`…) and Slack response URLs; in a URI also the value of
//! any query parameter whose name suggests a credential, and any path
//! segment that looks like a random token.

use std::borrow::Cow;
use std::io::Write;

pub const REDACTED: &str = "[redacted]";

/// Prefixes after which everything up to the end of the token is secret.
const SECRET_PREFIXES: &[&str] = &[
    "pliuz_ak_",
    "pliuz_ut_",
    "pliuz_su_",
    "pliuz_ss_",
    "pliuz_el_",
    "xoxb-",
    "xoxp-",
    "xoxa-",
    "xoxr-",
    "xoxs-",
    "xapp-",
    "hooks.slack.com/",
];

/// Query parameters whose values are credentials.
const SECRET_PARAMS: &[&str] = &[
    "token",
    "key",
    "secret",
    "password",
    "passwd",
    "code",
    "sig",
    "signature",
    "auth",
    "session",
    "csrf",
    "api_key",
    "apikey",
    "access_token",
];

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'%' | b'/' | b'+' | b'=')
}

/// `text` with every known secret replaced by `[redacted]`.
pub fn secrets(text: &str) -> Cow<'_, str> {
    let lower = text.to_ascii_lowercase();
    if !SECRET_PREFIXES.iter().any(|p| lower.contains(p)) {
        return Cow::Borrowed(text);
    }
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < bytes.len() {
        let hit = SECRET_PREFIXES
            .iter()
            .find(|p| lower.as_bytes()[i..].starts_with(p.as_bytes()));
        match hit {
            Some(p) => {
                out.push_str(&text[i..i + p.len()]);
                let mut j = i + p.len();
                // '/' is part of a Slack URL's secret path, not of a token.
                while j < bytes.len()
                    && is_token_byte(bytes[j])
                    && (bytes[j] != b'/' || p.ends_with('/'))
                {
                    j += 1;
                }
                if j > i + p.len() {
                    out.push_str(REDACTED);
                }
                i = j;
            }
            None => {
                let ch = text[i..].chars().next().unwrap_or(' ');
                out.push(ch);
                i += ch.len_utf8().max(1);
            }
        }
    }
    Cow::Owned(out)
}

/// A path segment that looks like a random secret rather than a name or id:
/// long, from a token alphabet, mixing letters and digits, and not a UUID.
fn looks_like_token(seg: &str) -> bool {
    seg.len() >= 24
        && seg
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        && seg.bytes().any(|b| b.is_ascii_digit())
        && seg.bytes().any(|b| b.is_ascii_alphabetic())
        && uuid::Uuid::try_parse(seg).is_err()
}

/// A request URI safe to log: secrets in the path and credential-like
/// query values replaced by `[redacted]`.
pub fn uri(uri: &axum::http::Uri) -> String {
    let path = uri
        .path()
        .split('/')
        .map(|seg| if looks_like_token(seg) { REDACTED } else { seg })
        .collect::<Vec<_>>()
        .join("/");
    let mut out = secrets(&path).into_owned();
    if let Some(q) = uri.query() {
        out.push('?');
        let parts: Vec<String> = q
            .split('&')
            .map(|pair| {
                let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
                let n = name.to_ascii_lowercase();
                if !value.is_empty()
                    && (SECRET_PARAMS
                        .iter()
                        .any(|s| n == *s || n.ends_with(&format!("_{s}")))
                        || looks_like_token(value)
                        || nested_uri_has_secret(value))
                {
                    format!("{name}={REDACTED}")
                } else {
                    pair.to_owned()
                }
            })
            .collect();
        out.push_str(&secrets(&parts.join("&")));
    }
    out
}

/// A query value that is itself a URI (`/login?next=/inbox%3Ftoken%3D…`)
/// with a secret in it.
fn nested_uri_has_secret(value: &str) -> bool {
    let decoded: String = form_urlencoded::parse(format!("v={value}").as_bytes())
        .map(|(_, v)| v.into_owned())
        .next()
        .unwrap_or_default();
    if decoded == value || !decoded.starts_with('/') {
        return false;
    }
    match decoded.parse::<axum::http::Uri>() {
        Ok(inner) => uri(&inner) != decoded,
        Err(_) => true,
    }
}

/// The span `tower_http`'s trace layer opens per request, with the URI
/// redacted (its default records the URI as is).
pub fn request_span<B>(req: &axum::http::Request<B>) -> tracing::Span {
    tracing::debug_span!(
        "request",
        method = %req.method(),
        uri = %uri(req.uri()),
        version = ?req.version(),
    )
}

/// A `tracing` writer to stderr that scrubs secrets from every line. The
/// formatter (text or JSON) writes each event with one `write` call, so a
/// secret is never split across calls.
#[derive(Debug, Clone, Copy, Default)]
pub struct RedactingStderr;

/// Scrubs secrets from what is written through it, then passes it on.
pub struct RedactingWriter<W: Write = std::io::Stderr>(W);

impl<W: Write> Write for RedactingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        self.0.write_all(secrets(&text).as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for RedactingStderr {
    type Writer = RedactingWriter;

    fn make_writer(&'a self) -> RedactingWriter {
        RedactingWriter(std::io::stderr())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A log sink for tests, scrubbed by the same writer as stderr.
    #[derive(Clone, Default)]
    struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .map_err(|_| std::io::Error::other("poisoned"))?
                .extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn json_log_lines_are_scrubbed_and_stay_json() {
        let sink = Captured::default();
        let writer = sink.clone();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .with_writer(move || RedactingWriter(writer.clone()))
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("request", uri = "/x?next=pliuz_su_SetupSecret1");
            let _entered = span.enter();
            tracing::warn!(
                key = "pliuz_ak_AgentSecret42",
                hook = "https://hooks.slack.com/services/T0/B0/HookSecret",
                "slack said no to xoxb-1-2-BotSecret \"quoted pliuz_ut_UserSecret\""
            );
        });
        let bytes = sink.0.lock().unwrap().clone();
        let text = String::from_utf8(bytes).unwrap();
        for secret in [
            "SetupSecret1",
            "AgentSecret42",
            "HookSecret",
            "BotSecret",
            "UserSecret",
        ] {
            assert!(!text.contains(secret), "{secret} leaked: {text}");
        }
        let line: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
        assert_eq!(line["level"], "WARN");
        assert_eq!(line["fields"]["key"], "pliuz_ak_[redacted]");
        assert_eq!(
            line["fields"]["message"],
            "slack said no to xoxb-[redacted] \"quoted pliuz_ut_[redacted]\""
        );
    }

    #[test]
    fn prefixed_secrets_are_scrubbed_wherever_they_appear() {
        let t = "GET /setup/pliuz_su_AbC-12_x9?x=1 and Bearer pliuz_ut_zz9 xoxb-1-2-abc, https://hooks.slack.com/actions/T1/2/xyz done";
        let r = secrets(t);
        assert_eq!(
            r,
            "GET /setup/pliuz_su_[redacted]?x=1 and Bearer pliuz_ut_[redacted] xoxb-[redacted], https://hooks.slack.com/[redacted] done"
        );
        assert!(matches!(secrets("nothing to see"), Cow::Borrowed(_)));
        assert_eq!(
            secrets("/login?next=%2Femail-link%2Fpliuz_el_Ab-9_z&x=1"),
            "/login?next=%2Femail-link%2Fpliuz_el_[redacted]&x=1"
        );
        assert_eq!(
            secrets("ünïcode pliuz_ss_a€"),
            "ünïcode pliuz_ss_[redacted]€"
        );
    }

    #[test]
    fn uris_lose_token_paths_and_credential_queries() {
        let u: axum::http::Uri = "/setup/pliuz_su_abc?next=/inbox".parse().unwrap();
        assert_eq!(uri(&u), "/setup/pliuz_su_[redacted]?next=/inbox");
        let u: axum::http::Uri =
            "/x/Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MA?access_token=abc&status=pending&csrf=q"
                .parse()
                .unwrap();
        assert_eq!(
            uri(&u),
            "/x/[redacted]?access_token=[redacted]&status=pending&csrf=[redacted]"
        );
        let u: axum::http::Uri = "/requests/0193a1b2-7c3d-7e4f-8a9b-0c1d2e3f4a5b"
            .parse()
            .unwrap();
        assert_eq!(uri(&u), "/requests/0193a1b2-7c3d-7e4f-8a9b-0c1d2e3f4a5b");
        let u: axum::http::Uri = "/login?next=%2Finbox%3Faccess_token%3Dhunter2&x=%2Finbox"
            .parse()
            .unwrap();
        assert_eq!(uri(&u), "/login?next=[redacted]&x=%2Finbox");
    }
}
