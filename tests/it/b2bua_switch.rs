//! The B2BUA's switch on simulated time: no sockets, no clock. Each test
//! plays the carrier and the buyers by hand and compares the trace of what
//! the switch sent, and when, with a snapshot.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use expect_test::expect;
use host::auction::Ledger;
use host::b2bua::{
    Input, Path, Ring, RingTree, Route, Scored, Scoring, Switch, SwitchConfig, Work,
};
use host::model::{Bid, CallOutcome, CallRecord, Campaign, Target};
use host::sip::{
    Capabilities, Inbound, Location, Message, StartLine, Transport, inspect, response_to,
};
use host::transaction::Timers;

const CARRIER: &str = "192.0.2.1:5060";
const BUYER_A: &str = "192.0.2.10:5070";
const BUYER_B: &str = "192.0.2.11:5070";

fn address(text: &str) -> SocketAddr {
    text.parse().expect("address")
}

fn name_of(route: &Route) -> String {
    match route {
        Route::Udp(a) if *a == address(CARRIER) => "carrier".to_owned(),
        Route::Udp(a) if *a == address(BUYER_A) => "buyer A".to_owned(),
        Route::Udp(a) if *a == address(BUYER_B) => "buyer B".to_owned(),
        other => format!("{other:?}"),
    }
}

/// The switch, simulated time, and what it did.
struct Bench {
    switch: Switch,
    start: Instant,
    now: Instant,
    /// The wall clock at `start`, Unix milliseconds.
    unix_start_ms: i64,
    trace: String,
    sent: Vec<(Route, Message)>,
    work: Vec<Work>,
    records: Vec<CallRecord>,
}

/// The switch's configuration of these tests: anyone may call, at the
/// default rate.
fn config(max_calls: usize) -> SwitchConfig {
    SwitchConfig {
        local: "192.0.2.5:5060".to_owned(),
        local_tls: None,
        local_other_family: None,
        timers: Timers::default(),
        max_calls,
        retry_after_s: 7,
        quality_headers: true,
        trusted_sources: Vec::new(),
        invite_rate: host::b2bua::admission::InviteRate::per_second(
            host::config::DEFAULT_INVITE_RATE,
        ),
        first_response_timeout: host::b2bua::DEFAULT_FIRST_RESPONSE_TIMEOUT,
    }
}

impl Bench {
    fn new(max_calls: usize, ledger: Arc<Ledger>) -> Self {
        Self::with_config(config(max_calls), ledger)
    }

    fn with_config(config: SwitchConfig, ledger: Arc<Ledger>) -> Self {
        let start = host::clock::now();
        Bench {
            switch: Switch::new(config, ledger, 7),
            start,
            now: start,
            unix_start_ms: 0,
            trace: String::new(),
            sent: Vec::new(),
            work: Vec::new(),
            records: Vec::new(),
        }
    }

    fn drain(&mut self) {
        let at = self.now.duration_since(self.start).as_millis();
        while let Some(transmit) = self.switch.poll_transmit() {
            self.trace.push_str(&format!(
                "{at:05} ms -> {}: {}\n",
                name_of(&transmit.route),
                shown(&transmit.message)
            ));
            self.sent.push((transmit.route, transmit.message));
        }
        while let Some(work) = self.switch.poll_work() {
            self.work.push(work);
        }
    }

    /// A datagram from `from`, as the shell would hand it over.
    fn receive(&mut self, from: &str, text: &str) {
        let bytes = text.replace('\n', "\r\n");
        let inbound = inspect(bytes.as_bytes(), &Capabilities::default(), "tag");
        self.receive_inbound(from, inbound);
    }

    /// Wall-clock time of the simulated `now`, Unix milliseconds.
    fn unix_ms(&self) -> i64 {
        self.unix_start_ms
            + i64::try_from(self.now.duration_since(self.start).as_millis())
                .expect("simulated time fits")
    }

    fn receive_inbound(&mut self, from: &str, inbound: Inbound) {
        let at = self.now.duration_since(self.start).as_millis();
        let what = match &inbound {
            Inbound::Request(m) | Inbound::Response(m) | Inbound::Refuse(m) => shown(m),
            Inbound::Drop(reason) => format!("(dropped: {reason})"),
        };
        let who = match from {
            CARRIER => "carrier",
            BUYER_A => "buyer A",
            _ => "buyer B",
        };
        self.trace
            .push_str(&format!("{at:05} ms <- {who}: {what}\n"));
        self.switch
            .handle_inbound(self.now, self.unix_ms(), inbound, address(from), Path::Udp);
        self.drain();
    }

    /// Lets `ms` of simulated time pass, firing every timer on the way.
    fn advance(&mut self, ms: u64) {
        let until = self.now + Duration::from_millis(ms);
        while let Some(at) = self.switch.poll_timeout().filter(|at| *at <= until) {
            self.now = self.now.max(at);
            self.switch.handle_timeout(self.now);
            self.drain();
        }
        self.now = until;
    }

    /// Answers the pending scoring and auction work: quality 60, `rings`.
    /// Each auction request must be the one the shell can build from the
    /// call's score request (the policy worker runs auctions unasked).
    fn route(&mut self, rings: Vec<Ring>) {
        let work = std::mem::take(&mut self.work);
        let mut asked = std::collections::HashMap::new();
        for item in work {
            match item {
                Work::Score { call, request } => {
                    asked.insert(call, request);
                    self.switch.handle_input(
                        self.now,
                        call,
                        Input::Scored(Scored::Campaign(Box::new(scoring()))),
                    );
                    self.drain();
                }
                Work::Record(finished) => self.records.push(finished.record),
                Work::Auction { .. } => self.work.push(item),
            }
        }
        let work = std::mem::take(&mut self.work);
        for item in work {
            match item {
                Work::Auction { call, request } => {
                    let score_request = asked.get(&call).expect("scored just now");
                    assert_eq!(request, score_request.auction(Box::new(scoring())));
                    let tree = RingTree {
                        rings: rings.clone(),
                        ..RingTree::default()
                    };
                    self.switch
                        .handle_input(self.now, call, Input::Auctioned(Box::new(tree)));
                    self.drain();
                }
                Work::Record(finished) => self.records.push(finished.record),
                other => self.work.push(other),
            }
        }
    }

    /// The last INVITE the switch sent to `to`.
    fn last_invite_to(&self, to: &str) -> Message {
        self.sent
            .iter()
            .rev()
            .find(|(route, m)| {
                *route == Route::Udp(address(to)) && m.method() == Some(&host::sip::Method::Invite)
            })
            .map(|(_, m)| m.clone())
            .expect("an INVITE was sent there")
    }

    /// A buyer's response to the last INVITE sent to it.
    fn answer(&mut self, buyer: &str, code: u16, reason: &str) {
        let request = self.last_invite_to(buyer);
        let mut response = response_to(
            &request.headers,
            code,
            reason,
            "buyertag",
            &[("Contact", format!("<sip:buyer@{buyer}>"))],
        );
        if code == 200 {
            response.headers.retain(|h| h.name != "Content-Length");
            let sdp = "v=0\r\no=buyer 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\nm=audio 7000 RTP/AVP 0\r\n";
            response
                .headers
                .push(header("Content-Type", "application/sdp"));
            response
                .headers
                .push(header("Content-Length", &sdp.len().to_string()));
            response.body = sdp.as_bytes().to_vec();
        }
        self.receive_inbound(buyer, Inbound::Response(response));
    }

    fn take_records(&mut self) -> Vec<CallRecord> {
        let mut records = std::mem::take(&mut self.records);
        for item in std::mem::take(&mut self.work) {
            if let Work::Record(finished) = item {
                records.push(finished.record);
            }
        }
        records
    }
}

/// A message in a trace line: a request by its method, a response by its
/// status line.
fn shown(message: &Message) -> String {
    match &message.start {
        StartLine::Request { method, .. } => method.to_string(),
        StartLine::Response { code, reason } => format!("SIP/2.0 {code} {reason}"),
    }
}

fn header(name: &str, value: &str) -> host::sip::Header {
    host::sip::Header {
        name: name.to_owned(),
        value: value.to_owned(),
    }
}

fn scoring() -> Scoring {
    Scoring {
        campaign: Campaign {
            id: "cmp_1".into(),
            tenant_id: "tnt_m".into(),
            name: "solar".into(),
            numbers: vec!["+18005550100".into()],
            floor_price_micros: 0,
            fallback_target: None,
            scorer_policy_id: None,
            selector_policy_id: None,
            shared_attribution_keys: vec![],
            bidder_access: Default::default(),
            early_ringback: false,
            auction_timeout_ms: 100,
            created_at: 0,
        },
        called: "+18005550100".into(),
        quality: 60,
        tags: vec![],
        policies: vec![],
        attribution: vec![],
        call: host::model::CallFacts::default(),
        history: host::model::CallerHistory::default(),
    }
}

fn ring(id: &str, buyer: &str, ring_timeout_s: u32, max_concurrent: u32) -> Ring {
    let target = Target {
        id: format!("tgt_{id}"),
        bidder_id: "bdr_1".into(),
        tenant_id: "tnt_b".into(),
        uri: format!("sip:sales@{buyer}"),
        ring_timeout_s,
        max_concurrent,
        ..Target::default()
    };
    let bid = Bid {
        id: format!("bid_{id}"),
        tenant_id: "tnt_b".into(),
        bidder_id: "bdr_1".into(),
        campaign_id: "cmp_1".into(),
        target_id: target.id.clone(),
        amount_micros: 1_000_000,
        min_quality: 0,
        time_zone: "UTC".into(),
        ..Bid::default()
    };
    Ring {
        uri: target.uri.clone(),
        destination: Some(Location {
            address: address(buyer),
            transport: Transport::Udp,
            tls_name: None,
        }),
        bid: Some((bid, target)),
    }
}

fn invite(call: &str) -> String {
    format!(
        "INVITE sip:+18005550100@192.0.2.5 SIP/2.0
Via: SIP/2.0/UDP {CARRIER};branch=z9hG4bK{call}
Max-Forwards: 70
To: <sip:+18005550100@192.0.2.5>
From: <sip:+14155550123@{CARRIER}>;tag=c-{call}
Call-ID: {call}@carrier
CSeq: 1 INVITE
Contact: <sip:+14155550123@{CARRIER}>
Content-Type: application/sdp
Content-Length: 4

v=0
"
    )
}

fn ack(call: &str, to_tag: &str) -> String {
    format!(
        "ACK sip:plugboard@192.0.2.5:5060 SIP/2.0
Via: SIP/2.0/UDP {CARRIER};branch=z9hG4bK{call}-ack
Max-Forwards: 70
To: <sip:+18005550100@192.0.2.5>;tag={to_tag}
From: <sip:+14155550123@{CARRIER}>;tag=c-{call}
Call-ID: {call}@carrier
CSeq: 1 ACK
Content-Length: 0

"
    )
}

/// Our To tag in the last response to the carrier.
fn carrier_tag(bench: &Bench) -> String {
    let (_, response) = bench
        .sent
        .iter()
        .rev()
        .find(|(route, m)| *route == Route::Udp(address(CARRIER)) && !m.is_request())
        .expect("a response to the carrier");
    host::sip::tag_param(response.header("To").unwrap_or_default())
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn the_answer_is_retransmitted_to_the_caller_until_its_ack() {
    let mut bench = Bench::new(10, Arc::new(Ledger::new()));
    bench.receive(CARRIER, &invite("a1"));
    bench.route(vec![ring("a", BUYER_A, 20, 0)]);
    bench.answer(BUYER_A, 180, "Ringing");
    bench.answer(BUYER_A, 200, "OK");
    // The carrier's ACK is lost twice; the 200 goes out at T1, 2·T1, 4·T1.
    bench.advance(3600);
    let tag = carrier_tag(&bench);
    bench.receive(CARRIER, &ack("a1", &tag));
    bench.advance(10_000);
    expect![[r#"
        00000 ms <- carrier: INVITE
        00000 ms -> carrier: SIP/2.0 100 Trying
        00000 ms -> buyer A: INVITE
        00000 ms <- buyer A: SIP/2.0 180 Ringing
        00000 ms -> carrier: SIP/2.0 180 Ringing
        00000 ms <- buyer A: SIP/2.0 200 OK
        00000 ms -> buyer A: ACK
        00000 ms -> carrier: SIP/2.0 200 OK
        00500 ms -> carrier: SIP/2.0 200 OK
        01500 ms -> carrier: SIP/2.0 200 OK
        03500 ms -> carrier: SIP/2.0 200 OK
        03600 ms <- carrier: ACK
    "#]]
    .assert_eq(&bench.trace);
}

#[test]
fn a_ring_timeout_cancels_on_time_and_rings_the_next_target_and_a_late_provisional_is_dropped() {
    let mut bench = Bench::new(10, Arc::new(Ledger::new()));
    bench.receive(CARRIER, &invite("b1"));
    bench.route(vec![ring("a", BUYER_A, 2, 0), ring("b", BUYER_B, 20, 0)]);
    bench.answer(BUYER_A, 180, "Ringing");
    bench.advance(2000);
    bench.answer(BUYER_A, 487, "Request Terminated");
    bench.answer(BUYER_B, 200, "OK");
    // A 183 that parallel carriers deliver after the 200: not relayed.
    bench.answer(BUYER_B, 183, "Session Progress");
    expect![[r#"
        00000 ms <- carrier: INVITE
        00000 ms -> carrier: SIP/2.0 100 Trying
        00000 ms -> buyer A: INVITE
        00000 ms <- buyer A: SIP/2.0 180 Ringing
        00000 ms -> carrier: SIP/2.0 180 Ringing
        02000 ms -> buyer A: CANCEL
        02000 ms -> buyer B: INVITE
        02000 ms <- buyer A: SIP/2.0 487 Request Terminated
        02000 ms -> buyer A: ACK
        02000 ms <- buyer B: SIP/2.0 200 OK
        02000 ms -> buyer B: ACK
        02000 ms -> carrier: SIP/2.0 200 OK
        02000 ms <- buyer B: SIP/2.0 183 Session Progress
    "#]]
    .assert_eq(&bench.trace);
}

/// The carrier's re-INVITE number `cseq` on the call's dialog.
fn carrier_reinvite(call: &str, to_tag: &str, cseq: u32) -> String {
    format!(
        "INVITE sip:plugboard@192.0.2.5:5060 SIP/2.0
Via: SIP/2.0/UDP {CARRIER};branch=z9hG4bK{call}-re{cseq}
Max-Forwards: 70
To: <sip:+18005550100@192.0.2.5>;tag={to_tag}
From: <sip:+14155550123@{CARRIER}>;tag=c-{call}
Call-ID: {call}@carrier
CSeq: {cseq} INVITE
Contact: <sip:+14155550123@{CARRIER}>
Content-Length: 0

"
    )
}

#[test]
fn a_second_invite_while_one_is_pending_gets_500_with_retry_after_and_crossing_ones_491() {
    let mut bench = Bench::new(10, Arc::new(Ledger::new()));
    bench.receive(CARRIER, &invite("g1"));
    bench.route(vec![ring("a", BUYER_A, 20, 0)]);
    bench.answer(BUYER_A, 200, "OK");
    let tag = carrier_tag(&bench);
    bench.receive(CARRIER, &ack("g1", &tag));
    // The carrier's re-INVITE goes to the buyer, which has not answered it
    // when the carrier sends another.
    bench.receive(CARRIER, &carrier_reinvite("g1", &tag, 2));
    bench.receive(CARRIER, &carrier_reinvite("g1", &tag, 3));
    // The buyer's own re-INVITE crosses ours.
    let ours = bench.last_invite_to(BUYER_A);
    let header = |name: &str| ours.header(name).unwrap_or_default().to_owned();
    let buyer_reinvite = format!(
        "INVITE sip:plugboard@192.0.2.5:5060 SIP/2.0
Via: SIP/2.0/UDP {BUYER_A};branch=z9hG4bKbuyer-re1
Max-Forwards: 70
To: {}
From: {};tag=buyertag
Call-ID: {}
CSeq: 7 INVITE
Contact: <sip:buyer@{BUYER_A}>
Content-Length: 0

",
        header("From"),
        header("To"),
        header("Call-ID"),
    );
    bench.receive(BUYER_A, &buyer_reinvite);
    let responses: Vec<String> = bench
        .sent
        .iter()
        .filter(|(_, m)| !m.is_request() && m.status() >= 400)
        .map(|(route, m)| {
            format!(
                "{} {} {} Retry-After: {:?}",
                name_of(route),
                m.header("CSeq").unwrap_or_default(),
                shown(m),
                m.header("Retry-After"),
            )
        })
        .collect();
    assert_eq!(responses.len(), 2, "{}", bench.trace);
    assert!(
        responses[0]
            .starts_with("carrier 3 INVITE SIP/2.0 500 Server Internal Error Retry-After: Some("),
        "{responses:?}"
    );
    let retry: u32 = responses[0]
        .rsplit_once("Some(\"")
        .and_then(|(_, v)| v.trim_end_matches("\")").parse().ok())
        .expect("a number of seconds");
    assert!(retry <= 10, "{retry}");
    assert_eq!(
        responses[1],
        "buyer A 7 INVITE SIP/2.0 491 Request Pending Retry-After: None"
    );
}

#[test]
fn the_callers_record_route_is_copied_in_order_into_responses_that_make_the_dialog() {
    let mut bench = Bench::new(10, Arc::new(Ledger::new()));
    let routed = invite("rr1").replace(
        "Max-Forwards: 70\n",
        "Max-Forwards: 70\nRecord-Route: <sip:edge.carrier.test;lr>\nRecord-Route: <sip:core.carrier.test;lr;ftag=x>\n",
    );
    bench.receive(CARRIER, &routed);
    bench.route(vec![ring("a", BUYER_A, 20, 0)]);
    bench.answer(BUYER_A, 180, "Ringing");
    bench.answer(BUYER_A, 200, "OK");
    let to_carrier: Vec<(u16, Vec<&str>)> = bench
        .sent
        .iter()
        .filter(|(route, m)| *route == Route::Udp(address(CARRIER)) && !m.is_request())
        .map(|(_, m)| {
            let routes = m
                .headers
                .iter()
                .filter(|h| h.name == "Record-Route")
                .map(|h| h.value.as_str())
                .collect();
            (m.status(), routes)
        })
        .collect();
    let both = vec![
        "<sip:edge.carrier.test;lr>",
        "<sip:core.carrier.test;lr;ftag=x>",
    ];
    assert_eq!(
        to_carrier,
        vec![(100, vec![]), (180, both.clone()), (200, both)],
        "100 Trying makes no dialog"
    );

    // A refusal makes none either.
    let mut refused = Bench::new(10, Arc::new(Ledger::new()));
    refused.receive(
        CARRIER,
        &invite("rr2").replace(
            "Max-Forwards: 70\n",
            "Max-Forwards: 70\nRecord-Route: <sip:edge.carrier.test;lr>\n",
        ),
    );
    refused.route(vec![]);
    let (_, last) = refused.sent.last().expect("a response");
    assert!(last.status() >= 400 && last.header("Record-Route").is_none());
}

/// A 200 from buyer A to the last INVITE sent to it, with `tag` in To.
fn buyer_ok(bench: &Bench, tag: &str) -> Message {
    let request = bench.last_invite_to(BUYER_A);
    response_to(
        &request.headers,
        200,
        "OK",
        tag,
        &[("Contact", format!("<sip:{tag}@{BUYER_A}>"))],
    )
}

#[test]
fn each_forks_answer_is_acknowledged_on_its_own_dialog_and_all_but_the_first_hung_up() {
    let mut bench = Bench::new(10, Arc::new(Ledger::new()));
    bench.receive(CARRIER, &invite("f1"));
    bench.route(vec![ring("a", BUYER_A, 20, 0)]);
    let first = buyer_ok(&bench, "fork1");
    let second = buyer_ok(&bench, "fork2");
    bench.receive_inbound(BUYER_A, Inbound::Response(first.clone()));
    bench.receive_inbound(BUYER_A, Inbound::Response(second.clone()));
    // Both keep retransmitting until their ACKs arrive; say one of each.
    bench.receive_inbound(BUYER_A, Inbound::Response(second));
    bench.receive_inbound(BUYER_A, Inbound::Response(first));
    let to_buyer: Vec<String> = bench
        .sent
        .iter()
        .filter(|(route, m)| *route == Route::Udp(address(BUYER_A)) && m.is_request())
        .map(|(_, m)| {
            let tag = host::sip::tag_param(m.header("To").unwrap_or_default()).unwrap_or("-");
            format!("{} {tag}", shown(m))
        })
        .collect();
    assert_eq!(
        to_buyer,
        [
            "INVITE -",
            "ACK fork1",
            "ACK fork2",
            "BYE fork2",
            "ACK fork2",
            "ACK fork1"
        ]
    );
    let to_carrier = bench
        .sent
        .iter()
        .filter(|(route, m)| {
            *route == Route::Udp(address(CARRIER)) && !m.is_request() && m.status() == 200
        })
        .count();
    assert_eq!(to_carrier, 1, "the caller sees one answer");
    // The buyer's side of the second dialog ends; the call goes on.
    let bye = bench
        .sent
        .iter()
        .rev()
        .find(|(_, m)| m.method() == Some(&host::sip::Method::Bye))
        .map(|(_, m)| m.clone())
        .expect("a BYE");
    let ok = response_to(&bye.headers, 200, "OK", "fork2", &[]);
    bench.receive_inbound(BUYER_A, Inbound::Response(ok));
    let tag = carrier_tag(&bench);
    bench.receive(CARRIER, &ack("f1", &tag));
    bench.receive(
        CARRIER,
        &format!(
            "BYE sip:plugboard@192.0.2.5:5060 SIP/2.0
Via: SIP/2.0/UDP {CARRIER};branch=z9hG4bKf1-bye
Max-Forwards: 70
To: <sip:+18005550100@192.0.2.5>;tag={tag}
From: <sip:+14155550123@{CARRIER}>;tag=c-f1
Call-ID: f1@carrier
CSeq: 2 BYE
Content-Length: 0

"
        ),
    );
    let last_bye = bench
        .sent
        .iter()
        .rev()
        .find(|(_, m)| m.method() == Some(&host::sip::Method::Bye))
        .map(|(_, m)| host::sip::tag_param(m.header("To").unwrap_or_default()).map(str::to_owned))
        .expect("a BYE");
    assert_eq!(
        last_bye.as_deref(),
        Some("fork1"),
        "the call's own dialog is hung up"
    );
    let records = bench.take_records();
    assert_eq!(records[0].trace.legs[0].other_forks_answered, 1);
    assert_eq!(records[0].trace.legs[0].result, "answered");
}

/// The last 200 the switch sent the carrier.
fn last_ok_to_carrier(bench: &Bench) -> Message {
    bench
        .sent
        .iter()
        .rev()
        .find(|(route, m)| *route == Route::Udp(address(CARRIER)) && m.status() == 200)
        .map(|(_, m)| m.clone())
        .expect("a 200 to the carrier")
}

/// The carrier's INVITE asking for session timers of `seconds`, refreshed
/// by the carrier.
fn invite_with_timer(call: &str, seconds: u32) -> String {
    invite(call).replace(
        "Max-Forwards: 70\n",
        &format!("Max-Forwards: 70\nSupported: timer\nSession-Expires: {seconds};refresher=uac\n"),
    )
}

/// Requests of `method` the switch sent, retransmissions left out.
fn sent_requests(bench: &Bench, method: host::sip::Method) -> Vec<(String, Message)> {
    let mut seen = Vec::new();
    for (route, m) in &bench.sent {
        let key = (
            name_of(route),
            m.header("CSeq").unwrap_or_default().to_owned(),
        );
        if m.method() == Some(&method) && !seen.iter().any(|(k, _)| *k == key) {
            seen.push((key, m.clone()));
        }
    }
    seen.into_iter().map(|((to, _), m)| (to, m)).collect()
}

/// BYEs the switch sent, by where they went.
fn byes(bench: &Bench) -> Vec<String> {
    sent_requests(bench, host::sip::Method::Bye)
        .into_iter()
        .map(|(to, _)| to)
        .collect()
}

#[test]
fn a_session_whose_refreshes_stop_ends_with_bye_on_both_legs() {
    let mut bench = Bench::new(10, Arc::new(Ledger::new()));
    bench.receive(CARRIER, &invite_with_timer("st1", 90));
    bench.route(vec![ring("a", BUYER_A, 20, 0)]);
    let asked = bench.last_invite_to(BUYER_A);
    assert_eq!(asked.header("Session-Expires"), Some("90;refresher=uas"));
    assert_eq!(asked.header("Min-SE"), Some("90"));
    assert!(
        asked
            .header("Supported")
            .is_some_and(|s| s.contains("timer"))
    );
    bench.answer(BUYER_A, 200, "OK");
    let answer = last_ok_to_carrier(&bench);
    assert_eq!(answer.header("Session-Expires"), Some("90;refresher=uac"));
    assert_eq!(answer.header("Require"), Some("timer"));
    let tag = carrier_tag(&bench);
    bench.receive(CARRIER, &ack("st1", &tag));

    // The carrier refreshes once, at 40 s: relayed, answered, renewed.
    bench.advance(40_000);
    bench.receive(CARRIER, &carrier_reinvite("st1", &tag, 2));
    let refresh = bench.last_invite_to(BUYER_A);
    assert_eq!(refresh.header("CSeq"), Some("2 INVITE"));
    assert_eq!(refresh.header("Session-Expires"), Some("90;refresher=uas"));
    bench.answer(BUYER_A, 200, "OK");
    let renewed = last_ok_to_carrier(&bench);
    assert_eq!(renewed.header("CSeq"), Some("2 INVITE"));
    assert_eq!(renewed.header("Session-Expires"), Some("90;refresher=uac"));
    bench.receive(
        CARRIER,
        &ack("st1", &tag).replace("CSeq: 1 ACK", "CSeq: 2 ACK"),
    );

    // Then nothing: 90 s less 30 s after the refresh, both legs get BYE.
    bench.advance(59_000);
    assert!(byes(&bench).is_empty(), "{}", bench.trace);
    bench.advance(2_000);
    assert_eq!(byes(&bench), ["carrier", "buyer A"], "{}", bench.trace);
    let records = bench.take_records();
    assert_eq!(
        records[0].trace.ended_by.as_deref(),
        Some("session_expired")
    );
    assert_eq!(records[0].outcome, CallOutcome::Answered);
}

#[test]
fn a_session_interval_below_90_seconds_gets_422_with_min_se() {
    let mut bench = Bench::new(10, Arc::new(Ledger::new()));
    bench.receive(CARRIER, &invite_with_timer("st2", 30));
    let (_, refusal) = bench.sent.last().expect("a response");
    assert_eq!(refusal.status(), 422);
    assert_eq!(refusal.header("Min-SE"), Some("90"));
    assert!(
        !bench.work.iter().any(|w| matches!(w, Work::Score { .. })),
        "the call is not scored"
    );
}

#[test]
fn plugboard_refreshes_with_update_where_the_buyer_leaves_it_to_us() {
    let mut bench = Bench::new(10, Arc::new(Ledger::new()));
    bench.receive(CARRIER, &invite("st3"));
    bench.route(vec![ring("a", BUYER_A, 20, 0)]);
    // The buyer takes a 120 s timer but makes us (the UAC) refresh.
    let request = bench.last_invite_to(BUYER_A);
    let mut ok = response_to(
        &request.headers,
        200,
        "OK",
        "buyertag",
        &[
            ("Contact", format!("<sip:buyer@{BUYER_A}>")),
            ("Session-Expires", "120;refresher=uac".to_owned()),
            ("Require", "timer".to_owned()),
            ("Allow", "INVITE, ACK, BYE, UPDATE".to_owned()),
        ],
    );
    ok.body = b"v=0\r\n".to_vec();
    ok.headers.retain(|h| h.name != "Content-Length");
    ok.headers.push(header("Content-Type", "application/sdp"));
    ok.headers.push(header("Content-Length", "5"));
    bench.receive_inbound(BUYER_A, Inbound::Response(ok));
    let tag = carrier_tag(&bench);
    bench.receive(CARRIER, &ack("st3", &tag));
    let updates = |bench: &Bench| {
        sent_requests(bench, host::sip::Method::Update)
            .into_iter()
            .map(|(_, m)| m)
            .collect::<Vec<_>>()
    };
    bench.advance(59_000);
    assert!(updates(&bench).is_empty());
    bench.advance(2_000);
    let sent = updates(&bench);
    assert_eq!(sent.len(), 1, "{}", bench.trace);
    assert_eq!(sent[0].header("Session-Expires"), Some("120;refresher=uac"));
    assert!(sent[0].body.is_empty(), "a refresh changes no media");
    let answer = response_to(&sent[0].headers, 200, "OK", "buyertag", &[]);
    bench.receive_inbound(BUYER_A, Inbound::Response(answer));
    // Renewed: the next refresh is 60 s after this one, and no BYE.
    bench.advance(58_000);
    assert_eq!(updates(&bench).len(), 1);
    bench.advance(3_000);
    assert_eq!(updates(&bench).len(), 2);
    assert!(byes(&bench).is_empty(), "{}", bench.trace);
}

#[test]
fn an_rfc_2543_caller_without_tags_or_max_forwards_is_routed_and_answered() {
    let mut bench = Bench::new(10, Arc::new(Ledger::new()));
    bench.receive(
        CARRIER,
        &format!(
            "INVITE sip:+18005550100@192.0.2.5 SIP/2.0
Via: SIP/2.0/UDP {CARRIER}
To: sip:+18005550100@192.0.2.5
From: sip:+14155550123@{CARRIER}
Call-ID: 2543@carrier
CSeq: 1 INVITE
Contact: sip:+14155550123@{CARRIER}
Content-Length: 0

"
        ),
    );
    bench.route(vec![ring("a", BUYER_A, 20, 0)]);
    let asked = bench.last_invite_to(BUYER_A);
    assert_eq!(asked.header("Max-Forwards"), Some("69"), "70 less one");
    bench.answer(BUYER_A, 200, "OK");
    let answer = last_ok_to_carrier(&bench);
    assert!(
        answer.header("To").is_some_and(|to| to.contains(";tag=")),
        "our To tag makes the dialog"
    );
}

#[test]
fn a_full_target_is_skipped_and_the_trace_says_so() {
    let ledger = Arc::new(Ledger::new());
    let full = ring("a", BUYER_A, 20, 1);
    let (bid, target) = full.bid.clone().expect("a bid");
    let _taken = ledger.take(&bid, &target, 0).0.expect("its one place");
    let mut bench = Bench::new(10, ledger.clone());
    bench.receive(CARRIER, &invite("c1"));
    bench.route(vec![full, ring("b", BUYER_B, 20, 1)]);
    assert_eq!(
        ledger.active("tgt_b"),
        1,
        "the ringing target holds a place"
    );
    bench.answer(BUYER_B, 486, "Busy Here");
    assert_eq!(ledger.active("tgt_b"), 0, "a failed leg frees its place");
    let records = bench.take_records();
    let legs: Vec<&str> = records[0]
        .trace
        .legs
        .iter()
        .map(|l| l.result.as_str())
        .collect();
    assert_eq!(legs, ["at_capacity", "busy"]);
    assert_eq!(records[0].trace.ring_order, ["bid_b"]);
    assert_eq!(records[0].outcome, CallOutcome::NoAnswer);
    assert!(
        bench.trace.contains("-> carrier: SIP/2.0 480"),
        "{}",
        bench.trace
    );
}

#[test]
fn calls_beyond_the_maximum_get_503_with_retry_after() {
    let mut bench = Bench::new(1, Arc::new(Ledger::new()));
    bench.receive(CARRIER, &invite("d1"));
    bench.receive(CARRIER, &invite("d2"));
    let (_, refusal) = bench.sent.last().expect("sent").clone();
    assert_eq!(refusal.status(), 503);
    assert_eq!(refusal.header("Retry-After"), Some("7"));
    assert_eq!(bench.switch.stats().overloaded, 1);
    assert_eq!(bench.switch.active_calls(), 1);
}

#[test]
fn invites_from_outside_the_trusted_sources_get_403_and_past_their_rate_503() {
    let mut config = config(100);
    config.trusted_sources = vec!["192.0.2.1/32".parse().expect("range")];
    config.invite_rate = host::b2bua::admission::InviteRate {
        per_second: 1.0,
        burst: 2.0,
    };
    let mut bench = Bench::with_config(config, Arc::new(Ledger::new()));
    bench.receive(BUYER_A, &invite("u1"));
    let (_, refusal) = bench.sent.last().expect("sent").clone();
    assert_eq!(refusal.status(), 403, "a buyer's address is no carrier's");
    for call in ["r1", "r2", "r3"] {
        bench.receive(CARRIER, &invite(call));
    }
    let (_, refusal) = bench.sent.last().expect("sent").clone();
    assert_eq!(refusal.status(), 503, "the third in a burst of two");
    assert_eq!(refusal.header("Retry-After"), Some("7"));
    let stats = bench.switch.stats();
    assert_eq!((stats.untrusted, stats.too_fast, stats.calls), (1, 1, 2));
    bench.advance(1000);
    bench.receive(CARRIER, &invite("r4"));
    assert_eq!(bench.switch.stats().calls, 3, "the rate refills with time");
}

#[test]
fn an_hourly_cap_sends_calls_to_the_next_bid_until_the_hour_ends_in_the_bidders_zone() {
    let ledger = Arc::new(Ledger::new());
    let mut bench = Bench::new(10, ledger.clone());
    // 10:59:00 in Kolkata (UTC+05:30) is 05:29:00 UTC: the bidder's hour
    // ends in a minute, UTC's in 31.
    bench.unix_start_ms = 1_795_930_140_000;
    let mut capped = ring("a", BUYER_A, 20, 0);
    if let Some((bid, _)) = &mut capped.bid {
        bid.hourly_cap = Some(1);
        bid.time_zone = "Asia/Kolkata".into();
    }
    let tree = vec![capped, ring("b", BUYER_B, 20, 0)];
    let invites_to = |bench: &Bench, buyer: &str| {
        bench
            .sent
            .iter()
            .filter(|(route, m)| {
                *route == Route::Udp(address(buyer))
                    && m.method() == Some(&host::sip::Method::Invite)
            })
            .count()
    };

    bench.receive(CARRIER, &invite("k1"));
    bench.route(tree.clone());
    bench.answer(BUYER_A, 200, "OK");
    assert_eq!(
        invites_to(&bench, BUYER_A),
        1,
        "the first call takes the cap"
    );

    bench.advance(20_000);
    bench.receive(CARRIER, &invite("k2"));
    bench.route(tree.clone());
    assert_eq!(
        invites_to(&bench, BUYER_A),
        1,
        "10:59:20: the cap is used up"
    );
    assert_eq!(invites_to(&bench, BUYER_B), 1, "the next bid rings");
    bench.answer(BUYER_B, 486, "Busy Here");
    let records = bench.take_records();
    let second = records
        .iter()
        .find(|r| r.trace.legs.len() == 2)
        .expect("k2's record");
    let legs: Vec<&str> = second
        .trace
        .legs
        .iter()
        .map(|l| l.result.as_str())
        .collect();
    assert_eq!(legs, ["hourly_cap_reached", "busy"]);

    bench.advance(40_000);
    bench.receive(CARRIER, &invite("k3"));
    bench.route(tree);
    assert_eq!(
        invites_to(&bench, BUYER_A),
        2,
        "11:00:00 in Kolkata (still 05:30 UTC): a new hour, the cap is free"
    );
}
