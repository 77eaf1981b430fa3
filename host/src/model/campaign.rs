//! Campaigns, their numbers and the pools of numbers handed to visitor
//! sessions (dynamic number insertion).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::UnixSeconds;

/// Which bidders may see and bid on a campaign.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema, Default)]
#[serde(rename_all = "snake_case", tag = "kind", content = "tenants")]
pub enum BidderAccess {
    /// Every bidder tenant.
    #[default]
    All,
    /// Only these bidder tenants.
    Only(Vec<String>),
}

impl BidderAccess {
    pub fn allows(&self, tenant_id: &str) -> bool {
        match self {
            BidderAccess::All => true,
            BidderAccess::Only(tenants) => tenants.iter().any(|t| t == tenant_id),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
pub struct Campaign {
    pub id: String,
    pub tenant_id: String,
    pub name: String,
    /// Static numbers, E.164, unique across campaigns.
    pub numbers: Vec<String>,
    /// Bids below this never win (micros of the campaign's currency).
    pub floor_price_micros: u64,
    /// Where a call goes when no bid wins (SIP URI).
    pub fallback_target: Option<String>,
    pub scorer_policy_id: Option<String>,
    pub selector_policy_id: Option<String>,
    /// Attribution keys bidders may see in offers.
    pub shared_attribution_keys: Vec<String>,
    pub bidder_access: BidderAccess,
    /// Send `180 Ringing` to the caller as soon as routing starts.
    pub early_ringback: bool,
    /// Deadline of the auction, milliseconds.
    pub auction_timeout_ms: u32,
    pub created_at: UnixSeconds,
}

/// A campaign's pool of numbers for dynamic number insertion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Pool {
    pub campaign_id: String,
    /// Pooled numbers, E.164, unique across campaigns and pools.
    pub numbers: Vec<String>,
    /// How long a number stays with a visitor session, seconds.
    pub ttl_s: u32,
    /// Times the pool had no free number and the default number was returned.
    pub exhausted_count: u64,
    /// The latest session of each number that has had one: the current
    /// holder, or the last one, whose expiry is when the number was released.
    #[serde(default)]
    pub holders: std::collections::BTreeMap<String, DniSession>,
}

/// A pooled number handed to a visitor session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DniSession {
    pub id: String,
    pub campaign_id: String,
    pub number: String,
    /// As an object of names to values, the shape of the request that made it.
    #[serde(default, with = "super::attribution")]
    #[schema(value_type = std::collections::BTreeMap<String, String>)]
    pub attributes: Vec<(String, String)>,
    pub assigned_at: UnixSeconds,
    pub expires_at: UnixSeconds,
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
