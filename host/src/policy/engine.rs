//! The one wasmtime `Engine` of a host: configuration, the epoch ticker that
//! bounds wall time, and the per-world linkers.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use wasmtime::component::{HasSelf, Linker};
use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use super::bindings;
use super::invoke::InvocationState;
use super::validate;
use crate::model::World;

/// Budgets applied to every invocation, and to every upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Instructions (wasmtime fuel) one invocation may execute.
    pub fuel: u64,
    /// Wall-clock budget of one invocation, host calls included.
    pub deadline: Duration,
    /// Largest linear memory one invocation may grow to.
    pub memory_bytes: usize,
    /// Largest component accepted at upload.
    pub component_bytes: usize,
}

impl Limits {
    pub const DEFAULT: Limits = Limits {
        fuel: 10_000_000,
        deadline: Duration::from_millis(10),
        memory_bytes: 32 << 20,
        component_bytes: 10 << 20,
    };
}

impl Default for Limits {
    fn default() -> Self {
        Limits::DEFAULT
    }
}

/// Interval of the epoch ticker: the granularity of wall-clock deadlines.
pub const EPOCH_TICK: Duration = Duration::from_millis(1);

/// Policy instances alive at once across the host; a call beyond it fails that
/// invocation (and the failure mode applies) rather than queueing.
const MAX_CONCURRENT_INSTANCES: u32 = 256;

/// What one instance may take of the pool, so that no tenant's components
/// can leave another's without a slot.
const PER_COMPONENT_CORE_INSTANCES: u32 = validate::bounds::MODULES as u32;
const PER_COMPONENT_MEMORIES: u32 = validate::bounds::MEMORIES as u32;
const PER_COMPONENT_TABLES: u32 = validate::bounds::TABLES as u32;

#[derive(Debug, thiserror::Error)]
#[error("cannot configure the WebAssembly engine: {0}")]
pub struct EngineError(pub String);

/// Engine, linkers and limits; cheap to clone.
#[derive(Clone)]
pub struct PolicyEngine {
    inner: Arc<EngineInner>,
}

struct EngineInner {
    engine: Engine,
    limits: Limits,
    scorer: Linker<InvocationState>,
    bidder: Linker<InvocationState>,
    selector: Linker<InvocationState>,
    _ticker: EpochTicker,
}

impl PolicyEngine {
    /// An engine with the pooling instance allocator (the faster one; see
    /// `docs/benchmarks.md`).
    pub fn new(limits: Limits) -> Result<Self, EngineError> {
        Self::with_allocation(limits, InstanceAllocation::Pooling)
    }

    pub fn with_allocation(
        limits: Limits,
        allocation: InstanceAllocation,
    ) -> Result<Self, EngineError> {
        let engine = Engine::new(&engine_config(&limits, allocation))
            .map_err(|e| EngineError(e.to_string()))?;
        let scorer = world_linker(&engine, World::Scorer)?;
        let bidder = world_linker(&engine, World::Bidder)?;
        let selector = world_linker(&engine, World::Selector)?;
        let ticker = EpochTicker::start(engine.clone())
            .map_err(|e| EngineError(format!("cannot start the epoch ticker: {e}")))?;
        Ok(PolicyEngine {
            inner: Arc::new(EngineInner {
                engine,
                limits,
                scorer,
                bidder,
                selector,
                _ticker: ticker,
            }),
        })
    }

    pub fn limits(&self) -> Limits {
        self.inner.limits
    }

    pub(crate) fn wasmtime(&self) -> &Engine {
        &self.inner.engine
    }

    pub(crate) fn linker(&self, world: World) -> &Linker<InvocationState> {
        match world {
            World::Scorer => &self.inner.scorer,
            World::Bidder => &self.inner.bidder,
            World::Selector => &self.inner.selector,
        }
    }

    /// Epoch ticks that make up the wall-clock deadline, rounded up, plus one
    /// because the current tick may be about to end.
    pub(crate) fn deadline_ticks(&self) -> u64 {
        let tick = EPOCH_TICK.as_micros().max(1);
        let ticks = self.inner.limits.deadline.as_micros().div_ceil(tick);
        u64::try_from(ticks).unwrap_or(u64::MAX).saturating_add(1)
    }
}

/// How instance memory is obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstanceAllocation {
    /// Slots reserved up front and reused: a fresh instance is a warm slot.
    Pooling,
    /// mmap and munmap for every instance.
    OnDemand,
}

fn engine_config(limits: &Limits, allocation: InstanceAllocation) -> Config {
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.consume_fuel(true);
    config.epoch_interruption(true);
    // Guests run on a small stack of their own; deep recursion must trap early
    // rather than take the host thread's stack.
    config.max_wasm_stack(512 << 10);
    // Explicit bounds checks instead of guard pages and signal handlers: with
    // guard pages every fresh instance pays an mprotect, and with it a TLB
    // shootdown on every core, to reset its slot's accessible size. Policies
    // are small and short; instantiation is what they spend time on.
    let slot_bytes = limits.memory_bytes + (64 << 10);
    config.signals_based_traps(false);
    config.memory_guard_size(0);
    config.memory_reservation(u64::try_from(slot_bytes).unwrap_or(u64::MAX));

    if allocation == InstanceAllocation::OnDemand {
        return config;
    }
    // A fresh instance per invocation: the pooling allocator makes that a
    // matter of reusing a warm slot instead of mmap/munmap each time.
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(MAX_CONCURRENT_INSTANCES);
    // Slots for a typical instance each (a Rust policy: four core
    // instances, one memory, a table or two), not for the largest: more
    // slots than are warm means cold ones, and page faults, on the call's
    // path. At most a few instances run at once (one per policy worker,
    // sample run and upload check), far below what this holds even of the
    // largest (64).
    pool.total_core_instances(MAX_CONCURRENT_INSTANCES * 4);
    pool.total_memories(MAX_CONCURRENT_INSTANCES * PER_COMPONENT_MEMORIES);
    pool.total_tables(MAX_CONCURRENT_INSTANCES * 4);
    // What one instance may take of the pool, counted by wasmtime over every
    // instantiation the component makes (a module instantiated twice counts
    // twice) when it is compiled, so that past it an upload is refused and
    // no instance ever holds more than its share.
    pool.max_core_instances_per_component(PER_COMPONENT_CORE_INSTANCES);
    pool.max_memories_per_component(PER_COMPONENT_MEMORIES);
    pool.max_tables_per_component(PER_COMPONENT_TABLES);
    // One page above the cap, so the cap is always met by the limiter (which
    // reports it as such) and never first by the pool.
    pool.max_memory_size(slot_bytes);
    // Resetting a slot with madvise costs a TLB shootdown on every core per
    // instance, and the next instance page-faults its memory back in. Keeping
    // the first MiB resident and resetting only the pages the guest touched
    // (found with PAGEMAP_SCAN where the kernel has it) turns that into a memset.
    pool.linear_memory_keep_resident(1 << 20);
    pool.table_keep_resident(64 << 10);
    pool.pagemap_scan(Enabled::Auto);
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    config
}

fn world_linker(engine: &Engine, world: World) -> Result<Linker<InvocationState>, EngineError> {
    let mut linker = Linker::new(engine);
    let added = match world {
        World::Scorer => {
            bindings::scorer::Scorer::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)
        }
        World::Bidder => {
            bindings::bidder::Bidder::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)
        }
        World::Selector => {
            bindings::selector::Selector::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)
        }
    };
    added.map_err(|e| EngineError(e.to_string()))?;
    Ok(linker)
}

/// Advances the engine's epoch every [`EPOCH_TICK`] until dropped.
struct EpochTicker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl EpochTicker {
    fn start(engine: Engine) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let thread_stop = stop.clone();
        let thread = std::thread::Builder::new()
            .name("policy-epoch".into())
            .spawn(move || {
                while !thread_stop.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    engine.increment_epoch();
                }
            })?;
        Ok(EpochTicker {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
