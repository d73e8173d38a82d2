//! Durable run overhead through the real `pliuz` binary over HTTP on SQLite
//! (WAL, `synchronous = FULL`): what Pliuz adds to pausing and resuming an
//! agent run, at 1, 8 and 32 runs in flight.
//!
//! ```sh
//! cargo bench -p pliuz --bench runs
//! PLIUZ_BENCH_RUNS=64 PLIUZ_BENCH_STATE_BYTES=200000 cargo bench -p pliuz --bench runs
//! ```
//!
//! Each run: open an approval (not counted), **pause** (`POST /runs` with a
//! state of `PLIUZ_BENCH_STATE_BYTES`, default 50 kB), a long-poll waits,
//! an approver decides, the long-poll is **woken** (time from the decision's
//! answer to the wake-up), **claim** (state back, decrypted and checked) and
//! **complete**. Printed per phase: p50 / p95 in ms, plus the overhead per
//! run (pause + wake + claim + complete) and runs per second.

#[path = "../tests/support/mod.rs"]
mod support;

use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::Server;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(default)
}

/// The server (logging warnings only), an agent key and an approver's token.
async fn start() -> (Server, String, String) {
    let policy = "[[policy]]\nname = \"refunds\"\ntools = [\"issue_refund\"]\napprovers = [\"group:finance\"]\n";
    let server =
        Server::start_with(policy, None, support::env_vars(&[("PLIUZ_LOG", "warn")])).await;
    let agent = server.agent_key("bench-bot");
    let user = server.user_token("fin@example.com", "approver", &["finance"]);
    (server, agent, user)
}

#[derive(Default)]
struct Sample {
    pause: Duration,
    wake: Duration,
    claim: Duration,
    complete: Duration,
}

async fn post(http: &reqwest::Client, url: String, token: &str, body: Value) -> Value {
    let r = http
        .post(url)
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .expect("request");
    assert!(r.status().is_success(), "{}", r.status());
    r.json().await.expect("json")
}

async fn one_run(
    http: reqwest::Client,
    server: Arc<Server>,
    agent: String,
    user: String,
    state: String,
) -> Sample {
    let base = &server.base;
    let a = post(
        &http,
        format!("{base}/api/v1/approvals"),
        &agent,
        json!({"tool_name": "issue_refund", "tool_args": {"amount_cents": 5000}}),
    )
    .await;
    let aid = a["id"].as_str().expect("id").to_owned();
    let t = Instant::now();
    let run = post(
        &http,
        format!("{base}/api/v1/runs"),
        &agent,
        json!({"state": state, "approval_ids": [aid]}),
    )
    .await;
    let pause = t.elapsed();
    let id = run["id"].as_str().expect("run id").to_owned();
    let poll = support::long_poll(&http, format!("{base}/api/v1/runs/{id}?wait=30"), &agent);
    // Let the long-poll reach the server before deciding.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let r = support::decide(&http, &server, &user, &aid, json!({"decision": "approve"})).await;
    assert!(r.status().is_success(), "{}", r.status());
    let decided = Instant::now();
    let (woke, v) = poll.await.expect("poll task");
    assert_eq!(v["status"], "ready");
    let wake = woke.saturating_duration_since(decided);
    let t = Instant::now();
    let c = post(
        &http,
        format!("{base}/api/v1/runs/{id}/claim"),
        &agent,
        json!({"lease_seconds": 60}),
    )
    .await;
    let claim = t.elapsed();
    assert_eq!(c["state"].as_str().map(str::len), Some(state.len()));
    let token = c["lease_token"].as_str().expect("token").to_owned();
    let t = Instant::now();
    post(
        &http,
        format!("{base}/api/v1/runs/{id}/complete"),
        &agent,
        json!({"lease_token": token, "outcome": "completed"}),
    )
    .await;
    Sample {
        pause,
        wake,
        claim,
        complete: t.elapsed(),
    }
}

fn pct(mut v: Vec<Duration>, p: f64) -> f64 {
    v.sort();
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v.get(i).map(|d| d.as_secs_f64() * 1000.0).unwrap_or(0.0)
}

#[tokio::main]
async fn main() {
    let runs = env_usize("PLIUZ_BENCH_RUNS", 64);
    let state_bytes = env_usize("PLIUZ_BENCH_STATE_BYTES", 50_000);
    let (server, agent, user) = start().await;
    let server = Arc::new(server);
    let http = reqwest::Client::new();
    let state: String = "{\"messages\":[\"".to_owned() + &"x".repeat(state_bytes) + "\"]}";
    println!(
        "durable runs through HTTP, SQLite at {} ({} runs per level, state {} bytes)",
        server.dir.path().display(),
        runs,
        state.len()
    );
    println!("in flight | pause p50/p95 | wake p50/p95 | claim p50/p95 | complete p50/p95 | overhead/run p50 | runs/s");
    for concurrency in [1usize, 8, 32] {
        let started = Instant::now();
        let mut samples = Vec::with_capacity(runs);
        let mut left = runs;
        while left > 0 {
            let batch = left.min(concurrency);
            left -= batch;
            let tasks: Vec<_> = (0..batch)
                .map(|_| {
                    tokio::spawn(one_run(
                        http.clone(),
                        server.clone(),
                        agent.clone(),
                        user.clone(),
                        state.clone(),
                    ))
                })
                .collect();
            for t in tasks {
                samples.push(t.await.expect("run task"));
            }
        }
        let elapsed = started.elapsed();
        let col = |f: fn(&Sample) -> Duration| samples.iter().map(f).collect::<Vec<_>>();
        let overhead = col(|s| s.pause + s.wake + s.claim + s.complete);
        println!(
            "{concurrency:>9} | {:>6.1} / {:>6.1} | {:>5.1} / {:>5.1} | {:>6.1} / {:>6.1} | {:>7.1} / {:>6.1} | {:>13.1} ms | {:>6.1}",
            pct(col(|s| s.pause), 0.5),
            pct(col(|s| s.pause), 0.95),
            pct(col(|s| s.wake), 0.5),
            pct(col(|s| s.wake), 0.95),
            pct(col(|s| s.claim), 0.5),
            pct(col(|s| s.claim), 0.95),
            pct(col(|s| s.complete), 0.5),
            pct(col(|s| s.complete), 0.95),
            pct(overhead, 0.5),
            runs as f64 / elapsed.as_secs_f64(),
        );
    }
}
