//! Extractors whose rejections are `ApiError`s: JSON bodies (unknown fields,
//! wrong types and broken JSON each say so) and the caller's identity.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use super::ApiState;
use super::error::ApiError;
use crate::store::Role;

/// A JSON body; a failure to read it is a 400/413/415/422 in our error format.
pub struct Body<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(Body(value)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

fn json_rejection(rejection: JsonRejection) -> ApiError {
    let detail = rejection.body_text();
    match rejection {
        JsonRejection::JsonDataError(_) => ApiError::unprocessable("request.invalid_field", detail),
        JsonRejection::JsonSyntaxError(_) => {
            ApiError::bad_request("request.malformed_json", detail)
        }
        JsonRejection::MissingJsonContentType(_) => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "request.content_type",
            "expected `Content-Type: application/json`",
        ),
        _ if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "request.too_large",
            "the request body is too large",
        ),
        _ => ApiError::bad_request("request.unreadable", detail),
    }
}

/// A query string; a bad one is a 400 in our error format.
pub struct Params<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Params<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(Params(value)),
            Err(rejection) => Err(ApiError::bad_request(
                "request.invalid_query",
                rejection.body_text(),
            )),
        }
    }
}

/// The authenticated tenant making the request.
#[derive(Debug, Clone)]
pub struct Caller {
    pub tenant_id: String,
    pub role: Role,
    pub key_id: String,
}

impl Caller {
    /// Refuses callers whose role may not use the route.
    pub fn require(&self, roles: &[Role]) -> Result<(), ApiError> {
        if roles.contains(&self.role) {
            return Ok(());
        }
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "auth.forbidden_role",
            format!("a {:?} key may not use this route", self.role).to_lowercase(),
        ))
    }

    pub fn is_operator(&self) -> bool {
        self.role == Role::Operator
    }

    /// Whether the caller may see an object owned by `tenant_id`.
    pub fn owns(&self, tenant_id: &str) -> bool {
        self.is_operator() || self.tenant_id == tenant_id
    }
}

/// Hex SHA-256 of an API key: what the store keeps.
pub fn key_hash(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

impl FromRequestParts<ApiState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &ApiState,
    ) -> Result<Self, Self::Rejection> {
        let unauthorized = |message: &str| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "auth.unauthorized",
                message.to_owned(),
            )
        };
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .ok_or_else(|| unauthorized("missing `Authorization: Bearer <api key>`"))?;
        let key = header
            .to_str()
            .ok()
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .ok_or_else(|| unauthorized("the Authorization header must be `Bearer <api key>`"))?;
        let record = state
            .store
            .api_key_by_hash(&key_hash(key))?
            .ok_or_else(|| unauthorized("unknown API key"))?;
        let tenant = state
            .store
            .tenant(&record.tenant_id)?
            .ok_or_else(|| unauthorized("the key's tenant no longer exists"))?;
        Ok(Caller {
            tenant_id: tenant.id,
            role: tenant.role,
            key_id: record.id,
        })
    }
}
