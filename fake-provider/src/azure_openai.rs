//! Azure OpenAI (`POST .../openai/deployments/{deployment}/chat/completions?api-version=...`, `api-key` header):
//! OpenAI's body and answers with Azure's content-filter fields, auth errors, 404 without api-version and 429 wording.

use actix_web::http::header::HeaderMap;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse};
use serde_json::{json, Value};

use crate::openai;
use crate::state::{LimitKind, LimitView, RateLimited};
use crate::{
    header, json_response, percent_decode, set_header, sse_data, Answer, Asked, ErrKind, Parsed,
    Plan, Query, Wire,
};

/// The Azure OpenAI format.
pub struct AzureOpenAi;

/// Azure's `{"error":{"code":"<status>","message":...}}` body (from its gateway: auth, 404, 429).
fn azure_error(status: StatusCode, message: &str) -> HttpResponse {
    json_response(
        status,
        &json!({"error": {"code": status.as_u16().to_string(), "message": message}}),
    )
}

/// The deployment named in the path.
fn deployment(req: &HttpRequest) -> String {
    let path = req.path();
    let after = path
        .split_once("/openai/deployments/")
        .map(|(_, rest)| rest)
        .unwrap_or_default();
    percent_decode(after.strip_suffix("/chat/completions").unwrap_or(after))
}

/// The content-filter verdicts Azure attaches to prompts and choices.
fn filter_results() -> Value {
    let safe = json!({"filtered": false, "severity": "safe"});
    json!({"hate": safe, "self_harm": safe, "sexual": safe, "violence": safe})
}

impl Wire for AzureOpenAi {
    const FORMAT: &'static str = "azure_openai";

    fn key(req: &HttpRequest, _q: &Query) -> Result<String, HttpResponse> {
        match header(req, "api-key").map(str::trim) {
            Some(k) if !k.is_empty() => Ok(k.to_string()),
            _ => Err(azure_error(
                StatusCode::UNAUTHORIZED,
                "Access denied due to missing subscription key. Make sure to include subscription key when making requests to an API.",
            )),
        }
    }

    /// Azure answers a request without `api-version` with 404 "Resource not found".
    fn precheck(_req: &HttpRequest, q: &Query) -> Option<HttpResponse> {
        match q.get("api-version") {
            Some(v) if !v.trim().is_empty() => None,
            _ => Some(azure_error(StatusCode::NOT_FOUND, "Resource not found")),
        }
    }

    fn parse(req: &HttpRequest, _q: &Query, body: &[u8]) -> Result<Parsed, HttpResponse> {
        openai::parse_body(body, Some(deployment(req)))
    }

    fn error(kind: ErrKind) -> HttpResponse {
        match kind {
            ErrKind::InvalidKey | ErrKind::Unauthorized => azure_error(
                StatusCode::UNAUTHORIZED,
                "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key for an active subscription and use a correct regional API endpoint for your resource.",
            ),
            ErrKind::Server => json_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                &openai::error_body(
                    "The server had an error while processing your request. Sorry about that!",
                    "server_error",
                    None,
                    None,
                ),
            ),
            ErrKind::Timeout => azure_error(
                StatusCode::REQUEST_TIMEOUT,
                "The operation was timeout.",
            ),
        }
    }

    fn rate_limited(rl: &RateLimited, asked: Asked<'_>) -> HttpResponse {
        let q = asked.q;
        let version = q
            .get("api-version")
            .map(String::as_str)
            .unwrap_or("2024-10-21");
        let secs = rl.retry_secs();
        let message = match rl.kind {
            LimitKind::Rpm => format!("Requests to the ChatCompletions_Create Operation under Azure OpenAI API version {version} have exceeded call rate limit of your current OpenAI S0 pricing tier. Please retry after {secs} seconds. Please go here: https://aka.ms/oai/quotaincrease if you would like to further increase the default rate limit."),
            LimitKind::Tpm => format!("Requests to the ChatCompletions_Create Operation under Azure OpenAI API version {version} have exceeded token rate limit of your current OpenAI S0 pricing tier. Please retry after {secs} seconds. Please go here: https://aka.ms/oai/quotaincrease if you would like to further increase the default rate limit."),
            LimitKind::Rpd => format!("Requests to the ChatCompletions_Create Operation under Azure OpenAI API version {version} have exceeded the daily call quota (requests per day) of your current OpenAI S0 pricing tier. Please retry after {secs} seconds."),
            LimitKind::Tpd => format!("Requests to the ChatCompletions_Create Operation under Azure OpenAI API version {version} have exceeded the daily token quota (tokens per day) of your current OpenAI S0 pricing tier. Please retry after {secs} seconds."),
        };
        let mut resp = azure_error(StatusCode::TOO_MANY_REQUESTS, &message);
        let ms = u64::try_from(rl.retry_after.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        set_header(resp.headers_mut(), "retry-after-ms", ms.to_string());
        resp
    }

    fn complete(a: &Answer) -> Value {
        let mut v = openai::completion(a, "chatcmpl-");
        v["prompt_filter_results"] =
            json!([{"prompt_index": 0, "content_filter_results": filter_results()}]);
        v["choices"][0]["content_filter_results"] = filter_results();
        v
    }

    /// OpenAI's chunks, after Azure's first chunk that has no choices, only the prompt's filter results.
    fn stream(a: &Answer, _q: &Query) -> Plan {
        let mut plan = openai::chunk_plan(a, "chatcmpl-");
        let first = sse_data(&json!({
            "choices": [],
            "created": 0,
            "id": "",
            "model": "",
            "object": "",
            "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": filter_results()}],
        }));
        plan.head.insert(0, first);
        plan
    }

    fn limit_headers(view: &LimitView, h: &mut HeaderMap) {
        openai::ratelimit_headers(view, h);
    }
}
