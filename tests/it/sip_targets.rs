//! Targets as buyers give them: by domain name (RFC 3263, our own name
//! server answering SRV and A), over TLS (our own certificate authority and
//! a TLS buyer), and what happens when a TLS buyer cannot prove who it is.

use std::sync::Arc;

use host::model::CallOutcome;
use host::names::HickoryDns;
use serde_json::json;
use tests::call_lab::{CALLER, CallLab, LabSetup, NUMBER, free_port};
use tests::dns::{DnsServer, Zone};
use tests::tls_peer::{TestAuthority, TlsBuyer, call_over_tls, server_config};

const LOOPBACK: std::net::IpAddr = std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

async fn lab_with(dns: &DnsServer, authority: Option<&TestAuthority>) -> CallLab {
    CallLab::build(LabSetup {
        dns: Some(Arc::new(HickoryDns::servers(&[dns.address]))),
        tls_client: authority.map(TestAuthority::client_config),
        ..LabSetup::default()
    })
    .await
}

/// A target of the lab's bidder at `uri`.
async fn target_at(lab: &CallLab, uri: &str) -> String {
    lab.target_with(
        0,
        json!({"uri": uri, "ring_timeout_s": 20, "max_concurrent": 10}),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_named_by_its_domain_is_rung_where_its_srv_records_say() {
    let dns = DnsServer::start(Zone::default()).await;
    let lab = lab_with(&dns, None).await;
    let buyer = lab.buyer("buyer_answers", 1).await;
    // The preferred record points at the buyer; the backup at nobody.
    dns.publish(
        Zone::default()
            .service("_sip._udp.buyer.test", 10, buyer.port, "pbx1.buyer.test")
            .service("_sip._udp.buyer.test", 20, free_port(), "pbx2.buyer.test")
            .address("pbx1.buyer.test", LOOPBACK)
            .address("pbx2.buyer.test", LOOPBACK),
    );
    let target = target_at(&lab, "sip:sales@buyer.test").await;
    lab.bid(&target, 5_000_000, 0).await;

    lab.carrier("caller_hangs_up", 1, &["-d", "100"])
        .await
        .assert_ok();
    buyer.finish().await.assert_ok();
    let record = &lab.wait_for_records(1).await[0];
    assert_eq!(record.outcome, CallOutcome::Answered);
    let leg = &record.trace.legs[0];
    assert_eq!(leg.result, "answered");
    assert_eq!(leg.uri, "sip:sales@buyer.test");
    assert!(dns.queries() >= 2, "SRV, then the record's address");
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sips_target_is_called_over_tls_and_its_certificate_checked_for_its_domain() {
    let authority = TestAuthority::new("Plugboard test authority");
    // The certificate names the URI's domain, not the host SRV points at
    // (RFC 5922): DNS does not choose whom the call server trusts.
    let buyer = TlsBuyer::start(authority.issue(&["buyer.test"])).await;
    let dns = DnsServer::start(
        Zone::default()
            .service("_sips._tcp.buyer.test", 10, buyer.port, "edge.buyer.test")
            .address("edge.buyer.test", LOOPBACK),
    )
    .await;
    let lab = lab_with(&dns, Some(&authority)).await;
    let target = target_at(&lab, "sips:sales@buyer.test").await;
    lab.bid(&target, 5_000_000, 0).await;

    lab.carrier("caller_hangs_up", 2, &["-d", "100", "-l", "1"])
        .await
        .assert_ok();
    let records = lab.wait_for_records(2).await;
    assert!(
        records.iter().all(|r| r.outcome == CallOutcome::Answered),
        "{records:?}"
    );
    let received = buyer.received_at_least(6).await;
    let methods: Vec<&str> = received
        .iter()
        .map(|m| m.split(' ').next().unwrap_or_default())
        .collect();
    assert_eq!(
        methods,
        ["INVITE", "ACK", "BYE", "INVITE", "ACK", "BYE"],
        "{received:?}"
    );
    let invite = &received[0];
    assert!(
        invite.starts_with("INVITE sips:sales@buyer.test SIP/2.0\r\n"),
        "{invite}"
    );
    assert!(invite.contains("Via: SIP/2.0/TLS "), "{invite}");
    assert!(invite.contains("Contact: <sips:plugboard@"), "{invite}");
    assert_eq!(buyer.handshakes(), 1, "both calls on one connection");
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_buyer_that_cannot_prove_its_name_is_not_called_and_the_next_bid_rings() {
    let trusted = TestAuthority::new("Plugboard test authority");
    let stranger = TestAuthority::new("Someone else");
    // Right name, an authority the call server does not trust.
    let untrusted = TlsBuyer::start(stranger.issue(&["127.0.0.1"])).await;
    // A trusted authority, the wrong name.
    let misnamed = TlsBuyer::start(trusted.issue(&["other.test"])).await;
    let dns = DnsServer::start(Zone::default().address("pbx.buyer.test", LOOPBACK)).await;
    let lab = lab_with(&dns, Some(&trusted)).await;
    let honest = lab.buyer("buyer_answers", 1).await;
    let first = target_at(&lab, &format!("sips:sales@127.0.0.1:{}", untrusted.port)).await;
    let second = target_at(
        &lab,
        &format!("sips:sales@pbx.buyer.test:{}", misnamed.port),
    )
    .await;
    let third = lab.target(honest.port, 20, 10).await;
    lab.bid(&first, 9_000_000, 0).await;
    lab.bid(&second, 8_000_000, 0).await;
    lab.bid(&third, 7_000_000, 0).await;

    lab.carrier("caller_hangs_up", 1, &["-d", "100"])
        .await
        .assert_ok();
    honest.finish().await.assert_ok();
    let record = &lab.wait_for_records(1).await[0];
    assert_eq!(record.outcome, CallOutcome::Answered);
    let results: Vec<&str> = record
        .trace
        .legs
        .iter()
        .map(|l| l.result.as_str())
        .collect();
    assert_eq!(results, ["unreachable", "unreachable", "answered"]);
    assert!(untrusted.received().is_empty() && misnamed.received().is_empty());
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_carrier_calls_over_tls_to_the_tls_listener_and_is_answered_over_tls() {
    let authority = TestAuthority::new("Plugboard test authority");
    let lab = CallLab::build(LabSetup {
        tls_listener: Some(server_config(authority.issue(&["127.0.0.1"]))),
        ..LabSetup::default()
    })
    .await;
    let buyer = lab.buyer("buyer_answers", 1).await;
    let target = lab.target(buyer.port, 20, 10).await;
    lab.bid(&target, 5_000_000, 0).await;
    let listener = lab.sip_tls.expect("a TLS listener");

    let received = call_over_tls(listener, &authority, NUMBER, CALLER).await;
    buyer.finish().await.assert_ok();
    let ok = received
        .iter()
        .find(|m| m.starts_with("SIP/2.0 200") && m.contains("INVITE"))
        .expect("the INVITE's 200");
    assert!(
        ok.contains(&format!("Contact: <sips:plugboard@{listener}>")),
        "requests to the carrier come to the TLS listener: {ok}"
    );
    let record = &lab.wait_for_records(1).await[0];
    assert_eq!(record.outcome, CallOutcome::Answered);
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ipv6_target_is_rung_from_the_ipv6_socket_beside_an_ipv4_listener() {
    let lab = CallLab::build(LabSetup {
        ipv6: true,
        ..LabSetup::default()
    })
    .await;
    let buyer = lab.buyer_on("::1", "buyer_answers", 1, &[]).await;
    let target = target_at(&lab, &format!("sip:sales@[::1]:{}", buyer.port)).await;
    lab.bid(&target, 5_000_000, 0).await;

    // The carrier calls the IPv4 listener.
    lab.carrier("caller_hangs_up", 1, &["-d", "100"])
        .await
        .assert_ok();
    let buyer = buyer.finish().await;
    buyer.assert_ok();
    let record = &lab.wait_for_records(1).await[0];
    assert_eq!(record.outcome, CallOutcome::Answered);
    let invite = buyer.first_received("INVITE ").expect("an INVITE");
    assert!(
        invite.text.contains("Via: SIP/2.0/UDP [::1]:"),
        "{}",
        invite.text
    );
    assert!(
        invite.text.contains("Contact: <sip:plugboard@[::1]:"),
        "{}",
        invite.text
    );
    lab.stop().await;
}
