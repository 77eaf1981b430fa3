//! The work calls ask of the shell, done against the store and the policy
//! runtime: the campaign lookup, attribution and scoring of a call, its
//! auction, and its record. Each runs on a blocking thread (policies and
//! sled are synchronous) and answers with the call's next input.
//!
//! [`scoring`] finds the campaign and scores the call, [`gathering`] collects
//! the bids, [`concluding`] runs the auction's rules and the selector; what
//! they share (the market, caller histories, policy traces) and the
//! recording of finished calls are here.

mod concluding;
mod gathering;
mod scoring;

pub use gathering::Gathering;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

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
    Bid, BidCandidate, BidTrace, Bidder, CallFacts, CallOutcome, CallTime, CallerHistory, Campaign,
    DEFAULT_MIN_DURATION_S, FailureMode, Header, NumberOwner, Offer as PolicyOffer, PolicyKv,
    PolicyTrace, Quality, Target, TargetStats, World,
};
use crate::number::normalize_e164;
use crate::policy::{Demote, InvocationContext, PolicyFailure, Run};
use crate::store::{Market, Store};

/// The outcome of a policy the host could not run: none of its versions is
/// active (deployed but never activated, or its deployment cleared).
const NO_ACTIVE_VERSION: &str = "no_active_version";

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
    pub fn arrive(&self, caller: &str, stored: CallerHistory, at_s: i64) -> CallerHistory {
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
            result: None,
            fuel_used: 0,
            elapsed_us: 0,
            logs: Vec::new(),
            logs_dropped: 0,
            tenant_id: tenant_id.to_owned(),
        });
    }

    /// Policy traces of one run (and its shadow) for `tenant_id`, with
    /// their metrics.
    fn traces<T: Serialize>(
        &self,
        policy_id: &str,
        tenant_id: &str,
        run: &Run<T>,
    ) -> Vec<PolicyTrace> {
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
        for demote in &run.demotions {
            self.demote(policy_id, demote);
        }
        traces
    }

    /// Takes a canary or shadow that fails too often out of its deployment.
    /// Rare (once per version), so the store write is made here, on the
    /// policy worker that saw it, never on the SIP loop (a call that runs
    /// a policy is never routed there).
    fn demote(&self, policy_id: &str, demote: &Demote) {
        match self.policies.demote(policy_id, demote) {
            Ok(true) => {
                tracing::warn!(
                    policy = policy_id,
                    version = %demote.version,
                    role = demote.role,
                    reason = %demote.reason,
                    "version taken out of its deployment"
                );
                self.metrics.inc(
                    "plugboard_policy_demotions_total",
                    vec![
                        ("policy", policy_id.to_owned()),
                        ("version", demote.version.chars().take(16).collect()),
                        ("role", demote.role.to_owned()),
                    ],
                );
            }
            Ok(false) => {}
            Err(error) => {
                tracing::error!(policy = policy_id, %error, "cannot record a demotion");
            }
        }
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

fn policy_trace<T: Serialize>(
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
        result: invocation
            .outcome
            .as_ref()
            .ok()
            .and_then(|result| serde_json::to_value(result).ok()),
        fuel_used: invocation.fuel_used,
        elapsed_us: u64::try_from(invocation.elapsed.as_micros()).unwrap_or(u64::MAX),
        logs: invocation.logs.clone(),
        logs_dropped: invocation.logs_dropped,
        tenant_id: tenant_id.to_owned(),
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
                result: None,
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

#[cfg(test)]
mod tests {
    use super::scoring::call_time;
    use super::{Arrivals, CallerHistory};

    #[test]
    fn a_call_in_progress_is_in_its_callers_history_until_recorded() {
        let arrivals = Arrivals::default();
        let stored = CallerHistory {
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
        let other = arrivals.arrive("+14155550199", CallerHistory::default(), 502);
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
