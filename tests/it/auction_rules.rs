//! The auction's eligibility rules on real calls: each dropped bid is not
//! rung and says why in the record.

use std::time::Duration;

use host::model::{CallOutcome, CallRecord};
use serde_json::json;
use tests::call_lab::{CallLab, Sipp, bid_fate};

fn winner(record: &CallRecord) -> Option<String> {
    record.winner.as_ref().map(|w| w.bid_id.clone())
}

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

/// A buyer for one call behind the higher bid, with a 30-day duplicate-caller
/// rule, and one for `lenient_calls` calls behind a lower bid without it.
async fn strict_and_lenient(lab: &CallLab, lenient_calls: u32) -> (Sipp, String, Sipp, String) {
    let strict = lab.buyer("buyer_answers", 1).await;
    let lenient = lab.buyer("buyer_answers", lenient_calls).await;
    let strict_target = lab.target(strict.port, 20, 10).await;
    let lenient_target = lab.target(lenient.port, 20, 10).await;
    let strict_bid = lab
        .bid_with(json!({
            "target_id": strict_target, "amount_micros": 30_000_000,
            "duplicate_window_days": 30,
        }))
        .await;
    let lenient_bid = lab.bid(&lenient_target, 10_000_000, 0).await;
    (strict, strict_bid, lenient, lenient_bid)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_caller_is_not_routed_to_a_bid_with_the_rule() {
    let lab = CallLab::start().await;
    let (strict, strict_bid, lenient, lenient_bid) = strict_and_lenient(&lab, 1).await;

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_below_every_quality_floor_goes_to_the_fallback() {
    let lab = CallLab::start().await;
    let picky = lab.buyer("buyer_answers", 1).await;
    let pickier = lab.buyer("buyer_answers", 1).await;
    let fallback = lab.buyer("buyer_answers", 1).await;
    let picky_target = lab.target(picky.port, 20, 10).await;
    let pickier_target = lab.target(pickier.port, 20, 10).await;
    let picky_bid = lab.bid(&picky_target, 30_000_000, 60).await;
    let pickier_bid = lab.bid(&pickier_target, 40_000_000, 95).await;
    let fallback_uri = format!("sip:overflow@127.0.0.1:{}", fallback.port);
    lab.update_campaign(json!({"fallback_target": fallback_uri}))
        .await;

    // No scorer: the call has the default quality, 50.
    lab.carrier("caller_hangs_up", 1, &["-d", "100"])
        .await
        .assert_ok();
    fallback.finish().await.assert_ok();
    assert!(picky.kill().await.is_empty(), "no route to a picky bidder");
    assert!(
        pickier.kill().await.is_empty(),
        "no route to a picky bidder"
    );
    let record = &lab.wait_for_records(1).await[0];
    assert_eq!(record.outcome, CallOutcome::Answered);
    assert_eq!(winner(record), None, "the fallback is nobody's bid");
    assert_eq!(record.trace.legs[0].uri, fallback_uri);
    for bid in [&picky_bid, &pickier_bid] {
        assert_eq!(
            bid_fate(record, bid),
            ("ineligible", Some("below_quality_floor"))
        );
    }
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bid_at_its_hourly_cap_gives_the_call_to_the_next_bid() {
    let lab = CallLab::start().await;
    let capped = lab.buyer("buyer_answers", 2).await;
    let next = lab.buyer("buyer_answers", 1).await;
    let capped_target = lab.target(capped.port, 20, 10).await;
    let next_target = lab.target(next.port, 20, 10).await;
    let capped_bid = lab
        .bid_with(json!({
            "target_id": capped_target, "amount_micros": 30_000_000,
            "hourly_cap": 2, "time_zone": "America/Chicago",
        }))
        .await;
    let next_bid = lab.bid(&next_target, 10_000_000, 0).await;

    // Three calls one after the other, well inside one hour… unless the
    // hour turns during the test, which the check below allows for.
    lab.carrier("caller_hangs_up", 3, &["-d", "100", "-l", "1"])
        .await
        .assert_ok();
    let records = lab.wait_for_records(3).await;
    let hours: std::collections::HashSet<i64> = records
        .iter()
        .map(|r| r.received_at_ms / 3_600_000)
        .collect();
    if hours.len() > 1 {
        eprintln!("the hour turned during the test; the cap reset as it should");
        return;
    }
    capped.finish().await.assert_ok();
    next.finish().await.assert_ok();
    let winners: Vec<Option<String>> = records.iter().map(winner).collect();
    assert_eq!(
        winners,
        [
            Some(capped_bid.clone()),
            Some(capped_bid.clone()),
            Some(next_bid)
        ]
    );
    assert_eq!(
        bid_fate(&records[2], &capped_bid),
        ("ineligible", Some("hourly_cap_reached"))
    );
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_simultaneous_calls_put_exactly_max_concurrent_on_a_target() {
    let lab = CallLab::start().await;
    let small = lab.buyer("buyer_answers", 10).await;
    let big = lab.buyer("buyer_answers", 40).await;
    let small_target = lab.target(small.port, 20, 10).await;
    let big_target = lab.target(big.port, 20, 100).await;
    let small_bid = lab.bid(&small_target, 30_000_000, 0).await;
    let big_bid = lab.bid(&big_target, 10_000_000, 0).await;

    // 50 calls in half a second, each talking 3 s: all up at once.
    lab.carrier("caller_hangs_up", 50, &["-r", "100", "-d", "3000"])
        .await
        .assert_ok();
    small.finish().await.assert_ok();
    big.finish().await.assert_ok();
    let records = lab.wait_for_records(50).await;
    let to = |bid: &str| {
        records
            .iter()
            .filter(|r| winner(r).as_deref() == Some(bid))
            .count()
    };
    assert_eq!(to(&small_bid), 10);
    assert_eq!(to(&big_bid), 40);
    assert!(
        records
            .iter()
            .filter(|r| winner(r).as_deref() == Some(big_bid.as_str()))
            .all(|r| bid_fate(r, &small_bid) == ("ineligible", Some("at_capacity"))),
        "each call the small target could not take says why"
    );
    assert_eq!(lab.ledger.active(&small_target), 0, "every place is back");
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_that_misses_three_calls_is_paused_then_resumes() {
    let lab = CallLab::start().await;
    let flaky = lab.buyer("buyer_busy", 4).await;
    let steady = lab.buyer("buyer_answers", 5).await;
    let flaky_target = lab
        .target_with(
            flaky.port,
            json!({"name": "Flaky PBX", "miss_limit": 3, "pause_s": 2}),
        )
        .await;
    let steady_target = lab.target(steady.port, 20, 10).await;
    let flaky_bid = lab.bid(&flaky_target, 30_000_000, 0).await;
    let steady_bid = lab.bid(&steady_target, 10_000_000, 0).await;
    let targets_path = format!("/v1/bidders/{}/targets", lab.bidder_id);
    let flaky_status = || async {
        let (status, targets) = lab
            .api
            .call("GET", &targets_path, Some(&lab.bidder_key), None)
            .await;
        assert_eq!(status, 200, "{targets}");
        targets
            .as_array()
            .expect("targets")
            .iter()
            .find(|t| t["id"] == flaky_target.as_str())
            .expect("the flaky target")["status"]
            .clone()
    };

    // Three busy calls in a row: the third pauses it.
    lab.carrier("caller_hangs_up", 3, &["-d", "100", "-l", "1"])
        .await
        .assert_ok();
    let records = lab.wait_for_records(3).await;
    assert!(
        records
            .iter()
            .all(|r| winner(r) == Some(steady_bid.clone()))
    );
    assert!(
        records[..2]
            .iter()
            .all(|r| r.trace.target_events.is_empty())
    );
    let paused = &records[2].trace.target_events;
    assert_eq!(paused.len(), 1, "{paused:?}");
    assert_eq!(paused[0].event, "paused");
    assert_eq!(paused[0].target_id, flaky_target);
    assert_eq!(
        paused[0].reason.as_deref(),
        Some("3 calls in a row not answered (busy, busy, busy)")
    );
    let status = flaky_status().await;
    assert_eq!(status["state"], "paused", "{status}");
    assert_eq!(
        status["reason"],
        "3 calls in a row not answered (busy, busy, busy)"
    );
    let metrics = lab.api.metrics().await;
    assert!(
        metrics.contains(&format!(
            "plugboard_target_pauses_total{{target=\"{flaky_target}\",target_name=\"Flaky PBX\"}} 1"
        )),
        "{metrics}"
    );
    assert!(metrics.contains("plugboard_targets_paused 1"), "{metrics}");

    // While paused it is skipped.
    lab.carrier("caller_hangs_up", 1, &["-d", "100"])
        .await
        .assert_ok();
    let fourth = lab.wait_for_records(4).await[3].clone();
    assert_eq!(
        bid_fate(&fourth, &flaky_bid),
        ("ineligible", Some("target_paused"))
    );
    assert_eq!(
        fourth.trace.legs.len(),
        1,
        "the paused target does not ring"
    );

    // After its pause it rings again (and is busy again).
    let until = paused[0].until.expect("until");
    while host::clock::unix_now() < until {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    lab.carrier("caller_hangs_up", 1, &["-d", "100"])
        .await
        .assert_ok();
    flaky.finish().await.assert_ok();
    steady.finish().await.assert_ok();
    let fifth = lab.wait_for_records(5).await[4].clone();
    let legs: Vec<&str> = fifth.trace.legs.iter().map(|l| l.result.as_str()).collect();
    assert_eq!(legs, ["busy", "answered"]);
    assert_eq!(fifth.trace.target_events[0].event, "resumed");
    assert_eq!(flaky_status().await["state"], "active");
    assert!(lab.api.metrics().await.contains(&format!(
        "plugboard_target_resumptions_total{{target=\"{flaky_target}\",target_name=\"Flaky PBX\"}} 1"
    )));
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_placed_at_once_from_one_number_count_each_other_as_seen() {
    let lab = CallLab::start().await;
    let (strict, strict_bid, lenient, lenient_bid) = strict_and_lenient(&lab, 4).await;

    // Five calls from one number within a quarter second, each held a
    // second: all five are in progress together, none recorded yet.
    lab.carrier("caller_hangs_up", 5, &["-r", "20", "-l", "5", "-d", "1000"])
        .await
        .assert_ok();
    strict.finish().await.assert_ok();
    lenient.finish().await.assert_ok();
    let records = lab.wait_for_records(5).await;
    let winners: Vec<Option<String>> = records.iter().map(winner).collect();
    assert_eq!(
        winners
            .iter()
            .filter(|w| **w == Some(strict_bid.clone()))
            .count(),
        1,
        "only the first call is new to the strict bid: {winners:?}"
    );
    assert_eq!(
        winners
            .iter()
            .filter(|w| **w == Some(lenient_bid.clone()))
            .count(),
        4
    );
    for record in records
        .iter()
        .filter(|r| winner(r) == Some(lenient_bid.clone()))
    {
        assert_eq!(
            bid_fate(record, &strict_bid),
            ("ineligible", Some("duplicate_caller"))
        );
    }
    lab.stop().await;
}
