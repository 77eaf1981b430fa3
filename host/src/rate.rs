//! A token bucket, sans-IO: a sustained rate with bursts, time passed in.
//! The SIP switch's per-source INVITE rate and the API's per-key request
//! rate are both one, and so is each tenant's share of policy CPU (seconds
//! of CPU for tokens, spent after the fact).

use std::time::Instant;

/// Takes per second, sustained, and in a burst.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub per_second: f64,
    pub burst: f64,
}

impl Rate {
    /// `per_second` sustained, bursts of twice as many.
    pub fn per_second(per_second: u32) -> Self {
        Rate {
            per_second: f64::from(per_second),
            burst: 2.0 * f64::from(per_second),
        }
    }
}

/// One party's bucket, full when first seen.
#[derive(Debug, Clone, Copy)]
pub struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    pub fn full(rate: &Rate, now: Instant) -> Self {
        Bucket {
            tokens: rate.burst,
            at: now,
        }
    }

    /// Refills for the time since the last take, then takes one; false when
    /// the bucket is empty.
    pub fn take(&mut self, rate: &Rate, now: Instant) -> bool {
        self.refill(rate, now);
        if self.tokens < 1.0 {
            return false;
        }
        self.tokens -= 1.0;
        true
    }

    /// Whether anything is left, after refilling.
    pub fn has_any(&mut self, rate: &Rate, now: Instant) -> bool {
        self.refill(rate, now);
        self.tokens > 0.0
    }

    /// Spends `amount` already used: the bucket may go into debt, down to
    /// one burst, which later refills repay before it has any again.
    pub fn spend(&mut self, rate: &Rate, amount: f64, now: Instant) {
        self.refill(rate, now);
        self.tokens = (self.tokens - amount).max(-rate.burst);
    }

    /// Whether it is full (nothing spent that is not refilled), after refilling.
    pub fn is_full(&mut self, rate: &Rate, now: Instant) -> bool {
        self.refill(rate, now);
        self.tokens >= rate.burst
    }

    fn refill(&mut self, rate: &Rate, now: Instant) {
        let refill = now.saturating_duration_since(self.at).as_secs_f64() * rate.per_second;
        self.tokens = (self.tokens + refill).min(rate.burst);
        self.at = now;
    }

    /// When it was last taken from (to forget the idlest first).
    pub fn last_taken(&self) -> Instant {
        self.at
    }
}
