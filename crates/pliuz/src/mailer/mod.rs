//! The mail worker: delivers queued e-mails (`email.*` outbox rows) over
//! SMTP, durably, like the Slack worker (`crate::outbox`) whose claims,
//! backoff and tuning it shares.
//!
//! A row is one e-mail per recipient: the request (`email.request`), the
//! reminder (`email.reminder`), the escalation (`email.escalated`) and the
//! follow-up once the request is settled (`email.settled`). Each e-mail
//! sent is recorded (`email_messages`) with its `email.sent` audit entry,
//! so a retry mails only those not reached yet. Temporary SMTP failures
//! (4xx, network) are retried for as long as it takes; permanent ones
//! (5xx) up to `PLIUZ_OUTBOX_MAX_ATTEMPTS`, then the row is given up with a
//! `notification.failed` entry. As with Slack, a crash between the SMTP
//! server's acceptance and the record's commit sends that one e-mail again.

pub mod message;
pub mod question_message;

use crate::approval::Status;
use crate::config::email::{EmailSettings, Tls};
use crate::outbox::{pause_after_pass, Tuning, BATCH};
use crate::question::QuestionStatus;
use crate::service::email::{is_question_kind, LinkTarget};
use crate::service::{ControlPlane, OutboxMessage, ServiceError, StoreError};
use lettre::message::header::{ContentTransferEncoding, ContentType};
use lettre::message::{Body, Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use std::sync::Arc;
use std::time::Duration;

/// The SMTP connection settings and the sender, made once at start.
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    link_base_url: String,
}

impl Mailer {
    pub fn new(s: &EmailSettings) -> anyhow::Result<Mailer> {
        let builder = match s.tls {
            Tls::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&s.host)?,
            Tls::StartTls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&s.host)?,
            Tls::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&s.host),
        };
        let mut builder = builder.port(s.port).timeout(Some(Duration::from_secs(30)));
        if let (Some(user), Some(password)) = (&s.username, &s.password) {
            builder = builder.credentials(Credentials::new(user.clone(), password.0.clone()));
        }
        Ok(Mailer {
            transport: builder.build(),
            from: s
                .from
                .parse()
                .map_err(|e| anyhow::anyhow!("email.from: {e}"))?,
            link_base_url: s.link_base_url.clone(),
        })
    }
}

/// Why one delivery did not happen.
#[derive(Debug)]
enum Failure {
    Smtp(lettre::transport::smtp::Error),
    /// The message could not be built (an address lettre refuses).
    Build(String),
    /// The follow-up waits for the request e-mails to go first.
    Waiting(String),
    Store(String),
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Failure {
        Failure::Store(e.to_string())
    }
}

impl From<ServiceError> for Failure {
    fn from(e: ServiceError) -> Failure {
        Failure::Store(e.to_string())
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Smtp(e) => write!(f, "SMTP: {e}"),
            Failure::Build(m) | Failure::Waiting(m) | Failure::Store(m) => f.write_str(m),
        }
    }
}

pub async fn run(cp: ControlPlane, mailer: Arc<Mailer>, shutdown: crate::shutdown::Shutdown) {
    let tuning = Tuning::from_env();
    tracing::info!("mail worker started");
    let mut changes = cp.notifier.subscribe();
    loop {
        let handled = deliver_due(&cp, &mailer, &tuning).await;
        let sleep = pause_after_pass(
            cp.next_outbox_due().await,
            handled,
            Duration::from_secs(1),
            "the outbox (e-mail)",
        );
        if sleep.is_zero() {
            continue;
        }
        tokio::select! {
            _ = tokio::time::sleep(sleep) => {}
            _ = cp.notifier.mail.notified() => {}
            _ = changes.recv() => {}
            _ = shutdown.wait() => return,
        }
    }
}

/// One pass over the due e-mail rows. Returns how many were attempted.
async fn deliver_due(cp: &ControlPlane, mailer: &Mailer, tuning: &Tuning) -> usize {
    let now = crate::service::now_millis();
    let rows = match cp.due_outbox(now, BATCH).await {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e, "could not read due outbox rows");
            return 0;
        }
    };
    let mut handled = 0;
    for row in rows.iter().filter(|r| r.kind.starts_with("email.")) {
        match cp
            .claim_delivery(&row.id, row.next_attempt_at, now + tuning.lease_ms)
            .await
        {
            Ok(true) => {}
            Ok(false) => continue,
            Err(e) => {
                tracing::warn!(error = %e, "could not claim an outbox row");
                continue;
            }
        }
        handled += 1;
        if let Err(f) = deliver(cp, mailer, row).await {
            failed(cp, row, f, tuning).await;
        }
    }
    handled
}

async fn failed(cp: &ControlPlane, row: &OutboxMessage, f: Failure, tuning: &Tuning) {
    let attempts = row.attempts + 1;
    let now = crate::service::now_millis();
    let error = f.to_string();
    let permanent = match &f {
        Failure::Smtp(e) => e.is_permanent(),
        Failure::Build(_) => true,
        _ => false,
    };
    if permanent && attempts >= tuning.max_attempts {
        tracing::error!(outbox = %row.id, kind = %row.kind, %error, "giving up on an e-mail");
        let message = format!("gave up after {attempts} attempts: {error}");
        if let Err(e) = cp
            .give_up_email(
                &row.id,
                row.approval_id.clone(),
                &row.kind,
                attempts,
                &message,
            )
            .await
        {
            tracing::warn!(error = %e, outbox = %row.id, "could not record giving up");
        }
        return;
    }
    let next = now + tuning.delay_ms(attempts);
    match &f {
        Failure::Waiting(_) => {
            tracing::debug!(outbox = %row.id, kind = %row.kind, attempts, %error, "waiting")
        }
        _ => {
            cp.metrics.delivery(
                crate::metrics::Channel::Email,
                crate::metrics::DeliveryOutcome::Failed,
            );
            tracing::warn!(outbox = %row.id, kind = %row.kind, attempts, %error, retry_in_ms = next - now, "e-mail not delivered; will retry")
        }
    }
    if let Err(e) = cp.retry_delivery(&row.id, next, &error).await {
        tracing::warn!(error = %e, outbox = %row.id, "could not record a failed delivery");
    }
}

/// Sends one row's e-mails: one per recipient not mailed yet, each with a
/// fresh one-time link (except the follow-up), then closes the row.
async fn deliver(cp: &ControlPlane, mailer: &Mailer, row: &OutboxMessage) -> Result<(), Failure> {
    if is_question_kind(&row.kind) {
        return deliver_question(cp, mailer, row).await;
    }
    let approval = match &row.approval_id {
        Some(id) => cp.get_approval(id).await?,
        None => None,
    };
    let Some(a) = approval else {
        cp.close_delivery(&row.id).await?;
        return Ok(());
    };
    let follow_up = row.kind == "email.settled";
    if !follow_up && a.status != Status::Pending {
        // Settled before it went out: nothing to ask any more (the
        // follow-up reaches whoever was asked before).
        cp.close_delivery(&row.id).await?;
        return Ok(());
    }
    if follow_up && cp.pending_email_asks(&a.id).await? > 0 {
        return Err(Failure::Waiting(
            "waiting for the request e-mails to be sent".into(),
        ));
    }
    let page = format!("{}/requests/{}", mailer.link_base_url, a.id);
    for to in cp.email_recipients(&a, &row.kind).await? {
        if cp.email_already_sent(&row.id, &to).await? {
            continue;
        }
        let Ok(mailbox) = to.parse::<Mailbox>() else {
            tracing::warn!(outbox = %row.id, recipient = %to, "not an e-mail address; skipped");
            continue;
        };
        let link = if follow_up {
            None
        } else {
            let issued = cp.issue_email_link(LinkTarget::Request, &a.id, &to).await?;
            Some(format!(
                "{}/email-link/{}",
                mailer.link_base_url, issued.secret
            ))
        };
        let mail = message::compose(&row.kind, &a, link.as_deref(), &page);
        send(mailer, mailbox, mail).await?;
        tracing::info!(approval = %a.id, kind = %row.kind, "sent an e-mail");
        record_sent(cp, row, &a.id, &to).await?;
    }
    cp.close_delivery(&row.id).await?;
    Ok(())
}

/// Sends one row's e-mails about a question, like a request's: one per
/// recipient not mailed yet, the question with a fresh one-time link, the
/// follow-up (once the question e-mails are out) with the page's address.
async fn deliver_question(
    cp: &ControlPlane,
    mailer: &Mailer,
    row: &OutboxMessage,
) -> Result<(), Failure> {
    let question = match &row.approval_id {
        Some(id) => cp.question_by_id(id).await?,
        None => None,
    };
    let Some(q) = question else {
        cp.close_delivery(&row.id).await?;
        return Ok(());
    };
    let follow_up = row.kind == "email.question_settled";
    if !follow_up && q.status != QuestionStatus::Pending {
        // Answered before it went out: nothing to ask any more.
        cp.close_delivery(&row.id).await?;
        return Ok(());
    }
    if follow_up && cp.pending_email_asks(&q.id).await? > 0 {
        return Err(Failure::Waiting(
            "waiting for the question e-mails to be sent".into(),
        ));
    }
    let page = format!("{}/questions/{}", mailer.link_base_url, q.id);
    for to in cp.question_email_recipients(&q, &row.kind).await? {
        if cp.email_already_sent(&row.id, &to).await? {
            continue;
        }
        let Ok(mailbox) = to.parse::<Mailbox>() else {
            tracing::warn!(outbox = %row.id, recipient = %to, "not an e-mail address; skipped");
            continue;
        };
        let link = if follow_up {
            None
        } else {
            let issued = cp
                .issue_email_link(LinkTarget::Question, &q.id, &to)
                .await?;
            Some(format!(
                "{}/email-link/{}",
                mailer.link_base_url, issued.secret
            ))
        };
        let mail = question_message::compose(&q, link.as_deref(), &page);
        send(mailer, mailbox, mail).await?;
        tracing::info!(question = %q.id, kind = %row.kind, "sent an e-mail");
        record_sent(cp, row, &q.id, &to).await?;
    }
    cp.close_delivery(&row.id).await?;
    Ok(())
}

/// Builds and sends one e-mail.
async fn send(mailer: &Mailer, to: Mailbox, mail: message::Mail) -> Result<(), Failure> {
    let email = lettre::Message::builder()
        .from(mailer.from.clone())
        .to(to)
        .subject(mail.subject)
        .multipart(alternative(mail.text, mail.html)?)
        .map_err(|e| Failure::Build(e.to_string()))?;
    mailer.transport.send(email).await.map_err(Failure::Smtp)?;
    Ok(())
}

/// The plain-text and HTML parts, both quoted-printable: readable in any
/// client and the same encoding whatever the text holds.
fn alternative(text: String, html: String) -> Result<MultiPart, Failure> {
    let part = |content_type: ContentType, body: String| {
        Body::new_with_encoding(body, ContentTransferEncoding::QuotedPrintable)
            .map(|b| SinglePart::builder().header(content_type).body(b))
            .map_err(|_| Failure::Build("a part could not be encoded".into()))
    };
    Ok(MultiPart::alternative()
        .singlepart(part(ContentType::TEXT_PLAIN, text)?)
        .singlepart(part(ContentType::TEXT_HTML, html)?))
}

/// Records a sent e-mail; a failing commit is retried in place (the
/// e-mail is already out).
async fn record_sent(
    cp: &ControlPlane,
    row: &OutboxMessage,
    approval_id: &str,
    to: &str,
) -> Result<(), Failure> {
    let mut last = None;
    for attempt in 0..5u32 {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
        }
        match cp
            .record_email_sent(&row.id, &row.kind, approval_id, to)
            .await
        {
            Ok(()) => return Ok(()),
            Err(e) => {
                tracing::warn!(error = %e, outbox = %row.id, "could not record a sent e-mail; retrying");
                last = Some(e);
            }
        }
    }
    Err(last.map_or_else(
        || Failure::Store("recording a sent e-mail failed".into()),
        Failure::from,
    ))
}
