//! Long-polls of the agent API (`?wait=`): answer at once when the resource
//! is settled or no wait is asked; otherwise wait for a change, a recheck or
//! the deadline, re-read, and answer once settled or out of time.

use crate::http::error::Problem;
use crate::http::AppState;
use crate::notify::Waiter;
use serde::Deserialize;
use std::future::{ready, Future, Ready};
use std::time::Duration;
use tokio::time::Instant;
use utoipa::IntoParams;

pub const MAX_WAIT_SECS: u64 = 60;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct WaitQuery {
    /// Seconds to wait while it is pending (an approval undecided, a
    /// question unanswered, a run waiting).
    #[param(minimum = 0, maximum = 60)]
    pub wait: Option<u64>,
}

/// The `wait` query parameter, checked: seconds to wait, 0 when absent.
pub fn wait_secs(wait: Option<u64>) -> Result<u64, Problem> {
    let wait = wait.unwrap_or(0);
    if wait > MAX_WAIT_SECS {
        return Err(Problem::invalid(
            "wait",
            format!("must be between 0 and {MAX_WAIT_SECS} seconds"),
        ));
    }
    Ok(wait)
}

/// When to re-read although no change woke the poll: `None` for only at a
/// change or the deadline.
pub type Recheck = Result<Option<Instant>, Problem>;

/// For resources whose every change wakes their waiter.
pub fn no_recheck<T>(_: &T) -> Ready<Recheck> {
    ready(Ok(None))
}

/// For resources changed where no waiter here hears it (another replica).
pub fn recheck_every<T>(period: Duration) -> impl FnMut(&T) -> Ready<Recheck> {
    move |_| ready(Ok(Some(Instant::now() + period)))
}

/// Reads with `read` (given what the waking change carried, if anything)
/// until `settled` or `wait_secs` have passed. `changes` must be registered
/// before this call, so a change landing before the first read is not
/// missed. At shutdown the poll answers at once with a fresh read; the
/// client simply polls again (another replica, or this one restarted).
pub async fn long_poll<T, V, Read, ReadFut, Next, NextFut>(
    state: &AppState,
    wait_secs: u64,
    changes: &mut Waiter<String, V>,
    mut read: Read,
    settled: impl Fn(&T) -> bool,
    mut recheck: Next,
) -> Result<T, Problem>
where
    V: Clone + Default,
    Read: FnMut(Option<V>) -> ReadFut,
    ReadFut: Future<Output = Result<T, Problem>>,
    Next: FnMut(&T) -> NextFut,
    NextFut: Future<Output = Recheck>,
{
    let deadline = Instant::now() + Duration::from_secs(wait_secs);
    let shutdown = state.extras.shutdown.clone();
    let stopping = crate::shutdown::stopped(shutdown.as_ref());
    tokio::pin!(stopping);
    let mut found = read(None).await?;
    loop {
        if settled(&found) || Instant::now() >= deadline {
            return Ok(found);
        }
        let wake = recheck(&found)
            .await?
            .map_or(deadline, |at| at.min(deadline));
        let change = tokio::select! {
            change = tokio::time::timeout_at(wake, changes.changed()) => change.ok(),
            () = &mut stopping => return read(None).await,
        };
        found = read(change).await?;
    }
}
