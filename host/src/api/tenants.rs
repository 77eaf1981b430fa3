//! Tenants and API keys. Operators create tenants; every tenant manages its
//! own keys. A key is shown once, at creation; the store keeps its hash.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{Body, Caller, key_hash};
use super::{ApiState, new_api_key, new_id};
use crate::clock;
use crate::model::{ApiKey, Role, Tenant};
use crate::store::Store;

pub(super) fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(create_tenant, list_tenants))
        .routes(routes!(get_tenant))
        .routes(routes!(create_api_key, list_api_keys))
        .routes(routes!(delete_api_key))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTenant {
    pub name: String,
    pub role: Role,
}

/// A new tenant with its first API key (shown this once).
#[derive(Serialize, ToSchema)]
pub struct CreatedTenant {
    pub id: String,
    pub name: String,
    pub role: Role,
    pub api_key: String,
}

#[derive(Serialize, ToSchema)]
pub struct CreatedKey {
    pub id: String,
    pub tenant_id: String,
    pub api_key: String,
}

/// Creates a tenant and its first key; `plugboard admin bootstrap` uses this
/// for the first operator.
pub fn create_tenant_with_key(
    store: &Store,
    name: &str,
    role: Role,
) -> Result<(Tenant, String), ApiError> {
    let tenant = Tenant {
        id: new_id("tnt")?,
        name: name.to_owned(),
        role,
        created_at: clock::unix_now(),
    };
    let secret = new_api_key()?;
    let key = api_key_record(&tenant.id, &secret)?;
    store.create_tenant(&tenant, &key)?;
    Ok((tenant, secret))
}

fn api_key_record(tenant_id: &str, secret: &str) -> Result<ApiKey, ApiError> {
    Ok(ApiKey {
        id: new_id("key")?,
        tenant_id: tenant_id.to_owned(),
        hash: key_hash(secret),
        prefix: secret.chars().take(10).collect(),
        created_at: clock::unix_now(),
    })
}

fn check_name(name: &str) -> Result<(), ApiError> {
    super::contract::NAME.check_text("name", name)
}

#[utoipa::path(post, path = "/v1/tenants", tag = "tenants", request_body = NewTenant,
    security(("bearer" = ["operator"])),
    responses((status = 201, body = CreatedTenant), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn create_tenant(
    State(state): State<ApiState>,
    _operator: Caller,
    Body(new): Body<NewTenant>,
) -> ApiResult<(StatusCode, Json<CreatedTenant>)> {
    check_name(&new.name)?;
    let (tenant, api_key) = create_tenant_with_key(&state.store, new.name.trim(), new.role)?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedTenant {
            id: tenant.id,
            name: tenant.name,
            role: tenant.role,
            api_key,
        }),
    ))
}

#[utoipa::path(get, path = "/v1/tenants", tag = "tenants",
    security(("bearer" = ["operator"])),
    responses((status = 200, body = Vec<Tenant>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn list_tenants(
    State(state): State<ApiState>,
    _operator: Caller,
) -> ApiResult<Json<Vec<Tenant>>> {
    Ok(Json(state.store.tenants()?))
}

/// A tenant: operators see all, others only their own.
#[utoipa::path(get, path = "/v1/tenants/{id}", tag = "tenants",
    security(("bearer" = ["operator", "marketer", "bidder"])),
    responses((status = 200, body = Tenant), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_tenant(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Tenant>> {
    let tenant = state.store.tenant(&id)?.filter(|t| caller.owns(&t.id));
    tenant
        .map(Json)
        .ok_or_else(|| ApiError::not_found("tenant"))
}

/// Another key for the caller's own tenant.
#[utoipa::path(post, path = "/v1/api-keys", tag = "api-keys",
    security(("bearer" = ["operator", "marketer", "bidder"])),
    responses((status = 201, body = CreatedKey), (status = 401, body = ErrorBody)))]
async fn create_api_key(
    State(state): State<ApiState>,
    caller: Caller,
) -> ApiResult<(StatusCode, Json<CreatedKey>)> {
    let secret = new_api_key()?;
    let key = api_key_record(&caller.tenant_id, &secret)?;
    state.store.put_api_key(&key)?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedKey {
            id: key.id,
            tenant_id: key.tenant_id,
            api_key: secret,
        }),
    ))
}

#[utoipa::path(get, path = "/v1/api-keys", tag = "api-keys",
    security(("bearer" = ["operator", "marketer", "bidder"])),
    responses((status = 200, body = Vec<ApiKey>), (status = 401, body = ErrorBody)))]
async fn list_api_keys(
    State(state): State<ApiState>,
    caller: Caller,
) -> ApiResult<Json<Vec<ApiKey>>> {
    let mut keys = state.store.api_keys_of(&caller.tenant_id)?;
    keys.iter_mut().for_each(|k| k.hash.clear());
    keys.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
    Ok(Json(keys))
}

/// Revokes one of the tenant's keys (not the one making the request).
#[utoipa::path(delete, path = "/v1/api-keys/{id}", tag = "api-keys",
    security(("bearer" = ["operator", "marketer", "bidder"])),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn delete_api_key(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let key = state
        .store
        .api_keys_of(&caller.tenant_id)?
        .into_iter()
        .find(|k| k.id == id)
        .ok_or_else(|| ApiError::not_found("api key"))?;
    if key.id == caller.key_id {
        return Err(ApiError::conflict(
            "api_key.in_use",
            "a key cannot revoke itself",
        ));
    }
    state.store.delete_api_key(&key)?;
    Ok(StatusCode::NO_CONTENT)
}
