//! Replay: stored calls run again through a candidate version of a policy,
//! to see what it would have changed before it routes live money. Each
//! call is run on the inputs its record kept (the call facts, the caller's
//! history as it was then, the offer, the candidates), deterministically
//! and with no side effect: the candidate reads a snapshot of a policy's
//! key-value store ([`snapshot`]) and what it writes is dropped with the
//! call. Then the auction's choice is made again from the record
//! ([`rerank`]) and the differences summed ([`report`]). Long replays run
//! as jobs ([`jobs`]).

mod jobs;
mod report;
mod rerank;
mod snapshot;

use std::collections::HashMap;
use std::sync::Arc;

pub use jobs::{JobError, JobHandle, JobState, MAX_JOBS_KEPT, ReplayJob, ReplayJobs, StartRefusal};
pub use report::{
    CallDiff, FloorCrossing, ReplayReport, Replayed, SAMPLE, ScoreChanges, Tally, WinnerChange,
};
pub use snapshot::KvSource;

use crate::model::{CallRecord, Campaign, PolicyInputs, PolicyKv, Quality, World};
use crate::policy::{CompiledPolicy, InvocationContext};
use crate::store::{CallFilter, Store, StoreError};
use rerank::{Contender, contenders, first_at, first_in_order};
use snapshot::Snapshots;

/// Quality a call gets when the candidate scorer fails on it: what the
/// `fallback` failure mode gives a live call.
const FALLBACK_QUALITY: u8 = 50;

/// Records read from the store per page.
const PAGE: usize = 256;

/// Which stored calls to replay.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplayRange {
    pub campaign_id: Option<String>,
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
    /// Calls at most, oldest first.
    pub limit: usize,
    /// The last `limit` calls of the range rather than the first.
    pub newest: bool,
    pub kv: KvSource,
}

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("no stored call is in that range")]
    Empty,
    #[error("no campaign {0}")]
    UnknownCampaign(String),
    #[error("the range ends before it starts")]
    BackwardRange,
}

impl ReplayError {
    /// The code the API refuses a replay with for this.
    pub fn code(&self) -> &'static str {
        match self {
            ReplayError::Store(_) => "internal",
            ReplayError::Empty => "replay.empty",
            ReplayError::UnknownCampaign(_) => "request.unknown_campaign",
            ReplayError::BackwardRange => "request.invalid_field",
        }
    }
}

/// Replays the calls of `range` that `visible` admits (a marketer's own,
/// through the API) through `candidate`; `progress` hears how many calls
/// are done after each page.
pub fn replay(
    store: &Store,
    candidate: &CompiledPolicy,
    range: &ReplayRange,
    visible: &dyn Fn(&CallRecord) -> bool,
    progress: &mut dyn FnMut(u64),
) -> Result<ReplayReport, ReplayError> {
    if let (Some(since), Some(until)) = (range.since_ms, range.until_ms)
        && until < since
    {
        return Err(ReplayError::BackwardRange);
    }
    if let Some(id) = &range.campaign_id
        && store.campaign(id)?.is_none()
    {
        return Err(ReplayError::UnknownCampaign(id.clone()));
    }
    let filter = CallFilter {
        campaign_id: range.campaign_id.clone(),
        outcome: None,
        since_ms: range.since_ms,
        until_ms: range.until_ms,
    };
    let replayable = |r: &CallRecord| !r.campaign_id.is_empty() && visible(r);
    let mut cursor = match range.newest {
        true => store.cursor_before_newest(&filter, replayable, range.limit)?,
        false => None,
    };
    let mut snapshots = Snapshots::new(store, range.kv.clone(), candidate.world());
    let mut campaigns: HashMap<String, Option<Campaign>> = HashMap::new();
    let mut tally = Tally::new(candidate.world());
    let mut seen = 0usize;
    while seen < range.limit {
        let page = store.calls(
            &filter,
            replayable,
            cursor.as_deref(),
            PAGE.min(range.limit - seen),
        )?;
        for record in &page.calls {
            seen += 1;
            let Some(inputs) = &record.inputs else {
                tally.without_inputs();
                continue;
            };
            if !campaigns.contains_key(&record.campaign_id) {
                let campaign = store.campaign(&record.campaign_id)?;
                campaigns.insert(record.campaign_id.clone(), campaign);
            }
            let campaign = &campaigns[&record.campaign_id];
            let floor = campaign.as_ref().map_or(0, |c| c.floor_price_micros);
            let kv = snapshots.for_call(&record.tenant_id, campaign.as_ref())?;
            tally.add(replay_call(candidate, kv, record, inputs, floor));
        }
        progress(seen as u64);
        match page.next_cursor {
            Some(next) if !page.calls.is_empty() => cursor = Some(next),
            _ => break,
        }
    }
    if seen == 0 {
        return Err(ReplayError::Empty);
    }
    Ok(tally.report())
}

/// One call through the candidate, and the auction's choice again.
fn replay_call(
    candidate: &CompiledPolicy,
    kv: Arc<dyn PolicyKv>,
    record: &CallRecord,
    inputs: &PolicyInputs,
    floor: u64,
) -> Replayed {
    let ctx = InvocationContext {
        history: inputs.caller_history,
        kv,
        kv_namespace: "replay".to_owned(),
    };
    let candidates = inputs.bids(record);
    let pool = contenders(record, &candidates);
    let quality = record.quality.unwrap_or(FALLBACK_QUALITY);
    // What rang first then (a selector may have put it there), else what
    // the auction's ranking would put first.
    let before = match record.trace.ring_order.first() {
        Some(rung) => pool.iter().find(|c| &c.bid_id == rung).cloned(),
        None => first_at(&pool, quality, floor),
    };
    let mut call = Replayed {
        call_id: record.id.clone(),
        score_before: None,
        score_after: None,
        first_before: before.as_ref().map(|c| c.bid_id.clone()),
        first_after: None,
        payout_before: record.payout_micros,
        payout_after: 0,
        failure: None,
        crossings: Vec::new(),
    };
    let after = match candidate.world() {
        World::Scorer => {
            let score = match candidate.score(&ctx, &inputs.call).outcome {
                Ok(quality) => quality.score,
                Err(failure) => {
                    call.failure = Some(failure.kind());
                    FALLBACK_QUALITY
                }
            };
            call.score_before = Some(quality);
            call.score_after = Some(score);
            call.crossings = pool
                .iter()
                .filter(|c| (c.min_quality <= quality) != (c.min_quality <= score))
                .map(|c| (c.bid_id.clone(), c.min_quality <= score))
                .collect();
            if score == quality {
                before.clone()
            } else {
                first_at(&pool, score, floor)
            }
        }
        World::Selector => {
            let tags = record.trace.tags.clone();
            let scored = Quality {
                score: quality,
                tags,
            };
            let order = match candidate
                .select(&ctx, &inputs.call, &scored, &candidates)
                .outcome
            {
                Ok(order) => order,
                Err(failure) => {
                    call.failure = Some(failure.kind());
                    Vec::new()
                }
            };
            first_in_order(&candidates, &order, floor)
        }
        World::Bidder => match candidate.bid(&ctx, &inputs.offer(record)).outcome {
            Ok(Some(decision)) if decision.amount_micros >= floor => {
                let outbids = before
                    .as_ref()
                    .is_none_or(|b| decision.amount_micros > b.amount_micros);
                if outbids {
                    Some(Contender {
                        bid_id: "candidate".to_owned(),
                        amount_micros: decision.amount_micros,
                        min_quality: 0,
                        min_duration_s: decision.min_duration_seconds.unwrap_or(90),
                    })
                } else {
                    before.clone()
                }
            }
            Ok(_) => before.clone(),
            Err(failure) => {
                call.failure = Some(failure.kind());
                before.clone()
            }
        },
    };
    call.first_after = after.as_ref().map(|c| c.bid_id.clone());
    call.payout_after = if call.first_after == call.first_before {
        record.payout_micros
    } else {
        after.map_or(0, |c| {
            let talked = record.duration_s >= c.min_duration_s && record.answered_at_ms.is_some();
            if talked { c.amount_micros } else { 0 }
        })
    };
    call
}
