//! The SIP side of `plugboard serve`: UDP and TCP sockets around the
//! [`Switch`], its timers, and the work calls ask for — calls that invoke no
//! policy scored and auctioned on the loop, the others handed to the policy
//! workers, each answer fed back as the call's next input; records handed
//! to a recorder task that stores them in batches.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use super::call_services::CallServices;
use super::policy_worker::{PolicyWorkers, WorkerCount};
use super::sip_endpoint::{Datagrams, Incoming, TcpConnections, lost, send_to};
use super::{DatagramLoss, SipSockets};
use crate::b2bua::{Finished, Input, Path, Route, Scored, Switch, SwitchConfig, SwitchStats, Work};
use crate::clock;
use crate::sip::{MAX_MESSAGE_BYTES, inspect, inspect_parsed};

/// Datagrams read in one turn of the loop before timers and work get theirs.
const UDP_BATCH: usize = 64;
/// Decisions of the policy workers taken in one turn of the loop.
const DECIDED_BATCH: usize = 64;
/// Call records stored in one transaction at most.
const RECORD_BATCH: usize = 512;
/// How long shutdown waits for the BYEs of calls in progress to be answered.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// The address to put in Via and Contact: the configured one, else the
/// bound one, else (bound to every interface) the one the host routes from.
pub fn advertised(bound: SocketAddr, configured: Option<&str>) -> String {
    if let Some(configured) = configured {
        return configured.to_owned();
    }
    if !bound.ip().is_unspecified() {
        return bound.to_string();
    }
    // A documentation address of the bound family: the route to it names
    // the host's own address of that family.
    let (any, probe_to, loopback) = if bound.is_ipv6() {
        (
            "[::]:0",
            "[2001:db8::1]:5060",
            std::net::IpAddr::from(std::net::Ipv6Addr::LOCALHOST),
        )
    } else {
        (
            "0.0.0.0:0",
            "192.0.2.1:5060",
            std::net::IpAddr::from([127, 0, 0, 1]),
        )
    };
    let routed = std::net::UdpSocket::bind(any)
        .and_then(|probe| {
            probe.connect(probe_to)?;
            probe.local_addr()
        })
        .map(|a| a.ip())
        .unwrap_or(loopback);
    SocketAddr::new(routed, bound.port()).to_string()
}

/// Serves calls on `sockets` until `shutdown` resolves; then ends the calls
/// in progress (BYE) and returns.
pub async fn serve_calls(
    mut sockets: SipSockets,
    services: Arc<CallServices>,
    config: SwitchConfig,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<SwitchStats> {
    let mut seed = [0u8; 8];
    getrandom::fill(&mut seed).map_err(|e| std::io::Error::other(e.to_string()))?;
    let mut switch = Switch::new(config, services.ledger.clone(), u64::from_le_bytes(seed));
    let to_tag = format!("pb{:x}", std::process::id());
    let mut buffer = vec![0u8; MAX_MESSAGE_BYTES + 1];
    let mut other_buffer = vec![0u8; MAX_MESSAGE_BYTES + 1];
    let datagrams = Datagrams::new(&sockets.udp, sockets.udp_other.as_ref());
    let mut connections = TcpConnections::new(sockets.tcp_idle).with_tls(&sockets.tls);
    let (to_recorder, finished) = mpsc::unbounded_channel();
    let recorder = tokio::spawn(record(services.clone(), finished));
    let (to_loop, mut decided) = mpsc::unbounded_channel();
    let mut side = Side {
        recorder: to_recorder,
        policies: PolicyWorkers::start(
            WorkerCount::of_this_machine(),
            services.clone(),
            to_loop,
            tokio::runtime::Handle::current(),
        )?,
    };
    let mut reported = (usize::MAX, usize::MAX);
    // INVITEs refused so far (untrusted source, past its rate), as counted.
    let mut refused = (0u64, 0u64);
    let mut stopping: Option<tokio::time::Instant> = None;
    tokio::pin!(shutdown);
    loop {
        let next = switch.poll_timeout();
        let sleep = async {
            match next {
                Some(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
                None => std::future::pending().await,
            }
        };
        let accept = async {
            match &sockets.tcp {
                Some(listener) => listener.accept().await,
                None => std::future::pending().await,
            }
        };
        let grace = async {
            match stopping {
                Some(until) => tokio::time::sleep_until(until).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = &mut shutdown, if stopping.is_none() => {
                switch.terminate_all(clock::now());
                stopping = Some(tokio::time::Instant::now() + SHUTDOWN_GRACE);
            }
            () = grace => break,
            received = sockets.udp.recv_from(&mut buffer) => {
                let (length, source) = received?;
                let caps = switch.capabilities().clone();
                if !lost(&mut sockets.loss) {
                    let message = inspect(&buffer[..length], &caps, &to_tag);
                    switch.handle_inbound(clock::now(), clock::unix_ms(), message, source, Path::Udp);
                    pump(&mut switch, &services, &datagrams, &mut connections, &mut sockets.loss, &mut side).await;
                }
                for _ in 1..UDP_BATCH {
                    let Ok((length, source)) = sockets.udp.try_recv_from(&mut buffer) else {
                        break;
                    };
                    if lost(&mut sockets.loss) {
                        continue;
                    }
                    let message = inspect(&buffer[..length], &caps, &to_tag);
                    switch.handle_inbound(clock::now(), clock::unix_ms(), message, source, Path::Udp);
                    // Each datagram's consequences go out before the next is
                    // read: a call's post-dial delay never waits for a batch.
                    pump(&mut switch, &services, &datagrams, &mut connections, &mut sockets.loss, &mut side).await;
                }
            }
            received = recv_other(sockets.udp_other.as_ref(), &mut other_buffer) => {
                let (length, source) = received?;
                let message = inspect(&other_buffer[..length], switch.capabilities(), &to_tag);
                switch.handle_inbound(clock::now(), clock::unix_ms(), message, source, Path::Udp);
            }
            accepted = accept => {
                if let Ok((stream, _)) = accepted
                    && !connections.adopt(stream)
                {
                    services.metrics.inc(
                        "plugboard_connections_refused_total",
                        vec![("listener", "sip_tcp".to_owned())],
                    );
                }
            }
            accepted = sockets.tls.accept() => {
                if let Ok(stream) = accepted
                    && !connections.adopt_tls(stream)
                {
                    services.metrics.inc(
                        "plugboard_connections_refused_total",
                        vec![("listener", "sip_tls".to_owned())],
                    );
                }
            }
            Some(incoming) = connections.next_message() => match incoming {
                Incoming::Message(id, source, parsed) => {
                    let message = inspect_parsed(parsed, switch.capabilities(), &to_tag);
                    let path = if connections.is_accepted_tls(id) { Path::Tls(id) } else { Path::Tcp(id) };
                    switch.handle_inbound(clock::now(), clock::unix_ms(), message, source, path);
                }
                Incoming::Unreachable(to) => switch.handle_unreachable(clock::now(), &to),
            },
            () = sleep => switch.handle_timeout(clock::now()),
            Some(first) = decided.recv() => {
                let (mut decision, mut taken) = (Some(first), 0);
                while let Some((call, input)) = decision {
                    side.policies.returned(call, &input);
                    switch.handle_input(clock::now(), call, input);
                    pump(&mut switch, &services, &datagrams, &mut connections, &mut sockets.loss, &mut side).await;
                    taken += 1;
                    decision = (taken < DECIDED_BATCH).then(|| decided.try_recv().ok()).flatten();
                }
            }
        }
        pump(
            &mut switch,
            &services,
            &datagrams,
            &mut connections,
            &mut sockets.loss,
            &mut side,
        )
        .await;
        let stats = switch.stats();
        for (reason, count, was) in [
            ("untrusted", stats.untrusted, &mut refused.0),
            ("rate", stats.too_fast, &mut refused.1),
        ] {
            for _ in *was..count {
                services.metrics.inc(
                    "plugboard_sip_refused_total",
                    vec![("reason", reason.to_owned())],
                );
            }
            *was = count;
        }
        let active = switch.active_calls();
        let with_worker = side.policies.calls();
        if (active, with_worker) != reported {
            reported = (active, with_worker);
            for (name, value) in [
                ("plugboard_active_calls", active),
                ("plugboard_policy_worker_calls", with_worker),
            ] {
                let value = i64::try_from(value).unwrap_or(i64::MAX);
                services.metrics.set_gauge(name, Vec::new(), value);
            }
        }
        if stopping.is_some() && active == 0 {
            break;
        }
    }
    drop(connections);
    // The recorder stores what is queued, then ends with its channel.
    drop(side);
    let _ = recorder.await;
    Ok(switch.stats())
}

/// The next datagram on the other family's socket (never, without one).
async fn recv_other(
    socket: Option<&UdpSocket>,
    buffer: &mut [u8],
) -> std::io::Result<(usize, SocketAddr)> {
    match socket {
        Some(socket) => socket.recv_from(buffer).await,
        None => std::future::pending().await,
    }
}

/// What the loop hands work to, beside itself: the recorder, and the
/// policy workers.
struct Side {
    recorder: mpsc::UnboundedSender<Box<Finished>>,
    policies: PolicyWorkers,
}

/// Sends what the switch has to send, and does or hands on the work it asks
/// for — which may give it more to send — until there is neither.
async fn pump(
    switch: &mut Switch,
    services: &CallServices,
    udp: &Datagrams<'_>,
    connections: &mut TcpConnections,
    loss: &mut Option<DatagramLoss>,
    side: &mut Side,
) {
    loop {
        while let Some(transmit) = switch.poll_transmit() {
            if matches!(transmit.route, Route::Udp(_)) && lost(loss) {
                continue;
            }
            send_to(
                udp,
                connections,
                transmit.route,
                &transmit.message.to_bytes(),
            )
            .await;
        }
        let Some(work) = switch.poll_work() else {
            return;
        };
        // Calls that invoke no policy are routed here: a store read and the
        // auction's arithmetic, less than a hop to a worker and back. Any
        // policy, however short its deadline, runs on the workers, where it
        // holds up only its own tenant's calls.
        match work {
            Work::Score { call, request } => match services.destination(&request) {
                Some(to) if services.invokes_policies(&to.campaign) => {
                    side.policies.route(call, request, to);
                }
                destination => {
                    let scored = destination
                        .map_or(Scored::UnknownNumber, |to| services.score_for(&request, to));
                    switch.handle_input(clock::now(), call, Input::Scored(scored));
                }
            },
            // Already under way: the worker routing a call runs its auction unasked.
            Work::Auction { call, .. } if side.policies.is_routing(call) => {}
            Work::Auction { call, request }
                if services.auction_invokes_policies(&request.scoring.campaign) =>
            {
                side.policies.auction(call, request);
            }
            Work::Auction { call, request } => {
                let gathering = services.gather(&request);
                let tree = services.conclude(&request, gathering, Vec::new());
                switch.handle_input(clock::now(), call, Input::Auctioned(Box::new(tree)));
            }
            Work::Record(finished) => {
                let _ = side.recorder.send(finished);
            }
        }
    }
}

/// Records finished calls: whatever has queued up since the last batch goes
/// into one transaction, made durable by the store's group commit.
async fn record(services: Arc<CallServices>, mut finished: mpsc::UnboundedReceiver<Box<Finished>>) {
    while let Some(first) = finished.recv().await {
        let mut batch = vec![first];
        while batch.len() < RECORD_BATCH
            && let Ok(next) = finished.try_recv()
        {
            batch.push(next);
        }
        let writer = services.clone();
        let _ = tokio::task::spawn_blocking(move || writer.record(&batch)).await;
        if let Err(error) = services.store.durable().await {
            tracing::error!(%error, "call records not flushed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::advertised;

    #[test]
    fn the_advertised_address_is_of_the_bound_family() {
        assert_eq!(
            advertised("0.0.0.0:5060".parse().unwrap(), Some("203.0.113.7:5060")),
            "203.0.113.7:5060"
        );
        assert_eq!(
            advertised("127.0.0.1:5070".parse().unwrap(), None),
            "127.0.0.1:5070"
        );
        let v4 = advertised("0.0.0.0:5060".parse().unwrap(), None);
        assert!(!v4.starts_with('[') && v4.ends_with(":5060"), "{v4}");
        let v6 = advertised("[::]:5060".parse().unwrap(), None);
        assert!(v6.starts_with('[') && v6.ends_with("]:5060"), "{v6}");
    }
}
