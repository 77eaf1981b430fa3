//! `plugboard policy check` and `plugboard policy run`: the local harness for
//! policy authors, using the same validation and sandbox as the server.

use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{CheckArgs, CliError, RunArgs};
use crate::clock;
use crate::policy::model::{
    BidCandidate, CallFacts, CallerHistory, GuestLog, Offer, Quality, World,
};
use crate::policy::{
    CompiledPolicy, Invocation, InvocationContext, Limits, MemoryKv, PolicyEngine,
};

/// What `policy run --input` reads. Which fields are needed depends on the world.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SampleInput {
    call: Option<CallFacts>,
    #[serde(default)]
    caller_history: CallerHistory,
    offer: Option<Offer>,
    quality: Option<Quality>,
    bids: Option<Vec<BidCandidate>>,
}

/// Validates a component as an upload would; returns the report line.
pub fn check(args: &CheckArgs) -> Result<String, CliError> {
    let bytes = read(&args.file)?;
    let engine = PolicyEngine::new(Limits::default())?;
    let policy = CompiledPolicy::load(&engine, args.world, &bytes, None)?;
    Ok(format!(
        "ok: {} is a valid {} policy ({} bytes, sha256 {})",
        args.file.display(),
        policy.world(),
        policy.size(),
        policy.sha256()
    ))
}

#[derive(Serialize)]
struct RunReport<'a> {
    world: World,
    sha256: &'a str,
    compile_ms: f64,
    result: serde_json::Value,
    fuel_used: u64,
    elapsed_us: f64,
    memory_peak_bytes: usize,
    logs: &'a [GuestLog],
    logs_dropped: u32,
}

/// Runs a policy once on a sample; returns the report, or the failure.
pub fn run(args: &RunArgs) -> Result<String, CliError> {
    let bytes = read(&args.file)?;
    let input_text = std::fs::read_to_string(&args.input).map_err(|source| CliError::Read {
        path: args.input.clone(),
        source,
    })?;
    let bad_input = |reason: String| CliError::Input {
        path: args.input.clone(),
        reason,
    };
    let input: SampleInput =
        serde_json::from_str(&input_text).map_err(|e| bad_input(e.to_string()))?;

    let defaults = Limits::default();
    let limits = Limits {
        fuel: args.fuel.unwrap_or(defaults.fuel),
        deadline: args
            .timeout_ms
            .map_or(defaults.deadline, Duration::from_millis),
        memory_bytes: args
            .memory_mib
            .map_or(defaults.memory_bytes, |mib| mib << 20),
        ..defaults
    };
    let engine = PolicyEngine::new(limits)?;
    let compile_started = clock::now();
    let policy = CompiledPolicy::load(&engine, args.world, &bytes, None)?;
    let compile_time = clock::now().saturating_duration_since(compile_started);
    let ctx = InvocationContext {
        history: input.caller_history,
        kv: Arc::new(MemoryKv::new()),
        kv_namespace: policy.sha256().to_owned(),
    };
    let needs = |field: &str| bad_input(format!("a {} needs `{field}`", args.world));

    let report = match args.world {
        World::Scorer => {
            let call = input.call.as_ref().ok_or_else(|| needs("call"))?;
            to_json(policy.score(&ctx, call))
        }
        World::Bidder => {
            let offer = input.offer.as_ref().ok_or_else(|| needs("offer"))?;
            to_json(policy.bid(&ctx, offer))
        }
        World::Selector => {
            let call = input.call.as_ref().ok_or_else(|| needs("call"))?;
            let quality = input.quality.as_ref().ok_or_else(|| needs("quality"))?;
            let bids = input.bids.as_deref().ok_or_else(|| needs("bids"))?;
            to_json(policy.select(&ctx, call, quality, bids))
        }
    };
    let result = report.outcome.clone()?;
    let run = RunReport {
        world: args.world,
        sha256: policy.sha256(),
        compile_ms: compile_time.as_secs_f64() * 1e3,
        result,
        fuel_used: report.fuel_used,
        elapsed_us: report.elapsed.as_secs_f64() * 1e6,
        memory_peak_bytes: report.memory_peak_bytes,
        logs: &report.logs,
        logs_dropped: report.logs_dropped,
    };
    if args.json {
        return Ok(serde_json::to_string_pretty(&run).unwrap_or_default());
    }
    Ok(render_text(&run))
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

fn render_text(run: &RunReport<'_>) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "world:   {}", run.world);
    let _ = writeln!(out, "sha256:  {}", run.sha256);
    let _ = writeln!(out, "result:  {}", run.result);
    let _ = writeln!(out, "fuel:    {} instructions", run.fuel_used);
    let _ = writeln!(
        out,
        "time:    {:.1} µs (compile {:.1} ms)",
        run.elapsed_us, run.compile_ms
    );
    let _ = writeln!(
        out,
        "memory:  {:.2} MiB high-water",
        run.memory_peak_bytes as f64 / f64::from(1 << 20)
    );
    let _ = writeln!(
        out,
        "logs:    {} line(s), {} dropped",
        run.logs.len(),
        run.logs_dropped
    );
    for line in run.logs {
        let fields: Vec<String> = line
            .fields
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let _ = writeln!(
            out,
            "  {:<5} {} {}",
            format!("{:?}", line.level).to_lowercase(),
            line.message,
            fields.join(" ")
        );
    }
    out
}

fn read(path: &Path) -> Result<Vec<u8>, CliError> {
    std::fs::read(path).map_err(|source| CliError::Read {
        path: path.to_owned(),
        source,
    })
}
