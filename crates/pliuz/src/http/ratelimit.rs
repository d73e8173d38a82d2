//! A small in-memory limiter for log-in attempts: at most `max_failures`
//! attempts for one key (client address + email) may fail within `window`;
//! further attempts are refused until the window has passed. A successful
//! log-in clears the key. Memory stays bounded: stale keys are dropped.
//!
//! An attempt is counted *before* its password is checked, in the same
//! step that decides whether it may go ahead ([`RateLimiter::begin`]), so
//! concurrent attempts cannot all pass a check that none of them has yet
//! recorded: of 50 simultaneous wrong passwords, `max_failures` are checked.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub const DEFAULT_MAX_FAILURES: u32 = 5;
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(15 * 60);
const MAX_KEYS: usize = 10_000;

#[derive(Debug, Clone, Copy)]
struct Window {
    started: Instant,
    /// Attempts that failed or are being checked right now.
    attempts: u32,
}

#[derive(Debug)]
pub struct RateLimiter {
    max_failures: u32,
    window: Duration,
    keys: Mutex<HashMap<String, Window>>,
}

impl Default for RateLimiter {
    fn default() -> Self {
        RateLimiter::new(DEFAULT_MAX_FAILURES, DEFAULT_WINDOW)
    }
}

impl RateLimiter {
    pub fn new(max_failures: u32, window: Duration) -> RateLimiter {
        RateLimiter {
            max_failures: max_failures.max(1),
            window,
            keys: Mutex::new(HashMap::new()),
        }
    }

    /// The key for one person trying from one address.
    pub fn key(client: &str, email: &str) -> String {
        format!("{client}|{}", email.trim().to_lowercase())
    }

    /// Records an attempt for `key` and lets it go ahead, or `Err(wait)`
    /// when `key` is blocked and must wait `wait` before retrying. The
    /// attempt stays counted (as a failure) unless [`reset`](Self::reset)
    /// (success) or [`refund`](Self::refund) (never checked) follows.
    pub fn begin(&self, key: &str, now: Instant) -> Result<(), Duration> {
        let mut keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        if keys.len() >= MAX_KEYS && !keys.contains_key(key) {
            let window = self.window;
            keys.retain(|_, w| w.started + window > now);
        }
        let w = keys.entry(key.to_owned()).or_insert(Window {
            started: now,
            attempts: 0,
        });
        if w.started + self.window <= now {
            *w = Window {
                started: now,
                attempts: 0,
            };
        }
        if w.attempts >= self.max_failures {
            return Err(w.started + self.window - now);
        }
        w.attempts += 1;
        Ok(())
    }

    /// Gives back an attempt that was never checked (the server was busy).
    pub fn refund(&self, key: &str) {
        let mut keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(w) = keys.get_mut(key) {
            w.attempts = w.attempts.saturating_sub(1);
        }
    }

    /// Forgets a key (after a successful log-in).
    pub fn reset(&self, key: &str) {
        self.keys
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_after_max_failures_until_the_window_passes() {
        let l = RateLimiter::new(3, Duration::from_secs(60));
        let t0 = Instant::now();
        let k = RateLimiter::key("10.0.0.1", "Ann@Example.com");
        assert_eq!(k, "10.0.0.1|ann@example.com");
        for i in 0..3 {
            assert!(
                l.begin(&k, t0 + Duration::from_secs(i)).is_ok(),
                "attempt {i} allowed"
            );
        }
        let wait = l.begin(&k, t0 + Duration::from_secs(10)).unwrap_err();
        assert_eq!(wait, Duration::from_secs(50));
        // Other keys are unaffected: another address, another email.
        assert!(l
            .begin(&RateLimiter::key("10.0.0.2", "ann@example.com"), t0)
            .is_ok());
        assert!(l
            .begin(&RateLimiter::key("10.0.0.1", "bob@example.com"), t0)
            .is_ok());
        // After the window, attempts are allowed again and counting restarts.
        let later = t0 + Duration::from_secs(61);
        assert!(l.begin(&k, later).is_ok());
        assert!(l.begin(&k, later).is_ok());
    }

    #[test]
    fn concurrent_attempts_are_counted_before_any_is_checked() {
        let l = std::sync::Arc::new(RateLimiter::new(5, Duration::from_secs(60)));
        let t0 = Instant::now();
        let allowed: usize = std::thread::scope(|s| {
            let hs: Vec<_> = (0..50)
                .map(|_| s.spawn(|| l.begin("k", t0).is_ok()))
                .collect();
            hs.into_iter().map(|h| usize::from(h.join().unwrap())).sum()
        });
        assert_eq!(allowed, 5);
    }

    #[test]
    fn success_clears_the_key_and_refunds_give_back() {
        let l = RateLimiter::new(2, Duration::from_secs(60));
        let t0 = Instant::now();
        assert!(l.begin("k", t0).is_ok());
        assert!(l.begin("k", t0).is_ok());
        assert!(l.begin("k", t0).is_err());
        l.refund("k");
        assert!(l.begin("k", t0).is_ok());
        assert!(l.begin("k", t0).is_err());
        l.reset("k");
        assert!(l.begin("k", t0).is_ok());
    }

    #[test]
    fn memory_stays_bounded() {
        let l = RateLimiter::new(2, Duration::from_secs(1));
        let t0 = Instant::now();
        for i in 0..MAX_KEYS {
            let _ = l.begin(&format!("k{i}"), t0);
        }
        let _ = l.begin("fresh", t0 + Duration::from_secs(5));
        assert_eq!(l.keys.lock().unwrap().len(), 1);
    }
}
