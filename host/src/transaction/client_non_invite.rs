//! The client non-INVITE transaction (RFC 3261 §17.1.2, Figure 6): timers E
//! (retransmit, unreliable only, doubling to T2), F (no final response) and
//! K (absorb retransmitted responses).

use std::time::{Duration, Instant};

use super::{Event, Outbox, Timers, due, earliest};
use crate::sip::{Message, StartLine};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientNonInviteState {
    Trying,
    Proceeding,
    Completed,
    Terminated,
}

#[derive(Debug)]
pub struct ClientNonInvite {
    state: ClientNonInviteState,
    request: Message,
    reliable: bool,
    timers: Timers,
    e_interval: Duration,
    timer_e: Option<Instant>,
    timer_f: Option<Instant>,
    timer_k: Option<Instant>,
    out: Outbox,
}

impl ClientNonInvite {
    pub fn new(request: Message, reliable: bool, timers: Timers, now: Instant) -> Self {
        let mut out = Outbox::default();
        out.transmit.push_back(request.clone());
        ClientNonInvite {
            state: ClientNonInviteState::Trying,
            request,
            reliable,
            timers,
            e_interval: timers.t1,
            timer_e: (!reliable).then(|| now + timers.t1),
            timer_f: Some(now + timers.timeout()),
            timer_k: None,
            out,
        }
    }

    pub fn state(&self) -> ClientNonInviteState {
        self.state
    }

    pub fn handle_response(&mut self, now: Instant, response: Message) {
        let StartLine::Response { code, .. } = response.start else {
            return;
        };
        match (self.state, code) {
            (ClientNonInviteState::Trying | ClientNonInviteState::Proceeding, 100..=199) => {
                self.state = ClientNonInviteState::Proceeding;
                self.out.events.push_back(Event::Response(response));
            }
            (ClientNonInviteState::Trying | ClientNonInviteState::Proceeding, 200..=699) => {
                self.state = ClientNonInviteState::Completed;
                self.timer_e = None;
                self.timer_f = None;
                let wait = if self.reliable {
                    Duration::ZERO
                } else {
                    self.timers.t4
                };
                self.timer_k = Some(now + wait);
                self.out.events.push_back(Event::Response(response));
            }
            _ => {}
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        let retransmitting = matches!(
            self.state,
            ClientNonInviteState::Trying | ClientNonInviteState::Proceeding
        );
        if retransmitting && due(self.timer_e, now) {
            self.out.transmit.push_back(self.request.clone());
            // Trying doubles up to T2; Proceeding retransmits every T2.
            self.e_interval = match self.state {
                ClientNonInviteState::Trying => (self.e_interval * 2).min(self.timers.t2),
                _ => self.timers.t2,
            };
            self.timer_e = Some(now + self.e_interval);
        }
        let expired = if retransmitting && due(self.timer_f, now) {
            self.out.events.push_back(Event::Timeout);
            true
        } else {
            self.state == ClientNonInviteState::Completed && due(self.timer_k, now)
        };
        if expired {
            self.state = ClientNonInviteState::Terminated;
            self.timer_e = None;
            self.timer_f = None;
            self.timer_k = None;
            self.out.events.push_back(Event::Terminated);
        }
    }

    outbox_polls!();

    pub fn poll_timeout(&self) -> Option<Instant> {
        earliest(&[self.timer_e, self.timer_f, self.timer_k])
    }
}
