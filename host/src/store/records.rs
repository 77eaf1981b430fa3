//! What the store keeps: one record type per entity. These are the host's
//! domain types; the API shows them as JSON, call handling reads them.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::policy::FailureMode;
use crate::policy::model::World;

/// Unix seconds, UTC.
pub type UnixSeconds = i64;

/// What a tenant's API keys may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Operator,
    Marketer,
    Bidder,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Operator, Role::Marketer, Role::Bidder];
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Tenant {
    pub id: String,
    pub name: String,
    pub role: Role,
    pub created_at: UnixSeconds,
}

/// An API key as stored: its SHA-256, never the key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ApiKey {
    pub id: String,
    pub tenant_id: String,
    /// Hex SHA-256 of the secret.
    #[serde(skip_serializing_if = "String::is_empty", default)]
    #[schema(ignore)]
    pub hash: String,
    /// The first characters of the key, to tell keys apart in listings.
    pub prefix: String,
    pub created_at: UnixSeconds,
}

/// Which bidders may see and bid on a campaign.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema, Default)]
#[serde(rename_all = "snake_case", tag = "kind", content = "tenants")]
pub enum BidderAccess {
    /// Every bidder tenant.
    #[default]
    All,
    /// Only these bidder tenants.
    Only(Vec<String>),
}

impl BidderAccess {
    pub fn allows(&self, tenant_id: &str) -> bool {
        match self {
            BidderAccess::All => true,
            BidderAccess::Only(tenants) => tenants.iter().any(|t| t == tenant_id),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Campaign {
    pub id: String,
    pub tenant_id: String,
    pub name: String,
    /// Static numbers, E.164, unique across campaigns.
    pub numbers: Vec<String>,
    /// Bids below this never win (micros of the campaign's currency).
    pub floor_price_micros: u64,
    /// Where a call goes when no bid wins (SIP URI).
    pub fallback_target: Option<String>,
    pub scorer_policy_id: Option<String>,
    pub selector_policy_id: Option<String>,
    /// Attribution keys bidders may see in offers.
    pub shared_attribution_keys: Vec<String>,
    pub bidder_access: BidderAccess,
    /// Send `180 Ringing` to the caller as soon as routing starts.
    pub early_ringback: bool,
    /// Deadline of the auction, milliseconds.
    pub auction_timeout_ms: u32,
    pub created_at: UnixSeconds,
}

/// A campaign's pool of numbers for dynamic number insertion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Pool {
    pub campaign_id: String,
    /// Pooled numbers, E.164, unique across campaigns and pools.
    pub numbers: Vec<String>,
    /// How long a number stays with a visitor session, seconds.
    pub ttl_s: u32,
    /// Times the pool had no free number and the default number was returned.
    pub exhausted_count: u64,
    /// The latest session of each number that has had one: the current
    /// holder, or the last one, whose expiry is when the number was released.
    #[serde(default)]
    pub holders: std::collections::BTreeMap<String, DniSession>,
}

/// A pooled number handed to a visitor session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DniSession {
    pub id: String,
    pub campaign_id: String,
    pub number: String,
    pub attributes: Vec<(String, String)>,
    pub assigned_at: UnixSeconds,
    pub expires_at: UnixSeconds,
}

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

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Policy {
    pub id: String,
    pub tenant_id: String,
    pub name: String,
    pub world: World,
    /// Usable by every tenant (the bundled example policies).
    pub shared: bool,
    pub created_at: UnixSeconds,
}

/// One immutable version of a policy; its bytes are stored by SHA-256.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PolicyVersion {
    pub policy_id: String,
    /// The first 16 hex digits of the SHA-256: the version's name.
    pub version: String,
    pub sha256: String,
    pub size: u64,
    pub uploaded_at: UnixSeconds,
    /// Run before the version may serve calls; one failing refuses activation.
    #[serde(default)]
    pub test_vectors: Vec<TestVector>,
}

/// A sample input and the result the version must return for it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TestVector {
    pub name: String,
    pub input: crate::policy::SampleInput,
    /// The expected result, compared as JSON (e.g. `{"score": 85, "tags": [...]}`).
    #[schema(value_type = Object)]
    pub expect: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CanarySpec {
    pub version: String,
    pub percent: u8,
}

/// Which versions of a policy serve calls, as the operator set it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DeploymentRecord {
    pub policy_id: String,
    pub active: Option<String>,
    pub canary: Option<CanarySpec>,
    pub shadow: Option<String>,
    pub failure_mode: FailureMode,
    /// Earlier active versions, most recent last, for rollback.
    pub history: Vec<String>,
    pub updated_at: UnixSeconds,
}

/// How a call ended, from the caller's side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CallOutcome {
    /// A buyer answered; the legs were bridged.
    Answered,
    /// Every target failed or rang out, and there was no fallback.
    NoAnswer,
    /// The caller hung up (CANCEL) before anyone answered.
    Abandoned,
    /// Refused before routing: unknown number, overload, malformed request.
    Rejected,
    /// An internal failure ended the call.
    Failed,
}

/// A bid as the auction saw it for one call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BidTrace {
    pub bid_id: String,
    pub bidder_id: String,
    /// The bidder's tenant: the bid is its own.
    #[serde(default)]
    pub tenant_id: String,
    pub target_id: String,
    pub amount_micros: u64,
    /// `static`, `module` (the bidder's strategy module) or `real_time`.
    #[serde(default)]
    pub source: String,
    /// `won`, `lost` (eligible, ranked lower, not reached or not selected)
    /// or `ineligible`.
    pub status: String,
    /// Why an ineligible bid was dropped (reason code, e.g. `below_quality_floor`).
    pub reason: Option<String>,
}

/// One policy invocation of a call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PolicyTrace {
    pub policy_id: String,
    pub version: String,
    /// `active`, `canary` or `shadow`.
    pub role: String,
    /// `ok`, or the failure kind (`trap`, `timeout`, `out_of_fuel`, …).
    pub outcome: String,
    pub error: Option<String>,
    pub fuel_used: u64,
    pub elapsed_us: u64,
    #[schema(value_type = Vec<Object>)]
    pub logs: Vec<crate::policy::model::GuestLog>,
    /// Log lines not kept: past the invocation's bound, or the record's.
    #[serde(default)]
    pub logs_dropped: u32,
    /// The tenant the invocation ran for: the campaign's marketer for its
    /// scorer and selector, the bidder for its strategy module. Only that
    /// tenant (and the operator) sees the invocation.
    #[serde(default)]
    pub tenant_id: String,
}

/// One outbound leg towards a target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LegTrace {
    pub target_id: Option<String>,
    /// The target's tenant; none for the campaign's fallback.
    #[serde(default)]
    pub tenant_id: Option<String>,
    pub uri: String,
    /// The final SIP status the target answered, if any (200, 486, 487…).
    pub final_status: Option<u16>,
    /// `answered`, `busy`, `rejected`, `ring_timeout`, `no_response` (nothing
    /// back within `sip_first_response_ms`), `cancelled`, `failed`, or why it
    /// was not rung (`unresolvable`, `at_capacity`, …).
    pub result: String,
    pub started_at_ms: i64,
    pub ended_at_ms: Option<i64>,
    /// 2xx answers from other branches of a forking proxy, acknowledged and
    /// hung up at once (RFC 3261 §13.2.2.4).
    #[serde(default)]
    pub other_forks_answered: u32,
}

/// Why the call went where it went: score, bids and their fates, ring order, legs.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, ToSchema)]
pub struct DecisionTrace {
    pub tags: Vec<String>,
    pub policies: Vec<PolicyTrace>,
    /// The bids considered, those of the ring tree first; at most a hundred.
    pub bids: Vec<BidTrace>,
    /// Bids considered beyond those kept in `bids`.
    #[serde(default)]
    pub bids_omitted: u32,
    /// Bid ids in the order their targets were rung.
    pub ring_order: Vec<String>,
    pub legs: Vec<LegTrace>,
    /// Attribution of the DNI session, if any, as an object of names to values.
    #[serde(default, with = "crate::policy::model::attribution")]
    #[schema(value_type = std::collections::BTreeMap<String, String>)]
    pub attribution: Vec<(String, String)>,
    /// Targets this call's legs paused (a run of misses) or found resumed.
    #[serde(default)]
    pub target_events: Vec<TargetEventTrace>,
    /// Who ended an answered call: `caller`, `buyer`, `session_expired` (no
    /// session refresh in time, RFC 4028), `no_ack` (the caller never
    /// acknowledged the answer) or `shutdown`.
    #[serde(default)]
    pub ended_by: Option<String>,
}

/// A target paused or resumed during a call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TargetEventTrace {
    pub target_id: String,
    /// The target's tenant.
    #[serde(default)]
    pub tenant_id: String,
    /// `paused` or `resumed`.
    pub event: String,
    /// End of the pause (Unix seconds).
    pub until: Option<i64>,
    pub reason: Option<String>,
}

/// The winning bid of an answered (or attempted) call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Winner {
    pub bid_id: String,
    pub bidder_id: String,
    /// The bidder's tenant: it may read this call.
    pub tenant_id: String,
    pub target_id: String,
    pub amount_micros: u64,
}

/// A call detail record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CallRecord {
    pub id: String,
    pub campaign_id: String,
    /// The campaign's tenant.
    pub tenant_id: String,
    pub caller: String,
    pub called: String,
    pub outcome: CallOutcome,
    pub quality: Option<u8>,
    pub winner: Option<Winner>,
    pub received_at_ms: i64,
    pub routed_at_ms: Option<i64>,
    pub answered_at_ms: Option<i64>,
    pub ended_at_ms: Option<i64>,
    pub duration_s: u32,
    /// Answered and at least the winning bid's minimum duration.
    pub billable: bool,
    pub payout_micros: u64,
    pub trace: DecisionTrace,
}

/// What the host knows of a caller (the `caller-history` import).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
pub struct CallerStats {
    pub calls_seen: u32,
    pub last_seen_unix_seconds: Option<i64>,
    pub conversions: u32,
}
