//! Group commit against the real binary (issue #13, item 1): concurrent
//! creates share transactions on SQLite and on PostgreSQL
//! (`pliuz_store_commits_total` grows slower than
//! `pliuz_store_committed_changes_total`); a change that fails
//! inside a batch fails alone while its batch-mates succeed and are stored;
//! kill -9 during a burst loses no acknowledged request, on SQLite and
//! PostgreSQL. The full-disk case is in `faults.rs`.

mod support;

use futures::future::join_all;
use reqwest::{Client, StatusCode};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::{Server, REFUNDS_POLICY};

const METRICS_TOKEN: &str = "metrics-token-0123456789abcdef";

fn config() -> String {
    format!("[metrics]\ntoken = \"{METRICS_TOKEN}\"\n{REFUNDS_POLICY}")
}

/// `(transactions, changes)` committed so far, from `GET /metrics`.
async fn write_stats(http: &Client, server: &Server) -> (f64, f64) {
    let text = http
        .get(server.url("/metrics"))
        .bearer_auth(METRICS_TOKEN)
        .send()
        .await
        .expect("scrape")
        .text()
        .await
        .expect("body");
    let sample = |series: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
            .and_then(|v| v.split(' ').next()?.parse::<f64>().ok())
            .unwrap_or_else(|| panic!("{series} missing:\n{text}"))
    };
    (
        sample("pliuz_store_commits_total"),
        sample("pliuz_store_committed_changes_total"),
    )
}

async fn create(
    http: &Client,
    server: &Server,
    agent: &str,
    key: &str,
    amount: i64,
) -> (StatusCode, Value) {
    support::send_json(
        http.post(server.url("/api/v1/approvals"))
            .bearer_auth(agent)
            .json(&json!({
                "tool_name": "issue_refund",
                "tool_args": {"amount_cents": amount},
                "idempotency_key": key,
            })),
    )
    .await
}

/// Stops the server and checks the audit log with `pliuz audit check`.
fn audit_checks_out(server: &mut Server) {
    let (_, status) = server.terminate(Duration::from_secs(15));
    assert!(status.is_some_and(|s| s.success()), "{}", server.log());
    let out = server.cli(&["audit", "check"], None);
    assert!(out.success, "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.starts_with("OK"), "{}", out.stdout);
}

/// After a restart, every acknowledged request is still there and the audit
/// log verifies.
async fn acknowledged_requests_survived(
    http: &Client,
    server: &mut Server,
    agent: &str,
    acknowledged: &[String],
) {
    server.restart().await;
    for id in acknowledged {
        let status = http
            .get(server.url(&format!("/api/v1/approvals/{id}")))
            .bearer_auth(agent)
            .send()
            .await
            .expect("GET")
            .status();
        assert_eq!(status, StatusCode::OK, "acknowledged {id} lost");
    }
    audit_checks_out(server);
}

async fn concurrent_creates_are_committed_in_fewer_transactions_than_requests(
    database_url: Option<String>,
) {
    let server = Server::start_with(&config(), database_url, vec![]).await;
    let agent = server.agent_key("bot");
    let http = Client::new();
    let (commits_before, changes_before) = write_stats(&http, &server).await;
    // Several rounds of 64 at once: a round's creates queue behind each
    // other's changes, and share commits.
    let mut created = 0;
    for round in 0..3 {
        let answers = join_all((0..64).map(|i| {
            let (http, server, agent) = (&http, &server, &agent);
            async move { create(http, server, agent, &format!("r{round}-{i}"), 5000).await }
        }))
        .await;
        for (status, body) in answers {
            assert_eq!(status, StatusCode::CREATED, "{body}");
            created += 1;
        }
    }
    let (commits, changes) = write_stats(&http, &server).await;
    let (commits, changes) = (commits - commits_before, changes - changes_before);
    eprintln!("{created} creates: {changes} changes in {commits} transactions");
    assert!(changes >= f64::from(created), "{changes} changes counted");
    assert!(
        commits < changes * 0.75,
        "{changes} changes took {commits} transactions: no group commit"
    );
}

support::on_both_databases!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    concurrent_creates_are_committed_in_fewer_transactions_than_requests
);

/// Pairs of creates race for the same new idempotency key with different
/// arguments amid other creates: inside a batch the loser's insert fails on
/// the unique key and only its change is rolled back.
async fn a_change_failing_inside_a_batch_fails_alone(database_url: Option<String>) {
    let mut server = Server::start_with(&config(), database_url, vec![]).await;
    let agent = server.agent_key("bot");
    let http = Client::new();
    let mut ok: Vec<String> = Vec::new();
    let mut conflicts = 0;
    for round in 0..4 {
        let answers = join_all((0..48).map(|i| {
            let (http, server, agent) = (&http, &server, &agent);
            async move {
                // Every fourth request races its neighbour for one key.
                let key = if i % 4 < 2 {
                    format!("shared-{round}-{}", i / 4)
                } else {
                    format!("own-{round}-{i}")
                };
                (i, create(http, server, agent, &key, 5000 + i).await)
            }
        }))
        .await;
        for (i, (status, body)) in answers {
            match status {
                StatusCode::CREATED => ok.push(body["id"].as_str().expect("id").to_owned()),
                StatusCode::CONFLICT => {
                    assert!(i % 4 < 2, "only a racing create may conflict: {body}");
                    let text = body.to_string();
                    assert!(
                        text.contains("concurrent_create") || text.contains("idempotency_conflict"),
                        "{body}"
                    );
                    conflicts += 1;
                }
                other => panic!("create {i}: {other} {body}"),
            }
        }
    }
    // 4 rounds × (24 own + 12 shared keys): each key created exactly once.
    assert_eq!(ok.len(), 4 * (24 + 12), "{conflicts} conflicts");
    assert_eq!(conflicts, 4 * 12);
    // Durable: still there after a kill -9 and a restart, and the log verifies.
    server.kill9();
    acknowledged_requests_survived(&http, &mut server, &agent, &ok).await;
}

support::on_both_databases!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    a_change_failing_inside_a_batch_fails_alone
);

/// 32 agents create as fast as they can; the server is killed (-9) in the
/// middle. Every request that was answered 201 is there after a restart.
async fn kill9_during_a_burst_loses_no_acknowledged_request(database_url: Option<String>) {
    let mut server = Server::start_with(&config(), database_url, vec![]).await;
    let agent = server.agent_key("bot");
    let http = Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let url = server.url("/api/v1/approvals");
    let stop_at = Instant::now() + Duration::from_secs(20);
    let workers: Vec<_> = (0..32)
        .map(|w| {
            let (http, url, agent, acked) =
                (http.clone(), url.clone(), agent.clone(), acked.clone());
            tokio::spawn(async move {
                for i in 0.. {
                    if Instant::now() > stop_at {
                        break;
                    }
                    let sent = http
                        .post(&url)
                        .bearer_auth(&agent)
                        .json(&json!({
                            "tool_name": "issue_refund",
                            "tool_args": {"amount_cents": 5000},
                            "idempotency_key": format!("w{w}-{i}"),
                        }))
                        .send()
                        .await;
                    let Ok(r) = sent else { break }; // the server is gone
                    if r.status() != StatusCode::CREATED {
                        break;
                    }
                    let Ok(body) = r.json::<Value>().await else {
                        break;
                    };
                    let id = body["id"].as_str().expect("id").to_owned();
                    acked.lock().expect("lock").push(id);
                }
            })
        })
        .collect();
    // Kill once the burst is well under way.
    let deadline = Instant::now() + Duration::from_secs(15);
    while acked.lock().expect("lock").len() < 300 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.kill9();
    for w in workers {
        w.await.expect("worker");
    }
    let acked = acked.lock().expect("lock").clone();
    assert!(
        acked.len() >= 100,
        "only {} acknowledged before the kill",
        acked.len()
    );
    acknowledged_requests_survived(&http, &mut server, &agent, &acked).await;
}

support::on_both_databases!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    kill9_during_a_burst_loses_no_acknowledged_request
);

/// Two replicas on one PostgreSQL database, each batching its own creates,
/// write at the same time: their batches take turns on the audit head row,
/// each keeps its audit tree edge only while no other replica wrote, and
/// the one log verifies with every entry in it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_batching_at_once_on_postgres_keep_one_verifiable_log() {
    let url = support::fresh_postgres_database().await;
    let mut primary = Server::start_with(&config(), Some(url), vec![]).await;
    let mut replica = Server::replica_of(&primary).await;
    let agent = primary.agent_key("bot");
    let http = Client::new();
    let before = [
        write_stats(&http, &primary).await,
        write_stats(&http, &replica).await,
    ];
    let mut ids = Vec::new();
    for round in 0..3 {
        let answers = join_all((0..64).map(|i| {
            let (http, agent) = (&http, &agent);
            let server = if i % 2 == 0 { &primary } else { &replica };
            async move { create(http, server, agent, &format!("r{round}-{i}"), 5000).await }
        }))
        .await;
        for (status, body) in answers {
            assert_eq!(status, StatusCode::CREATED, "{body}");
            ids.push(body["id"].as_str().expect("id").to_owned());
        }
    }
    let after = [
        write_stats(&http, &primary).await,
        write_stats(&http, &replica).await,
    ];
    for (name, ((c0, n0), (c1, n1))) in ["primary", "replica"].iter().zip(before.iter().zip(&after))
    {
        let (commits, changes) = (c1 - c0, n1 - n0);
        eprintln!("{name}: {changes} changes in {commits} transactions");
        assert!(changes >= 96.0, "{name}: {changes} changes counted");
        assert!(
            commits < changes * 0.75,
            "{name}: {changes} changes took {commits} transactions: no group commit"
        );
    }
    let (_, status) = replica.terminate(Duration::from_secs(15));
    assert!(status.is_some_and(|s| s.success()), "{}", replica.log());
    for id in &ids {
        let status = http
            .get(primary.url(&format!("/api/v1/approvals/{id}")))
            .bearer_auth(&agent)
            .send()
            .await
            .expect("GET")
            .status();
        assert_eq!(status, StatusCode::OK, "{id} lost");
    }
    audit_checks_out(&mut primary);
}
