//! RFC 3261 §17 transactions (with RFC 6026's Accepted states), sans-IO: each
//! state machine takes messages and `now`, and is asked what to send
//! (`poll_transmit`), what to tell the transaction user (`poll_event`) and
//! when to be woken (`poll_timeout`). Timers are named as the RFC names them.
//! Retransmissions happen on unreliable transports only.

/// `poll_transmit` and `poll_event`, the same for every state machine (each
/// keeps its outbox in a field named `out`).
macro_rules! outbox_polls {
    () => {
        /// The next message to send.
        pub fn poll_transmit(&mut self) -> Option<crate::sip::Message> {
            self.out.transmit.pop_front()
        }

        /// The next event for the transaction user.
        pub fn poll_event(&mut self) -> Option<super::Event> {
            self.out.events.pop_front()
        }
    };
}

mod client_invite;
mod client_non_invite;
mod key;
mod server_invite;
mod server_non_invite;

use std::collections::VecDeque;
use std::time::{Duration, Instant};

pub use client_invite::ClientInvite;
pub use client_non_invite::ClientNonInvite;
pub use key::{TransactionKey, branch, cancelled_invite_key, client_key, server_key};
pub use server_invite::ServerInvite;
pub use server_non_invite::ServerNonInvite;

use crate::sip::Message;

/// RFC 3261 §17.1.1.1 timer values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timers {
    /// Round-trip estimate (default 500 ms).
    pub t1: Duration,
    /// Longest retransmit interval for non-INVITE requests and INVITE responses (4 s).
    pub t2: Duration,
    /// Longest time a message stays in the network (5 s).
    pub t4: Duration,
}

impl Default for Timers {
    fn default() -> Self {
        Timers {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
        }
    }
}

impl Timers {
    /// 64·T1: timers B, F, H, J (unreliable), L and M.
    pub fn timeout(&self) -> Duration {
        self.t1 * 64
    }
}

/// What a transaction tells its user (the dialog layer or the B2BUA).
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A response for a client transaction's user.
    Response(Message),
    /// An ACK for a 2xx reached a server INVITE transaction: the dialog's.
    Ack(Message),
    /// Timer B or F fired: no final response came (a 408 for the user).
    Timeout,
    /// Timer H fired: no ACK came for a final response.
    NoAck,
    /// The transaction is over and can be forgotten.
    Terminated,
}

/// Either server transaction, for a table that holds both.
#[derive(Debug)]
pub enum ServerTransaction {
    Invite(ServerInvite),
    NonInvite(ServerNonInvite),
}

impl ServerTransaction {
    pub fn handle_request(&mut self, now: Instant, request: Message) {
        match self {
            ServerTransaction::Invite(tx) => tx.handle_request(now, request),
            ServerTransaction::NonInvite(tx) => tx.handle_request(now, request),
        }
    }

    pub fn send_response(&mut self, now: Instant, response: Message) {
        match self {
            ServerTransaction::Invite(tx) => tx.send_response(now, response),
            ServerTransaction::NonInvite(tx) => tx.send_response(now, response),
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        match self {
            ServerTransaction::Invite(tx) => tx.handle_timeout(now),
            ServerTransaction::NonInvite(tx) => tx.handle_timeout(now),
        }
    }

    pub fn poll_transmit(&mut self) -> Option<Message> {
        match self {
            ServerTransaction::Invite(tx) => tx.poll_transmit(),
            ServerTransaction::NonInvite(tx) => tx.poll_transmit(),
        }
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        match self {
            ServerTransaction::Invite(tx) => tx.poll_event(),
            ServerTransaction::NonInvite(tx) => tx.poll_event(),
        }
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        match self {
            ServerTransaction::Invite(tx) => tx.poll_timeout(),
            ServerTransaction::NonInvite(tx) => tx.poll_timeout(),
        }
    }
}

/// Either client transaction, for a table that holds both.
#[derive(Debug)]
pub enum ClientTransaction {
    Invite(ClientInvite),
    NonInvite(ClientNonInvite),
}

impl ClientTransaction {
    /// Starts the transaction that fits the request's method.
    pub fn start(request: Message, reliable: bool, timers: Timers, now: Instant) -> Self {
        if request.method() == Some(&crate::sip::Method::Invite) {
            ClientTransaction::Invite(ClientInvite::new(request, reliable, timers, now))
        } else {
            ClientTransaction::NonInvite(ClientNonInvite::new(request, reliable, timers, now))
        }
    }

    pub fn handle_response(&mut self, now: Instant, response: Message) {
        match self {
            ClientTransaction::Invite(tx) => tx.handle_response(now, response),
            ClientTransaction::NonInvite(tx) => tx.handle_response(now, response),
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        match self {
            ClientTransaction::Invite(tx) => tx.handle_timeout(now),
            ClientTransaction::NonInvite(tx) => tx.handle_timeout(now),
        }
    }

    /// A CANCEL of this transaction's request went out (INVITEs only).
    pub fn cancel_sent(&mut self, now: Instant) {
        if let ClientTransaction::Invite(tx) = self {
            tx.cancel_sent(now);
        }
    }

    pub fn poll_transmit(&mut self) -> Option<Message> {
        match self {
            ClientTransaction::Invite(tx) => tx.poll_transmit(),
            ClientTransaction::NonInvite(tx) => tx.poll_transmit(),
        }
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        match self {
            ClientTransaction::Invite(tx) => tx.poll_event(),
            ClientTransaction::NonInvite(tx) => tx.poll_event(),
        }
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        match self {
            ClientTransaction::Invite(tx) => tx.poll_timeout(),
            ClientTransaction::NonInvite(tx) => tx.poll_timeout(),
        }
    }
}

/// The outbox every state machine shares: messages to send, events to
/// deliver, timers armed.
#[derive(Debug, Default)]
struct Outbox {
    transmit: VecDeque<Message>,
    events: VecDeque<Event>,
}

/// An armed timer: when it fires.
fn earliest(deadlines: &[Option<Instant>]) -> Option<Instant> {
    deadlines.iter().flatten().min().copied()
}

/// Whether `deadline` has come.
fn due(deadline: Option<Instant>, now: Instant) -> bool {
    deadline.is_some_and(|d| d <= now)
}
