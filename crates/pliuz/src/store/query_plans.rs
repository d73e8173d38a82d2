//! Every list query the store runs must use an index: at a million
//! approvals a full scan turns a page into seconds (issue #13). The
//! statements checked are built by the same functions the store runs, for
//! every combination of filters, so a new filter or query cannot skip the
//! check. Each database holds an analysed sample in which the filtered
//! values are rare, as they are among a million rows; SQLite is asked with
//! `EXPLAIN QUERY PLAN`, PostgreSQL with `EXPLAIN (FORMAT JSON)` and
//! sequential scans priced out, so a plan that reads the whole table means
//! no index can serve the query.

use super::approvals::{
    count_statement, list_statement, ApprovalFilter, DUE_EXPIRIES_SQL, NEXT_EXPIRY_SQL,
};
use super::email::{PENDING_ASKS_SQL, PURGE_LINKS_SQL, RECIPIENTS_OF_SQL};
use super::oidc::PURGE_LOGINS_SQL;
use super::outbox::{DUE_OUTBOX_SQL, NEXT_OUTBOX_DUE_SQL};
use super::overview::{settled_statement, waiting_counts_statement, waiting_statement};
use super::principals::USER_TOKENS_SQL;
use super::questions::{pending_statement, DUE_QUESTIONS_SQL, NEXT_QUESTION_EXPIRY_SQL};
use super::runs::{
    list_runs_statement, RunFilter, DUE_WEBHOOKS_SQL, NEXT_WEBHOOK_DUE_SQL, RUNS_WITH_APPROVAL_SQL,
    RUNS_WITH_QUESTION_SQL, WEBHOOK_KIND,
};
use super::sessions::PURGE_SESSIONS_SQL;
use super::slack::{GAVE_UP_AT, MESSAGES_FOR_SQL, PENDING_POSTS_SQL};
use super::sql::{self, Arg, Statement};
use super::timers::{DUE_TIMERS_SQL, NEXT_TIMER_SQL};
use super::Store;
use crate::approval::Status;
use crate::run::RunStatus;
use sqlx::{Connection, Executor, Row};

// The integration tests' helper, so both make their databases the same way.
#[path = "../../tests/support/postgres.rs"]
mod fresh_postgres;

/// A statement the store runs, and whether it filters on anything beyond
/// a keyset cursor. An unfiltered listing may walk the primary key in
/// order (it stops at its `LIMIT`); a filtered one must seek an index.
struct Checked {
    name: String,
    statement: Statement,
    filtered: bool,
    /// Answered from an index alone, never reading a row: the inbox's
    /// per-policy counts, on every page load.
    index_only: bool,
}

impl Checked {
    /// A filtered statement that may read rows.
    fn filtered(name: String, statement: Statement) -> Checked {
        Checked {
            name,
            statement,
            filtered: true,
            index_only: false,
        }
    }
}

fn fixed(name: &str, sql: &str, args: Vec<Arg>) -> Checked {
    let statement = Statement {
        sql: sql.to_owned(),
        args,
    };
    Checked::filtered(name.to_owned(), statement)
}

/// Every filter combination of the approval listing and count, the inbox
/// overview, and the workers' queue queries.
fn catalogue() -> Vec<Checked> {
    let mut out = Vec::new();
    let scope = Some(vec!["refunds".to_owned(), "deploys".to_owned()]);
    for bits in 0u32..32 {
        let on = |i: u32| bits & (1 << i) != 0;
        let base = ApprovalFilter {
            status: on(0).then_some(Status::Approved),
            policy: on(1).then(|| "refunds".to_owned()),
            agent: on(2).then(|| "billing-bot".to_owned()),
            tool: on(3).then(|| "issue_refund".to_owned()),
            policies_in: if on(4) { scope.clone() } else { None },
            limit: 50,
            ..Default::default()
        };
        let filtered = bits != 0;
        for (cursor, before, after) in [
            ("", None, None),
            (" before a cursor", Some("110000"), None),
            (" after a cursor", None, Some("110000")),
        ] {
            for oldest_first in [false, true] {
                let f = ApprovalFilter {
                    before_id: before.map(str::to_owned),
                    after_id: after.map(str::to_owned),
                    oldest_first,
                    ..base.clone()
                };
                if let Some(statement) = list_statement(&f) {
                    out.push(Checked {
                        name: format!("list {f:?}{cursor}"),
                        statement,
                        filtered,
                        index_only: false,
                    });
                }
            }
        }
        // The inbox counts what waits (in total and per policy).
        let pending = ApprovalFilter {
            status: Some(Status::Pending),
            ..base.clone()
        };
        if let Some(statement) = count_statement(&pending) {
            // The per-policy counts: status and policy, nothing else.
            let per_policy = bits == 1 << 1;
            out.push(Checked {
                name: format!("count {pending:?}"),
                statement,
                filtered: true,
                index_only: per_policy,
            });
        }
    }
    for policies in [None, scope.as_deref(), Some(&[][..])] {
        for (name, statement) in [
            ("waiting", waiting_statement(policies, 100)),
            ("waiting counts", waiting_counts_statement(policies)),
            ("settled", settled_statement(policies, 0, 1_000, 500)),
        ] {
            out.push(Checked {
                name: format!("{name} {policies:?}"),
                statement,
                filtered: true,
                index_only: name == "waiting counts",
            });
        }
    }
    for status in std::iter::once(None).chain(RunStatus::ALL.into_iter().map(Some)) {
        let statement = list_runs_statement(&RunFilter {
            agent: "billing-bot",
            status,
            now: 1_000,
            limit: 50,
        });
        out.push(Checked::filtered(format!("runs {status:?}"), statement));
    }
    for (name, policies) in [
        ("pending questions", None),
        ("pending questions of policies", scope.as_deref()),
    ] {
        if let Some(statement) = pending_statement(policies, 25) {
            out.push(Checked::filtered(name.to_owned(), statement));
        }
    }
    // The workers' queues (due by `now`, at most `limit`; when next), the
    // rows of one request, and the housekeeping purges.
    let due = || vec![Arg::Int(1_000), Arg::Int(100)];
    let request = || vec![Arg::from("0190aaaa")];
    let not_given_up = |first: Arg| vec![first, Arg::Int(GAVE_UP_AT)];
    let before = || vec![Arg::Int(1_000)];
    for (name, sql, args) in [
        ("due expiries", DUE_EXPIRIES_SQL, due()),
        ("next expiry", NEXT_EXPIRY_SQL, vec![]),
        ("due questions", DUE_QUESTIONS_SQL, due()),
        ("next question expiry", NEXT_QUESTION_EXPIRY_SQL, vec![]),
        ("due outbox", DUE_OUTBOX_SQL, due()),
        ("next outbox due", NEXT_OUTBOX_DUE_SQL, vec![]),
        (
            "due webhooks",
            DUE_WEBHOOKS_SQL,
            [vec![WEBHOOK_KIND.into()], due()].concat(),
        ),
        (
            "next webhook due",
            NEXT_WEBHOOK_DUE_SQL,
            not_given_up(WEBHOOK_KIND.into()),
        ),
        (
            "pending slack posts",
            PENDING_POSTS_SQL,
            not_given_up("0190aaaa".into()),
        ),
        ("due timers", DUE_TIMERS_SQL, due()),
        ("next timer", NEXT_TIMER_SQL, vec![]),
        (
            "pending e-mail asks",
            PENDING_ASKS_SQL,
            not_given_up("0190aaaa".into()),
        ),
        (
            "e-mail recipients of a request",
            RECIPIENTS_OF_SQL,
            request(),
        ),
        ("Slack messages of a request", MESSAGES_FOR_SQL, request()),
        ("runs with an approval", RUNS_WITH_APPROVAL_SQL, request()),
        (
            "runs waiting on a question",
            RUNS_WITH_QUESTION_SQL,
            request(),
        ),
        ("a user's tokens", USER_TOKENS_SQL, request()),
        ("expired sessions", PURGE_SESSIONS_SQL, before()),
        ("expired log-ins", PURGE_LOGINS_SQL, before()),
        ("expired e-mail links", PURGE_LINKS_SQL, before()),
    ] {
        out.push(fixed(name, sql, args));
    }
    out
}

/// What is wrong with a SQLite plan, if anything. Its `detail` lines read
/// `SCAN t` (every row), `SCAN t USING [COVERING] INDEX i` (every index
/// entry, in index order) or `SEARCH t USING ...` (a seek).
fn sqlite_problem(plan: &[String], filtered: bool) -> Option<String> {
    plan.iter()
        .find(|line| {
            line.starts_with("SCAN ")
                && !line.starts_with("SCAN CONSTANT ROW")
                && (filtered || !line.contains(" INDEX "))
        })
        .cloned()
}

/// What is wrong with a PostgreSQL plan, if anything: a sequential scan,
/// or (for a filtered query) an index walked without an index condition.
fn postgres_problem(node: &serde_json::Value, filtered: bool) -> Option<String> {
    let kind = node["Node Type"].as_str().unwrap_or_default();
    let relation = node["Relation Name"].as_str().unwrap_or_default();
    if kind == "Seq Scan" {
        return Some(format!("Seq Scan on {relation}"));
    }
    if filtered && kind.starts_with("Index") && node.get("Index Cond").is_none() {
        return Some(format!(
            "{kind} on {relation} using {} without an index condition",
            node["Index Name"].as_str().unwrap_or_default()
        ));
    }
    node["Plans"]
        .as_array()
        .into_iter()
        .flatten()
        .find_map(|child| postgres_problem(child, filtered))
}

/// Rows in the sample the planners see.
const SAMPLE_ROWS: i64 = 20_000;
const SAMPLE_RUNS: i64 = 5_000;

/// A sample where every value the catalogue filters on is rare (1 % of
/// rows or less), as one status, policy, agent or tool is among a million: an
/// index on it is then the planner's right choice, and a walk over the
/// whole table shows that no index serves the filter. One portable
/// statement for both databases.
async fn load_sample(store: &Store) {
    let sql = format!(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {SAMPLE_ROWS}) \
         INSERT INTO approvals (id, status, tool_name, tool_args, policy, agent, args_digest, required_approvals, allowed_decisions, settled_at, created_at, expires_at, version) \
         SELECT CAST(100000 + i AS TEXT), \
           CASE WHEN i % 100 = 0 THEN 'pending' WHEN i % 100 = 1 THEN 'approved' ELSE 'expired' END, \
           CASE WHEN i % 83 = 0 THEN 'issue_refund' ELSE 'tool_' || CAST(i % 11 AS TEXT) END, \
           '{{}}', \
           CASE WHEN i % 503 = 0 THEN 'refunds' WHEN i % 503 = 1 THEN 'deploys' ELSE 'policy_' || CAST(i % 7 AS TEXT) END, \
           CASE WHEN i % 89 = 0 THEN 'billing-bot' ELSE 'agent_' || CAST(i % 13 AS TEXT) END, \
           'digest', 1, 'approve,reject', \
           CASE WHEN i % 100 = 0 THEN NULL ELSE i + 10 END, \
           i, i + 1000, 1 \
         FROM n"
    );
    let runs = format!(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {SAMPLE_RUNS}) \
         INSERT INTO runs (id, agent, status, state_sha256, state_bytes, pause_count, created_at, updated_at) \
         SELECT CAST(100000 + i AS TEXT), \
           CASE WHEN i % 89 = 0 THEN 'billing-bot' ELSE 'agent_' || CAST(i % 13 AS TEXT) END, \
           CASE WHEN i % 100 = 0 THEN 'ready' WHEN i % 100 = 1 THEN 'running' ELSE 'completed' END, \
           'sha', 1, 1, i, i \
         FROM n; \
         INSERT INTO run_approvals (run_id, approval_id, position) SELECT id, id, 0 FROM runs"
    );
    let questions = format!(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {SAMPLE_RUNS}) \
         INSERT INTO questions (id, agent, policy, text, choices, allow_free_text, digest, status, created_at, expires_at, version) \
         SELECT CAST(100000 + i AS TEXT), 'agent', \
           CASE WHEN i % 503 = 0 THEN 'refunds' WHEN i % 503 = 1 THEN 'deploys' ELSE 'policy_' || CAST(i % 7 AS TEXT) END, \
           'q', '[]', 1, 'd', \
           CASE WHEN i % 100 = 0 THEN 'pending' ELSE 'answered' END, \
           i, i + 1000, 1 \
         FROM n; \
         INSERT INTO run_questions (run_id, question_id, position) SELECT id, id, 0 FROM questions"
    );
    for sql in [sql, runs, questions] {
        sqlx::raw_sql(&sql)
            .execute(store.pool())
            .await
            .expect("sample rows");
    }
    // PostgreSQL also needs the visibility map (autovacuum's job in
    // production) before it will answer a count from an index alone.
    let analyze = match store.backend() {
        super::Backend::Sqlite => "ANALYZE",
        super::Backend::Postgres => "VACUUM ANALYZE",
    };
    sqlx::raw_sql(analyze)
        .execute(store.pool())
        .await
        .expect("analyze");
}

async fn store_on(url: &str) -> Store {
    Store::open(url)
        .await
        .unwrap_or_else(|e| panic!("open {url}: {e}"))
}

#[tokio::test]
async fn every_list_query_uses_an_index_on_sqlite() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = store_on(&format!("sqlite://{}", dir.path().join("p.db").display())).await;
    load_sample(&store).await;
    let mut failures = Vec::new();
    let checked = catalogue();
    for c in &checked {
        let explain = format!("EXPLAIN QUERY PLAN {}", c.statement.sql);
        let rows = sql::fetch_rows(store.pool(), &explain, &c.statement.args[..])
            .await
            .unwrap_or_else(|e| panic!("{}: {e}\n{}", c.name, c.statement.sql));
        let plan: Vec<String> = rows
            .iter()
            .map(|r| r.try_get::<String, _>("detail").expect("detail"))
            .collect();
        if let Some(p) = sqlite_problem(&plan, c.filtered) {
            failures.push(format!("{}: {p}\n  {}", c.name, c.statement.sql));
        }
        if c.index_only && !plan.iter().any(|l| l.contains("USING COVERING INDEX")) {
            failures.push(format!("{}: reads rows: {plan:?}", c.name));
        }
    }
    assert!(checked.len() > 200, "the catalogue lost its combinations");
    assert_eq!(checked.iter().filter(|c| c.index_only).count(), 4);
    assert!(failures.is_empty(), "full scans:\n{}", failures.join("\n"));
}

#[tokio::test]
async fn every_list_query_uses_an_index_on_postgres() {
    let url = fresh_postgres::fresh_database("pliuz_plans").await;
    load_sample(&store_on(&url).await).await;
    let mut pg = sqlx::PgConnection::connect(&url).await.expect("connect");
    // Priced out, not forbidden: a sequential scan still shows up when no
    // index can serve the query, which is what this test looks for.
    pg.execute("SET enable_seqscan = off").await.expect("set");
    let mut failures = Vec::new();
    for c in catalogue() {
        let sql = format!("EXPLAIN (FORMAT JSON) {}", c.statement.sql);
        let query = c.statement.args.iter().fold(
            sqlx::query_scalar::<_, serde_json::Value>(&sql),
            |q, a| match a {
                Arg::Text(s) => q.bind(s.as_str()),
                Arg::Int(i) => q.bind(*i),
                Arg::Blob(b) => q.bind(b.as_slice()),
                Arg::NullText => q.bind(None::<&str>),
                Arg::NullInt => q.bind(None::<i64>),
            },
        );
        let plan = query
            .fetch_one(&mut pg)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}\n{}", c.name, c.statement.sql));
        if let Some(p) = postgres_problem(&plan[0]["Plan"], c.filtered) {
            failures.push(format!("{}: {p}\n  {}", c.name, c.statement.sql));
        }
        if c.index_only && !plan.to_string().contains("\"Index Only Scan\"") {
            failures.push(format!("{}: reads rows: {plan}", c.name));
        }
    }
    drop(pg);
    fresh_postgres::drop_database(&url).await;
    assert!(failures.is_empty(), "full scans:\n{}", failures.join("\n"));
}

#[test]
fn a_full_scan_is_recognised() {
    let scan = vec!["SCAN approvals".to_owned()];
    let walk = vec!["SCAN approvals USING INDEX sqlite_autoindex_approvals_1".to_owned()];
    let seek = vec!["SEARCH approvals USING INDEX approvals_status_id (status=?)".to_owned()];
    assert!(sqlite_problem(&scan, false).is_some());
    assert!(sqlite_problem(&walk, true).is_some());
    assert!(sqlite_problem(&walk, false).is_none());
    assert!(sqlite_problem(&seek, true).is_none());
    let seq = serde_json::json!({"Node Type": "Limit", "Plans": [
        {"Node Type": "Seq Scan", "Relation Name": "approvals"}]});
    let walked = serde_json::json!({"Node Type": "Index Scan", "Relation Name": "approvals",
        "Index Name": "approvals_pkey", "Filter": "(agent = 'x')"});
    let sought = serde_json::json!({"Node Type": "Index Scan", "Relation Name": "approvals",
        "Index Name": "approvals_agent_id", "Index Cond": "(agent = 'x')"});
    assert!(postgres_problem(&seq, false).is_some());
    assert!(postgres_problem(&walked, true).is_some());
    assert!(postgres_problem(&walked, false).is_none());
    assert!(postgres_problem(&sought, true).is_none());
}

/// Placeholders are numbered as values are bound: each statement uses
/// exactly `$1..$N` for its N values (a gap or an extra would bind a value
/// to the wrong column, or leave one NULL on SQLite).
#[test]
fn every_placeholder_has_its_value() {
    for c in catalogue() {
        let sql = &c.statement.sql;
        let mut used = std::collections::BTreeSet::new();
        let mut rest = sql.as_str();
        while let Some(at) = rest.find('$') {
            rest = &rest[at + 1..];
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            if let Ok(n) = digits.parse::<usize>() {
                used.insert(n);
            }
        }
        let expected: std::collections::BTreeSet<usize> = (1..=c.statement.args.len()).collect();
        assert_eq!(used, expected, "{}: {sql}", c.name);
    }
}

/// No statement in the store is written with `?` placeholders: SQLite
/// would accept them, PostgreSQL would not.
#[test]
fn no_statement_uses_question_mark_placeholders() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/store");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).expect("src/store") {
        let path = entry.expect("entry").path();
        let source = std::fs::read_to_string(&path).expect("source");
        // String literals are the odd pieces between quotes (the store's
        // SQL holds no escaped quotes).
        for literal in source.split('"').skip(1).step_by(2) {
            let sql = ["SELECT ", "INSERT ", "UPDATE ", "DELETE "]
                .iter()
                .any(|k| literal.starts_with(k) || literal.contains(&format!(" {k}")));
            if sql {
                checked += 1;
                assert!(!literal.contains('?'), "{}: {literal}", path.display());
            }
        }
    }
    assert!(checked > 60, "only {checked} statements found");
}
