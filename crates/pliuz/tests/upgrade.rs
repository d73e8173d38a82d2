//! A database made by an earlier release opens with this one: the
//! migrations it already has are not run again (their bookkeeping rows stay
//! as they were), the new ones are applied once, and its rows are served.
//!
//! The earlier release (main at 823edd9, before the `.sql` migration files)
//! is rebuilt as it left a database: its schema by the released migrations
//! it had, 1 to 71 (their bytes are pinned by `migrations/released.sha256`,
//! and they were checked against dumps of that release's SQLite and
//! PostgreSQL databases when those dumps were retired), then the rows it
//! wrote (`fixtures/release_0071_data.sql`).

mod support;

use pliuz::store::schema::MIGRATIONS;
use pliuz::store::Backend;
use reqwest::Client;
use serde_json::Value;
use sqlx::{Connection, Executor, Row};
use support::Server;

fn refunds_policy() -> String {
    support::finance_policy("refunds", "issue_refund", "")
}

/// The last migration the earlier release had.
const EARLIER_RELEASE_LAST_MIGRATION: i64 = 71;

/// Its migration bookkeeping and one approval it stored (its columns only).
const EARLIER_RELEASE_ROWS: &str = include_str!("fixtures/release_0071_data.sql");

type Bookkeeping = Vec<(i64, String, i64)>;

async fn bookkeeping<'c, E>(conn: E) -> Bookkeeping
where
    E: Executor<'c, Database = sqlx::Any>,
{
    sqlx::query("SELECT version, name, applied_at FROM schema_migrations ORDER BY version")
        .fetch_all(conn)
        .await
        .expect("schema_migrations")
        .iter()
        .map(|r| {
            (
                r.try_get("version").expect("version"),
                r.try_get("name").expect("name"),
                r.try_get("applied_at").expect("applied_at"),
            )
        })
        .collect()
}

/// Starts this release on the old database (twice, the second start
/// finding nothing to do) and checks what it did.
async fn upgrades(database_url: String, before: Bookkeeping) {
    assert_eq!(
        before.iter().map(|(v, _, _)| *v).collect::<Vec<_>>(),
        [1, 2, 3, 20, 60, 70, 71],
        "the fixture is a database of the earlier release"
    );
    let mut server =
        Server::start_with(&refunds_policy(), Some(database_url.clone()), vec![]).await;
    let finance = server.user_token("fin@example.com", "approver", &["finance"]);
    let http = Client::new();
    for query in [
        "",
        "?status=approved",
        "?tool=issue_refund",
        "?policy=refunds&status=approved",
    ] {
        let page: Value = http
            .get(server.url(&format!("/api/v1/approvals{query}")))
            .bearer_auth(&finance)
            .send()
            .await
            .expect("list")
            .json()
            .await
            .expect("json");
        let ids: Vec<&str> = page["items"]
            .as_array()
            .expect("items")
            .iter()
            .filter_map(|a| a["id"].as_str())
            .collect();
        assert_eq!(ids, ["0190aaaa-0000-7000-8000-000000000001"], "{query}");
    }
    server.restart().await;
    let mut conn = sqlx::AnyConnection::connect(&database_url)
        .await
        .expect("connect");
    let after = bookkeeping(&mut conn).await;
    assert_eq!(after[..before.len()], before[..], "old migrations re-ran");
    let added: Vec<(i64, &str)> = after[before.len()..]
        .iter()
        .map(|(v, n, _)| (*v, n.as_str()))
        .collect();
    assert_eq!(
        added,
        [
            (72, "list_indexes"),
            (90, "email_reminders"),
            (91, "email_question_links"),
            (100, "questions"),
            (101, "run_questions"),
            (110, "admin_api")
        ]
    );
    // The new index exists and the old row still reads through it.
    let n: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM approvals WHERE status = 'approved' AND policy = 'refunds'",
    )
    .fetch_one(&mut conn)
    .await
    .expect("count");
    assert_eq!(n, 1);
}

/// Builds the earlier release's database at `url`: its migrations, then
/// its rows; returns that release's migration bookkeeping.
async fn load_earlier_release(url: &str, backend: Backend) -> Bookkeeping {
    let mut conn = sqlx::AnyConnection::connect(url).await.expect("connect");
    for m in MIGRATIONS
        .iter()
        .filter(|m| m.version <= EARLIER_RELEASE_LAST_MIGRATION)
    {
        sqlx::raw_sql(&m.sql(backend))
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("migration {}: {e}", m.version));
    }
    sqlx::raw_sql(EARLIER_RELEASE_ROWS)
        .execute(&mut conn)
        .await
        .expect("the earlier release's rows");
    let before = bookkeeping(&mut conn).await;
    conn.close().await.expect("close");
    before
}

#[tokio::test]
async fn a_sqlite_database_of_the_earlier_release_upgrades_in_place() {
    sqlx::any::install_default_drivers();
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("old.db").display());
    let before = load_earlier_release(&format!("{url}?mode=rwc"), Backend::Sqlite).await;
    upgrades(url.clone(), before).await;
    // The upgraded database has exactly the schema a new one gets.
    let fresh = format!("sqlite://{}", dir.path().join("new.db").display());
    drop(Server::start_with(&refunds_policy(), Some(fresh.clone()), vec![]).await);
    assert_eq!(sqlite_schema(&url).await, sqlite_schema(&fresh).await);
}

/// Every table, index and trigger with its SQL (planner statistics aside).
async fn sqlite_schema(url: &str) -> Vec<(String, String, Option<String>)> {
    let mut conn = sqlx::AnyConnection::connect(url).await.expect("connect");
    let rows = sqlx::query(
        "SELECT type, name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_stat%' ORDER BY type, name",
    )
    .fetch_all(&mut conn)
    .await
    .expect("schema");
    let schema: Vec<_> = rows
        .iter()
        .map(|r| {
            (
                r.try_get("type").expect("type"),
                r.try_get("name").expect("name"),
                r.try_get("sql").expect("sql"),
            )
        })
        .collect();
    assert!(schema.len() > 40, "{schema:?}");
    schema
}

#[tokio::test]
async fn a_postgres_database_of_the_earlier_release_upgrades_in_place() {
    sqlx::any::install_default_drivers();
    let url = support::fresh_postgres_database().await;
    let before = load_earlier_release(&url, Backend::Postgres).await;
    upgrades(url.clone(), before).await;
    let fresh = support::fresh_postgres_database().await;
    drop(Server::start_with(&refunds_policy(), Some(fresh.clone()), vec![]).await);
    assert_eq!(postgres_schema(&url).await, postgres_schema(&fresh).await);
}

/// Every column (with its type, default and nullability), index and
/// trigger of the public schema.
async fn postgres_schema(url: &str) -> Vec<String> {
    let mut conn = sqlx::AnyConnection::connect(url).await.expect("connect");
    let mut schema = Vec::new();
    for sql in [
        "SELECT table_name || '.' || column_name || ' ' || data_type || ' ' || is_nullable || ' ' || COALESCE(column_default, '') FROM information_schema.columns WHERE table_schema = 'public' ORDER BY 1",
        "SELECT indexdef FROM pg_indexes WHERE schemaname = 'public' ORDER BY 1",
        "SELECT event_object_table || ' ' || trigger_name || ' ' || event_manipulation || ' ' || action_statement FROM information_schema.triggers WHERE trigger_schema = 'public' ORDER BY 1",
    ] {
        let rows: Vec<String> = sqlx::query_scalar(sql)
            .fetch_all(&mut conn)
            .await
            .expect("schema");
        schema.extend(rows);
    }
    assert!(schema.len() > 100, "{schema:?}");
    schema
}
