//! A token bucket on caller-supplied time.

use std::time::Instant;

/// A token bucket: `rate` tokens per second, at most `burst` stored. Time is an input.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket at `now`.
    pub fn new(rate: f64, burst: f64, now: Instant) -> Self {
        let burst = burst.max(1.0);
        TokenBucket {
            rate: rate.max(0.0),
            burst,
            tokens: burst,
            last: now,
        }
    }

    /// Take one token if there is one. Time going backwards is treated as no time passing.
    pub fn try_take(&mut self, now: Instant) -> bool {
        self.try_take_n(now, 1.0)
    }

    /// Take `n` tokens if there are that many (a byte budget, say).
    pub fn try_take_n(&mut self, now: Instant, n: f64) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = self.last.max(now);
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        if self.tokens >= n {
            self.tokens -= n;
            true
        } else {
            false
        }
    }

    /// Whether the bucket would be full at `now` (it then carries no information and may be
    /// dropped); `rate` and `burst` as given to [`TokenBucket::new`].
    pub fn is_full(&self, now: Instant, rate: f64, burst: f64) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens + elapsed * rate.max(0.0) >= burst.max(1.0)
    }
}
