//! The five figures (see `main.rs`), each measured with its baseline.

use crate::raw;
use crate::report::{ms, Report, Row};
use crate::server::{self, auto_approved, decide, needs_a_person, Server};
use crate::Options;
use anyhow::{bail, Context, Result};
use serde_json::Value;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub async fn run_all(o: &Options, report: &mut Report) -> Result<()> {
    let mut s = Server::start(&o.bin, &o.dir, None).await?;
    let mut sqlite = raw::Sqlite::open(s.root())?;

    if o.runs("P1") {
        report
            .section("P1 gate: auto-approved POST /api/v1/approvals on one keep-alive connection");
        gate(o, &s, &mut sqlite, report).await?;
    }

    if o.runs("P2") {
        report.section("P2 delivery: decision -> long-poll answer");
        delivery(o, &s, 1, report).await?;
        delivery(o, &s, 1000, report).await?;
    }

    if o.runs("P3") {
        report.section("P3 throughput: creates/s with N concurrent agents (SQLite)");
        throughput(o, &s, &mut sqlite, report).await?;
        if let Some(url) = &o.postgres {
            report.section("P3 throughput on PostgreSQL");
            postgres_throughput(o, url, report).await?;
        }
    }

    if o.runs("P4") {
        report.section("P4 audit: export and offline verification");
        audit(o, &s, report).await?;
    }

    s.stop()?;
    if o.runs("P5") {
        report.section("P5 reads at scale");
        reads(o, &mut s, report).await?;
        s.stop()?;
    }
    Ok(())
}

fn ratio(x: f64) -> String {
    format!("{x:.2}x")
}

/// A P3 row: `rate` creates a second with `agents` agents against a
/// baseline (its label, its rate); the target (a quarter of the baseline)
/// applies at 32 agents.
fn p3_row(figure: String, agents: usize, rate: f64, (label, baseline): (String, f64)) -> Row {
    let targeted = agents == 32;
    Row {
        figure,
        measured: format!("{rate:.0}/s"),
        baseline: label,
        ratio: ratio(rate / baseline),
        target: if targeted { ">= 0.25x" } else { "-" }.into(),
        met: targeted.then_some(rate >= 0.25 * baseline),
    }
}

async fn gate(
    o: &Options,
    s: &Server,
    sqlite: &mut raw::Sqlite,
    report: &mut Report,
) -> Result<()> {
    let n = if o.quick { 300 } else { 2000 };
    let http = server::client()?;
    let (mut gate, mut rtt, mut commit) = (Vec::new(), Vec::new(), Vec::new());
    let url = s.url("/api/v1/approvals");
    // Warm the connection and the server's caches first.
    for i in 0..20 {
        server::post(&http, &url, &s.agent, &auto_approved(i)).await?;
    }
    let floor_db = s.root().join("floor.db");
    let mut rows = raw::CreateRows::copy_of(&s.sqlite_file(), &floor_db)?;
    raw::grow_wal(&floor_db, 5000, || rows.commit().map(drop))?;
    let raw_db = sqlite.path().to_owned();
    raw::grow_wal(&raw_db, 5000, || sqlite.commit(1).map(drop))?;
    let mut floor = Vec::new();
    for i in 0..n {
        let t = Instant::now();
        let r = http.get(s.url("/healthz")).send().await?;
        r.bytes().await?;
        rtt.push(t.elapsed());

        let t = Instant::now();
        let a = server::post(&http, &url, &s.agent, &auto_approved(1000 + i)).await?;
        gate.push(t.elapsed());
        if a["status"] != "approved" {
            bail!("the lookup request was not auto-approved: {a}");
        }

        commit.push(sqlite.commit(1)?);
        floor.push(rows.commit()?);
    }
    for (p, name) in [(0.5, "p50"), (0.99, "p99")] {
        let base = ms(&rtt, p) + ms(&commit, p);
        report.add(Row {
            figure: format!("P1 gate {name}"),
            measured: format!("{:.2} ms", ms(&gate, p)),
            baseline: format!("{:.2}+{:.2} ms", ms(&rtt, p), ms(&commit, p)),
            ratio: ratio(ms(&gate, p) / base),
            target: "<= 1.5x (RTT + commit)".into(),
            met: Some(ms(&gate, p) <= 1.5 * base),
        });
        // What the gate would take with no server work at all beyond
        // storing its rows: the ratio P1 cannot go below on this schema.
        report.add(Row {
            figure: format!("P1 floor {name}: RTT + a create's rows"),
            measured: format!("{:.2}+{:.2} ms", ms(&rtt, p), ms(&floor, p)),
            baseline: format!("{:.2}+{:.2} ms", ms(&rtt, p), ms(&commit, p)),
            ratio: ratio((ms(&rtt, p) + ms(&floor, p)) / base),
            target: "-".into(),
            met: None,
        });
    }
    Ok(())
}

/// Opens `background` long-polls on other pending requests, then times
/// decision -> answer of one more long-poll, `samples` times.
async fn delivery(o: &Options, s: &Server, background: usize, report: &mut Report) -> Result<()> {
    let samples = if o.quick { 30 } else { 200 };
    let http = server::client()?;
    let url = s.url("/api/v1/approvals");
    let mut waiting = Vec::new();
    for i in 0..background {
        waiting.push(server::post(&http, &url, &s.agent, &needs_a_person(i as u64)).await?);
    }
    // Let memory settle after the creates before the idle reading.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_before = s.rss_kb();

    let stop = Arc::new(AtomicBool::new(false));
    let polls = server::client()?;
    let mut tasks = Vec::new();
    for a in &waiting {
        let id = a["id"].as_str().context("id")?.to_owned();
        let (polls, stop, token) = (polls.clone(), stop.clone(), s.agent.clone());
        let url = s.url(&format!("/api/v1/approvals/{id}?wait=60"));
        tasks.push(tokio::spawn(async move {
            // Poll again whenever a wait ends, until told to stop and the
            // request is settled.
            while !stop.load(Ordering::Relaxed) {
                let v = server::get(&polls, &url, &token).await?;
                if v["status"] != "pending" {
                    break;
                }
            }
            Ok::<(), anyhow::Error>(())
        }));
    }
    if background > 0 {
        // Long-polls open their connections concurrently; give them time.
        tokio::time::sleep(Duration::from_millis(1000 + background as u64)).await;
    }
    let rss_during = s.rss_kb();

    let (mut delivered, mut decision) = (Vec::new(), Vec::new());
    let poller = server::client()?;
    for i in 0..samples {
        let a = server::post(&http, &url, &s.agent, &needs_a_person(1_000_000 + i)).await?;
        let id = a["id"].as_str().context("id")?.to_owned();
        let (poller, token) = (poller.clone(), s.agent.clone());
        let poll_url = s.url(&format!("/api/v1/approvals/{id}?wait=30"));
        let poll = tokio::spawn(async move {
            let v = server::get(&poller, &poll_url, &token).await;
            (Instant::now(), v)
        });
        // The long-poll must be registered before the decision.
        tokio::time::sleep(Duration::from_millis(20)).await;
        let t = Instant::now();
        decide(&http, s, &a, "approve").await?;
        decision.push(t.elapsed());
        let (answered, v) = poll.await?;
        if v?["status"] != "approved" {
            bail!("the long-poll did not see the approval");
        }
        delivered.push(answered.saturating_duration_since(t));
    }

    stop.store(true, Ordering::Relaxed);
    for a in &waiting {
        decide(&http, s, a, "reject").await?;
    }
    for t in tasks {
        t.await??;
    }
    drop(polls);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let rss_after = s.rss_kb();

    for (p, name) in [(0.5, "p50"), (0.99, "p99")] {
        report.add(Row {
            figure: format!("P2 delivery {name}, {background} other long-polls"),
            measured: format!("{:.2} ms", ms(&delivered, p)),
            baseline: format!("decision {:.2} ms", ms(&decision, p)),
            ratio: ratio(ms(&delivered, p) / ms(&decision, p)),
            target: if background >= 1000 && name == "p99" {
                "p99 <= 5 ms".into()
            } else {
                "-".into()
            },
            met: (background >= 1000 && name == "p99").then(|| ms(&delivered, p) <= 5.0),
        });
    }
    if background > 0 {
        if let (Some(before), Some(during), Some(after)) = (rss_before, rss_during, rss_after) {
            report.add(Row {
                figure: format!("P2 RSS with {background} long-polls (before/during/after)"),
                measured: format!("{}/{}/{} MB", before / 1024, during / 1024, after / 1024),
                baseline: format!("idle {} MB", before / 1024),
                ratio: ratio(after as f64 / before as f64),
                target: "after <= 1.10x idle".into(),
                met: Some(after as f64 <= before as f64 * 1.10),
            });
        }
    }
    Ok(())
}

/// Creates per second with `agents` concurrent clients for `time`; the
/// rate and the latencies.
async fn create_rate(s: &Server, agents: usize, time: Duration) -> Result<(f64, Vec<Duration>)> {
    let start = Instant::now();
    let mut tasks = Vec::new();
    for agent in 0..agents {
        let http = server::client()?;
        let (url, token) = (s.url("/api/v1/approvals"), s.agent.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut i = (agent as u64) << 32;
            while start.elapsed() < time {
                let t = Instant::now();
                server::post(&http, &url, &token, &auto_approved(i)).await?;
                lat.push(t.elapsed());
                i += 1;
            }
            Ok::<_, anyhow::Error>(lat)
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await??);
    }
    Ok((all.len() as f64 / start.elapsed().as_secs_f64(), all))
}

/// Bare round trips per second (`GET /healthz`, no database) with `agents`
/// concurrent clients on keep-alive connections for `time`: what this
/// machine serves over HTTP at all, the ceiling above any create rate.
async fn round_trip_rate(s: &Server, agents: usize, time: Duration) -> Result<f64> {
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..agents {
        let http = server::client()?;
        let url = s.url("/healthz");
        tasks.push(tokio::spawn(async move {
            let mut done = 0u64;
            while start.elapsed() < time {
                let r = http.get(&url).send().await?.error_for_status()?;
                r.bytes().await?;
                done += 1;
            }
            Ok::<_, anyhow::Error>(done)
        }));
    }
    raw::summed_rate(start, tasks).await
}

const AGENTS: [usize; 4] = [1, 8, 32, 128];

async fn throughput(
    o: &Options,
    s: &Server,
    sqlite: &mut raw::Sqlite,
    report: &mut Report,
) -> Result<()> {
    let time = Duration::from_secs(if o.quick { 2 } else { 5 });
    for agents in AGENTS {
        let (rate, lat) = create_rate(s, agents, time).await?;
        let ceiling = sqlite.batched_rate(agents as u64, time)?;
        report.add(p3_row(
            format!("P3 {agents} agents (p99 {:.1} ms)", ms(&lat, 0.99)),
            agents,
            rate,
            (format!("raw x{agents}/commit {ceiling:.0}/s"), ceiling),
        ));
        if agents == 32 {
            // How much of the raw ceiling HTTP alone leaves on this machine.
            let bare = round_trip_rate(s, agents, time).await?;
            report.add(Row {
                figure: format!("P3 reference: {agents} agents, GET /healthz"),
                measured: format!("{bare:.0}/s"),
                baseline: format!("raw x{agents}/commit {ceiling:.0}/s"),
                ratio: ratio(bare / ceiling),
                target: "-".into(),
                met: None,
            });
        }
    }
    Ok(())
}

/// P3 against a fresh database on the PostgreSQL server at `url`.
async fn postgres_throughput(o: &Options, url: &str, report: &mut Report) -> Result<()> {
    use sqlx::Connection;
    let name = format!("pliuz_bench_{}", std::process::id());
    let mut admin = sqlx::PgConnection::connect(url).await?;
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await?;
    let db_url = with_database(url, &name);
    let result = async {
        let s = Server::start(&o.bin, &o.dir, Some(db_url.clone())).await?;
        let time = Duration::from_secs(if o.quick { 2 } else { 5 });
        for agents in AGENTS {
            let (rate, lat) = create_rate(&s, agents, time).await?;
            let raw = raw::postgres_rate(&db_url, agents, time).await?;
            report.add(p3_row(
                format!(
                    "P3 PostgreSQL {agents} agents (p99 {:.1} ms)",
                    ms(&lat, 0.99)
                ),
                agents,
                rate,
                (format!("raw inserts {raw:.0}/s"), raw),
            ));
        }
        Ok::<(), anyhow::Error>(())
    }
    .await;
    // The server is gone (dropped) by now; its connections with it.
    let dropped = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&mut admin)
        .await;
    result?;
    dropped?;
    Ok(())
}

/// `url` with its database name replaced.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (url, String::new()),
    };
    let authority_end = base.find("://").map_or(0, |i| i + 3);
    let base = match base[authority_end..].find('/') {
        Some(i) => &base[..authority_end + i],
        None => base,
    };
    format!("{base}/{name}{query}")
}

async fn audit(o: &Options, s: &Server, report: &mut Report) -> Result<()> {
    let out = tempfile::Builder::new()
        .prefix("pliuz-bench-export-")
        .tempdir_in(&o.dir)?;
    // The server's own log (every request so far): export vs verify.
    let export_dir = out.path().join("server");
    let t = Instant::now();
    s.cli(&["audit", "export", "--out", path_str(&export_dir)?], None)?;
    let export_s = t.elapsed().as_secs_f64();
    let keys = std::fs::read_to_string(export_dir.join("keys.txt"))?;
    let key = keys
        .lines()
        .last()
        .context("no key in keys.txt")?
        .to_owned();
    let (entries, bytes) = export_size(&export_dir)?;
    let verify_s = time_verify(s, &export_dir, &key)?;
    report.add(Row {
        figure: format!("P4 export, server log ({entries} entries)"),
        measured: format!("{:.0} entries/s", entries as f64 / export_s),
        baseline: format!("verify {:.0} entries/s", entries as f64 / verify_s),
        ratio: ratio(verify_s / export_s),
        target: ">= 1x verify".into(),
        met: Some(export_s <= verify_s),
    });
    let _ = bytes;

    // A large synthetic export for a stable MB/s figure.
    let large = if o.quick { 200_000 } else { 1_000_000 };
    let dir = out.path().join("large");
    let key = write_export(&dir, large)?;
    let (_, bytes) = export_size(&dir)?;
    let verify_s = time_verify(s, &dir, &key)?;
    let data = std::fs::read(dir.join("entries.jsonl"))?;
    let sha = raw::sha256_mb_s(&data);
    let mb_s = bytes as f64 / 1e6 / verify_s;
    report.add(Row {
        figure: format!("P4 verify, {large} entries ({:.0} MB)", bytes as f64 / 1e6),
        measured: format!("{mb_s:.0} MB/s"),
        baseline: format!("SHA-256 {sha:.0} MB/s"),
        ratio: ratio(mb_s / sha),
        target: ">= 0.5x".into(),
        met: Some(mb_s >= 0.5 * sha),
    });
    Ok(())
}

fn path_str(p: &std::path::Path) -> Result<&str> {
    p.to_str().context("the temp dir path is not UTF-8")
}

/// Entries and bytes of an export's `entries.jsonl`.
fn export_size(dir: &std::path::Path) -> Result<(u64, u64)> {
    let data = std::fs::read(dir.join("entries.jsonl"))?;
    let lines = data.iter().filter(|&&b| b == b'\n').count() as u64;
    Ok((lines, data.len() as u64))
}

/// Best of three `pliuz audit verify` runs (the first also warms the page
/// cache), in seconds, process start included.
fn time_verify(s: &Server, dir: &std::path::Path, key: &str) -> Result<f64> {
    let mut best = f64::MAX;
    for _ in 0..3 {
        let t = Instant::now();
        s.cli(&["audit", "verify", path_str(dir)?, "--key", key], None)?;
        best = best.min(t.elapsed().as_secs_f64());
    }
    Ok(best)
}

/// Writes an export of `count` entries like the server's (a checkpoint
/// every 10,000), signed by a new key; returns the verifier key.
fn write_export(dir: &std::path::Path, count: u64) -> Result<String> {
    use pliuz_audit::{sign_checkpoint, Checkpoint, Entry, MemoryTree, SigningKey};
    use std::io::Write;
    let origin = "bench.pliuz/audit";
    let key = SigningKey::generate(origin)?;
    std::fs::create_dir_all(dir.join("checkpoints"))?;
    let file = std::fs::File::create(dir.join("entries.jsonl"))?;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
    let mut tree = MemoryTree::new();
    for i in 0..count {
        let approval = i / 2;
        let (kind, actor, data) = if i % 2 == 0 {
            (
                "approval.created",
                "agent:refund-bot".to_owned(),
                serde_json::json!({"tool_name": "issue_refund", "tool_args": {"order": format!("ord_{approval}"), "amount_cents": 1999 + approval % 7}, "policy": "refunds", "args_digest": format!("{:064x}", approval)}),
            )
        } else {
            (
                "approval.decided",
                format!("user:reviewer{}@example.com", approval % 5),
                serde_json::json!({"decision": "approve", "outcome": {"status": "approved"}, "reason": "looks fine"}),
            )
        };
        let entry = Entry {
            index: i,
            time: format!(
                "2026-01-01T00:{:02}:{:02}.{:03}Z",
                (i / 60_000) % 60,
                (i / 1000) % 60,
                i % 1000
            ),
            kind: kind.to_owned(),
            actor,
            approval_id: Some(format!("0190{approval:028x}")),
            data,
        };
        let line = entry.to_canonical_bytes()?;
        out.write_all(&line)?;
        out.write_all(b"\n")?;
        tree.push_entry(&line);
        let size = i + 1;
        if size % 10_000 == 0 || size == count {
            let cp = Checkpoint {
                origin: origin.to_owned(),
                size,
                root: tree.root(),
            };
            std::fs::write(
                dir.join("checkpoints").join(size.to_string()),
                sign_checkpoint(&cp, &key)?,
            )?;
        }
    }
    out.flush()?;
    std::fs::write(dir.join("keys.txt"), format!("{}\n", key.verifier_key()))?;
    Ok(key.verifier_key())
}

/// Stored requests for P5: cloned from rows the server wrote itself, so the
/// schema is the server's own, whatever it is.
async fn reads(o: &Options, s: &mut Server, report: &mut Report) -> Result<()> {
    // Templates: one request waiting for a person and one decided.
    s.serve().await?;
    let http = server::client()?;
    let url = s.url("/api/v1/approvals");
    let pending = server::post(&http, &url, &s.agent, &needs_a_person(7)).await?;
    let decided = server::post(&http, &url, &s.agent, &needs_a_person(8)).await?;
    decide(&http, s, &decided, "approve").await?;
    s.stop()?;

    let t = Instant::now();
    bulk_insert(
        &s.sqlite_file(),
        o.rows,
        str_field(&pending, "id")?,
        str_field(&decided, "id")?,
    )?;
    println!(
        "  (inserted {} requests in {:.1} s)",
        o.rows,
        t.elapsed().as_secs_f64()
    );
    s.serve().await?;
    // Without a session the web pages are left out, the API lists still run.
    let cookie = match s.web_login(&http).await {
        Ok(c) => Some(c),
        Err(e) => {
            println!("  (inbox and history not measured: {e})");
            None
        }
    };
    let n = if o.quick { 20 } else { 100 };

    // A deep page: the cursor of the first page of approved requests.
    let first = server::get(
        &http,
        &s.url("/api/v1/approvals?status=approved&limit=50"),
        &s.user,
    )
    .await?;
    let cursor = first["next_cursor"].as_str().unwrap_or_default().to_owned();
    let pages: Vec<(String, String, bool)> = vec![
        (
            "list ?status=pending".into(),
            "/api/v1/approvals?status=pending&limit=50".into(),
            false,
        ),
        (
            "list ?tool=restart".into(),
            "/api/v1/approvals?tool=restart&limit=50".into(),
            false,
        ),
        (
            "list ?status=approved&cursor".into(),
            format!("/api/v1/approvals?status=approved&limit=50&cursor={cursor}"),
            false,
        ),
        (
            "list ?policy=ops".into(),
            "/api/v1/approvals?policy=ops&limit=50".into(),
            false,
        ),
        ("inbox page".into(), "/inbox".into(), true),
        (
            "history ?status=approved".into(),
            "/history?status=approved".into(),
            true,
        ),
    ];
    for (name, path, web) in pages {
        if web && cookie.is_none() {
            continue;
        }
        let mut lat = Vec::new();
        // A slow page gets fewer samples (at least 3) rather than minutes.
        let began = Instant::now();
        while lat.len() < n && (lat.len() < 3 || began.elapsed() < Duration::from_secs(10)) {
            let t = Instant::now();
            let req = http.get(s.url(&path));
            let req = if let (true, Some(cookie)) = (web, &cookie) {
                req.header(reqwest::header::COOKIE, cookie)
            } else {
                req.bearer_auth(&s.user)
            };
            let r = req.send().await?;
            let status = r.status();
            r.bytes().await?;
            if !status.is_success() {
                bail!("GET {path}: {status}");
            }
            lat.push(t.elapsed());
        }
        report.add(Row {
            figure: format!("P5 {name} at {} rows ({} samples)", o.rows, lat.len()),
            measured: format!("p50 {:.1} / p99 {:.1} ms", ms(&lat, 0.5), ms(&lat, 0.99)),
            baseline: "-".into(),
            ratio: "-".into(),
            target: "p99 <= 20 ms".into(),
            met: Some(ms(&lat, 0.99) <= 20.0),
        });
    }
    Ok(())
}

fn str_field<'a>(v: &'a Value, name: &str) -> Result<&'a str> {
    v[name]
        .as_str()
        .with_context(|| format!("no {name} in {v}"))
}

/// Inserts `rows` requests in one transaction: 1 in 100 pending (expiring
/// in a year), the rest approved, rejected or expired; half `refunds`, half
/// `ops`; ids are UUIDv7 text in creation order, one millisecond apart.
fn bulk_insert(db: &std::path::Path, rows: u64, pending_id: &str, decided_id: &str) -> Result<()> {
    let mut conn = rusqlite::Connection::open(db)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    let columns: Vec<String> = {
        let mut q = conn.prepare("SELECT name FROM pragma_table_info('approvals')")?;
        let names = q.query_map([], |r| r.get(0))?;
        names.collect::<Result<_, _>>()?
    };
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as i64;
    let first_ms = now_ms - rows as i64 - 60_000;
    let expression = |c: &str| -> String {
        match c {
            "id" => "printf('%08x-%04x-7%03x-%04x-%012x', (:first + i) >> 16, (:first + i) & 65535, (i >> 12) & 4095, 32768 | (i & 4095), i)".into(),
            "status" => "CASE WHEN i % 100 = 0 THEN 'pending' WHEN i % 10 = 1 THEN 'rejected' WHEN i % 10 = 2 THEN 'expired' ELSE 'approved' END".into(),
            "settled_status" => "CASE WHEN i % 100 = 0 THEN NULL WHEN i % 10 = 1 THEN 'rejected' WHEN i % 10 = 2 THEN 'expired' ELSE 'approved' END".into(),
            "policy" => "CASE WHEN i % 2 = 0 THEN 'refunds' ELSE 'ops' END".into(),
            "tool_name" => "CASE WHEN i % 2 = 0 THEN 'issue_refund' ELSE 'restart' END".into(),
            "created_at" => ":first + i".into(),
            "settled_at" => "CASE WHEN i % 100 = 0 THEN NULL ELSE :first + i + 1000 END".into(),
            "expires_at" => "CASE WHEN i % 100 = 0 THEN :now + 31536000000 ELSE :first + i + 86400000 END".into(),
            // Unique per agent when set: keep it unique.
            "idempotency_key" => "'bench-' || i".into(),
            other => format!("t.\"{other}\""),
        }
    };
    let select: Vec<String> = columns.iter().map(|c| expression(c)).collect();
    let quoted: Vec<String> = columns.iter().map(|c| format!("\"{c}\"")).collect();
    let sql = format!(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < :rows) \
         INSERT INTO approvals ({}) SELECT {} FROM n JOIN approvals t \
         ON t.id = CASE WHEN i % 100 = 0 THEN :pending ELSE :decided END",
        quoted.join(", "),
        select.join(", ")
    );
    let tx = conn.transaction()?;
    tx.execute(
        &sql,
        rusqlite::named_params! {
            ":rows": rows as i64,
            ":first": first_ms,
            ":now": now_ms,
            ":pending": pending_id,
            ":decided": decided_id,
        },
    )?;
    tx.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn database_name_is_replaced_keeping_the_query() {
        assert_eq!(
            with_database("postgres://u@h:5432/test?sslmode=disable", "b"),
            "postgres://u@h:5432/b?sslmode=disable"
        );
        assert_eq!(with_database("postgres://u@h", "b"), "postgres://u@h/b");
    }
}
