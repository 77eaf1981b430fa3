//! The ring tree: ringing each bid's target in turn (its place and cap
//! units taken as it rings, given back as its leg ends), failing over on a
//! refusal, a timeout or silence, following a target's redirects, PRACKing
//! its reliable provisionals, and letting go of the forks that lost.

use super::*;

impl Call {
    /// Rings the next place of the tree, then the fallback, then gives up.
    pub(super) fn ring_next(&mut self, now: Instant) {
        self.current = None;
        loop {
            let ring = if self.next_ring < self.tree.rings.len() {
                self.next_ring += 1;
                self.tree.rings[self.next_ring - 1].clone()
            } else if !self.fallback_used && self.tree.fallback.is_some() {
                self.fallback_used = true;
                self.tree
                    .fallback
                    .clone()
                    .expect("invariant: checked above")
            } else {
                self.reject(now, 480, "Temporarily Unavailable");
                return;
            };
            let started_at_ms = self.ms_at(now);
            let mut trace = LegTrace {
                target_id: ring.bid.as_ref().map(|(_, t)| t.id.clone()),
                tenant_id: ring.bid.as_ref().map(|(_, t)| t.tenant_id.clone()),
                uri: ring.uri.clone(),
                final_status: None,
                result: String::new(),
                started_at_ms,
                ended_at_ms: Some(started_at_ms),
                other_forks_answered: 0,
            };
            let Some(destination) = ring.destination.clone() else {
                trace.result = "unresolvable".to_owned();
                self.skipped_leg(ring, trace);
                continue;
            };
            let hold = match &ring.bid {
                Some((bid, target)) => {
                    let (taken, resumed) = self.ledger.take(bid, target, started_at_ms / 1000);
                    self.target_events.extend(resumed);
                    match taken {
                        Ok(hold) => Some(hold),
                        Err(refused) => {
                            trace.result = refused.code().to_owned();
                            self.skipped_leg(ring, trace);
                            continue;
                        }
                    }
                }
                None => None,
            };
            trace.ended_at_ms = None;
            self.start_leg(now, ring, destination, hold, trace);
            return;
        }
    }

    /// A place of the tree that was not rung, kept in the trace.
    pub(super) fn skipped_leg(&mut self, ring: Ring, trace: LegTrace) {
        let destination = SocketAddr::from(([0, 0, 0, 0], 0));
        self.legs.push(Leg {
            ring,
            destination,
            transport: Transport::Udp,
            tls_name: None,
            tcp_for_size: false,
            invite: Message {
                start: StartLine::Request {
                    method: Method::Invite,
                    uri: String::new(),
                },
                headers: Vec::new(),
                body: Vec::new(),
            },
            dialog: None,
            provisional: false,
            abandoned: true,
            cancel_sent: false,
            settled: true,
            ring_deadline: None,
            first_response_by: None,
            ack: None,
            rseq_acked: None,
            forks: Vec::new(),
            hold: None,
            trace,
        });
    }

    pub(super) fn start_leg(
        &mut self,
        now: Instant,
        ring: Ring,
        location: Location,
        hold: Option<Hold>,
        trace: LegTrace,
    ) {
        let index = self.legs.len();
        let Location {
            address: destination,
            mut transport,
            tls_name,
        } = location;
        let tls_name: Option<Arc<str>> = tls_name.map(Into::into);
        let mut invite = self.outbound_invite(index, &ring, transport, destination);
        // §18.1.1: a request within 200 bytes of the 1,500-byte MTU goes
        // over a congestion-controlled transport.
        let tcp_for_size = transport == Transport::Udp && invite.to_bytes().len() > MAX_UDP_REQUEST;
        if tcp_for_size {
            transport = Transport::Tcp;
            invite = self.outbound_invite(index, &ring, transport, destination);
        }
        let ring_timeout = ring.bid.as_ref().map_or(DEFAULT_RING_TIMEOUT, |(_, t)| {
            Duration::from_secs(u64::from(t.ring_timeout_s.max(1)))
        });
        self.first_invite_at.get_or_insert(now);
        self.request(
            peer_over(transport, destination, tls_name.as_ref()),
            invite.clone(),
            Purpose::Invite(index),
        );
        self.legs.push(Leg {
            ring,
            destination,
            transport,
            tls_name,
            tcp_for_size,
            invite,
            dialog: None,
            provisional: false,
            abandoned: false,
            cancel_sent: false,
            settled: false,
            ring_deadline: Some(now + ring_timeout),
            first_response_by: Some(now + self.setup.first_response_timeout),
            ack: None,
            rseq_acked: None,
            forks: Vec::new(),
            hold,
            trace,
        });
        self.current = Some(index);
    }

    /// The INVITE towards a target: our own dialog, the caller's number and
    /// SDP offer, and nothing else of the carrier's.
    pub(super) fn outbound_invite(
        &mut self,
        index: usize,
        ring: &Ring,
        transport: Transport,
        to: SocketAddr,
    ) -> Message {
        let via = self.via(transport, Some(to));
        let contact = self.contact_over(transport, Some(to));
        let invite = &self.setup.invite;
        let caller = &self.caller;
        let max_forwards = invite
            .header("Max-Forwards")
            .and_then(|v| v.trim().parse::<u32>().ok())
            // An RFC 2543 caller sends none: it counts as 70.
            .unwrap_or(70)
            .saturating_sub(1)
            .min(70);
        let h = |name: &str, value: String| Header {
            name: name.to_owned(),
            value,
        };
        let mut headers = vec![
            h("Via", via),
            h("Max-Forwards", max_forwards.to_string()),
            h(
                "From",
                format!(
                    "<sip:{caller}@{}>;tag={}",
                    self.setup.local,
                    self.callee_tag(index)
                ),
            ),
            h("To", format!("<{}>", ring.uri)),
            h("Call-ID", self.callee_call_id(index)),
            h("CSeq", "1 INVITE".to_owned()),
            h("Contact", contact),
            h("X-Plugboard-Call-Id", self.setup.id.clone()),
            h("Allow", crate::sip::ALLOW.to_owned()),
            h("Supported", "timer, 100rel".to_owned()),
            // The buyer is asked to refresh (RFC 4028 §7.1), on the
            // caller's interval if it set one.
            h(
                "Session-Expires",
                format!("{};refresher=uas", self.session_interval()),
            ),
            h("Min-SE", session_timer::MIN_SE.to_string()),
        ];
        if self.setup.quality_headers
            && let Some(scoring) = &self.scoring
        {
            headers.push(h("X-Plugboard-Quality", scoring.quality.to_string()));
            headers.push(h("X-Plugboard-Campaign", scoring.campaign.id.clone()));
        }
        headers.push(h("Content-Length", "0".to_owned()));
        let mut request = Message {
            start: StartLine::Request {
                method: Method::Invite,
                uri: ring.uri.clone(),
            },
            headers,
            body: Vec::new(),
        };
        copy_body(invite, &mut request);
        request
    }

    /// Gives back the leg's target place and cap units, as its result says:
    /// an answered call keeps its units (its payout only if billable), a
    /// target that did not answer has missed a call, one we stopped ringing
    /// has not.
    pub(super) fn release_target(&mut self, now: Instant, index: usize) {
        let billable = self.billable_at(now);
        let talk_s = self.talk_seconds(now);
        let at = self.ms_at(now) / 1000;
        let leg = &mut self.legs[index];
        let Some(hold) = leg.hold.take() else {
            return;
        };
        let end = match leg.trace.result.as_str() {
            "answered" => LegEnd::Ended { billable, talk_s },
            result @ ("busy" | "rejected" | "ring_timeout" | "no_response" | "unreachable"
            | "failed") => LegEnd::Missed(result),
            _ => LegEnd::Withdrawn,
        };
        self.target_events
            .extend(self.ledger.release(hold, end, at));
    }

    /// Stops waiting for leg `index`: CANCEL it if it rings (else as soon as
    /// it does), free its target place.
    pub(super) fn give_up_leg(&mut self, now: Instant, index: usize, result: &str) {
        let ended = self.ms_at(now);
        let leg = &mut self.legs[index];
        if leg.settled || leg.abandoned {
            return;
        }
        leg.abandoned = true;
        leg.trace.result = result.to_owned();
        leg.trace.ended_at_ms = Some(ended);
        if leg.provisional {
            self.send_cancel(index);
        }
        self.release_target(now, index);
    }

    pub(super) fn abandon_legs(&mut self, now: Instant, result: &str) {
        for index in 0..self.legs.len() {
            if Some(index) != self.answered {
                self.give_up_leg(now, index, result);
            }
        }
    }

    /// CANCEL of a leg's INVITE (RFC 3261 §9.1): its Request-URI, Call-ID,
    /// From, To, CSeq number and top Via.
    pub(super) fn send_cancel(&mut self, index: usize) {
        let leg = &mut self.legs[index];
        if leg.cancel_sent {
            return;
        }
        leg.cancel_sent = true;
        let keep = ["Via", "From", "To", "Call-ID", "Route"];
        let mut headers: Vec<Header> = leg
            .invite
            .headers
            .iter()
            .filter(|h| keep.contains(&h.name.as_str()))
            .cloned()
            .collect();
        let number = leg
            .invite
            .header("CSeq")
            .and_then(cseq)
            .map_or(1, |(n, _)| n);
        headers.push(Header {
            name: "Max-Forwards".to_owned(),
            value: "70".to_owned(),
        });
        headers.push(Header {
            name: "CSeq".to_owned(),
            value: format!("{number} CANCEL"),
        });
        headers.push(Header {
            name: "Content-Length".to_owned(),
            value: "0".to_owned(),
        });
        let cancel = Message {
            start: StartLine::Request {
                method: Method::Cancel,
                uri: request_uri(&leg.invite).to_owned(),
            },
            headers,
            body: Vec::new(),
        };
        let to = leg.peer();
        self.request(to, cancel, Purpose::Cancel(index));
    }

    pub(super) fn on_leg_response(&mut self, now: Instant, index: usize, response: Message) {
        let code = response.status();
        let ended = self.ms_at(now);
        let leg = &mut self.legs[index];
        leg.first_response_by = None;
        if code > 100
            && leg.dialog.is_none()
            && crate::sip::has_tag(response.header("To").unwrap_or_default())
        {
            leg.dialog = Dialog::from_uac(&leg.invite, &response).ok();
        }
        match code {
            0..=100 => {}
            101..=199 => {
                if leg.settled {
                    return;
                }
                leg.provisional = true;
                if let Some(rseq) = reliable_rseq(&response) {
                    if leg.rseq_acked.is_some_and(|acked| rseq <= acked) {
                        // A retransmission of one already PRACKed.
                        return;
                    }
                    leg.rseq_acked = Some(rseq);
                    self.send_prack(index, &response, rseq);
                }
                let leg = &self.legs[index];
                if leg.abandoned {
                    self.send_cancel(index);
                } else if self.current == Some(index) && self.phase == Phase::Ringing {
                    let code = if response.body.is_empty() { 180 } else { code };
                    let reason = reason_of(&response).to_owned();
                    self.respond_invite(code, &reason, Some(&response));
                }
            }
            200..=299 => {
                let answering = crate::sip::tag_param(response.header("To").unwrap_or_default())
                    .unwrap_or_default()
                    .to_owned();
                let answered_before = leg.trace.final_status.is_some_and(|s| s < 300);
                let same_dialog = leg
                    .dialog
                    .as_ref()
                    .is_some_and(|d| d.id.remote_tag == answering);
                if answered_before && !same_dialog {
                    self.release_fork(index, answering, &response);
                    return;
                }
                if self
                    .awaited_ack
                    .as_ref()
                    .is_some_and(|a| a.far == Side::Callee(index))
                {
                    // Retransmitted while the caller's answer is awaited.
                    return;
                }
                if let Some(ack) = &leg.ack {
                    // A retransmitted 2xx: our ACK was lost.
                    let ack = ack.clone();
                    self.out.push_back(Command::Ack {
                        to: leg.peer(),
                        ack,
                    });
                    return;
                }
                // The 2xx makes the dialog, whatever early dialog came
                // before: behind a forking proxy the one that answers may
                // not be the one that rang first (§13.2.2.4).
                let used_cseq = leg.dialog.as_ref().map_or(0, |d| d.local_cseq);
                if let Ok(mut dialog) = Dialog::from_uac(&leg.invite, &response) {
                    // A PRACK on the early dialog took a CSeq number already.
                    dialog.local_cseq = dialog.local_cseq.max(used_cseq);
                    leg.dialog = Some(dialog);
                }
                leg.settled = true;
                leg.trace.final_status = Some(code);
                let Some(dialog) = &leg.dialog else {
                    return;
                };
                let invite_cseq = cseq_number(&leg.invite);
                let via = format!(
                    "SIP/2.0/{} {};branch=z9hG4bK{}.a{index};rport",
                    leg.transport.via_name(),
                    self.setup.local_towards(Some(leg.destination)),
                    self.setup.id.trim_start_matches("call_")
                );
                let ack = dialog.ack(invite_cseq, &via);
                let to = leg.peer();
                let wanted =
                    self.current == Some(index) && self.phase == Phase::Ringing && !leg.abandoned;
                let late_offer = self.setup.invite.body.is_empty() && !response.body.is_empty();
                if wanted && late_offer {
                    self.awaited_ack = Some(AwaitedAck {
                        near: Side::Caller,
                        near_cseq: cseq_number(&self.setup.invite),
                        far: Side::Callee(index),
                        ack,
                    });
                } else {
                    leg.ack = Some(ack.clone());
                    self.out.push_back(Command::Ack { to, ack });
                }
                if wanted {
                    self.legs[index].trace.result = "answered".to_owned();
                    if let Some(hold) = &self.legs[index].hold {
                        self.ledger.answered(hold);
                    }
                    self.answered = Some(index);
                    self.answered_at = Some(now);
                    self.current = None;
                    self.phase = Phase::Answered;
                    if let Some(dialog) = &mut self.caller_dialog {
                        dialog.confirm();
                    }
                    self.callee_timer =
                        session_timer::as_uac(&response).map(|t| SessionTimer::start(t, now));
                    let mut ok = self.invite_response(code, reason_of(&response), Some(&response));
                    if let UasTimer::Agreed(terms) = self.caller_terms {
                        let timer = SessionTimer::start(terms, now);
                        ok = with_header(ok, "Session-Expires", timer.header(true));
                        if terms.peer_supports {
                            ok = with_header(ok, "Require", "timer".to_owned());
                        }
                        self.caller_timer = Some(timer);
                    }
                    self.send_2xx(now, self.setup.invite_transaction.clone(), ok);
                } else {
                    // Answered after we moved on (CANCEL/200 race, ring
                    // timeout): release it at once.
                    self.legs[index].trace.ended_at_ms = Some(ended);
                    self.bye(Side::Callee(index));
                    self.release_target(now, index);
                }
            }
            _ => {
                if leg.settled {
                    return;
                }
                leg.settled = true;
                leg.trace.final_status = Some(code);
                if (300..400).contains(&code)
                    && self.current == Some(index)
                    && self.phase == Phase::Ringing
                    && !leg.abandoned
                    && self.follow_redirect(now, index, &response)
                {
                    return;
                }
                let leg = &mut self.legs[index];
                leg.trace.ended_at_ms.get_or_insert(ended);
                if leg.trace.result.is_empty() {
                    leg.trace.result = match code {
                        486 | 600 => "busy",
                        487 => "cancelled",
                        _ => "rejected",
                    }
                    .to_owned();
                }
                self.release_target(now, index);
                if self.current == Some(index) && self.phase == Phase::Ringing {
                    self.ring_next(now);
                }
            }
        }
    }

    /// PRACK of the reliable provisional `response` of leg `index`, on its
    /// early dialog (RFC 3262 §7.2): `RAck` names its RSeq and the INVITE.
    pub(super) fn send_prack(&mut self, index: usize, response: &Message, rseq: u32) {
        let via = self.via(
            self.legs[index].transport,
            Some(self.legs[index].destination),
        );
        let leg = &mut self.legs[index];
        let invite_cseq = cseq_number(&leg.invite);
        let tag = crate::sip::tag_param(response.header("To").unwrap_or_default());
        let prack = match &mut leg.dialog {
            Some(dialog) if Some(dialog.id.remote_tag.as_str()) == tag => {
                dialog.request(Method::Prack, &via)
            }
            // Another fork's early dialog.
            _ => match Dialog::from_uac(&leg.invite, response) {
                Ok(mut early) => early.request(Method::Prack, &via),
                Err(_) => return,
            },
        };
        let prack = with_header(prack, "RAck", format!("{rseq} {invite_cseq} INVITE"));
        let to = leg.peer();
        self.request(to, prack, Purpose::Prack(index));
    }

    /// Rings the first Contact of leg `index`'s 3xx, if its target follows
    /// redirects and the Contact is on the target's own host: the new leg
    /// keeps the target's place and bid. Whether it did.
    pub(super) fn follow_redirect(
        &mut self,
        now: Instant,
        index: usize,
        response: &Message,
    ) -> bool {
        if self.redirects >= MAX_REDIRECTS {
            return false;
        }
        let leg = &self.legs[index];
        let Some((bid, target)) = leg.ring.bid.clone() else {
            return false;
        };
        if !target.follow_redirects {
            return false;
        }
        let Some(contact) = response
            .header("Contact")
            .and_then(|c| c.split(',').next())
            .map(|c| crate::dialog::uri_of(c.trim()).to_owned())
        else {
            return false;
        };
        let (Ok(to), Ok(own)) = (SipUri::parse(&contact), SipUri::parse(&target.uri)) else {
            return false;
        };
        if to.host != own.host || to.scheme != own.scheme {
            return false;
        }
        // The same host as the target's: an IP literal as it says, a name
        // at the address the target's own name resolved to.
        let location = match locate::plan(&to) {
            Plan::Literal(location) => location,
            _ => Location {
                address: SocketAddr::new(leg.destination.ip(), to.port_or_default()),
                transport: locate::stated_transport(&to).unwrap_or(Transport::Udp),
                tls_name: leg.tls_name.as_deref().map(str::to_owned),
            },
        };
        self.redirects += 1;
        let ended = self.ms_at(now);
        let leg = &mut self.legs[index];
        leg.trace.result = "redirected".to_owned();
        leg.trace.ended_at_ms = Some(ended);
        let hold = leg.hold.take();
        let trace = LegTrace {
            target_id: Some(target.id.clone()),
            tenant_id: Some(target.tenant_id.clone()),
            uri: contact.clone(),
            final_status: None,
            result: String::new(),
            started_at_ms: ended,
            ended_at_ms: None,
            other_forks_answered: 0,
        };
        let ring = Ring {
            bid: Some((bid, target)),
            uri: contact,
            destination: Some(location.clone()),
        };
        self.start_leg(now, ring, location, hold, trace);
        true
    }

    /// Another branch of a forking proxy answered leg `index` after the
    /// first: its dialog is acknowledged and ended at once (§13.2.2.4);
    /// its retransmissions get the same ACK again.
    pub(super) fn release_fork(&mut self, index: usize, tag: String, response: &Message) {
        let leg = &mut self.legs[index];
        let to = leg.peer();
        if let Some((_, ack)) = leg.forks.iter().find(|(known, _)| *known == tag) {
            let ack = ack.clone();
            self.out.push_back(Command::Ack { to, ack });
            return;
        }
        let Ok(mut fork) = Dialog::from_uac(&leg.invite, response) else {
            return;
        };
        let via = format!(
            "SIP/2.0/{} {};branch=z9hG4bK{}.a{index}f{};rport",
            leg.transport.via_name(),
            self.setup.local_towards(Some(leg.destination)),
            self.setup.id.trim_start_matches("call_"),
            leg.forks.len()
        );
        let ack = fork.ack(fork.local_cseq, &via);
        leg.forks.push((tag, ack.clone()));
        leg.trace.other_forks_answered += 1;
        self.out.push_back(Command::Ack {
            to: to.clone(),
            ack,
        });
        let via = self.via(
            self.legs[index].transport,
            Some(self.legs[index].destination),
        );
        let bye = fork.request(Method::Bye, &via);
        self.request(to, bye, Purpose::ForkBye(index));
    }

    /// Sends the far side's held ACK, with the near side's answer if given.
    pub(super) fn send_awaited_ack(&mut self, answer: Option<&Message>) {
        let Some(AwaitedAck { far, mut ack, .. }) = self.awaited_ack.take() else {
            return;
        };
        if let Some(answer) = answer {
            copy_body(answer, &mut ack);
        }
        if let Side::Callee(index) = far
            && self.legs[index].ack.is_none()
        {
            self.legs[index].ack = Some(ack.clone());
        }
        let to = self.peer(far);
        self.out.push_back(Command::Ack { to, ack });
    }
}
