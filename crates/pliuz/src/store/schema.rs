//! Schema migrations, one list for both databases. Each is a numbered
//! `.sql` file under `crates/pliuz/migrations/`: `common/` for what both
//! databases run, `sqlite/` and `postgres/` for each one's own part (run
//! after the common part). Types are kept to the portable subset (TEXT,
//! BIGINT, blobs) and times are integer milliseconds, so the same queries
//! run on SQLite and PostgreSQL.
//!
//! A migration runs once: `schema_migrations` records its version, and a
//! database made by an earlier release skips every version it already has.
//! Never edit or renumber a released migration; add the next one
//! (`migrations/released.sha256` pins their bytes, checked by
//! `tests/released_migrations.rs`).

use super::Backend;

/// One file of a migration: its path under `migrations/` and its SQL.
#[derive(Debug, Clone, Copy)]
pub struct Part {
    pub path: &'static str,
    pub sql: &'static str,
}

#[derive(Debug, Clone, Copy)]
pub struct Migration {
    pub version: i64,
    pub name: &'static str,
    pub common: Option<Part>,
    pub sqlite: Option<Part>,
    pub postgres: Option<Part>,
}

impl Migration {
    /// A migration both databases run alike: one file under `common/`.
    pub const fn common(version: i64, name: &'static str, common: Option<Part>) -> Migration {
        Migration {
            version,
            name,
            common,
            sqlite: None,
            postgres: None,
        }
    }

    /// The statements `backend` runs: the common part, then its own.
    pub fn sql(&self, backend: Backend) -> String {
        let own = match backend {
            Backend::Sqlite => self.sqlite,
            Backend::Postgres => self.postgres,
        };
        [self.common, own]
            .iter()
            .flatten()
            .map(|p| p.sql)
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Every file of this migration.
    pub fn parts(&self) -> impl Iterator<Item = Part> {
        [self.common, self.sqlite, self.postgres]
            .into_iter()
            .flatten()
    }
}

/// `part!("common", "0001_core")`: that file, embedded at compile time.
macro_rules! part {
    ($dir:literal, $stem:literal) => {
        Some(Part {
            path: concat!($dir, "/", $stem, ".sql"),
            sql: include_str!(concat!("../../migrations/", $dir, "/", $stem, ".sql")),
        })
    };
}

/// `all_parts!(1, "core", "0001_core")`: a migration with a common part
/// and each database's own, the three files named alike.
macro_rules! all_parts {
    ($version:literal, $name:literal, $stem:literal) => {
        Migration {
            version: $version,
            name: $name,
            common: part!("common", $stem),
            sqlite: part!("sqlite", $stem),
            postgres: part!("postgres", $stem),
        }
    };
}

/// In order. The numbers and names are those already recorded in existing
/// databases' `schema_migrations`; a test checks them against the files.
pub const MIGRATIONS: &[Migration] = &[
    all_parts!(1, "core", "0001_core"),
    // Web inbox: log-in sessions (crate::store::sessions, crate::inbox).
    Migration::common(2, "inbox", part!("common", "0002_inbox")),
    // Slack: where each request's messages were posted (crate::store::slack).
    Migration::common(3, "slack", part!("common", "0003_slack")),
    // Exactly-once execution: the execution claim and its deadline.
    Migration::common(
        20,
        "execution_claim",
        part!("common", "0020_execution_claim"),
    ),
    // Durable runs and agent webhooks (crate::store::runs).
    all_parts!(60, "runs", "0060_runs"),
    // Single sign-on: pending log-ins and linked identities (crate::store::oidc).
    Migration::common(70, "oidc", part!("common", "0070_oidc")),
    // Inbox overview: settled-at and pending-by-age indexes.
    Migration::common(
        71,
        "overview_indexes",
        part!("common", "0071_overview_indexes"),
    ),
    // Every list query's index (issue #13; checked by `store::query_plans`).
    Migration::common(72, "list_indexes", part!("common", "0072_list_indexes")),
    // E-mail links and messages, reminder and escalation timers
    // (crate::store::email, crate::store::timers).
    Migration::common(
        90,
        "email_reminders",
        part!("common", "0090_email_reminders"),
    ),
    // E-mail links that open a question (crate::store::email).
    Migration::common(
        91,
        "email_question_links",
        part!("common", "0091_email_question_links"),
    ),
    // Questions from agents and their answers (crate::store::questions).
    Migration::common(100, "questions", part!("common", "0100_questions")),
    // Durable runs paused on questions (crate::store::runs).
    Migration::common(101, "run_questions", part!("common", "0101_run_questions")),
    // The management API: one user's tokens listed; policies kept in the
    // database (`policy_source = "database"`, crate::store::policies).
    Migration::common(110, "admin_api", part!("common", "0110_admin_api")),
];

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    /// Every file under `migrations/` is listed, under the version and
    /// name its file name carries, and the versions only go up.
    #[test]
    fn migration_files_and_the_list_agree() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
        let mut on_disk = BTreeSet::new();
        for dir in ["common", "sqlite", "postgres"] {
            for entry in std::fs::read_dir(root.join(dir)).expect("migrations directory") {
                let name = entry.expect("directory entry").file_name();
                on_disk.insert(format!("{dir}/{}", name.to_string_lossy()));
            }
        }
        let mut listed = BTreeSet::new();
        let mut last = 0;
        for m in MIGRATIONS {
            assert!(m.version > last, "migration {} is out of order", m.version);
            last = m.version;
            assert!(
                m.common.is_some() || (m.sqlite.is_some() && m.postgres.is_some()),
                "migration {} has no SQL for one of the databases",
                m.version
            );
            for p in m.parts() {
                let stem = format!("{:04}_{}.sql", m.version, m.name);
                assert!(
                    p.path.ends_with(&format!("/{stem}")),
                    "{} does not match version {} and name {}",
                    p.path,
                    m.version,
                    m.name
                );
                listed.insert(p.path.to_owned());
            }
        }
        assert_eq!(on_disk, listed);
    }
}
