//! The gate every route passes: who may call it, decided in one place from
//! the OpenAPI document the routes are described by. An operation's security
//! scopes are the roles it admits; an operation with no security entry is
//! public (`/healthz`, `/metrics`); a route the document does not describe
//! is refused for everyone. A route added later is therefore closed until
//! its description says who may call it.
//!
//! Also here: the JSON error body on every status, including the ones axum
//! and the router answer on their own (unknown route, wrong method, a path
//! that does not decode), and the bound on the request target.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::ApiState;
use super::error::ApiError;
use super::extract::authenticate;
use crate::model::Role;
use crate::rate::{Bucket, Rate};

/// Longest request target (path and query) accepted, bytes; nginx's default
/// header buffer is the same size.
pub const MAX_REQUEST_TARGET_BYTES: usize = 8 << 10;

/// Who may call one operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admits {
    Anyone,
    Roles(Vec<Role>),
}

/// Each operation's admitted roles, by method and path template.
#[derive(Debug, Default)]
pub struct RouteRoles(HashMap<(Method, String), Admits>);

impl RouteRoles {
    /// Reads the roles from the document's security entries (the `bearer`
    /// scheme's scopes).
    pub fn from_openapi(openapi: &utoipa::openapi::OpenApi) -> Self {
        let document = serde_json::to_value(openapi).unwrap_or_default();
        let mut roles = HashMap::new();
        let Some(paths) = document["paths"].as_object() else {
            return RouteRoles(roles);
        };
        for (path, item) in paths {
            let Some(operations) = item.as_object() else {
                continue;
            };
            for (method, operation) in operations {
                let Ok(method) = method.to_ascii_uppercase().parse::<Method>() else {
                    continue;
                };
                let admits = match operation["security"].as_array() {
                    None => Admits::Anyone,
                    Some(requirements) => Admits::Roles(
                        requirements
                            .iter()
                            .filter_map(|r| r["bearer"].as_array())
                            .flatten()
                            .filter_map(|scope| serde_json::from_value::<Role>(scope.clone()).ok())
                            .collect(),
                    ),
                };
                roles.insert((method, path.clone()), admits);
            }
        }
        RouteRoles(roles)
    }

    /// Who may call `method` on `path`; `HEAD` is `GET` without the body,
    /// as the router answers it.
    pub fn admits(&self, method: &Method, path: &str) -> Option<&Admits> {
        let method = if method == Method::HEAD {
            Method::GET
        } else {
            method.clone()
        };
        self.0.get(&(method, path.to_owned()))
    }

    /// The methods described for `path`, for `405`'s `Allow`.
    fn methods_of(&self, path: &str) -> Vec<&Method> {
        let mut methods: Vec<&Method> = self
            .0
            .keys()
            .filter(|(_, p)| p == path)
            .map(|(m, _)| m)
            .collect();
        methods.sort_by_key(|m| m.as_str());
        methods
    }
}

/// Requests one API key may make per second, sustained, and in a burst.
pub const REQUESTS_PER_SECOND: f64 = 200.0;
pub const REQUEST_BURST: f64 = 1000.0;

/// What the gate needs: the API's state, the table and each key's rate.
#[derive(Clone)]
pub struct Gate {
    pub state: ApiState,
    pub roles: Arc<RouteRoles>,
    pub rates: Arc<Rates>,
}

/// A token bucket per API key: one tenant's script cannot take the API's
/// time from the others.
#[derive(Debug, Default)]
pub struct Rates(std::sync::Mutex<HashMap<String, Bucket>>);

const API_RATE: Rate = Rate {
    per_second: REQUESTS_PER_SECOND,
    burst: REQUEST_BURST,
};

impl Rates {
    /// Takes one request from `key`'s bucket at `now`; false when empty.
    pub fn take(&self, key: &str, now: std::time::Instant) -> bool {
        let mut buckets = self.0.lock().unwrap_or_else(|p| p.into_inner());
        buckets
            .entry(key.to_owned())
            .or_insert_with(|| Bucket::full(&API_RATE, now))
            .take(&API_RATE, now)
    }
}

/// Authenticates the caller and checks its role against the route's before
/// any handler runs; the handler finds the [`super::extract::Caller`] in the
/// request.
pub async fn admit(State(gate): State<Gate>, mut request: Request, next: Next) -> Response {
    let path = request
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned())
        .unwrap_or_default();
    let roles = match gate.roles.admits(request.method(), &path) {
        Some(Admits::Anyone) => return next.run(request).await,
        Some(Admits::Roles(roles)) => roles,
        None => return undescribed(&gate.roles, &path),
    };
    let caller = match authenticate(&gate.state, request.headers()) {
        Ok(caller) => caller,
        Err(error) => return error.into_response(),
    };
    if !gate.rates.take(&caller.key_id, crate::clock::now()) {
        return ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate.limited",
            format!("more than {REQUESTS_PER_SECOND} requests a second with this key"),
        )
        .into_response();
    }
    if !roles.contains(&caller.role) {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "auth.forbidden_role",
            format!("a {:?} key may not use this route", caller.role).to_lowercase(),
        )
        .into_response();
    }
    request.extensions_mut().insert(caller);
    next.run(request).await
}

/// A method the path's description does not list: `405` when the path has
/// others, and a path with no description at all admits no one.
fn undescribed(roles: &RouteRoles, path: &str) -> Response {
    let methods = roles.methods_of(path);
    if methods.is_empty() {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "auth.forbidden_role",
            "this route admits no role",
        )
        .into_response();
    }
    let allow: Vec<&str> = methods.iter().map(|m| m.as_str()).collect();
    let mut response = ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "route.method_not_allowed",
        format!("this route takes {}", allow.join(", ")),
    )
    .into_response();
    if let Ok(value) = HeaderValue::from_str(&allow.join(", ")) {
        response.headers_mut().insert(header::ALLOW, value);
    }
    response
}

/// Every error leaves in the `{"error": {"code", "message"}}` form, whoever
/// answered it; and a request target beyond the bound is refused first.
pub async fn json_errors(request: Request, next: Next) -> Response {
    let target = request
        .uri()
        .path_and_query()
        .map_or(0, |p| p.as_str().len());
    if target > MAX_REQUEST_TARGET_BYTES {
        return ApiError::new(
            StatusCode::URI_TOO_LONG,
            "request.uri_too_long",
            format!("the request target is longer than {MAX_REQUEST_TARGET_BYTES} bytes"),
        )
        .into_response();
    }
    let response = next.run(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|t| t.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let said = axum::body::to_bytes(body, 4096).await.unwrap_or_default();
    let said = String::from_utf8_lossy(&said).trim().to_owned();
    let message = if said.is_empty() {
        status.canonical_reason().unwrap_or("error").to_lowercase()
    } else {
        said
    };
    let error = ApiError::new(status, code_of(status), message).into_response();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Response::from_parts(parts, error.into_body())
}

/// The stable code of an error the handlers did not answer themselves.
fn code_of(status: StatusCode) -> &'static str {
    match status {
        StatusCode::NOT_FOUND => "route.not_found",
        StatusCode::METHOD_NOT_ALLOWED => "route.method_not_allowed",
        StatusCode::BAD_REQUEST => "request.invalid",
        StatusCode::PAYLOAD_TOO_LARGE => "request.too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "request.content_type",
        StatusCode::UNPROCESSABLE_ENTITY => "request.invalid_field",
        StatusCode::SERVICE_UNAVAILABLE => "unavailable",
        status if status.is_server_error() => "internal",
        _ => "request.refused",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_come_from_the_document_and_an_undescribed_route_admits_no_one() {
        let roles = RouteRoles::from_openapi(&super::super::openapi());
        assert_eq!(
            roles.admits(&Method::GET, "/healthz"),
            Some(&Admits::Anyone)
        );
        assert_eq!(
            roles.admits(&Method::POST, "/v1/tenants"),
            Some(&Admits::Roles(vec![Role::Operator]))
        );
        assert_eq!(
            roles.admits(&Method::GET, "/v1/calls/{id}"),
            Some(&Admits::Roles(vec![
                Role::Operator,
                Role::Marketer,
                Role::Bidder
            ]))
        );
        assert_eq!(roles.admits(&Method::GET, "/v1/added-later"), None);
        let rates = Rates::default();
        let now = crate::clock::now();
        let burst = (0..1000).take_while(|_| rates.take("key", now)).count();
        assert_eq!(burst as f64, REQUEST_BURST);
        assert!(rates.take("other key", now), "each key has its own bucket");
        assert!(
            rates.take("key", now + std::time::Duration::from_millis(100)),
            "it refills"
        );
        assert!(undescribed(&roles, "/v1/added-later").status() == StatusCode::FORBIDDEN);
        let wrong_method = undescribed(&roles, "/v1/tenants");
        assert_eq!(wrong_method.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(
            wrong_method
                .headers()
                .get(header::ALLOW)
                .and_then(|v| v.to_str().ok()),
            Some("GET, POST")
        );
    }
}
