//! Bindings of the `bidder` world and the adapter behind `export_bidder!`.

wit_bindgen::generate!({
    world: "bidder",
    path: "../wit",
    pub_export_macro: true,
    export_macro_name: "__export_bidder_world",
});

world_glue!();

impl From<wit::Offer> for crate::Offer {
    fn from(o: wit::Offer) -> Self {
        crate::Offer {
            call_id: o.call_id,
            campaign_id: o.campaign_id,
            quality: o.quality.into(),
            caller_geography: o.caller_geography.into(),
            time: o.time.into(),
            attribution: o.attribution.into_iter().map(Into::into).collect(),
        }
    }
}

/// Runs policy `P` on an offer handed over by the host.
pub fn run<P: crate::Bidder>(offer: Offer) -> Option<BidDecision> {
    P::bid(&offer.into(), &WasmHost).map(|b| BidDecision {
        amount_micros: b.amount_micros,
        target_id: b.target_id,
        min_duration_seconds: b.min_duration_seconds,
    })
}
