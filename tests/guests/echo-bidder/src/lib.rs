//! A bidder that logs every field of the offer it receives (so that a test
//! can assert what a bidder module is shown) and bids 50 USD for the
//! bidder's first target.

use guest_sdk::{BidDecision, Bidder, Host, Offer};

pub struct EchoBidder;

impl Bidder for EchoBidder {
    fn bid(offer: &Offer, host: &impl Host) -> Option<BidDecision> {
        host.info("offer", &[("received", &format!("{offer:?}"))]);
        Some(BidDecision {
            amount_micros: 50_000_000,
            target_id: None,
            min_duration_seconds: Some(0),
        })
    }
}

guest_sdk::export_bidder!(EchoBidder);
