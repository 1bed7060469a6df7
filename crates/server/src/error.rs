//! The one error type of the HTTP edge. Every failure answers in the one documented shape:
//! `{"error": code, "message": text, "hint": text|null, "details": {...}}`; internal causes are
//! logged once here and never put in a body.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use latchkey_core::{CoreError, StoreError};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};

/// The error body every endpoint answers with.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// A stable machine code (`not_found`, `invalid_input`, `verification_failed`, …).
    pub error: String,
    /// What went wrong, for a person.
    pub message: String,
    /// What to do about it, when there is something to do.
    pub hint: Option<String>,
    #[schema(value_type = Object)]
    pub details: Value,
}

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: String,
    pub message: String,
    pub hint: Option<String>,
    pub details: Value,
    /// Seconds for a `Retry-After` header (429 and 503 answers).
    pub retry_after: Option<u32>,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message, self.code)
    }
}

impl std::error::Error for ApiError {}

impl ApiError {
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            code: code.to_string(),
            message: message.into(),
            hint: None,
            details: json!({}),
            retry_after: None,
        }
    }

    pub fn retry_after(mut self, secs: u32) -> Self {
        self.retry_after = Some(secs);
        self
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn details(mut self, details: Value) -> Self {
        self.details = details;
        self
    }

    pub fn not_found(what: &str, key: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{what} `{key}` was not found"),
        )
    }

    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_input", message)
            .details(json!({ "field": field }))
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "an internal error occurred; the server log has the details",
        )
    }
}

impl From<CoreError> for ApiError {
    fn from(e: CoreError) -> Self {
        match e {
            CoreError::Invalid {
                field,
                message,
                hint,
            } => ApiError {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                code: "invalid_input".into(),
                message,
                hint,
                details: json!({ "field": field }),
                retry_after: None,
            },
            CoreError::NotFound { what, key } => ApiError::not_found(what, &key),
            CoreError::Conflict {
                code,
                message,
                hint,
                details,
            } => ApiError {
                status: StatusCode::CONFLICT,
                code: code.into(),
                message,
                hint,
                details,
                retry_after: None,
            },
            CoreError::VerificationFailed {
                message,
                hint,
                details,
            } => ApiError {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                code: "verification_failed".into(),
                message,
                hint,
                details,
                retry_after: None,
            },
            CoreError::Decrypt => {
                tracing::error!(
                    "a stored secret failed to decrypt (wrong master key or tampered record)"
                );
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "decryption_failed",
                    "a stored secret could not be decrypted",
                )
                .hint("the master key may not be the one this store was encrypted with, or the record was altered")
            }
            CoreError::Store(s) => s.into(),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Duplicate { constraint } => {
                let what = match constraint.as_str() {
                    "workspace_slug" => "a workspace with this slug already exists",
                    "connection_name" => {
                        "a connection with this name already exists in the workspace"
                    }
                    "flow_name" => "a flow with this name already exists in the workspace",
                    "user_email" => "a person with this email already exists",
                    "user_sso_subject" => "this single sign-on identity belongs to another person",
                    _ => "this already exists",
                };
                ApiError::new(StatusCode::CONFLICT, "duplicate", what)
                    .hint("choose another name")
                    .details(json!({ "constraint": constraint }))
            }
            StoreError::Stale => ApiError::new(
                StatusCode::CONFLICT,
                "conflict",
                "the record was changed by someone else meanwhile",
            )
            .hint("read it again and retry"),
            StoreError::InUse { flows, borrowers } => in_use(&flows, &borrowers),
            StoreError::Unavailable { message, .. } => {
                tracing::warn!(error = %message, "the store is unavailable");
                store_unavailable()
            }
            StoreError::Backend { message, .. } => {
                tracing::error!(error = %message, "store error");
                ApiError::internal()
            }
        }
    }
}

/// Seconds a caller is asked to wait when the store cannot be reached.
pub const STORE_RETRY_AFTER_SECS: u32 = 2;

/// The 503 for a store that cannot be reached right now (a database restart, a network
/// failure): the request did nothing and can be sent again.
pub fn store_unavailable() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "store_unavailable",
        "the database cannot be reached right now",
    )
    .hint("retry after the number of seconds in the Retry-After header")
    .retry_after(STORE_RETRY_AFTER_SECS)
}

/// The 409 for deleting a connection that active flows use or others borrow from (R11, R3).
pub fn in_use(flows: &[String], borrowers: &[String]) -> ApiError {
    let mut parts = Vec::new();
    if !flows.is_empty() {
        parts.push(format!("used by active flows: {}", flows.join(", ")));
    }
    if !borrowers.is_empty() {
        parts.push(format!(
            "lends its concurrency to: {}",
            borrowers.join(", ")
        ));
    }
    ApiError::new(
        StatusCode::CONFLICT,
        "connection_in_use",
        format!("the connection is {}", parts.join("; ")),
    )
    .hint("delete or update those flows (or connections) first, then delete this connection")
    .details(json!({ "flows": flows, "borrowers": borrowers }))
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::warn!(code = %self.code, status = self.status.as_u16(), "request failed");
        }
        let retry = self.retry_after;
        let body = ErrorBody {
            error: self.code,
            message: self.message,
            hint: self.hint,
            details: self.details,
        };
        let mut resp = (self.status, axum::Json(body)).into_response();
        if let Some(secs) = retry {
            resp.headers_mut()
                .insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        if self.status == StatusCode::PAYLOAD_TOO_LARGE {
            // The rest of the body was never read, so the connection closes after this answer;
            // said in the answer, a client does not send its next request on it.
            resp.headers_mut().insert(
                axum::http::header::CONNECTION,
                axum::http::HeaderValue::from_static("close"),
            );
        }
        resp
    }
}

/// serde's messages quote the offending value (`invalid type: string "hunter2"…`); a value in
/// a request body may be a secret, so quoted values are cut out before a message is answered.
pub fn scrub_serde_message(msg: &str) -> String {
    let mut out = String::with_capacity(msg.len());
    let mut rest = msg;
    while let Some(start) = rest.find(['"', '\'']) {
        let quote = rest.as_bytes()[start] as char;
        out.push_str(&rest[..start]);
        match rest[start + 1..].find(quote) {
            Some(end) => {
                out.push('…');
                rest = &rest[start + 1 + end + 1..];
            }
            None => {
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        match r {
            JsonRejection::JsonDataError(e) => {
                let msg = scrub_serde_message(&e.body_text());
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_body", msg)
                    .hint("check the field names and types against /openapi.json")
            }
            JsonRejection::JsonSyntaxError(e) => ApiError::new(
                StatusCode::BAD_REQUEST,
                "malformed_json",
                scrub_serde_message(&e.body_text()),
            ),
            JsonRejection::MissingJsonContentType(_) => ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "the body must be JSON",
            )
            .hint("send Content-Type: application/json"),
            JsonRejection::BytesRejection(e) => {
                if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::new(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "payload_too_large",
                        "the request body is too large",
                    )
                    .hint("bodies are limited to 1 MiB")
                } else {
                    ApiError::new(
                        StatusCode::BAD_REQUEST,
                        "bad_body",
                        "the request body could not be read",
                    )
                }
            }
            other => ApiError::new(
                other.status(),
                "bad_body",
                scrub_serde_message(&other.body_text()),
            ),
        }
    }
}

/// `Json` whose rejections answer in our error shape.
pub struct Json<T>(pub T);

impl<S, T> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(Json(v)),
            Err(r) => Err(r.into()),
        }
    }
}

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// `Query` whose rejections answer in our error shape.
pub struct Query<T>(pub T);

impl<S, T> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(Query(v)),
            Err(QueryRejection::FailedToDeserializeQueryString(e)) => Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_query",
                scrub_serde_message(&e.body_text()),
            )),
            Err(e) => Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_query",
                e.body_text(),
            )),
        }
    }
}

/// `Path` whose rejections answer in our error shape.
pub struct Path<T>(pub T);

impl<S, T> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(v)) => Ok(Path(v)),
            Err(PathRejection::FailedToDeserializePathParams(e)) => Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_path",
                scrub_serde_message(&e.body_text()),
            )),
            Err(e) => Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_path",
                e.body_text(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_values_are_scrubbed() {
        let m =
            scrub_serde_message("invalid type: string \"hunter2\", expected a boolean at line 1");
        assert!(!m.contains("hunter2"), "{m}");
        assert!(m.contains("expected a boolean"));
        assert_eq!(
            scrub_serde_message("unknown field `x`"),
            "unknown field `x`"
        );
    }
}
