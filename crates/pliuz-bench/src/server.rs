//! The real `pliuz` binary on a temporary data directory: set up through
//! its own CLI, served on a free port, stopped with SIGTERM.

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Three policies: `lookup` calls are approved by the policy at once (the
/// gate's own cost), `issue_refund` and `restart` wait for a person.
const CONFIG: &str = r#"
[[policy]]
name = "lookups"
tools = ["lookup"]
approvers = ["group:finance"]
auto_approve = "true"

[[policy]]
name = "refunds"
tools = ["issue_refund"]
approvers = ["group:finance"]

[[policy]]
name = "ops"
tools = ["restart"]
approvers = ["group:finance"]
"#;

pub const APPROVER: &str = "fin@example.com";
pub const PASSWORD: &str = "correct-horse-battery";

pub struct Server {
    bin: PathBuf,
    dir: tempfile::TempDir,
    database_url: Option<String>,
    child: Option<Child>,
    pub base: String,
    /// Bearer token of the agent `bench-bot`.
    pub agent: String,
    /// Bearer token of the approver.
    pub user: String,
}

impl Server {
    /// A new data directory (in `parent`, so on the disk being measured),
    /// one agent and one approver, then `serve`. With `database_url` the
    /// server uses that (PostgreSQL) database instead of its SQLite file.
    pub async fn start(bin: &Path, parent: &Path, database_url: Option<String>) -> Result<Server> {
        let dir = tempfile::Builder::new()
            .prefix("pliuz-bench-")
            .tempdir_in(parent)?;
        std::fs::write(dir.path().join("pliuz.toml"), CONFIG)?;
        let mut s = Server {
            bin: bin.to_owned(),
            dir,
            database_url,
            child: None,
            base: String::new(),
            agent: String::new(),
            user: String::new(),
        };
        s.agent = s.cli(&["agents", "create", "bench-bot"], None)?;
        s.cli(
            &[
                "users",
                "create",
                APPROVER,
                "--role",
                "approver",
                "--group",
                "finance",
                "--password-stdin",
            ],
            Some(&format!("{PASSWORD}\n")),
        )?;
        s.user = s.cli(&["users", "token", APPROVER], None)?;
        s.serve().await?;
        Ok(s)
    }

    /// The temporary directory holding the data directory (baseline files
    /// go here: same disk, not inside the server's private data).
    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The SQLite database file (meaningless with PostgreSQL).
    pub fn sqlite_file(&self) -> PathBuf {
        self.data_dir().join("pliuz.db")
    }

    fn command(&self) -> Command {
        let mut c = Command::new(&self.bin);
        c.arg("--data-dir")
            .arg(self.data_dir())
            .arg("--config")
            .arg(self.dir.path().join("pliuz.toml"))
            .env_remove("PLIUZ_ENCRYPTION_KEY")
            .env_remove("PLIUZ_AUDIT_SIGNING_KEY")
            .env_remove("PLIUZ_DATABASE_URL");
        if let Some(url) = &self.database_url {
            c.env("PLIUZ_DATABASE_URL", url);
        }
        c
    }

    /// Runs an admin command; its trimmed standard output.
    pub fn cli(&self, args: &[&str], stdin: Option<&str>) -> Result<String> {
        let mut c = self
            .command()
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("running {}", self.bin.display()))?;
        if let Some(mut input) = c.stdin.take() {
            if let Some(text) = stdin {
                input.write_all(text.as_bytes())?;
            }
        }
        let out = c.wait_with_output()?;
        if !out.status.success() {
            bail!(
                "pliuz {args:?} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    /// Starts `serve` on a free port and waits until it is ready.
    pub async fn serve(&mut self) -> Result<()> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let child = self
            .command()
            .arg("serve")
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .env("PLIUZ_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()?;
        self.child = Some(child);
        self.base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let ready = http.get(self.url("/readyz")).send().await;
            if ready.is_ok_and(|r| r.status().is_success()) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("the server did not become ready within 60 s");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGTERM, then wait for the process to end.
    pub fn stop(&mut self) -> Result<()> {
        if let Some(mut child) = self.child.take() {
            let status = Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string())
                .status()?;
            if !status.success() {
                child.kill()?;
            }
            child.wait()?;
        }
        Ok(())
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Resident memory of the server process in kB (Linux), if known.
    pub fn rss_kb(&self) -> Option<u64> {
        let pid = self.child.as_ref()?.id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    }

    /// Logs the approver in through the web form; the session cookie.
    pub async fn web_login(&self, http: &reqwest::Client) -> Result<String> {
        let page = http.get(self.url("/login")).send().await?;
        let token = set_cookie(&page, "pliuz_login").context("no login cookie")?;
        let res = http
            .post(self.url("/login"))
            .header(reqwest::header::COOKIE, format!("pliuz_login={token}"))
            .form(&[
                ("email", APPROVER),
                ("password", PASSWORD),
                ("csrf", &token),
                ("next", "/inbox"),
            ])
            .send()
            .await?;
        let status = res.status();
        let session = set_cookie(&res, "pliuz_session")
            .with_context(|| format!("log-in failed: {status}"))?;
        Ok(format!("pliuz_session={session}"))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn set_cookie(res: &reqwest::Response, name: &str) -> Option<String> {
    res.headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| {
            let (k, val) = v.split(';').next()?.split_once('=')?;
            (k == name && !val.is_empty()).then(|| val.to_owned())
        })
}

/// An HTTP client that keeps one connection per host when used
/// sequentially (every figure measured on a warm keep-alive connection).
pub fn client() -> Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        // The log-in answer carries the session cookie on its redirect.
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(usize::MAX)
        .tcp_nodelay(true)
        .build()?)
}

/// `POST` with a bearer token; the JSON answer, failing on a non-2xx.
pub async fn post(http: &reqwest::Client, url: &str, token: &str, body: &Value) -> Result<Value> {
    let request = http.post(url).bearer_auth(token).json(body);
    json_answer(request, &format!("POST {url}")).await
}

/// `GET` with a bearer token; the JSON answer, failing on a non-2xx.
pub async fn get(http: &reqwest::Client, url: &str, token: &str) -> Result<Value> {
    json_answer(http.get(url).bearer_auth(token), &format!("GET {url}")).await
}

/// Sends `request` (`what` names it in errors); the JSON answer, failing on
/// a non-2xx.
async fn json_answer(request: reqwest::RequestBuilder, what: &str) -> Result<Value> {
    let r = request.send().await?;
    let status = r.status();
    if !status.is_success() {
        bail!("{what}: {status}: {}", r.text().await.unwrap_or_default());
    }
    Ok(r.json().await?)
}

/// A request the policy approves at once.
pub fn auto_approved(i: u64) -> Value {
    json!({"tool_name": "lookup", "tool_args": {"customer": format!("cus_{i}"), "fields": ["email", "plan"]}})
}

/// A request that waits for a person.
pub fn needs_a_person(i: u64) -> Value {
    json!({"tool_name": "issue_refund", "tool_args": {"order": format!("ord_{i}"), "amount_cents": 5000}})
}

/// Approves (or rejects) request `a` as the approver, on what it shows.
pub async fn decide(
    http: &reqwest::Client,
    server: &Server,
    a: &Value,
    decision: &str,
) -> Result<Value> {
    let id = a["id"].as_str().context("request without id")?;
    post(
        http,
        &server.url(&format!("/api/v1/approvals/{id}/decision")),
        &server.user,
        // A reject needs a reason (the agent's model receives it).
        &json!({"decision": decision, "args_digest": a["args_digest"], "reason": "benchmark"}),
    )
    .await
}
