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

    /// Every entry of a namespace, for a replay's snapshot (bounded by the
    /// keys a policy may hold).
    pub fn kv_entries(&self, namespace: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let mut prefix = namespace.as_bytes().to_vec();
        prefix.push(0);
        self.policy_kv
            .scan_prefix(&prefix)
            .map(|entry| {
                let (key, value) = entry?;
                let key = String::from_utf8_lossy(&key[prefix.len()..]).into_owned();
                Ok((key, value.to_vec()))
            })
            .collect()
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

    /// The namespace of `policy_id`'s store for `tenant_id`: a shared
    /// policy (the bundled examples) used by several tenants keeps each
    /// one's state apart, shared with no other policy and no other tenant.
    pub fn kv_namespace(policy_id: &str, tenant_id: &str) -> String {
        format!("{policy_id}/{tenant_id}")
    }

    /// The tenant a namespace of [`Store::kv_namespace`] is for (a shadow
    /// version's namespace carries a `#` suffix).
    fn kv_tenant(namespace: &str) -> &str {
        let tenant = namespace.split_once('/').map_or(namespace, |(_, t)| t);
        tenant.split_once('#').map_or(tenant, |(t, _)| t)
    }

    /// Bytes (keys and values) the tenant's policies hold in their stores.
    pub fn kv_usage(&self, tenant_id: &str) -> Result<u64, StoreError> {
        Ok(self
            .kv_usage
            .get(tenant_id.as_bytes())?
            .and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok())
            .map_or(0, u64::from_le_bytes))
    }

    /// Writes `value`; `Ok(false)`, writing nothing, when the tenant's
    /// policies would hold more than `quota` bytes.
    pub fn kv_put(
        &self,
        namespace: &str,
        key: &str,
        value: &[u8],
        quota: u64,
    ) -> Result<bool, StoreError> {
        let _one_at_a_time = self.kv_writes.lock().unwrap_or_else(|p| p.into_inner());
        let full = Self::kv_key(namespace, key);
        let tenant = Self::kv_tenant(namespace);
        let entry = |value: usize| (key.len() + value) as u64;
        let before = self.policy_kv.get(&full)?.map_or(0, |v| entry(v.len()));
        let current = self.kv_usage(tenant)?;
        let usage = current.saturating_sub(before) + entry(value.len());
        // A write that shrinks what the tenant holds is always let through.
        if usage > quota && usage > current {
            return Ok(false);
        }
        self.write_kv(&full, Some(value), tenant, usage)?;
        Ok(true)
    }

    pub fn kv_remove(&self, namespace: &str, key: &str) -> Result<(), StoreError> {
        let _one_at_a_time = self.kv_writes.lock().unwrap_or_else(|p| p.into_inner());
        let full = Self::kv_key(namespace, key);
        let Some(before) = self.policy_kv.get(&full)? else {
            return Ok(());
        };
        let tenant = Self::kv_tenant(namespace);
        let usage = self
            .kv_usage(tenant)?
            .saturating_sub((key.len() + before.len()) as u64);
        self.write_kv(&full, None, tenant, usage)
    }

    /// The entry and its tenant's new usage, together.
    fn write_kv(
        &self,
        full: &[u8],
        value: Option<&[u8]>,
        tenant: &str,
        usage: u64,
    ) -> Result<(), StoreError> {
        use sled::transaction::Transactional;
        (&self.policy_kv, &self.kv_usage).transaction(|(entries, usages)| {
            match value {
                Some(value) => entries.insert(full, value)?,
                None => entries.remove(full)?,
            };
            usages.insert(tenant.as_bytes(), &usage.to_le_bytes())?;
            Ok(())
        })?;
        Ok(())
    }
}

/// The `kv` import of policies.
impl crate::model::PolicyKv for Store {
    fn get(&self, namespace: &str, key: &str) -> Option<Vec<u8>> {
        self.kv_get(namespace, key).unwrap_or_else(|error| {
            tracing::warn!(%error, "policy key-value read failed");
            None
        })
    }

    fn set(&self, namespace: &str, key: &str, value: &[u8]) -> Result<(), crate::model::KvRefusal> {
        use crate::model::{KvRefusal, MAX_KEY_BYTES, MAX_KEYS_PER_POLICY, MAX_VALUE_BYTES};
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
        let quota = crate::access::quota::KV_BYTES_PER_TENANT;
        match self.kv_put(namespace, key, value, quota).map_err(other)? {
            true => Ok(()),
            false => Err(KvRefusal::QuotaExceeded),
        }
    }

    fn delete(&self, namespace: &str, key: &str) {
        if let Err(error) = self.kv_remove(namespace, key) {
            tracing::warn!(%error, "policy key-value delete failed");
        }
    }
}
