//! `ApiError`: every error the HTTP layer answers, mapped in one `match` to a status and the JSON body
//! `{"error": {"code", "message"}}`. Messages never contain a secret.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use actors::pool::PoolError;
use serde_json::json;

/// An error answered to an HTTP client.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed or a field is invalid.
    #[error("{0}")]
    BadRequest(String),
    /// The body is not the JSON the route expects.
    #[error("invalid JSON body: {0}")]
    InvalidJson(String),
    /// A field of a JSON body has the wrong type or value (`field` is its path, e.g. `candidate.name`).
    #[error("{field}: {message}")]
    InvalidField {
        /// The field's path in the body (`body` for the whole body).
        field: String,
        /// What was expected and what came.
        message: String,
    },
    /// Missing or wrong admin token (Bearer header or the `ie_admin` login cookie).
    #[error("this route needs the admin token: send Authorization: Bearer <server.admin_token>, or log in at /admin/login")]
    Unauthorized,
    /// Not allowed from here (admin routes without a token, from a non-loopback peer).
    #[error("{0}")]
    Forbidden(String),
    /// Too many failed logins this minute.
    #[error("too many failed logins; try again in {0} s")]
    TooManyLogins(i64),
    /// No such resource.
    #[error("{0}")]
    NotFound(String),
    /// The resource is not in a state for this (e.g. a report before the interview ended).
    #[error("{0}")]
    Conflict(String),
    /// The body is larger than `server.max_body_bytes`.
    #[error("request body is larger than the limit of {0} bytes")]
    PayloadTooLarge(usize),
    /// The request names a provider that is not configured.
    #[error("unknown provider {0:?}: not configured or has no keys")]
    UnknownProvider(String),
    /// No provider key is configured.
    #[error("no provider keys are configured")]
    NoProviders,
    /// No key can take the request before its deadline.
    #[error("no provider capacity before the deadline; retry later")]
    NoCapacity,
    /// Every provider attempt failed.
    #[error("every provider attempt failed: {0}")]
    Upstream(String),
    /// A component is not answering.
    #[error("service unavailable: {0}")]
    Unavailable(String),
    /// A bug; the details are in the log.
    #[error("internal error")]
    Internal,
}

impl ApiError {
    /// Status and machine-readable code.
    fn parts(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            ApiError::InvalidJson(_) => (StatusCode::BAD_REQUEST, "invalid_json"),
            ApiError::InvalidField { .. } => (StatusCode::BAD_REQUEST, "invalid_json"),
            ApiError::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::TooManyLogins(_) => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "not_ready"),
            ApiError::PayloadTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            ApiError::UnknownProvider(_) => (StatusCode::BAD_REQUEST, "unknown_provider"),
            ApiError::NoProviders => (StatusCode::SERVICE_UNAVAILABLE, "no_providers"),
            ApiError::NoCapacity => (StatusCode::SERVICE_UNAVAILABLE, "no_capacity"),
            ApiError::Upstream(_) => (StatusCode::BAD_GATEWAY, "upstream_failed"),
            ApiError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            ApiError::Internal => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }

    /// The machine-readable code.
    pub fn code(&self) -> &'static str {
        self.parts().1
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.parts().0
    }

    fn error_response(&self) -> HttpResponse {
        let (status, code) = self.parts();
        let mut resp = HttpResponse::build(status);
        match self {
            ApiError::NoCapacity => {
                resp.insert_header(("Retry-After", "5"));
            }
            ApiError::TooManyLogins(s) => {
                resp.insert_header(("Retry-After", s.to_string()));
            }
            _ => {}
        }
        let mut body = json!({"error": {"code": code, "message": self.to_string()}});
        if let ApiError::InvalidField { field, .. } = self {
            body["error"]["field"] = json!(field);
        }
        resp.json(body)
    }
}

impl From<PoolError> for ApiError {
    fn from(e: PoolError) -> Self {
        match e {
            PoolError::NoProviders => ApiError::NoProviders,
            PoolError::NoCapacity { .. } => ApiError::NoCapacity,
            PoolError::AllFailed { last, .. } => ApiError::Upstream(last.to_string()),
            PoolError::Unavailable(m) => ApiError::Unavailable(m),
        }
    }
}

/// Maps actix's JSON extractor errors to [`ApiError`] (size first, then syntax).
pub fn json_error(err: actix_web::error::JsonPayloadError, limit: usize) -> ApiError {
    use actix_web::error::JsonPayloadError as J;
    match err {
        J::Overflow { .. } | J::OverflowKnownLength { .. } => ApiError::PayloadTooLarge(limit),
        J::ContentType => ApiError::InvalidJson("Content-Type must be application/json".into()),
        J::Deserialize(e) => ApiError::InvalidJson(e.to_string()),
        other => ApiError::InvalidJson(other.to_string()),
    }
}
