//! A fake Slack Web API in the test process: records every call and can be
//! told to fail (HTTP 500, 429 with Retry-After, or be "down" entirely).

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct Call {
    /// `chat.postMessage`, ..., or `response_url` for posts to a response URL.
    pub method: String,
    pub body: Value,
    /// The HTTP status the fake answered with.
    pub status: u16,
    /// The JSON the fake answered with (when 200).
    pub answer: Value,
    pub authorization: Option<String>,
    pub at: Instant,
}

impl Call {
    pub fn ok(&self) -> bool {
        self.status == 200 && self.answer.get("ok") == Some(&json!(true))
    }
}

#[derive(Default)]
struct FakeState {
    calls: Vec<Call>,
    fail_500: u32,
    rate_limit: u32,
    retry_after_secs: u64,
    down: bool,
    /// Slack user id → email.
    users: HashMap<String, String>,
    /// Channels that answer `channel_not_found`.
    missing_channels: Vec<String>,
    next_ts: u64,
    token: String,
}

#[derive(Clone)]
pub struct FakeSlack {
    pub base: String,
    state: Arc<Mutex<FakeState>>,
}

fn parse_body(headers: &HeaderMap, body: &[u8]) -> Value {
    let ct = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if ct.starts_with("application/json") {
        serde_json::from_slice(body).unwrap_or(Value::Null)
    } else {
        let mut m = Map::new();
        for (k, v) in form_urlencoded::parse(body) {
            m.insert(k.into_owned(), Value::String(v.into_owned()));
        }
        Value::Object(m)
    }
}

/// Slack answers channel names with channel ids; DMs to a user with a `D` id.
fn channel_id(target: &str) -> String {
    if let Some(name) = target.strip_prefix('#') {
        format!("C{}", name.to_uppercase())
    } else if let Some(user) = target.strip_prefix('U') {
        format!("DU{user}")
    } else {
        target.to_owned()
    }
}

/// The `Authorization` header as sent, to check which token was used.
fn authorization(headers: &HeaderMap) -> Option<String> {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

async fn api(
    State(fake): State<FakeSlack>,
    Path(method): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let parsed = parse_body(&headers, &body);
    let authorization = authorization(&headers);
    let mut s = fake.state.lock().unwrap();
    let (status, answer, retry_after) = if s.down {
        (500, Value::Null, None)
    } else if s.rate_limit > 0 {
        s.rate_limit -= 1;
        (429, Value::Null, Some(s.retry_after_secs))
    } else if s.fail_500 > 0 {
        s.fail_500 -= 1;
        (500, Value::Null, None)
    } else if authorization.as_deref() != Some(&format!("Bearer {}", s.token)) {
        (200, json!({"ok": false, "error": "invalid_auth"}), None)
    } else {
        let answer = match method.as_str() {
            "chat.postMessage" => {
                let target = parsed["channel"].as_str().unwrap_or("").to_owned();
                if s.missing_channels.contains(&target) {
                    json!({"ok": false, "error": "channel_not_found"})
                } else {
                    s.next_ts += 1;
                    json!({"ok": true, "channel": channel_id(&target), "ts": format!("1700000000.{:06}", s.next_ts)})
                }
            }
            "chat.update" => json!({"ok": true, "channel": parsed["channel"], "ts": parsed["ts"]}),
            "views.open" => json!({"ok": true, "view": {"id": "V1"}}),
            "chat.postEphemeral" => json!({"ok": true, "message_ts": "1.1"}),
            "users.info" => {
                let id = parsed["user"].as_str().unwrap_or("");
                match s.users.get(id) {
                    Some(email) => {
                        json!({"ok": true, "user": {"id": id, "profile": {"email": email}}})
                    }
                    None => json!({"ok": false, "error": "user_not_found"}),
                }
            }
            "users.lookupByEmail" => {
                let email = parsed["email"].as_str().unwrap_or("");
                match s.users.iter().find(|(_, e)| e.as_str() == email) {
                    Some((id, _)) => json!({"ok": true, "user": {"id": id}}),
                    None => json!({"ok": false, "error": "users_not_found"}),
                }
            }
            _ => json!({"ok": false, "error": "unknown_method"}),
        };
        (200, answer, None)
    };
    s.calls
        .push(call(method, parsed, status, answer.clone(), authorization));
    drop(s);
    match status {
        200 => Json(answer).into_response(),
        429 => (
            StatusCode::TOO_MANY_REQUESTS,
            [("retry-after", retry_after.unwrap_or(1).to_string())],
            "slow down",
        )
            .into_response(),
        _ => (StatusCode::INTERNAL_SERVER_ERROR, "oops").into_response(),
    }
}

/// A post to a response URL: recorded and accepted.
async fn response_url(State(fake): State<FakeSlack>, headers: HeaderMap, body: Bytes) -> Response {
    let parsed = parse_body(&headers, &body);
    let answer = json!({"ok": true});
    let recorded = call(
        "response_url".into(),
        parsed,
        200,
        answer,
        authorization(&headers),
    );
    fake.state.lock().unwrap().calls.push(recorded);
    "ok".into_response()
}

/// A call as recorded, received now.
fn call(
    method: String,
    body: Value,
    status: u16,
    answer: Value,
    authorization: Option<String>,
) -> Call {
    Call {
        method,
        body,
        status,
        answer,
        authorization,
        at: Instant::now(),
    }
}

impl FakeSlack {
    pub async fn start(token: &str) -> FakeSlack {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let fake = FakeSlack {
            base,
            state: Arc::new(Mutex::new(FakeState {
                token: token.to_owned(),
                retry_after_secs: 1,
                ..FakeState::default()
            })),
        };
        let app = Router::new()
            .route("/api/{method}", post(api))
            .route("/response/{rest}", post(response_url))
            .with_state(fake.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        fake
    }

    pub fn api_url(&self) -> String {
        format!("{}/api", self.base)
    }

    pub fn response_url(&self, name: &str) -> String {
        format!("{}/response/{name}", self.base)
    }

    pub fn add_user(&self, id: &str, email: &str) {
        self.state
            .lock()
            .unwrap()
            .users
            .insert(id.to_owned(), email.to_owned());
    }

    pub fn missing_channel(&self, name: &str) {
        self.state
            .lock()
            .unwrap()
            .missing_channels
            .push(name.to_owned());
    }

    /// The next `n` Web API calls answer HTTP 500.
    pub fn fail_next(&self, n: u32) {
        self.state.lock().unwrap().fail_500 = n;
    }

    /// The next `n` Web API calls answer 429 with `Retry-After: secs`.
    pub fn rate_limit_next(&self, n: u32, secs: u64) {
        let mut s = self.state.lock().unwrap();
        s.rate_limit = n;
        s.retry_after_secs = secs;
    }

    /// While down, every Web API call answers HTTP 500.
    pub fn set_down(&self, down: bool) {
        self.state.lock().unwrap().down = down;
    }

    pub fn calls(&self) -> Vec<Call> {
        self.state.lock().unwrap().calls.clone()
    }

    pub fn calls_to(&self, method: &str) -> Vec<Call> {
        self.calls()
            .into_iter()
            .filter(|c| c.method == method)
            .collect()
    }

    /// Waits until some call satisfies `pred`; returns it.
    pub async fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&Call) -> bool,
    ) -> Call {
        super::eventually(
            what,
            timeout,
            || self.calls().into_iter().find(|c| pred(c)),
            || {
                self.calls()
                    .into_iter()
                    .map(|c| (c.method, c.status, c.answer))
                    .collect::<Vec<_>>()
            },
        )
        .await
    }
}

/// Text of a Slack message body (fallback text plus every block), for asserts.
pub fn message_text(body: &Value) -> String {
    body.to_string()
}
