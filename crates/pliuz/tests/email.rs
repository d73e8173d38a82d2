//! The e-mail channel, reminders and escalation (issue #17), against the
//! real binary: an SMTP sink started here receives the e-mails; the link in
//! them works once and only for an approver; a reminder and an escalation
//! fire on time (also across a restart); the escalated group can decide
//! then and not before; the follow-up goes out once it is decided. A
//! question from an agent is mailed the same way, its link opens the
//! question page, and the follow-up goes out once it is answered or expires.

mod support;

use reqwest::{header, StatusCode};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::web::{no_redirects, session};
use support::{decide, env_vars, Server, FAST_OUTBOX};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// One e-mail as the sink received it.
#[derive(Debug, Clone)]
struct Mail {
    to: Vec<String>,
    /// The message as sent, quoted-printable decoded.
    text: String,
}

impl Mail {
    /// The subject, unfolded (a long header continues on indented lines).
    fn subject(&self) -> String {
        let mut lines = self
            .text
            .lines()
            .skip_while(|l| !l.starts_with("Subject: "));
        let mut out = lines
            .next()
            .and_then(|l| l.strip_prefix("Subject: "))
            .unwrap_or_default()
            .to_owned();
        for l in lines.take_while(|l| l.starts_with([' ', '\t'])) {
            out.push_str(l);
        }
        out
    }

    fn is_to(&self, who: &str) -> bool {
        self.to.iter().any(|t| t.contains(who))
    }

    /// The one-time link it carries.
    fn link(&self) -> String {
        let start = self.text.find("http://").expect("a link");
        let rest = &self.text[start..];
        let end = rest
            .find(|c: char| c.is_whitespace() || c == '"' || c == '<')
            .unwrap_or(rest.len());
        let link = rest[..end].to_owned();
        assert!(link.contains("/email-link/pliuz_el_"), "{link}");
        link
    }

    /// The HTML part.
    fn html(&self) -> &str {
        let at = self
            .text
            .find("Content-Type: text/html")
            .expect("an HTML part");
        &self.text[at..]
    }
}

/// Undoes quoted-printable: soft line breaks and `=XX` escapes.
fn qp_decode(s: &str) -> String {
    let joined = s.replace("=\r\n", "");
    let bytes = joined.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'=' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A minimal SMTP server that accepts every message.
#[derive(Clone)]
struct Sink {
    port: u16,
    mails: Arc<Mutex<Vec<Mail>>>,
}

impl Sink {
    async fn start() -> Sink {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the SMTP sink");
        let port = listener.local_addr().expect("sink address").port();
        let mails = Arc::new(Mutex::new(Vec::new()));
        let kept = mails.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(session_of(stream, kept.clone()));
            }
        });
        Sink { port, mails }
    }

    fn mails(&self) -> Vec<Mail> {
        self.mails.lock().expect("mails").clone()
    }

    /// Waits (at most 20 s) for an e-mail to `who` whose subject contains `subject`.
    async fn wait_for(&self, who: &str, subject: &str) -> Mail {
        support::eventually(
            &format!("an e-mail to {who} with '{subject}'"),
            Duration::from_secs(20),
            || {
                self.mails()
                    .into_iter()
                    .find(|m| m.is_to(who) && m.subject().contains(subject))
            },
            || {
                self.mails()
                    .iter()
                    .map(|m| (m.to.clone(), m.subject()))
                    .collect::<Vec<_>>()
            },
        )
        .await
    }

    fn count(&self, who: &str, subject: &str) -> usize {
        self.mails()
            .iter()
            .filter(|m| m.is_to(who) && m.subject().contains(subject))
            .count()
    }
}

async fn session_of(stream: tokio::net::TcpStream, mails: Arc<Mutex<Vec<Mail>>>) {
    let (r, mut w) = stream.into_split();
    let mut r = BufReader::new(r);
    let mut to = Vec::new();
    if w.write_all(b"220 sink ESMTP\r\n").await.is_err() {
        return;
    }
    loop {
        let mut line = String::new();
        match r.read_line(&mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let upper = line.to_ascii_uppercase();
        let answer: &[u8] = if upper.starts_with("EHLO") {
            b"250-sink\r\n250 8BITMIME\r\n"
        } else if upper.starts_with("MAIL FROM:") {
            to.clear();
            b"250 OK\r\n"
        } else if upper.starts_with("RCPT TO:") {
            to.push(line[8..].trim().to_owned());
            b"250 OK\r\n"
        } else if upper.starts_with("DATA") {
            if w.write_all(b"354 go on\r\n").await.is_err() {
                return;
            }
            let mut data = String::new();
            loop {
                let mut l = String::new();
                match r.read_line(&mut l).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
                if l == ".\r\n" {
                    break;
                }
                data.push_str(l.strip_prefix('.').unwrap_or(&l));
            }
            mails.lock().expect("mails").push(Mail {
                to: to.clone(),
                text: qp_decode(&data),
            });
            b"250 OK queued\r\n"
        } else if upper.starts_with("QUIT") {
            let _ = w.write_all(b"221 bye\r\n").await;
            return;
        } else {
            b"250 OK\r\n"
        };
        if w.write_all(answer).await.is_err() {
            return;
        }
    }
}

fn config(sink: &Sink, extra_email: &str, policy_keys: &str) -> String {
    format!(
        r#"
[email]
host = "127.0.0.1"
port = {}
tls = "none"
from = "Pliuz <pliuz@example.com>"
{extra_email}

[[policy]]
name = "refunds"
tools = ["issue_refund"]
approvers = ["group:finance"]
expires_in = "1h"
email = true
{policy_keys}
"#,
        sink.port
    )
}

async fn create(http: &reqwest::Client, server: &Server, agent: &str, args: Value) -> String {
    let body = json!({"tool_name": "issue_refund", "tool_args": args});
    support::id_of(&support::create_approval(http, server, agent, body).await)
}

/// Opens `link` as the holder of session `cookie` (none: signed out).
async fn open(link: &str, cookie: Option<&str>) -> reqwest::Response {
    let mut req = no_redirects().get(link);
    if let Some(c) = cookie {
        req = req.header(header::COOKIE, format!("pliuz_session={c}"));
    }
    req.send().await.expect("open link")
}

fn location(r: &reqwest::Response) -> String {
    r.headers()
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// A mailed link sends a stranger to log in first; bob (no approver) is
/// refused, saying `refusal`, without using it up; alice (the approver) is
/// sent to `page` once, after which it is gone. Returns alice's session.
async fn assert_link_opens_once_for_the_approver(
    server: &Server,
    link: &str,
    refusal: &str,
    page: &str,
) -> String {
    let r = open(link, None).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(location(&r).starts_with("/login?next="), "{}", location(&r));

    let bob = session(&no_redirects(), server, "bob@example.com").await;
    let r = open(link, Some(&bob)).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let text = r.text().await.unwrap_or_default();
    assert!(text.contains(refusal), "{text}");

    let alice = session(&no_redirects(), server, "alice@example.com").await;
    let r = open(link, Some(&alice)).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&r), page);
    let r = open(link, Some(&alice)).await;
    assert_eq!(r.status(), StatusCode::GONE);
    assert!(r.text().await.unwrap_or_default().contains("already used"));
    alice
}

async fn email_link_reminder_escalation_and_follow_up(database_url: Option<String>) {
    let sink = Sink::start().await;
    let config = config(
        &sink,
        "",
        "remind_after = \"2s\"\nescalate_after = \"4s\"\nescalate_to = [\"group:leads\"]",
    );
    let server = Server::start_with(&config, database_url, env_vars(&FAST_OUTBOX)).await;
    server.create_user("alice@example.com", "approver", &["finance"]);
    server.create_user("bob@example.com", "approver", &["sales"]);
    let lead = server.user_token("lead@example.com", "approver", &["leads"]);
    let agent = server.agent_key("bot");
    let http = reqwest::Client::new();

    let created = Instant::now();
    let id = create(
        &http,
        &server,
        &agent,
        json!({"amount_cents": 5000, "note": "<script>alert(1)</script> & co"}),
    )
    .await;

    // The request e-mail reaches the approver, and only the approver.
    let mail = sink.wait_for("alice@example.com", "Approval needed").await;
    assert_eq!(mail.to.len(), 1, "one e-mail per recipient: {:?}", mail.to);
    assert!(
        mail.subject().contains("issue_refund (refunds)"),
        "{}",
        mail.subject()
    );
    assert!(mail.text.contains("Content-Type: text/plain"));
    assert!(mail
        .html()
        .contains("&lt;script&gt;alert(1)&lt;/script&gt; &amp; co"));
    assert!(
        !mail.html().contains("<script>"),
        "agent text is escaped in HTML"
    );
    assert_eq!(sink.count("bob@example.com", ""), 0);
    assert_eq!(sink.count("lead@example.com", ""), 0);
    let link = mail.link();

    let alice = assert_link_opens_once_for_the_approver(
        &server,
        &link,
        "not an approver",
        &format!("/requests/{id}"),
    )
    .await;
    // The link's secret never reaches the log (requests are logged).
    let secret = link.rsplit("pliuz_el_").next().unwrap_or_default();
    assert!(secret.len() > 20 && !server.log().contains(secret));
    // A made-up link is no link.
    let forged = format!("{}x", &link[..link.len() - 1]);
    assert_eq!(
        open(&forged, Some(&alice)).await.status(),
        StatusCode::NOT_FOUND
    );

    // Before the escalation the leads may not decide (nor see it).
    let r = decide(&http, &server, &lead, &id, json!({"decision": "approve"})).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let lead_cookie = format!(
        "pliuz_session={}",
        session(&no_redirects(), &server, "lead@example.com").await
    );
    let inbox = support::web::page(&http, &server, "/inbox", &lead_cookie).await;
    assert!(!inbox.contains(&id) && !inbox.contains("Escalated to you"));

    // The reminder, on time, to the same approver, with a new link.
    let reminder = sink.wait_for("alice@example.com", "Reminder").await;
    let at = created.elapsed();
    assert!(at >= Duration::from_secs(2), "reminded after {at:?}");
    assert_ne!(reminder.link(), link);
    assert_eq!(sink.count("lead@example.com", ""), 0);

    // The escalation, on time, to the leads.
    let escalated = sink.wait_for("lead@example.com", "Escalated to you").await;
    let at = created.elapsed();
    assert!(at >= Duration::from_secs(4), "escalated after {at:?}");
    assert!(escalated.text.contains("you may now decide"));
    assert_eq!(
        sink.count("alice@example.com", "Reminder"),
        1,
        "one reminder"
    );

    // Now the leads may decide.
    let r = decide(&http, &server, &lead, &id, json!({"decision": "approve"})).await;
    assert_eq!(r.status(), StatusCode::OK, "{:?}", r.text().await);

    // The follow-up reaches everyone mailed before, no link in it.
    for who in ["alice@example.com", "lead@example.com"] {
        let m = sink.wait_for(who, "[Pliuz] approved").await;
        assert!(
            m.text.contains("Decided by: user:lead@example.com"),
            "{}",
            m.text
        );
        assert!(!m.text.contains("/email-link/"));
    }
    assert_eq!(sink.count("bob@example.com", ""), 0);

    // The request page's timeline shows it all.
    let page = support::web::session_page(&http, &server, &format!("/requests/{id}"), &alice).await;
    for kind in [
        "email.sent",
        "email.link_used",
        "approval.reminded",
        "approval.escalated",
        "approval.decided",
    ] {
        assert!(page.contains(kind), "the timeline lacks {kind}");
    }
}

support::on_both_databases!(email_link_reminder_escalation_and_follow_up);

/// The admin's view of the audit entries about question `id`.
async fn audit_of_question(
    http: &reqwest::Client,
    server: &Server,
    admin: &str,
    id: &str,
) -> Vec<Value> {
    let all = support::audit_entries(http, server, admin, "start=0&end=500").await;
    all.into_iter()
        .filter(|e| e["data"]["question_id"] == id)
        .collect()
}

async fn ask(http: &reqwest::Client, server: &Server, agent: &str, body: Value) -> String {
    let r = http
        .post(server.url("/api/v1/questions"))
        .bearer_auth(agent)
        .json(&body)
        .send()
        .await
        .expect("ask");
    assert_eq!(r.status(), StatusCode::CREATED);
    let v: Value = r.json().await.expect("json");
    v["id"].as_str().expect("id").to_owned()
}

async fn question_by_email_link_and_follow_ups(database_url: Option<String>) {
    let sink = Sink::start().await;
    let server =
        Server::start_with(&config(&sink, "", ""), database_url, env_vars(&FAST_OUTBOX)).await;
    let alice_token = server.user_token("alice@example.com", "approver", &["finance"]);
    // An approver, but the question is about her own request: not mailed.
    server.create_user("carol@example.com", "approver", &["finance"]);
    server.create_user("bob@example.com", "approver", &["sales"]);
    let admin = server.user_token("admin@example.com", "admin", &[]);
    let agent = server.agent_key("bot");
    let http = reqwest::Client::new();

    let id = ask(
        &http,
        &server,
        &agent,
        json!({
            "text": "Refund <script>alert(1)</script> & co?\r\nBcc: evil@example.com",
            "choices": [{"value": "card", "label": "<b>Card</b>"}, "credit"],
            "allow_free_text": true,
            "policy": "refunds",
            "originator": "user:carol@example.com",
        }),
    )
    .await;

    // The question e-mail reaches the approver, one line of subject, the
    // text and the choices in both parts, escaped in the HTML one.
    let mail = sink
        .wait_for("alice@example.com", "[Pliuz] Question:")
        .await;
    assert_eq!(mail.to.len(), 1, "one e-mail per recipient: {:?}", mail.to);
    assert_eq!(
        mail.subject(),
        "[Pliuz] Question: Refund <script>alert(1)</script> & co?  Bcc: evil@example.com (refunds)"
    );
    let headers = mail.text.split("\r\n\r\n").next().unwrap_or_default();
    assert!(
        !headers.lines().any(|l| l.starts_with("Bcc")),
        "no header injected: {headers}"
    );
    assert_eq!(mail.to, ["<alice@example.com>"]);
    assert!(mail.text.contains("Content-Type: text/plain"));
    assert!(
        mail.text.contains("  - <b>Card</b> (card)"),
        "{}",
        mail.text
    );
    assert!(mail.text.contains("  - credit (credit)"), "{}", mail.text);
    assert!(mail
        .html()
        .contains("Refund &lt;script&gt;alert(1)&lt;/script&gt; &amp; co?"));
    assert!(mail.html().contains("&lt;b&gt;Card&lt;/b&gt;"));
    assert!(!mail.html().contains("<script>") && !mail.html().contains("<b>"));
    assert!(mail.text.contains("A free-text answer is possible."));
    assert_eq!(sink.count("carol@example.com", ""), 0, "not the originator");
    assert_eq!(sink.count("bob@example.com", ""), 0);
    let link = mail.link();

    // The originator may not answer (though an approver): refused, and the
    // link is not used up.
    let carol = session(&no_redirects(), &server, "carol@example.com").await;
    assert_eq!(
        open(&link, Some(&carol)).await.status(),
        StatusCode::FORBIDDEN
    );
    let alice = assert_link_opens_once_for_the_approver(
        &server,
        &link,
        "not an approver of the policy 'refunds'",
        &format!("/questions/{id}"),
    )
    .await;
    let page =
        support::web::session_page(&http, &server, &format!("/questions/{id}"), &alice).await;
    assert!(page.contains("Refund &lt;script&gt;"), "the question page");

    // Answered: the follow-up reaches whoever was mailed, without a link.
    let r = http
        .post(server.url(&format!("/api/v1/questions/{id}/answer")))
        .bearer_auth(&alice_token)
        .json(&json!({"choice": "card", "text": "the <card> on file"}))
        .send()
        .await
        .expect("answer");
    assert_eq!(r.status(), StatusCode::OK, "{:?}", r.text().await);
    let m = sink
        .wait_for("alice@example.com", "[Pliuz] Question answered:")
        .await;
    assert!(
        m.text.contains("Answered by: user:alice@example.com"),
        "{}",
        m.text
    );
    assert!(m.text.contains("Choice: <b>Card</b> (card)"), "{}", m.text);
    assert!(m.html().contains("the &lt;card&gt; on file"));
    assert!(!m.text.contains("/email-link/"));
    assert!(m.text.contains(&format!("/questions/{id}")));
    assert_eq!(sink.count("carol@example.com", ""), 0);
    assert_eq!(sink.count("bob@example.com", ""), 0);

    // Each e-mail and the link's use are audited, naming the question (the
    // record commits just after the SMTP server accepted the e-mail).
    let deadline = Instant::now() + Duration::from_secs(10);
    let kinds = loop {
        let entries = audit_of_question(&http, &server, &admin, &id).await;
        let kinds: Vec<String> = entries.iter().map(|e| e.to_string()).collect();
        let sent = |kind: &str| {
            kinds
                .iter()
                .any(|e| e.contains("\"email.sent\"") && e.contains(kind))
        };
        if sent("\"email.question\"") && sent("\"email.question_settled\"") {
            break kinds;
        }
        assert!(
            Instant::now() < deadline,
            "no email.sent of both kinds: {kinds:#?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        kinds
            .iter()
            .any(|e| e.contains("\"email.link_used\"") && e.contains("alice@example.com")),
        "{kinds:#?}"
    );

    // A question nobody answers: the follow-up says it expired.
    let late = ask(
        &http,
        &server,
        &agent,
        json!({"text": "Anyone there?", "choices": ["yes"], "policy": "refunds", "expires_in_seconds": 1}),
    )
    .await;
    sink.wait_for("alice@example.com", "[Pliuz] Question: Anyone there?")
        .await;
    let m = sink
        .wait_for(
            "alice@example.com",
            "[Pliuz] Question expired: Anyone there?",
        )
        .await;
    assert!(m.text.contains(&format!("/questions/{late}")), "{}", m.text);
}

support::on_both_databases!(question_by_email_link_and_follow_ups);

/// A server on `config` with alice, a finance approver, and an agent who
/// opens one request; returns the server and the e-mail it sent alice.
async fn one_request_mailed_to_alice(sink: &Sink, config: &str) -> (Server, Mail) {
    let server = Server::start_with(config, None, env_vars(&FAST_OUTBOX)).await;
    server.create_user("alice@example.com", "approver", &["finance"]);
    let agent = server.agent_key("bot");
    create(
        &reqwest::Client::new(),
        &server,
        &agent,
        json!({"amount_cents": 1}),
    )
    .await;
    let mail = sink.wait_for("alice@example.com", "Approval needed").await;
    (server, mail)
}

#[tokio::test]
async fn an_expired_link_is_refused_with_a_clear_page() {
    let sink = Sink::start().await;
    let (server, mail) =
        one_request_mailed_to_alice(&sink, &config(&sink, "link_ttl = \"1s\"", "")).await;
    let alice = session(&no_redirects(), &server, "alice@example.com").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let r = open(&mail.link(), Some(&alice)).await;
    assert_eq!(r.status(), StatusCode::GONE);
    assert!(r.text().await.unwrap_or_default().contains("expired"));
}

#[tokio::test]
async fn a_reminder_due_while_the_server_was_down_fires_after_the_restart() {
    let sink = Sink::start().await;
    let (mut server, _) =
        one_request_mailed_to_alice(&sink, &config(&sink, "", "remind_after = \"2s\"")).await;
    server.stop();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(sink.count("alice@example.com", "Reminder"), 0);
    server.spawn().await;
    let started = Instant::now();
    sink.wait_for("alice@example.com", "Reminder").await;
    assert!(started.elapsed() < Duration::from_secs(10));
    // Fired once: no second reminder later.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(sink.count("alice@example.com", "Reminder"), 1);
}

#[tokio::test]
async fn policy_check_refuses_timers_after_expiry_and_warns_of_an_empty_escalation_group() {
    let sink = Sink::start().await;
    let server = Server::start(&config(
        &sink,
        "",
        "remind_after = \"5m\"\nescalate_after = \"10m\"\nescalate_to = [\"group:leeds\"]",
    ))
    .await;
    server.create_user("alice@example.com", "approver", &["finance"]);
    let config_path = server.config_path();
    let path = config_path.to_str().expect("path");
    // A group nobody is in: a warning naming the key, not an error.
    let out = server.cli(&["policy", "check", path], None);
    assert!(out.success, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("escalate_to group:leeds matches nobody"),
        "{}",
        out.stderr
    );
    // Timers that could only fire after the request expired: errors, with lines.
    let text = config(
        &sink,
        "",
        "remind_after = \"2h\"\nescalate_after = \"soon\"\nescalate_to = [\"leads\"]",
    );
    let mistakes = support::policy_check_fails(&server, &text);
    for expected in [
        "remind_after (2h) must be shorter than expires_in (1h)",
        "escalate_after 'soon' is not a duration",
        "escalate_to: approver 'leads' must be 'user:EMAIL' or 'group:NAME'",
    ] {
        assert!(mistakes.contains(expected), "{expected}: {mistakes}");
    }
    assert!(mistakes.contains("bad.toml:16:"), "{mistakes}");
}
