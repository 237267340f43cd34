//! `ApiError`: every error the HTTP layer answers, mapped in one `match` to a status and the JSON body
//! `{"error": {"code", "message", "type", "param"}}`: the engine's `{code, message}`, which is also
//! OpenAI's error shape once `type` and `param` are added, so OpenAI SDKs raise the right exception
//! class for gateway errors. Messages never contain a secret.

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
    /// No key can take the request before its deadline; `Some(seconds)` when a window opens then
    /// (429 with `Retry-After`), `None` when no key will (503).
    #[error("{}", match .0 { Some(s) => format!("no provider capacity before the deadline: the earliest window opens in {s} s; retry then"), None => "no usable provider key".to_string() })]
    NoCapacity(Option<u64>),
    /// The model the request names is not served here.
    #[error("the model {0:?} does not exist or is not served here (see GET /v1/models)")]
    ModelNotFound(String),
    /// No key could ever take the request: it is larger than a whole window.
    #[error("request too large: it needs {need} of `{window}` but the largest limit of any key is {limit}")]
    RequestTooLarge {
        /// The window.
        window: &'static str,
        /// Its largest limit.
        limit: u64,
        /// What the request needs.
        need: u64,
    },
    /// Every provider attempt failed.
    #[error("every provider attempt failed: {0}")]
    Upstream(String),
    /// A component is not answering.
    #[error("service unavailable: {0}")]
    Unavailable(String),
    /// The client is over one of its limits (`[limits]`).
    #[error("{message}")]
    RateLimited {
        /// When it may try again.
        retry_after: std::time::Duration,
        /// Which limit, in words.
        message: String,
    },
    /// The node holds as many live interviews as it may (`limits.max_live_sessions`).
    #[error("this server is at its limit of live interviews; try again in {retry_after_s} s")]
    Busy {
        /// When to try again, seconds.
        retry_after_s: u64,
    },
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
            ApiError::NoCapacity(Some(_)) => (StatusCode::TOO_MANY_REQUESTS, "no_capacity"),
            ApiError::NoCapacity(None) => (StatusCode::SERVICE_UNAVAILABLE, "no_capacity"),
            ApiError::ModelNotFound(_) => (StatusCode::NOT_FOUND, "model_not_found"),
            ApiError::RequestTooLarge { .. } => (StatusCode::BAD_REQUEST, "request_too_large"),
            ApiError::Upstream(_) => (StatusCode::BAD_GATEWAY, "upstream_failed"),
            ApiError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            ApiError::RateLimited { .. } => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            ApiError::Busy { .. } => (StatusCode::SERVICE_UNAVAILABLE, "busy"),
            ApiError::Internal => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }

    /// The machine-readable code.
    pub fn code(&self) -> &'static str {
        self.parts().1
    }

    /// OpenAI's `type` for this error (what its SDKs and clients read besides the status).
    fn openai_type(&self) -> &'static str {
        match self.parts().0.as_u16() {
            401 => "authentication_error",
            403 => "permission_error",
            404 if matches!(self, ApiError::ModelNotFound(_)) => "invalid_request_error",
            404 => "not_found_error",
            429 => "rate_limit_error",
            400..=499 => "invalid_request_error",
            _ => "server_error",
        }
    }

    /// The request field the error is about (OpenAI's `param`), when there is one.
    fn param(&self) -> Option<&'static str> {
        match self {
            ApiError::ModelNotFound(_) | ApiError::UnknownProvider(_) => Some("model"),
            ApiError::RequestTooLarge { .. } => Some("messages"),
            _ => None,
        }
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
            ApiError::NoCapacity(Some(secs)) => {
                resp.insert_header(("Retry-After", secs.to_string()));
            }
            ApiError::RateLimited { retry_after, .. } => {
                // Whole seconds, rounded up: a client that waits this long is let in.
                let secs = retry_after.as_millis().div_ceil(1000).max(1);
                resp.insert_header(("Retry-After", secs.to_string()));
            }
            ApiError::Busy { retry_after_s } => {
                resp.insert_header(("Retry-After", (*retry_after_s).max(1).to_string()));
            }
            ApiError::TooManyLogins(s) => {
                resp.insert_header(("Retry-After", s.to_string()));
            }
            _ => {}
        }
        let mut body = json!({"error": {
            "message": self.to_string(), "type": self.openai_type(),
            "param": self.param(), "code": code,
        }});
        if let ApiError::InvalidField { field, .. } = self {
            body["error"]["field"] = json!(field);
            body["error"]["param"] = json!(field);
        }
        resp.json(body)
    }
}

impl From<PoolError> for ApiError {
    fn from(e: PoolError) -> Self {
        match e {
            PoolError::NoProviders => ApiError::NoProviders,
            PoolError::NoCapacity { retry_after, .. } => {
                // Whole seconds, rounded up, at least 1: a client retrying then finds the room.
                ApiError::NoCapacity(
                    retry_after.map(|d| d.as_millis().div_ceil(1000).max(1) as u64),
                )
            }
            PoolError::TooLarge {
                window,
                limit,
                need,
            } => ApiError::RequestTooLarge {
                window,
                limit,
                need,
            },
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
