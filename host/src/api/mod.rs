//! The HTTP API: axum handlers by resource, one `ApiError`, and an
//! OpenAPI document built from the same annotations as the router, so the two
//! cannot drift. axum types never leave this module.
//!
//! Every route under `/v1` authenticates with `Authorization: Bearer <key>`;
//! the roles a route admits are the scopes of its OpenAPI security entry.

mod bidders;
mod calls;
mod campaigns;
pub mod contract;
mod error;
mod extract;
pub mod gate;
mod patch;
mod policies;
mod system;
mod tenants;
pub mod view;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;

pub use error::{ApiError, ErrorBody};
pub use extract::key_hash;
pub use tenants::create_tenant_with_key;

use crate::lifecycle::PolicyLifecycle;
use crate::metrics::Metrics;
use crate::store::Store;

/// JSON bodies beyond this are refused with 413.
pub const JSON_BODY_LIMIT: usize = 256 << 10;

/// What every handler shares.
#[derive(Clone)]
pub struct ApiState {
    pub store: Arc<Store>,
    pub policies: Arc<PolicyLifecycle>,
    pub metrics: Arc<Metrics>,
    /// Pools in memory, loaded from the store on first use: a DNI assignment
    /// decides on them and writes only what changed. One assignment at a time.
    pub dni_pools: Arc<std::sync::Mutex<std::collections::HashMap<String, crate::dni::PoolState>>>,
    /// The market's live state (target places, caps, pauses), shared with
    /// the call servers: bidders read their targets' pauses from it.
    pub ledger: Arc<crate::auction::Ledger>,
    /// Target and fallback host names, resolved off the call path; the API
    /// resolves a name when a target or fallback naming it is saved.
    pub names: Arc<crate::names::Names>,
    /// The task behind `names`, stopped with the last clone of the state.
    pub resolver: Arc<crate::names::Resolver>,
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Plugboard", description = "Call routing for pay-per-call marketing: control plane"),
    modifiers(&BearerAuth),
    components(schemas(ErrorBody))
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// Every route with its OpenAPI description; the router and the document
/// are both made from this one list.
fn routes(upload_limit: usize) -> OpenApiRouter<ApiState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(system::routes())
        .merge(tenants::routes())
        .merge(campaigns::routes())
        .merge(bidders::routes())
        .merge(policies::routes(upload_limit))
        .merge(calls::routes())
}

/// The router, serving its own OpenAPI document at `/v1/openapi.json`.
/// Every described route is behind the gate ([`gate::admit`]), which
/// admits the roles its description lists.
pub fn router(state: ApiState) -> Router {
    let upload_limit = state.policies.engine().limits().component_bytes;
    let (router, openapi) = routes(upload_limit)
        .layer(DefaultBodyLimit::max(JSON_BODY_LIMIT))
        .split_for_parts();
    let openapi = contract::complete(openapi);
    let gate = gate::Gate {
        state: state.clone(),
        roles: Arc::new(gate::RouteRoles::from_openapi(&openapi)),
        rates: Arc::default(),
    };
    let openapi = Arc::new(openapi);
    router
        .route_layer(axum::middleware::from_fn_with_state(gate, gate::admit))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            durable_writes,
        ))
        .route(
            "/v1/openapi.json",
            axum::routing::get(move || {
                let openapi = openapi.clone();
                async move { axum::Json(openapi.as_ref().clone()) }
            }),
        )
        .fallback(|| async {
            ApiError::new(StatusCode::NOT_FOUND, "route.not_found", "no such route")
        })
        .layer(axum::middleware::from_fn(gate::json_errors))
        .layer(axum::middleware::from_fn_with_state(
            state.metrics.clone(),
            count_requests,
        ))
        .with_state(state)
}

/// `plugboard_http_requests_total`: by method, route template (bounded: an
/// unknown path counts as `unmatched`, never as itself) and status.
async fn count_requests(
    axum::extract::State(metrics): axum::extract::State<Arc<Metrics>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let method = match request.method().as_str() {
        known @ ("GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE" | "OPTIONS") => known,
        _ => "other",
    }
    .to_owned();
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or("unmatched", |p| p.as_str())
        .to_owned();
    let response = next.run(request).await;
    metrics.inc(
        "plugboard_http_requests_total",
        vec![
            ("method", method),
            ("route", route),
            ("status", response.status().as_u16().to_string()),
        ],
    );
    response
}

/// Marks a response whose write may reach the disk after it is sent (DNI
/// assignments: ephemeral, high-rate; sled flushes them within its interval).
#[derive(Clone, Copy)]
pub(crate) struct DeferredDurability;

/// A write is acknowledged only once it is on disk: a crash right after a
/// 2xx never loses what the client was told is stored.
async fn durable_writes(
    axum::extract::State(state): axum::extract::State<ApiState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let writes = request.method() != axum::http::Method::GET;
    let response = next.run(request).await;
    let deferred = response.extensions().get::<DeferredDurability>().is_some();
    if writes && !deferred && response.status().is_success() && state.store.durable().await.is_err()
    {
        return ApiError::internal("cannot flush the store after a write").into_response();
    }
    response
}

/// The OpenAPI document alone.
pub fn openapi() -> utoipa::openapi::OpenApi {
    contract::complete(routes(0).into_openapi())
}

/// A new object id: a prefix naming the kind, then 16 random hex digits.
pub(crate) fn new_id(prefix: &str) -> Result<String, ApiError> {
    Ok(format!("{prefix}_{}", random_hex(8)?))
}

/// A new API key: 32 random bytes, hex, with a recognisable prefix.
pub(crate) fn new_api_key() -> Result<String, ApiError> {
    Ok(format!("pbk_{}", random_hex(32)?))
}

fn random_hex(bytes: usize) -> Result<String, ApiError> {
    let mut buffer = vec![0u8; bytes];
    getrandom::fill(&mut buffer).map_err(ApiError::internal)?;
    Ok(hex::encode(buffer))
}
