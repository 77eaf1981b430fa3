//! The bids of an auction: the campaign's standing bids and those its
//! bidders' strategy modules make on the redacted offer; real-time bidders
//! are asked over HTTP by the caller of [`CallServices::gather`].

use super::*;

/// An auction under way: the bids at hand, and the bidders still to be asked
/// over HTTP with the offer.
pub struct Gathering {
    pub offer: PolicyOffer,
    pub bids: Vec<(Bid, Source)>,
    pub real_time: Vec<Bidder>,
    pub policies: Vec<PolicyTrace>,
}

impl CallServices {
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
    pub(super) fn module_bid(
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
}

/// Each bidder's oldest target — where its bids ring when they name none —
/// found once per auction, when first needed.
#[derive(Default)]
pub(super) struct FirstTargets<'a>(Option<HashMap<&'a str, &'a Target>>);

impl<'a> FirstTargets<'a> {
    pub(super) fn of(&mut self, market: &'a Market, bidder_id: &str) -> String {
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
pub(super) fn bid_of_call(
    bidder: &Bidder,
    kind: &str,
    campaign_id: &str,
    at_unix_seconds: i64,
) -> Bid {
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
