//! Safe rollout: what a call record keeps of its policies' inputs, so that
//! another version can be judged on real calls.

use serde_json::json;
use tests::call_lab::{CALLER, CallLab};
use tests::str_field;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_record_keeps_what_each_policy_saw_and_shows_it_to_the_marketer_alone() {
    let lab = CallLab::start().await;
    let pooled = "+18005550201";
    lab.visitor_on(pooled, json!({"utm_source": "google", "gclid": "click-1"}))
        .await;
    lab.update_campaign(json!({"shared_attribution_keys": ["utm_source"]}))
        .await;
    let cheap = lab.buyer("buyer_answers", 1).await;
    let rich = lab.buyer("buyer_answers", 1).await;
    let cheap_target = lab.target(cheap.port, 20, 10).await;
    let rich_target = lab.target(rich.port, 20, 10).await;
    let cheap_bid = lab.bid(&cheap_target, 10_000_000, 0).await;
    let rich_bid = lab.bid(&rich_target, 30_000_000, 0).await;
    let fussy_bid = lab.bid(&cheap_target, 50_000_000, 90).await;

    lab.carrier_to(pooled, "caller_hangs_up", 1, &["-d", "100"])
        .await
        .assert_ok();
    rich.finish().await.assert_ok();
    let record = lab.wait_for_records(1).await.remove(0);
    let inputs = record.inputs.as_ref().expect("inputs are kept");

    assert_eq!(inputs.call.id, record.id);
    assert_eq!(inputs.call.caller, CALLER);
    assert_eq!(inputs.call.called, pooled);
    assert_eq!(inputs.call.caller_geography.region, "CA");
    assert!(
        inputs.call.headers.iter().any(|h| h.name == "Call-ID"),
        "{:?}",
        inputs.call.headers
    );
    assert_eq!(inputs.call.attribution.len(), 2, "the scorer sees it all");
    assert_eq!(inputs.caller_history.calls_seen, 0, "a first call");
    // The offer is the redacted one: shared attribution only, no caller.
    assert_eq!(inputs.offer.call_id, record.id);
    assert_eq!(inputs.offer.quality.score, 50);
    assert_eq!(
        inputs.offer.attribution,
        [("utm_source".to_owned(), "google".to_owned())]
    );
    // The candidates in the auction's order; the bid above the call's
    // quality is not one.
    let candidates: Vec<&str> = inputs.candidates.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(candidates, [rich_bid.as_str(), cheap_bid.as_str()]);
    assert!(!candidates.contains(&fussy_bid.as_str()));
    assert_eq!(inputs.candidates[0].amount_micros, 30_000_000);
    assert_eq!(inputs.candidates_omitted, 0);

    let seen_by_marketer = lab.record_through_api(&record.id).await;
    assert_eq!(seen_by_marketer["inputs"]["call"]["caller"], CALLER);
    assert_eq!(
        seen_by_marketer["inputs"]["offer"]["attribution"],
        json!({"utm_source": "google"})
    );
    let (status, seen_by_bidder) = lab
        .api
        .call(
            "GET",
            &format!("/v1/calls/{}", record.id),
            Some(&lab.bidder_key),
            None,
        )
        .await;
    assert_eq!(status, 200, "{seen_by_bidder}");
    assert!(seen_by_bidder.get("inputs").is_none(), "{seen_by_bidder}");
    assert_eq!(str_field(&seen_by_bidder, "id"), record.id);
    lab.stop().await;
}
