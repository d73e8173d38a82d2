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

use serde_json::{json, Value};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_pliuz");

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(default)
}

struct Server {
    child: std::process::Child,
    dir: tempfile::TempDir,
    base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn cli(dir: &std::path::Path, args: &[&str], stdin: Option<&str>) -> String {
    use std::io::Write;
    let mut c = Command::new(BIN)
        .arg("--data-dir")
        .arg(dir.join("data"))
        .arg("--config")
        .arg(dir.join("pliuz.toml"))
        .args(args)
        .env_remove("PLIUZ_ENCRYPTION_KEY")
        .env_remove("PLIUZ_AUDIT_SIGNING_KEY")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn pliuz");
    if let Some(input) = stdin {
        if let Some(mut s) = c.stdin.take() {
            let _ = s.write_all(input.as_bytes());
        }
    } else {
        drop(c.stdin.take());
    }
    let out = c.wait_with_output().expect("pliuz output");
    assert!(
        out.status.success(),
        "pliuz {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

async fn start() -> (Server, String, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("pliuz.toml"),
        "[[policy]]\nname = \"refunds\"\ntools = [\"issue_refund\"]\napprovers = [\"group:finance\"]\n",
    )
    .expect("config");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port");
    let agent = cli(dir.path(), &["agents", "create", "bench-bot"], None);
    cli(
        dir.path(),
        &[
            "users",
            "create",
            "fin@example.com",
            "--role",
            "approver",
            "--group",
            "finance",
            "--password-stdin",
        ],
        Some("correct-horse-battery\n"),
    );
    let user = cli(dir.path(), &["users", "token", "fin@example.com"], None);
    let child = Command::new(BIN)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .arg("--config")
        .arg(dir.path().join("pliuz.toml"))
        .arg("serve")
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .env("PLIUZ_LOG", "warn")
        .env_remove("PLIUZ_ENCRYPTION_KEY")
        .env_remove("PLIUZ_AUDIT_SIGNING_KEY")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn server");
    let server = Server {
        child,
        dir,
        base: format!("http://127.0.0.1:{port}"),
    };
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while http
        .get(format!("{}/readyz", server.base))
        .send()
        .await
        .map(|r| !r.status().is_success())
        .unwrap_or(true)
    {
        assert!(Instant::now() < deadline, "server did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
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
    base: String,
    agent: String,
    user: String,
    state: String,
) -> Sample {
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
    let poll = {
        let (http, url, agent) = (
            http.clone(),
            format!("{base}/api/v1/runs/{id}?wait=30"),
            agent.clone(),
        );
        tokio::spawn(async move {
            let v: Value = http
                .get(url)
                .bearer_auth(agent)
                .send()
                .await
                .expect("poll")
                .json()
                .await
                .expect("json");
            (Instant::now(), v)
        })
    };
    // Let the long-poll reach the server before deciding.
    tokio::time::sleep(Duration::from_millis(20)).await;
    post(
        &http,
        format!("{base}/api/v1/approvals/{aid}/decision"),
        &user,
        json!({"decision": "approve"}),
    )
    .await;
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
                        server.base.clone(),
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
