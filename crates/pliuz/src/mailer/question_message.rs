//! The words of a question's e-mails (pure): the question with its choices
//! and one-time link, and the follow-up once it is answered or expires.
//! Agent text (the question, the choices, the agent's name) is escaped in
//! the HTML part by maud and made one safe, short line in the subject.

use super::message::{fact, header_text, html_part, Mail, NextStep};
use crate::question::{Question, QuestionStatus};
use maud::html;

/// The subject: what is asked, shortened to one line, and the policy.
fn subject(q: &Question) -> String {
    let what = format!(
        "{} ({})",
        header_text(&q.asked.text, 80),
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
            .asked
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
    let answers = answer_lines(q);

    let mut text = format!(
        "{intro}\n\nAgent: {}\nPolicy: {}\nStatus: {}\n",
        q.agent, q.policy, q.status
    );
    for (k, v) in &answers {
        text.push_str(&format!("{k}: {v}\n"));
    }
    text.push_str(&format!("\nQuestion:\n{}\n", q.asked.text));
    if !q.asked.choices.is_empty() {
        text.push_str("\nChoices:\n");
        for c in &q.asked.choices {
            text.push_str(&format!("  - {} ({})\n", c.label, c.value));
        }
    }
    if q.asked.allow_free_text {
        text.push_str("\nA free-text answer is possible.\n");
    }
    let verb = ("answer", "answers");
    let next = NextStep::new("question", verb, link, page_url, q.expires_at);
    text.push_str(&next.text());

    let rows = [
        ("Agent", q.agent.clone()),
        ("Policy", q.policy.clone()),
        ("Status", q.status.as_str().to_owned()),
    ];
    let body = html! {
        table {
            @for (k, v) in rows.iter().chain(&answers) {
                (fact(k, v))
            }
        }
        h3 { "Question" }
        p style="white-space: pre-wrap" { (q.asked.text) }
        @if !q.asked.choices.is_empty() {
            h3 { "Choices" }
            ul {
                @for c in &q.asked.choices {
                    li { (c.label) " " small { "(" code { (c.value) } ")" } }
                }
            }
        }
        @if q.asked.allow_free_text {
            p { "A free-text answer is possible." }
        }
        (next.html())
    };
    let html = html_part(intro, body);
    Mail {
        subject: subject(q),
        text,
        html,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn question(text: &str) -> Question {
        crate::question::sample(text, &[("yes", "<b>Yes</b> & go")])
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
