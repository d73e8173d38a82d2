//! The tamper-evident audit trail end to end: the real binary, real HTTP,
//! a real SQLite file, and offline verification with `pliuz audit verify`.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use reqwest::{Client, StatusCode};
use serde_json::{json, Value};
use sqlx::Connection;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod support;

use support::{CliOutput as Out, Server, BIN};

const ORIGIN: &str = "pliuz.test/audit";

/// Checkpoints often, under the refunds policy.
fn config() -> String {
    format!(
        "{}{}",
        support::frequent_checkpoints(ORIGIN),
        support::REFUNDS_POLICY
    )
}

/// Runs `pliuz --data-dir D --config F ARGS...`.
fn pliuz(data: &Path, config: &Path, args: &[&str], stdin: Option<&str>) -> Out {
    let mut c = Command::new(BIN);
    c.arg("--data-dir")
        .arg(data)
        .arg("--config")
        .arg(config)
        .args(args)
        .env_remove("PLIUZ_AUDIT_SIGNING_KEY")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().expect("spawn pliuz");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("write stdin");
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().expect("pliuz output");
    Out::from(out)
}

/// The command failed, and its stderr says what `needle` says.
fn assert_failed_naming(out: &Out, needle: &str) {
    assert!(!out.success, "{}", out.stdout);
    assert!(out.stderr.contains(needle), "{}", out.stderr);
}

/// Offline commands: no data dir, no config, no database.
fn pliuz_offline(args: &[&str]) -> Out {
    let out = Command::new(BIN)
        .args(args)
        .env_remove("PLIUZ_CONFIG")
        .env_remove("PLIUZ_DATA_DIR")
        .output()
        .expect("spawn pliuz");
    Out::from(out)
}

/// `pliuz audit verify-receipt FILE --key KEY`, offline.
fn verify_receipt(file: &Path, key: &str) -> Out {
    let file = file.to_str().expect("UTF-8 path");
    pliuz_offline(&["audit", "verify-receipt", file, "--key", key])
}

async fn get(http: &Client, url: &str, token: &str) -> (StatusCode, String) {
    let r = http
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .expect("request");
    (r.status(), r.text().await.expect("body"))
}

async fn get_json(http: &Client, url: &str, token: &str) -> (StatusCode, Value) {
    let (s, body) = get(http, url, token).await;
    (s, serde_json::from_str(&body).unwrap_or(Value::Null))
}

/// A GET that must be answered 200; its JSON body.
async fn get_ok_json(http: &Client, url: &str, token: &str) -> Value {
    let (status, body) = get_json(http, url, token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

/// One refund request for each amount in `amounts`.
async fn create_refunds(http: &Client, s: &Server, agent: &str, amounts: std::ops::Range<i64>) {
    for amount in amounts {
        create_refund(http, s, agent, amount).await;
    }
}

async fn create_refund(http: &Client, s: &Server, agent: &str, amount: i64) -> String {
    let args = json!({"order_id": "A-1", "amount_cents": amount});
    let body = json!({"tool_name": "issue_refund", "tool_args": args});
    support::id_of(&support::create_approval(http, s, agent, body).await)
}

fn unhash(s: &Value) -> pliuz_audit::Hash {
    let bytes = B64
        .decode(s.as_str().expect("base64 string"))
        .expect("base64");
    bytes.as_slice().try_into().expect("32 bytes")
}

fn proof(v: &Value) -> Vec<pliuz_audit::Hash> {
    v["proof"]
        .as_array()
        .expect("proof")
        .iter()
        .map(unhash)
        .collect()
}

async fn checkpoint(http: &Client, s: &Server, token: &str, key: &str) -> pliuz_audit::Checkpoint {
    let (status, note) = get(http, &s.url("/api/v1/audit/checkpoint"), token).await;
    assert_eq!(status, StatusCode::OK, "{note}");
    let v: pliuz_audit::Verifier = key.parse().expect("verifier key");
    pliuz_audit::open_checkpoint(&note, &[v]).expect("checkpoint verifies with /audit/key")
}

// ---------------------------------------------------------------------------

#[tokio::test]
async fn decisions_are_logged_with_receipts_proofs_and_exports_that_verify() {
    let s = Server::start(&config()).await;
    let http = Client::new();
    let agent = s.agent_key("support-bot");
    let other_agent = s.agent_key("other-bot");
    let approver = s.user_token("fin@example.com", "approver", &["finance"]);
    let outsider = s.user_token("sales@example.com", "approver", &["sales"]);
    let auditor = s.user_token("audit@example.com", "auditor", &[]);

    // The key: endpoint, CLI and key file agree; the file is private.
    let (status, key) = get(&http, &s.url("/api/v1/audit/key"), &auditor).await;
    assert_eq!(status, StatusCode::OK);
    let key = key.trim().to_owned();
    assert!(key.starts_with(&format!("{ORIGIN}+")), "{key}");
    let cli_key = s.cli(&["audit", "key"], None);
    assert!(cli_key.success, "{}", cli_key.stderr);
    assert_eq!(cli_key.stdout.trim(), key);
    let key_file = s.data_dir().join("audit-signing.key");
    let private = std::fs::read_to_string(&key_file).expect("key file");
    assert!(private.starts_with(&format!("PRIVATE+KEY+{ORIGIN}+")));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let first = checkpoint(&http, &s, &auditor, &key).await;

    // A request decided over the API.
    let id = create_refund(&http, &s, &agent, 5000).await;
    let r = http
        .post(s.url(&format!("/api/v1/approvals/{id}/decision")))
        .bearer_auth(&approver)
        .json(
            &support::with_digest(
                &http,
                &s,
                &approver,
                &id,
                json!({"decision": "approve", "reason": "receipt attached"}),
            )
            .await,
        )
        .send()
        .await
        .expect("decide");
    assert_eq!(r.status(), StatusCode::OK);

    // The receipt (signed on demand if the worker has not caught up yet).
    let (status, receipt) = get(
        &http,
        &s.url(&format!("/api/v1/approvals/{id}/receipt")),
        &agent,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{receipt}");
    let parsed: pliuz_audit::Receipt = serde_json::from_str(&receipt).expect("receipt json");
    let kinds: Vec<String> = parsed
        .entries
        .iter()
        .map(|e| {
            pliuz_audit::Entry::parse_canonical(e.entry.as_bytes())
                .unwrap()
                .kind
        })
        .collect();
    assert_eq!(kinds, ["approval.created", "approval.decided"]);
    let decided = pliuz_audit::Entry::parse_canonical(parsed.entries[1].entry.as_bytes()).unwrap();
    assert_eq!(decided.actor, "user:fin@example.com");
    let receipt_file = s.dir.path().join("receipt.json");
    std::fs::write(&receipt_file, &receipt).unwrap();
    let v = verify_receipt(&receipt_file, &key);
    assert!(v.success, "{}{}", v.stdout, v.stderr);
    assert!(
        v.stdout
            .contains("approval.decided by user:fin@example.com"),
        "{}",
        v.stdout
    );
    // ... and fails with a stranger's key, or when edited.
    let stranger = pliuz_audit::SigningKey::generate(ORIGIN)
        .unwrap()
        .verifier_key();
    let v = verify_receipt(&receipt_file, &stranger);
    assert!(!v.success);
    std::fs::write(
        &receipt_file,
        receipt.replace("receipt attached", "receipt attachee"),
    )
    .unwrap();
    let v = verify_receipt(&receipt_file, &key);
    assert!(!v.success, "an edited receipt must fail");

    // Who may fetch the receipt.
    let receipt_url = s.url(&format!("/api/v1/approvals/{id}/receipt"));
    for (token, status) in [
        (&approver, StatusCode::OK),
        (&auditor, StatusCode::OK),
        (&outsider, StatusCode::NOT_FOUND),
        (&other_agent, StatusCode::NOT_FOUND),
    ] {
        assert_eq!(get(&http, &receipt_url, token).await.0, status);
    }

    // Who may read the entries.
    let entries_url = s.url("/api/v1/audit/entries?start=0&end=1000");
    let inclusion_url = s.url("/api/v1/audit/proof/inclusion?index=0");
    for (url, token) in [
        (&entries_url, &approver),
        (&entries_url, &agent),
        (&inclusion_url, &agent),
    ] {
        assert_eq!(get(&http, url, token).await.0, StatusCode::FORBIDDEN);
    }
    let page = get_ok_json(&http, &entries_url, &auditor).await;
    let items = page["entries"].as_array().unwrap();
    assert_eq!(items.len() as u64, page["size"].as_u64().unwrap());
    let decided_item = items
        .iter()
        .find(|e| {
            e["entry"]["type"] == "approval.decided" && e["entry"]["approval_id"] == id.as_str()
        })
        .expect("decision in the log");
    assert_eq!(decided_item["entry"]["actor"], "user:fin@example.com");
    let canonical = decided_item["canonical"].as_str().unwrap();
    assert_eq!(
        pliuz_audit::Entry::parse_canonical(canonical.as_bytes()).unwrap(),
        decided
    );
    // Nobody writes the log through the API.
    let r = http
        .post(s.url("/api/v1/audit/entries"))
        .bearer_auth(&auditor)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);

    // More activity, then a newer checkpoint.
    create_refunds(&http, &s, &agent, 100..105).await;
    let deadline = Instant::now() + Duration::from_secs(15);
    let latest = loop {
        let c = checkpoint(&http, &s, &auditor, &key).await;
        if c.size >= first.size + 6 {
            break c;
        }
        assert!(Instant::now() < deadline, "no new checkpoint");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };

    // Inclusion proof of the decision under the signed root.
    let path = format!(
        "/api/v1/audit/proof/inclusion?index={}&size={}",
        decided.index, latest.size
    );
    let inc = get_ok_json(&http, &s.url(&path), &auditor).await;
    assert_eq!(unhash(&inc["root"]), latest.root);
    pliuz_audit::verify_inclusion(
        decided.index,
        latest.size,
        &pliuz_audit::leaf_hash(canonical.as_bytes()),
        &proof(&inc),
        &latest.root,
    )
    .expect("inclusion proof verifies");

    // Consistency between the two signed checkpoints (readable by anyone).
    let path = format!(
        "/api/v1/audit/proof/consistency?from={}&size={}",
        first.size, latest.size
    );
    let con = get_ok_json(&http, &s.url(&path), &agent).await;
    pliuz_audit::verify_consistency(
        first.size,
        latest.size,
        &proof(&con),
        &first.root,
        &latest.root,
    )
    .expect("consistency proof verifies");

    // Out of range: 422 problems.
    for path in [
        format!(
            "/api/v1/audit/proof/inclusion?index={}&size={}",
            latest.size, latest.size
        ),
        "/api/v1/audit/proof/inclusion?index=0&size=999999".to_owned(),
        format!(
            "/api/v1/audit/proof/consistency?from={}&size={}",
            latest.size, first.size
        ),
        "/api/v1/audit/entries?start=999999".to_owned(),
    ] {
        let (status, p) = get_json(&http, &s.url(&path), &auditor).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{path}: {p}");
        assert_eq!(p["code"], "out_of_range");
    }

    // Export while serving, verify offline, and the live self-check agrees.
    let out = s.dir.path().join("export");
    let e = s.cli(&["audit", "export", "--out", out.to_str().unwrap()], None);
    assert!(e.success, "{}", e.stderr);
    let v = pliuz_offline(&["audit", "verify", out.to_str().unwrap(), "--key", &key]);
    assert!(v.success, "{}{}", v.stdout, v.stderr);
    assert!(v.stdout.starts_with("OK: "), "{}", v.stdout);
    assert!(out
        .join("checkpoints")
        .join(latest.size.to_string())
        .exists());
    assert_eq!(
        std::fs::read_to_string(out.join("keys.txt"))
            .unwrap()
            .trim(),
        key
    );
    let lines = std::fs::read_to_string(out.join("entries.jsonl")).unwrap();
    assert!(lines.lines().any(|l| l == canonical));
    let c = s.cli(&["audit", "check"], None);
    assert!(c.success, "{}{}", c.stdout, c.stderr);
    let v = pliuz_offline(&["audit", "verify", out.to_str().unwrap(), "--key", &stranger]);
    assert!(!v.success);
}

/// The export copies the log as stored, on both databases and beside the
/// running server: a checkpoint covering the whole log is signed first,
/// every entry is one line in log order (what the API serves), and
/// `pliuz audit verify` accepts the result.
async fn the_export_copies_the_whole_log_in_order(database_url: Option<String>) {
    let s = Server::start_with(&config(), database_url, vec![]).await;
    let http = Client::new();
    let agent = s.agent_key("support-bot");
    let auditor = s.user_token("audit@example.com", "auditor", &[]);
    create_refunds(&http, &s, &agent, 1..30).await;
    let key = s.cli(&["audit", "key"], None).stdout.trim().to_owned();

    let out = s.dir.path().join("export");
    let e = s.cli(&["audit", "export", "--out", out.to_str().unwrap()], None);
    assert!(e.success, "{}", e.stderr);
    let v = pliuz_offline(&["audit", "verify", out.to_str().unwrap(), "--key", &key]);
    assert!(v.success, "{}{}", v.stdout, v.stderr);
    assert!(!v.stdout.contains("not covered"), "{}", v.stdout);

    let text = std::fs::read_to_string(out.join("entries.jsonl")).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("one entry per line"))
        .collect();
    assert!(lines.len() >= 29, "{} entries", lines.len());
    assert!(e
        .stderr
        .contains(&format!("Exported {} entries", lines.len())));
    assert!(out
        .join("checkpoints")
        .join(lines.len().to_string())
        .exists());
    let served =
        support::audit_entries(&http, &s, &auditor, &format!("start=0&end={}", lines.len())).await;
    assert_eq!(lines, served);
}

support::on_both_databases!(the_export_copies_the_whole_log_in_order);

#[tokio::test]
async fn key_rotation_keeps_old_checkpoints_verifiable() {
    let mut s = Server::start(&config()).await;
    let http = Client::new();
    let agent = s.agent_key("bot");
    let auditor = s.user_token("audit@example.com", "auditor", &[]);
    create_refund(&http, &s, &agent, 1).await;
    let old_key = s.cli(&["audit", "key"], None).stdout.trim().to_owned();

    let r = s.cli(&["audit", "rotate-key"], None);
    assert!(r.success, "{}", r.stderr);
    let new_key = r.stdout.trim().to_owned();
    assert_ne!(new_key, old_key);
    assert!(
        new_key.starts_with(&format!("{ORIGIN}+")),
        "the name stays the origin"
    );
    assert_eq!(s.cli(&["audit", "key"], None).stdout.trim(), new_key);

    // The running server picks up the new key.
    create_refund(&http, &s, &agent, 2).await;
    let (_, served) = get(&http, &s.url("/api/v1/audit/key"), &auditor).await;
    assert_eq!(served.trim(), new_key);
    let (_, keys) = get_json(&http, &s.url("/api/v1/audit/keys"), &auditor).await;
    assert_eq!(keys["keys"], json!([old_key, new_key]));
    s.stop();
    assert!(
        s.log().contains("signed the final audit checkpoint"),
        "{}",
        s.log()
    );

    let out = s.dir.path().join("export");
    let e = s.cli(&["audit", "export", "--out", out.to_str().unwrap()], None);
    assert!(e.success, "{}", e.stderr);
    let both = pliuz_offline(&[
        "audit",
        "verify",
        out.to_str().unwrap(),
        "--key",
        &old_key,
        "--key",
        &new_key,
    ]);
    assert!(both.success, "{}{}", both.stdout, both.stderr);
    assert!(
        both.stdout.contains(&old_key) && both.stdout.contains(&new_key),
        "{}",
        both.stdout
    );
    let only_new = pliuz_offline(&["audit", "verify", out.to_str().unwrap(), "--key", &new_key]);
    assert!(!only_new.success, "old checkpoints need the old key");
    let entries = std::fs::read_to_string(out.join("entries.jsonl")).unwrap();
    assert!(entries.contains("\"type\":\"audit.key_rotated\""));
    let keys_txt = std::fs::read_to_string(out.join("keys.txt")).unwrap();
    assert_eq!(keys_txt, format!("{old_key}\n{new_key}\n"));
}

// ---------------------------------------------------------------------------
// Tampering with a real SQLite file, as an attacker with database access.

async fn open_db(data: &Path) -> sqlx::SqliteConnection {
    let url = format!("sqlite://{}", data.join("pliuz.db").display());
    sqlx::SqliteConnection::connect(&url)
        .await
        .expect("open sqlite")
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

async fn exec(conn: &mut sqlx::SqliteConnection, sql: &str) {
    sqlx::raw_sql(sql)
        .execute(&mut *conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// The database with its append-only triggers dropped, as someone with
/// the file in hand could.
async fn open_db_without_triggers(data: &Path) -> sqlx::SqliteConnection {
    let mut conn = open_db(data).await;
    drop_triggers(&mut conn).await;
    conn
}

/// A server whose log holds ten refund requests, the client and the agent
/// key that made them.
async fn server_with_ten_refunds() -> (Server, Client, String) {
    let s = Server::start(&config()).await;
    let http = Client::new();
    let agent = s.agent_key("bot");
    create_refunds(&http, &s, &agent, 100..110).await;
    (s, http, agent)
}

/// Entries stored out of log order (one deleted and inserted again, as a
/// restore or a careless repair could leave them, so it is stored last) are
/// still exported in log order: the same bytes as before, and they verify.
#[tokio::test]
async fn entries_stored_out_of_log_order_are_exported_in_log_order() {
    let (mut s, _, _) = server_with_ten_refunds().await;
    let key = s.cli(&["audit", "key"], None).stdout.trim().to_owned();
    s.stop();
    let export = |name: &str| {
        let out = s.dir.path().join(name);
        let e = s.cli(&["audit", "export", "--out", out.to_str().unwrap()], None);
        assert!(e.success, "{}", e.stderr);
        let v = pliuz_offline(&["audit", "verify", out.to_str().unwrap(), "--key", &key]);
        assert!(v.success, "{}{}", v.stdout, v.stderr);
        std::fs::read(out.join("entries.jsonl")).unwrap()
    };
    let before = export("before");

    let mut conn = open_db_without_triggers(&s.data_dir()).await;
    exec(
        &mut conn,
        "CREATE TABLE moved AS SELECT * FROM audit_entries WHERE idx = 3;
         DELETE FROM audit_entries WHERE idx = 3;
         INSERT INTO audit_entries SELECT * FROM moved;
         DROP TABLE moved;",
    )
    .await;
    let last: i64 = sqlx::query_scalar("SELECT idx FROM audit_entries ORDER BY rowid DESC LIMIT 1")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(last, 3, "entry 3 is now stored last");
    conn.close().await.unwrap();

    assert_eq!(export("after"), before);
}

async fn drop_triggers(conn: &mut sqlx::SqliteConnection) {
    for t in [
        "audit_entries_no_update",
        "audit_entries_no_delete",
        "audit_hashes_no_update",
        "audit_hashes_no_delete",
        "audit_checkpoints_no_update",
        "audit_checkpoints_no_delete",
    ] {
        exec(conn, &format!("DROP TRIGGER {t}")).await;
    }
}

async fn body(conn: &mut sqlx::SqliteConnection, idx: u64) -> String {
    sqlx::query_scalar("SELECT body FROM audit_entries WHERE idx = ?")
        .bind(idx as i64)
        .fetch_one(&mut *conn)
        .await
        .unwrap()
}

/// Deletes the entries `condition` (an SQL condition on `idx`) selects.
async fn delete_entries(conn: &mut sqlx::SqliteConnection, condition: &str) {
    exec(
        conn,
        &format!("DELETE FROM audit_entries WHERE {condition}"),
    )
    .await;
}

const SET_BODY: &str = "UPDATE audit_entries SET body = ? WHERE idx = ?";
const SET_NOTE: &str = "UPDATE audit_checkpoints SET note = ? WHERE size = ?";

async fn set_body(conn: &mut sqlx::SqliteConnection, idx: u64, b: &str) {
    set_text(conn, SET_BODY, b, idx).await;
}

async fn set_note(conn: &mut sqlx::SqliteConnection, size: u64, note: &str) {
    set_text(conn, SET_NOTE, note, size).await;
}

/// Runs `update` (`SET <column> = ? WHERE <key> = ?`) with `text` and `key`.
async fn set_text(conn: &mut sqlx::SqliteConnection, update: &str, text: &str, key: u64) {
    sqlx::query(update)
        .bind(text)
        .bind(key as i64)
        .execute(&mut *conn)
        .await
        .unwrap_or_else(|e| panic!("{update}: {e}"));
}

/// Parses "... entry in A..B ..." from a root-mismatch message.
fn range_in(message: &str) -> (u64, u64) {
    let tail = message.rsplit("entry in ").next().unwrap();
    let (a, b) = tail
        .split_once("..")
        .unwrap_or_else(|| panic!("no range in {message}"));
    let b: String = b.chars().take_while(|c| c.is_ascii_digit()).collect();
    (a.parse().unwrap(), b.parse().unwrap())
}

#[tokio::test]
async fn tampering_with_the_database_is_detected() {
    let (mut s, _, _) = server_with_ten_refunds().await;
    let key = s.cli(&["audit", "key"], None).stdout.trim().to_owned();
    s.stop();
    let pristine = s.data_dir();
    let config = s.config_path();

    let (size, checkpoints): (u64, Vec<i64>) = {
        let mut conn = open_db(&pristine).await;
        let size: i64 = sqlx::query_scalar("SELECT size FROM audit_head")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        let cps: Vec<i64> = sqlx::query_scalar("SELECT size FROM audit_checkpoints ORDER BY size")
            .fetch_all(&mut conn)
            .await
            .unwrap();
        conn.close().await.unwrap();
        (size as u64, cps)
    };
    assert!(size >= 12, "{size}");
    assert_eq!(
        *checkpoints.last().unwrap() as u64,
        size,
        "final checkpoint at shutdown"
    );
    // An approval.created entry in the middle of the log.
    let k = size - 5;

    // Runs one tampering on a fresh copy, exports it and verifies it.
    let case = |name: &'static str| {
        let dir = s.dir.path().join(format!("case-{name}"));
        let data = dir.join("data");
        copy_dir(&pristine, &data);
        (dir, data)
    };
    let verify = |dir: &Path, data: &Path| -> (Out, Out) {
        let out = dir.join("export");
        let e = pliuz(
            data,
            &config,
            &["audit", "export", "--out", out.to_str().unwrap()],
            None,
        );
        assert!(e.success, "export: {}", e.stderr);
        let v = pliuz_offline(&["audit", "verify", out.to_str().unwrap(), "--key", &key]);
        let c = pliuz(data, &config, &["audit", "check"], None);
        (v, c)
    };

    // Untouched: verifies, and the append-only triggers refuse changes.
    {
        let (dir, data) = case("untouched");
        let (v, c) = verify(&dir, &data);
        assert!(v.success, "{}{}", v.stdout, v.stderr);
        assert!(c.success, "{}{}", c.stdout, c.stderr);
        let mut conn = open_db(&data).await;
        for sql in [
            "UPDATE audit_entries SET body = 'x' WHERE idx = 1",
            "DELETE FROM audit_entries WHERE idx = 1",
            "UPDATE audit_hashes SET hash = x'00' WHERE idx = 1",
            "DELETE FROM audit_hashes",
            "UPDATE audit_checkpoints SET note = 'x'",
            "DELETE FROM audit_checkpoints",
        ] {
            let err = sqlx::raw_sql(sql).execute(&mut conn).await.expect_err(sql);
            assert!(err.to_string().contains("append-only"), "{sql}: {err}");
        }
        conn.close().await.unwrap();
    }

    // 1. One byte of an entry, inside a string: the line stays canonical.
    {
        let (dir, data) = case("byte");
        let mut conn = open_db_without_triggers(&data).await;
        let b = body(&mut conn, k).await;
        assert!(b.contains("issue_refund"), "{b}");
        set_body(&mut conn, k, &b.replacen("issue_refund", "issue_refunc", 1)).await;
        conn.close().await.unwrap();
        let (v, c) = verify(&dir, &data);
        assert!(!v.success);
        let (a, z) = range_in(&v.stderr);
        assert!(a <= k && k < z, "{k} not in {a}..{z}: {}", v.stderr);
        // The live self-check knows each leaf hash: exact index.
        assert!(!c.success);
        assert!(c.stderr.contains(&format!("entry {k}: ")), "{}", c.stderr);
    }

    // 1b. One byte that breaks canonical form: exact index offline too.
    {
        let (dir, data) = case("noncanonical");
        let mut conn = open_db_without_triggers(&data).await;
        let b = body(&mut conn, k).await;
        set_body(&mut conn, k, &b.replacen("\"actor\":", "\"actor\" :", 1)).await;
        conn.close().await.unwrap();
        let (v, _) = verify(&dir, &data);
        assert_failed_naming(&v, &format!("entry {k}: "));
        assert!(
            v.stderr.contains(&format!("first bad index: {k}")),
            "{}",
            v.stderr
        );
    }

    // 2. Delete an entry.
    {
        let (dir, data) = case("delete");
        let mut conn = open_db_without_triggers(&data).await;
        delete_entries(&mut conn, &format!("idx = {k}")).await;
        conn.close().await.unwrap();
        let (v, c) = verify(&dir, &data);
        assert_failed_naming(&v, &format!("entry {k}: index field says {}", k + 1));
        assert!(c.stderr.contains(&format!("entry {k}: ")), "{}", c.stderr);
    }

    // 3. Reorder two entries.
    {
        let (dir, data) = case("reorder");
        let mut conn = open_db_without_triggers(&data).await;
        let (a, b) = (body(&mut conn, k).await, body(&mut conn, k + 1).await);
        set_body(&mut conn, k, &b).await;
        set_body(&mut conn, k + 1, &a).await;
        conn.close().await.unwrap();
        let (v, _) = verify(&dir, &data);
        assert_failed_naming(&v, &format!("entry {k}: index field says {}", k + 1));
    }

    // 4. Truncate the tail.
    {
        let (dir, data) = case("truncate");
        let mut conn = open_db_without_triggers(&data).await;
        let cut = size - 3;
        delete_entries(&mut conn, &format!("idx >= {cut}")).await;
        conn.close().await.unwrap();
        let (v, _) = verify(&dir, &data);
        assert_failed_naming(&v, &format!("entry {cut}: missing"));
    }

    // 5. Replace a checkpoint's root (signature no longer matches).
    let target = size;
    let note: String = {
        let mut conn = open_db(&pristine).await;
        let note = sqlx::query_scalar("SELECT note FROM audit_checkpoints WHERE size = ?")
            .bind(target as i64)
            .fetch_one(&mut conn)
            .await
            .unwrap();
        conn.close().await.unwrap();
        note
    };
    let forged_root = B64.encode([7u8; 32]);
    {
        let (dir, data) = case("checkpoint");
        let mut conn = open_db_without_triggers(&data).await;
        let lines: Vec<&str> = note.split('\n').collect();
        let forged = note.replacen(lines[2], &forged_root, 1);
        set_note(&mut conn, target, &forged).await;
        conn.close().await.unwrap();
        let (v, _) = verify(&dir, &data);
        assert_failed_naming(&v, &format!("checkpoint {target}: "));
        assert!(v.stderr.contains("signature"), "{}", v.stderr);
    }

    // 6. Re-sign a forged checkpoint with another key of the same name.
    {
        let (dir, data) = case("otherkey");
        let mut conn = open_db_without_triggers(&data).await;
        let attacker = pliuz_audit::SigningKey::generate(ORIGIN).unwrap();
        let forged = pliuz_audit::sign_checkpoint(
            &pliuz_audit::Checkpoint {
                origin: ORIGIN.to_owned(),
                size: target,
                root: [7u8; 32],
            },
            &attacker,
        )
        .unwrap();
        set_note(&mut conn, target, &forged).await;
        // Also slip the attacker's key into the key table and the export.
        sqlx::query("INSERT INTO audit_keys (verifier_key, created_at) VALUES (?, 0)")
            .bind(attacker.verifier_key())
            .execute(&mut conn)
            .await
            .unwrap();
        conn.close().await.unwrap();
        let (v, _) = verify(&dir, &data);
        assert_failed_naming(&v, &format!("checkpoint {target}: "));
        assert!(v.stderr.contains("unknown keys"), "{}", v.stderr);
    }
}

// ---------------------------------------------------------------------------
// Truncation and forks: what the server remembers outside its database, and
// an independent monitor.

/// As an attacker with the database and the server stopped: drop the
/// append-only triggers, cut the log to `cut` entries together with their
/// checkpoints, and rebuild the tree hashes so what is left is consistent.
async fn truncate_consistently(data: &Path, cut: u64) {
    rewrite_consistently(data, cut, None).await
}

/// Like [`truncate_consistently`], optionally also rewriting one entry's
/// body (`idx`, `from` → `to`) before the tree is rebuilt.
async fn rewrite_consistently(data: &Path, cut: u64, edit: Option<(u64, &str, &str)>) {
    let mut conn = open_db_without_triggers(data).await;
    if let Some((idx, from, to)) = edit {
        let b = body(&mut conn, idx).await;
        assert!(b.contains(from), "{b}");
        set_body(&mut conn, idx, &b.replacen(from, to, 1)).await;
    }
    delete_entries(&mut conn, &format!("idx >= {cut}")).await;
    exec(
        &mut conn,
        &format!("DELETE FROM audit_checkpoints WHERE size > {cut}"),
    )
    .await;
    exec(&mut conn, "DELETE FROM audit_hashes").await;
    let bodies: Vec<String> = sqlx::query_scalar("SELECT body FROM audit_entries ORDER BY idx")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    assert_eq!(bodies.len() as u64, cut);
    let mut hashes = std::collections::HashMap::new();
    for (i, b) in bodies.iter().enumerate() {
        let leaf = pliuz_audit::leaf_hash(b.as_bytes());
        for (k, h) in pliuz_audit::append(i as u64, leaf, &hashes).unwrap() {
            hashes.insert(k, h);
        }
    }
    for (k, h) in &hashes {
        sqlx::query("INSERT INTO audit_hashes (idx, hash) VALUES (?, ?)")
            .bind(*k as i64)
            .bind(h.to_vec())
            .execute(&mut conn)
            .await
            .unwrap();
    }
    exec(&mut conn, &format!("UPDATE audit_head SET size = {cut}")).await;
    conn.close().await.unwrap();
}

async fn log_size(data: &Path) -> u64 {
    let mut conn = open_db(data).await;
    let size: i64 = sqlx::query_scalar("SELECT size FROM audit_head")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    size as u64
}

/// `pliuz audit monitor --url URL --state FILE [--key K] ARGS`, from outside
/// (no data dir, no config), with the API token in the environment.
fn monitor(url: &str, state: &Path, token: &str, keys: &[&str], args: &[&str]) -> (i32, Out) {
    let mut c = Command::new(BIN);
    c.args(["audit", "monitor", "--url", url, "--state"])
        .arg(state)
        .args(args)
        .env_remove("PLIUZ_CONFIG")
        .env_remove("PLIUZ_DATA_DIR")
        .env("PLIUZ_MONITOR_TOKEN", token)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for k in keys {
        c.arg("--key").arg(k);
    }
    let mut child = c.spawn().expect("spawn monitor");
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the monitor did not finish");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().expect("monitor output");
    (out.status.code().unwrap_or(-1), Out::from(out))
}

#[tokio::test]
async fn a_truncated_log_is_refused_at_start_by_check_and_by_a_monitor() {
    let (mut s, http, agent) = server_with_ten_refunds().await;
    assert!(s.cli(&["audit", "checkpoint"], None).success);
    let key = s.cli(&["audit", "key"], None).stdout.trim().to_owned();
    let state = s.dir.path().join("monitor-state.json");
    let (code, m) = monitor(&s.base, &state, &agent, &[&key], &["--once"]);
    assert_eq!(code, 0, "{}{}", m.stdout, m.stderr);
    assert!(m.stdout.contains("first checkpoint"), "{}", m.stdout);
    create_refunds(&http, &s, &agent, 200..203).await;
    assert!(s.cli(&["audit", "checkpoint"], None).success);
    let (code, m) = monitor(&s.base, &state, &agent, &[&key], &["--once"]);
    assert_eq!(code, 0, "{}{}", m.stdout, m.stderr);
    assert!(m.stdout.contains("grew from"), "{}", m.stdout);
    s.stop();

    // Every signed checkpoint is remembered next to the key, mode 0600.
    let data = s.data_dir();
    let size = log_size(&data).await;
    let witness = data.join("audit-checkpoints.jsonl");
    let remembered = std::fs::read_to_string(&witness).expect("checkpoint file");
    let last: Value = serde_json::from_str(remembered.lines().last().unwrap()).unwrap();
    let last =
        pliuz_audit::Checkpoint::parse_unverified_note(last["note"].as_str().unwrap()).unwrap();
    assert_eq!(
        last.size, size,
        "the final checkpoint at shutdown is remembered"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&witness).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    }

    // First attack: rewrite a signed entry and rebuild every hash, at the
    // same size. (On a copy; the original is put back afterwards.)
    let pristine = s.dir.path().join("pristine");
    copy_dir(&data, &pristine);
    rewrite_consistently(
        &data,
        size,
        Some((size - 4, "issue_refund", "issue_refunc")),
    )
    .await;
    let refused = s.serve_refused();
    assert!(!refused.success);
    assert!(
        refused.stderr.contains("refusing to start")
            && refused.stderr.contains(&format!(
                "does not extend the checkpoint for {size} entries"
            ))
            && refused.stderr.contains("consistency proof does not verify"),
        "{}",
        refused.stderr
    );
    let check = s.cli(&["audit", "check"], None);
    assert!(!check.success, "{}{}", check.stdout, check.stderr);
    assert!(
        check.stderr.contains("signed entries were rewritten"),
        "{}",
        check.stderr
    );
    for f in std::fs::read_dir(&data).unwrap() {
        std::fs::remove_file(f.unwrap().path()).unwrap();
    }
    copy_dir(&pristine, &data);

    // The attack of the issue: cut the tail with its hashes and checkpoints,
    // consistently.
    let cut = size - 5;
    truncate_consistently(&data, cut).await;
    let check = s.cli(&["audit", "check"], None);
    assert!(!check.success, "{}{}", check.stdout, check.stderr);
    assert!(
        check.stderr.contains(&format!(
            "holds {cut} entries, but this server signed a checkpoint for {size} entries"
        )),
        "{}",
        check.stderr
    );
    let refused = s.serve_refused();
    assert!(!refused.success);
    assert!(
        refused.stderr.contains("refusing to start")
            && refused
                .stderr
                .contains(&format!("signed a checkpoint for {size} entries"))
            && refused.stderr.contains("pliuz audit accept-rollback"),
        "{}",
        refused.stderr
    );
    assert_eq!(log_size(&data).await, cut, "nothing was written to the log");
    // Nor is anything signed over it from the CLI.
    let sign = s.cli(&["audit", "checkpoint"], None);
    assert!(!sign.success, "{}", sign.stdout);

    // The documented override, for a deliberate restore of an old backup.
    let accepted = s.cli(&["audit", "accept-rollback"], None);
    assert!(accepted.success, "{}", accepted.stderr);
    assert!(
        accepted.stderr.contains("Accepted the rollback"),
        "{}",
        accepted.stderr
    );
    s.spawn().await;
    let check = s.cli(&["audit", "check"], None);
    assert!(check.success, "{}{}", check.stdout, check.stderr);
    let admin = s.user_token("root@example.com", "admin", &[]);
    let (_, page) = get_json(
        &http,
        &s.url(&format!("/api/v1/audit/entries?start={cut}")),
        &admin,
    )
    .await;
    assert_eq!(
        page["entries"][0]["entry"]["type"], "audit.rollback_accepted",
        "{page}"
    );
    assert_eq!(page["entries"][0]["entry"]["data"]["remembered_size"], size);

    // The monitor that saw the old log reports the rollback, then the fork
    // once the log has grown past what it saw; its state stays as it was.
    assert!(s.cli(&["audit", "checkpoint"], None).success);
    let before = std::fs::read(&state).unwrap();
    let (code, m) = monitor(&s.base, &state, &agent, &[&key], &["--once"]);
    assert_eq!(code, 1, "{}{}", m.stdout, m.stderr);
    assert!(m.stderr.contains("ROLLBACK"), "{}", m.stderr);
    assert!(m.stderr.contains("remembered checkpoint"), "{}", m.stderr);
    create_refunds(&http, &s, &agent, 300..312).await;
    assert!(s.cli(&["audit", "checkpoint"], None).success);
    assert!(log_size(&data).await > size);
    let (code, m) = monitor(&s.base, &state, &agent, &[&key], &["--once"]);
    assert_eq!(code, 1, "{}{}", m.stdout, m.stderr);
    assert!(m.stderr.contains("FORK"), "{}", m.stderr);
    assert_eq!(std::fs::read(&state).unwrap(), before, "state not advanced");
}

/// A stopped server that signed a checkpoint of its first ten refunds and,
/// after `more` refunds, a larger one; the size the first one covers.
async fn stopped_after_two_checkpoints(more: std::ops::Range<i64>) -> (Server, u64) {
    let (mut s, http, agent) = server_with_ten_refunds().await;
    assert!(s.cli(&["audit", "checkpoint"], None).success);
    let older = log_size(&s.data_dir()).await;
    create_refunds(&http, &s, &agent, more).await;
    assert!(s.cli(&["audit", "checkpoint"], None).success);
    s.stop();
    assert!(log_size(&s.data_dir()).await > older + 1);
    (s, older)
}

// A log cut back to exactly the size of an older stored checkpoint: that
// checkpoint still verifies, but the server signed a larger one since, so
// `audit checkpoint` must refuse rather than print the old note.
#[tokio::test]
async fn a_log_cut_back_to_an_older_checkpoint_is_not_vouched_for() {
    let (s, older) = stopped_after_two_checkpoints(400..403).await;
    truncate_consistently(&s.data_dir(), older).await;
    let sign = s.cli(&["audit", "checkpoint"], None);
    assert!(!sign.success, "{}", sign.stdout);
    assert!(
        sign.stderr.contains(&format!("holds {older} entries")),
        "{}",
        sign.stderr
    );
}

// The export copies the entries while it signs the checkpoint covering
// them: when the signature is refused (here the log was cut back below what
// this server signed), the error is reported and no `entries.jsonl`, not
// even a partial one, is left to look like an export.
#[tokio::test]
async fn an_export_whose_signature_is_refused_leaves_no_entries() {
    let (s, older) = stopped_after_two_checkpoints(500..503).await;
    let cut = older + 1;
    truncate_consistently(&s.data_dir(), cut).await;

    let out = s.dir.path().join("refused-export");
    let e = s.cli(&["audit", "export", "--out", out.to_str().unwrap()], None);
    assert!(!e.success, "{}", e.stderr);
    assert!(
        e.stderr.contains(&format!("holds {cut} entries")),
        "{}",
        e.stderr
    );
    assert!(!out.join("entries.jsonl").exists());
    assert!(!out.join("entries.jsonl.partial").exists());
}

#[tokio::test]
async fn the_monitor_catches_two_servers_with_one_key_diverging() {
    let mut a = Server::start(&config()).await;
    let http = Client::new();
    let agent = a.agent_key("bot");
    create_refunds(&http, &a, &agent, 100..103).await;
    a.stop();
    // B starts from a copy of A's data dir: same log, same signing key.
    let copy = tempfile::tempdir().unwrap();
    copy_dir(&a.data_dir(), copy.path());
    a.spawn().await;
    let b = Server::start_on_data_dir(&config(), copy.path().to_path_buf()).await;

    let state = a.dir.path().join("monitor-state.json");
    // No --key: the server's keys are pinned on first use.
    let (code, m) = monitor(&a.base, &state, &agent, &[], &["--once"]);
    assert_eq!(code, 0, "{}{}", m.stdout, m.stderr);
    assert!(m.stderr.contains("trusting on first use"), "{}", m.stderr);
    create_refunds(&http, &a, &agent, 200..202).await;
    assert!(a.cli(&["audit", "checkpoint"], None).success);
    let (code, m) = monitor(&a.base, &state, &agent, &[], &["--once"]);
    assert_eq!(code, 0, "{}{}", m.stdout, m.stderr);
    assert!(m.stdout.contains("grew from"), "{}", m.stdout);

    // B writes other entries and signs them with the same key.
    create_refunds(&http, &b, &agent, 900..904).await;
    assert!(b.cli(&["audit", "checkpoint"], None).success);
    // The loop (as a service would run it) stops at the fork with exit 1.
    let (code, m) = monitor(&b.base, &state, &agent, &[], &["--interval", "1s"]);
    assert_eq!(code, 1, "{}{}", m.stdout, m.stderr);
    assert!(m.stderr.contains("FORK"), "{}", m.stderr);
    // A, still honest, passes.
    let (code, m) = monitor(&a.base, &state, &agent, &[], &["--once"]);
    assert_eq!(code, 0, "{}{}", m.stdout, m.stderr);
    // Not being able to check is not a verdict: exit 2.
    let down = format!("http://127.0.0.1:{}", support::free_port());
    let (code, m) = monitor(&down, &state, &agent, &[], &["--once"]);
    assert_eq!(code, 2, "{}{}", m.stdout, m.stderr);
    assert!(m.stderr.contains("could not check"), "{}", m.stderr);
    let (code, m) = monitor(&a.base, &state, "", &[], &["--once"]);
    assert_eq!(code, 2, "{}{}", m.stdout, m.stderr);
    assert!(m.stderr.contains("PLIUZ_MONITOR_TOKEN"), "{}", m.stderr);
}
