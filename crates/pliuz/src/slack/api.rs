//! A small Slack Web API client: JSON for write methods, form encoding for
//! the read methods that do not accept JSON. The bot token travels only in
//! the `Authorization` header and never appears in an error or a log line.

use serde_json::Value;
use std::time::Duration;

/// How long any one Slack call may take.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a call failed, classified for the retry policy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SlackError {
    /// HTTP 429: wait this long before calling again.
    #[error("rate limited by Slack; retry after {retry_after_secs}s")]
    RateLimited { retry_after_secs: u64 },
    /// Any other non-2xx status (5xx: Slack trouble, retried).
    #[error("Slack answered HTTP {status}")]
    Http { status: u16 },
    /// No answer: connection refused, DNS, timeout...
    #[error("could not reach Slack: {0}")]
    Network(String),
    /// `{"ok": false, "error": "..."}`.
    #[error("Slack refused the call: {0}")]
    Api(String),
    #[error("Slack's answer was not understood: {0}")]
    Decode(String),
}

impl SlackError {
    /// Errors worth retrying without limit: Slack or the network is having
    /// trouble, and nothing is wrong with the request itself.
    pub fn is_transient(&self) -> bool {
        match self {
            SlackError::RateLimited { .. } | SlackError::Network(_) => true,
            SlackError::Http { status } => *status >= 500 || *status == 408,
            SlackError::Api(code) => matches!(
                code.as_str(),
                "ratelimited"
                    | "rate_limited"
                    | "internal_error"
                    | "fatal_error"
                    | "service_unavailable"
                    | "request_timeout"
            ),
            SlackError::Decode(_) => true,
        }
    }
}

#[derive(Clone)]
pub struct SlackClient {
    http: reqwest::Client,
    base: String,
    token: String,
}

// The token must not leak through `{:?}` either.
impl std::fmt::Debug for SlackClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlackClient")
            .field("base", &self.base)
            .field("token", &"[redacted]")
            .finish()
    }
}

/// Describes a reqwest failure without its URL query (none is ever sent,
/// but be safe) and without headers.
fn network_error(e: &reqwest::Error) -> SlackError {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    let mut msg = kind.to_owned();
    if let Some(url) = e.url() {
        msg.push_str(&format!(
            " ({}{})",
            url.host_str().unwrap_or(""),
            url.path()
        ));
    }
    SlackError::Network(msg)
}

impl SlackClient {
    pub fn new(base: &str, token: &str) -> anyhow::Result<SlackClient> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(CALL_TIMEOUT)
            .user_agent(concat!("pliuz/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| anyhow::anyhow!("cannot build the Slack HTTP client: {e}"))?;
        Ok(SlackClient {
            http,
            base: base.trim_end_matches('/').to_owned(),
            token: token.to_owned(),
        })
    }

    fn url(&self, method: &str) -> String {
        format!("{}/{method}", self.base)
    }

    /// Calls a write method with a JSON body.
    pub async fn call(&self, method: &str, body: &Value) -> Result<Value, SlackError> {
        self.call_with(method, body, None).await
    }

    /// Like [`call`](Self::call) with a shorter deadline (inside Slack's 3 s).
    pub async fn call_with(
        &self,
        method: &str,
        body: &Value,
        timeout: Option<Duration>,
    ) -> Result<Value, SlackError> {
        let req = self.post(method).json(body);
        Self::send(req, timeout).await
    }

    /// Calls a read method (`users.info`, `users.lookupByEmail`) with form fields.
    pub async fn call_form(
        &self,
        method: &str,
        fields: &[(&str, &str)],
        timeout: Option<Duration>,
    ) -> Result<Value, SlackError> {
        let req = self.post(method).form(fields);
        Self::send(req, timeout).await
    }

    /// A call to Web API `method` with the bot token, body still to add.
    fn post(&self, method: &str) -> reqwest::RequestBuilder {
        self.http.post(self.url(method)).bearer_auth(&self.token)
    }

    async fn send(
        req: reqwest::RequestBuilder,
        timeout: Option<Duration>,
    ) -> Result<Value, SlackError> {
        let req = match timeout {
            Some(t) => req.timeout(t),
            None => req,
        };
        Self::answer(req.send().await).await
    }

    /// Posts to an interaction's `response_url` (no token: it is its own credential).
    pub async fn respond(&self, response_url: &str, body: &Value) -> Result<(), SlackError> {
        let r = self
            .http
            .post(response_url)
            .timeout(Duration::from_secs(5))
            .json(body)
            .send()
            .await
            .map_err(|e| network_error(&e))?;
        if r.status().is_success() {
            Ok(())
        } else {
            Err(SlackError::Http {
                status: r.status().as_u16(),
            })
        }
    }

    async fn answer(sent: Result<reqwest::Response, reqwest::Error>) -> Result<Value, SlackError> {
        let r = sent.map_err(|e| network_error(&e))?;
        let status = r.status();
        if status.as_u16() == 429 {
            let retry_after_secs = r
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(30);
            return Err(SlackError::RateLimited { retry_after_secs });
        }
        if !status.is_success() {
            return Err(SlackError::Http {
                status: status.as_u16(),
            });
        }
        let v: Value = r.json().await.map_err(|e| {
            if e.is_timeout() {
                network_error(&e)
            } else {
                SlackError::Decode("the body is not JSON".into())
            }
        })?;
        if v.get("ok").and_then(Value::as_bool) == Some(true) {
            Ok(v)
        } else {
            let code = v
                .get("error")
                .and_then(Value::as_str)
                .unwrap_or("unknown_error");
            // Slack error codes are short identifiers; keep only those characters.
            let code: String = code
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
                .take(80)
                .collect();
            Err(SlackError::Api(code))
        }
    }
}
