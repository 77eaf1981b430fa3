//! The one place that reads the OS clock. Pure layers take `now` as an argument;
//! the shell asks here, so that a lint can ban the clock everywhere else.

use std::time::{Instant, SystemTime};

/// Monotonic now, for measuring and for deadlines.
#[allow(clippy::disallowed_methods)]
pub fn now() -> Instant {
    Instant::now()
}

/// Wall-clock now, for records and for policies' `call-time`.
#[allow(clippy::disallowed_methods)]
pub fn wall() -> SystemTime {
    SystemTime::now()
}

/// Wall-clock now in Unix seconds.
pub fn unix_now() -> i64 {
    wall()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Wall-clock now in Unix milliseconds, for call records.
pub fn unix_ms() -> i64 {
    wall()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
