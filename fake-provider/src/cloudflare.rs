//! Cloudflare Workers AI (`POST .../client/v4/accounts/{account_id}/ai/run/{model...}`, `Authorization: Bearer`):
//! the `{result, success, errors, messages}` envelope, Workers AI error codes, and `{"response":...}` SSE pieces.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse};
use bytes::Bytes;
use serde_json::{json, Value};

use crate::state::{LimitKind, RateLimited};
use crate::{
    bearer, json_response, json_response_format, percent_decode, sse_data, text_of, Answer, Asked,
    ErrKind, Parsed, Plan, Query, Wire,
};

/// The Cloudflare Workers AI format.
pub struct Cloudflare;

/// A failed envelope.
fn cf_error(status: StatusCode, errors: Value) -> HttpResponse {
    json_response(
        status,
        &json!({"result": null, "success": false, "errors": errors, "messages": []}),
    )
}

/// A 400 "Bad input" from the model's input schema.
fn bad_input(detail: &str) -> HttpResponse {
    cf_error(
        StatusCode::BAD_REQUEST,
        json!([{"code": 5006, "message": format!("AiError: Bad input: Error: {detail}")}]),
    )
}

/// The model: everything after `/ai/run/` (it contains slashes, e.g. `@cf/meta/llama-3.1-8b-instruct`).
fn model(req: &HttpRequest) -> String {
    let path = req.path();
    percent_decode(
        path.split_once("/ai/run/")
            .map(|(_, m)| m)
            .unwrap_or_default(),
    )
}

fn usage(a: &Answer) -> Value {
    json!({
        "prompt_tokens": a.prompt_tokens,
        "completion_tokens": a.completion_tokens,
        "total_tokens": a.prompt_tokens + a.completion_tokens,
    })
}

impl Wire for Cloudflare {
    const FORMAT: &'static str = "cloudflare";

    fn key(req: &HttpRequest, _q: &Query) -> Result<String, HttpResponse> {
        match bearer(req) {
            Some(Some(k)) => Ok(k),
            Some(None) => Err(cf_error(
                StatusCode::BAD_REQUEST,
                json!([{"code": 6003, "message": "Invalid request headers", "error_chain": [{"code": 6111, "message": "Invalid format for Authorization header"}]}]),
            )),
            None => Err(cf_error(
                StatusCode::UNAUTHORIZED,
                json!([{"code": 10001, "message": "Unable to authenticate request"}]),
            )),
        }
    }

    fn parse(req: &HttpRequest, _q: &Query, body: &[u8]) -> Result<Parsed, HttpResponse> {
        let v: Value = serde_json::from_slice(body)
            .map_err(|e| bad_input(&format!("request body is not valid JSON: {e}")))?;
        if !v.is_object() {
            return Err(bad_input("Type mismatch of '/', 'object' not in 'array'"));
        }
        let (prompt_chars, last_user, system) = match (&v["messages"], &v["prompt"]) {
            (Value::Array(msgs), _) if !msgs.is_empty() => {
                let mut chars = 0;
                let mut last = String::new();
                let mut system: Vec<String> = Vec::new();
                for (i, m) in msgs.iter().enumerate() {
                    let role = m["role"].as_str().ok_or_else(|| {
                        bad_input(&format!(
                            "required properties at '/messages/{i}' are 'role'"
                        ))
                    })?;
                    if m.get("content").is_none() {
                        return Err(bad_input(&format!(
                            "required properties at '/messages/{i}' are 'content'"
                        )));
                    }
                    let text = text_of(&m["content"]);
                    chars += text.chars().count();
                    match role {
                        "user" => last = text,
                        "system" => system.push(text),
                        _ => {}
                    }
                }
                (chars, last, system.join("\n\n"))
            }
            (Value::Array(_), _) => {
                return Err(bad_input(
                    "Array at '/messages' has 0 items, less than minimum of 1",
                ))
            }
            (_, Value::String(p)) if !p.is_empty() => {
                (p.chars().count(), p.clone(), String::new())
            }
            _ => {
                return Err(bad_input(
                    "oneOf at '/' not met, 0 matches: required properties at '/' are 'prompt', required properties at '/' are 'messages'",
                ))
            }
        };
        let stream = v["stream"].as_bool().unwrap_or(false);
        let scan = (prompt_chars, last_user, system);
        Ok(Parsed::chat(
            model(req),
            stream,
            json_response_format(&v),
            scan,
        ))
    }

    fn error(kind: ErrKind) -> HttpResponse {
        match kind {
            ErrKind::InvalidKey | ErrKind::Unauthorized => cf_error(
                StatusCode::UNAUTHORIZED,
                json!([{"code": 10000, "message": "Authentication error"}]),
            ),
            ErrKind::Server => cf_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                json!([{"code": 3043, "message": "AiError: Internal server error"}]),
            ),
            ErrKind::Timeout => cf_error(
                StatusCode::REQUEST_TIMEOUT,
                json!([{"code": 3007, "message": "AiError: Request timeout"}]),
            ),
        }
    }

    fn rate_limited(rl: &RateLimited, _asked: Asked<'_>) -> HttpResponse {
        let errors = match rl.kind {
            LimitKind::Rpd | LimitKind::Tpd => json!([{
                "code": 3036,
                "message": "AiError: Account limited: You have used up your daily free allocation of 10,000 neurons. Please upgrade to Cloudflare's Workers Paid plan if you would like to continue usage."
            }]),
            LimitKind::Rpm | LimitKind::Tpm => json!([{
                "code": 3040,
                "message": "AiError: Capacity temporarily exceeded, please try again."
            }]),
        };
        cf_error(StatusCode::TOO_MANY_REQUESTS, errors)
    }

    /// In JSON mode Workers AI hands back `response` already parsed when the output is JSON.
    fn complete(a: &Answer) -> Value {
        let response = if a.json_mode {
            serde_json::from_str::<Value>(&a.text)
                .ok()
                .filter(Value::is_object)
                .unwrap_or_else(|| Value::String(a.text.clone()))
        } else {
            Value::String(a.text.clone())
        };
        json!({
            "result": {"response": response, "tool_calls": [], "usage": usage(a)},
            "success": true,
            "errors": [],
            "messages": [],
        })
    }

    fn stream(a: &Answer, _q: &Query) -> Plan {
        let tail = vec![
            sse_data(&json!({"response": "", "usage": usage(a)})),
            Bytes::from_static(b"data: [DONE]\n\n"),
        ];
        Plan::events(
            "text/event-stream",
            vec![],
            &a.pieces,
            |p| sse_data(&json!({ "response": p })),
            tail,
        )
    }
}
