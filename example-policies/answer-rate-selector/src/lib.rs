//! A selector that trades price against answer rate: it rings first the bid
//! with the highest expected payout, `amount × P(answered and billable)`.
//! A buyer that pays well but lets calls ring out loses to one that answers.

use guest_sdk::{Bid, Call, CallerHistory, Quality, Selector};

/// Prior answer rate for targets with little history (Bayesian smoothing),
/// in per mille, and how many calls' worth of weight the prior carries.
const PRIOR_ANSWER_PERMILLE: u64 = 600;
const PRIOR_WEIGHT: u64 = 10;

pub struct AnswerRateSelector;

/// Expected payout in micros × 1000 (answer probability in per mille).
fn expected_value(bid: &Bid) -> u64 {
    let stats = bid.target_stats;
    let answered = u64::from(stats.answered.min(stats.offered));
    let offered = u64::from(stats.offered);
    let answer_permille =
        (answered * 1000 + PRIOR_ANSWER_PERMILLE * PRIOR_WEIGHT) / (offered + PRIOR_WEIGHT);
    // Calls that the target answers but keeps shorter than the bid's minimum
    // are not billable: halve such a target's worth.
    let short_calls = stats.answered > 0
        && bid.min_duration_seconds > 0
        && stats.average_duration_seconds < bid.min_duration_seconds;
    let billable_permille = if short_calls { 500 } else { 1000 };
    bid.amount_micros * answer_permille / 1000 * billable_permille
}

impl Selector for AnswerRateSelector {
    fn select(
        _call: &Call,
        _quality: &Quality,
        bids: &[Bid],
        host: &impl CallerHistory,
    ) -> Vec<u32> {
        let mut ranked: Vec<(u32, u64)> = bids
            .iter()
            .zip(0u32..)
            .map(|(bid, index)| (index, expected_value(bid)))
            .collect();
        // Highest expected value first; then the higher amount; then the
        // host's order, so equal bids keep their built-in ranking.
        ranked.sort_by(|(a, ev_a), (b, ev_b)| {
            ev_b.cmp(ev_a)
                .then_with(|| {
                    bids[*b as usize]
                        .amount_micros
                        .cmp(&bids[*a as usize].amount_micros)
                })
                .then_with(|| a.cmp(b))
        });
        let order: Vec<u32> = ranked.iter().map(|(index, _)| *index).collect();
        if let Some(&(first, ev)) = ranked.first() {
            let first_id = bids[first as usize].id.as_str();
            let ev_text = (ev / 1000).to_string();
            host.info(
                "ranked",
                &[("first", first_id), ("expected_micros", &ev_text)],
            );
        }
        order
    }
}

guest_sdk::export_selector!(AnswerRateSelector);

#[cfg(test)]
mod tests {
    use super::*;
    use guest_sdk::TargetStats;
    use guest_sdk::testing::TestHost;

    fn bid(id: &str, amount_usd: u64, offered: u32, answered: u32, avg_s: u32) -> Bid {
        Bid {
            id: id.into(),
            bidder_id: format!("bidder-{id}"),
            target_id: format!("target-{id}"),
            amount_micros: amount_usd * 1_000_000,
            min_quality: 0,
            min_duration_seconds: 60,
            target_stats: TargetStats {
                offered,
                answered,
                average_duration_seconds: avg_s,
            },
        }
    }

    fn order(bids: &[Bid]) -> Vec<u32> {
        AnswerRateSelector::select(
            &Call::default(),
            &Quality::new(70),
            bids,
            &TestHost::default(),
        )
    }

    #[test]
    fn a_reliable_buyer_beats_a_richer_one_that_rarely_answers() {
        let bids = [
            bid("rich", 40, 100, 20, 200),
            bid("reliable", 30, 100, 95, 200),
        ];
        assert_eq!(order(&bids), [1, 0]);
    }

    #[test]
    fn without_history_the_higher_amount_wins() {
        let bids = [bid("a", 20, 0, 0, 0), bid("b", 25, 0, 0, 0)];
        assert_eq!(order(&bids), [1, 0]);
    }

    #[test]
    fn a_target_whose_calls_end_before_the_minimum_is_discounted() {
        let bids = [bid("short", 30, 100, 90, 20), bid("long", 20, 100, 90, 300)];
        assert_eq!(order(&bids), [1, 0]);
    }

    #[test]
    fn equal_bids_keep_the_host_order_and_every_bid_is_ranked_once() {
        let bids = [
            bid("a", 10, 5, 5, 100),
            bid("b", 10, 5, 5, 100),
            bid("c", 10, 5, 5, 100),
        ];
        assert_eq!(order(&bids), [0, 1, 2]);
    }

    #[test]
    fn no_bids_no_order() {
        assert!(order(&[]).is_empty());
    }
}
