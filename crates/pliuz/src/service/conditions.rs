//! Policy conditions evaluated off the async runtime, within a budget: a
//! static cost estimate first (`Condition::cost`, refused before any work),
//! then a wall-clock limit on a blocking thread, with a cap on how many run
//! at once. Over budget fails closed: the auto rule does not fire, a person
//! decides, and the reason is recorded in the request's audit entry
//! (`condition_errors`) and the server log.

use crate::policy::{AutoDecision, CallFacts, Policy};
use serde_json::{Map, Value};
use std::sync::{Arc, LazyLock};
use std::time::Duration;
use tokio::sync::Semaphore;

/// Longest a request waits for its conditions, queueing included.
pub const CONDITION_TIME_LIMIT: Duration = Duration::from_secs(1);

/// Evaluations running at once: at most one per core, so a flood of
/// expensive conditions cannot take every core from the HTTP server. A
/// thread that overruns keeps its permit until it finishes, so overruns
/// cannot pile up either.
static PERMITS: LazyLock<Arc<Semaphore>> = LazyLock::new(|| {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    Arc::new(Semaphore::new(cores.max(1)))
});

/// Conditions are evaluated on the request's own thread, sparing it the
/// hand-off to a blocking thread and back (issue #13), when the call carries
/// at most this many JSON values and the conditions' cost estimate on them
/// is at most [`INLINE_COST`]: a few comparisons over a small call, done in
/// microseconds. Anything bigger gets a permit and the time limit.
const INLINE_VALUES: u64 = 1_000;
const INLINE_COST: u64 = 1_000;

/// The owned facts a blocking thread needs.
pub struct Facts {
    pub tool: String,
    pub args: Map<String, Value>,
    pub agent: String,
    pub policy: String,
    pub originator: Option<String>,
    pub metadata: Option<Value>,
}

impl Facts {
    fn call(&self) -> CallFacts<'_> {
        CallFacts {
            tool: &self.tool,
            args: &self.args,
            agent: &self.agent,
            policy: &self.policy,
            originator: self.originator.as_deref(),
            metadata: self.metadata.as_ref(),
        }
    }
}

fn over_budget(policy: &Policy, why: &str) -> AutoDecision {
    tracing::warn!(policy = %policy.name, why, "policy conditions over budget; a person decides");
    AutoDecision::Human {
        errors: vec![format!(
            "conditions of policy '{}' were not evaluated: {why}; a person decides",
            policy.name
        )],
    }
}

/// The policy's automatic decision on this call, within the budget.
pub async fn auto_decision(policy: Arc<Policy>, facts: Facts) -> AutoDecision {
    if policy.auto_approve.is_none() && policy.auto_reject.is_none() {
        return AutoDecision::Human { errors: vec![] };
    }
    let call = facts.call();
    let values = call.values();
    if values <= INLINE_VALUES && policy.condition_cost(values) <= INLINE_COST {
        return policy.auto_decision(&call);
    }
    let deadline = tokio::time::Instant::now() + CONDITION_TIME_LIMIT;
    let permit = match tokio::time::timeout_at(deadline, PERMITS.clone().acquire_owned()).await {
        Ok(Ok(p)) => p,
        _ => {
            return over_budget(
                &policy,
                "every condition evaluator stayed busy for the whole time limit",
            )
        }
    };
    let p = policy.clone();
    let task = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        p.auto_decision(&facts.call())
    });
    match tokio::time::timeout_at(deadline, task).await {
        Ok(Ok(decision)) => decision,
        Ok(Err(e)) => over_budget(&policy, &format!("evaluation failed ({e})")),
        Err(_) => over_budget(
            &policy,
            &format!(
                "evaluation took longer than the limit of {} ms",
                CONDITION_TIME_LIMIT.as_millis()
            ),
        ),
    }
}
