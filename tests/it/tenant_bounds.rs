//! What one tenant's objects and policies may cost the others: every string
//! a policy hands the host and every call record is bounded, and a target's
//! name that never resolves fails that target alone (trust between tenants,
//! part 2).

use std::sync::Arc;

use host::runtime::Lookup;
use host::store::CallOutcome;
use serde_json::json;
use tests::call_lab::CallLab;
use tests::str_field;

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

/// A resolver that never answers, for any name.
fn never_answers() -> Lookup {
    Arc::new(|_name: String| Box::pin(std::future::pending()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_whose_name_never_resolves_fails_alone_while_other_calls_go_on() {
    let lab = CallLab::with_lookup(never_answers()).await;
    let stuck_number = "+18005550333";
    let stuck_campaign = lab
        .api
        .campaign(
            &lab.marketer_key,
            json!({"name": "stuck", "numbers": [stuck_number]}),
        )
        .await;
    let (status, stuck_target) = lab
        .api
        .call(
            "POST",
            &format!("/v1/bidders/{}/targets", lab.bidder_id),
            Some(&lab.bidder_key),
            Some(json!({"uri": "sip:sales@pbx.stuck.test:5070"})),
        )
        .await;
    assert_eq!(status, 201, "{stuck_target}");
    lab.bid_on(
        &str_field(&stuck_campaign, "id"),
        &str_field(&stuck_target, "id"),
        9_000_000,
        0,
        0,
    )
    .await;
    let buyer = lab.buyer("buyer_answers", 1).await;
    let target = lab.target(buyer.port, 20, 10).await;
    lab.bid(&target, 5_000_000, 0).await;

    let (stuck, normal) = tokio::join!(
        lab.carrier_to(stuck_number, "caller_refused", 1, &[]),
        lab.carrier("caller_hangs_up", 1, &["-d", "100"]),
    );
    stuck.assert_ok();
    normal.assert_ok();
    buyer.finish().await.assert_ok();
    let records = lab.wait_for_records(2).await;
    let stuck_record = records
        .iter()
        .find(|r| r.called == stuck_number)
        .expect("the stuck campaign's call");
    assert_eq!(stuck_record.outcome, CallOutcome::NoAnswer);
    let results: Vec<&str> = stuck_record
        .trace
        .legs
        .iter()
        .map(|l| l.result.as_str())
        .collect();
    assert_eq!(results, ["unresolvable"]);
    lab.stop().await;
}
