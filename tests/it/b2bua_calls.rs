//! Calls end to end: SIPp as the carrier and as buyers, Plugboard's call
//! server between them on loopback. Each test asserts on the messages each
//! side saw and on the stored call record.

use expect_test::expect;
use host::store::CallOutcome;
use serde_json::json;
use tests::call_lab::{CALLER, CallLab, NUMBER, Seen};
use tests::{example_policy, str_field, test_guest};

/// The INVITE a buyer received.
fn invite_of(messages: &[Seen]) -> &Seen {
    messages
        .iter()
        .find(|m| !m.sent && m.is_request("INVITE"))
        .expect("the buyer got an INVITE")
}

/// Uploads `component` as the marketer's scorer, activates it and sets it
/// on the lab's campaign; the policy id and version.
async fn use_scorer(lab: &CallLab, component: Vec<u8>, failure_mode: &str) -> (String, String) {
    let uploaded = lab.api.upload(&lab.marketer_key, "scorer", component).await;
    let (id, version) = (str_field(&uploaded, "id"), str_field(&uploaded, "version"));
    deploy(lab, &id, &version, failure_mode).await;
    lab.update_campaign(json!({"scorer_policy_id": id})).await;
    (id, version)
}

async fn deploy(lab: &CallLab, policy_id: &str, version: &str, failure_mode: &str) {
    let (status, body) = lab
        .api
        .call(
            "PUT",
            &format!("/v1/policies/{policy_id}/deployment"),
            Some(&lab.marketer_key),
            Some(json!({"active": version, "canary": null, "shadow": null, "failure_mode": failure_mode})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_is_scored_won_by_the_highest_bid_bridged_and_billed() {
    let lab = CallLab::start().await;
    let (scorer, version) =
        use_scorer(&lab, example_policy("geo-history-scorer"), "fallback").await;
    let low = lab.buyer("buyer_answers", 1).await;
    let high = lab.buyer("buyer_answers", 1).await;
    let low_target = lab.target(low.port, 20, 10).await;
    let high_target = lab.target(high.port, 20, 10).await;
    let low_bid = lab.bid(&low_target, 10_000_000, 0).await;
    let high_bid = lab
        .bid_on(&lab.campaign_id, &high_target, 25_000_000, 0, 1)
        .await;

    let carrier = lab.carrier("caller_hangs_up", 1, &["-d", "1500"]).await;
    assert_eq!(carrier.status, 0, "{}", carrier.stderr);
    expect![[r#"
        -> INVITE
        <- SIP/2.0 100 Trying
        <- SIP/2.0 180 Ringing
        <- SIP/2.0 200 OK
        -> ACK
        -> BYE
        <- SIP/2.0 200 OK
    "#]]
    .assert_eq(&carrier.flow());
    let buyer = high.finish().await;
    assert_eq!(buyer.status, 0);
    expect![[r#"
        <- INVITE
        -> SIP/2.0 180 Ringing
        -> SIP/2.0 200 OK
        <- ACK
        <- BYE
        -> SIP/2.0 200 OK
    "#]]
    .assert_eq(&buyer.flow());
    assert!(
        low.kill().await.is_empty(),
        "the lower bid's target never rings"
    );

    // Topology hiding: nothing of the carrier's reaches the buyer, nothing
    // of the buyer's reaches the carrier; the caller's number and SDP do.
    let invite = invite_of(&buyer.messages);
    for carrier_only in ["proxy.carrier.example", "P-Carrier-Secret", "SIPpTag00"] {
        assert!(
            !invite.text.contains(carrier_only),
            "{carrier_only} leaked:\n{}",
            invite.text
        );
    }
    assert_eq!(invite.text.matches("Via:").count(), 1, "{}", invite.text);
    assert!(invite.header("From").is_some_and(|f| f.contains(CALLER)));
    assert!(invite.text.contains("m=audio"));
    let answer = carrier
        .messages
        .iter()
        .find(|m| !m.sent && m.first_line() == "SIP/2.0 200 OK")
        .expect("answer");
    assert!(
        !answer.text.contains("buyer@"),
        "buyer's Contact leaked:\n{}",
        answer.text
    );
    assert!(!answer.text.contains("SIPpTag01"), "buyer's tag leaked");
    assert!(
        answer.text.contains("o=buyer"),
        "the buyer's SDP answer is relayed"
    );

    let records = lab.wait_for_records(1).await;
    let record = &records[0];
    assert_eq!(
        invite.header("X-Plugboard-Call-Id"),
        Some(record.id.as_str())
    );
    assert_eq!(record.outcome, CallOutcome::Answered);
    assert_eq!(record.caller, CALLER);
    assert_eq!(record.called, NUMBER);
    let winner = record.winner.as_ref().expect("winner");
    assert_eq!(
        (winner.bid_id.as_str(), winner.amount_micros),
        (high_bid.as_str(), 25_000_000)
    );
    assert!(record.duration_s >= 1, "{record:?}");
    assert!(record.billable);
    assert_eq!(record.payout_micros, 25_000_000);
    assert_eq!(record.trace.ring_order, [high_bid.clone()]);
    let statuses: Vec<(&str, &str)> = record
        .trace
        .bids
        .iter()
        .map(|b| (b.bid_id.as_str(), b.status.as_str()))
        .collect();
    assert_eq!(
        statuses,
        [(high_bid.as_str(), "won"), (low_bid.as_str(), "lost")]
    );
    let policy = &record.trace.policies[0];
    assert_eq!(
        (policy.policy_id.as_str(), policy.version.as_str()),
        (scorer.as_str(), version.as_str())
    );
    assert_eq!(policy.outcome, "ok");
    assert_eq!(Some(record.trace.tags.is_empty()), Some(false));
    let leg = &record.trace.legs[0];
    assert_eq!(
        (leg.final_status, leg.result.as_str()),
        (Some(200), "answered")
    );
    let timestamps = [
        Some(record.received_at_ms),
        record.routed_at_ms,
        record.answered_at_ms,
        record.ended_at_ms,
    ];
    assert!(
        timestamps.windows(2).all(|w| w[0] <= w[1]),
        "{timestamps:?}"
    );

    // The API shows it to the marketer with the fields of SPEC §9, and the
    // caller's history counts it for the next call.
    let shown = lab.record_through_api(&record.id).await;
    for field in [
        "outcome",
        "quality",
        "winner",
        "duration_s",
        "billable",
        "payout_micros",
        "trace",
    ] {
        assert!(!shown[field].is_null(), "{field} missing in {shown}");
    }
    let history = lab.api.state.store.caller_stats(CALLER).expect("history");
    assert_eq!((history.calls_seen, history.conversions), (1, 1));
    let stats = lab.stop().await;
    assert_eq!(stats.calls, 1);
}
