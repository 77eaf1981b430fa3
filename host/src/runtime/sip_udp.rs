//! A SIP endpoint on UDP: the socket, the timers and the table of server
//! transactions around the sans-IO layers. Requests that open a transaction
//! go to a transaction user; OPTIONS is answered here (carriers ping trunks).

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Instant;

use tokio::net::UdpSocket;

use crate::clock;
use crate::sip::{
    Capabilities, Inbound, MAX_MESSAGE_BYTES, Message, Method, inspect, response_address,
    response_to, stamp_received,
};
use crate::transaction::{
    Event, ServerInvite, ServerNonInvite, Timers, TransactionKey, server_key,
};

/// What the endpoint hands requests to: the dialog layer, the B2BUA, a test UAS.
pub trait TransactionUser: Send {
    /// A new request (never a retransmission): the responses to send, in order.
    fn on_request(&mut self, request: &Message) -> Vec<Message>;
    /// An ACK that belongs to no transaction: the ACK of a 2xx, for the dialog.
    fn on_ack(&mut self, _ack: &Message) {}
}

enum ServerTransaction {
    Invite(ServerInvite),
    NonInvite(ServerNonInvite),
}

impl ServerTransaction {
    fn handle_request(&mut self, now: Instant, request: Message) {
        match self {
            ServerTransaction::Invite(tx) => tx.handle_request(now, request),
            ServerTransaction::NonInvite(tx) => tx.handle_request(now, request),
        }
    }

    fn send_response(&mut self, now: Instant, response: Message) {
        match self {
            ServerTransaction::Invite(tx) => tx.send_response(now, response),
            ServerTransaction::NonInvite(tx) => tx.send_response(now, response),
        }
    }

    fn handle_timeout(&mut self, now: Instant) {
        match self {
            ServerTransaction::Invite(tx) => tx.handle_timeout(now),
            ServerTransaction::NonInvite(tx) => tx.handle_timeout(now),
        }
    }

    fn poll_transmit(&mut self) -> Option<Message> {
        match self {
            ServerTransaction::Invite(tx) => tx.poll_transmit(),
            ServerTransaction::NonInvite(tx) => tx.poll_transmit(),
        }
    }

    fn poll_event(&mut self) -> Option<Event> {
        match self {
            ServerTransaction::Invite(tx) => tx.poll_event(),
            ServerTransaction::NonInvite(tx) => tx.poll_event(),
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        match self {
            ServerTransaction::Invite(tx) => tx.poll_timeout(),
            ServerTransaction::NonInvite(tx) => tx.poll_timeout(),
        }
    }
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

/// Serves `socket` until `shutdown` resolves.
pub async fn serve_udp(
    socket: UdpSocket,
    mut user: impl TransactionUser,
    timers: Timers,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<EndpointStats> {
    let caps = Capabilities::default();
    let mut transactions: HashMap<TransactionKey, ServerTransaction> = HashMap::new();
    let mut stats = EndpointStats::default();
    let mut buffer = vec![0u8; MAX_MESSAGE_BYTES + 1];
    let to_tag = format!("pb{:x}", std::process::id());
    tokio::pin!(shutdown);
    loop {
        let next = transactions
            .values()
            .filter_map(ServerTransaction::poll_timeout)
            .min();
        let sleep = async {
            match next {
                Some(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = &mut shutdown => return Ok(stats),
            received = socket.recv_from(&mut buffer) => {
                let (length, source) = received?;
                let now = clock::now();
                match inspect(&buffer[..length], &caps, &to_tag) {
                    Inbound::Request(mut request) => {
                        stamp_received(&mut request, source);
                        on_request(now, request, &mut transactions, &mut user, timers, &to_tag, &mut stats);
                    }
                    Inbound::Refuse(mut refusal) => {
                        stats.refused += 1;
                        stamp_received(&mut refusal, source);
                        send(&socket, &refusal).await;
                    }
                    Inbound::Response(_) | Inbound::Drop(_) => stats.dropped += 1,
                }
            }
            () = sleep => {
                let now = clock::now();
                for tx in transactions.values_mut() {
                    if tx.poll_timeout().is_some_and(|at| at <= now) {
                        tx.handle_timeout(now);
                    }
                }
            }
        }
        let mut finished = Vec::new();
        for (key, tx) in &mut transactions {
            while let Some(message) = tx.poll_transmit() {
                send(&socket, &message).await;
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

fn on_request(
    now: Instant,
    request: Message,
    transactions: &mut HashMap<TransactionKey, ServerTransaction>,
    user: &mut impl TransactionUser,
    timers: Timers,
    to_tag: &str,
    stats: &mut EndpointStats,
) {
    let Some(key) = server_key(&request) else {
        stats.dropped += 1;
        return;
    };
    if let Some(tx) = transactions.get_mut(&key) {
        stats.retransmissions_absorbed += 1;
        tx.handle_request(now, request);
        return;
    }
    let method = request.method().cloned();
    if method == Some(Method::Ack) {
        stats.acks += 1;
        user.on_ack(&request);
        return;
    }
    stats.requests += 1;
    let mut tx = match method {
        Some(Method::Invite) => {
            ServerTransaction::Invite(ServerInvite::new(&request, false, timers))
        }
        _ => ServerTransaction::NonInvite(ServerNonInvite::new(false, timers)),
    };
    let responses = if method == Some(Method::Options) {
        let allow = Capabilities::default()
            .methods
            .iter()
            .map(Method::as_str)
            .collect::<Vec<_>>()
            .join(", ");
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
    transactions.insert(key, tx);
}

async fn send(socket: &UdpSocket, message: &Message) {
    let Some(to) = response_address(message) else {
        tracing::warn!("response without a usable Via; not sent");
        return;
    };
    send_to(socket, message, to).await;
}

async fn send_to(socket: &UdpSocket, message: &Message, to: SocketAddr) {
    if let Err(error) = socket.send_to(&message.to_bytes(), to).await {
        tracing::warn!(%error, %to, "cannot send a SIP message");
    }
}
