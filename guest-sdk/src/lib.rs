//! The guest SDK: write a Plugboard policy as a plain Rust function.
//!
//! A policy is a type implementing one of [`Scorer`], [`Bidder`] or
//! [`Selector`], plus one export line. The SDK turns it into the WebAssembly
//! component the host runs; the policy never touches generated bindings.
//! A component exports only the world its export macro names, so one crate
//! serves all three worlds.
//!
//! # A complete scorer
//!
//! `Cargo.toml`:
//!
//! ```toml
//! [package]
//! name = "after-hours-scorer"
//! version = "0.1.0"
//! edition = "2024"
//!
//! [lib]
//! crate-type = ["cdylib", "rlib"]
//!
//! [dependencies]
//! guest-sdk = { path = "../../guest-sdk" }
//! ```
//!
//! `src/lib.rs`:
//!
//! ```
//! use guest_sdk::{Call, CallerHistory, Quality, Scorer};
//!
//! pub struct AfterHours;
//!
//! impl Scorer for AfterHours {
//!     fn score(call: &Call, host: &impl CallerHistory) -> Result<Quality, String> {
//!         let open = (9..18).contains(&call.time.local_hour);
//!         let repeat = host.caller_history().calls_seen > 0;
//!         host.info("scored", &[("open", if open { "yes" } else { "no" })]);
//!         let quality = match (open, repeat) {
//!             (true, false) => Quality::new(80),
//!             (true, true) => Quality::new(50).tag("repeat-caller"),
//!             (false, _) => Quality::new(20).tag("after-hours"),
//!         };
//!         Ok(quality)
//!     }
//! }
//!
//! guest_sdk::export_scorer!(AfterHours);
//!
//! // The logic is a plain function: test it natively with the test host.
//! let host = guest_sdk::testing::TestHost::default();
//! let mut call = Call::default();
//! call.time.local_hour = 22;
//! assert_eq!(AfterHours::score(&call, &host), Ok(Quality::new(20).tag("after-hours")));
//! ```
//!
//! Build it with `cargo build --target wasm32-unknown-unknown --release` and
//! turn the module into a component with `cargo xtask component FILE --world
//! scorer` (or `wasm-tools component new`); `docs/policy-authoring.md` walks
//! through it, then `plugboard policy check` and `plugboard policy run`.

// The generated bindings use `unsafe` for the canonical ABI; nothing else does.
#![allow(unsafe_code)]

#[macro_use]
mod glue;
mod host;
pub mod testing;
mod types;

pub use host::{CallerHistory, Host};
pub use types::{
    Attribute, Bid, BidDecision, Call, CallTime, Geography, Header, History, KvError, Level, Offer,
    Quality, TargetStats,
};

/// Rates an inbound call's quality (the `scorer` world).
pub trait Scorer {
    /// `Err(reason)` means the policy cannot decide; the host records the reason
    /// and applies the deployment's failure mode.
    fn score(call: &Call, host: &impl CallerHistory) -> Result<Quality, String>;
}

/// A bidder's strategy (the `bidder` world). Offers carry no caller number.
pub trait Bidder {
    /// `None` declines the call.
    fn bid(offer: &Offer, host: &impl Host) -> Option<BidDecision>;
}

/// Orders eligible bids into the ring tree (the `selector` world).
pub trait Selector {
    /// Indices into `bids`, first to ring first; each at most once. Bids left
    /// out are not rung.
    fn select(call: &Call, quality: &Quality, bids: &[Bid], host: &impl CallerHistory) -> Vec<u32>;
}

#[doc(hidden)]
pub mod worlds;

/// Exports a [`Scorer`] as the component's `score` function.
#[macro_export]
macro_rules! export_scorer {
    ($policy:ty) => {
        const _: () = {
            struct PlugboardScorer;
            impl $crate::worlds::scorer::Guest for PlugboardScorer {
                fn score(
                    call: $crate::worlds::scorer::Call,
                ) -> ::core::result::Result<$crate::worlds::scorer::Quality, ::std::string::String>
                {
                    $crate::worlds::scorer::run::<$policy>(call)
                }
            }
            $crate::worlds::scorer::__export_scorer_world!(PlugboardScorer with_types_in $crate::worlds::scorer);
        };
    };
}

/// Exports a [`Bidder`] as the component's `bid` function.
#[macro_export]
macro_rules! export_bidder {
    ($policy:ty) => {
        const _: () = {
            struct PlugboardBidder;
            impl $crate::worlds::bidder::Guest for PlugboardBidder {
                fn bid(
                    offer: $crate::worlds::bidder::Offer,
                ) -> ::core::option::Option<$crate::worlds::bidder::BidDecision> {
                    $crate::worlds::bidder::run::<$policy>(offer)
                }
            }
            $crate::worlds::bidder::__export_bidder_world!(PlugboardBidder with_types_in $crate::worlds::bidder);
        };
    };
}

/// Exports a [`Selector`] as the component's `select` function.
#[macro_export]
macro_rules! export_selector {
    ($policy:ty) => {
        const _: () = {
            struct PlugboardSelector;
            impl $crate::worlds::selector::Guest for PlugboardSelector {
                fn select(
                    call: $crate::worlds::selector::Call,
                    quality: $crate::worlds::selector::Quality,
                    bids: ::std::vec::Vec<$crate::worlds::selector::Bid>,
                ) -> ::std::vec::Vec<u32> {
                    $crate::worlds::selector::run::<$policy>(call, quality, bids)
                }
            }
            $crate::worlds::selector::__export_selector_world!(PlugboardSelector with_types_in $crate::worlds::selector);
        };
    };
}
