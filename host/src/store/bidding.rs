//! Bidders, their targets and their bids; and the market as calls read it.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::model::{Bid, Bidder, Policy, Target};

use super::{Store, StoreError};

/// Every bid, bidder, target and policy, decoded once per change: what each
/// call's auction reads, without a scan of four keyspaces per call.
#[derive(Debug, Default)]
pub struct Market {
    pub bids: Vec<Bid>,
    pub bidders: Vec<Bidder>,
    pub targets: HashMap<String, Target>,
    /// Who owns each policy and its world: whether a campaign or a bidder
    /// may run it is asked again at every call.
    pub policies: HashMap<String, Policy>,
}

impl Store {
    /// The market as of the last write of a bidder, target, bid or policy.
    pub fn market(&self) -> Result<Arc<Market>, StoreError> {
        // Read before the scan: a write that lands during it bumps the
        // generation again, and the next call rebuilds.
        let generation = self.market_generation.load(Ordering::Acquire);
        let mut cached = self.market.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((built, market)) = cached.as_ref()
            && *built == generation
        {
            return Ok(market.clone());
        }
        let market = Arc::new(Market {
            bids: self.bids()?,
            bidders: self.bidders()?,
            targets: self
                .targets()?
                .into_iter()
                .map(|t| (t.id.clone(), t))
                .collect(),
            policies: self
                .policies()?
                .into_iter()
                .map(|p| (p.id.clone(), p))
                .collect(),
        });
        *cached = Some((generation, market.clone()));
        Ok(market)
    }

    pub(super) fn market_changed(&self) {
        self.market_generation.fetch_add(1, Ordering::AcqRel);
    }

    pub fn put_bidder(&self, bidder: &Bidder) -> Result<(), StoreError> {
        let written = self.bidders.put(&bidder.id, bidder);
        self.market_changed();
        written
    }

    pub fn bidder(&self, id: &str) -> Result<Option<Bidder>, StoreError> {
        self.bidders.get(id)
    }

    pub fn bidders(&self) -> Result<Vec<Bidder>, StoreError> {
        self.bidders.scan("")
    }

    pub fn put_target(&self, target: &Target) -> Result<(), StoreError> {
        let written = self.targets.put(&target.id, target);
        self.market_changed();
        written
    }

    pub fn target(&self, id: &str) -> Result<Option<Target>, StoreError> {
        self.targets.get(id)
    }

    pub fn targets(&self) -> Result<Vec<Target>, StoreError> {
        self.targets.scan("")
    }

    pub fn delete_target(&self, id: &str) -> Result<bool, StoreError> {
        let removed = self.targets.remove(id);
        self.market_changed();
        removed
    }

    pub fn put_bid(&self, bid: &Bid) -> Result<(), StoreError> {
        let written = self.bids.put(&bid.id, bid);
        self.market_changed();
        written
    }

    pub fn bid(&self, id: &str) -> Result<Option<Bid>, StoreError> {
        self.bids.get(id)
    }

    pub fn bids(&self) -> Result<Vec<Bid>, StoreError> {
        self.bids.scan("")
    }

    pub fn delete_bid(&self, id: &str) -> Result<bool, StoreError> {
        let removed = self.bids.remove(id);
        self.market_changed();
        removed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_market_is_rebuilt_after_each_write_and_only_then() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(dir.path()).expect("store");
        let empty = store.market().expect("market");
        assert!(empty.bids.is_empty());
        assert!(
            Arc::ptr_eq(&empty, &store.market().expect("market")),
            "cached"
        );
        store
            .put_bid(&Bid {
                id: "bid_1".into(),
                ..Bid::default()
            })
            .expect("put");
        assert_eq!(store.market().expect("market").bids.len(), 1);
        store.delete_bid("bid_1").expect("delete");
        assert!(store.market().expect("market").bids.is_empty());
    }
}
