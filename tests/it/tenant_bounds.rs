//! What one tenant's objects and policies may cost the others: every string
//! a policy hands the host and every call record is bounded, whatever the
//! tenant does (trust between tenants, part 2).

use serde_json::json;
use tests::call_lab::CallLab;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_keeps_a_hundred_bids_the_ring_trees_first_and_counts_the_rest() {
    let lab = CallLab::start().await;
    let buyer = lab.buyer("buyer_answers", 1).await;
    let target = lab.target(buyer.port, 20, 10).await;
    let best = lab.bid(&target, 90_000_000, 0).await;
    for amount in 0..149u64 {
        lab.bid_with(
            json!({"target_id": target, "amount_micros": 1_000_000 + amount, "min_quality": 100}),
        )
        .await;
    }
    lab.carrier("caller_hangs_up", 1, &["-d", "100"])
        .await
        .assert_ok();
    buyer.finish().await.assert_ok();
    let record = &lab.wait_for_records(1).await[0];
    assert_eq!(
        record.winner.as_ref().map(|w| w.bid_id.clone()),
        Some(best.clone())
    );
    assert_eq!(record.trace.bids.len(), host::auction::MAX_TRACED_BIDS);
    assert_eq!(record.trace.bids_omitted, 50);
    assert_eq!(
        record.trace.bids[0].bid_id, best,
        "the ring tree's bid first"
    );
    lab.stop().await;
}
