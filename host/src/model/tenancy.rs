//! Tenants, their roles and their API keys.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Unix seconds, UTC.
pub type UnixSeconds = i64;

/// What a tenant's API keys may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Operator,
    Marketer,
    Bidder,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Operator, Role::Marketer, Role::Bidder];
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Tenant {
    pub id: String,
    pub name: String,
    pub role: Role,
    pub created_at: UnixSeconds,
}

/// An API key as stored: its SHA-256, never the key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ApiKey {
    pub id: String,
    pub tenant_id: String,
    /// Hex SHA-256 of the secret.
    #[serde(skip_serializing_if = "String::is_empty", default)]
    #[schema(ignore)]
    pub hash: String,
    /// The first characters of the key, to tell keys apart in listings.
    pub prefix: String,
    pub created_at: UnixSeconds,
}
