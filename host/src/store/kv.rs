//! The policies' key-value stores (the `kv` import), kept in the store so
//! that they survive restarts.

use super::{Store, StoreError};

impl Store {
    fn kv_key(namespace: &str, key: &str) -> Vec<u8> {
        let mut full = Vec::with_capacity(namespace.len() + key.len() + 1);
        full.extend_from_slice(namespace.as_bytes());
        full.push(0);
        full.extend_from_slice(key.as_bytes());
        full
    }

    pub fn kv_get(&self, namespace: &str, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .policy_kv
            .get(Self::kv_key(namespace, key))?
            .map(|v| v.to_vec()))
    }

    /// Keys a namespace holds, up to `limit` (counting stops there).
    pub fn kv_count(&self, namespace: &str, limit: usize) -> Result<usize, StoreError> {
        let mut prefix = namespace.as_bytes().to_vec();
        prefix.push(0);
        Ok(self
            .policy_kv
            .scan_prefix(prefix)
            .keys()
            .take(limit)
            .count())
    }

    pub fn kv_put(&self, namespace: &str, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.policy_kv.insert(Self::kv_key(namespace, key), value)?;
        Ok(())
    }

    pub fn kv_remove(&self, namespace: &str, key: &str) -> Result<(), StoreError> {
        self.policy_kv.remove(Self::kv_key(namespace, key))?;
        Ok(())
    }
}

/// The `kv` import of policies.
impl crate::policy::PolicyKv for Store {
    fn get(&self, namespace: &str, key: &str) -> Option<Vec<u8>> {
        self.kv_get(namespace, key).unwrap_or_else(|error| {
            tracing::warn!(%error, "policy key-value read failed");
            None
        })
    }

    fn set(
        &self,
        namespace: &str,
        key: &str,
        value: &[u8],
    ) -> Result<(), crate::policy::KvRefusal> {
        use crate::policy::{KvRefusal, MAX_KEY_BYTES, MAX_KEYS_PER_POLICY, MAX_VALUE_BYTES};
        if key.len() > MAX_KEY_BYTES || value.len() > MAX_VALUE_BYTES {
            return Err(KvRefusal::TooLarge);
        }
        let other = |e: StoreError| KvRefusal::Other(e.to_string());
        let exists = self.kv_get(namespace, key).map_err(other)?.is_some();
        if !exists
            && self
                .kv_count(namespace, MAX_KEYS_PER_POLICY)
                .map_err(other)?
                >= MAX_KEYS_PER_POLICY
        {
            return Err(KvRefusal::QuotaExceeded);
        }
        self.kv_put(namespace, key, value).map_err(other)
    }

    fn delete(&self, namespace: &str, key: &str) {
        if let Err(error) = self.kv_remove(namespace, key) {
            tracing::warn!(%error, "policy key-value delete failed");
        }
    }
}
