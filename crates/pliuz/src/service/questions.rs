//! Questions from agents ("human as a tool"): asked, answered, expired, each
//! with its audit entry and its notifications in one transaction.

use super::{check_id, enqueue_once, unstorable, ControlPlane, FieldError, Result, ServiceError};
use crate::approval::Actor;
use crate::audit_event::AuditEvent;
use crate::auth::Principal;
use crate::question::{AnswerRefusal, Asked, Choice, Question, QuestionStatus};
use crate::store::{StoreError, WriteTx};
use serde_json::json;
use sha2::{Digest, Sha256};
use std::time::Duration;

/// What an agent sends to ask (checked by [`ControlPlane::ask`]).
#[derive(Debug, Clone, Default)]
pub struct NewQuestion {
    pub asked: Asked,
    /// Whose approvers answer; by default `default_policy`.
    pub policy: Option<String>,
    /// Shorter than the policy's `expires_in` if given.
    pub expires_in: Option<Duration>,
}

/// The longest a question may wait, whatever the policy says.
pub const MAX_QUESTION_EXPIRY: Duration = Duration::from_secs(30 * 24 * 3600);

impl From<AnswerRefusal> for ServiceError {
    fn from(r: AnswerRefusal) -> ServiceError {
        match r {
            AnswerRefusal::NotAPerson
            | AnswerRefusal::NotApprover { .. }
            | AnswerRefusal::Originator { .. } => ServiceError::Forbidden(r.to_string()),
            AnswerRefusal::NotPending { .. } => ServiceError::Conflict(r.to_string()),
            AnswerRefusal::Invalid { field, message } => ServiceError::invalid(field, message),
        }
    }
}

/// SHA-256 over the canonical JSON of what is asked: idempotent replays
/// must ask the same question.
fn question_digest(policy: &str, text: &str, choices: &[Choice], allow_free_text: bool) -> String {
    let v = json!({"policy": policy, "text": text, "choices": choices, "allow_free_text": allow_free_text});
    hex::encode(Sha256::digest(pliuz_audit::canonical_json(&v)))
}

impl ControlPlane {
    /// An agent asks. Returns the question and whether it is new (a repeated
    /// idempotency key returns the first one).
    pub async fn ask(&self, principal: &Principal, req: NewQuestion) -> Result<(Question, bool)> {
        let agent =
            match principal {
                Principal::Agent { name } => name.clone(),
                Principal::User(_) => return Err(ServiceError::Forbidden(
                    "questions are asked by agents: use an agent key (`pliuz agents create NAME`)"
                        .into(),
                )),
            };
        let mut asked = req.asked;
        let mut errors: Vec<FieldError> =
            crate::question::check_new(&asked.text, &asked.choices, asked.allow_free_text)
                .into_iter()
                .map(|(f, m)| FieldError::new(f, m))
                .collect();
        errors.extend(unstorable("text", &asked.text));
        for (i, c) in asked.choices.iter().enumerate() {
            errors.extend(unstorable(&format!("choices[{i}].value"), &c.value));
            errors.extend(unstorable(&format!("choices[{i}].label"), &c.label));
        }
        if !errors.is_empty() {
            return Err(ServiceError::Validation(errors));
        }
        asked.originator = match asked.originator.as_deref() {
            Some(raw) => crate::originator::normalise(raw)
                .map_err(|m| ServiceError::invalid("originator", m))?,
            None => None,
        };
        let policy_name = req
            .policy
            .clone()
            .or_else(|| self.policies().default_policy().map(str::to_owned));
        let Some(policy_name) = policy_name else {
            return Err(ServiceError::invalid(
                "policy",
                "is required: name the policy whose approvers should answer (no default_policy is configured)",
            ));
        };
        let policy = self
            .policies()
            .resolve(Some(&policy_name), "")
            .map_err(ServiceError::NoPolicy)?;
        let digest = question_digest(
            &policy.name,
            &asked.text,
            &asked.choices,
            asked.allow_free_text,
        );
        if let Some(key) = &asked.idempotency_key {
            if let Some(existing) = self.store.find_question_by_idempotency(&agent, key).await? {
                return if existing.digest == digest {
                    Ok((existing, false))
                } else {
                    Err(ServiceError::IdempotencyConflict(key.clone()))
                };
            }
        }
        let expires_in = req
            .expires_in
            .map_or(policy.expires_in, |d| d.min(policy.expires_in))
            .min(MAX_QUESTION_EXPIRY);
        let now = crate::store::now_millis();
        let q = Question {
            id: uuid::Uuid::now_v7().to_string(),
            agent: agent.clone(),
            policy: policy.name.clone(),
            asked,
            digest,
            status: QuestionStatus::Pending,
            answer: None,
            created_at: now,
            expires_at: now.saturating_add(i64::try_from(expires_in.as_millis()).unwrap_or(0)),
            version: 0,
        };
        let mut tx = self.store.begin_write().await?;
        if let Err(e) = tx.insert_question(&q).await {
            tx.rollback().await;
            if e.is_unique_violation() {
                return Err(ServiceError::ConcurrentCreate);
            }
            return Err(e.into());
        }
        let event = AuditEvent::QuestionAsked {
            question_id: q.id.clone(),
            text: q.asked.text.clone(),
            choices: q.asked.choices.clone(),
            allow_free_text: q.asked.allow_free_text,
            policy: q.policy.clone(),
            agent: agent.clone(),
            originator: q.asked.originator.clone(),
            idempotency_key: q.asked.idempotency_key.clone(),
            expires_at: crate::store::format_time(q.expires_at),
        };
        tx.audit(Actor::Agent(agent), None, event).await?;
        self.queue_question_notifications(&mut tx, &q, true).await?;
        tx.commit().await?;
        self.notifier.expiry.notify_one();
        self.notifier.queued();
        Ok((q, true))
    }

    /// Whether `principal` may see question `q`: the asking agent, the
    /// policy's approvers, admins and auditors.
    pub fn can_see_question(&self, principal: &Principal, q: &Question) -> bool {
        match principal {
            Principal::Agent { name } => *name == q.agent,
            Principal::User(_) => {
                principal.sees_everything() || self.may_decide(principal, &q.policy)
            }
        }
    }

    /// One question, if `principal` may see it (otherwise "not found").
    pub async fn question_for(&self, principal: &Principal, id: &str) -> Result<Question> {
        check_id(id)?;
        let found = self.store.get_question(id).await?;
        found
            .filter(|q| self.can_see_question(principal, q))
            .ok_or_else(|| ServiceError::QuestionNotFound(id.to_owned()))
    }

    /// Pending questions `principal` may answer, oldest first (the inbox).
    pub async fn pending_questions_for(
        &self,
        principal: &Principal,
        limit: i64,
    ) -> Result<Vec<Question>> {
        if principal.sees_everything() {
            return Ok(self.store.pending_questions(None, limit).await?);
        }
        let policies = self.policies_for(principal);
        Ok(self.store.pending_questions(Some(&policies), limit).await?)
    }

    /// Whether `principal` may answer `q` now (the inbox and Slack ask this
    /// to offer the form; `answer` asks again under the write lock).
    pub fn may_answer(
        &self,
        principal: &Principal,
        q: &Question,
    ) -> std::result::Result<(), AnswerRefusal> {
        q.may_answer(&principal.actor(), self.may_decide(principal, &q.policy))
    }

    /// A person answers. Blank text counts as none.
    pub async fn answer_question(
        &self,
        principal: &Principal,
        id: &str,
        choice: Option<String>,
        text: Option<String>,
    ) -> Result<Question> {
        if matches!(principal, Principal::Agent { .. }) {
            return Err(AnswerRefusal::NotAPerson.into());
        }
        let text = text.filter(|t| !t.trim().is_empty());
        let choice = choice.filter(|c| !c.is_empty());
        if let Some(e) = text.as_deref().and_then(|t| unstorable("text", t)) {
            return Err(ServiceError::Validation(vec![e]));
        }
        check_id(id)?;
        let actor = principal.actor();
        let now = crate::store::now_millis();
        let mut tx = self.store.begin_write().await?;
        let mut q = match tx.get_question(id).await? {
            Some(q) if self.can_see_question(principal, &q) => q,
            _ => {
                tx.rollback().await;
                return Err(ServiceError::QuestionNotFound(id.to_owned()));
            }
        };
        let checked = self
            .may_answer(principal, &q)
            .and_then(|()| q.answer(&actor, choice.clone(), text.clone(), now));
        if let Err(r) = checked {
            tx.rollback().await;
            return Err(r.into());
        }
        self.save_question(
            tx,
            &mut q,
            actor,
            AuditEvent::QuestionAnswered {
                question_id: id.to_owned(),
                choice,
                text,
            },
        )
        .await?;
        Ok(q)
    }

    /// Expires one question if it is still pending and due.
    pub async fn expire_question(&self, id: &str) -> Result<bool> {
        let now = crate::store::now_millis();
        let mut tx = self.store.begin_write().await?;
        let mut q = match tx.get_question(id).await? {
            Some(q) if q.is_due_to_expire(now) => q,
            _ => {
                tx.rollback().await;
                return Ok(false);
            }
        };
        q.expire();
        let event = AuditEvent::QuestionExpired {
            question_id: id.to_owned(),
            expires_at: crate::store::format_time(q.expires_at),
        };
        self.save_question(tx, &mut q, Actor::System, event).await?;
        Ok(true)
    }

    async fn save_question(
        &self,
        mut tx: WriteTx,
        q: &mut Question,
        actor: Actor,
        event: AuditEvent,
    ) -> Result<()> {
        if let Err(e) = tx.update_question(q).await {
            tx.rollback().await;
            return Err(match e {
                StoreError::Conflict => ServiceError::Conflict(format!(
                    "question {} was answered by someone else at the same moment; reload it",
                    q.id
                )),
                other => other.into(),
            });
        }
        tx.audit(actor, None, event).await?;
        self.queue_question_notifications(&mut tx, q, false).await?;
        // A durable run paused on this question may be resumed now.
        let run_changed = self.on_question_change(&mut tx, q).await?;
        tx.commit().await?;
        self.notifier.question_changed(&q.id);
        self.notifier.change_committed(&q.agent, run_changed);
        Ok(())
    }

    /// Queues the notifications for a question, like an approval's: its
    /// e-mails (`service::question_email`) and, with Slack, a post to the
    /// policy's channel when asked, an update when settled.
    async fn queue_question_notifications(
        &self,
        tx: &mut WriteTx,
        q: &Question,
        created: bool,
    ) -> Result<()> {
        self.queue_question_email(tx, q, created).await?;
        let Some(slack) = &self.settings.slack else {
            return Ok(());
        };
        if created {
            let channel = self
                .policies()
                .get(&q.policy)
                .and_then(|p| p.slack_channel.clone())
                .or_else(|| slack.default_channel.clone());
            if let Some(channel) = channel {
                let payload = json!({"question_id": q.id, "channel": channel});
                enqueue_once(tx, "slack.question.post", &q.id, Some(&channel), &payload).await?;
            }
        } else {
            let payload = json!({"question_id": q.id, "status": q.status});
            let step = Some(q.status.as_str());
            enqueue_once(tx, "slack.question.update", &q.id, step, &payload).await?;
        }
        Ok(())
    }

    /// Due question expiries (the expiry worker).
    pub async fn due_question_expiries(
        &self,
        now: i64,
        limit: i64,
    ) -> std::result::Result<Vec<String>, StoreError> {
        self.store.due_questions(now, limit).await
    }

    pub async fn next_question_expiry(&self) -> std::result::Result<Option<i64>, StoreError> {
        self.store.next_question_expiry().await
    }

    /// One question by id, for the workers (Slack rendering) and Slack's
    /// interactions (which check the clicker themselves).
    pub async fn question_by_id(
        &self,
        id: &str,
    ) -> std::result::Result<Option<Question>, StoreError> {
        self.store.get_question(id).await
    }
}
