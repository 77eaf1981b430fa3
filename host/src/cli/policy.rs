//! `plugboard policy check` and `plugboard policy run`: the local harness for
//! policy authors, using the same validation and sandbox as the server.

use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::{CheckArgs, CliError, CompileArgs, RunArgs};
use crate::clock;
use crate::model::SampleInput;
use crate::policy::{
    COMPILE_INVALID, CompileBudget, CompiledPolicy, Limits, LoadError, MemoryKv, PolicyEngine,
    SampleReport, compile_as_child, run_sample,
};

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

/// Runs a policy once on a sample; returns the report, or the failure.
pub fn run(args: &RunArgs) -> Result<String, CliError> {
    let bytes = read(&args.file)?;
    let input_text = std::fs::read_to_string(&args.input).map_err(|cause| CliError::Read {
        path: args.input.clone(),
        cause,
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
    let report = run_sample(&policy, &input, Arc::new(MemoryKv::new()), policy.sha256())
        .map_err(|e| bad_input(e.to_string()))?;
    if let Some(failure) = report.failure {
        return Err(failure.into());
    }
    if args.json {
        return Ok(serde_json::to_string_pretty(&report).unwrap_or_default());
    }
    Ok(render_text(&report, compile_time))
}

fn render_text(run: &SampleReport, compile_time: Duration) -> String {
    let mut out = String::new();
    let result = run.result.clone().unwrap_or_default();
    let _ = writeln!(out, "world:   {}", run.world);
    let _ = writeln!(out, "sha256:  {}", run.sha256);
    let _ = writeln!(out, "result:  {result}");
    let _ = writeln!(out, "fuel:    {} instructions", run.fuel_used);
    let _ = writeln!(
        out,
        "time:    {:.1} µs (compile {:.1} ms)",
        run.elapsed_us,
        compile_time.as_secs_f64() * 1e3
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
    for line in &run.logs {
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

pub(super) fn read(path: &Path) -> Result<Vec<u8>, CliError> {
    std::fs::read(path).map_err(|cause| CliError::Read {
        path: path.to_owned(),
        cause,
    })
}

/// The server's compile process: the component on stdin, the artifact to
/// `--out`; a refused component exits with [`COMPILE_INVALID`] and its
/// reason on stderr.
pub fn compile(args: &CompileArgs) -> std::process::ExitCode {
    use std::io::Read as _;
    let mut bytes = Vec::new();
    let limit = Limits::DEFAULT.component_bytes as u64 + 1;
    if let Err(error) = std::io::stdin().take(limit).read_to_end(&mut bytes) {
        eprintln!("cannot read the component: {error}");
        return std::process::ExitCode::FAILURE;
    }
    let budget = CompileBudget {
        cpu_seconds: args.budget_cpu_seconds,
        memory_bytes: args.budget_memory_bytes,
    };
    match compile_as_child(budget, args.memory_mib << 20, &bytes, &args.out) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(LoadError::Invalid(reason)) => {
            eprintln!("{reason}");
            std::process::ExitCode::from(COMPILE_INVALID as u8)
        }
        Err(error) => {
            eprintln!("{error}");
            std::process::ExitCode::FAILURE
        }
    }
}
