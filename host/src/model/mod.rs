//! The product's vocabulary, shared by every layer: tenants and roles,
//! campaigns, numbers and pools, bidders, targets, bids and schedules, call
//! facts, quality and offers, call records and decision traces, policy
//! worlds and failure modes.
//!
//! Plain data and pure functions on it. It knows nothing of how it is
//! stored (`store`), how policies are run (`policy`), how it is shown
//! (`api`) or of sockets and tasks (`runtime`): those layers depend on it,
//! never the reverse.

mod bidding;
mod call;
mod campaign;
mod policy;
mod record;
mod tenancy;

pub use bidding::*;
pub use call::*;
pub use campaign::*;
pub use policy::*;
pub use record::*;
pub use tenancy::*;
