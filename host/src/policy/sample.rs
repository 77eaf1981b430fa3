//! Running a policy once on a sample input, as `plugboard policy run` and the
//! API's dry-run do: the input format and the report.

use std::sync::Arc;

use serde::Serialize;

use super::compiled::CompiledPolicy;
use super::invoke::{Invocation, InvocationContext, PolicyFailure};

use crate::model::{GuestLog, PolicyKv, SampleInput, World};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a {world} needs `{field}` in its input")]
pub struct MissingInput {
    pub world: World,
    pub field: &'static str,
}

/// One run's report: the result as JSON, or the failure, with its cost.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SampleReport {
    #[schema(value_type = String)]
    pub world: World,
    pub sha256: String,
    #[schema(value_type = Object)]
    pub result: Option<serde_json::Value>,
    #[schema(value_type = Option<Object>)]
    pub failure: Option<PolicyFailure>,
    pub fuel_used: u64,
    pub elapsed_us: f64,
    pub memory_peak_bytes: usize,
    #[schema(value_type = Vec<Object>)]
    pub logs: Vec<GuestLog>,
    pub logs_dropped: u32,
}

/// Runs `policy` once on `input`, with `kv` under the policy's own namespace.
pub fn run_sample(
    policy: &CompiledPolicy,
    input: &SampleInput,
    kv: Arc<dyn PolicyKv>,
    kv_namespace: &str,
) -> Result<SampleReport, MissingInput> {
    let ctx = InvocationContext {
        history: input.caller_history,
        kv,
        kv_namespace: kv_namespace.to_owned(),
    };
    let world = policy.world();
    let needs = |field| MissingInput { world, field };
    let invocation = match world {
        World::Scorer => {
            to_json(policy.score(&ctx, input.call.as_ref().ok_or_else(|| needs("call"))?))
        }
        World::Bidder => {
            to_json(policy.bid(&ctx, input.offer.as_ref().ok_or_else(|| needs("offer"))?))
        }
        World::Selector => {
            let call = input.call.as_ref().ok_or_else(|| needs("call"))?;
            let quality = input.quality.as_ref().ok_or_else(|| needs("quality"))?;
            let bids = input.bids.as_deref().ok_or_else(|| needs("bids"))?;
            to_json(policy.select(&ctx, call, quality, bids))
        }
    };
    let (result, failure) = match invocation.outcome {
        Ok(value) => (Some(value), None),
        Err(failure) => (None, Some(failure)),
    };
    Ok(SampleReport {
        world,
        sha256: policy.sha256().to_owned(),
        result,
        failure,
        fuel_used: invocation.fuel_used,
        elapsed_us: invocation.elapsed.as_secs_f64() * 1e6,
        memory_peak_bytes: invocation.memory_peak_bytes,
        logs: invocation.logs,
        logs_dropped: invocation.logs_dropped,
    })
}

fn to_json<T: Serialize>(invocation: Invocation<T>) -> Invocation<serde_json::Value> {
    Invocation {
        outcome: invocation
            .outcome
            .map(|value| serde_json::to_value(value).unwrap_or_default()),
        fuel_used: invocation.fuel_used,
        elapsed: invocation.elapsed,
        memory_peak_bytes: invocation.memory_peak_bytes,
        logs: invocation.logs,
        logs_dropped: invocation.logs_dropped,
    }
}
