//! Plugboard's integration tests, one binary; each module is one concern.

/// Every route × every role × own/foreign object.
mod api_authorization;
/// Bad input is refused clearly and changes nothing stored.
mod api_bad_input;
/// Call records, caller history and the marketplace through the API.
mod api_calls;
/// The OpenAPI document: valid, complete, and what schemathesis finds true.
mod api_contract;
/// Data and deployments survive a restart; a SIGKILL loses no acknowledged write.
mod api_durability;
/// The HTTP API through its router: every route, happy path and errors.
mod api_routes;
/// PUT replaces, PATCH (JSON Merge Patch) changes only what it names.
mod api_updates;
/// The auction's eligibility rules on real calls.
mod auction_rules;
/// Bid sources and ordering on real calls: bidder modules, selectors, real-time bids.
mod auction_sources;
/// Calls end to end through the B2BUA: SIPp carrier and buyers, stored records.
mod b2bua_calls;
/// The B2BUA's switch on simulated time: retransmissions, timeouts, limits.
mod b2bua_switch;
/// No module imports one its layer may not use (the arrows of docs/ARCHITECTURE.md).
mod layering;
/// `plugboard policy check` / `policy run` as a user runs them.
mod policy_cli;
/// Each example policy run through the host, results as snapshots.
mod policy_examples;
/// Hostile guests: each gets its typed outcome or rejection, and the host goes on.
mod policy_hostile;
/// Registry: hot swap under load, canary split, shadow runs; artifact cache.
mod policy_registry;
/// docs/quickstart.sh against `plugboard serve`: the quickstart end to end.
mod quickstart;
/// Stored calls through a candidate version: the library and `plugboard replay`.
mod replay;
/// What a call record keeps of its policies' inputs and a shadow's results;
/// a failing canary taken out.
mod rollout;
/// RFC 3261 dialogs: ids, route sets, targets, CSeq.
mod sip_dialogs;
/// SIPp against the SIP layers over real UDP on loopback.
mod sip_interop;
/// The SIP message layer: wire vectors, framing, round trip.
mod sip_messages;
/// Targets by domain name (SRV, A) and over TLS, with our own DNS and authority.
mod sip_targets;
/// RFC 3261 transactions on simulated time.
mod sip_transactions;
/// The store against a `BTreeMap` model under random operations.
mod store_model;
/// What one tenant may do to another: each finding of the hostile tenants' audit.
mod tenant_actions;
/// What one tenant's objects and policies may cost the others: each bounded.
mod tenant_bounds;
/// One tenant's slow or hostile work delays only that tenant's calls.
mod tenant_fairness;
/// What each role sees of a real call, as a matrix over five tenants.
mod tenant_views;
