//! A bidder strategy for a buyer licensed in a few states with a call centre
//! open on weekday business hours: the bid depends on the caller's state, the
//! local hour and the call's quality, and offers are paced per day.

use guest_sdk::{BidDecision, Bidder, Host, Offer};

/// Base bid per state, in micros (1 USD = 1,000,000). Other states: no bid.
const STATE_BIDS: &[(&str, u64)] = &[
    ("CA", 30_000_000),
    ("TX", 25_000_000),
    ("FL", 25_000_000),
    ("AZ", 22_000_000),
    ("NV", 20_000_000),
];
/// Calls below this quality are not worth a bid.
const MIN_QUALITY: u8 = 40;
/// Most bids per UTC day; protects the buyer's budget when traffic spikes.
const DAILY_BID_LIMIT: u32 = 500;
/// Minimum billable duration the buyer asks for, in seconds.
const MIN_DURATION_S: u32 = 90;

pub struct StateHourBidder;

/// Percent of the base bid by local hour on a weekday; `None` = closed.
fn hour_percent(weekday: u8, hour: u8) -> Option<u64> {
    match (weekday, hour) {
        (0..=4, 9..=16) => Some(100),
        (0..=4, 8 | 17..=19) => Some(80),
        (5, 10..=15) => Some(60),
        _ => None,
    }
}

/// Percent of the base bid by quality tier.
fn quality_percent(score: u8) -> Option<u64> {
    match score {
        90..=100 => Some(110),
        70..=89 => Some(100),
        s if s >= MIN_QUALITY => Some(70),
        _ => None,
    }
}

impl Bidder for StateHourBidder {
    fn bid(offer: &Offer, host: &impl Host) -> Option<BidDecision> {
        let region = offer.caller_geography.region.as_str();
        let Some(&(_, base)) = STATE_BIDS.iter().find(|(state, _)| *state == region) else {
            host.debug("declined", &[("reason", "state"), ("region", region)]);
            return None;
        };
        let Some(hour_pct) = hour_percent(offer.time.local_weekday, offer.time.local_hour) else {
            host.debug("declined", &[("reason", "closed")]);
            return None;
        };
        let Some(quality_pct) = quality_percent(offer.quality.score) else {
            host.debug("declined", &[("reason", "quality")]);
            return None;
        };
        if !take_daily_slot(offer, host) {
            host.warn("declined", &[("reason", "daily-limit")]);
            return None;
        }
        let amount = base * hour_pct / 100 * quality_pct / 100;
        let amount_text = amount.to_string();
        host.info(
            "bid",
            &[("region", region), ("amount_micros", &amount_text)],
        );
        Some(BidDecision {
            amount_micros: amount,
            target_id: None,
            min_duration_seconds: Some(MIN_DURATION_S),
        })
    }
}

/// Counts today's bids in the policy's key-value store; false once the
/// limit is reached. A store that refuses the write does not block bidding.
fn take_daily_slot(offer: &Offer, host: &impl Host) -> bool {
    let day = offer.time.unix_seconds.div_euclid(86_400);
    let key = format!("bids:{day}");
    let used = host
        .kv_get(&key)
        .and_then(|bytes| <[u8; 4]>::try_from(bytes.as_slice()).ok())
        .map_or(0, u32::from_le_bytes);
    if used >= DAILY_BID_LIMIT {
        return false;
    }
    if host.kv_set(&key, &(used + 1).to_le_bytes()).is_err() {
        host.warn("pacing counter not saved", &[]);
    }
    true
}

guest_sdk::export_bidder!(StateHourBidder);

#[cfg(test)]
mod tests {
    use super::*;
    use guest_sdk::testing::TestHost;
    use guest_sdk::{CallTime, Geography, Quality};

    fn offer(region: &str, weekday: u8, hour: u8, score: u8) -> Offer {
        Offer {
            call_id: "c1".into(),
            campaign_id: "solar".into(),
            quality: Quality::new(score),
            caller_geography: Geography {
                country: "US".into(),
                region: region.into(),
                ..Geography::default()
            },
            time: CallTime {
                unix_seconds: 1_790_000_000,
                local_weekday: weekday,
                local_hour: hour,
                local_minute: 0,
            },
            attribution: vec![],
        }
    }

    fn amount(o: &Offer) -> Option<u64> {
        StateHourBidder::bid(o, &TestHost::default()).map(|b| b.amount_micros)
    }

    #[test]
    fn bids_full_price_for_good_calls_in_peak_hours() {
        assert_eq!(amount(&offer("CA", 2, 11, 75)), Some(30_000_000));
    }

    #[test]
    fn shoulder_hours_and_top_quality_scale_the_bid() {
        assert_eq!(amount(&offer("TX", 0, 18, 95)), Some(22_000_000));
    }

    #[test]
    fn declines_unlicensed_states_closed_hours_and_poor_quality() {
        assert_eq!(amount(&offer("NY", 2, 11, 75)), None);
        assert_eq!(amount(&offer("CA", 6, 11, 75)), None);
        assert_eq!(amount(&offer("CA", 2, 3, 75)), None);
        assert_eq!(amount(&offer("CA", 2, 11, 39)), None);
    }

    #[test]
    fn stops_bidding_after_the_daily_limit() {
        let host = TestHost::default();
        let o = offer("FL", 3, 10, 80);
        let bids = (0..DAILY_BID_LIMIT + 5)
            .filter(|_| StateHourBidder::bid(&o, &host).is_some())
            .count();
        assert_eq!(bids, DAILY_BID_LIMIT as usize);
    }
}
