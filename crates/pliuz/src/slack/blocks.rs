//! Block Kit rendering: the request message (pending and settled) and the
//! reject / edit modals. Pure functions of an [`Approval`] and the clock.
//!
//! Everything that came from an agent or a person goes through [`escape`]
//! first, so an argument like `<!channel>` is shown, not obeyed, and is then
//! put inside an inline code span ([`code`]) or a code block
//! ([`code_block`]) with back-ticks neutralised and (for spans) line breaks
//! flattened: Slack shows `*`, `_`, `~` and `:emoji:` in code literally, so
//! agent text can never pass for one of Pliuz's own (bold, emoji) status
//! lines.

use crate::approval::{Approval, DecisionKind, Status};
use serde_json::{json, Map, Value};

pub const ACTION_APPROVE: &str = "pliuz_approve";
pub const ACTION_REJECT: &str = "pliuz_reject";
pub const ACTION_EDIT: &str = "pliuz_edit";
pub const ACTION_RESPOND: &str = "pliuz_respond";
pub const VIEW_REJECT: &str = "pliuz_reject_view";
pub const VIEW_RESPOND: &str = "pliuz_respond_view";
pub const VIEW_EDIT: &str = "pliuz_edit_view";
pub const BLOCK_REASON: &str = "reason";
pub const INPUT_REASON: &str = "reason_input";
pub const BLOCK_REASON_CHOICE: &str = "reason_choice";
pub const INPUT_REASON_CHOICE: &str = "reason_choice_input";
pub const BLOCK_ARGS: &str = "args";
pub const INPUT_ARGS: &str = "args_input";

/// Longest value shown for one argument.
pub const MAX_VALUE_CHARS: usize = 300;
/// Most arguments listed in a message.
pub const MAX_ARGS_SHOWN: usize = 20;
/// Slack's limit for a section's text is 3000 characters; stay below.
const MAX_SECTION_CHARS: usize = 2900;
/// Slack's limit for a plain-text input's initial value.
pub const MAX_INPUT_CHARS: usize = 3000;

/// Escapes the three characters Slack mrkdwn gives a meaning to.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            _ => out.push(c),
        }
    }
    out
}

pub use crate::text::truncate;

/// A back-tick would end a code span or block early: show a look-alike.
fn neutralise_backticks(s: &str) -> String {
    s.replace('`', "ˋ")
}

/// Whether `c` breaks a line (or is invisible control) in Slack's renderer.
fn is_break(c: char) -> bool {
    c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\u{85}')
}

/// Agent or user text as one inline code span: truncated, back-ticks
/// neutralised, line breaks and control characters flattened to spaces,
/// then escaped. Empty text is shown as `(empty)` in the span.
pub fn code(s: &str, max: usize) -> String {
    let flat: String = neutralise_backticks(s)
        .chars()
        .map(|c| if is_break(c) { ' ' } else { c })
        .collect();
    let flat = truncate(flat.trim(), max);
    if flat.is_empty() {
        "`(empty)`".to_owned()
    } else {
        format!("`{}`", escape(&flat))
    }
}

/// Multi-line agent or user text (a reason) as a code block: line breaks
/// kept, but nothing can close the block early.
pub fn code_block(s: &str, max: usize) -> String {
    let kept: String = neutralise_backticks(s)
        .chars()
        .map(|c| if c != '\n' && is_break(c) { ' ' } else { c })
        .collect();
    format!("```{}```", escape(&truncate(kept.trim(), max)))
}

/// A value as shown in a message: strings bare, everything else as JSON,
/// inside an inline code span.
fn show_value(v: &Value) -> String {
    let raw = match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    code(&raw, MAX_VALUE_CHARS)
}

/// A bulleted, escaped, truncated summary of the arguments.
pub fn args_summary(args: &Map<String, Value>) -> String {
    if args.is_empty() {
        return "_no arguments_".to_owned();
    }
    let mut out = String::new();
    let mut shown = 0;
    for (k, v) in args {
        let line = format!("• {}: {}\n", code(k, 80), show_value(v));
        if shown >= MAX_ARGS_SHOWN
            || out.chars().count() + line.chars().count() > MAX_SECTION_CHARS - 40
        {
            break;
        }
        out.push_str(&line);
        shown += 1;
    }
    if shown < args.len() {
        out.push_str(&format!(
            "_…and {} more; see the full request in the inbox_",
            args.len() - shown
        ));
    }
    out.trim_end().to_owned()
}

/// "4 min", "2 h 5 min", "3 d 1 h": a person-readable duration.
pub fn human_duration(ms: i64) -> String {
    let s = (ms.max(0) + 999) / 1000;
    let (d, h, m) = (s / 86_400, (s % 86_400) / 3600, (s % 3600) / 60);
    if d > 0 {
        if h > 0 {
            format!("{d} d {h} h")
        } else {
            format!("{d} d")
        }
    } else if h > 0 {
        if m > 0 {
            format!("{h} h {m} min")
        } else {
            format!("{h} h")
        }
    } else if m > 0 {
        format!("{m} min")
    } else {
        format!("{s} s")
    }
}

/// Slack's date token: shown in each reader's own time zone.
fn slack_date(ms: i64) -> String {
    format!(
        "<!date^{}^{{date_short_pretty}} at {{time}}|{}>",
        ms.div_euclid(1000),
        escape(&crate::service::format_time(ms))
    )
}

/// `user:EMAIL` → `EMAIL`; other actors as they are; as a code span.
fn who(actor: &str) -> String {
    code(actor.strip_prefix("user:").unwrap_or(actor), 200)
}

pub fn request_url(public_url: &str, id: &str) -> String {
    format!("{}/requests/{}", public_url.trim_end_matches('/'), id)
}

fn headline(a: &Approval) -> String {
    let by = a
        .settlement
        .as_ref()
        .map(|s| who(&s.by))
        .unwrap_or_default();
    let at = a
        .settlement
        .as_ref()
        .map(|s| slack_date(s.at))
        .unwrap_or_default();
    match a.status {
        Status::Pending => ":raising_hand: *Approval needed*".to_owned(),
        Status::Approved if a.edited => {
            format!(":white_check_mark: *Approved with edits* by {by} on {at}")
        }
        Status::Approved => format!(":white_check_mark: *Approved* by {by} on {at}"),
        Status::Executing => format!(
            ":warning: *Approved* by {by} on {at}; the agent started it and has not reported the outcome: outcome unknown — check before retrying"
        ),
        Status::Executed => {
            let ran = a
                .execution
                .as_ref()
                .map(|e| e.outcome.as_str())
                .unwrap_or("reported");
            format!(":white_check_mark: *Approved* by {by} on {at}; the agent ran it ({ran})")
        }
        Status::Rejected => format!(":no_entry: *Rejected* by {by} on {at}"),
        Status::Responded => format!(
            ":speech_balloon: *Responded* by {by} on {at}: the tool did not run; the agent got their message"
        ),
        Status::Expired => format!(":hourglass: *Expired* on {at}: nobody decided in time"),
        Status::Cancelled => format!(":heavy_multiplication_x: *Cancelled* by {by} on {at}"),
    }
}

/// The fallback text (notifications, screen readers).
pub fn fallback_text(a: &Approval) -> String {
    let verb = match a.status {
        Status::Pending => "Approval needed",
        Status::Approved | Status::Executing | Status::Executed => "Approved",
        Status::Rejected => "Rejected",
        Status::Responded => "Responded",
        Status::Expired => "Expired",
        Status::Cancelled => "Cancelled",
    };
    format!(
        "{verb}: {} requested by {} (policy {})",
        code(&a.call.tool_name, 100),
        code(&a.agent, 100),
        code(&a.policy, 100)
    )
}

/// A bold label over its value (mrkdwn).
pub fn labelled(label: &str, value: impl std::fmt::Display) -> String {
    format!("*{label}*\n{value}")
}

/// One of a section's `fields`: a label over its value.
pub fn field(label: &str, value: impl std::fmt::Display) -> Value {
    json!({"type": "mrkdwn", "text": labelled(label, value)})
}

/// A section block of mrkdwn text.
pub fn section(block_id: &str, text: String) -> Value {
    json!({"type": "section", "block_id": block_id, "text": {"type": "mrkdwn", "text": text}})
}

/// The last block: a link to `url` in the inbox, naming the `what` and its id.
pub fn inbox_footer(url: &str, what: &str, id: &str) -> Value {
    json!({"type": "context", "elements": [{"type": "mrkdwn", "text": format!(
        "<{url}|Open in the Pliuz inbox> · {what} `{}`",
        escape(id)
    )}]})
}

/// The request message: `{"text": ..., "blocks": [...]}`, ready to merge
/// into `chat.postMessage` / `chat.update`. Buttons only while pending.
pub fn message(a: &Approval, public_url: &str, now: i64) -> Value {
    let mut fields = vec![
        field("Tool", code(&a.call.tool_name, 200)),
        field("Agent", code(&a.agent, 200)),
        field("Policy", code(&a.policy, 200)),
    ];
    if a.status == Status::Pending {
        fields.push(field(
            "Time left",
            format!(
                "{} (until {})",
                human_duration(a.expires_at - now),
                slack_date(a.expires_at)
            ),
        ));
    }
    if let Some(o) = &a.call.originator {
        fields.push(field("On behalf of", code(o, 200)));
    }
    if a.required_approvals > 1 {
        fields.push(field(
            "Approvals",
            format!("{} of {}", a.votes.len(), a.required_approvals),
        ));
    }
    let mut blocks = vec![
        section("headline", headline(a)),
        json!({"type": "section", "block_id": "facts", "fields": fields}),
    ];
    match a
        .proposed_args
        .as_ref()
        .filter(|_| a.status == Status::Pending)
    {
        // Edited while more approvals are needed: approvals count for the
        // edited arguments, so those are what the buttons decide.
        Some(proposed) => {
            blocks.push(section(
                "arguments",
                labelled(
                    "Arguments (edited by an approver; approvals count for these)",
                    args_summary(proposed),
                ),
            ));
            blocks.push(section(
                "original_arguments",
                labelled(
                    "Original arguments from the agent",
                    args_summary(&a.call.tool_args),
                ),
            ));
        }
        None => blocks.push(section(
            "arguments",
            labelled("Arguments", args_summary(&a.call.tool_args)),
        )),
    }
    if let Some(final_args) = a.final_args.as_ref().filter(|_| a.edited) {
        blocks.push(section(
            "final_arguments",
            labelled("Approved arguments (edited)", args_summary(final_args)),
        ));
    }
    if let Some(reason) = a
        .settlement
        .as_ref()
        .and_then(|s| s.reason.as_deref())
        .filter(|r| !r.is_empty())
    {
        blocks.push(section(
            "reason",
            labelled("Reason", code_block(reason, 1500)),
        ));
    }
    if a.status == Status::Pending {
        // The button carries what the clicker saw: the decision is refused
        // (409 args_changed) if the arguments changed since.
        let value = button_value(&a.id, &crate::service::review_digest(a));
        let mut buttons = Vec::new();
        for d in [
            DecisionKind::Approve,
            DecisionKind::Reject,
            DecisionKind::Edit,
            DecisionKind::Respond,
        ] {
            if !a.allowed_decisions.contains(&d) {
                continue;
            }
            let (label, action, style) = match d {
                DecisionKind::Approve => ("Approve", ACTION_APPROVE, Some("primary")),
                DecisionKind::Reject => ("Reject", ACTION_REJECT, Some("danger")),
                DecisionKind::Edit => ("Edit", ACTION_EDIT, None),
                DecisionKind::Respond => ("Respond", ACTION_RESPOND, None),
            };
            let mut b = json!({
                "type": "button",
                "action_id": action,
                "text": {"type": "plain_text", "text": label},
                "value": value,
            });
            if let Some(s) = style {
                b["style"] = json!(s);
            }
            buttons.push(b);
        }
        if !buttons.is_empty() {
            blocks
                .push(json!({"type": "actions", "block_id": "pliuz_actions", "elements": buttons}));
        }
    }
    blocks.push(inbox_footer(
        &request_url(public_url, &a.id),
        "request",
        &a.id,
    ));
    json!({"text": fallback_text(a), "blocks": blocks})
}

/// A decision button's value: `ID:ARGS_DIGEST`.
pub fn button_value(id: &str, args_digest: &str) -> String {
    format!("{id}:{args_digest}")
}

/// Splits a button value into (approval id, reviewed digest). Messages
/// posted before buttons carried a digest give an empty digest, which never
/// matches: such a click is refused as stale.
pub fn parse_button_value(v: &str) -> (&str, &str) {
    v.split_once(':').unwrap_or((v, ""))
}

/// What a modal carries back to us on submission.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ModalMeta {
    pub approval_id: String,
    /// The `args_digest` the decider saw when opening the modal.
    #[serde(default)]
    pub args_digest: String,
    #[serde(default)]
    pub channel: Option<String>,
    #[serde(default)]
    pub ts: Option<String>,
}

fn modal_intro(a: &Approval) -> Value {
    json!({"type": "section", "block_id": "intro", "text": {"type": "mrkdwn", "text": format!(
        "{} requested by {} (policy {})",
        code(&a.call.tool_name, 200),
        code(&a.agent, 200),
        code(&a.policy, 200)
    )}})
}

/// A modal about `a` (its intro first, then `inputs`) that carries `meta`
/// back on submission.
fn modal(
    a: &Approval,
    meta: &ModalMeta,
    callback_id: &str,
    (title, submit): (&str, &str),
    inputs: Vec<Value>,
) -> Value {
    let mut blocks = vec![modal_intro(a)];
    blocks.extend(inputs);
    modal_view(callback_id, meta, (title, submit), blocks)
}

/// A modal view of `blocks` that carries `meta` back on submission.
pub(super) fn modal_view(
    callback_id: &str,
    meta: &impl serde::Serialize,
    (title, submit): (&str, &str),
    blocks: Vec<Value>,
) -> Value {
    json!({
        "type": "modal",
        "callback_id": callback_id,
        "private_metadata": serde_json::to_string(meta).unwrap_or_default(),
        "title": {"type": "plain_text", "text": title},
        "submit": {"type": "plain_text", "text": submit},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": blocks,
    })
}

/// An optional select in a modal, offering `options` (each made by
/// [`select_option`]).
pub(super) fn select_input(
    block_id: &str,
    action_id: &str,
    label: &str,
    placeholder: &str,
    options: Vec<Value>,
) -> Value {
    json!({
        "type": "input",
        "block_id": block_id,
        "optional": true,
        "label": {"type": "plain_text", "text": label},
        "element": {"type": "static_select", "action_id": action_id, "options": options,
            "placeholder": {"type": "plain_text", "text": placeholder}},
    })
}

/// One option of a select. Slack's limits: its text at most 75 characters
/// (shortened here), its value 150 (the caller's to keep).
pub(super) fn select_option(text: &str, value: &str) -> Value {
    json!({"text": {"type": "plain_text", "text": truncate(text, 75)}, "value": value})
}

/// The "why are you rejecting?" modal. With the policy's `reasons`, a
/// select offers them and the text becomes optional details.
pub fn reject_modal(a: &Approval, meta: &ModalMeta, reasons: &[String]) -> Value {
    let mut inputs = Vec::new();
    if !reasons.is_empty() {
        let options = reasons
            .iter()
            .map(|r| select_option(r, &truncate(r, 150)))
            .collect();
        inputs.push(select_input(
            BLOCK_REASON_CHOICE,
            INPUT_REASON_CHOICE,
            "Reason (the agent sees it)",
            "Choose a reason",
            options,
        ));
    }
    let label = if reasons.is_empty() {
        "Reason (the agent sees it)"
    } else {
        "Details, or another reason"
    };
    inputs.push(json!({
        "type": "input",
        "block_id": BLOCK_REASON,
        "optional": !reasons.is_empty(),
        "label": {"type": "plain_text", "text": label},
        "element": {"type": "plain_text_input", "action_id": INPUT_REASON, "multiline": true, "max_length": 2000},
    }));
    modal(a, meta, VIEW_REJECT, ("Reject request", "Reject"), inputs)
}

/// The "answer in the tool's place" modal (a `respond` decision).
pub fn respond_modal(a: &Approval, meta: &ModalMeta) -> Value {
    let message = json!({
        "type": "input",
        "block_id": BLOCK_REASON,
        "label": {"type": "plain_text", "text": "Your answer (the agent gets it instead of the tool's result)"},
        "element": {"type": "plain_text_input", "action_id": INPUT_REASON, "multiline": true, "max_length": 2000},
    });
    modal(
        a,
        meta,
        VIEW_RESPOND,
        ("Respond instead", "Send answer"),
        vec![message],
    )
}

/// The edit modal: the arguments under review as JSON. `None` when they are
/// too long for a Slack text input.
pub fn edit_modal(a: &Approval, meta: &ModalMeta) -> Option<Value> {
    let args = serde_json::to_string_pretty(&Value::Object(a.args_under_review().clone()))
        .unwrap_or_else(|_| "{}".into());
    if args.chars().count() > MAX_INPUT_CHARS {
        return None;
    }
    let inputs = vec![
        json!({
            "type": "input",
            "block_id": BLOCK_ARGS,
            "label": {"type": "plain_text", "text": "Arguments (JSON object)"},
            "element": {"type": "plain_text_input", "action_id": INPUT_ARGS, "multiline": true, "initial_value": args, "max_length": MAX_INPUT_CHARS},
        }),
        json!({
            "type": "input",
            "block_id": BLOCK_REASON,
            "optional": true,
            "label": {"type": "plain_text", "text": "Reason (optional)"},
            "element": {"type": "plain_text_input", "action_id": INPUT_REASON, "multiline": true, "max_length": 2000},
        }),
    ];
    let title = ("Edit and approve", "Approve edited");
    Some(modal(a, meta, VIEW_EDIT, title, inputs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::approval::Settlement;

    fn approval() -> Approval {
        let mut args = Map::new();
        args.insert("note".into(), json!("hi <@U123> & <!channel>"));
        args.insert("long".into(), json!("x".repeat(1000)));
        args.insert("n".into(), json!(5000));
        let sample = crate::approval::sample(1);
        Approval {
            call: crate::approval::RequestedCall {
                tool_args: args,
                originator: None,
                ..sample.call
            },
            allowed_decisions: vec![DecisionKind::Approve, DecisionKind::Reject],
            execute_within_ms: 86_400_000,
            expires_at: 30 * 60 * 1000,
            ..sample
        }
    }

    #[test]
    fn escapes_and_truncates() {
        assert_eq!(escape("a & <b> <!here>"), "a &amp; &lt;b&gt; &lt;!here&gt;");
        let s = args_summary(&approval().call.tool_args);
        assert!(s.contains("&lt;@U123&gt; &amp; &lt;!channel&gt;"), "{s}");
        assert!(!s.contains("<@U123>"));
        assert!(s.contains(&format!("{}…", "x".repeat(MAX_VALUE_CHARS - 1))));
        assert!(!s.contains(&"x".repeat(MAX_VALUE_CHARS + 1)));
    }

    #[test]
    fn buttons_follow_the_policy_and_vanish_once_settled() {
        let mut a = approval();
        let m = message(&a, "http://p", 0);
        let text = m.to_string();
        assert!(text.contains(ACTION_APPROVE) && text.contains(ACTION_REJECT));
        assert!(!text.contains(ACTION_EDIT));
        assert!(text.contains("http://p/requests/a1"));
        assert!(text.contains("30 min"));
        a.status = Status::Rejected;
        a.settlement = Some(Settlement {
            status: Status::Rejected,
            by: "user:fin@example.com".into(),
            reason: Some("too <much>".into()),
            at: 1000,
        });
        let text = message(&a, "http://p", 0).to_string();
        assert!(!text.contains(ACTION_APPROVE));
        assert!(text.contains("*Rejected* by `fin@example.com`"));
        assert!(text.contains("too &lt;much&gt;"));
    }

    #[test]
    fn agent_text_stays_inside_code() {
        assert_eq!(code("a`b\n*c*\r_d_ ~e~", 100), "`aˋb *c* _d_ ~e~`");
        assert_eq!(code("", 10), "`(empty)`");
        assert_eq!(code("\u{2028}", 10), "`(empty)`");
        let b = code_block("ok\n```\n:white_check_mark: *Approved*\u{2029}x", 100);
        assert_eq!(b, "```ok\nˋˋˋ\n:white_check_mark: *Approved* x```");
        assert_eq!(parse_button_value("id1:abc"), ("id1", "abc"));
        assert_eq!(parse_button_value("id1"), ("id1", ""));
    }

    #[test]
    fn an_unreported_execution_reads_as_outcome_unknown() {
        let mut a = approval();
        a.status = Status::Executing;
        a.settlement = Some(Settlement {
            status: Status::Approved,
            by: "user:fin@example.com".into(),
            reason: None,
            at: 1000,
        });
        let text = message(&a, "http://p", 0).to_string();
        assert!(!text.contains(ACTION_APPROVE));
        assert!(
            text.contains("outcome unknown — check before retrying"),
            "{text}"
        );
        a.status = Status::Executed;
        a.execution = Some(crate::approval::Execution {
            outcome: crate::approval::ExecutionOutcome::Error,
            latency_ms: None,
            output_excerpt: None,
            reported_at: 2000,
        });
        let text = message(&a, "http://p", 0).to_string();
        assert!(text.contains("the agent ran it (error)"), "{text}");
        assert!(!text.contains("unknown"), "{text}");
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(human_duration(1), "1 s");
        assert_eq!(human_duration(90_000), "1 min");
        assert_eq!(human_duration(2 * 3_600_000 + 5 * 60_000), "2 h 5 min");
        assert_eq!(human_duration(26 * 3_600_000), "1 d 2 h");
    }
}
