//! A SIP endpoint on UDP and TCP: the sockets, the timers and the table of
//! server transactions around the sans-IO layers. Requests that open a
//! transaction go to a transaction user; OPTIONS is answered here (carriers
//! ping trunks). TCP connections are framed by their own tasks, feed one
//! bounded queue, get their responses on the same connection, and close when
//! idle.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_rustls::{TlsAcceptor, TlsConnector};

use super::budget::{self, Budget, Ticket};
use crate::b2bua::Route;
use crate::clock;
use crate::sip::{
    Capabilities, Inbound, MAX_MESSAGE_BYTES, Message, Method, ParseError, StreamFramer, inspect,
    inspect_parsed, response_address, response_to, stamp_received,
};
use crate::transaction::{
    Event, ServerInvite, ServerNonInvite, ServerTransaction, Timers, TransactionKey, server_key,
};

/// What the endpoint hands requests to: the dialog layer, the B2BUA, a test UAS.
pub trait TransactionUser: Send {
    /// A new request (never a retransmission): the responses to send, in order.
    fn on_request(&mut self, request: &Message) -> Vec<Message>;
    /// An ACK that belongs to no transaction: the ACK of a 2xx, for the dialog.
    fn on_ack(&mut self, _ack: &Message) {}
}

/// Counters of what the endpoint did, for tests and metrics.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct EndpointStats {
    /// Requests that opened a server transaction.
    pub requests: u64,
    /// ACKs of 2xx responses, handed to the transaction user.
    pub acks: u64,
    pub retransmissions_absorbed: u64,
    pub refused: u64,
    pub dropped: u64,
}

/// The sockets an endpoint serves.
pub struct SipSockets {
    pub udp: UdpSocket,
    /// A UDP socket of the other address family (IPv6 beside an IPv4
    /// listener, or the reverse): targets of that family are reached, and
    /// answer, through it.
    pub udp_other: Option<UdpSocket>,
    pub tcp: Option<TcpListener>,
    pub tls: TlsSide,
    /// A TCP connection with nothing to read for this long is closed.
    pub tcp_idle: Duration,
    /// Fault injection: datagrams to drop on purpose (none in service).
    pub loss: Option<DatagramLoss>,
}

/// SIP over TLS: how TLS targets are checked (none: they are unreachable)
/// and the TLS listener with its certificate, if there is one.
#[derive(Default)]
pub struct TlsSide {
    pub client: Option<Arc<rustls::ClientConfig>>,
    pub listener: Option<(TcpListener, Arc<rustls::ServerConfig>)>,
}

impl TlsSide {
    /// The next connection on the TLS listener (never, without one).
    pub(super) async fn accept(&self) -> std::io::Result<TcpStream> {
        match &self.listener {
            Some((listener, _)) => listener.accept().await.map(|(stream, _)| stream),
            None => std::future::pending().await,
        }
    }
}

/// Drops a share of datagrams, both ways, to show that retransmissions
/// carry calls through a lossy network where the kernel offers no `netem`.
#[derive(Debug, Clone)]
pub struct DatagramLoss {
    percent: u8,
    state: u64,
}

impl DatagramLoss {
    /// `percent` of datagrams, chosen by a generator seeded with `seed`.
    pub fn new(percent: u8, seed: u64) -> Self {
        DatagramLoss {
            percent: percent.min(100),
            state: seed | 1,
        }
    }

    /// Whether the next datagram is lost (xorshift64).
    pub fn drops_next(&mut self) -> bool {
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        self.state % 100 < u64::from(self.percent)
    }
}

/// Whether `loss` (if any) eats the next datagram.
pub(super) fn lost(loss: &mut Option<DatagramLoss>) -> bool {
    loss.as_mut().is_some_and(DatagramLoss::drops_next)
}

/// How a transaction's responses leave: by UDP to the Via address, or on
/// the TCP connection the request came on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum ReplyPath {
    Udp,
    Tcp(u64),
}

/// What a TCP connection task reports to the endpoint.
enum FromConnection {
    Message(u64, SocketAddr, Result<Message, ParseError>),
    Closed(u64),
    /// A connection we opened along this route could not be made.
    Unreachable(u64, Route),
}

/// What the connections have for the endpoint.
pub(super) enum Incoming {
    /// A message framed on connection `id` from `source`.
    Message(u64, SocketAddr, Result<Message, ParseError>),
    /// A target we meant to reach over TCP or TLS refused, did not answer,
    /// or (TLS) did not prove it is the server its URI names.
    Unreachable(Route),
}

/// Messages queued from TCP connections; a full queue slows the readers.
const TCP_QUEUE: usize = 1024;
/// Responses queued for one TCP connection.
const CONNECTION_QUEUE: usize = 64;

/// Serves `socket` (UDP only) until `shutdown` resolves.
pub async fn serve_udp(
    socket: UdpSocket,
    user: impl TransactionUser,
    timers: Timers,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<EndpointStats> {
    let sockets = SipSockets {
        udp: socket,
        udp_other: None,
        tcp: None,
        tls: TlsSide::default(),
        tcp_idle: Duration::from_secs(60),
        loss: None,
    };
    serve_sip(sockets, user, timers, shutdown).await
}

/// Serves UDP and (if given) TCP until `shutdown` resolves.
pub async fn serve_sip(
    mut sockets: SipSockets,
    mut user: impl TransactionUser,
    timers: Timers,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<EndpointStats> {
    let caps = Capabilities::default();
    let mut transactions: HashMap<TransactionKey, (ServerTransaction, ReplyPath)> = HashMap::new();
    let mut stats = EndpointStats::default();
    let mut buffer = vec![0u8; MAX_MESSAGE_BYTES + 1];
    let to_tag = format!("pb{:x}", std::process::id());
    let mut connections = TcpConnections::new(sockets.tcp_idle);
    let datagrams = Datagrams::one(&sockets.udp);
    tokio::pin!(shutdown);
    loop {
        let next = transactions
            .values()
            .filter_map(|(tx, _)| tx.poll_timeout())
            .min();
        let sleep = async {
            match next {
                Some(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
                None => std::future::pending().await,
            }
        };
        let accept = async {
            match &sockets.tcp {
                Some(listener) => listener.accept().await,
                None => std::future::pending().await,
            }
        };
        // What arrived, and how to answer it.
        let mut arrived: Option<(Inbound, SocketAddr, ReplyPath)> = None;
        tokio::select! {
            () = &mut shutdown => return Ok(stats),
            received = sockets.udp.recv_from(&mut buffer) => {
                let (length, source) = received?;
                if !lost(&mut sockets.loss) {
                    arrived = Some((inspect(&buffer[..length], &caps, &to_tag), source, ReplyPath::Udp));
                }
            }
            accepted = accept => {
                if let Ok((stream, _)) = accepted {
                    let _ = connections.adopt(stream);
                }
            }
            Some(incoming) = connections.next_message() => {
                if let Incoming::Message(id, source, parsed) = incoming {
                    arrived = Some((inspect_parsed(parsed, &caps, &to_tag), source, ReplyPath::Tcp(id)));
                }
            }
            () = sleep => {
                let now = clock::now();
                for (tx, _) in transactions.values_mut() {
                    if tx.poll_timeout().is_some_and(|at| at <= now) {
                        tx.handle_timeout(now);
                    }
                }
            }
        }
        if let Some((message, source, path)) = arrived {
            let now = clock::now();
            match message {
                Inbound::Request(mut request) => {
                    stamp_received(&mut request, source);
                    on_request(
                        now,
                        request,
                        path,
                        &mut transactions,
                        &mut user,
                        timers,
                        &to_tag,
                        &mut stats,
                    );
                }
                Inbound::Refuse(mut refusal) => {
                    stats.refused += 1;
                    stamp_received(&mut refusal, source);
                    send(&datagrams, &mut connections, path, &refusal).await;
                }
                Inbound::Response(_) | Inbound::Drop(_) => stats.dropped += 1,
            }
        }
        let mut finished = Vec::new();
        for (key, (tx, path)) in &mut transactions {
            while let Some(message) = tx.poll_transmit() {
                if *path == ReplyPath::Udp && lost(&mut sockets.loss) {
                    continue;
                }
                send(&datagrams, &mut connections, *path, &message).await;
            }
            while let Some(event) = tx.poll_event() {
                match event {
                    Event::Ack(ack) => user.on_ack(&ack),
                    Event::Terminated => finished.push(key.clone()),
                    Event::Response(_) | Event::Timeout | Event::NoAck => {}
                }
            }
        }
        for key in finished {
            transactions.remove(&key);
        }
    }
}

/// An endpoint's TCP and TLS connections: a task per connection frames its
/// stream into one bounded queue, and has a bounded queue of its own for
/// what goes out. Dropping this aborts the tasks.
pub(super) struct TcpConnections {
    next_id: u64,
    outbound: HashMap<u64, mpsc::Sender<Vec<u8>>>,
    /// Connections we opened to targets, by their route (address, and the
    /// name a TLS one's certificate was checked for).
    opened: HashMap<Route, u64>,
    /// How TLS targets are checked; without it they are unreachable.
    tls: Option<TlsConnector>,
    /// The TLS listener's side of the handshake, if there is a listener.
    tls_accept: Option<TlsAcceptor>,
    /// Connections accepted on the TLS listener.
    accepted_tls: std::collections::HashSet<u64>,
    tasks: JoinSet<()>,
    reports: mpsc::Sender<FromConnection>,
    inbound: mpsc::Receiver<FromConnection>,
    idle: Duration,
    /// SIP's own connection budget (in all and per source).
    budget: Arc<Budget>,
}

impl TcpConnections {
    /// Connections with nothing to read for `idle` are closed.
    pub(super) fn new(idle: Duration) -> Self {
        let (reports, inbound) = mpsc::channel(TCP_QUEUE);
        TcpConnections {
            next_id: 0,
            outbound: HashMap::new(),
            opened: HashMap::new(),
            tls: None,
            tls_accept: None,
            accepted_tls: std::collections::HashSet::new(),
            tasks: JoinSet::new(),
            reports,
            inbound,
            idle,
            budget: Budget::new(budget::SIP_TCP),
        }
    }

    /// TLS targets are checked as `tls` says; accepted TLS connections
    /// shake hands with its listener's certificate.
    pub(super) fn with_tls(mut self, tls: &TlsSide) -> Self {
        self.tls = tls.client.clone().map(TlsConnector::from);
        self.tls_accept = tls
            .listener
            .as_ref()
            .map(|(_, server)| TlsAcceptor::from(server.clone()));
        self
    }

    /// Whether connection `id` came in on the TLS listener.
    pub(super) fn is_accepted_tls(&self, id: u64) -> bool {
        self.accepted_tls.contains(&id)
    }

    /// Starts serving an accepted connection if SIP's connection budget has
    /// room for it (in all and for its source); closes it otherwise. Whether
    /// it was adopted.
    pub(super) fn adopt(&mut self, stream: TcpStream) -> bool {
        self.adopt_over(stream, false).is_some()
    }

    /// As [`TcpConnections::adopt`], for the TLS listener: the handshake
    /// runs on the connection's task, bounded like a connect. The
    /// connection's id, if adopted.
    pub(super) fn adopt_tls(&mut self, stream: TcpStream) -> bool {
        let adopted = self.adopt_over(stream, true);
        if let Some(id) = adopted {
            self.accepted_tls.insert(id);
        }
        adopted.is_some()
    }

    fn adopt_over(&mut self, stream: TcpStream, tls: bool) -> Option<u64> {
        let peer = stream.peer_addr().ok()?;
        let ticket = self.budget.admit(peer.ip())?;
        let acceptor = match (tls, &self.tls_accept) {
            (false, _) => None,
            (true, Some(acceptor)) => Some(acceptor.clone()),
            (true, None) => return None,
        };
        self.next_id += 1;
        let id = self.next_id;
        let (to_connection, outbound) = mpsc::channel(CONNECTION_QUEUE);
        self.outbound.insert(id, to_connection);
        let reports = self.reports.clone();
        let idle = self.idle;
        self.tasks.spawn(async move {
            let Some(acceptor) = acceptor else {
                return connection(id, stream, peer, reports, outbound, idle, ticket).await;
            };
            match tokio::time::timeout(CONNECT_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => connection(id, tls, peer, reports, outbound, idle, ticket).await,
                failed => {
                    tracing::debug!(%peer, ?failed, "TLS handshake with a SIP peer failed");
                    let _ = reports.send(FromConnection::Closed(id)).await;
                }
            }
        });
        Some(id)
    }

    /// The next message framed on any connection (forgetting closed ones on
    /// the way): its connection, peer and parse.
    pub(super) async fn next_message(&mut self) -> Option<Incoming> {
        loop {
            match self.inbound.recv().await? {
                FromConnection::Message(id, source, parsed) => {
                    return Some(Incoming::Message(id, source, parsed));
                }
                FromConnection::Closed(id) => self.forget(id),
                FromConnection::Unreachable(id, to) => {
                    self.forget(id);
                    return Some(Incoming::Unreachable(to));
                }
            }
        }
    }

    fn forget(&mut self, id: u64) {
        self.outbound.remove(&id);
        self.accepted_tls.remove(&id);
        self.opened.retain(|_, opened| *opened != id);
    }

    /// Queues `bytes` for our connection along `route` (TCP or TLS to an
    /// address), opening one if there is none: the connect (and the TLS
    /// handshake) runs on a task, and what is queued meanwhile goes out once
    /// it is up (or is lost with it, and the transaction is told at once).
    fn send_to_peer(&mut self, route: &Route, bytes: &[u8]) {
        if let Some(id) = self.opened.get(route).copied()
            && self.outbound.contains_key(&id)
        {
            self.send(id, bytes);
            return;
        }
        self.next_id += 1;
        let id = self.next_id;
        let reports = self.reports.clone();
        let (to, tls) = match route {
            Route::TcpTo(to) => (*to, None),
            Route::TlsTo(to, name) => {
                let checked = self
                    .tls
                    .clone()
                    .zip(ServerName::try_from(name.to_string()).ok());
                if checked.is_none() {
                    tracing::warn!(%to, %name, "no TLS client, or no valid name to check the target's certificate for");
                    let route = route.clone();
                    self.tasks.spawn(async move {
                        let _ = reports.send(FromConnection::Unreachable(id, route)).await;
                    });
                    return;
                }
                (*to, checked)
            }
            Route::Udp(_) | Route::Tcp(_) => return,
        };
        let Some(ticket) = self.budget.admit(to.ip()) else {
            tracing::warn!(%to, "SIP connection budget full; message not sent");
            return;
        };
        let (to_connection, outbound) = mpsc::channel(CONNECTION_QUEUE);
        self.outbound.insert(id, to_connection);
        self.opened.insert(route.clone(), id);
        self.send(id, bytes);
        let idle = self.idle;
        let route = route.clone();
        self.tasks.spawn(async move {
            let opened = tokio::time::timeout(CONNECT_TIMEOUT, async {
                let stream = TcpStream::connect(to).await?;
                let _ = stream.set_nodelay(true);
                match tls {
                    None => Ok(Stream::Plain(stream)),
                    Some((connector, name)) => connector
                        .connect(name, stream)
                        .await
                        .map(|tls| Stream::Tls(Box::new(tls))),
                }
            })
            .await;
            match opened {
                Ok(Ok(Stream::Plain(stream))) => {
                    connection(id, stream, to, reports, outbound, idle, ticket).await;
                }
                Ok(Ok(Stream::Tls(stream))) => {
                    connection(id, *stream, to, reports, outbound, idle, ticket).await;
                }
                failed => {
                    let error = match failed {
                        Ok(Err(error)) => error.to_string(),
                        _ => "timed out".to_owned(),
                    };
                    tracing::warn!(%to, %error, "cannot connect to a SIP target");
                    let _ = reports.send(FromConnection::Unreachable(id, route)).await;
                }
            }
        });
    }

    /// Queues `bytes` for connection `id`. A full queue means a peer that
    /// does not read: the message is dropped rather than memory grown (the
    /// peer will time out).
    fn send(&self, id: u64, bytes: &[u8]) {
        match self.outbound.get(&id) {
            Some(connection) => {
                if connection.try_send(bytes.to_vec()).is_err() {
                    tracing::warn!(
                        connection = id,
                        "TCP connection queue full or closed; message dropped"
                    );
                }
            }
            None => tracing::debug!(connection = id, "TCP connection gone; message not sent"),
        }
    }
}

/// A connection we opened: plain TCP, or TLS over it.
enum Stream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

/// Reads and frames one TCP or TLS connection, writes what the endpoint
/// queues for it, and ends on EOF, an error, a framing error (a stream
/// cannot be resynchronised) or `idle` without input.
async fn connection(
    id: u64,
    stream: impl AsyncRead + AsyncWrite + Send + Unpin,
    peer: SocketAddr,
    to_endpoint: mpsc::Sender<FromConnection>,
    mut outbound: mpsc::Receiver<Vec<u8>>,
    idle: Duration,
    // Held while the connection lives: its place in the budget.
    _ticket: Ticket,
) {
    let (mut reader, mut writer) = tokio::io::split(stream);
    let mut framer = StreamFramer::new();
    let mut buffer = vec![0u8; 16 * 1024];
    let mut closing = false;
    while !closing {
        tokio::select! {
            read = tokio::time::timeout(idle, reader.read(&mut buffer)) => {
                let length = match read {
                    Ok(Ok(length)) if length > 0 => length,
                    _ => break,
                };
                framer.push(&buffer[..length]);
                while let Some(parsed) = framer.next_message() {
                    closing = parsed.is_err();
                    if to_endpoint.send(FromConnection::Message(id, peer, parsed)).await.is_err() || closing {
                        closing = true;
                        break;
                    }
                }
            }
            queued = outbound.recv() => match queued {
                Some(bytes) => {
                    if writer.write_all(&bytes).await.is_err() {
                        break;
                    }
                }
                None => break,
            },
        }
    }
    if closing {
        // The endpoint answers what ended the stream (a 400) before it closes.
        if let Ok(Some(bytes)) =
            tokio::time::timeout(Duration::from_millis(500), outbound.recv()).await
        {
            let _ = writer.write_all(&bytes).await;
        }
    }
    let _ = to_endpoint.send(FromConnection::Closed(id)).await;
}

#[allow(clippy::too_many_arguments)]
fn on_request(
    now: Instant,
    request: Message,
    path: ReplyPath,
    transactions: &mut HashMap<TransactionKey, (ServerTransaction, ReplyPath)>,
    user: &mut impl TransactionUser,
    timers: Timers,
    to_tag: &str,
    stats: &mut EndpointStats,
) {
    let Some(key) = server_key(&request) else {
        stats.dropped += 1;
        return;
    };
    if let Some((tx, _)) = transactions.get_mut(&key) {
        stats.retransmissions_absorbed += 1;
        tx.handle_request(now, request);
        return;
    }
    let reliable = path != ReplyPath::Udp;
    let method = request.method().cloned();
    if method == Some(Method::Ack) {
        stats.acks += 1;
        user.on_ack(&request);
        return;
    }
    stats.requests += 1;
    let mut tx = match method {
        Some(Method::Invite) => {
            ServerTransaction::Invite(ServerInvite::new(&request, reliable, timers))
        }
        _ => ServerTransaction::NonInvite(ServerNonInvite::new(reliable, timers)),
    };
    let responses = if method == Some(Method::Options) {
        let allow = Capabilities::default().allow();
        vec![response_to(
            &request.headers,
            200,
            "OK",
            to_tag,
            &[("Allow", allow), ("Accept", "application/sdp".into())],
        )]
    } else {
        user.on_request(&request)
    };
    for response in responses {
        tx.send_response(now, response);
    }
    transactions.insert(key, (tx, path));
}

async fn send(
    udp: &Datagrams<'_>,
    connections: &mut TcpConnections,
    path: ReplyPath,
    message: &Message,
) {
    let route = match path {
        ReplyPath::Tcp(id) => Route::Tcp(id),
        ReplyPath::Udp => match response_address(message) {
            Some(to) => Route::Udp(to),
            None => {
                tracing::warn!("response without a usable Via; not sent");
                return;
            }
        },
    };
    send_to(udp, connections, route, &message.to_bytes()).await;
}

/// How long opening a TCP connection to a target may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// The UDP sockets a loop sends from: its listener's, and one of the other
/// address family if it has one.
pub(super) struct Datagrams<'a> {
    listener: &'a UdpSocket,
    listener_is_ipv6: bool,
    other: Option<&'a UdpSocket>,
}

impl<'a> Datagrams<'a> {
    pub(super) fn one(listener: &'a UdpSocket) -> Self {
        Self::new(listener, None)
    }

    pub(super) fn new(listener: &'a UdpSocket, other: Option<&'a UdpSocket>) -> Self {
        let listener_is_ipv6 = listener.local_addr().is_ok_and(|a| a.is_ipv6());
        Datagrams {
            listener,
            listener_is_ipv6,
            other,
        }
    }

    /// The socket for datagrams to `to`: the one of its family.
    fn towards(&self, to: SocketAddr) -> &'a UdpSocket {
        match self.other {
            Some(other) if to.is_ipv6() != self.listener_is_ipv6 => other,
            _ => self.listener,
        }
    }
}

/// Sends `bytes` by UDP or on a TCP connection's queue.
pub(super) async fn send_to(
    udp: &Datagrams<'_>,
    connections: &mut TcpConnections,
    route: Route,
    bytes: &[u8],
) {
    match route {
        Route::Udp(to) => {
            if let Err(error) = udp.towards(to).send_to(bytes, to).await {
                tracing::warn!(%error, %to, "cannot send a SIP message");
            }
        }
        Route::Tcp(id) => connections.send(id, bytes),
        Route::TcpTo(_) | Route::TlsTo(..) => connections.send_to_peer(&route, bytes),
    }
}
