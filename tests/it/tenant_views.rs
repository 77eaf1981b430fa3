//! What each role sees of one real call, as a matrix: two marketers and three
//! bidders (a static bid, a strategy module, a real-time endpoint) whose
//! targets were all rung; every reader's `GET /v1/calls/{id}` and listing,
//! rendered as one line each and compared with the table of
//! `docs/visibility.md`.

use std::time::Duration;

use expect_test::expect;
use serde_json::{Value, json};
use tests::bid_endpoint::BidEndpoint;
use tests::call_lab::CallLab;
use tests::{example_policy, test_guest};

/// The pooled number the visitor was shown.
const POOLED: &str = "+18005550201";

/// One reader's view of the call on one line, ids replaced by labels.
fn render(view: &Value, labels: &[(String, &str)]) -> String {
    let present: Vec<&str> = [
        "tenant_id",
        "caller",
        "called",
        "winner",
        "answered_at_ms",
        "duration_s",
        "billable",
        "payout_micros",
    ]
    .into_iter()
    .filter(|field| view.get(*field).is_some())
    .collect();
    let trace = &view["trace"];
    let list = |field: &str, each: &dyn Fn(&Value) -> String| -> String {
        trace[field]
            .as_array()
            .map(|items| items.iter().map(each).collect::<Vec<_>>().join(" "))
            .unwrap_or_else(|| "absent".to_owned())
    };
    let bids = list("bids", &|b| {
        format!(
            "{}:{}",
            b["bidder_id"].as_str().unwrap_or("?"),
            b["status"].as_str().unwrap_or("?")
        )
    });
    let ring = list("ring_order", &|b| b.as_str().unwrap_or("?").to_owned());
    let legs = list("legs", &|l| {
        let uri = if l.get("uri").is_some() { "+uri" } else { "" };
        format!(
            "{}:{}{uri}",
            l["target_id"].as_str().unwrap_or("fallback"),
            l["result"].as_str().unwrap_or("?")
        )
    });
    let policies = list("policies", &|p| {
        let logs = p["logs"].as_array().map_or(0, Vec::len);
        format!("{}({} logs)", p["policy_id"].as_str().unwrap_or("?"), logs)
    });
    let attribution = trace["attribution"].as_object().map_or_else(
        || "absent".to_owned(),
        |names| names.keys().cloned().collect::<Vec<_>>().join(" "),
    );
    let mut line = format!(
        "shows [{}] bids [{bids}] ring [{ring}] legs [{legs}] policies [{policies}] attribution [{attribution}]",
        present.join(" ")
    );
    for (id, label) in labels {
        line = line.replace(id.as_str(), label);
    }
    line
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_role_sees_only_its_own_part_of_a_call() {
    let lab = CallLab::start().await;
    let api = &lab.api;
    let (_, rival_marketer) = api.tenant("rival-marketer", "marketer").await;
    api.campaign(
        &rival_marketer,
        json!({"name": "roofing", "numbers": ["+18005550777"]}),
    )
    .await;
    let (_, module_key) = api.tenant("buyer2", "bidder").await;
    let (_, real_time_key) = api.tenant("buyer3", "bidder").await;

    // The real-time bidder's and the module's targets are busy; the static
    // bid's answers: all three are rung, in that order.
    let real_time_buyer = lab.buyer("buyer_busy", 1).await;
    let module_buyer = lab.buyer("buyer_busy", 1).await;
    let static_buyer = lab.buyer("buyer_answers", 1).await;
    let static_target = lab.target(static_buyer.port, 20, 10).await;
    let static_bid = lab.bid(&static_target, 25_000_000, 0).await;

    let (module_policy, module_bidder) = lab
        .module_bidder(&module_key, "Buyer Two", test_guest("echo-bidder.wasm"))
        .await;
    let module_target = lab
        .target_as(&module_key, &module_bidder, module_buyer.port, json!({}))
        .await;

    let real_time_bidder = lab
        .new_bidder_as(&real_time_key, "Buyer Three", json!({}))
        .await;
    let real_time_target = lab
        .target_as(
            &real_time_key,
            &real_time_bidder,
            real_time_buyer.port,
            json!({}),
        )
        .await;
    let endpoint = BidEndpoint::start(
        Duration::from_millis(5),
        200,
        &json!({"bid_amount_micros": 70_000_000, "target_id": real_time_target, "min_duration_s": 0})
            .to_string(),
    )
    .await;
    let (status, body) = api
        .call(
            "PUT",
            &format!("/v1/bidders/{real_time_bidder}"),
            Some(&real_time_key),
            Some(json!({"name": "Buyer Three", "rtb_url": endpoint.url})),
        )
        .await;
    assert_eq!(status, 200, "{body}");

    let (scorer, _) = lab
        .deploy_new(
            &lab.marketer_key,
            "scorer",
            example_policy("geo-history-scorer"),
            "fallback",
        )
        .await;
    // A deadline no loaded machine misses: the auction ends when the answer is in.
    lab.update_campaign(
        json!({"scorer_policy_id": scorer, "shared_attribution_keys": ["source"],
        "auction_timeout_ms": 2000}),
    )
    .await;
    lab.visitor_on(
        POOLED,
        json!({"source": "google-ads", "gclid": "Cj0KCQ-private"}),
    )
    .await;

    lab.carrier_to(POOLED, "caller_hangs_up", 1, &["-d", "100"])
        .await
        .assert_ok();
    static_buyer.finish().await.assert_ok();
    module_buyer.finish().await.assert_ok();
    real_time_buyer.finish().await.assert_ok();
    let record = &lab.wait_for_records(1).await[0];

    let labels = vec![
        (format!("{real_time_bidder}:rtb"), "RT-BID"),
        (format!("{module_bidder}:module"), "MODULE-BID"),
        (static_bid.clone(), "STATIC-BID"),
        (real_time_bidder.clone(), "RT"),
        (module_bidder.clone(), "MODULE"),
        (lab.bidder_id.clone(), "STATIC"),
        (real_time_target.clone(), "RT-TARGET"),
        (module_target.clone(), "MODULE-TARGET"),
        (static_target.clone(), "STATIC-TARGET"),
        (module_policy.clone(), "module-policy"),
        (scorer.clone(), "scorer"),
    ];
    let readers = [
        ("operator", api.operator_key.clone()),
        ("marketer", lab.marketer_key.clone()),
        ("other marketer", rival_marketer.clone()),
        ("static bidder (won)", lab.bidder_key.clone()),
        ("module bidder", module_key.clone()),
        ("real-time bidder", real_time_key.clone()),
    ];
    let mut table = String::new();
    for (reader, key) in &readers {
        let (status, view) = api
            .call("GET", &format!("/v1/calls/{}", record.id), Some(key), None)
            .await;
        let (listed, list) = api.call("GET", "/v1/calls", Some(key), None).await;
        assert_eq!(listed, 200, "{list}");
        let calls = list["calls"].as_array().cloned().unwrap_or_default();
        let line = match status {
            200 => {
                assert_eq!(
                    calls,
                    std::slice::from_ref(&view),
                    "{reader}: the listing shows the same view"
                );
                render(&view, &labels)
            }
            404 => {
                assert!(calls.is_empty(), "{reader} lists no call: {list}");
                "404, lists nothing".to_owned()
            }
            other => panic!("{reader}: {other} {view}"),
        };
        table.push_str(&format!("{reader}: {line}\n"));
    }
    expect![[r#"
        operator: shows [tenant_id caller called winner answered_at_ms duration_s billable payout_micros] bids [RT:lost MODULE:lost STATIC:won] ring [RT-BID MODULE-BID STATIC-BID] legs [RT-TARGET:busy+uri MODULE-TARGET:busy+uri STATIC-TARGET:answered+uri] policies [scorer(1 logs) module-policy(1 logs)] attribution [gclid source]
        marketer: shows [tenant_id caller called winner answered_at_ms duration_s billable payout_micros] bids [RT:lost MODULE:lost STATIC:won] ring [RT-BID MODULE-BID STATIC-BID] legs [RT-TARGET:busy MODULE-TARGET:busy STATIC-TARGET:answered] policies [scorer(1 logs)] attribution [gclid source]
        other marketer: 404, lists nothing
        static bidder (won): shows [caller winner answered_at_ms duration_s billable payout_micros] bids [STATIC:won] ring [STATIC-BID] legs [STATIC-TARGET:answered+uri] policies [] attribution [source]
        module bidder: shows [] bids [MODULE:lost] ring [MODULE-BID] legs [MODULE-TARGET:busy+uri] policies [module-policy(1 logs)] attribution [source]
        real-time bidder: shows [] bids [RT:lost] ring [RT-BID] legs [RT-TARGET:busy+uri] policies [] attribution [source]
    "#]].assert_eq(&table);
    lab.stop().await;
}

#[test]
fn the_visibility_docs_hold_the_table_the_code_applies() {
    tests::generated_docs::assert_section(
        "visibility.md",
        "the table",
        &host::api::view::table_markdown(),
    );
}
