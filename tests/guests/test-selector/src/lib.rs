//! A selector that misbehaves as the called number's last digit asks, so
//! that one build tests reordering and each kind of garbage:
//! `0` cheapest bid first (a real reordering), `1` an index out of range,
//! `2` an index twice, `3` a million indices (4 MiB); anything else
//! the host's order.

use guest_sdk::{Bid, Call, CallerHistory, Quality, Selector};

pub struct TestSelector;

impl Selector for TestSelector {
    fn select(
        call: &Call,
        _quality: &Quality,
        bids: &[Bid],
        _host: &impl CallerHistory,
    ) -> Vec<u32> {
        let count = u32::try_from(bids.len()).unwrap_or(u32::MAX);
        match call.called.chars().last() {
            Some('0') => {
                let mut order: Vec<u32> = (0..count).collect();
                order.sort_by_key(|&i| bids[i as usize].amount_micros);
                order
            }
            Some('1') => vec![count + 7],
            Some('2') => vec![0, 0],
            Some('3') => vec![0; 1 << 20],
            _ => (0..count).collect(),
        }
    }
}

guest_sdk::export_selector!(TestSelector);
