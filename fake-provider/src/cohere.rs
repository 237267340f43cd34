//! Cohere Chat API v2 (`POST .../v2/chat`, `Authorization: Bearer`): `{id, message}` error bodies with the
//! Trial-key 429 wording, `finish_reason`/`usage` answers and the typed `message-start` … `message-end` SSE stream.

use actix_web::http::header::HeaderMap;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse};
use serde_json::{json, Value};

use crate::state::{LimitView, RateLimited};
use crate::{
    bearer, json_response, json_response_format, sse_event, text_of, type_name, window_headers,
    Answer, Asked, ErrKind, Parsed, Plan, Query, Wire,
};

/// The Cohere v2 format.
pub struct Cohere;

/// Cohere's error body: `{"id": ..., "message": ...}`.
fn cohere_error(status: StatusCode, message: &str) -> HttpResponse {
    json_response(
        status,
        &json!({"id": uuid::Uuid::new_v4().to_string(), "message": message}),
    )
}

fn invalid(message: &str) -> HttpResponse {
    cohere_error(
        StatusCode::BAD_REQUEST,
        &format!("invalid request: {message}"),
    )
}

fn usage(a: &Answer) -> Value {
    let units = json!({"input_tokens": a.prompt_tokens, "output_tokens": a.completion_tokens});
    json!({"billed_units": units, "tokens": units})
}

const TRIAL_TAIL: &str = "You can continue to use the Trial key for free or upgrade to a Production key with higher rate limits at 'https://dashboard.cohere.com/api-keys'. Contact us on 'https://discord.gg/XW44jPfYJu' or email us at support@cohere.com with any questions";

impl Wire for Cohere {
    const FORMAT: &'static str = "cohere";

    fn key(req: &HttpRequest, _q: &Query) -> Result<String, HttpResponse> {
        match bearer(req) {
            Some(Some(k)) => Ok(k),
            Some(None) => Err(cohere_error(StatusCode::UNAUTHORIZED, "invalid api token")),
            None => Err(cohere_error(
                StatusCode::UNAUTHORIZED,
                "no api key supplied",
            )),
        }
    }

    fn parse(_req: &HttpRequest, _q: &Query, body: &[u8]) -> Result<Parsed, HttpResponse> {
        let v: Value = serde_json::from_slice(body)
            .map_err(|e| invalid(&format!("unable to parse request body: {e}")))?;
        if !v.is_object() {
            return Err(invalid(&format!(
                "request body must be an object, got {}",
                type_name(&v)
            )));
        }
        let model = match v.get("model") {
            Some(Value::String(m)) if !m.is_empty() => m.clone(),
            _ => return Err(invalid("model is required")),
        };
        let messages = match v.get("messages") {
            Some(Value::Array(m)) if !m.is_empty() => m,
            Some(Value::Array(_)) => return Err(invalid("messages must not be empty")),
            _ => return Err(invalid("messages is required")),
        };
        let mut prompt_chars = 0;
        let mut last_user = String::new();
        let mut system: Vec<String> = Vec::new();
        for (i, m) in messages.iter().enumerate() {
            let role = m["role"].as_str().unwrap_or_default();
            if !matches!(role, "system" | "user" | "assistant" | "tool") {
                return Err(invalid(&format!(
                    "messages[{i}].role must be one of system, user, assistant, tool; got {:?}",
                    role
                )));
            }
            let content = &m["content"];
            if content.is_null() && role != "assistant" {
                return Err(invalid(&format!("messages[{i}].content is required")));
            }
            let text = text_of(content);
            prompt_chars += text.chars().count();
            match role {
                "user" => last_user = text,
                "system" => system.push(text),
                _ => {}
            }
        }
        let stream = v["stream"].as_bool().unwrap_or(false);
        let scan = (prompt_chars, last_user, system.join("\n\n"));
        Ok(Parsed::chat(model, stream, json_response_format(&v), scan))
    }

    fn error(kind: ErrKind) -> HttpResponse {
        match kind {
            ErrKind::InvalidKey | ErrKind::Unauthorized => {
                cohere_error(StatusCode::UNAUTHORIZED, "invalid api token")
            }
            ErrKind::Server => cohere_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal server error, this has been reported to our developers",
            ),
            ErrKind::Timeout => cohere_error(
                StatusCode::GATEWAY_TIMEOUT,
                "the request timed out, please try again",
            ),
        }
    }

    /// Per-minute limits use the Trial-key wording; Cohere's long limit is monthly ("API calls / month"),
    /// which is what the daily limits of the fake answer with.
    fn rate_limited(rl: &RateLimited, _asked: Asked<'_>) -> HttpResponse {
        let per = [
            "API calls / minute",
            "API calls / month",
            "tokens / minute",
            "tokens / month",
        ];
        let what = format!("{} {}", rl.limit, rl.kind.pick(per));
        cohere_error(
            StatusCode::TOO_MANY_REQUESTS,
            &format!("You are using a Trial key, which is limited to {what}. {TRIAL_TAIL}"),
        )
    }

    fn complete(a: &Answer) -> Value {
        json!({
            "id": a.id.to_string(),
            "message": {"role": "assistant", "content": [{"type": "text", "text": a.text}]},
            "finish_reason": "COMPLETE",
            "usage": usage(a),
        })
    }

    fn stream(a: &Answer, _q: &Query) -> Plan {
        let head = vec![
            sse_event(
                "message-start",
                &json!({"id": a.id.to_string(), "type": "message-start", "delta": {"message": {"role": "assistant", "content": [], "tool_plan": "", "tool_calls": [], "citations": []}}}),
            ),
            sse_event(
                "content-start",
                &json!({"type": "content-start", "index": 0, "delta": {"message": {"content": {"type": "text", "text": ""}}}}),
            ),
        ];
        let tail = vec![
            sse_event("content-end", &json!({"type": "content-end", "index": 0})),
            sse_event(
                "message-end",
                &json!({"type": "message-end", "delta": {"finish_reason": "COMPLETE", "usage": usage(a)}}),
            ),
        ];
        Plan::events(
            "text/event-stream",
            head,
            &a.pieces,
            |p| {
                sse_event(
                    "content-delta",
                    &json!({"type": "content-delta", "index": 0, "delta": {"message": {"content": {"text": p}}}}),
                )
            },
            tail,
        )
    }

    /// Trial keys report their per-endpoint call limit.
    fn limit_headers(view: &LimitView, h: &mut HeaderMap) {
        let names = [
            "x-trial-endpoint-call-limit",
            "x-trial-endpoint-call-remaining",
        ];
        window_headers(h, view.requests, names, None);
    }
}
