//! Block Kit for questions from agents: the question message (a button per
//! choice, "Answer in words…" for free text) and the free-text modal. Pure
//! functions of a [`Question`] and the clock; agent text is escaped and
//! shown in code spans and blocks, as in [`super::blocks`].

use super::blocks::{
    code, code_block, field, human_duration, inbox_footer, modal_view, section, select_input,
    select_option, truncate,
};
use crate::question::{Question, QuestionStatus};
use serde_json::{json, Value};

/// Choice buttons' action ids start with this (each must be unique in
/// its block), followed by the choice's index.
pub const ACTION_CHOICE_PREFIX: &str = "pliuz_question_choice_";
pub const ACTION_TEXT: &str = "pliuz_question_text";
pub const VIEW_ANSWER: &str = "pliuz_question_view";
pub const BLOCK_ANSWER: &str = "answer";
pub const INPUT_ANSWER: &str = "answer_input";
pub const BLOCK_ANSWER_CHOICE: &str = "answer_choice";
pub const INPUT_ANSWER_CHOICE: &str = "answer_choice_input";

/// Slack's limit for a button's text.
const MAX_BUTTON_CHARS: usize = 75;
/// Slack allows at most 25 elements in an actions block.
const MAX_BUTTONS: usize = 24;

pub fn question_url(public_url: &str, id: &str) -> String {
    format!("{}/questions/{}", public_url.trim_end_matches('/'), id)
}

/// A choice button's value: `QUESTION_ID:CHOICE_VALUE` (ids hold no ':').
pub fn choice_value(id: &str, value: &str) -> String {
    format!("{id}:{value}")
}

/// Splits a button value into (question id, choice value).
pub fn parse_choice_value(v: &str) -> (&str, &str) {
    v.split_once(':').unwrap_or((v, ""))
}

fn who(actor: &str) -> String {
    code(actor.strip_prefix("user:").unwrap_or(actor), 200)
}

fn headline(q: &Question) -> String {
    match (&q.status, &q.answer) {
        (QuestionStatus::Answered, Some(a)) => {
            format!(":speech_balloon: *Answered* by {}", who(&a.answered_by))
        }
        (QuestionStatus::Expired, _) => ":hourglass: *Expired*: nobody answered in time".to_owned(),
        _ => ":question: *An agent asks*".to_owned(),
    }
}

/// The fallback text (notifications, screen readers).
pub fn fallback_text(q: &Question) -> String {
    let verb = match q.status {
        QuestionStatus::Pending => "Question",
        QuestionStatus::Answered => "Answered",
        QuestionStatus::Expired => "Expired",
    };
    format!(
        "{verb} from {} (policy {})",
        code(&q.agent, 100),
        code(&q.policy, 100)
    )
}

/// The question message, ready to merge into `chat.postMessage` /
/// `chat.update`. Buttons only while pending.
pub fn message(q: &Question, public_url: &str, now: i64) -> Value {
    let mut fields = vec![
        field("Agent", code(&q.agent, 200)),
        field("Policy", code(&q.policy, 200)),
    ];
    if q.status == QuestionStatus::Pending {
        fields.push(field("Time left", human_duration(q.expires_at - now)));
    }
    if let Some(o) = &q.asked.originator {
        fields.push(field("On behalf of", code(o, 200)));
    }
    let mut blocks = vec![
        section("headline", headline(q)),
        section("question", code_block(&q.asked.text, 2500)),
        json!({"type": "section", "block_id": "facts", "fields": fields}),
    ];
    if let Some(a) = &q.answer {
        let mut text = String::from("*Answer*");
        if let Some(c) = &a.choice {
            text.push_str(&format!("\n{}", code(q.label_of(c).unwrap_or(c), 200)));
        }
        if let Some(t) = &a.text {
            text.push_str(&format!("\n{}", code_block(t, 2000)));
        }
        blocks.push(section("answer", text));
    }
    if q.status == QuestionStatus::Pending {
        let mut buttons: Vec<Value> = q
            .asked
            .choices
            .iter()
            .take(MAX_BUTTONS)
            .enumerate()
            .map(|(i, c)| {
                json!({
                    "type": "button",
                    "action_id": format!("{ACTION_CHOICE_PREFIX}{i}"),
                    "text": {"type": "plain_text", "text": truncate(&c.label, MAX_BUTTON_CHARS)},
                    "value": choice_value(&q.id, &c.value),
                })
            })
            .collect();
        if q.asked.allow_free_text {
            buttons.push(json!({
                "type": "button",
                "action_id": ACTION_TEXT,
                "text": {"type": "plain_text", "text": "Answer in words…"},
                "value": q.id,
            }));
        }
        blocks.push(
            json!({"type": "actions", "block_id": "pliuz_question_actions", "elements": buttons}),
        );
    }
    blocks.push(inbox_footer(
        &question_url(public_url, &q.id),
        "question",
        &q.id,
    ));
    json!({"text": fallback_text(q), "blocks": blocks})
}

/// What the answer modal carries back on submission.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AnswerMeta {
    pub question_id: String,
}

/// The free-text answer modal (with the choices as a select, if any).
pub fn answer_modal(q: &Question) -> Value {
    let mut blocks = vec![
        json!({"type": "section", "block_id": "intro", "text": {"type": "mrkdwn", "text": format!(
            "{} asks:\n{}", code(&q.agent, 200), code_block(&q.asked.text, 2500)
        )}}),
    ];
    if !q.asked.choices.is_empty() {
        // A value longer than Slack allows cannot be offered (shortened,
        // it would answer something else).
        let options = q
            .asked
            .choices
            .iter()
            .filter(|c| c.value.chars().count() <= 150)
            .map(|c| select_option(&c.label, &c.value))
            .collect();
        blocks.push(select_input(
            BLOCK_ANSWER_CHOICE,
            INPUT_ANSWER_CHOICE,
            "Choice",
            "Choose",
            options,
        ));
    }
    blocks.push(json!({
        "type": "input",
        "block_id": BLOCK_ANSWER,
        "optional": !q.asked.choices.is_empty(),
        "label": {"type": "plain_text", "text": "Your answer (the agent receives it)"},
        "element": {"type": "plain_text_input", "action_id": INPUT_ANSWER, "multiline": true, "max_length": crate::question::MAX_ANSWER_CHARS.min(3000)},
    }));
    let meta = AnswerMeta {
        question_id: q.id.clone(),
    };
    let title = ("Answer the question", "Send answer");
    modal_view(VIEW_ANSWER, &meta, title, blocks)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_text_is_escaped_and_buttons_carry_the_choice() {
        let q = Question {
            policy: "p".into(),
            expires_at: 60_000,
            ..crate::question::sample("<!channel> which one?", &[("a", "A <b>")])
        };
        let m = message(&q, "http://x", 0);
        let text = m.to_string();
        assert!(!text.contains("<!channel>"), "{text}");
        assert!(text.contains("&lt;!channel&gt;"));
        let buttons = m["blocks"][3]["elements"].as_array().unwrap();
        assert_eq!(buttons.len(), 2);
        assert_eq!(buttons[0]["value"], "q1:a");
        assert_eq!(parse_choice_value("q1:a:b"), ("q1", "a:b"));
    }
}
