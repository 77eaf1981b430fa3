//! RFC 3261 §12 dialogs: ids, early and confirmed states, route sets from
//! Record-Route, remote targets from Contact, both CSeq spaces, and the
//! in-dialog requests built from them.

use expect_test::expect;
use host::dialog::{Dialog, DialogError, DialogState};
use host::sip::{Message, Method, parse_datagram};

fn message(text: &str) -> Message {
    parse_datagram(text.replace('\n', "\r\n").as_bytes()).expect("message")
}

fn invite() -> Message {
    message(
        "INVITE sip:sales@192.0.2.20 SIP/2.0
Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKinv
Max-Forwards: 70
To: <sip:sales@192.0.2.20>
From: \"Plugboard\" <sip:+14155550123@192.0.2.1>;tag=pb1
Call-ID: dlg@192.0.2.1
CSeq: 10 INVITE
Contact: <sip:pb@192.0.2.1:5060>
Record-Route: <sip:p2.example;lr>, <sip:p1.example;lr>
Content-Length: 0

",
    )
}

fn answer(code: u16) -> Message {
    message(&format!(
        "SIP/2.0 {code} Answer
Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKinv
To: <sip:sales@192.0.2.20>;tag=buyer9
From: \"Plugboard\" <sip:+14155550123@192.0.2.1>;tag=pb1
Call-ID: dlg@192.0.2.1
CSeq: 10 INVITE
Contact: <sip:agent@192.0.2.20:5070;transport=udp>
Record-Route: <sip:p1.example;lr>, <sip:p2.example;lr>
Content-Length: 0

"
    ))
}

fn text(m: &Message) -> String {
    String::from_utf8_lossy(&m.to_bytes()).replace("\r\n", "\n")
}

#[test]
fn a_uac_dialog_is_early_on_180_confirmed_on_200_and_routes_bye_by_the_reversed_record_route() {
    let mut dialog = Dialog::from_uac(&invite(), &answer(180)).expect("early dialog");
    assert_eq!(dialog.state, DialogState::Early);
    dialog.handle_response(&answer(200));
    assert_eq!(dialog.state, DialogState::Confirmed);
    assert_eq!(
        dialog.route_set,
        ["<sip:p2.example;lr>", "<sip:p1.example;lr>"]
    );
    let bye = dialog.request(Method::Bye, "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKbye");
    expect![[r#"
        BYE sip:agent@192.0.2.20:5070;transport=udp SIP/2.0
        Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKbye
        Max-Forwards: 70
        To: <sip:sales@192.0.2.20>;tag=buyer9
        From: "Plugboard" <sip:+14155550123@192.0.2.1>;tag=pb1
        Call-ID: dlg@192.0.2.1
        CSeq: 11 BYE
        Route: <sip:p2.example;lr>
        Route: <sip:p1.example;lr>
        Content-Length: 0

    "#]]
    .assert_eq(&text(&bye));
    assert_eq!(
        Dialog::id_of_response(&answer(200)),
        Some(dialog.id.clone())
    );
}

#[test]
fn the_ack_of_a_2xx_reuses_the_invite_cseq_number_and_reinvite_takes_the_next() {
    let mut dialog = Dialog::from_uac(&invite(), &answer(200)).expect("dialog");
    let ack = dialog.ack(10, "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKack");
    assert_eq!(ack.header("CSeq"), Some("10 ACK"));
    let reinvite = dialog.request(
        Method::Invite,
        "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKre",
    );
    assert_eq!(reinvite.header("CSeq"), Some("11 INVITE"));
    let update = dialog.request(
        Method::Update,
        "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKup",
    );
    assert_eq!(update.header("CSeq"), Some("12 UPDATE"));
}

#[test]
fn a_uas_dialog_keeps_the_record_route_in_order_and_checks_the_remote_cseq() {
    let request = invite();
    let mut dialog = Dialog::from_uas(&request, "b2b7").expect("dialog");
    dialog.confirm();
    assert_eq!(
        dialog.route_set,
        ["<sip:p2.example;lr>", "<sip:p1.example;lr>"]
    );
    assert_eq!(dialog.remote_target, "sip:pb@192.0.2.1:5060");
    let in_dialog = |method: &str, number: u32, contact: &str| {
        message(&format!(
            "{method} sip:sales@192.0.2.20 SIP/2.0
Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK{number}
Max-Forwards: 70
To: <sip:sales@192.0.2.20>;tag=b2b7
From: <sip:+14155550123@192.0.2.1>;tag=pb1
Call-ID: dlg@192.0.2.1
CSeq: {number} {method}
{contact}Content-Length: 0

"
        ))
    };
    // A re-INVITE with a new Contact refreshes the target (hold/unhold moves no dialog).
    dialog
        .handle_request(&in_dialog(
            "INVITE",
            11,
            "Contact: <sip:pb@192.0.2.99:5060>\n",
        ))
        .expect("re-INVITE");
    assert_eq!(dialog.remote_target, "sip:pb@192.0.2.99:5060");
    dialog
        .handle_request(&in_dialog("ACK", 11, ""))
        .expect("ACK reuses the number");
    assert_eq!(
        dialog.handle_request(&in_dialog("INFO", 11, "")),
        Err(DialogError::CSeqOutOfOrder {
            received: 11,
            current: 11
        })
    );
    dialog
        .handle_request(&in_dialog("BYE", 12, ""))
        .expect("BYE");
    assert_eq!(dialog.state, DialogState::Terminated);
    let mut other = in_dialog("BYE", 13, "");
    other.headers.retain(|h| h.name != "Call-ID");
    other.headers.push(host::sip::Header {
        name: "Call-ID".into(),
        value: "other".into(),
    });
    assert_eq!(dialog.handle_request(&other), Err(DialogError::OtherDialog));
}

#[test]
fn a_strict_router_becomes_the_request_uri() {
    let strict = answer(200);
    let mut response = strict.clone();
    response.headers.retain(|h| h.name != "Record-Route");
    response.headers.push(host::sip::Header {
        name: "Record-Route".into(),
        value: "<sip:strict.example>".into(),
    });
    let mut dialog = Dialog::from_uac(&invite(), &response).expect("dialog");
    let bye = dialog.request(Method::Bye, "SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKs");
    assert_eq!(
        bye.start,
        host::sip::StartLine::Request {
            method: Method::Bye,
            uri: "sip:strict.example".into()
        }
    );
    assert_eq!(
        bye.header_values("Route").collect::<Vec<_>>(),
        ["<sip:agent@192.0.2.20:5070;transport=udp>"]
    );
}

#[test]
fn an_early_dialog_ends_with_a_failure_and_a_response_without_a_to_tag_makes_none() {
    let mut dialog = Dialog::from_uac(&invite(), &answer(183)).expect("early");
    dialog.handle_response(&answer(486));
    assert_eq!(dialog.state, DialogState::Terminated);
    let mut untagged = answer(180);
    for h in &mut untagged.headers {
        if h.name == "To" {
            h.value = "<sip:sales@192.0.2.20>".into();
        }
    }
    assert_eq!(
        Dialog::from_uac(&invite(), &untagged),
        Err(DialogError::Missing("To tag"))
    );
}
