//! Questions an agent asks a person ("human as a tool") and their typed
//! answers (pure: validation and the answer rules; the caller passes the
//! clock and the answerer's standing).

use crate::approval::Actor;
use serde::{Deserialize, Serialize};

/// Limits on a question, documented in docs/limits.md.
pub const MAX_TEXT_CHARS: usize = 4000;
pub const MAX_CHOICES: usize = 20;
pub const MAX_CHOICE_VALUE_CHARS: usize = 100;
pub const MAX_CHOICE_LABEL_CHARS: usize = 200;
pub const MAX_ANSWER_CHARS: usize = 4000;

type Millis = i64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum QuestionStatus {
    Pending,
    Answered,
    Expired,
}

crate::enum_names::names!(QuestionStatus {
    Pending => "pending",
    Answered => "answered",
    Expired => "expired",
});

/// One option the person may pick: `value` is what the agent gets back,
/// `label` what the person reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Choice {
    pub value: String,
    pub label: String,
}

/// The answer, as the agent receives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The `value` of the chosen option, if any.
    pub choice: Option<String>,
    /// Free text, if any.
    pub text: Option<String>,
    /// `user:EMAIL`.
    pub answered_by: String,
    pub answered_at: Millis,
}

/// What the agent asks, with its defaults applied (labels, whether free
/// text is accepted). Fixed once asked. The policy is not part of it: the
/// agent may name one, the question keeps the one resolved. Serialised as
/// the API's fields (`docs/questions.md`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Asked {
    pub text: String,
    pub choices: Vec<Choice>,
    pub allow_free_text: bool,
    // Who the question is about, normalised when asked
    // (`crate::originator`); not `///`, which the API document would show.
    pub originator: Option<String>,
    pub idempotency_key: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Question {
    pub id: String,
    pub agent: String,
    pub policy: String,
    pub asked: Asked,
    /// SHA-256 of what was asked (idempotent replays must ask the same).
    pub digest: String,
    pub status: QuestionStatus,
    pub answer: Option<Answer>,
    pub created_at: Millis,
    pub expires_at: Millis,
    pub version: i64,
}

/// Why an answer is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnswerRefusal {
    #[error("agent keys cannot answer questions; a person must, with a user token, in the inbox or in Slack")]
    NotAPerson,
    #[error("{who} is not an approver of policy '{policy}', so may not answer its questions")]
    NotApprover { who: String, policy: String },
    #[error("the question is about {who}'s own request: somebody else must answer it")]
    Originator { who: String },
    #[error("question {id} is {status}, not pending: it can no longer be answered")]
    NotPending { id: String, status: QuestionStatus },
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
}

impl Question {
    /// Whether `actor` (with `approver`: an approver of the policy) may
    /// answer now, before looking at the answer itself.
    pub fn may_answer(&self, actor: &Actor, approver: bool) -> Result<(), AnswerRefusal> {
        let who = match actor {
            Actor::User(email) => email,
            _ => return Err(AnswerRefusal::NotAPerson),
        };
        if !approver {
            return Err(AnswerRefusal::NotApprover {
                who: who.clone(),
                policy: self.policy.clone(),
            });
        }
        if self
            .asked
            .originator
            .as_deref()
            .is_some_and(|o| crate::originator::names_person(o, who))
        {
            return Err(AnswerRefusal::Originator { who: who.clone() });
        }
        self.check_pending()
    }

    /// Only a pending question can still be answered.
    fn check_pending(&self) -> Result<(), AnswerRefusal> {
        if self.status != QuestionStatus::Pending {
            return Err(AnswerRefusal::NotPending {
                id: self.id.clone(),
                status: self.status,
            });
        }
        Ok(())
    }

    /// Checks an answer against what the question offers: a known choice,
    /// free text only where allowed, and something given.
    pub fn check_answer(
        &self,
        choice: Option<&str>,
        text: Option<&str>,
    ) -> Result<(), AnswerRefusal> {
        let invalid = |field, message: String| AnswerRefusal::Invalid { field, message };
        if let Some(c) = choice {
            if !self.asked.choices.iter().any(|o| o.value == c) {
                let known: Vec<&str> = self
                    .asked
                    .choices
                    .iter()
                    .map(|o| o.value.as_str())
                    .collect();
                return Err(invalid(
                    "choice",
                    if known.is_empty() {
                        "this question offers no choices; answer with text".into()
                    } else {
                        format!(
                            "'{}' is not one of the choices: {}",
                            crate::text::truncate(c, MAX_CHOICE_VALUE_CHARS),
                            known.join(", ")
                        )
                    },
                ));
            }
        }
        if let Some(t) = text {
            if !self.asked.allow_free_text {
                return Err(invalid(
                    "text",
                    "this question takes one of its choices, not free text".into(),
                ));
            }
            if t.chars().count() > MAX_ANSWER_CHARS {
                return Err(invalid(
                    "text",
                    format!("must be at most {MAX_ANSWER_CHARS} characters"),
                ));
            }
        }
        if choice.is_none() && text.is_none() {
            return Err(invalid(
                if self.asked.choices.is_empty() {
                    "text"
                } else {
                    "choice"
                },
                "give a choice or a text answer".into(),
            ));
        }
        Ok(())
    }

    /// Records the answer (the caller checked [`Question::may_answer`]).
    pub fn answer(
        &mut self,
        by: &Actor,
        choice: Option<String>,
        text: Option<String>,
        now: Millis,
    ) -> Result<(), AnswerRefusal> {
        self.check_pending()?;
        self.check_answer(choice.as_deref(), text.as_deref())?;
        self.status = QuestionStatus::Answered;
        self.answer = Some(Answer {
            choice,
            text,
            answered_by: by.to_string(),
            answered_at: now,
        });
        Ok(())
    }

    pub fn is_due_to_expire(&self, now: Millis) -> bool {
        self.status == QuestionStatus::Pending && self.expires_at <= now
    }

    /// Nobody answered in time.
    pub fn expire(&mut self) {
        self.status = QuestionStatus::Expired;
    }

    /// The label of the chosen option, for display.
    pub fn label_of(&self, value: &str) -> Option<&str> {
        self.asked
            .choices
            .iter()
            .find(|c| c.value == value)
            .map(|c| c.label.as_str())
    }
}

/// Checks what an agent asks: the text, the choices (unique values, within
/// the limits) and that there is some way to answer. Returns each problem
/// as (field, message).
pub fn check_new(text: &str, choices: &[Choice], allow_free_text: bool) -> Vec<(String, String)> {
    let mut errors = Vec::new();
    let n = text.chars().count();
    if text.trim().is_empty() {
        errors.push(("text".into(), "must not be empty: ask something".into()));
    } else if n > MAX_TEXT_CHARS {
        errors.push((
            "text".into(),
            format!("must be at most {MAX_TEXT_CHARS} characters"),
        ));
    }
    if choices.len() > MAX_CHOICES {
        errors.push((
            "choices".into(),
            format!("at most {MAX_CHOICES} choices are accepted"),
        ));
    }
    for (i, c) in choices.iter().enumerate() {
        if c.value.trim().is_empty() || c.value.chars().count() > MAX_CHOICE_VALUE_CHARS {
            errors.push((
                format!("choices[{i}].value"),
                format!("must be 1 to {MAX_CHOICE_VALUE_CHARS} characters"),
            ));
        }
        if c.label.trim().is_empty() || c.label.chars().count() > MAX_CHOICE_LABEL_CHARS {
            errors.push((
                format!("choices[{i}].label"),
                format!("must be 1 to {MAX_CHOICE_LABEL_CHARS} characters"),
            ));
        }
        if choices[..i].iter().any(|o| o.value == c.value) {
            errors.push((
                format!("choices[{i}].value"),
                format!("'{}' is given twice; values must be unique", c.value),
            ));
        }
    }
    if choices.is_empty() && !allow_free_text {
        errors.push((
            "allow_free_text".into(),
            "is false and there are no choices: nobody could answer; give choices or allow free text".into(),
        ));
    }
    errors
}

/// A pending question of agent `bot` under policy `refunds`, for tests:
/// `choices` as (value, label); free text allowed.
#[cfg(test)]
pub(crate) fn sample(text: &str, choices: &[(&str, &str)]) -> Question {
    Question {
        id: "q1".into(),
        agent: "bot".into(),
        policy: "refunds".into(),
        asked: Asked {
            text: text.into(),
            choices: choices
                .iter()
                .map(|(value, label)| Choice {
                    value: (*value).into(),
                    label: (*label).into(),
                })
                .collect(),
            allow_free_text: true,
            ..Asked::default()
        },
        digest: String::new(),
        status: QuestionStatus::Pending,
        answer: None,
        created_at: 0,
        expires_at: 0,
        version: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn question() -> Question {
        let sample = sample("Which account?", &[("a", "Account A"), ("b", "Account B")]);
        Question {
            asked: Asked {
                allow_free_text: false,
                originator: Some("user:alice@example.com".into()),
                ..sample.asked
            },
            expires_at: 10,
            ..sample
        }
    }

    #[test]
    fn only_an_approver_who_is_not_the_originator_answers() {
        let q = question();
        let bob = Actor::User("bob@example.com".into());
        let alice = Actor::User("ALICE@example.com".into());
        assert!(q.may_answer(&bob, true).is_ok());
        assert!(matches!(
            q.may_answer(&bob, false),
            Err(AnswerRefusal::NotApprover { .. })
        ));
        assert!(matches!(
            q.may_answer(&alice, true),
            Err(AnswerRefusal::Originator { .. })
        ));
        assert_eq!(
            q.may_answer(&Actor::Agent("bot".into()), true),
            Err(AnswerRefusal::NotAPerson)
        );
    }

    #[test]
    fn answers_must_fit_the_question() {
        let mut q = question();
        let bob = Actor::User("bob@example.com".into());
        assert!(q.check_answer(Some("c"), None).is_err());
        assert!(q.check_answer(None, Some("free")).is_err());
        assert!(q.check_answer(None, None).is_err());
        q.answer(&bob, Some("b".into()), None, 5).unwrap();
        assert_eq!(q.status, QuestionStatus::Answered);
        assert_eq!(
            q.answer.as_ref().unwrap().answered_by,
            "user:bob@example.com"
        );
        assert!(matches!(
            q.answer(&bob, Some("a".into()), None, 6),
            Err(AnswerRefusal::NotPending { .. })
        ));
    }

    #[test]
    fn new_questions_are_checked() {
        let dup = vec![
            Choice {
                value: "x".into(),
                label: "X".into(),
            };
            2
        ];
        let errs = check_new("Why?", &dup, true);
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert_eq!(errs[0].0, "choices[1].value");
        assert!(!check_new("", &[], true).is_empty());
        assert!(!check_new("Why?", &[], false).is_empty());
        assert!(check_new("Why?", &[], true).is_empty());
    }
}
