//! Slack end to end: the real `pliuz` binary talks to a fake Slack Web API
//! in this process; interactions are signed the way Slack signs them.

mod support;

use hmac::{Hmac, Mac};
use reqwest::{Client, StatusCode};
use serde_json::{json, Value};
use sha2::Sha256;
use std::time::{Duration, Instant};
use support::slack_fake::{Call, FakeSlack};
use support::{env_vars, finance_policy, send_json, Server, FAST_OUTBOX, PAYOUTS_SETTINGS};

const TOKEN: &str = "xoxb-test-TOKEN-must-never-be-logged-4242";
const SECRET: &str = "signing-SECRET-must-never-be-logged-9f8e";
const WAIT: Duration = Duration::from_secs(20);

fn config(fake: &FakeSlack, dm_approvers: bool) -> String {
    format!(
        r##"
public_url = "http://pliuz.test"

[slack]
bot_token = "{TOKEN}"
signing_secret = "{SECRET}"
api_url = "{api}"
default_channel = "#approvals"
dm_approvers = {dm_approvers}

[slack.users]
"fin@example.com" = "UFIN"

{refunds}slack_channel = "#refunds"
{deletes}{payouts}{quick}{lost}{answers}{careful}"##,
        api = fake.api_url(),
        refunds = support::REFUNDS_POLICY,
        deletes = finance_policy(
            "deletes",
            "delete_db",
            r#"decisions = ["approve", "reject"]"#
        ),
        payouts = finance_policy("payouts", "pay_out", PAYOUTS_SETTINGS),
        quick = finance_policy(
            "quick",
            "quick_tool",
            "expires_in = \"2s\"\nslack_channel = \"#quick\""
        ),
        lost = finance_policy("lost", "lost_tool", r##"slack_channel = "#nowhere""##),
        answers = finance_policy(
            "answers",
            "ask_user",
            r#"decisions = ["approve", "reject", "respond"]"#
        ),
        careful = finance_policy(
            "careful",
            "careful_tool",
            r#"reject_reasons = ["wrong amount", "wrong customer"]"#
        ),
    )
}

/// Short delays so retries happen within a test's patience.
fn fast_env() -> Vec<(String, String)> {
    let mut vars = env_vars(&FAST_OUTBOX);
    vars.extend(env_vars(&[
        ("PLIUZ_OUTBOX_MAX_ATTEMPTS", "3"),
        ("PLIUZ_OUTBOX_LEASE_MS", "3000"),
    ]));
    vars
}

struct Env {
    fake: FakeSlack,
    server: Server,
    http: Client,
    agent: String,
    fin: String,
}

async fn env(dm_approvers: bool) -> Env {
    env_on(dm_approvers, None).await
}

async fn env_on(dm_approvers: bool, database_url: Option<String>) -> Env {
    let fake = FakeSlack::start(TOKEN).await;
    // fin is mapped by [slack.users]; the others by their Slack profile email.
    fake.add_user("UFIN2", "fin2@example.com");
    fake.add_user("USALES", "sales@example.com");
    fake.add_user("UNOBODY", "nobody@example.com");
    fake.missing_channel("#nowhere");
    let server = Server::start_with(&config(&fake, dm_approvers), database_url, fast_env()).await;
    let agent = server.agent_key("bot");
    let fin = server.user_token("fin@example.com", "approver", &["finance"]);
    server.user_token("fin2@example.com", "approver", &["finance"]);
    server.user_token("sales@example.com", "approver", &["sales"]);
    Env {
        fake,
        server,
        http: Client::new(),
        agent,
        fin,
    }
}

impl Env {
    async fn create(&self, body: Value) -> Value {
        let request = self.http.post(self.server.url("/api/v1/approvals"));
        let (status, created) = send_json(request.bearer_auth(&self.agent).json(&body)).await;
        assert!(status.is_success(), "create failed: {status}: {created}");
        created
    }

    async fn get(&self, id: &str) -> Value {
        self.http
            .get(self.server.url(&format!("/api/v1/approvals/{id}")))
            .bearer_auth(&self.agent)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// The agent's long-poll, started now, answered when the request settles.
    fn long_poll(&self, id: &str) -> tokio::task::JoinHandle<(Instant, Value)> {
        let url = self.server.url(&format!("/api/v1/approvals/{id}?wait=30"));
        support::long_poll(&self.http, url, &self.agent)
    }

    /// Creates a request and waits for its message: the request, its id and
    /// the post.
    async fn create_posted(&self, body: Value) -> (Value, String, Call) {
        let created = self.create(body).await;
        let id = created["id"].as_str().expect("id").to_owned();
        let post = self.posted(&id).await;
        (created, id, post)
    }

    /// Waits for the request's message to be posted; returns the call.
    async fn posted(&self, id: &str) -> Call {
        let needle = format!("/requests/{id}");
        self.fake
            .wait_for("chat.postMessage", WAIT, |c| {
                c.method == "chat.postMessage" && c.ok() && c.body.to_string().contains(&needle)
            })
            .await
    }

    fn successful_posts(&self, id: &str) -> Vec<Call> {
        let needle = format!("/requests/{id}");
        self.fake
            .calls_to("chat.postMessage")
            .into_iter()
            .filter(|c| c.ok() && c.body.to_string().contains(&needle))
            .collect()
    }

    async fn updated(&self, post: &Call, containing: &str) -> Call {
        let (channel, ts) = (post.answer["channel"].clone(), post.answer["ts"].clone());
        self.fake
            .wait_for("chat.update", WAIT, |c| {
                c.method == "chat.update"
                    && c.ok()
                    && c.body["channel"] == channel
                    && c.body["ts"] == ts
                    && c.body.to_string().contains(containing)
            })
            .await
    }

    /// `user` clicks the `action` button of the message `post` about `id`.
    async fn click(
        &self,
        user: &str,
        action: &str,
        post: &Call,
        id: &str,
    ) -> (StatusCode, String, Duration) {
        self.interact(&block_action(&self.fake, user, action, post, id))
            .await
    }

    /// [`Env::click`] that Slack must see answered 200; how long it took.
    async fn click_ok(&self, user: &str, action: &str, post: &Call, id: &str) -> Duration {
        let (status, text, took) = self.click(user, action, post, id).await;
        assert_eq!(status, StatusCode::OK, "{text}");
        took
    }

    /// `user` submits the modal `view` with these input `values`, which are
    /// accepted: answered 200 with an empty body, so the modal closes.
    async fn submit_closes(&self, user: &str, view: &Value, values: Value) {
        let (status, text, _) = self.interact(&view_submission(user, view, values)).await;
        assert_eq!(status, StatusCode::OK);
        assert!(text.is_empty(), "the modal should close: {text}");
    }

    /// `user` submits the modal `view` with these input `values`, which are
    /// refused in the modal itself (`response_action: errors`); returns the
    /// answer.
    async fn submit_refused(&self, user: &str, view: &Value, values: Value) -> Value {
        let (status, text, _) = self.interact(&view_submission(user, view, values)).await;
        assert_eq!(status, StatusCode::OK);
        let answer: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        assert_eq!(answer["response_action"], "errors", "{text}");
        answer
    }

    /// The modal Slack was asked to open for the click `trigger_id`.
    async fn opened_modal(&self, trigger_id: &str) -> Value {
        let open = self
            .fake
            .wait_for(&format!("views.open for {trigger_id}"), WAIT, |c| {
                c.method == "views.open" && c.body["trigger_id"] == trigger_id
            })
            .await;
        open.body["view"].clone()
    }

    fn successful_updates(&self) -> usize {
        self.fake
            .calls_to("chat.update")
            .iter()
            .filter(|c| c.ok())
            .count()
    }

    /// [`Env::decide`] that must be answered 200; the approval it returns.
    async fn decide_ok(&self, token: &str, id: &str, body: Value) -> Value {
        let answer = self.decide(token, id, body).await;
        let status = answer.status();
        let approval: Value = answer.json().await.unwrap_or(Value::Null);
        assert_eq!(status, StatusCode::OK, "{approval}");
        approval
    }

    /// A decision through the API, on the arguments as they are now.
    async fn decide(&self, token: &str, id: &str, body: Value) -> reqwest::Response {
        support::decide(&self.http, &self.server, token, id, body).await
    }

    async fn interact(&self, payload: &Value) -> (StatusCode, String, Duration) {
        let ts = chrono_now().to_string();
        self.interact_signed(payload, &ts, SECRET).await
    }

    async fn interact_signed(
        &self,
        payload: &Value,
        ts: &str,
        secret: &str,
    ) -> (StatusCode, String, Duration) {
        let body = form_urlencoded::Serializer::new(String::new())
            .append_pair("payload", &payload.to_string())
            .finish();
        let sig = slack_sign(secret, ts, body.as_bytes());
        let started = Instant::now();
        let r = self
            .http
            .post(self.server.url("/slack/interactions"))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("x-slack-request-timestamp", ts)
            .header("x-slack-signature", sig)
            .body(body)
            .send()
            .await
            .unwrap();
        let status = r.status();
        let text = r.text().await.unwrap();
        (status, text, started.elapsed())
    }

    fn assert_no_secrets_logged(&self) {
        let log = self.server.log();
        assert!(!log.is_empty(), "the server log is empty");
        assert!(!log.contains(TOKEN), "the bot token leaked into the log");
        assert!(
            !log.contains(SECRET),
            "the signing secret leaked into the log"
        );
    }
}

fn chrono_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Slack's signing, written independently of the server's.
fn slack_sign(secret: &str, ts: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("v0:{ts}:").as_bytes());
    mac.update(body);
    format!("v0={}", hex::encode(mac.finalize().into_bytes()))
}

/// The value of the `action` button in a posted message (`ID:ARGS_DIGEST`):
/// what a click on that message sends.
fn button_value(post: &Call, action: &str) -> Option<String> {
    post.body["blocks"]
        .as_array()?
        .iter()
        .filter(|b| b["type"] == "actions")
        .flat_map(|b| b["elements"].as_array().cloned().unwrap_or_default())
        .find(|b| b["action_id"] == action)
        .and_then(|b| b["value"].as_str().map(str::to_owned))
}

/// A click on `action` in the message `post` (its button value, or the bare
/// id when the message has no such button).
fn block_action(fake: &FakeSlack, user: &str, action: &str, post: &Call, id: &str) -> Value {
    let value = button_value(post, action).unwrap_or_else(|| id.to_owned());
    json!({
        "type": "block_actions",
        "user": {"id": user, "username": user},
        "team": {"id": "T1"},
        "trigger_id": format!("trigger-{user}-{action}"),
        "response_url": fake.response_url(&format!("{user}-{action}")),
        "container": {"type": "message", "channel_id": post.answer["channel"], "message_ts": post.answer["ts"]},
        "channel": {"id": post.answer["channel"]},
        "message": {"ts": post.answer["ts"]},
        "actions": [{"type": "button", "action_id": action, "block_id": "pliuz_actions", "value": value, "action_ts": "1.2"}],
    })
}

/// A request to run `tool` with `args`.
fn tool_call(tool: &str, args: Value) -> Value {
    json!({"tool_name": tool, "tool_args": args})
}

/// A request for a refund of `amount_cents`.
fn refund(amount_cents: i64) -> Value {
    tool_call("issue_refund", json!({"amount_cents": amount_cents}))
}

/// The state of a modal's text input `block` (its input is `{block}_input`)
/// holding `value`.
fn text_input(block: &str, value: &str) -> Value {
    json!({block: {format!("{block}_input"): {"type": "plain_text_input", "value": value}}})
}

/// What a long-poll answered, within [`WAIT`].
async fn settled(poll: tokio::task::JoinHandle<(Instant, Value)>) -> Value {
    let (_, answer) = tokio::time::timeout(WAIT, poll)
        .await
        .expect("answered within WAIT")
        .expect("long-poll task");
    answer
}

fn view_submission(user: &str, view: &Value, values: Value) -> Value {
    json!({
        "type": "view_submission",
        "user": {"id": user},
        "team": {"id": "T1"},
        "view": {
            "id": "V1",
            "callback_id": view["callback_id"],
            "private_metadata": view["private_metadata"],
            "state": {"values": values},
        },
    })
}

fn ephemerals_to(fake: &FakeSlack, name: &str) -> Vec<Call> {
    fake.calls_to("response_url")
        .into_iter()
        .chain(fake.calls_to("chat.postEphemeral"))
        .filter(|c| c.body["response_type"] == "ephemeral" || c.method == "chat.postEphemeral")
        .filter(|c| c.body.to_string().contains(name) || name.is_empty())
        .collect()
}

async fn wait_ephemeral(fake: &FakeSlack, containing: &str) -> Call {
    fake.wait_for("an ephemeral message", WAIT, |c| {
        c.method == "response_url"
            && c.body["response_type"] == "ephemeral"
            && c.body["text"].as_str().unwrap_or("").contains(containing)
    })
    .await
}

#[test]
fn slack_published_signing_example() {
    let body = "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
    let expected = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";
    let secret = "8f742231b10e8888abcd99yyyzzz85a5";
    assert_eq!(slack_sign(secret, "1531420618", body.as_bytes()), expected);
    assert_eq!(
        pliuz::slack::signature::sign(secret, "1531420618", body.as_bytes()),
        expected
    );
    assert!(pliuz::slack::signature::verify(
        secret,
        Some("1531420618"),
        Some(expected),
        body.as_bytes(),
        1531420618 + 60
    )
    .is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_content_escaping_channels_and_dms() {
    let e = env(true).await;
    let a = e
        .create(json!({
            "tool_name": "issue_refund",
            "tool_args": {
                "amount_cents": 5000,
                "note": "ping <@U123> and <!channel> & friends",
                "long": "x".repeat(1000),
            },
            "originator": "sales@example.com",
        }))
        .await;
    let id = a["id"].as_str().unwrap();
    let post = e.posted(id).await;
    assert_eq!(post.body["channel"], "#refunds");
    assert_eq!(
        post.authorization.as_deref(),
        Some(format!("Bearer {TOKEN}").as_str())
    );
    let text = post.body.to_string();
    for want in [
        "issue_refund",
        "*Agent*",
        "bot",
        "*Policy*",
        "refunds",
        "*Time left*",
        "min (until <!date^",
        "amount_cents",
        "5000",
        "&lt;@U123&gt;",
        "&lt;!channel&gt;",
        "&amp; friends",
        "http://pliuz.test/requests/",
        "sales@example.com",
    ] {
        assert!(text.contains(want), "message lacks {want:?}: {text}");
    }
    assert!(
        !text.contains("<@U123>") && !text.contains("<!channel>"),
        "{text}"
    );
    assert!(
        text.contains(&format!("{}…", "x".repeat(299))),
        "long value not truncated"
    );
    assert!(!text.contains(&"x".repeat(301)), "long value not truncated");
    // Buttons: the policy allows all three.
    let actions = post.body["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["type"] == "actions")
        .cloned()
        .expect("an actions block");
    let buttons: Vec<(String, Value)> = actions["elements"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["text"]["text"].as_str().unwrap().to_owned(),
                b["style"].clone(),
            )
        })
        .collect();
    assert_eq!(
        buttons,
        vec![
            ("Approve".to_owned(), json!("primary")),
            ("Reject".to_owned(), json!("danger")),
            ("Edit".to_owned(), Value::Null)
        ]
    );
    for b in actions["elements"].as_array().unwrap() {
        assert_eq!(
            b["value"],
            format!("{id}:{}", a["args_digest"].as_str().unwrap())
        );
    }

    // DMs go to the approvers (fin by the explicit map, fin2 by email lookup),
    // not to the originator or non-approvers.
    let needle = format!("/requests/{id}");
    e.fake
        .wait_for("DM to UFIN", WAIT, |c| {
            c.method == "chat.postMessage"
                && c.ok()
                && c.body["channel"] == "UFIN"
                && c.body.to_string().contains(&needle)
        })
        .await;
    e.fake
        .wait_for("DM to UFIN2", WAIT, |c| {
            c.method == "chat.postMessage" && c.ok() && c.body["channel"] == "UFIN2"
        })
        .await;
    assert!(e
        .fake
        .calls_to("users.lookupByEmail")
        .iter()
        .any(|c| c.body["email"] == "fin2@example.com"));
    assert_eq!(
        e.successful_posts(id).len(),
        3,
        "one channel post and two DMs"
    );
    assert!(!e
        .fake
        .calls_to("chat.postMessage")
        .iter()
        .any(|c| c.body["channel"] == "USALES"));

    // No slack_channel on the policy: the default channel; only its decisions.
    let b = e
        .create(json!({"tool_name": "delete_db", "tool_args": {"db": "prod"}}))
        .await;
    let bid = b["id"].as_str().unwrap();
    let post_b = e.posted(bid).await;
    assert_eq!(post_b.body["channel"], "#approvals");
    let tb = post_b.body.to_string();
    assert!(tb.contains("pliuz_approve") && tb.contains("pliuz_reject"));
    assert!(
        !tb.contains("pliuz_edit"),
        "edit is not allowed by this policy"
    );

    // A decision updates the channel post and both DMs.
    e.decide_ok(&e.fin, id, json!({"decision": "approve"}))
        .await;
    for p in e.successful_posts(id) {
        let u = e.updated(&p, "Approved").await;
        assert!(
            !u.body.to_string().contains("pliuz_approve"),
            "buttons remain"
        );
    }
    e.assert_no_secrets_logged();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approve_reject_and_edit_from_slack_with_the_agent_waiting() {
    let e = env(false).await;

    // Approve: answered at once, decided right after.
    let (_, id, post) = e.create_posted(refund(5000)).await;
    let poll = e.long_poll(&id);
    let took = e.click_ok("UFIN2", "pliuz_approve", &post, &id).await;
    assert!(took < Duration::from_secs(3), "took {took:?}");
    let done = settled(poll).await;
    assert_eq!(done["status"], "approved", "{done}");
    assert_eq!(done["final_args"], json!({"amount_cents": 5000}));
    assert_eq!(done["decision"]["by"], "user:fin2@example.com");
    let ut = e.updated(&post, "Approved").await.body.to_string();
    assert!(ut.contains("fin2@example.com"), "who decided: {ut}");
    assert!(ut.contains("<!date^"), "when: {ut}");
    assert!(!ut.contains("pliuz_approve"), "buttons remain: {ut}");

    // Reject: a modal asks for the reason.
    let (_, bid, post_b) = e.create_posted(refund(7000)).await;
    let poll = e.long_poll(&bid);
    let took = e.click_ok("UFIN", "pliuz_reject", &post_b, &bid).await;
    assert!(took < Duration::from_secs(3), "took {took:?}");
    let view = e.opened_modal("trigger-UFIN-pliuz_reject").await;
    assert_eq!(view["type"], "modal");
    assert!(view["private_metadata"].as_str().unwrap().contains(&bid));
    // An empty reason is refused in the modal itself.
    let v = e
        .submit_refused("UFIN", &view, text_input("reason", " "))
        .await;
    assert!(v["errors"]["reason"].is_string(), "{v}");
    assert_eq!(e.get(&bid).await["status"], "pending");
    e.submit_closes(
        "UFIN",
        &view,
        text_input("reason", "too much for one refund"),
    )
    .await;
    let done = settled(poll).await;
    assert_eq!(done["status"], "rejected");
    assert_eq!(done["decision"]["reason"], "too much for one refund");
    assert_eq!(done["decision"]["by"], "user:fin@example.com");
    let upd = e.updated(&post_b, "Rejected").await;
    assert!(upd.body.to_string().contains("too much for one refund"));

    // Edit: a modal with the arguments as JSON, checked against the schema.
    let (_, cid, post_c) = e
        .create_posted(json!({
            "tool_name": "issue_refund",
            "tool_args": {"amount_cents": 50000, "currency": "EUR"},
            "tool_schema": {
                "type": "object",
                "properties": {
                    "amount_cents": {"type": "integer", "maximum": 10000},
                    "currency": {"type": "string"}
                },
                "required": ["amount_cents"]
            }
        }))
        .await;
    let poll = e.long_poll(&cid);
    e.click_ok("UFIN2", "pliuz_edit", &post_c, &cid).await;
    let view = e.opened_modal("trigger-UFIN2-pliuz_edit").await;
    let initial = view.to_string();
    assert!(
        initial.contains("amount_cents") && initial.contains("50000"),
        "{initial}"
    );
    let submit = |args: &str| {
        view_submission(
            "UFIN2",
            &view,
            json!({
                "args": {"args_input": {"type": "plain_text_input", "value": args}},
                "reason": {"reason_input": {"type": "plain_text_input", "value": "capped at 100 EUR"}},
            }),
        )
    };
    for (bad, want) in [
        ("{not json", "Not valid JSON"),
        ("[1, 2]", "JSON object"),
        (r#"{"amount_cents": 99999, "currency": "EUR"}"#, "schema"),
    ] {
        let (status, text, _) = e.interact(&submit(bad)).await;
        assert_eq!(status, StatusCode::OK);
        let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        assert_eq!(v["response_action"], "errors", "{bad}: {text}");
        assert!(
            v["errors"]["args"].as_str().unwrap_or("").contains(want),
            "{bad}: {text}"
        );
    }
    assert_eq!(e.get(&cid).await["status"], "pending");
    let (status, text, _) = e
        .interact(&submit(r#"{"amount_cents": 10000, "currency": "EUR"}"#))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(text.is_empty(), "{text}");
    let done = settled(poll).await;
    assert_eq!(done["status"], "approved");
    assert_eq!(
        done["final_args"],
        json!({"amount_cents": 10000, "currency": "EUR"})
    );
    assert_eq!(done["decision"]["reason"], "capped at 100 EUR");
    assert_eq!(done["decision"]["edited"], true);
    let upd = e.updated(&post_c, "Approved with edits").await;
    assert!(upd.body.to_string().contains("10000"));

    // One message per request, however many clicks and updates.
    for x in [&id, &bid, &cid] {
        assert_eq!(e.successful_posts(x).len(), 1);
    }
    e.assert_no_secrets_logged();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn respond_from_slack_only_where_the_policy_allows_it() {
    let e = env(false).await;
    // "refunds" does not list respond: no Respond button.
    let (_, _, plain) = e.create_posted(refund(9000)).await;
    assert!(button_value(&plain, "pliuz_reject").is_some());
    assert!(button_value(&plain, "pliuz_respond").is_none());

    let (_, id, post) = e
        .create_posted(tool_call("ask_user", json!({"question": "Which room?"})))
        .await;
    assert!(button_value(&post, "pliuz_respond").is_some());
    let poll = e.long_poll(&id);
    e.click_ok("UFIN", "pliuz_respond", &post, &id).await;
    let view = e.opened_modal("trigger-UFIN-pliuz_respond").await;
    assert_eq!(view["callback_id"], "pliuz_respond_view");
    // An empty answer is refused in the modal itself.
    let v = e
        .submit_refused("UFIN", &view, text_input("reason", "  "))
        .await;
    assert!(
        v["errors"]["reason"]
            .as_str()
            .is_some_and(|m| m.contains("answer")),
        "{v}"
    );
    assert_eq!(e.get(&id).await["status"], "pending");
    e.submit_closes("UFIN", &view, text_input("reason", "Room 4, at ten."))
        .await;
    let done = settled(poll).await;
    assert_eq!(done["status"], "responded", "{done}");
    assert_eq!(done["decision"]["reason"], "Room 4, at ten.");
    assert_eq!(done["decision"]["by"], "user:fin@example.com");
    let ut = e.updated(&post, "Responded").await.body.to_string();
    assert!(ut.contains("Room 4, at ten."), "{ut}");
    assert!(!ut.contains("pliuz_respond"), "buttons remain: {ut}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_stale_unmapped_and_non_approver_clicks_change_nothing() {
    let e = env(false).await;
    let (_, id, post) = e.create_posted(json!({"tool_name": "issue_refund", "tool_args": {"amount_cents": 5000}, "originator": "fin2@example.com"})).await;
    let approve = |user: &str| block_action(&e.fake, user, "pliuz_approve", &post, &id);

    // Forged: signed with the wrong secret.
    let now = chrono_now().to_string();
    let (status, text, _) = e
        .interact_signed(&approve("UFIN"), &now, "not-the-secret")
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{text}");
    let problem: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(problem["code"], "unauthorized");
    assert!(!text.contains(SECRET));
    // Stale: a correctly signed request from 10 minutes ago (a replay).
    let old = (chrono_now() - 600).to_string();
    let (status, text, _) = e.interact_signed(&approve("UFIN"), &old, SECRET).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{text}");
    assert!(text.contains("5 minutes"), "{text}");
    // Unsigned.
    let r = e
        .http
        .post(e.server.url("/slack/interactions"))
        .form(&[("payload", approve("UFIN").to_string())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    // Slack user with no Slack-side email match in Pliuz.
    let (status, _, _) = e.interact(&approve("UNOBODY")).await;
    assert_eq!(status, StatusCode::OK);
    wait_ephemeral(&e.fake, "No Pliuz user has the email nobody@example.com").await;
    // Slack user Slack itself does not know.
    let (status, _, _) = e.interact(&approve("UGHOST")).await;
    assert_eq!(status, StatusCode::OK);
    wait_ephemeral(&e.fake, "not linked to a Pliuz user").await;
    // A Pliuz user who is not an approver of this policy: no approve, no modal.
    let (status, _, _) = e.interact(&approve("USALES")).await;
    assert_eq!(status, StatusCode::OK);
    wait_ephemeral(&e.fake, "not an approver of policy 'refunds'").await;
    e.click_ok("USALES", "pliuz_reject", &post, &id).await;
    let before = ephemerals_to(&e.fake, "").len();
    e.fake
        .wait_for("second refusal", WAIT, |_| {
            ephemerals_to(&e.fake, "not an approver").len() >= 2
        })
        .await;
    assert!(before >= 3);
    assert!(
        e.fake.calls_to("views.open").is_empty(),
        "no modal for a non-approver"
    );
    // The originator cannot approve their own request.
    let (status, _, _) = e.interact(&approve("UFIN2")).await;
    assert_eq!(status, StatusCode::OK);
    wait_ephemeral(&e.fake, "originator").await;
    // A forged modal submission by a non-approver is refused in the modal.
    let view = json!({"callback_id": "pliuz_reject_view", "private_metadata": json!({"approval_id": id}).to_string()});
    let (status, text, _) = e
        .interact(&view_submission(
            "USALES",
            &view,
            json!({"reason": {"reason_input": {"value": "no"}}}),
        ))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(text.contains("not an approver"), "{text}");

    // Nothing changed.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let now = e.get(&id).await;
    assert_eq!(now["status"], "pending", "{now}");
    assert_eq!(now["approvals"], json!([]));
    assert!(e.fake.calls_to("chat.update").is_empty());
    e.assert_no_secrets_logged();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_decisions_and_expiry_update_the_message() {
    let e = env(false).await;
    let (_, id, post) = e.create_posted(refund(5000)).await;
    assert_eq!(post.answer["channel"], "CREFUNDS");
    e.decide_ok(
        &e.fin,
        &id,
        json!({"decision": "reject", "reason": "duplicate <refund> & co"}),
    )
    .await;
    let text = e.updated(&post, "Rejected").await.body.to_string();
    assert!(text.contains("fin@example.com"), "{text}");
    assert!(text.contains("duplicate &lt;refund&gt; &amp; co"), "{text}");
    assert!(!text.contains("pliuz_reject"), "buttons remain: {text}");

    // Expiry (2 s policy) updates the message too.
    let (_, _, post_q) = e.create_posted(tool_call("quick_tool", json!({}))).await;
    let upd = e.updated(&post_q, "Expired").await;
    assert!(!upd.body.to_string().contains("pliuz_approve"));
    e.assert_no_secrets_logged();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_vote_towards_a_quorum_refreshes_the_message() {
    let e = env(false).await;
    let fin2 = e
        .server
        .cli(&["users", "token", "fin2@example.com"], None)
        .stdout
        .trim()
        .to_owned();
    let (_, id, post) = e
        .create_posted(tool_call("pay_out", json!({"amount_cents": 100})))
        .await;
    assert!(post.body.to_string().contains("0 of 2"), "{}", post.body);
    for (token, expect) in [(&e.fin, "1 of 2"), (&fin2, "Approved")] {
        e.decide_ok(token, &id, json!({"decision": "approve"}))
            .await;
        e.updated(&post, expect).await;
    }
    // While pending, the refreshed message keeps its buttons.
    let first = e
        .fake
        .calls_to("chat.update")
        .into_iter()
        .find(|c| c.body.to_string().contains("1 of 2"))
        .expect("a progress update");
    assert!(
        first.body.to_string().contains("pliuz_approve"),
        "{}",
        first.body
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_and_server_errors_are_retried_without_duplicates() {
    let e = env(false).await;
    e.fake.rate_limit_next(1, 1);
    e.fake.fail_next(2);
    let (_, id, post) = e.create_posted(refund(5000)).await;
    let attempts = e.fake.calls_to("chat.postMessage");
    let statuses: Vec<u16> = attempts.iter().map(|c| c.status).collect();
    assert_eq!(statuses, vec![429, 500, 500, 200], "{statuses:?}");
    // Retry-After: 1 was honoured.
    let waited = attempts[1].at - attempts[0].at;
    assert!(
        waited >= Duration::from_millis(950),
        "retried after {waited:?}"
    );

    // An update through a 500 as well.
    e.fake.fail_next(1);
    e.decide_ok(&e.fin, &id, json!({"decision": "approve"}))
        .await;
    e.updated(&post, "Approved").await;

    // A channel Slack does not know: retried up to the cap, then given up.
    let l = e
        .create(json!({"tool_name": "lost_tool", "tool_args": {}}))
        .await;
    let lid = l["id"].as_str().unwrap().to_owned();
    let lost = || {
        e.fake
            .calls_to("chat.postMessage")
            .into_iter()
            .filter(|c| c.body["channel"] == "#nowhere")
            .count()
    };
    e.fake
        .wait_for("3 attempts at #nowhere", WAIT, |_| lost() >= 3)
        .await;
    // Its decision has no message to update; the update does not wait forever.
    e.decide_ok(&e.fin, &lid, json!({"decision": "approve"}))
        .await;

    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(lost(), 3, "gave up after PLIUZ_OUTBOX_MAX_ATTEMPTS");
    assert_eq!(e.successful_posts(&id).len(), 1, "no duplicate post");
    assert_eq!(
        e.successful_updates(),
        1,
        "one update for the one posted message"
    );
    // The audit log records each delivery once, and the give-up.
    let auditor = e.server.user_token("audit@example.com", "auditor", &[]);
    let entries: Value = e
        .http
        .get(e.server.url("/api/v1/audit/entries?start=0&end=1000"))
        .bearer_auth(&auditor)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let items = entries["entries"].as_array().expect("audit entries");
    let of = |kind: &str, approval: &str| {
        items
            .iter()
            .filter(|i| {
                let t = i["entry"].to_string();
                t.contains(&format!("\"{kind}\"")) && t.contains(approval)
            })
            .count()
    };
    assert_eq!(of("notification.sent", &id), 2, "one post and one update");
    assert_eq!(of("notification.failed", &lid), 1);
    assert_eq!(of("notification.sent", &lid), 0);

    let log = e.server.log();
    assert!(
        log.contains("channel_not_found"),
        "the Slack error is logged"
    );
    assert!(log.contains("giving up"), "giving up is logged");
    e.assert_no_secrets_logged();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_during_an_outage_delivers_once_after_restart() {
    killed_during_an_outage(None).await;
}

/// The same on PostgreSQL (migration, claims and stored message ts).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_during_an_outage_delivers_once_after_restart_on_postgres() {
    let url = support::fresh_postgres_database().await;
    killed_during_an_outage(Some(url)).await;
}

async fn killed_during_an_outage(database_url: Option<String>) {
    let mut e = env_on(false, database_url).await;
    e.fake.set_down(true);
    let a = e
        .create(json!({"tool_name": "issue_refund", "tool_args": {"amount_cents": 5000}}))
        .await;
    let id = a["id"].as_str().unwrap().to_owned();
    e.fake
        .wait_for("failed attempts", WAIT, |_| {
            e.fake.calls_to("chat.postMessage").len() >= 2
        })
        .await;
    e.server.kill9();
    e.fake.set_down(false);
    let failed_before = e.fake.calls_to("chat.postMessage").len();
    assert!(e.successful_posts(&id).is_empty());

    e.server.spawn().await;
    let post = e.posted(&id).await;
    assert!(e.fake.calls_to("chat.postMessage").len() > failed_before);
    // Decide after the restart: the stored ts still finds the message.
    e.decide_ok(&e.fin, &id, json!({"decision": "approve"}))
        .await;
    e.updated(&post, "Approved").await;

    // Restart once more: nothing is delivered twice.
    e.server.kill9();
    e.server.spawn().await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(e.successful_posts(&id).len(), 1, "exactly one message");
    assert_eq!(e.successful_updates(), 1);
    e.assert_no_secrets_logged();
}

/// Every mrkdwn text in a message, with where it is.
fn mrkdwn_texts(v: &Value, at: &str, out: &mut Vec<(String, String)>) {
    match v {
        Value::Object(m) => {
            if m.get("type") == Some(&json!("mrkdwn")) {
                if let Some(t) = m.get("text").and_then(Value::as_str) {
                    out.push((at.to_owned(), t.to_owned()));
                }
            }
            for (k, x) in m {
                mrkdwn_texts(x, &format!("{at}/{k}"), out);
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                mrkdwn_texts(x, &format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

/// What Slack renders as formatting in `text`: the text outside code
/// blocks and inline code spans. Panics on a code span that a line break or
/// a back-tick would end early (where agent text could break out).
fn outside_code(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find('`') {
        out.push_str(&rest[..i]);
        let after = &rest[i..];
        if let Some(body) = after.strip_prefix("```") {
            let end = body
                .find("```")
                .unwrap_or_else(|| panic!("unclosed code block in {text:?}"));
            rest = &body[end + 3..];
        } else {
            let body = &after[1..];
            let end = body
                .find('`')
                .unwrap_or_else(|| panic!("unclosed code span in {text:?}"));
            assert!(
                !body[..end].contains('\n'),
                "a line break inside a code span: {text:?}"
            );
            rest = &body[end + 1..];
        }
    }
    out.push_str(rest);
    out
}

/// No agent text reaches Slack's formatting: outside code it never appears.
fn assert_agent_text_is_inert(message: &Value, agent_text: &[&str]) {
    let mut texts = vec![(
        "text".to_owned(),
        message["text"].as_str().unwrap_or("").to_owned(),
    )];
    mrkdwn_texts(&message["blocks"], "blocks", &mut texts);
    assert!(texts.len() > 3, "{message}");
    for (at, text) in &texts {
        let formatted = outside_code(text);
        for bad in agent_text {
            assert!(
                !formatted.contains(bad),
                "agent text {bad:?} is formatted by Slack at {at}: {text:?}"
            );
        }
        // Pliuz's own status lines are the only emoji lines, in the headline.
        for line in formatted.lines() {
            if line.trim_start().starts_with(":white_check_mark:") {
                assert!(
                    at.starts_with("blocks/0/"),
                    "a status line at {at}: {text:?}"
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_text_cannot_pass_for_pliuz_status_lines() {
    let e = env(false).await;
    let fake_status = ":white_check_mark: *Already approved by cfo@example.com*";
    let (_, id, post) = e
        .create_posted(json!({
            "policy": "refunds",
            "tool_name": format!("refund`\n{fake_status}\n`x"),
            "tool_args": {
                format!("note`\n{fake_status}"): "v```\n*bold* _it_ ~gone~ <!channel>",
                "plain": fake_status,
                "n": 5,
            },
            "originator": "*cfo*_x_~y~\r\n:white_check_mark: *Already approved by the CFO*",
        }))
        .await;
    let agent_text = [
        "Already approved",
        "cfo@example.com",
        "*bold*",
        "_it_",
        "~gone~",
        "*cfo*",
        "<!channel>",
        "!channel",
    ];
    assert_agent_text_is_inert(&post.body, &agent_text);
    // Still shown, literally, for a person to read.
    let shown = post.body.to_string();
    assert!(
        shown.contains("Already approved by cfo@example.com"),
        "{shown}"
    );
    assert!(shown.contains("&lt;!channel&gt;"), "{shown}");

    // The agent withdraws it with a reason written to look like a decision.
    let r = e
        .http
        .post(e.server.url(&format!("/api/v1/approvals/{id}/cancel")))
        .bearer_auth(&e.agent)
        .json(&json!({"reason": format!("done\n{fake_status}\n```\n<!channel> `tick`")}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let upd = e.updated(&post, "Cancelled").await;
    assert_agent_text_is_inert(&upd.body, &agent_text);
    assert!(upd
        .body
        .to_string()
        .contains("Already approved by cfo@example.com"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_click_on_arguments_that_were_edited_since_is_refused() {
    let e = env(false).await;
    let (a, id, post) = e
        .create_posted(tool_call("pay_out", json!({"to": "alice", "amount": 100})))
        .await;
    assert_eq!(
        button_value(&post, "pliuz_approve"),
        Some(format!("{id}:{}", a["args_digest"].as_str().unwrap()))
    );

    // fin edits the arguments (and so approves them: 1 of 2).
    let edited = e
        .decide_ok(
            &e.fin,
            &id,
            json!({"decision": "edit", "final_args": {"to": "mallory", "amount": 990000}}),
        )
        .await;
    let updated = e.updated(&post, "mallory").await;
    let ut = updated.body.to_string();
    assert!(ut.contains("edited by an approver"), "{ut}");
    assert_eq!(
        button_value(&updated, "pliuz_approve"),
        Some(format!("{id}:{}", edited["args_digest"].as_str().unwrap()))
    );

    // fin2 clicks Approve on the message as it was before the edit.
    e.click_ok("UFIN2", "pliuz_approve", &post, &id).await;
    wait_ephemeral(&e.fake, "changed since this message was shown").await;
    let now = e.get(&id).await;
    assert_eq!(now["status"], "pending", "{now}");
    assert_eq!(now["approvals"].as_array().map(Vec::len), Some(1), "{now}");
    // A stale Reject does not even open the form.
    e.click_ok("UFIN2", "pliuz_reject", &post, &id).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(e
        .fake
        .calls_to("views.open")
        .iter()
        .all(|c| c.body["trigger_id"] != "trigger-UFIN2-pliuz_reject"));

    // A modal opened on the current arguments, submitted after another edit.
    e.click_ok("UFIN2", "pliuz_edit", &updated, &id).await;
    let view = e.opened_modal("trigger-UFIN2-pliuz_edit").await;
    e.decide_ok(
        &e.fin,
        &id,
        json!({"decision": "edit", "final_args": {"to": "mallory", "amount": 5}}),
    )
    .await;
    let v = e
        .submit_refused(
            "UFIN2",
            &view,
            text_input("args", "{\"to\": \"mallory\", \"amount\": 990000}"),
        )
        .await;
    assert!(
        v["errors"]["args"]
            .as_str()
            .unwrap_or("")
            .contains("changed since"),
        "{v}"
    );
    let now = e.get(&id).await;
    assert_eq!(now["status"], "pending");
    assert_eq!(now["proposed_args"], json!({"to": "mallory", "amount": 5}));

    // Clicking the current message approves exactly what it shows.
    let current = e.updated(&post, "`5`").await;
    let poll = e.long_poll(&id);
    e.click_ok("UFIN2", "pliuz_approve", &current, &id).await;
    let done = settled(poll).await;
    assert_eq!(done["status"], "approved", "{done}");
    assert_eq!(done["final_args"], json!({"to": "mallory", "amount": 5}));
}

/// The message posted for question `id`.
async fn question_posted(e: &Env, id: &str) -> Call {
    let needle = format!("/questions/{id}");
    e.fake
        .wait_for("the question's chat.postMessage", WAIT, |c| {
            c.method == "chat.postMessage" && c.ok() && c.body.to_string().contains(&needle)
        })
        .await
}

async fn ask(e: &Env, body: Value) -> (String, Call) {
    let request = e.http.post(e.server.url("/api/v1/questions"));
    let (status, q) = send_json(request.bearer_auth(&e.agent).json(&body)).await;
    assert_eq!(status, StatusCode::CREATED, "{q}");
    let id = q["id"].as_str().expect("id").to_owned();
    let post = question_posted(e, &id).await;
    (id, post)
}

fn question_poll(e: &Env, id: &str) -> tokio::task::JoinHandle<(Instant, Value)> {
    let url = e.server.url(&format!("/api/v1/questions/{id}?wait=30"));
    support::long_poll(&e.http, url, &e.agent)
}

#[tokio::test]
async fn questions_are_answered_from_slack_by_button_and_by_modal() {
    let e = env(false).await;

    // A button per choice; agent text is inert.
    let (id, post) = ask(
        &e,
        json!({"text": "Which warehouse? <!channel>", "choices": ["north", {"value": "south", "label": "South side"}], "policy": "refunds", "originator": "user:fin@example.com"}),
    )
    .await;
    assert_eq!(post.body["channel"], "#refunds");
    let text = post.body.to_string();
    assert!(
        !text.contains("<!channel>") && text.contains("&lt;!channel&gt;"),
        "{text}"
    );
    assert_eq!(
        button_value(&post, "pliuz_question_choice_1"),
        Some(format!("{id}:south"))
    );
    assert_eq!(
        button_value(&post, "pliuz_question_text"),
        None,
        "no free text offered"
    );
    // The originator and a non-approver are refused and told why.
    e.click_ok("UFIN", "pliuz_question_choice_0", &post, &id)
        .await;
    wait_ephemeral(&e.fake, "somebody else must answer").await;
    e.click_ok("USALES", "pliuz_question_choice_0", &post, &id)
        .await;
    wait_ephemeral(&e.fake, "not an approver").await;
    let poll = question_poll(&e, &id);
    let took = e
        .click_ok("UFIN2", "pliuz_question_choice_1", &post, &id)
        .await;
    assert!(took < Duration::from_secs(3), "took {took:?}");
    let done = settled(poll).await;
    assert_eq!(done["status"], "answered", "{done}");
    assert_eq!(done["answer"]["choice"], "south");
    assert_eq!(done["answer"]["answered_by"], "user:fin2@example.com");
    let ut = e.updated(&post, "Answered").await.body.to_string();
    assert!(
        ut.contains("fin2@example.com") && ut.contains("South side"),
        "{ut}"
    );
    assert!(
        !ut.contains("pliuz_question_choice"),
        "buttons remain: {ut}"
    );

    // Free text through the modal.
    let (qid, post_q) = ask(
        &e,
        json!({"text": "What did the customer say?", "policy": "refunds"}),
    )
    .await;
    let poll = question_poll(&e, &qid);
    e.click_ok("UFIN", "pliuz_question_text", &post_q, &qid)
        .await;
    let view = e.opened_modal("trigger-UFIN-pliuz_question_text").await;
    assert_eq!(view["callback_id"], "pliuz_question_view");
    e.submit_refused("UFIN", &view, text_input("answer", " "))
        .await;
    e.submit_closes("UFIN", &view, text_input("answer", "by Friday please"))
        .await;
    let done = settled(poll).await;
    assert_eq!(done["answer"]["text"], "by Friday please");
    assert_eq!(done["answer"]["answered_by"], "user:fin@example.com");
    e.updated(&post_q, "by Friday please").await;
    e.assert_no_secrets_logged();
}

#[tokio::test]
async fn the_reject_modal_offers_the_policy_reasons() {
    let e = env(false).await;
    let (_, id, post) = e
        .create_posted(tool_call("careful_tool", json!({"n": 1})))
        .await;
    let poll = e.long_poll(&id);
    e.click_ok("UFIN", "pliuz_reject", &post, &id).await;
    let view = e.opened_modal("trigger-UFIN-pliuz_reject").await;
    let select = view["blocks"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|b| b["block_id"] == "reason_choice")
        .cloned()
        .expect("a reason select");
    let offered: Vec<&str> = select["element"]["options"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|o| o["value"].as_str())
        .collect();
    assert_eq!(offered, ["wrong amount", "wrong customer"]);
    // A value that is not one of the policy's is refused in the modal.
    let forged = json!({"reason_choice": {"reason_choice_input": {"type": "static_select", "selected_option": {"value": "made up"}}}});
    let (_, text, _) = e.interact(&view_submission("UFIN", &view, forged)).await;
    assert!(text.contains("not one of the reasons"), "{text}");
    let chosen = json!({
        "reason_choice": {"reason_choice_input": {"type": "static_select", "selected_option": {"value": "wrong customer"}}},
        "reason": {"reason_input": {"type": "plain_text_input", "value": null}},
    });
    e.submit_closes("UFIN", &view, chosen).await;
    let done = settled(poll).await;
    assert_eq!(done["status"], "rejected");
    assert_eq!(done["decision"]["reason"], "wrong customer");
}

#[tokio::test]
async fn an_expired_question_message_loses_its_buttons() {
    let e = env(false).await;
    let (id, post) = ask(
        &e,
        json!({"text": "Anyone?", "choices": ["yes"], "policy": "quick"}),
    )
    .await;
    assert_eq!(post.body["channel"], "#quick");
    let ut = e.updated(&post, "Expired").await.body.to_string();
    assert!(
        !ut.contains("pliuz_question_choice"),
        "buttons remain: {ut}"
    );
    e.click_ok("UFIN", "pliuz_question_choice_0", &post, &id)
        .await;
    wait_ephemeral(&e.fake, "expired").await;
}
