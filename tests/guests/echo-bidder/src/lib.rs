//! A bidder that logs every field of the offer it receives (so that a test
//! can assert what a bidder module is shown) and how many offers its
//! key-value store has seen, and bids 50 USD: for the target the offer's
//! shared `target` attribution names if there is one (so that a test can
//! make a module name any target, a rival's too), else for the bidder's
//! first target. On campaign `spin-bids` it spins instead, for the host to
//! stop it.

use guest_sdk::{BidDecision, Bidder, Host, Offer};

pub struct EchoBidder;

impl Bidder for EchoBidder {
    fn bid(offer: &Offer, host: &impl Host) -> Option<BidDecision> {
        if offer.campaign_id == "spin-bids" {
            let mut turns = 0u64;
            loop {
                turns = std::hint::black_box(turns.wrapping_add(1));
            }
        }
        let seen = host
            .kv_get("offers")
            .and_then(|v| <[u8; 4]>::try_from(v.as_slice()).ok())
            .map_or(0, u32::from_le_bytes)
            + 1;
        let _ = host.kv_set("offers", &seen.to_le_bytes());
        host.info(
            "offer",
            &[
                ("received", &format!("{offer:?}")),
                ("seen", &seen.to_string()),
            ],
        );
        Some(BidDecision {
            amount_micros: 50_000_000,
            target_id: offer.attribute("target").map(str::to_owned),
            min_duration_seconds: Some(0),
        })
    }
}

guest_sdk::export_bidder!(EchoBidder);
