//! Hostile guests, built from `tests/guests/` by the test command. Each gets
//! its specific typed outcome or rejection, and a normal invocation right
//! after still succeeds on the same engine.

use std::time::Duration;

use expect_test::{Expect, expect};
use host::model::{BidCandidate, Quality, TargetStats};
use host::policy::{CompiledPolicy, Limits, LoadError, PolicyEngine, PolicyFailure};
use tests::hostile::{component_around, slow_to_compile};
use tests::{World, context, engine, engine_with, example_policy, load, sample_call, test_guest};

fn hostile(engine: &PolicyEngine) -> CompiledPolicy {
    CompiledPolicy::load(
        engine,
        World::Scorer,
        &test_guest("hostile-scorer.wasm"),
        None,
    )
    .expect("the hostile scorer is a valid component")
}

/// Runs the misbehaviour `mode`, checks its failure, then a normal call.
fn misbehave(engine: &PolicyEngine, mode: &str) -> PolicyFailure {
    let policy = hostile(engine);
    let ctx = context();
    let failure = policy
        .score(&ctx, &sample_call(mode))
        .outcome
        .expect_err("the hostile call fails");
    let normal = policy.score(&ctx, &sample_call("well-behaved"));
    assert_eq!(normal.outcome.map(|q| q.score), Ok(42), "after {mode}");
    failure
}

#[test]
fn infinite_loop_runs_out_of_fuel() {
    let engine = engine_with(Limits {
        fuel: 1_000_000,
        deadline: Duration::from_secs(30),
        ..Limits::default()
    });
    assert_eq!(misbehave(&engine, "spin"), PolicyFailure::OutOfFuel);
}

#[test]
fn infinite_loop_without_a_fuel_limit_hits_the_deadline() {
    let engine = engine_with(Limits {
        fuel: u64::MAX / 2,
        deadline: Duration::from_millis(20),
        ..Limits::default()
    });
    assert_eq!(misbehave(&engine, "spin"), PolicyFailure::Timeout);
}

#[test]
fn time_spent_in_host_calls_counts_against_the_deadline() {
    let engine = engine_with(Limits {
        fuel: u64::MAX / 2,
        deadline: Duration::from_millis(20),
        ..Limits::default()
    });
    assert_eq!(misbehave(&engine, "spin-in-host"), PolicyFailure::Timeout);
}

#[test]
fn memory_growth_past_the_cap_is_a_memory_limit() {
    let engine = engine();
    assert_eq!(misbehave(&engine, "grow"), PolicyFailure::MemoryLimit);
}

/// A Rust guest keeps its frames on a shadow stack in linear memory, placed
/// first; overflowing it runs below address 0, which traps.
#[test]
fn deep_recursion_traps() {
    let failure = misbehave(&engine(), "recurse");
    expect![[r#"Trap("wasm trap: out of bounds memory access")"#]]
        .assert_eq(&format!("{failure:?}"));
}

#[test]
fn panic_traps() {
    let failure = misbehave(&engine(), "panic");
    expect![[r#"Trap("wasm trap: wasm `unreachable` instruction executed")"#]]
        .assert_eq(&format!("{failure:?}"));
}

#[test]
fn score_above_100_is_a_bad_output() {
    let failure = misbehave(&engine(), "score-250");
    assert_eq!(
        failure,
        PolicyFailure::BadOutput("score 250 is above 100".to_owned())
    );
}

#[test]
fn a_guest_error_is_reported_as_such() {
    let failure = misbehave(&engine(), "error");
    assert_eq!(
        failure,
        PolicyFailure::GuestError("cannot decide on this call".to_owned())
    );
}

#[test]
fn a_log_flood_is_capped_and_counted() {
    let engine = engine();
    let invocation = hostile(&engine).score(&context(), &sample_call("log-flood"));
    assert_eq!(invocation.outcome.map(|q| q.score), Ok(1));
    assert_eq!(invocation.logs.len(), 64);
    assert_eq!(invocation.logs_dropped, 1000 - 64);
}

#[test]
fn a_guests_error_text_is_cut_and_cleaned_where_it_enters() {
    let engine = engine();
    let failure = misbehave(&engine, "error-nul");
    let PolicyFailure::GuestError(text) = failure else {
        panic!("expected the guest's error, got {failure:?}");
    };
    assert!(
        text.len() <= host::policy::MAX_ERROR_TEXT,
        "{} bytes",
        text.len()
    );
    assert!(!text.contains('\0'), "control characters are replaced");
}

#[test]
fn an_answer_past_the_copy_bound_is_refused_before_it_is_copied() {
    let engine = engine();
    let failure = misbehave(&engine, "alias-tags");
    let PolicyFailure::BadOutput(text) = failure else {
        panic!("expected a bad output, got {failure:?}");
    };
    assert!(text.contains("256 KiB"), "{text}");

    let selector = load(&engine, World::Selector, &test_guest("test-selector.wasm"));
    let mut call = sample_call("any");
    call.called = "+18005550103".to_owned();
    let quality = Quality {
        score: 50,
        tags: vec![],
    };
    let bids = [BidCandidate {
        id: "bid".to_owned(),
        bidder_id: "bidder".to_owned(),
        target_id: "target".to_owned(),
        amount_micros: 1,
        min_quality: 0,
        min_duration_seconds: 0,
        target_stats: TargetStats::default(),
    }];
    let invocation = selector.select(&context(), &call, &quality, &bids);
    let Err(PolicyFailure::BadOutput(text)) = invocation.outcome else {
        panic!("expected a bad output, got {:?}", invocation.outcome);
    };
    assert!(text.contains("256 KiB"), "{text}");
}

#[test]
fn logs_are_bounded_in_bytes_whatever_their_lines_hold() {
    let engine = engine();
    let invocation = hostile(&engine).score(&context(), &sample_call("log-heavy"));
    assert_eq!(invocation.outcome.map(|q| q.score), Ok(2));
    let kept: usize = invocation.logs.iter().map(|l| l.bytes()).sum();
    assert!(kept <= 8 << 10, "{kept} bytes of logs kept");
    assert!(invocation.logs_dropped > 0, "the rest is counted");
    let json = serde_json::to_string(&invocation.logs).expect("json");
    assert!(!json.contains("\\u0000"), "no NUL reaches a record");
    assert!(json.len() <= 32 << 10, "{} bytes of JSON", json.len());
}

#[test]
fn key_value_state_persists_across_invocations_of_a_policy() {
    let engine = engine();
    let policy = hostile(&engine);
    let ctx = context();
    let counts: Vec<u8> = (0..3)
        .map(|_| {
            policy
                .score(&ctx, &sample_call("count"))
                .outcome
                .map(|q| q.score)
        })
        .collect::<Result<_, _>>()
        .expect("counting works");
    assert_eq!(counts, [1, 2, 3]);
    let mut other = context();
    other.kv_namespace = "another-policy".to_owned();
    other.kv = ctx.kv.clone();
    assert_eq!(
        policy
            .score(&other, &sample_call("count"))
            .outcome
            .map(|q| q.score),
        Ok(1)
    );
}

fn rejection(world: World, bytes: &[u8], expected: Expect) {
    let engine = engine();
    let error = CompiledPolicy::load(&engine, world, bytes, None).expect_err("upload is refused");
    expected.assert_eq(&format!("{error:?}\n{error}"));
    // The engine is unharmed: a good policy still loads and runs.
    let good = hostile(&engine);
    assert_eq!(
        good.score(&context(), &sample_call("ok"))
            .outcome
            .map(|q| q.score),
        Ok(42)
    );
}

#[test]
fn a_component_for_the_wrong_world_is_refused() {
    rejection(
        World::Scorer,
        &example_policy("state-hour-bidder"),
        expect![[r#"
            WrongWorld { expected: Scorer, detail: "it exports `bid` (a bidder policy?) instead of `score`" }
            the component does not implement the scorer world: it exports `bid` (a bidder policy?) instead of `score`"#]],
    );
}

#[test]
fn a_scorer_uploaded_as_a_bidder_is_refused_for_its_world_first() {
    rejection(
        World::Bidder,
        &example_policy("geo-history-scorer"),
        expect![[r#"
            WrongWorld { expected: Bidder, detail: "it exports `score` (a scorer policy?) instead of `bid`" }
            the component does not implement the bidder world: it exports `score` (a scorer policy?) instead of `bid`"#]],
    );
}

#[test]
fn a_core_module_is_refused() {
    rejection(
        World::Scorer,
        &test_guest("hostile-scorer.core.wasm"),
        expect![[r#"
            CoreModule
            a core WebAssembly module, not a component: build the policy with the guest SDK (or wrap the module with `wasm-tools component new`)"#]],
    );
}

/// Deterministic noise (xorshift), so the test input is the same every run.
fn noise(len: usize, mut state: u64) -> Vec<u8> {
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

#[test]
fn random_bytes_are_refused() {
    rejection(
        World::Scorer,
        &noise(4096, 0x9e37_79b9_7f4a_7c15),
        expect![[r#"
            NotWasm
            not a WebAssembly binary (no `\0asm` header)"#]],
    );
}

#[test]
fn random_bytes_behind_a_component_header_are_refused() {
    let mut bytes = b"\0asm\x0d\0\x01\0".to_vec();
    bytes.extend(noise(4096, 7));
    let engine = engine();
    let error = CompiledPolicy::load(&engine, World::Scorer, &bytes, None).expect_err("refused");
    assert!(matches!(error, LoadError::Invalid(_)), "{error:?}");
}

#[test]
fn an_oversized_file_is_refused_before_compilation() {
    let mut bytes = test_guest("hostile-scorer.wasm");
    bytes.resize(Limits::default().component_bytes + 1, 0);
    rejection(
        World::Scorer,
        &bytes,
        expect![[r#"
            TooLarge { size: 10485761, limit: 10485760 }
            the file is 10485761 bytes, above the limit of 10485760 bytes"#]],
    );
}

#[test]
fn a_component_importing_the_filesystem_is_refused_naming_the_import() {
    let engine = engine();
    let bytes = test_guest("wasi-filesystem-scorer.wasm");
    let error = CompiledPolicy::load(&engine, World::Scorer, &bytes, None).expect_err("refused");
    let LoadError::ForbiddenImport { import, world } = &error else {
        panic!("expected a forbidden import, got {error:?}");
    };
    assert!(import.starts_with("wasi:"), "{import}");
    assert_eq!(*world, World::Scorer);
    assert!(error.to_string().contains(import.as_str()));
}

/// A module with one function of type `() -> ()` made of `locals` and `nops`.
fn one_function(locals: u32, nops: usize) -> wasm_encoder::Module {
    use wasm_encoder::{CodeSection, Function, FunctionSection, Instruction, TypeSection, ValType};
    let mut types = TypeSection::new();
    types.ty().function([], []);
    let mut functions = FunctionSection::new();
    functions.function(0);
    let mut body = Function::new([(locals, ValType::I32)]);
    for _ in 0..nops {
        body.instruction(&Instruction::Nop);
    }
    body.instruction(&Instruction::End);
    let mut code = CodeSection::new();
    code.function(&body);
    let mut module = wasm_encoder::Module::new();
    module.section(&types).section(&functions).section(&code);
    module
}

#[test]
fn components_past_the_structural_bounds_are_refused_before_compiling() {
    use wasm_encoder::{MemorySection, MemoryType};
    let engine = engine();
    let mut memories = MemorySection::new();
    for _ in 0..511 {
        memories.memory(MemoryType {
            minimum: 1,
            maximum: Some(1),
            memory64: false,
            shared: false,
            page_size_log2: None,
        });
    }
    let mut many_memories = wasm_encoder::Module::new();
    many_memories.section(&memories);
    for (component, what) in [
        (component_around(&many_memories), "memories"),
        (
            component_around(&one_function(20_000, 0)),
            "locals in one function",
        ),
        (
            component_around(&one_function(0, 300_000)),
            "bytes in one function",
        ),
    ] {
        let refused = CompiledPolicy::load(&engine, World::Scorer, &component, None)
            .expect_err("past the bounds");
        assert!(
            matches!(&refused, LoadError::TooComplex { what: w, .. } if *w == what),
            "{what}: {refused}"
        );
    }
    // One memory, instantiated three times: three memories of the pool.
    let mut one_memory = wasm_encoder::Module::new();
    let mut memory = MemorySection::new();
    memory.memory(MemoryType {
        minimum: 1,
        maximum: Some(1),
        memory64: false,
        shared: false,
        page_size_log2: None,
    });
    one_memory.section(&memory);
    let mut instances = wasm_encoder::InstanceSection::new();
    for _ in 0..3 {
        instances.instantiate(0, Vec::<(&str, wasm_encoder::ModuleArg)>::new());
    }
    let mut thrice = wasm_encoder::Component::new();
    thrice.section(&wasm_encoder::ModuleSection(&one_memory));
    thrice.section(&instances);
    let refused = CompiledPolicy::load(&engine, World::Scorer, &thrice.finish(), None)
        .expect_err("past its share of the instance pool");
    assert!(
        refused.to_string().contains("3 Wasm linear memories"),
        "{refused}"
    );
    // Within the bounds, the same shapes reach the compiler (which refuses
    // them for not being a scorer, not for their size).
    let small = CompiledPolicy::load(
        &engine,
        World::Scorer,
        &component_around(&one_function(10, 10)),
        None,
    )
    .expect_err("not a scorer");
    assert!(!matches!(small, LoadError::TooComplex { .. }), "{small}");
}

#[test]
fn a_compile_past_its_cpu_or_memory_budget_is_refused_and_the_host_goes_on() {
    use host::policy::{ArtifactCache, CompileBudget, Compiler, compile_and_load};
    let engine = engine();
    let cache_dir = tempfile::tempdir().expect("temp dir");
    let cache = ArtifactCache::new(cache_dir.path());
    let within = |cpu_seconds: u64, memory_mib: u64| Compiler::Process {
        program: tests::plugboard_bin(),
        budget: CompileBudget {
            cpu_seconds,
            memory_bytes: memory_mib << 20,
        },
    };
    let slow = component_around(&slow_to_compile(1_000, 1_000));
    assert!(slow.len() < 10 << 20, "{} bytes", slow.len());
    let refused = compile_and_load(&within(1, 4096), &engine, &cache, World::Scorer, &slow)
        .expect_err("past one second of CPU");
    assert!(
        matches!(&refused, LoadError::CompileBudget(why) if why.contains("1 s of CPU")),
        "{refused}"
    );
    let scorer = test_guest("hostile-scorer.wasm");
    let refused = compile_and_load(&within(30, 16), &engine, &cache, World::Scorer, &scorer)
        .expect_err("past 16 MiB");
    assert!(
        matches!(&refused, LoadError::CompileBudget(why) if why.contains("16 MiB of memory")),
        "{refused}"
    );
    // Within the default budget the same component compiles, in the child,
    // and loads from the artifact it left.
    let default = Compiler::Process {
        program: tests::plugboard_bin(),
        budget: CompileBudget::default(),
    };
    let loaded = compile_and_load(&default, &engine, &cache, World::Scorer, &scorer)
        .expect("within the budget");
    assert!(loaded.loaded_from_cache(), "compiled by the child");
    let invocation = loaded.score(&context(), &sample_call("well-behaved"));
    assert_eq!(invocation.outcome.map(|q| q.score), Ok(42));
}
