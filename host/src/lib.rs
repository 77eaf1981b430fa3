//! Plugboard, the call-routing engine for pay-per-call marketing.
//!
//! The crate map, in reading order:
//! - [`policy`]: WebAssembly policies (scorer, bidder, selector) — validation,
//!   compilation, sandboxed invocation, hot swap;
//! - [`cli`]: the `plugboard` command line;
//! - [`clock`]: the one reader of the OS clock.

pub mod cli;
pub mod clock;
pub mod policy;
