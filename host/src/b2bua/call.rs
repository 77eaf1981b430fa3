//! One call: the caller's leg (we are its UAS) and the legs we place towards
//! targets (we are their UAC), as one state machine. It takes [`Input`]s and
//! `now`, and answers with [`Command`]s: respond on a server transaction,
//! open a client transaction, score, run the auction, store the record. It
//! never touches a socket, the clock, the store or wasmtime.
//!
//! Topology hiding: every message towards one side is built from our own
//! dialog with that side; nothing of the other side's Via, Record-Route,
//! Contact, Call-ID or tags crosses over. Only bodies (SDP) and the caller's
//! number travel.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::auction::Ledger;
use crate::auction::ledger::{Hold, LegEnd, TargetEvent};
use crate::dialog::session_timer::{self, SessionTimer, UasTimer};
use crate::dialog::{Dialog, DialogState};
use crate::model::{
    Bid, BidTrace, CallFacts, CallOutcome, CallRecord, CallerHistory, Campaign, DecisionTrace,
    GuestLog, LegTrace, PolicyTrace, Target, TargetEventTrace, Winner,
};
use crate::sip::locate::{self, Location, Plan, Transport};
use crate::sip::uri::SipUri;
use crate::sip::{Header, Message, Method, StartLine, cseq, response_to};
use crate::transaction::{Timers, TransactionKey};

/// Quality of a call whose campaign has no scorer, or whose scorer failed
/// under the `fallback` failure mode.
pub const DEFAULT_QUALITY: u8 = 50;
/// How long a target rings when it names no ring timeout (the fallback target).
pub const DEFAULT_RING_TIMEOUT: Duration = Duration::from_secs(30);

/// The largest request sent over UDP (RFC 3261 §18.1.1).
const MAX_UDP_REQUEST: usize = 1300;

/// Redirects one call follows at most, over all its legs.
pub const MAX_REDIRECTS: u8 = 3;

/// Which leg of the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// The carrier's leg: the inbound INVITE.
    Caller,
    /// An outbound leg, by index.
    Callee(usize),
}

/// Where a request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Peer {
    /// Back to the caller, the way its INVITE came.
    Caller,
    /// A target, over UDP.
    Address(SocketAddr),
    /// A target, over a TCP connection (opened if there is none).
    Tcp(SocketAddr),
    /// A target, over a TLS connection whose certificate names the server.
    Tls(SocketAddr, Arc<str>),
}

/// What a client transaction the call opened is for; its responses come
/// back with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Purpose {
    /// The INVITE of outbound leg `n`.
    Invite(usize),
    /// The CANCEL of outbound leg `n`.
    Cancel(usize),
    /// A BYE towards a side.
    Bye(Side),
    /// The BYE of another fork's answer on outbound leg `n`.
    ForkBye(usize),
    /// Our session refresh (UPDATE) towards a side (RFC 4028).
    Refresh(Side),
    /// The PRACK of a reliable provisional on outbound leg `n` (RFC 3262).
    Prack(usize),
    /// A request relayed from one side to the other (re-INVITE, UPDATE, INFO…).
    Relay(u64),
}

/// What the shell asks of the scorer step.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoreRequest {
    pub call_id: String,
    /// The Request-URI's user part as received.
    pub called: String,
    /// The caller's number (From user part) as received.
    pub caller: String,
    pub headers: Vec<Header>,
    pub received_at_ms: i64,
}

impl ScoreRequest {
    /// The auction request of the call once scored, as `Call` asks it: the
    /// shell may start the auction without waiting to be asked.
    pub fn auction(&self, scoring: Box<Scoring>) -> AuctionRequest {
        AuctionRequest {
            call_id: self.call_id.clone(),
            scoring,
            caller: self.caller.clone(),
            received_at_ms: self.received_at_ms,
        }
    }
}

/// The campaign lookup, attribution and score of a call.
#[derive(Debug, Clone, PartialEq)]
pub enum Scored {
    /// No campaign has the called number.
    UnknownNumber,
    Campaign(Box<Scoring>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Scoring {
    pub campaign: Campaign,
    /// The called number, E.164.
    pub called: String,
    pub quality: u8,
    pub tags: Vec<String>,
    pub policies: Vec<PolicyTrace>,
    pub attribution: Vec<(String, String)>,
    /// The call as the scorer saw it; the selector sees it too.
    pub call: CallFacts,
    /// The caller's past before this call, read once for every rule and
    /// policy that asks.
    pub history: CallerHistory,
}

/// What the shell asks of the auction step.
#[derive(Debug, Clone, PartialEq)]
pub struct AuctionRequest {
    pub call_id: String,
    pub scoring: Box<Scoring>,
    pub caller: String,
    pub received_at_ms: i64,
}

/// One place to ring.
#[derive(Debug, Clone, PartialEq)]
pub struct Ring {
    /// The bid and target (none for the campaign's fallback).
    pub bid: Option<(Bid, Target)>,
    pub uri: String,
    /// Where the URI resolved to, and how to reach it; `None` if it did not.
    pub destination: Option<Location>,
}

/// The auction's answer: the ring order and every bid's fate.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RingTree {
    pub rings: Vec<Ring>,
    pub fallback: Option<Ring>,
    pub bids: Vec<BidTrace>,
    /// Bids considered beyond those in `bids` (the record's bound).
    pub bids_omitted: u32,
    pub policies: Vec<PolicyTrace>,
}

/// A finished call's record, and what metrics want of it.
#[derive(Debug, Clone, PartialEq)]
pub struct Finished {
    pub record: CallRecord,
    /// From the inbound INVITE to the first outbound INVITE.
    pub post_dial_delay: Option<Duration>,
    /// From the auction request to its answer.
    pub auction_latency: Option<Duration>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    Scored(Scored),
    Auctioned(Box<RingTree>),
    /// The caller's CANCEL (the switch has answered it 200).
    Cancel,
    /// A request inside one of the call's dialogs, on a new server transaction.
    Request {
        transaction: TransactionKey,
        from: Side,
        request: Message,
    },
    /// The ACK of a 2xx we sent to `from`.
    Ack {
        from: Side,
        ack: Message,
    },
    /// A response on a client transaction the call opened.
    Response {
        purpose: Purpose,
        response: Message,
    },
    /// A client transaction got no final response (timer B or F).
    NoResponse {
        purpose: Purpose,
    },
    /// A client transaction's request could not be sent: the TCP
    /// connection to its peer could not be made.
    Unreachable {
        purpose: Purpose,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Send a response on a server transaction.
    Respond {
        transaction: TransactionKey,
        response: Message,
    },
    /// Open a client transaction.
    Request {
        to: Peer,
        request: Message,
        purpose: Purpose,
    },
    /// Send an ACK of a 2xx (no transaction).
    Ack {
        to: Peer,
        ack: Message,
    },
    Score(ScoreRequest),
    Auction(AuctionRequest),
    Record(Box<Finished>),
    /// Nothing is left to do: the call can be forgotten.
    Done,
}

/// What the switch tells a new call about itself.
#[derive(Debug, Clone)]
pub struct CallSetup {
    pub id: String,
    pub invite: Message,
    pub invite_transaction: TransactionKey,
    /// Our address for Via and Contact (`host:port`).
    pub local: String,
    /// Our TLS listener's `host:port`, if we have one: the Contact of a
    /// TLS leg, where its peer opens a new connection to us.
    pub local_tls: Option<String>,
    /// Our `host:port` on the socket of the other address family, if any.
    pub local_other_family: Option<String>,
    /// How requests towards the caller travel.
    pub caller_transport: Transport,
    pub timers: Timers,
    /// How long a buyer has to answer an INVITE at all (100 Trying will
    /// do) before the next target rings.
    pub first_response_timeout: Duration,
    pub received_at_ms: i64,
    /// Send quality and campaign to buyers in `X-Plugboard-*` headers.
    pub quality_headers: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Scoring,
    Routing,
    Ringing,
    /// 200 sent to the caller, its ACK awaited.
    Answered,
    Bridged,
    /// The call is over for the caller; legs may still be settling.
    Closed,
}

#[derive(Debug)]
struct Leg {
    ring: Ring,
    destination: SocketAddr,
    /// The target's transport, or TCP for an INVITE too large for UDP.
    transport: Transport,
    /// The name its TLS certificate must carry.
    tls_name: Option<Arc<str>>,
    /// TCP only because the INVITE exceeds 1,300 bytes: UDP again if the
    /// connection cannot be made.
    tcp_for_size: bool,
    invite: Message,
    dialog: Option<Dialog>,
    provisional: bool,
    /// We gave up on this leg (ring timeout, caller gone): CANCEL it once it
    /// rings, and release it with ACK + BYE if it answers anyway.
    abandoned: bool,
    cancel_sent: bool,
    settled: bool,
    ring_deadline: Option<Instant>,
    /// When a leg that has sent nothing back is given up (a dead buyer
    /// would otherwise cost the caller its whole ring timeout).
    first_response_by: Option<Instant>,
    ack: Option<Message>,
    /// The RSeq of the last reliable provisional PRACKed (RFC 3262).
    rseq_acked: Option<u32>,
    /// Other forks' answers, by their To tag, with the ACK each got.
    forks: Vec<(String, Message)>,
    /// The target's place and the bid's cap units, while the leg has them.
    hold: Option<Hold>,
    trace: LegTrace,
}

impl Leg {
    /// Where the leg's requests go, and how.
    fn peer(&self) -> Peer {
        peer_over(self.transport, self.destination, self.tls_name.as_ref())
    }
}

fn peer_over(transport: Transport, destination: SocketAddr, tls_name: Option<&Arc<str>>) -> Peer {
    match (transport, tls_name) {
        (Transport::Tcp, _) => Peer::Tcp(destination),
        (Transport::Tls, Some(name)) => Peer::Tls(destination, name.clone()),
        (Transport::Tls, None) => Peer::Tls(destination, destination.ip().to_string().into()),
        (Transport::Udp, _) => Peer::Address(destination),
    }
}

/// A 2xx we retransmit until its ACK comes (RFC 3261 §13.3.1.4).
#[derive(Debug)]
struct Unacked {
    transaction: TransactionKey,
    response: Message,
    cseq: u32,
    next: Instant,
    interval: Duration,
    give_up: Instant,
}

/// The ACK of a far side's 2xx, held until the near side's ACK: an INVITE
/// without a body (late offer) gets the offer in the 2xx and the answer in
/// the ACK, which the far side must get (RFC 3264 §5, RFC 3261 §13.2.1).
#[derive(Debug)]
struct AwaitedAck {
    near: Side,
    /// CSeq number of the near side's INVITE, which its ACK repeats.
    near_cseq: u32,
    far: Side,
    ack: Message,
}

#[derive(Debug)]
struct Relay {
    origin: TransactionKey,
    from: Side,
    request: Message,
    /// CSeq number of the relayed copy, for its ACK.
    relayed_cseq: u32,
}

pub struct Call {
    setup: CallSetup,
    /// The caller's number as the carrier sent it (the From URI's user).
    caller: String,
    ledger: Arc<Ledger>,
    /// Targets paused or resumed by this call's legs.
    target_events: Vec<TargetEvent>,
    phase: Phase,
    received: Instant,
    caller_dialog: Option<Dialog>,
    local_tag: String,
    scoring: Option<Box<Scoring>>,
    tree: RingTree,
    next_ring: usize,
    fallback_used: bool,
    legs: Vec<Leg>,
    current: Option<usize>,
    answered: Option<usize>,
    unacked: Option<Unacked>,
    awaited_ack: Option<AwaitedAck>,
    /// Redirects followed, against [`MAX_REDIRECTS`].
    redirects: u8,
    /// What the caller's INVITE asked of session timers.
    caller_terms: UasTimer,
    /// Each side's session timer once answered (RFC 4028).
    caller_timer: Option<SessionTimer>,
    callee_timer: Option<SessionTimer>,
    /// Sides our session refresh is out to.
    refreshing: Vec<Side>,
    /// Who ended the answered call, for the record.
    ended_by: Option<&'static str>,
    relays: HashMap<u64, Relay>,
    next_relay: u64,
    /// Client transactions opened and not yet finished, by purpose.
    pending: HashSet<Purpose>,
    sequence: u64,
    outcome: Option<CallOutcome>,
    answered_at: Option<Instant>,
    ended_at: Option<Instant>,
    routed_at: Option<Instant>,
    first_invite_at: Option<Instant>,
    auction_asked_at: Option<Instant>,
    auction_latency: Option<Duration>,
    recorded: bool,
    done: bool,
    out: VecDeque<Command>,
}

impl CallSetup {
    /// Where a TLS peer reaches us: our TLS listener, else our own address
    /// (the peer then keeps the connection we opened).
    fn tls_local(&self) -> &str {
        self.local_tls.as_deref().unwrap_or(&self.local)
    }

    /// Our address for requests to `to` (none: the caller): the socket of
    /// the other address family's for a target of that family.
    fn local_towards(&self, to: Option<SocketAddr>) -> &str {
        match (&self.local_other_family, to) {
            (Some(other), Some(to)) if other.starts_with('[') == to.is_ipv6() => other,
            _ => &self.local,
        }
    }
}

impl Call {
    /// A new call for an INVITE that opened a server transaction: asks the
    /// shell to score it.
    pub fn new(setup: CallSetup, ledger: Arc<Ledger>, now: Instant) -> Self {
        let local_tag = format!("pb{}", setup.id.trim_start_matches("call_"));
        let caller_dialog = Dialog::from_uas(&setup.invite, &local_tag).ok();
        let caller = user_part(crate::dialog::uri_of(
            setup.invite.header("From").unwrap_or_default(),
        ))
        .to_owned();
        let mut call = Call {
            caller,
            ledger,
            target_events: Vec::new(),
            phase: Phase::Scoring,
            received: now,
            caller_dialog,
            local_tag,
            scoring: None,
            tree: RingTree::default(),
            next_ring: 0,
            fallback_used: false,
            legs: Vec::new(),
            current: None,
            answered: None,
            unacked: None,
            awaited_ack: None,
            redirects: 0,
            caller_terms: UasTimer::Off,
            caller_timer: None,
            callee_timer: None,
            refreshing: Vec::new(),
            ended_by: None,
            relays: HashMap::new(),
            next_relay: 0,
            pending: HashSet::new(),
            sequence: 0,
            outcome: None,
            answered_at: None,
            ended_at: None,
            routed_at: None,
            first_invite_at: None,
            auction_asked_at: None,
            auction_latency: None,
            recorded: false,
            done: false,
            out: VecDeque::new(),
            setup,
        };
        if call.caller_dialog.is_none() {
            call.reject(now, 400, "Missing From tag or Contact");
            return call;
        }
        call.caller_terms = session_timer::as_uas(&call.setup.invite);
        if call.caller_terms == UasTimer::TooSmall {
            let refusal = with_header(
                call.invite_response(422, "Session Interval Too Small", None),
                "Min-SE",
                session_timer::MIN_SE.to_string(),
            );
            call.out.push_back(Command::Respond {
                transaction: call.setup.invite_transaction.clone(),
                response: refusal,
            });
            call.outcome = Some(CallOutcome::Rejected);
            call.close(now);
            return call;
        }
        call.out.push_back(Command::Score(ScoreRequest {
            call_id: call.setup.id.clone(),
            called: user_part(request_uri(&call.setup.invite)).to_owned(),
            caller: call.caller.clone(),
            headers: call.setup.invite.headers.clone(),
            received_at_ms: call.setup.received_at_ms,
        }));
        call
    }

    pub fn id(&self) -> &str {
        &self.setup.id
    }

    /// The tag we gave the caller's dialog (our To tag).
    pub fn local_tag(&self) -> &str {
        &self.local_tag
    }

    /// Our From tag towards targets: every outbound leg's dialog is found by it.
    pub fn callee_tag(&self, leg: usize) -> String {
        format!("{}l{leg}", self.local_tag)
    }

    /// The Call-ID of outbound leg `n`.
    pub fn callee_call_id(&self, leg: usize) -> String {
        format!("{}-{leg}@plugboard", self.setup.id)
    }

    pub fn poll_command(&mut self) -> Option<Command> {
        self.out.pop_front()
    }

    pub fn handle(&mut self, now: Instant, input: Input) {
        match input {
            Input::Scored(scored) => self.on_scored(now, scored),
            Input::Auctioned(tree) => self.on_auctioned(now, *tree),
            Input::Cancel => self.on_cancel(now),
            Input::Request {
                transaction,
                from,
                request,
            } => self.on_request(now, transaction, from, request),
            Input::Ack { from, ack } => self.on_ack(from, &ack),
            Input::Response { purpose, response } => {
                // A retransmitted final response finds its purpose gone already.
                if response.status() >= 200 {
                    self.pending.remove(&purpose);
                }
                self.on_response(now, purpose, response);
            }
            Input::NoResponse { purpose } => {
                self.pending.remove(&purpose);
                self.on_no_response(now, purpose);
            }
            Input::Unreachable { purpose } => {
                self.pending.remove(&purpose);
                self.on_unreachable(now, purpose);
            }
        }
        self.check_done();
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        if let Some(unacked) = &mut self.unacked
            && unacked.next <= now
        {
            if unacked.give_up <= now {
                // The caller never acknowledged the answer: end both legs.
                self.unacked = None;
                self.outcome = Some(CallOutcome::Failed);
                self.ended_by = Some("no_ack");
                self.hang_up(now, None);
            } else {
                self.out.push_back(Command::Respond {
                    transaction: unacked.transaction.clone(),
                    response: unacked.response.clone(),
                });
                unacked.interval = (unacked.interval * 2).min(self.setup.timers.t2);
                unacked.next = now + unacked.interval;
            }
        }
        if let Some(current) = self.current
            && self.phase == Phase::Ringing
        {
            let leg = &self.legs[current];
            let given_up = if leg.first_response_by.is_some_and(|at| at <= now) {
                Some("no_response")
            } else if leg.ring_deadline.is_some_and(|at| at <= now) {
                Some("ring_timeout")
            } else {
                None
            };
            if let Some(result) = given_up {
                self.give_up_leg(now, current, result);
                self.ring_next(now);
            }
        }
        self.run_session_timers(now);
        self.check_done();
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        let ringing = self
            .current
            .filter(|_| self.phase == Phase::Ringing)
            .map(|c| &self.legs[c]);
        let ring = ringing.and_then(|leg| leg.ring_deadline);
        let first_response = ringing.and_then(|leg| leg.first_response_by);
        let unacked = self.unacked.as_ref().map(|u| u.next);
        let sessions = self.session_deadline();
        [ring, first_response, unacked, sessions]
            .into_iter()
            .flatten()
            .min()
    }

    /// Ends the call from our side (shutdown): BYE to both legs of an
    /// answered call, 503 to one still being set up.
    pub fn terminate(&mut self, now: Instant) {
        match self.phase {
            Phase::Answered | Phase::Bridged => {
                self.ended_by.get_or_insert("shutdown");
                self.hang_up(now, None);
            }
            Phase::Closed => {}
            _ => {
                self.abandon_legs(now, "cancelled");
                self.reject(now, 503, "Service Unavailable");
            }
        }
        self.check_done();
    }

    /// The caller's number in E.164 when it is one, else as sent (`anonymous`).
    /// Why a bid of the ring tree did not take the call: what its last leg
    /// ended with (`busy`, `ring_timeout`, `unreachable`, …) if it was rung;
    /// otherwise an earlier bid answered, or the call ended first.
    fn why_not_won(&self, bid_id: &str, answered: bool) -> String {
        let leg = self.legs.iter().rev().find(|leg| {
            leg.ring
                .bid
                .as_ref()
                .is_some_and(|(bid, _)| bid.id == bid_id)
        });
        match leg {
            Some(leg) if !leg.trace.result.is_empty() => leg.trace.result.clone(),
            Some(_) => "call_ended".to_owned(),
            None if answered => "earlier_bid_answered".to_owned(),
            None => "call_ended_before_its_turn".to_owned(),
        }
    }

    fn caller_number(&self) -> String {
        crate::number::normalize_e164(&self.caller).unwrap_or_else(|_| self.caller.clone())
    }

    /// Opens a client transaction for `purpose`.
    fn request(&mut self, to: Peer, request: Message, purpose: Purpose) {
        self.pending.insert(purpose);
        self.out.push_back(Command::Request {
            to,
            request,
            purpose,
        });
    }

    fn ms_at(&self, now: Instant) -> i64 {
        let elapsed = i64::try_from(now.saturating_duration_since(self.received).as_millis())
            .unwrap_or(i64::MAX);
        self.setup.received_at_ms.saturating_add(elapsed)
    }

    /// A Via for a request to `to` (a target's address; none for the
    /// caller) over `transport`.
    fn via(&mut self, transport: Transport, to: Option<SocketAddr>) -> String {
        self.sequence += 1;
        format!(
            "SIP/2.0/{} {};branch=z9hG4bK{}.{};rport",
            transport.via_name(),
            self.setup.local_towards(to),
            self.setup.id.trim_start_matches("call_"),
            self.sequence
        )
    }

    /// Our Contact for `towards`: with the transport that side's requests
    /// to us should come over.
    fn contact(&self, towards: Side) -> String {
        self.contact_over(self.transport(towards), self.address_of(towards))
    }

    fn contact_over(&self, transport: Transport, to: Option<SocketAddr>) -> String {
        let local = self.setup.local_towards(to);
        match transport {
            Transport::Udp => format!("<sip:plugboard@{local}>"),
            Transport::Tcp => format!("<sip:plugboard@{local};transport=tcp>"),
            // §8.1.1.8: a sips: request carries a sips: Contact.
            Transport::Tls => format!("<sips:plugboard@{}>", self.setup.tls_local()),
        }
    }

    /// A response to the caller's INVITE. One that makes the dialog (a
    /// provisional or a 2xx) copies the INVITE's Record-Route, in order
    /// (§12.1.1): the carrier's proxies stay on the dialog's path.
    fn invite_response(&self, code: u16, reason: &str, body: Option<&Message>) -> Message {
        let mut extra: Vec<(&str, String)> = Vec::new();
        if (101..300).contains(&code) {
            extra.extend(
                self.setup
                    .invite
                    .headers
                    .iter()
                    .filter(|h| h.name == "Record-Route")
                    .map(|h| ("Record-Route", h.value.clone())),
            );
        }
        extra.push(("Contact", self.contact(Side::Caller)));
        let mut response = response_to(
            &self.setup.invite.headers,
            code,
            reason,
            &self.local_tag,
            &extra,
        );
        if let Some(source) = body {
            copy_body(source, &mut response);
        }
        response
    }

    fn respond_invite(&mut self, code: u16, reason: &str, body: Option<&Message>) {
        let response = self.invite_response(code, reason, body);
        self.out.push_back(Command::Respond {
            transaction: self.setup.invite_transaction.clone(),
            response,
        });
    }

    /// Refuses the call before any leg: a final response and the end.
    fn reject(&mut self, now: Instant, code: u16, reason: &str) {
        self.respond_invite(code, reason, None);
        if self.outcome.is_none() {
            self.outcome = Some(if code == 480 {
                CallOutcome::NoAnswer
            } else {
                CallOutcome::Rejected
            });
        }
        self.close(now);
    }

    fn close(&mut self, now: Instant) {
        self.phase = Phase::Closed;
        self.ended_at.get_or_insert(now);
        self.unacked = None;
        self.record(now);
    }

    fn on_scored(&mut self, now: Instant, scored: Scored) {
        if self.phase != Phase::Scoring {
            return;
        }
        match scored {
            Scored::UnknownNumber => self.reject(now, 404, "Not Found"),
            Scored::Campaign(scoring) => {
                if scoring.campaign.early_ringback {
                    self.respond_invite(180, "Ringing", None);
                }
                self.phase = Phase::Routing;
                self.auction_asked_at = Some(now);
                self.out.push_back(Command::Auction(AuctionRequest {
                    call_id: self.setup.id.clone(),
                    scoring: scoring.clone(),
                    caller: self.caller.clone(),
                    received_at_ms: self.setup.received_at_ms,
                }));
                self.scoring = Some(scoring);
            }
        }
    }

    fn on_auctioned(&mut self, now: Instant, tree: RingTree) {
        if self.phase != Phase::Routing {
            return;
        }
        self.auction_latency = self
            .auction_asked_at
            .map(|asked| now.saturating_duration_since(asked));
        self.tree = tree;
        self.routed_at = Some(now);
        self.phase = Phase::Ringing;
        self.ring_next(now);
    }

    /// Rings the next place of the tree, then the fallback, then gives up.
    fn ring_next(&mut self, now: Instant) {
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
    fn skipped_leg(&mut self, ring: Ring, trace: LegTrace) {
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

    fn start_leg(
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
    fn outbound_invite(
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
    fn release_target(&mut self, now: Instant, index: usize) {
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

    /// Seconds the answered leg has talked by `ended`.
    fn talk_seconds(&self, ended: Instant) -> u32 {
        self.answered_at.map_or(0, |at| {
            u32::try_from(ended.saturating_duration_since(at).as_secs()).unwrap_or(u32::MAX)
        })
    }

    /// Whether the call, ending at `ended`, is billable to its winning bid.
    fn billable_at(&self, ended: Instant) -> bool {
        let winner = self.answered.and_then(|i| self.legs[i].ring.bid.as_ref());
        self.outcome.unwrap_or(CallOutcome::Answered) == CallOutcome::Answered
            && winner.is_some_and(|(bid, _)| self.talk_seconds(ended) >= bid.min_duration_s)
    }

    /// Stops waiting for leg `index`: CANCEL it if it rings (else as soon as
    /// it does), free its target place.
    fn give_up_leg(&mut self, now: Instant, index: usize, result: &str) {
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

    fn abandon_legs(&mut self, now: Instant, result: &str) {
        for index in 0..self.legs.len() {
            if Some(index) != self.answered {
                self.give_up_leg(now, index, result);
            }
        }
    }

    /// CANCEL of a leg's INVITE (RFC 3261 §9.1): its Request-URI, Call-ID,
    /// From, To, CSeq number and top Via.
    fn send_cancel(&mut self, index: usize) {
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

    fn on_cancel(&mut self, now: Instant) {
        if !matches!(self.phase, Phase::Scoring | Phase::Routing | Phase::Ringing) {
            return;
        }
        self.outcome = Some(CallOutcome::Abandoned);
        self.abandon_legs(now, "cancelled");
        self.respond_invite(487, "Request Terminated", None);
        self.close(now);
    }

    fn on_response(&mut self, now: Instant, purpose: Purpose, response: Message) {
        match purpose {
            Purpose::Invite(index) => self.on_leg_response(now, index, response),
            Purpose::Relay(id) => self.on_relay_response(now, id, response),
            Purpose::Refresh(side) => self.on_refresh_response(now, side, response.status()),
            Purpose::Cancel(_) | Purpose::Bye(_) | Purpose::ForkBye(_) | Purpose::Prack(_) => {}
        }
    }

    fn on_no_response(&mut self, now: Instant, purpose: Purpose) {
        match purpose {
            Purpose::Invite(index) => {
                let ended = self.ms_at(now);
                let leg = &mut self.legs[index];
                leg.settled = true;
                if leg.trace.result.is_empty() {
                    leg.trace.result = "failed".to_owned();
                    leg.trace.final_status = Some(408);
                }
                leg.trace.ended_at_ms.get_or_insert(ended);
                self.release_target(now, index);
                if self.current == Some(index) && self.phase == Phase::Ringing {
                    self.ring_next(now);
                }
            }
            Purpose::Relay(id) => {
                let timeout = response_to(&[], 408, "Request Timeout", "", &[]);
                self.on_relay_response(now, id, timeout);
            }
            Purpose::Refresh(side) => self.on_refresh_response(now, side, 408),
            Purpose::Cancel(_) | Purpose::Bye(_) | Purpose::ForkBye(_) | Purpose::Prack(_) => {}
        }
    }

    /// A request that never left for want of a TCP connection. An INVITE
    /// that took TCP only for its size goes again over UDP (§18.1.1); any
    /// other request fails as if unanswered, at once.
    fn on_unreachable(&mut self, now: Instant, purpose: Purpose) {
        if let Purpose::Invite(index) = purpose {
            let leg = &self.legs[index];
            if leg.tcp_for_size && !leg.settled && !leg.abandoned {
                let ring = leg.ring.clone();
                let invite = self.outbound_invite(index, &ring, Transport::Udp, leg.destination);
                let leg = &mut self.legs[index];
                leg.transport = Transport::Udp;
                leg.tcp_for_size = false;
                leg.invite = invite.clone();
                let to = leg.peer();
                self.request(to, invite, purpose);
                return;
            }
            let leg = &mut self.legs[index];
            if leg.trace.result.is_empty() {
                leg.trace.result = "unreachable".to_owned();
            }
        }
        self.on_no_response(now, purpose);
    }

    fn on_leg_response(&mut self, now: Instant, index: usize, response: Message) {
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
    fn send_prack(&mut self, index: usize, response: &Message, rseq: u32) {
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
    fn follow_redirect(&mut self, now: Instant, index: usize, response: &Message) -> bool {
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
    fn release_fork(&mut self, index: usize, tag: String, response: &Message) {
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

    /// Sends a 2xx to the caller and retransmits it until the ACK.
    fn send_2xx(&mut self, now: Instant, transaction: TransactionKey, response: Message) {
        let number = response.header("CSeq").and_then(cseq).map_or(0, |(n, _)| n);
        self.out.push_back(Command::Respond {
            transaction: transaction.clone(),
            response: response.clone(),
        });
        // §13.3.1.4 asks for this whatever the transport: a reliable hop is
        // not an end-to-end guarantee.
        let interval = self.setup.timers.t1;
        self.unacked = Some(Unacked {
            transaction,
            response,
            cseq: number,
            next: now + interval,
            interval,
            give_up: now + self.setup.timers.timeout(),
        });
    }

    fn on_ack(&mut self, from: Side, ack: &Message) {
        let number = ack.header("CSeq").and_then(cseq).map(|(n, _)| n);
        if self
            .awaited_ack
            .as_ref()
            .is_some_and(|a| a.near == from && Some(a.near_cseq) == number)
        {
            self.send_awaited_ack(Some(ack));
        }
        if from != Side::Caller {
            return;
        }
        if self.unacked.as_ref().map(|u| u.cseq) == number {
            self.unacked = None;
        }
        if self.phase == Phase::Answered {
            self.phase = Phase::Bridged;
        }
    }

    /// Sends the far side's held ACK, with the near side's answer if given.
    fn send_awaited_ack(&mut self, answer: Option<&Message>) {
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

    fn dialog_mut(&mut self, side: Side) -> Option<&mut Dialog> {
        match side {
            Side::Caller => self.caller_dialog.as_mut(),
            Side::Callee(index) => self.legs.get_mut(index).and_then(|l| l.dialog.as_mut()),
        }
    }

    fn peer(&self, side: Side) -> Peer {
        match side {
            Side::Caller => Peer::Caller,
            Side::Callee(index) => self.legs[index].peer(),
        }
    }

    /// A target's address; none for the caller.
    fn address_of(&self, side: Side) -> Option<SocketAddr> {
        match side {
            Side::Caller => None,
            Side::Callee(index) => self.legs.get(index).map(|leg| leg.destination),
        }
    }

    fn transport(&self, side: Side) -> Transport {
        match side {
            Side::Caller => self.setup.caller_transport,
            Side::Callee(index) => self
                .legs
                .get(index)
                .map_or(Transport::Udp, |leg| leg.transport),
        }
    }

    /// The other side of the bridge.
    fn opposite(&self, side: Side) -> Option<Side> {
        match side {
            Side::Caller => self.answered.map(Side::Callee),
            Side::Callee(index) if Some(index) == self.answered => Some(Side::Caller),
            Side::Callee(_) => None,
        }
    }

    fn bye(&mut self, side: Side) {
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
    fn hang_up(&mut self, now: Instant, except: Option<Side>) {
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

    fn respond(&mut self, transaction: TransactionKey, request: &Message, side: Side, code: u16) {
        self.respond_with(transaction, request, side, code, &[]);
    }

    fn respond_with(
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

    fn on_request(
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

    fn on_relay_response(&mut self, now: Instant, id: u64, response: Message) {
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
    fn session_interval(&self) -> u32 {
        match self.caller_terms {
            UasTimer::Agreed(terms) => terms.seconds,
            _ => session_timer::DEFAULT_INTERVAL,
        }
    }

    fn timer_of(&self, side: Side) -> Option<&SessionTimer> {
        match side {
            Side::Caller => self.caller_timer.as_ref(),
            Side::Callee(index) if self.answered == Some(index) => self.callee_timer.as_ref(),
            Side::Callee(_) => None,
        }
    }

    fn timer_of_mut(&mut self, side: Side) -> Option<&mut SessionTimer> {
        match side {
            Side::Caller => self.caller_timer.as_mut(),
            Side::Callee(index) if self.answered == Some(index) => self.callee_timer.as_mut(),
            Side::Callee(_) => None,
        }
    }

    /// The sides of the answered call, with their timers.
    fn timed_sides(&self) -> Vec<(Side, SessionTimer)> {
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
    fn session_deadline(&self) -> Option<Instant> {
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
    fn run_session_timers(&mut self, now: Instant) {
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
    fn send_refresh(&mut self, side: Side, timer: &SessionTimer) {
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
    fn on_refresh_response(&mut self, now: Instant, side: Side, code: u16) {
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

    fn check_done(&mut self) {
        if self.done || self.phase != Phase::Closed {
            return;
        }
        let legs_settled = self.legs.iter().all(|l| l.settled);
        if legs_settled && self.pending.is_empty() && self.unacked.is_none() {
            self.done = true;
            self.out.push_back(Command::Done);
        }
    }

    fn record(&mut self, now: Instant) {
        if self.recorded {
            return;
        }
        self.recorded = true;
        let Some(scoring) = &self.scoring else {
            // Refused before a campaign was known: counted, not recorded.
            self.out.push_back(Command::Record(Box::new(Finished {
                record: self.bare_record(now),
                post_dial_delay: None,
                auction_latency: None,
            })));
            return;
        };
        let answered_leg = self.answered.map(|i| &self.legs[i]);
        let winner_bid = answered_leg.and_then(|l| l.ring.bid.as_ref());
        let ended = self.ended_at.unwrap_or(now);
        let duration_s = self.talk_seconds(ended);
        let outcome = self.outcome.unwrap_or(CallOutcome::Answered);
        let billable = self.billable_at(ended);
        let mut bids = self.tree.bids.clone();
        for trace in &mut bids {
            let won = winner_bid.is_some_and(|(bid, _)| bid.id == trace.bid_id);
            if won {
                trace.status = "won".to_owned();
            } else if trace.status == "lost" && trace.reason.is_none() {
                trace.reason = Some(self.why_not_won(&trace.bid_id, winner_bid.is_some()));
            }
        }
        let mut policies = scoring.policies.clone();
        policies.extend(self.tree.policies.iter().cloned());
        bound_logs(&mut policies);
        let record = CallRecord {
            id: self.setup.id.clone(),
            campaign_id: scoring.campaign.id.clone(),
            tenant_id: scoring.campaign.tenant_id.clone(),
            caller: self.caller_number(),
            called: scoring.called.clone(),
            outcome,
            quality: Some(scoring.quality),
            winner: winner_bid.map(|(bid, _)| Winner {
                bid_id: bid.id.clone(),
                bidder_id: bid.bidder_id.clone(),
                tenant_id: bid.tenant_id.clone(),
                target_id: bid.target_id.clone(),
                amount_micros: bid.amount_micros,
            }),
            received_at_ms: self.setup.received_at_ms,
            routed_at_ms: self.routed_at.map(|at| self.ms_at(at)),
            answered_at_ms: self.answered_at.map(|at| self.ms_at(at)),
            ended_at_ms: Some(self.ms_at(ended)),
            duration_s,
            billable,
            payout_micros: if billable {
                winner_bid.map_or(0, |(bid, _)| bid.amount_micros)
            } else {
                0
            },
            trace: DecisionTrace {
                tags: scoring.tags.clone(),
                policies,
                bids,
                bids_omitted: self.tree.bids_omitted,
                ring_order: self
                    .legs
                    .iter()
                    .filter(|l| !l.invite.headers.is_empty())
                    .filter_map(|l| l.ring.bid.as_ref().map(|(bid, _)| bid.id.clone()))
                    .collect(),
                legs: self.legs.iter().map(|l| l.trace.clone()).collect(),
                attribution: scoring.attribution.clone(),
                target_events: self
                    .target_events
                    .iter()
                    .map(|event| event_trace(event, &self.legs))
                    .collect(),
                ended_by: self.answered_at.and(self.ended_by).map(str::to_owned),
            },
        };
        self.out.push_back(Command::Record(Box::new(Finished {
            record,
            post_dial_delay: self
                .first_invite_at
                .map(|at| at.saturating_duration_since(self.received)),
            auction_latency: self.auction_latency,
        })));
    }

    /// The record of a call refused before its campaign was known.
    fn bare_record(&self, now: Instant) -> CallRecord {
        CallRecord {
            id: self.setup.id.clone(),
            campaign_id: String::new(),
            tenant_id: String::new(),
            caller: self.caller_number(),
            called: user_part(request_uri(&self.setup.invite)).to_owned(),
            outcome: self.outcome.unwrap_or(CallOutcome::Rejected),
            quality: None,
            winner: None,
            received_at_ms: self.setup.received_at_ms,
            routed_at_ms: None,
            answered_at_ms: None,
            ended_at_ms: Some(self.ms_at(now)),
            duration_s: 0,
            billable: false,
            payout_micros: 0,
            trace: DecisionTrace::default(),
        }
    }
}

/// Bytes of policy logs one call record keeps, all its invocations
/// together: each invocation is bounded, and so is their sum, so that a
/// record's size does not grow with the number of bidders' modules.
pub const MAX_RECORD_LOG_BYTES: usize = 64 << 10;

/// 0–10 seconds, spread by the call and its request count: §14.2's
/// "randomly chosen" Retry-After without a random source in the machine.
fn retry_after_seconds(call_id: &str, salt: u64) -> u64 {
    crate::hash::fnv1a(call_id.bytes().chain(salt.to_le_bytes())) % 11
}

/// Keeps the first invocations' logs up to [`MAX_RECORD_LOG_BYTES`]; later
/// ones keep their outcome and cost, and count their lines as dropped.
fn bound_logs(policies: &mut [PolicyTrace]) {
    let mut kept = 0usize;
    for trace in policies {
        let bytes: usize = trace.logs.iter().map(GuestLog::bytes).sum();
        if kept + bytes > MAX_RECORD_LOG_BYTES {
            let lines = u32::try_from(trace.logs.len()).unwrap_or(u32::MAX);
            trace.logs_dropped = trace.logs_dropped.saturating_add(lines);
            trace.logs.clear();
        } else {
            kept += bytes;
        }
    }
}

/// A target's event in the record, with the tenant of the target (one of
/// the call's legs rang it, or was about to).
fn event_trace(event: &TargetEvent, legs: &[Leg]) -> TargetEventTrace {
    let tenant_of = |target_id: &str| {
        legs.iter()
            .filter_map(|leg| leg.ring.bid.as_ref())
            .find(|(_, target)| target.id == target_id)
            .map(|(_, target)| target.tenant_id.clone())
            .unwrap_or_default()
    };
    match event {
        TargetEvent::Paused {
            target_id,
            until,
            reason,
        } => TargetEventTrace {
            tenant_id: tenant_of(target_id),
            target_id: target_id.clone(),
            event: "paused".to_owned(),
            until: Some(*until),
            reason: Some(reason.clone()),
        },
        TargetEvent::Resumed { target_id } => TargetEventTrace {
            tenant_id: tenant_of(target_id),
            target_id: target_id.clone(),
            event: "resumed".to_owned(),
            until: None,
            reason: None,
        },
    }
}

fn request_uri(message: &Message) -> &str {
    match &message.start {
        StartLine::Request { uri, .. } => uri,
        StartLine::Response { .. } => "",
    }
}

/// The user part of a SIP URI (`sip:+1800…@host;…` → `+1800…`).
pub fn user_part(uri: &str) -> &str {
    let rest = uri.split_once(':').map_or(uri, |(_, rest)| rest);
    match rest.split_once('@') {
        Some((user, _)) => user.split(';').next().unwrap_or_default(),
        None => "",
    }
}

fn reason_of(response: &Message) -> &str {
    match &response.start {
        StartLine::Response { reason, .. } => reason,
        StartLine::Request { .. } => "",
    }
}

/// The RSeq of a reliable provisional (`Require: 100rel`), if it is one.
fn reliable_rseq(response: &Message) -> Option<u32> {
    if !response.lists("Require", "100rel") {
        return None;
    }
    response.header("RSeq")?.trim().parse().ok()
}

/// The CSeq number of a request (1 if it has none that reads).
fn cseq_number(request: &Message) -> u32 {
    request
        .header("CSeq")
        .and_then(cseq)
        .map_or(1, |(number, _)| number)
}

/// `message` with one more header, before its Content-Length.
fn with_header(mut message: Message, name: &str, value: String) -> Message {
    let at = message
        .headers
        .iter()
        .position(|h| h.name == "Content-Length")
        .unwrap_or(message.headers.len());
    message.headers.insert(
        at,
        Header {
            name: name.to_owned(),
            value,
        },
    );
    message
}

/// Headers that describe a body, relayed with it.
const BODY_HEADERS: [&str; 4] = [
    "Content-Type",
    "Content-Disposition",
    "Content-Encoding",
    "Content-Language",
];

/// Puts `source`'s body (with the headers that describe it) into `target`,
/// fixing Content-Length.
fn copy_body(source: &Message, target: &mut Message) {
    target
        .headers
        .retain(|h| !BODY_HEADERS.contains(&h.name.as_str()) && h.name != "Content-Length");
    if !source.body.is_empty() && source.header("Content-Type").is_some() {
        target.headers.extend(
            source
                .headers
                .iter()
                .filter(|h| BODY_HEADERS.contains(&h.name.as_str()))
                .cloned(),
        );
        target.body = source.body.clone();
    } else {
        target.body.clear();
    }
    target.headers.push(Header {
        name: "Content-Length".to_owned(),
        value: target.body.len().to_string(),
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::LogLevel;

    #[test]
    fn a_records_policy_logs_are_bounded_in_all_and_the_rest_counted() {
        let heavy = |id: &str| PolicyTrace {
            policy_id: id.to_owned(),
            version: String::new(),
            role: "active".to_owned(),
            outcome: "ok".to_owned(),
            error: None,
            fuel_used: 1,
            elapsed_us: 1,
            logs: vec![
                GuestLog {
                    level: LogLevel::Info,
                    message: "x".repeat(1024),
                    fields: Vec::new(),
                };
                8
            ],
            logs_dropped: 0,
            tenant_id: String::new(),
        };
        let mut traces: Vec<PolicyTrace> = (0..20).map(|i| heavy(&format!("p{i}"))).collect();
        bound_logs(&mut traces);
        let kept: usize = traces.iter().map(|t| t.logs.len() * 1024).sum();
        assert_eq!(kept, MAX_RECORD_LOG_BYTES);
        assert_eq!(traces.len(), 20, "every invocation stays, with its outcome");
        assert_eq!(traces[19].logs_dropped, 8);
    }
}
