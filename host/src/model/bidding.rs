//! Bidders, the targets their calls ring, and their bids on campaigns.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::UnixSeconds;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Bidder {
    pub id: String,
    pub tenant_id: String,
    pub name: String,
    /// Real-time bid endpoint (HTTP POST of the offer), if the bidder has one.
    pub rtb_url: Option<String>,
    /// Bidder strategy module (a `bidder` world policy), if any.
    pub strategy_policy_id: Option<String>,
    pub created_at: UnixSeconds,
}

/// Where a won call rings.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
pub struct Target {
    pub id: String,
    pub bidder_id: String,
    pub tenant_id: String,
    /// What the bidder calls it ("Denver call centre"), shown beside the
    /// id in metrics; none for targets made before names existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// SIP URI, e.g. `sip:sales@192.0.2.10:5060`.
    pub uri: String,
    pub ring_timeout_s: u32,
    pub max_concurrent: u32,
    /// Calls missed in a row (busy, rejected, unanswered) that pause the
    /// target; 0 = never paused.
    #[serde(default = "default_miss_limit")]
    pub miss_limit: u32,
    /// How long a pause lasts, seconds.
    #[serde(default = "default_pause_s")]
    pub pause_s: u32,
    /// Follow a 3xx from this target to a URI on its own host (another
    /// user or port of the same PBX); off, a 3xx is a failure.
    #[serde(default)]
    pub follow_redirects: bool,
    pub created_at: UnixSeconds,
}

fn default_miss_limit() -> u32 {
    3
}

fn default_pause_s() -> u32 {
    300
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
pub struct Bid {
    pub id: String,
    pub tenant_id: String,
    pub bidder_id: String,
    pub campaign_id: String,
    pub target_id: String,
    pub amount_micros: u64,
    pub min_quality: u8,
    /// Calls shorter than this are not billable.
    pub min_duration_s: u32,
    /// Calls per hour, day and month of `time_zone` (counted when the
    /// target rings, given back when it does not answer).
    pub hourly_cap: Option<u32>,
    pub daily_cap: Option<u32>,
    #[serde(default)]
    pub monthly_cap: Option<u32>,
    /// Payout per hour, day and month, micros (given back for calls that
    /// end unbillable).
    #[serde(default)]
    pub hourly_payout_cap_micros: Option<u64>,
    #[serde(default)]
    pub daily_payout_cap_micros: Option<u64>,
    #[serde(default)]
    pub monthly_payout_cap_micros: Option<u64>,
    /// IANA time zone of the schedule and the caps, e.g. `America/New_York`.
    #[serde(default = "utc")]
    pub time_zone: String,
    /// When the bid takes calls; empty = always.
    #[serde(default)]
    pub schedule: Vec<ScheduleWindow>,
    /// Duplicate-caller rule: a caller seen within this many days before the
    /// call is not routed to this bid; none = no rule.
    #[serde(default)]
    pub duplicate_window_days: Option<u32>,
    pub created_at: UnixSeconds,
}

/// Calls shorter than this are not billable, unless a bid says otherwise.
pub const DEFAULT_MIN_DURATION_S: u32 = 90;

fn utc() -> String {
    "UTC".to_owned()
}

/// Hours of operation on some weekdays, in the bid's time zone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduleWindow {
    /// 0 = Monday … 6 = Sunday.
    pub weekdays: Vec<u8>,
    /// `HH:MM`, inclusive.
    pub open: String,
    /// `HH:MM`, exclusive; `24:00` for midnight.
    pub close: String,
}
