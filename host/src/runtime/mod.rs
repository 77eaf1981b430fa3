//! The imperative shell: sockets, the clock, the event loop and shutdown. The
//! only place that does I/O for the server.

mod serve;
mod sip_endpoint;
mod sip_uac;

pub use serve::{Host, NumberDesk, ServeError, bootstrap, serve};
pub use sip_endpoint::{EndpointStats, SipSockets, TransactionUser, serve_sip, serve_udp};
pub use sip_uac::{CallAttempt, CallResult, UacError, place_call};
