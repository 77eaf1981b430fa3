//! What is kept of a call: its outcome, the winner and the decision trace
//! (score, bids and their fates, ring order, legs).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{BidCandidate, CallFacts, CallerHistory, GuestLog, Offer, Quality, TargetStats};

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
    /// The bid's quality floor and minimum billable duration, as they were:
    /// what a replay judges the bid by.
    #[serde(default)]
    pub min_quality: u8,
    #[serde(default)]
    pub min_duration_s: u32,
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
    /// What it returned, when it returned: a scorer's `{score, tags}`, a
    /// bidder module's bid or `null`, a selector's order. A shadow's is
    /// kept beside the served version's, which is what routed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub result: Option<serde_json::Value>,
    pub fuel_used: u64,
    pub elapsed_us: u64,
    #[schema(value_type = Vec<Object>)]
    pub logs: Vec<GuestLog>,
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
    #[serde(default, with = "super::attribution")]
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
    /// What the call's policies saw, so that another version can be run
    /// on the same call later; none on calls refused before their campaign
    /// was known, and on calls recorded before inputs were kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inputs: Option<PolicyInputs>,
}

/// The inputs of a call's policies, as they were when it was routed. What
/// the record holds elsewhere is not repeated: the offer bidder modules saw
/// is the call's facts with its quality, its tags and the attribution the
/// campaign shared ([`PolicyInputs::offer`]); the selector's candidates are
/// bids of the trace with their targets' answering record then
/// ([`PolicyInputs::bids`]). Every call record grows by what is here, so it
/// is kept small.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, ToSchema)]
pub struct PolicyInputs {
    /// The call as the scorer and the selector saw it (headers bounded as
    /// the scorer gets them).
    #[schema(value_type = Object)]
    pub call: CallFacts,
    /// The caller's history when the call arrived.
    #[schema(value_type = Object)]
    pub caller_history: CallerHistory,
    /// The attribution keys the campaign shared with bidders then.
    #[serde(default)]
    pub shared_attribution_keys: Vec<String>,
    /// The eligible bids in the auction's order: what the campaign's
    /// selector saw, or would have seen had it one. At most
    /// [`MAX_KEPT_CANDIDATES`], the first.
    pub candidates: Vec<Candidate>,
    /// Candidates beyond those kept.
    #[serde(default)]
    pub candidates_omitted: u32,
}

/// An eligible bid, by its id in the trace, and what its target's record
/// of answering was when the selector saw it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
pub struct Candidate {
    pub bid_id: String,
    #[schema(value_type = Object)]
    pub target_stats: TargetStats,
}

impl PolicyInputs {
    /// The redacted offer every bidder strategy module saw.
    pub fn offer(&self, record: &CallRecord) -> Offer {
        let call = &self.call;
        Offer {
            call_id: call.id.clone(),
            campaign_id: call.campaign_id.clone(),
            quality: Quality {
                score: record.quality.unwrap_or_default(),
                tags: record.trace.tags.clone(),
            },
            caller_geography: call.caller_geography.clone(),
            time: call.time.clone(),
            attribution: call
                .attribution
                .iter()
                .filter(|(key, _)| self.shared_attribution_keys.contains(key))
                .cloned()
                .collect(),
        }
    }

    /// The candidates as the selector saw them, in its order; a candidate
    /// whose bid the trace did not keep (past its hundred) is left out.
    pub fn bids(&self, record: &CallRecord) -> Vec<BidCandidate> {
        let traced: std::collections::HashMap<&str, &BidTrace> = record
            .trace
            .bids
            .iter()
            .map(|b| (b.bid_id.as_str(), b))
            .collect();
        self.candidates
            .iter()
            .filter_map(|candidate| {
                let bid = traced.get(candidate.bid_id.as_str())?;
                Some(BidCandidate {
                    id: bid.bid_id.clone(),
                    bidder_id: bid.bidder_id.clone(),
                    target_id: bid.target_id.clone(),
                    amount_micros: bid.amount_micros,
                    min_quality: bid.min_quality,
                    min_duration_seconds: bid.min_duration_s,
                    target_stats: candidate.target_stats.clone(),
                })
            })
            .collect()
    }
}

/// Candidates a record keeps at most, as it keeps a hundred bids.
pub const MAX_KEPT_CANDIDATES: usize = 100;
