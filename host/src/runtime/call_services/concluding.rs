//! The end of an auction: every bid through the auction's rules, the
//! campaign's selector, the floor, and the ring tree with every bid's fate.

use super::gathering::{FirstTargets, bid_of_call};
use super::*;

impl CallServices {
    /// Eligibility over every bid gathered and answered in real time, the
    /// selector's order, the floor price; the ring tree.
    pub fn conclude(
        &self,
        request: &AuctionRequest,
        gathering: Gathering,
        answers: Vec<RealTimeAnswer>,
    ) -> RingTree {
        let campaign = &request.scoring.campaign;
        let market = self.market();
        let mut bids = gathering.bids;
        let mut traces: Vec<BidTrace> = Vec::new();
        let mut first_targets = FirstTargets::default();
        for (bidder, answer) in answers {
            let result = match &answer {
                Ok(Answer::Bid { .. }) => "bid",
                Ok(Answer::Declined(_)) => "declined",
                Err(Failure::Late) => "late",
                Err(Failure::Malformed(_)) => "malformed",
                Err(_) => "error",
            };
            self.metrics.inc(
                "plugboard_rtb_answers_total",
                vec![("bidder", bidder.id.clone()), ("result", result.to_owned())],
            );
            let mut bid = bid_of_call(
                &bidder,
                "rtb",
                &campaign.id,
                request.received_at_ms.div_euclid(1000),
            );
            match answer {
                Ok(Answer::Bid {
                    amount_micros,
                    target_id,
                    min_duration_s,
                }) => {
                    bid.amount_micros = amount_micros;
                    bid.target_id =
                        target_id.unwrap_or_else(|| first_targets.of(&market, &bidder.id));
                    if let Some(seconds) = min_duration_s {
                        bid.min_duration_s = seconds;
                    }
                    bids.push((bid, Source::RealTime));
                }
                Ok(Answer::Declined(_)) => traces.push(bid_trace(
                    &bid,
                    Source::RealTime,
                    "ineligible",
                    Some("rtb_declined"),
                )),
                Err(failure) => traces.push(bid_trace(
                    &bid,
                    Source::RealTime,
                    "ineligible",
                    Some(failure.code()),
                )),
            }
        }
        let offer = Offer {
            quality: request.scoring.quality,
            at_unix_seconds: request.received_at_ms.div_euclid(1000),
            caller_last_seen: request.scoring.history.last_seen_unix_seconds,
        };
        let mut outcome = auction::run(bids, &market.targets, &self.ledger, &offer, campaign);
        let mut policies = gathering.policies;
        let candidates = self.candidates(&outcome);
        self.select(&market, request, &mut outcome, &candidates, &mut policies);
        auction::enforce_floor(&mut outcome, campaign.floor_price_micros);
        for (place, entry) in outcome.ranked.iter().enumerate() {
            // Past the ring tree's length a bid is never rung; the others'
            // reason is what their turn came to (the call's record says).
            let beyond = (place >= auction::MAX_RING_TREE).then_some("beyond_ring_tree");
            traces.push(bid_trace(&entry.bid, entry.source, "lost", beyond));
        }
        for (bid, source, reason) in &outcome.dropped {
            let status = match reason {
                DropReason::NotSelected => "lost",
                _ => "ineligible",
            };
            traces.push(bid_trace(bid, *source, status, Some(reason.code())));
        }
        // The ring tree's bids first: they are what the record must keep.
        traces.sort_by_key(|t| !(t.status == "lost" && t.reason.is_none()));
        let bids_omitted = traces.len().saturating_sub(auction::MAX_TRACED_BIDS);
        traces.truncate(auction::MAX_TRACED_BIDS);
        let rings = outcome
            .ranked
            .into_iter()
            .take(auction::MAX_RING_TREE)
            .map(|entry| Ring {
                destination: self.names.destination(&entry.target.uri),
                uri: entry.target.uri.clone(),
                bid: Some((entry.bid, entry.target)),
            })
            .collect();
        let fallback = campaign.fallback_target.as_ref().map(|uri| Ring {
            bid: None,
            uri: uri.clone(),
            destination: self.names.destination(uri),
        });
        RingTree {
            rings,
            fallback,
            bids: traces,
            bids_omitted: u32::try_from(bids_omitted).unwrap_or(u32::MAX),
            policies,
            candidates,
        }
    }

    /// The eligible bids as a selector sees them, in the auction's order,
    /// with what each target's record of answering is now.
    fn candidates(&self, outcome: &auction::Outcome) -> Vec<BidCandidate> {
        outcome
            .ranked
            .iter()
            .map(|entry| {
                let answering = self.ledger.answering(&entry.target.id);
                BidCandidate {
                    id: entry.bid.id.clone(),
                    bidder_id: entry.bid.bidder_id.clone(),
                    target_id: entry.target.id.clone(),
                    amount_micros: entry.bid.amount_micros,
                    min_quality: entry.bid.min_quality,
                    min_duration_seconds: entry.bid.min_duration_s,
                    target_stats: TargetStats {
                        offered: answering.offered,
                        answered: answering.answered,
                        average_duration_seconds: answering.average_talk_s(),
                    },
                }
            })
            .collect()
    }

    /// The campaign's selector reorders the eligible bids; when it fails or
    /// answers out of contract, the built-in ranking stands.
    pub(super) fn select(
        &self,
        market: &Market,
        request: &AuctionRequest,
        outcome: &mut auction::Outcome,
        candidates: &[BidCandidate],
        traces: &mut Vec<PolicyTrace>,
    ) {
        let scoring = &request.scoring;
        if outcome.ranked.is_empty() {
            return;
        }
        let owner = &scoring.campaign.tenant_id;
        let Some(policy_id) = scoring
            .campaign
            .selector_policy_id
            .as_deref()
            .and_then(|id| usable(market, id, owner, World::Selector, traces))
        else {
            return;
        };
        let Some(deployment) = self.policies.registry().get(policy_id) else {
            self.without_active_version(
                policy_id,
                owner,
                "the bids kept the auction's order",
                traces,
            );
            return;
        };
        let ctx = InvocationContext {
            history: scoring.history,
            kv: self.store.clone() as Arc<dyn PolicyKv>,
            kv_namespace: Store::kv_namespace(policy_id, &scoring.campaign.tenant_id),
        };
        let quality = Quality {
            score: scoring.quality,
            tags: scoring.tags.clone(),
        };
        let run = self
            .cpu
            .run(owner, || {
                deployment.select(&ctx, &scoring.call, &quality, candidates)
            })
            .unwrap_or_else(|| deployment.not_run(&scoring.call.id, PolicyFailure::CpuShare));
        traces.extend(self.traces(policy_id, owner, &run));
        if let Ok(order) = &run.invocation.outcome {
            auction::apply_order(outcome, order);
        }
    }
}

fn bid_trace(bid: &Bid, source: Source, status: &str, reason: Option<&str>) -> BidTrace {
    BidTrace {
        bid_id: bid.id.clone(),
        bidder_id: bid.bidder_id.clone(),
        tenant_id: bid.tenant_id.clone(),
        target_id: bid.target_id.clone(),
        amount_micros: bid.amount_micros,
        min_quality: bid.min_quality,
        min_duration_s: bid.min_duration_s,
        source: source.as_str().to_owned(),
        status: status.to_owned(),
        reason: reason.map(str::to_owned),
    }
}
