//! Each example policy through the host: the built component, on sample input.

use expect_test::expect;
use host::model::{BidCandidate, CallerHistory, Offer, Quality, TargetStats};
use tests::{
    World, context, engine, example_policy, example_policy_names, load, render, sample_call,
};

/// Every crate in `example-policies/` must appear here, with a test below.
const TESTED: &[&str] = &[
    "answer-rate-selector",
    "geo-history-scorer",
    "state-hour-bidder",
];

#[test]
fn every_example_policy_has_a_host_level_test() {
    assert_eq!(
        example_policy_names(),
        TESTED,
        "add a host-level test for the new policy"
    );
}

#[test]
fn geo_history_scorer_rates_a_first_call_from_paid_traffic() {
    let engine = engine();
    let policy = load(
        &engine,
        World::Scorer,
        &example_policy("geo-history-scorer"),
    );
    let invocation = policy.score(&context(), &sample_call("solar"));
    expect![[r#"
        Ok(Quality { score: 85, tags: ["business-hours", "first-call", "paid-traffic"] })
        Info scored [("score", "85"), ("tags", "business-hours,first-call,paid-traffic"), ("region", "CA")]
    "#]]
    .assert_eq(&render(&invocation));
    assert!(invocation.fuel_used > 0);
    assert!(invocation.memory_peak_bytes > 0);
}

#[test]
fn geo_history_scorer_reads_the_callers_history_through_the_host() {
    let engine = engine();
    let policy = load(
        &engine,
        World::Scorer,
        &example_policy("geo-history-scorer"),
    );
    let call = sample_call("solar");
    let mut ctx = context();
    ctx.history = CallerHistory {
        calls_seen: 3,
        last_seen_unix_seconds: Some(call.time.unix_seconds - 600),
        conversions: 1,
    };
    let invocation = policy.score(&ctx, &call);
    expect![[r#"
        Ok(Quality { score: 40, tags: ["business-hours", "repeat-24h", "converted-before", "paid-traffic"] })
        Info scored [("score", "40"), ("tags", "business-hours,repeat-24h,converted-before,paid-traffic"), ("region", "CA")]
    "#]]
    .assert_eq(&render(&invocation));
}

fn offer(region: &str, hour: u8, score: u8) -> Offer {
    let call = sample_call("solar");
    let mut geography = call.caller_geography;
    geography.region = region.to_owned();
    Offer {
        call_id: call.id,
        campaign_id: call.campaign_id,
        quality: Quality {
            score,
            tags: vec![],
        },
        caller_geography: geography,
        time: host::model::CallTime {
            local_hour: hour,
            ..call.time
        },
        attribution: vec![],
    }
}

#[test]
fn state_hour_bidder_bids_by_state_and_hour() {
    let engine = engine();
    let policy = load(&engine, World::Bidder, &example_policy("state-hour-bidder"));
    let ctx = context();
    let bids: Vec<String> = [
        ("CA", 11, 80),
        ("TX", 18, 95),
        ("NY", 11, 80),
        ("CA", 23, 80),
    ]
    .into_iter()
    .map(|(region, hour, score)| render(&policy.bid(&ctx, &offer(region, hour, score))))
    .collect();
    expect![[r#"
        Ok(Some(BidDecision { amount_micros: 30000000, target_id: None, min_duration_seconds: Some(90) }))
        Info bid [("region", "CA"), ("amount_micros", "30000000")]
        Ok(Some(BidDecision { amount_micros: 22000000, target_id: None, min_duration_seconds: Some(90) }))
        Info bid [("region", "TX"), ("amount_micros", "22000000")]
        Ok(None)
        Debug declined [("reason", "state"), ("region", "NY")]
        Ok(None)
        Debug declined [("reason", "closed")]
    "#]]
    .assert_eq(&bids.concat());
}

#[test]
fn state_hour_bidder_paces_with_its_key_value_store() {
    let engine = engine();
    let policy = load(&engine, World::Bidder, &example_policy("state-hour-bidder"));
    let ctx = context();
    for _ in 0..3 {
        assert!(matches!(
            policy.bid(&ctx, &offer("CA", 11, 80)).outcome,
            Ok(Some(_))
        ));
    }
    let day = sample_call("solar").time.unix_seconds.div_euclid(86_400);
    let stored = ctx.kv.get(&ctx.kv_namespace, &format!("bids:{day}"));
    assert_eq!(stored, Some(3u32.to_le_bytes().to_vec()));
}

fn candidate(id: &str, amount_usd: u64, offered: u32, answered: u32) -> BidCandidate {
    BidCandidate {
        id: id.to_owned(),
        bidder_id: format!("bidder-{id}"),
        target_id: format!("target-{id}"),
        amount_micros: amount_usd * 1_000_000,
        min_quality: 0,
        min_duration_seconds: 60,
        target_stats: TargetStats {
            offered,
            answered,
            average_duration_seconds: 180,
        },
    }
}

#[test]
fn answer_rate_selector_puts_the_reliable_buyer_first() {
    let engine = engine();
    let policy = load(
        &engine,
        World::Selector,
        &example_policy("answer-rate-selector"),
    );
    let bids = [
        candidate("rich-but-absent", 40, 200, 30),
        candidate("reliable", 30, 200, 190),
        candidate("new", 25, 0, 0),
    ];
    let quality = Quality {
        score: 70,
        tags: vec![],
    };
    let invocation = policy.select(&context(), &sample_call("solar"), &quality, &bids);
    expect![[r#"
        Ok([1, 2, 0])
        Info ranked [("first", "reliable"), ("expected_micros", "27990000")]
    "#]]
    .assert_eq(&render(&invocation));
}
