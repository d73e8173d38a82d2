//! The live feed: server-sent events that tell an open inbox page a request
//! changed, for as long as the session stays valid.

use super::queue::*;
use super::session::{Session, Viewer};
use crate::approval::Status;
use crate::auth::Principal;
use crate::http::AppState;
use crate::notify::ApprovalChanged;
use crate::service::review_digest;
use axum::extract::{Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use std::convert::Infallible;

pub(super) struct Live {
    state: AppState,
    principal: Principal,
    scope: Option<Vec<String>>,
    query: InboxQuery,
    rx: tokio::sync::broadcast::Receiver<ApprovalChanged>,
    ends_at: tokio::time::Instant,
    /// The session behind the stream, re-checked on every event and every
    /// `SESSION_RECHECK`: log-out, `users disable` or a role change end it.
    session: Session,
    recheck: tokio::time::Interval,
}

/// How often an open live stream re-checks its session when nothing happens.
pub(super) const SESSION_RECHECK: std::time::Duration = std::time::Duration::from_secs(5);

impl Live {
    async fn session_valid(&self) -> bool {
        crate::http::session::session_still_valid(
            &self.state,
            &self.session.token_hash,
            &self.session.user,
        )
        .await
    }

    async fn count(&self) -> i64 {
        self.state
            .cp
            .count_approvals(&self.query.filter(self.scope.clone()))
            .await
            .unwrap_or(-1)
    }

    /// The event this person should get for a change, if any: only
    /// requests they can see, only those matching their filters.
    async fn event_for(&self, c: &ApprovalChanged) -> Option<Event> {
        if let Some(ps) = &self.scope {
            if !ps.contains(&c.policy) {
                return None;
            }
        }
        if self.query.policy.as_ref().is_some_and(|p| *p != c.policy) {
            return None;
        }
        if c.status == Status::Pending {
            let a = self.state.cp.get_approval(&c.id).await.ok()??;
            if a.status != Status::Pending || !self.state.cp.can_see(&self.principal, &a) {
                return None;
            }
            if self.query.agent.as_ref().is_some_and(|x| *x != a.agent)
                || self
                    .query
                    .tool
                    .as_ref()
                    .is_some_and(|x| *x != a.call.tool_name)
            {
                return None;
            }
            let html = row(
                &a,
                self.state.cp.may_decide(&self.principal, &a.policy),
                crate::service::now_millis(),
            )
            .into_string();
            // The request page compares the digest with the one it shows.
            let data = json!({"id": a.id, "html": html, "args_digest": review_digest(&a), "count": self.count().await});
            Some(Event::default().event("add").data(data.to_string()))
        } else {
            let data = json!({"id": c.id, "status": c.status, "count": self.count().await});
            Some(Event::default().event("remove").data(data.to_string()))
        }
    }
}

/// Server-sent events for the open inbox (and request pages): `add` with
/// the rendered row of a new request, `remove` when one is settled,
/// `reload` when events were missed. Ends with the session or at shutdown.
pub async fn events(
    State(state): State<AppState>,
    Viewer(s): Viewer,
    Query(q): Query<InboxQuery>,
) -> Response {
    let principal = s.principal();
    let left_ms = (s.expires_at - crate::service::now_millis()).max(0);
    let mut recheck = tokio::time::interval_at(
        tokio::time::Instant::now() + SESSION_RECHECK,
        SESSION_RECHECK,
    );
    recheck.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let live = Live {
        session: s.clone(),
        recheck,
        scope: scope(&state, &principal),
        rx: state.cp.notifier.subscribe(),
        state: state.clone(),
        principal,
        query: q.clean(),
        ends_at: tokio::time::Instant::now()
            + std::time::Duration::from_millis(u64::try_from(left_ms).unwrap_or(0)),
    };
    let shutdown = state.extras.shutdown.clone();
    let hello = futures::stream::once(async {
        Ok::<_, Infallible>(
            Event::default()
                .event("hello")
                .data("{}")
                .retry(std::time::Duration::from_secs(3)),
        )
    });
    let changes = futures::stream::unfold((live, shutdown), |(mut live, shutdown)| async move {
        loop {
            let next = tokio::select! {
                r = live.rx.recv() => r,
                () = crate::shutdown::stopped(shutdown.as_ref()) => return None,
                _ = tokio::time::sleep_until(live.ends_at) => return None,
                _ = live.recheck.tick() => {
                    if !live.session_valid().await {
                        return None;
                    }
                    continue;
                }
            };
            // Nothing more goes out on a session that has ended.
            if !live.session_valid().await {
                return None;
            }
            match next {
                Ok(change) => {
                    if let Some(ev) = live.event_for(&change).await {
                        return Some((Ok::<_, Infallible>(ev), (live, shutdown)));
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                    return Some((
                        Ok(Event::default().event("reload").data("{}")),
                        (live, shutdown),
                    ));
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    use futures::StreamExt;
    Sse::new(hello.chain(changes))
        .keep_alive(KeepAlive::default())
        .into_response()
}
