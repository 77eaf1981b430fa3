//! Compiling an upload in a child process under a CPU time and memory
//! budget. Cranelift cannot be stopped midway, and a hostile component
//! within every structural bound may still take minutes or gigabytes: in a
//! child, the kernel ends it at its budget (`RLIMIT_CPU`, `RLIMIT_AS`) and
//! the server only reads the verdict. The child is this same executable
//! (`plugboard policy compile`); it writes the compiled artifact where the
//! artifact cache will find it.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use wasmtime::component::Component;

use super::artifact::ArtifactCache;
use super::compiled::CompiledPolicy;
use super::engine::{InstanceAllocation, Limits, PolicyEngine};
use super::validate::LoadError;
use crate::model::World;

/// What one compile may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompileBudget {
    /// CPU time of the child, in seconds.
    pub cpu_seconds: u64,
    /// Address space of the child, in bytes (its code and stacks included).
    pub memory_bytes: u64,
}

impl Default for CompileBudget {
    /// Tens of times what a real policy needs (a Rust scorer compiles in
    /// well under a second), far below what a hostile upload within every
    /// structural bound could take (8 MB of straight-line code: 82 s).
    fn default() -> Self {
        CompileBudget {
            cpu_seconds: 10,
            memory_bytes: 2 << 30,
        }
    }
}

/// Where uploads compile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Compiler {
    /// In a child: `program policy compile`, under `budget`.
    Process {
        program: PathBuf,
        budget: CompileBudget,
    },
    /// In this process, without a budget (benchmarks, local tools).
    InProcess,
}

/// Compiles `bytes` in a child of `program` into `out`. Blocking: call it
/// from a blocking thread.
pub fn compile_in_child(
    program: &Path,
    budget: CompileBudget,
    limits: &Limits,
    bytes: &[u8],
    out: &Path,
) -> Result<(), LoadError> {
    let failed = |cause: std::io::Error| LoadError::Compiler(cause.to_string());
    let mut child = Command::new(program)
        .args(["policy", "compile"])
        .arg("--out")
        .arg(out)
        .args(["--memory-mib", &(limits.memory_bytes >> 20).to_string()])
        .args(["--budget-cpu-seconds", &budget.cpu_seconds.to_string()])
        .args(["--budget-memory-bytes", &budget.memory_bytes.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(failed)?;
    if let Some(mut stdin) = child.stdin.take() {
        // A child that died at once closes its end; its status says why.
        let _ = stdin.write_all(bytes);
    }
    // The CPU limit ends a busy child; this ends one that would wait. It is
    // generous: on a loaded machine a compile's wall time is many times its
    // CPU time.
    let wall = Duration::from_secs(budget.cpu_seconds.saturating_mul(10).saturating_add(60));
    let started = crate::clock::now();
    let status = loop {
        if let Some(status) = child.try_wait().map_err(failed)? {
            break status;
        }
        if crate::clock::now().saturating_duration_since(started) > wall {
            let _ = child.kill();
            let _ = child.wait();
            return Err(LoadError::CompileBudget(format!(
                "compiling took longer than {} s",
                wall.as_secs()
            )));
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let mut stderr = String::new();
    if let Some(pipe) = child.stderr.take() {
        use std::io::Read as _;
        let _ = pipe.take(4096).read_to_string(&mut stderr);
    }
    if status.success() {
        return Ok(());
    }
    use std::os::unix::process::ExitStatusExt as _;
    let said = stderr
        .lines()
        .last()
        .unwrap_or("no reason given")
        .to_owned();
    match (status.code(), status.signal()) {
        (Some(INVALID), _) => Err(LoadError::Invalid(said)),
        (Some(_), _) => Err(LoadError::Compiler(said)),
        (None, Some(signal)) if signal == SIGXCPU || signal == SIGKILL => {
            Err(LoadError::CompileBudget(format!(
                "compiling needed more than {} s of CPU",
                budget.cpu_seconds
            )))
        }
        // An allocation past the address-space limit aborts the child.
        (None, _) => Err(LoadError::CompileBudget(format!(
            "compiling needed more than {} MiB of memory",
            budget.memory_bytes >> 20
        ))),
    }
}

/// Validates `bytes` as a `world` policy and loads it, compiling with
/// `compiler`: in a child, the artifact it writes is the only way in.
pub fn compile_and_load(
    compiler: &Compiler,
    engine: &PolicyEngine,
    cache: &ArtifactCache,
    world: World,
    bytes: &[u8],
) -> Result<CompiledPolicy, LoadError> {
    let Compiler::Process { program, budget } = compiler else {
        return CompiledPolicy::load(engine, world, bytes, Some(cache));
    };
    super::validate::check_bytes(bytes, engine.limits().component_bytes)?;
    let artifact = cache.path(engine.wasmtime(), &super::content_address(bytes));
    if !artifact.is_file() {
        compile_in_child(program, *budget, &engine.limits(), bytes, &artifact)?;
    }
    CompiledPolicy::load_compiled(engine, world, bytes, cache)
}

/// The child's exit code for a component the compiler refused.
pub const INVALID: i32 = 3;
const SIGKILL: i32 = 9;
const SIGXCPU: i32 = 24;

/// The child's side: limits itself to `budget`, compiles `bytes` with the
/// engine settings of a server whose policies have `memory_bytes` of
/// memory (they shape the compiled code), and writes the artifact to `out`.
pub fn compile_as_child(
    budget: CompileBudget,
    memory_bytes: usize,
    bytes: &[u8],
    out: &Path,
) -> Result<(), LoadError> {
    use rustix::process::{Resource, Rlimit, setrlimit};
    let limit = |value: u64| Rlimit {
        current: Some(value),
        maximum: Some(value),
    };
    let unlimited =
        |e: rustix::io::Errno| LoadError::Compiler(format!("cannot set the compile budget: {e}"));
    setrlimit(Resource::Cpu, limit(budget.cpu_seconds)).map_err(unlimited)?;
    // Below the server's calls: compiling is background work.
    let _ = rustix::process::nice(10);
    let limits = Limits {
        memory_bytes,
        ..Limits::DEFAULT
    };
    // On-demand allocation: the pool's reservations would not fit the
    // budget, and the allocator does not shape the compiled code.
    let engine = PolicyEngine::with_allocation(limits, InstanceAllocation::OnDemand)
        .map_err(|e| LoadError::Compiler(e.to_string()))?;
    // Once the engine (and its ticker thread) exists: what is left is the
    // compile's.
    setrlimit(Resource::As, limit(budget.memory_bytes)).map_err(unlimited)?;
    let component = Component::new(engine.wasmtime(), bytes)
        .map_err(|e| LoadError::Invalid(super::compiled::root_cause(&e)))?;
    let serialized = component
        .serialize()
        .map_err(|e| LoadError::Compiler(e.to_string()))?;
    super::artifact::write_atomically(out, &serialized)
        .map_err(|e| LoadError::Compiler(e.to_string()))
}
