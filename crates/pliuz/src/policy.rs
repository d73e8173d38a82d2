//! Policies as code: which tools need whose approval, how many, for how long,
//! and which calls a CEL condition may settle without a human. Pure: parsing
//! and evaluation only.

use crate::approval::DecisionKind;
use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// Who may decide: a named user or every member of a group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(into = "String")]
pub enum Approver {
    User(String),
    Group(String),
}

impl From<Approver> for String {
    fn from(a: Approver) -> String {
        a.to_string()
    }
}

impl fmt::Display for Approver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Approver::User(e) => write!(f, "user:{e}"),
            Approver::Group(g) => write!(f, "group:{g}"),
        }
    }
}

impl Approver {
    pub fn parse(s: &str) -> Result<Approver, String> {
        match s.split_once(':') {
            Some(("user", email)) if email.contains('@') => {
                Ok(Approver::User(email.to_lowercase()))
            }
            Some(("user", _)) => Err(format!(
                "approver '{s}': after 'user:' put an email address"
            )),
            Some(("group", g)) if !g.trim().is_empty() => Ok(Approver::Group(g.to_owned())),
            _ => Err(format!(
                "approver '{s}' must be 'user:EMAIL' or 'group:NAME'"
            )),
        }
    }
}

/// The most evaluation steps a condition may take on one call (see
/// [`Condition::cost`]); over it, the condition is not evaluated and a person
/// decides. Documented in docs/limits.md.
pub const MAX_CONDITION_COST: u64 = 1_000_000;

/// CEL's standard functions and macros, built once: `Context::default()`
/// builds them anew for every evaluation, which was most of an
/// auto-approved create's condition cost (issue #13).
static STANDARD_ENV: std::sync::LazyLock<Arc<cel::Env>> =
    std::sync::LazyLock::new(|| Arc::new(cel::Env::stdlib()));

/// A compiled CEL condition, kept with its source for the audit log and UI.
#[derive(Clone)]
pub struct Condition {
    pub source: String,
    program: Arc<cel::Program>,
}

impl fmt::Debug for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Condition").field(&self.source).finish()
    }
}

impl Condition {
    pub fn compile(source: &str) -> Result<Condition, String> {
        let program = cel::Program::compile(source)
            .map_err(|e| format!("CEL condition '{source}' does not parse: {e}"))?;
        Ok(Condition {
            source: source.to_owned(),
            program: Arc::new(program),
        })
    }

    /// An upper estimate of the steps evaluating this condition takes when
    /// every collection it iterates holds `items` elements: each node costs
    /// one step, and the body of a comprehension (`all`, `exists`, `map`,
    /// `filter`) costs its steps once per element, so nested comprehensions
    /// multiply.
    pub fn cost(&self, items: u64) -> u64 {
        fn walk(e: &cel::IdedExpr, items: u64) -> u64 {
            use cel::common::ast::{EntryExpr, Expr};
            let sum = |es: &mut dyn Iterator<Item = &cel::IdedExpr>| {
                es.fold(0u64, |acc, e| acc.saturating_add(walk(e, items)))
            };
            let own = match &e.expr {
                Expr::Comprehension(c) => {
                    let body = walk(&c.loop_cond, items).saturating_add(walk(&c.loop_step, items));
                    walk(&c.iter_range, items)
                        .saturating_add(walk(&c.accu_init, items))
                        .saturating_add(walk(&c.result, items))
                        .saturating_add(body.saturating_mul(items))
                }
                Expr::Call(c) => sum(&mut c.target.iter().map(|t| &**t).chain(c.args.iter())),
                Expr::List(l) => sum(&mut l.elements.iter()),
                Expr::Map(m) => sum(&mut m.entries.iter().flat_map(|en| match &en.expr {
                    EntryExpr::MapEntry(me) => vec![&me.key, &me.value],
                    EntryExpr::StructField(f) => vec![&f.value],
                })),
                Expr::Struct(st) => sum(&mut st.entries.iter().flat_map(|en| match &en.expr {
                    EntryExpr::MapEntry(me) => vec![&me.key, &me.value],
                    EntryExpr::StructField(f) => vec![&f.value],
                })),
                Expr::Select(sel) => walk(&sel.operand, items),
                Expr::Ident(_) | Expr::Literal(_) | Expr::Unspecified => 0,
            };
            own.saturating_add(1)
        }
        walk(self.program.expression(), items.max(1))
    }

    /// Evaluates to a boolean. Anything else (an error, a missing field, a
    /// non-boolean, a cost over [`MAX_CONDITION_COST`]) counts as "no":
    /// conditions can only skip a human when they clearly hold.
    pub fn holds(&self, call: &CallFacts<'_>) -> Result<bool, String> {
        // Every JSON value the call carries bounds the size of any list a
        // comprehension can iterate (literals and concatenation aside).
        let items = call.values();
        let cost = self.cost(items);
        if cost > MAX_CONDITION_COST {
            return Err(format!(
                "condition '{}' was not evaluated: on these arguments ({items} values) it could take about {cost} steps, over the budget of {MAX_CONDITION_COST}",
                self.source
            ));
        }
        let mut ctx = cel::Context::with_env(Arc::clone(&STANDARD_ENV));
        let vars: [(&str, Value); 6] = [
            ("args", Value::Object(call.args.clone())),
            ("tool", Value::String(call.tool.to_owned())),
            ("agent", Value::String(call.agent.to_owned())),
            ("policy", Value::String(call.policy.to_owned())),
            (
                "originator",
                Value::String(call.originator.unwrap_or_default().to_owned()),
            ),
            (
                "metadata",
                call.metadata.cloned().unwrap_or(Value::Object(Map::new())),
            ),
        ];
        for (name, value) in vars {
            ctx.add_variable(name, value)
                .map_err(|e| format!("cannot expose '{name}' to CEL: {e}"))?;
        }
        match self.program.execute(&ctx) {
            Ok(cel::Value::Bool(b)) => Ok(b),
            Ok(other) => Err(format!(
                "condition '{}' gave {:?}, not a boolean",
                self.source, other
            )),
            Err(e) => Err(format!("condition '{}' failed: {e}", self.source)),
        }
    }
}

/// How many JSON values (scalars, arrays, objects) there are in `values`,
/// counted without recursion.
fn json_nodes<'a>(values: impl IntoIterator<Item = &'a Value>) -> u64 {
    let mut stack: Vec<&Value> = values.into_iter().collect();
    let mut n = 0u64;
    while let Some(v) = stack.pop() {
        n += 1;
        match v {
            Value::Array(items) => stack.extend(items),
            Value::Object(map) => stack.extend(map.values()),
            _ => {}
        }
    }
    n
}

/// The facts about a call that conditions may look at.
#[derive(Debug, Clone, Copy)]
pub struct CallFacts<'a> {
    pub tool: &'a str,
    pub args: &'a Map<String, Value>,
    pub agent: &'a str,
    pub policy: &'a str,
    pub originator: Option<&'a str>,
    pub metadata: Option<&'a Value>,
}

impl CallFacts<'_> {
    /// How many JSON values the call carries: a bound on the size of any
    /// list a comprehension can iterate (literals and concatenation aside).
    pub fn values(&self) -> u64 {
        json_nodes(self.args.values()) + self.metadata.map_or(0, |m| json_nodes([m]))
    }
}

#[derive(Debug, Clone)]
pub struct Policy {
    pub name: String,
    pub tools: Vec<String>,
    pub approvers: Vec<Approver>,
    pub decisions: Vec<DecisionKind>,
    pub required_approvals: u32,
    pub expires_in: Duration,
    /// After approval, how long the tool may still be started (claimed).
    pub execute_within: Duration,
    pub auto_approve: Option<Condition>,
    pub auto_reject: Option<Condition>,
    pub slack_channel: Option<String>,
    pub description: Option<String>,
    /// `email = true`: each request is mailed to `email_to`, or else to the
    /// approvers (see docs/email.md). `None`: no e-mail.
    pub email: Option<EmailTo>,
    /// `remind_after`: a still-pending request is notified again once, after this long.
    pub remind_after: Option<Duration>,
    /// `escalate_after` + `escalate_to`.
    pub escalation: Option<Escalation>,
    /// Reasons offered when rejecting (the inbox's select, Slack's reject
    /// modal); free text stays possible.
    pub reject_reasons: Vec<String>,
}

/// Who a policy's request e-mails go to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EmailTo {
    /// The policy's approvers (users' e-mail addresses).
    Approvers,
    /// `email_to`: these people and groups.
    These(Vec<Approver>),
}

/// Nobody decided within `after`: the `to` people and groups may decide too.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Escalation {
    pub after: Duration,
    pub to: Vec<Approver>,
}

/// The most reasons a policy may offer, and their length (docs/limits.md).
pub const MAX_REJECT_REASONS: usize = 20;
pub const MAX_REJECT_REASON_CHARS: usize = 150;

/// `execute_within` when a policy does not set it.
pub const DEFAULT_EXECUTE_WITHIN: Duration = Duration::from_secs(24 * 3600);

/// The outcome of evaluating a policy's conditions on one call.
#[derive(Debug, Clone, PartialEq)]
pub enum AutoDecision {
    Approve {
        condition: String,
    },
    Reject {
        condition: String,
    },
    /// A human decides. `errors` lists conditions that failed to evaluate,
    /// which are recorded so an operator can fix them.
    Human {
        errors: Vec<String>,
    },
}

/// What a policy says, as shown by the API and recorded in the audit log
/// (so the log itself tells who could intervene on what).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PolicySummary {
    pub name: String,
    pub description: Option<String>,
    pub tools: Vec<String>,
    pub approvers: Vec<String>,
    pub decisions: Vec<DecisionKind>,
    pub required_approvals: u32,
    pub expires_in_seconds: u64,
    pub execute_within_seconds: u64,
    pub auto_approve: Option<String>,
    pub auto_reject: Option<String>,
    pub slack_channel: Option<String>,
    // The keys below are left out when unset, so that a policy without
    // them is recorded exactly as before they existed.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub email: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub email_to: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remind_after_seconds: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub escalate_after_seconds: Option<u64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub escalate_to: Vec<String>,
    /// Omitted when empty, so that `policy.loaded` entries of policies
    /// without reasons keep their bytes.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub reject_reasons: Vec<String>,
}

impl Policy {
    /// Whom the policy's e-mails ask: `email_to`, or else its approvers.
    pub fn mailed(&self) -> &[Approver] {
        match &self.email {
            Some(EmailTo::These(to)) => to,
            _ => &self.approvers,
        }
    }

    pub fn summary(&self) -> PolicySummary {
        PolicySummary {
            name: self.name.clone(),
            description: self.description.clone(),
            tools: self.tools.clone(),
            approvers: self.approvers.iter().map(|a| a.to_string()).collect(),
            decisions: self.decisions.clone(),
            required_approvals: self.required_approvals,
            expires_in_seconds: self.expires_in.as_secs(),
            execute_within_seconds: self.execute_within.as_secs(),
            auto_approve: self.auto_approve.as_ref().map(|c| c.source.clone()),
            auto_reject: self.auto_reject.as_ref().map(|c| c.source.clone()),
            slack_channel: self.slack_channel.clone(),
            email: self.email.is_some(),
            email_to: match &self.email {
                Some(EmailTo::These(to)) => to.iter().map(|a| a.to_string()).collect(),
                _ => vec![],
            },
            remind_after_seconds: self.remind_after.map(|d| d.as_secs()),
            escalate_after_seconds: self.escalation.as_ref().map(|e| e.after.as_secs()),
            escalate_to: self
                .escalation
                .iter()
                .flat_map(|e| e.to.iter().map(|a| a.to_string()))
                .collect(),
            reject_reasons: self.reject_reasons.clone(),
        }
    }

    /// The reason a rejection carries when given as one of
    /// `reject_reasons` (`choice`, empty for none) and/or free text: the
    /// reason itself, followed by the details; `Err` when the choice is not
    /// one of the policy's.
    pub fn reject_reason(
        &self,
        choice: &str,
        text: Option<&str>,
    ) -> Result<Option<String>, String> {
        let text = text.map(str::trim).filter(|t| !t.is_empty());
        let choice = choice.trim();
        if choice.is_empty() {
            return Ok(text.map(str::to_owned));
        }
        if !self.reject_reasons.iter().any(|r| r == choice) {
            return Err(format!(
                "'{}' is not one of the reasons policy '{}' offers",
                crate::text::truncate(choice, MAX_REJECT_REASON_CHARS),
                self.name
            ));
        }
        Ok(Some(match text {
            Some(t) => format!("{choice}: {t}"),
            None => choice.to_owned(),
        }))
    }

    pub fn covers_tool(&self, tool: &str) -> bool {
        self.tools.iter().any(|t| t == "*" || t == tool)
    }

    /// Whether a person with this email and groups may decide under this policy.
    pub fn is_approver(&self, email: &str, groups: &[String]) -> bool {
        matches_any(&self.approvers, email, groups)
    }

    /// Whether a person with this email and groups is named by the
    /// policy's `escalate_to` (who may decide once a request is escalated;
    /// `Approval::may_approve_with`).
    pub fn is_escalation_approver(&self, email: &str, groups: &[String]) -> bool {
        self.escalation
            .as_ref()
            .is_some_and(|e| matches_any(&e.to, email, groups))
    }

    /// The most steps evaluating both automatic conditions may take when
    /// every list they iterate holds `items` elements ([`Condition::cost`]).
    pub fn condition_cost(&self, items: u64) -> u64 {
        [&self.auto_reject, &self.auto_approve]
            .into_iter()
            .flatten()
            .fold(0, |sum, c| sum.saturating_add(c.cost(items)))
    }

    /// `auto_reject` wins over `auto_approve`: when both hold, failing closed
    /// means not running the tool.
    pub fn auto_decision(&self, call: &CallFacts<'_>) -> AutoDecision {
        let mut errors = Vec::new();
        if let Some(c) = &self.auto_reject {
            match c.holds(call) {
                Ok(true) => {
                    return AutoDecision::Reject {
                        condition: c.source.clone(),
                    }
                }
                Ok(false) => {}
                Err(e) => errors.push(e),
            }
        }
        if let Some(c) = &self.auto_approve {
            match c.holds(call) {
                Ok(true) if errors.is_empty() => {
                    return AutoDecision::Approve {
                        condition: c.source.clone(),
                    }
                }
                Ok(_) => {}
                Err(e) => errors.push(e),
            }
        }
        AutoDecision::Human { errors }
    }
}

/// Whether a person with this email and groups is one of `list`.
pub fn matches_any(list: &[Approver], email: &str, groups: &[String]) -> bool {
    list.iter().any(|a| match a {
        Approver::User(e) => e.eq_ignore_ascii_case(email),
        Approver::Group(g) => groups.iter().any(|ug| ug == g),
    })
}

/// One mistake in a policy file, with the line it is on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyError {
    pub line: Option<usize>,
    pub message: String,
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(l) => write!(f, "line {l}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// All loaded policies plus the optional fallback for unmatched tools.
#[derive(Debug, Clone, Default)]
pub struct PolicySet {
    policies: BTreeMap<String, Arc<Policy>>,
    order: Vec<String>,
    default_policy: Option<String>,
    /// SHA-256 of the source text, recorded in the audit log on load.
    pub source_hash: String,
    pub source: String,
}

/// Why a call has no policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MatchError {
    UnknownPolicy(String),
    NoMatch(String),
}

impl fmt::Display for MatchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MatchError::UnknownPolicy(p) => write!(
                f,
                "no policy is named '{p}'; name one defined in pliuz.toml or omit 'policy' to match by tool name"
            ),
            MatchError::NoMatch(t) => write!(
                f,
                "no policy covers the tool '{t}', and no default_policy is configured; add the tool to a policy's 'tools' list"
            ),
        }
    }
}

impl PolicySet {
    pub fn new(policies: Vec<Policy>, default_policy: Option<String>, source: String) -> PolicySet {
        use sha2::Digest;
        let source_hash = hex::encode(sha2::Sha256::digest(source.as_bytes()));
        let order = policies.iter().map(|p| p.name.clone()).collect();
        let policies = policies
            .into_iter()
            .map(|p| (p.name.clone(), Arc::new(p)))
            .collect();
        PolicySet {
            policies,
            order,
            default_policy,
            source_hash,
            source,
        }
    }

    pub fn get(&self, name: &str) -> Option<&Arc<Policy>> {
        self.policies.get(name)
    }

    /// Policies in file order.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Policy>> {
        self.order.iter().filter_map(|n| self.policies.get(n))
    }

    pub fn default_policy(&self) -> Option<&str> {
        self.default_policy.as_deref()
    }

    /// A named policy wins; otherwise the first policy (in file order) that
    /// lists the tool; otherwise the default policy; otherwise refuse.
    pub fn resolve(&self, named: Option<&str>, tool: &str) -> Result<Arc<Policy>, MatchError> {
        if let Some(name) = named {
            return self
                .policies
                .get(name)
                .cloned()
                .ok_or_else(|| MatchError::UnknownPolicy(name.to_owned()));
        }
        self.iter()
            .find(|p| p.covers_tool(tool))
            .cloned()
            .or_else(|| {
                self.default_policy
                    .as_ref()
                    .and_then(|d| self.policies.get(d).cloned())
            })
            .ok_or_else(|| MatchError::NoMatch(tool.to_owned()))
    }
}

/// Parses a duration like `30m`, `2h`, `90s`, `1h 30m`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim())
        .map_err(|e| format!("'{s}' is not a duration ({e}); write e.g. \"30m\", \"2h\", \"90s\""))
}

/// Policy `refunds` for tool `issue_refund`, decided by `approvers` (one
/// approval, every decision, no conditions), for tests.
#[cfg(test)]
pub(crate) fn sample(approvers: &[Approver]) -> Policy {
    Policy {
        name: "refunds".into(),
        tools: vec!["issue_refund".into()],
        approvers: approvers.to_vec(),
        decisions: DecisionKind::ALL.to_vec(),
        required_approvals: 1,
        expires_in: Duration::from_secs(60),
        execute_within: DEFAULT_EXECUTE_WITHIN,
        auto_approve: None,
        auto_reject: None,
        slack_channel: None,
        description: None,
        email: None,
        remind_after: None,
        escalation: None,
        reject_reasons: vec![],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn facts<'a>(args: &'a Map<String, Value>) -> CallFacts<'a> {
        CallFacts {
            tool: "issue_refund",
            args,
            agent: "support-bot",
            policy: "refunds",
            originator: None,
            metadata: None,
        }
    }

    fn policy() -> Policy {
        Policy {
            auto_approve: Some(Condition::compile("args.amount_cents <= 1000").unwrap()),
            auto_reject: Some(Condition::compile("agent == \"evil\"").unwrap()),
            ..sample(&[Approver::Group("finance".into())])
        }
    }

    #[test]
    fn cel_conditions_decide_only_when_they_clearly_hold() {
        let p = policy();
        let small = json!({"amount_cents": 500}).as_object().cloned().unwrap();
        let big = json!({"amount_cents": 5000}).as_object().cloned().unwrap();
        let missing = json!({"order": "x"}).as_object().cloned().unwrap();
        assert!(matches!(
            p.auto_decision(&facts(&small)),
            AutoDecision::Approve { .. }
        ));
        assert_eq!(
            p.auto_decision(&facts(&big)),
            AutoDecision::Human { errors: vec![] }
        );
        match p.auto_decision(&facts(&missing)) {
            AutoDecision::Human { errors } => assert_eq!(errors.len(), 1),
            other => panic!("expected a human decision, got {other:?}"),
        }
        let mut f = facts(&small);
        f.agent = "evil";
        assert!(matches!(p.auto_decision(&f), AutoDecision::Reject { .. }));
    }

    #[test]
    fn nested_comprehensions_over_big_lists_are_over_budget() {
        let nested = Condition::compile("args.items.all(x, args.items.all(y, x >= 0))").unwrap();
        let items: Vec<Value> = (0..3000).map(Value::from).collect();
        let args = json!({ "items": items }).as_object().cloned().unwrap();
        let err = nested.holds(&facts(&args)).unwrap_err();
        assert!(err.contains("budget"), "{err}");
        // A single pass over the same list is well within the budget.
        let single = Condition::compile("args.items.all(x, x >= 0)").unwrap();
        assert_eq!(single.holds(&facts(&args)), Ok(true));
        assert!(single.cost(3001) < MAX_CONDITION_COST);
        assert!(nested.cost(3001) > MAX_CONDITION_COST);
    }

    #[test]
    fn resolve_by_name_tool_or_default() {
        let set = PolicySet::new(vec![policy()], None, String::new());
        assert_eq!(set.resolve(None, "issue_refund").unwrap().name, "refunds");
        assert_eq!(
            set.resolve(Some("nope"), "issue_refund").unwrap_err(),
            MatchError::UnknownPolicy("nope".into())
        );
        assert_eq!(
            set.resolve(None, "delete_db").unwrap_err(),
            MatchError::NoMatch("delete_db".into())
        );
        let set = PolicySet::new(vec![policy()], Some("refunds".into()), String::new());
        assert_eq!(set.resolve(None, "delete_db").unwrap().name, "refunds");
    }

    #[test]
    fn a_chosen_reject_reason_leads_the_reason() {
        let mut p = policy();
        p.reject_reasons = vec!["wrong amount".into()];
        assert_eq!(
            p.reject_reason("wrong amount", None),
            Ok(Some("wrong amount".into()))
        );
        assert_eq!(
            p.reject_reason("wrong amount", Some(" use 10 ")),
            Ok(Some("wrong amount: use 10".into()))
        );
        assert_eq!(p.reject_reason("", Some("no")), Ok(Some("no".into())));
        assert!(p.reject_reason("made up", None).is_err());
    }

    #[test]
    fn approvers_by_user_and_group() {
        let mut p = policy();
        p.approvers
            .push(Approver::parse("user:Ops@Example.com").unwrap());
        assert!(p.is_approver("ops@example.com", &[]));
        assert!(p.is_approver("x@y", &["finance".into()]));
        assert!(!p.is_approver("x@y", &["sales".into()]));
        assert!(Approver::parse("finance").is_err());
    }

    #[test]
    fn escalation_approvers_and_an_unchanged_summary() {
        let mut p = policy();
        let before = serde_json::to_string(&p.summary()).unwrap();
        assert!(
            !before.contains("email") && !before.contains("escalate"),
            "{before}"
        );
        assert!(!p.is_escalation_approver("x@y", &["leads".into()]));
        p.escalation = Some(Escalation {
            after: Duration::from_secs(3600),
            to: vec![Approver::Group("leads".into())],
        });
        assert!(p.is_escalation_approver("x@y", &["leads".into()]));
        assert!(!p.is_escalation_approver("x@y", &["finance".into()]));
        assert!(!p.is_approver("x@y", &["leads".into()]));
        let after = serde_json::to_value(p.summary()).unwrap();
        assert_eq!(after["escalate_after_seconds"], 3600);
        assert_eq!(after["escalate_to"], json!(["group:leads"]));
    }
}
