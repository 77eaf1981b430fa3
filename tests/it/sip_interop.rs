//! Interop with SIPp (Debian's `sip-tester`, installed by `cargo xtask test`):
//! SIPp's built-in `uac` scenario places calls to a UAS built on our SIP
//! layers (message layer, server transactions, the UDP endpoint).

use std::process::Command;

use host::runtime::{TransactionUser, serve_udp};
use host::sip::{Header, Message, Method, response_to};
use host::transaction::Timers;
use tests::call_lab::free_port;
use tokio::net::UdpSocket;

const SDP_ANSWER: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\n";

/// Answers every INVITE (180, then 200 with SDP) and every BYE (200).
struct AnsweringUas {
    acks: usize,
}

impl TransactionUser for AnsweringUas {
    fn on_request(&mut self, request: &Message) -> Vec<Message> {
        match request.method() {
            Some(Method::Invite) => {
                let ringing = response_to(&request.headers, 180, "Ringing", "uas1", &[]);
                let mut ok = response_to(
                    &request.headers,
                    200,
                    "OK",
                    "uas1",
                    &[
                        ("Contact", "<sip:uas@127.0.0.1>".to_owned()),
                        ("Content-Type", "application/sdp".to_owned()),
                    ],
                );
                ok.headers.retain(|h| h.name != "Content-Length");
                ok.headers.push(Header {
                    name: "Content-Length".into(),
                    value: SDP_ANSWER.len().to_string(),
                });
                ok.body = SDP_ANSWER.as_bytes().to_vec();
                vec![ringing, ok]
            }
            _ => vec![response_to(&request.headers, 200, "OK", "uas1", &[])],
        }
    }

    fn on_ack(&mut self, _ack: &Message) {
        self.acks += 1;
    }
}

fn sipp() -> std::path::PathBuf {
    let path = std::path::PathBuf::from("/usr/bin/sipp");
    assert!(
        path.is_file(),
        "sipp is missing: `cargo xtask test` installs Debian's sip-tester"
    );
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sipp_uac_calls_complete_against_a_uas_built_on_the_layers() {
    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let port = socket.local_addr().expect("address").port();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve_udp(
        socket,
        AnsweringUas { acks: 0 },
        Timers::default(),
        async {
            let _ = stopped.await;
        },
    ));
    let sipp = sipp();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(sipp)
            .args([
                "-sn",
                "uac",
                &format!("127.0.0.1:{port}"),
                "-i",
                "127.0.0.1",
                "-m",
                "10",
                "-r",
                "20",
                "-l",
                "10",
            ])
            .args(["-timeout", "30s", "-timeout_error", "-nostdin", "-d", "100"])
            .output()
            .expect("sipp runs")
    })
    .await
    .expect("joined");
    let _ = stop.send(());
    let stats = server.await.expect("server task").expect("server ran");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "sipp failed ({}):\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        stats.requests, 20,
        "10 INVITEs and 10 BYEs opened transactions: {stats:?}"
    );
    assert_eq!(stats.refused + stats.dropped, 0, "{stats:?}");
}

/// One request over a real socket; the first datagram that comes back.
async fn exchange(port: u16, request: &str) -> String {
    let client = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let local = client.local_addr().expect("address");
    let request = request
        .replace("LOCAL", &local.to_string())
        .replace('\n', "\r\n");
    client
        .send_to(request.as_bytes(), ("127.0.0.1", port))
        .await
        .expect("send");
    let mut buffer = vec![0u8; 65536];
    let (length, _) = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        client.recv_from(&mut buffer),
    )
    .await
    .expect("an answer")
    .expect("received");
    String::from_utf8_lossy(&buffer[..length]).replace("\r\n", "\n")
}

#[tokio::test]
async fn options_is_answered_200_and_a_malformed_request_400_over_udp() {
    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let port = socket.local_addr().expect("address").port();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve_udp(
        socket,
        AnsweringUas { acks: 0 },
        Timers::default(),
        async {
            let _ = stopped.await;
        },
    ));
    let options = "OPTIONS sip:127.0.0.1 SIP/2.0
Via: SIP/2.0/UDP LOCAL;branch=z9hG4bKping;rport
Max-Forwards: 70
To: <sip:127.0.0.1>
From: <sip:ping@carrier.example>;tag=p1
Call-ID: ping@carrier.example
CSeq: 1 OPTIONS
Content-Length: 0

";
    let answer = exchange(port, options).await;
    assert!(answer.starts_with("SIP/2.0 200 OK\n"), "{answer}");
    assert!(
        answer.contains("Allow: INVITE, ACK, BYE, CANCEL, OPTIONS"),
        "{answer}"
    );
    assert!(
        answer.contains(";received=127.0.0.1;rport="),
        "rport filled (RFC 3581): {answer}"
    );
    let broken = options.replace("CSeq: 1 OPTIONS", "CSeq: 1 INVITE");
    let answer = exchange(port, &broken).await;
    assert!(
        answer.starts_with("SIP/2.0 400 CSeq method does not match the request method\n"),
        "{answer}"
    );
    let _ = stop.send(());
    let stats = server.await.expect("server task").expect("server ran");
    assert_eq!((stats.requests, stats.refused), (1, 1), "{stats:?}");
}

const SDP_OFFER: &str = "v=0\r\no=- 2 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 7000 RTP/AVP 0\r\n";

fn attempt(target: std::net::SocketAddr) -> host::runtime::CallAttempt {
    host::runtime::CallAttempt {
        target,
        request_uri: format!("sip:service@{target}"),
        from: "<sip:plugboard@127.0.0.1>".to_owned(),
        to: format!("<sip:service@{target}>"),
        sdp_offer: SDP_OFFER.to_owned(),
        hold: std::time::Duration::from_millis(50),
    }
}

/// SIPp's built-in `uas` scenario on `port`, answering `calls` calls.
fn sipp_uas(port: u16, calls: u32) -> std::process::Child {
    Command::new(sipp())
        .args([
            "-sn",
            "uas",
            "-i",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-m",
            &calls.to_string(),
        ])
        .args(["-timeout", "30s", "-timeout_error", "-nostdin"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("sipp starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_uac_built_on_the_layers_completes_calls_to_sipp_uas() {
    let port = free_port();
    let sipp = sipp_uas(port, 3);
    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let target = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    for _ in 0..3 {
        // SIPp may not listen yet for the first call: timer A retransmits.
        let result = host::runtime::place_call(&socket, &attempt(target), Timers::default())
            .await
            .expect("call");
        assert_eq!(
            (result.status, result.bye_status),
            (200, Some(200)),
            "{result:?}"
        );
    }
    let output = tokio::task::spawn_blocking(move || sipp.wait_with_output().expect("sipp ends"))
        .await
        .expect("joined");
    assert!(
        output.status.success(),
        "sipp uas failed:\n{}",
        String::from_utf8_lossy(&output.stdout)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_invite_is_recovered_by_retransmission() {
    let port = free_port();
    let sipp = sipp_uas(port, 1);
    let sipp_address = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    // A relay between the UAC and SIPp that loses the first datagram the
    // UAC sends (the INVITE) and passes everything else both ways.
    let relay = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let relay_address = relay.local_addr().expect("address");
    let relaying = tokio::spawn(async move {
        let mut buffer = vec![0u8; 65536];
        let mut first = true;
        let mut client = None;
        loop {
            let Ok((length, from)) = relay.recv_from(&mut buffer).await else {
                return;
            };
            let to = if from == sipp_address {
                match client {
                    Some(client) => client,
                    None => continue,
                }
            } else {
                client = Some(from);
                if std::mem::replace(&mut first, false) {
                    continue;
                }
                sipp_address
            };
            let _ = relay.send_to(&buffer[..length], to).await;
        }
    });
    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let result = host::runtime::place_call(&socket, &attempt(relay_address), Timers::default())
        .await
        .expect("call");
    relaying.abort();
    assert_eq!(
        (result.status, result.bye_status),
        (200, Some(200)),
        "{result:?}"
    );
    assert!(
        result.invites_sent >= 2,
        "the call completed through a retransmitted INVITE: {result:?}"
    );
    let output = tokio::task::spawn_blocking(move || sipp.wait_with_output().expect("sipp ends"))
        .await
        .expect("joined");
    assert!(
        output.status.success(),
        "sipp uas failed:\n{}",
        String::from_utf8_lossy(&output.stdout)
    );
}

/// An endpoint serving UDP and TCP on one loopback port.
async fn endpoint_with_tcp(
    idle: std::time::Duration,
) -> (
    u16,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<std::io::Result<host::runtime::EndpointStats>>,
) {
    let (udp, tcp) = host::runtime::bind_udp_and_tcp(([127, 0, 0, 1], 0).into())
        .await
        .expect("bind UDP and TCP");
    let port = udp.local_addr().expect("address").port();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let sockets = host::runtime::SipSockets {
        udp,
        udp_other: None,
        tcp: Some(tcp),
        tls: host::runtime::TlsSide::default(),
        tcp_idle: idle,
        loss: None,
    };
    let server = tokio::spawn(host::runtime::serve_sip(
        sockets,
        AnsweringUas { acks: 0 },
        Timers::default(),
        async {
            let _ = stopped.await;
        },
    ));
    (port, stop, server)
}

/// Reads from `stream` until `count` messages are framed or the peer closes.
async fn read_messages(stream: &mut tokio::net::TcpStream, count: usize) -> Vec<Message> {
    use tokio::io::AsyncReadExt;
    let mut framer = host::sip::StreamFramer::new();
    let mut messages = Vec::new();
    let mut buffer = vec![0u8; 65536];
    while messages.len() < count {
        let read =
            tokio::time::timeout(std::time::Duration::from_secs(10), stream.read(&mut buffer))
                .await;
        let length = read.expect("an answer in time").expect("read");
        if length == 0 {
            break;
        }
        framer.push(&buffer[..length]);
        while let Some(message) = framer.next_message() {
            messages.push(message.expect("well-framed"));
        }
    }
    messages
}

fn tcp_request(method: &str, call: &str) -> String {
    format!(
        "{method} sip:sales@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:5099;branch=z9hG4bK{call}\r\nMax-Forwards: 70\r\n\
         To: <sip:sales@127.0.0.1>\r\nFrom: <sip:c@127.0.0.1>;tag=c1\r\nCall-ID: {call}@127.0.0.1\r\nCSeq: 1 {method}\r\n\
         Contact: <sip:c@127.0.0.1:5099;transport=tcp>\r\nContent-Length: 0\r\n\r\n"
    )
}

#[tokio::test]
async fn tcp_requests_are_answered_on_their_own_connection() {
    use tokio::io::AsyncWriteExt;
    let (port, stop, server) = endpoint_with_tcp(std::time::Duration::from_secs(30)).await;
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    // Two requests in one write, split across message boundaries by TCP as it likes.
    let both = format!(
        "{}{}",
        tcp_request("OPTIONS", "tcp1"),
        tcp_request("INVITE", "tcp2")
    );
    stream.write_all(both.as_bytes()).await.expect("write");
    let answers = read_messages(&mut stream, 4).await;
    let lines: Vec<String> = answers
        .iter()
        .map(|m| {
            String::from_utf8_lossy(&m.to_bytes())
                .lines()
                .next()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    assert_eq!(
        lines,
        [
            "SIP/2.0 200 OK",
            "SIP/2.0 100 Trying",
            "SIP/2.0 180 Ringing",
            "SIP/2.0 200 OK"
        ]
    );
    let _ = stop.send(());
    let stats = server.await.expect("task").expect("served");
    assert_eq!(stats.requests, 2, "{stats:?}");
}

#[tokio::test]
async fn a_tcp_stream_without_content_length_gets_400_and_is_closed() {
    use tokio::io::AsyncWriteExt;
    let (port, stop, server) = endpoint_with_tcp(std::time::Duration::from_secs(30)).await;
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let request = tcp_request("OPTIONS", "nolen").replace("Content-Length: 0\r\n", "");
    stream.write_all(request.as_bytes()).await.expect("write");
    let answers = read_messages(&mut stream, 2).await;
    assert_eq!(answers.len(), 1, "one refusal, then the connection closes");
    let first = String::from_utf8_lossy(&answers[0].to_bytes())
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned();
    assert_eq!(
        first,
        "SIP/2.0 400 bad Content-Length: missing; it is mandatory on stream transports"
    );
    let _ = stop.send(());
    server.await.expect("task").expect("served");
}

#[tokio::test]
async fn an_idle_tcp_connection_is_closed() {
    use tokio::io::AsyncReadExt;
    let (port, stop, server) = endpoint_with_tcp(std::time::Duration::from_millis(200)).await;
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let mut buffer = [0u8; 16];
    let read = tokio::time::timeout(std::time::Duration::from_secs(10), stream.read(&mut buffer))
        .await
        .expect("the endpoint closes the idle connection");
    assert_eq!(read.expect("read"), 0, "EOF");
    let _ = stop.send(());
    server.await.expect("task").expect("served");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sipp_uac_over_tcp_completes_calls() {
    let (port, stop, server) = endpoint_with_tcp(std::time::Duration::from_secs(30)).await;
    let sipp = sipp();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(sipp)
            .args([
                "-sn",
                "uac",
                &format!("127.0.0.1:{port}"),
                "-i",
                "127.0.0.1",
                "-t",
                "t1",
                "-m",
                "5",
                "-r",
                "10",
            ])
            .args(["-timeout", "30s", "-timeout_error", "-nostdin", "-d", "50"])
            .output()
            .expect("sipp runs")
    })
    .await
    .expect("joined");
    let _ = stop.send(());
    let stats = server.await.expect("server task").expect("server ran");
    assert!(
        output.status.success(),
        "sipp over TCP failed ({}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!((stats.requests, stats.acks), (10, 5), "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_too_large_for_a_datagram_goes_over_tcp() {
    let (port, stop, server) = endpoint_with_tcp(std::time::Duration::from_secs(30)).await;
    let target = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let mut call = attempt(target);
    // Many codecs make a big offer: past RFC 3261 §18.1.1's 1300 bytes.
    call.sdp_offer = format!("{SDP_OFFER}{}", "a=rtpmap:96 opus/48000/2\r\n".repeat(60));
    let result = host::runtime::place_call(&socket, &call, Timers::default())
        .await
        .expect("call");
    assert_eq!(
        (result.status, result.bye_status, result.transport),
        (200, Some(200), "TCP"),
        "{result:?}"
    );
    let small = host::runtime::place_call(&socket, &attempt(target), Timers::default())
        .await
        .expect("call");
    assert_eq!(small.transport, "UDP");
    let _ = stop.send(());
    let stats = server.await.expect("task").expect("served");
    assert_eq!((stats.requests, stats.acks), (4, 2), "{stats:?}");
}
