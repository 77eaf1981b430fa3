//! A token bucket, sans-IO: a sustained rate with bursts, time passed in.
//! The SIP switch's per-source INVITE rate and the API's per-key request
//! rate are both one.

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
        let refill = now.saturating_duration_since(self.at).as_secs_f64() * rate.per_second;
        self.tokens = (self.tokens + refill).min(rate.burst);
        self.at = now;
        if self.tokens < 1.0 {
            return false;
        }
        self.tokens -= 1.0;
        true
    }

    /// When it was last taken from (to forget the idlest first).
    pub fn last_taken(&self) -> Instant {
        self.at
    }
}
