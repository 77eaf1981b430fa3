//! Trust between tenants, decided in one place (pure: records in, verdicts
//! out). [`ownership`] says what a tenant may act on and name — asked by the
//! API when objects are made and by the auction for every call; [`quota`]
//! how much of each kind a tenant may make. What each role sees of a call
//! record is the API's to show, by the same rules: `api::view`.

pub mod ownership;
pub mod quota;

pub use ownership::{Actor, PolicyRefusal, bid_may_ring, campaign_takes_bids_of, policy_usable_by};
