//! Slack request signing (v0): `HMAC-SHA256(signing_secret, "v0:{ts}:{raw body}")`,
//! hex, prefixed `v0=`, sent in `X-Slack-Signature` with the timestamp in
//! `X-Slack-Request-Timestamp`. The signature is computed over the raw body,
//! before any decoding, and compared in constant time.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Requests older (or newer) than this are refused, so a captured request
/// cannot be replayed later.
pub const MAX_SKEW_SECS: i64 = 300;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the X-Slack-Request-Timestamp or X-Slack-Signature header is missing")]
    Missing,
    #[error("X-Slack-Request-Timestamp is not a Unix time in seconds")]
    BadTimestamp,
    #[error("the request timestamp is more than 5 minutes away from the server's clock; refusing a possible replay")]
    Stale,
    #[error("the Slack signature does not match; check the signing secret")]
    Mismatch,
}

fn mac(secret: &str, timestamp: &str, body: &[u8]) -> Hmac<Sha256> {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    m.update(b"v0:");
    m.update(timestamp.as_bytes());
    m.update(b":");
    m.update(body);
    m
}

/// The `X-Slack-Signature` value Slack would send for this request.
pub fn sign(secret: &str, timestamp: &str, body: &[u8]) -> String {
    format!(
        "v0={}",
        hex::encode(mac(secret, timestamp, body).finalize().into_bytes())
    )
}

/// Checks a request's signature and freshness (`now` in Unix seconds).
pub fn verify(
    secret: &str,
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now: i64,
) -> Result<(), SignatureError> {
    let (Some(ts), Some(sig)) = (timestamp, signature) else {
        return Err(SignatureError::Missing);
    };
    let ts_num: i64 = ts
        .trim()
        .parse()
        .map_err(|_| SignatureError::BadTimestamp)?;
    if (now - ts_num).abs() > MAX_SKEW_SECS {
        return Err(SignatureError::Stale);
    }
    let Some(hex_sig) = sig.trim().strip_prefix("v0=") else {
        return Err(SignatureError::Mismatch);
    };
    let Ok(given) = hex::decode(hex_sig) else {
        return Err(SignatureError::Mismatch);
    };
    // `verify_slice` compares in constant time.
    mac(secret, ts, body)
        .verify_slice(&given)
        .map_err(|_| SignatureError::Mismatch)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Slack's published example (api.slack.com/authentication/verifying-requests-from-slack).
    const SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";
    const TS: &str = "1531420618";
    const BODY: &str = "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
    const EXPECTED: &str = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";

    #[test]
    fn slack_published_example() {
        assert_eq!(sign(SECRET, TS, BODY.as_bytes()), EXPECTED);
        assert_eq!(
            verify(
                SECRET,
                Some(TS),
                Some(EXPECTED),
                BODY.as_bytes(),
                1531420618 + 10
            ),
            Ok(())
        );
    }

    #[test]
    fn tampering_and_replays_are_refused() {
        let now = 1531420618;
        let mut body = BODY.as_bytes().to_vec();
        body[0] = b'T';
        assert_eq!(
            verify(SECRET, Some(TS), Some(EXPECTED), &body, now),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify("wrong", Some(TS), Some(EXPECTED), BODY.as_bytes(), now),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(SECRET, Some(TS), Some("v0=zz"), BODY.as_bytes(), now),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(SECRET, Some(TS), Some(EXPECTED), BODY.as_bytes(), now + 301),
            Err(SignatureError::Stale)
        );
        assert_eq!(
            verify(SECRET, Some(TS), Some(EXPECTED), BODY.as_bytes(), now - 301),
            Err(SignatureError::Stale)
        );
        assert_eq!(
            verify(SECRET, None, Some(EXPECTED), BODY.as_bytes(), now),
            Err(SignatureError::Missing)
        );
        assert_eq!(
            verify(SECRET, Some("soon"), Some(EXPECTED), BODY.as_bytes(), now),
            Err(SignatureError::BadTimestamp)
        );
    }
}
