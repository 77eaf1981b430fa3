//! The market's live state, shared by every call being set up: how many calls
//! each target is on, what each bid has used of its caps in the current hour,
//! day and month of its own time zone, and which targets keep missing calls.
//!
//! One lock makes each decision atomic across simultaneous calls: a place or
//! a cap unit is *taken* when a target is about to ring, kept when it answers,
//! and given back when it does not — so 50 calls arriving together against a
//! cap of 10 route exactly 10. Time is passed in (Unix seconds), so tests
//! cross hour boundaries without waiting for them.

use std::collections::HashMap;
use std::sync::Mutex;

use super::DropReason;
use crate::model::{Bid, Target};

/// A cap's period, counted in the bid's time zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Period {
    Hour,
    Day,
    Month,
}

impl Period {
    const ALL: [Period; 3] = [Period::Hour, Period::Day, Period::Month];

    fn index(self) -> usize {
        self as usize
    }
}

/// What a cap limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CapKind {
    Calls,
    Payout,
}

/// A bid's caps, as `(period, kind, limit)`.
pub fn caps_of(bid: &Bid) -> impl Iterator<Item = (Period, CapKind, u64)> + '_ {
    [
        (Period::Hour, CapKind::Calls, bid.hourly_cap.map(u64::from)),
        (Period::Day, CapKind::Calls, bid.daily_cap.map(u64::from)),
        (
            Period::Month,
            CapKind::Calls,
            bid.monthly_cap.map(u64::from),
        ),
        (Period::Hour, CapKind::Payout, bid.hourly_payout_cap_micros),
        (Period::Day, CapKind::Payout, bid.daily_payout_cap_micros),
        (
            Period::Month,
            CapKind::Payout,
            bid.monthly_payout_cap_micros,
        ),
    ]
    .into_iter()
    .filter_map(|(period, kind, limit)| Some((period, kind, limit?)))
}

/// The period of `unix_seconds` in `time_zone`, as a number that changes
/// exactly at the local boundary (e.g. 2_026_112_910 for 10:00–10:59 on
/// 2026-11-29). An unknown zone counts in UTC (the API refuses them).
fn period_key(period: Period, time_zone: &str, unix_seconds: i64) -> i64 {
    let zone = jiff::tz::TimeZone::get(time_zone).unwrap_or(jiff::tz::TimeZone::UTC);
    let at = jiff::Timestamp::from_second(unix_seconds).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    let local = zone.to_datetime(at);
    let month = i64::from(local.year()) * 100 + i64::from(local.month());
    match period {
        Period::Month => month,
        Period::Day => month * 100 + i64::from(local.day()),
        Period::Hour => (month * 100 + i64::from(local.day())) * 100 + i64::from(local.hour()),
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct Bucket {
    key: i64,
    calls: u64,
    payout_micros: u64,
}

/// A target's recent answering, for pausing it.
#[derive(Debug, Default)]
struct Health {
    /// Results of the calls it missed in a row (`busy`, `ring_timeout`, …).
    misses: Vec<String>,
    paused_until: Option<i64>,
    reason: String,
}

/// A change of a target's state, for the call's trace and `/metrics`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetEvent {
    Paused {
        target_id: String,
        until: i64,
        reason: String,
    },
    Resumed {
        target_id: String,
    },
}

/// Whether a target takes calls, as its bidder sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetState {
    Active,
    Paused { until: i64, reason: String },
}

/// What a ringing leg holds: its target's place and its bid's cap units.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hold {
    target_id: String,
    bid_id: String,
    amount_micros: u64,
    miss_limit: u32,
    pause_s: u32,
    /// The period keys the units were counted in, by [`Period::index`].
    keys: [i64; 3],
}

/// How a leg that held a place ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LegEnd<'a> {
    /// The target answered and the call is over after `talk_s`: `billable`
    /// keeps the payout counted, else it is given back (the call unit stays).
    Ended { billable: bool, talk_s: u32 },
    /// The target did not answer (`busy`, `ring_timeout`, …): a miss.
    Missed(&'a str),
    /// We stopped ringing it for a reason of ours (the caller hung up).
    Withdrawn,
}

/// How a target has answered since the node started: what selectors weigh.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Answering {
    /// Legs that rang it and ended (answered or missed).
    pub offered: u32,
    pub answered: u32,
    /// Talk time of its answered calls, seconds.
    pub talk_s: u64,
}

impl Answering {
    pub fn average_talk_s(&self) -> u32 {
        u32::try_from(self.talk_s / u64::from(self.answered.max(1))).unwrap_or(u32::MAX)
    }
}

#[derive(Debug, Default)]
struct State {
    places: HashMap<String, u32>,
    answering: HashMap<String, Answering>,
    usage: HashMap<String, [Bucket; 3]>,
    health: HashMap<String, Health>,
}

#[derive(Debug, Default)]
pub struct Ledger {
    state: Mutex<State>,
}

impl State {
    /// Lifts a pause that has run out; the resumption, once.
    fn resume_if_due(&mut self, target_id: &str, at: i64) -> Option<TargetEvent> {
        let health = self.health.get_mut(target_id)?;
        let until = health.paused_until?;
        if at < until {
            return None;
        }
        health.paused_until = None;
        health.misses.clear();
        health.reason.clear();
        Some(TargetEvent::Resumed {
            target_id: target_id.to_owned(),
        })
    }

    fn refusal(&self, bid: &Bid, target: &Target, at: i64) -> Option<DropReason> {
        if let Some(until) = self
            .health
            .get(&target.id)
            .and_then(|h| h.paused_until)
            .filter(|until| at < *until)
        {
            return Some(DropReason::TargetPaused { until });
        }
        let active = self.places.get(&target.id).copied().unwrap_or(0);
        if target.max_concurrent > 0 && active >= target.max_concurrent {
            return Some(DropReason::AtCapacity);
        }
        let usage = self.usage.get(&bid.id);
        for (period, kind, limit) in caps_of(bid) {
            let key = period_key(period, &bid.time_zone, at);
            let bucket = usage
                .map(|u| u[period.index()])
                .filter(|b| b.key == key)
                .unwrap_or_default();
            let after = match kind {
                CapKind::Calls => bucket.calls + 1,
                CapKind::Payout => bucket.payout_micros.saturating_add(bid.amount_micros),
            };
            if after > limit {
                return Some(DropReason::CapReached { period, kind });
            }
        }
        None
    }
}

impl Ledger {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether `bid` could take a call at `at` — what the auction shows in its
    /// trace. Nothing is taken: [`Ledger::take`] decides when the target rings.
    pub fn check(&self, bid: &Bid, target: &Target, at: i64) -> Result<(), DropReason> {
        let state = self.lock();
        match state.refusal(bid, target, at) {
            Some(reason) => Err(reason),
            None => Ok(()),
        }
    }

    /// Takes a place of `target` and one unit of each of `bid`'s caps, all or
    /// nothing. Also reports a pause that ran out by `at`.
    pub fn take(
        &self,
        bid: &Bid,
        target: &Target,
        at: i64,
    ) -> (Result<Hold, DropReason>, Option<TargetEvent>) {
        let mut state = self.lock();
        let resumed = state.resume_if_due(&target.id, at);
        if let Some(reason) = state.refusal(bid, target, at) {
            return (Err(reason), resumed);
        }
        *state.places.entry(target.id.clone()).or_default() += 1;
        let mut keys = [0; 3];
        let usage = state.usage.entry(bid.id.clone()).or_default();
        for period in Period::ALL {
            let key = period_key(period, &bid.time_zone, at);
            let bucket = &mut usage[period.index()];
            if bucket.key != key {
                *bucket = Bucket {
                    key,
                    ..Bucket::default()
                };
            }
            bucket.calls += 1;
            bucket.payout_micros = bucket.payout_micros.saturating_add(bid.amount_micros);
            keys[period.index()] = key;
        }
        let hold = Hold {
            target_id: target.id.clone(),
            bid_id: bid.id.clone(),
            amount_micros: bid.amount_micros,
            miss_limit: target.miss_limit,
            pause_s: target.pause_s,
            keys,
        };
        (Ok(hold), resumed)
    }

    /// Counts a call `bid` took at `at` before the node started (from its
    /// stored record), so that caps hold across restarts.
    pub fn restore(&self, bid: &Bid, at: i64, billable: bool) {
        let mut state = self.lock();
        let usage = state.usage.entry(bid.id.clone()).or_default();
        for period in Period::ALL {
            let key = period_key(period, &bid.time_zone, at);
            let bucket = &mut usage[period.index()];
            if bucket.key > key {
                continue;
            }
            if bucket.key < key {
                *bucket = Bucket {
                    key,
                    ..Bucket::default()
                };
            }
            bucket.calls += 1;
            if billable {
                bucket.payout_micros = bucket.payout_micros.saturating_add(bid.amount_micros);
            }
        }
    }

    /// The target answered: its run of misses is over.
    pub fn answered(&self, hold: &Hold) {
        let mut state = self.lock();
        if let Some(health) = state.health.get_mut(&hold.target_id) {
            health.misses.clear();
        }
    }

    /// Gives back what `hold` took, as `end` says; a miss that completes the
    /// target's run pauses it until `at` + its pause.
    pub fn release(&self, hold: Hold, end: LegEnd<'_>, at: i64) -> Option<TargetEvent> {
        let mut state = self.lock();
        if let Some(count) = state.places.get_mut(&hold.target_id) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                state.places.remove(&hold.target_id);
            }
        }
        let (give_back_call, give_back_payout) = match end {
            LegEnd::Ended { billable, .. } => (false, !billable),
            LegEnd::Missed(_) | LegEnd::Withdrawn => (true, true),
        };
        if !matches!(end, LegEnd::Withdrawn) {
            let answering = state.answering.entry(hold.target_id.clone()).or_default();
            answering.offered = answering.offered.saturating_add(1);
            if let LegEnd::Ended { talk_s, .. } = end {
                answering.answered = answering.answered.saturating_add(1);
                answering.talk_s = answering.talk_s.saturating_add(u64::from(talk_s));
            }
        }
        if let Some(usage) = state.usage.get_mut(&hold.bid_id) {
            for period in Period::ALL {
                let bucket = &mut usage[period.index()];
                // A unit taken in a period that has since rolled over stays
                // where it was counted.
                if bucket.key != hold.keys[period.index()] {
                    continue;
                }
                if give_back_call {
                    bucket.calls = bucket.calls.saturating_sub(1);
                }
                if give_back_payout {
                    bucket.payout_micros = bucket.payout_micros.saturating_sub(hold.amount_micros);
                }
            }
        }
        let LegEnd::Missed(result) = end else {
            return None;
        };
        if hold.miss_limit == 0 {
            return None;
        }
        let health = state.health.entry(hold.target_id.clone()).or_default();
        if health.paused_until.is_some() {
            return None;
        }
        health.misses.push(result.to_owned());
        if health.misses.len() < hold.miss_limit as usize {
            return None;
        }
        let until = at + i64::from(hold.pause_s);
        health.reason = format!(
            "{} calls in a row not answered ({})",
            health.misses.len(),
            health.misses.join(", ")
        );
        health.paused_until = Some(until);
        Some(TargetEvent::Paused {
            target_id: hold.target_id,
            until,
            reason: health.reason.clone(),
        })
    }

    /// Whether `target_id` takes calls at `at`.
    pub fn target_state(&self, target_id: &str, at: i64) -> TargetState {
        let state = self.lock();
        match state.health.get(target_id) {
            Some(Health {
                paused_until: Some(until),
                reason,
                ..
            }) if at < *until => TargetState::Paused {
                until: *until,
                reason: reason.clone(),
            },
            _ => TargetState::Active,
        }
    }

    /// Targets paused at `at`.
    pub fn paused_targets(&self, at: i64) -> usize {
        let state = self.lock();
        state
            .health
            .values()
            .filter(|h| h.paused_until.is_some_and(|until| at < until))
            .count()
    }

    /// How the target has answered so far.
    pub fn answering(&self, target_id: &str) -> Answering {
        self.lock()
            .answering
            .get(target_id)
            .copied()
            .unwrap_or_default()
    }

    /// Calls the target is on now.
    pub fn active(&self, target_id: &str) -> u32 {
        self.lock().places.get(target_id).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auction::tests::{bid, target_of};

    /// 2026-11-29 10:59:30 in Kolkata (UTC+05:30) is 05:29:30 UTC.
    const KOLKATA_1059: i64 = 1_795_930_170;

    #[test]
    fn period_keys_change_at_local_boundaries() {
        assert_eq!(
            period_key(Period::Hour, "Asia/Kolkata", KOLKATA_1059),
            2_026_112_910
        );
        assert_eq!(
            period_key(Period::Hour, "Asia/Kolkata", KOLKATA_1059 + 30),
            2_026_112_911
        );
        assert_eq!(
            period_key(Period::Hour, "UTC", KOLKATA_1059 + 30),
            2_026_112_905
        );
        assert_eq!(
            period_key(Period::Day, "Asia/Kolkata", KOLKATA_1059),
            20_261_129
        );
        assert_eq!(
            period_key(Period::Month, "Asia/Kolkata", KOLKATA_1059),
            202_611
        );
    }

    #[test]
    fn an_hourly_cap_refuses_within_the_hour_and_resets_at_its_local_boundary() {
        let mut capped = bid("capped", 10, 0, 0);
        capped.hourly_cap = Some(2);
        capped.time_zone = "Asia/Kolkata".to_owned();
        let target = target_of(&capped);
        let ledger = Ledger::new();
        for _ in 0..2 {
            let (hold, _) = ledger.take(&capped, &target, KOLKATA_1059);
            ledger.release(
                hold.unwrap(),
                LegEnd::Ended {
                    billable: true,
                    talk_s: 60,
                },
                KOLKATA_1059,
            );
        }
        let refused = DropReason::CapReached {
            period: Period::Hour,
            kind: CapKind::Calls,
        };
        assert_eq!(
            ledger.check(&capped, &target, KOLKATA_1059 + 29),
            Err(refused.clone())
        );
        assert_eq!(
            ledger.take(&capped, &target, KOLKATA_1059 + 29).0,
            Err(refused)
        );
        assert!(ledger.take(&capped, &target, KOLKATA_1059 + 30).0.is_ok());
    }

    #[test]
    fn simultaneous_takes_never_pass_a_cap_and_misses_give_units_back() {
        let mut capped = bid("capped", 5, 0, 0);
        capped.daily_cap = Some(3);
        capped.daily_payout_cap_micros = Some(100);
        let target = target_of(&capped);
        let ledger = Ledger::new();
        let holds: Vec<Hold> = (0..5)
            .filter_map(|_| ledger.take(&capped, &target, 0).0.ok())
            .collect();
        assert_eq!(holds.len(), 3);
        let mut holds = holds.into_iter();
        ledger.release(holds.next().unwrap(), LegEnd::Missed("busy"), 0);
        assert!(
            ledger.take(&capped, &target, 0).0.is_ok(),
            "the miss gave its unit back"
        );

        let mut pricey = bid("pricey", 40, 0, 0);
        pricey.hourly_payout_cap_micros = Some(100);
        let target = target_of(&pricey);
        let first = ledger.take(&pricey, &target, 0).0.unwrap();
        ledger.take(&pricey, &target, 0).0.unwrap();
        assert_eq!(
            ledger.take(&pricey, &target, 0).0,
            Err(DropReason::CapReached {
                period: Period::Hour,
                kind: CapKind::Payout
            })
        );
        ledger.release(
            first,
            LegEnd::Ended {
                billable: false,
                talk_s: 10,
            },
            0,
        );
        assert!(
            ledger.take(&pricey, &target, 0).0.is_ok(),
            "an unbillable call gives its payout back"
        );
    }

    #[test]
    fn a_target_is_full_at_max_concurrent() {
        let open = bid("open", 5, 0, 0);
        let mut target = target_of(&open);
        target.max_concurrent = 2;
        let ledger = Ledger::new();
        let first = ledger.take(&open, &target, 0).0.unwrap();
        ledger.take(&open, &target, 0).0.unwrap();
        assert_eq!(
            ledger.take(&open, &target, 0).0,
            Err(DropReason::AtCapacity)
        );
        ledger.release(first, LegEnd::Withdrawn, 0);
        assert_eq!(ledger.active(&target.id), 1);
        assert!(ledger.take(&open, &target, 0).0.is_ok());
    }

    #[test]
    fn three_misses_in_a_row_pause_a_target_until_its_pause_is_over() {
        let open = bid("open", 5, 0, 0);
        let mut target = target_of(&open);
        target.miss_limit = 3;
        target.pause_s = 60;
        let ledger = Ledger::new();
        let miss = |result: &str, at: i64| {
            let hold = ledger.take(&open, &target, at).0.unwrap();
            ledger.release(hold, LegEnd::Missed(result), at)
        };
        assert_eq!(miss("busy", 0), None);
        let answered = ledger.take(&open, &target, 1).0.unwrap();
        ledger.answered(&answered);
        ledger.release(
            answered,
            LegEnd::Ended {
                billable: true,
                talk_s: 60,
            },
            1,
        );
        assert_eq!(miss("busy", 2), None, "an answer restarted the run");
        assert_eq!(miss("ring_timeout", 3), None);
        let paused = miss("rejected", 4);
        let reason = "3 calls in a row not answered (busy, ring_timeout, rejected)".to_owned();
        assert_eq!(
            paused,
            Some(TargetEvent::Paused {
                target_id: target.id.clone(),
                until: 64,
                reason: reason.clone()
            })
        );
        assert_eq!(
            ledger.target_state(&target.id, 10),
            TargetState::Paused { until: 64, reason }
        );
        assert_eq!(ledger.paused_targets(63), 1);
        assert_eq!(
            ledger.take(&open, &target, 63).0,
            Err(DropReason::TargetPaused { until: 64 })
        );
        let (hold, event) = ledger.take(&open, &target, 64);
        assert!(hold.is_ok());
        assert_eq!(
            event,
            Some(TargetEvent::Resumed {
                target_id: target.id.clone()
            })
        );
        assert_eq!(ledger.target_state(&target.id, 64), TargetState::Active);
        assert_eq!(ledger.paused_targets(64), 0);
    }
}
