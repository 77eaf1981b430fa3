//! Campaigns, their numbers (one owner per number), pools and DNI sessions.

use sled::transaction::{ConflictableTransactionError, Transactional, TransactionalTree};

use crate::model::{Bid, Campaign, DniSession, NumberOwner, Pool};

use super::{Store, StoreError, abort, codec, exhausted_key, holder_key};

impl Store {
    /// Creates or replaces a campaign, moving its number index in the same
    /// transaction; refuses a number that belongs to another campaign.
    pub fn put_campaign(&self, campaign: &Campaign) -> Result<(), StoreError> {
        let bytes = codec::encode(campaign)?;
        let owner = NumberOwner::Campaign(campaign.id.clone());
        (&self.campaigns.tree, &self.numbers.tree).transaction(|(campaigns, numbers)| {
            let previous = match campaigns.get(campaign.id.as_bytes())? {
                Some(old) => {
                    codec::decode::<Campaign>("campaigns", &old)
                        .map_err(abort)?
                        .numbers
                }
                None => Vec::new(),
            };
            index_numbers(numbers, &owner, &campaign.numbers, &previous)?;
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
        self.market_changed();
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
        let owner = NumberOwner::Pool(pool.campaign_id.clone());
        (&self.pools.tree, &self.numbers.tree, &self.dni_holders.tree).transaction(
            |(pools, numbers, holders)| {
                let previous = match pools.get(pool.campaign_id.as_bytes())? {
                    Some(old) => codec::decode::<Pool>("pools", &old).map_err(abort)?.numbers,
                    None => Vec::new(),
                };
                for released in index_numbers(numbers, &owner, &pool.numbers, &previous)? {
                    holders.remove(holder_key(&pool.campaign_id, released).as_bytes())?;
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
}

/// Inside a transaction: drops from the number index those of `previous`
/// that `numbers` no longer has, then points every one of `numbers` at
/// `owner`, refusing a number another owner holds. Returns the dropped ones.
fn index_numbers<'a>(
    index: &TransactionalTree,
    owner: &NumberOwner,
    numbers: &[String],
    previous: &'a [String],
) -> Result<Vec<&'a String>, ConflictableTransactionError<StoreError>> {
    let owner_bytes = codec::encode(owner).map_err(abort)?;
    let released: Vec<&String> = previous.iter().filter(|n| !numbers.contains(n)).collect();
    for number in &released {
        index.remove(number.as_bytes())?;
    }
    for number in numbers {
        if let Some(existing) = index.get(number.as_bytes())? {
            let existing: NumberOwner = codec::decode("numbers", &existing).map_err(abort)?;
            if existing != *owner {
                return Err(abort(StoreError::NumberTaken {
                    number: number.clone(),
                    campaign_id: existing.campaign_id().to_owned(),
                }));
            }
        }
        index.insert(number.as_bytes(), owner_bytes.clone())?;
    }
    Ok(released)
}
