//! The SIP message layer on wire vectors (`tests/data/sip/`, written on the
//! categories of RFC 4475: valid but unusual, invalid, application layer),
//! stream framing, and the round trip `parse(print(m)) == m`.

use expect_test::expect;
use host::sip::{Capabilities, Inbound, Message, StreamFramer, inspect, parse_datagram};
use proptest::prelude::*;

fn vectors() -> Vec<(String, Vec<u8>)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("data/sip");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("tests/data/sip")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "sip"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let name = p
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or_default()
                .to_owned();
            (name, std::fs::read(&p).expect("vector"))
        })
        .collect()
}

fn outcome(inbound: &Inbound) -> String {
    match inbound {
        Inbound::Request(m) => format!(
            "request {} ({} body bytes)",
            m.method().map_or("?", |m| m.as_str()),
            m.body.len()
        ),
        Inbound::Response(m) => format!("response {:?}", m.start),
        Inbound::Refuse(r) => {
            let host::sip::StartLine::Response { code, reason } = &r.start else {
                return "refusal that is not a response".to_owned();
            };
            let extra: Vec<String> = r
                .headers
                .iter()
                .filter(|h| matches!(h.name.as_str(), "Allow" | "Unsupported" | "Accept"))
                .map(|h| format!("{}: {}", h.name, h.value))
                .collect();
            format!(
                "refuse {code} {reason}{}",
                if extra.is_empty() {
                    String::new()
                } else {
                    format!(" [{}]", extra.join("; "))
                }
            )
        }
        Inbound::Drop(why) => format!("drop ({why})"),
    }
}

#[test]
fn every_wire_vector_gets_its_expected_outcome() {
    let caps = Capabilities::default();
    let report: String = vectors()
        .iter()
        .map(|(name, bytes)| format!("{name}: {}\n", outcome(&inspect(bytes, &caps, "pb1"))))
        .collect();
    expect![[r#"
        app-accept-without-sdp: refuse 406 Not Acceptable [Accept: application/sdp]
        app-extension-method: refuse 501 Not Implemented [Allow: INVITE, ACK, BYE, CANCEL, OPTIONS, UPDATE, INFO, PRACK]
        app-info-with-dtmf-body: request INFO (24 body bytes)
        app-max-forwards-zero: refuse 483 Too Many Hops
        app-multipart-without-sdp: refuse 415 Unsupported Media Type [Accept: application/sdp]
        app-options-with-max-forwards-zero: request OPTIONS (0 body bytes)
        app-register-not-allowed: refuse 405 Method Not Allowed [Allow: INVITE, ACK, BYE, CANCEL, OPTIONS, UPDATE, INFO, PRACK]
        app-unknown-require: refuse 420 Bad Extension [Unsupported: 100rel, nonsense-extension]
        app-unsupported-body-type: refuse 415 Unsupported Media Type [Accept: application/sdp]
        app-unsupported-uri-scheme: refuse 416 Unsupported URI Scheme mailto
        invalid-angle-brackets-request-uri: refuse 400 malformed start line: the Request-URI is not an absolute URI (no <> around it)
        invalid-body-shorter-than-content-length: refuse 400 body shorter than its Content-Length (89 of 500 bytes)
        invalid-cseq-method-mismatch: refuse 400 CSeq method does not match the request method
        invalid-duplicate-to: refuse 400 Multiple To headers
        invalid-header-without-colon: refuse 400 malformed header line: no colon
        invalid-headers-in-request-uri: refuse 400 the Request-URI carries headers (`?…`), which only a URI in a header may
        invalid-max-forwards-out-of-range: refuse 400 Max-Forwards is not a number from 0 to 255
        invalid-method-not-a-token: refuse 400 malformed start line: the method is not a token
        invalid-missing-call-id: refuse 400 Missing Call-ID header
        invalid-negative-content-length: refuse 400 bad Content-Length: not a non-negative decimal number
        invalid-no-blank-line: drop (no blank line ends the headers (byte 78))
        invalid-response-missing-cseq: drop (Missing CSeq header)
        invalid-sip-version: refuse 505 Version Not Supported
        invalid-space-inside-angle-brackets: refuse 400 Malformed From header: whitespace or no URI inside <>
        invalid-unbalanced-quotes: refuse 400 Malformed To header: an unbalanced quote
        invalid-unquoted-display-name-with-comma: refuse 400 Malformed From header: a display name that is neither tokens nor quoted
        invalid-via-empty-parameters: refuse 400 Malformed Via header: an empty parameter
        valid-bytes-after-content-length-discarded: request INVITE (0 body bytes)
        valid-compact-forms: request INVITE (89 body bytes)
        valid-folding-and-space-before-colon: request INVITE (0 body bytes)
        valid-invite-with-sdp: request INVITE (89 body bytes)
        valid-keepalive-before-message: request OPTIONS (0 body bytes)
        valid-lf-line-ends: request OPTIONS (0 body bytes)
        valid-mixed-case-names: request OPTIONS (0 body bytes)
        valid-multipart-sdp-and-isup: request INVITE (313 body bytes)
        valid-no-content-length-on-udp: request INVITE (89 body bytes)
        valid-rfc2543-request: request INVITE (0 body bytes)
        valid-whitespace-in-via-and-leading-zeros: request INVITE (0 body bytes)
    "#]].assert_eq(&report);
}

#[test]
fn a_refusal_is_a_well_formed_response_to_the_request() {
    let vector = vectors()
        .into_iter()
        .find(|(n, _)| n == "valid-invite-with-sdp")
        .map(|(_, b)| b);
    let text = String::from_utf8(vector.expect("vector")).expect("utf-8");
    let bad = text.replace("Max-Forwards: 70", "Max-Forwards: many");
    let Inbound::Refuse(response) = inspect(bad.as_bytes(), &Capabilities::default(), "pb1") else {
        panic!("expected a refusal");
    };
    expect![[r#"
        SIP/2.0 400 Max-Forwards is not a number from 0 to 255
        Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK74bf9
        To: <sip:+18005550100@plugboard.example>;tag=pb1
        From: "Caller" <sip:+14155550123@carrier.example>;tag=9fxced76sl
        Call-ID: 3848276298220188511@carrier.example
        CSeq: 1 INVITE
        Content-Length: 0

    "#]]
    .assert_eq(&String::from_utf8_lossy(&response.to_bytes()).replace("\r\n", "\n"));
    let reparsed = parse_datagram(&response.to_bytes()).expect("the refusal parses");
    assert_eq!(reparsed, response);
}

#[test]
fn an_oversized_request_is_refused_with_513() {
    let base = vectors()
        .into_iter()
        .find(|(n, _)| n == "valid-invite-with-sdp")
        .map(|(_, b)| b)
        .expect("vector");
    let text = String::from_utf8(base).expect("utf-8");
    let padding = format!("X-Padding: {}\r\n", "p".repeat(70 * 1024));
    let big = text.replacen("Contact:", &format!("{padding}Contact:"), 1);
    let inbound = inspect(big.as_bytes(), &Capabilities::default(), "pb1");
    assert!(
        outcome(&inbound).starts_with("refuse 513 Message Too Large"),
        "{}",
        outcome(&inbound)
    );
}

#[test]
fn a_stream_is_framed_by_content_length_across_arbitrary_reads() {
    let messages: Vec<Vec<u8>> = vectors()
        .into_iter()
        .filter(|(n, _)| {
            n == "valid-invite-with-sdp"
                || n == "valid-compact-forms"
                || n == "valid-mixed-case-names"
        })
        .map(|(_, b)| b)
        .collect();
    let mut stream = b"\r\n\r\n".to_vec();
    for m in &messages {
        stream.extend_from_slice(m);
        stream.extend_from_slice(b"\r\n\r\n");
    }
    for chunk in [1, 7, 64, stream.len()] {
        let mut framer = StreamFramer::new();
        let mut framed = Vec::new();
        for piece in stream.chunks(chunk) {
            framer.push(piece);
            while let Some(next) = framer.next_message() {
                framed.push(next.expect("frames"));
            }
        }
        let expected: Vec<Message> = messages
            .iter()
            .map(|m| parse_datagram(m).expect("parses"))
            .collect();
        assert_eq!(framed, expected, "chunks of {chunk}");
    }
}

#[test]
fn a_stream_without_content_length_is_an_error() {
    let vector = vectors()
        .into_iter()
        .find(|(n, _)| n == "valid-no-content-length-on-udp")
        .map(|(_, b)| b)
        .expect("vector");
    let mut framer = StreamFramer::new();
    framer.push(&vector);
    let error = framer
        .next_message()
        .expect("an outcome")
        .expect_err("refused");
    assert!(
        error.to_string().contains("mandatory on stream transports"),
        "{error}"
    );
}

#[test]
fn no_input_makes_the_parser_panic() {
    for (_, bytes) in vectors() {
        for cut in 0..bytes.len() {
            let _ = inspect(&bytes[..cut], &Capabilities::default(), "t");
        }
    }
}

fn token() -> impl Strategy<Value = String> {
    "[A-Za-z][A-Za-z0-9-]{0,12}"
}

fn message() -> impl Strategy<Value = Message> {
    let header = (token(), "[ -~]{0,40}").prop_map(|(name, value)| host::sip::Header {
        name: host::sip::canonical_name(&name),
        value: value.trim().to_owned(),
    });
    let method = prop_oneof![Just("INVITE"), Just("BYE"), Just("OPTIONS"), Just("FOO")];
    (
        method,
        "[a-z0-9]{1,10}",
        proptest::collection::vec(header, 0..8),
        proptest::collection::vec(any::<u8>(), 0..64),
    )
        .prop_map(|(method, user, mut headers, body)| {
            // Via is normalised as it is parsed (`SIP / 2.0` becomes
            // `SIP/2.0`): its round trip is the wire vectors'.
            headers.retain(|h| h.name != "Content-Length" && h.name != "Via");
            headers.push(host::sip::Header {
                name: "Content-Length".to_owned(),
                value: body.len().to_string(),
            });
            Message {
                start: host::sip::StartLine::Request {
                    method: host::sip::Method::from_token(method),
                    uri: format!("sip:{user}@plugboard.example"),
                },
                headers,
                body,
            }
        })
}

proptest! {
    #[test]
    fn parse_of_print_is_identity(m in message()) {
        prop_assert_eq!(parse_datagram(&m.to_bytes()).expect("parses"), m);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// A stand-in for `cargo fuzz` (which needs a nightly toolchain this
    /// machine does not have): random bytes, and valid messages with random
    /// bytes spliced in, never make the layer panic.
    #[test]
    fn arbitrary_bytes_never_panic(noise in proptest::collection::vec(any::<u8>(), 0..600), at in 0usize..2000) {
        let _ = inspect(&noise, &Capabilities::default(), "t");
        let mut framer = StreamFramer::new();
        framer.push(&noise);
        while let Some(Ok(_)) = framer.next_message() {}
        for (_, vector) in vectors().into_iter().take(6) {
            let mut spliced = vector.clone();
            let at = at.min(spliced.len());
            spliced.splice(at..at, noise.iter().copied().take(40));
            let _ = inspect(&spliced, &Capabilities::default(), "t");
        }
    }
}
