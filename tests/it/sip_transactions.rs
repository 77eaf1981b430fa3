//! RFC 3261 §17 transactions on simulated time: every timer of every state
//! machine fires (or does not) when the RFC says, and matching finds the
//! transaction a message belongs to.

use std::time::{Duration, Instant};

use host::sip::{Message, parse_datagram};
use host::transaction::{
    ClientInvite, ClientNonInvite, Event, ServerInvite, ServerNonInvite, Timers,
    cancelled_invite_key, client_key, server_key,
};

const T1: Duration = Duration::from_millis(500);

fn request(method: &str) -> Message {
    let text = format!(
        "{method} sip:sales@192.0.2.20 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKabc\r\nMax-Forwards: 70\r\n\
         To: <sip:sales@192.0.2.20>\r\nFrom: <sip:pb@192.0.2.1>;tag=pb1\r\nCall-ID: tx@192.0.2.1\r\nCSeq: 1 {method}\r\n\
         Route: <sip:proxy.example;lr>\r\nContent-Length: 0\r\n\r\n"
    );
    parse_datagram(text.as_bytes()).expect("request")
}

fn response(code: u16, method: &str) -> Message {
    let text = format!(
        "SIP/2.0 {code} Reason\r\nVia: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKabc\r\nTo: <sip:sales@192.0.2.20>;tag=callee\r\n\
         From: <sip:pb@192.0.2.1>;tag=pb1\r\nCall-ID: tx@192.0.2.1\r\nCSeq: 1 {method}\r\nContent-Length: 0\r\n\r\n"
    );
    parse_datagram(text.as_bytes()).expect("response")
}

fn first_line(m: &Message) -> String {
    String::from_utf8_lossy(&m.to_bytes())
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// Anything a state machine can be driven by on simulated time.
trait Machine {
    fn timeout(&self) -> Option<Instant>;
    fn fire(&mut self, now: Instant);
    fn drain(&mut self, now: Instant, start: Instant, log: &mut Vec<String>);
}

macro_rules! machine {
    ($t:ty) => {
        impl Machine for $t {
            fn timeout(&self) -> Option<Instant> {
                self.poll_timeout()
            }
            fn fire(&mut self, now: Instant) {
                self.handle_timeout(now)
            }
            fn drain(&mut self, now: Instant, start: Instant, log: &mut Vec<String>) {
                let at = (now - start).as_secs_f64();
                while let Some(m) = self.poll_transmit() {
                    log.push(format!("{at:.1}s send {}", first_line(&m)));
                }
                while let Some(e) = self.poll_event() {
                    let e = match e {
                        Event::Response(m) => format!("response {}", first_line(&m)),
                        Event::Ack(_) => "ack".to_owned(),
                        other => format!("{other:?}"),
                    };
                    log.push(format!("{at:.1}s event {e}"));
                }
            }
        }
    };
}
machine!(ClientInvite);
machine!(ClientNonInvite);
machine!(ServerInvite);
machine!(ServerNonInvite);

/// Delivers what is pending at `now`, then fires every timer due up to
/// `until` in order; times in the log are relative to `base`.
fn run(m: &mut impl Machine, base: Instant, now: Instant, until: Instant, log: &mut Vec<String>) {
    m.drain(now, base, log);
    while let Some(at) = m.timeout().filter(|t| *t <= until) {
        m.fire(at);
        m.drain(at, base, log);
    }
}

#[test]
fn invite_is_retransmitted_until_timer_b() {
    let start = host::clock::now();
    let mut tx = ClientInvite::new(request("INVITE"), false, Timers::default(), start);
    let mut log = Vec::new();
    run(
        &mut tx,
        start,
        start,
        start + Duration::from_secs(60),
        &mut log,
    );
    expect_test::expect![[r#"
        0.0s send INVITE sip:sales@192.0.2.20 SIP/2.0
        0.5s send INVITE sip:sales@192.0.2.20 SIP/2.0
        1.5s send INVITE sip:sales@192.0.2.20 SIP/2.0
        3.5s send INVITE sip:sales@192.0.2.20 SIP/2.0
        7.5s send INVITE sip:sales@192.0.2.20 SIP/2.0
        15.5s send INVITE sip:sales@192.0.2.20 SIP/2.0
        31.5s send INVITE sip:sales@192.0.2.20 SIP/2.0
        32.0s event Timeout
        32.0s event Terminated"#]]
    .assert_eq(&log.join("\n"));
}

#[test]
fn invite_over_a_reliable_transport_is_not_retransmitted() {
    let start = host::clock::now();
    let mut tx = ClientInvite::new(request("INVITE"), true, Timers::default(), start);
    let mut log = Vec::new();
    run(
        &mut tx,
        start,
        start,
        start + Duration::from_secs(60),
        &mut log,
    );
    assert_eq!(
        log.iter().filter(|l| l.contains("send")).count(),
        1,
        "{log:?}"
    );
    assert!(
        log.last().is_some_and(|l| l.contains("Terminated")),
        "timer B still applies: {log:?}"
    );
}

#[test]
fn a_provisional_response_stops_timers_a_and_b() {
    let start = host::clock::now();
    let mut tx = ClientInvite::new(request("INVITE"), false, Timers::default(), start);
    let mut log = Vec::new();
    run(&mut tx, start, start, start + T1 * 2, &mut log);
    tx.handle_response(start + T1 * 2, response(180, "INVITE"));
    run(
        &mut tx,
        start,
        start + T1 * 2,
        start + Duration::from_secs(120),
        &mut log,
    );
    assert_eq!(
        log.iter().filter(|l| l.contains("send")).count(),
        2,
        "{log:?}"
    );
    assert!(tx.poll_timeout().is_none(), "nothing armed while ringing");
}

#[test]
fn a_cancelled_invite_without_a_final_response_gives_up_after_64_t1() {
    let start = host::clock::now();
    let mut tx = ClientInvite::new(request("INVITE"), false, Timers::default(), start);
    let mut log = Vec::new();
    run(&mut tx, start, start, start, &mut log);
    tx.handle_response(start + T1, response(180, "INVITE"));
    run(&mut tx, start, start + T1, start + T1 * 4, &mut log);
    // The CANCEL goes out at 2 s; the buyer answers it and nothing more.
    tx.cancel_sent(start + T1 * 4);
    tx.cancel_sent(start + T1 * 10);
    run(
        &mut tx,
        start,
        start + T1 * 4,
        start + Duration::from_secs(120),
        &mut log,
    );
    expect_test::expect![[r#"
        0.0s send INVITE sip:sales@192.0.2.20 SIP/2.0
        0.5s event response SIP/2.0 180 Reason
        34.0s event Timeout
        34.0s event Terminated"#]]
    .assert_eq(&log.join("\n"));
}

#[test]
fn a_final_response_after_the_cancel_ends_its_wait() {
    let start = host::clock::now();
    let mut tx = ClientInvite::new(request("INVITE"), false, Timers::default(), start);
    let mut log = Vec::new();
    tx.handle_response(start + T1, response(180, "INVITE"));
    tx.cancel_sent(start + T1 * 2);
    tx.handle_response(start + T1 * 3, response(487, "INVITE"));
    run(
        &mut tx,
        start,
        start + T1 * 3,
        start + Duration::from_secs(120),
        &mut log,
    );
    assert!(
        !log.iter().any(|l| l.contains("Timeout")),
        "the 487 came: {log:?}"
    );
    assert!(tx.poll_timeout().is_none(), "{log:?}");
}

#[test]
fn a_non_2xx_final_response_is_acked_and_absorbed_until_timer_d() {
    let start = host::clock::now();
    let mut tx = ClientInvite::new(request("INVITE"), false, Timers::default(), start);
    let mut log = Vec::new();
    tx.handle_response(start, response(486, "INVITE"));
    let ack = {
        tx.drain(start, start, &mut log);
        log.clone()
    };
    assert!(
        ack.iter()
            .any(|l| l.contains("send ACK sip:sales@192.0.2.20")),
        "{ack:?}"
    );
    // The retransmitted 486 is answered with the ACK again, not passed up.
    tx.handle_response(start + T1, response(486, "INVITE"));
    run(
        &mut tx,
        start,
        start + T1,
        start + Duration::from_secs(40),
        &mut log,
    );
    expect_test::expect![[r#"
        0.0s send INVITE sip:sales@192.0.2.20 SIP/2.0
        0.0s send ACK sip:sales@192.0.2.20 SIP/2.0
        0.0s event response SIP/2.0 486 Reason
        0.5s send ACK sip:sales@192.0.2.20 SIP/2.0
        32.0s event Terminated"#]]
    .assert_eq(&log.join("\n"));
}

#[test]
fn the_ack_of_a_non_2xx_copies_what_rfc_3261_17_1_1_3_asks() {
    let start = host::clock::now();
    let mut tx = ClientInvite::new(request("INVITE"), false, Timers::default(), start);
    tx.poll_transmit();
    tx.handle_response(start, response(503, "INVITE"));
    let ack = tx.poll_transmit().expect("ACK");
    expect_test::expect![[r#"
        ACK sip:sales@192.0.2.20 SIP/2.0
        Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKabc
        Max-Forwards: 70
        To: <sip:sales@192.0.2.20>;tag=callee
        From: <sip:pb@192.0.2.1>;tag=pb1
        Call-ID: tx@192.0.2.1
        CSeq: 1 ACK
        Route: <sip:proxy.example;lr>
        Content-Length: 0

    "#]]
    .assert_eq(&String::from_utf8_lossy(&ack.to_bytes()).replace("\r\n", "\n"));
}

#[test]
fn a_2xx_and_its_retransmissions_go_to_the_user_until_timer_m() {
    let start = host::clock::now();
    let mut tx = ClientInvite::new(request("INVITE"), false, Timers::default(), start);
    let mut log = Vec::new();
    tx.drain(start, start, &mut log);
    tx.handle_response(start + T1, response(200, "INVITE"));
    tx.drain(start + T1, start, &mut log);
    tx.handle_response(start + T1 * 3, response(200, "INVITE"));
    run(
        &mut tx,
        start,
        start + T1 * 3,
        start + Duration::from_secs(60),
        &mut log,
    );
    expect_test::expect![[r#"
        0.0s send INVITE sip:sales@192.0.2.20 SIP/2.0
        0.5s event response SIP/2.0 200 OK
        1.5s event response SIP/2.0 200 OK
        32.5s event Terminated"#]]
    .assert_eq(&log.join("\n").replace("200 Reason", "200 OK"));
}

#[test]
fn non_invite_retransmits_doubling_to_t2_until_timer_f() {
    let start = host::clock::now();
    let mut tx = ClientNonInvite::new(request("OPTIONS"), false, Timers::default(), start);
    let mut log = Vec::new();
    run(
        &mut tx,
        start,
        start,
        start + Duration::from_secs(60),
        &mut log,
    );
    let sends: Vec<&str> = log
        .iter()
        .filter(|l| l.contains("send"))
        .map(|l| l.split('s').next().unwrap_or_default().trim())
        .collect();
    assert_eq!(
        sends,
        [
            "0.0", "0.5", "1.5", "3.5", "7.5", "11.5", "15.5", "19.5", "23.5", "27.5", "31.5"
        ]
    );
    let last: Vec<&str> = log[log.len() - 2..].iter().map(|l| l.trim()).collect();
    assert_eq!(last, ["32.0s event Timeout", "32.0s event Terminated"]);
}

#[test]
fn non_invite_proceeding_retransmits_every_t2_and_timer_k_ends_it() {
    let start = host::clock::now();
    let mut tx = ClientNonInvite::new(request("BYE"), false, Timers::default(), start);
    let mut log = Vec::new();
    tx.drain(start, start, &mut log);
    tx.handle_response(start + Duration::from_millis(100), response(100, "BYE"));
    run(
        &mut tx,
        start,
        start,
        start + Duration::from_secs(10),
        &mut log,
    );
    tx.handle_response(start + Duration::from_secs(10), response(200, "BYE"));
    run(
        &mut tx,
        start,
        start + Duration::from_secs(10),
        start + Duration::from_secs(60),
        &mut log,
    );
    expect_test::expect![[r#"
        0.0s send BYE sip:sales@192.0.2.20 SIP/2.0
        0.0s event response SIP/2.0 100 Reason
        0.5s send BYE sip:sales@192.0.2.20 SIP/2.0
        4.5s send BYE sip:sales@192.0.2.20 SIP/2.0
        8.5s send BYE sip:sales@192.0.2.20 SIP/2.0
        10.0s event response SIP/2.0 200 Reason
        15.0s event Terminated"#]]
    .assert_eq(&log.join("\n"));
}

#[test]
fn server_invite_answers_100_trying_at_once_and_repeats_it_for_retransmissions() {
    let start = host::clock::now();
    let invite = request("INVITE");
    let mut tx = ServerInvite::new(&invite, false, Timers::default());
    let mut log = Vec::new();
    tx.drain(start, start, &mut log);
    tx.handle_request(start + T1, invite.clone());
    tx.drain(start + T1, start, &mut log);
    tx.send_response(start + T1, response(180, "INVITE"));
    tx.handle_request(start + T1 * 3, invite);
    tx.drain(start + T1 * 3, start, &mut log);
    expect_test::expect![[r#"
          0.0s send SIP/2.0 100 Trying
          0.5s send SIP/2.0 100 Trying
          1.5s send SIP/2.0 180 Reason
          1.5s send SIP/2.0 180 Reason"#]]
    .assert_eq(&log.join("\n"));
}

#[test]
fn server_invite_retransmits_its_final_response_with_timer_g_until_timer_h() {
    let start = host::clock::now();
    let mut tx = ServerInvite::new(&request("INVITE"), false, Timers::default());
    tx.poll_transmit();
    tx.send_response(start, response(486, "INVITE"));
    let mut log = Vec::new();
    run(
        &mut tx,
        start,
        start,
        start + Duration::from_secs(60),
        &mut log,
    );
    let sends: Vec<String> = log
        .iter()
        .filter(|l| l.contains("send"))
        .map(|l| l.trim().split('s').next().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(
        sends,
        [
            "0.0", "0.5", "1.5", "3.5", "7.5", "11.5", "15.5", "19.5", "23.5", "27.5", "31.5"
        ]
    );
    assert!(
        log.iter().any(|l| l.contains("32.0s event NoAck")),
        "{log:?}"
    );
    assert!(
        log.last()
            .is_some_and(|l| l.contains("32.0s event Terminated")),
        "{log:?}"
    );
}

#[test]
fn server_invite_absorbs_retransmitted_ack() {
    let start = host::clock::now();
    let mut tx = ServerInvite::new(&request("INVITE"), false, Timers::default());
    tx.send_response(start, response(486, "INVITE"));
    let mut log = Vec::new();
    tx.drain(start, start, &mut log);
    let ack = request("ACK");
    tx.handle_request(start + T1 / 2, ack.clone());
    tx.handle_request(start + T1, ack);
    run(
        &mut tx,
        start,
        start + T1,
        start + Duration::from_secs(60),
        &mut log,
    );
    expect_test::expect![[r#"
          0.0s send SIP/2.0 100 Trying
          0.0s send SIP/2.0 486 Reason
          5.2s event Terminated"#]]
    .assert_eq(&log.join("\n"));
}

#[test]
fn server_invite_passes_the_ack_of_a_2xx_to_the_dialog_until_timer_l() {
    let start = host::clock::now();
    let invite = request("INVITE");
    let mut tx = ServerInvite::new(&invite, false, Timers::default());
    tx.send_response(start, response(200, "INVITE"));
    tx.send_response(start + T1, response(200, "INVITE"));
    tx.handle_request(start + T1, invite);
    tx.handle_request(start + T1 * 2, request("ACK"));
    let mut log = Vec::new();
    tx.drain(start + T1 * 2, start, &mut log);
    run(
        &mut tx,
        start,
        start + T1 * 2,
        start + Duration::from_secs(60),
        &mut log,
    );
    expect_test::expect![[r#"
        1.0s send SIP/2.0 100 Trying
        1.0s send SIP/2.0 200 Reason
        1.0s send SIP/2.0 200 Reason
        1.0s event ack
        32.0s event Terminated"#]]
    .assert_eq(&log.join("\n"));
}

#[test]
fn server_non_invite_answers_retransmissions_until_timer_j() {
    let start = host::clock::now();
    let options = request("OPTIONS");
    let mut tx = ServerNonInvite::new(false, Timers::default());
    tx.handle_request(start, options.clone());
    tx.send_response(start, response(200, "OPTIONS"));
    tx.handle_request(start + T1 * 4, options);
    let mut log = Vec::new();
    tx.drain(start + T1 * 4, start, &mut log);
    run(
        &mut tx,
        start,
        start + T1 * 4,
        start + Duration::from_secs(60),
        &mut log,
    );
    expect_test::expect![[r#"
        2.0s send SIP/2.0 200 Reason
        2.0s send SIP/2.0 200 Reason
        32.0s event Terminated"#]]
    .assert_eq(&log.join("\n"));
}

#[test]
fn reliable_transports_end_completed_transactions_at_once() {
    let start = host::clock::now();
    let mut server = ServerNonInvite::new(true, Timers::default());
    server.send_response(start, response(200, "OPTIONS"));
    assert_eq!(server.poll_timeout(), Some(start), "timer J is zero on TCP");
    let mut client = ClientNonInvite::new(request("OPTIONS"), true, Timers::default(), start);
    client.handle_response(start, response(200, "OPTIONS"));
    assert_eq!(client.poll_timeout(), Some(start), "timer K is zero on TCP");
    let mut invite = ServerInvite::new(&request("INVITE"), true, Timers::default());
    invite.send_response(start, response(486, "INVITE"));
    invite.handle_request(start, request("ACK"));
    assert_eq!(invite.poll_timeout(), Some(start), "timer I is zero on TCP");
}

#[test]
fn matching_follows_rfc_3261_17_2_3_and_the_rfc_2543_fallback() {
    let invite = request("INVITE");
    let ack = request("ACK");
    let cancel = request("CANCEL");
    assert_eq!(
        server_key(&invite),
        server_key(&ack),
        "ACK matches its INVITE"
    );
    assert_ne!(
        server_key(&invite),
        server_key(&cancel),
        "CANCEL is its own transaction"
    );
    assert_eq!(
        client_key(&response(180, "INVITE")),
        client_key(&response(486, "INVITE"))
    );
    assert_ne!(
        client_key(&response(200, "INVITE")),
        client_key(&response(200, "CANCEL"))
    );

    let old = |m: &Message, to_tag: &str| {
        let text = String::from_utf8(m.to_bytes())
            .expect("utf-8")
            .replace(";branch=z9hG4bKabc", ";branch=1")
            .replace(
                "To: <sip:sales@192.0.2.20>",
                &format!("To: <sip:sales@192.0.2.20>{to_tag}"),
            );
        parse_datagram(text.as_bytes()).expect("parses")
    };
    let old_invite = old(&invite, "");
    let old_ack = old(&ack, ";tag=server1");
    assert_eq!(
        server_key(&old_invite),
        server_key(&old_ack),
        "RFC 2543: the ACK's To tag is left out"
    );
    assert_ne!(server_key(&old_invite), server_key(&invite));
    assert_eq!(
        cancelled_invite_key(&cancel),
        server_key(&invite),
        "CANCEL finds its INVITE"
    );
    assert_eq!(cancelled_invite_key(&invite), None);
    assert_eq!(
        cancelled_invite_key(&old(&cancel, "")),
        server_key(&old_invite),
        "RFC 2543: CANCEL finds its INVITE"
    );
}
