//! The server INVITE transaction (RFC 3261 §17.2.1, Figure 7, with RFC 6026's
//! Accepted state): 100 Trying at once; timers G (retransmit a non-2xx final
//! response, unreliable only), H (wait for its ACK), I (absorb ACK
//! retransmissions) and L (absorb INVITE retransmissions after a 2xx, whose
//! ACK goes to the dialog).

use std::time::{Duration, Instant};

use super::{Event, Outbox, Timers, due, earliest};
use crate::sip::{Message, Method, StartLine, response_to};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerInviteState {
    Proceeding,
    Completed,
    Confirmed,
    Accepted,
    Terminated,
}

#[derive(Debug)]
pub struct ServerInvite {
    state: ServerInviteState,
    reliable: bool,
    timers: Timers,
    last_response: Option<Message>,
    g_interval: Duration,
    timer_g: Option<Instant>,
    timer_h: Option<Instant>,
    timer_i: Option<Instant>,
    timer_l: Option<Instant>,
    out: Outbox,
}

impl ServerInvite {
    /// A new transaction for `request`; it answers `100 Trying` at once
    /// (RFC 3261 §17.2.1 asks for it within 200 ms).
    pub fn new(request: &Message, reliable: bool, timers: Timers) -> Self {
        let trying = response_to(&request.headers, 100, "Trying", "", &[]);
        let mut out = Outbox::default();
        out.transmit.push_back(trying.clone());
        ServerInvite {
            state: ServerInviteState::Proceeding,
            reliable,
            timers,
            last_response: Some(trying),
            g_interval: timers.t1,
            timer_g: None,
            timer_h: None,
            timer_i: None,
            timer_l: None,
            out,
        }
    }

    pub fn state(&self) -> ServerInviteState {
        self.state
    }

    /// A request matched to this transaction: a retransmitted INVITE or an ACK.
    pub fn handle_request(&mut self, now: Instant, request: Message) {
        let is_ack = request.method() == Some(&Method::Ack);
        match (self.state, is_ack) {
            (ServerInviteState::Proceeding | ServerInviteState::Completed, false) => {
                if let Some(last) = &self.last_response {
                    self.out.transmit.push_back(last.clone());
                }
            }
            (ServerInviteState::Completed, true) => {
                self.state = ServerInviteState::Confirmed;
                self.timer_g = None;
                self.timer_h = None;
                let wait = if self.reliable {
                    Duration::ZERO
                } else {
                    self.timers.t4
                };
                self.timer_i = Some(now + wait);
            }
            // RFC 6026 §8.7: the ACK of a 2xx belongs to the dialog.
            (ServerInviteState::Accepted, true) => self.out.events.push_back(Event::Ack(request)),
            // Retransmitted INVITEs after a 2xx, and ACK retransmissions, are absorbed.
            _ => {}
        }
    }

    /// A response from the transaction user.
    pub fn send_response(&mut self, now: Instant, response: Message) {
        let StartLine::Response { code, .. } = response.start else {
            return;
        };
        match (self.state, code) {
            (ServerInviteState::Proceeding, 100..=199) => {
                self.out.transmit.push_back(response.clone());
                self.last_response = Some(response);
            }
            (ServerInviteState::Proceeding, 200..=299) => {
                self.out.transmit.push_back(response);
                self.state = ServerInviteState::Accepted;
                self.timer_l = Some(now + self.timers.timeout());
            }
            (ServerInviteState::Proceeding, 300..=699) => {
                self.out.transmit.push_back(response.clone());
                self.last_response = Some(response);
                self.state = ServerInviteState::Completed;
                self.timer_g = (!self.reliable).then(|| now + self.g_interval);
                self.timer_h = Some(now + self.timers.timeout());
            }
            // The user retransmits its 2xx until the ACK (RFC 3261 §13.3.1.4).
            (ServerInviteState::Accepted, 200..=299) => self.out.transmit.push_back(response),
            _ => {}
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        if self.state == ServerInviteState::Completed && due(self.timer_g, now) {
            if let Some(last) = &self.last_response {
                self.out.transmit.push_back(last.clone());
            }
            self.g_interval = (self.g_interval * 2).min(self.timers.t2);
            self.timer_g = Some(now + self.g_interval);
        }
        let expired = match self.state {
            ServerInviteState::Completed if due(self.timer_h, now) => {
                self.out.events.push_back(Event::NoAck);
                true
            }
            ServerInviteState::Confirmed => due(self.timer_i, now),
            ServerInviteState::Accepted => due(self.timer_l, now),
            _ => false,
        };
        if expired {
            self.state = ServerInviteState::Terminated;
            self.timer_g = None;
            self.timer_h = None;
            self.timer_i = None;
            self.timer_l = None;
            self.out.events.push_back(Event::Terminated);
        }
    }

    outbox_polls!();

    pub fn poll_timeout(&self) -> Option<Instant> {
        earliest(&[self.timer_g, self.timer_h, self.timer_i, self.timer_l])
    }
}
