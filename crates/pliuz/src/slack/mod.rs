//! Slack: Block Kit messages, the Web API client, and the interactivity endpoint.
//!
//! - [`blocks`] renders the request message and the reject / edit modals.
//! - [`api`] calls the Slack Web API (the bot token stays in a header).
//! - [`signature`] verifies that an interaction really comes from Slack.
//! - [`interactions`] handles `POST /slack/interactions` (buttons, modals).
//! - `crate::service::slack` remembers posted messages so later updates can edit them.
//!
//! Messages are sent by the durable outbox worker (`crate::outbox`).

pub mod api;
pub mod blocks;
pub mod interactions;
pub mod question_blocks;
pub mod question_interactions;
pub mod signature;

use crate::config::SlackSettings;
use crate::http::AppState;
use api::{SlackClient, SlackError};
use axum::routing::post;
use axum::Router;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a looked-up Slack user ↔ email pair is trusted.
const CACHE_TTL: Duration = Duration::from_secs(600);
/// How long "no such user" is remembered.
const NEGATIVE_TTL: Duration = Duration::from_secs(60);

/// `POST /slack/interactions`; `slack` is `None` when `[slack]` is not
/// configured (the endpoint then answers 404).
pub fn router(slack: Option<Arc<Slack>>) -> Router<AppState> {
    Router::new()
        .route("/slack/interactions", post(interactions::handle))
        .layer(axum::Extension(slack))
}

type Cache = Mutex<HashMap<String, (Option<String>, Instant)>>;

/// The Slack integration: settings, the Web API client and the user caches.
pub struct Slack {
    pub settings: SlackSettings,
    pub client: SlackClient,
    /// Slack user id → Pliuz email.
    emails: Cache,
    /// Pliuz email → Slack user id.
    user_ids: Cache,
}

impl std::fmt::Debug for Slack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Slack")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

fn cached(cache: &Cache, key: &str) -> Option<Option<String>> {
    let map = cache.lock().ok()?;
    let (value, at) = map.get(key)?;
    let ttl = if value.is_some() {
        CACHE_TTL
    } else {
        NEGATIVE_TTL
    };
    (at.elapsed() < ttl).then(|| value.clone())
}

fn remember(cache: &Cache, key: &str, value: Option<String>) {
    if let Ok(mut map) = cache.lock() {
        if map.len() > 10_000 {
            map.clear();
        }
        map.insert(key.to_owned(), (value, Instant::now()));
    }
}

impl Slack {
    pub fn new(settings: &SlackSettings) -> anyhow::Result<Arc<Slack>> {
        Ok(Arc::new(Slack {
            client: SlackClient::new(&settings.api_url, &settings.bot_token)?,
            settings: settings.clone(),
            emails: Mutex::new(HashMap::new()),
            user_ids: Mutex::new(HashMap::new()),
        }))
    }

    /// The Pliuz email of a Slack user: the explicit `[slack.users]` map
    /// first, else the email on their Slack profile (`users.info`, needs the
    /// `users:read.email` scope). `None` when there is none.
    pub async fn email_for_slack_user(
        &self,
        slack_user: &str,
        timeout: Option<Duration>,
    ) -> Result<Option<String>, SlackError> {
        if let Some((email, _)) = self.settings.users.iter().find(|(_, id)| *id == slack_user) {
            return Ok(Some(email.clone()));
        }
        if let Some(hit) = cached(&self.emails, slack_user) {
            return Ok(hit);
        }
        let found = match self
            .client
            .call_form("users.info", &[("user", slack_user)], timeout)
            .await
        {
            Ok(v) => v
                .pointer("/user/profile/email")
                .and_then(Value::as_str)
                .map(|e| e.trim().to_lowercase())
                .filter(|e| !e.is_empty()),
            Err(SlackError::Api(code)) if code == "user_not_found" => None,
            Err(e) => return Err(e),
        };
        remember(&self.emails, slack_user, found.clone());
        Ok(found)
    }

    /// The Slack user id for a Pliuz email: the explicit map first, else
    /// `users.lookupByEmail`. `None` when Slack has no such user.
    pub async fn slack_id_for_email(&self, email: &str) -> Result<Option<String>, SlackError> {
        let email = email.to_lowercase();
        if let Some(id) = self.settings.users.get(&email) {
            return Ok(Some(id.clone()));
        }
        if let Some(hit) = cached(&self.user_ids, &email) {
            return Ok(hit);
        }
        let found = match self
            .client
            .call_form("users.lookupByEmail", &[("email", &email)], None)
            .await
        {
            Ok(v) => v
                .pointer("/user/id")
                .and_then(Value::as_str)
                .map(str::to_owned),
            Err(SlackError::Api(code)) if code == "users_not_found" => None,
            Err(e) => return Err(e),
        };
        remember(&self.user_ids, &email, found.clone());
        Ok(found)
    }
}
