//! Where bids come from and how they are ordered, on real calls: bidder
//! strategy modules, selector policies, the floor price after the selector,
//! real-time bids over HTTP.

use std::time::Duration;

use host::model::CallRecord;
use serde_json::json;
use tests::bid_endpoint::BidEndpoint;
use tests::call_lab::{CALLER, CallLab, NUMBER, bid_fate};
use tests::test_guest;

fn winner(record: &CallRecord) -> Option<String> {
    record.winner.as_ref().map(|w| w.bid_id.clone())
}

/// The outcome of each invocation of `policy_id` in the record.
fn policy_outcomes(record: &CallRecord, policy_id: &str) -> Vec<String> {
    record
        .trace
        .policies
        .iter()
        .filter(|p| p.policy_id == policy_id)
        .map(|p| p.outcome.clone())
        .collect()
}

/// Makes `component` the lab campaign's selector.
async fn use_selector(lab: &CallLab, component: Vec<u8>) -> String {
    let marketer = lab.marketer_key.clone();
    let (id, _) = lab
        .deploy_new(&marketer, "selector", component, "fallback")
        .await;
    lab.update_campaign(json!({"selector_policy_id": id})).await;
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bidder_module_sees_no_caller_number_and_its_bid_can_win() {
    let lab = CallLab::start().await;
    let module_buyer = lab.buyer("buyer_answers", 1).await;
    let static_buyer = lab.buyer("buyer_answers", 1).await;
    let static_target = lab.target(static_buyer.port, 20, 10).await;
    let static_bid = lab.bid(&static_target, 10_000_000, 0).await;
    // A second bidder of the same buyer runs the module; its bids ring its
    // one target.
    let bidder_key = lab.bidder_key.clone();
    let (policy, _) = lab
        .deploy_new(
            &bidder_key,
            "bidder",
            test_guest("echo-bidder.wasm"),
            "skip",
        )
        .await;
    let module_bidder = lab
        .new_bidder(
            "Buyer One, by module",
            json!({"strategy_policy_id": policy}),
        )
        .await;
    let module_target = lab
        .target_of(&module_bidder, module_buyer.port, json!({}))
        .await;

    lab.carrier("caller_hangs_up", 1, &["-d", "100"])
        .await
        .assert_ok();
    module_buyer.finish().await.assert_ok();
    assert!(static_buyer.kill().await.is_empty(), "the module's bid won");
    let record = &lab.wait_for_records(1).await[0];
    let module_bid = format!("{module_bidder}:module");
    assert_eq!(winner(record), Some(module_bid.clone()));
    assert_eq!(
        record.winner.as_ref().map(|w| w.amount_micros),
        Some(50_000_000)
    );
    assert_eq!(
        record.trace.legs[0].target_id.as_deref(),
        Some(module_target.as_str())
    );
    let traced = record
        .trace
        .bids
        .iter()
        .find(|b| b.bid_id == module_bid)
        .expect("the module's bid is in the trace");
    assert_eq!(
        (traced.source.as_str(), traced.status.as_str()),
        ("module", "won")
    );
    assert_eq!(
        bid_fate(record, &static_bid),
        ("lost", Some("earlier_bid_answered"))
    );

    // What the module received, as it logged it.
    let invocation = record
        .trace
        .policies
        .iter()
        .find(|p| p.policy_id == policy)
        .expect("the module's invocation is in the trace");
    let received = serde_json::to_string(&invocation.logs).expect("logs");
    let national = CALLER.trim_start_matches("+1");
    assert!(!received.contains(national), "no caller number: {received}");
    assert!(
        !received.contains(&record.called),
        "no called number: {received}"
    );
    for expected in [
        format!("campaign_id: \\\"{}\\\"", lab.campaign_id),
        "score: 50".to_owned(),
        "area_code: \\\"415\\\"".to_owned(),
        "region: \\\"CA\\\"".to_owned(),
        "time_zone: \\\"America/Los_Angeles\\\"".to_owned(),
        format!("call_id: \\\"{}\\\"", record.id),
    ] {
        assert!(received.contains(&expected), "{expected} in {received}");
    }
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_selector_changes_who_rings_first_and_garbage_falls_back_to_the_built_in_order() {
    let lab = CallLab::start().await;
    let dear = lab.buyer("buyer_answers", 2).await;
    let cheap = lab.buyer("buyer_answers", 1).await;
    let dear_target = lab.target(dear.port, 20, 10).await;
    let cheap_target = lab.target(cheap.port, 20, 10).await;
    let dear_bid = lab.bid(&dear_target, 30_000_000, 0).await;
    let cheap_bid = lab.bid(&cheap_target, 20_000_000, 0).await;
    let selector = use_selector(&lab, test_guest("test-selector.wasm")).await;
    // The test selector reads the called number's last digit: 0 cheapest
    // first, 1 an index out of range, 2 an index twice.
    let out_of_range = "+18005550101";
    let repeated = "+18005550102";
    lab.update_campaign(json!({"numbers": [NUMBER, out_of_range, repeated]}))
        .await;

    lab.carrier("caller_hangs_up", 1, &["-d", "100"])
        .await
        .assert_ok();
    cheap.finish().await.assert_ok();
    let reordered = lab.wait_for_records(1).await[0].clone();
    assert_eq!(reordered.trace.ring_order, std::slice::from_ref(&cheap_bid));
    assert_eq!(winner(&reordered), Some(cheap_bid.clone()));
    assert_eq!(policy_outcomes(&reordered, &selector), ["ok"]);

    for (number, error) in [
        (out_of_range, "index 9 is out of range for 2 bids"),
        (repeated, "index 0 appears twice"),
    ] {
        lab.carrier_to(number, "caller_hangs_up", 1, &["-d", "100"])
            .await
            .assert_ok();
        let records = lab
            .wait_for_records(if number == out_of_range { 2 } else { 3 })
            .await;
        let record = records.last().expect("a record");
        assert_eq!(
            record.trace.ring_order,
            std::slice::from_ref(&dear_bid),
            "built-in order"
        );
        assert_eq!(winner(record), Some(dear_bid.clone()));
        let invocation = record
            .trace
            .policies
            .iter()
            .find(|p| p.policy_id == selector)
            .expect("the selector ran");
        assert_eq!(invocation.outcome, "bad_output");
        assert!(
            invocation
                .error
                .as_deref()
                .is_some_and(|e| e.contains(error)),
            "{:?}",
            invocation.error
        );
    }
    dear.finish().await.assert_ok();
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_floor_price_holds_when_the_selector_puts_a_bid_below_it_first() {
    let lab = CallLab::start().await;
    let above = lab.buyer("buyer_answers", 1).await;
    let below = lab.buyer("buyer_answers", 1).await;
    let above_target = lab.target(above.port, 20, 10).await;
    let below_target = lab.target(below.port, 20, 10).await;
    let above_bid = lab.bid(&above_target, 30_000_000, 0).await;
    let below_bid = lab.bid(&below_target, 5_000_000, 0).await;
    let selector = use_selector(&lab, test_guest("test-selector.wasm")).await;
    lab.update_campaign(json!({"floor_price_micros": 15_000_000}))
        .await;

    // Cheapest first, says the selector; the host drops it.
    lab.carrier("caller_hangs_up", 1, &["-d", "100"])
        .await
        .assert_ok();
    above.finish().await.assert_ok();
    assert!(
        below.kill().await.is_empty(),
        "a below-floor bid never rings"
    );
    let record = &lab.wait_for_records(1).await[0];
    assert_eq!(policy_outcomes(record, &selector), ["ok"]);
    assert_eq!(winner(record), Some(above_bid));
    assert_eq!(
        bid_fate(record, &below_bid),
        ("ineligible", Some("below_floor_price"))
    );
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_time_bids_in_time_can_win_and_late_or_malformed_ones_are_dropped_and_counted() {
    let lab = CallLab::start().await;
    let timely_buyer = lab.buyer("buyer_answers", 1).await;
    let late_buyer = lab.buyer("buyer_answers", 1).await;
    let static_buyer = lab.buyer("buyer_answers", 1).await;
    let static_target = lab.target(static_buyer.port, 20, 10).await;
    let static_bid = lab.bid(&static_target, 10_000_000, 0).await;
    let late = BidEndpoint::start(
        Duration::from_millis(600),
        200,
        r#"{"bid_amount_micros": 90000000}"#,
    )
    .await;
    let malformed = BidEndpoint::start(Duration::ZERO, 200, r#"{"bid_amount_micros": "#).await;
    let late_bidder = lab.new_bidder("Late", json!({"rtb_url": late.url})).await;
    lab.target_of(&late_bidder, late_buyer.port, json!({}))
        .await;
    let malformed_bidder = lab
        .new_bidder("Malformed", json!({"rtb_url": malformed.url}))
        .await;
    // The timely bidder names its target in its answer.
    let timely_bidder = lab.new_bidder("Timely", json!({})).await;
    let timely_target = lab
        .target_of(&timely_bidder, timely_buyer.port, json!({}))
        .await;
    let timely = BidEndpoint::start(
        Duration::from_millis(10),
        200,
        &json!({"bid_amount_micros": 40_000_000, "target_id": timely_target,
            "expires_in_s": 30, "min_duration_s": 0, "buyer_ref": "x-17"})
        .to_string(),
    )
    .await;
    let (status, body) = lab
        .api
        .call(
            "PUT",
            &format!("/v1/bidders/{timely_bidder}"),
            Some(&lab.bidder_key),
            Some(json!({"name": "Timely", "rtb_url": timely.url})),
        )
        .await;
    assert_eq!(status, 200, "{body}");

    lab.carrier("caller_hangs_up", 1, &["-d", "100"])
        .await
        .assert_ok();
    timely_buyer.finish().await.assert_ok();
    assert!(late_buyer.kill().await.is_empty(), "a late bid never rings");
    assert!(static_buyer.kill().await.is_empty());
    let record = &lab.wait_for_records(1).await[0];
    let timely_bid = format!("{timely_bidder}:rtb");
    assert_eq!(winner(record), Some(timely_bid.clone()));
    assert_eq!(
        record.winner.as_ref().map(|w| w.amount_micros),
        Some(40_000_000)
    );
    assert_eq!(bid_fate(record, &timely_bid), ("won", None));
    assert_eq!(
        bid_fate(record, &format!("{late_bidder}:rtb")),
        ("ineligible", Some("rtb_late"))
    );
    assert_eq!(
        bid_fate(record, &format!("{malformed_bidder}:rtb")),
        ("ineligible", Some("rtb_malformed"))
    );
    assert_eq!(
        bid_fate(record, &static_bid),
        ("lost", Some("earlier_bid_answered"))
    );

    // Every endpoint was asked once, in parallel, with the redacted offer.
    for endpoint in [&timely, &late, &malformed] {
        assert_eq!(endpoint.received().len(), 1);
    }
    let asked = &timely.received()[0];
    assert_eq!(asked["bidder_id"], timely_bidder.as_str());
    assert_eq!(asked["campaign_id"], lab.campaign_id.as_str());
    assert_eq!(asked["call_id"], record.id.as_str());
    assert_eq!(asked["caller"]["area_code"], "415");
    assert!(
        asked["deadline_ms"].as_u64().is_some_and(|ms| ms <= 100),
        "{asked}"
    );
    let national = CALLER.trim_start_matches("+1");
    assert!(
        !asked.to_string().contains(national),
        "no caller number: {asked}"
    );

    let metrics = lab.api.metrics().await;
    // Each bidder's id, and its name beside it.
    for (bidder, name, result) in [
        (&timely_bidder, "Timely", "bid"),
        (&late_bidder, "Late", "late"),
        (&malformed_bidder, "Malformed", "malformed"),
    ] {
        let line = format!(
            "plugboard_rtb_answers_total{{bidder=\"{bidder}\",bidder_name=\"{name}\",result=\"{result}\"}} 1"
        );
        assert!(metrics.contains(&line), "{line} in {metrics}");
    }
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_who_hangs_up_while_bidders_are_asked_is_never_routed() {
    let lab = CallLab::start().await;
    let buyer = lab.buyer("buyer_answers", 1).await;
    let slow = BidEndpoint::start(
        Duration::from_millis(1500),
        200,
        r#"{"bid_amount_micros": 30000000}"#,
    )
    .await;
    let bidder = lab.new_bidder("Slow", json!({"rtb_url": slow.url})).await;
    let target = lab.target_of(&bidder, buyer.port, json!({})).await;
    lab.update_campaign(json!({"early_ringback": true, "auction_timeout_ms": 3000}))
        .await;

    // 180 at once (early ringback), CANCEL 300 ms later: 487.
    lab.carrier("caller_cancels", 1, &[]).await.assert_ok();
    let record = lab.wait_for_records(1).await[0].clone();
    assert_eq!(record.outcome, host::model::CallOutcome::Abandoned);
    assert!(record.trace.legs.is_empty(), "{:?}", record.trace.legs);
    // The auction is still out with the policy worker, and says so.
    let pending = |count: u32| format!("plugboard_policy_worker_calls {count}\n");
    assert!(lab.api.state.metrics.render().contains(&pending(1)));
    // The answer comes in after the caller left: nobody rings.
    tokio::time::sleep(Duration::from_millis(1800)).await;
    assert!(lab.api.state.metrics.render().contains(&pending(0)));
    assert_eq!(slow.received().len(), 1, "the bidder was asked");
    assert!(
        buyer.kill().await.is_empty(),
        "nothing rang after the caller left"
    );
    assert_eq!(lab.ledger.active(&target), 0);
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_bidder_module_keeps_each_tenants_state_apart() {
    let lab = CallLab::start().await;
    let buyer = lab.buyer("buyer_answers", 1).await;
    // A shared policy (as the bundled examples are), used by two bidder tenants.
    let policy = host::model::Policy {
        id: "pol_shared_echo".to_owned(),
        tenant_id: "tnt_plugboard".to_owned(),
        name: "echo".to_owned(),
        world: host::model::World::Bidder,
        shared: true,
        created_at: 0,
    };
    let policies = &lab.api.state.policies;
    let version = policies
        .add_version(&policy, test_guest("echo-bidder.wasm"))
        .await
        .expect("added");
    let spec = host::lifecycle::DeploymentSpec {
        active: Some(version.version),
        canary: None,
        shadow: None,
        failure_mode: host::model::FailureMode::Skip,
        demotion: Default::default(),
        replay_gate: None,
    };
    policies.deploy(&policy, spec).await.expect("deployed");
    let (_, other_key) = lab.api.tenant("buyer2", "bidder").await;
    for key in [lab.bidder_key.clone(), other_key] {
        let bidder = lab
            .new_bidder_as(
                &key,
                "Shared module",
                json!({"strategy_policy_id": policy.id}),
            )
            .await;
        lab.target_as(&key, &bidder, buyer.port, json!({})).await;
    }

    lab.carrier("caller_hangs_up", 1, &["-d", "100"])
        .await
        .assert_ok();
    buyer.finish().await.assert_ok();
    let record = &lab.wait_for_records(1).await[0];
    let seen: Vec<String> = record
        .trace
        .policies
        .iter()
        .filter(|p| p.policy_id == policy.id)
        .map(|p| serde_json::to_value(&p.logs).expect("logs").to_string())
        .collect();
    assert_eq!(seen.len(), 2, "each bidder's module ran");
    for logs in &seen {
        assert!(
            logs.contains(r#"["seen","1"]"#),
            "each tenant's store saw its first offer: {logs}"
        );
    }
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bidder_whose_module_has_no_active_version_is_traced_and_counted() {
    let lab = CallLab::start().await;
    let static_buyer = lab.buyer("buyer_answers", 1).await;
    let static_target = lab.target(static_buyer.port, 20, 10).await;
    lab.bid(&static_target, 10_000_000, 0).await;
    // Uploaded, never activated.
    let bidder_key = lab.bidder_key.clone();
    let uploaded = lab
        .api
        .upload(&bidder_key, "bidder", test_guest("echo-bidder.wasm"))
        .await;
    let policy = tests::str_field(&uploaded, "id");
    let module_bidder = lab
        .new_bidder("Idle module", json!({"strategy_policy_id": policy}))
        .await;

    lab.carrier("caller_hangs_up", 1, &["-d", "100"])
        .await
        .assert_ok();
    static_buyer.finish().await.assert_ok();
    let record = &lab.wait_for_records(1).await[0];
    let trace = record
        .trace
        .policies
        .iter()
        .find(|p| p.policy_id == policy)
        .expect("the module's non-run is in the trace");
    assert_eq!(trace.outcome, "no_active_version");
    let (_, bidder) = lab
        .api
        .call(
            "GET",
            &format!("/v1/bidders/{module_bidder}"),
            Some(&bidder_key),
            None,
        )
        .await;
    assert_eq!(trace.tenant_id, tests::str_field(&bidder, "tenant_id"));
    let why = trace.error.as_deref().unwrap_or_default();
    assert!(
        why.contains(&module_bidder) && why.contains("did not bid"),
        "{why}"
    );
    let metrics = lab.api.metrics().await;
    assert!(
        metrics.contains(&format!(
            "plugboard_policy_invocations_total{{policy=\"{policy}\",policy_name=\"bidder\",version=\"\",source=\"active\",outcome=\"no_active_version\"}} 1"
        )),
        "{metrics}"
    );
    lab.stop().await;
}
