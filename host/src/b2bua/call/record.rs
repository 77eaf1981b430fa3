//! What is kept of the call: its outcome, winner, billable time and the
//! decision trace with every bid's fate, bounded whatever its tenants do.

use super::*;

impl Call {
    /// Why a bid of the ring tree did not take the call: what its last leg
    /// ended with (`busy`, `ring_timeout`, `unreachable`, …) if it was rung;
    /// otherwise an earlier bid answered, or the call ended first.
    pub(super) fn why_not_won(&self, bid_id: &str, answered: bool) -> String {
        let leg = self.legs.iter().rev().find(|leg| {
            leg.ring
                .bid
                .as_ref()
                .is_some_and(|(bid, _)| bid.id == bid_id)
        });
        match leg {
            Some(leg) if !leg.trace.result.is_empty() => leg.trace.result.clone(),
            Some(_) => "call_ended".to_owned(),
            None if answered => "earlier_bid_answered".to_owned(),
            None => "call_ended_before_its_turn".to_owned(),
        }
    }

    /// Seconds the answered leg has talked by `ended`.
    pub(super) fn talk_seconds(&self, ended: Instant) -> u32 {
        self.answered_at.map_or(0, |at| {
            u32::try_from(ended.saturating_duration_since(at).as_secs()).unwrap_or(u32::MAX)
        })
    }

    /// Whether the call, ending at `ended`, is billable to its winning bid.
    pub(super) fn billable_at(&self, ended: Instant) -> bool {
        let winner = self.answered.and_then(|i| self.legs[i].ring.bid.as_ref());
        self.outcome.unwrap_or(CallOutcome::Answered) == CallOutcome::Answered
            && winner.is_some_and(|(bid, _)| self.talk_seconds(ended) >= bid.min_duration_s)
    }

    pub(super) fn record(&mut self, now: Instant) {
        if self.recorded {
            return;
        }
        self.recorded = true;
        let Some(scoring) = &self.scoring else {
            // Refused before a campaign was known: counted, not recorded.
            self.out.push_back(Command::Record(Box::new(Finished {
                record: self.bare_record(now),
                post_dial_delay: None,
                auction_latency: None,
            })));
            return;
        };
        let answered_leg = self.answered.map(|i| &self.legs[i]);
        let winner_bid = answered_leg.and_then(|l| l.ring.bid.as_ref());
        let ended = self.ended_at.unwrap_or(now);
        let duration_s = self.talk_seconds(ended);
        let outcome = self.outcome.unwrap_or(CallOutcome::Answered);
        let billable = self.billable_at(ended);
        let mut bids = self.tree.bids.clone();
        for trace in &mut bids {
            let won = winner_bid.is_some_and(|(bid, _)| bid.id == trace.bid_id);
            if won {
                trace.status = "won".to_owned();
            } else if trace.status == "lost" && trace.reason.is_none() {
                trace.reason = Some(self.why_not_won(&trace.bid_id, winner_bid.is_some()));
            }
        }
        let mut policies = scoring.policies.clone();
        policies.extend(self.tree.policies.iter().cloned());
        bound_logs(&mut policies);
        let record = CallRecord {
            id: self.setup.id.clone(),
            campaign_id: scoring.campaign.id.clone(),
            tenant_id: scoring.campaign.tenant_id.clone(),
            caller: self.caller_number(),
            called: scoring.called.clone(),
            outcome,
            quality: Some(scoring.quality),
            winner: winner_bid.map(|(bid, _)| Winner {
                bid_id: bid.id.clone(),
                bidder_id: bid.bidder_id.clone(),
                tenant_id: bid.tenant_id.clone(),
                target_id: bid.target_id.clone(),
                amount_micros: bid.amount_micros,
            }),
            received_at_ms: self.setup.received_at_ms,
            routed_at_ms: self.routed_at.map(|at| self.ms_at(at)),
            answered_at_ms: self.answered_at.map(|at| self.ms_at(at)),
            ended_at_ms: Some(self.ms_at(ended)),
            duration_s,
            billable,
            payout_micros: if billable {
                winner_bid.map_or(0, |(bid, _)| bid.amount_micros)
            } else {
                0
            },
            trace: DecisionTrace {
                tags: scoring.tags.clone(),
                policies,
                bids,
                bids_omitted: self.tree.bids_omitted,
                ring_order: self
                    .legs
                    .iter()
                    .filter(|l| !l.invite.headers.is_empty())
                    .filter_map(|l| l.ring.bid.as_ref().map(|(bid, _)| bid.id.clone()))
                    .collect(),
                legs: self.legs.iter().map(|l| l.trace.clone()).collect(),
                attribution: scoring.attribution.clone(),
                target_events: self
                    .target_events
                    .iter()
                    .map(|event| event_trace(event, &self.legs))
                    .collect(),
                ended_by: self.answered_at.and(self.ended_by).map(str::to_owned),
            },
            inputs: Some(self.inputs(scoring)),
        };
        self.out.push_back(Command::Record(Box::new(Finished {
            record,
            post_dial_delay: self
                .first_invite_at
                .map(|at| at.saturating_duration_since(self.received)),
            auction_latency: self.auction_latency,
        })));
    }

    /// What the call's policies saw, bounded as the record is.
    fn inputs(&self, scoring: &Scoring) -> PolicyInputs {
        let candidates = &self.tree.candidates;
        let kept = candidates.len().min(MAX_KEPT_CANDIDATES);
        PolicyInputs {
            call: scoring.call.clone(),
            caller_history: scoring.history,
            shared_attribution_keys: scoring.campaign.shared_attribution_keys.clone(),
            candidates: candidates[..kept]
                .iter()
                .map(|c| Candidate {
                    bid_id: c.id.clone(),
                    target_stats: c.target_stats.clone(),
                })
                .collect(),
            candidates_omitted: u32::try_from(candidates.len() - kept).unwrap_or(u32::MAX),
        }
    }

    /// The record of a call refused before its campaign was known.
    pub(super) fn bare_record(&self, now: Instant) -> CallRecord {
        CallRecord {
            id: self.setup.id.clone(),
            campaign_id: String::new(),
            tenant_id: String::new(),
            caller: self.caller_number(),
            called: user_part(request_uri(&self.setup.invite)).to_owned(),
            outcome: self.outcome.unwrap_or(CallOutcome::Rejected),
            quality: None,
            winner: None,
            received_at_ms: self.setup.received_at_ms,
            routed_at_ms: None,
            answered_at_ms: None,
            ended_at_ms: Some(self.ms_at(now)),
            duration_s: 0,
            billable: false,
            payout_micros: 0,
            trace: DecisionTrace::default(),
            inputs: None,
        }
    }
}

/// Bytes of policy logs one call record keeps, all its invocations
/// together: each invocation is bounded, and so is their sum, so that a
/// record's size does not grow with the number of bidders' modules.
pub const MAX_RECORD_LOG_BYTES: usize = 64 << 10;

/// Keeps the first invocations' logs up to [`MAX_RECORD_LOG_BYTES`]; later
/// ones keep their outcome and cost, and count their lines as dropped.
pub(super) fn bound_logs(policies: &mut [PolicyTrace]) {
    let mut kept = 0usize;
    for trace in policies {
        let bytes: usize = trace.logs.iter().map(GuestLog::bytes).sum();
        if kept + bytes > MAX_RECORD_LOG_BYTES {
            let lines = u32::try_from(trace.logs.len()).unwrap_or(u32::MAX);
            trace.logs_dropped = trace.logs_dropped.saturating_add(lines);
            trace.logs.clear();
        } else {
            kept += bytes;
        }
    }
}

/// A target's event in the record, with the tenant of the target (one of
/// the call's legs rang it, or was about to).
pub(super) fn event_trace(event: &TargetEvent, legs: &[Leg]) -> TargetEventTrace {
    let tenant_of = |target_id: &str| {
        legs.iter()
            .filter_map(|leg| leg.ring.bid.as_ref())
            .find(|(_, target)| target.id == target_id)
            .map(|(_, target)| target.tenant_id.clone())
            .unwrap_or_default()
    };
    match event {
        TargetEvent::Paused {
            target_id,
            until,
            reason,
        } => TargetEventTrace {
            tenant_id: tenant_of(target_id),
            target_id: target_id.clone(),
            event: "paused".to_owned(),
            until: Some(*until),
            reason: Some(reason.clone()),
        },
        TargetEvent::Resumed { target_id } => TargetEventTrace {
            tenant_id: tenant_of(target_id),
            target_id: target_id.clone(),
            event: "resumed".to_owned(),
            until: None,
            reason: None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::LogLevel;

    #[test]
    fn a_records_policy_logs_are_bounded_in_all_and_the_rest_counted() {
        let heavy = |id: &str| PolicyTrace {
            policy_id: id.to_owned(),
            version: String::new(),
            role: "active".to_owned(),
            outcome: "ok".to_owned(),
            error: None,
            result: None,
            fuel_used: 1,
            elapsed_us: 1,
            logs: vec![
                GuestLog {
                    level: LogLevel::Info,
                    message: "x".repeat(1024),
                    fields: Vec::new(),
                };
                8
            ],
            logs_dropped: 0,
            tenant_id: String::new(),
        };
        let mut traces: Vec<PolicyTrace> = (0..20).map(|i| heavy(&format!("p{i}"))).collect();
        bound_logs(&mut traces);
        let kept: usize = traces.iter().map(|t| t.logs.len() * 1024).sum();
        assert_eq!(kept, MAX_RECORD_LOG_BYTES);
        assert_eq!(traces.len(), 20, "every invocation stays, with its outcome");
        assert_eq!(traces[19].logs_dropped, 8);
    }
}
