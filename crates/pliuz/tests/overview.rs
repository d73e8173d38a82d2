//! The inbox overview's figures on SQLite and PostgreSQL: a known mix of
//! requests made over the API, read back as the overview's CSV downloads by
//! a person logged in through the real log-in form.

mod support;

use reqwest::{header, Client, StatusCode};
use serde_json::json;
use support::{finance_policy, Server};

fn config() -> String {
    [
        finance_policy("refunds", "issue_refund", ""),
        finance_policy(
            "quick",
            "quick_refund",
            r#"auto_approve = "args.amount_cents <= 1000""#,
        ),
        "\n[[policy]]\nname = \"ops\"\ntools = [\"restart\"]\napprovers = [\"group:ops\"]\n"
            .to_owned(),
    ]
    .concat()
}

/// Logs in through the form; returns the session cookie header value.
async fn web_login(http: &Client, s: &Server, email: &str) -> String {
    let session = support::web::session(http, s, email).await;
    format!("pliuz_session={session}")
}

async fn csv(http: &Client, s: &Server, cookie: &str, name: &str) -> String {
    let res = http
        .get(s.url(&format!("/overview/{name}.csv?days=7")))
        .header(header::COOKIE, cookie)
        .send()
        .await
        .expect("csv");
    assert_eq!(res.status(), StatusCode::OK);
    res.text().await.expect("text")
}

async fn overview_counts_a_known_mix(database_url: Option<String>) {
    let http = support::web::no_redirects();
    let s = Server::start_with(&config(), database_url, vec![]).await;
    let agent = s.agent_key("bot");
    let ann = s.user_token("ann@example.com", "approver", &["finance"]);
    s.user_token("ada@example.com", "admin", &[]);
    s.user_token("olga@example.com", "approver", &["ops"]);
    let refund = json!({"tool_name": "issue_refund", "tool_args": {"amount_cents": 5000}});
    for decision in ["approve", "approve", "reject"] {
        let a = support::post_ok(&http, &s, &agent, "/api/v1/approvals", refund.clone()).await;
        let id = a["id"].as_str().unwrap_or_default().to_owned();
        let body =
            json!({"decision": decision, "reason": "checked", "args_digest": a["args_digest"]});
        support::post_ok(
            &http,
            &s,
            &ann,
            &format!("/api/v1/approvals/{id}/decision"),
            body,
        )
        .await;
    }
    let quick = json!({"tool_name": "quick_refund", "tool_args": {"amount_cents": 10}});
    let auto = support::post_ok(&http, &s, &agent, "/api/v1/approvals", quick).await;
    assert_eq!(auto["status"], "approved");
    let c = support::post_ok(&http, &s, &agent, "/api/v1/approvals", refund.clone()).await;
    let cid = c["id"].as_str().unwrap_or_default().to_owned();
    support::post_ok(
        &http,
        &s,
        &agent,
        &format!("/api/v1/approvals/{cid}/cancel"),
        json!({}),
    )
    .await;
    let waiting = support::post_ok(&http, &s, &agent, "/api/v1/approvals", refund.clone()).await;

    let admin = web_login(&http, &s, "ada@example.com").await;
    let approvers = csv(&http, &s, &admin, "approvers").await;
    assert_eq!(
        approvers,
        "approver,approved,rejected\r\nann@example.com,2,1\r\n"
    );
    let expiry = csv(&http, &s, &admin, "expiry").await;
    assert_eq!(
        expiry,
        "policy,expired,settled\r\nquick,0,1\r\nrefunds,0,4\r\n"
    );
    let volume = csv(&http, &s, &admin, "volume").await;
    let lines: Vec<&str> = volume.trim_end().split("\r\n").collect();
    assert_eq!(
        lines[0],
        "day,approved_by_person,auto_approved,rejected,expired,cancelled"
    );
    assert_eq!(lines.len(), 1 + 8, "{volume}");
    let mut sums = [0u64; 5];
    for l in &lines[1..] {
        for (i, n) in l.split(',').skip(1).enumerate() {
            sums[i] += n.parse::<u64>().unwrap_or(0);
        }
    }
    assert_eq!(sums, [2, 1, 1, 0, 1]);
    let w = csv(&http, &s, &admin, "waiting").await;
    assert!(w.contains(waiting["id"].as_str().unwrap_or("?")), "{w}");
    let ttd = csv(&http, &s, &admin, "decision-time").await;
    assert!(
        ttd.starts_with("policy,decided,median_seconds,p90_seconds\r\nrefunds,3,"),
        "{ttd}"
    );

    // An approver of another policy sees none of it.
    let olga = web_login(&http, &s, "olga@example.com").await;
    assert_eq!(
        csv(&http, &s, &olga, "approvers").await,
        "approver,approved,rejected\r\n"
    );
    assert_eq!(
        csv(&http, &s, &olga, "waiting").await,
        "policy,id,tool_name,created_at,age_seconds\r\n"
    );
    // Without a session: off to the log-in page.
    let res = http
        .get(s.url("/overview/waiting.csv"))
        .send()
        .await
        .expect("anon");
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
}

support::on_both_databases!(overview_counts_a_known_mix);
