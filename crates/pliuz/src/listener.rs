//! The HTTP listener, with the limits that keep slow or idle clients from
//! starving healthy ones (see docs/security.md, "Limits"):
//!
//! * **header timeout** — a connection must send a complete request head
//!   within this time of opening or of going idle after a response, or it is
//!   closed. This is also the idle keep-alive timeout.
//! * **body timeout** — a request body must arrive in full within this
//!   time after its head; a body still trickling in then fails the request
//!   and the connection is closed.
//! * **connection cap** — at most this many connections are served at once;
//!   beyond it the server stops accepting (new ones wait in the kernel's
//!   backlog until the timeouts free a slot) instead of running out of file
//!   descriptors. At start the soft file-descriptor limit is raised to the
//!   hard one, and the cap is kept below it.
//!
//! HTTP/1.1 only: an HTTP/2 connection could sit idle with no head to time.

use axum::extract::ConnectInfo;
use axum::Router;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt;

pub const HEADER_TIMEOUT_ENV: &str = "PLIUZ_HEADER_TIMEOUT";
pub const BODY_TIMEOUT_ENV: &str = "PLIUZ_BODY_TIMEOUT";
pub const MAX_CONNECTIONS_ENV: &str = "PLIUZ_MAX_CONNECTIONS";
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(30);
pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;
/// File descriptors kept free for the database, key files and Slack calls.
const RESERVED_FDS: u64 = 128;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    pub header_timeout: Duration,
    pub body_timeout: Duration,
    pub max_connections: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            header_timeout: DEFAULT_HEADER_TIMEOUT,
            body_timeout: DEFAULT_BODY_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
        }
    }
}

impl ConnectionLimits {
    /// The defaults, overridden by `PLIUZ_HEADER_TIMEOUT`, `PLIUZ_BODY_TIMEOUT`
    /// (durations such as `10s`) and `PLIUZ_MAX_CONNECTIONS`, parsed strictly.
    pub fn from_env() -> anyhow::Result<ConnectionLimits> {
        let mut l = ConnectionLimits::default();
        let var = |name: &str| match std::env::var(name) {
            Ok(v) => Ok(Some(v)),
            Err(std::env::VarError::NotPresent) => Ok(None),
            Err(_) => Err(anyhow::anyhow!("{name} is not valid UTF-8")),
        };
        for (name, slot) in [
            (HEADER_TIMEOUT_ENV, &mut l.header_timeout),
            (BODY_TIMEOUT_ENV, &mut l.body_timeout),
        ] {
            if let Some(v) = var(name)? {
                *slot = humantime::parse_duration(v.trim())
                    .ok()
                    .filter(|d| {
                        (Duration::from_millis(100)..=Duration::from_secs(3600)).contains(d)
                    })
                    .ok_or_else(|| {
                        anyhow::anyhow!(
                            "{name} must be a duration from 100ms to 1h, such as '10s', not '{v}'"
                        )
                    })?;
            }
        }
        if let Some(v) = var(MAX_CONNECTIONS_ENV)? {
            l.max_connections = v
                .trim()
                .parse::<usize>()
                .ok()
                .filter(|n| (16..=1_000_000).contains(n))
                .ok_or_else(|| {
                    anyhow::anyhow!(
                        "{MAX_CONNECTIONS_ENV} must be a whole number from 16 to 1000000, not '{v}'"
                    )
                })?;
        }
        crate::password_gate::concurrency_from_env().map_err(anyhow::Error::msg)?;
        Ok(l)
    }
}

/// Raises the soft open-files limit to the hard one and returns how many
/// connections fit below it (`wanted` if that many do).
#[allow(unsafe_code)] // libc calls; see the SAFETY comment
fn fit_to_fd_limit(wanted: usize) -> usize {
    #[cfg(unix)]
    {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
        unsafe {
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
                return wanted;
            }
            if lim.rlim_cur < lim.rlim_max {
                let raised = libc::rlimit {
                    rlim_cur: lim.rlim_max,
                    rlim_max: lim.rlim_max,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                    lim.rlim_cur = lim.rlim_max;
                }
            }
        }
        let room = lim.rlim_cur.saturating_sub(RESERVED_FDS).max(16);
        let fit = usize::try_from(room).unwrap_or(usize::MAX).min(wanted);
        if fit < wanted {
            tracing::warn!(
                wanted,
                serving = fit,
                open_files_limit = lim.rlim_cur,
                "the open-files limit (ulimit -n) is too low for the connection cap; raise it"
            );
        }
        fit
    }
    #[cfg(not(unix))]
    wanted
}

/// Serves `app` on `listener` until `shutdown` completes, then stops
/// accepting and waits for open connections to finish (idle ones close).
pub async fn serve<F>(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    shutdown: F,
) -> std::io::Result<()>
where
    F: Future<Output = ()> + Send,
{
    let max_connections = fit_to_fd_limit(limits.max_connections);
    tracing::info!(
        header_timeout = ?limits.header_timeout,
        body_timeout = ?limits.body_timeout,
        max_connections,
        "connection limits"
    );
    let slots = Arc::new(Semaphore::new(max_connections));
    // Freed connection memory goes back to the system after a burst closes.
    let trimmer = crate::memory_return::spawn(Arc::downgrade(&slots), max_connections);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    let mut warned_full = false;
    loop {
        let slot = match slots.clone().try_acquire_owned() {
            Ok(s) => s,
            Err(_) => {
                if !warned_full {
                    tracing::warn!(
                        max_connections,
                        "connection cap reached; new connections wait until others close"
                    );
                    warned_full = true;
                }
                tokio::select! {
                    s = slots.clone().acquire_owned() => match s {
                        Ok(s) => s,
                        Err(_) => break,
                    },
                    () = &mut shutdown => break,
                }
            }
        };
        let free = slots.available_permits();
        trimmer.saw_open(max_connections - free);
        if free > max_connections / 2 {
            warned_full = false;
        }
        let (stream, remote) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    // Per-connection errors (reset before accept) are normal;
                    // anything else (out of descriptors) gets a pause.
                    if !matches!(
                        e.kind(),
                        std::io::ErrorKind::ConnectionAborted
                            | std::io::ErrorKind::ConnectionReset
                            | std::io::ErrorKind::ConnectionRefused
                    ) {
                        tracing::warn!(error = %e, "cannot accept a connection");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let body_timeout = limits.body_timeout;
        let service = app
            .clone()
            .map_request(move |req: hyper::Request<Incoming>| {
                let mut req =
                    req.map(|b| axum::body::Body::new(DeadlineBody::new(b, body_timeout)));
                req.extensions_mut().insert(ConnectInfo(remote));
                req
            });
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_timeout)
            .keep_alive(true)
            .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, client = %remote.ip(), "connection ended with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// The request body took longer than the body timeout to arrive.
#[derive(Debug)]
pub struct BodyTimeout(pub Duration);

impl std::fmt::Display for BodyTimeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the request body did not arrive within {}s",
            self.0.as_secs_f64()
        )
    }
}

impl std::error::Error for BodyTimeout {}

/// A request body with a deadline for the whole of it, not per chunk, so a
/// byte every few seconds cannot keep a request open.
struct DeadlineBody {
    inner: Incoming,
    deadline: Pin<Box<tokio::time::Sleep>>,
    limit: Duration,
}

impl DeadlineBody {
    fn new(inner: Incoming, limit: Duration) -> DeadlineBody {
        DeadlineBody {
            inner,
            deadline: Box::pin(tokio::time::sleep(limit)),
            limit,
        }
    }
}

impl Body for DeadlineBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|r| r.map_err(Into::into)));
        }
        if self.deadline.as_mut().poll(cx).is_ready() {
            let limit = self.limit;
            return Poll::Ready(Some(Err(Box::new(BodyTimeout(limit)))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
