//! Which bid a stored call would have rung first with another score or
//! another order, from what its record kept: pure.

use crate::model::{BidCandidate, CallRecord};

/// A bid as a replay ranks it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contender {
    pub bid_id: String,
    pub amount_micros: u64,
    pub min_quality: u8,
    pub min_duration_s: u32,
}

/// The bids that could have rung: those that were eligible (every rule
/// passed, places and caps included, at the call's quality), in the
/// auction's order, then those dropped only for their quality floor (a
/// higher score lets them in; the rules after the floor are taken to pass,
/// places and caps as they were).
pub fn contenders(record: &CallRecord, candidates: &[BidCandidate]) -> Vec<Contender> {
    let eligible = candidates.iter().map(|c| Contender {
        bid_id: c.id.clone(),
        amount_micros: c.amount_micros,
        min_quality: c.min_quality,
        min_duration_s: c.min_duration_seconds,
    });
    let below_floor = record
        .trace
        .bids
        .iter()
        .filter(|b| b.reason.as_deref() == Some("below_quality_floor"))
        .map(|b| Contender {
            bid_id: b.bid_id.clone(),
            amount_micros: b.amount_micros,
            min_quality: b.min_quality,
            min_duration_s: b.min_duration_s,
        });
    eligible.chain(below_floor).collect()
}

/// The first bid to ring at `score`: the auction's ranking (the highest
/// amount, ties to the higher quality floor, then the order they came in)
/// over the contenders the score admits, at or above the floor price.
pub fn first_at(contenders: &[Contender], score: u8, floor_price_micros: u64) -> Option<Contender> {
    let mut admitted: Vec<&Contender> = contenders
        .iter()
        .filter(|c| c.min_quality <= score && c.amount_micros >= floor_price_micros)
        .collect();
    admitted.sort_by_key(|c| {
        (
            std::cmp::Reverse(c.amount_micros),
            std::cmp::Reverse(c.min_quality),
        )
    });
    admitted.first().map(|c| (*c).clone())
}

/// The first bid to ring in a selector's `order` of the eligible bids (an
/// order out of contract leaves the auction's), at or above the floor.
pub fn first_in_order(
    candidates: &[BidCandidate],
    order: &[u32],
    floor_price_micros: u64,
) -> Option<Contender> {
    let in_contract = order.iter().all(|&i| (i as usize) < candidates.len());
    let ordered: Vec<usize> = if in_contract && !order.is_empty() {
        order.iter().map(|&i| i as usize).collect()
    } else {
        (0..candidates.len()).collect()
    };
    ordered
        .into_iter()
        .map(|i| &candidates[i])
        .find(|c| c.amount_micros >= floor_price_micros)
        .map(|c| Contender {
            bid_id: c.id.clone(),
            amount_micros: c.amount_micros,
            min_quality: c.min_quality,
            min_duration_s: c.min_duration_seconds,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contender(id: &str, amount: u64, min_quality: u8) -> Contender {
        Contender {
            bid_id: id.into(),
            amount_micros: amount,
            min_quality,
            min_duration_s: 90,
        }
    }

    #[test]
    fn a_higher_score_lets_a_richer_bid_in_and_a_lower_one_keeps_it_out() {
        let bids = [contender("cheap", 10, 0), contender("rich", 30, 80)];
        assert_eq!(
            first_at(&bids, 90, 0).map(|c| c.bid_id).as_deref(),
            Some("rich")
        );
        assert_eq!(
            first_at(&bids, 50, 0).map(|c| c.bid_id).as_deref(),
            Some("cheap")
        );
        assert_eq!(first_at(&bids, 50, 20), None, "below the floor price");
    }

    #[test]
    fn ties_go_to_the_higher_quality_floor_then_to_the_earlier() {
        let bids = [
            contender("first", 10, 0),
            contender("second", 10, 0),
            contender("fussy", 10, 40),
        ];
        assert_eq!(
            first_at(&bids, 50, 0).map(|c| c.bid_id).as_deref(),
            Some("fussy")
        );
        assert_eq!(
            first_at(&bids[..2], 50, 0).map(|c| c.bid_id).as_deref(),
            Some("first")
        );
    }
}
