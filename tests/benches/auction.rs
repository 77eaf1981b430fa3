//! Auction latency with every source at once: 10 bidder strategy modules (the
//! example bidder) and 5 real-time bidders (HTTP endpoints on loopback
//! answering in 5–50 ms), on real calls through SIPp. The latency is what
//! each call's record says: from the INVITE's arrival to its ring tree.
//!
//! Two runs: the five endpoints as they are (the auction ends with the
//! slowest answer), then with a sixth that answers after 150 ms (the
//! campaign's 100 ms deadline cuts it off). Target: p99 ≤ deadline + 2 ms.
//!
//! `cargo xtask policies && cargo bench -p tests --bench auction`
//! (`CALLS=…` per run, default 300).

use std::time::Duration;

use serde_json::json;
use tests::bid_endpoint::BidEndpoint;
use tests::call_lab::CallLab;

const DEADLINE_MS: i64 = 100;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let calls: u32 = std::env::var("CALLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let lab = CallLab::start().await;
    lab.update_campaign(json!({"auction_timeout_ms": DEADLINE_MS}))
        .await;
    let buyer = lab.buyer("buyer_answers", calls * 2).await;
    lab.example_module_bidders(10, buyer.port).await;
    let mut endpoints = Vec::new();
    for (i, delay_ms) in [5u64, 15, 25, 35, 50].into_iter().enumerate() {
        let endpoint = BidEndpoint::start(
            Duration::from_millis(delay_ms),
            200,
            &json!({"bid_amount_micros": 20_000_000 + i * 1_000_000}).to_string(),
        )
        .await;
        let bidder = lab
            .new_bidder(&format!("Real-time {i}"), json!({"rtb_url": endpoint.url}))
            .await;
        lab.target_of(&bidder, buyer.port, json!({"max_concurrent": 100_000}))
            .await;
        endpoints.push(endpoint);
    }

    println!("auction latency, {calls} calls per run, deadline {DEADLINE_MS} ms");
    run(&lab, calls, 0, "10 modules + 5 real-time (5–50 ms)").await;

    let slow = BidEndpoint::start(
        Duration::from_millis(150),
        200,
        r#"{"bid_amount_micros": 99000000}"#,
    )
    .await;
    let bidder = lab
        .new_bidder("Real-time slow", json!({"rtb_url": slow.url}))
        .await;
    lab.target_of(&bidder, buyer.port, json!({"max_concurrent": 100_000}))
        .await;
    run(
        &lab,
        calls,
        calls as usize,
        "… + 1 real-time at 150 ms (late)",
    )
    .await;
    drop(buyer);
    lab.stop().await;
}

/// `calls` calls at 20/s; the p50, p99 and maximum auction latency of their
/// records (those after the first `skip`).
async fn run(lab: &CallLab, calls: u32, skip: usize, label: &str) {
    lab.carrier(
        "caller_hangs_up",
        calls,
        &["-d", "50", "-r", "20", "-l", "40"],
    )
    .await
    .assert_ok();
    let records = lab.wait_for_records(skip + calls as usize).await;
    let mut latencies: Vec<i64> = records[skip..]
        .iter()
        .filter_map(|r| Some(r.routed_at_ms? - r.received_at_ms))
        .collect();
    latencies.sort_unstable();
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q).round() as usize];
    let p99 = at(0.99);
    println!(
        "  {label}: p50 {} ms, p99 {p99} ms, max {} ms ({} calls) — p99 {} deadline + 2 ms",
        at(0.5),
        latencies[latencies.len() - 1],
        latencies.len(),
        if p99 <= DEADLINE_MS + 2 { "≤" } else { ">" },
    );
}
