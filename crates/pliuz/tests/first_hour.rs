//! What a newcomer meets in the first hour (issue 14), over the real binary:
//! the first admin's one-time password survives a failed start and is
//! printed with the real URL, logs without colour codes off a terminal,
//! approvers matching nobody are warned about, every mistake in a config file
//! is reported in one run, and `--help` and the README describe every command.

mod support;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use support::BIN;

/// Two approvers of the policy match nobody: a typo and an unknown user.
const TYPO_CONFIG: &str = include_str!("fixtures/typo_approvers.toml");

fn pliuz(data_dir: &Path, config: &Path) -> Command {
    let mut c = Command::new(BIN);
    c.arg("--data-dir")
        .arg(data_dir)
        .arg("--config")
        .arg(config)
        .env_remove("PLIUZ_AUDIT_SIGNING_KEY")
        .env_remove("PLIUZ_ADMIN_PASSWORD")
        .env_remove("PLIUZ_PUBLIC_URL")
        .env_remove("PLIUZ_LOG");
    c
}

/// `users create alice@example.com --role approver --group finance`.
fn create_finance_approver(data_dir: &Path, config: &Path) {
    let mut c = pliuz(data_dir, config);
    c.args(["users", "create", "alice@example.com", "--role", "approver"]);
    c.args(["--group", "finance"]);
    let (ok, _, stderr) = run(c);
    assert!(ok, "{stderr}");
}

/// A fresh directory holding `config` as `pliuz.toml` (returned with the
/// data directory's path, which does not exist yet, and the config's).
fn new_install(config_text: &str) -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (data, config) = (dir.path().join("data"), dir.path().join("pliuz.toml"));
    std::fs::write(&config, config_text).expect("write config");
    (dir, data, config)
}

/// `pliuz policy check`: whether it passed, and its stderr.
fn policy_check(data_dir: &Path, config: &Path) -> (bool, String) {
    let mut c = pliuz(data_dir, config);
    c.args(["policy", "check"]);
    let (ok, _, stderr) = run(c);
    (ok, stderr)
}

fn run(mut c: Command) -> (bool, String, String) {
    let out = c.stdin(Stdio::null()).output().expect("run pliuz");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A running `serve` whose stderr lines arrive on a channel.
struct Serving {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: String,
}

impl Serving {
    fn start(mut c: Command) -> Serving {
        let mut child = c
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn pliuz serve");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Serving {
            child,
            lines,
            seen: String::new(),
        }
    }

    /// Reads stderr until a line contains `needle`; returns that line.
    fn wait_for(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push_str(&line);
                    self.seen.push('\n');
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => break,
            }
        }
        panic!("no line with {needle:?} within 30 s:\n{}", self.seen);
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn a_start_on_a_busy_port_keeps_the_first_password_and_port_zero_prints_the_real_url() {
    let (_dir, data, config) = new_install(support::REFUNDS_POLICY);

    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy_addr = busy.local_addr().unwrap();
    let mut c = pliuz(&data, &config);
    c.args(["serve", "--listen", &busy_addr.to_string()]);
    let (ok, _, stderr) = run(c);
    assert!(!ok, "serve on a busy port must fail:\n{stderr}");
    assert!(stderr.contains("cannot listen on"), "{stderr}");
    assert!(
        !stderr.contains("password"),
        "no password on a failed start:\n{stderr}"
    );
    drop(busy);
    let mut c = pliuz(&data, &config);
    c.args(["users", "list"]);
    let (ok, users, stderr) = run(c);
    assert!(ok, "{stderr}");
    assert!(!users.contains("admin@localhost"), "no admin yet:\n{users}");

    let mut c = pliuz(&data, &config);
    c.args(["serve", "--listen", "127.0.0.1:0"]);
    let mut serving = Serving::start(c);
    let login = serving.wait_for("Log in at");
    let url = login
        .trim()
        .trim_start_matches("Log in at")
        .trim()
        .trim_end_matches('/');
    let port: u16 = url
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {login:?}"));
    assert_ne!(port, 0, "the URL names the bound port: {login}");
    let password_line = serving.wait_for("password:");
    let password = password_line.trim().trim_start_matches("password:").trim();
    assert!(!password.is_empty());
    let serving_line = serving.wait_for("pliuz is serving");
    assert!(
        serving_line.contains(&format!("127.0.0.1:{port}")),
        "the log names the bound port: {serving_line}"
    );
    // No colour codes: stderr is a pipe here, as when it is written to a file.
    assert!(
        !serving.seen.contains('\u{1b}'),
        "ANSI codes in:\n{}",
        serving.seen
    );

    // The URL printed is the one that answers, and the password logs in.
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let health = client.get(format!("{url}/healthz")).send().await.unwrap();
    assert!(health.status().is_success());
    let form = client.get(format!("{url}/login")).send().await.unwrap();
    let cookie = form
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .expect("log-in form cookie")
        .to_owned();
    let html = form.text().await.unwrap();
    let csrf = html
        .split(r#"name="csrf" value=""#)
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("csrf field")
        .to_owned();
    let login = client
        .post(format!("{url}/login"))
        .header("cookie", cookie)
        .form(&[
            ("email", "admin@localhost"),
            ("password", password),
            ("csrf", csrf.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), reqwest::StatusCode::SEE_OTHER);
    assert!(login.headers().get("set-cookie").is_some());
}

#[test]
fn policy_check_lists_approvers_that_match_nobody() {
    let (_dir, data, config) = new_install(TYPO_CONFIG);

    // Without a database there is nobody to compare with: said, and nothing created.
    let (ok, stderr) = policy_check(&data, &config);
    assert!(ok, "{stderr}");
    assert!(stderr.contains("OK, 1 policies"), "{stderr}");
    assert!(stderr.contains("no database at"), "{stderr}");
    assert!(!data.exists(), "policy check must not create the database");

    create_finance_approver(&data, &config);

    let (ok, stderr) = policy_check(&data, &config);
    assert!(ok, "unknown approvers are warnings, not errors:\n{stderr}");
    let warnings: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("warning:"))
        .collect();
    assert_eq!(warnings.len(), 2, "{stderr}");
    assert!(
        warnings[0].contains("approver group:financ matches nobody"),
        "{stderr}"
    );
    assert!(
        warnings[1].contains("approver user:bob@example.com matches nobody"),
        "{stderr}"
    );
    assert!(!stderr.contains("group:finance "), "{stderr}");
}

#[test]
fn serve_warns_at_start_about_approvers_that_match_nobody() {
    let (_dir, data, config) = new_install(TYPO_CONFIG);
    create_finance_approver(&data, &config);

    let mut c = pliuz(&data, &config);
    c.args(["serve", "--listen", "127.0.0.1:0"]);
    let mut serving = Serving::start(c);
    serving.wait_for("pliuz is serving");
    let warned: Vec<&str> = serving
        .seen
        .lines()
        .filter(|l| l.contains("matches nobody"))
        .collect();
    assert_eq!(warned.len(), 2, "{}", serving.seen);
    assert!(
        warned[0].contains("WARN") && warned[0].contains("group:financ "),
        "{warned:?}"
    );
    assert!(warned[1].contains("user:bob@example.com"), "{warned:?}");
}

/// Every command path (`["audit", "keys"]`, ...) that `--help` lists.
/// The lines of section `heading` (e.g. `Commands:`) of `pliuz <path> --help`.
fn help_section(path: &[String], heading: &str) -> Vec<String> {
    let out = Command::new(BIN)
        .args(path)
        .arg("--help")
        .output()
        .expect("pliuz --help");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .skip_while(|line| !line.starts_with(heading))
        .skip(1)
        .take_while(|line| !line.trim().is_empty() && line.starts_with("  "))
        .map(str::to_owned)
        .collect()
}

fn command_paths(prefix: &[String]) -> Vec<Vec<String>> {
    let subs: Vec<String> = help_section(prefix, "Commands:")
        .iter()
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(str::to_owned)
        .collect();
    if subs.is_empty() {
        return vec![prefix.to_vec()];
    }
    subs.into_iter()
        .flat_map(|s| {
            let mut p = prefix.to_vec();
            p.push(s);
            command_paths(&p)
        })
        .collect()
}

#[test]
fn help_describes_every_positional_argument() {
    let paths = command_paths(&[]);
    assert!(paths.len() > 15, "{paths:?}");
    let mut undescribed = Vec::new();
    for path in &paths {
        for line in help_section(path, "Arguments:") {
            if line.split_whitespace().count() < 2 {
                undescribed.push(format!("{}: {}", path.join(" "), line.trim()));
            }
        }
    }
    assert!(undescribed.is_empty(), "no description: {undescribed:?}");
}

#[test]
fn the_readme_cli_table_lists_every_subcommand() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md"))
            .unwrap();
    let table: Vec<&str> = readme
        .split("## The admin CLI")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .expect("README has '## The admin CLI'")
        .lines()
        .filter(|l| l.starts_with("| `pliuz "))
        .collect();
    let mut missing = BTreeSet::new();
    for path in command_paths(&[]) {
        let (group, rest) = (path[0].as_str(), &path[1..]);
        let rows: Vec<&&str> = table
            .iter()
            .filter(|r| r.contains(&format!("`pliuz {group}")))
            .collect();
        let listed = match rest.first() {
            None => !rows.is_empty(),
            Some(sub) => rows.iter().any(|r| {
                r.contains(&format!("pliuz {group} {sub}"))
                    || r.contains(&format!("`{sub}`"))
                    || r.contains(&format!("`{sub} "))
            }),
        };
        if !listed {
            missing.insert(path.join(" "));
        }
    }
    assert!(
        missing.is_empty(),
        "not in the README's CLI table: {missing:?}"
    );
}

/// One distinct mistake per line, each of a different kind; the numbers are
/// the lines that `policy check` and `serve` must name.
const MISTAKES_CONFIG: &str = include_str!("fixtures/config_mistakes.toml");
const MISTAKE_LINES: [(usize, &str); 9] = [
    (1, "listen 'localhost'"),
    (2, "unknown field `colour`"),
    (4, "audit.checkpoint_every"),
    (9, "expires_in"),
    (10, "auto_approve"),
    (11, "invalid type: string \"two\""),
    (15, "finance"),
    (16, "maybe"),
    (17, "unknown field `timeout`"),
];

/// Asserts that `output` names each mistake of `MISTAKES_CONFIG` with its
/// file and line.
fn assert_every_mistake_listed(output: &str, config: &Path) {
    for (line, says) in MISTAKE_LINES {
        let at = format!("{}:{line}: ", config.display());
        assert!(
            output.lines().any(|l| l.contains(&at) && l.contains(says)),
            "no {at}... {says}:\n{output}"
        );
    }
}

#[test]
fn policy_check_and_serve_report_every_mistake_in_one_run() {
    let (_dir, data, config) = new_install(MISTAKES_CONFIG);

    let (ok, stderr) = policy_check(&data, &config);
    assert!(!ok, "a file with mistakes must fail the check:\n{stderr}");
    assert_every_mistake_listed(&stderr, &config);
    assert!(
        stderr.contains(&format!("{} mistake(s) found", MISTAKE_LINES.len())),
        "{stderr}"
    );

    let mut c = pliuz(&data, &config);
    c.args(["serve", "--listen", "127.0.0.1:0"]);
    let mut serving = Serving::start(c);
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = serving.child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "serve did not refuse to start");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(!status.success());
    // The reader thread ends at the end of stderr, after the last line.
    let mut stderr = String::new();
    while let Ok(line) = serving.lines.recv_timeout(Duration::from_secs(10)) {
        stderr.push_str(&line);
        stderr.push('\n');
    }
    assert_every_mistake_listed(&stderr, &config);
    assert!(!stderr.contains("pliuz is serving"), "{stderr}");
    assert!(
        !data.exists(),
        "a refused start must not create the database"
    );
}
