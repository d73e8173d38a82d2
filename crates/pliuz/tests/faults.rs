//! Fault injection against the real binary: a full disk, a locked or
//! damaged database file, replicas starting together on an empty
//! PostgreSQL database, SIGTERM with many long-polls open. Each scenario is
//! bounded (well under 60 s) and checks the guarantees of
//! docs/operations.md ("Guarantees"): an acknowledgement means a durable
//! commit, a failure says why, `/readyz` tells the truth, shutdown is quick
//! and signs the whole log.

mod support;

use reqwest::header::HeaderMap;
use reqwest::{Client, StatusCode};
use serde_json::{json, Value};
use sqlx::Connection;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::Server;

/// The refunds policy; the audit log is signed only at shutdown.
const CONFIG: &str = include_str!("fixtures/refunds_rare_checkpoints.toml");

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

async fn send(req: reqwest::RequestBuilder) -> Reply {
    let r = req.send().await.expect("request");
    let status = r.status();
    let headers = r.headers().clone();
    let body = r.json().await.unwrap_or(Value::Null);
    Reply {
        status,
        headers,
        body,
    }
}

/// Opens a refund request with `pad` bytes of arguments under `key`.
async fn create(http: &Client, server: &Server, agent: &str, key: &str, pad: usize) -> Reply {
    let body = json!({
        "tool_name": "issue_refund",
        "tool_args": {"order_id": key, "amount_cents": 5000, "note": "x".repeat(pad)},
        "idempotency_key": key,
    });
    send(
        http.post(server.url("/api/v1/approvals"))
            .bearer_auth(agent)
            .json(&body),
    )
    .await
}

async fn readyz(http: &Client, server: &Server) -> Reply {
    send(http.get(server.url("/readyz"))).await
}

/// A 503 as the API promises it: problem+json, `unavailable`, a reason
/// containing `why`, and `Retry-After`.
fn assert_unavailable(r: &Reply, why: &str) {
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.body);
    assert_eq!(
        r.headers.get("content-type").and_then(|v| v.to_str().ok()),
        Some("application/problem+json")
    );
    assert_eq!(r.body["code"], "unavailable", "{}", r.body);
    let detail = r.body["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains(why),
        "reason should mention '{why}': {detail}"
    );
    let retry: u64 = r
        .headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("a Retry-After header in seconds");
    assert!((1..=60).contains(&retry), "Retry-After {retry}");
}

/// With the database locked by another session: a write is refused with
/// the reason well within the client's patience.
async fn write_is_refused_quickly_as_locked(http: &Client, server: &Server, agent: &str) {
    let t = Instant::now();
    let r = create(http, server, agent, "while-locked", 10).await;
    assert_unavailable(&r, "locked");
    assert!(
        t.elapsed() < Duration::from_secs(8),
        "took {:?}",
        t.elapsed()
    );
}

/// After the lock is released, without a restart.
async fn writes_and_readiness_are_back(http: &Client, server: &Server, agent: &str) {
    let r = create(http, server, agent, "after-lock", 10).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let r = readyz(http, server).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}

async fn sqlite(path: &Path) -> sqlx::SqliteConnection {
    sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .expect("open the database from the test process")
}

async fn stored(conn: &mut sqlx::SqliteConnection, key: &str) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM approvals WHERE idempotency_key = ?")
        .bind(key)
        .fetch_one(conn)
        .await
        .expect("count")
}

/// `pliuz audit check` after the server stopped: (entries, unsigned).
fn audit_check(server: &Server) -> (u64, u64) {
    let out = server.cli(&["audit", "check"], None);
    assert!(out.success, "{}{}", out.stdout, out.stderr);
    // "OK: N entries, C checkpoints, U unsigned"
    let first = out.stdout.split(';').next().unwrap_or_default();
    let nums: Vec<u64> = first
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse().ok())
        .collect();
    assert_eq!(nums.len(), 3, "{}", out.stdout);
    (nums[0], nums[2])
}

/// A small tmpfs the test mounts itself; unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Result<Tmpfs, String> {
        std::fs::create_dir_all(at).map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0700")])
            .arg("tmpfs")
            .arg(at)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if out.status.success() {
            Ok(Tmpfs(at.to_owned()))
        } else {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Writes zeros to `path` until the filesystem is full, then gives back
/// `leave` bytes (so writes succeed for a while, then fail).
fn fill(path: &Path, leave: u64) {
    use std::io::Write;
    let mut f = std::fs::File::create(path).expect("filler");
    let chunk = vec![0u8; 64 * 1024];
    while f.write_all(&chunk).is_ok() {}
    // The last partial chunk too, byte by byte in small steps.
    let small = [0u8; 512];
    while f.write_all(&small).is_ok() {}
    let len = f.metadata().expect("filler size").len();
    f.set_len(len.saturating_sub(leave))
        .expect("shrink the filler");
    let _ = f.sync_all();
}

/// A server whose data directory is a 6 MiB tmpfs, filled up after one
/// request was stored; what it acknowledged and refused meanwhile.
struct DiskFull {
    // Fields drop in order: the server stops before the unmount.
    server: Server,
    http: Client,
    agent: String,
    data: PathBuf,
    /// (idempotency key, approval id) of each request answered 201.
    acked: Vec<(String, String)>,
    /// Keys of the requests refused with "Nothing was changed".
    refused: Vec<String>,
    _fs: Tmpfs,
    _root: tempfile::TempDir,
}

impl DiskFull {
    /// `None` (said on stderr) where no tmpfs can be mounted.
    async fn start(scenario: &str) -> Option<DiskFull> {
        let root = tempfile::tempdir().expect("tempdir");
        let data = root.path().join("data");
        let fs = match Tmpfs::mount(&data, "6m") {
            Ok(fs) => fs,
            Err(why) => {
                // Straight to stderr, past the test harness's output capture.
                use std::io::Write;
                let _ = writeln!(
                    std::io::stderr(),
                    "SKIPPED {scenario}: cannot mount a tmpfs here ({why}); it needs root (CAP_SYS_ADMIN)"
                );
                return None;
            }
        };
        let server = Server::start_on(CONFIG, data.clone(), None, vec![]).await;
        let agent = server.agent_key("support-bot");
        let http = Client::new();
        let r = create(&http, &server, &agent, "before-full", 100).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        fill(&data.join("filler"), 1024 * 1024);
        Some(DiskFull {
            server,
            http,
            agent,
            data,
            acked: Vec::new(),
            refused: Vec::new(),
            _fs: fs,
            _root: root,
        })
    }

    async fn create(&self, key: &str) -> Reply {
        create(&self.http, &self.server, &self.agent, key, 3000).await
    }

    /// Books the answer to request `key` on a full disk; returns the
    /// reason of a 503.
    fn record(&mut self, key: String, r: &Reply) -> Option<String> {
        match r.status {
            StatusCode::CREATED => {
                let id = r.body["id"].as_str().expect("id").to_owned();
                self.acked.push((key, id));
                None
            }
            StatusCode::SERVICE_UNAVAILABLE => {
                assert_unavailable(r, "");
                let detail = r.body["detail"].as_str().unwrap_or_default().to_owned();
                if detail.contains("Nothing was changed") {
                    self.refused.push(key);
                }
                Some(detail)
            }
            other => panic!("a full disk must give 201 or 503, got {other}: {}", r.body),
        }
    }

    /// The disk did fill up, and another process sees every acknowledged
    /// request and none of the refused.
    async fn assert_stored_as_answered(&self) {
        assert!(
            self.refused.len() >= 5,
            "the disk never filled up: {} acknowledged, {} refused",
            self.acked.len(),
            self.refused.len()
        );
        let mut conn = sqlite(&self.data.join("pliuz.db")).await;
        for (key, _) in &self.acked {
            assert_eq!(
                stored(&mut conn, key).await,
                1,
                "acknowledged {key} is not stored"
            );
        }
        for key in &self.refused {
            assert_eq!(stored(&mut conn, key).await, 0, "refused {key} was stored");
        }
    }

    /// Frees the space; request `key` is stored within 10 s, without a
    /// restart (503 meanwhile). Returns its answer.
    async fn free_space_and_create(&self, key: &str) -> Reply {
        std::fs::remove_file(self.data.join("filler")).expect("free space");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let r = self.create(key).await;
            if r.status == StatusCode::CREATED {
                return r;
            }
            assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.body);
            assert!(
                Instant::now() < deadline,
                "writes did not resume: {}",
                r.body
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Stops the server with SIGTERM, which must exit cleanly having signed
    /// the whole audit log (`pliuz audit check`); returns how long it took.
    fn stop_and_check_the_log(&mut self) -> Duration {
        let (took, status) = self.server.terminate(Duration::from_secs(15));
        assert!(
            status.is_some_and(|s| s.success()),
            "exit {status:?}:\n{}",
            self.server.log()
        );
        let (_, unsigned) = audit_check(&self.server);
        assert_eq!(unsigned, 0);
        took
    }

    /// Every acknowledged request is served (after a restart).
    async fn assert_acked_are_served(&self) {
        for (key, id) in &self.acked {
            let r = send(
                self.http
                    .get(self.server.url(&format!("/api/v1/approvals/{id}")))
                    .bearer_auth(&self.agent),
            )
            .await;
            assert_eq!(
                r.status,
                StatusCode::OK,
                "{key} lost after restart: {}",
                r.body
            );
        }
    }
}

#[tokio::test]
async fn disk_full_on_sqlite_never_acknowledges_what_is_not_stored_and_recovers_without_restart() {
    let Some(mut d) = DiskFull::start("disk-full scenario").await else {
        return;
    };
    let finance = d
        .server
        .user_token("fin@example.com", "approver", &["finance"]);
    let mut first_refusal = None;
    let started = Instant::now();
    // Keep writing well past the first failure: that is where requests were
    // acknowledged and lost before.
    for i in 0..400 {
        if first_refusal.is_some_and(|n| i > n + 60) || started.elapsed() > Duration::from_secs(25)
        {
            break;
        }
        let key = format!("full-{i}");
        let r = d.create(&key).await;
        if let Some(detail) = d.record(key, &r) {
            assert!(
                detail.contains("full") || detail.contains("I/O"),
                "the reason names the full disk: {detail}"
            );
            first_refusal.get_or_insert(i);
        }
    }
    d.assert_stored_as_answered().await;
    let r = readyz(&d.http, &d.server).await;
    assert_unavailable(&r, "full");

    // Space comes back: writes resume in the same process, no restart.
    let r = d.free_space_and_create("after-free-0").await;
    d.record("after-free-0".into(), &r);
    for i in 1..20 {
        let key = format!("after-free-{i}");
        let r = d.create(&key).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        d.record(key, &r);
    }
    let (_, id) = d.acked.last().expect("acknowledged").clone();
    let decision = support::with_digest(
        &d.http,
        &d.server,
        &finance,
        &id,
        json!({"decision": "approve"}),
    )
    .await;
    let url = d.server.url(&format!("/api/v1/approvals/{id}/decision"));
    let r = send(d.http.post(url).bearer_auth(&finance).json(&decision)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = readyz(&d.http, &d.server).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);

    // A clean stop signs the whole log, and the log verifies.
    let took = d.stop_and_check_the_log();
    assert!(took < Duration::from_secs(5), "shutdown took {took:?}");

    // After a restart every acknowledged request is still there.
    d.server.spawn().await;
    d.assert_acked_are_served().await;
    let url = d.server.url(&format!("/api/v1/approvals/{id}"));
    let r = send(d.http.get(url).bearer_auth(&d.agent)).await;
    assert_eq!(r.body["status"], "approved");

    // Stopped while the disk is full: the final checkpoint is signed, or the
    // exit says plainly that it was not; the next start signs the rest.
    let r = d.create("last-before-full").await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let last_id = r.body["id"].as_str().expect("id").to_owned();
    fill(&d.data.join("filler"), 0);
    let earlier_log = d.server.log().len();
    let (took, status) = d.server.terminate(Duration::from_secs(15));
    assert!(took < Duration::from_secs(5), "shutdown took {took:?}");
    let status = status.expect("the server exited");
    let log = d.server.log().split_off(earlier_log);
    if status.success() {
        assert!(log.contains("signed the final audit checkpoint"), "{log}");
    } else {
        assert!(
            log.contains("error: could not sign the final audit checkpoint"),
            "a failed final checkpoint is reported: {log}"
        );
    }
    std::fs::remove_file(d.data.join("filler")).expect("free space");
    d.server.spawn().await;
    let url = d.server.url(&format!("/api/v1/approvals/{last_id}"));
    let r = send(d.http.get(url).bearer_auth(&d.agent)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    d.stop_and_check_the_log();
}

// Group commit: the disk fills up during bursts of concurrent creates, so
// whole batches fail at COMMIT (or when SQLite ends their transaction).
// Every create is answered 201 and stored, or 503; a 503 that says nothing
// was changed is not stored; no batch-mate of a failed commit is
// acknowledged.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn disk_full_during_concurrent_bursts_acknowledges_only_what_is_stored() {
    let Some(mut d) = DiskFull::start("disk-full burst scenario").await else {
        return;
    };
    let mut first_refusal = None;
    let started = Instant::now();
    for round in 0..100 {
        if first_refusal.is_some_and(|n| round > n + 3)
            || started.elapsed() > Duration::from_secs(25)
        {
            break;
        }
        let answers = futures::future::join_all((0..24).map(|i| {
            let key = format!("burst-{round}-{i}");
            let d = &d;
            async move { (key.clone(), d.create(&key).await) }
        }))
        .await;
        for (key, r) in answers {
            if d.record(key, &r).is_some() {
                first_refusal.get_or_insert(round);
            }
        }
    }
    d.assert_stored_as_answered().await;
    // Space comes back: writes resume without a restart.
    d.free_space_and_create("after-free").await;
    // After a restart every acknowledged request is there, and the log checks.
    d.stop_and_check_the_log();
    d.server.spawn().await;
    d.assert_acked_are_served().await;
}

#[tokio::test]
async fn a_locked_database_answers_503_with_the_reason_and_recovers_when_released() {
    let server = Server::start(CONFIG).await;
    let agent = server.agent_key("support-bot");
    let http = Client::new();
    let r = create(&http, &server, &agent, "before-lock", 10).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let first_id = r.body["id"].as_str().expect("id").to_owned();

    // Another process takes SQLite's write lock and holds it.
    let mut holder = sqlite(&server.data_dir().join("pliuz.db")).await;
    sqlx::raw_sql("BEGIN EXCLUSIVE")
        .execute(&mut holder)
        .await
        .expect("take the write lock");

    write_is_refused_quickly_as_locked(&http, &server, &agent).await;

    let t = Instant::now();
    let r = readyz(&http, &server).await;
    assert_unavailable(&r, "locked");
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "readyz took {:?}",
        t.elapsed()
    );

    // Reads still work.
    let r = send(
        http.get(server.url(&format!("/api/v1/approvals/{first_id}")))
            .bearer_auth(&agent),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);

    // A burst of writers is bounded: the queue sheds at once, the queued
    // give up after their wait, nobody hangs and nothing is a 500.
    let t = Instant::now();
    let burst: Vec<_> = (0..300)
        .map(|i| {
            let http = http.clone();
            let url = server.url("/api/v1/approvals");
            let agent = agent.clone();
            tokio::spawn(async move {
                let body = json!({"tool_name": "issue_refund", "tool_args": {"amount_cents": i}, "idempotency_key": format!("burst-{i}")});
                send(http.post(url).bearer_auth(agent).json(&body)).await
            })
        })
        .collect();
    let mut shed = 0;
    for task in burst {
        let r = task.await.expect("join");
        assert_unavailable(&r, "");
        if r.body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("too many writes"))
        {
            shed += 1;
        }
    }
    assert!(shed > 0, "the write queue was not bounded");
    assert!(
        t.elapsed() < Duration::from_secs(20),
        "burst took {:?}",
        t.elapsed()
    );

    // Released: writes and readiness come back without a restart.
    sqlx::raw_sql("ROLLBACK")
        .execute(&mut holder)
        .await
        .expect("release");
    drop(holder);
    writes_and_readiness_are_back(&http, &server, &agent).await;
    // Nothing that was refused was stored.
    let mut conn = sqlite(&server.data_dir().join("pliuz.db")).await;
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM approvals")
        .fetch_one(&mut conn)
        .await
        .expect("count");
    assert_eq!(n, 2);
}

#[tokio::test]
async fn a_damaged_database_file_fails_start_up_at_once_with_the_real_cause() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).expect("data dir");
    std::fs::write(
        data.join("pliuz.db"),
        "this is not an SQLite database\n".repeat(300),
    )
    .expect("write junk");
    let config = dir.path().join("pliuz.toml");
    std::fs::write(&config, CONFIG).expect("config");
    let t = Instant::now();
    let mut child = Command::new(support::BIN)
        .arg("--data-dir")
        .arg(&data)
        .arg("--config")
        .arg(&config)
        .args(["serve", "--listen"])
        .arg(format!("127.0.0.1:{}", support::free_port()))
        .env_remove("PLIUZ_AUDIT_SIGNING_KEY")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn pliuz");
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if t.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            panic!("pliuz did not give up on a damaged database");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let took = t.elapsed();
    let mut stderr = String::new();
    use std::io::Read;
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut stderr);
    }
    assert!(!status.success());
    assert!(took < Duration::from_secs(5), "took {took:?}: {stderr}");
    let headline = stderr
        .lines()
        .rev()
        .find(|l| l.starts_with("error:"))
        .unwrap_or_default();
    assert!(
        headline.contains("file is not a database") && headline.contains("pliuz.db"),
        "the error line names the cause and the file: {stderr}"
    );
}

#[tokio::test]
async fn sigterm_with_100_long_polls_open_exits_at_once_and_signs_every_entry() {
    let mut server = Server::start(CONFIG).await;
    let agent = server.agent_key("support-bot");
    let http = Client::new();
    let mut ids = Vec::new();
    for i in 0..100 {
        let r = create(&http, &server, &agent, &format!("poll-{i}"), 10).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        ids.push(r.body["id"].as_str().expect("id").to_owned());
    }
    let polls: Vec<_> = ids
        .iter()
        .map(|id| {
            let http = http.clone();
            let url = server.url(&format!("/api/v1/approvals/{id}?wait=60"));
            let agent = agent.clone();
            tokio::spawn(async move {
                let r = send(http.get(url).bearer_auth(agent)).await;
                (Instant::now(), r)
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        polls.iter().all(|p| !p.is_finished()),
        "the polls are waiting"
    );
    // The log has entries no checkpoint covers yet: the final one must.
    {
        let mut conn = sqlite(&server.data_dir().join("pliuz.db")).await;
        let size: i64 = sqlx::query_scalar("SELECT size FROM audit_head")
            .fetch_one(&mut conn)
            .await
            .expect("size");
        let signed: Option<i64> = sqlx::query_scalar("SELECT MAX(size) FROM audit_checkpoints")
            .fetch_one(&mut conn)
            .await
            .expect("signed");
        assert!(signed.unwrap_or(0) < size, "{signed:?} < {size}");
    }

    let sigterm = Instant::now();
    let (took, status) = server.terminate(Duration::from_secs(20));
    assert!(
        status.is_some_and(|s| s.success()),
        "exit {status:?}:\n{}",
        server.log()
    );
    assert!(took < Duration::from_secs(5), "shutdown took {took:?}");
    for p in polls {
        let (at, r) = p.await.expect("join");
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(r.body["status"], "pending", "the current state");
        assert!(at.duration_since(sigterm) < Duration::from_secs(5));
    }
    assert!(server.log().contains("signed the final audit checkpoint"));
    let (entries, unsigned) = audit_check(&server);
    assert!(entries >= 100, "{entries}");
    assert_eq!(unsigned, 0, "the final checkpoint covers every entry");
}

async fn postgres_count(url: &str, sql: &str) -> i64 {
    let mut conn = sqlx::PgConnection::connect(url).await.expect("postgres");
    sqlx::query_scalar(sql)
        .fetch_one(&mut conn)
        .await
        .expect("count")
}

#[tokio::test]
async fn replicas_started_together_on_an_empty_postgres_database_all_come_up_once() {
    const POLICY_LOADED: &str = "SELECT COUNT(*) FROM audit_entries WHERE kind = 'policy.loaded'";
    for round in 0..5 {
        let url = support::fresh_postgres_database().await;
        let key = pliuz_audit::SigningKey::generate("pliuz.local/audit")
            .expect("key")
            .to_private_string();
        let env = vec![("PLIUZ_AUDIT_SIGNING_KEY".to_owned(), key)];
        // All three start at the same moment; each panics if it exits.
        let (mut a, mut b, mut c) = tokio::join!(
            Server::start_with(CONFIG, Some(url.clone()), env.clone()),
            Server::start_with(CONFIG, Some(url.clone()), env.clone()),
            Server::start_with(CONFIG, Some(url.clone()), env.clone()),
        );
        assert_eq!(
            postgres_count(&url, POLICY_LOADED).await,
            1,
            "round {round}"
        );
        assert_eq!(postgres_count(&url, "SELECT COUNT(*) FROM users").await, 1);
        let announced = [&a, &b, &c]
            .iter()
            .filter(|s| s.log().contains("First start"))
            .count();
        assert_eq!(announced, 1, "exactly one replica created the first admin");
        if round < 4 {
            continue;
        }
        // Restarted together with the same policies: nothing new to record.
        for s in [&mut a, &mut b, &mut c] {
            s.kill9();
        }
        tokio::join!(a.spawn(), b.spawn(), c.spawn());
        assert_eq!(postgres_count(&url, POLICY_LOADED).await, 1);
        // A real policy change is recorded once, however many replicas load it.
        let changed = CONFIG.replace("expires_in = \"30m\"", "expires_in = \"45m\"");
        for s in [&mut a, &mut b, &mut c] {
            s.kill9();
            std::fs::write(s.config_path(), &changed).expect("config");
        }
        tokio::join!(a.spawn(), b.spawn(), c.spawn());
        assert_eq!(postgres_count(&url, POLICY_LOADED).await, 2);
        for s in [&a, &b, &c] {
            let r = readyz(&Client::new(), s).await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        }
    }
}

#[tokio::test]
async fn shutdown_keeps_to_shutdown_grace_even_with_a_write_stuck_on_a_lock() {
    let mut server = Server::start_with(
        CONFIG,
        None,
        vec![("PLIUZ_SHUTDOWN_GRACE".to_owned(), "2s".to_owned())],
    )
    .await;
    let agent = server.agent_key("support-bot");
    let http = Client::new();
    let mut holder = sqlite(&server.data_dir().join("pliuz.db")).await;
    sqlx::raw_sql("BEGIN EXCLUSIVE")
        .execute(&mut holder)
        .await
        .expect("take the write lock");
    let stuck = {
        let (http, url, agent) = (http.clone(), server.url("/api/v1/approvals"), agent.clone());
        tokio::spawn(async move {
            let body = json!({"tool_name": "issue_refund", "tool_args": {"amount_cents": 1}});
            http.post(url).bearer_auth(agent).json(&body).send().await
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (took, status) = server.terminate(Duration::from_secs(15));
    assert!(status.is_some(), "still running after 15 s");
    assert!(took < Duration::from_millis(3500), "shutdown took {took:?}");
    // The final checkpoint could not be written past the lock: said so.
    assert!(
        server
            .log()
            .contains("error: could not sign the final audit checkpoint"),
        "{}",
        server.log()
    );
    if let Ok(Ok(r)) = stuck.await {
        assert!(!r.status().is_success(), "{}", r.status());
    }
    drop(holder);
}

/// A server on a fresh PostgreSQL database: `(url, server, agent key, client)`.
async fn on_fresh_postgres() -> (String, Server, String, Client) {
    let url = support::fresh_postgres_database().await;
    let server = Server::start_with(CONFIG, Some(url.clone()), vec![]).await;
    let agent = server.agent_key("support-bot");
    (url, server, agent, Client::new())
}

#[tokio::test]
async fn a_locked_postgres_database_answers_503_with_the_reason_and_recovers() {
    let (url, server, agent, http) = on_fresh_postgres().await;
    // Another session holds the row every write must lock first.
    let mut holder = sqlx::PgConnection::connect(&url).await.expect("postgres");
    sqlx::raw_sql("BEGIN; SELECT size FROM audit_head WHERE id = 1 FOR UPDATE")
        .execute(&mut holder)
        .await
        .expect("lock the audit head");
    write_is_refused_quickly_as_locked(&http, &server, &agent).await;
    let r = readyz(&http, &server).await;
    assert_unavailable(&r, "locked");
    sqlx::raw_sql("ROLLBACK")
        .execute(&mut holder)
        .await
        .expect("release");
    writes_and_readiness_are_back(&http, &server, &agent).await;
    let n = postgres_count(&url, "SELECT COUNT(*) FROM approvals").await;
    assert_eq!(n, 1, "the refused request was not stored");
}

// The writer keeps its own PostgreSQL connection between batches: when the
// server ends it meanwhile (a restart, an idle timeout, an operator's
// `pg_terminate_backend`), the next write opens a fresh one instead of
// failing.
#[tokio::test]
async fn a_write_after_postgres_ended_the_writers_connection_succeeds() {
    let (url, server, agent, http) = on_fresh_postgres().await;
    let r = create(&http, &server, &agent, "before", 10).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let mut admin = sqlx::PgConnection::connect(&url).await.expect("postgres");
    let ended: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    .fetch_all(&mut admin)
    .await
    .expect("end the server's sessions");
    assert!(ended.iter().any(|e| *e), "no session ended");
    tokio::time::sleep(Duration::from_millis(200)).await;
    for key in ["after-1", "after-2"] {
        let r = create(&http, &server, &agent, key, 10).await;
        assert_eq!(r.status, StatusCode::CREATED, "{key}: {}", r.body);
    }
    let n = postgres_count(&url, "SELECT COUNT(*) FROM approvals").await;
    assert_eq!(n, 3);
}
