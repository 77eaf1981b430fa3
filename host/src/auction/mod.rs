//! The auction, sans-IO: which bids may take a call and in which order their
//! targets ring. A pure function of the bids, the targets, the call's quality
//! and the campaign's floor price; the shell loads those and passes them in.
//!
//! Each rule returns a [`DropReason`], so every dropped bid keeps saying why
//! in the decision trace. The rules on a bid alone are in [`eligibility`];
//! those on the market's live state (caps, target places, paused targets)
//! in [`Ledger`], which also takes them atomically when a target rings.

pub mod ledger;
pub mod real_time;
pub mod schedule;

use std::cmp::Reverse;
use std::collections::HashMap;

pub use ledger::{CapKind, Ledger, Period};

use crate::access;
use crate::model::{Bid, Campaign, Target};

/// The largest amount a bid may offer for one call, micros (10,000 of the
/// campaign's currency): far above any pay-per-call payout, far below what
/// would let a bid win every call without meaning to pay.
pub const MAX_AMOUNT_MICROS: u64 = 10_000_000_000;
/// The longest minimum duration a bid may ask before a call is billable,
/// seconds: longer, and the bid could win calls it never pays for.
pub const MAX_MIN_DURATION_S: u32 = 3_600;

/// Targets one call rings at most, best first: past a few dozen, a caller
/// has long hung up (each rings up to its ring timeout).
pub const MAX_RING_TREE: usize = 32;
/// Bids one call's record keeps, the ring tree's first; the rest are counted.
pub const MAX_TRACED_BIDS: usize = 100;

/// Where a bid came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Stored with `POST /v1/bids`.
    Static,
    /// Returned by the bidder's strategy module for this call.
    Module,
    /// Answered by the bidder's real-time endpoint for this call.
    RealTime,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Static => "static",
            Source::Module => "module",
            Source::RealTime => "real_time",
        }
    }
}

/// Why a bid was not used for a call. The code is what the trace shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DropReason {
    /// The campaign's `bidder_access` does not (or no longer) include the
    /// bid's tenant.
    BidderNotAllowed,
    /// The bid names a target of another bidder.
    TargetNotOwned,
    /// The amount is 0 or above [`MAX_AMOUNT_MICROS`].
    AmountOutOfRange,
    /// The minimum duration is above [`MAX_MIN_DURATION_S`].
    MinDurationOutOfRange,
    /// The call's quality is below the bid's `min_quality`.
    BelowQualityFloor { min_quality: u8, quality: u8 },
    /// The amount is below the campaign's floor price.
    BelowFloorPrice { amount: u64, floor: u64 },
    /// The bid's schedule is closed at the time of the call.
    OutsideSchedule,
    /// The caller called within the bid's duplicate window.
    DuplicateCaller,
    /// The bid's target no longer exists.
    NoTarget,
    /// The target is paused after missing calls in a row, until then (Unix seconds).
    TargetPaused { until: i64 },
    /// The target is on `max_concurrent` calls.
    AtCapacity,
    /// One of the bid's caps is used up for the current period.
    CapReached { period: Period, kind: CapKind },
    /// The campaign's selector left the bid out of its order.
    NotSelected,
}

impl DropReason {
    pub fn code(&self) -> &'static str {
        match self {
            DropReason::BidderNotAllowed => "bidder_not_allowed",
            DropReason::TargetNotOwned => "target_not_owned",
            DropReason::AmountOutOfRange => "amount_out_of_range",
            DropReason::MinDurationOutOfRange => "min_duration_out_of_range",
            DropReason::BelowQualityFloor { .. } => "below_quality_floor",
            DropReason::BelowFloorPrice { .. } => "below_floor_price",
            DropReason::OutsideSchedule => "outside_schedule",
            DropReason::DuplicateCaller => "duplicate_caller",
            DropReason::NoTarget => "no_target",
            DropReason::TargetPaused { .. } => "target_paused",
            DropReason::AtCapacity => "at_capacity",
            DropReason::CapReached { period, kind } => match (period, kind) {
                (Period::Hour, CapKind::Calls) => "hourly_cap_reached",
                (Period::Day, CapKind::Calls) => "daily_cap_reached",
                (Period::Month, CapKind::Calls) => "monthly_cap_reached",
                (Period::Hour, CapKind::Payout) => "hourly_payout_cap_reached",
                (Period::Day, CapKind::Payout) => "daily_payout_cap_reached",
                (Period::Month, CapKind::Payout) => "monthly_payout_cap_reached",
            },
            DropReason::NotSelected => "not_selected",
        }
    }
}

/// What a call brings to its auction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Offer {
    pub quality: u8,
    /// When the call arrived, Unix seconds: schedules are checked against it.
    pub at_unix_seconds: i64,
    /// When the caller was last seen before this call (caller history).
    pub caller_last_seen: Option<i64>,
}

/// An eligible bid with the target it rings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub bid: Bid,
    pub target: Target,
    pub source: Source,
}

/// The auction's result: the ring order, best first, and the dropped bids.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    pub ranked: Vec<Entry>,
    pub dropped: Vec<(Bid, Source, DropReason)>,
}

/// Whether a bid may take part at all, whatever the call: its tenant may bid
/// on the campaign now, and it offers within the bounds. Asked of every bid
/// of every call (strategy modules and real-time answers make bids no API
/// checked; a campaign may have closed to a bidder since its bid was stored).
pub fn standing(bid: &Bid, campaign: &Campaign) -> Result<(), DropReason> {
    if bid.campaign_id != campaign.id || !access::campaign_takes_bids_of(campaign, &bid.tenant_id) {
        return Err(DropReason::BidderNotAllowed);
    }
    if !(1..=MAX_AMOUNT_MICROS).contains(&bid.amount_micros) {
        return Err(DropReason::AmountOutOfRange);
    }
    if bid.min_duration_s > MAX_MIN_DURATION_S {
        return Err(DropReason::MinDurationOutOfRange);
    }
    Ok(())
}

/// The rules a bid must pass for this call, in order; the first that fails
/// names the reason. The floor price is not among them: it holds after the
/// selector ([`enforce_floor`]), whatever order the selector returns.
pub fn eligibility(bid: &Bid, offer: &Offer) -> Result<(), DropReason> {
    if bid.min_quality > offer.quality {
        return Err(DropReason::BelowQualityFloor {
            min_quality: bid.min_quality,
            quality: offer.quality,
        });
    }
    if !schedule::is_open(bid, offer.at_unix_seconds) {
        return Err(DropReason::OutsideSchedule);
    }
    if let (Some(days), Some(last)) = (bid.duplicate_window_days, offer.caller_last_seen)
        && offer.at_unix_seconds.saturating_sub(last) < i64::from(days) * 86_400
    {
        return Err(DropReason::DuplicateCaller);
    }
    Ok(())
}

/// The built-in ranking: highest amount, ties to the higher
/// quality floor, then the earlier bid, then the bid id (so that the order
/// never depends on storage order).
pub fn rank(entries: &mut [Entry]) {
    entries.sort_by_key(|e| {
        (
            Reverse(e.bid.amount_micros),
            Reverse(e.bid.min_quality),
            e.bid.created_at,
            e.bid.id.clone(),
        )
    });
}

/// Runs the auction's eligibility over bids from every source for a call to
/// `campaign` and ranks the eligible ones the built-in way. The selector, if
/// any, reorders [`Outcome::ranked`] next ([`apply_order`]), then
/// [`enforce_floor`].
pub fn run(
    bids: Vec<(Bid, Source)>,
    targets: &HashMap<String, Target>,
    ledger: &Ledger,
    offer: &Offer,
    campaign: &Campaign,
) -> Outcome {
    let mut outcome = Outcome::default();
    for (bid, source) in bids {
        if let Err(reason) = standing(&bid, campaign).and_then(|()| eligibility(&bid, offer)) {
            outcome.dropped.push((bid, source, reason));
            continue;
        }
        let Some(target) = targets.get(&bid.target_id) else {
            outcome.dropped.push((bid, source, DropReason::NoTarget));
            continue;
        };
        if !access::bid_may_ring(&bid, target) {
            outcome
                .dropped
                .push((bid, source, DropReason::TargetNotOwned));
            continue;
        }
        match ledger.check(&bid, target, offer.at_unix_seconds) {
            Ok(()) => outcome.ranked.push(Entry {
                target: target.clone(),
                bid,
                source,
            }),
            Err(reason) => outcome.dropped.push((bid, source, reason)),
        }
    }
    rank(&mut outcome.ranked);
    outcome
}

/// Puts the ranked bids in a selector's `order` (indices into
/// [`Outcome::ranked`], already checked for range and repeats); bids left out
/// are dropped as not selected.
pub fn apply_order(outcome: &mut Outcome, order: &[u32]) {
    let mut slots: Vec<Option<Entry>> = outcome.ranked.drain(..).map(Some).collect();
    for &index in order {
        if let Some(entry) = usize::try_from(index)
            .ok()
            .and_then(|i| slots.get_mut(i))
            .and_then(Option::take)
        {
            outcome.ranked.push(entry);
        }
    }
    outcome.dropped.extend(
        slots
            .into_iter()
            .flatten()
            .map(|entry| (entry.bid, entry.source, DropReason::NotSelected)),
    );
}

/// Drops the ranked bids below the campaign's floor price: the host's rule,
/// whatever the selector said.
pub fn enforce_floor(outcome: &mut Outcome, floor_price_micros: u64) {
    let (kept, below): (Vec<Entry>, Vec<Entry>) = outcome
        .ranked
        .drain(..)
        .partition(|entry| entry.bid.amount_micros >= floor_price_micros);
    outcome.ranked = kept;
    outcome.dropped.extend(below.into_iter().map(|entry| {
        let amount = entry.bid.amount_micros;
        (
            entry.bid,
            entry.source,
            DropReason::BelowFloorPrice {
                amount,
                floor: floor_price_micros,
            },
        )
    }));
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn bid(id: &str, amount: u64, min_quality: u8, created_at: i64) -> Bid {
        Bid {
            id: id.to_owned(),
            tenant_id: "t".to_owned(),
            bidder_id: "b".to_owned(),
            campaign_id: CAMPAIGN.to_owned(),
            target_id: format!("tgt_{id}"),
            amount_micros: amount,
            min_quality,
            min_duration_s: 0,
            hourly_cap: None,
            daily_cap: None,
            monthly_cap: None,
            hourly_payout_cap_micros: None,
            daily_payout_cap_micros: None,
            monthly_payout_cap_micros: None,
            time_zone: "UTC".to_owned(),
            schedule: Vec::new(),
            duplicate_window_days: None,
            created_at,
        }
    }

    pub(crate) fn target_of(bid: &Bid) -> Target {
        Target {
            id: bid.target_id.clone(),
            bidder_id: bid.bidder_id.clone(),
            tenant_id: bid.tenant_id.clone(),
            name: None,
            uri: "sip:t@127.0.0.1:5070".to_owned(),
            ring_timeout_s: 20,
            max_concurrent: 0,
            miss_limit: 0,
            pause_s: 0,
            follow_redirects: false,
            created_at: 0,
        }
    }

    const CAMPAIGN: &str = "c";

    pub(crate) fn campaign(access: crate::model::BidderAccess) -> Campaign {
        Campaign {
            id: CAMPAIGN.to_owned(),
            tenant_id: "m".to_owned(),
            name: "c".to_owned(),
            numbers: Vec::new(),
            floor_price_micros: 0,
            fallback_target: None,
            scorer_policy_id: None,
            selector_policy_id: None,
            shared_attribution_keys: Vec::new(),
            bidder_access: access,
            early_ringback: false,
            auction_timeout_ms: 100,
            created_at: 0,
        }
    }

    /// The auction of `bids`, standing bids, for a first-time caller's call
    /// of `quality` at the epoch, on a campaign open to every bidder.
    fn run_static(bids: Vec<Bid>, targets: &HashMap<String, Target>, quality: u8) -> Outcome {
        let bids = bids.into_iter().map(|b| (b, Source::Static)).collect();
        let offer = Offer {
            quality,
            at_unix_seconds: 0,
            caller_last_seen: None,
        };
        let open = campaign(crate::model::BidderAccess::All);
        run(bids, targets, &Ledger::new(), &offer, &open)
    }

    #[test]
    fn a_bid_must_stand_on_the_campaign_and_ring_its_own_target() {
        let mut rival = bid("rival", 90, 0, 0);
        rival.tenant_id = "t2".to_owned();
        rival.bidder_id = "b2".to_owned();
        rival.target_id = "tgt_own".to_owned();
        let own = bid("own", 10, 0, 0);
        let mut huge = bid("huge", MAX_AMOUNT_MICROS + 1, 0, 0);
        huge.target_id = "tgt_own".to_owned();
        let mut forever = bid("forever", 50, 0, 0);
        forever.min_duration_s = u32::MAX;
        forever.target_id = "tgt_own".to_owned();
        let all = targets(std::slice::from_ref(&own));
        let bids: Vec<(Bid, Source)> = [rival, own, huge, forever]
            .into_iter()
            .map(|b| (b, Source::Module))
            .collect();
        let offer = Offer {
            quality: 50,
            at_unix_seconds: 0,
            caller_last_seen: None,
        };
        let outcome = run(
            bids.clone(),
            &all,
            &Ledger::new(),
            &offer,
            &campaign(crate::model::BidderAccess::All),
        );
        let fates: Vec<(&str, &str)> = outcome
            .dropped
            .iter()
            .map(|(b, _, r)| (b.id.as_str(), r.code()))
            .collect();
        assert_eq!(
            fates,
            [
                ("rival", "target_not_owned"),
                ("huge", "amount_out_of_range"),
                ("forever", "min_duration_out_of_range"),
            ]
        );
        let closed = run(
            bids,
            &all,
            &Ledger::new(),
            &offer,
            &campaign(crate::model::BidderAccess::Only(vec!["t2".to_owned()])),
        );
        assert!(closed.ranked.is_empty());
        assert_eq!(closed.dropped[1].2, DropReason::BidderNotAllowed);
    }

    fn targets(bids: &[Bid]) -> HashMap<String, Target> {
        bids.iter()
            .map(|b| (b.target_id.clone(), target_of(b)))
            .collect()
    }

    #[test]
    fn highest_amount_first_then_higher_floor_then_earlier_bid() {
        let bids = vec![
            bid("late", 20, 10, 5),
            bid("low", 10, 0, 0),
            bid("early", 20, 10, 1),
            bid("picky", 20, 30, 9),
            bid("top", 30, 0, 9),
        ];
        let all = targets(&bids);
        let order: Vec<String> = run_static(bids, &all, 50)
            .ranked
            .into_iter()
            .map(|e| e.bid.id)
            .collect();
        assert_eq!(order, ["top", "picky", "early", "late", "low"]);
    }

    #[test]
    fn a_caller_seen_within_the_window_is_a_duplicate_for_bids_with_the_rule() {
        let mut strict = bid("strict", 20, 0, 0);
        strict.duplicate_window_days = Some(2);
        let lenient = bid("lenient", 10, 0, 0);
        let day = 86_400;
        let offer = |last_seen: Option<i64>| Offer {
            quality: 50,
            at_unix_seconds: 10 * day,
            caller_last_seen: last_seen,
        };
        assert_eq!(
            eligibility(&strict, &offer(Some(10 * day - 2 * day + 1))),
            Err(DropReason::DuplicateCaller)
        );
        assert_eq!(
            eligibility(&strict, &offer(Some(8 * day))),
            Ok(()),
            "two days ago: not within"
        );
        assert_eq!(eligibility(&strict, &offer(None)), Ok(()), "a first call");
        assert_eq!(
            eligibility(&lenient, &offer(Some(10 * day - 1))),
            Ok(()),
            "no rule"
        );
    }

    #[test]
    fn dropped_bids_say_why() {
        let bids = vec![
            bid("floor", 50, 80, 0),
            bid("cheap", 5, 0, 0),
            bid("ok", 50, 0, 0),
            bid("orphan", 50, 0, 0),
        ];
        let mut all = targets(&bids);
        all.remove("tgt_orphan");
        let mut outcome = run_static(bids, &all, 60);
        enforce_floor(&mut outcome, 10);
        let dropped: Vec<(String, &str)> = outcome
            .dropped
            .iter()
            .map(|(b, _, r)| (b.id.clone(), r.code()))
            .collect();
        assert_eq!(
            dropped,
            [
                ("floor".to_owned(), "below_quality_floor"),
                ("orphan".to_owned(), "no_target"),
                ("cheap".to_owned(), "below_floor_price"),
            ]
        );
        assert_eq!(outcome.ranked.len(), 1);
    }

    #[test]
    fn a_selectors_order_is_applied_and_the_floor_holds_after_it() {
        let bids = vec![
            bid("high", 30, 0, 0),
            bid("mid", 20, 0, 0),
            bid("low", 5, 0, 0),
        ];
        let all = targets(&bids);
        let mut outcome = run_static(bids, &all, 50);
        // Built-in: high, mid, low. The selector wants low first, then high.
        apply_order(&mut outcome, &[2, 0]);
        enforce_floor(&mut outcome, 10);
        let ranked: Vec<&str> = outcome.ranked.iter().map(|e| e.bid.id.as_str()).collect();
        assert_eq!(ranked, ["high"]);
        let dropped: Vec<(&str, &str)> = outcome
            .dropped
            .iter()
            .map(|(b, _, r)| (b.id.as_str(), r.code()))
            .collect();
        assert_eq!(
            dropped,
            [("mid", "not_selected"), ("low", "below_floor_price")]
        );
    }
}
