//! Backoff and lockout for guesses (room passwords, sign-in passwords), on caller time.
//!
//! Each key (an address, a room, an account) gets `free_failures` failures; after that every
//! failure blocks the key for a doubling delay (`backoff_base` up to `backoff_max`), and after
//! `lockout_after` failures for `lockout`. A key without failures for `forget_after` is
//! forgotten. The table holds at most `max_keys` keys (oldest failures dropped first), so a
//! flood of distinct keys cannot grow memory without bound.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

/// Throttle settings (`[security]` in the config file).
#[derive(Debug, Clone, PartialEq)]
pub struct ThrottleConfig {
    /// Failures allowed before any delay.
    pub free_failures: u32,
    /// First delay after the free failures; doubles with each further failure.
    pub backoff_base: Duration,
    /// Longest doubling delay.
    pub backoff_max: Duration,
    /// Failures after which the key is locked out for `lockout`.
    pub lockout_after: u32,
    /// Lockout duration.
    pub lockout: Duration,
    /// A key with no failure for this long starts over.
    pub forget_after: Duration,
    /// Most keys remembered.
    pub max_keys: usize,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        ThrottleConfig {
            free_failures: 5,
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
            lockout_after: 20,
            lockout: Duration::from_secs(15 * 60),
            forget_after: Duration::from_secs(15 * 60),
            max_keys: 100_000,
        }
    }
}

#[derive(Debug, Clone)]
struct Entry {
    failures: u32,
    last_failure: Instant,
    blocked_until: Option<Instant>,
}

/// Failure counts per key.
#[derive(Debug)]
pub struct Throttle<K> {
    config: ThrottleConfig,
    entries: HashMap<K, Entry>,
}

impl<K: Hash + Eq + Clone> Throttle<K> {
    /// An empty table.
    pub fn new(config: ThrottleConfig) -> Self {
        Throttle {
            config,
            entries: HashMap::new(),
        }
    }

    /// `Err(wait)` while `key` is blocked.
    pub fn check(&mut self, now: Instant, key: &K) -> Result<(), Duration> {
        let forget = self.config.forget_after;
        let Some(e) = self.entries.get(key) else {
            return Ok(());
        };
        if let Some(until) = e.blocked_until
            && until > now
        {
            return Err(until - now);
        }
        if now.saturating_duration_since(e.last_failure) >= forget {
            self.entries.remove(key);
        }
        Ok(())
    }

    /// Record a failure of `key`.
    pub fn fail(&mut self, now: Instant, key: &K) {
        if !self.entries.contains_key(key) && self.entries.len() >= self.config.max_keys {
            self.evict(now);
        }
        let c = &self.config;
        let e = self.entries.entry(key.clone()).or_insert(Entry {
            failures: 0,
            last_failure: now,
            blocked_until: None,
        });
        if now.saturating_duration_since(e.last_failure) >= c.forget_after {
            e.failures = 0;
        }
        e.failures = e.failures.saturating_add(1);
        e.last_failure = now;
        e.blocked_until = if e.failures >= c.lockout_after {
            Some(now + c.lockout)
        } else if e.failures > c.free_failures {
            let doublings = (e.failures - c.free_failures - 1).min(30);
            let delay = c
                .backoff_base
                .saturating_mul(1u32 << doublings)
                .min(c.backoff_max);
            Some(now + delay)
        } else {
            None
        };
    }

    /// Failures recorded for `key`.
    pub fn failures(&self, key: &K) -> u32 {
        self.entries.get(key).map_or(0, |e| e.failures)
    }

    /// Keys remembered.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no key is remembered.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn evict(&mut self, now: Instant) {
        let forget = self.config.forget_after;
        self.entries.retain(|_, e| {
            now.saturating_duration_since(e.last_failure) < forget
                || e.blocked_until.is_some_and(|u| u > now)
        });
        while self.entries.len() >= self.config.max_keys {
            let Some(oldest) = self
                .entries
                .iter()
                .min_by_key(|(_, e)| e.last_failure)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            self.entries.remove(&oldest);
        }
    }
}

/// Say how long to wait, for error messages.
pub fn describe_wait(d: Duration) -> String {
    let s = d.as_secs_f64().ceil() as u64;
    if s >= 120 {
        format!("{} minutes", s.div_ceil(60))
    } else {
        format!("{} seconds", s.max(1))
    }
}
