//! What bidders see of a campaign before buying its calls (the patent's
//! "interface that indicates call quality"): figures computed from the
//! campaign's call records over a window. Pure: records in, summary out.

use serde::Serialize;
use utoipa::ToSchema;

use crate::model::{CallOutcome, CallRecord};

/// Quality score histogram buckets: 0–9, 10–19, …, 90–100.
pub const QUALITY_BUCKETS: usize = 10;

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct CampaignMarket {
    pub campaign_id: String,
    pub name: String,
    /// Calls in the window.
    pub calls: u64,
    /// Calls per quality decile (the last bucket holds 90–100).
    pub quality_histogram: [u64; QUALITY_BUCKETS],
    /// Answered calls over calls that were routed to a buyer.
    pub answer_rate: Option<f64>,
    /// Mean talk time of answered calls, seconds.
    pub average_duration_s: Option<f64>,
    /// Billable calls over answered calls.
    pub conversion_rate: Option<f64>,
}

/// Summarises `calls` (already narrowed to one campaign and the window).
pub fn summarize(campaign_id: &str, name: &str, calls: &[CallRecord]) -> CampaignMarket {
    let mut histogram = [0u64; QUALITY_BUCKETS];
    for quality in calls.iter().filter_map(|c| c.quality) {
        histogram[usize::from(quality / 10).min(QUALITY_BUCKETS - 1)] += 1;
    }
    let routed = calls.iter().filter(|c| c.routed_at_ms.is_some()).count();
    let answered: Vec<&CallRecord> = calls
        .iter()
        .filter(|c| c.outcome == CallOutcome::Answered)
        .collect();
    let billable = answered.iter().filter(|c| c.billable).count();
    let ratio = |n: usize, d: usize| (d > 0).then(|| n as f64 / d as f64);
    CampaignMarket {
        campaign_id: campaign_id.to_owned(),
        name: name.to_owned(),
        calls: calls.len() as u64,
        quality_histogram: histogram,
        answer_rate: ratio(answered.len(), routed),
        average_duration_s: (!answered.is_empty()).then(|| {
            answered
                .iter()
                .map(|c| f64::from(c.duration_s))
                .sum::<f64>()
                / answered.len() as f64
        }),
        conversion_rate: ratio(billable, answered.len()),
    }
}
