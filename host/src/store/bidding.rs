//! Bidders, their targets and their bids.

use super::{Bid, Bidder, Store, StoreError, Target};

impl Store {
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
}
