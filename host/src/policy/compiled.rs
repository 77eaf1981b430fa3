//! A validated, compiled policy version, ready to instantiate: load it once,
//! invoke it many times, each invocation in a fresh instance.

use std::fmt;

use sha2::{Digest, Sha256};
use wasmtime::Store;
use wasmtime::component::Component;

use super::artifact::ArtifactCache;
use super::bindings::{bidder, scorer, selector};
use super::convert;
use super::engine::PolicyEngine;
use super::invoke::{
    Invocation, InvocationContext, InvocationState, MAX_ERROR_TEXT, PolicyFailure, guest_text,
    invoke, new_store,
};
use super::validate::{self, LoadError};
use crate::model::{BidCandidate, BidDecision, CallFacts, Offer, Quality, World};

enum WorldPre {
    Scorer(scorer::ScorerPre<InvocationState>),
    Bidder(bidder::BidderPre<InvocationState>),
    Selector(selector::SelectorPre<InvocationState>),
}

/// One immutable policy version. Its identity is the SHA-256 of its bytes.
pub struct CompiledPolicy {
    engine: PolicyEngine,
    world: World,
    sha256: String,
    size: usize,
    from_cache: bool,
    pre: WorldPre,
}

impl fmt::Debug for CompiledPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CompiledPolicy")
            .field("world", &self.world)
            .field("sha256", &self.sha256)
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

/// Hex SHA-256 of a component's bytes: the content address of a version.
pub fn content_address(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

impl CompiledPolicy {
    /// Validates `bytes` as a component of `world`, compiles it (or loads the
    /// compiled form from `cache`) and pre-instantiates it. Compiling takes
    /// milliseconds of CPU: call this at upload, never on a call's path.
    pub fn load(
        engine: &PolicyEngine,
        world: World,
        bytes: &[u8],
        cache: Option<&ArtifactCache>,
    ) -> Result<Self, LoadError> {
        Self::load_with(engine, world, bytes, cache, true)
    }

    /// As [`CompiledPolicy::load`], from the compiled form a compile
    /// process left in `cache`; never compiling here.
    pub(crate) fn load_compiled(
        engine: &PolicyEngine,
        world: World,
        bytes: &[u8],
        cache: &ArtifactCache,
    ) -> Result<Self, LoadError> {
        Self::load_with(engine, world, bytes, Some(cache), false)
    }

    fn load_with(
        engine: &PolicyEngine,
        world: World,
        bytes: &[u8],
        cache: Option<&ArtifactCache>,
        may_compile: bool,
    ) -> Result<Self, LoadError> {
        validate::check_bytes(bytes, engine.limits().component_bytes)?;
        let sha256 = content_address(bytes);
        let wasmtime = engine.wasmtime();
        let cached = cache.and_then(|c| c.load(wasmtime, &sha256));
        let from_cache = cached.is_some();
        let component = match cached {
            Some(component) => component,
            None if may_compile => {
                Component::new(wasmtime, bytes).map_err(|e| LoadError::Invalid(root_cause(&e)))?
            }
            None => {
                return Err(LoadError::Compiler(
                    "the compile process left no readable artifact".to_owned(),
                ));
            }
        };
        validate::check_exports(wasmtime, &component, world)?;
        validate::check_imports(wasmtime, &component, world)?;
        let instance_pre = engine
            .linker(world)
            .instantiate_pre(&component)
            .map_err(|e| validate::wrong_world(wasmtime, &component, world, &root_cause(&e)))?;
        let typed = |e: wasmtime::Error| {
            validate::wrong_world(wasmtime, &component, world, &root_cause(&e))
        };
        let pre = match world {
            World::Scorer => WorldPre::Scorer(scorer::ScorerPre::new(instance_pre).map_err(typed)?),
            World::Bidder => WorldPre::Bidder(bidder::BidderPre::new(instance_pre).map_err(typed)?),
            World::Selector => {
                WorldPre::Selector(selector::SelectorPre::new(instance_pre).map_err(typed)?)
            }
        };
        if let (Some(cache), false) = (cache, from_cache) {
            cache.store(wasmtime, &sha256, &component);
        }
        Ok(CompiledPolicy {
            engine: engine.clone(),
            world,
            sha256,
            size: bytes.len(),
            from_cache,
            pre,
        })
    }

    pub fn world(&self) -> World {
        self.world
    }

    /// Hex SHA-256 of the component's bytes.
    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    pub fn size(&self) -> usize {
        self.size
    }

    /// Whether [`CompiledPolicy::load`] found the compiled form in the cache.
    pub fn loaded_from_cache(&self) -> bool {
        self.from_cache
    }

    /// Scores a call (scorer world).
    pub fn score(&self, ctx: &InvocationContext, call: &CallFacts) -> Invocation<Quality> {
        let WorldPre::Scorer(pre) = &self.pre else {
            return self.not_this_world(ctx, World::Scorer);
        };
        let call = convert::call(call);
        invoke(&self.engine, ctx, |store| {
            let instance = pre.instantiate(&mut *store)?;
            Ok(match instance.call_score(&mut *store, &call)? {
                Ok(quality) => convert::checked_quality(quality),
                Err(reason) => Err(PolicyFailure::GuestError(guest_text(
                    reason,
                    MAX_ERROR_TEXT,
                ))),
            })
        })
    }

    /// Bids on an offer (bidder world); `None` declines.
    pub fn bid(&self, ctx: &InvocationContext, offer: &Offer) -> Invocation<Option<BidDecision>> {
        let WorldPre::Bidder(pre) = &self.pre else {
            return self.not_this_world(ctx, World::Bidder);
        };
        let offer = convert::offer(offer);
        invoke(&self.engine, ctx, |store| {
            let instance = pre.instantiate(&mut *store)?;
            Ok(convert::checked_bid(
                instance.call_bid(&mut *store, &offer)?,
            ))
        })
    }

    /// Orders bids into a ring tree (selector world): indices into `bids`.
    pub fn select(
        &self,
        ctx: &InvocationContext,
        call: &CallFacts,
        quality: &Quality,
        bids: &[BidCandidate],
    ) -> Invocation<Vec<u32>> {
        let WorldPre::Selector(pre) = &self.pre else {
            return self.not_this_world(ctx, World::Selector);
        };
        let call = convert::call(call);
        let quality = convert::quality(quality);
        let wit_bids: Vec<_> = bids.iter().map(convert::bid).collect();
        invoke(&self.engine, ctx, |store| {
            let instance = pre.instantiate(&mut *store)?;
            let order = instance.call_select(&mut *store, &call, &quality, &wit_bids)?;
            Ok(convert::checked_order(order, bids.len()))
        })
    }

    /// An instance kept across calls, to measure the floor of invocation cost.
    /// Calls never use it: sharing an instance would share guest state.
    pub fn warm_scorer(&self, ctx: &InvocationContext) -> Result<WarmScorer, PolicyFailure> {
        let WorldPre::Scorer(pre) = &self.pre else {
            return Err(PolicyFailure::Unavailable(format!(
                "a {} policy is not a scorer",
                self.world
            )));
        };
        let mut store = new_store(&self.engine, ctx);
        store
            .set_fuel(self.engine.limits().fuel)
            .map_err(|e| PolicyFailure::Unavailable(e.to_string()))?;
        let instance = pre
            .instantiate(&mut store)
            .map_err(|e| PolicyFailure::Unavailable(e.to_string()))?;
        Ok(WarmScorer {
            engine: self.engine.clone(),
            store,
            instance,
        })
    }

    /// Asking a version for another world's decision is a host bug; it fails
    /// the invocation instead of panicking.
    fn not_this_world<T>(&self, ctx: &InvocationContext, asked: World) -> Invocation<T> {
        invoke(&self.engine, ctx, |_| {
            Ok(Err(PolicyFailure::Unavailable(format!(
                "a {} policy cannot act as a {asked}",
                self.world
            ))))
        })
    }
}

/// The innermost message of an error chain, which names the actual problem.
pub(crate) fn root_cause(error: &wasmtime::Error) -> String {
    let mut message = error.to_string();
    let mut source: Option<&dyn std::error::Error> = error.source();
    while let Some(inner) = source {
        message = inner.to_string();
        source = inner.source();
    }
    message
}

/// A scorer instance reused across calls; see [`CompiledPolicy::warm_scorer`].
pub struct WarmScorer {
    engine: PolicyEngine,
    store: Store<InvocationState>,
    instance: scorer::Scorer,
}

impl WarmScorer {
    pub fn score(&mut self, call: &CallFacts) -> Result<Quality, PolicyFailure> {
        let call = convert::call(call);
        self.store
            .set_fuel(self.engine.limits().fuel)
            .map_err(|e| PolicyFailure::Unavailable(e.to_string()))?;
        self.store.set_epoch_deadline(self.engine.deadline_ticks());
        self.store.data_mut().restart_clock();
        match self.instance.call_score(&mut self.store, &call) {
            Ok(Ok(quality)) => convert::checked_quality(quality),
            Ok(Err(reason)) => Err(PolicyFailure::GuestError(guest_text(
                reason,
                MAX_ERROR_TEXT,
            ))),
            Err(error) => Err(PolicyFailure::Trap(format!("{error:?}"))),
        }
    }
}
