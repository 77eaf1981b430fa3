//! Policy invocation costs: a fresh instance per call for each example policy
//! (pooling vs on-demand allocation), the floor of a call on a live instance,
//! and a hot swap from bytes of a precompiled version to its first result.
//!
//! Run with `cargo xtask bench` (it builds the example policies first).

use std::path::PathBuf;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use host::model::{
    BidCandidate, CallFacts, CallTime, Geography, Offer, Quality, TargetStats, World,
};
use host::policy::{
    ArtifactCache, CompiledPolicy, Deployment, InstanceAllocation, InvocationContext, Limits,
    MemoryKv, PolicyEngine, PolicyRegistry,
};

fn policy_bytes(name: &str) -> Vec<u8> {
    built_bytes("policies", name)
}

fn built_bytes(folder: &str, name: &str) -> Vec<u8> {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let path = target.join(folder).join(format!("{name}.wasm"));
    std::fs::read(&path)
        .unwrap_or_else(|e| panic!("{}: {e}; run `cargo xtask bench`", path.display()))
}

fn context() -> InvocationContext {
    InvocationContext {
        history: Default::default(),
        kv: Arc::new(MemoryKv::new()),
        kv_namespace: "bench".into(),
    }
}

fn call() -> CallFacts {
    CallFacts {
        id: "call-1".into(),
        campaign_id: "solar".into(),
        caller: "+14155550123".into(),
        called: "+18005550100".into(),
        caller_geography: Geography {
            country: "US".into(),
            area_code: "415".into(),
            region: "CA".into(),
            time_zone: "America/Los_Angeles".into(),
        },
        time: CallTime {
            unix_seconds: 1_795_888_800,
            local_weekday: 1,
            local_hour: 10,
            local_minute: 0,
        },
        headers: vec![],
        attribution: vec![("source".into(), "google-ads".into())],
    }
}

fn quality() -> Quality {
    Quality {
        score: 75,
        tags: vec!["business-hours".into()],
    }
}

fn offer() -> Offer {
    let call = call();
    Offer {
        call_id: call.id,
        campaign_id: call.campaign_id,
        quality: quality(),
        caller_geography: call.caller_geography,
        time: call.time,
        attribution: vec![],
    }
}

fn bids() -> Vec<BidCandidate> {
    (0..10u32)
        .map(|i| BidCandidate {
            id: format!("bid-{i}"),
            bidder_id: format!("bidder-{i}"),
            target_id: format!("target-{i}"),
            amount_micros: 10_000_000 + u64::from(i) * 1_000_000,
            min_quality: 0,
            min_duration_seconds: 90,
            target_stats: TargetStats {
                offered: 100,
                answered: 50 + i * 5,
                average_duration_seconds: 200,
            },
        })
        .collect()
}

fn fresh_instance(c: &mut Criterion) {
    for (label, allocation) in [
        ("pooling", InstanceAllocation::Pooling),
        ("on-demand", InstanceAllocation::OnDemand),
    ] {
        let engine = PolicyEngine::with_allocation(Limits::default(), allocation).expect("engine");
        let ctx = context();
        let load = |name, world| {
            CompiledPolicy::load(&engine, world, &policy_bytes(name), None).expect("loads")
        };
        let scorer = load("geo-history-scorer", World::Scorer);
        let bidder = load("state-hour-bidder", World::Bidder);
        let selector = load("answer-rate-selector", World::Selector);
        // The test guest's well-behaved path: returns a constant, no host
        // calls — the fixed cost of a fresh instance.
        let minimal = CompiledPolicy::load(
            &engine,
            World::Scorer,
            &built_bytes("test-guests", "hostile-scorer"),
            None,
        )
        .expect("loads");
        let (call, offer, quality, bids) = (call(), offer(), quality(), bids());
        let mut group = c.benchmark_group(format!("fresh-instance/{label}"));
        group.bench_function("minimal-scorer", |b| {
            b.iter(|| minimal.score(&ctx, &call).outcome.expect("scores"))
        });
        group.bench_function("geo-history-scorer", |b| {
            b.iter(|| scorer.score(&ctx, &call).outcome.expect("scores"))
        });
        group.bench_function("state-hour-bidder", |b| {
            b.iter(|| bidder.bid(&ctx, &offer).outcome.expect("bids"))
        });
        group.bench_function("answer-rate-selector/10-bids", |b| {
            b.iter(|| {
                selector
                    .select(&ctx, &call, &quality, &bids)
                    .outcome
                    .expect("selects")
            })
        });
        group.finish();
    }
}

fn warm_instance(c: &mut Criterion) {
    let engine = PolicyEngine::new(Limits::default()).expect("engine");
    let scorer = CompiledPolicy::load(
        &engine,
        World::Scorer,
        &policy_bytes("geo-history-scorer"),
        None,
    )
    .expect("loads");
    let mut warm = scorer.warm_scorer(&context()).expect("instantiates");
    let call = call();
    c.bench_function("warm-instance/geo-history-scorer", |b| {
        b.iter(|| warm.score(&call).expect("scores"))
    });
}

fn hot_swap(c: &mut Criterion) {
    let engine = PolicyEngine::new(Limits::default()).expect("engine");
    let dir = tempfile::tempdir().expect("temp dir");
    let cache = ArtifactCache::new(dir.path());
    let bytes = policy_bytes("geo-history-scorer");
    CompiledPolicy::load(&engine, World::Scorer, &bytes, Some(&cache)).expect("precompiles");
    let registry = PolicyRegistry::new();
    let (ctx, call) = (context(), call());
    c.bench_function("hot-swap/precompiled-bytes-to-first-result", |b| {
        b.iter(|| {
            let version =
                CompiledPolicy::load(&engine, World::Scorer, &bytes, Some(&cache)).expect("loads");
            assert!(version.loaded_from_cache());
            registry.deploy("scorer", Deployment::new(Arc::new(version)));
            let deployment = registry.get("scorer").expect("deployed");
            deployment
                .score(&ctx, &call)
                .invocation
                .outcome
                .expect("scores")
        })
    });
    c.bench_function("compile/geo-history-scorer", |b| {
        b.iter(|| CompiledPolicy::load(&engine, World::Scorer, &bytes, None).expect("compiles"))
    });
}

criterion_group!(benches, fresh_instance, warm_instance, hot_swap);
criterion_main!(benches);
