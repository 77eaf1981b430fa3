//! A UAC built on the SIP layers: one call — INVITE (client transaction,
//! with retransmissions on UDP), ACK of the 2xx through the dialog, a hold,
//! then BYE (client transaction). A request too large for a datagram goes
//! over TCP instead (RFC 3261 §18.1.1). The B2BUA's outbound leg grows from
//! this; tests use it against SIPp.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

use crate::clock;
use crate::dialog::{Dialog, DialogError};
use crate::sip::{Header, Message, Method, StartLine, StreamFramer, parse_datagram};
use crate::transaction::{ClientInvite, ClientNonInvite, Event, Timers, client_key};

#[derive(Debug, thiserror::Error)]
pub enum UacError {
    #[error("socket: {0}")]
    Io(#[from] std::io::Error),
    #[error("no final response (timer B or F)")]
    Timeout,
    #[error("cannot make the dialog: {0}")]
    Dialog(#[from] DialogError),
    #[error("cannot draw random identifiers: {0}")]
    Random(String),
}

/// What to call.
#[derive(Debug, Clone)]
pub struct CallAttempt {
    pub target: SocketAddr,
    pub request_uri: String,
    pub from: String,
    pub to: String,
    pub sdp_offer: String,
    /// How long the call lasts once answered.
    pub hold: Duration,
}

/// How a call ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallResult {
    /// The final status of the INVITE.
    pub status: u16,
    /// The final status of the BYE, for an answered call.
    pub bye_status: Option<u16>,
    /// INVITEs sent, retransmissions included.
    pub invites_sent: u32,
    /// `UDP`, or `TCP` for a request too large for a datagram.
    pub transport: &'static str,
}

fn random_token() -> Result<String, UacError> {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).map_err(|e| UacError::Random(e.to_string()))?;
    Ok(hex::encode(bytes))
}

fn header(name: &str, value: String) -> Header {
    Header {
        name: name.to_owned(),
        value,
    }
}

fn via(transport: &str, local: SocketAddr) -> Result<String, UacError> {
    Ok(format!(
        "SIP/2.0/{transport} {local};branch=z9hG4bK{};rport",
        random_token()?
    ))
}

/// RFC 3261 §18.1.1: a request within 200 bytes of a 1500-byte path MTU
/// (so over 1300 bytes) must go over a congestion-controlled transport.
pub const UDP_REQUEST_LIMIT: usize = 1300;

/// Where a call's messages go: a datagram socket and target, or a TCP stream.
enum Wire<'a> {
    Udp {
        socket: &'a UdpSocket,
        target: SocketAddr,
    },
    Tcp {
        stream: TcpStream,
        framer: StreamFramer,
    },
}

impl Wire<'_> {
    fn transport(&self) -> &'static str {
        match self {
            Wire::Udp { .. } => "UDP",
            Wire::Tcp { .. } => "TCP",
        }
    }

    fn reliable(&self) -> bool {
        matches!(self, Wire::Tcp { .. })
    }

    fn local(&self) -> std::io::Result<SocketAddr> {
        match self {
            Wire::Udp { socket, .. } => socket.local_addr(),
            Wire::Tcp { stream, .. } => stream.local_addr(),
        }
    }

    async fn send(&mut self, message: &Message) -> std::io::Result<()> {
        match self {
            Wire::Udp { socket, target } => {
                socket.send_to(&message.to_bytes(), *target).await.map(drop)
            }
            Wire::Tcp { stream, .. } => stream.write_all(&message.to_bytes()).await,
        }
    }

    /// The next message that parses; `None` for a datagram that does not.
    async fn recv(&mut self, buffer: &mut [u8]) -> std::io::Result<Option<Message>> {
        match self {
            Wire::Udp { socket, .. } => {
                let (length, _) = socket.recv_from(buffer).await?;
                Ok(parse_datagram(&buffer[..length]).ok())
            }
            Wire::Tcp { stream, framer } => loop {
                if let Some(framed) = framer.next_message() {
                    return framed
                        .map(Some)
                        .map_err(|e| std::io::Error::other(e.to_string()));
                }
                let length = stream.read(buffer).await?;
                if length == 0 {
                    return Err(std::io::ErrorKind::UnexpectedEof.into());
                }
                framer.push(&buffer[..length]);
            },
        }
    }
}

/// Places one call from `socket` (which it owns for the call's duration).
pub async fn place_call(
    socket: &UdpSocket,
    attempt: &CallAttempt,
    timers: Timers,
) -> Result<CallResult, UacError> {
    let tag = random_token()?;
    let call_id = random_token()?;
    let invite_over = |wire: &Wire<'_>| -> Result<Message, UacError> {
        let local = wire.local()?;
        Ok(Message {
            start: StartLine::Request {
                method: Method::Invite,
                uri: attempt.request_uri.clone(),
            },
            headers: vec![
                header("Via", via(wire.transport(), local)?),
                header("Max-Forwards", "70".into()),
                header("To", attempt.to.clone()),
                header("From", format!("{};tag={tag}", attempt.from)),
                header("Call-ID", format!("{call_id}@{}", local.ip())),
                header("CSeq", "1 INVITE".into()),
                header("Contact", format!("<sip:plugboard@{local}>")),
                header("Content-Type", "application/sdp".into()),
                header("Content-Length", attempt.sdp_offer.len().to_string()),
            ],
            body: attempt.sdp_offer.as_bytes().to_vec(),
        })
    };
    let mut wire = Wire::Udp {
        socket,
        target: attempt.target,
    };
    let mut invite = invite_over(&wire)?;
    if invite.to_bytes().len() > UDP_REQUEST_LIMIT {
        wire = Wire::Tcp {
            stream: TcpStream::connect(attempt.target).await?,
            framer: StreamFramer::new(),
        };
        invite = invite_over(&wire)?;
    }
    let local = wire.local()?;
    let mut tx = ClientInvite::new(invite.clone(), wire.reliable(), timers, clock::now());
    let mut invites_sent = 0;
    let answer = loop {
        while let Some(message) = tx.poll_transmit() {
            invites_sent += u32::from(message.method() == Some(&Method::Invite));
            wire.send(&message).await?;
        }
        let mut final_response = None;
        while let Some(event) = tx.poll_event() {
            match event {
                Event::Response(response) if response.status() >= 200 => {
                    final_response = Some(response)
                }
                Event::Timeout => return Err(UacError::Timeout),
                _ => {}
            }
        }
        if let Some(response) = final_response {
            break response;
        }
        match next_input(&mut wire, &invite, tx.poll_timeout()).await? {
            Input::Response(now, response) => tx.handle_response(now, response),
            Input::Timeout(now) => tx.handle_timeout(now),
            Input::Other => {}
        }
    };
    let code = answer.status();
    if !(200..300).contains(&code) {
        // The transaction sent the ACK of a non-2xx itself.
        while let Some(message) = tx.poll_transmit() {
            wire.send(&message).await?;
        }
        return Ok(CallResult {
            status: code,
            bye_status: None,
            invites_sent,
            transport: wire.transport(),
        });
    }
    let mut dialog = Dialog::from_uac(&invite, &answer)?;
    let ack = dialog.ack(1, &via(wire.transport(), local)?);
    wire.send(&ack).await?;
    tokio::time::sleep(attempt.hold).await;

    let bye = dialog.request(Method::Bye, &via(wire.transport(), local)?);
    let mut bye_tx = ClientNonInvite::new(bye.clone(), wire.reliable(), timers, clock::now());
    let bye_status = loop {
        while let Some(message) = bye_tx.poll_transmit() {
            wire.send(&message).await?;
        }
        let mut done = None;
        while let Some(event) = bye_tx.poll_event() {
            match event {
                Event::Response(response) if response.status() >= 200 => {
                    done = Some(response.status())
                }
                Event::Timeout => return Err(UacError::Timeout),
                _ => {}
            }
        }
        if let Some(code) = done {
            break code;
        }
        match next_input(&mut wire, &bye, bye_tx.poll_timeout()).await? {
            Input::Response(now, response) => bye_tx.handle_response(now, response),
            Input::Timeout(now) => bye_tx.handle_timeout(now),
            Input::Other => {}
        }
    };
    Ok(CallResult {
        status: code,
        bye_status: Some(bye_status),
        invites_sent,
        transport: wire.transport(),
    })
}

enum Input {
    Response(std::time::Instant, Message),
    Timeout(std::time::Instant),
    /// Something for another transaction (a late 2xx retransmission, say).
    Other,
}

/// Waits for the next response to `request`, or for the transaction's next timer.
async fn next_input(
    wire: &mut Wire<'_>,
    request: &Message,
    timeout: Option<std::time::Instant>,
) -> Result<Input, UacError> {
    let mine = crate::transaction::branch(request).map(str::to_owned);
    let mut buffer = vec![0u8; crate::sip::MAX_MESSAGE_BYTES];
    let sleep = async {
        match timeout {
            Some(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        received = wire.recv(&mut buffer) => {
            match received? {
                Some(response)
                    if !response.is_request()
                        && client_key(&response).is_some()
                        && crate::transaction::branch(&response).map(str::to_owned) == mine =>
                {
                    Ok(Input::Response(clock::now(), response))
                }
                _ => Ok(Input::Other),
            }
        }
        () = sleep => Ok(Input::Timeout(clock::now())),
    }
}
