//! Replay throughput on a store of 100,000 recorded calls. The records are
//! real: a few hundred calls through SIPp with the example scorer, ten
//! bidders whose strategy is the example bidder module and the example
//! selector, then copied under new ids and times until the store holds
//! `RECORDS` of them (each with ten bids, their inputs, the policies'
//! traces). Then the example scorer, bidder module and selector are each
//! replayed over all of them, and the store's read alone is timed beside
//! them (the same pages, no candidate).
//!
//! `cargo xtask policies && cargo bench -p tests --bench replay`
//! (`RECORDS=…`, default 100,000; `CALLS=…` real calls, default 200).

use host::model::{CallRecord, World};
use host::policy::{CompiledPolicy, Limits, PolicyEngine};
use host::replay::{KvSource, ReplayRange, replay};
use host::store::CallFilter;
use serde_json::json;
use tests::call_lab::CallLab;
use tests::example_policy;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let records = env_or("RECORDS", 100_000);
    let calls = env_or("CALLS", 200) as u32;
    let lab = CallLab::start().await;
    let marketer = lab.marketer_key.clone();
    let (scorer, _) = lab
        .deploy_new(
            &marketer,
            "scorer",
            example_policy("geo-history-scorer"),
            "fallback",
        )
        .await;
    let (selector, _) = lab
        .deploy_new(
            &marketer,
            "selector",
            example_policy("answer-rate-selector"),
            "fallback",
        )
        .await;
    lab.update_campaign(json!({"scorer_policy_id": scorer, "selector_policy_id": selector}))
        .await;
    let buyer = lab.buyer("buyer_answers", calls * 2).await;
    lab.example_module_bidders(10, buyer.port).await;
    // Every call leaves a record, whatever SIPp makes of it under load.
    let _ = lab
        .carrier("caller_hangs_up", calls, &["-d", "10", "-r", "20"])
        .await;
    let real = lab.wait_for_records(calls as usize).await;
    let with_bids = real.iter().filter(|r| r.trace.bids.len() >= 10).count();
    eprintln!(
        "replay bench: {} real calls ({with_bids} with ten bids); copying to {records} records",
        real.len()
    );

    let store = &lab.api.state.store;
    let started = host::clock::now();
    let last_ms = real.iter().map(|r| r.received_at_ms).max().unwrap_or(0);
    let mut batch: Vec<CallRecord> = Vec::with_capacity(256);
    for i in real.len()..records {
        let mut copy = real[i % real.len()].clone();
        copy.id = format!("call_copy_{i:07}");
        copy.received_at_ms = last_ms + i as i64;
        batch.push(copy);
        if batch.len() == 256 {
            store.record_calls(&batch).expect("recorded");
            batch.clear();
        }
    }
    store.record_calls(&batch).expect("recorded");
    store.flush().expect("flushed");
    eprintln!(
        "replay bench: stored in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let started = host::clock::now();
    let mut read = 0usize;
    let mut cursor = None;
    loop {
        let page = store
            .calls(&CallFilter::default(), |_| true, cursor.as_deref(), 256)
            .expect("read");
        read += page.calls.len();
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    let reading = started.elapsed().as_secs_f64();
    println!(
        "read alone:        {read} records in {reading:.2} s, {:.0} records/s",
        read as f64 / reading
    );

    let engine = PolicyEngine::new(Limits::default()).expect("engine");
    for (world, name) in [
        (World::Scorer, "geo-history-scorer"),
        (World::Bidder, "state-hour-bidder"),
        (World::Selector, "answer-rate-selector"),
    ] {
        let candidate =
            CompiledPolicy::load(&engine, world, &example_policy(name), None).expect("compiles");
        let range = ReplayRange {
            limit: records,
            kv: KvSource::Campaigns,
            ..ReplayRange::default()
        };
        let started = host::clock::now();
        let report = replay(store, &candidate, &range, &|_| true, &mut |_| {}).expect("replays");
        let took = started.elapsed().as_secs_f64();
        println!(
            "{:<18} {} calls in {took:.2} s, {:.0} calls/s ({} failures, {} winners changed)",
            format!("{world}:"),
            report.calls_replayed,
            report.calls_replayed as f64 / took,
            report.failures.values().sum::<u64>(),
            report.winners_changed,
        );
    }
    lab.stop().await;
}
