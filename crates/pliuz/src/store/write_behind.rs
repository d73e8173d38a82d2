//! Writes a change makes but never reads back in its transaction (outbox
//! rows, webhook events, votes, PostgreSQL notifications): held until
//! commit and sent with the audit rows, in one round trip on SQLite, where
//! every statement is a hand-off to sqlx's worker thread, and on
//! PostgreSQL, where every statement is a network round trip (issue #13).
//! A held write that fails fails its change at commit, like any other
//! statement of the change.

use super::sql::Statement;
use std::collections::HashSet;

/// The held statements of one change, each numbered from `$1`.
#[derive(Default)]
pub(super) struct Held {
    statements: Vec<Statement>,
    /// `(position, key)` of each statement that inserts its row only if no
    /// row with that key exists yet (an outbox row and its `dedupe_key`).
    keyed: Vec<(usize, String)>,
    /// PostgreSQL: the `(channel, payload)` of each notification, sent
    /// last (delivered when the transaction commits).
    notices: Vec<(String, String)>,
}

impl Held {
    pub fn push(&mut self, statement: Statement) {
        self.statements.push(statement);
    }

    /// A statement that inserts its row only if none with `key` exists: it
    /// must see the rows of this `key` held before it.
    pub fn push_unless_exists(&mut self, statement: Statement, key: &str) {
        self.keyed.push((self.statements.len(), key.to_owned()));
        self.statements.push(statement);
    }

    /// PostgreSQL: `pg_notify(channel, payload)` when the change commits.
    pub fn notify(&mut self, channel: &str, payload: String) {
        self.notices.push((channel.to_owned(), payload));
    }

    pub fn len(&self) -> usize {
        self.statements.len() + self.notices.len()
    }

    /// How many values the statements bind in all.
    pub fn values(&self) -> usize {
        let rows: usize = self.statements.iter().map(|st| st.args.len()).sum();
        rows + 2 * self.notices.len()
    }

    /// Each statement on its own, notifications last.
    pub fn into_statements(self) -> Vec<Statement> {
        let mut all = self.statements;
        all.extend(self.notices.into_iter().map(|(channel, payload)| {
            let mut st = Statement::new("");
            st.sql = format!("SELECT pg_notify({}, {})", st.arg(channel), st.arg(payload));
            st
        }));
        all
    }

    /// All of them as one multi-statement query (SQLite), in order, their
    /// placeholders renumbered to follow each other; empty when none.
    pub fn joined(self) -> Statement {
        let mut all = Statement::default();
        for st in self.into_statements() {
            if !all.sql.is_empty() {
                all.sql.push_str("; ");
            }
            all.sql.push_str(&renumber(&st.sql, all.args.len()));
            all.args.extend(st.args);
        }
        all
    }

    /// PostgreSQL: the held statements, then `tail` (each one `INSERT`,
    /// `UPDATE` or `DELETE` too), as few statements as may be, each a chain
    /// of data-modifying CTEs (`WITH w1 AS (INSERT ...), w2 AS (...) SELECT
    /// ...`), the last one also sending the notifications. Every part of
    /// one statement sees the database as it was before the statement, in
    /// no set order, so a row inserted only if its key is absent starts the
    /// next statement when an earlier row of this one has that key: it sees
    /// that row, as when each was sent alone. Foreign keys are checked at
    /// the end of the statement, so a vote may share one with its request.
    pub fn into_postgres(self, tail: Vec<Statement>) -> Vec<Statement> {
        let mut full = Vec::new();
        let mut current = Vec::new();
        let mut keys_in_current = HashSet::new();
        let mut keyed = self.keyed.into_iter().peekable();
        for (at, st) in self.statements.into_iter().enumerate() {
            if let Some((_, key)) = keyed.next_if(|(k, _)| *k == at) {
                if keys_in_current.contains(&key) {
                    full.push(std::mem::take(&mut current));
                    keys_in_current.clear();
                }
                keys_in_current.insert(key);
            }
            current.push(st);
        }
        current.extend(tail);
        let mut out: Vec<Statement> = full
            .into_iter()
            .map(|parts| with_ctes(parts, Vec::new()))
            .collect();
        if !current.is_empty() || !self.notices.is_empty() {
            out.push(with_ctes(current, self.notices));
        }
        out
    }
}

/// `WITH w1 AS (part 1), ... SELECT pg_notify(...), ...` (`SELECT 1` with
/// no notification): every part runs, read or not.
fn with_ctes(parts: Vec<Statement>, notices: Vec<(String, String)>) -> Statement {
    let mut all = Statement::default();
    for (i, st) in parts.into_iter().enumerate() {
        all.sql.push_str(if i == 0 { "WITH " } else { ", " });
        all.sql.push_str(&format!(
            "w{} AS ({})",
            i + 1,
            renumber(&st.sql, all.args.len())
        ));
        all.args.extend(st.args);
    }
    let selected = notices
        .into_iter()
        .map(|(channel, payload)| format!("pg_notify({}, {})", all.arg(channel), all.arg(payload)))
        .collect::<Vec<_>>();
    if !all.sql.is_empty() {
        all.sql.push(' ');
    }
    all.sql.push_str("SELECT ");
    all.sql.push_str(&if selected.is_empty() {
        "1".to_owned()
    } else {
        selected.join(", ")
    });
    all
}

/// `sql` with every placeholder `$N` turned into `$(N + offset)`. The
/// store's SQL has no `$` but in placeholders.
fn renumber(sql: &str, offset: usize) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut rest = sql;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..=at]);
        rest = &rest[at + 1..];
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        match rest[..digits].parse::<usize>() {
            Ok(n) => out.push_str(&(n + offset).to_string()),
            Err(_) => out.push_str(&rest[..digits]),
        }
        rest = &rest[digits..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joined_statements_number_their_values_in_order() {
        let mut held = Held::default();
        let mut a = Statement::new("");
        a.sql = format!(
            "INSERT INTO t (x, y) VALUES ({}, {})",
            a.arg(1i64),
            a.arg("b")
        );
        let mut b = Statement::new("");
        let v = b.arg(7i64);
        b.sql = format!(
            "UPDATE u SET z = {v} WHERE w = {v} AND q = {}",
            b.arg(12i64)
        );
        held.push(a);
        held.push(b);
        let all = held.joined();
        assert_eq!(
            all.sql,
            "INSERT INTO t (x, y) VALUES ($1, $2); UPDATE u SET z = $3 WHERE w = $3 AND q = $4"
        );
        assert_eq!(all.args.len(), 4);
        assert_eq!(all.args[2], super::super::sql::Arg::Int(7));
        assert!(Held::default().joined().sql.is_empty());
    }

    fn insert(table: &str, value: &str) -> Statement {
        let mut st = Statement::new("");
        st.sql = format!("INSERT INTO {table} (x) VALUES ({})", st.arg(value));
        st
    }

    #[test]
    fn postgres_gets_one_statement_of_ctes_with_the_notifications_last() {
        let mut held = Held::default();
        held.push(insert("a", "1"));
        held.push_unless_exists(insert("o", "2"), "k1");
        held.push_unless_exists(insert("o", "3"), "k2");
        held.notify("changes", "{}".to_owned());
        let all = held.into_postgres(vec![insert("t", "4")]);
        assert_eq!(all.len(), 1);
        assert_eq!(
            all[0].sql,
            "WITH w1 AS (INSERT INTO a (x) VALUES ($1)), w2 AS (INSERT INTO o (x) VALUES ($2)), \
             w3 AS (INSERT INTO o (x) VALUES ($3)), w4 AS (INSERT INTO t (x) VALUES ($4)) \
             SELECT pg_notify($5, $6)"
        );
        assert_eq!(all[0].args.len(), 6);
        assert_eq!(
            all[0].args[4],
            super::super::sql::Arg::Text("changes".into())
        );
    }

    // Parts of one statement do not see each other's rows: a row inserted
    // only if its key is absent must see an earlier one of the same key.
    #[test]
    fn a_repeated_key_starts_the_next_postgres_statement() {
        let mut held = Held::default();
        held.push_unless_exists(insert("o", "1"), "k");
        held.push(insert("v", "2"));
        held.push_unless_exists(insert("o", "3"), "k");
        let all = held.into_postgres(vec![insert("t", "4")]);
        let sql: Vec<&str> = all.iter().map(|st| st.sql.as_str()).collect();
        assert_eq!(
            sql,
            [
                "WITH w1 AS (INSERT INTO o (x) VALUES ($1)), w2 AS (INSERT INTO v (x) VALUES ($2)) SELECT 1",
                "WITH w1 AS (INSERT INTO o (x) VALUES ($1)), w2 AS (INSERT INTO t (x) VALUES ($2)) SELECT 1",
            ]
        );
        assert!(Held::default().into_postgres(Vec::new()).is_empty());
    }

    #[test]
    fn renumbering_shifts_every_placeholder_only() {
        assert_eq!(
            renumber("a = $1 AND b = $10, $2", 5),
            "a = $6 AND b = $15, $7"
        );
        assert_eq!(renumber("no values", 3), "no values");
        assert_eq!(renumber("$1", 0), "$1");
    }
}
