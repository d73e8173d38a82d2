//! Audit log throughput and proof latency through the real `Store` on SQLite
//! (WAL, `synchronous = FULL`: every commit is durable).
//!
//! ```sh
//! cargo bench -p pliuz --bench audit_append
//! PLIUZ_BENCH_ENTRIES=100000 cargo bench -p pliuz --bench audit_append   # smaller log
//! PLIUZ_BENCH_DIR=/path/on/the/real/disk cargo bench ...                  # where the DB goes
//! ```
//!
//! Prints:
//! 1. appends with one entry per transaction (the server's case: each state
//!    change commits with its entry), entries/s;
//! 2. appends batched 100 per transaction, entries/s;
//! 3. building a log of `PLIUZ_BENCH_ENTRIES` (default 1,000,000) entries in
//!    transactions of 10,000;
//! 4. at that size: root, inclusion and consistency proofs read from the
//!    store (each = one plan + one `IN (...)` query), and a receipt's worth
//!    of work (entries of one approval + proofs).

use pliuz::audit_event::{AuditEvent, DecisionKind, Status};
use pliuz::store::Store;
use rand::Rng;
use serde_json::json;
use std::time::{Duration, Instant};

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(default)
}

fn event(i: u64) -> (&'static str, String, AuditEvent) {
    let approval = format!("01a2{i:028x}");
    if i % 2 == 0 {
        let args =
            json!({"order_id": format!("A-{i}"), "amount_cents": i % 100_000, "currency": "EUR"});
        let event = AuditEvent::ApprovalCreated {
            tool_name: "issue_refund".into(),
            tool_args: args.as_object().cloned().unwrap_or_default(),
            args_digest: "c3a0296e961a53f17f9f82c1a70a69ff7d53ab9055620eb686bbf987c9b4a5c7".into(),
            policy: "refunds".into(),
            agent: "support-bot".into(),
            originator: None,
            call_id: None,
            session_id: None,
            idempotency_key: None,
            required_approvals: 1,
            expires_at: "2025-01-31T12:30:00.000Z".into(),
            condition_errors: vec![],
        };
        ("agent:support-bot", approval, event)
    } else {
        let event = AuditEvent::ApprovalDecided {
            decision: DecisionKind::Approve,
            outcome: Status::Approved,
            reason: Some("looks fine".into()),
            condition: None,
            original_args: Default::default(),
            args_digest: None,
            final_args: None,
            edited: false,
        };
        ("user:fin@example.com", format!("01a2{:028x}", i - 1), event)
    }
}

async fn append(store: &Store, next: &mut u64, count: u64, per_tx: u64) -> Duration {
    let t = Instant::now();
    let mut left = count;
    while left > 0 {
        let n = left.min(per_tx);
        let mut tx = store.begin_write().await.expect("begin");
        for _ in 0..n {
            let (actor, approval_id, event) = event(*next);
            tx.audit(actor, Some(&approval_id), event)
                .await
                .expect("audit");
            *next += 1;
        }
        tx.commit().await.expect("commit");
        left -= n;
    }
    t.elapsed()
}

fn rate(n: u64, d: Duration) -> String {
    format!("{:.0} entries/s", n as f64 / d.as_secs_f64())
}

struct Stats(Vec<Duration>);

impl std::fmt::Display for Stats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut v = self.0.clone();
        v.sort();
        let us = |d: Duration| d.as_secs_f64() * 1e6;
        let mean = v.iter().map(|d| us(*d)).sum::<f64>() / v.len() as f64;
        write!(
            f,
            "mean {:.0} µs, p50 {:.0} µs, p99 {:.0} µs ({} runs)",
            mean,
            us(v[v.len() / 2]),
            us(v[v.len() * 99 / 100]),
            v.len()
        )
    }
}

fn main() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(run());
}

async fn run() {
    let total = env_u64("PLIUZ_BENCH_ENTRIES", 1_000_000);
    let single = env_u64("PLIUZ_BENCH_SINGLE", 2_000);
    let base = std::env::var("PLIUZ_BENCH_DIR").ok();
    let dir = match &base {
        Some(b) => tempfile::tempdir_in(b),
        None => tempfile::tempdir(),
    }
    .expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("bench.db").display());
    let store = Store::open(&url).await.expect("open store");
    println!(
        "audit append benchmark: SQLite WAL, synchronous=FULL, {}",
        dir.path().display()
    );

    let mut next = 0u64;
    let d = append(&store, &mut next, single, 1).await;
    println!(
        "append, 1 entry per transaction:     {single} entries in {:.2?} = {} ({:.2} ms per commit)",
        d,
        rate(single, d),
        d.as_secs_f64() * 1e3 / single as f64
    );
    let batched = single * 10;
    let d = append(&store, &mut next, batched, 100).await;
    println!(
        "append, 100 entries per transaction: {batched} entries in {:.2?} = {}",
        d,
        rate(batched, d)
    );

    let rest = total.saturating_sub(next);
    let t = Instant::now();
    let mut done = 0;
    while done < rest {
        let n = (rest - done).min(100_000);
        append(&store, &mut next, n, 10_000).await;
        done += n;
        if done % 200_000 == 0 || done == rest {
            eprintln!("  built {next} entries ({:.0?})", t.elapsed());
        }
    }
    let d = t.elapsed();
    println!(
        "build, 10,000 entries per transaction: {rest} entries in {:.2?} = {}",
        d,
        rate(rest, d)
    );
    let size = store.audit_size().await.expect("size");
    assert_eq!(size, next);
    let db_bytes: u64 = std::fs::read_dir(dir.path())
        .map(|it| {
            it.flatten()
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0);
    println!(
        "log size {size} entries, database {:.0} MB",
        db_bytes as f64 / 1e6
    );

    // Proofs at full size.
    let runs = 1000;
    let mut rng = rand::thread_rng();
    let root = store.audit_root(size).await.expect("root");
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = Instant::now();
        let r = store.audit_root(size).await.expect("root");
        times.push(t.elapsed());
        assert_eq!(r, root);
    }
    println!("root at size {size}:           {}", Stats(times));

    let mut times = Vec::with_capacity(runs);
    let mut verify = Vec::with_capacity(runs);
    for _ in 0..runs {
        let index = rng.gen_range(0..size);
        let t = Instant::now();
        let proof = store.inclusion_proof(index, size).await.expect("inclusion");
        times.push(t.elapsed());
        let body = store.audit_entries(index, index + 1).await.expect("entry");
        let leaf = pliuz_audit::leaf_hash(body[0].body.as_bytes());
        let t = Instant::now();
        pliuz_audit::verify_inclusion(index, size, &leaf, &proof, &root).expect("verifies");
        verify.push(t.elapsed());
    }
    println!("inclusion proof at size {size}: {}", Stats(times));
    println!("  verify (pliuz_audit):          {}", Stats(verify));

    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let from = rng.gen_range(1..size);
        let t = Instant::now();
        let proof = store
            .consistency_proof(from, size)
            .await
            .expect("consistency");
        times.push(t.elapsed());
        if times.len() <= 20 {
            let old = store.audit_root(from).await.expect("root");
            pliuz_audit::verify_consistency(from, size, &proof, &old, &root).expect("verifies");
        }
    }
    println!("consistency proof to {size}:   {}", Stats(times));

    // A receipt's store work: the approval's entries, one proof each.
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let i = rng.gen_range(0..size / 2) * 2;
        let id = format!("01a2{i:028x}");
        let t = Instant::now();
        let entries = store.audit_entries_for(&id).await.expect("entries");
        for e in &entries {
            store.inclusion_proof(e.index, size).await.expect("proof");
        }
        times.push(t.elapsed());
        assert_eq!(entries.len(), 2);
    }
    println!("receipt store work (2 entries): {}", Stats(times));
}
