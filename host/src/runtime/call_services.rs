//! The work calls ask of the shell, done against the store and the policy
//! runtime: the campaign lookup, attribution and scoring of a call, its
//! auction, and its record. Each runs on a blocking thread (policies and
//! sled are synchronous) and answers with the call's next input.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use super::RealTimeAnswer;
use crate::access;
use crate::auction::real_time::{Answer, Failure};
use crate::auction::{self, DropReason, Ledger, Offer, Source};
use crate::b2bua::{
    AuctionRequest, DEFAULT_QUALITY, Finished, Ring, RingTree, ScoreRequest, Scored, Scoring,
};
use crate::lifecycle::PolicyLifecycle;
use crate::metrics::Metrics;
use crate::model::{
    Bid, BidCandidate, BidTrace, Bidder, CallFacts, CallOutcome, CallTime, CallerHistory,
    CallerStats, Campaign, DEFAULT_MIN_DURATION_S, FailureMode, Header, NumberOwner,
    Offer as PolicyOffer, PolicyKv, PolicyTrace, Quality, Target, TargetStats, World,
};
use crate::number::normalize_e164;
use crate::policy::{InvocationContext, PolicyFailure, Run};
use crate::store::{Market, Store};

/// The outcome of a policy the host could not run: none of its versions is
/// active (deployed but never activated, or its deployment cleared).
const NO_ACTIVE_VERSION: &str = "no_active_version";

/// Headers a scorer sees at most (a hostile INVITE may carry hundreds).
const MAX_SCORED_HEADERS: usize = 64;

/// An auction under way: the bids at hand, and the bidders still to be asked
/// over HTTP with the offer.
pub struct Gathering {
    pub offer: PolicyOffer,
    pub bids: Vec<(Bid, Source)>,
    pub real_time: Vec<Bidder>,
    pub policies: Vec<PolicyTrace>,
}

pub struct CallServices {
    pub store: Arc<Store>,
    /// Where target and fallback host names resolve, read from a cache.
    pub names: Arc<crate::names::Names>,
    pub policies: Arc<PolicyLifecycle>,
    pub metrics: Arc<Metrics>,
    pub ledger: Arc<Ledger>,
    /// Each tenant's share of the CPU policies take.
    pub cpu: Arc<super::PolicyCpu>,
    /// Calls that have arrived and are not yet recorded, by caller.
    pub arrivals: Arrivals,
}

/// Calls counted in their callers' history from the moment they arrive:
/// the stored history learns of a call only when its record is written, at
/// its end, so without these five calls placed at once from one number
/// would each be that number's first. Bounded by the calls in progress.
#[derive(Default)]
pub struct Arrivals(std::sync::Mutex<HashMap<String, Pending>>);

#[derive(Clone, Copy)]
struct Pending {
    calls: u32,
    latest_s: i64,
}

impl Arrivals {
    /// The caller's history before this call, `stored` and the calls in
    /// progress together, and this call counted in it: one step, so two
    /// calls arriving together each see the other.
    pub fn arrive(&self, caller: &str, stored: CallerStats, at_s: i64) -> CallerHistory {
        let mut pending = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let before = pending.get(caller).copied();
        let entry = pending.entry(caller.to_owned()).or_insert(Pending {
            calls: 0,
            latest_s: at_s,
        });
        entry.calls = entry.calls.saturating_add(1);
        entry.latest_s = entry.latest_s.max(at_s);
        CallerHistory {
            calls_seen: stored
                .calls_seen
                .saturating_add(before.map_or(0, |p| p.calls)),
            last_seen_unix_seconds: match (stored.last_seen_unix_seconds, before) {
                (Some(s), Some(p)) => Some(s.max(p.latest_s)),
                (s, p) => s.or(p.map(|p| p.latest_s)),
            },
            conversions: stored.conversions,
        }
    }

    /// The call is in the stored history now (its record is written).
    pub fn recorded(&self, caller: &str) {
        let mut pending = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(entry) = pending.get_mut(caller) {
            entry.calls -= 1;
            if entry.calls == 0 {
                pending.remove(caller);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The campaign a call is for, found by its called number.
pub struct Destination {
    /// The called number, E.164.
    called: String,
    owner: NumberOwner,
    pub campaign: Campaign,
}

impl CallServices {
    /// The campaign of the number called; none for an unknown number.
    pub fn destination(&self, request: &ScoreRequest) -> Option<Destination> {
        let called = normalize_e164(&request.called).ok()?;
        let owner = match self.store.number_owner(&called) {
            Ok(owner) => owner?,
            Err(error) => {
                tracing::error!(%error, "number lookup failed");
                return None;
            }
        };
        let campaign = self.store.campaign(owner.campaign_id()).ok()??;
        Some(Destination {
            called,
            owner,
            campaign,
        })
    }

    /// DNI attribution, then the campaign's scorer, for a call to `destination`.
    pub fn score_for(&self, request: &ScoreRequest, destination: Destination) -> Scored {
        let Destination {
            called,
            owner,
            campaign,
        } = destination;
        // Whether or not the call runs a policy of its own, its tenant has
        // calls that the other tenants' policies must leave CPU for.
        self.cpu.note_call(&campaign.tenant_id);
        let at = request.received_at_ms.div_euclid(1000);
        let attribution = match owner {
            NumberOwner::Pool(_) => self
                .store
                .pool(&campaign.id)
                .ok()
                .flatten()
                .and_then(|pool| {
                    crate::dni::session_at(pool.holders.values(), &called, at)
                        .map(|s| s.attributes.clone())
                })
                .unwrap_or_default(),
            NumberOwner::Campaign(_) => Vec::new(),
        };
        let caller = normalize_e164(&request.caller).unwrap_or_else(|_| request.caller.clone());
        let geography = crate::geography::of_number(&caller);
        let facts = CallFacts {
            id: request.call_id.clone(),
            campaign_id: campaign.id.clone(),
            caller: caller.clone(),
            called: called.clone(),
            time: call_time(request.received_at_ms, &geography.time_zone),
            caller_geography: geography,
            headers: request
                .headers
                .iter()
                .take(MAX_SCORED_HEADERS)
                .map(|h| Header {
                    name: h.name.clone(),
                    value: h.value.clone(),
                })
                .collect(),
            attribution: attribution.clone(),
        };
        let mut scoring = Scoring {
            history: self.history(&caller, request.received_at_ms.div_euclid(1000)),
            call: facts,
            campaign,
            called,
            quality: DEFAULT_QUALITY,
            tags: Vec::new(),
            policies: Vec::new(),
            attribution,
        };
        let owner = scoring.campaign.tenant_id.clone();
        let deployment = scoring
            .campaign
            .scorer_policy_id
            .as_deref()
            .and_then(|id| {
                usable(
                    &self.market(),
                    id,
                    &owner,
                    World::Scorer,
                    &mut scoring.policies,
                )
            })
            .and_then(|id| {
                let deployment = self.policies.registry().get(id);
                if deployment.is_none() {
                    self.without_active_version(
                        id,
                        &owner,
                        "the call kept the default quality",
                        &mut scoring.policies,
                    );
                }
                Some((id.to_owned(), deployment?))
            });
        if let Some((policy_id, deployment)) = deployment {
            let ctx = InvocationContext {
                history: scoring.history,
                kv: self.store.clone() as Arc<dyn PolicyKv>,
                kv_namespace: Store::kv_namespace(&policy_id, &scoring.campaign.tenant_id),
            };
            let run = self
                .cpu
                .run(&owner, || deployment.score(&ctx, &scoring.call))
                .unwrap_or_else(|| deployment.not_run(&scoring.call.id, PolicyFailure::CpuShare));
            scoring.policies = self.traces(&policy_id, &owner, &run);
            match run.invocation.outcome {
                Ok(quality) => {
                    scoring.quality = quality.score;
                    scoring.tags = quality.tags;
                }
                Err(_) => {
                    // A policy failure never loses the call: `skip` scores it
                    // as unknown (0), so only bids that take any quality remain.
                    scoring.quality = match deployment.failure_mode() {
                        FailureMode::Fallback => DEFAULT_QUALITY,
                        FailureMode::Skip => 0,
                    };
                }
            }
        }
        Scored::Campaign(Box::new(scoring))
    }

    /// Bids, bidders and targets; none (so the fallback, or 480) when the
    /// store fails, which is logged.
    fn market(&self) -> Arc<Market> {
        self.store.market().unwrap_or_else(|error| {
            tracing::error!(%error, "market not readable");
            Arc::default()
        })
    }

    /// The caller's past as policies see it (the `caller-history` import),
    /// the calls still in progress included; this call is counted from now.
    fn history(&self, caller: &str, at_s: i64) -> CallerHistory {
        let stored = self.store.caller_stats(caller).unwrap_or_default();
        self.arrivals.arrive(caller, stored, at_s)
    }

    /// The trace and count of a policy not run for want of an active
    /// version (uploaded, never activated, or its deployment cleared);
    /// `instead` says what the call did without it.
    fn without_active_version(
        &self,
        policy_id: &str,
        tenant_id: &str,
        instead: &str,
        traces: &mut Vec<PolicyTrace>,
    ) {
        self.metrics
            .policy_invocation(policy_id, "", "active", NO_ACTIVE_VERSION, Duration::ZERO);
        traces.push(PolicyTrace {
            policy_id: policy_id.to_owned(),
            version: String::new(),
            role: "active".to_owned(),
            outcome: NO_ACTIVE_VERSION.to_owned(),
            error: Some(format!(
                "policy {policy_id} has no active version: {instead}"
            )),
            fuel_used: 0,
            elapsed_us: 0,
            logs: Vec::new(),
            logs_dropped: 0,
            tenant_id: tenant_id.to_owned(),
        });
    }

    /// Policy traces of one run (and its shadow) for `tenant_id`, with
    /// their metrics.
    fn traces<T>(&self, policy_id: &str, tenant_id: &str, run: &Run<T>) -> Vec<PolicyTrace> {
        let role = if run.canary { "canary" } else { "active" };
        let mut traces = vec![policy_trace(
            policy_id,
            tenant_id,
            &run.version,
            role,
            &run.invocation,
        )];
        if let Some(shadow) = &run.shadow {
            traces.push(policy_trace(
                policy_id,
                tenant_id,
                &shadow.version,
                "shadow",
                &shadow.invocation,
            ));
        }
        for trace in &traces {
            self.metrics.policy_invocation(
                policy_id,
                &trace.version,
                &trace.role,
                &trace.outcome,
                Duration::from_micros(trace.elapsed_us),
            );
        }
        traces
    }

    /// Whether routing a call to the campaign runs any policy: its scorer,
    /// or an auction that does.
    pub fn invokes_policies(&self, campaign: &Campaign) -> bool {
        campaign.scorer_policy_id.is_some() || self.auction_invokes_policies(campaign)
    }

    /// Whether the campaign's auction asks policies or real-time bidders
    /// (its selector, its bidders' strategy modules or endpoints), or only
    /// ranks static bids.
    pub fn auction_invokes_policies(&self, campaign: &Campaign) -> bool {
        campaign.selector_policy_id.is_some()
            || self.market().bidders.iter().any(|b| {
                (b.strategy_policy_id.is_some() || b.rtb_url.is_some())
                    && campaign.bidder_access.allows(&b.tenant_id)
            })
    }

    /// The bids the host has at hand: the campaign's static bids and its
    /// bidders' strategy modules; and which bidders to ask in real time.
    pub fn gather(&self, request: &AuctionRequest) -> Gathering {
        let campaign = &request.scoring.campaign;
        let market = self.market();
        let mut bids: Vec<(Bid, Source)> = market
            .bids
            .iter()
            .filter(|b| b.campaign_id == campaign.id)
            .map(|b| (b.clone(), Source::Static))
            .collect();
        let bidders: Vec<&Bidder> = market
            .bidders
            .iter()
            .filter(|b| campaign.bidder_access.allows(&b.tenant_id))
            .collect();
        let mut gathering = Gathering {
            offer: redacted_offer(&request.scoring),
            real_time: bidders
                .iter()
                .filter(|b| b.rtb_url.is_some())
                .map(|b| (*b).clone())
                .collect(),
            bids: Vec::new(),
            policies: Vec::new(),
        };
        let mut first_targets = FirstTargets::default();
        for bidder in bidders.iter().filter(|b| b.strategy_policy_id.is_some()) {
            if let Some(mut bid) =
                self.module_bid(&market, bidder, &gathering.offer, &mut gathering.policies)
            {
                if bid.target_id.is_empty() {
                    bid.target_id = first_targets.of(&market, &bidder.id);
                }
                bids.push((bid, Source::Module));
            }
        }
        gathering.bids = bids;
        gathering
    }

    /// What `bidder`'s strategy module bids on `offer`, as a bid of this
    /// call; none when it declines or fails (the failure is in the trace).
    fn module_bid(
        &self,
        market: &Market,
        bidder: &Bidder,
        offer: &PolicyOffer,
        traces: &mut Vec<PolicyTrace>,
    ) -> Option<Bid> {
        let policy_id = usable(
            market,
            bidder.strategy_policy_id.as_deref()?,
            &bidder.tenant_id,
            World::Bidder,
            traces,
        )?;
        let Some(deployment) = self.policies.registry().get(policy_id) else {
            self.without_active_version(
                policy_id,
                &bidder.tenant_id,
                &format!("bidder {} did not bid", bidder.id),
                traces,
            );
            return None;
        };
        let ctx = InvocationContext {
            // The bidder world has no caller-history import.
            history: CallerHistory::default(),
            kv: self.store.clone() as Arc<dyn PolicyKv>,
            kv_namespace: Store::kv_namespace(policy_id, &bidder.tenant_id),
        };
        let run = self
            .cpu
            .run(&bidder.tenant_id, || deployment.bid(&ctx, offer))
            .unwrap_or_else(|| deployment.not_run(&offer.call_id, PolicyFailure::CpuShare));
        traces.extend(self.traces(policy_id, &bidder.tenant_id, &run));
        let decision = run.invocation.outcome.ok().flatten()?;
        let mut bid = bid_of_call(
            bidder,
            "module",
            &offer.campaign_id,
            offer.time.unix_seconds,
        );
        bid.target_id = decision.target_id.unwrap_or_default();
        bid.amount_micros = decision.amount_micros;
        if let Some(seconds) = decision.min_duration_seconds {
            bid.min_duration_s = seconds;
        }
        Some(bid)
    }

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
        self.select(&market, request, &mut outcome, &mut policies);
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
        }
    }

    /// The campaign's selector reorders the eligible bids; when it fails or
    /// answers out of contract, the built-in ranking stands.
    fn select(
        &self,
        market: &Market,
        request: &AuctionRequest,
        outcome: &mut auction::Outcome,
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
        let candidates: Vec<BidCandidate> = outcome
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
            .collect();
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
                deployment.select(&ctx, &scoring.call, &quality, &candidates)
            })
            .unwrap_or_else(|| deployment.not_run(&scoring.call.id, PolicyFailure::CpuShare));
        traces.extend(self.traces(policy_id, owner, &run));
        if let Ok(order) = &run.invocation.outcome {
            auction::apply_order(outcome, order);
        }
    }

    /// Stores finished calls (with their callers' histories) in one
    /// transaction and counts them.
    pub fn record(&self, finished: &[Box<Finished>]) {
        let mut records = Vec::with_capacity(finished.len());
        for done in finished {
            let record = &done.record;
            let outcome = serde_json::to_value(record.outcome)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            self.metrics
                .inc("plugboard_calls_total", vec![("outcome", outcome)]);
            if let Some(delay) = done.post_dial_delay {
                self.metrics
                    .observe("plugboard_post_dial_delay_seconds", Vec::new(), delay);
            }
            if let Some(latency) = done.auction_latency {
                self.metrics
                    .observe("plugboard_auction_seconds", Vec::new(), latency);
            }
            for event in &record.trace.target_events {
                let name = match event.event.as_str() {
                    "paused" => "plugboard_target_pauses_total",
                    _ => "plugboard_target_resumptions_total",
                };
                self.metrics
                    .inc(name, vec![("target", event.target_id.clone())]);
            }
            // A call refused before its campaign was known has nobody to show it to.
            if !(record.campaign_id.is_empty() && record.outcome == CallOutcome::Rejected) {
                records.push(record.clone());
            }
        }
        let paused = self.ledger.paused_targets(crate::clock::unix_now());
        self.metrics.set_gauge(
            "plugboard_targets_paused",
            Vec::new(),
            i64::try_from(paused).unwrap_or(i64::MAX),
        );
        if let Err(error) = self.store.record_calls(&records) {
            tracing::error!(%error, calls = records.len(), "call records not stored");
        }
        // After the write, so that a call is never in neither place.
        for record in records.iter().filter(|r| !r.campaign_id.is_empty()) {
            self.arrivals.recorded(&record.caller);
        }
    }
}

/// `policy_id` when `owner` (a campaign's or a bidder's tenant) may run it
/// as a `world` policy now; otherwise none, and the refusal goes into
/// `traces` (the campaign or bidder names a policy it may not use).
fn usable<'a>(
    market: &Market,
    policy_id: &'a str,
    owner: &str,
    world: World,
    traces: &mut Vec<PolicyTrace>,
) -> Option<&'a str> {
    match access::policy_usable_by(owner, market.policies.get(policy_id), world) {
        Ok(()) => Some(policy_id),
        Err(refusal) => {
            traces.push(PolicyTrace {
                policy_id: policy_id.to_owned(),
                version: String::new(),
                role: "active".to_owned(),
                outcome: "not_usable".to_owned(),
                error: Some(refusal.to_string()),
                fuel_used: 0,
                elapsed_us: 0,
                logs: Vec::new(),
                logs_dropped: 0,
                tenant_id: owner.to_owned(),
            });
            None
        }
    }
}

/// Each bidder's oldest target — where its bids ring when they name none —
/// found once per auction, when first needed.
#[derive(Default)]
struct FirstTargets<'a>(Option<HashMap<&'a str, &'a Target>>);

impl<'a> FirstTargets<'a> {
    fn of(&mut self, market: &'a Market, bidder_id: &str) -> String {
        let oldest = self.0.get_or_insert_with(|| {
            let mut oldest: HashMap<&str, &Target> = HashMap::new();
            for target in market.targets.values() {
                let older = oldest
                    .get(target.bidder_id.as_str())
                    .is_none_or(|o| (target.created_at, &target.id) < (o.created_at, &o.id));
                if older {
                    oldest.insert(&target.bidder_id, target);
                }
            }
            oldest
        });
        oldest
            .get(bidder_id)
            .map(|t| t.id.clone())
            .unwrap_or_default()
    }
}

/// A bid `bidder` makes for one call only (`<bidder>:<kind>`, a module's or
/// a real-time one), before its amount and target are known: no quality
/// floor, the API's default minimum duration, made at the call's arrival so
/// that standing bids of the same amount rank before it.
fn bid_of_call(bidder: &Bidder, kind: &str, campaign_id: &str, at_unix_seconds: i64) -> Bid {
    Bid {
        id: format!("{}:{kind}", bidder.id),
        tenant_id: bidder.tenant_id.clone(),
        bidder_id: bidder.id.clone(),
        campaign_id: campaign_id.to_owned(),
        min_duration_s: DEFAULT_MIN_DURATION_S,
        time_zone: "UTC".to_owned(),
        created_at: at_unix_seconds,
        ..Bid::default()
    }
}

/// The offer bidders see: the call without its caller's number, and only the
/// attribution keys the marketer shares.
fn redacted_offer(scoring: &Scoring) -> PolicyOffer {
    let call = &scoring.call;
    let shared = &scoring.campaign.shared_attribution_keys;
    PolicyOffer {
        call_id: call.id.clone(),
        campaign_id: scoring.campaign.id.clone(),
        quality: Quality {
            score: scoring.quality,
            tags: scoring.tags.clone(),
        },
        caller_geography: call.caller_geography.clone(),
        time: call.time.clone(),
        attribution: scoring
            .attribution
            .iter()
            .filter(|(key, _)| shared.contains(key))
            .cloned()
            .collect(),
    }
}

fn bid_trace(bid: &Bid, source: Source, status: &str, reason: Option<&str>) -> BidTrace {
    BidTrace {
        bid_id: bid.id.clone(),
        bidder_id: bid.bidder_id.clone(),
        tenant_id: bid.tenant_id.clone(),
        target_id: bid.target_id.clone(),
        amount_micros: bid.amount_micros,
        source: source.as_str().to_owned(),
        status: status.to_owned(),
        reason: reason.map(str::to_owned),
    }
}

fn policy_trace<T>(
    policy_id: &str,
    tenant_id: &str,
    version: &str,
    role: &str,
    invocation: &crate::policy::Invocation<T>,
) -> PolicyTrace {
    let (outcome, error) = match &invocation.outcome {
        Ok(_) => ("ok".to_owned(), None),
        Err(failure) => (failure.kind().to_owned(), Some(failure.to_string())),
    };
    PolicyTrace {
        policy_id: policy_id.to_owned(),
        version: version.get(..16).unwrap_or(version).to_owned(),
        role: role.to_owned(),
        outcome,
        error,
        fuel_used: invocation.fuel_used,
        elapsed_us: u64::try_from(invocation.elapsed.as_micros()).unwrap_or(u64::MAX),
        logs: invocation.logs.clone(),
        logs_dropped: invocation.logs_dropped,
        tenant_id: tenant_id.to_owned(),
    }
}

/// The call's time in the caller's zone (UTC when unknown).
fn call_time(unix_ms: i64, time_zone: &str) -> CallTime {
    let zone = jiff::tz::TimeZone::get(time_zone).unwrap_or(jiff::tz::TimeZone::UTC);
    let timestamp =
        jiff::Timestamp::from_millisecond(unix_ms).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    let local = zone.to_datetime(timestamp);
    CallTime {
        unix_seconds: timestamp.as_second(),
        local_weekday: u8::try_from(local.weekday().to_monday_zero_offset()).unwrap_or(0),
        local_hour: u8::try_from(local.hour()).unwrap_or(0),
        local_minute: u8::try_from(local.minute()).unwrap_or(0),
    }
}

#[cfg(test)]
mod tests {
    use super::{Arrivals, CallerStats, call_time};

    #[test]
    fn a_call_in_progress_is_in_its_callers_history_until_recorded() {
        let arrivals = Arrivals::default();
        let stored = CallerStats {
            calls_seen: 2,
            last_seen_unix_seconds: Some(100),
            conversions: 1,
        };
        let first = arrivals.arrive("+14155550123", stored, 500);
        assert_eq!(
            (first.calls_seen, first.last_seen_unix_seconds),
            (2, Some(100))
        );
        let second = arrivals.arrive("+14155550123", stored, 501);
        assert_eq!(
            (second.calls_seen, second.last_seen_unix_seconds),
            (3, Some(500))
        );
        let other = arrivals.arrive("+14155550199", CallerStats::default(), 502);
        assert_eq!((other.calls_seen, other.last_seen_unix_seconds), (0, None));
        assert_eq!(arrivals.len(), 2);
        for caller in [
            "+14155550123",
            "+14155550123",
            "+14155550199",
            "+14155550199",
        ] {
            arrivals.recorded(caller);
        }
        assert!(
            arrivals.is_empty(),
            "nothing is held once every call is recorded"
        );
    }

    #[test]
    fn call_time_is_local_to_the_callers_zone() {
        // 2026-11-30 (a Monday) 15:30 UTC is 07:30 in Los Angeles.
        let time = call_time(1_796_052_600_000, "America/Los_Angeles");
        assert_eq!(
            (time.local_weekday, time.local_hour, time.local_minute),
            (0, 7, 30)
        );
        let utc = call_time(1_796_052_600_000, "");
        assert_eq!((utc.local_weekday, utc.local_hour), (0, 15));
    }
}
