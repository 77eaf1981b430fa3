//! What a policy may ask of the host. Policies take these as trait bounds, so
//! the same logic runs on the real imports and on [`crate::testing::TestHost`].

use crate::types::{History, KvError, Level};

/// Logging and the policy's private key-value store: every world has them.
pub trait Host {
    /// Records a structured line into the call's decision trace.
    fn log(&self, level: Level, message: &str, fields: &[(&str, &str)]);
    fn kv_get(&self, key: &str) -> Option<Vec<u8>>;
    fn kv_set(&self, key: &str, value: &[u8]) -> Result<(), KvError>;
    fn kv_delete(&self, key: &str);

    fn debug(&self, message: &str, fields: &[(&str, &str)]) {
        self.log(Level::Debug, message, fields);
    }
    fn info(&self, message: &str, fields: &[(&str, &str)]) {
        self.log(Level::Info, message, fields);
    }
    fn warn(&self, message: &str, fields: &[(&str, &str)]) {
        self.log(Level::Warn, message, fields);
    }
}

/// The current caller's history: scorer and selector worlds only (a bidder
/// must not learn about a caller it has not won).
pub trait CallerHistory: Host {
    fn caller_history(&self) -> History;
}
