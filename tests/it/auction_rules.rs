//! The auction's eligibility rules on real calls: each dropped bid is not
//! rung and says why in the record.

use host::store::CallOutcome;
use serde_json::json;
use tests::call_lab::{CallLab, bid_fate};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bid_whose_schedule_is_closed_is_skipped() {
    let lab = CallLab::start().await;
    let closed = lab.buyer("buyer_answers", 1).await;
    let open = lab.buyer("buyer_answers", 1).await;
    let closed_target = lab.target(closed.port, 20, 10).await;
    let open_target = lab.target(open.port, 20, 10).await;
    // Open all day tomorrow (UTC), so closed now.
    let now = jiff::Timestamp::from_second(host::clock::unix_now()).expect("now");
    let today = jiff::tz::TimeZone::UTC
        .to_datetime(now)
        .weekday()
        .to_monday_zero_offset();
    let tomorrow = (today + 1) % 7;
    let closed_bid = lab
        .bid_with(json!({
            "target_id": closed_target, "amount_micros": 30_000_000, "time_zone": "UTC",
            "schedule": [{"weekdays": [tomorrow], "open": "00:00", "close": "24:00"}],
        }))
        .await;
    let open_bid = lab.bid(&open_target, 10_000_000, 0).await;

    lab.carrier("caller_hangs_up", 1, &["-d", "100"])
        .await
        .assert_ok();
    open.finish().await.assert_ok();
    assert!(
        closed.kill().await.is_empty(),
        "a closed bid's target never rings"
    );
    let record = &lab.wait_for_records(1).await[0];
    assert_eq!(record.outcome, CallOutcome::Answered);
    assert_eq!(
        record.winner.as_ref().map(|w| w.bid_id.clone()),
        Some(open_bid)
    );
    assert_eq!(
        bid_fate(record, &closed_bid),
        ("ineligible", Some("outside_schedule"))
    );
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_caller_is_not_routed_to_a_bid_with_the_rule() {
    let lab = CallLab::start().await;
    let strict = lab.buyer("buyer_answers", 1).await;
    let lenient = lab.buyer("buyer_answers", 1).await;
    let strict_target = lab.target(strict.port, 20, 10).await;
    let lenient_target = lab.target(lenient.port, 20, 10).await;
    let strict_bid = lab
        .bid_with(json!({
            "target_id": strict_target, "amount_micros": 30_000_000,
            "duplicate_window_days": 30,
        }))
        .await;
    let lenient_bid = lab.bid(&lenient_target, 10_000_000, 0).await;

    // The first call from the number goes to the strict bid…
    lab.carrier("caller_hangs_up", 1, &["-d", "100"])
        .await
        .assert_ok();
    strict.finish().await.assert_ok();
    let first = lab.wait_for_records(1).await[0].clone();
    assert_eq!(first.winner.map(|w| w.bid_id), Some(strict_bid.clone()));
    // … the second, within its 30 days, does not.
    lab.carrier("caller_hangs_up", 1, &["-d", "100"])
        .await
        .assert_ok();
    lenient.finish().await.assert_ok();
    let second = lab.wait_for_records(2).await[1].clone();
    assert_eq!(
        second.winner.as_ref().map(|w| w.bid_id.clone()),
        Some(lenient_bid)
    );
    assert_eq!(
        bid_fate(&second, &strict_bid),
        ("ineligible", Some("duplicate_caller"))
    );
    lab.stop().await;
}
