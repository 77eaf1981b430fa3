//! Plugboard, the call-routing engine for pay-per-call marketing.
//!
//! The crate map, in reading order:
//! - [`policy`]: WebAssembly policies (scorer, bidder, selector) — validation,
//!   compilation, sandboxed invocation, hot swap;
//! - [`sip`]: the SIP message layer (parse, validate, §8.2 checks), sans-IO;
//! - [`dialog`]: RFC 3261 §12 dialogs, sans-IO;
//! - [`transaction`]: RFC 3261 §17 transactions with their timers, sans-IO;
//! - [`b2bua`]: call control — one call's legs, ring-tree failover, relays
//!   between legs — and the switch that owns every transaction, sans-IO;
//! - [`auction`]: which bids may take a call and their ring order, sans-IO;
//! - [`access`]: what each tenant may act on and what each role sees of a
//!   call, pure;
//! - [`rate`]: the token bucket behind per-source and per-key rates, sans-IO;
//! - [`fair`]: per-tenant queues taking turns, behind the policy workers and
//!   the compile queue, sans-IO;
//! - [`store`]: sled behind typed per-entity functions;
//! - [`cli`]: the `plugboard` command line;
//! - [`clock`]: the one reader of the OS clock.

pub mod access;
pub mod api;
pub mod auction;
pub mod b2bua;
pub mod cli;
pub mod clock;
pub mod config;
pub mod dialog;
pub mod dni;
pub mod fair;
pub mod geography;
pub mod hash;
pub mod lifecycle;
pub mod marketplace;
pub mod metrics;
pub mod model;
pub mod names;
pub mod number;
pub mod policy;
pub mod rate;
pub mod replay;
pub mod runtime;
pub mod sip;
pub mod store;
pub mod transaction;
