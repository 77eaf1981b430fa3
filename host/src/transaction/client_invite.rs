//! The client INVITE transaction (RFC 3261 §17.1.1, Figure 5, with RFC 6026's
//! Accepted state): timers A (retransmit, unreliable transports only), B
//! (no response), D (absorb retransmitted final responses) and M (absorb 2xx
//! retransmissions after the first went to the user). Once its CANCEL is
//! sent, a transaction that gets no final response gives up after 64·T1
//! (§9.1): a buyer that never answers the CANCEL must not hold the call.

use std::time::{Duration, Instant};

use super::{Event, Outbox, Timers, due, earliest};
use crate::sip::{Header, Message, StartLine};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientInviteState {
    Calling,
    Proceeding,
    Accepted,
    Completed,
    Terminated,
}

#[derive(Debug)]
pub struct ClientInvite {
    state: ClientInviteState,
    request: Message,
    reliable: bool,
    timers: Timers,
    a_interval: Duration,
    timer_a: Option<Instant>,
    timer_b: Option<Instant>,
    timer_d: Option<Instant>,
    timer_m: Option<Instant>,
    /// 64·T1 after the CANCEL went out: when the INVITE counts as cancelled.
    cancelled_by: Option<Instant>,
    ack: Option<Message>,
    out: Outbox,
}

/// The ACK for a non-2xx final response (RFC 3261 §17.1.1.3): the request's
/// Request-URI, top Via, From, Call-ID and Route; the response's To.
fn ack_for(request: &Message, response: &Message) -> Message {
    let uri = match &request.start {
        StartLine::Request { uri, .. } => uri.clone(),
        StartLine::Response { .. } => String::new(),
    };
    let header = |name: &str, value: &str| Header {
        name: name.to_owned(),
        value: value.to_owned(),
    };
    let top_via = request
        .header("Via")
        .and_then(|v| v.split(',').next())
        .unwrap_or_default();
    let number = request
        .header("CSeq")
        .and_then(|c| c.split_whitespace().next())
        .unwrap_or("1");
    let mut headers = vec![
        header("Via", top_via.trim()),
        header("Max-Forwards", "70"),
        header("To", response.header("To").unwrap_or_default()),
        header("From", request.header("From").unwrap_or_default()),
        header("Call-ID", request.header("Call-ID").unwrap_or_default()),
        header("CSeq", &format!("{number} ACK")),
    ];
    headers.extend(
        request
            .headers
            .iter()
            .filter(|h| h.name == "Route")
            .cloned(),
    );
    headers.push(header("Content-Length", "0"));
    Message {
        start: StartLine::Request {
            method: crate::sip::Method::Ack,
            uri,
        },
        headers,
        body: Vec::new(),
    }
}

impl ClientInvite {
    /// Starts the transaction: the request goes out now.
    pub fn new(request: Message, reliable: bool, timers: Timers, now: Instant) -> Self {
        let mut out = Outbox::default();
        out.transmit.push_back(request.clone());
        ClientInvite {
            state: ClientInviteState::Calling,
            request,
            reliable,
            timers,
            a_interval: timers.t1,
            timer_a: (!reliable).then(|| now + timers.t1),
            timer_b: Some(now + timers.timeout()),
            timer_d: None,
            timer_m: None,
            cancelled_by: None,
            ack: None,
            out,
        }
    }

    pub fn state(&self) -> ClientInviteState {
        self.state
    }

    /// A CANCEL of this INVITE went out: without a final response within
    /// 64·T1 the transaction ends with a timeout.
    pub fn cancel_sent(&mut self, now: Instant) {
        if matches!(
            self.state,
            ClientInviteState::Calling | ClientInviteState::Proceeding
        ) && self.cancelled_by.is_none()
        {
            self.cancelled_by = Some(now + self.timers.timeout());
        }
    }

    pub fn handle_response(&mut self, now: Instant, response: Message) {
        let code = response.status();
        match (self.state, code) {
            (ClientInviteState::Calling | ClientInviteState::Proceeding, 100..=199) => {
                self.state = ClientInviteState::Proceeding;
                self.timer_a = None;
                self.timer_b = None;
                self.out.events.push_back(Event::Response(response));
            }
            (ClientInviteState::Calling | ClientInviteState::Proceeding, 200..=299) => {
                self.state = ClientInviteState::Accepted;
                self.timer_a = None;
                self.timer_b = None;
                self.cancelled_by = None;
                self.timer_m = Some(now + self.timers.timeout());
                self.out.events.push_back(Event::Response(response));
            }
            (ClientInviteState::Calling | ClientInviteState::Proceeding, 300..=699) => {
                self.state = ClientInviteState::Completed;
                self.timer_a = None;
                self.timer_b = None;
                self.cancelled_by = None;
                let ack = ack_for(&self.request, &response);
                self.out.transmit.push_back(ack.clone());
                self.ack = Some(ack);
                let wait = if self.reliable {
                    Duration::ZERO
                } else {
                    Duration::from_secs(32)
                };
                self.timer_d = Some(now + wait);
                self.out.events.push_back(Event::Response(response));
            }
            // RFC 6026 §8.4: 2xx retransmissions go to the user, who ACKs them.
            (ClientInviteState::Accepted, 200..=299) => {
                self.out.events.push_back(Event::Response(response))
            }
            (ClientInviteState::Completed, 300..=699) => {
                if let Some(ack) = &self.ack {
                    self.out.transmit.push_back(ack.clone());
                }
            }
            _ => {}
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        if self.state == ClientInviteState::Calling && due(self.timer_a, now) {
            self.out.transmit.push_back(self.request.clone());
            self.a_interval *= 2;
            self.timer_a = Some(now + self.a_interval);
        }
        let expired = match self.state {
            ClientInviteState::Calling | ClientInviteState::Proceeding
                if due(self.timer_b, now) || due(self.cancelled_by, now) =>
            {
                self.out.events.push_back(Event::Timeout);
                true
            }
            ClientInviteState::Completed => due(self.timer_d, now),
            ClientInviteState::Accepted => due(self.timer_m, now),
            _ => false,
        };
        if expired {
            self.terminate();
        }
    }

    fn terminate(&mut self) {
        self.state = ClientInviteState::Terminated;
        self.timer_a = None;
        self.timer_b = None;
        self.timer_d = None;
        self.timer_m = None;
        self.cancelled_by = None;
        self.out.events.push_back(Event::Terminated);
    }

    outbox_polls!();

    pub fn poll_timeout(&self) -> Option<Instant> {
        earliest(&[
            self.timer_a,
            self.timer_b,
            self.timer_d,
            self.timer_m,
            self.cancelled_by,
        ])
    }
}
