//! Policies: the three worlds, versions and deployments as the operator
//! sets them, what a guest logs, and the key-value store a guest may use.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{BidCandidate, CallFacts, CallerHistory, Offer, Quality, UnixSeconds};

/// The three kinds of policy, one per WIT world.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum World {
    Scorer,
    Bidder,
    Selector,
}

impl World {
    pub const ALL: [World; 3] = [World::Scorer, World::Bidder, World::Selector];

    pub fn as_str(self) -> &'static str {
        match self {
            World::Scorer => "scorer",
            World::Bidder => "bidder",
            World::Selector => "selector",
        }
    }

    /// The function the world exports, named as in `wit/policy.wit`.
    pub fn export_name(self) -> &'static str {
        match self {
            World::Scorer => "score",
            World::Bidder => "bid",
            World::Selector => "select",
        }
    }
}

impl std::fmt::Display for World {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for World {
    type Err = UnknownWorld;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        World::ALL
            .into_iter()
            .find(|w| w.as_str() == s)
            .ok_or_else(|| UnknownWorld(s.to_owned()))
    }
}

#[derive(Debug, thiserror::Error)]
#[error("unknown world `{0}` (expected scorer, bidder or selector)")]
pub struct UnknownWorld(pub String);

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
    pub input: SampleInput,
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
    /// When a failing canary or shadow is taken out on its own.
    #[serde(default)]
    pub demotion: DemotionRule,
    /// Versions taken out because they failed, most recent last; at most
    /// [`MAX_DEMOTIONS_KEPT`].
    #[serde(default)]
    pub demotions: Vec<Demotion>,
}

/// A canary or shadow that fails more than `max_failure_percent` of its
/// last `window` invocations is taken out of the deployment at once. An
/// active version is never taken out: with no other version to fall back
/// to, its failure mode decides each call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct DemotionRule {
    pub window: u32,
    /// 100 never demotes.
    pub max_failure_percent: u8,
}

impl Default for DemotionRule {
    fn default() -> Self {
        DemotionRule {
            window: 100,
            max_failure_percent: 50,
        }
    }
}

/// A version taken out of a deployment because it failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Demotion {
    pub version: String,
    /// `canary` or `shadow`.
    pub role: String,
    pub at: UnixSeconds,
    /// What it failed with, e.g. `failed 6 of its last 10 invocations (trap 6)`.
    pub reason: String,
}

/// How a deployment's shadow agrees with the version that served, over
/// the last calls it ran on (this node's, since the deployment was made).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ShadowAgreement {
    /// Calls the shadow ran on (at most 100).
    pub calls: u32,
    /// Of them, calls the shadow failed on.
    pub shadow_failed: u32,
    /// Of the others, the share where both returned the same result.
    pub same_result_percent: Option<f64>,
    /// Scorers: the mean distance between the two scores.
    pub mean_score_difference: Option<f64>,
    /// Selectors: the share where both put the same bid first (the same
    /// winner, if it answers).
    pub same_first_choice_percent: Option<f64>,
}

/// Demotions a deployment record remembers.
pub const MAX_DEMOTIONS_KEPT: usize = 20;

/// What the host does when an invocation fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum FailureMode {
    /// Carry on as if there were no policy: default score, built-in ranking.
    #[default]
    Fallback,
    /// Drop what the policy would have contributed (a bidder module: no bid).
    Skip,
}

/// A sample input; which fields are needed depends on the world: `call`
/// (+ `caller_history`) for a scorer, `offer` for a bidder, `call`, `quality`
/// and `bids` for a selector.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SampleInput {
    #[schema(value_type = Option<Object>)]
    pub call: Option<CallFacts>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub caller_history: CallerHistory,
    #[schema(value_type = Option<Object>)]
    pub offer: Option<Offer>,
    #[schema(value_type = Option<Object>)]
    pub quality: Option<Quality>,
    #[schema(value_type = Option<Vec<Object>>)]
    pub bids: Option<Vec<BidCandidate>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

/// One structured line a guest logged during an invocation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestLog {
    pub level: LogLevel,
    pub message: String,
    pub fields: Vec<(String, String)>,
}

impl GuestLog {
    /// Bytes of its text: the message, field names and values. What the
    /// log bounds count.
    pub fn bytes(&self) -> usize {
        self.message.len()
            + self
                .fields
                .iter()
                .map(|(k, v)| k.len() + v.len())
                .sum::<usize>()
    }
}

/// Longest key a policy may write, in bytes.
pub const MAX_KEY_BYTES: usize = 256;
/// Longest value a policy may write, in bytes.
pub const MAX_VALUE_BYTES: usize = 64 << 10;
/// Most keys one policy may hold.
pub const MAX_KEYS_PER_POLICY: usize = 1000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KvRefusal {
    #[error("the key or the value is too large")]
    TooLarge,
    #[error("the policy holds the maximum number of keys")]
    QuotaExceeded,
    #[error("{0}")]
    Other(String),
}

/// Storage of the `kv` import; `namespace` separates policies.
pub trait PolicyKv: Send + Sync {
    fn get(&self, namespace: &str, key: &str) -> Option<Vec<u8>>;
    fn set(&self, namespace: &str, key: &str, value: &[u8]) -> Result<(), KvRefusal>;
    fn delete(&self, namespace: &str, key: &str);
}
