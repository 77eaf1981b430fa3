//! Plugboard's integration tests, one binary; each module is one concern.

/// `plugboard policy check` / `policy run` as a user runs them.
mod policy_cli;
/// Each example policy run through the host, results as snapshots.
mod policy_examples;
/// Hostile guests: each gets its typed outcome or rejection, and the host goes on.
mod policy_hostile;
/// Registry: hot swap under load, canary split, shadow runs; artifact cache.
mod policy_registry;
