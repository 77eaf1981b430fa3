//! Policies: upload (the body is the component), versions, deployment
//! (active, canary, shadow, failure mode, gates), rollback, dry-run and
//! replay jobs.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{Body, Caller, Params};
use super::{ApiState, contract, new_id};
use crate::access::quota::{self, Kind};
use crate::clock;
use crate::lifecycle::{DeploymentSpec, LifecycleError, ReplayGate};
use crate::model::{
    CanarySpec, DemotionRule, DeploymentRecord, FailureMode, Policy, PolicyVersion, Role,
    SampleInput, ShadowAgreement, TestVector, World,
};
use crate::policy::{LoadError, SampleReport};
use crate::replay::{KvSource, ReplayJob, ReplayRange};

/// Routes; `upload_limit` is the component size limit (uploads get one more
/// byte of room so that the runtime, not the body limit, names the problem).
pub(super) fn routes(upload_limit: usize) -> OpenApiRouter<ApiState> {
    let uploads = OpenApiRouter::new()
        .routes(routes!(upload_policy, list_policies))
        .routes(routes!(add_version, list_versions))
        .layer(DefaultBodyLimit::max(upload_limit + 1));
    OpenApiRouter::new()
        .merge(uploads)
        .routes(routes!(get_policy))
        .routes(routes!(get_deployment, put_deployment))
        .routes(routes!(rollback))
        .routes(routes!(dry_run))
        .routes(routes!(replay_version))
        .routes(routes!(get_replay))
        .routes(routes!(get_test_vectors, put_test_vectors))
}

fn lifecycle_error(e: LifecycleError) -> ApiError {
    match e {
        LifecycleError::Load(load) => load_error(&load),
        LifecycleError::UnknownVersion(v) => ApiError::unprocessable(
            "policy.version_not_found",
            format!("no version {v} of this policy"),
        ),
        LifecycleError::Deployment(d) => {
            ApiError::unprocessable("deployment.invalid", d.to_string())
        }
        LifecycleError::NoActive => ApiError::unprocessable("deployment.invalid", e.to_string()),
        LifecycleError::NoHistory => ApiError::conflict("deployment.no_history", e.to_string()),
        LifecycleError::Store(s) => s.into(),
        LifecycleError::Worker(w) => ApiError::internal(w),
        LifecycleError::Busy => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "policy.compile_busy",
            e.to_string(),
        ),
        LifecycleError::SamplesBusy => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "policy.busy",
            e.to_string(),
        ),
        LifecycleError::TestVector { .. } => {
            ApiError::unprocessable("deployment.test_vector_failed", e.to_string())
        }
        LifecycleError::ReplayGate { .. } => {
            ApiError::unprocessable("deployment.replay_gate_failed", e.to_string())
        }
    }
}

fn load_error(e: &LoadError) -> ApiError {
    let code = match e {
        LoadError::TooLarge { .. } => {
            return ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "policy.too_large",
                e.to_string(),
            );
        }
        LoadError::NotWasm => "policy.not_wasm",
        LoadError::CoreModule => "policy.not_a_component",
        LoadError::Invalid(_) => "policy.invalid",
        LoadError::ForbiddenImport { .. } => "policy.forbidden_import",
        LoadError::WrongWorld { .. } => "policy.wrong_world",
        LoadError::TooComplex { .. } => "policy.too_complex",
        LoadError::CompileBudget(_) => "policy.compile_budget",
        LoadError::Compiler(message) => return ApiError::internal(message),
    };
    ApiError::unprocessable(code, e.to_string())
}

fn upload_bytes(body: Result<Bytes, BytesRejection>) -> ApiResult<Vec<u8>> {
    match body {
        Ok(bytes) if bytes.is_empty() => Err(ApiError::bad_request(
            "policy.empty",
            "the body must be the component's bytes",
        )),
        Ok(bytes) => Ok(bytes.to_vec()),
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "policy.too_large",
                "the component is larger than the upload limit",
            ))
        }
        Err(rejection) => Err(ApiError::bad_request(
            "request.unreadable",
            rejection.body_text(),
        )),
    }
}

fn visible_policy(state: &ApiState, caller: &Caller, id: &str) -> ApiResult<Policy> {
    state
        .store
        .policy(id)?
        .filter(|p| caller.actor().may_read_policy(p))
        .ok_or_else(|| ApiError::not_found("policy"))
}

/// A policy the caller may change: its own (or any, for an operator).
fn owned_policy(state: &ApiState, caller: &Caller, id: &str) -> ApiResult<Policy> {
    state
        .store
        .policy(id)?
        .filter(|p| caller.owns(&p.tenant_id))
        .ok_or_else(|| ApiError::not_found("policy"))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct UploadQuery {
    /// scorer, bidder or selector.
    pub world: World,
    /// A name to recognise the policy by (default: the world).
    pub name: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct Uploaded {
    /// The policy's id.
    pub id: String,
    /// The version's name (first 16 hex digits of its SHA-256).
    pub version: String,
    pub sha256: String,
    pub world: World,
    pub size: u64,
}

/// Uploads a component as a new policy; the body is the component's bytes.
/// It is validated and compiled before the response; rejections say why.
#[utoipa::path(post, path = "/v1/policies", tag = "policies", params(UploadQuery),
    request_body(content = Vec<u8>, content_type = "application/wasm"),
    security(("bearer" = ["operator", "marketer", "bidder"])),
    responses((status = 201, body = Uploaded), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 413, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn upload_policy(
    State(state): State<ApiState>,
    caller: Caller,
    Params(query): Params<UploadQuery>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<(StatusCode, Json<Uploaded>)> {
    if !caller.actor().may_upload(query.world) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "auth.forbidden_role",
            format!(
                "a {:?} key may not upload a {} policy",
                caller.role, query.world
            )
            .to_lowercase(),
        ));
    }
    let bytes = upload_bytes(body)?;
    quota::check_one_more(
        Kind::Policies,
        &state.store.policies()?,
        |o| &o.tenant_id,
        &caller.tenant_id,
    )?;
    let name = query.name.unwrap_or_else(|| query.world.to_string());
    contract::NAME.check_text("name", &name)?;
    let policy = Policy {
        id: new_id("pol")?,
        tenant_id: caller.tenant_id.clone(),
        name,
        world: query.world,
        shared: false,
        created_at: clock::unix_now(),
    };
    let version = store_version(&state, &policy, bytes).await?;
    Ok((StatusCode::CREATED, Json(uploaded(&policy, version))))
}

/// Validates, compiles and stores a version; counts the upload either way.
async fn store_version(
    state: &ApiState,
    policy: &Policy,
    bytes: Vec<u8>,
) -> ApiResult<PolicyVersion> {
    let outcome = state.policies.add_version(policy, bytes).await;
    let result = if outcome.is_ok() { "ok" } else { "rejected" };
    state.metrics.inc(
        "plugboard_policy_uploads_total",
        vec![
            ("world", policy.world.to_string()),
            ("result", result.to_owned()),
        ],
    );
    outcome.map_err(lifecycle_error)
}

fn uploaded(policy: &Policy, version: PolicyVersion) -> Uploaded {
    Uploaded {
        id: policy.id.clone(),
        version: version.version,
        sha256: version.sha256,
        world: policy.world,
        size: version.size,
    }
}

#[utoipa::path(get, path = "/v1/policies", tag = "policies",
    security(("bearer" = ["operator", "marketer", "bidder"])),
    responses((status = 200, body = Vec<Policy>), (status = 401, body = ErrorBody)))]
async fn list_policies(
    State(state): State<ApiState>,
    caller: Caller,
) -> ApiResult<Json<Vec<Policy>>> {
    let mut policies: Vec<Policy> = state
        .store
        .policies()?
        .into_iter()
        .filter(|p| caller.actor().may_read_policy(p))
        .collect();
    policies.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
    Ok(Json(policies))
}

#[utoipa::path(get, path = "/v1/policies/{id}", tag = "policies",
    security(("bearer" = ["operator", "marketer", "bidder"])),
    responses((status = 200, body = Policy), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_policy(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Policy>> {
    Ok(Json(visible_policy(&state, &caller, &id)?))
}

/// Uploads another version of a policy; the body is the component's bytes.
#[utoipa::path(post, path = "/v1/policies/{id}/versions", tag = "policies",
    request_body(content = Vec<u8>, content_type = "application/wasm"),
    security(("bearer" = ["operator", "marketer", "bidder"])),
    responses((status = 201, body = Uploaded), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 413, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn add_version(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<(StatusCode, Json<Uploaded>)> {
    let policy = owned_policy(&state, &caller, &id)?;
    let bytes = upload_bytes(body)?;
    quota::check(
        Kind::Versions,
        state.store.policy_versions(&policy.id)?.len(),
        1,
    )?;
    let version = store_version(&state, &policy, bytes).await?;
    Ok((StatusCode::CREATED, Json(uploaded(&policy, version))))
}

#[utoipa::path(get, path = "/v1/policies/{id}/versions", tag = "policies",
    security(("bearer" = ["operator", "marketer", "bidder"])),
    responses((status = 200, body = Vec<PolicyVersion>), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn list_versions(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<PolicyVersion>>> {
    let policy = visible_policy(&state, &caller, &id)?;
    Ok(Json(state.store.policy_versions(&policy.id)?))
}

fn empty_deployment(policy_id: &str) -> DeploymentRecord {
    DeploymentRecord {
        policy_id: policy_id.to_owned(),
        active: None,
        canary: None,
        shadow: None,
        failure_mode: FailureMode::Fallback,
        history: vec![],
        updated_at: 0,
        demotion: DemotionRule::default(),
        demotions: vec![],
    }
}

/// A deployment as stored, with how its shadow agrees with the version
/// that served (on this node, since the deployment was made).
#[derive(Serialize, ToSchema)]
pub struct DeploymentView {
    #[serde(flatten)]
    pub deployment: DeploymentRecord,
    /// None without a shadow.
    pub shadow_agreement: Option<ShadowAgreement>,
}

#[utoipa::path(get, path = "/v1/policies/{id}/deployment", tag = "policies",
    security(("bearer" = ["operator", "marketer", "bidder"])),
    responses((status = 200, body = DeploymentView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_deployment(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<DeploymentView>> {
    let policy = visible_policy(&state, &caller, &id)?;
    let deployment = state
        .store
        .deployment(&policy.id)?
        .unwrap_or_else(|| empty_deployment(&policy.id));
    let shadow_agreement = state
        .policies
        .registry()
        .get(&policy.id)
        .and_then(|serving| serving.shadow_agreement());
    Ok(Json(DeploymentView {
        deployment,
        shadow_agreement,
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeploymentRequest {
    /// The version serving calls; null takes the policy out of service.
    pub active: Option<String>,
    /// A version taking `percent` of calls, chosen per call id.
    #[serde(default)]
    pub canary: Option<CanarySpec>,
    /// A version run beside the active one, recorded, never routing.
    #[serde(default)]
    pub shadow: Option<String>,
    #[serde(default)]
    pub failure_mode: FailureMode,
    /// When a failing canary or shadow is taken out on its own (default:
    /// over 50 % of its last 100 invocations failed).
    #[serde(default)]
    pub demotion: DemotionRule,
    /// Refuses a version new to serving (active or canary) unless a replay
    /// of the last calls changes few enough winners. Marketers and the
    /// operator; a replay reads rivals' bids, so not bidders.
    #[serde(default)]
    pub replay_gate: Option<ReplayGateSpec>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplayGateSpec {
    /// The last calls of the policy's tenant (every campaign's for the
    /// operator) to replay (default 1,000).
    #[serde(default = "default_gate_calls")]
    pub calls: u32,
    /// Refused when the first bid to ring changes on more of them.
    pub max_winners_changed_percent: u8,
}

fn default_gate_calls() -> u32 {
    1000
}

/// Activates versions atomically: calls in flight finish on the version they
/// started with. Each version new to serving passes its test vectors and,
/// when asked, the replay gate; a refusal names the gate and the version.
#[utoipa::path(put, path = "/v1/policies/{id}/deployment", tag = "policies", request_body = DeploymentRequest,
    security(("bearer" = ["operator", "marketer", "bidder"])),
    responses((status = 200, body = DeploymentRecord), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn put_deployment(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
    Body(request): Body<DeploymentRequest>,
) -> ApiResult<Json<DeploymentRecord>> {
    let policy = owned_policy(&state, &caller, &id)?;
    contract::DEMOTION_WINDOW.check("demotion.window", request.demotion.window.into())?;
    contract::PERCENT.check(
        "demotion.max_failure_percent",
        request.demotion.max_failure_percent.into(),
    )?;
    let replay_gate = match request.replay_gate {
        None => None,
        Some(gate) => {
            contract::REPLAY_LIMIT.check("replay_gate.calls", gate.calls.into())?;
            contract::PERCENT.check(
                "replay_gate.max_winners_changed_percent",
                gate.max_winners_changed_percent.into(),
            )?;
            Some(ReplayGate {
                calls: gate.calls as usize,
                max_winners_changed_percent: gate.max_winners_changed_percent,
                calls_of: replay_reader(&caller)?,
            })
        }
    };
    let spec = DeploymentSpec {
        active: request.active,
        canary: request.canary,
        shadow: request.shadow,
        failure_mode: request.failure_mode,
        demotion: request.demotion,
        replay_gate,
    };
    Ok(Json(
        state
            .policies
            .deploy(&policy, spec)
            .await
            .map_err(lifecycle_error)?,
    ))
}

/// Makes the previously active version active again.
#[utoipa::path(post, path = "/v1/policies/{id}/rollback", tag = "policies",
    security(("bearer" = ["operator", "marketer", "bidder"])),
    responses((status = 200, body = DeploymentRecord), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn rollback(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<DeploymentRecord>> {
    let policy = owned_policy(&state, &caller, &id)?;
    Ok(Json(
        state
            .policies
            .rollback(&policy)
            .await
            .map_err(lifecycle_error)?,
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplayRequest {
    /// Only this campaign's calls (a marketer's own).
    pub campaign_id: Option<String>,
    /// Calls received at or after this time, Unix seconds.
    pub since: Option<i64>,
    /// Calls received before this time, Unix seconds.
    pub until: Option<i64>,
    /// Calls at most, oldest first (default 1,000).
    pub limit: Option<u32>,
}

/// Whose calls `caller` may replay: none named for the operator (every
/// campaign's), else the caller's own campaigns'. A bidder may not: a
/// replay's report names rival bids.
fn replay_reader(caller: &Caller) -> ApiResult<Option<String>> {
    match caller.role {
        Role::Operator => Ok(None),
        Role::Marketer => Ok(Some(caller.tenant_id.clone())),
        _ => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "auth.forbidden_role",
            "a bidder key may not replay calls: a replay reads rival bids",
        )),
    }
}

/// Starts a replay of stored calls through a version, as a job: what it
/// would have changed (scores, first bids, payout), with no side effect,
/// over the calls of the caller's campaigns (every campaign's for the
/// operator). The job's progress and report are at the `Location` given,
/// `GET /v1/replays/{id}`.
#[utoipa::path(post, path = "/v1/policies/{id}/versions/{version}/replay", tag = "policies",
    request_body = ReplayRequest,
    security(("bearer" = ["operator", "marketer"])),
    responses((status = 202, body = ReplayJob, headers(("location" = String, description = "The job: `/v1/replays/{id}`"))), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody), (status = 429, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
async fn replay_version(
    State(state): State<ApiState>,
    caller: Caller,
    Path((id, version)): Path<(String, String)>,
    Body(request): Body<ReplayRequest>,
) -> ApiResult<impl IntoResponse> {
    let policy = owned_policy(&state, &caller, &id)?;
    let reader = replay_reader(&caller)?;
    let limit = request.limit.unwrap_or(1000);
    contract::REPLAY_LIMIT.check("limit", limit.into())?;
    if let (Some(since), Some(until)) = (request.since, request.until)
        && until < since
    {
        return Err(ApiError::unprocessable(
            "request.invalid_field",
            "`until` is before `since`",
        ));
    }
    if let Some(campaign_id) = &request.campaign_id {
        let visible = state
            .store
            .campaign(campaign_id)?
            .is_some_and(|c| caller.owns(&c.tenant_id));
        if !visible {
            return Err(ApiError::unprocessable(
                "request.unknown_campaign",
                format!("no campaign {campaign_id}"),
            ));
        }
    }
    let compiled = state
        .policies
        .version(&policy, &version)
        .await
        .map_err(|e| match e {
            LifecycleError::UnknownVersion(_) => ApiError::not_found("version"),
            other => lifecycle_error(other),
        })?;
    let range = ReplayRange {
        campaign_id: request.campaign_id,
        since_ms: request.since.map(|s| s.saturating_mul(1000)),
        until_ms: request.until.map(|s| s.saturating_mul(1000)),
        limit: limit as usize,
        newest: false,
        kv: KvSource::Policy {
            policy_id: policy.id.clone(),
            owner_tenant: policy.tenant_id.clone(),
        },
    };
    let job = state
        .policies
        .start_replay(
            &caller.tenant_id,
            new_id("rpl")?,
            (&policy.id, &version),
            compiled,
            range,
            move |record| reader.as_ref().is_none_or(|t| &record.tenant_id == t),
        )
        .map_err(|e| {
            ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "replay.too_many",
                e.to_string(),
            )
        })?;
    let location =
        HeaderValue::from_str(&format!("/v1/replays/{}", job.id)).map_err(ApiError::internal)?;
    Ok((
        StatusCode::ACCEPTED,
        [(header::LOCATION, location)],
        Json(job),
    ))
}

/// A replay job started by the caller: `queued`, `running` (with the calls
/// read so far), then `done` with its report or `failed` with why.
/// Jobs live in the server's memory, the last ten per tenant.
#[utoipa::path(get, path = "/v1/replays/{id}", tag = "policies",
    security(("bearer" = ["operator", "marketer"])),
    responses((status = 200, body = ReplayJob), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn get_replay(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<ReplayJob>> {
    state
        .policies
        .replay_job(&caller.tenant_id, &id)
        .map(Json)
        .ok_or_else(|| ApiError::not_found("replay"))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DryRunRequest {
    /// The version to run; default the active one.
    pub version: Option<String>,
    pub input: SampleInput,
}

/// Runs a version on a sample, in the call sandbox, with a throwaway
/// key-value store: result, fuel, time, memory and guest logs.
#[utoipa::path(post, path = "/v1/policies/{id}/dry-run", tag = "policies", request_body = DryRunRequest,
    security(("bearer" = ["operator", "marketer", "bidder"])),
    responses((status = 200, body = SampleReport), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn dry_run(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
    Body(request): Body<DryRunRequest>,
) -> ApiResult<Json<SampleReport>> {
    let policy = visible_policy(&state, &caller, &id)?;
    let version = match request.version {
        Some(v) => v,
        None => state
            .store
            .deployment(&policy.id)?
            .and_then(|d| d.active)
            .ok_or_else(|| {
                ApiError::unprocessable(
                    "deployment.none",
                    "no active version; name one in `version`",
                )
            })?,
    };
    let compiled = state
        .policies
        .version(&policy, &version)
        .await
        .map_err(lifecycle_error)?;
    let report = state
        .policies
        .dry_run(&caller.tenant_id, compiled, request.input)
        .await
        .map_err(lifecycle_error)?
        .map_err(|e| ApiError::unprocessable("request.invalid_field", e.to_string()))?;
    let outcome = report
        .failure
        .as_ref()
        .map_or("ok".to_owned(), failure_kind);
    let elapsed = std::time::Duration::from_secs_f64(report.elapsed_us / 1e6);
    state
        .metrics
        .policy_invocation(&policy.id, &version, "dry_run", &outcome, elapsed);
    Ok(Json(report))
}

fn visible_version(state: &ApiState, policy: &Policy, version: &str) -> ApiResult<PolicyVersion> {
    state
        .store
        .policy_version(&policy.id, version)?
        .ok_or_else(|| ApiError::not_found("version"))
}

#[utoipa::path(get, path = "/v1/policies/{id}/versions/{version}/test-vectors", tag = "policies",
    security(("bearer" = ["operator", "marketer", "bidder"])),
    responses((status = 200, body = Vec<TestVector>), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_test_vectors(
    State(state): State<ApiState>,
    caller: Caller,
    Path((id, version)): Path<(String, String)>,
) -> ApiResult<Json<Vec<TestVector>>> {
    let policy = visible_policy(&state, &caller, &id)?;
    Ok(Json(
        visible_version(&state, &policy, &version)?.test_vectors,
    ))
}

/// Sets the test vectors a version must pass before it may serve calls. They
/// run (in the sandbox) at every activation of the version, as active or canary.
#[utoipa::path(put, path = "/v1/policies/{id}/versions/{version}/test-vectors", tag = "policies",
    request_body = Vec<TestVector>,
    security(("bearer" = ["operator", "marketer", "bidder"])),
    responses((status = 200, body = Vec<TestVector>), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn put_test_vectors(
    State(state): State<ApiState>,
    caller: Caller,
    Path((id, version)): Path<(String, String)>,
    Body(vectors): Body<Vec<TestVector>>,
) -> ApiResult<Json<Vec<TestVector>>> {
    let policy = owned_policy(&state, &caller, &id)?;
    let mut record = visible_version(&state, &policy, &version)?;
    contract::TEST_VECTORS.check("test vectors", vectors.len() as u64)?;
    record.test_vectors = vectors;
    state.store.put_test_vectors(&record)?;
    Ok(Json(record.test_vectors))
}

/// The snake_case name of a failure, as metrics and traces label it.
fn failure_kind(failure: &crate::policy::PolicyFailure) -> String {
    failure.kind().to_owned()
}
