//! Bindings of the `selector` world and the adapter behind `export_selector!`.

wit_bindgen::generate!({
    world: "selector",
    path: "../wit",
    pub_export_macro: true,
    export_macro_name: "__export_selector_world",
});

world_glue!(with caller history);

impl From<wit::Bid> for crate::Bid {
    fn from(b: wit::Bid) -> Self {
        crate::Bid {
            id: b.id,
            bidder_id: b.bidder_id,
            target_id: b.target_id,
            amount_micros: b.amount_micros,
            min_quality: b.min_quality,
            min_duration_seconds: b.min_duration_seconds,
            target_stats: crate::TargetStats {
                offered: b.target_stats.offered,
                answered: b.target_stats.answered,
                average_duration_seconds: b.target_stats.average_duration_seconds,
            },
        }
    }
}

/// Runs policy `P` on the call and its eligible bids handed over by the host.
pub fn run<P: crate::Selector>(call: Call, quality: Quality, bids: Vec<Bid>) -> Vec<u32> {
    let bids: Vec<crate::Bid> = bids.into_iter().map(Into::into).collect();
    P::select(&call.into(), &quality.into(), &bids, &WasmHost)
}
