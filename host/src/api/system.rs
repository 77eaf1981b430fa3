//! `/healthz` and `/metrics`.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::ApiState;

pub(super) fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(metrics))
}

/// Liveness: the process serves HTTP and its store answers.
#[utoipa::path(get, path = "/healthz", tag = "system", responses((status = 200, body = String)))]
async fn healthz(State(state): State<ApiState>) -> impl IntoResponse {
    match state.store.tenants() {
        Ok(_) => (axum::http::StatusCode::OK, "ok"),
        Err(_) => (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "store unavailable",
        ),
    }
}

/// Prometheus text exposition of the host's metrics, for the operator
/// alone: its series name every tenant's policies, bidders and targets.
#[utoipa::path(get, path = "/metrics", tag = "system",
    security(("bearer" = ["operator"])),
    responses((status = 200, body = String)))]
async fn metrics(State(state): State<ApiState>) -> impl IntoResponse {
    // Deployments are read from the store at scrape time, so the figures are
    // right after a restart and after every change.
    for family in [
        "plugboard_policy_deployment_active",
        "plugboard_policy_deployment_canary_percent",
        "plugboard_policy_deployment_shadow",
    ] {
        state.metrics.clear_gauges(family);
    }
    for deployment in state.store.deployments().unwrap_or_default() {
        let series = |version: &str| {
            vec![
                ("policy", deployment.policy_id.clone()),
                ("version", version.to_owned()),
            ]
        };
        if let Some(active) = &deployment.active {
            state
                .metrics
                .set_gauge("plugboard_policy_deployment_active", series(active), 1);
        }
        if let Some(canary) = &deployment.canary {
            let percent = i64::from(canary.percent);
            state.metrics.set_gauge(
                "plugboard_policy_deployment_canary_percent",
                series(&canary.version),
                percent,
            );
        }
        if let Some(shadow) = &deployment.shadow {
            state
                .metrics
                .set_gauge("plugboard_policy_deployment_shadow", series(shadow), 1);
        }
    }
    let policies = names(state.store.policies(), |p| Some((p.id, p.name)));
    let bidders = names(state.store.bidders(), |b| Some((b.id, b.name)));
    let targets = names(state.store.targets(), |t| Some((t.id, t.name?)));
    let name_of = |label: &str, id: &str| match label {
        "policy" => policies.get(id).cloned(),
        "bidder" => bidders.get(id).cloned(),
        "target" => targets.get(id).cloned(),
        _ => None,
    };
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render_named(&name_of),
    )
}

/// Names by id of what `rows` holds (nothing when the store cannot be read:
/// the series still show, without names).
fn names<T>(
    rows: Result<Vec<T>, crate::store::StoreError>,
    id_and_name: impl Fn(T) -> Option<(String, String)>,
) -> std::collections::HashMap<String, String> {
    rows.unwrap_or_default()
        .into_iter()
        .filter_map(id_and_name)
        .collect()
}
