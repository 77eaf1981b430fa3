//! The policy runtime: WebAssembly components that score calls, bid and order
//! bids. `wasmtime` and the WIT-generated types live here and nowhere else.
//!
//! What policies see and return is the shared vocabulary, `crate::model`;
//! `convert` maps it to and from the WIT-generated types. Reading order:
//! [`PolicyEngine`] (engine and limits), [`CompiledPolicy`] (validate,
//! compile, invoke), [`PolicyRegistry`] (hot swap, canary, shadow, and the
//! windows that judge a canary's failures and a shadow's agreement).

mod agreement;
mod artifact;
mod bindings;
mod compile_process;
mod compiled;
mod convert;
mod demotion;
mod engine;
mod imports;
mod invoke;
mod kv;
mod registry;
mod sample;
mod validate;

pub use artifact::ArtifactCache;
pub use compile_process::{
    CompileBudget, Compiler, INVALID as COMPILE_INVALID, compile_and_load, compile_as_child,
};
pub use compiled::{CompiledPolicy, WarmScorer, content_address};
pub use engine::{EPOCH_TICK, EngineError, InstanceAllocation, Limits, PolicyEngine};
pub use invoke::{Invocation, InvocationContext, MAX_ERROR_TEXT, PolicyFailure};
pub use kv::MemoryKv;
pub use registry::{Canary, Demote, Deployment, DeploymentError, PolicyRegistry, Run, ShadowRun};
pub use sample::{MissingInput, SampleReport, run_sample};
pub use validate::{LoadError, PACKAGE, PACKAGE_VERSION};
