//! What a tenant may act on: the one rule for every object a tenant names.
//!
//! The API asks it when an object is created or changed (a bid naming a
//! campaign and a target, a campaign naming its policies, a bidder naming its
//! strategy module); the auction asks it again for every bid of every call,
//! because what was true at creation may not be now (a campaign closed to a
//! bidder after its bid was stored) and because bids made for one call
//! (strategy modules, real-time answers) name targets no API ever checked.

use crate::model::{Bid, Campaign, Policy, Role, Target, World};

/// A tenant acting through the API, or on whose behalf a bid was made.
#[derive(Debug, Clone, Copy)]
pub struct Actor<'a> {
    pub tenant_id: &'a str,
    pub role: Role,
}

/// Why a tenant may not name a policy where it did.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyRefusal {
    /// Not the tenant's and not shared: indistinguishable from absent.
    #[error("no policy you may use")]
    NotUsable,
    #[error("a {needed} policy is needed here, this one is a {actual} policy")]
    WrongWorld { needed: World, actual: World },
}

impl Actor<'_> {
    /// Operators act on everything; any other tenant on what it owns.
    pub fn owns(&self, owner_tenant_id: &str) -> bool {
        self.role == Role::Operator || self.tenant_id == owner_tenant_id
    }

    /// A policy the tenant may read or attach: its own, or a shared one.
    pub fn may_read_policy(&self, policy: &Policy) -> bool {
        policy.shared || self.owns(&policy.tenant_id)
    }

    /// Which worlds the tenant's role may upload.
    pub fn may_upload(&self, world: World) -> bool {
        match self.role {
            Role::Operator => true,
            Role::Marketer => matches!(world, World::Scorer | World::Selector),
            Role::Bidder => world == World::Bidder,
        }
    }

    /// A campaign the tenant may see in the marketplace and bid on.
    pub fn may_bid_on(&self, campaign: &Campaign) -> bool {
        self.role == Role::Operator || campaign.bidder_access.allows(self.tenant_id)
    }
}

/// Whether an object of `owner_tenant_id` (a campaign, a bidder) may run
/// `policy` (none: it does not exist) where a `world` policy is needed: the
/// owner's own policies and shared ones. Asked of the object's owner, not
/// of who edits it, so that an operator editing a tenant's campaign cannot
/// attach what the call would refuse to run.
pub fn policy_usable_by(
    owner_tenant_id: &str,
    policy: Option<&Policy>,
    world: World,
) -> Result<(), PolicyRefusal> {
    let policy = policy
        .filter(|p| p.shared || p.tenant_id == owner_tenant_id)
        .ok_or(PolicyRefusal::NotUsable)?;
    if policy.world != world {
        return Err(PolicyRefusal::WrongWorld {
            needed: world,
            actual: policy.world,
        });
    }
    Ok(())
}

/// Whether a campaign takes bids of a bidder tenant now (its `bidder_access`).
pub fn campaign_takes_bids_of(campaign: &Campaign, bidder_tenant_id: &str) -> bool {
    campaign.bidder_access.allows(bidder_tenant_id)
}

/// Whether a bid may ring a target: only its own bidder's, of its own tenant.
pub fn bid_may_ring(bid: &Bid, target: &Target) -> bool {
    target.bidder_id == bid.bidder_id && target.tenant_id == bid.tenant_id
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::BidderAccess;

    fn policy(tenant: &str, world: World, shared: bool) -> Policy {
        Policy {
            id: "pol".into(),
            tenant_id: tenant.into(),
            name: "p".into(),
            world,
            shared,
            created_at: 0,
        }
    }

    #[test]
    fn an_owner_uses_its_own_and_shared_policies_of_the_right_world() {
        let own = policy("m1", World::Scorer, false);
        let foreign = policy("m2", World::Scorer, false);
        let shared = policy("op", World::Scorer, true);
        assert_eq!(policy_usable_by("m1", Some(&own), World::Scorer), Ok(()));
        assert_eq!(policy_usable_by("m1", Some(&shared), World::Scorer), Ok(()));
        assert_eq!(
            policy_usable_by("m1", Some(&foreign), World::Scorer),
            Err(PolicyRefusal::NotUsable)
        );
        assert_eq!(
            policy_usable_by("m1", Some(&own), World::Selector),
            Err(PolicyRefusal::WrongWorld {
                needed: World::Selector,
                actual: World::Scorer
            })
        );
        let operator = Actor {
            tenant_id: "op",
            role: Role::Operator,
        };
        assert!(
            operator.may_read_policy(&foreign),
            "operators read every policy"
        );
        assert!(
            policy_usable_by("op", Some(&foreign), World::Scorer).is_err(),
            "but a campaign of the operator's runs only its own"
        );
    }

    #[test]
    fn a_bid_rings_only_its_own_bidders_targets() {
        let bid = Bid {
            bidder_id: "b1".into(),
            tenant_id: "t1".into(),
            ..Bid::default()
        };
        let own = Target {
            bidder_id: "b1".into(),
            tenant_id: "t1".into(),
            ..Target::default()
        };
        let rivals = Target {
            bidder_id: "b2".into(),
            tenant_id: "t2".into(),
            ..Target::default()
        };
        let same_tenant_other_bidder = Target {
            bidder_id: "b3".into(),
            tenant_id: "t1".into(),
            ..Target::default()
        };
        assert!(bid_may_ring(&bid, &own));
        assert!(!bid_may_ring(&bid, &rivals));
        assert!(!bid_may_ring(&bid, &same_tenant_other_bidder));
    }

    #[test]
    fn bidder_access_decides_who_bids_now() {
        let mut campaign = Campaign::default();
        assert!(campaign_takes_bids_of(&campaign, "t1"));
        campaign.bidder_access = BidderAccess::Only(vec!["t2".into()]);
        assert!(!campaign_takes_bids_of(&campaign, "t1"));
        assert!(campaign_takes_bids_of(&campaign, "t2"));
    }
}
