//! SIP message layer: parse + validate + the §8.2 checks of a typical INVITE
//! (with SDP) and of its 200 OK, and serialising them back.
//! Run with `cargo bench -p host --bench sip`.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use host::sip::{Capabilities, Inbound, inspect, parse_datagram};

const SDP: &str = "v=0\r\no=- 3848276298 3848276298 IN IP4 192.0.2.10\r\ns=-\r\n\
c=IN IP4 192.0.2.10\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0 8 101\r\na=sendrecv\r\n";

/// A carrier's INVITE as it arrives: 14 headers and an SDP offer.
fn invite() -> String {
    format!(
        "INVITE sip:+18005550100@plugboard.example SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK74bf9;rport\r\n\
Max-Forwards: 70\r\n\
To: <sip:+18005550100@plugboard.example>\r\n\
From: \"Caller\" <sip:+14155550123@carrier.example>;tag=9fxced76sl\r\n\
Call-ID: 3848276298220188511@carrier.example\r\n\
CSeq: 1 INVITE\r\n\
Contact: <sip:+14155550123@192.0.2.10:5060>\r\n\
P-Asserted-Identity: <sip:+14155550123;verstat=TN-Validation-Passed@carrier.example>\r\n\
Allow: INVITE, ACK, BYE, CANCEL, OPTIONS, UPDATE\r\n\
Supported: timer\r\n\
User-Agent: carrier-sbc/1.0\r\n\
Content-Type: application/sdp\r\n\
Content-Length: {}\r\n\r\n{SDP}",
        SDP.len()
    )
}

fn ok_response() -> String {
    invite()
        .replace(
            "INVITE sip:+18005550100@plugboard.example SIP/2.0",
            "SIP/2.0 200 OK",
        )
        .replace(
            "To: <sip:+18005550100@plugboard.example>",
            "To: <sip:+18005550100@plugboard.example>;tag=buyer7",
        )
        .replace("Max-Forwards: 70\r\n", "")
}

fn sip(c: &mut Criterion) {
    let caps = Capabilities::default();
    let invite_text = invite();
    let ok = ok_response();
    assert!(matches!(
        inspect(invite_text.as_bytes(), &caps, "t"),
        Inbound::Request(_)
    ));
    assert!(matches!(
        inspect(ok.as_bytes(), &caps, "t"),
        Inbound::Response(_)
    ));
    let mut group = c.benchmark_group("sip");
    group.throughput(Throughput::Elements(1));
    group.bench_function("invite/parse+validate+uas-checks", |b| {
        b.iter(|| inspect(invite_text.as_bytes(), &caps, "t"))
    });
    group.bench_function("200-ok/parse+validate", |b| {
        b.iter(|| inspect(ok.as_bytes(), &caps, "t"))
    });
    let invite = parse_datagram(invite_text.as_bytes()).expect("parses");
    group.bench_function("invite/serialise", |b| b.iter(|| invite.to_bytes()));
    group.finish();
}

criterion_group!(benches, sip, transactions);
criterion_main!(benches);

/// Transactions through the layer: a server INVITE transaction from the
/// INVITE to its termination (100 Trying, 180, 200; INVITE matched by key),
/// and a client non-INVITE one (request, 200, timer K), on simulated time.
fn transactions(c: &mut Criterion) {
    use host::transaction::{ClientNonInvite, ServerInvite, Timers, server_key};
    let request = parse_datagram(invite().as_bytes()).expect("parses");
    let ringing = host::sip::response_to(&request.headers, 180, "Ringing", "b1", &[]);
    let ok = host::sip::response_to(&request.headers, 200, "OK", "b1", &[]);
    let timers = Timers::default();
    let start = host::clock::now();
    let mut group = c.benchmark_group("transaction");
    group.throughput(Throughput::Elements(1));
    group.bench_function("server-invite/key+100+180+200+timer-L", |b| {
        b.iter(|| {
            let key = server_key(&request);
            let mut tx = ServerInvite::new(&request, false, timers);
            tx.send_response(start, ringing.clone());
            tx.send_response(start, ok.clone());
            while tx.poll_transmit().is_some() {}
            tx.handle_timeout(start + timers.timeout());
            (key, tx.state())
        })
    });
    let options = parse_datagram(
        invite()
            .replace("INVITE sip:", "OPTIONS sip:")
            .replace("CSeq: 1 INVITE", "CSeq: 1 OPTIONS")
            .as_bytes(),
    )
    .expect("parses");
    let options_ok = host::sip::response_to(&options.headers, 200, "OK", "b1", &[]);
    group.bench_function("client-non-invite/request+200+timer-K", |b| {
        b.iter(|| {
            let mut tx = ClientNonInvite::new(options.clone(), false, timers, start);
            tx.poll_transmit();
            tx.handle_response(start, options_ok.clone());
            tx.handle_timeout(start + timers.t4);
            tx.state()
        })
    });
    group.finish();
}
