//! Questions by e-mail: queueing the question's e-mail and its follow-up,
//! who receives them (the same rule as requests), and using a question's
//! one-time link, each with its audit entry. The mail worker
//! (`crate::mailer`) sends them like the request e-mails.

use super::email::{refused, LinkRefusal, LinkTarget};
use super::{enqueue_once, ControlPlane, Result};
use crate::approval::Actor;
use crate::audit_event::AuditEvent;
use crate::auth::Principal;
use crate::policy::Policy;
use crate::question::{AnswerRefusal, Question, QuestionStatus};
use crate::store::email::EmailLink;
use crate::store::WriteTx;
use serde_json::json;

impl ControlPlane {
    /// Queues a question's e-mail when it is asked under a policy that
    /// mails (and `[email]` is set), and the follow-up once it is answered
    /// or expires.
    pub(super) async fn queue_question_email(
        &self,
        tx: &mut WriteTx,
        q: &Question,
        created: bool,
    ) -> Result<()> {
        let mails = self
            .policies()
            .get(&q.policy)
            .is_some_and(|p| p.email.is_some());
        if self.settings.email.is_none() || !mails {
            return Ok(());
        }
        let kind = match (created, q.status) {
            (true, QuestionStatus::Pending) => "email.question",
            (false, QuestionStatus::Answered | QuestionStatus::Expired) => "email.question_settled",
            _ => return Ok(()),
        };
        enqueue_once(tx, kind, &q.id, None, &json!({"question_id": q.id})).await
    }

    /// Who an e-mail row of `kind` about `q` goes to, in a stable order:
    /// the follow-up to everyone mailed the question; the question to the
    /// policy's `email_to` or else its approvers. Never the originator,
    /// never a disabled account.
    pub async fn question_email_recipients(&self, q: &Question, kind: &str) -> Result<Vec<String>> {
        let originator = |e: &str| {
            q.asked
                .originator
                .as_deref()
                .is_some_and(|o| crate::originator::names_person(o, e))
        };
        let follow_up = kind == "email.question_settled";
        let reached = |policy: &Policy| policy.mailed().to_vec();
        self.recipients(&q.id, &q.policy, follow_up, reached, originator)
            .await
    }

    /// The question half of [`ControlPlane::use_email_link`]: the link opens
    /// the question for a person who may answer it (an approver of its
    /// policy, not its originator). Once answered or expired it still opens
    /// the page for them, which then says so.
    pub(super) async fn use_question_link(
        &self,
        mut tx: WriteTx,
        principal: &Principal,
        hash: &str,
        link: EmailLink,
        now: i64,
    ) -> Result<std::result::Result<(LinkTarget, String), LinkRefusal>> {
        let Some(q) = tx.get_question(&link.approval_id).await? else {
            return refused(tx, LinkRefusal::Unknown).await;
        };
        match self.may_answer(principal, &q) {
            Ok(()) | Err(AnswerRefusal::NotPending { .. }) => {}
            Err(_) => {
                let policy = q.policy.clone();
                return refused(tx, LinkRefusal::NotApprover { policy }).await;
            }
        }
        let actor: Actor = principal.actor();
        tx.use_email_link(hash, &actor.to_string(), now).await?;
        let event = AuditEvent::EmailLinkUsed {
            sent_to: link.recipient,
            question_id: Some(q.id.clone()),
        };
        tx.audit(actor, None, event).await?;
        tx.commit().await?;
        Ok(Ok((LinkTarget::Question, q.id)))
    }
}
