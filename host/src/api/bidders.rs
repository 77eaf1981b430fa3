//! Bidders, their SIP targets and their bids. Bidders manage their own;
//! operators see all; marketers see bids through call records only.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::campaigns::{check_policy, check_sip_uri};
use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{Body, Caller};
use super::{ApiState, contract, new_id, patch};
use crate::access;
use crate::access::quota::{self, Kind};
use crate::auction::ledger::TargetState;
use crate::auction::schedule::clock_minutes;
use crate::clock;
use crate::model::{Bid, Bidder, DEFAULT_MIN_DURATION_S, ScheduleWindow, Target, World};
use crate::sip::uri::check_http_url;

pub(super) fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(create_bidder, list_bidders))
        .routes(routes!(get_bidder, update_bidder, patch_bidder))
        .routes(routes!(create_target, list_targets))
        .routes(routes!(update_target, patch_target, delete_target))
        .routes(routes!(create_bid, list_bids))
        .routes(routes!(get_bid, update_bid, patch_bid, delete_bid))
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::unprocessable("request.invalid_field", message)
}

#[derive(Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BidderSpec {
    pub name: String,
    /// Real-time bid endpoint (http:// or https://).
    pub rtb_url: Option<String>,
    /// A `bidder` world policy of this tenant.
    pub strategy_policy_id: Option<String>,
}

impl From<&Bidder> for BidderSpec {
    fn from(b: &Bidder) -> Self {
        BidderSpec {
            name: b.name.clone(),
            rtb_url: b.rtb_url.clone(),
            strategy_policy_id: b.strategy_policy_id.clone(),
        }
    }
}

fn visible_bidder(state: &ApiState, caller: &Caller, id: &str) -> ApiResult<Bidder> {
    state
        .store
        .bidder(id)?
        .filter(|b| caller.owns(&b.tenant_id))
        .ok_or_else(|| ApiError::not_found("bidder"))
}

/// Checks a bidder of `owner_tenant_id` as `spec` describes it.
fn check_bidder(state: &ApiState, owner_tenant_id: &str, spec: &BidderSpec) -> ApiResult<()> {
    contract::NAME.check_text("name", &spec.name)?;
    if let Some(url) = &spec.rtb_url {
        check_http_url(url).map_err(|why| {
            invalid(format!(
                "`rtb_url` {why}; it is an http:// or https:// URL such as https://bids.example.com/plugboard"
            ))
        })?;
    }
    if let Some(id) = &spec.strategy_policy_id {
        check_policy(state, owner_tenant_id, id, World::Bidder)?;
    }
    Ok(())
}

#[utoipa::path(post, path = "/v1/bidders", tag = "bidders", request_body = BidderSpec,
    security(("bearer" = ["operator", "bidder"])),
    responses((status = 201, body = Bidder), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn create_bidder(
    State(state): State<ApiState>,
    caller: Caller,
    Body(spec): Body<BidderSpec>,
) -> ApiResult<(StatusCode, Json<Bidder>)> {
    check_bidder(&state, &caller.tenant_id, &spec)?;
    quota::check_one_more(
        Kind::Bidders,
        &state.store.bidders()?,
        |o| &o.tenant_id,
        &caller.tenant_id,
    )?;
    let bidder = Bidder {
        id: new_id("bdr")?,
        tenant_id: caller.tenant_id.clone(),
        name: spec.name.trim().to_owned(),
        rtb_url: spec.rtb_url,
        strategy_policy_id: spec.strategy_policy_id,
        created_at: clock::unix_now(),
    };
    state.store.put_bidder(&bidder)?;
    Ok((StatusCode::CREATED, Json(bidder)))
}

#[utoipa::path(get, path = "/v1/bidders", tag = "bidders",
    security(("bearer" = ["operator", "bidder"])),
    responses((status = 200, body = Vec<Bidder>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn list_bidders(
    State(state): State<ApiState>,
    caller: Caller,
) -> ApiResult<Json<Vec<Bidder>>> {
    let mut bidders: Vec<Bidder> = state
        .store
        .bidders()?
        .into_iter()
        .filter(|b| caller.owns(&b.tenant_id))
        .collect();
    bidders.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
    Ok(Json(bidders))
}

#[utoipa::path(get, path = "/v1/bidders/{id}", tag = "bidders",
    security(("bearer" = ["operator", "bidder"])),
    responses((status = 200, body = Bidder), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_bidder(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Bidder>> {
    Ok(Json(visible_bidder(&state, &caller, &id)?))
}

#[utoipa::path(put, path = "/v1/bidders/{id}", tag = "bidders", request_body = BidderSpec,
    security(("bearer" = ["operator", "bidder"])),
    responses((status = 200, body = Bidder), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn update_bidder(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
    Body(spec): Body<BidderSpec>,
) -> ApiResult<Json<Bidder>> {
    let bidder = visible_bidder(&state, &caller, &id)?;
    replace_bidder(&state, bidder, spec)
}

#[utoipa::path(patch, path = "/v1/bidders/{id}", tag = "bidders",
    request_body(content = BidderSpec, content_type = "application/merge-patch+json"),
    security(("bearer" = ["operator", "bidder"])),
    responses((status = 200, body = Bidder)))]
async fn patch_bidder(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
    Body(changes): Body<serde_json::Value>,
) -> ApiResult<Json<Bidder>> {
    let bidder = visible_bidder(&state, &caller, &id)?;
    let spec = patch::apply(&BidderSpec::from(&bidder), &changes)?;
    replace_bidder(&state, bidder, spec)
}

fn replace_bidder(
    state: &ApiState,
    mut bidder: Bidder,
    spec: BidderSpec,
) -> ApiResult<Json<Bidder>> {
    check_bidder(state, &bidder.tenant_id, &spec)?;
    bidder.name = spec.name.trim().to_owned();
    bidder.rtb_url = spec.rtb_url;
    bidder.strategy_policy_id = spec.strategy_policy_id;
    state.store.put_bidder(&bidder)?;
    Ok(Json(bidder))
}

#[derive(Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TargetSpec {
    /// What the bidder calls it; shown beside the id in metrics.
    pub name: Option<String>,
    /// SIP URI the call is sent to.
    pub uri: String,
    /// Seconds to ring before the next bid is tried (default 20).
    pub ring_timeout_s: Option<u32>,
    /// Calls at once (default 10).
    pub max_concurrent: Option<u32>,
    /// Calls missed in a row (busy, rejected, unanswered) that pause the
    /// target (default 3; 0 = never).
    pub miss_limit: Option<u32>,
    /// Seconds a pause lasts (default 300).
    pub pause_s: Option<u32>,
    /// Follow a 3xx to a URI on the target's own host (default false: a
    /// 3xx is a failure and the next bid rings).
    pub follow_redirects: Option<bool>,
}

impl From<&Target> for TargetSpec {
    fn from(t: &Target) -> Self {
        TargetSpec {
            name: t.name.clone(),
            uri: t.uri.clone(),
            ring_timeout_s: Some(t.ring_timeout_s),
            max_concurrent: Some(t.max_concurrent),
            miss_limit: Some(t.miss_limit),
            pause_s: Some(t.pause_s),
            follow_redirects: Some(t.follow_redirects),
        }
    }
}

fn target_from(spec: TargetSpec, id: String, bidder: &Bidder) -> ApiResult<Target> {
    if let Some(name) = &spec.name {
        contract::NAME.check_text("name", name)?;
    }
    check_sip_uri("uri", &spec.uri)?;
    let ring_timeout_s = spec.ring_timeout_s.unwrap_or(20);
    contract::RING_TIMEOUT_S.check("ring_timeout_s", ring_timeout_s.into())?;
    let max_concurrent = spec.max_concurrent.unwrap_or(10);
    contract::MAX_CONCURRENT.check("max_concurrent", max_concurrent.into())?;
    let miss_limit = spec.miss_limit.unwrap_or(3);
    contract::MISS_LIMIT.check("miss_limit", miss_limit.into())?;
    let pause_s = spec.pause_s.unwrap_or(300);
    contract::PAUSE_S.check("pause_s", pause_s.into())?;
    Ok(Target {
        id,
        bidder_id: bidder.id.clone(),
        tenant_id: bidder.tenant_id.clone(),
        name: spec.name,
        uri: spec.uri,
        ring_timeout_s,
        max_concurrent,
        miss_limit,
        pause_s,
        follow_redirects: spec.follow_redirects.unwrap_or(false),
        created_at: clock::unix_now(),
    })
}

#[utoipa::path(post, path = "/v1/bidders/{id}/targets", tag = "bidders", request_body = TargetSpec,
    security(("bearer" = ["operator", "bidder"])),
    responses((status = 201, body = Target), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn create_target(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
    Body(spec): Body<TargetSpec>,
) -> ApiResult<(StatusCode, Json<Target>)> {
    let bidder = visible_bidder(&state, &caller, &id)?;
    let target = target_from(spec, new_id("tgt")?, &bidder)?;
    quota::check_one_more(
        Kind::Targets,
        &state.store.targets()?,
        |o| &o.tenant_id,
        &bidder.tenant_id,
    )?;
    // So that its first call finds the name resolved (calls never wait for it).
    state.names.resolve(&target.uri).await;
    state.store.put_target(&target)?;
    Ok((StatusCode::CREATED, Json(target)))
}

/// Whether a target takes calls now: the host pauses one that misses calls
/// in a row, and says why.
#[derive(Serialize, ToSchema)]
pub struct TargetStatus {
    /// `active` or `paused`.
    pub state: &'static str,
    /// When the pause ends (Unix seconds).
    pub paused_until: Option<i64>,
    pub reason: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct TargetView {
    #[serde(flatten)]
    pub target: Target,
    pub status: TargetStatus,
}

fn target_view(state: &ApiState, target: Target) -> TargetView {
    let status = match state.ledger.target_state(&target.id, clock::unix_now()) {
        TargetState::Active => TargetStatus {
            state: "active",
            paused_until: None,
            reason: None,
        },
        TargetState::Paused { until, reason } => TargetStatus {
            state: "paused",
            paused_until: Some(until),
            reason: Some(reason),
        },
    };
    TargetView { target, status }
}

#[utoipa::path(get, path = "/v1/bidders/{id}/targets", tag = "bidders",
    security(("bearer" = ["operator", "bidder"])),
    responses((status = 200, body = Vec<TargetView>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn list_targets(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<TargetView>>> {
    let bidder = visible_bidder(&state, &caller, &id)?;
    let mut targets: Vec<Target> = state
        .store
        .targets()?
        .into_iter()
        .filter(|t| t.bidder_id == bidder.id)
        .collect();
    targets.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
    Ok(Json(
        targets
            .into_iter()
            .map(|t| target_view(&state, t))
            .collect(),
    ))
}

fn visible_target(
    state: &ApiState,
    caller: &Caller,
    bidder_id: &str,
    target_id: &str,
) -> ApiResult<(Bidder, Target)> {
    let bidder = visible_bidder(state, caller, bidder_id)?;
    let target = state
        .store
        .target(target_id)?
        .filter(|t| t.bidder_id == bidder.id)
        .ok_or_else(|| ApiError::not_found("target"))?;
    Ok((bidder, target))
}

#[utoipa::path(put, path = "/v1/bidders/{id}/targets/{target_id}", tag = "bidders", request_body = TargetSpec,
    security(("bearer" = ["operator", "bidder"])),
    responses((status = 200, body = Target), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn update_target(
    State(state): State<ApiState>,
    caller: Caller,
    Path((id, target_id)): Path<(String, String)>,
    Body(spec): Body<TargetSpec>,
) -> ApiResult<Json<Target>> {
    let (bidder, old) = visible_target(&state, &caller, &id, &target_id)?;
    replace_target(&state, &bidder, old, spec).await
}

#[utoipa::path(patch, path = "/v1/bidders/{id}/targets/{target_id}", tag = "bidders",
    request_body(content = TargetSpec, content_type = "application/merge-patch+json"),
    security(("bearer" = ["operator", "bidder"])),
    responses((status = 200, body = Target)))]
async fn patch_target(
    State(state): State<ApiState>,
    caller: Caller,
    Path((id, target_id)): Path<(String, String)>,
    Body(changes): Body<serde_json::Value>,
) -> ApiResult<Json<Target>> {
    let (bidder, old) = visible_target(&state, &caller, &id, &target_id)?;
    let spec = patch::apply(&TargetSpec::from(&old), &changes)?;
    replace_target(&state, &bidder, old, spec).await
}

async fn replace_target(
    state: &ApiState,
    bidder: &Bidder,
    old: Target,
    spec: TargetSpec,
) -> ApiResult<Json<Target>> {
    let mut target = target_from(spec, old.id, bidder)?;
    target.created_at = old.created_at;
    state.names.resolve(&target.uri).await;
    state.store.put_target(&target)?;
    Ok(Json(target))
}

#[utoipa::path(delete, path = "/v1/bidders/{id}/targets/{target_id}", tag = "bidders",
    security(("bearer" = ["operator", "bidder"])),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn delete_target(
    State(state): State<ApiState>,
    caller: Caller,
    Path((id, target_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let (_, target) = visible_target(&state, &caller, &id, &target_id)?;
    if state.store.bids()?.iter().any(|b| b.target_id == target.id) {
        return Err(ApiError::conflict(
            "target.in_use",
            "bids still route to this target; delete them first",
        ));
    }
    state.store.delete_target(&target.id)?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BidSpec {
    pub campaign_id: String,
    pub target_id: String,
    /// Payout per billable call, micros of the campaign's currency.
    pub amount_micros: u64,
    #[serde(default)]
    pub min_quality: u8,
    /// Calls shorter than this are not billable (default 90).
    pub min_duration_s: Option<u32>,
    /// Calls per hour, day and month of `time_zone`.
    pub hourly_cap: Option<u32>,
    pub daily_cap: Option<u32>,
    pub monthly_cap: Option<u32>,
    /// Payout per hour, day and month of `time_zone`, micros.
    pub hourly_payout_cap_micros: Option<u64>,
    pub daily_payout_cap_micros: Option<u64>,
    pub monthly_payout_cap_micros: Option<u64>,
    /// IANA time zone of `schedule` and the caps (default `UTC`).
    pub time_zone: Option<String>,
    /// Hours of operation; absent or empty = always open.
    #[serde(default)]
    pub schedule: Vec<ScheduleWindow>,
    /// A caller seen within this many days (1 to 365) is not routed to the bid.
    pub duplicate_window_days: Option<u32>,
}

impl From<&Bid> for BidSpec {
    fn from(b: &Bid) -> Self {
        BidSpec {
            campaign_id: b.campaign_id.clone(),
            target_id: b.target_id.clone(),
            amount_micros: b.amount_micros,
            min_quality: b.min_quality,
            min_duration_s: Some(b.min_duration_s),
            hourly_cap: b.hourly_cap,
            daily_cap: b.daily_cap,
            monthly_cap: b.monthly_cap,
            hourly_payout_cap_micros: b.hourly_payout_cap_micros,
            daily_payout_cap_micros: b.daily_payout_cap_micros,
            monthly_payout_cap_micros: b.monthly_payout_cap_micros,
            time_zone: Some(b.time_zone.clone()),
            schedule: b.schedule.clone(),
            duplicate_window_days: b.duplicate_window_days,
        }
    }
}

fn check_schedule(time_zone: &str, schedule: &[ScheduleWindow]) -> ApiResult<()> {
    if jiff::tz::TimeZone::get(time_zone).is_err() {
        return Err(invalid(format!(
            "`time_zone` {time_zone:?} is not an IANA time zone such as America/New_York"
        )));
    }
    for window in schedule {
        if window.weekdays.is_empty() || window.weekdays.iter().any(|d| *d > 6) {
            return Err(invalid("schedule `weekdays` are 0 (Monday) to 6 (Sunday)"));
        }
        match (clock_minutes(&window.open), clock_minutes(&window.close)) {
            (Some(open), Some(close)) if open < close => {}
            _ => {
                return Err(invalid(
                    "schedule `open` and `close` are HH:MM with open before close",
                ));
            }
        }
    }
    Ok(())
}

fn bid_from(state: &ApiState, caller: &Caller, spec: BidSpec, id: String) -> ApiResult<Bid> {
    let target = state
        .store
        .target(&spec.target_id)?
        .filter(|t| caller.owns(&t.tenant_id))
        .ok_or_else(|| ApiError::unprocessable("target.not_found", "no such target of yours"))?;
    // The bid is the target's tenant's: the campaign must be open to it
    // (the auction asks the same at every call).
    let campaign = state
        .store
        .campaign(&spec.campaign_id)?
        .filter(|c| access::campaign_takes_bids_of(c, &target.tenant_id))
        .ok_or_else(|| {
            ApiError::unprocessable("campaign.not_found", "no such campaign open to you")
        })?;
    contract::MIN_QUALITY.check("min_quality", spec.min_quality.into())?;
    contract::AMOUNT_MICROS.check("amount_micros", spec.amount_micros)?;
    let min_duration_s = spec.min_duration_s.unwrap_or(DEFAULT_MIN_DURATION_S);
    contract::MIN_DURATION_S.check("min_duration_s", min_duration_s.into())?;
    let time_zone = spec.time_zone.unwrap_or_else(|| "UTC".to_owned());
    check_schedule(&time_zone, &spec.schedule)?;
    if let Some(days) = spec.duplicate_window_days {
        contract::WINDOW_DAYS.check("duplicate_window_days", days.into())?;
    }
    let caps = [
        ("hourly_cap", spec.hourly_cap.map(u64::from)),
        ("daily_cap", spec.daily_cap.map(u64::from)),
        ("monthly_cap", spec.monthly_cap.map(u64::from)),
        ("hourly_payout_cap_micros", spec.hourly_payout_cap_micros),
        ("daily_payout_cap_micros", spec.daily_payout_cap_micros),
        ("monthly_payout_cap_micros", spec.monthly_payout_cap_micros),
    ];
    for (name, cap) in caps {
        if let Some(cap) = cap {
            contract::CAP.check(name, cap)?;
        }
    }
    Ok(Bid {
        id,
        tenant_id: target.tenant_id.clone(),
        bidder_id: target.bidder_id.clone(),
        campaign_id: campaign.id,
        target_id: target.id,
        amount_micros: spec.amount_micros,
        min_quality: spec.min_quality,
        min_duration_s,
        hourly_cap: spec.hourly_cap,
        daily_cap: spec.daily_cap,
        monthly_cap: spec.monthly_cap,
        hourly_payout_cap_micros: spec.hourly_payout_cap_micros,
        daily_payout_cap_micros: spec.daily_payout_cap_micros,
        monthly_payout_cap_micros: spec.monthly_payout_cap_micros,
        time_zone,
        schedule: spec.schedule,
        duplicate_window_days: spec.duplicate_window_days,
        created_at: clock::unix_now(),
    })
}

fn visible_bid(state: &ApiState, caller: &Caller, id: &str) -> ApiResult<Bid> {
    state
        .store
        .bid(id)?
        .filter(|b| caller.owns(&b.tenant_id))
        .ok_or_else(|| ApiError::not_found("bid"))
}

#[utoipa::path(post, path = "/v1/bids", tag = "bids", request_body = BidSpec,
    security(("bearer" = ["operator", "bidder"])),
    responses((status = 201, body = Bid), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn create_bid(
    State(state): State<ApiState>,
    caller: Caller,
    Body(spec): Body<BidSpec>,
) -> ApiResult<(StatusCode, Json<Bid>)> {
    let bid = bid_from(&state, &caller, spec, new_id("bid")?)?;
    quota::check_one_more(
        Kind::Bids,
        &state.store.bids()?,
        |o| &o.tenant_id,
        &bid.tenant_id,
    )?;
    state.store.put_bid(&bid)?;
    Ok((StatusCode::CREATED, Json(bid)))
}

#[utoipa::path(get, path = "/v1/bids", tag = "bids",
    security(("bearer" = ["operator", "bidder"])),
    responses((status = 200, body = Vec<Bid>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn list_bids(State(state): State<ApiState>, caller: Caller) -> ApiResult<Json<Vec<Bid>>> {
    let mut bids: Vec<Bid> = state
        .store
        .bids()?
        .into_iter()
        .filter(|b| caller.owns(&b.tenant_id))
        .collect();
    bids.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
    Ok(Json(bids))
}

#[utoipa::path(get, path = "/v1/bids/{id}", tag = "bids",
    security(("bearer" = ["operator", "bidder"])),
    responses((status = 200, body = Bid), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_bid(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Bid>> {
    Ok(Json(visible_bid(&state, &caller, &id)?))
}

#[utoipa::path(put, path = "/v1/bids/{id}", tag = "bids", request_body = BidSpec,
    security(("bearer" = ["operator", "bidder"])),
    responses((status = 200, body = Bid), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn update_bid(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
    Body(spec): Body<BidSpec>,
) -> ApiResult<Json<Bid>> {
    let old = visible_bid(&state, &caller, &id)?;
    replace_bid(&state, &caller, old, spec)
}

#[utoipa::path(patch, path = "/v1/bids/{id}", tag = "bids",
    request_body(content = BidSpec, content_type = "application/merge-patch+json"),
    security(("bearer" = ["operator", "bidder"])),
    responses((status = 200, body = Bid)))]
async fn patch_bid(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
    Body(changes): Body<serde_json::Value>,
) -> ApiResult<Json<Bid>> {
    let old = visible_bid(&state, &caller, &id)?;
    let spec = patch::apply(&BidSpec::from(&old), &changes)?;
    replace_bid(&state, &caller, old, spec)
}

fn replace_bid(state: &ApiState, caller: &Caller, old: Bid, spec: BidSpec) -> ApiResult<Json<Bid>> {
    let mut bid = bid_from(state, caller, spec, old.id)?;
    bid.created_at = old.created_at;
    state.store.put_bid(&bid)?;
    Ok(Json(bid))
}

#[utoipa::path(delete, path = "/v1/bids/{id}", tag = "bids",
    security(("bearer" = ["operator", "bidder"])),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn delete_bid(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let bid = visible_bid(&state, &caller, &id)?;
    state.store.delete_bid(&bid.id)?;
    Ok(StatusCode::NO_CONTENT)
}
