//! The server non-INVITE transaction (RFC 3261 §17.2.2, Figure 8): retransmitted
//! requests get the last response again; timer J absorbs them after the final one.

use std::time::{Duration, Instant};

use super::{Event, Outbox, Timers, due, earliest};
use crate::sip::{Message, StartLine};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerNonInviteState {
    Trying,
    Proceeding,
    Completed,
    Terminated,
}

#[derive(Debug)]
pub struct ServerNonInvite {
    state: ServerNonInviteState,
    reliable: bool,
    timers: Timers,
    last_response: Option<Message>,
    timer_j: Option<Instant>,
    out: Outbox,
}

impl ServerNonInvite {
    pub fn new(reliable: bool, timers: Timers) -> Self {
        ServerNonInvite {
            state: ServerNonInviteState::Trying,
            reliable,
            timers,
            last_response: None,
            timer_j: None,
            out: Outbox::default(),
        }
    }

    pub fn state(&self) -> ServerNonInviteState {
        self.state
    }

    /// A retransmission of the request.
    pub fn handle_request(&mut self, _now: Instant, _request: Message) {
        if matches!(
            self.state,
            ServerNonInviteState::Proceeding | ServerNonInviteState::Completed
        ) && let Some(last) = &self.last_response
        {
            self.out.transmit.push_back(last.clone());
        }
    }

    pub fn send_response(&mut self, now: Instant, response: Message) {
        let StartLine::Response { code, .. } = response.start else {
            return;
        };
        if self.state == ServerNonInviteState::Completed
            || self.state == ServerNonInviteState::Terminated
        {
            return;
        }
        self.out.transmit.push_back(response.clone());
        self.last_response = Some(response);
        if code < 200 {
            self.state = ServerNonInviteState::Proceeding;
            return;
        }
        self.state = ServerNonInviteState::Completed;
        let wait = if self.reliable {
            Duration::ZERO
        } else {
            self.timers.timeout()
        };
        self.timer_j = Some(now + wait);
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        if self.state == ServerNonInviteState::Completed && due(self.timer_j, now) {
            self.state = ServerNonInviteState::Terminated;
            self.timer_j = None;
            self.out.events.push_back(Event::Terminated);
        }
    }

    outbox_polls!();

    pub fn poll_timeout(&self) -> Option<Instant> {
        earliest(&[self.timer_j])
    }
}
