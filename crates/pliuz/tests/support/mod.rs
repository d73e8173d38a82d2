//! Test harness: runs the real `pliuz` binary on a free port with its own
//! data directory and talks to it over real HTTP.

#![allow(dead_code)]

pub mod slack_fake;

use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_pliuz");

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
            shared_data_dir: None,
        };
        s.spawn().await;
        s
    }

    /// A second replica on its own port, sharing the database (PostgreSQL),
    /// configuration and keys of `primary`.
    pub async fn replica_of(primary: &Server) -> Server {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::copy(primary.config_path(), dir.path().join("pliuz.toml")).expect("copy config");
        let port = free_port();
        let mut s = Server {
            child: None,
            dir,
            port,
            base: format!("http://127.0.0.1:{port}"),
            extra_env: primary.extra_env.clone(),
            database_url: primary.database_url.clone(),
            shared_data_dir: Some(primary.data_dir()),
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

    pub async fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("log file");
        let mut c = self.base_command();
        c.arg("serve")
            .arg("--listen")
            .arg(format!("127.0.0.1:{}", self.port))
            .env("PLIUZ_LOG", "info")
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
        CliOutput {
            success: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    pub fn agent_key(&self, name: &str) -> String {
        let out = self.cli(&["agents", "create", name], None);
        assert!(out.success, "agents create failed: {}", out.stderr);
        out.stdout.trim().to_owned()
    }

    /// Creates a user and returns a personal API token for them.
    pub fn user_token(&self, email: &str, role: &str, groups: &[&str]) -> String {
        let mut args = vec!["users", "create", email, "--role", role, "--password-stdin"];
        for g in groups {
            args.push("--group");
            args.push(g);
        }
        let out = self.cli(&args, Some("correct-horse-battery\n"));
        assert!(out.success, "users create failed: {}", out.stderr);
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

/// A fresh, empty PostgreSQL database for one test, when PostgreSQL is
/// reachable (`PLIUZ_TEST_POSTGRES_URL`, default the local `test` database).
pub async fn fresh_postgres_database() -> String {
    use sqlx::Connection;
    let admin = std::env::var("PLIUZ_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let mut conn = sqlx::PgConnection::connect(&admin)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL is required for this test ({admin}): {e}"));
    let name = format!("pliuz_test_{}", uuid::Uuid::now_v7().simple());
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .expect("create database");
    let base = admin
        .rsplit_once('/')
        .map(|(b, _)| b.to_owned())
        .unwrap_or(admin);
    format!("{base}/{name}")
}
