//! The e-mails' words: subject, plain-text and HTML parts for each kind
//! (pure). Agent text (tool name, arguments, agent name) is escaped in the
//! HTML part by maud, and stripped of control characters and shortened in
//! the subject, so it can neither inject markup nor headers.

use crate::approval::Approval;
use crate::service::format_time;
use crate::text::truncate;
use maud::{html, Markup, Render};
use serde_json::Value;

/// One e-mail, ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mail {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// Longest argument value shown in an e-mail, in characters.
const MAX_VALUE_CHARS: usize = 200;
/// Most arguments listed; the request page shows all.
const MAX_ARGS: usize = 20;

/// Text safe for a header: no control characters (so no CR/LF that could
/// start a new header), one line, shortened.
pub fn header_text(s: &str, max: usize) -> String {
    let one_line: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    truncate(one_line.trim(), max)
}

fn value_text(v: &Value) -> String {
    let s = match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    truncate(&s, MAX_VALUE_CHARS)
}

/// What the reader may do next: open the one-time link to act (before the
/// request or question expires), or, in the follow-up, see the page itself
/// (log-in only).
pub(super) struct NextStep<'a> {
    /// "request", "question".
    noun: &'a str,
    /// What a person does to it, and does in the third person.
    verb: (&'a str, &'a str),
    link: Option<&'a str>,
    page_url: &'a str,
    expires: String,
}

impl<'a> NextStep<'a> {
    pub fn new(
        noun: &'a str,
        verb: (&'a str, &'a str),
        link: Option<&'a str>,
        page_url: &'a str,
        expires_at: i64,
    ) -> NextStep<'a> {
        NextStep {
            noun,
            verb,
            link,
            page_url,
            expires: format_time(expires_at),
        }
    }

    pub fn text(&self) -> String {
        let (noun, (verb, verbs), expires) = (self.noun, self.verb, &self.expires);
        match self.link {
            Some(l) => format!(
                "\nOpen the {noun} to {verb} (you sign in first; this link works once):\n{l}\n\nThe {noun} expires at {expires} unless someone {verbs} it.\n"
            ),
            None => format!("\nThe {noun}: {}\n", self.page_url),
        }
    }

    pub fn html(&self) -> Markup {
        let (noun, (verb, verbs), expires) = (self.noun, self.verb, &self.expires);
        html! {
            @match self.link {
                Some(l) => {
                    p { a href=(l) { "Open the " (noun) " to " (verb) } }
                    p { small { "You sign in first; this link works once. The " (noun) " expires at " (expires) " unless someone " (verbs) " it." } }
                }
                None => {
                    p { a href=(self.page_url) { "The " (noun) } }
                }
            }
        }
    }
}

/// The HTML part: `body` under the intro, in the frame every e-mail shares.
pub(super) fn html_part(intro: &str, body: Markup) -> String {
    html! {
        (maud::DOCTYPE)
        html {
            body style="font-family: sans-serif" {
                p { (intro) }
                (body)
            }
        }
    }
    .into_string()
}

/// One row of an e-mail's facts table.
pub(super) fn fact(label: &str, value: impl Render) -> Markup {
    html! { tr { th align="left" { (label) } td { (value) } } }
}

/// What this e-mail is about, from its outbox row's kind.
fn intro(kind: &str, a: &Approval) -> &'static str {
    match kind {
        "email.reminder" => "Reminder: this request is still waiting for a decision.",
        "email.escalated" => {
            "Nobody decided this request in time, so it was escalated to you: you may now decide it."
        }
        "email.settled" => match a.status {
            crate::approval::Status::Pending => "This request is still pending.",
            _ => "This request was settled; nothing more is needed from you.",
        },
        _ => "An agent asks for your approval.",
    }
}

/// The subject line for `kind`.
fn subject(kind: &str, a: &Approval) -> String {
    let what = format!(
        "{} ({})",
        header_text(&a.call.tool_name, 80),
        header_text(&a.policy, 60)
    );
    match kind {
        "email.reminder" => format!("[Pliuz] Reminder: approval needed: {what}"),
        "email.escalated" => format!("[Pliuz] Escalated to you: {what}"),
        "email.settled" => format!("[Pliuz] {}: {what}", a.status),
        _ => format!("[Pliuz] Approval needed: {what}"),
    }
}

/// Composes the e-mail of `kind` about `a`. `link` is the one-time link
/// (absent in the follow-up, which links the page itself: log-in only).
pub fn compose(kind: &str, a: &Approval, link: Option<&str>, page_url: &str) -> Mail {
    let args: Vec<(&String, String)> = a
        .args_under_review()
        .iter()
        .take(MAX_ARGS)
        .map(|(k, v)| (k, value_text(v)))
        .collect();
    let more = a.args_under_review().len().saturating_sub(MAX_ARGS);
    let settled_by = a
        .settlement
        .as_ref()
        .map(|s| (s.by.clone(), s.reason.clone()));
    let intro = intro(kind, a);
    let settled = kind == "email.settled";

    let mut text = format!(
        "{intro}\n\nAgent: {}\nTool: {}\nPolicy: {}\nStatus: {}\n",
        a.agent, a.call.tool_name, a.policy, a.status
    );
    if let (true, Some((by, reason))) = (settled, &settled_by) {
        text.push_str(&format!("Decided by: {by}\n"));
        if let Some(r) = reason {
            text.push_str(&format!("Reason: {r}\n"));
        }
    }
    text.push_str("\nArguments:\n");
    for (k, v) in &args {
        text.push_str(&format!("  {k}: {v}\n"));
    }
    if more > 0 {
        text.push_str(&format!("  … and {more} more on the request page\n"));
    }
    let verb = ("decide", "decides");
    let next = NextStep::new("request", verb, link, page_url, a.expires_at);
    text.push_str(&next.text());

    let body = html! {
        table {
            (fact("Agent", &a.agent))
            (fact("Tool", html! { code { (a.call.tool_name) } }))
            (fact("Policy", &a.policy))
            (fact("Status", a.status.as_str()))
            @if let (true, Some((by, reason))) = (settled, &settled_by) {
                (fact("Decided by", by))
                @if let Some(r) = reason {
                    (fact("Reason", r))
                }
            }
        }
        h3 { "Arguments" }
        ul {
            @for (k, v) in &args {
                li { code { (k) } ": " (v) }
            }
            @if more > 0 {
                li { "… and " (more) " more on the request page" }
            }
        }
        (next.html())
    };
    let html = html_part(intro, body);
    Mail {
        subject: subject(kind, a),
        text,
        html,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_text_is_one_safe_line() {
        assert_eq!(header_text("a\r\nBcc: x@y\u{0}", 100), "a  Bcc: x@y");
        assert_eq!(header_text(&"x".repeat(300), 10).chars().count(), 10);
    }
}
