//! The registry: hot swap under load, canary split and shadow runs; and the
//! compiled-artifact cache that spares a restart from recompiling.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use std::time::Duration;

use host::policy::{
    ArtifactCache, CompiledPolicy, Deployment, DeploymentError, Limits, PolicyRegistry,
};
use tests::{World, context, engine, engine_with, example_policy, load, sample_call, test_guest};

#[test]
fn hot_swap_under_load_never_fails_an_invocation() {
    // More threads than cores: a wall-clock deadline would also count the time
    // a thread waits for a core, which is not what this test is about.
    let engine = engine_with(Limits {
        deadline: Duration::from_secs(5),
        ..Limits::default()
    });
    let geo = load(
        &engine,
        World::Scorer,
        &example_policy("geo-history-scorer"),
    );
    let constant = load(&engine, World::Scorer, &test_guest("hostile-scorer.wasm"));
    let call = sample_call("solar");
    let geo_score = geo
        .score(&context(), &call)
        .outcome
        .expect("geo scores")
        .score;
    assert_ne!(
        geo_score, 42,
        "the two versions must be told apart by their results"
    );
    let expected = |version: &str| {
        if version == geo.sha256() {
            geo_score
        } else {
            42
        }
    };

    let registry = Arc::new(PolicyRegistry::new());
    registry.deploy("scorer-1", Deployment::new(geo.clone()));
    let stop = Arc::new(AtomicBool::new(false));
    let invocations = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..3)
        .map(|_| {
            let (registry, stop, invocations) =
                (registry.clone(), stop.clone(), invocations.clone());
            let (call, geo_sha, geo_score) = (call.clone(), geo.sha256().to_owned(), geo_score);
            std::thread::spawn(move || {
                let ctx = context();
                let mut failures = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let deployment = registry.get("scorer-1").expect("deployed");
                    let run = deployment.score(&ctx, &call);
                    let want = if run.version == geo_sha {
                        geo_score
                    } else {
                        42
                    };
                    match run.invocation.outcome {
                        Ok(q) if q.score == want => {}
                        other => failures.push(format!("{}: {other:?}", run.version)),
                    }
                    invocations.fetch_add(1, Ordering::Relaxed);
                }
                failures
            })
        })
        .collect();

    let mut swaps = 0;
    while swaps < 200 || invocations.load(Ordering::Relaxed) < 1000 {
        let next = if swaps % 2 == 0 { &constant } else { &geo };
        registry.deploy("scorer-1", Deployment::new(next.clone()));
        swaps += 1;
        // Let the workers run between swaps, without sleeping on a clock.
        let seen = invocations.load(Ordering::Relaxed);
        while invocations.load(Ordering::Relaxed) == seen {
            std::thread::yield_now();
        }
    }
    stop.store(true, Ordering::Relaxed);
    let failures: Vec<String> = workers
        .into_iter()
        .flat_map(|w| w.join().expect("worker finished"))
        .collect();
    assert!(
        failures.is_empty(),
        "{} failed: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    assert!(swaps >= 200);
    let last = registry.get("scorer-1").expect("deployed");
    assert_eq!(
        expected(last.active().sha256()),
        if swaps % 2 == 1 { 42 } else { geo_score }
    );
}

#[test]
fn canary_takes_its_share_of_calls_deterministically() {
    let engine = engine();
    let geo = load(
        &engine,
        World::Scorer,
        &example_policy("geo-history-scorer"),
    );
    let constant = load(&engine, World::Scorer, &test_guest("hostile-scorer.wasm"));
    let deployment = Deployment::new(geo.clone())
        .with_canary(constant.clone(), 25)
        .expect("valid canary");
    let ctx = context();
    let mut canary_calls = 0;
    for i in 0..400 {
        let mut call = sample_call("solar");
        call.id = format!("call-{i}");
        let run = deployment.score(&ctx, &call);
        let score = run.invocation.outcome.expect("scores").score;
        assert_eq!(
            run.canary,
            score == 42,
            "the result comes from the chosen version"
        );
        assert_eq!(
            run.canary,
            deployment.pick(&call.id).1,
            "same call, same side"
        );
        canary_calls += usize::from(run.canary);
    }
    assert!(
        (60..=140).contains(&canary_calls),
        "{canary_calls} of 400 calls in a 25% canary"
    );
}

#[test]
fn shadow_is_recorded_beside_the_active_result_and_never_replaces_it() {
    let engine = engine();
    let geo = load(
        &engine,
        World::Scorer,
        &example_policy("geo-history-scorer"),
    );
    let constant = load(&engine, World::Scorer, &test_guest("hostile-scorer.wasm"));
    let deployment = Deployment::new(geo.clone())
        .with_shadow(constant.clone())
        .expect("valid shadow");
    let run = deployment.score(&context(), &sample_call("solar"));
    assert_eq!(run.version, geo.sha256());
    assert_ne!(run.invocation.outcome.as_ref().map(|q| q.score), Ok(42));
    let shadow = run.shadow.expect("shadow ran");
    assert_eq!(shadow.version, constant.sha256());
    assert_eq!(shadow.invocation.outcome.map(|q| q.score), Ok(42));

    // A call the host runs no policy for (its tenant's CPU share spent)
    // leaves the shadow's reason too, not nothing.
    let skipped: host::policy::Run<host::model::Quality> =
        deployment.not_run("call-1", host::policy::PolicyFailure::CpuShare);
    let shadow = skipped.shadow.expect("the shadow's non-run is recorded");
    assert_eq!(shadow.version, constant.sha256());
    assert_eq!(
        shadow.invocation.outcome.map(|q| q.score),
        Err(host::policy::PolicyFailure::CpuShare)
    );
}

#[test]
fn shadow_writes_go_to_a_key_space_of_their_own() {
    let engine = engine();
    let counter = load(&engine, World::Scorer, &test_guest("hostile-scorer.wasm"));
    let deployment = Deployment::new(counter.clone())
        .with_shadow(counter.clone())
        .expect("valid shadow");
    let ctx = context();
    let run = deployment.score(&ctx, &sample_call("count"));
    assert_eq!(run.invocation.outcome.map(|q| q.score), Ok(1));
    assert_eq!(
        run.shadow
            .expect("shadow")
            .invocation
            .outcome
            .map(|q| q.score),
        Ok(1)
    );
}

#[test]
fn deployments_refuse_versions_of_another_world_and_bad_percentages() {
    let engine = engine();
    let scorer = load(
        &engine,
        World::Scorer,
        &example_policy("geo-history-scorer"),
    );
    let bidder = load(&engine, World::Bidder, &example_policy("state-hour-bidder"));
    let mixed = Deployment::new(scorer.clone()).with_canary(bidder, 10);
    assert_eq!(
        mixed.err(),
        Some(DeploymentError::WorldMismatch {
            role: "canary",
            expected: World::Scorer,
            found: World::Bidder
        })
    );
    let too_much = Deployment::new(scorer.clone()).with_canary(scorer, 101);
    assert_eq!(too_much.err(), Some(DeploymentError::CanaryPercent(101)));
}

#[test]
fn compiled_artifacts_are_cached_and_reused_after_a_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let cache = ArtifactCache::new(dir.path());
    let bytes = example_policy("geo-history-scorer");
    let first =
        CompiledPolicy::load(&engine(), World::Scorer, &bytes, Some(&cache)).expect("loads");
    assert!(!first.loaded_from_cache());
    // A new engine, as after a restart.
    let engine = engine();
    let second = CompiledPolicy::load(&engine, World::Scorer, &bytes, Some(&cache)).expect("loads");
    assert!(second.loaded_from_cache());
    assert_eq!(second.sha256(), first.sha256());
    let call = sample_call("solar");
    assert_eq!(
        second.score(&context(), &call).outcome,
        first.score(&context(), &call).outcome
    );
}

#[test]
fn a_corrupted_artifact_is_discarded_and_recompiled() {
    let dir = tempfile::tempdir().expect("temp dir");
    let cache = ArtifactCache::new(dir.path());
    let bytes = example_policy("geo-history-scorer");
    let engine = engine();
    CompiledPolicy::load(&engine, World::Scorer, &bytes, Some(&cache)).expect("loads");
    for entry in walk(dir.path()) {
        std::fs::write(&entry, b"not an artifact").expect("corrupt it");
    }
    let again = CompiledPolicy::load(&engine, World::Scorer, &bytes, Some(&cache)).expect("loads");
    assert!(!again.loaded_from_cache());
    assert!(
        again
            .score(&context(), &sample_call("solar"))
            .outcome
            .is_ok()
    );
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).expect("listable").flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}
