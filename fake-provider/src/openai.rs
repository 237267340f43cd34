//! OpenAI-compatible chat completions (`POST .../chat/completions`, `Authorization: Bearer`): OpenAI's request
//! checks and error bodies, `chat.completion` answers and chunk streams, `x-ratelimit-*` headers, Groq-worded 429s.

use actix_web::http::header::HeaderMap;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse};
use bytes::Bytes;
use serde_json::{json, Value};

use crate::state::{go_duration, LimitKind, LimitView, RateLimited};
use crate::{
    bearer, json_response, json_response_format, sse_data, text_of, type_name, window_headers,
    Answer, Asked, ErrKind, Parsed, Plan, Query, Wire,
};

/// The OpenAI format.
pub struct OpenAi;

/// Roles OpenAI accepts in `messages`.
const ROLES: [&str; 6] = [
    "system",
    "assistant",
    "user",
    "function",
    "tool",
    "developer",
];

/// An OpenAI error body.
pub fn error_body(message: &str, typ: &str, param: Option<&str>, code: Option<&str>) -> Value {
    json!({"error": {"message": message, "type": typ, "param": param, "code": code}})
}

/// A 400 `invalid_request_error`.
pub fn invalid(message: &str, param: Option<&str>, code: Option<&str>) -> HttpResponse {
    json_response(
        StatusCode::BAD_REQUEST,
        &error_body(message, "invalid_request_error", param, code),
    )
}

/// Checks a chat-completions body like OpenAI does. `model` is the deployment for Azure (whose body has no model).
pub fn parse_body(body: &[u8], model: Option<String>) -> Result<Parsed, HttpResponse> {
    let v: Value = serde_json::from_slice(body).map_err(|_| {
        invalid(
            "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON. If you have trouble figuring out how to fix this, please contact us through our help center at help.openai.com.)",
            None,
            None,
        )
    })?;
    if !v.is_object() {
        return Err(invalid(
            &format!(
                "Invalid type for request body: expected an object, but got {} instead.",
                type_name(&v)
            ),
            None,
            Some("invalid_type"),
        ));
    }
    let model = match model {
        Some(m) => m,
        None => match v.get("model") {
            Some(Value::String(m)) if !m.is_empty() => m.clone(),
            _ => return Err(invalid("you must provide a model parameter", None, None)),
        },
    };
    let messages = match v.get("messages") {
        None | Some(Value::Null) => {
            return Err(invalid(
                "Missing required parameter: 'messages'.",
                Some("messages"),
                Some("missing_required_parameter"),
            ))
        }
        Some(Value::Array(a)) => a,
        Some(other) => {
            return Err(invalid(
                &format!(
                "Invalid type for 'messages': expected an array of objects, but got {} instead.",
                type_name(other)
            ),
                Some("messages"),
                Some("invalid_type"),
            ))
        }
    };
    if messages.is_empty() {
        return Err(invalid(
            "Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty array instead.",
            Some("messages"),
            Some("empty_array"),
        ));
    }
    let mut prompt_chars = 0;
    let mut last_user = String::new();
    let mut system: Vec<String> = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        if !m.is_object() {
            let p = format!("messages[{i}]");
            return Err(invalid(
                &format!(
                    "Invalid type for '{p}': expected an object, but got {} instead.",
                    type_name(m)
                ),
                Some(&p),
                Some("invalid_type"),
            ));
        }
        let role = match m.get("role") {
            Some(Value::String(r)) => r.as_str(),
            _ => {
                let p = format!("messages[{i}].role");
                return Err(invalid(
                    &format!("Missing required parameter: '{p}'."),
                    Some(&p),
                    Some("missing_required_parameter"),
                ));
            }
        };
        if !ROLES.contains(&role) {
            let p = format!("messages[{i}].role");
            return Err(invalid(
                &format!("Invalid value: '{role}'. Supported values are: 'system', 'assistant', 'user', 'function', 'tool', and 'developer'."),
                Some(&p),
                Some("invalid_value"),
            ));
        }
        let content = m.get("content").unwrap_or(&Value::Null);
        if content.is_null() && matches!(role, "system" | "user" | "developer" | "tool") {
            let p = format!("messages[{i}].content");
            return Err(invalid(
                &format!("Missing required parameter: '{p}'."),
                Some(&p),
                Some("missing_required_parameter"),
            ));
        }
        let text = text_of(content);
        prompt_chars += text.chars().count();
        match role {
            "user" => last_user = text,
            "system" | "developer" => system.push(text),
            _ => {}
        }
    }
    let stream = v["stream"].as_bool().unwrap_or(false);
    let scan = (prompt_chars, last_user, system.join("\n\n"));
    Ok(Parsed {
        include_usage: v["stream_options"]["include_usage"].as_bool() == Some(true),
        ..Parsed::chat(model, stream, json_response_format(&v), scan)
    })
}

/// The usage object.
pub fn usage(a: &Answer) -> Value {
    json!({
        "prompt_tokens": a.prompt_tokens,
        "completion_tokens": a.completion_tokens,
        "total_tokens": a.prompt_tokens + a.completion_tokens,
    })
}

/// The `chat.completion` answer.
pub fn completion(a: &Answer, id_prefix: &str) -> Value {
    json!({
        "id": format!("{id_prefix}{}", a.id.simple()),
        "object": "chat.completion",
        "created": a.created,
        "model": a.model,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": a.text, "refusal": null},
            "logprobs": null,
            "finish_reason": "stop",
        }],
        "usage": usage(a),
        "system_fingerprint": "fp_fake",
    })
}

/// The `chat.completion.chunk` stream: a role chunk, one chunk per piece, a finish chunk, the usage chunk
/// when `stream_options.include_usage` is set, then `[DONE]`.
pub fn chunk_plan(a: &Answer, id_prefix: &str) -> Plan {
    let id = format!("{id_prefix}{}", a.id.simple());
    let chunk = |delta: Value, finish: Option<&str>| {
        let mut c = json!({
            "id": id,
            "object": "chat.completion.chunk",
            "created": a.created,
            "model": a.model,
            "system_fingerprint": "fp_fake",
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
        });
        if a.include_usage {
            c["usage"] = Value::Null;
        }
        sse_data(&c)
    };
    let head = vec![chunk(json!({"role": "assistant", "content": ""}), None)];
    let pieces = a
        .pieces
        .iter()
        .map(|p| chunk(json!({ "content": p }), None))
        .collect();
    let mut tail = vec![chunk(json!({}), Some("stop"))];
    if a.include_usage {
        tail.push(sse_data(&json!({
            "id": id,
            "object": "chat.completion.chunk",
            "created": a.created,
            "model": a.model,
            "system_fingerprint": "fp_fake",
            "choices": [],
            "usage": usage(a),
        })));
    }
    tail.push(Bytes::from_static(b"data: [DONE]\n\n"));
    Plan {
        content_type: "text/event-stream",
        head,
        pieces,
        tail,
    }
}

/// `x-ratelimit-{limit,remaining,reset}-{requests,tokens}`.
pub fn ratelimit_headers(view: &LimitView, h: &mut HeaderMap) {
    let requests = [
        "x-ratelimit-limit-requests",
        "x-ratelimit-remaining-requests",
    ];
    let reset = ("x-ratelimit-reset-requests", go_duration as fn(_) -> _);
    window_headers(h, view.requests, requests, Some(reset));
    let tokens = ["x-ratelimit-limit-tokens", "x-ratelimit-remaining-tokens"];
    let reset = ("x-ratelimit-reset-tokens", go_duration as fn(_) -> _);
    window_headers(h, view.tokens, tokens, Some(reset));
}

/// The 429 message as Groq words it (OpenAI's differs only in small ways).
pub fn limit_message(rl: &RateLimited, model: &str) -> String {
    let what = match rl.kind {
        LimitKind::Rpm => "requests per minute (RPM)",
        LimitKind::Rpd => "requests per day (RPD)",
        LimitKind::Tpm => "tokens per minute (TPM)",
        LimitKind::Tpd => "tokens per day (TPD)",
    };
    let requested = if rl.kind.is_tokens() {
        format!("~{}", rl.requested)
    } else {
        rl.requested.to_string()
    };
    format!(
        "Rate limit reached for model `{model}` in organization `org_fake` service tier `on_demand` on {what}: Limit {}, Used {}, Requested {requested}. Please try again in {}. Visit https://console.groq.com/docs/rate-limits for more information.",
        rl.limit,
        rl.used,
        go_duration(rl.retry_after)
    )
}

impl Wire for OpenAi {
    const FORMAT: &'static str = "openai";

    fn key(req: &HttpRequest, _q: &Query) -> Result<String, HttpResponse> {
        match bearer(req) {
            Some(Some(k)) => Ok(k),
            _ => Err(json_response(
                StatusCode::UNAUTHORIZED,
                &error_body(
                    "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
                    "invalid_request_error",
                    None,
                    None,
                ),
            )),
        }
    }

    fn parse(_req: &HttpRequest, _q: &Query, body: &[u8]) -> Result<Parsed, HttpResponse> {
        parse_body(body, None)
    }

    fn error(kind: ErrKind) -> HttpResponse {
        match kind {
            ErrKind::InvalidKey | ErrKind::Unauthorized => json_response(
                StatusCode::UNAUTHORIZED,
                &error_body(
                    "Invalid API Key",
                    "invalid_request_error",
                    None,
                    Some("invalid_api_key"),
                ),
            ),
            ErrKind::Server => json_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                &error_body(
                    "The server had an error while processing your request. Sorry about that!",
                    "server_error",
                    None,
                    None,
                ),
            ),
            ErrKind::Timeout => json_response(
                StatusCode::GATEWAY_TIMEOUT,
                &error_body("Request timed out.", "server_error", None, Some("timeout")),
            ),
        }
    }

    fn rate_limited(rl: &RateLimited, asked: Asked<'_>) -> HttpResponse {
        let model = asked.model;
        let typ = if rl.kind.is_tokens() {
            "tokens"
        } else {
            "requests"
        };
        json_response(
            StatusCode::TOO_MANY_REQUESTS,
            &error_body(
                &limit_message(rl, model),
                typ,
                None,
                Some("rate_limit_exceeded"),
            ),
        )
    }

    fn complete(a: &Answer) -> Value {
        completion(a, "chatcmpl-")
    }

    fn stream(a: &Answer, _q: &Query) -> Plan {
        chunk_plan(a, "chatcmpl-")
    }

    fn limit_headers(view: &LimitView, h: &mut HeaderMap) {
        ratelimit_headers(view, h);
    }
}
