//! The imperative shell: sockets, the clock, the event loop and shutdown. The
//! only place that does I/O for the server.

pub mod budget;
mod call_server;
mod call_services;
mod http;
mod policy_cpu;
mod policy_worker;
mod real_time_bids;
mod serve;
mod sip_endpoint;
mod sip_uac;
pub mod tls;

pub use call_server::{advertised, serve_calls};
pub use call_services::{CallServices, Destination, Gathering};
pub use http::serve_http;
pub use policy_cpu::PolicyCpu;
pub use real_time_bids::{RealTimeAnswer, RealTimeBids};
pub use serve::{Host, ServeError, bind_udp_and_tcp, bootstrap, keep_new_files_private, serve};
pub use sip_endpoint::{
    DatagramLoss, EndpointStats, SipSockets, TlsSide, TransactionUser, serve_sip, serve_udp,
};
pub use sip_uac::{CallAttempt, CallResult, UacError, place_call};
