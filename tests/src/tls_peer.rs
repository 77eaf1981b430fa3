//! SIP over TLS for tests: a certificate authority of the test's own, and a
//! buyer's UAS that listens on TLS (Debian's SIPp is built without TLS).
//! The buyer answers every INVITE (100, 180, 200 with an SDP answer), takes
//! the ACK and answers BYE, on whichever connection each arrives.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use host::sip::{Message, StreamFramer, response_to};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A certificate authority that exists for one test, and its PEM file.
pub struct TestAuthority {
    issuer: CertifiedIssuer<'static, KeyPair>,
    dir: tempfile::TempDir,
}

impl TestAuthority {
    pub fn new(name: &str) -> TestAuthority {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let key = KeyPair::generate().expect("CA key");
        let issuer = CertifiedIssuer::self_signed(params, key).expect("CA certificate");
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("authority.pem"), issuer.pem()).expect("write CA");
        TestAuthority { issuer, dir }
    }

    /// The authority's certificate (PEM), as an operator would configure it.
    pub fn file(&self) -> PathBuf {
        self.dir.path().join("authority.pem")
    }

    /// A server certificate for `names` (DNS names or IP addresses).
    pub fn issue(&self, names: &[&str]) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let params = CertificateParams::new(names).expect("server params");
        let key = KeyPair::generate().expect("server key");
        let certificate = params.signed_by(&key, &self.issuer).expect("sign");
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        (
            vec![certificate.der().clone(), self.issuer.der().clone()],
            key,
        )
    }

    /// The client configuration a call server checks TLS targets with:
    /// Mozilla's roots and this authority.
    pub fn client_config(&self) -> Arc<rustls::ClientConfig> {
        host::runtime::tls::client_config(Some(&self.file())).expect("client config")
    }
}

/// A TLS server's configuration with `chain` and `key`.
pub fn server_config(
    (chain, key): (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>),
) -> Arc<rustls::ServerConfig> {
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .expect("server config");
    Arc::new(config)
}

/// A buyer's PBX on TLS.
pub struct TlsBuyer {
    pub port: u16,
    received: Arc<Mutex<Vec<String>>>,
    handshakes: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TlsBuyer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TlsBuyer {
    /// Listens on 127.0.0.1 with `chain` and `key`.
    pub async fn start(
        (chain, key): (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>),
    ) -> TlsBuyer {
        let acceptor = tokio_rustls::TlsAcceptor::from(server_config((chain, key)));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind TLS");
        let port = listener.local_addr().expect("address").port();
        let received = Arc::new(Mutex::new(Vec::new()));
        let handshakes = Arc::new(AtomicUsize::new(0));
        let (log, counted) = (received.clone(), handshakes.clone());
        let task = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (acceptor, log, counted) = (acceptor.clone(), log.clone(), counted.clone());
                connections.spawn(async move {
                    let Ok(tls) = acceptor.accept(stream).await else {
                        return;
                    };
                    counted.fetch_add(1, Ordering::Relaxed);
                    answer(tls, port, log).await;
                });
            }
        });
        TlsBuyer {
            port,
            received,
            handshakes,
            task,
        }
    }

    /// The messages received so far, as text.
    pub fn received(&self) -> Vec<String> {
        self.received.lock().expect("log").clone()
    }

    /// The messages received once there are `count` of them, or after ten
    /// seconds whatever there is: the record of a call can be written
    /// before its last BYE has crossed the connection.
    pub async fn received_at_least(&self, count: usize) -> Vec<String> {
        for _ in 0..100 {
            let received = self.received();
            if received.len() >= count {
                return received;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        self.received()
    }

    /// TLS handshakes completed so far.
    pub fn handshakes(&self) -> usize {
        self.handshakes.load(Ordering::Relaxed)
    }
}

const SDP_ANSWER: &str = "v=0\r\no=buyer 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6002 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";

async fn answer(
    stream: tokio_rustls::server::TlsStream<tokio::net::TcpStream>,
    port: u16,
    log: Arc<Mutex<Vec<String>>>,
) {
    let (mut reader, mut writer) = tokio::io::split(stream);
    let mut framer = StreamFramer::new();
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        let Ok(length) = reader.read(&mut buffer).await else {
            return;
        };
        if length == 0 {
            return;
        }
        framer.push(&buffer[..length]);
        while let Some(parsed) = framer.next_message() {
            let Ok(request) = parsed else {
                return;
            };
            log.lock()
                .expect("log")
                .push(String::from_utf8_lossy(&request.to_bytes()).into_owned());
            for response in responses(&request, port) {
                if writer.write_all(&response.to_bytes()).await.is_err() {
                    return;
                }
            }
        }
    }
}

fn responses(request: &Message, port: u16) -> Vec<Message> {
    let reply = |code, reason: &str| response_to(&request.headers, code, reason, "tlsbuyer", &[]);
    match request.method().map(ToString::to_string).as_deref() {
        Some("INVITE") => {
            let mut ok = response_to(
                &request.headers,
                200,
                "OK",
                "tlsbuyer",
                &[
                    ("Contact", format!("<sips:buyer@127.0.0.1:{port}>")),
                    ("Content-Type", "application/sdp".to_owned()),
                ],
            );
            ok.headers.retain(|h| h.name != "Content-Length");
            ok.headers.push(host::sip::Header {
                name: "Content-Length".to_owned(),
                value: SDP_ANSWER.len().to_string(),
            });
            ok.body = SDP_ANSWER.as_bytes().to_vec();
            vec![reply(100, "Trying"), reply(180, "Ringing"), ok]
        }
        Some("ACK") | None => Vec::new(),
        Some(_) => vec![reply(200, "OK")],
    }
}

/// A carrier's call over TLS to `server` (whose certificate `authority`
/// issued for 127.0.0.1): INVITE, ACK of the 200, BYE after a moment.
/// Every message the carrier received, as text.
pub async fn call_over_tls(
    server: std::net::SocketAddr,
    authority: &TestAuthority,
    number: &str,
    caller: &str,
) -> Vec<String> {
    let connector = tokio_rustls::TlsConnector::from(authority.client_config());
    let tcp = tokio::net::TcpStream::connect(server)
        .await
        .expect("connect");
    let local = tcp.local_addr().expect("local address");
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").expect("name");
    let stream = connector.connect(name, tcp).await.expect("TLS handshake");
    let (mut reader, mut writer) = tokio::io::split(stream);
    let mut framer = StreamFramer::new();
    let mut received = Vec::new();
    let offer = "v=0\r\no=carrier 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\n";
    let request = |method: &str, uri: &str, cseq: u32, to: &str, body: &str| {
        let content = if body.is_empty() {
            String::new()
        } else {
            "Content-Type: application/sdp\r\n".to_owned()
        };
        format!(
            "{method} {uri} SIP/2.0\r\nVia: SIP/2.0/TLS {local};branch=z9hG4bKtls{cseq}{method}\r\n\
             From: <sip:{caller}@127.0.0.1>;tag=tlscarrier\r\nTo: {to}\r\nCall-ID: tls-call@127.0.0.1\r\n\
             CSeq: {cseq} {method}\r\nContact: <sips:carrier@{local}>\r\nMax-Forwards: 70\r\n\
             {content}Content-Length: {}\r\n\r\n{body}",
            body.len()
        )
    };
    let to = format!("<sip:{number}@{server}>");
    let invite = request("INVITE", &format!("sip:{number}@{server}"), 1, &to, offer);
    writer.write_all(invite.as_bytes()).await.expect("INVITE");
    let ok = read_until(&mut reader, &mut framer, 200, &mut received).await;
    let answered_to = ok.header("To").expect("To").to_owned();
    let contact = ok.header("Contact").expect("Contact").to_owned();
    let target = host::dialog::uri_of(&contact).to_owned();
    let ack = request("ACK", &target, 1, &answered_to, "");
    writer.write_all(ack.as_bytes()).await.expect("ACK");
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let bye = request("BYE", &target, 2, &answered_to, "");
    writer.write_all(bye.as_bytes()).await.expect("BYE");
    read_until(&mut reader, &mut framer, 200, &mut received).await;
    received
}

/// Reads messages into `received` until one with status `code`.
async fn read_until(
    reader: &mut (impl tokio::io::AsyncRead + Unpin),
    framer: &mut StreamFramer,
    code: u16,
    received: &mut Vec<String>,
) -> Message {
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        if let Some(Ok(message)) = framer.next_message() {
            received.push(String::from_utf8_lossy(&message.to_bytes()).into_owned());
            if message.status() == code {
                return message;
            }
            continue;
        }
        let length = reader.read(&mut buffer).await.expect("read");
        assert!(length > 0, "closed before {code}: {received:?}");
        framer.push(&buffer[..length]);
    }
}
