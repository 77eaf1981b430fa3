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
//!
//! Here: the call's inputs and commands, its phases and the caller's side.
//! [`ring_tree`] rings the targets in turn and fails over, [`relay`] carries
//! the bridged call between the two dialogs, [`record`] builds what is kept.

mod record;
mod relay;
mod ring_tree;

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::auction::Ledger;
use crate::auction::ledger::{Hold, LegEnd, TargetEvent};
use crate::dialog::session_timer::{self, SessionTimer, UasTimer};
use crate::dialog::{Dialog, DialogState};
use crate::model::{
    Bid, BidCandidate, BidTrace, CallFacts, CallOutcome, CallRecord, CallerHistory, Campaign,
    Candidate, DecisionTrace, GuestLog, LegTrace, MAX_KEPT_CANDIDATES, PolicyInputs, PolicyTrace,
    Target, TargetEventTrace, Winner,
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
    /// The candidates the selector saw (or would have), kept in the record
    /// with the call's facts.
    pub candidates: Vec<BidCandidate>,
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
}

/// 0–10 seconds, spread by the call and its request count: §14.2's
/// "randomly chosen" Retry-After without a random source in the machine.
fn retry_after_seconds(call_id: &str, salt: u64) -> u64 {
    crate::hash::fnv1a(call_id.bytes().chain(salt.to_le_bytes())) % 11
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
