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

use crate::approval::{Approval, Status};
use crate::config::email::{EmailSettings, Tls};
use crate::outbox::delivery::{self, Channel, Retry};
use crate::question::{Question, QuestionStatus};
use crate::service::email::{is_question_kind, LinkTarget};
use crate::service::{ControlPlane, OutboxMessage};
use lettre::message::header::{ContentTransferEncoding, ContentType};
use lettre::message::{Body, Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

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

/// Why the SMTP side of one delivery failed.
#[derive(Debug)]
pub(crate) enum MailError {
    Smtp(lettre::transport::smtp::Error),
    /// The message could not be built (an address lettre refuses).
    Build(String),
}

impl std::fmt::Display for MailError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MailError::Smtp(e) => write!(f, "SMTP: {e}"),
            MailError::Build(m) => f.write_str(m),
        }
    }
}

type Failure = delivery::Failure<MailError>;

impl Channel for Arc<Mailer> {
    type Error = MailError;
    const KIND_PREFIX: &'static str = "email.";
    const METRIC: crate::metrics::Channel = crate::metrics::Channel::Email;
    const NOUN: &'static str = "e-mail";
    const WORKER: &'static str = "mail";
    const QUEUE: &'static str = "the outbox (e-mail)";

    fn queued(cp: &ControlPlane) -> &Notify {
        &cp.notifier.mail
    }

    async fn deliver(&self, cp: &ControlPlane, row: &OutboxMessage) -> Result<(), Failure> {
        deliver(cp, self, row).await
    }

    fn retry(error: &MailError, _now: i64) -> Retry {
        let permanent = match error {
            MailError::Smtp(e) => e.is_permanent(),
            MailError::Build(_) => true,
        };
        if permanent {
            Retry::Limited
        } else {
            Retry::Backoff
        }
    }

    fn audited_request(row: &OutboxMessage) -> Option<String> {
        row.approval_id.clone()
    }
}

pub async fn run(cp: ControlPlane, mailer: Arc<Mailer>, shutdown: crate::shutdown::Shutdown) {
    delivery::run(cp, mailer, shutdown).await;
}

/// What a row's e-mails are about.
enum Subject {
    Request(Box<Approval>),
    Question(Box<Question>),
}

impl Subject {
    /// The request or question the row names; `None` when it is gone.
    async fn of(cp: &ControlPlane, row: &OutboxMessage) -> Result<Option<Subject>, Failure> {
        let Some(id) = &row.approval_id else {
            return Ok(None);
        };
        Ok(if is_question_kind(&row.kind) {
            cp.question_by_id(id)
                .await?
                .map(|q| Subject::Question(Box::new(q)))
        } else {
            cp.get_approval(id)
                .await?
                .map(|a| Subject::Request(Box::new(a)))
        })
    }

    fn id(&self) -> &str {
        match self {
            Subject::Request(a) => &a.id,
            Subject::Question(q) => &q.id,
        }
    }

    fn is_pending(&self) -> bool {
        match self {
            Subject::Request(a) => a.status == Status::Pending,
            Subject::Question(q) => q.status == QuestionStatus::Pending,
        }
    }

    /// Its page in the inbox (`requests`, `questions`), its one-time links'
    /// target, and the noun for a message.
    fn page(&self) -> (&'static str, LinkTarget, &'static str) {
        match self {
            Subject::Request(_) => ("requests", LinkTarget::Request, "request"),
            Subject::Question(_) => ("questions", LinkTarget::Question, "question"),
        }
    }

    async fn recipients(&self, cp: &ControlPlane, kind: &str) -> Result<Vec<String>, Failure> {
        Ok(match self {
            Subject::Request(a) => cp.email_recipients(a, kind).await?,
            Subject::Question(q) => cp.question_email_recipients(q, kind).await?,
        })
    }

    fn compose(&self, kind: &str, link: Option<&str>, page: &str) -> message::Mail {
        match self {
            Subject::Request(a) => message::compose(kind, a, link, page),
            Subject::Question(q) => question_message::compose(q, link, page),
        }
    }
}

/// Sends one row's e-mails about a request or a question: one per
/// recipient not mailed yet, each with a fresh one-time link except the
/// follow-up (sent once the asking e-mails are out, with the page's
/// address), then closes the row.
async fn deliver(cp: &ControlPlane, mailer: &Mailer, row: &OutboxMessage) -> Result<(), Failure> {
    let Some(subject) = Subject::of(cp, row).await? else {
        cp.close_delivery(&row.id).await?;
        return Ok(());
    };
    let id = subject.id();
    let (page, target, noun) = subject.page();
    let follow_up = matches!(
        row.kind.as_str(),
        "email.settled" | "email.question_settled"
    );
    if !follow_up && !subject.is_pending() {
        // Settled or answered before it went out: nothing to ask any more
        // (the follow-up reaches whoever was asked before).
        cp.close_delivery(&row.id).await?;
        return Ok(());
    }
    if follow_up && cp.pending_email_asks(id).await? > 0 {
        return Err(Failure::Waiting(format!(
            "waiting for the {noun} e-mails to be sent"
        )));
    }
    let page = format!("{}/{page}/{id}", mailer.link_base_url);
    for to in subject.recipients(cp, &row.kind).await? {
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
            let issued = cp.issue_email_link(target, id, &to).await?;
            Some(format!(
                "{}/email-link/{}",
                mailer.link_base_url, issued.secret
            ))
        };
        let mail = subject.compose(&row.kind, link.as_deref(), &page);
        send(mailer, mailbox, mail).await?;
        tracing::info!(%noun, id, kind = %row.kind, "sent an e-mail");
        record_sent(cp, row, id, &to).await?;
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
        .map_err(|e| Failure::Channel(MailError::Build(e.to_string())))?;
    mailer
        .transport
        .send(email)
        .await
        .map_err(|e| Failure::Channel(MailError::Smtp(e)))?;
    Ok(())
}

/// The plain-text and HTML parts, both quoted-printable: readable in any
/// client and the same encoding whatever the text holds.
fn alternative(text: String, html: String) -> Result<MultiPart, Failure> {
    let part = |content_type: ContentType, body: String| {
        Body::new_with_encoding(body, ContentTransferEncoding::QuotedPrintable)
            .map(|b| SinglePart::builder().header(content_type).body(b))
            .map_err(|_| Failure::Channel(MailError::Build("a part could not be encoded".into())))
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
    delivery::record_delivered(row, "a sent e-mail", move || {
        cp.record_email_sent(&row.id, &row.kind, approval_id, to)
    })
    .await
}
