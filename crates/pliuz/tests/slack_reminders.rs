//! Reminders and escalation in Slack (issue #17): the real binary, the fake
//! Slack Web API in this process. A still-pending request gets a reminder
//! reply in its message's thread, on time; later the escalation notice, and
//! the escalation group may then decide (not before).

mod support;

use reqwest::{Client, StatusCode};
use serde_json::json;
use std::time::{Duration, Instant};
use support::slack_fake::{Call, FakeSlack};
use support::{decide, env_vars, Server, FAST_OUTBOX};

const TOKEN: &str = "xoxb-test-TOKEN-reminders-4242";
const WAIT: Duration = Duration::from_secs(20);

#[tokio::test]
async fn a_reminder_and_the_escalation_reply_in_the_thread_on_time() {
    let fake = FakeSlack::start(TOKEN).await;
    let config = support::fixture_config(
        "slack_reminders.toml",
        &[("bot_token", TOKEN), ("api_url", &fake.api_url())],
    );
    let server = Server::start_with(&config, None, env_vars(&FAST_OUTBOX)).await;
    let agent = server.agent_key("bot");
    let lead = server.user_token("lead@example.com", "approver", &["leads"]);
    let http = Client::new();

    let created = Instant::now();
    let body = json!({"tool_name": "issue_refund", "tool_args": {"amount_cents": 5000}});
    let id = support::id_of(&support::create_approval(&http, &server, &agent, body).await);

    let post = fake
        .wait_for("the request message", WAIT, |c| {
            c.method == "chat.postMessage" && c.body["channel"] == "#refunds" && c.ok()
        })
        .await;
    let ts = post.answer["ts"].clone();
    let in_thread = |text: &'static str| {
        let ts = ts.clone();
        move |c: &Call| {
            c.method == "chat.postMessage"
                && c.body["thread_ts"] == ts
                && c.body["text"].as_str().unwrap_or_default().contains(text)
        }
    };

    // Before the escalation the leads may not decide.
    let r = decide(&http, &server, &lead, &id, json!({"decision": "approve"})).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    let reminder = fake
        .wait_for("the reminder", WAIT, in_thread("Reminder"))
        .await;
    let at = reminder.at.duration_since(created);
    assert!(at >= Duration::from_secs(2), "reminded after {at:?}");

    let escalation = fake
        .wait_for("the escalation notice", WAIT, in_thread("Escalated"))
        .await;
    let at = escalation.at.duration_since(created);
    assert!(at >= Duration::from_secs(4), "escalated after {at:?}");
    assert!(escalation.body["text"]
        .as_str()
        .unwrap_or_default()
        .contains("group:leads"));
    assert_eq!(
        fake.calls()
            .iter()
            .filter(|c| in_thread("Reminder")(c))
            .count(),
        1
    );

    // Now the leads may decide; the message is updated with the outcome.
    let r = decide(&http, &server, &lead, &id, json!({"decision": "approve"})).await;
    assert_eq!(r.status(), StatusCode::OK);
    fake.wait_for("the message updated to approved", WAIT, |c| {
        c.method == "chat.update" && c.body.to_string().contains("lead@example.com")
    })
    .await;
}
