//! Test harness: runs the real `pliuz` binary on a free port with its own
//! data directory and talks to it over real HTTP.

#![allow(dead_code)]

pub mod crew;
pub mod postgres;
#[allow(unused_imports)] // not every test file starts a crew
pub use crew::Crew;
pub mod slack_fake;
pub mod web;

use reqwest::Client;
use serde_json::Value;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_pliuz");

/// The password every user made by [`Server::user_token`] logs in with.
pub const PASSWORD: &str = "correct-horse-battery";

/// The policy most tests decide under: finance approves `issue_refund`,
/// with every decision allowed, within half an hour. It ends with the
/// policy's last key, so tests may append more keys to it.
pub const REFUNDS_POLICY: &str = include_str!("../fixtures/refunds_policy.toml");

/// One `[[policy]]` table in which finance approves `tool`; `settings` are
/// its other keys, one a line (may be empty).
pub fn finance_policy(name: &str, tool: &str, settings: &str) -> String {
    format!(
        "\n[[policy]]\nname = \"{name}\"\ntools = [\"{tool}\"]\napprovers = [\"group:finance\"]\n{settings}\n"
    )
}

/// A payout needs two approvals and may be edited.
pub const PAYOUTS_SETTINGS: &str =
    "decisions = [\"approve\", \"reject\", \"edit\"]\nrequired_approvals = 2";

/// Outbox retries within a test's patience (first retry after 50 ms, none
/// later than 300 ms); pass to [`env_vars`].
pub const FAST_OUTBOX: [(&str, &str); 2] = [
    ("PLIUZ_OUTBOX_BACKOFF_MS", "50"),
    ("PLIUZ_OUTBOX_BACKOFF_MAX_MS", "300"),
];

/// The config file `tests/fixtures/<name>` with each `{key}` of `values`
/// replaced by its value (a file, so a config reads as the user writes it).
pub fn fixture_config(name: &str, values: &[(&str, &str)]) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    let template = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("fixture {}: {e}", path.display()));
    values.iter().fold(template, |config, (key, value)| {
        let placeholder = format!("{{{key}}}");
        assert!(config.contains(&placeholder), "{name} has no {placeholder}");
        config.replace(&placeholder, value)
    })
}

/// Sends a request; returns its status and JSON body (`null` when the body
/// is not JSON, e.g. empty).
pub async fn send_json(req: reqwest::RequestBuilder) -> (reqwest::StatusCode, serde_json::Value) {
    let r = req.send().await.expect("request");
    let status = r.status();
    (status, r.json().await.unwrap_or(serde_json::Value::Null))
}

/// An agent opens a request with `body`, which must be accepted (201);
/// returns the new approval.
pub async fn create_approval(
    http: &reqwest::Client,
    server: &Server,
    agent: &str,
    body: serde_json::Value,
) -> serde_json::Value {
    let request = http
        .post(server.url("/api/v1/approvals"))
        .bearer_auth(agent);
    let (status, approval) = send_json(request.json(&body)).await;
    assert_eq!(status, reqwest::StatusCode::CREATED, "{approval}");
    approval
}

/// A POST of `body` to `path` with `token` that must succeed (2xx); returns
/// the JSON answer.
pub async fn post_ok(
    http: &Client,
    server: &Server,
    token: &str,
    path: &str,
    body: Value,
) -> Value {
    let request = http.post(server.url(path)).bearer_auth(token);
    let (status, answer) = send_json(request.json(&body)).await;
    assert!(status.is_success(), "{path}: {status}: {answer}");
    answer
}

/// The `id` of an approval (or any object that has one).
pub fn id_of(object: &serde_json::Value) -> String {
    object["id"].as_str().expect("id").to_owned()
}

/// The entries (their `entry` objects) of audit log page `query` (e.g.
/// `start=0&end=200`), read with `token`, oldest first.
pub async fn audit_entries(
    http: &reqwest::Client,
    server: &Server,
    token: &str,
    query: &str,
) -> Vec<serde_json::Value> {
    let url = server.url(&format!("/api/v1/audit/entries?{query}"));
    let (status, page) = send_json(http.get(url).bearer_auth(token)).await;
    assert_eq!(status, reqwest::StatusCode::OK, "{page}");
    page["entries"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| e["entry"].clone())
        .collect()
}

/// `[audit]` settings that sign a checkpoint every 4 entries or every
/// second, under `origin`: tests that read proofs need signed roots.
pub fn frequent_checkpoints(origin: &str) -> String {
    format!(
        "\n[audit]\norigin = \"{origin}\"\ncheckpoint_every = 4\ncheckpoint_interval = \"1s\"\n"
    )
}

/// `pliuz policy check` on a file `name` in the server's directory holding
/// `policies`.
pub fn policy_check(server: &Server, name: &str, policies: &str) -> CliOutput {
    let path = server.dir.path().join(name);
    std::fs::write(&path, policies).expect("write policy file");
    server.cli(&["policy", "check", path.to_str().expect("path")], None)
}

/// `pliuz policy check` on a file `bad.toml` holding `policies`, which must
/// fail; returns what it printed about the mistakes.
pub fn policy_check_fails(server: &Server, policies: &str) -> String {
    let out = policy_check(server, "bad.toml", policies);
    assert!(!out.success, "bad.toml passed the check: {}", out.stderr);
    out.stderr
}

/// `pliuz policy check` passes on the config file the server runs with.
pub fn assert_policy_check_passes(server: &Server) {
    let config = server.config_path();
    let out = server.cli(&["policy", "check", config.to_str().expect("path")], None);
    assert!(out.success, "{}", out.stderr);
}

/// Environment variables for [`Server::start_with`] from `(name, value)` pairs.
pub fn env_vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

pub struct Server {
    child: Option<Child>,
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub base: String,
    pub extra_env: Vec<(String, String)>,
    pub database_url: Option<String>,
    /// Set for a replica sharing another server's data dir (and so its keys).
    shared_data_dir: Option<PathBuf>,
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

impl Server {
    /// Starts a server with this pliuz.toml on SQLite.
    pub async fn start(config: &str) -> Server {
        Server::start_with(config, None, vec![]).await
    }

    pub async fn start_with(
        config: &str,
        database_url: Option<String>,
        extra_env: Vec<(String, String)>,
    ) -> Server {
        Server::launch(config, None, database_url, extra_env).await
    }

    /// A server on its own port and config, over an existing data dir (its
    /// SQLite database and keys), e.g. a copy of another server's.
    pub async fn start_on_data_dir(config: &str, data_dir: PathBuf) -> Server {
        Server::start_on(config, data_dir, None, vec![]).await
    }

    /// Starts a server whose data directory is `data_dir` (e.g. a small
    /// filesystem a test mounted).
    pub async fn start_on(
        config: &str,
        data_dir: PathBuf,
        database_url: Option<String>,
        extra_env: Vec<(String, String)>,
    ) -> Server {
        Server::launch(config, Some(data_dir), database_url, extra_env).await
    }

    /// A second replica on its own port, sharing the database (PostgreSQL),
    /// configuration and keys of `primary`.
    pub async fn replica_of(primary: &Server) -> Server {
        let config = std::fs::read_to_string(primary.config_path()).expect("read config");
        Server::launch(
            &config,
            Some(primary.data_dir()),
            primary.database_url.clone(),
            primary.extra_env.clone(),
        )
        .await
    }

    /// Writes `config` to a fresh directory and serves on a free port; the
    /// data lives in `shared_data_dir` or else in that directory.
    async fn launch(
        config: &str,
        shared_data_dir: Option<PathBuf>,
        database_url: Option<String>,
        extra_env: Vec<(String, String)>,
    ) -> Server {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("pliuz.toml"), config).expect("write config");
        let port = free_port();
        let mut s = Server {
            child: None,
            dir,
            port,
            base: format!("http://127.0.0.1:{port}"),
            extra_env,
            database_url,
            shared_data_dir,
        };
        s.spawn().await;
        s
    }

    pub fn data_dir(&self) -> PathBuf {
        self.shared_data_dir
            .clone()
            .unwrap_or_else(|| self.dir.path().join("data"))
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("pliuz.toml")
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn base_command(&self) -> Command {
        let mut c = Command::new(BIN);
        c.arg("--data-dir")
            .arg(self.data_dir())
            .arg("--config")
            .arg(self.config_path());
        if let Some(url) = &self.database_url {
            c.arg("--database-url").arg(url);
        }
        // Hermetic: a key in the developer's environment must not leak in.
        c.env_remove("PLIUZ_AUDIT_SIGNING_KEY");
        c.env_remove("PLIUZ_ENCRYPTION_KEY");
        for (k, v) in &self.extra_env {
            c.env(k, v);
        }
        c
    }

    /// `pliuz serve` that is expected to refuse to start: waits (at most
    /// 30 s) for it to exit and returns its output; panics if it serves.
    pub fn serve_refused(&self) -> CliOutput {
        let mut c = self.base_command();
        c.arg("serve")
            .arg("--listen")
            .arg(format!("127.0.0.1:{}", free_port()))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c.spawn().expect("spawn pliuz serve");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(_)) = child.try_wait() {
                let out = child.wait_with_output().expect("serve output");
                return CliOutput::from(out);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let out = child.wait_with_output().expect("serve output");
                panic!(
                    "pliuz serve did not refuse to start:\n{}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// [`Server::serve_refused`] after replacing the config file with `config`.
    pub fn serve_refused_with(&self, config: &str) -> CliOutput {
        std::fs::write(self.config_path(), config).expect("write config");
        self.serve_refused()
    }

    pub async fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("log file");
        let mut c = self.base_command();
        if !self.extra_env.iter().any(|(k, _)| k == "PLIUZ_LOG") {
            c.env("PLIUZ_LOG", "info");
        }
        c.arg("serve")
            .arg("--listen")
            .arg(format!("127.0.0.1:{}", self.port))
            .stdout(Stdio::null())
            .stderr(Stdio::from(log));
        self.child = Some(c.spawn().expect("spawn pliuz"));
        self.wait_ready().await;
    }

    async fn wait_ready(&mut self) {
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = client.get(format!("{}/readyz", self.base)).send().await {
                if r.status().is_success() {
                    return;
                }
            }
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!("pliuz exited early with {status}:\n{}", self.log());
                }
            }
            assert!(
                Instant::now() < deadline,
                "server did not start:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The server process's id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGKILL: no graceful shutdown, nothing flushed beyond what was committed.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait for a clean exit.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(c.id().to_string())
                .status();
            let deadline = Instant::now() + Duration::from_secs(15);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM; waits up to `limit` for the exit and returns how long it
    /// took and the exit status (`None`: still running, then killed).
    pub fn terminate(&mut self, limit: Duration) -> (Duration, Option<std::process::ExitStatus>) {
        let Some(mut c) = self.child.take() else {
            return (Duration::ZERO, None);
        };
        let start = Instant::now();
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(c.id().to_string())
            .status();
        while start.elapsed() < limit {
            if let Ok(Some(status)) = c.try_wait() {
                return (start.elapsed(), Some(status));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = c.kill();
        let _ = c.wait();
        (start.elapsed(), None)
    }

    pub async fn restart(&mut self) {
        self.kill9();
        self.spawn().await;
    }

    /// Runs an admin command against this server's data dir and config.
    pub fn cli(&self, args: &[&str], stdin: Option<&str>) -> CliOutput {
        let mut c = self.base_command();
        c.args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .stdin(Stdio::piped());
        let mut child = c.spawn().expect("spawn pliuz cli");
        if let Some(input) = stdin {
            if let Some(mut s) = child.stdin.take() {
                let _ = s.write_all(input.as_bytes());
            }
        } else {
            drop(child.stdin.take());
        }
        let out = child.wait_with_output().expect("cli output");
        CliOutput::from(out)
    }

    pub fn agent_key(&self, name: &str) -> String {
        let out = self.cli(&["agents", "create", name], None);
        assert!(out.success, "agents create failed: {}", out.stderr);
        out.stdout.trim().to_owned()
    }

    /// Creates a user who logs in with [`PASSWORD`].
    pub fn create_user(&self, email: &str, role: &str, groups: &[&str]) {
        let mut args = vec!["users", "create", email, "--role", role, "--password-stdin"];
        for g in groups {
            args.push("--group");
            args.push(g);
        }
        let out = self.cli(&args, Some(&format!("{PASSWORD}\n")));
        assert!(out.success, "users create failed: {}", out.stderr);
    }

    /// Creates a user and returns a personal API token for them.
    pub fn user_token(&self, email: &str, role: &str, groups: &[&str]) -> String {
        self.create_user(email, role, groups);
        let out = self.cli(&["users", "token", email], None);
        assert!(out.success, "users token failed: {}", out.stderr);
        out.stdout.trim().to_owned()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
    }
}

pub struct CliOutput {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

impl From<std::process::Output> for CliOutput {
    fn from(out: std::process::Output) -> CliOutput {
        CliOutput {
            success: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

/// Two tests of `scenario`, an async fn taking the database URL (`None`:
/// SQLite): `scenario::on_sqlite` and `scenario::on_postgres` (on a
/// [`fresh_postgres_database`]), each with the test attribute given (by
/// default `#[tokio::test]`).
#[allow(unused_macros)] // not every test file has such scenarios
macro_rules! on_both_databases {
    ($scenario:ident) => {
        $crate::support::on_both_databases!(
            #[tokio::test]
            $scenario
        );
    };
    (#[$test:meta] $scenario:ident) => {
        mod $scenario {
            #[$test]
            async fn on_sqlite() {
                super::$scenario(None).await;
            }

            #[$test]
            async fn on_postgres() {
                let url = $crate::support::fresh_postgres_database().await;
                super::$scenario(Some(url)).await;
            }
        }
    };
}
#[allow(unused_imports)] // as above
pub(crate) use on_both_databases;

/// A fresh, empty PostgreSQL database for one test, when PostgreSQL is
/// reachable (`PLIUZ_TEST_POSTGRES_URL`, default the local `test` database).
pub async fn fresh_postgres_database() -> String {
    postgres::fresh_database("pliuz_test").await
}

/// A decision body with the approval's current `args_digest` added (unless
/// the body already has one), as a decider who just reviewed it would send.
/// When `token` cannot see the approval, a digest that matches nothing is
/// sent, so the server's authorisation answer is what the test sees.
pub async fn with_digest(
    http: &reqwest::Client,
    server: &Server,
    token: &str,
    id: &str,
    mut body: serde_json::Value,
) -> serde_json::Value {
    if body.get("args_digest").is_none() {
        let digest = match http
            .get(server.url(&format!("/api/v1/approvals/{id}")))
            .bearer_auth(token)
            .send()
            .await
        {
            Ok(r) if r.status().is_success() => r
                .json::<serde_json::Value>()
                .await
                .ok()
                .and_then(|v| v["args_digest"].as_str().map(str::to_owned)),
            _ => None,
        };
        body["args_digest"] = serde_json::Value::String(digest.unwrap_or_else(|| "0".repeat(64)));
    }
    body
}

/// Posts a decision on approval `id` as `token`, bound to the arguments
/// the decider just reviewed (see [`with_digest`]).
pub async fn decide(
    http: &reqwest::Client,
    server: &Server,
    token: &str,
    id: &str,
    body: serde_json::Value,
) -> reqwest::Response {
    let body = with_digest(http, server, token, id, body).await;
    http.post(server.url(&format!("/api/v1/approvals/{id}/decision")))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .expect("decision request")
}

/// The `Content-Type` of a response, empty when it has none.
pub fn content_type(r: &reqwest::Response) -> String {
    r.headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// Polls `find` until it finds something and returns that; after `timeout`
/// fails, naming `what` it waited for and what `seen` shows was there.
pub async fn eventually<T, Seen: std::fmt::Debug>(
    what: &str,
    timeout: Duration,
    find: impl Fn() -> Option<T>,
    seen: impl Fn() -> Seen,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(found) = find() {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; so far: {:#?}",
            seen()
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Asserts that an API answer is the problem `code` with `status`; returns
/// the problem for further checks.
pub fn assert_problem(
    (status, problem): (reqwest::StatusCode, serde_json::Value),
    expected: reqwest::StatusCode,
    code: &str,
) -> serde_json::Value {
    assert_eq!(status, expected, "{problem}");
    assert_eq!(problem["code"], code, "{problem}");
    problem
}

/// Asserts that a problem answer's `detail` mentions `text`.
pub fn assert_detail_contains(problem: &serde_json::Value, text: &str) {
    assert!(
        problem["detail"]
            .as_str()
            .unwrap_or_default()
            .contains(text),
        "{problem}"
    );
}

/// A GET (a long-poll) started now in the background; yields when it was
/// answered and the answer.
pub fn long_poll(
    http: &reqwest::Client,
    url: String,
    token: &str,
) -> tokio::task::JoinHandle<(Instant, serde_json::Value)> {
    let request = http.get(url).bearer_auth(token);
    tokio::spawn(async move {
        let answer = request.send().await.expect("long-poll");
        let body = answer.json().await.expect("long-poll JSON");
        (Instant::now(), body)
    })
}
