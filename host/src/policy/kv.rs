//! The per-policy key-value store behind the `kv` import. The trait lets the
//! control plane back it with the durable store; `MemoryKv` serves local runs.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use crate::model::{KvRefusal, MAX_KEY_BYTES, MAX_KEYS_PER_POLICY, MAX_VALUE_BYTES, PolicyKv};

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
