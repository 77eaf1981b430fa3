//! The test harness: where built guests and binaries are, sample inputs, and
//! renderings of results that snapshots compare.
//!
//! Guests are built by `cargo xtask test` (or `cargo xtask policies` and
//! `cargo xtask guests`) before the tests run.

use std::fmt::Debug;
use std::path::PathBuf;
use std::sync::Arc;

use host::policy::model::{CallFacts, CallTime, Geography, Header};
use host::policy::{CompiledPolicy, Invocation, InvocationContext, Limits, MemoryKv, PolicyEngine};

pub use host::policy::model::World;

/// The workspace's target folder, as xtask uses it.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"))
}

fn read_built(path: PathBuf, how: &str) -> Vec<u8> {
    std::fs::read(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}; build it with `{how}`", path.display()))
}

/// The component of `example-policies/<name>`.
pub fn example_policy(name: &str) -> Vec<u8> {
    read_built(
        target_dir().join("policies").join(format!("{name}.wasm")),
        "cargo xtask policies",
    )
}

/// A file built from `tests/guests/*` (`<name>.wasm`, or `<name>.core.wasm`).
pub fn test_guest(file: &str) -> Vec<u8> {
    read_built(
        target_dir().join("test-guests").join(file),
        "cargo xtask guests",
    )
}

/// The example policy crates, by folder name.
pub fn example_policy_names() -> Vec<String> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../example-policies");
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("example-policies/ is listable")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect();
    names.sort();
    names
}

/// The `plugboard` binary, built by `cargo xtask test` before the tests.
pub fn plugboard_bin() -> PathBuf {
    let bin = target_dir().join("debug").join("plugboard");
    assert!(
        bin.is_file(),
        "{} is missing; run `cargo build -p host`",
        bin.display()
    );
    bin
}

/// An engine with the default limits but a one-second deadline: tests run in
/// parallel on few cores, and a wall-clock deadline also counts the time a
/// thread waits for a core. Tests about deadlines set their own.
pub fn engine() -> PolicyEngine {
    engine_with(Limits {
        deadline: std::time::Duration::from_secs(1),
        ..Limits::default()
    })
}

pub fn engine_with(limits: Limits) -> PolicyEngine {
    PolicyEngine::new(limits).expect("engine starts")
}

pub fn load(engine: &PolicyEngine, world: World, bytes: &[u8]) -> Arc<CompiledPolicy> {
    Arc::new(CompiledPolicy::load(engine, world, bytes, None).expect("policy loads"))
}

/// A fresh context with an empty in-memory key-value store.
pub fn context() -> InvocationContext {
    InvocationContext {
        history: Default::default(),
        kv: Arc::new(MemoryKv::new()),
        kv_namespace: "test-policy".to_owned(),
    }
}

/// A weekday-morning call from San Francisco to a solar campaign.
pub fn sample_call(campaign_id: &str) -> CallFacts {
    CallFacts {
        id: "call-0001".to_owned(),
        campaign_id: campaign_id.to_owned(),
        caller: "+14155550123".to_owned(),
        called: "+18005550100".to_owned(),
        caller_geography: Geography {
            country: "US".to_owned(),
            area_code: "415".to_owned(),
            region: "CA".to_owned(),
            time_zone: "America/Los_Angeles".to_owned(),
        },
        time: CallTime {
            unix_seconds: 1_795_888_800,
            local_weekday: 1,
            local_hour: 10,
            local_minute: 0,
        },
        headers: vec![Header {
            name: "User-Agent".to_owned(),
            value: "carrier-sbc/1.0".to_owned(),
        }],
        attribution: vec![("source".to_owned(), "google-ads".to_owned())],
    }
}

/// The deterministic part of an invocation: outcome and logs (fuel and time
/// vary with the compiler and the machine, so snapshots leave them out).
pub fn render<T: Debug>(invocation: &Invocation<T>) -> String {
    let mut out = format!("{:?}\n", invocation.outcome);
    for line in &invocation.logs {
        out.push_str(&format!(
            "{:?} {} {:?}\n",
            line.level, line.message, line.fields
        ));
    }
    if invocation.logs_dropped > 0 {
        out.push_str(&format!(
            "({} log lines dropped)\n",
            invocation.logs_dropped
        ));
    }
    out
}
