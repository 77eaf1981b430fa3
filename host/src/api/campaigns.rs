//! Campaigns, their numbers, their number pool and DNI sessions. Marketers
//! manage their own; operators see all; bidders use the marketplace instead.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{Body, Caller, Params};
use super::{ApiState, DeferredDurability, contract, new_id, patch};
use crate::access::quota::{self, Kind};
use crate::access::{self, PolicyRefusal};
use crate::clock;
use crate::dni::{self, Assignment, PoolState};
use crate::model::{BidderAccess, Campaign, DniSession, Pool, World};
use crate::number::normalize_e164;
use crate::sip::SipUri;
use axum::response::IntoResponse;

pub(super) fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(create_campaign, list_campaigns))
        .routes(routes!(
            get_campaign,
            update_campaign,
            patch_campaign,
            delete_campaign
        ))
        .routes(routes!(list_numbers, add_number))
        .routes(routes!(remove_number))
        .routes(routes!(get_pool, put_pool))
        .routes(routes!(create_dni_session, find_dni_session))
}

#[derive(Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCampaign {
    pub name: String,
    #[serde(default)]
    pub numbers: Vec<String>,
    #[serde(default)]
    pub floor_price_micros: u64,
    pub fallback_target: Option<String>,
    pub scorer_policy_id: Option<String>,
    pub selector_policy_id: Option<String>,
    #[serde(default)]
    pub shared_attribution_keys: Vec<String>,
    #[serde(default)]
    pub bidder_access: BidderAccess,
    #[serde(default)]
    pub early_ringback: bool,
    pub auction_timeout_ms: Option<u32>,
}

impl From<&Campaign> for NewCampaign {
    fn from(c: &Campaign) -> Self {
        NewCampaign {
            name: c.name.clone(),
            numbers: c.numbers.clone(),
            floor_price_micros: c.floor_price_micros,
            fallback_target: c.fallback_target.clone(),
            scorer_policy_id: c.scorer_policy_id.clone(),
            selector_policy_id: c.selector_policy_id.clone(),
            shared_attribution_keys: c.shared_attribution_keys.clone(),
            bidder_access: c.bidder_access.clone(),
            early_ringback: c.early_ringback,
            auction_timeout_ms: Some(c.auction_timeout_ms),
        }
    }
}

/// The campaign `new` describes, with the identity of `id`, `tenant_id`
/// and `created_at`.
fn campaign_from(
    new: NewCampaign,
    id: String,
    tenant_id: String,
    created_at: i64,
) -> ApiResult<Campaign> {
    Ok(Campaign {
        id,
        tenant_id,
        name: new.name.trim().to_owned(),
        numbers: normalized_numbers(&new.numbers)?,
        floor_price_micros: new.floor_price_micros,
        fallback_target: new.fallback_target,
        scorer_policy_id: new.scorer_policy_id,
        selector_policy_id: new.selector_policy_id,
        shared_attribution_keys: new.shared_attribution_keys,
        bidder_access: new.bidder_access,
        early_ringback: new.early_ringback,
        auction_timeout_ms: new.auction_timeout_ms.unwrap_or(100),
        created_at,
    })
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::unprocessable("request.invalid_field", message)
}

/// A number from a request, in E.164, or `422 number.invalid`.
fn e164(number: &str) -> ApiResult<String> {
    normalize_e164(number).map_err(|e| ApiError::unprocessable("number.invalid", e.to_string()))
}

fn normalized_numbers(numbers: &[String]) -> ApiResult<Vec<String>> {
    let mut out: Vec<String> = Vec::with_capacity(numbers.len());
    for number in numbers {
        let e164 = e164(number)?;
        if !out.contains(&e164) {
            out.push(e164);
        }
    }
    Ok(out)
}

/// A SIP URI a B2BUA can call, by the strict parse the call uses too.
pub(super) fn check_sip_uri(field: &str, uri: &str) -> ApiResult<()> {
    SipUri::parse(uri).map(drop).map_err(|e| {
        invalid(format!(
            "`{field}` {e}; a target is a SIP URI such as sip:sales@192.0.2.10:5060"
        ))
    })
}

/// A policy `owner`'s object may run as a `world` policy (the ownership
/// rule the call applies again).
pub(super) fn check_policy(
    state: &ApiState,
    owner_tenant_id: &str,
    id: &str,
    world: World,
) -> ApiResult<()> {
    let policy = state.store.policy(id)?;
    access::policy_usable_by(owner_tenant_id, policy.as_ref(), world).map_err(|refusal| {
        match refusal {
            PolicyRefusal::NotUsable => {
                ApiError::unprocessable("policy.not_found", format!("no policy {id} you may use"))
            }
            PolicyRefusal::WrongWorld { .. } => {
                ApiError::unprocessable("policy.wrong_world", format!("policy {id}: {refusal}"))
            }
        }
    })
}

fn check_campaign(state: &ApiState, c: &Campaign) -> ApiResult<()> {
    quota::check(Kind::Numbers, 0, c.numbers.len())?;
    contract::NAME.check_text("name", &c.name)?;
    if let Some(uri) = &c.fallback_target {
        check_sip_uri("fallback_target", uri)?;
    }
    if let Some(id) = &c.scorer_policy_id {
        check_policy(state, &c.tenant_id, id, World::Scorer)?;
    }
    if let Some(id) = &c.selector_policy_id {
        check_policy(state, &c.tenant_id, id, World::Selector)?;
    }
    contract::AUCTION_TIMEOUT_MS.check("auction_timeout_ms", c.auction_timeout_ms.into())?;
    contract::FLOOR_PRICE_MICROS.check("floor_price_micros", c.floor_price_micros)?;
    Ok(())
}

/// The campaign `id` if the caller may see it (404 otherwise, never 403).
pub(super) fn visible_campaign(state: &ApiState, caller: &Caller, id: &str) -> ApiResult<Campaign> {
    state
        .store
        .campaign(id)?
        .filter(|c| caller.owns(&c.tenant_id))
        .ok_or_else(|| ApiError::not_found("campaign"))
}

#[utoipa::path(post, path = "/v1/campaigns", tag = "campaigns", request_body = NewCampaign,
    security(("bearer" = ["operator", "marketer"])),
    responses((status = 201, body = Campaign), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn create_campaign(
    State(state): State<ApiState>,
    caller: Caller,
    Body(new): Body<NewCampaign>,
) -> ApiResult<(StatusCode, Json<Campaign>)> {
    quota::check_one_more(
        Kind::Campaigns,
        &state.store.campaigns()?,
        |o| &o.tenant_id,
        &caller.tenant_id,
    )?;
    let campaign = campaign_from(
        new,
        new_id("cmp")?,
        caller.tenant_id.clone(),
        clock::unix_now(),
    )?;
    let Json(campaign) = store_campaign(&state, campaign).await?;
    Ok((StatusCode::CREATED, Json(campaign)))
}

#[utoipa::path(get, path = "/v1/campaigns", tag = "campaigns",
    security(("bearer" = ["operator", "marketer"])),
    responses((status = 200, body = Vec<Campaign>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn list_campaigns(
    State(state): State<ApiState>,
    caller: Caller,
) -> ApiResult<Json<Vec<Campaign>>> {
    let mut campaigns: Vec<Campaign> = state
        .store
        .campaigns()?
        .into_iter()
        .filter(|c| caller.owns(&c.tenant_id))
        .collect();
    campaigns.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
    Ok(Json(campaigns))
}

#[utoipa::path(get, path = "/v1/campaigns/{id}", tag = "campaigns",
    security(("bearer" = ["operator", "marketer"])),
    responses((status = 200, body = Campaign), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_campaign(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Campaign>> {
    Ok(Json(visible_campaign(&state, &caller, &id)?))
}

#[utoipa::path(put, path = "/v1/campaigns/{id}", tag = "campaigns", request_body = NewCampaign,
    security(("bearer" = ["operator", "marketer"])),
    responses((status = 200, body = Campaign)))]
async fn update_campaign(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
    Body(new): Body<NewCampaign>,
) -> ApiResult<Json<Campaign>> {
    let old = visible_campaign(&state, &caller, &id)?;
    let campaign = campaign_from(new, old.id, old.tenant_id, old.created_at)?;
    store_campaign(&state, campaign).await
}

#[utoipa::path(patch, path = "/v1/campaigns/{id}", tag = "campaigns",
    request_body(content = NewCampaign, content_type = "application/merge-patch+json"),
    security(("bearer" = ["operator", "marketer"])),
    responses((status = 200, body = Campaign)))]
async fn patch_campaign(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
    Body(changes): Body<serde_json::Value>,
) -> ApiResult<Json<Campaign>> {
    let old = visible_campaign(&state, &caller, &id)?;
    let new = patch::apply(&NewCampaign::from(&old), &changes)?;
    let campaign = campaign_from(new, old.id, old.tenant_id, old.created_at)?;
    store_campaign(&state, campaign).await
}

async fn store_campaign(state: &ApiState, campaign: Campaign) -> ApiResult<Json<Campaign>> {
    check_campaign(state, &campaign)?;
    if let Some(uri) = &campaign.fallback_target {
        state.names.resolve(uri).await;
    }
    state.store.put_campaign(&campaign)?;
    Ok(Json(campaign))
}

#[utoipa::path(delete, path = "/v1/campaigns/{id}", tag = "campaigns",
    security(("bearer" = ["operator", "marketer"])),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn delete_campaign(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let c = visible_campaign(&state, &caller, &id)?;
    let mut pools = state.dni_pools.lock().unwrap_or_else(|p| p.into_inner());
    state.store.delete_campaign(&c.id)?;
    pools.remove(&c.id);
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewNumber {
    pub number: String,
}

#[utoipa::path(get, path = "/v1/campaigns/{id}/numbers", tag = "campaigns",
    security(("bearer" = ["operator", "marketer"])),
    responses((status = 200, body = Vec<String>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn list_numbers(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<String>>> {
    Ok(Json(visible_campaign(&state, &caller, &id)?.numbers))
}

#[utoipa::path(post, path = "/v1/campaigns/{id}/numbers", tag = "campaigns", request_body = NewNumber,
    security(("bearer" = ["operator", "marketer"])),
    responses((status = 201, body = Vec<String>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn add_number(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
    Body(new): Body<NewNumber>,
) -> ApiResult<(StatusCode, Json<Vec<String>>)> {
    let mut c = visible_campaign(&state, &caller, &id)?;
    let number = e164(&new.number)?;
    if !c.numbers.contains(&number) {
        quota::check(Kind::Numbers, c.numbers.len(), 1)?;
        c.numbers.push(number);
        state.store.put_campaign(&c)?;
    }
    Ok((StatusCode::CREATED, Json(c.numbers)))
}

#[utoipa::path(delete, path = "/v1/campaigns/{id}/numbers/{number}", tag = "campaigns",
    security(("bearer" = ["operator", "marketer"])),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn remove_number(
    State(state): State<ApiState>,
    caller: Caller,
    Path((id, number)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let mut c = visible_campaign(&state, &caller, &id)?;
    let number = normalize_e164(&number).map_err(|_| ApiError::not_found("number"))?;
    let before = c.numbers.len();
    c.numbers.retain(|n| n != &number);
    if c.numbers.len() == before {
        return Err(ApiError::not_found("number"));
    }
    state.store.put_campaign(&c)?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PoolSpec {
    pub numbers: Vec<String>,
    /// Seconds a number stays with a visitor session (default 1800).
    pub ttl_s: Option<u32>,
}

#[utoipa::path(get, path = "/v1/campaigns/{id}/pool", tag = "dni",
    security(("bearer" = ["operator", "marketer"])),
    responses((status = 200, body = Pool), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_pool(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Pool>> {
    let c = visible_campaign(&state, &caller, &id)?;
    state
        .store
        .pool(&c.id)?
        .map(Json)
        .ok_or_else(|| ApiError::not_found("pool"))
}

#[utoipa::path(put, path = "/v1/campaigns/{id}/pool", tag = "dni", request_body = PoolSpec,
    security(("bearer" = ["operator", "marketer"])),
    responses((status = 200, body = Pool), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn put_pool(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
    Body(spec): Body<PoolSpec>,
) -> ApiResult<Json<Pool>> {
    let c = visible_campaign(&state, &caller, &id)?;
    let numbers = normalized_numbers(&spec.numbers)?;
    quota::check(Kind::PoolNumbers, 0, numbers.len())?;
    let ttl_s = spec.ttl_s.unwrap_or(1800);
    contract::POOL_TTL_S.check("ttl_s", ttl_s.into())?;
    let mut pools = state.dni_pools.lock().unwrap_or_else(|p| p.into_inner());
    let mut pool = match pools.get(&c.id) {
        Some(cached) => cached.pool().clone(),
        None => state.store.pool(&c.id)?.unwrap_or(Pool {
            campaign_id: c.id.clone(),
            numbers: vec![],
            ttl_s,
            exhausted_count: 0,
            holders: BTreeMap::new(),
        }),
    };
    pool.holders.retain(|number, _| numbers.contains(number));
    pool.numbers = numbers;
    pool.ttl_s = ttl_s;
    state.store.put_pool(&pool)?;
    pools.insert(c.id.clone(), PoolState::new(pool.clone()));
    Ok(Json(pool))
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct DniRequest {
    /// The visitor session to renew; absent for a new visitor.
    pub session_id: Option<String>,
    /// What the website knows of the visit: source, keyword, landing page…
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
}

#[derive(Serialize, ToSchema)]
pub struct DniResponse {
    /// Absent when the pool was exhausted (nothing is held).
    pub session_id: Option<String>,
    /// The number to show the visitor.
    pub number: String,
    /// When the number stops being held for the session (Unix seconds).
    pub expires_at: Option<i64>,
    /// False when the pool was exhausted and this is the default number.
    pub pooled: bool,
}

#[utoipa::path(post, path = "/v1/campaigns/{id}/dni-sessions", tag = "dni", request_body = DniRequest,
    security(("bearer" = ["operator", "marketer"])),
    responses((status = 201, body = DniResponse), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn create_dni_session(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
    Body(request): Body<DniRequest>,
) -> ApiResult<axum::response::Response> {
    let c = visible_campaign(&state, &caller, &id)?;
    if let Some(session) = &request.session_id {
        contract::SESSION_ID.check_text("session_id", session)?;
    }
    contract::DNI_ATTRIBUTES.check("attributes", request.attributes.len() as u64)?;
    let new_session = new_id("dni")?;
    let assignment = {
        let mut pools = state.dni_pools.lock().unwrap_or_else(|p| p.into_inner());
        if !pools.contains_key(&c.id) {
            let stored = state
                .store
                .pool(&c.id)?
                .ok_or_else(|| ApiError::not_found("pool"))?;
            pools.insert(c.id.clone(), PoolState::new(stored));
        }
        let pool = pools
            .get_mut(&c.id)
            .ok_or_else(|| ApiError::not_found("pool"))?;
        let current = match &request.session_id {
            Some(session) => state
                .store
                .dni_session(session)?
                .filter(|s| s.campaign_id == c.id),
            None => None,
        };
        let assignment = dni::assign(
            pool,
            current.as_ref(),
            request.session_id.as_deref(),
            request.attributes.into_iter().collect(),
            clock::unix_now(),
            || new_session,
        );
        // Store first, then memory: a failed write leaves both as they were.
        let exhausted_count = assignment
            .session()
            .is_none()
            .then(|| pool.pool().exhausted_count + 1);
        let new_holder = matches!(assignment, Assignment::Assigned(_));
        state
            .store
            .put_dni_assignment(&c.id, assignment.session(), new_holder, exhausted_count)?;
        dni::apply(pool, &assignment);
        assignment
    };
    let result = match &assignment {
        Assignment::Renewed(_) => "renewed",
        Assignment::Assigned(_) => "assigned",
        Assignment::Exhausted => "exhausted",
    };
    state.metrics.inc(
        "plugboard_dni_assignments_total",
        vec![("result", result.to_owned())],
    );
    let response = match assignment.session() {
        Some(s) => DniResponse {
            session_id: Some(s.id.clone()),
            number: s.number.clone(),
            expires_at: Some(s.expires_at),
            pooled: true,
        },
        None => DniResponse {
            session_id: None,
            number: c.numbers.first().cloned().ok_or_else(|| {
                ApiError::conflict(
                    "dni.exhausted",
                    "the pool is exhausted and the campaign has no default number",
                )
            })?,
            expires_at: None,
            pooled: false,
        },
    };
    // A DNI session is ephemeral and requested at page-view rates: it is
    // acknowledged without waiting for the disk (docs/benchmarks.md).
    let mut reply = (StatusCode::CREATED, Json(response)).into_response();
    reply.extensions_mut().insert(DeferredDurability);
    Ok(reply)
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DniLookup {
    /// A pooled number, any accepted format.
    pub number: String,
    /// The moment of the call (Unix seconds); default now.
    pub at: Option<i64>,
}

/// Which visitor session held a pooled number at a moment: a call's attribution.
#[utoipa::path(get, path = "/v1/campaigns/{id}/dni-sessions", tag = "dni", params(DniLookup),
    security(("bearer" = ["operator", "marketer"])),
    responses((status = 200, body = DniSession), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn find_dni_session(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
    Params(lookup): Params<DniLookup>,
) -> ApiResult<Json<DniSession>> {
    let c = visible_campaign(&state, &caller, &id)?;
    let number = e164(&lookup.number)?;
    let at = lookup.at.unwrap_or_else(clock::unix_now);
    let sessions = state.store.dni_sessions_of(&c.id)?;
    dni::session_at(&sessions, &number, at)
        .cloned()
        .map(Json)
        .ok_or_else(|| ApiError::not_found("session"))
}
