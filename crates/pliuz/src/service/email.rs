//! The e-mail channel's use cases: queueing e-mails with the change they
//! announce, who receives them, the links they carry (issued, then used
//! once by a signed-in approver), and recording what the mail worker
//! (`crate::mailer`) sent, each with its audit entry.

use super::{enqueue_once, ControlPlane, Result};
use crate::approval::{Actor, Approval, Status};
use crate::audit_event::AuditEvent;
use crate::auth::{hash_secret, new_secret, Principal};
use crate::metrics::{Channel, DeliveryOutcome};
use crate::policy::{matches_any, Approver, Policy};
pub use crate::store::email::LinkTarget;
use crate::store::WriteTx;
use serde_json::json;

/// What a link secret starts with (so a leaked one is recognisable).
pub const LINK_PREFIX: &str = "pliuz_el_";

/// Why a link from an e-mail does not open the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkRefusal {
    /// No such link (mistyped, or long gone).
    Unknown,
    /// It was used before.
    Used,
    Expired,
    /// The signed-in person may not decide this request.
    NotApprover {
        policy: String,
    },
}

/// A newly issued link's secret, shown once (in the e-mail).
pub struct IssuedLink {
    pub secret: String,
}

impl ControlPlane {
    /// Queues the e-mails a change calls for, when its policy `mails` and
    /// `[email]` is set: the request when it is created pending, the
    /// follow-up once it is settled.
    pub(super) async fn queue_email(
        &self,
        tx: &mut WriteTx,
        a: &Approval,
        mails: bool,
        created: bool,
    ) -> Result<()> {
        if self.settings.email.is_none() || !mails {
            return Ok(());
        }
        if created && a.status == Status::Pending {
            self.queue_email_kind(tx, a, "email.request").await?;
        } else if !created && a.status.is_settled() {
            self.queue_email_kind(tx, a, "email.settled").await?;
        }
        Ok(())
    }

    /// Queues one e-mail row of `kind` for `a` (once per request and kind).
    pub(super) async fn queue_email_kind(
        &self,
        tx: &mut WriteTx,
        a: &Approval,
        kind: &str,
    ) -> Result<()> {
        if self.settings.email.is_none() {
            return Ok(());
        }
        enqueue_once(tx, kind, &a.id, None, &json!({"approval_id": a.id})).await
    }

    /// Who an e-mail row of `kind` about `a` goes to, in a stable order:
    /// the follow-up to everyone mailed before; the escalation to the
    /// policy's `escalate_to`; the request and the reminder to `email_to`
    /// or else the approvers (and the `escalate_to` once escalated). Never
    /// the originator, never a disabled account.
    pub async fn email_recipients(&self, a: &Approval, kind: &str) -> Result<Vec<String>> {
        let reached = |policy: &Policy| {
            let escalate_to: &[Approver] = policy.escalation.as_ref().map_or(&[], |e| &e.to);
            if kind == "email.escalated" {
                return escalate_to.to_vec();
            }
            let mut reached = policy.mailed().to_vec();
            if a.escalated_at.is_some() {
                reached.extend_from_slice(escalate_to);
            }
            reached
        };
        let originator = |e: &str| a.is_originated_by(&Actor::User(e.to_owned()));
        let follow_up = kind == "email.settled";
        self.recipients(&a.id, &a.policy, follow_up, reached, originator)
            .await
    }

    /// Who an e-mail about request or question `id` goes to: a follow-up
    /// to everyone mailed about it before; any other to those its policy
    /// `reached` names (nobody once the policy is gone), see
    /// [`ControlPlane::addresses_of`].
    pub(super) async fn recipients(
        &self,
        id: &str,
        policy: &str,
        follow_up: bool,
        reached: impl FnOnce(&Policy) -> Vec<Approver>,
        originator: impl Fn(&str) -> bool,
    ) -> Result<Vec<String>> {
        if follow_up {
            return Ok(self.store.email_recipients_of(id).await?);
        }
        let Some(reached) = self.policies().get(policy).map(|p| reached(p)) else {
            return Ok(vec![]);
        };
        self.addresses_of(&reached, originator).await
    }

    /// The addresses `reached` names: named people (even without an
    /// account, as `email_to` may name anyone, but not a disabled one) and
    /// the active members of groups, but never the `originator`. Sorted,
    /// each once.
    async fn addresses_of(
        &self,
        reached: &[Approver],
        originator: impl Fn(&str) -> bool,
    ) -> Result<Vec<String>> {
        let users = self.store.list_users().await?;
        let mut out: Vec<String> = Vec::new();
        for entry in reached {
            if let Approver::User(email) = entry {
                let disabled = users
                    .iter()
                    .any(|u| u.disabled && u.email.eq_ignore_ascii_case(email));
                if !disabled {
                    out.push(email.to_lowercase());
                }
            }
        }
        for u in users.iter().filter(|u| !u.disabled) {
            if matches_any(reached, &u.email, &u.groups) {
                out.push(u.email.to_lowercase());
            }
        }
        out.retain(|e| !originator(e));
        out.sort();
        out.dedup();
        Ok(out)
    }

    /// Issues a link to the page of request or question `id` for
    /// `recipient`, valid for `email.link_ttl`; only its hash is stored.
    pub async fn issue_email_link(
        &self,
        target: LinkTarget,
        id: &str,
        recipient: &str,
    ) -> Result<IssuedLink> {
        let ttl = self
            .settings
            .email
            .as_ref()
            .map_or(crate::config::email::DEFAULT_LINK_TTL, |e| e.link_ttl);
        let secret = new_secret(LINK_PREFIX);
        let expires_at = crate::store::now_millis()
            .saturating_add(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX / 2));
        self.store
            .insert_email_link(&hash_secret(&secret), target, id, recipient, expires_at)
            .await?;
        Ok(IssuedLink { secret })
    }

    /// Uses a link from an e-mail: it opens the request (or the question)
    /// for a signed-in person who may decide it (answer it), once, before it
    /// expires; returns what it opens and its id. The use is
    /// audited (`email.link_used`); a refusal changes nothing, so a wrong
    /// person clicking first does not use up the approver's link.
    pub async fn use_email_link(
        &self,
        principal: &Principal,
        secret: &str,
    ) -> Result<std::result::Result<(LinkTarget, String), LinkRefusal>> {
        let well_formed = secret.len() <= 100
            && secret
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !well_formed {
            return Ok(Err(LinkRefusal::Unknown));
        }
        let hash = hash_secret(secret);
        let now = crate::store::now_millis();
        let mut tx = self.store.begin_write().await?;
        let Some(link) = tx.get_email_link(&hash).await? else {
            return refused(tx, LinkRefusal::Unknown).await;
        };
        if link.used_at.is_some() {
            return refused(tx, LinkRefusal::Used).await;
        }
        if now >= link.expires_at {
            return refused(tx, LinkRefusal::Expired).await;
        }
        if link.target == LinkTarget::Question {
            return self
                .use_question_link(tx, principal, &hash, link, now)
                .await;
        }
        let Some(a) = tx.get_approval(&link.approval_id).await? else {
            return refused(tx, LinkRefusal::Unknown).await;
        };
        if !a.may_approve_with(self.standing(principal, &a)) {
            let policy = a.policy.clone();
            return refused(tx, LinkRefusal::NotApprover { policy }).await;
        }
        let actor = principal.actor();
        tx.use_email_link(&hash, &actor.to_string(), now).await?;
        let event = AuditEvent::EmailLinkUsed {
            sent_to: link.recipient,
            question_id: None,
        };
        tx.audit(actor, Some(&a.id), event).await?;
        tx.commit().await?;
        Ok(Ok((LinkTarget::Request, a.id)))
    }

    /// Whether this outbox row already mailed `recipient` (a retry skips them).
    pub async fn email_already_sent(&self, outbox_id: &str, recipient: &str) -> Result<bool> {
        Ok(self.store.email_already_sent(outbox_id, recipient).await?)
    }

    /// E-mails asking for a decision on this request still to be sent:
    /// the follow-up waits for them, so it goes to everyone they reach.
    pub async fn pending_email_asks(&self, approval_id: &str) -> Result<i64> {
        Ok(self.store.pending_email_asks(approval_id).await?)
    }

    /// Records one sent e-mail with its `email.sent` entry (`approval_id`
    /// is the question's id for the question kinds).
    pub async fn record_email_sent(
        &self,
        outbox_id: &str,
        kind: &str,
        approval_id: &str,
        to: &str,
    ) -> Result<()> {
        let mut tx = self.store.begin_write().await?;
        tx.record_email(outbox_id, to, approval_id).await?;
        let event = AuditEvent::EmailSent {
            outbox_id: outbox_id.to_owned(),
            kind: kind.to_owned(),
            to: to.to_owned(),
            question_id: is_question_kind(kind).then(|| approval_id.to_owned()),
        };
        // A question is no request: its entries name it in the payload.
        let request = (!is_question_kind(kind)).then_some(approval_id);
        tx.audit(Actor::System, request, event).await?;
        tx.commit().await?;
        self.metrics
            .delivery(Channel::Email, DeliveryOutcome::Delivered);
        Ok(())
    }
}

/// Whether an outbox kind is an e-mail about a question.
pub fn is_question_kind(kind: &str) -> bool {
    kind.starts_with("email.question")
}

/// Ends a link check that changed nothing.
pub(super) async fn refused(
    tx: WriteTx,
    why: LinkRefusal,
) -> Result<std::result::Result<(LinkTarget, String), LinkRefusal>> {
    tx.rollback().await;
    Ok(Err(why))
}
