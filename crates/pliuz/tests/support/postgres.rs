//! Fresh PostgreSQL databases for tests. Shared by the integration tests
//! (`support`) and the store's own unit tests (`store::query_plans`, which
//! include this file by path), so both find the server the same way.

use sqlx::Connection;

/// The test server (`PLIUZ_TEST_POSTGRES_URL`, default the local `test`
/// database).
fn admin_url() -> String {
    std::env::var("PLIUZ_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// A new, empty database named `{prefix}_{uuid}` on the test server;
/// returns its URL. Panics when PostgreSQL is not reachable: the test
/// needs it.
pub async fn fresh_database(prefix: &str) -> String {
    let admin = admin_url();
    let mut conn = sqlx::PgConnection::connect(&admin)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL is required for this test ({admin}): {e}"));
    let name = format!("{prefix}_{}", uuid::Uuid::now_v7().simple());
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .expect("create database");
    let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
    format!("{base}/{name}")
}

/// Drops a database [`fresh_database`] made, closing its connections;
/// best effort (a leftover database fails no test).
pub async fn drop_database(url: &str) {
    let Some((_, name)) = url.rsplit_once('/') else {
        return;
    };
    if let Ok(mut conn) = sqlx::PgConnection::connect(&admin_url()).await {
        let _ = sqlx::query(&format!("DROP DATABASE {name} WITH (FORCE)"))
            .execute(&mut conn)
            .await;
    }
}
