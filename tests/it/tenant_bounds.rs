//! What one tenant's objects and policies may cost the others: every string
//! a policy hands the host and every call record is bounded, and a target's
//! name that never resolves fails that target alone (trust between tenants,
//! part 2).

use host::model::CallOutcome;
use serde_json::json;
use tests::call_lab::{CallLab, never_answers};
use tests::{TestApi, str_field};

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_whose_name_never_resolves_fails_alone_while_other_calls_go_on() {
    let lab = CallLab::with_dns(never_answers()).await;
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
    let (buyer, _) = lab.bidding_buyer("buyer_answers", 1).await;

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

/// A TCP connection from `source` to `to`, or none if it cannot be made.
async fn connect_from(source: [u8; 4], to: std::net::SocketAddr) -> Option<tokio::net::TcpStream> {
    let socket = tokio::net::TcpSocket::new_v4().ok()?;
    socket.bind((source, 0).into()).ok()?;
    socket.connect(to).await.ok()
}

/// Whether the peer closes `stream` soon (within a second) without a word.
async fn closed_at_once(stream: &mut tokio::net::TcpStream) -> bool {
    use tokio::io::AsyncReadExt;
    let mut byte = [0u8; 1];
    matches!(
        tokio::time::timeout(std::time::Duration::from_secs(1), stream.read(&mut byte)).await,
        Ok(Ok(0) | Err(_))
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_idle_connections_takes_only_its_own_budget() {
    let lab = CallLab::start().await;
    let per_source = host::runtime::budget::SIP_TCP.per_source;
    let mut flood = Vec::new();
    for _ in 0..per_source + 20 {
        flood.push(
            connect_from([127, 0, 0, 1], lab.sip)
                .await
                .expect("connect"),
        );
    }
    // The places past the source's share are closed at once and counted.
    let line = "plugboard_connections_refused_total{listener=\"sip_tcp\"} 20";
    let mut metrics = String::new();
    for _ in 0..100 {
        metrics = lab.api.metrics().await;
        if metrics.contains(line) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(metrics.contains(line), "{line} in {metrics}");
    assert!(closed_at_once(flood.last_mut().expect("one")).await);
    assert!(!closed_at_once(&mut flood[0]).await, "those admitted stay");

    // Another source still has SIP's budget; calls over UDP go on; and the
    // HTTP API, on a budget of its own, answers.
    let mut other = connect_from([127, 0, 0, 2], lab.sip)
        .await
        .expect("connect");
    assert!(!closed_at_once(&mut other).await);
    let (buyer, _) = lab.bidding_buyer("buyer_answers", 1).await;
    lab.carrier("caller_hangs_up", 1, &["-d", "100"])
        .await
        .assert_ok();
    buyer.finish().await.assert_ok();

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let http = listener.local_addr().expect("address");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(host::runtime::serve_http(
        listener,
        host::api::router(lab.api.state.clone()),
        async move {
            let _ = stopped.await;
        },
    ));
    let http_share = host::runtime::budget::HTTP.per_source;
    let mut idle = Vec::new();
    for _ in 0..http_share {
        idle.push(connect_from([127, 0, 0, 1], http).await.expect("connect"));
    }
    let mut over = connect_from([127, 0, 0, 1], http).await.expect("connect");
    assert!(
        closed_at_once(&mut over).await,
        "past the source's share of the API"
    );
    let mut healthz = connect_from([127, 0, 0, 3], http).await.expect("connect");
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    healthz
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let mut answer = String::new();
    healthz.read_to_string(&mut answer).await.expect("read");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let _ = stop.send(());
    drop(idle);
    server.await.expect("task").expect("served");
    drop(flood);
    lab.stop().await;
}

#[tokio::test]
async fn every_kind_a_tenant_creates_stops_at_its_quota_and_stores_nothing_more() {
    use host::access::quota::Kind;
    let lab = CallLab::start().await;
    let api = &lab.api;
    let quota_refusal = |status: u16, body: &serde_json::Value| {
        status == 409 && body["error"]["code"] == "quota.exceeded"
    };
    let target = lab.target(5070, 20, 10).await;
    for _ in 1..Kind::Bids.limit() {
        lab.bid(&target, 1_000_000, 0).await;
    }
    lab.bid(&target, 1_000_000, 0).await;
    let (status, body) = api
        .call(
            "POST",
            "/v1/bids",
            Some(&lab.bidder_key),
            Some(json!({"campaign_id": lab.campaign_id, "target_id": target, "amount_micros": 1})),
        )
        .await;
    assert!(quota_refusal(status, &body), "{status} {body}");
    assert_eq!(
        api.state.store.bids().expect("bids").len(),
        Kind::Bids.limit()
    );

    // Another tenant's quota is its own.
    let (_, other) = api.tenant("buyer2", "bidder").await;
    let other_bidder = lab.new_bidder_as(&other, "Two", json!({})).await;
    let other_target = lab.target_as(&other, &other_bidder, 5071, json!({})).await;
    let (status, body) = api
        .call(
            "POST",
            "/v1/bids",
            Some(&other),
            Some(json!({"campaign_id": lab.campaign_id, "target_id": other_target, "amount_micros": 1})),
        )
        .await;
    assert_eq!(status, 201, "{body}");

    let too_many: Vec<String> = (0..=Kind::Numbers.limit())
        .map(|i| format!("+1800{:07}", 1_000_000 + i))
        .collect();
    let (status, body) = api
        .call(
            "POST",
            "/v1/campaigns",
            Some(&lab.marketer_key),
            Some(json!({"name": "big", "numbers": too_many})),
        )
        .await;
    assert!(quota_refusal(status, &body), "{status} {body}");
    let (status, body) = api
        .call(
            "PUT",
            &format!("/v1/campaigns/{}/pool", lab.campaign_id),
            Some(&lab.marketer_key),
            Some(json!({"numbers": too_many})),
        )
        .await;
    assert!(quota_refusal(status, &body), "{status} {body}");
    assert_eq!(api.state.store.campaigns().expect("campaigns").len(), 1);
    lab.stop().await;
}

#[tokio::test]
async fn a_key_past_its_request_rate_is_refused_while_other_keys_are_served() {
    let api = tests::TestApi::new().await;
    let (_, busy) = api.tenant("busy", "marketer").await;
    let (_, quiet) = api.tenant("quiet", "marketer").await;
    let mut refused = None;
    for sent in 0..5_000 {
        let (status, body) = api.call("GET", "/v1/campaigns", Some(&busy), None).await;
        if status == 429 {
            refused = Some((sent, body));
            break;
        }
        assert_eq!(status, 200, "{body}");
    }
    let (sent, body) = refused.expect("the key's rate is bounded");
    assert!(
        sent as f64 >= host::api::gate::REQUEST_BURST,
        "the burst is served first: {sent}"
    );
    assert_eq!(body["error"]["code"], "rate.limited");
    let (status, _) = api.call("GET", "/v1/campaigns", Some(&quiet), None).await;
    assert_eq!(status, 200, "another tenant's key has its own rate");
}

#[tokio::test]
async fn a_tenants_policies_share_one_bound_on_key_value_bytes() {
    use host::access::quota::KV_BYTES_PER_TENANT;
    use host::model::{KvRefusal, MAX_VALUE_BYTES, PolicyKv};
    use host::store::Store;
    let api = TestApi::new().await;
    let store = &api.state.store;
    let value = vec![7u8; MAX_VALUE_BYTES];
    // Two policies of one tenant, a shadow among them, fill its bound.
    let spaces = [
        Store::kv_namespace("pol-a", "greedy"),
        Store::kv_namespace("pol-b", "greedy"),
        format!("{}#shadow", Store::kv_namespace("pol-b", "greedy")),
    ];
    let mut written = 0u64;
    let mut refused = None;
    for n in 0.. {
        let space = &spaces[n % spaces.len()];
        match store.set(space, &format!("k{n}"), &value) {
            Ok(()) => written += 1,
            Err(refusal) => {
                refused = Some((refusal, space.clone()));
                break;
            }
        }
    }
    let (refusal, space) = refused.expect("refused at last");
    assert_eq!(refusal, KvRefusal::QuotaExceeded);
    let entry = |key: &str| (key.len() + MAX_VALUE_BYTES) as u64;
    assert_eq!(written, KV_BYTES_PER_TENANT / entry("k100"));
    assert!(store.kv_usage("greedy").expect("usage") <= KV_BYTES_PER_TENANT);
    assert_eq!(
        store.get(&space, &format!("k{written}")),
        None,
        "nothing written"
    );
    // Another tenant, even under the same policy, has its own bound.
    store
        .set(&Store::kv_namespace("pol-a", "other"), "k", &value)
        .expect("another tenant writes");
    // Rewriting a key in place, or deleting, is never refused.
    store.set(&spaces[0], "k0", &[1]).expect("shrinks");
    store.delete(&spaces[1], "k1");
    store
        .set(&spaces[2], "fresh", &value)
        .expect("room again after shrinking");
}
