//! One invocation of a policy: a fresh `Store` with a fuel budget, an epoch
//! deadline and a memory cap; the outcome classified into a typed failure.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use wasmtime::{ResourceLimiter, Store, Trap};

use super::engine::PolicyEngine;
use crate::clock;
use crate::model::{CallerHistory, GuestLog, PolicyKv};

/// Lines a guest may log per invocation; later lines are counted, not kept.
pub(crate) const MAX_LOG_LINES: usize = 64;
/// Bytes of one log message or field value kept; the rest is cut.
pub(crate) const MAX_LOG_TEXT: usize = 1024;
/// Fields of one log line kept.
pub(crate) const MAX_LOG_FIELDS: usize = 8;
/// Bytes of all the lines one invocation keeps (messages, field names and
/// values): a line that would pass it is counted, not kept. With the record's
/// other bounds, this is what keeps a call record small whatever its
/// policies say.
pub(crate) const MAX_LOG_BYTES: usize = 8 << 10;
/// Bytes kept of a guest's own error text (`err` of the scorer world).
pub const MAX_ERROR_TEXT: usize = 512;
/// Bytes the host copies out of a guest for one host call (a log line, a
/// kv write) or for its answer. wasmtime counts them as it lifts, before
/// any copy is made, so that aliased strings (127 tags pointing at one
/// MiB) or a list of millions cost a refusal, not seconds of copying and
/// gigabytes of host memory. The largest legitimate transfer is a kv value
/// (64 KiB).
pub const MAX_COPIED_BYTES: usize = 256 << 10;

/// What the host hands a policy for one invocation besides its arguments.
#[derive(Clone)]
pub struct InvocationContext {
    /// History of the current call's caller (scorer and selector worlds).
    pub history: CallerHistory,
    /// The policy's key-value store.
    pub kv: Arc<dyn PolicyKv>,
    /// The policy's own space in `kv`, so that policies never share keys.
    pub kv_namespace: String,
}

/// Why an invocation produced no usable result. Each ends that invocation only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(tag = "kind", content = "detail", rename_all = "snake_case")]
pub enum PolicyFailure {
    /// The guest trapped (panic, `unreachable`, out-of-bounds access, stack overflow…).
    #[error("policy trapped: {0}")]
    Trap(String),
    /// The wall-clock deadline passed (host calls included).
    #[error("policy exceeded its time budget")]
    Timeout,
    /// The fuel budget ran out.
    #[error("policy ran out of fuel")]
    OutOfFuel,
    /// The guest tried to grow its memory past the cap.
    #[error("policy exceeded its memory cap")]
    MemoryLimit,
    /// The guest returned a value outside the contract (e.g. a score above 100).
    #[error("policy returned a bad output: {0}")]
    BadOutput(String),
    /// The guest declined with an error of its own (`err` of the scorer world).
    #[error("policy returned an error: {0}")]
    GuestError(String),
    /// The host could not instantiate the policy (e.g. too many instances at once).
    #[error("policy could not be instantiated: {0}")]
    Unavailable(String),
    /// Not run: its tenant's policies had used their share of the node's
    /// CPU while other tenants had calls.
    #[error("policy not run: its tenant used its share of the node's CPU")]
    CpuShare,
}

impl PolicyFailure {
    /// The failure's kind as records and metrics name it (`trap`, `timeout`…).
    /// Whether the host did not run the version at all (no instance free,
    /// its tenant past its CPU share): the failure says nothing of the
    /// version, so windows that judge a version do not count it.
    pub fn is_not_run(&self) -> bool {
        matches!(
            self,
            PolicyFailure::Unavailable(_) | PolicyFailure::CpuShare
        )
    }

    pub fn kind(&self) -> &'static str {
        match self {
            PolicyFailure::Trap(_) => "trap",
            PolicyFailure::Timeout => "timeout",
            PolicyFailure::OutOfFuel => "out_of_fuel",
            PolicyFailure::MemoryLimit => "memory_limit",
            PolicyFailure::BadOutput(_) => "bad_output",
            PolicyFailure::GuestError(_) => "guest_error",
            PolicyFailure::Unavailable(_) => "unavailable",
            PolicyFailure::CpuShare => "cpu_share",
        }
    }
}

/// The outcome of one invocation with what it cost.
#[derive(Debug, Clone, Serialize)]
pub struct Invocation<T> {
    pub outcome: Result<T, PolicyFailure>,
    pub fuel_used: u64,
    pub elapsed: Duration,
    /// Largest linear memory the instance reached, in bytes.
    pub memory_peak_bytes: usize,
    pub logs: Vec<GuestLog>,
    /// Lines past [`MAX_LOG_LINES`] that were dropped.
    pub logs_dropped: u32,
}

impl<T> Invocation<T> {
    /// An invocation the host did not start, failed for `failure`.
    pub fn not_run(failure: PolicyFailure) -> Self {
        Invocation {
            outcome: Err(failure),
            fuel_used: 0,
            elapsed: Duration::ZERO,
            memory_peak_bytes: 0,
            logs: Vec::new(),
            logs_dropped: 0,
        }
    }
}

/// The `T` of every `Store`: per-invocation limits and what the imports serve.
pub(crate) struct InvocationState {
    pub(crate) limiter: MemoryLimiter,
    pub(crate) logs: Vec<GuestLog>,
    /// Bytes of `logs`, against [`MAX_LOG_BYTES`].
    pub(crate) log_bytes: usize,
    pub(crate) logs_dropped: u32,
    pub(crate) history: CallerHistory,
    pub(crate) kv: Arc<dyn PolicyKv>,
    pub(crate) kv_namespace: String,
    started: Instant,
    deadline: Duration,
}

impl InvocationState {
    /// Starts the wall-clock budget anew, for a store that serves several calls.
    pub(crate) fn restart_clock(&mut self) {
        self.started = clock::now();
    }

    /// Epoch interruption only fires inside guest code; a host call checks the
    /// deadline itself so that time spent in the host counts too.
    pub(crate) fn check_deadline(&self) -> wasmtime::Result<()> {
        if clock::now().saturating_duration_since(self.started) > self.deadline {
            return Err(wasmtime::Error::new(HostDeadlineExceeded));
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("deadline exceeded during a host call")]
pub(crate) struct HostDeadlineExceeded;

#[derive(Debug, thiserror::Error)]
#[error("memory growth to {desired} bytes refused (cap {cap} bytes)")]
pub(crate) struct MemoryCapExceeded {
    desired: usize,
    cap: usize,
}

/// Caps linear memory and records its high-water mark.
pub(crate) struct MemoryLimiter {
    cap: usize,
    /// Bytes of every memory of the instance together: the cap is the
    /// invocation's, however many memories its component has.
    total: usize,
    peak: usize,
    exceeded: bool,
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let total = self.total.saturating_sub(current).saturating_add(desired);
        if total > self.cap {
            self.exceeded = true;
            // A trap rather than a failed `memory.grow`: a Rust guest would abort
            // anyway, and this way the outcome says why.
            return Err(wasmtime::Error::new(MemoryCapExceeded {
                desired: total,
                cap: self.cap,
            }));
        }
        self.total = total;
        self.peak = self.peak.max(total);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
}

/// Runs `body` in a fresh store with the engine's limits and classifies the result.
pub(crate) fn invoke<T>(
    engine: &PolicyEngine,
    ctx: &InvocationContext,
    body: impl FnOnce(&mut Store<InvocationState>) -> wasmtime::Result<Result<T, PolicyFailure>>,
) -> Invocation<T> {
    let limits = engine.limits();
    let mut store = new_store(engine, ctx);
    let started = store.data().started;
    let outcome = match store.set_fuel(limits.fuel) {
        Ok(()) => match body(&mut store) {
            Ok(result) => result,
            Err(error) => Err(classify(&error, store.data())),
        },
        Err(error) => Err(PolicyFailure::Unavailable(error.to_string())),
    };
    let fuel_left = store.get_fuel().unwrap_or(0);
    let state = store.into_data();
    Invocation {
        outcome,
        fuel_used: limits.fuel.saturating_sub(fuel_left),
        elapsed: clock::now().saturating_duration_since(started),
        memory_peak_bytes: state.limiter.peak,
        logs: state.logs,
        logs_dropped: state.logs_dropped,
    }
}

/// A store with the engine's limits: memory cap, epoch deadline. Fuel is set
/// by the caller, per call.
pub(crate) fn new_store(engine: &PolicyEngine, ctx: &InvocationContext) -> Store<InvocationState> {
    let limits = engine.limits();
    let state = InvocationState {
        limiter: MemoryLimiter {
            cap: limits.memory_bytes,
            total: 0,
            peak: 0,
            exceeded: false,
        },
        logs: Vec::new(),
        log_bytes: 0,
        logs_dropped: 0,
        history: ctx.history,
        kv: ctx.kv.clone(),
        kv_namespace: ctx.kv_namespace.clone(),
        started: clock::now(),
        deadline: limits.deadline,
    };
    let mut store = Store::new(engine.wasmtime(), state);
    store.limiter(|state| &mut state.limiter);
    store.set_epoch_deadline(engine.deadline_ticks());
    store.set_hostcall_fuel(MAX_COPIED_BYTES);
    store
}

fn classify(error: &wasmtime::Error, state: &InvocationState) -> PolicyFailure {
    if state.limiter.exceeded || error.is::<MemoryCapExceeded>() {
        return PolicyFailure::MemoryLimit;
    }
    if error.is::<HostDeadlineExceeded>() {
        return PolicyFailure::Timeout;
    }
    if copied_too_much(error) {
        return PolicyFailure::BadOutput(format!(
            "the policy handed the host more than {} KiB at once",
            MAX_COPIED_BYTES >> 10
        ));
    }
    match error.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => PolicyFailure::OutOfFuel,
        Some(Trap::Interrupt) => PolicyFailure::Timeout,
        Some(trap) => PolicyFailure::Trap(trap.to_string()),
        None if is_instantiation_error(error) => PolicyFailure::Unavailable(first_line(error)),
        None => PolicyFailure::Trap(first_line(error)),
    }
}

/// wasmtime's error for a copy past [`MAX_COPIED_BYTES`] is a private type;
/// its message (wasmtime is pinned) is what tells it apart.
fn copied_too_much(error: &wasmtime::Error) -> bool {
    error
        .chain()
        .any(|cause| cause.to_string().contains("fuel allocated for hostcalls"))
}

fn is_instantiation_error(error: &wasmtime::Error) -> bool {
    error.is::<wasmtime::PoolConcurrencyLimitError>()
}

fn first_line(error: &wasmtime::Error) -> String {
    let text = error.to_string();
    text.lines().next().unwrap_or_default().to_owned()
}

/// A string a guest handed the host, as the host keeps it: control
/// characters (a NUL is six bytes of JSON) replaced, then cut to `max` bytes.
pub(crate) fn guest_text(text: String, max: usize) -> String {
    let text = if text.chars().any(char::is_control) {
        text.chars()
            .take(max)
            .map(|c| if c.is_control() { '\u{fffd}' } else { c })
            .collect()
    } else {
        text
    };
    truncate(text, max)
}

/// Cuts `text` to at most `max` bytes on a character boundary.
fn truncate(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_memory_cap_counts_every_memory_of_the_instance_together() {
        let mib = 1 << 20;
        let mut limiter = MemoryLimiter {
            cap: 32 * mib,
            total: 0,
            peak: 0,
            exceeded: false,
        };
        assert!(
            limiter.memory_growing(0, 20 * mib, None).is_ok(),
            "first memory"
        );
        assert!(
            limiter.memory_growing(20 * mib, 24 * mib, None).is_ok(),
            "it grows"
        );
        assert!(
            limiter.memory_growing(0, 20 * mib, None).is_err(),
            "a second memory past the cap in all"
        );
        assert!(limiter.exceeded);
        assert_eq!(limiter.peak, 24 * mib);
    }
}
