//! How much one tenant may create: every kind of object a tenant makes has a
//! quota, counted for the object's owner (an operator creating for a tenant
//! counts against that tenant), so that no tenant's objects can make the
//! market each call reads, or the store, grow without bound.

/// What is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Campaigns,
    /// Static numbers of one campaign.
    Numbers,
    /// Numbers of one campaign's pool.
    PoolNumbers,
    Bidders,
    Targets,
    Bids,
    Policies,
    /// Versions of one policy.
    Versions,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Campaigns => "campaigns",
            Kind::Numbers => "numbers of a campaign",
            Kind::PoolNumbers => "pooled numbers of a campaign",
            Kind::Bidders => "bidders",
            Kind::Targets => "targets",
            Kind::Bids => "bids",
            Kind::Policies => "policies",
            Kind::Versions => "versions of a policy",
        }
    }

    /// The default quota: generous for a real business, small enough that
    /// the auction's work per call and a record's size stay bounded.
    pub fn limit(self) -> usize {
        match self {
            Kind::Campaigns => 200,
            Kind::Numbers => 1_000,
            Kind::PoolNumbers => 1_000,
            Kind::Bidders => 50,
            Kind::Targets => 200,
            Kind::Bids => 500,
            Kind::Policies => 50,
            Kind::Versions => 100,
        }
    }
}

/// Bytes (keys and values) all of a tenant's policies may keep in their
/// key-value stores; past it `kv.set` answers `quota-exceeded`.
pub const KV_BYTES_PER_TENANT: u64 = 32 << 20;

/// A creation past a quota.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("quota reached: at most {limit} {}", kind.name())]
pub struct QuotaExceeded {
    pub kind: Kind,
    pub limit: usize,
}

/// Whether an owner holding `held` objects of `kind` may hold `held + adding`.
pub fn check(kind: Kind, held: usize, adding: usize) -> Result<(), QuotaExceeded> {
    let limit = kind.limit();
    if held.saturating_add(adding) > limit {
        return Err(QuotaExceeded { kind, limit });
    }
    Ok(())
}

/// Whether `owner_tenant_id` may own one more object of `kind`, given
/// every object of that kind and who owns each.
pub fn check_one_more<T>(
    kind: Kind,
    all: &[T],
    owner: impl Fn(&T) -> &String,
    owner_tenant_id: &str,
) -> Result<(), QuotaExceeded> {
    let held = all.iter().filter(|o| owner(o) == owner_tenant_id).count();
    check(kind, held, 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quota_admits_up_to_its_limit() {
        let limit = Kind::Bids.limit();
        assert_eq!(check(Kind::Bids, limit - 1, 1), Ok(()));
        assert_eq!(
            check(Kind::Bids, limit, 1),
            Err(QuotaExceeded {
                kind: Kind::Bids,
                limit
            })
        );
        assert!(check(Kind::Numbers, 0, limit + 1_000).is_err());
    }
}
