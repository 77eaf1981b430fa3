//! Deployed versions per policy: atomic hot swap, canary split and shadow runs.
//! An invocation holds the `Deployment` it started with, so activating another
//! version never blocks it or changes it midway.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use arc_swap::ArcSwap;
use serde::Serialize;

use super::agreement::{AgreementWindow, Compare};
use super::compiled::CompiledPolicy;
use super::demotion::FailureWindow;
use super::invoke::{Invocation, InvocationContext, PolicyFailure};

use crate::model::{
    BidCandidate, BidDecision, CallFacts, DemotionRule, FailureMode, Offer, Quality,
    ShadowAgreement, World,
};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeploymentError {
    #[error("canary percentage {0} is above 100")]
    CanaryPercent(u8),
    #[error("the {role} version is a {found} policy, the deployment is for a {expected}")]
    WorldMismatch {
        role: &'static str,
        expected: World,
        found: World,
    },
}

/// A new version receiving a share of the calls.
#[derive(Debug, Clone)]
pub struct Canary {
    pub version: Arc<CompiledPolicy>,
    pub percent: u8,
}

/// Which versions of one policy serve calls.
#[derive(Debug, Clone)]
pub struct Deployment {
    active: Arc<CompiledPolicy>,
    canary: Option<Canary>,
    shadow: Option<Arc<CompiledPolicy>>,
    failure_mode: FailureMode,
    demotion: DemotionRule,
    /// The canary's and the shadow's last outcomes, shared by every call
    /// this deployment serves.
    canary_failures: Arc<Mutex<FailureWindow>>,
    shadow_failures: Arc<Mutex<FailureWindow>>,
    /// How the shadow's results compare with the served ones.
    agreement: Arc<Mutex<AgreementWindow>>,
}

/// The result of a deployment serving one call.
#[derive(Debug, Clone, Serialize)]
pub struct Run<T> {
    /// SHA-256 of the version whose result counts.
    pub version: String,
    /// Whether that version was the canary.
    pub canary: bool,
    pub invocation: Invocation<T>,
    /// The shadow version's run, recorded but never used for routing.
    pub shadow: Option<ShadowRun<T>>,
    /// The canary or shadow this run showed to fail too often: the caller
    /// takes it out of the deployment (each is named once).
    pub demotions: Vec<Demote>,
}

/// A version to take out of its deployment, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Demote {
    /// `canary` or `shadow`.
    pub role: &'static str,
    /// Its SHA-256.
    pub version: String,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ShadowRun<T> {
    pub version: String,
    pub invocation: Invocation<T>,
}

impl Deployment {
    pub fn new(active: Arc<CompiledPolicy>) -> Self {
        let demotion = DemotionRule::default();
        Deployment {
            active,
            canary: None,
            shadow: None,
            failure_mode: FailureMode::default(),
            demotion,
            canary_failures: Arc::new(Mutex::new(FailureWindow::new(demotion))),
            shadow_failures: Arc::new(Mutex::new(FailureWindow::new(demotion))),
            agreement: Arc::default(),
        }
    }

    /// How the shadow agrees with the served version over the last calls;
    /// none without a shadow.
    pub fn shadow_agreement(&self) -> Option<ShadowAgreement> {
        self.shadow.as_ref()?;
        Some(
            self.agreement
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .summary(),
        )
    }

    /// When the canary or shadow is taken out on its own (it starts
    /// counting afresh).
    pub fn with_demotion(mut self, rule: DemotionRule) -> Self {
        self.demotion = rule;
        self.canary_failures = Arc::new(Mutex::new(FailureWindow::new(rule)));
        self.shadow_failures = Arc::new(Mutex::new(FailureWindow::new(rule)));
        self
    }

    /// This deployment without its canary or its shadow (`role`); the
    /// other keeps its count.
    pub fn without(&self, role: &str) -> Deployment {
        let mut rest = self.clone();
        match role {
            "canary" => rest.canary = None,
            _ => rest.shadow = None,
        }
        rest
    }

    pub fn with_canary(
        mut self,
        version: Arc<CompiledPolicy>,
        percent: u8,
    ) -> Result<Self, DeploymentError> {
        if percent > 100 {
            return Err(DeploymentError::CanaryPercent(percent));
        }
        self.same_world("canary", &version)?;
        self.canary = Some(Canary { version, percent });
        Ok(self)
    }

    pub fn with_shadow(mut self, version: Arc<CompiledPolicy>) -> Result<Self, DeploymentError> {
        self.same_world("shadow", &version)?;
        self.shadow = Some(version);
        Ok(self)
    }

    pub fn with_failure_mode(mut self, mode: FailureMode) -> Self {
        self.failure_mode = mode;
        self
    }

    fn same_world(
        &self,
        role: &'static str,
        version: &CompiledPolicy,
    ) -> Result<(), DeploymentError> {
        if version.world() != self.active.world() {
            return Err(DeploymentError::WorldMismatch {
                role,
                expected: self.active.world(),
                found: version.world(),
            });
        }
        Ok(())
    }

    pub fn world(&self) -> World {
        self.active.world()
    }

    pub fn active(&self) -> &Arc<CompiledPolicy> {
        &self.active
    }

    pub fn canary(&self) -> Option<&Canary> {
        self.canary.as_ref()
    }

    pub fn shadow(&self) -> Option<&Arc<CompiledPolicy>> {
        self.shadow.as_ref()
    }

    pub fn failure_mode(&self) -> FailureMode {
        self.failure_mode
    }

    /// The SHA-256 of the version in `role` (`canary` or `shadow`), if any.
    pub fn version_in(&self, role: &str) -> Option<&str> {
        match role {
            "canary" => self.canary.as_ref().map(|c| c.version.sha256()),
            _ => self.shadow.as_ref().map(|s| s.sha256()),
        }
    }

    /// The version that serves `call_id`: the canary for a stable `percent` of
    /// call ids (the same call always lands on the same side), else the active one.
    pub fn pick(&self, call_id: &str) -> (&Arc<CompiledPolicy>, bool) {
        match &self.canary {
            Some(canary)
                if canary_bucket(call_id, canary.version.sha256()) < u64::from(canary.percent) =>
            {
                (&canary.version, true)
            }
            _ => (&self.active, false),
        }
    }

    pub fn score(&self, ctx: &InvocationContext, call: &CallFacts) -> Run<Quality> {
        self.run(&call.id, ctx, |policy, ctx| policy.score(ctx, call))
    }

    pub fn bid(&self, ctx: &InvocationContext, offer: &Offer) -> Run<Option<BidDecision>> {
        self.run(&offer.call_id, ctx, |policy, ctx| policy.bid(ctx, offer))
    }

    pub fn select(
        &self,
        ctx: &InvocationContext,
        call: &CallFacts,
        quality: &Quality,
        bids: &[BidCandidate],
    ) -> Run<Vec<u32>> {
        self.run(&call.id, ctx, |policy, ctx| {
            policy.select(ctx, call, quality, bids)
        })
    }

    /// The run of a call the host did not invoke the policy for: the version
    /// that would have served it, and the shadow if there is one, failed for
    /// `failure` (so the shadow's trace says why it has no result either).
    pub fn not_run<T>(&self, call_id: &str, failure: PolicyFailure) -> Run<T> {
        let (policy, canary) = self.pick(call_id);
        Run {
            version: policy.sha256().to_owned(),
            canary,
            invocation: Invocation::not_run(failure.clone()),
            shadow: self.shadow.as_ref().map(|shadow| ShadowRun {
                version: shadow.sha256().to_owned(),
                invocation: Invocation::not_run(failure),
            }),
            demotions: Vec::new(),
        }
    }

    fn run<T: Compare>(
        &self,
        call_id: &str,
        ctx: &InvocationContext,
        invoke: impl Fn(&CompiledPolicy, &InvocationContext) -> Invocation<T>,
    ) -> Run<T> {
        let (policy, canary) = self.pick(call_id);
        let invocation = invoke(policy, ctx);
        let shadow = self.shadow.as_ref().map(|shadow| {
            // The shadow keeps its own key space: its writes must not steer the
            // version that routes.
            let shadow_ctx = InvocationContext {
                kv_namespace: format!("{}#shadow", ctx.kv_namespace),
                ..ctx.clone()
            };
            ShadowRun {
                version: shadow.sha256().to_owned(),
                invocation: invoke(shadow, &shadow_ctx),
            }
        });
        if let Some(shadow) = &shadow {
            self.compare(&invocation, &shadow.invocation);
        }
        let mut demotions = Vec::new();
        if canary && let Some(reason) = judge(&self.canary_failures, &invocation) {
            demotions.push(Demote {
                role: "canary",
                version: policy.sha256().to_owned(),
                reason,
            });
        }
        if let Some(shadow) = &shadow
            && let Some(reason) = judge(&self.shadow_failures, &shadow.invocation)
        {
            demotions.push(Demote {
                role: "shadow",
                version: shadow.version.clone(),
                reason,
            });
        }
        Run {
            version: policy.sha256().to_owned(),
            canary,
            invocation,
            shadow,
            demotions,
        }
    }
}

impl Deployment {
    /// Counts one call in the shadow's agreement: a comparison when both
    /// ran, a failure when only the served version did; nothing when the
    /// served version failed, or the host did not run the shadow.
    fn compare<T: Compare>(&self, served: &Invocation<T>, shadow: &Invocation<T>) {
        let Ok(served) = &served.outcome else {
            return;
        };
        let comparison = match &shadow.outcome {
            Ok(result) => Some(served.compare(result)),
            Err(failure) if failure.is_not_run() => return,
            Err(_) => None,
        };
        self.agreement
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .observe(comparison);
    }
}

/// Counts an invocation in its version's window; the reason to demote the
/// version, the one time it is due. A run the host did not make (no
/// instance free, the tenant past its CPU share) says nothing of the
/// version and is not counted.
fn judge<T>(window: &Mutex<FailureWindow>, invocation: &Invocation<T>) -> Option<String> {
    let failure = match &invocation.outcome {
        Ok(_) => None,
        Err(failure) if failure.is_not_run() => return None,
        Err(failure) => Some(failure.kind()),
    };
    window
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .observe(failure)
}

/// 0–99 from FNV-1a of the call id and the canary version: deterministic,
/// independent of the process, and different for each canary.
fn canary_bucket(call_id: &str, version: &str) -> u64 {
    crate::hash::fnv1a(call_id.bytes().chain([0]).chain(version.bytes())) % 100
}

/// Deployments by policy id, each swappable without locking readers out.
#[derive(Default)]
pub struct PolicyRegistry {
    slots: RwLock<HashMap<String, Arc<ArcSwap<Deployment>>>>,
}

impl PolicyRegistry {
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes `deployment` serve `policy_id` from the next invocation on.
    pub fn deploy(&self, policy_id: &str, deployment: Deployment) {
        let deployment = Arc::new(deployment);
        if let Some(slot) = self.slot(policy_id) {
            slot.store(deployment);
            return;
        }
        let mut slots = self.slots.write().unwrap_or_else(|p| p.into_inner());
        match slots.get(policy_id) {
            Some(slot) => slot.store(deployment),
            None => {
                slots.insert(policy_id.to_owned(), Arc::new(ArcSwap::new(deployment)));
            }
        }
    }

    /// The deployment serving `policy_id` now; hold it for the whole call.
    pub fn get(&self, policy_id: &str) -> Option<Arc<Deployment>> {
        self.slot(policy_id).map(|slot| slot.load_full())
    }

    pub fn remove(&self, policy_id: &str) -> Option<Arc<Deployment>> {
        let mut slots = self.slots.write().unwrap_or_else(|p| p.into_inner());
        slots.remove(policy_id).map(|slot| slot.load_full())
    }

    fn slot(&self, policy_id: &str) -> Option<Arc<ArcSwap<Deployment>>> {
        let slots = self.slots.read().unwrap_or_else(|p| p.into_inner());
        slots.get(policy_id).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::canary_bucket;

    #[test]
    fn canary_bucket_splits_call_ids_near_the_percentage() {
        let in_canary = (0..10_000)
            .filter(|i| canary_bucket(&format!("call-{i}"), "abc") < 20)
            .count();
        assert!(
            (1_800..2_200).contains(&in_canary),
            "{in_canary} of 10000 in a 20% canary"
        );
    }

    #[test]
    fn canary_bucket_is_stable_for_a_call() {
        assert_eq!(canary_bucket("call-1", "v2"), canary_bucket("call-1", "v2"));
    }
}
