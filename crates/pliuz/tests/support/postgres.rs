//! A fresh PostgreSQL database per test. The server's own store tests
//! (`src/store/query_plans.rs`) include this file too, so both find the
//! server the same way.

/// A fresh, empty PostgreSQL database for one test, when PostgreSQL is
/// reachable (`PLIUZ_TEST_POSTGRES_URL`, default the local `test` database).
pub async fn fresh_postgres_database() -> String {
    let (admin, mut conn) = admin_connection().await;
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

/// Drops a database `fresh_postgres_database` made, for a test that
/// fills one with much data; a failure only leaves it behind.
pub async fn drop_postgres_database(url: &str) {
    let name = url.rsplit_once('/').map_or(url, |(_, name)| name);
    let (_, mut conn) = admin_connection().await;
    let _ = sqlx::query(&format!("DROP DATABASE {name} WITH (FORCE)"))
        .execute(&mut conn)
        .await;
}

/// The URL of the database tests start from and a connection to it.
async fn admin_connection() -> (String, sqlx::PgConnection) {
    use sqlx::Connection;
    let admin = std::env::var("PLIUZ_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let conn = sqlx::PgConnection::connect(&admin)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL is required for this test ({admin}): {e}"));
    (admin, conn)
}
