//! Call records through the API (filters, paging, visibility, the trace),
//! the caller-history index, and marketplace figures checked against the
//! records they were computed from.

use serde_json::json;
use tests::call_lab::CallLab;
use tests::{TestApi, call_record, str_field};

struct Setup {
    api: TestApi,
    marketer: String,
    buyer: String,
    other_buyer: String,
    campaign: host::model::Campaign,
    winner: host::model::Winner,
}

async fn setup() -> Setup {
    let api = TestApi::new().await;
    let (_, marketer) = api.tenant("acme", "marketer").await;
    let (buyer_tenant, buyer) = api.tenant("buyer", "bidder").await;
    let (_, other_buyer) = api.tenant("other", "bidder").await;
    let c = api
        .campaign(
            &marketer,
            json!({"name": "solar", "numbers": ["+18005550100"]}),
        )
        .await;
    let campaign = api
        .state
        .store
        .campaign(&str_field(&c, "id"))
        .expect("store")
        .expect("campaign");
    let winner = host::model::Winner {
        bid_id: "bid_1".into(),
        bidder_id: "bdr_1".into(),
        tenant_id: buyer_tenant,
        target_id: "tgt_1".into(),
        amount_micros: 25_000_000,
    };
    Setup {
        api,
        marketer,
        buyer,
        other_buyer,
        campaign,
        winner,
    }
}

#[tokio::test]
async fn calls_are_listed_with_filters_and_pages_and_shown_to_who_may_see_them() {
    let s = setup().await;
    let base = 1_795_000_000_000;
    for i in 0..7 {
        let winner = (i % 2 == 0).then(|| s.winner.clone());
        let record = call_record(
            &format!("call_{i}"),
            &s.campaign,
            "+14155550123",
            base + i * 60_000,
            50 + i as u8,
            winner,
            120,
        );
        s.api.state.store.record_call(&record).expect("stored");
    }

    let (status, page) = s
        .api
        .call(
            "GET",
            &format!("/v1/calls?campaign_id={}&limit=3", s.campaign.id),
            Some(&s.marketer),
            None,
        )
        .await;
    assert_eq!(status, 200, "{page}");
    let ids: Vec<&str> = page["calls"]
        .as_array()
        .expect("calls")
        .iter()
        .filter_map(|c| c["id"].as_str())
        .collect();
    assert_eq!(ids, ["call_0", "call_1", "call_2"]);
    let cursor = str_field(&page, "next_cursor");
    let (_, next) = s
        .api
        .call(
            "GET",
            &format!("/v1/calls?limit=3&cursor={cursor}"),
            Some(&s.marketer),
            None,
        )
        .await;
    let ids: Vec<&str> = next["calls"]
        .as_array()
        .expect("calls")
        .iter()
        .filter_map(|c| c["id"].as_str())
        .collect();
    assert_eq!(ids, ["call_3", "call_4", "call_5"]);

    let (_, answered) = s
        .api
        .call("GET", "/v1/calls?outcome=answered", Some(&s.marketer), None)
        .await;
    assert_eq!(answered["calls"].as_array().map(Vec::len), Some(4));
    let since = (base + 3 * 60_000) / 1000;
    let until = (base + 5 * 60_000) / 1000;
    let (_, window) = s
        .api
        .call(
            "GET",
            &format!("/v1/calls?since={since}&until={until}"),
            Some(&s.marketer),
            None,
        )
        .await;
    let ids: Vec<&str> = window["calls"]
        .as_array()
        .expect("calls")
        .iter()
        .filter_map(|c| c["id"].as_str())
        .collect();
    assert_eq!(ids, ["call_3", "call_4"]);
    assert_eq!(window["next_cursor"], json!(null));

    // One call, with the fields the quickstart names and the trace.
    let (status, call) = s
        .api
        .call("GET", "/v1/calls/call_0", Some(&s.marketer), None)
        .await;
    assert_eq!(status, 200);
    for field in [
        "outcome",
        "quality",
        "winner",
        "duration_s",
        "billable",
        "payout_micros",
        "trace",
    ] {
        assert!(call.get(field).is_some(), "{field} missing from {call}");
    }
    assert_eq!(
        (call["billable"].clone(), call["payout_micros"].clone()),
        (json!(true), json!(25_000_000))
    );
    assert_eq!(call["trace"]["bids"].as_array().map(Vec::len), Some(2));

    // The winning bidder sees its calls and only its own bid; others see nothing.
    let (_, won) = s.api.call("GET", "/v1/calls", Some(&s.buyer), None).await;
    assert_eq!(won["calls"].as_array().map(Vec::len), Some(4));
    let (_, mine) = s
        .api
        .call("GET", "/v1/calls/call_0", Some(&s.buyer), None)
        .await;
    assert_eq!(mine["trace"]["bids"].as_array().map(Vec::len), Some(1));
    let (status, _) = s
        .api
        .call("GET", "/v1/calls/call_1", Some(&s.buyer), None)
        .await;
    assert_eq!(status, 404, "a call the bidder did not win");
    let (status, _) = s
        .api
        .call("GET", "/v1/calls/call_0", Some(&s.other_buyer), None)
        .await;
    assert_eq!(status, 404);
    let (_, none) = s
        .api
        .call("GET", "/v1/calls", Some(&s.other_buyer), None)
        .await;
    assert_eq!(none["calls"], json!([]));

    let (status, bad) = s
        .api
        .call("GET", "/v1/calls?limit=0", Some(&s.marketer), None)
        .await;
    assert_eq!(
        (status, bad["error"]["code"].clone()),
        (400, json!("request.invalid_query"))
    );
}

#[tokio::test]
async fn recording_a_call_updates_the_callers_history() {
    let s = setup().await;
    let store = &s.api.state.store;
    assert_eq!(
        store.caller_stats("+14155550123").expect("stats"),
        Default::default()
    );
    store
        .record_call(&call_record(
            "c1",
            &s.campaign,
            "+14155550123",
            1_795_000_000_000,
            70,
            Some(s.winner.clone()),
            200,
        ))
        .expect("stored");
    store
        .record_call(&call_record(
            "c2",
            &s.campaign,
            "+14155550123",
            1_795_000_600_000,
            70,
            None,
            0,
        ))
        .expect("stored");
    let stats = store.caller_stats("+14155550123").expect("stats");
    assert_eq!(
        (
            stats.calls_seen,
            stats.last_seen_unix_seconds,
            stats.conversions
        ),
        (2, Some(1_795_000_600), 1)
    );
}

#[tokio::test]
async fn marketplace_figures_match_the_call_records() {
    let s = setup().await;
    let now_ms = host::clock::unix_now() * 1000;
    // 6 recent calls: qualities 15, 35, 55, 75, 95, 100; answered: 3 (durations 60, 120, 300),
    // billable (>= 90 s): 2. One old call outside the window.
    let plan = [
        (15, None, 0),
        (35, Some(60), 60),
        (55, Some(120), 120),
        (75, None, 0),
        (95, Some(300), 300),
        (100, None, 0),
    ];
    for (i, (quality, answered, duration)) in plan.into_iter().enumerate() {
        let winner = answered.map(|_| s.winner.clone());
        let record = call_record(
            &format!("m{i}"),
            &s.campaign,
            "+14155550999",
            now_ms - 3_600_000 + i as i64,
            quality,
            winner,
            duration,
        );
        s.api.state.store.record_call(&record).expect("stored");
    }
    let old = call_record(
        "old",
        &s.campaign,
        "+1",
        now_ms - 40 * 86_400_000,
        5,
        None,
        0,
    );
    s.api.state.store.record_call(&old).expect("stored");

    let (status, market) = s
        .api
        .call("GET", "/v1/marketplace", Some(&s.buyer), None)
        .await;
    assert_eq!(status, 200, "{market}");
    let solar = &market[0];
    assert_eq!(solar["campaign_id"], json!(s.campaign.id));
    assert_eq!(solar["calls"], json!(6));
    assert_eq!(
        solar["quality_histogram"],
        json!([0, 1, 0, 1, 0, 1, 0, 1, 0, 2])
    );
    assert_eq!(solar["answer_rate"], json!(0.5));
    assert_eq!(solar["average_duration_s"], json!(160.0));
    assert_eq!(solar["conversion_rate"], json!(2.0 / 3.0));
    let (status, _) = s
        .api
        .call("GET", "/v1/marketplace", Some(&s.marketer), None)
        .await;
    assert_eq!(status, 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn marketplace_figures_of_real_calls_match_their_records() {
    let lab = CallLab::start().await;
    let answering = lab.buyer("buyer_answers", 3).await;
    let busy = lab.buyer("buyer_busy", 2).await;
    let answering_target = lab.target(answering.port, 20, 10).await;
    let busy_target = lab.target(busy.port, 20, 10).await;
    let answering_bid = lab
        .bid_on(&lab.campaign_id, &answering_target, 20_000_000, 0, 1)
        .await;
    // Two calls talk over a second (billable), one hangs up at once (not).
    lab.carrier("caller_hangs_up", 2, &["-d", "1100", "-l", "1"])
        .await
        .assert_ok();
    lab.carrier("caller_hangs_up", 1, &["-d", "100"])
        .await
        .assert_ok();
    answering.finish().await.assert_ok();
    // Then the only bid is a busy target's: two calls routed, not answered.
    let (status, _) = lab
        .api
        .call(
            "DELETE",
            &format!("/v1/bids/{answering_bid}"),
            Some(&lab.bidder_key),
            None,
        )
        .await;
    assert_eq!(status, 204);
    lab.bid(&busy_target, 20_000_000, 0).await;
    lab.carrier("caller_refused", 2, &["-l", "1"])
        .await
        .assert_ok();
    busy.finish().await.assert_ok();
    lab.wait_for_records(5).await;

    // The records, as the marketer reads them…
    let (status, listed) = lab
        .api
        .call("GET", "/v1/calls", Some(&lab.marketer_key), None)
        .await;
    assert_eq!(status, 200, "{listed}");
    let calls = listed["calls"].as_array().expect("calls");
    assert_eq!(calls.len(), 5);
    let answered: Vec<&serde_json::Value> = calls
        .iter()
        .filter(|c| c["outcome"] == "answered")
        .collect();
    let billable = answered.iter().filter(|c| c["billable"] == true).count();
    let talk: f64 = answered
        .iter()
        .map(|c| c["duration_s"].as_f64().expect("duration"))
        .sum();
    let mut histogram = [0u64; 10];
    for call in calls {
        let quality = call["quality"].as_u64().expect("quality");
        histogram[usize::try_from((quality / 10).min(9)).expect("small")] += 1;
    }
    assert_eq!((answered.len(), billable), (3, 2));

    // … and the marketplace the bidder reads, computed from them.
    let (status, market) = lab
        .api
        .call("GET", "/v1/marketplace", Some(&lab.bidder_key), None)
        .await;
    assert_eq!(status, 200, "{market}");
    let solar = &market[0];
    assert_eq!(solar["campaign_id"], json!(lab.campaign_id));
    assert_eq!(solar["calls"], json!(5));
    assert_eq!(solar["quality_histogram"], json!(histogram));
    assert_eq!(solar["answer_rate"], json!(3.0 / 5.0));
    assert_eq!(solar["average_duration_s"], json!(talk / 3.0));
    assert_eq!(solar["conversion_rate"], json!(2.0 / 3.0));
    lab.stop().await;
}
