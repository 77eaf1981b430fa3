//! The per-policy key-value store behind the `kv` import. The trait lets the
//! control plane back it with the durable store; `MemoryKv` serves local runs.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

/// Longest key a policy may write, in bytes.
pub const MAX_KEY_BYTES: usize = 256;
/// Longest value a policy may write, in bytes.
pub const MAX_VALUE_BYTES: usize = 64 << 10;
/// Most keys one policy may hold.
pub const MAX_KEYS_PER_POLICY: usize = 1000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KvRefusal {
    #[error("the key or the value is too large")]
    TooLarge,
    #[error("the policy holds the maximum number of keys")]
    QuotaExceeded,
    #[error("{0}")]
    Other(String),
}

/// Storage of the `kv` import; `namespace` separates policies.
pub trait PolicyKv: Send + Sync {
    fn get(&self, namespace: &str, key: &str) -> Option<Vec<u8>>;
    fn set(&self, namespace: &str, key: &str, value: &[u8]) -> Result<(), KvRefusal>;
    fn delete(&self, namespace: &str, key: &str);
}

/// An in-process store, for `plugboard policy run` and for tests of the runtime.
#[derive(Default)]
pub struct MemoryKv {
    spaces: Mutex<HashMap<String, BTreeMap<String, Vec<u8>>>>,
}

impl MemoryKv {
    pub fn new() -> Self {
        Self::default()
    }

    fn with_spaces<R>(
        &self,
        f: impl FnOnce(&mut HashMap<String, BTreeMap<String, Vec<u8>>>) -> R,
    ) -> R {
        // A poisoned lock only means another invocation panicked mid-write of a
        // map that stays consistent; keep serving.
        let mut spaces = self
            .spaces
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&mut spaces)
    }
}

impl PolicyKv for MemoryKv {
    fn get(&self, namespace: &str, key: &str) -> Option<Vec<u8>> {
        self.with_spaces(|spaces| spaces.get(namespace)?.get(key).cloned())
    }

    fn set(&self, namespace: &str, key: &str, value: &[u8]) -> Result<(), KvRefusal> {
        if key.len() > MAX_KEY_BYTES || value.len() > MAX_VALUE_BYTES {
            return Err(KvRefusal::TooLarge);
        }
        self.with_spaces(|spaces| {
            let space = spaces.entry(namespace.to_owned()).or_default();
            if space.len() >= MAX_KEYS_PER_POLICY && !space.contains_key(key) {
                return Err(KvRefusal::QuotaExceeded);
            }
            space.insert(key.to_owned(), value.to_vec());
            Ok(())
        })
    }

    fn delete(&self, namespace: &str, key: &str) {
        self.with_spaces(|spaces| {
            if let Some(space) = spaces.get_mut(namespace) {
                space.remove(key);
            }
        });
    }
}
