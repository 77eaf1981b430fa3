//! Calls end to end: SIPp as the carrier and as buyers, Plugboard's call
//! server between them on loopback. Each test asserts on the messages each
//! side saw and on the stored call record.

use expect_test::expect;
use host::model::CallOutcome;
use serde_json::json;
use tests::call_lab::{CALLER, CallLab, NUMBER, Seen, bid_fate};
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
    let marketer = lab.marketer_key.clone();
    let (id, version) = lab
        .deploy_new(&marketer, "scorer", component, failure_mode)
        .await;
    lab.update_campaign(json!({"scorer_policy_id": id})).await;
    (id, version)
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
    carrier.assert_ok();
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
    buyer.assert_ok();
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
    assert_eq!(record.trace.ring_order, std::slice::from_ref(&high_bid));
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

    // The API shows it to the marketer with the quickstart's fields, and the
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
    let metrics = lab.api.state.metrics.render();
    for line in [
        "plugboard_calls_total{outcome=\"answered\"} 1",
        "plugboard_post_dial_delay_seconds_count 1",
        "plugboard_auction_seconds_count 1",
        "plugboard_active_calls 0",
    ] {
        assert!(metrics.contains(line), "{line} missing in\n{metrics}");
    }
    let stats = lab.stop().await;
    assert_eq!(stats.calls, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_buyer_hangs_up_first() {
    let lab = CallLab::start().await;
    let (buyer, _) = lab.bidding_buyer("buyer_hangs_up", 1).await;

    let carrier = lab.carrier("caller_waits_for_bye", 1, &[]).await;
    carrier.assert_ok();
    expect![[r#"
        -> INVITE
        <- SIP/2.0 100 Trying
        <- SIP/2.0 180 Ringing
        <- SIP/2.0 200 OK
        -> ACK
        <- BYE
        -> SIP/2.0 200 OK
    "#]]
    .assert_eq(&carrier.flow());
    let buyer = buyer.finish().await;
    buyer.assert_ok();
    expect![[r#"
        <- INVITE
        -> SIP/2.0 180 Ringing
        -> SIP/2.0 200 OK
        <- ACK
        -> BYE
        <- SIP/2.0 200 OK
    "#]]
    .assert_eq(&buyer.flow());
    // The BYE the carrier got is ours: its own dialog, none of the buyer's.
    let bye = carrier
        .messages
        .iter()
        .find(|m| !m.sent && m.is_request("BYE"))
        .expect("BYE");
    assert!(
        !bye.text.contains("SIPpTag01") && !bye.text.contains("buyer@"),
        "{}",
        bye.text
    );

    let record = &lab.wait_for_records(1).await[0];
    assert_eq!(record.outcome, CallOutcome::Answered);
    assert!(record.duration_s >= 1, "{record:?}");
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_first_target_rolls_over_to_the_second() {
    let lab = CallLab::start().await;
    let busy = lab.buyer("buyer_busy", 1).await;
    let second = lab.buyer("buyer_answers", 1).await;
    let busy_target = lab.target(busy.port, 20, 10).await;
    let second_target = lab.target(second.port, 20, 10).await;
    let first_bid = lab.bid(&busy_target, 9_000_000, 0).await;
    let second_bid = lab.bid(&second_target, 8_000_000, 0).await;

    let carrier = lab.carrier("caller_hangs_up", 1, &["-d", "200"]).await;
    carrier.assert_ok();
    let busy = busy.finish().await;
    expect![[r#"
        <- INVITE
        -> SIP/2.0 486 Busy Here
        <- ACK
    "#]]
    .assert_eq(&busy.flow());
    second.finish().await.assert_ok();
    // The caller never hears the busy signal of a target it did not choose.
    assert!(!carrier.flow().contains("486"), "{}", carrier.flow());

    let record = &lab.wait_for_records(1).await[0];
    assert_eq!(record.outcome, CallOutcome::Answered);
    assert_eq!(
        record.trace.ring_order,
        [first_bid.clone(), second_bid.clone()]
    );
    let legs: Vec<(Option<u16>, &str)> = record
        .trace
        .legs
        .iter()
        .map(|l| (l.final_status, l.result.as_str()))
        .collect();
    assert_eq!(legs, [(Some(486), "busy"), (Some(200), "answered")]);
    assert_eq!(
        record.winner.as_ref().map(|w| w.bid_id.clone()),
        Some(second_bid)
    );
    // The bid that lost says why: its target was busy.
    assert_eq!(bid_fate(record, &first_bid), ("lost", Some("busy")));
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_that_rings_past_its_timeout_is_cancelled_and_the_next_answers() {
    let lab = CallLab::start().await;
    let slow = lab.buyer("buyer_rings", 1).await;
    let second = lab.buyer("buyer_answers", 1).await;
    let slow_target = lab.target(slow.port, 1, 10).await;
    let second_target = lab.target(second.port, 20, 10).await;
    lab.bid(&slow_target, 9_000_000, 0).await;
    lab.bid(&second_target, 8_000_000, 0).await;

    let carrier = lab.carrier("caller_hangs_up", 1, &["-d", "200"]).await;
    carrier.assert_ok();
    let slow = slow.finish().await;
    slow.assert_ok();
    expect![[r#"
        <- INVITE
        -> SIP/2.0 180 Ringing
        <- CANCEL
        -> SIP/2.0 200 OK
        -> SIP/2.0 487 Request Terminated
        <- ACK
    "#]]
    .assert_eq(&slow.flow());
    second.finish().await.assert_ok();

    let record = &lab.wait_for_records(1).await[0];
    let legs: Vec<&str> = record
        .trace
        .legs
        .iter()
        .map(|l| l.result.as_str())
        .collect();
    assert_eq!(legs, ["ring_timeout", "answered"]);
    let first = &record.trace.legs[0];
    let rang_ms = first.ended_at_ms.expect("ended") - first.started_at_ms;
    assert!(rang_ms >= 1000, "rang {rang_ms} ms, the timeout is 1 s");
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_every_target_fails_the_fallback_answers_and_without_one_the_caller_gets_480() {
    let lab = CallLab::start().await;
    let first = lab.buyer("buyer_busy", 2).await;
    let second = lab.buyer("buyer_busy", 2).await;
    let fallback = lab.buyer("buyer_answers", 1).await;
    let first_target = lab.target(first.port, 20, 10).await;
    let second_target = lab.target(second.port, 20, 10).await;
    lab.bid(&first_target, 9_000_000, 0).await;
    lab.bid(&second_target, 8_000_000, 0).await;
    let fallback_uri = format!("sip:overflow@127.0.0.1:{}", fallback.port);
    lab.update_campaign(json!({"fallback_target": fallback_uri}))
        .await;

    let carrier = lab.carrier("caller_hangs_up", 1, &["-d", "200"]).await;
    carrier.assert_ok();
    fallback.finish().await.assert_ok();
    let record = &lab.wait_for_records(1).await[0];
    assert_eq!(record.outcome, CallOutcome::Answered);
    assert_eq!(record.winner, None, "the fallback is nobody's bid");
    let legs: Vec<(Option<&str>, &str)> = record
        .trace
        .legs
        .iter()
        .map(|l| (l.target_id.as_deref(), l.result.as_str()))
        .collect();
    assert_eq!(
        legs,
        [
            (Some(first_target.as_str()), "busy"),
            (Some(second_target.as_str()), "busy"),
            (None, "answered"),
        ]
    );
    assert!(!record.billable);

    lab.update_campaign(json!({"fallback_target": null})).await;
    let refused = lab.carrier("caller_refused", 1, &[]).await;
    refused.assert_ok();
    expect![[r#"
        -> INVITE
        <- SIP/2.0 100 Trying
        <- SIP/2.0 480 Temporarily Unavailable
        -> ACK
    "#]]
    .assert_eq(&refused.flow());
    first.finish().await.assert_ok();
    second.finish().await.assert_ok();
    let records = lab.wait_for_records(2).await;
    assert_eq!(records[1].outcome, CallOutcome::NoAnswer);
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_cancel_while_the_buyer_rings_cancels_the_buyer_and_answers_487() {
    let lab = CallLab::start().await;
    let (buyer, target) = lab.bidding_buyer("buyer_rings", 1).await;

    let carrier = lab.carrier("caller_cancels", 1, &[]).await;
    carrier.assert_ok();
    expect![[r#"
        -> INVITE
        <- SIP/2.0 100 Trying
        <- SIP/2.0 180 Ringing
        -> CANCEL
        <- SIP/2.0 200 OK
        <- SIP/2.0 487 Request Terminated
        -> ACK
    "#]]
    .assert_eq(&carrier.flow());
    let buyer = buyer.finish().await;
    buyer.assert_ok();
    expect![[r#"
        <- INVITE
        -> SIP/2.0 180 Ringing
        <- CANCEL
        -> SIP/2.0 200 OK
        -> SIP/2.0 487 Request Terminated
        <- ACK
    "#]]
    .assert_eq(&buyer.flow());

    let record = &lab.wait_for_records(1).await[0];
    assert_eq!(record.outcome, CallOutcome::Abandoned);
    assert_eq!(record.trace.legs[0].result, "cancelled");
    assert_eq!(
        lab.ledger.active(&target),
        0,
        "the target's place is free again"
    );
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_buyer_that_never_answers_the_cancel_is_given_up_after_64_t1_and_frees_the_call() {
    // T1 of 20 ms: 64·T1 is 1.28 s.
    let timers = host::transaction::Timers {
        t1: std::time::Duration::from_millis(20),
        t2: std::time::Duration::from_millis(160),
        t4: std::time::Duration::from_millis(200),
    };
    let lab = CallLab::with(timers, 1000).await;
    let (buyer, target) = lab.bidding_buyer("buyer_ignores_cancel", 1).await;

    lab.carrier("caller_cancels", 1, &[]).await.assert_ok();
    let buyer = buyer.finish().await;
    buyer.assert_ok();
    expect![[r#"
        <- INVITE
        -> SIP/2.0 180 Ringing
        <- CANCEL
        -> SIP/2.0 200 OK
    "#]]
    .assert_eq(&buyer.flow());
    let record = &lab.wait_for_records(1).await[0];
    assert_eq!(record.outcome, CallOutcome::Abandoned);
    assert_eq!(record.trace.legs[0].result, "cancelled");
    // The call's slot, counted against max_calls, is given back.
    let mut metrics = String::new();
    for _ in 0..500 {
        metrics = lab.api.metrics().await;
        if metrics.contains("plugboard_active_calls 0") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(
        metrics.contains("plugboard_active_calls 0"),
        "the call is still held:\n{metrics}"
    );
    assert_eq!(lab.ledger.active(&target), 0);
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_200_crossing_the_cancel_is_acknowledged_and_hung_up() {
    let lab = CallLab::start().await;
    let (buyer, _) = lab.bidding_buyer("buyer_answers_across_cancel", 1).await;

    let carrier = lab.carrier("caller_cancels", 1, &[]).await;
    carrier.assert_ok();
    assert!(carrier.flow().contains("487"), "{}", carrier.flow());
    let buyer = buyer.finish().await;
    buyer.assert_ok();
    expect![[r#"
        <- INVITE
        -> SIP/2.0 180 Ringing
        <- CANCEL
        -> SIP/2.0 200 OK
        -> SIP/2.0 200 OK
        <- ACK
        <- BYE
        -> SIP/2.0 200 OK
    "#]]
    .assert_eq(&buyer.flow());
    let record = &lab.wait_for_records(1).await[0];
    assert_eq!(record.outcome, CallOutcome::Abandoned);
    assert!(!record.billable);
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hold_and_unhold_from_the_caller_reach_the_buyer_and_back() {
    let lab = CallLab::start().await;
    let (buyer, _) = lab.bidding_buyer("buyer_follows_hold", 1).await;

    let carrier = lab.carrier("caller_holds", 1, &[]).await;
    carrier.assert_ok();
    expect![[r#"
        -> INVITE
        <- SIP/2.0 100 Trying
        <- SIP/2.0 180 Ringing
        <- SIP/2.0 200 OK
        -> ACK
        -> INVITE
        <- SIP/2.0 100 Trying
        <- SIP/2.0 200 OK
        -> ACK
        -> INVITE
        <- SIP/2.0 100 Trying
        <- SIP/2.0 200 OK
        -> ACK
        -> BYE
        <- SIP/2.0 200 OK
    "#]]
    .assert_eq(&carrier.flow());
    // The buyer checks that each re-INVITE carries the caller's direction.
    let buyer = buyer.finish().await;
    buyer.assert_ok();
    let answers: Vec<bool> = carrier
        .messages
        .iter()
        .filter(|m| !m.sent && m.first_line() == "SIP/2.0 200 OK")
        .map(|m| m.text.contains("a=recvonly"))
        .collect();
    assert_eq!(
        answers,
        [false, true, false, false],
        "the buyer's hold answer comes back"
    );
    let record = &lab.wait_for_records(1).await[0];
    assert_eq!(record.outcome, CallOutcome::Answered);
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_that_sends_nothing_back_is_given_up_fast_and_the_next_rings() {
    let lab = CallLab::build(tests::call_lab::LabSetup {
        first_response_timeout: std::time::Duration::from_millis(300),
        ..Default::default()
    })
    .await;
    // Nobody listens on the first target's port: no 100, no 180, nothing.
    let dead = lab.target(tests::call_lab::free_port(), 20, 10).await;
    lab.bid(&dead, 9_000_000, 0).await;
    let buyer = lab.buyer("buyer_answers", 1).await;
    let alive = lab.target(buyer.port, 20, 10).await;
    lab.bid(&alive, 5_000_000, 0).await;

    lab.carrier("caller_hangs_up", 1, &["-d", "100"])
        .await
        .assert_ok();
    buyer.finish().await.assert_ok();
    let record = &lab.wait_for_records(1).await[0];
    assert_eq!(record.outcome, CallOutcome::Answered);
    let legs: Vec<(Option<&str>, &str)> = record
        .trace
        .legs
        .iter()
        .map(|l| (l.target_id.as_deref(), l.result.as_str()))
        .collect();
    assert_eq!(
        legs,
        [
            (Some(dead.as_str()), "no_response"),
            (Some(alive.as_str()), "answered")
        ]
    );
    assert_eq!(
        lab.ledger.active(&dead),
        0,
        "the dead target's place is free"
    );
    lab.stop().await;
}

/// The legs of a record: target, result, final status, port of the URI.
fn legs_of(record: &host::model::CallRecord) -> Vec<(Option<&str>, &str, Option<u16>, String)> {
    record
        .trace
        .legs
        .iter()
        .map(|l| {
            let port = l.uri.rsplit(':').next().unwrap_or_default().to_owned();
            (
                l.target_id.as_deref(),
                l.result.as_str(),
                l.final_status,
                port,
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_that_follows_redirects_rings_the_contact_on_its_own_host() {
    let lab = CallLab::start().await;
    let desk = lab.buyer("buyer_answers", 1).await;
    let desk_port = desk.port.to_string();
    let pbx = lab
        .buyer_with("buyer_redirects", 1, &["-key", "redirect_port", &desk_port])
        .await;
    let target = lab
        .target_with(
            pbx.port,
            json!({"ring_timeout_s": 20, "max_concurrent": 10, "follow_redirects": true}),
        )
        .await;
    lab.bid(&target, 5_000_000, 0).await;
    let pbx_port = pbx.port.to_string();

    lab.carrier("caller_hangs_up", 1, &["-d", "100"])
        .await
        .assert_ok();
    pbx.finish().await.assert_ok();
    desk.finish().await.assert_ok();
    let record = &lab.wait_for_records(1).await[0];
    assert_eq!(record.outcome, CallOutcome::Answered);
    assert_eq!(
        legs_of(record),
        [
            (Some(target.as_str()), "redirected", Some(302), pbx_port),
            (Some(target.as_str()), "answered", Some(200), desk_port)
        ]
    );
    assert!(record.billable, "the redirected leg is the bid's call");
    assert_eq!(lab.ledger.active(&target), 0);
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_is_a_failure_for_a_target_that_does_not_follow_them() {
    let lab = CallLab::start().await;
    let desk = lab.buyer("buyer_answers", 1).await;
    let desk_port = desk.port.to_string();
    let pbx = lab
        .buyer_with("buyer_redirects", 1, &["-key", "redirect_port", &desk_port])
        .await;
    let target = lab.target(pbx.port, 20, 10).await;
    lab.bid(&target, 5_000_000, 0).await;
    let pbx_port = pbx.port.to_string();

    let carrier = lab.carrier("caller_refused", 1, &[]).await;
    carrier.assert_ok();
    pbx.finish().await.assert_ok();
    assert!(desk.kill().await.is_empty(), "the Contact never rings");
    let record = &lab.wait_for_records(1).await[0];
    assert_eq!(record.outcome, CallOutcome::NoAnswer);
    assert_eq!(
        legs_of(record),
        [(Some(target.as_str()), "rejected", Some(302), pbx_port)]
    );
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_timers_are_agreed_on_both_legs_and_a_refresh_crosses() {
    let lab = CallLab::start().await;
    // Each SIPp checks the Session-Expires it is given (RFC 4028).
    let (buyer, _) = lab.bidding_buyer("buyer_takes_refresh", 1).await;

    let carrier = lab.carrier("caller_refreshes", 1, &[]).await;
    carrier.assert_ok();
    expect![[r#"
        -> INVITE
        <- SIP/2.0 100 Trying
        <- SIP/2.0 180 Ringing
        <- SIP/2.0 200 OK
        -> ACK
        -> UPDATE
        <- SIP/2.0 200 OK
        -> BYE
        <- SIP/2.0 200 OK
    "#]]
    .assert_eq(&carrier.flow());
    buyer.finish().await.assert_ok();
    let record = &lab.wait_for_records(1).await[0];
    assert_eq!(record.trace.ended_by.as_deref(), Some("caller"));

    // Below the 90 s minimum: 422 with Min-SE, and no call.
    lab.carrier("caller_too_short_timer", 1, &[])
        .await
        .assert_ok();
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_buyer_that_needs_100rel_gets_its_prack_and_its_early_media_reaches_the_caller() {
    let lab = CallLab::start().await;
    let (buyer, _) = lab.bidding_buyer("buyer_needs_100rel", 1).await;

    let carrier = lab.carrier("caller_hangs_up", 1, &["-d", "100"]).await;
    carrier.assert_ok();
    let buyer = buyer.finish().await;
    buyer.assert_ok();
    expect![[r#"
        <- INVITE
        -> SIP/2.0 183 Session Progress
        <- PRACK
        -> SIP/2.0 200 OK
        -> SIP/2.0 200 OK
        <- ACK
        <- BYE
        -> SIP/2.0 200 OK
    "#]]
    .assert_eq(&buyer.flow());
    // The early media went on to the caller, as a plain 183.
    let early = carrier
        .first_received("SIP/2.0 183")
        .expect("the caller heard the early media");
    assert!(early.text.contains("o=buyer"), "{}", early.text);
    // The BYE's CSeq comes after the PRACK's on the buyer's dialog.
    let cseq_of = |first: &str| {
        buyer
            .first_received(first)
            .and_then(|m| {
                m.text
                    .lines()
                    .find(|l| l.starts_with("CSeq:"))
                    .map(str::to_owned)
            })
            .expect("received")
    };
    assert_eq!(cseq_of("PRACK "), "CSeq: 2 PRACK");
    assert_eq!(cseq_of("BYE "), "CSeq: 3 BYE");
    let record = &lab.wait_for_records(1).await[0];
    assert_eq!(record.outcome, CallOutcome::Answered);
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_with_transport_tcp_is_called_over_tcp() {
    let lab = CallLab::start().await;
    let buyer = lab.buyer_with("buyer_answers", 2, &["-t", "t1"]).await;
    let target = lab
        .target_with(
            buyer.port,
            json!({
                "uri": format!("sip:sales@127.0.0.1:{};transport=tcp", buyer.port),
                "ring_timeout_s": 20,
                "max_concurrent": 10,
            }),
        )
        .await;
    lab.bid(&target, 5_000_000, 0).await;

    lab.carrier("caller_hangs_up", 2, &["-d", "100", "-l", "1"])
        .await
        .assert_ok();
    let buyer = buyer.finish().await;
    buyer.assert_ok();
    // Everything the buyer got came over TCP: its Via says so.
    let received = vias_received(&buyer);
    assert_eq!(received.len(), 6, "INVITE, ACK, BYE twice: {received:?}");
    assert!(
        received.iter().all(|via| via.contains("SIP/2.0/TCP")),
        "{received:?}"
    );
    let invite = buyer.first_received("INVITE ").expect("an INVITE");
    assert!(
        invite.text.contains(";transport=tcp>"),
        "Contact: {}",
        invite.text
    );
    let records = lab.wait_for_records(2).await;
    assert!(records.iter().all(|r| r.outcome == CallOutcome::Answered));
    lab.stop().await;
}

/// The Via lines of what `buyer` received.
fn vias_received(buyer: &tests::call_lab::Carrier) -> Vec<String> {
    buyer
        .messages
        .iter()
        .filter(|m| !m.sent)
        .filter_map(|m| {
            m.text
                .lines()
                .find(|l| l.starts_with("Via:"))
                .map(str::to_owned)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invite_too_large_for_udp_goes_over_tcp_and_back_to_udp_where_tcp_is_refused() {
    let lab = CallLab::start().await;
    // A buyer on TCP gets the large INVITE over TCP (§18.1.1)…
    let tcp_buyer = lab.buyer_with("buyer_answers", 1, &["-t", "t1"]).await;
    let tcp_target = lab.target(tcp_buyer.port, 20, 10).await;
    let tcp_bid = lab.bid(&tcp_target, 9_000_000, 0).await;
    lab.carrier("caller_big_offer", 1, &["-d", "100"])
        .await
        .assert_ok();
    let tcp_buyer = tcp_buyer.finish().await;
    tcp_buyer.assert_ok();
    let vias = vias_received(&tcp_buyer);
    assert!(
        !vias.is_empty() && vias.iter().all(|v| v.contains("SIP/2.0/TCP")),
        "{vias:?}"
    );
    lab.api
        .call(
            "DELETE",
            &format!("/v1/bids/{tcp_bid}"),
            Some(&lab.bidder_key),
            None,
        )
        .await;

    // …and one that listens on UDP alone gets it over UDP once TCP is refused.
    let (udp_buyer, _) = lab.bidding_buyer("buyer_answers", 1).await;
    lab.carrier("caller_big_offer", 1, &["-d", "100"])
        .await
        .assert_ok();
    let udp_buyer = udp_buyer.finish().await;
    udp_buyer.assert_ok();
    let vias = vias_received(&udp_buyer);
    assert!(
        !vias.is_empty() && vias.iter().all(|v| v.contains("SIP/2.0/UDP")),
        "{vias:?}"
    );
    let invite = udp_buyer.first_received("INVITE ").expect("an INVITE");
    assert!(invite.text.len() > 1300, "{} bytes", invite.text.len());
    let records = lab.wait_for_records(2).await;
    assert!(
        records.iter().all(|r| r.outcome == CallOutcome::Answered),
        "{records:?}"
    );
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keypress_sent_as_info_reaches_the_buyer_with_its_body() {
    let lab = CallLab::start().await;
    let (buyer, _) = lab.bidding_buyer("buyer_takes_dtmf", 1).await;

    let carrier = lab.carrier("caller_sends_dtmf", 1, &[]).await;
    carrier.assert_ok();
    expect![[r#"
        -> INVITE
        <- SIP/2.0 100 Trying
        <- SIP/2.0 180 Ringing
        <- SIP/2.0 200 OK
        -> ACK
        -> INFO
        <- SIP/2.0 200 OK
        -> BYE
        <- SIP/2.0 200 OK
    "#]]
    .assert_eq(&carrier.flow());
    // The buyer's scenario checks the INFO's body and Content-Type.
    let buyer = buyer.finish().await;
    buyer.assert_ok();
    let info = buyer
        .first_received("INFO ")
        .expect("the buyer got the INFO");
    assert!(
        info.text.contains("Signal=5") && info.text.contains("Duration=160"),
        "{}",
        info.text
    );
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_offer_gets_the_buyers_offer_to_the_caller_and_the_callers_answer_to_the_buyer() {
    let lab = CallLab::start().await;
    // The buyer's scenario checks that its ACK carries the caller's answer,
    // the caller's that the 200 carries the buyer's offer.
    let (buyer, _) = lab.bidding_buyer("buyer_offers_in_200", 1).await;

    let carrier = lab.carrier("caller_late_offer", 1, &["-d", "100"]).await;
    carrier.assert_ok();
    let buyer = buyer.finish().await;
    buyer.assert_ok();
    expect![[r#"
        <- INVITE
        -> SIP/2.0 180 Ringing
        -> SIP/2.0 200 OK
        <- ACK
        <- BYE
        -> SIP/2.0 200 OK
    "#]]
    .assert_eq(&buyer.flow());
    let received = |first: &str| {
        buyer
            .first_received(first)
            .map(|m| m.text.clone())
            .expect("received")
    };
    assert!(
        !received("INVITE ").contains("v=0"),
        "no offer in the INVITE"
    );
    assert!(received("ACK ").contains("o=caller-answer"));
    let record = &lab.wait_for_records(1).await[0];
    assert_eq!(record.outcome, CallOutcome::Answered);
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bid_whose_quality_floor_the_call_misses_is_not_used() {
    let lab = CallLab::start().await;
    let picky = lab.buyer("buyer_answers", 1).await;
    let open = lab.buyer("buyer_answers", 1).await;
    let picky_target = lab.target(picky.port, 20, 10).await;
    let open_target = lab.target(open.port, 20, 10).await;
    // No scorer: the call gets the default quality, 50.
    let picky_bid = lab.bid(&picky_target, 30_000_000, 90).await;
    let open_bid = lab.bid(&open_target, 10_000_000, 0).await;

    let carrier = lab.carrier("caller_hangs_up", 1, &["-d", "200"]).await;
    carrier.assert_ok();
    open.finish().await.assert_ok();
    assert!(
        picky.kill().await.is_empty(),
        "the picky bid's target never rings"
    );
    let record = &lab.wait_for_records(1).await[0];
    assert_eq!(record.quality, Some(50));
    assert_eq!(
        bid_fate(record, &picky_bid),
        ("ineligible", Some("below_quality_floor"))
    );
    assert_eq!(
        record.winner.as_ref().map(|w| w.bid_id.clone()),
        Some(open_bid)
    );
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scorer_that_loops_or_traps_never_loses_the_call() {
    let lab = CallLab::start().await;
    let (scorer, version) = use_scorer(&lab, test_guest("hostile-scorer.wasm"), "fallback").await;
    for (mode, number) in [("spin", "+18005550111"), ("panic", "+18005550122")] {
        lab.campaign_in_store(mode, number, |c| c.scorer_policy_id = Some(scorer.clone()));
    }
    let buyer = lab.buyer("buyer_answers", 2).await;
    let target = lab.target(buyer.port, 20, 10).await;
    // Takes calls of the default quality (the `fallback` failure mode's).
    for campaign in ["spin", "panic"] {
        lab.bid_on(campaign, &target, 5_000_000, 10, 0).await;
    }

    for number in ["+18005550111", "+18005550122"] {
        lab.carrier_to(number, "caller_hangs_up", 1, &["-d", "100"])
            .await
            .assert_ok();
    }
    buyer.finish().await.assert_ok();
    let records = lab.wait_for_records(2).await;
    let outcomes: Vec<(&str, CallOutcome, Option<u8>, &str)> = records
        .iter()
        .map(|r| {
            let policy = &r.trace.policies[0];
            assert_eq!(policy.version, version);
            assert!(policy.error.is_some(), "{policy:?}");
            (
                r.campaign_id.as_str(),
                r.outcome,
                r.quality,
                policy.outcome.as_str(),
            )
        })
        .collect();
    assert!(
        matches!(
            outcomes[0],
            (
                "spin",
                CallOutcome::Answered,
                Some(50),
                "out_of_fuel" | "timeout"
            )
        ),
        "{outcomes:?}"
    );
    assert_eq!(
        outcomes[1],
        ("panic", CallOutcome::Answered, Some(50), "trap")
    );

    // Under `skip` a failed score counts as unknown (0): the bid that wants
    // quality 10 drops out, and with no fallback target the caller gets 480.
    lab.deploy(&lab.marketer_key, &scorer, &version, "skip")
        .await;
    lab.carrier_to("+18005550122", "caller_refused", 1, &[])
        .await
        .assert_ok();
    let records = lab.wait_for_records(3).await;
    assert_eq!(
        (records[2].outcome, records[2].quality),
        (CallOutcome::NoAnswer, Some(0))
    );
    assert_eq!(
        records[2].trace.bids[0].reason.as_deref(),
        Some("below_quality_floor")
    );
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_numbers_get_404_and_malformed_invites_400_while_a_call_goes_on() {
    let lab = CallLab::start().await;
    let (buyer, _) = lab.bidding_buyer("buyer_answers", 1).await;

    let in_progress = lab.carrier("caller_hangs_up", 1, &["-d", "2500"]);
    let disturbances = async {
        tokio::time::sleep(std::time::Duration::from_millis(700)).await;
        let unknown = lab
            .carrier_to("+18005559999", "caller_refused", 1, &[])
            .await;
        let broken = tests::call_lab::exchange_final(
            lab.sip,
            "INVITE sip:+18005550100@127.0.0.1 SIP/2.0
Via: SIP/2.0/UDP LOCAL;branch=z9hG4bKbroken
Max-Forwards: 70
To: <sip:+18005550100@127.0.0.1>
From: <sip:+14155550123@carrier.example>;tag=c1
Call-ID: broken@carrier.example
CSeq: one INVITE
Content-Length: 0

",
        )
        .await;
        (unknown, broken)
    };
    let (call, (unknown, broken)) = tokio::join!(in_progress, disturbances);
    unknown.assert_ok();
    expect![[r#"
        -> INVITE
        <- SIP/2.0 100 Trying
        <- SIP/2.0 404 Not Found
        -> ACK
    "#]]
    .assert_eq(&unknown.flow());
    assert!(broken.starts_with("SIP/2.0 400 "), "{broken}");
    call.assert_ok();
    buyer.finish().await.assert_ok();
    let records = lab.wait_for_records(1).await;
    assert_eq!(records[0].outcome, CallOutcome::Answered);
    assert!(records[0].duration_s >= 2);
    // A call to an unknown number is counted, not stored: nobody owns it.
    assert_eq!(lab.records().len(), 1);
    let rejected = lab.api.state.metrics.counter(
        "plugboard_calls_total",
        &vec![("outcome", "rejected".to_owned())],
    );
    assert_eq!(rejected, 1);
    let stats = lab.stop().await;
    assert_eq!(stats.refused, 1, "the malformed INVITE: {stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scorer_hot_swapped_while_calls_are_set_up_loses_no_call() {
    let lab = CallLab::start().await;
    let (scorer, constant) = use_scorer(&lab, test_guest("hostile-scorer.wasm"), "fallback").await;
    let (status, second) = lab
        .api
        .raw(
            "POST",
            &format!("/v1/policies/{scorer}/versions"),
            Some(&lab.marketer_key),
            Some(example_policy("geo-history-scorer")),
            "application/wasm",
        )
        .await;
    assert_eq!(status, 201, "{second}");
    let geo = str_field(&second, "version");
    const CALLS: u32 = 40;
    let buyer = lab.buyer("buyer_answers", CALLS).await;
    let target = lab.target(buyer.port, 20, 100).await;
    lab.bid(&target, 5_000_000, 0).await;

    let done = std::sync::atomic::AtomicBool::new(false);
    let calls = async {
        let carrier = lab
            .carrier("caller_hangs_up", CALLS, &["-r", "20", "-d", "100"])
            .await;
        done.store(true, std::sync::atomic::Ordering::SeqCst);
        carrier
    };
    let swaps = async {
        let mut swaps = 0;
        while !done.load(std::sync::atomic::Ordering::SeqCst) {
            let version = if swaps % 2 == 0 { &geo } else { &constant };
            lab.deploy(&lab.marketer_key, &scorer, version, "fallback")
                .await;
            swaps += 1;
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        swaps
    };
    let (carrier, swaps) = tokio::join!(calls, swaps);
    carrier.assert_ok();
    buyer.finish().await.assert_ok();
    assert!(swaps >= 10, "only {swaps} swaps");
    let records = lab.wait_for_records(CALLS as usize).await;
    let mut used = std::collections::BTreeSet::new();
    for record in &records {
        assert_eq!(record.outcome, CallOutcome::Answered, "{record:?}");
        let policy = &record.trace.policies[0];
        assert_eq!(policy.outcome, "ok");
        // Each record names the version that scored it, and its score is that version's.
        let constant_scored = record.quality == Some(42);
        assert_eq!(constant_scored, policy.version == constant, "{record:?}");
        assert!(policy.version == constant || policy.version == geo);
        used.insert(policy.version.clone());
    }
    assert_eq!(used.len(), 2, "both versions served calls");
    lab.stop().await;
}

#[test]
fn every_call_completes_through_five_percent_datagram_loss() {
    // A thread of its own: the network namespace is the thread's.
    std::thread::spawn(|| {
        let lossy = tests::call_lab::lossy_loopback(5);
        eprintln!("datagram loss by {lossy:?}");
        let loss = (lossy == tests::call_lab::Lossy::InProcess)
            .then(|| host::runtime::DatagramLoss::new(5, 0x5eed));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            let lab = CallLab::with_loss(host::transaction::Timers::default(), 1000, loss).await;
            const CALLS: u32 = 30;
            let buyer = lab.buyer("buyer_answers", CALLS).await;
            let target = lab.target(buyer.port, 20, 100).await;
            lab.bid(&target, 5_000_000, 0).await;
            let carrier = lab
                .carrier("caller_hangs_up", CALLS, &["-r", "15", "-d", "300"])
                .await;
            carrier.assert_ok();
            let buyer = buyer.finish().await;
            buyer.assert_ok();
            let records = lab.wait_for_records(CALLS as usize).await;
            assert!(records.iter().all(|r| r.outcome == CallOutcome::Answered));
            // Loss happened, and retransmissions made up for it: some
            // message went out, or came in, more than once on one side
            // (which side retransmits depends on which datagram was lost).
            let repeats: usize = [&carrier.messages, &buyer.messages]
                .into_iter()
                .map(|messages| {
                    let mut seen = std::collections::HashSet::new();
                    messages
                        .iter()
                        .filter(|m| {
                            let header = |name: &str| {
                                m.text
                                    .lines()
                                    .find(|l| l.starts_with(name))
                                    .unwrap_or_default()
                                    .to_owned()
                            };
                            let key = (m.sent, m.first_line(), header("Call-ID:"), header("CSeq:"));
                            !seen.insert(key)
                        })
                        .count()
                })
                .sum();
            eprintln!("{repeats} messages repeated for {CALLS} calls");
            assert!(repeats > 0, "no retransmission seen");
            lab.stop().await;
        });
    })
    .join()
    .expect("the lossy calls pass");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_to_a_pooled_number_carries_its_visitor_sessions_attribution() {
    let lab = CallLab::start().await;
    let pool = format!("/v1/campaigns/{}/pool", lab.campaign_id);
    let (status, body) = lab
        .api
        .call(
            "PUT",
            &pool,
            Some(&lab.marketer_key),
            Some(json!({"numbers": ["+18005550201"], "ttl_s": 1800})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, session) = lab
        .api
        .call(
            "POST",
            &format!("/v1/campaigns/{}/dni-sessions", lab.campaign_id),
            Some(&lab.marketer_key),
            Some(json!({"attributes": {"source": "google-ads", "keyword": "solar panels"}})),
        )
        .await;
    assert_eq!(status, 201, "{session}");
    assert_eq!(session["number"], json!("+18005550201"));
    let (buyer, _) = lab.bidding_buyer("buyer_answers", 1).await;

    lab.carrier_to("+18005550201", "caller_hangs_up", 1, &["-d", "100"])
        .await
        .assert_ok();
    buyer.finish().await.assert_ok();
    let record = &lab.wait_for_records(1).await[0];
    assert_eq!(record.called, "+18005550201");
    assert_eq!(
        record.trace.attribution,
        [
            ("keyword".to_owned(), "solar panels".to_owned()),
            ("source".to_owned(), "google-ads".to_owned()),
        ]
    );
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_the_server_hangs_up_calls_in_progress_with_bye() {
    let lab = CallLab::start().await;
    let (buyer, target) = lab.bidding_buyer("buyer_answers", 1).await;

    let call = lab.carrier("caller_waits_for_bye", 1, &[]);
    let stop = async {
        // Stop once the call is up.
        while lab.ledger.active(&target) == 0 {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        lab.stop_signal();
    };
    let (carrier, ()) = tokio::join!(call, stop);
    carrier.assert_ok();
    buyer.finish().await.assert_ok();
    let record = &lab.wait_for_records(1).await[0];
    assert_eq!(record.outcome, CallOutcome::Answered);
    lab.stop().await;
}
