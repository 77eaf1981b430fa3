//! The imperative shell: sockets, the clock, the event loop and shutdown. The
//! only place that does I/O for the server.

mod serve;
mod sip_uac;
mod sip_udp;

pub use serve::{Host, ServeError, bootstrap, serve};
pub use sip_uac::{CallAttempt, CallResult, UacError, place_call};
pub use sip_udp::{EndpointStats, TransactionUser, serve_udp};
