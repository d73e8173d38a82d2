//! Writes a change makes but never reads back in its transaction (outbox
//! rows, webhook events, votes): held until commit and sent with the audit
//! rows, in one round trip on SQLite, where every statement is a hand-off
//! to sqlx's worker thread (issue #13), and one statement each, in order,
//! on PostgreSQL. A held write that fails fails its change at commit, like
//! any other statement of the change.

use super::sql::Statement;

/// The held statements of one change, each numbered from `$1`.
#[derive(Default)]
pub(super) struct Held {
    statements: Vec<Statement>,
}

impl Held {
    pub fn push(&mut self, statement: Statement) {
        self.statements.push(statement);
    }

    pub fn len(&self) -> usize {
        self.statements.len()
    }

    /// Each statement on its own (PostgreSQL runs one per round trip).
    pub fn into_statements(self) -> Vec<Statement> {
        self.statements
    }

    /// All of them as one multi-statement query (SQLite), in order, their
    /// placeholders renumbered to follow each other; empty when none.
    pub fn joined(self) -> Statement {
        let mut all = Statement::default();
        for st in self.statements {
            if !all.sql.is_empty() {
                all.sql.push_str("; ");
            }
            all.sql.push_str(&renumber(&st.sql, all.args.len()));
            all.args.extend(st.args);
        }
        all
    }
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
