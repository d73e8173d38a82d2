//! Queueing webhook events (`crate::webhooks` delivers them): each event is
//! written to the outbox in the transaction of the change it announces.

use crate::store::runs::WEBHOOK_KIND;
use crate::store::{StoreError, WriteTx};
use base64::Engine;
use rand::RngCore;
use serde_json::{json, Value};

/// A new signing secret: `whsec_` + base64 of 32 random bytes.
pub fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!(
        "{}{}",
        crate::service::runs::WEBHOOK_SECRET_PREFIX,
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}

/// Webhook URLs must be absolute http(s) URLs.
pub fn check_url(url: &str) -> Result<(), String> {
    let parsed = reqwest::Url::parse(url)
        .map_err(|e| format!("'{url}' is not a URL ({e}); give an absolute https:// URL"))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(format!("'{url}' must be an http:// or https:// URL"));
    }
    if url.len() > 2000 {
        return Err("the URL must be at most 2000 characters".into());
    }
    Ok(())
}

/// Queues an event for `agent`'s webhook, if it has one (part of `tx`;
/// whether it has one is checked by the insert itself, at commit).
pub async fn enqueue(
    tx: &mut WriteTx,
    agent: &str,
    event_type: &str,
    approval_id: Option<&str>,
    dedupe: &str,
    data: Value,
) -> Result<(), StoreError> {
    let body = json!({
        "type": event_type,
        "timestamp": crate::store::format_time(crate::store::now_millis()),
        "data": data,
    });
    tx.enqueue_for_webhook_of(
        agent,
        WEBHOOK_KIND,
        approval_id,
        &format!("webhook:{dedupe}"),
        &json!({
            "agent": agent,
            "type": event_type,
            "webhook_id": format!("msg_{}", uuid::Uuid::now_v7().simple()),
            "body": body.to_string(),
        }),
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_must_be_http() {
        assert!(check_url("https://example.com/hook").is_ok());
        assert!(check_url("ftp://example.com").is_err());
        assert!(check_url("not a url").is_err());
    }
}
