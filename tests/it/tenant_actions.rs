//! What one tenant may do to another, each test a finding of the hostile
//! tenants' audit: bids that outlived their campaign's access, bids naming
//! a rival's target, uploads that skipped the world check, bids without
//! bounds, URIs that break the INVITE, errors that name others' objects or
//! are not JSON, and a data directory others could read.

use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};
use tests::bid_endpoint::BidEndpoint;
use tests::call_lab::{CallLab, bid_fate};
use tests::{TestApi, assert_private, example_policy, plugboard_bin, str_field, test_guest};

fn winning_bid(lab_record: &host::model::CallRecord) -> Option<String> {
    lab_record.winner.as_ref().map(|w| w.bid_id.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_campaign_closed_to_a_bidder_no_longer_rings_its_earlier_bid() {
    let lab = CallLab::start().await;
    let shut_out = lab.buyer("buyer_answers", 1).await;
    let allowed = lab.buyer("buyer_answers", 1).await;
    let early_target = lab.target(shut_out.port, 20, 10).await;
    let early_bid = lab.bid(&early_target, 50_000_000, 0).await;
    let (other_tenant, other_key) = lab.api.tenant("buyer2", "bidder").await;
    let other_bidder = lab.new_bidder_as(&other_key, "Buyer Two", json!({})).await;
    let other_target = lab
        .target_as(&other_key, &other_bidder, allowed.port, json!({}))
        .await;
    let (status, other_bid) = lab
        .api
        .call(
            "POST",
            "/v1/bids",
            Some(&other_key),
            Some(
                json!({"campaign_id": lab.campaign_id, "target_id": other_target,
                "amount_micros": 10_000_000, "min_duration_s": 0}),
            ),
        )
        .await;
    assert_eq!(status, 201, "{other_bid}");
    lab.update_campaign(json!({"bidder_access": {"kind": "only", "tenants": [other_tenant]}}))
        .await;

    lab.carrier("caller_hangs_up", 1, &["-d", "100"])
        .await
        .assert_ok();
    allowed.finish().await.assert_ok();
    assert!(
        shut_out.kill().await.is_empty(),
        "the bidder the campaign closed to is never rung"
    );
    let record = &lab.wait_for_records(1).await[0];
    assert_eq!(winning_bid(record), Some(str_field(&other_bid, "id")));
    assert_eq!(
        bid_fate(record, &early_bid),
        ("ineligible", Some("bidder_not_allowed"))
    );
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_module_or_real_time_answer_naming_a_rivals_target_never_rings_it() {
    let lab = CallLab::start().await;
    let victim = lab.buyer("buyer_answers", 1).await;
    // The victim's own bid names its target first: the case the old check skipped.
    let victim_target = lab.target(victim.port, 20, 10).await;
    let victim_bid = lab.bid(&victim_target, 10_000_000, 0).await;

    let (_, module_key) = lab.api.tenant("module-thief", "bidder").await;
    let (_, module_bidder) = lab
        .module_bidder(&module_key, "Thief One", test_guest("echo-bidder.wasm"))
        .await;
    let (_, rtb_key) = lab.api.tenant("rtb-thief", "bidder").await;
    let endpoint = BidEndpoint::start(
        Duration::ZERO,
        200,
        &json!({"bid_amount_micros": 90_000_000, "target_id": victim_target, "min_duration_s": 0})
            .to_string(),
    )
    .await;
    let rtb_bidder = lab
        .new_bidder_as(&rtb_key, "Thief Two", json!({"rtb_url": endpoint.url}))
        .await;

    // The echo module bids for the target the shared `target` attribution names.
    lab.update_campaign(json!({"shared_attribution_keys": ["target"], "auction_timeout_ms": 2000}))
        .await;
    let pooled = "+18005550202";
    lab.visitor_on(pooled, json!({"target": victim_target}))
        .await;

    lab.carrier_to(pooled, "caller_hangs_up", 1, &["-d", "100"])
        .await
        .assert_ok();
    let victim_saw = victim.finish().await;
    victim_saw.assert_ok();
    let record = &lab.wait_for_records(1).await[0];
    assert_eq!(winning_bid(record), Some(victim_bid.clone()));
    assert_eq!(
        endpoint.received().len(),
        1,
        "the real-time bidder was asked"
    );
    for thief in [
        format!("{module_bidder}:module"),
        format!("{rtb_bidder}:rtb"),
    ] {
        assert_eq!(
            bid_fate(record, &thief),
            ("ineligible", Some("target_not_owned")),
            "{thief}"
        );
    }
    assert_eq!(
        record.trace.ring_order,
        [victim_bid],
        "the victim's target rang once, for its own bid"
    );
    lab.stop().await;
}

#[tokio::test]
async fn bytes_compiled_before_are_checked_against_the_world_they_are_uploaded_as() {
    let api = TestApi::new().await;
    let (_, first) = api.tenant("first", "marketer").await;
    let (_, second) = api.tenant("second", "marketer").await;
    let scorer = example_policy("geo-history-scorer");
    api.upload(&first, "scorer", scorer.clone()).await;
    for key in [&first, &second] {
        let (status, body) = api
            .raw(
                "POST",
                "/v1/policies?world=selector",
                Some(key),
                Some(scorer.clone()),
                "application/wasm",
            )
            .await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (422, Some("policy.wrong_world")),
            "{body}"
        );
    }
}

#[tokio::test]
async fn bids_stay_within_bounds_that_make_them_payable() {
    let lab = CallLab::start().await;
    let target = lab.target(5070, 20, 10).await;
    let bid = |fields: Value| {
        let mut body = json!({"campaign_id": lab.campaign_id, "target_id": target});
        if let (Some(b), Some(f)) = (body.as_object_mut(), fields.as_object()) {
            b.extend(f.clone());
        }
        body
    };
    for refused in [
        json!({"amount_micros": u64::MAX, "min_duration_s": 0}),
        json!({"amount_micros": host::auction::MAX_AMOUNT_MICROS + 1}),
        json!({"amount_micros": 0}),
        json!({"amount_micros": 25_000_000, "min_duration_s": u32::MAX}),
        json!({"amount_micros": 25_000_000, "min_duration_s": host::auction::MAX_MIN_DURATION_S + 1}),
    ] {
        let (status, body) = lab
            .api
            .call(
                "POST",
                "/v1/bids",
                Some(&lab.bidder_key),
                Some(bid(refused.clone())),
            )
            .await;
        assert_eq!(status, 422, "{refused} → {body}");
        assert_eq!(body["error"]["code"], "request.invalid_field");
    }
    let (status, body) = lab
        .api
        .call(
            "POST",
            "/v1/bids",
            Some(&lab.bidder_key),
            Some(bid(
                json!({"amount_micros": host::auction::MAX_AMOUNT_MICROS,
                "min_duration_s": host::auction::MAX_MIN_DURATION_S}),
            )),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(lab.api.state.store.bids().expect("bids").len(), 1);
    lab.stop().await;
}

#[tokio::test]
async fn uris_that_would_break_the_invite_or_send_it_elsewhere_are_refused() {
    let lab = CallLab::start().await;
    let targets = format!("/v1/bidders/{}/targets", lab.bidder_id);
    for uri in [
        "sip:inj1>;evil=1@127.0.0.1",
        "sip:a@127.0.0.1\r\nX-Evil: 1",
        "sip:a,b@127.0.0.1:5070",
        "sip:a@127.0.0.1:5070?Route=%3Csip:evil%3E",
        "sip:a@10.0.0.9@127.0.0.1",
        "sip:a@127.0.0.1;maddr=10.0.0.9",
        "sip:a@2130706433:5070",
        "sip:a@127.1:5070",
        "sip:a:password@127.0.0.1",
        "sip:a@127.0.0.1:5070\u{0}",
    ] {
        let (status, body) = lab
            .api
            .call(
                "POST",
                &targets,
                Some(&lab.bidder_key),
                Some(json!({"uri": uri})),
            )
            .await;
        assert_eq!(status, 422, "target {uri:?} → {body}");
        let (status, body) = lab
            .api
            .call(
                "PATCH",
                &format!("/v1/campaigns/{}", lab.campaign_id),
                Some(&lab.marketer_key),
                Some(json!({"fallback_target": uri})),
            )
            .await;
        assert_eq!(status, 422, "fallback {uri:?} → {body}");
    }
    for url in [
        "http://bids.example.com/\r\nX-Evil: 1",
        "http://bids.example.com/a b",
        "http://user:secret@bids.example.com/",
        "gopher://bids.example.com/",
    ] {
        let (status, body) = lab
            .api
            .call(
                "POST",
                "/v1/bidders",
                Some(&lab.bidder_key),
                Some(json!({"name": "x", "rtb_url": url})),
            )
            .await;
        assert_eq!(status, 422, "rtb_url {url:?} → {body}");
    }
    assert_eq!(lab.api.state.store.targets().expect("targets").len(), 0);
    assert_eq!(lab.api.state.store.bidders().expect("bidders").len(), 1);
    lab.stop().await;
}

#[tokio::test]
async fn errors_name_no_other_tenants_objects_and_are_json_on_every_status() {
    let api = TestApi::new().await;
    let (_, first) = api.tenant("first", "marketer").await;
    let (_, second) = api.tenant("second", "marketer").await;
    let theirs = api
        .campaign(&first, json!({"name": "a", "numbers": ["+18005550100"]}))
        .await;
    let (status, body) = api
        .call(
            "POST",
            "/v1/campaigns",
            Some(&second),
            Some(json!({"name": "b", "numbers": ["+18005550100"]})),
        )
        .await;
    assert_eq!(status, 409);
    assert_eq!(body["error"]["code"], "number.taken");
    let their_id = str_field(&theirs, "id");
    assert!(!body.to_string().contains(&their_id), "{body}");

    let long = format!("/v1/campaigns?x={}", "a".repeat(9000));
    for (method, path, status, code) in [
        ("GET", "/v1/no-such-route", 404, "route.not_found"),
        ("GET", "/nothing/here", 404, "route.not_found"),
        ("DELETE", "/v1/tenants", 405, "route.method_not_allowed"),
        ("PATCH", "/v1/campaigns", 405, "route.method_not_allowed"),
        ("GET", long.as_str(), 414, "request.uri_too_long"),
        ("GET", "/v1/calls/%FF%FE", 400, "request.invalid"),
    ] {
        let (got, body) = api.call(method, path, Some(&first), None).await;
        assert_eq!(
            (got, body["error"]["code"].as_str()),
            (status, Some(code)),
            "{method} {path}: {body}"
        );
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
    }
}

#[test]
fn the_data_directory_is_readable_by_its_user_alone() {
    let parent = tempfile::tempdir().expect("temp dir");
    let dir = parent.path().join("fresh");
    let bootstrap = Command::new(plugboard_bin())
        .args(["admin", "bootstrap", "--data-dir"])
        .arg(&dir)
        .output()
        .expect("bootstrap runs");
    assert!(bootstrap.status.success(), "{bootstrap:?}");
    assert_private(&dir);

    // Run again (as `cargo xtask serve` does on every start), it keeps the
    // keys and says so in the words xtask looks for.
    let again = Command::new(plugboard_bin())
        .args(["admin", "bootstrap", "--data-dir"])
        .arg(&dir)
        .output()
        .expect("bootstrap runs");
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("already bootstrapped"),
        "{again:?}"
    );
}
