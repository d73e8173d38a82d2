//! Gives memory back to the operating system after many connections close.
//!
//! Every open connection (a long-poll, a live inbox page) holds some tens of
//! KB: hyper's buffers, its task, the request being answered. When a burst
//! of them closes, glibc's malloc keeps the freed memory in its arenas for
//! later reuse, so the server's resident size stays at its peak (measured:
//! 51 MB after 1,000 long-polls had closed, 30 MB before they opened; the
//! wake-up registry itself was already empty). `malloc_trim(0)` hands the
//! free pages of every arena back (`madvise`), which brings it back to idle.
//!
//! It runs only after the number of open connections has fallen by at least
//! [`TRIM_AFTER_CLOSED`] below its peak since the last check, checked every
//! [`CHECK_EVERY`]: an idle server or a steady load never pays for it, and
//! one burst costs one trim (on a blocking thread: it walks the free lists
//! of every arena under their locks). A different allocator (jemalloc,
//! mimalloc) would return memory on its own but adds a C dependency and
//! changes every allocation's cost to fix what one call after a burst
//! fixes; see docs/benchmarks.md.
//! On other C libraries this is a no-op.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::sync::Semaphore;

/// How often the number of open connections is looked at.
pub const CHECK_EVERY: Duration = Duration::from_millis(500);
/// How far below its peak the number of open connections must fall for a
/// trim: a few dozen connections' buffers are not worth one.
pub const TRIM_AFTER_CLOSED: usize = 64;

/// The peak number of open connections since the last check; the listener
/// reports every connection it opens.
#[derive(Debug, Default)]
pub struct Trimmer {
    peak: AtomicUsize,
}

impl Trimmer {
    /// `open` connections are open now (called as one opens).
    pub fn saw_open(&self, open: usize) {
        self.peak.fetch_max(open, Ordering::Relaxed);
    }

    /// Whether the count fell far enough since the last check to trim;
    /// starts the next period at `open`.
    fn should_trim(&self, open: usize) -> bool {
        let peak = self.peak.swap(open, Ordering::Relaxed);
        peak.saturating_sub(open) >= TRIM_AFTER_CLOSED
    }
}

/// Starts the watcher of a listener whose `max` connection slots are
/// `slots` (open = `max` - available permits). It ends once the listener
/// and its connections are gone.
pub fn spawn(slots: Weak<Semaphore>, max: usize) -> Arc<Trimmer> {
    let trimmer = Arc::new(Trimmer::default());
    let watcher = trimmer.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(CHECK_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(open) = slots
                .upgrade()
                .map(|s| max.saturating_sub(s.available_permits()))
            else {
                break;
            };
            if watcher.should_trim(open) {
                let released = tokio::task::spawn_blocking(trim).await.unwrap_or(false);
                tracing::debug!(
                    open,
                    released,
                    "returned freed memory after connections closed"
                );
            }
        }
    });
    trimmer
}

/// Returns free heap pages to the operating system; whether any were.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)] // a libc call; see the SAFETY comment
fn trim() -> bool {
    // SAFETY: `malloc_trim` takes no pointers; it walks malloc's own arenas
    // under their locks and may be called from any thread at any time.
    unsafe { libc::malloc_trim(0) == 1 }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim() -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_only_after_the_count_fell_by_enough() {
        let t = Trimmer::default();
        // Steady load: connections come and go around 500.
        t.saw_open(500);
        assert!(!t.should_trim(480));
        t.saw_open(510);
        assert!(!t.should_trim(500));
        // A burst closes.
        t.saw_open(1200);
        assert!(t.should_trim(3));
        // Nothing new since: no second trim.
        assert!(!t.should_trim(3));
        // A burst that opened and closed between two checks still counts.
        t.saw_open(200);
        assert!(t.should_trim(2));
    }

    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn trim_returns_freed_memory() {
        // Many small blocks (below malloc's mmap threshold, so on the heap),
        // then all freed but one at the end that pins the heap's top: only a
        // trim can give the pages in between back.
        let blocks: Vec<Vec<u8>> = (0..20_000).map(|i| vec![i as u8; 4000]).collect();
        let pin = vec![1u8; 4000];
        drop(blocks);
        assert!(trim(), "malloc_trim released nothing");
        assert_eq!(pin[0], 1);
    }
}
