//! The key-value store a replayed call reads: a copy of what the policy's
//! store held when the replay first needed it, and per call a layer of its
//! own for what the candidate writes, dropped with the call. Every call
//! sees the same snapshot whatever order calls run in, and nothing a
//! candidate writes reaches the store or the next call.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use crate::model::{
    Campaign, KvRefusal, MAX_KEY_BYTES, MAX_KEYS_PER_POLICY, MAX_VALUE_BYTES, PolicyKv, World,
};
use crate::store::{Store, StoreError};

/// Whose store a candidate reads during a replay.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum KvSource {
    /// An empty store, as a version new to the market starts with.
    #[default]
    Empty,
    /// The store of this policy: a scorer's or selector's for each call's
    /// marketer, a bidder module's for the bidder that owns it.
    Policy {
        policy_id: String,
        owner_tenant: String,
    },
    /// The store of the policy each call's campaign runs in the candidate's
    /// world (its scorer, its selector); empty for a bidder module, which
    /// no campaign names.
    Campaigns,
}

type Entries = Arc<BTreeMap<String, Vec<u8>>>;

/// Snapshots of the namespaces a replay has read, taken on first use.
pub(super) struct Snapshots<'a> {
    store: &'a Store,
    source: KvSource,
    world: World,
    taken: HashMap<String, Entries>,
}

impl<'a> Snapshots<'a> {
    pub(super) fn new(store: &'a Store, source: KvSource, world: World) -> Self {
        Snapshots {
            store,
            source,
            world,
            taken: HashMap::new(),
        }
    }

    /// A fresh store for one call of `marketer`'s `campaign` (none when
    /// it is gone).
    pub(super) fn for_call(
        &mut self,
        marketer: &str,
        campaign: Option<&Campaign>,
    ) -> Result<Arc<dyn PolicyKv>, StoreError> {
        let snapshot = match self.namespace(marketer, campaign) {
            None => Entries::default(),
            Some(namespace) => match self.taken.get(&namespace) {
                Some(entries) => entries.clone(),
                None => {
                    let entries: Entries =
                        Arc::new(self.store.kv_entries(&namespace)?.into_iter().collect());
                    self.taken.insert(namespace, entries.clone());
                    entries
                }
            },
        };
        Ok(Arc::new(CallKv {
            snapshot,
            writes: Mutex::new(HashMap::new()),
        }))
    }

    fn namespace(&self, marketer: &str, campaign: Option<&Campaign>) -> Option<String> {
        match (&self.source, self.world) {
            (KvSource::Empty, _) => None,
            (
                KvSource::Policy {
                    policy_id,
                    owner_tenant,
                },
                World::Bidder,
            ) => Some(Store::kv_namespace(policy_id, owner_tenant)),
            (KvSource::Policy { policy_id, .. }, _) => {
                Some(Store::kv_namespace(policy_id, marketer))
            }
            (KvSource::Campaigns, World::Bidder) => None,
            (KvSource::Campaigns, world) => {
                let campaign = campaign?;
                let policy_id = match world {
                    World::Selector => campaign.selector_policy_id.as_ref(),
                    _ => campaign.scorer_policy_id.as_ref(),
                }?;
                Some(Store::kv_namespace(policy_id, marketer))
            }
        }
    }
}

/// One call's view: the snapshot under the call's own writes (`None`: a
/// delete).
struct CallKv {
    snapshot: Entries,
    writes: Mutex<HashMap<String, Option<Vec<u8>>>>,
}

impl CallKv {
    fn writes(&self) -> std::sync::MutexGuard<'_, HashMap<String, Option<Vec<u8>>>> {
        // The map stays whole if an invocation panicked while holding it.
        self.writes.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl PolicyKv for CallKv {
    /// One namespace per call: the context names it, the snapshot is it.
    fn get(&self, _namespace: &str, key: &str) -> Option<Vec<u8>> {
        match self.writes().get(key) {
            Some(written) => written.clone(),
            None => self.snapshot.get(key).cloned(),
        }
    }

    fn set(&self, _namespace: &str, key: &str, value: &[u8]) -> Result<(), KvRefusal> {
        if key.len() > MAX_KEY_BYTES || value.len() > MAX_VALUE_BYTES {
            return Err(KvRefusal::TooLarge);
        }
        let mut writes = self.writes();
        let new_key = !self.snapshot.contains_key(key) && !writes.contains_key(key);
        if new_key {
            let added = writes
                .iter()
                .filter(|(k, v)| v.is_some() && !self.snapshot.contains_key(*k))
                .count();
            if self.snapshot.len() + added >= MAX_KEYS_PER_POLICY {
                return Err(KvRefusal::QuotaExceeded);
            }
        }
        writes.insert(key.to_owned(), Some(value.to_vec()));
        Ok(())
    }

    fn delete(&self, _namespace: &str, key: &str) {
        self.writes().insert(key.to_owned(), None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call_kv(entries: &[(&str, &[u8])]) -> CallKv {
        CallKv {
            snapshot: Arc::new(
                entries
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), v.to_vec()))
                    .collect(),
            ),
            writes: Mutex::new(HashMap::new()),
        }
    }

    #[test]
    fn a_call_reads_its_own_writes_over_the_snapshot() {
        let kv = call_kv(&[("seen", b"3"), ("gone", b"1")]);
        assert_eq!(kv.get("ns", "seen").as_deref(), Some(&b"3"[..]));
        kv.set("ns", "seen", b"4").expect("written");
        kv.delete("ns", "gone");
        assert_eq!(kv.get("ns", "seen").as_deref(), Some(&b"4"[..]));
        assert_eq!(kv.get("ns", "gone"), None);
        assert_eq!(kv.snapshot.get("seen").map(Vec::as_slice), Some(&b"3"[..]));
    }

    #[test]
    fn a_call_keeps_the_bounds_of_a_live_store() {
        let kv = call_kv(&[]);
        let big = vec![0u8; MAX_VALUE_BYTES + 1];
        assert_eq!(kv.set("ns", "k", &big), Err(KvRefusal::TooLarge));
        for i in 0..MAX_KEYS_PER_POLICY {
            kv.set("ns", &i.to_string(), b"x").expect("under the bound");
        }
        assert_eq!(
            kv.set("ns", "one-more", b"x"),
            Err(KvRefusal::QuotaExceeded)
        );
        kv.set("ns", "0", b"y").expect("an existing key may change");
    }
}
