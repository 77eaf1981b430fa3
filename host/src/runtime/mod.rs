//! The imperative shell: sockets, the clock, the event loop and shutdown. The
//! only place that does I/O for the server.

mod serve;

pub use serve::{Host, ServeError, bootstrap, serve};
