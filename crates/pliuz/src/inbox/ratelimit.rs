//! A small in-memory limiter for log-in attempts: after `max_failures`
//! failed attempts for one key (client address + email) within `window`,
//! further attempts are refused until the window has passed. A successful
//! log-in clears the key. Memory stays bounded: stale keys are dropped.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub const DEFAULT_MAX_FAILURES: u32 = 5;
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(15 * 60);
const MAX_KEYS: usize = 10_000;

#[derive(Debug, Clone, Copy)]
struct Window {
    started: Instant,
    failures: u32,
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

    /// `Err(wait)` when `key` is blocked and must wait `wait` before retrying.
    pub fn check(&self, key: &str, now: Instant) -> Result<(), Duration> {
        let keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        match keys.get(key) {
            Some(w) if w.failures >= self.max_failures => {
                let ends = w.started + self.window;
                if ends > now {
                    Err(ends - now)
                } else {
                    Ok(())
                }
            }
            _ => Ok(()),
        }
    }

    /// Counts a failed attempt.
    pub fn record_failure(&self, key: &str, now: Instant) {
        let mut keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        if keys.len() >= MAX_KEYS {
            let window = self.window;
            keys.retain(|_, w| w.started + window > now);
        }
        let w = keys.entry(key.to_owned()).or_insert(Window {
            started: now,
            failures: 0,
        });
        if w.started + self.window <= now {
            *w = Window {
                started: now,
                failures: 0,
            };
        }
        w.failures = w.failures.saturating_add(1);
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
            assert!(l.check(&k, t0).is_ok(), "attempt {i} allowed");
            l.record_failure(&k, t0 + Duration::from_secs(i));
        }
        let wait = l.check(&k, t0 + Duration::from_secs(10)).unwrap_err();
        assert_eq!(wait, Duration::from_secs(50));
        // Other keys are unaffected: another address, another email.
        assert!(l
            .check(&RateLimiter::key("10.0.0.2", "ann@example.com"), t0)
            .is_ok());
        assert!(l
            .check(&RateLimiter::key("10.0.0.1", "bob@example.com"), t0)
            .is_ok());
        // After the window, attempts are allowed again and counting restarts.
        let later = t0 + Duration::from_secs(61);
        assert!(l.check(&k, later).is_ok());
        l.record_failure(&k, later);
        assert!(l.check(&k, later).is_ok());
    }

    #[test]
    fn success_clears_the_key() {
        let l = RateLimiter::new(2, Duration::from_secs(60));
        let t0 = Instant::now();
        l.record_failure("k", t0);
        l.record_failure("k", t0);
        assert!(l.check("k", t0).is_err());
        l.reset("k");
        assert!(l.check("k", t0).is_ok());
    }

    #[test]
    fn memory_stays_bounded() {
        let l = RateLimiter::new(2, Duration::from_secs(1));
        let t0 = Instant::now();
        for i in 0..MAX_KEYS {
            l.record_failure(&format!("k{i}"), t0);
        }
        l.record_failure("fresh", t0 + Duration::from_secs(5));
        assert_eq!(l.keys.lock().unwrap().len(), 1);
    }
}
