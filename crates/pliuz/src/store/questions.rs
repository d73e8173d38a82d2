//! Question rows: loading and saving whole questions (the rules are in
//! `crate::question`).

use super::sql::{self, col, with_columns, Record, Statement};
use super::{Result, Store, StoreError, WriteTx};
use crate::question::{Answer, Asked, Choice, Question, QuestionStatus};
use sqlx::any::AnyRow;

const COLUMNS: &str = "id, agent, policy, text, choices, allow_free_text, originator, idempotency_key, digest, status, answer_choice, answer_text, answered_by, answered_at, created_at, expires_at, version";

/// Pending questions whose deadline has passed.
pub(crate) const DUE_QUESTIONS_SQL: &str = "SELECT id FROM questions WHERE status = 'pending' AND expires_at <= $1 ORDER BY expires_at LIMIT $2";
/// The next deadline among pending questions.
pub(crate) const NEXT_QUESTION_EXPIRY_SQL: &str =
    "SELECT MIN(expires_at) FROM questions WHERE status = 'pending'";

impl Record for Question {
    fn from_row(row: &AnyRow) -> Result<Question> {
        let status_s: String = col(row, "status")?;
        let status = QuestionStatus::parse(&status_s)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown question status {status_s}")))?;
        let choices_s: String = col(row, "choices")?;
        let choices: Vec<Choice> = serde_json::from_str(&choices_s)
            .map_err(|e| StoreError::Corrupt(format!("column choices: {e}")))?;
        let answer = match col::<Option<String>>(row, "answered_by")? {
            None => None,
            Some(answered_by) => Some(Answer {
                choice: col(row, "answer_choice")?,
                text: col(row, "answer_text")?,
                answered_by,
                answered_at: col::<Option<i64>>(row, "answered_at")?.unwrap_or_default(),
            }),
        };
        let asked = with_columns!(row => Asked {
            text, originator, idempotency_key;
            choices,
            allow_free_text: col::<i64>(row, "allow_free_text")? != 0,
        });
        Ok(with_columns!(row => Question {
            id, agent, policy, digest, created_at, expires_at, version;
            asked,
            status,
            answer,
        }))
    }
}

fn by_id_sql() -> String {
    format!("SELECT {COLUMNS} FROM questions WHERE id = $1")
}

/// The pending questions of these policies, oldest first (the inbox queue).
pub(crate) fn pending_statement(policies: Option<&[String]>, limit: i64) -> Option<Statement> {
    let mut st = Statement::new(format!(
        "SELECT {COLUMNS} FROM questions WHERE status = 'pending'"
    ));
    if let Some(ps) = policies {
        if ps.is_empty() {
            return None;
        }
        let list = st.args_list(ps);
        st.push(&format!(" AND policy IN ({list})"));
    }
    let l = st.arg(limit);
    st.push(&format!(" ORDER BY id LIMIT {l}"));
    Some(st)
}

impl Store {
    pub async fn get_question(&self, id: &str) -> Result<Option<Question>> {
        sql::fetch_optional(&self.pool, &by_id_sql(), (id,)).await
    }

    pub async fn find_question_by_idempotency(
        &self,
        agent: &str,
        key: &str,
    ) -> Result<Option<Question>> {
        let q =
            format!("SELECT {COLUMNS} FROM questions WHERE agent = $1 AND idempotency_key = $2");
        sql::fetch_optional(&self.pool, &q, (agent, key)).await
    }

    /// Pending questions of these policies (`None`: all), oldest first.
    pub async fn pending_questions(
        &self,
        policies: Option<&[String]>,
        limit: i64,
    ) -> Result<Vec<Question>> {
        let Some(st) = pending_statement(policies, limit) else {
            return Ok(vec![]);
        };
        sql::fetch_all(&self.pool, &st.sql, &st.args[..]).await
    }

    pub async fn due_questions(&self, now: i64, limit: i64) -> Result<Vec<String>> {
        sql::fetch_scalars(&self.pool, DUE_QUESTIONS_SQL, (now, limit)).await
    }

    pub async fn next_question_expiry(&self) -> Result<Option<i64>> {
        sql::fetch_scalar(&self.pool, NEXT_QUESTION_EXPIRY_SQL, ()).await
    }
}

impl WriteTx {
    pub async fn get_question(&mut self, id: &str) -> Result<Option<Question>> {
        sql::fetch_optional(&mut *self.tx, &by_id_sql(), (id,)).await
    }

    pub async fn insert_question(&mut self, q: &Question) -> Result<()> {
        let placeholders = (1..=COLUMNS.split(',').count())
            .map(|n| format!("${n}"))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!("INSERT INTO questions ({COLUMNS}) VALUES ({placeholders})");
        let choices = serde_json::to_string(&q.asked.choices)
            .map_err(|e| StoreError::Corrupt(format!("choices: {e}")))?;
        let a = q.answer.as_ref();
        sqlx::query(&sql)
            .bind(&q.id)
            .bind(&q.agent)
            .bind(&q.policy)
            .bind(&q.asked.text)
            .bind(choices)
            .bind(i64::from(q.asked.allow_free_text))
            .bind(q.asked.originator.clone())
            .bind(q.asked.idempotency_key.clone())
            .bind(&q.digest)
            .bind(q.status.as_str())
            .bind(a.and_then(|a| a.choice.clone()))
            .bind(a.and_then(|a| a.text.clone()))
            .bind(a.map(|a| a.answered_by.clone()))
            .bind(a.map(|a| a.answered_at))
            .bind(q.created_at)
            .bind(q.expires_at)
            .bind(q.version)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    /// Saves an answered or expired question if nobody changed it since it
    /// was read; otherwise `StoreError::Conflict`. Bumps `q.version`.
    pub async fn update_question(&mut self, q: &mut Question) -> Result<()> {
        let expected = q.version;
        q.version += 1;
        let a = q.answer.as_ref();
        let sql = "UPDATE questions SET status = $1, answer_choice = $2, answer_text = $3, answered_by = $4, answered_at = $5, version = $6 WHERE id = $7 AND version = $8";
        let values = (
            q.status.as_str(),
            a.and_then(|a| a.choice.clone()),
            a.and_then(|a| a.text.clone()),
            a.map(|a| a.answered_by.clone()),
            a.map(|a| a.answered_at),
            q.version,
            &q.id,
            expected,
        );
        if sql::execute(&mut *self.tx, sql, values).await? != 1 {
            q.version = expected;
            return Err(StoreError::Conflict);
        }
        Ok(())
    }
}
