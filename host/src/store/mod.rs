//! The store: sled behind typed per-entity functions. No sled type leaves this
//! module; writes that belong together run in one sled transaction.
//!
//! Keyspaces (sled trees): `tenants`, `api_keys` (by key hash), `campaigns`,
//! `numbers` (E.164 → owning campaign), `pools`, `dni_sessions`,
//! `dni_holders` (`<campaign>/<number>` → id of its latest session), `bidders`,
//! `targets`, `bids`, `policies`, `versions` (`<policy>/<version>`), `blobs`
//! (component bytes by SHA-256), `deployments`, `calls` (by arrival time,
//! `<received_at_ms as 16 hex>/<id>`), `call_index` (id → calls key) and
//! `caller_history` (E.164 → `CallerHistory`), `policy_kv` (the policies'
//! key-value stores, `<namespace>\0<key>` → bytes) and `kv_usage` (tenant →
//! bytes of its policies' key-value stores, u64 little-endian).

mod bidding;
pub use bidding::Market;
mod calls;
mod campaigns;
mod codec;
mod commit;
mod kv;
mod policies;

use std::path::Path;

use serde::Serialize;
use serde::de::DeserializeOwned;
use sled::transaction::{ConflictableTransactionError, TransactionError, Transactional};

use crate::model::{ApiKey, CallOutcome, CallRecord, Tenant};

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
    kv_usage: sled::Tree,
    /// Key-value writes, one at a time, so that each tenant's usage is
    /// read and written back whole.
    kv_writes: std::sync::Mutex<()>,
    caller_history: Keyspace,
    /// Bumped after each write of a bidder, target or bid.
    market_generation: std::sync::atomic::AtomicU64,
    market: std::sync::Mutex<Option<(u64, std::sync::Arc<bidding::Market>)>>,
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

impl CallFilter {
    /// Whether `record` matches the campaign and outcome asked for (the
    /// times are the listing's range, read from the keys).
    fn admits(&self, record: &CallRecord) -> bool {
        self.campaign_id
            .as_ref()
            .is_none_or(|c| &record.campaign_id == c)
            && self.outcome.is_none_or(|o| record.outcome == o)
    }
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
            kv_usage: db.open_tree("kv_usage")?,
            kv_writes: std::sync::Mutex::new(()),
            caller_history: Keyspace::open(&db, "caller_history")?,
            market_generation: std::sync::atomic::AtomicU64::new(0),
            market: std::sync::Mutex::new(None),
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
}
