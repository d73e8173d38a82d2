//! The words of a question's e-mails (pure): the question with its choices
//! and one-time link, and the follow-up once it is answered or expires.
//! Agent text (the question, the choices, the agent's name) is escaped in
//! the HTML part by maud and made one safe, short line in the subject.

use super::message::{header_text, Mail};
use crate::question::{Question, QuestionStatus};
use crate::service::format_time;
use maud::html;

/// The subject: what is asked, shortened to one line, and the policy.
fn subject(q: &Question) -> String {
    let what = format!(
        "{} ({})",
        header_text(&q.text, 80),
        header_text(&q.policy, 60)
    );
    match q.status {
        QuestionStatus::Pending => format!("[Pliuz] Question: {what}"),
        QuestionStatus::Answered => format!("[Pliuz] Question answered: {what}"),
        QuestionStatus::Expired => format!("[Pliuz] Question expired: {what}"),
    }
}

/// What the e-mail says first.
fn intro(q: &Question) -> &'static str {
    match q.status {
        QuestionStatus::Pending => "An agent asks you a question.",
        QuestionStatus::Answered => "This question was answered; nothing more is needed from you.",
        QuestionStatus::Expired => {
            "Nobody answered this question in time; it expired and the agent was told."
        }
    }
}

/// The answer as a person reads it: the chosen option's label (and its
/// value), then any free text.
fn answer_lines(q: &Question) -> Vec<(&'static str, String)> {
    let Some(a) = &q.answer else {
        return vec![];
    };
    let mut out = vec![("Answered by", a.answered_by.clone())];
    if let Some(c) = &a.choice {
        let label = q
            .choices
            .iter()
            .find(|o| &o.value == c)
            .map_or_else(|| c.clone(), |o| format!("{} ({})", o.label, o.value));
        out.push(("Choice", label));
    }
    if let Some(t) = &a.text {
        out.push(("Answer", t.clone()));
    }
    out
}

/// Composes a question's e-mail. `link` is the one-time link (absent in
/// the follow-up, which links the page itself: log-in only).
pub fn compose(q: &Question, link: Option<&str>, page_url: &str) -> Mail {
    let intro = intro(q);
    let expires = format_time(q.expires_at);
    let answers = answer_lines(q);

    let mut text = format!(
        "{intro}\n\nAgent: {}\nPolicy: {}\nStatus: {}\n",
        q.agent, q.policy, q.status
    );
    for (k, v) in &answers {
        text.push_str(&format!("{k}: {v}\n"));
    }
    text.push_str(&format!("\nQuestion:\n{}\n", q.text));
    if !q.choices.is_empty() {
        text.push_str("\nChoices:\n");
        for c in &q.choices {
            text.push_str(&format!("  - {} ({})\n", c.label, c.value));
        }
    }
    if q.allow_free_text {
        text.push_str("\nA free-text answer is possible.\n");
    }
    match link {
        Some(l) => text.push_str(&format!(
            "\nOpen the question to answer (you sign in first; this link works once):\n{l}\n\nThe question expires at {expires} unless someone answers it.\n"
        )),
        None => text.push_str(&format!("\nThe question: {page_url}\n")),
    }

    let html = html! {
        (maud::DOCTYPE)
        html {
            body style="font-family: sans-serif" {
                p { (intro) }
                table {
                    tr { th align="left" { "Agent" } td { (q.agent) } }
                    tr { th align="left" { "Policy" } td { (q.policy) } }
                    tr { th align="left" { "Status" } td { (q.status.as_str()) } }
                    @for (k, v) in &answers {
                        tr { th align="left" { (k) } td { (v) } }
                    }
                }
                h3 { "Question" }
                p style="white-space: pre-wrap" { (q.text) }
                @if !q.choices.is_empty() {
                    h3 { "Choices" }
                    ul {
                        @for c in &q.choices {
                            li { (c.label) " " small { "(" code { (c.value) } ")" } }
                        }
                    }
                }
                @if q.allow_free_text {
                    p { "A free-text answer is possible." }
                }
                @match link {
                    Some(l) => {
                        p { a href=(l) { "Open the question to answer" } }
                        p { small { "You sign in first; this link works once. The question expires at " (expires) " unless someone answers it." } }
                    }
                    None => {
                        p { a href=(page_url) { "The question" } }
                    }
                }
            }
        }
    }
    .into_string();
    Mail {
        subject: subject(q),
        text,
        html,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::question::Choice;

    fn question(text: &str) -> Question {
        Question {
            id: "q1".into(),
            agent: "bot".into(),
            policy: "refunds".into(),
            text: text.into(),
            choices: vec![Choice {
                value: "yes".into(),
                label: "<b>Yes</b> & go".into(),
            }],
            allow_free_text: true,
            originator: None,
            idempotency_key: None,
            digest: String::new(),
            status: QuestionStatus::Pending,
            answer: None,
            created_at: 0,
            expires_at: 0,
            version: 0,
        }
    }

    #[test]
    fn agent_text_is_escaped_and_the_subject_is_one_line() {
        let m = compose(
            &question("Refund?\r\nBcc: x@y <script>"),
            Some("http://l/email-link/s"),
            "http://l/questions/q1",
        );
        assert_eq!(
            m.subject,
            "[Pliuz] Question: Refund?  Bcc: x@y <script> (refunds)"
        );
        assert!(!m.subject.contains('\n'));
        assert!(m.html.contains("&lt;script&gt;"), "{}", m.html);
        assert!(m.html.contains("&lt;b&gt;Yes&lt;/b&gt; &amp; go"));
        assert!(!m.html.contains("<script>") && !m.html.contains("<b>"));
        assert!(m.text.contains("http://l/email-link/s"));
    }
}
