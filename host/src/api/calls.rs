//! Call records (CDRs with their decision trace) and the bidders' marketplace.
//! Which calls a caller sees, and what of each, is `view`'s to say.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{Caller, Params};
use super::view::{self, Viewer};
use super::{ApiState, contract};
use crate::clock;
use crate::marketplace::{self, CampaignMarket};
use crate::model::{CallOutcome, CallRecord};
use crate::store::CallFilter;

pub(super) fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(list_calls))
        .routes(routes!(get_call))
        .routes(routes!(get_marketplace))
}

/// Bytes of records one page of `GET /v1/calls` holds at most (it ends
/// early, with `next_cursor`, when the next record would pass it).
pub const MAX_PAGE_BYTES: usize = 8 << 20;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct CallQuery {
    pub campaign_id: Option<String>,
    pub outcome: Option<CallOutcome>,
    /// Calls received at or after this moment (Unix seconds).
    pub since: Option<i64>,
    /// Calls received before this moment (Unix seconds).
    pub until: Option<i64>,
    /// Page size, 1–500 (default 100).
    pub limit: Option<usize>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// A page of calls, each as the caller's role may see it: fields the role
/// may not see are absent (`docs/visibility.md`).
#[derive(Serialize, ToSchema)]
pub struct CallList {
    #[schema(value_type = Vec<CallRecord>)]
    pub calls: Vec<Value>,
    /// Present when more calls match: pass it as `cursor`.
    pub next_cursor: Option<String>,
}

fn viewer(caller: &Caller) -> Viewer<'_> {
    Viewer {
        tenant_id: &caller.tenant_id,
        role: caller.role,
    }
}

/// Each call as the caller may see it (`docs/visibility.md`), with the
/// attribution keys its campaign shares, looked up once per campaign.
fn shown(state: &ApiState, caller: &Caller, calls: &[CallRecord]) -> ApiResult<Vec<Value>> {
    let mut shared: HashMap<&str, Vec<String>> = HashMap::new();
    let mut out = Vec::with_capacity(calls.len());
    for call in calls {
        if !shared.contains_key(call.campaign_id.as_str()) {
            let keys = state
                .store
                .campaign(&call.campaign_id)?
                .map(|c| c.shared_attribution_keys)
                .unwrap_or_default();
            shared.insert(&call.campaign_id, keys);
        }
        let keys = &shared[call.campaign_id.as_str()];
        out.push(view::call_view(&viewer(caller), call, keys));
    }
    Ok(out)
}

#[utoipa::path(get, path = "/v1/calls", tag = "calls", params(CallQuery),
    security(("bearer" = ["operator", "marketer", "bidder"])),
    responses((status = 200, body = CallList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
async fn list_calls(
    State(state): State<ApiState>,
    caller: Caller,
    Params(query): Params<CallQuery>,
) -> ApiResult<Json<CallList>> {
    let limit = query.limit.unwrap_or(100);
    contract::CALLS_PAGE.check_query("limit", limit as u64)?;
    let filter = CallFilter {
        campaign_id: query.campaign_id,
        outcome: query.outcome,
        since_ms: query.since.map(|s| s.saturating_mul(1000)),
        until_ms: query.until.map(|u| u.saturating_mul(1000)),
    };
    let page = state.store.calls_within(
        &filter,
        |c| view::may_see_call(&viewer(&caller), c),
        query.cursor.as_deref(),
        limit,
        MAX_PAGE_BYTES,
    )?;
    Ok(Json(CallList {
        calls: shown(&state, &caller, &page.calls)?,
        next_cursor: page.next_cursor,
    }))
}

#[utoipa::path(get, path = "/v1/calls/{id}", tag = "calls",
    security(("bearer" = ["operator", "marketer", "bidder"])),
    responses((status = 200, body = CallRecord), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_call(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let call = state
        .store
        .call(&id)?
        .filter(|c| view::may_see_call(&viewer(&caller), c))
        .ok_or_else(|| ApiError::not_found("call"))?;
    let mut shown = shown(&state, &caller, std::slice::from_ref(&call))?;
    Ok(Json(shown.pop().unwrap_or_default()))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct MarketQuery {
    /// Days of calls the figures cover (default 30, at most 365).
    pub window_days: Option<u32>,
}

/// For a bidder: the campaigns it may bid on, with the quality and answering
/// figures of their recent calls.
#[utoipa::path(get, path = "/v1/marketplace", tag = "marketplace", params(MarketQuery),
    security(("bearer" = ["operator", "bidder"])),
    responses((status = 200, body = Vec<CampaignMarket>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn get_marketplace(
    State(state): State<ApiState>,
    caller: Caller,
    Params(query): Params<MarketQuery>,
) -> ApiResult<Json<Vec<CampaignMarket>>> {
    let days = query.window_days.unwrap_or(30);
    contract::WINDOW_DAYS.check_query("window_days", days.into())?;
    let since_ms = (clock::unix_now() - i64::from(days) * 86_400) * 1000;
    let mut markets = Vec::new();
    let mut campaigns = state.store.campaigns()?;
    campaigns.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
    for campaign in campaigns {
        if !caller.actor().may_bid_on(&campaign) {
            continue;
        }
        let filter = CallFilter {
            campaign_id: Some(campaign.id.clone()),
            since_ms: Some(since_ms),
            ..CallFilter::default()
        };
        let calls = state
            .store
            .calls(&filter, |_| true, None, usize::MAX)?
            .calls;
        markets.push(marketplace::summarize(&campaign.id, &campaign.name, &calls));
    }
    Ok(Json(markets))
}
