//! Between the two dialogs once the call is bridged: in-dialog requests
//! and their responses relayed from one side to the other (bodies copied,
//! nothing else of the other side's), BYE and hanging up, session timers.

use super::*;

impl Call {
    pub(super) fn dialog_mut(&mut self, side: Side) -> Option<&mut Dialog> {
        match side {
            Side::Caller => self.caller_dialog.as_mut(),
            Side::Callee(index) => self.legs.get_mut(index).and_then(|l| l.dialog.as_mut()),
        }
    }

    pub(super) fn peer(&self, side: Side) -> Peer {
        match side {
            Side::Caller => Peer::Caller,
            Side::Callee(index) => self.legs[index].peer(),
        }
    }

    /// A target's address; none for the caller.
    pub(super) fn address_of(&self, side: Side) -> Option<SocketAddr> {
        match side {
            Side::Caller => None,
            Side::Callee(index) => self.legs.get(index).map(|leg| leg.destination),
        }
    }

    pub(super) fn transport(&self, side: Side) -> Transport {
        match side {
            Side::Caller => self.setup.caller_transport,
            Side::Callee(index) => self
                .legs
                .get(index)
                .map_or(Transport::Udp, |leg| leg.transport),
        }
    }

    /// The other side of the bridge.
    pub(super) fn opposite(&self, side: Side) -> Option<Side> {
        match side {
            Side::Caller => self.answered.map(Side::Callee),
            Side::Callee(index) if Some(index) == self.answered => Some(Side::Caller),
            Side::Callee(_) => None,
        }
    }

    pub(super) fn bye(&mut self, side: Side) {
        let via = self.via(self.transport(side), self.address_of(side));
        let Some(dialog) = self.dialog_mut(side) else {
            return;
        };
        if dialog.state == DialogState::Terminated {
            return;
        }
        let bye = dialog.request(Method::Bye, &via);
        dialog.state = DialogState::Terminated;
        self.request(self.peer(side), bye, Purpose::Bye(side));
    }

    /// Ends an answered call: BYE to every side but `except` (which sent one).
    pub(super) fn hang_up(&mut self, now: Instant, except: Option<Side>) {
        if self.ended_by.is_none() {
            self.ended_by = match except {
                Some(Side::Caller) => Some("caller"),
                Some(Side::Callee(_)) => Some("buyer"),
                None => None,
            };
        }
        self.caller_timer = None;
        self.callee_timer = None;
        // A 2xx is acknowledged before its dialog is ended, answer or not.
        self.send_awaited_ack(None);
        if except != Some(Side::Caller) {
            self.bye(Side::Caller);
        }
        if let Some(index) = self.answered {
            if except != Some(Side::Callee(index)) {
                self.bye(Side::Callee(index));
            }
            self.legs[index].trace.ended_at_ms = Some(self.ms_at(now));
            self.release_target(now, index);
        }
        self.close(now);
    }

    pub(super) fn respond(
        &mut self,
        transaction: TransactionKey,
        request: &Message,
        side: Side,
        code: u16,
    ) {
        self.respond_with(transaction, request, side, code, &[]);
    }

    pub(super) fn respond_with(
        &mut self,
        transaction: TransactionKey,
        request: &Message,
        side: Side,
        code: u16,
        extra: &[(&str, String)],
    ) {
        let tag = match side {
            Side::Caller => self.local_tag.clone(),
            Side::Callee(index) => self.callee_tag(index),
        };
        let response = response_to(
            &request.headers,
            code,
            crate::sip::default_reason(code),
            &tag,
            extra,
        );
        self.out.push_back(Command::Respond {
            transaction,
            response,
        });
    }

    pub(super) fn on_request(
        &mut self,
        now: Instant,
        transaction: TransactionKey,
        from: Side,
        request: Message,
    ) {
        let live = matches!(self.phase, Phase::Answered | Phase::Bridged);
        let Some(other) = self.opposite(from).filter(|_| live) else {
            self.respond(transaction, &request, from, 481);
            return;
        };
        if let Some(dialog) = self.dialog_mut(from)
            && let Err(error) = dialog.handle_request(&request)
        {
            let code = match error {
                crate::dialog::DialogError::CSeqOutOfOrder { .. } => 500,
                _ => 481,
            };
            self.respond(transaction, &request, from, code);
            return;
        }
        let method = request.method().cloned().unwrap_or(Method::Bye);
        if method == Method::Bye {
            self.respond(transaction, &request, from, 200);
            self.hang_up(now, Some(from));
            return;
        }
        if method == Method::Invite {
            // §14.2: a side whose own INVITE we have not finished answering
            // gets 500 with Retry-After (0–10 s); a side sending one while
            // ours to it is pending gets 491 (glare), and retries itself.
            let own_pending = self
                .relays
                .values()
                .any(|r| r.request.method() == Some(&Method::Invite) && r.from == from)
                || (self.unacked.is_some() && from == Side::Caller);
            if own_pending {
                let retry = retry_after_seconds(&self.setup.id, self.next_relay);
                self.respond_with(
                    transaction,
                    &request,
                    from,
                    500,
                    &[("Retry-After", retry.to_string())],
                );
                return;
            }
            let theirs_pending = self
                .relays
                .values()
                .any(|r| r.request.method() == Some(&Method::Invite))
                || self.unacked.is_some();
            if theirs_pending {
                self.respond(transaction, &request, from, 491);
                return;
            }
        }
        let via = self.via(self.transport(other), self.address_of(other));
        let contact = self.contact(other);
        let Some(dialog) = self.dialog_mut(other) else {
            self.respond(transaction, &request, from, 481);
            return;
        };
        let mut relayed = dialog.request(method.clone(), &via);
        let relayed_cseq = dialog.local_cseq;
        if matches!(method, Method::Invite | Method::Update) {
            let at = relayed.headers.len() - 1;
            relayed.headers.insert(
                at,
                Header {
                    name: "Contact".to_owned(),
                    value: contact,
                },
            );
        }
        // A refresh relayed on to a leg with a timer carries that leg's
        // terms, the receiver being the UAS of it.
        if matches!(method, Method::Invite | Method::Update) {
            // A buyer that took no timer at first is asked again.
            let terms = match (self.timer_of(other), other) {
                (Some(timer), _) => Some(timer.header(false)),
                (None, Side::Callee(_)) => {
                    Some(format!("{};refresher=uas", self.session_interval()))
                }
                (None, Side::Caller) => None,
            };
            if let Some(terms) = terms {
                relayed = with_header(relayed, "Session-Expires", terms);
                relayed = with_header(relayed, "Supported", "timer".to_owned());
            }
        }
        // An INFO's package (RFC 6086) says what its body is to the far end.
        relayed.headers.extend(
            request
                .headers
                .iter()
                .filter(|h| h.name == "Info-Package")
                .cloned(),
        );
        copy_body(&request, &mut relayed);
        let id = self.next_relay;
        self.next_relay += 1;
        self.relays.insert(
            id,
            Relay {
                origin: transaction,
                from,
                request,
                relayed_cseq,
            },
        );
        self.request(self.peer(other), relayed, Purpose::Relay(id));
    }

    pub(super) fn on_relay_response(&mut self, now: Instant, id: u64, response: Message) {
        let code = response.status();
        if code == 100 {
            return;
        }
        let Some(relay) = self.relays.get(&id) else {
            return;
        };
        let tag = match relay.from {
            Side::Caller => self.local_tag.clone(),
            Side::Callee(index) => self.callee_tag(index),
        };
        let is_invite = relay.request.method() == Some(&Method::Invite);
        let mut extra = Vec::new();
        if (200..300).contains(&code) && is_invite {
            extra.push(("Contact", self.contact(relay.from)));
        }
        let mut translated = response_to(
            &relay.request.headers,
            code,
            reason_of(&response),
            &tag,
            &extra,
        );
        copy_body(&response, &mut translated);
        let refreshes = (200..300).contains(&code)
            && matches!(
                relay.request.method(),
                Some(Method::Invite | Method::Update)
            );
        let origin = relay.origin.clone();
        let from = relay.from;
        let relayed_cseq = relay.relayed_cseq;
        let late_offer = relay.request.body.is_empty() && !response.body.is_empty();
        let origin_cseq = cseq_number(&relay.request);
        if code >= 200 {
            self.relays.remove(&id);
        }
        if refreshes {
            if from == Side::Caller && self.callee_timer.is_none() {
                self.callee_timer =
                    session_timer::as_uac(&response).map(|t| SessionTimer::start(t, now));
            }
            // Both legs' transactions succeeded: both sessions are refreshed.
            let other = self.opposite(from);
            for side in std::iter::once(from).chain(other) {
                if let Some(timer) = self.timer_of_mut(side) {
                    timer.refreshed(now);
                }
            }
            if let Some(timer) = self.timer_of(from) {
                translated = with_header(translated, "Session-Expires", timer.header(true));
                if timer.terms.peer_supports {
                    translated = with_header(translated, "Require", "timer".to_owned());
                }
            }
        }
        if is_invite && (200..300).contains(&code) {
            // We acknowledge the far side ourselves: at once, or with the
            // near side's answer to an offer the 2xx made (late offer).
            if let Some(other) = self.opposite(from) {
                let via = self.via(self.transport(other), self.address_of(other));
                if let Some(dialog) = self.dialog_mut(other) {
                    let ack = dialog.ack(relayed_cseq, &via);
                    if late_offer {
                        self.awaited_ack = Some(AwaitedAck {
                            near: from,
                            near_cseq: origin_cseq,
                            far: other,
                            ack,
                        });
                    } else {
                        let to = self.peer(other);
                        self.out.push_back(Command::Ack { to, ack });
                    }
                }
            }
            if from == Side::Caller {
                self.send_2xx(now, origin, translated);
                return;
            }
        }
        self.out.push_back(Command::Respond {
            transaction: origin,
            response: translated,
        });
    }

    /// The interval asked of a buyer: the caller's, else the default.
    pub(super) fn session_interval(&self) -> u32 {
        match self.caller_terms {
            UasTimer::Agreed(terms) => terms.seconds,
            _ => session_timer::DEFAULT_INTERVAL,
        }
    }

    pub(super) fn timer_of(&self, side: Side) -> Option<&SessionTimer> {
        match side {
            Side::Caller => self.caller_timer.as_ref(),
            Side::Callee(index) if self.answered == Some(index) => self.callee_timer.as_ref(),
            Side::Callee(_) => None,
        }
    }

    pub(super) fn timer_of_mut(&mut self, side: Side) -> Option<&mut SessionTimer> {
        match side {
            Side::Caller => self.caller_timer.as_mut(),
            Side::Callee(index) if self.answered == Some(index) => self.callee_timer.as_mut(),
            Side::Callee(_) => None,
        }
    }

    /// The sides of the answered call, with their timers.
    pub(super) fn timed_sides(&self) -> Vec<(Side, SessionTimer)> {
        let callee = self
            .answered
            .zip(self.callee_timer)
            .map(|(index, timer)| (Side::Callee(index), timer));
        self.caller_timer
            .map(|timer| (Side::Caller, timer))
            .into_iter()
            .chain(callee)
            .collect()
    }

    /// The next moment a session timer needs the call.
    pub(super) fn session_deadline(&self) -> Option<Instant> {
        self.timed_sides()
            .into_iter()
            .flat_map(|(side, timer)| {
                let refresh = timer
                    .refresh_at()
                    .filter(|_| !self.refreshing.contains(&side));
                [Some(timer.expires_at()), refresh]
            })
            .flatten()
            .min()
    }

    /// Ends a call whose session went unrefreshed; sends our refreshes due.
    pub(super) fn run_session_timers(&mut self, now: Instant) {
        if !matches!(self.phase, Phase::Answered | Phase::Bridged) {
            return;
        }
        for (side, timer) in self.timed_sides() {
            if timer.expires_at() <= now {
                self.ended_by = Some("session_expired");
                self.hang_up(now, None);
                return;
            }
            if timer.refresh_at().is_some_and(|at| at <= now) && !self.refreshing.contains(&side) {
                self.send_refresh(side, &timer);
            }
        }
    }

    /// UPDATE without a body towards `side`: a refresh that changes nothing
    /// of the media (RFC 4028 §7.4, RFC 3311).
    pub(super) fn send_refresh(&mut self, side: Side, timer: &SessionTimer) {
        let via = self.via(self.transport(side), self.address_of(side));
        let Some(dialog) = self.dialog_mut(side) else {
            return;
        };
        let update = dialog.request(Method::Update, &via);
        let update = with_header(update, "Session-Expires", timer.header(false));
        let update = with_header(update, "Supported", "timer".to_owned());
        self.refreshing.push(side);
        self.request(self.peer(side), update, Purpose::Refresh(side));
    }

    /// The answer to our refresh: a 2xx renews the session; a dialog or
    /// peer that is gone ends the call; anything else waits for expiry.
    pub(super) fn on_refresh_response(&mut self, now: Instant, side: Side, code: u16) {
        if code < 200 {
            return;
        }
        self.refreshing.retain(|s| *s != side);
        match code {
            200..=299 => {
                if let Some(timer) = self.timer_of_mut(side) {
                    timer.refreshed(now);
                }
            }
            408 | 481 if matches!(self.phase, Phase::Answered | Phase::Bridged) => {
                self.ended_by = Some("session_expired");
                self.hang_up(now, None);
            }
            _ => {}
        }
    }
}
