//! Bounds the work password checks may cost. Each argon2id check or hash
//! allocates ~19 MiB and a core for tens of milliseconds, and the log-in
//! form is open to anyone: without a bound, a few hundred concurrent
//! log-ins take gigabytes and starve every other request. So checks run on
//! a few dedicated threads, off the async runtime, at most `permits` at a
//! time; a few more may queue for a moment; the rest are shed at once (the
//! caller answers 503 with `Retry-After`). Unknown e-mails go through the
//! same gate and cost the same work as real ones. Dedicated threads, not
//! the blocking pool: each thread's allocator keeps the 19 MiB it once
//! used, so the memory stays at `permits` × 19 MiB instead of growing with
//! every pool thread that ever ran a check.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::sync::Semaphore;

/// Environment variable: how many password checks may run at once.
pub const CONCURRENCY_ENV: &str = "PLIUZ_LOGIN_CONCURRENCY";
/// How long a check waits for a free slot before it is shed.
pub const QUEUE_WAIT: Duration = Duration::from_secs(2);
/// Waiting checks per running one; beyond that, shed without waiting.
const QUEUE_PER_PERMIT: usize = 4;

/// The server is busy with other password checks; retry after a moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Busy;

type Job = Box<dyn FnOnce() + Send>;

pub struct PasswordGate {
    permits: Arc<Semaphore>,
    jobs: std::sync::mpsc::Sender<Job>,
    waiting: AtomicUsize,
    max_waiting: usize,
}

impl PasswordGate {
    pub fn new(permits: usize) -> PasswordGate {
        let permits = permits.max(1);
        let (jobs, queue) = std::sync::mpsc::channel::<Job>();
        let queue = Arc::new(std::sync::Mutex::new(queue));
        for i in 0..permits {
            let queue = queue.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("pliuz-password-{i}"))
                .spawn(move || loop {
                    let job = match queue.lock() {
                        Ok(q) => q.recv(),
                        Err(_) => return,
                    };
                    match job {
                        Ok(job) => job(),
                        Err(_) => return,
                    }
                });
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot start a password-check thread");
            }
        }
        PasswordGate {
            permits: Arc::new(Semaphore::new(permits)),
            jobs,
            waiting: AtomicUsize::new(0),
            max_waiting: permits * QUEUE_PER_PERMIT,
        }
    }

    /// The process-wide gate, sized from `PLIUZ_LOGIN_CONCURRENCY` (checked
    /// by [`concurrency_from_env`] at start) or from the number of cores.
    pub fn global() -> &'static PasswordGate {
        static GATE: OnceLock<PasswordGate> = OnceLock::new();
        GATE.get_or_init(|| {
            PasswordGate::new(
                concurrency_from_env()
                    .ok()
                    .flatten()
                    .unwrap_or_else(default_concurrency),
            )
        })
    }

    /// Runs `work` (a password check or hash) on a password thread once a
    /// slot is free. The slot is held by the job itself, so a client that
    /// hangs up cannot free it before the work is done.
    pub async fn run<T, F>(&self, work: F) -> Result<T, Busy>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let permit = match self.permits.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                if self.waiting.fetch_add(1, Ordering::SeqCst) >= self.max_waiting {
                    self.waiting.fetch_sub(1, Ordering::SeqCst);
                    return Err(Busy);
                }
                let waited =
                    tokio::time::timeout(QUEUE_WAIT, self.permits.clone().acquire_owned()).await;
                self.waiting.fetch_sub(1, Ordering::SeqCst);
                match waited {
                    Ok(Ok(p)) => p,
                    _ => return Err(Busy),
                }
            }
        };
        let (done, result) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let _slot = permit;
            let _ = done.send(work());
        });
        self.jobs.send(job).map_err(|_| Busy)?;
        result.await.map_err(|_| Busy)
    }
}

/// One check per two cores, between 1 and 4 (4 × 19 MiB at most): log-ins
/// are rare, and the other requests keep cores to run on.
pub fn default_concurrency() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get() / 2)
        .unwrap_or(1)
        .clamp(1, 4)
}

/// `PLIUZ_LOGIN_CONCURRENCY`, strictly: unset is `None`, anything but an
/// integer from 1 to 256 is an error naming the variable.
pub fn concurrency_from_env() -> Result<Option<usize>, String> {
    match std::env::var(CONCURRENCY_ENV) {
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(_) => Err(format!("{CONCURRENCY_ENV} is not valid UTF-8")),
        Ok(v) => match v.trim().parse::<usize>() {
            Ok(n) if (1..=256).contains(&n) => Ok(Some(n)),
            _ => Err(format!(
                "{CONCURRENCY_ENV} must be a whole number from 1 to 256 (concurrent password checks), not '{v}'"
            )),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn at_most_capacity_run_at_once_and_the_excess_is_shed() {
        let gate = Arc::new(PasswordGate::new(2));
        let running = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..40 {
            let (gate, running, peak) = (gate.clone(), running.clone(), peak.clone());
            tasks.push(tokio::spawn(async move {
                gate.run(move || {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(300));
                    running.fetch_sub(1, Ordering::SeqCst);
                })
                .await
            }));
        }
        let mut shed = 0;
        for t in tasks {
            if t.await.unwrap().is_err() {
                shed += 1;
            }
        }
        assert!(peak.load(Ordering::SeqCst) <= 2);
        // 2 run, 8 may queue (and some of those finish within QUEUE_WAIT).
        assert!(shed >= 30, "only {shed} shed");
    }
}
