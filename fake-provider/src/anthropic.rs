//! Anthropic Messages (`POST .../v1/messages`, `x-api-key` + `anthropic-version`): typed error bodies with
//! `request_id`, `message` answers, the named-event SSE stream, and `anthropic-ratelimit-*` headers.

use actix_web::http::header::HeaderMap;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse};
use serde_json::{json, Value};

use crate::state::{LimitView, RateLimited};
use crate::{
    header, json_response, set_header, sse_event, text_of, type_name, window_headers, Answer,
    Asked, ErrKind, Parsed, Plan, Query, Wire,
};

/// The Anthropic format.
pub struct Anthropic;

/// `anthropic-version` values the API accepts.
const VERSIONS: [&str; 2] = ["2023-06-01", "2023-01-01"];

/// Anthropic's error body.
fn anthropic_error(status: u16, typ: &str, message: &str) -> HttpResponse {
    let request_id = format!("req_fake{}", uuid::Uuid::new_v4().simple());
    let mut resp = json_response(
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        &json!({"type": "error", "error": {"type": typ, "message": message}, "request_id": request_id}),
    );
    set_header(resp.headers_mut(), "request-id", request_id);
    resp
}

fn invalid(message: &str) -> HttpResponse {
    anthropic_error(400, "invalid_request_error", message)
}

/// An RFC 3339 timestamp `d` from now.
fn at(d: std::time::Duration) -> String {
    let when = chrono::Utc::now()
        + chrono::Duration::from_std(d).unwrap_or_else(|_| chrono::Duration::zero());
    when.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

impl Wire for Anthropic {
    const FORMAT: &'static str = "anthropic";

    fn key(req: &HttpRequest, _q: &Query) -> Result<String, HttpResponse> {
        match header(req, "x-api-key").map(str::trim) {
            Some(k) if !k.is_empty() => Ok(k.to_string()),
            _ => Err(anthropic_error(
                401,
                "authentication_error",
                "x-api-key header is required",
            )),
        }
    }

    fn precheck(req: &HttpRequest, _q: &Query) -> Option<HttpResponse> {
        match header(req, "anthropic-version") {
            None => Some(invalid("anthropic-version: header is required")),
            Some(v) if !VERSIONS.contains(&v.trim()) => Some(invalid(&format!(
                "anthropic-version: {:?} is not a valid version",
                v
            ))),
            Some(_) => None,
        }
    }

    fn parse(_req: &HttpRequest, _q: &Query, body: &[u8]) -> Result<Parsed, HttpResponse> {
        let v: Value = serde_json::from_slice(body)
            .map_err(|e| invalid(&format!("The request body is not valid JSON: {e}")))?;
        if !v.is_object() {
            return Err(invalid(&format!(
                "Input should be a valid dictionary or object to extract fields from, got {}",
                type_name(&v)
            )));
        }
        let model = match v.get("model") {
            Some(Value::String(m)) if !m.is_empty() => m.clone(),
            None | Some(Value::Null) => return Err(invalid("model: Field required")),
            Some(_) => return Err(invalid("model: Input should be a valid string")),
        };
        match v.get("max_tokens") {
            None | Some(Value::Null) => return Err(invalid("max_tokens: Field required")),
            Some(Value::Number(n)) => match n.as_u64() {
                Some(0) => {
                    return Err(invalid(
                        "max_tokens: Input should be greater than or equal to 1",
                    ))
                }
                Some(_) => {}
                None => return Err(invalid("max_tokens: Input should be a valid integer")),
            },
            Some(_) => return Err(invalid("max_tokens: Input should be a valid integer")),
        }
        let messages = match v.get("messages") {
            Some(Value::Array(m)) if !m.is_empty() => m,
            Some(Value::Array(_)) => {
                return Err(invalid("messages: at least one message is required"))
            }
            None | Some(Value::Null) => return Err(invalid("messages: Field required")),
            Some(_) => return Err(invalid("messages: Input should be a valid list")),
        };
        let mut prompt_chars = 0;
        let mut last_user = String::new();
        for (i, m) in messages.iter().enumerate() {
            let role = match m.get("role") {
                Some(Value::String(r)) => r.as_str(),
                _ => return Err(invalid(&format!("messages.{i}.role: Field required"))),
            };
            match role {
                "user" | "assistant" => {}
                "system" => return Err(invalid("messages: Unexpected role \"system\". The Messages API accepts a top-level `system` parameter, not \"system\" as an input message role.")),
                _ => return Err(invalid(&format!("messages.{i}.role: Input should be 'user' or 'assistant'"))),
            }
            let content = match m.get("content") {
                None | Some(Value::Null) => {
                    return Err(invalid(&format!("messages.{i}.content: Field required")))
                }
                Some(c) => c,
            };
            let text = text_of(content);
            prompt_chars += text.chars().count();
            if role == "user" {
                last_user = text;
            }
        }
        let system = text_of(&v["system"]);
        prompt_chars += system.chars().count();
        // Anthropic has no JSON switch: a system prompt asking for JSON (or structured outputs) is JSON mode.
        let json_mode =
            v.get("output_format").is_some() || system.to_ascii_lowercase().contains("json");
        let stream = v["stream"].as_bool().unwrap_or(false);
        let scan = (prompt_chars, last_user, system);
        Ok(Parsed::chat(model, stream, json_mode, scan))
    }

    fn error(kind: ErrKind) -> HttpResponse {
        match kind {
            ErrKind::InvalidKey | ErrKind::Unauthorized => {
                anthropic_error(401, "authentication_error", "invalid x-api-key")
            }
            ErrKind::Server => anthropic_error(500, "api_error", "Internal server error"),
            ErrKind::Timeout => anthropic_error(504, "timeout_error", "Request timeout"),
        }
    }

    fn rate_limited(rl: &RateLimited, _asked: Asked<'_>) -> HttpResponse {
        let per = [
            "requests per minute",
            "requests per day",
            "tokens per minute",
            "tokens per day",
        ];
        let what = format!("{} {}", rl.limit, rl.kind.pick(per));
        anthropic_error(
            429,
            "rate_limit_error",
            &format!("This request would exceed the rate limit for your organization (org_fake) of {what}. For details, refer to: https://docs.claude.com/en/api/rate-limits. You can see the response headers for current usage. Please reduce the prompt length or the maximum tokens requested, or try again later. You may also contact sales at https://www.anthropic.com/contact-sales to discuss your options for a rate limit increase."),
        )
    }

    fn complete(a: &Answer) -> Value {
        json!({
            "id": format!("msg_fake{}", a.id.simple()),
            "type": "message",
            "role": "assistant",
            "model": a.model,
            "content": [{"type": "text", "text": a.text}],
            "stop_reason": "end_turn",
            "stop_sequence": null,
            "usage": {"input_tokens": a.prompt_tokens, "output_tokens": a.completion_tokens},
        })
    }

    fn stream(a: &Answer, _q: &Query) -> Plan {
        let head = vec![
            sse_event(
                "message_start",
                &json!({"type": "message_start", "message": {
                    "id": format!("msg_fake{}", a.id.simple()),
                    "type": "message",
                    "role": "assistant",
                    "model": a.model,
                    "content": [],
                    "stop_reason": null,
                    "stop_sequence": null,
                    "usage": {"input_tokens": a.prompt_tokens, "output_tokens": 1},
                }}),
            ),
            sse_event(
                "content_block_start",
                &json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
            ),
            sse_event("ping", &json!({"type": "ping"})),
        ];
        let tail = vec![
            sse_event(
                "content_block_stop",
                &json!({"type": "content_block_stop", "index": 0}),
            ),
            sse_event(
                "message_delta",
                &json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null}, "usage": {"output_tokens": a.completion_tokens}}),
            ),
            sse_event("message_stop", &json!({"type": "message_stop"})),
        ];
        Plan::events(
            "text/event-stream; charset=utf-8",
            head,
            &a.pieces,
            |p| {
                sse_event(
                    "content_block_delta",
                    &json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": p}}),
                )
            },
            tail,
        )
    }

    /// `anthropic-ratelimit-{requests,tokens}-{limit,remaining,reset}`, resets as RFC 3339 times.
    fn limit_headers(view: &LimitView, h: &mut HeaderMap) {
        let requests = [
            "anthropic-ratelimit-requests-limit",
            "anthropic-ratelimit-requests-remaining",
        ];
        let reset = ("anthropic-ratelimit-requests-reset", at as fn(_) -> _);
        window_headers(h, view.requests, requests, Some(reset));
        let tokens = [
            "anthropic-ratelimit-tokens-limit",
            "anthropic-ratelimit-tokens-remaining",
        ];
        let reset = ("anthropic-ratelimit-tokens-reset", at as fn(_) -> _);
        window_headers(h, view.tokens, tokens, Some(reset));
    }
}
