//! The back-to-back user agent, sans-IO. [`Switch`] is the SIP endpoint of
//! every call: it owns the server and client transactions, finds the call
//! each message belongs to (by transaction, dialog or cancelled INVITE),
//! refuses what no call can take (unknown dialog, overload) and hands the
//! rest to that [`Call`]. The shell feeds it messages, time and the answers
//! to the work it asked for (score, auction), and sends what it transmits.

pub mod admission;
mod call;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use call::{
    AuctionRequest, Call, CallSetup, Command, DEFAULT_QUALITY, DEFAULT_RING_TIMEOUT, Finished,
    Input, Peer, Purpose, Ring, RingTree, ScoreRequest, Scored, Scoring, Side, user_part,
};

use crate::auction::Ledger;
use crate::sip::locate::Transport;
use crate::sip::{
    Capabilities, Inbound, Message, Method, response_address, response_to, stamp_received,
    tag_param,
};
use crate::transaction::{
    ClientTransaction, Event, ServerInvite, ServerNonInvite, ServerTransaction, Timers,
    TransactionKey, cancelled_invite_key, client_key, server_key,
};

/// How a request reached us, so that its responses go back the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Path {
    Udp,
    /// A TCP connection, by the shell's id.
    Tcp(u64),
    /// A TLS connection to our TLS listener, by the shell's id.
    Tls(u64),
}

/// Where a message leaves to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Route {
    Udp(SocketAddr),
    Tcp(u64),
    /// A TCP connection to this address: the shell's open one, or a new one.
    TcpTo(SocketAddr),
    /// A TLS connection to this address whose certificate carries this
    /// name: the shell's open one, or a new one.
    TlsTo(SocketAddr, Arc<str>),
}

impl Route {
    /// Over a connection, where transactions need no retransmissions.
    pub fn is_reliable(&self) -> bool {
        !matches!(self, Route::Udp(_))
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Transmit {
    pub route: Route,
    pub message: Message,
}

/// Work the shell does off the SIP loop and answers with [`Switch::handle_input`].
#[derive(Debug, Clone, PartialEq)]
pub enum Work {
    Score { call: u64, request: ScoreRequest },
    Auction { call: u64, request: AuctionRequest },
    Record(Box<Finished>),
}

#[derive(Debug, Clone)]
pub struct SwitchConfig {
    /// Our `host:port` for Via and Contact.
    pub local: String,
    /// Our TLS listener's `host:port`, if there is one.
    pub local_tls: Option<String>,
    /// Our `host:port` on the socket of the other address family, if
    /// there is one: Via and Contact towards targets of that family.
    pub local_other_family: Option<String>,
    pub timers: Timers,
    /// Calls at once before new ones get `503`.
    pub max_calls: usize,
    /// Seconds a refused caller is asked to wait (`Retry-After`).
    pub retry_after_s: u32,
    /// Send quality and campaign to buyers in `X-Plugboard-*` headers.
    pub quality_headers: bool,
    /// Where INVITEs may come from (empty: anywhere), and how fast from each.
    pub trusted_sources: Vec<admission::Cidr>,
    pub invite_rate: admission::InviteRate,
    /// How long a target has to send any response to its INVITE before the
    /// next one rings (`sip_first_response_ms`).
    pub first_response_timeout: Duration,
}

/// What a target gets to send anything back, by default: long enough for a
/// distant proxy's 100 Trying, short next to a 20 s ring timeout.
pub const DEFAULT_FIRST_RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);

/// Counters of what the switch did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SwitchStats {
    pub calls: u64,
    pub overloaded: u64,
    /// INVITEs from outside `trusted_sources` (`403`).
    pub untrusted: u64,
    /// INVITEs past their source's rate (`503`).
    pub too_fast: u64,
    pub refused: u64,
    pub dropped: u64,
    pub retransmissions_absorbed: u64,
    pub unknown_dialog: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    Server(TransactionKey),
    Client(TransactionKey),
    Call(u64),
}

struct ServerEntry {
    tx: ServerTransaction,
    path: Path,
}

struct ClientEntry {
    tx: ClientTransaction,
    route: Route,
    call: u64,
    purpose: Purpose,
}

struct CallEntry {
    /// Boxed: the table grows by rehashing, which should move pointers, not calls.
    call: Box<Call>,
    caller: Route,
    dialogs: Vec<(String, String)>,
    invite: TransactionKey,
}

pub struct Switch {
    config: SwitchConfig,
    caps: Capabilities,
    ledger: Arc<Ledger>,
    seed: u64,
    next_call: u64,
    servers: HashMap<TransactionKey, ServerEntry>,
    clients: HashMap<TransactionKey, ClientEntry>,
    calls: HashMap<u64, CallEntry>,
    /// (Call-ID, our tag) → the call and side of that dialog.
    dialogs: HashMap<(String, String), (u64, Side)>,
    /// The caller's INVITE transaction → its call, for CANCEL.
    invites: HashMap<TransactionKey, u64>,
    timers: BinaryHeap<Reverse<(Instant, Timer)>>,
    inputs: VecDeque<(u64, Input)>,
    transmit: VecDeque<Transmit>,
    work: VecDeque<Work>,
    stats: SwitchStats,
    admission: admission::Admission,
}

/// SplitMix64: call ids that do not repeat across restarts (the shell seeds
/// it from the OS) and do not reveal how many calls came before.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// `ip:port` of a SIP URI whose host is an IP literal (port 5060 if none).
pub fn uri_address(uri: &str) -> Option<SocketAddr> {
    let rest = uri.split_once(':')?.1;
    let host_port = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    let host_port = host_port.split([';', '?', '>']).next()?;
    if let Ok(address) = host_port.parse::<SocketAddr>() {
        return Some(address);
    }
    host_port
        .parse::<std::net::IpAddr>()
        .ok()
        .map(|ip| SocketAddr::new(ip, 5060))
}

impl Switch {
    pub fn new(config: SwitchConfig, ledger: Arc<Ledger>, seed: u64) -> Self {
        Switch {
            admission: admission::Admission::new(
                config.trusted_sources.clone(),
                config.invite_rate,
            ),
            config,
            caps: Capabilities::default(),
            ledger,
            seed,
            next_call: 0,
            servers: HashMap::new(),
            clients: HashMap::new(),
            calls: HashMap::new(),
            dialogs: HashMap::new(),
            invites: HashMap::new(),
            timers: BinaryHeap::new(),
            inputs: VecDeque::new(),
            transmit: VecDeque::new(),
            work: VecDeque::new(),
            stats: SwitchStats::default(),
        }
    }

    pub fn capabilities(&self) -> &Capabilities {
        &self.caps
    }

    pub fn stats(&self) -> SwitchStats {
        self.stats
    }

    /// Calls not yet finished.
    pub fn active_calls(&self) -> usize {
        self.calls.len()
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmit.pop_front()
    }

    pub fn poll_work(&mut self) -> Option<Work> {
        self.work.pop_front()
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.peek().map(|Reverse((at, _))| *at)
    }

    /// A message from the wire, already inspected; `unix_ms` is the wall
    /// clock, for records.
    pub fn handle_inbound(
        &mut self,
        now: Instant,
        unix_ms: i64,
        inbound: Inbound,
        source: SocketAddr,
        path: Path,
    ) {
        match inbound {
            Inbound::Request(mut request) => {
                stamp_received(&mut request, source);
                self.on_request(now, unix_ms, request, source, path);
            }
            Inbound::Refuse(mut refusal) => {
                self.stats.refused += 1;
                stamp_received(&mut refusal, source);
                self.send_response(path, refusal);
            }
            Inbound::Response(response) => self.on_response(now, response),
            Inbound::Drop(_) => self.stats.dropped += 1,
        }
        self.run(now);
    }

    /// The answer to a [`Work`] item.
    pub fn handle_input(&mut self, now: Instant, call: u64, input: Input) {
        self.inputs.push_back((call, input));
        self.run(now);
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(Reverse((at, _))) = self.timers.peek() {
            if *at > now {
                break;
            }
            let Some(Reverse((_, timer))) = self.timers.pop() else {
                break;
            };
            match timer {
                Timer::Server(key) => {
                    if let Some(entry) = self.servers.get_mut(&key)
                        && entry.tx.poll_timeout().is_some_and(|t| t <= now)
                    {
                        entry.tx.handle_timeout(now);
                        self.flush_server(&key);
                    }
                }
                Timer::Client(key) => {
                    if let Some(entry) = self.clients.get_mut(&key)
                        && entry.tx.poll_timeout().is_some_and(|t| t <= now)
                    {
                        entry.tx.handle_timeout(now);
                        self.flush_client(&key);
                    }
                }
                Timer::Call(handle) => {
                    if let Some(entry) = self.calls.get_mut(&handle)
                        && entry.call.poll_timeout().is_some_and(|t| t <= now)
                    {
                        entry.call.handle_timeout(now);
                        self.drain_call(now, handle);
                    }
                }
            }
            self.run(now);
        }
    }

    /// The shell could not open the connection `to` (TCP or TLS): the
    /// requests waiting for it will never be sent, and their calls are told
    /// so at once rather than after timer B.
    pub fn handle_unreachable(&mut self, now: Instant, to: &Route) {
        let stranded: Vec<TransactionKey> = self
            .clients
            .iter()
            .filter(|(_, entry)| entry.route == *to)
            .map(|(key, _)| key.clone())
            .collect();
        for key in stranded {
            if let Some(entry) = self.clients.remove(&key) {
                self.inputs.push_back((
                    entry.call,
                    Input::Unreachable {
                        purpose: entry.purpose,
                    },
                ));
            }
        }
        self.run(now);
    }

    /// Ends every call (shutdown): BYE to answered ones, 503 to the others.
    pub fn terminate_all(&mut self, now: Instant) {
        let handles: Vec<u64> = self.calls.keys().copied().collect();
        for handle in handles {
            if let Some(entry) = self.calls.get_mut(&handle) {
                entry.call.terminate(now);
            }
            self.drain_call(now, handle);
        }
        self.run(now);
    }

    fn run(&mut self, now: Instant) {
        while let Some((handle, input)) = self.inputs.pop_front() {
            if let Some(entry) = self.calls.get_mut(&handle) {
                entry.call.handle(now, input);
                self.drain_call(now, handle);
            }
        }
    }

    fn send_response(&mut self, path: Path, response: Message) {
        let route = match path {
            Path::Tcp(id) | Path::Tls(id) => Some(Route::Tcp(id)),
            Path::Udp => response_address(&response).map(Route::Udp),
        };
        match route {
            Some(route) => self.transmit.push_back(Transmit {
                route,
                message: response,
            }),
            None => self.stats.dropped += 1,
        }
    }

    fn arm(&mut self, at: Option<Instant>, timer: Timer) {
        if let Some(at) = at {
            self.timers.push(Reverse((at, timer)));
        }
    }

    /// A response on a fresh server transaction that no call owns.
    fn answer_alone(
        &mut self,
        now: Instant,
        request: &Message,
        key: TransactionKey,
        path: Path,
        code: u16,
        extra: &[(&str, String)],
    ) {
        let mut tx = if request.method() == Some(&Method::Invite) {
            ServerTransaction::Invite(ServerInvite::new(
                request,
                path != Path::Udp,
                self.config.timers,
            ))
        } else {
            ServerTransaction::NonInvite(ServerNonInvite::new(
                path != Path::Udp,
                self.config.timers,
            ))
        };
        let reason = crate::sip::default_reason(code);
        tx.send_response(
            now,
            response_to(&request.headers, code, reason, "pbsw", extra),
        );
        self.servers.insert(key.clone(), ServerEntry { tx, path });
        self.flush_server(&key);
    }

    fn on_request(
        &mut self,
        now: Instant,
        unix_ms: i64,
        request: Message,
        source: SocketAddr,
        path: Path,
    ) {
        let Some(key) = server_key(&request) else {
            self.stats.dropped += 1;
            return;
        };
        if let Some(entry) = self.servers.get_mut(&key) {
            self.stats.retransmissions_absorbed += 1;
            entry.tx.handle_request(now, request);
            self.flush_server(&key);
            return;
        }
        let method = request.method().cloned().unwrap_or(Method::Ack);
        let dialog = dialog_key(&request, "To").and_then(|d| self.dialogs.get(&d).copied());
        match method {
            Method::Ack => match dialog {
                Some((handle, from)) => self
                    .inputs
                    .push_back((handle, Input::Ack { from, ack: request })),
                None => self.stats.dropped += 1,
            },
            Method::Cancel => {
                let cancelled = cancelled_invite_key(&request)
                    .and_then(|invite| self.invites.get(&invite).copied());
                match cancelled {
                    Some(handle) => {
                        self.answer_alone(now, &request, key, path, 200, &[]);
                        self.inputs.push_back((handle, Input::Cancel));
                    }
                    None => self.answer_alone(now, &request, key, path, 481, &[]),
                }
            }
            Method::Invite if request.header("To").and_then(tag_param).is_none() => {
                self.new_call(now, unix_ms, request, key, source, path);
            }
            Method::Options if dialog.is_none() => {
                let allow = self.caps.allow();
                let extra = [("Allow", allow), ("Accept", "application/sdp".to_owned())];
                self.answer_alone(now, &request, key, path, 200, &extra);
            }
            _ => match dialog {
                Some((handle, from)) => {
                    let tx = if method == Method::Invite {
                        ServerTransaction::Invite(ServerInvite::new(
                            &request,
                            path != Path::Udp,
                            self.config.timers,
                        ))
                    } else {
                        ServerTransaction::NonInvite(ServerNonInvite::new(
                            path != Path::Udp,
                            self.config.timers,
                        ))
                    };
                    self.servers.insert(key.clone(), ServerEntry { tx, path });
                    self.flush_server(&key);
                    self.inputs.push_back((
                        handle,
                        Input::Request {
                            transaction: key,
                            from,
                            request,
                        },
                    ));
                }
                None => {
                    self.stats.unknown_dialog += 1;
                    self.answer_alone(now, &request, key, path, 481, &[]);
                }
            },
        }
    }

    fn new_call(
        &mut self,
        now: Instant,
        unix_ms: i64,
        request: Message,
        key: TransactionKey,
        source: SocketAddr,
        path: Path,
    ) {
        match self.admission.check(now, source.ip()) {
            admission::Verdict::Admit => {}
            admission::Verdict::Untrusted => {
                self.stats.untrusted += 1;
                self.answer_alone(now, &request, key, path, 403, &[]);
                return;
            }
            admission::Verdict::TooFast => {
                self.stats.too_fast += 1;
                let retry = [("Retry-After", self.config.retry_after_s.to_string())];
                self.answer_alone(now, &request, key, path, 503, &retry);
                return;
            }
        }
        if self.calls.len() >= self.config.max_calls {
            self.stats.overloaded += 1;
            let retry = [("Retry-After", self.config.retry_after_s.to_string())];
            self.answer_alone(now, &request, key, path, 503, &retry);
            return;
        }
        self.stats.calls += 1;
        self.next_call += 1;
        let handle = self.next_call;
        let id = format!("call_{:016x}", mix(self.seed ^ mix(handle)));
        let caller = match path {
            Path::Tcp(connection) | Path::Tls(connection) => Route::Tcp(connection),
            Path::Udp => Route::Udp(
                request
                    .header("Contact")
                    .map(crate::dialog::uri_of)
                    .and_then(uri_address)
                    .unwrap_or(source),
            ),
        };
        let tx = ServerInvite::new(&request, path != Path::Udp, self.config.timers);
        self.servers.insert(
            key.clone(),
            ServerEntry {
                tx: ServerTransaction::Invite(tx),
                path,
            },
        );
        self.flush_server(&key);
        let call_id = request.header("Call-ID").unwrap_or_default().to_owned();
        let setup = CallSetup {
            id,
            invite: request,
            invite_transaction: key.clone(),
            local: self.config.local.clone(),
            local_tls: self.config.local_tls.clone(),
            local_other_family: self.config.local_other_family.clone(),
            caller_transport: match path {
                Path::Udp => Transport::Udp,
                Path::Tcp(_) => Transport::Tcp,
                Path::Tls(_) => Transport::Tls,
            },
            timers: self.config.timers,
            first_response_timeout: self.config.first_response_timeout,
            received_at_ms: unix_ms,
            quality_headers: self.config.quality_headers,
        };
        let call = Box::new(Call::new(setup, self.ledger.clone(), now));
        let dialog = (call_id, call.local_tag().to_owned());
        self.dialogs.insert(dialog.clone(), (handle, Side::Caller));
        self.invites.insert(key.clone(), handle);
        self.calls.insert(
            handle,
            CallEntry {
                call,
                caller,
                dialogs: vec![dialog],
                invite: key,
            },
        );
        self.drain_call(now, handle);
    }

    fn on_response(&mut self, now: Instant, response: Message) {
        let Some(key) = client_key(&response) else {
            self.stats.dropped += 1;
            return;
        };
        if let Some(entry) = self.clients.get_mut(&key) {
            entry.tx.handle_response(now, response);
            self.flush_client(&key);
            return;
        }
        // A 2xx retransmitted after its transaction ended: its dialog's ACK
        // was lost, so the call acknowledges it again.
        let is_invite_2xx = (200..300).contains(&response.status())
            && response
                .header("CSeq")
                .and_then(crate::sip::cseq)
                .is_some_and(|(_, m)| m == Method::Invite);
        match dialog_key(&response, "From").and_then(|d| self.dialogs.get(&d).copied()) {
            Some((handle, Side::Callee(leg))) if is_invite_2xx => self.inputs.push_back((
                handle,
                Input::Response {
                    purpose: Purpose::Invite(leg),
                    response,
                },
            )),
            _ => self.stats.dropped += 1,
        }
    }

    fn flush_server(&mut self, key: &TransactionKey) {
        let Some(entry) = self.servers.get_mut(key) else {
            return;
        };
        let path = entry.path;
        let mut out = Vec::new();
        while let Some(message) = entry.tx.poll_transmit() {
            out.push(message);
        }
        let mut terminated = false;
        let mut acks = Vec::new();
        while let Some(event) = entry.tx.poll_event() {
            match event {
                Event::Ack(ack) => acks.push(ack),
                Event::Terminated => terminated = true,
                Event::Response(_) | Event::Timeout | Event::NoAck => {}
            }
        }
        let next = entry.tx.poll_timeout();
        for message in out {
            self.send_response(path, message);
        }
        for ack in acks {
            if let Some((handle, from)) =
                dialog_key(&ack, "To").and_then(|d| self.dialogs.get(&d).copied())
            {
                self.inputs.push_back((handle, Input::Ack { from, ack }));
            }
        }
        if terminated {
            self.servers.remove(key);
        } else {
            self.arm(next, Timer::Server(key.clone()));
        }
    }

    fn flush_client(&mut self, key: &TransactionKey) {
        let Some(entry) = self.clients.get_mut(key) else {
            return;
        };
        let (handle, purpose) = (entry.call, entry.purpose);
        while let Some(message) = entry.tx.poll_transmit() {
            self.transmit.push_back(Transmit {
                route: entry.route.clone(),
                message,
            });
        }
        let mut terminated = false;
        while let Some(event) = entry.tx.poll_event() {
            match event {
                Event::Response(response) => self
                    .inputs
                    .push_back((handle, Input::Response { purpose, response })),
                Event::Timeout => self
                    .inputs
                    .push_back((handle, Input::NoResponse { purpose })),
                Event::Terminated => terminated = true,
                Event::Ack(_) | Event::NoAck => {}
            }
        }
        let next = entry.tx.poll_timeout();
        if terminated {
            self.clients.remove(key);
        } else {
            self.arm(next, Timer::Client(key.clone()));
        }
    }

    /// Carries out what a call asked for.
    fn drain_call(&mut self, now: Instant, handle: u64) {
        let Some(entry) = self.calls.get_mut(&handle) else {
            return;
        };
        let mut commands = Vec::new();
        while let Some(command) = entry.call.poll_command() {
            commands.push(command);
        }
        let caller = entry.caller.clone();
        let next = entry.call.poll_timeout();
        for command in commands {
            match command {
                Command::Respond {
                    transaction,
                    response,
                } => {
                    if let Some(server) = self.servers.get_mut(&transaction) {
                        server.tx.send_response(now, response);
                        self.flush_server(&transaction);
                    }
                }
                Command::Request {
                    to,
                    request,
                    purpose,
                } => self.open_client(now, handle, caller.clone(), to, request, purpose),
                Command::Ack { to, ack } => {
                    let route = resolve(caller.clone(), to);
                    self.transmit.push_back(Transmit {
                        route,
                        message: ack,
                    });
                }
                Command::Score(request) => self.work.push_back(Work::Score {
                    call: handle,
                    request,
                }),
                Command::Auction(request) => self.work.push_back(Work::Auction {
                    call: handle,
                    request,
                }),
                Command::Record(finished) => self.work.push_back(Work::Record(finished)),
                Command::Done => {
                    if let Some(entry) = self.calls.remove(&handle) {
                        for dialog in entry.dialogs {
                            self.dialogs.remove(&dialog);
                        }
                        self.invites.remove(&entry.invite);
                    }
                    return;
                }
            }
        }
        self.arm(next, Timer::Call(handle));
    }

    fn open_client(
        &mut self,
        now: Instant,
        handle: u64,
        caller: Route,
        to: Peer,
        request: Message,
        purpose: Purpose,
    ) {
        let Some(key) = client_key(&request) else {
            return;
        };
        if let Purpose::Invite(leg) = purpose
            && let Some(entry) = self.calls.get_mut(&handle)
        {
            let dialog = (entry.call.callee_call_id(leg), entry.call.callee_tag(leg));
            entry.dialogs.push(dialog.clone());
            self.dialogs.insert(dialog, (handle, Side::Callee(leg)));
        }
        if let Purpose::Cancel(_) = purpose {
            let invite = key.clone().with_method("INVITE");
            if let Some(entry) = self.clients.get_mut(&invite) {
                entry.tx.cancel_sent(now);
                let next = entry.tx.poll_timeout();
                self.arm(next, Timer::Client(invite));
            }
        }
        let route = resolve(caller, to);
        let tx = ClientTransaction::start(request, route.is_reliable(), self.config.timers, now);
        self.clients.insert(
            key.clone(),
            ClientEntry {
                tx,
                route,
                call: handle,
                purpose,
            },
        );
        self.flush_client(&key);
    }
}

fn resolve(caller: Route, peer: Peer) -> Route {
    match peer {
        Peer::Caller => caller,
        Peer::Address(address) => Route::Udp(address),
        Peer::Tcp(address) => Route::TcpTo(address),
        Peer::Tls(address, name) => Route::TlsTo(address, name),
    }
}

/// (Call-ID, the tag of `ours`): a message's dialog as we index it — the To
/// tag of a request we receive, the From tag of a response to our request.
fn dialog_key(message: &Message, ours: &str) -> Option<(String, String)> {
    Some((
        message.header("Call-ID")?.to_owned(),
        tag_param(message.header(ours)?)?.to_owned(),
    ))
}
