//! The store: sled behind typed per-entity functions. No sled type leaves this
//! module; writes that belong together run in one sled transaction.
//!
//! Keyspaces (sled trees): `tenants`, `api_keys` (by key hash), `campaigns`,
//! `numbers` (E.164 → owning campaign), `pools`, `dni_sessions`,
//! `dni_holders` (`<campaign>/<number>` → id of its latest session), `bidders`,
//! `targets`, `bids`, `policies`, `versions` (`<policy>/<version>`), `blobs`
//! (component bytes by SHA-256), `deployments`, `calls` (by arrival time,
//! `<received_at_ms as 16 hex>/<id>`), `call_index` (id → calls key) and
//! `caller_history` (E.164 → `CallerStats`), `policy_kv` (the policies'
//! key-value stores, `<namespace>\0<key>` → bytes).

mod codec;
mod commit;
mod records;

use std::path::Path;

use serde::Serialize;
use serde::de::DeserializeOwned;
use sled::transaction::{ConflictableTransactionError, TransactionError, Transactional};

pub use records::*;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("storage failure: {0}")]
    Storage(String),
    #[error("corrupt record in {tree}: {reason}")]
    Corrupt { tree: String, reason: String },
    #[error("cannot encode a record: {0}")]
    Encode(String),
    #[error("number {number} already belongs to campaign {campaign_id}")]
    NumberTaken { number: String, campaign_id: String },
}

impl From<sled::Error> for StoreError {
    fn from(e: sled::Error) -> Self {
        StoreError::Storage(e.to_string())
    }
}

impl From<TransactionError<StoreError>> for StoreError {
    fn from(e: TransactionError<StoreError>) -> Self {
        match e {
            TransactionError::Abort(inner) => inner,
            TransactionError::Storage(e) => e.into(),
        }
    }
}

fn abort(e: StoreError) -> ConflictableTransactionError<StoreError> {
    ConflictableTransactionError::Abort(e)
}

/// One sled tree with its name, for typed access.
struct Keyspace {
    name: &'static str,
    tree: sled::Tree,
}

impl Keyspace {
    fn open(db: &sled::Db, name: &'static str) -> Result<Self, StoreError> {
        Ok(Keyspace {
            name,
            tree: db.open_tree(name)?,
        })
    }

    fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, StoreError> {
        self.tree
            .get(key.as_bytes())?
            .map(|bytes| codec::decode(self.name, &bytes))
            .transpose()
    }

    fn put<T: Serialize>(&self, key: &str, value: &T) -> Result<(), StoreError> {
        self.tree.insert(key.as_bytes(), codec::encode(value)?)?;
        Ok(())
    }

    fn remove(&self, key: &str) -> Result<bool, StoreError> {
        Ok(self.tree.remove(key.as_bytes())?.is_some())
    }

    fn scan<T: DeserializeOwned>(&self, prefix: &str) -> Result<Vec<T>, StoreError> {
        self.tree
            .scan_prefix(prefix.as_bytes())
            .map(|entry| {
                let (_, bytes) = entry?;
                codec::decode(self.name, &bytes)
            })
            .collect()
    }
}

/// Where a number belongs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub enum NumberOwner {
    /// A static number of the campaign.
    Campaign(String),
    /// A pooled number of the campaign.
    Pool(String),
}

impl NumberOwner {
    pub fn campaign_id(&self) -> &str {
        match self {
            NumberOwner::Campaign(id) | NumberOwner::Pool(id) => id,
        }
    }
}

pub struct Store {
    db: sled::Db,
    commit: commit::GroupCommit,
    tenants: Keyspace,
    api_keys: Keyspace,
    campaigns: Keyspace,
    numbers: Keyspace,
    pools: Keyspace,
    dni_sessions: Keyspace,
    dni_holders: Keyspace,
    bidders: Keyspace,
    targets: Keyspace,
    bids: Keyspace,
    policies: Keyspace,
    versions: Keyspace,
    blobs: sled::Tree,
    deployments: Keyspace,
    calls: Keyspace,
    call_index: sled::Tree,
    policy_kv: sled::Tree,
    caller_history: Keyspace,
}

/// A page of call records and where the next one starts.
#[derive(Debug, Clone, PartialEq)]
pub struct CallPage {
    pub calls: Vec<CallRecord>,
    pub next_cursor: Option<String>,
}

/// Which calls a listing wants.
#[derive(Debug, Clone, Default)]
pub struct CallFilter {
    pub campaign_id: Option<String>,
    pub outcome: Option<CallOutcome>,
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
}

/// Beside the pool's own key; `#` sorts before every id character.
fn exhausted_key(campaign_id: &str) -> String {
    format!("{campaign_id}#exhausted")
}

fn holder_key(campaign_id: &str, number: &str) -> String {
    format!("{campaign_id}/{number}")
}

fn call_key(record: &CallRecord) -> String {
    format!("{:016x}/{}", record.received_at_ms.max(0), record.id)
}

impl Store {
    /// Opens (or creates) the store in `dir`. sled holds a lock: one process
    /// at a time.
    ///
    /// A store closed a moment ago may still be locked while sled's
    /// background threads wind down (a restart in the same process, or a
    /// `serve` right after `admin bootstrap`): opening waits up to two seconds
    /// for the lock before it gives up.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        const ATTEMPTS: u32 = 50;
        let mut attempt = 0;
        loop {
            match sled::Config::new().path(dir).open() {
                Ok(db) => return Self::with_db(db),
                // sled reports the lock as `ErrorKind::Other` with this text.
                Err(sled::Error::Io(e))
                    if e.to_string().contains("could not acquire lock") && attempt < ATTEMPTS =>
                {
                    attempt += 1;
                    std::thread::sleep(std::time::Duration::from_millis(40));
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// A store that lives in memory only, for tests.
    pub fn temporary() -> Result<Self, StoreError> {
        Self::with_db(sled::Config::new().temporary(true).open()?)
    }

    fn with_db(db: sled::Db) -> Result<Self, StoreError> {
        Ok(Store {
            commit: commit::GroupCommit::start(db.clone())?,
            tenants: Keyspace::open(&db, "tenants")?,
            api_keys: Keyspace::open(&db, "api_keys")?,
            campaigns: Keyspace::open(&db, "campaigns")?,
            numbers: Keyspace::open(&db, "numbers")?,
            pools: Keyspace::open(&db, "pools")?,
            dni_sessions: Keyspace::open(&db, "dni_sessions")?,
            dni_holders: Keyspace::open(&db, "dni_holders")?,
            bidders: Keyspace::open(&db, "bidders")?,
            targets: Keyspace::open(&db, "targets")?,
            bids: Keyspace::open(&db, "bids")?,
            policies: Keyspace::open(&db, "policies")?,
            versions: Keyspace::open(&db, "versions")?,
            blobs: db.open_tree("blobs")?,
            deployments: Keyspace::open(&db, "deployments")?,
            calls: Keyspace::open(&db, "calls")?,
            call_index: db.open_tree("call_index")?,
            policy_kv: db.open_tree("policy_kv")?,
            caller_history: Keyspace::open(&db, "caller_history")?,
            db,
        })
    }

    /// Makes every write so far durable, now, on this thread.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        Ok(())
    }

    /// Waits until every write made before the call is durable, sharing one
    /// flush with every other writer waiting at the same time.
    pub async fn durable(&self) -> Result<(), StoreError> {
        self.commit.durable().await
    }

    // Tenants and keys.

    /// Creates a tenant and its first key together.
    pub fn create_tenant(&self, tenant: &Tenant, key: &ApiKey) -> Result<(), StoreError> {
        let tenant_bytes = codec::encode(tenant)?;
        let key_bytes = codec::encode(key)?;
        (&self.tenants.tree, &self.api_keys.tree).transaction(|(tenants, keys)| {
            tenants.insert(tenant.id.as_bytes(), tenant_bytes.clone())?;
            keys.insert(key.hash.as_bytes(), key_bytes.clone())?;
            Ok(())
        })?;
        Ok(())
    }

    pub fn tenant(&self, id: &str) -> Result<Option<Tenant>, StoreError> {
        self.tenants.get(id)
    }

    pub fn tenants(&self) -> Result<Vec<Tenant>, StoreError> {
        self.tenants.scan("")
    }

    pub fn put_api_key(&self, key: &ApiKey) -> Result<(), StoreError> {
        self.api_keys.put(&key.hash, key)
    }

    pub fn api_key_by_hash(&self, hash: &str) -> Result<Option<ApiKey>, StoreError> {
        self.api_keys.get(hash)
    }

    pub fn api_keys_of(&self, tenant_id: &str) -> Result<Vec<ApiKey>, StoreError> {
        Ok(self
            .api_keys
            .scan::<ApiKey>("")?
            .into_iter()
            .filter(|k| k.tenant_id == tenant_id)
            .collect())
    }

    pub fn delete_api_key(&self, key: &ApiKey) -> Result<bool, StoreError> {
        self.api_keys.remove(&key.hash)
    }

    // Campaigns and their numbers.

    /// Creates or replaces a campaign, moving its number index in the same
    /// transaction; refuses a number that belongs to another campaign.
    pub fn put_campaign(&self, campaign: &Campaign) -> Result<(), StoreError> {
        let bytes = codec::encode(campaign)?;
        let owner = codec::encode(&NumberOwner::Campaign(campaign.id.clone()))?;
        (&self.campaigns.tree, &self.numbers.tree).transaction(|(campaigns, numbers)| {
            if let Some(old) = campaigns.get(campaign.id.as_bytes())? {
                let old: Campaign = codec::decode("campaigns", &old).map_err(abort)?;
                for number in old.numbers.iter().filter(|n| !campaign.numbers.contains(n)) {
                    numbers.remove(number.as_bytes())?;
                }
            }
            for number in &campaign.numbers {
                if let Some(existing) = numbers.get(number.as_bytes())? {
                    let existing: NumberOwner =
                        codec::decode("numbers", &existing).map_err(abort)?;
                    if existing != NumberOwner::Campaign(campaign.id.clone()) {
                        return Err(abort(StoreError::NumberTaken {
                            number: number.clone(),
                            campaign_id: existing.campaign_id().to_owned(),
                        }));
                    }
                }
                numbers.insert(number.as_bytes(), owner.clone())?;
            }
            campaigns.insert(campaign.id.as_bytes(), bytes.clone())?;
            Ok(())
        })?;
        Ok(())
    }

    pub fn campaign(&self, id: &str) -> Result<Option<Campaign>, StoreError> {
        self.campaigns.get(id)
    }

    pub fn campaigns(&self) -> Result<Vec<Campaign>, StoreError> {
        self.campaigns.scan("")
    }

    /// Deletes a campaign with its numbers, pool and bids.
    pub fn delete_campaign(&self, id: &str) -> Result<bool, StoreError> {
        let Some(campaign) = self.campaign(id)? else {
            return Ok(false);
        };
        let pool = self.pool(id)?;
        let bids: Vec<Bid> = self
            .bids()?
            .into_iter()
            .filter(|b| b.campaign_id == id)
            .collect();
        (
            &self.campaigns.tree,
            &self.numbers.tree,
            &self.pools.tree,
            &self.bids.tree,
            &self.dni_holders.tree,
        )
            .transaction(|(campaigns, numbers, pools, bid_tree, holders)| {
                campaigns.remove(id.as_bytes())?;
                let pooled = pool.iter().flat_map(|p| p.numbers.iter());
                for number in campaign.numbers.iter().chain(pooled.clone()) {
                    numbers.remove(number.as_bytes())?;
                }
                for number in pooled {
                    holders.remove(holder_key(id, number).as_bytes())?;
                }
                pools.remove(id.as_bytes())?;
                pools.remove(exhausted_key(id).as_bytes())?;
                for bid in &bids {
                    bid_tree.remove(bid.id.as_bytes())?;
                }
                Ok(())
            })?;
        Ok(true)
    }

    pub fn number_owner(&self, e164: &str) -> Result<Option<NumberOwner>, StoreError> {
        self.numbers.get(e164)
    }

    // Pools and DNI sessions.

    /// Creates or replaces a campaign's pool configuration (numbers, TTL,
    /// counter), moving its number index with it and forgetting the holders of
    /// numbers no longer pooled. Holders are stored apart, one key each, so
    /// that a DNI assignment writes one small record, not the whole pool.
    pub fn put_pool(&self, pool: &Pool) -> Result<(), StoreError> {
        let config = Pool {
            holders: Default::default(),
            ..pool.clone()
        };
        let bytes = codec::encode(&config)?;
        let owner = codec::encode(&NumberOwner::Pool(pool.campaign_id.clone()))?;
        let mine = NumberOwner::Pool(pool.campaign_id.clone());
        (&self.pools.tree, &self.numbers.tree, &self.dni_holders.tree).transaction(
            |(pools, numbers, holders)| {
                if let Some(old) = pools.get(pool.campaign_id.as_bytes())? {
                    let old: Pool = codec::decode("pools", &old).map_err(abort)?;
                    for number in old.numbers.iter().filter(|n| !pool.numbers.contains(n)) {
                        numbers.remove(number.as_bytes())?;
                        holders.remove(holder_key(&pool.campaign_id, number).as_bytes())?;
                    }
                }
                for number in &pool.numbers {
                    if let Some(existing) = numbers.get(number.as_bytes())? {
                        let existing: NumberOwner =
                            codec::decode("numbers", &existing).map_err(abort)?;
                        if existing != mine {
                            return Err(abort(StoreError::NumberTaken {
                                number: number.clone(),
                                campaign_id: existing.campaign_id().to_owned(),
                            }));
                        }
                    }
                    numbers.insert(number.as_bytes(), owner.clone())?;
                }
                pools.insert(pool.campaign_id.as_bytes(), bytes.clone())?;
                Ok(())
            },
        )?;
        Ok(())
    }

    /// A campaign's pool with the current (or last) holder of each number.
    pub fn pool(&self, campaign_id: &str) -> Result<Option<Pool>, StoreError> {
        let Some(mut pool) = self.pools.get::<Pool>(campaign_id)? else {
            return Ok(None);
        };
        if let Some(count) = self.pools.tree.get(exhausted_key(campaign_id).as_bytes())? {
            let bytes = <[u8; 8]>::try_from(count.as_ref()).map_err(|_| StoreError::Corrupt {
                tree: "pools".to_owned(),
                reason: "exhaustion counter is not 8 bytes".to_owned(),
            })?;
            pool.exhausted_count = u64::from_le_bytes(bytes);
        }
        for entry in self
            .dni_holders
            .tree
            .scan_prefix(format!("{campaign_id}/").as_bytes())
        {
            let (_, session_id) = entry?;
            if let Some(holder) = self.dni_session(&String::from_utf8_lossy(&session_id))? {
                pool.holders.insert(holder.number.clone(), holder);
            }
        }
        Ok(Some(pool))
    }

    pub fn dni_session(&self, id: &str) -> Result<Option<DniSession>, StoreError> {
        self.dni_sessions.get(id)
    }

    pub fn dni_sessions_of(&self, campaign_id: &str) -> Result<Vec<DniSession>, StoreError> {
        Ok(self
            .dni_sessions
            .scan::<DniSession>("")?
            .into_iter()
            .filter(|s| s.campaign_id == campaign_id)
            .collect())
    }

    /// Records a DNI assignment. A renewal rewrites its session only; a new
    /// assignment also makes the session its number's holder (the holder
    /// record is the session's id); an exhausted pool stores its new count.
    pub fn put_dni_assignment(
        &self,
        campaign_id: &str,
        session: Option<&DniSession>,
        new_holder: bool,
        exhausted_count: Option<u64>,
    ) -> Result<(), StoreError> {
        if let Some(count) = exhausted_count {
            self.pools
                .tree
                .insert(exhausted_key(campaign_id).as_bytes(), &count.to_le_bytes())?;
        }
        let Some(session) = session else {
            return Ok(());
        };
        if !new_holder {
            return self.dni_sessions.put(&session.id, session);
        }
        let bytes = codec::encode(session)?;
        let key = holder_key(campaign_id, &session.number);
        (&self.dni_sessions.tree, &self.dni_holders.tree).transaction(|(sessions, holders)| {
            sessions.insert(session.id.as_bytes(), bytes.clone())?;
            holders.insert(key.as_bytes(), session.id.as_bytes())?;
            Ok(())
        })?;
        Ok(())
    }

    // Bidders, targets, bids.

    pub fn put_bidder(&self, bidder: &Bidder) -> Result<(), StoreError> {
        self.bidders.put(&bidder.id, bidder)
    }

    pub fn bidder(&self, id: &str) -> Result<Option<Bidder>, StoreError> {
        self.bidders.get(id)
    }

    pub fn bidders(&self) -> Result<Vec<Bidder>, StoreError> {
        self.bidders.scan("")
    }

    pub fn put_target(&self, target: &Target) -> Result<(), StoreError> {
        self.targets.put(&target.id, target)
    }

    pub fn target(&self, id: &str) -> Result<Option<Target>, StoreError> {
        self.targets.get(id)
    }

    pub fn targets(&self) -> Result<Vec<Target>, StoreError> {
        self.targets.scan("")
    }

    pub fn delete_target(&self, id: &str) -> Result<bool, StoreError> {
        self.targets.remove(id)
    }

    pub fn put_bid(&self, bid: &Bid) -> Result<(), StoreError> {
        self.bids.put(&bid.id, bid)
    }

    pub fn bid(&self, id: &str) -> Result<Option<Bid>, StoreError> {
        self.bids.get(id)
    }

    pub fn bids(&self) -> Result<Vec<Bid>, StoreError> {
        self.bids.scan("")
    }

    pub fn delete_bid(&self, id: &str) -> Result<bool, StoreError> {
        self.bids.remove(id)
    }

    // Policies, versions, deployments.

    /// Stores a policy (new or not) with a version and its bytes, together.
    pub fn put_policy_version(
        &self,
        policy: &Policy,
        version: &PolicyVersion,
        bytes: &[u8],
    ) -> Result<(), StoreError> {
        let policy_bytes = codec::encode(policy)?;
        let version_bytes = codec::encode(version)?;
        let version_key = format!("{}/{}", policy.id, version.version);
        (&self.policies.tree, &self.versions.tree, &self.blobs).transaction(
            |(policies, versions, blobs)| {
                policies.insert(policy.id.as_bytes(), policy_bytes.clone())?;
                versions.insert(version_key.as_bytes(), version_bytes.clone())?;
                blobs.insert(version.sha256.as_bytes(), bytes)?;
                Ok(())
            },
        )?;
        Ok(())
    }

    pub fn policy(&self, id: &str) -> Result<Option<Policy>, StoreError> {
        self.policies.get(id)
    }

    pub fn policies(&self) -> Result<Vec<Policy>, StoreError> {
        self.policies.scan("")
    }

    pub fn policy_version(
        &self,
        policy_id: &str,
        version: &str,
    ) -> Result<Option<PolicyVersion>, StoreError> {
        self.versions.get(&format!("{policy_id}/{version}"))
    }

    pub fn policy_versions(&self, policy_id: &str) -> Result<Vec<PolicyVersion>, StoreError> {
        let mut versions: Vec<PolicyVersion> = self.versions.scan(&format!("{policy_id}/"))?;
        versions.sort_by(|a, b| {
            a.uploaded_at
                .cmp(&b.uploaded_at)
                .then(a.version.cmp(&b.version))
        });
        Ok(versions)
    }

    /// Replaces a version's test vectors (the version itself stays immutable).
    pub fn put_test_vectors(&self, version: &PolicyVersion) -> Result<(), StoreError> {
        self.versions.put(
            &format!("{}/{}", version.policy_id, version.version),
            version,
        )
    }

    /// The component bytes of a version, by SHA-256.
    pub fn blob(&self, sha256: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.blobs.get(sha256.as_bytes())?.map(|b| b.to_vec()))
    }

    pub fn put_deployment(&self, deployment: &DeploymentRecord) -> Result<(), StoreError> {
        self.deployments.put(&deployment.policy_id, deployment)
    }

    pub fn deployment(&self, policy_id: &str) -> Result<Option<DeploymentRecord>, StoreError> {
        self.deployments.get(policy_id)
    }

    pub fn deployments(&self) -> Result<Vec<DeploymentRecord>, StoreError> {
        self.deployments.scan("")
    }

    // Calls and caller history.

    /// Stores a finished call and updates its caller's history, together.
    pub fn record_call(&self, record: &CallRecord) -> Result<(), StoreError> {
        let key = call_key(record);
        let bytes = codec::encode(record)?;
        let mut stats = self.caller_stats(&record.caller)?;
        stats.calls_seen = stats.calls_seen.saturating_add(1);
        let seen = record.received_at_ms.div_euclid(1000);
        stats.last_seen_unix_seconds =
            Some(stats.last_seen_unix_seconds.map_or(seen, |s| s.max(seen)));
        if record.billable {
            stats.conversions = stats.conversions.saturating_add(1);
        }
        let stats_bytes = codec::encode(&stats)?;
        (
            &self.calls.tree,
            &self.call_index,
            &self.caller_history.tree,
        )
            .transaction(|(calls, index, history)| {
                calls.insert(key.as_bytes(), bytes.clone())?;
                index.insert(record.id.as_bytes(), key.as_bytes())?;
                history.insert(record.caller.as_bytes(), stats_bytes.clone())?;
                Ok(())
            })?;
        Ok(())
    }

    pub fn call(&self, id: &str) -> Result<Option<CallRecord>, StoreError> {
        let Some(key) = self.call_index.get(id.as_bytes())? else {
            return Ok(None);
        };
        self.calls.get(&String::from_utf8_lossy(&key))
    }

    /// Calls matching `filter` and `visible`, oldest first, `limit` at most,
    /// from `cursor` (the `next_cursor` of the previous page).
    pub fn calls(
        &self,
        filter: &CallFilter,
        visible: impl Fn(&CallRecord) -> bool,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<CallPage, StoreError> {
        let start = match (cursor, filter.since_ms) {
            (Some(cursor), _) => format!("{cursor}\u{0}"),
            (None, Some(since)) => format!("{:016x}", since.max(0)),
            (None, None) => String::new(),
        };
        let mut calls = Vec::new();
        let mut last_key = None;
        let mut more = false;
        for entry in self.calls.tree.range(start.as_bytes()..) {
            let (key, bytes) = entry?;
            let record: CallRecord = codec::decode(self.calls.name, &bytes)?;
            if filter
                .until_ms
                .is_some_and(|until| record.received_at_ms >= until)
            {
                break;
            }
            let matches = filter
                .campaign_id
                .as_ref()
                .is_none_or(|c| &record.campaign_id == c)
                && filter.outcome.is_none_or(|o| record.outcome == o)
                && visible(&record);
            if !matches {
                continue;
            }
            if calls.len() == limit {
                more = true;
                break;
            }
            last_key = Some(String::from_utf8_lossy(&key).into_owned());
            calls.push(record);
        }
        Ok(CallPage {
            calls,
            next_cursor: if more { last_key } else { None },
        })
    }

    /// The caller's history before any call not yet recorded.
    pub fn caller_stats(&self, caller: &str) -> Result<CallerStats, StoreError> {
        Ok(self.caller_history.get(caller)?.unwrap_or_default())
    }

    // The policies' key-value stores.

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

/// The `kv` import of policies, kept in the store: it survives restarts.
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
