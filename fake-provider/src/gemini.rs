//! Google Gemini (`POST .../models/{model}:generateContent` and `:streamGenerateContent[?alt=sse]`, key in
//! `x-goog-api-key` or `?key=`): Google's request checks, `google.rpc` error bodies, candidates answers and chunk streams.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse};
use bytes::Bytes;
use serde_json::{json, Value};

use crate::state::{LimitKind, RateLimited};
use crate::{
    header, json_response, percent_decode, Answer, Asked, ErrKind, Parsed, Plan, Query, Wire,
};

/// The Gemini format.
pub struct Gemini;

/// A Google API error body.
fn google_error(code: u16, status: &str, message: &str, details: Option<Value>) -> HttpResponse {
    let mut err = json!({"code": code, "message": message, "status": status});
    if let Some(d) = details {
        err["details"] = d;
    }
    json_response(
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        &json!({ "error": err }),
    )
}

/// A 400 `INVALID_ARGUMENT`.
fn invalid(message: &str) -> HttpResponse {
    google_error(400, "INVALID_ARGUMENT", message, None)
}

/// The model and method named in the path (`.../models/{model}:{method}`).
fn model_and_method(req: &HttpRequest) -> (String, String) {
    let path = req.path();
    let tail = path.rsplit_once("/models/").map(|(_, t)| t).unwrap_or(path);
    match tail.rsplit_once(':') {
        Some((m, method)) => (percent_decode(m), method.to_string()),
        None => (percent_decode(tail), String::new()),
    }
}

/// Whether the path asks for a stream.
fn is_stream(req: &HttpRequest) -> bool {
    req.path().ends_with(":streamGenerateContent")
}

fn usage(a: &Answer) -> Value {
    json!({
        "promptTokenCount": a.prompt_tokens,
        "candidatesTokenCount": a.completion_tokens,
        "totalTokenCount": a.prompt_tokens + a.completion_tokens,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": a.prompt_tokens}],
    })
}

fn response_id(a: &Answer) -> String {
    a.id.simple().to_string().chars().take(22).collect()
}

/// One `GenerateContentResponse`; `last` adds the finish reason and usage.
fn chunk(a: &Answer, text: &str, last: bool) -> Value {
    let mut cand = json!({"content": {"parts": [{"text": text}], "role": "model"}, "index": 0});
    let mut v = json!({"candidates": [], "modelVersion": a.model, "responseId": response_id(a)});
    if last {
        cand["finishReason"] = json!("STOP");
        v["usageMetadata"] = usage(a);
    }
    v["candidates"] = json!([cand]);
    v
}

impl Wire for Gemini {
    const FORMAT: &'static str = "gemini";

    fn key(req: &HttpRequest, q: &Query) -> Result<String, HttpResponse> {
        let from_header = header(req, "x-goog-api-key").map(str::trim);
        let from_query = q.get("key").map(|k| k.trim());
        match from_header.filter(|k| !k.is_empty()).or(from_query.filter(|k| !k.is_empty())) {
            Some(k) => Ok(k.to_string()),
            None => Err(google_error(
                403,
                "PERMISSION_DENIED",
                "Method doesn't allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API.",
                None,
            )),
        }
    }

    fn wants_stream(req: &HttpRequest, _body: &Value) -> bool {
        is_stream(req)
    }

    fn parse(req: &HttpRequest, _q: &Query, body: &[u8]) -> Result<Parsed, HttpResponse> {
        let v: Value = serde_json::from_slice(body).map_err(|e| {
            invalid(&format!(
                "Invalid JSON payload received. {}",
                e.to_string().replace(" at line", ".\nat line")
            ))
        })?;
        if !v.is_object() {
            return Err(invalid(
                "Invalid JSON payload received. Expected an object (GenerateContentRequest).",
            ));
        }
        let contents = match v.get("contents") {
            Some(Value::Array(c)) if !c.is_empty() => c,
            Some(Value::Array(_)) | None | Some(Value::Null) => {
                return Err(invalid(
                    "* GenerateContentRequest.contents: contents is not specified\n",
                ))
            }
            Some(_) => {
                return Err(invalid(
                    "Invalid JSON payload received. Unknown name \"contents\": Proto field is not repeating, cannot start list.",
                ))
            }
        };
        let mut prompt_chars = 0;
        let mut last_user = String::new();
        for (i, c) in contents.iter().enumerate() {
            let role = c["role"].as_str().unwrap_or("user");
            if !matches!(role, "user" | "model" | "") {
                return Err(invalid("Please use a valid role: user, model."));
            }
            let parts = match c.get("parts") {
                Some(Value::Array(p)) if !p.is_empty() => p,
                _ => {
                    return Err(invalid(&format!(
                        "* GenerateContentRequest.contents[{i}].parts: contents.parts must not be empty.\n"
                    )))
                }
            };
            let text: String = parts.iter().filter_map(|p| p["text"].as_str()).collect();
            prompt_chars += text.chars().count();
            if role != "model" {
                last_user = text;
            }
        }
        let mut system = String::new();
        if let Some(parts) = v["systemInstruction"]["parts"].as_array() {
            system = parts.iter().filter_map(|p| p["text"].as_str()).collect();
            prompt_chars += system.chars().count();
        }
        let (model, _) = model_and_method(req);
        let json_mode =
            v["generationConfig"]["responseMimeType"].as_str() == Some("application/json");
        let scan = (prompt_chars, last_user, system);
        Ok(Parsed::chat(model, is_stream(req), json_mode, scan))
    }

    fn error(kind: ErrKind) -> HttpResponse {
        match kind {
            ErrKind::InvalidKey => google_error(
                400,
                "INVALID_ARGUMENT",
                "API key not valid. Please pass a valid API key.",
                Some(json!([
                    {
                        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                        "reason": "API_KEY_INVALID",
                        "domain": "googleapis.com",
                        "metadata": {"service": "generativelanguage.googleapis.com"}
                    },
                    {
                        "@type": "type.googleapis.com/google.rpc.LocalizedMessage",
                        "locale": "en-US",
                        "message": "API key not valid. Please pass a valid API key."
                    }
                ])),
            ),
            ErrKind::Unauthorized => google_error(
                401,
                "UNAUTHENTICATED",
                "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.",
                None,
            ),
            ErrKind::Server => google_error(
                500,
                "INTERNAL",
                "An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting",
                None,
            ),
            ErrKind::Timeout => google_error(
                504,
                "DEADLINE_EXCEEDED",
                "Deadline expired before operation could complete.",
                None,
            ),
        }
    }

    fn rate_limited(rl: &RateLimited, asked: Asked<'_>) -> HttpResponse {
        let model = asked.model;
        let (metric, quota_id) = match rl.kind {
            LimitKind::Rpm => (
                "generativelanguage.googleapis.com/generate_content_free_tier_requests",
                "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
            ),
            LimitKind::Rpd => (
                "generativelanguage.googleapis.com/generate_content_free_tier_requests",
                "GenerateRequestsPerDayPerProjectPerModel-FreeTier",
            ),
            LimitKind::Tpm => (
                "generativelanguage.googleapis.com/generate_content_free_tier_input_token_count",
                "GenerateContentInputTokensPerModelPerMinute-FreeTier",
            ),
            LimitKind::Tpd => (
                "generativelanguage.googleapis.com/generate_content_free_tier_input_token_count",
                "GenerateContentInputTokensPerModelPerDay-FreeTier",
            ),
        };
        let secs = rl.retry_secs();
        let message = format!(
            "You exceeded your current quota, please check your plan and billing details. For more information on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits. To monitor your current usage, head to: https://ai.dev/rate-limit. \n* Quota exceeded for metric: {metric}, limit: {}, model: {model}\nPlease retry in {:.3}s.",
            rl.limit,
            rl.retry_after.as_secs_f64()
        );
        google_error(
            429,
            "RESOURCE_EXHAUSTED",
            &message,
            Some(json!([
                {
                    "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                    "violations": [{
                        "quotaMetric": metric,
                        "quotaId": quota_id,
                        "quotaDimensions": {"location": "global", "model": model},
                        "quotaValue": rl.limit.to_string()
                    }]
                },
                {
                    "@type": "type.googleapis.com/google.rpc.Help",
                    "links": [{"description": "Learn more about Gemini API quotas", "url": "https://ai.google.dev/gemini-api/docs/rate-limits"}]
                },
                {
                    "@type": "type.googleapis.com/google.rpc.RetryInfo",
                    "retryDelay": format!("{secs}s")
                }
            ])),
        )
    }

    fn complete(a: &Answer) -> Value {
        chunk(a, &a.text, true)
    }

    /// `alt=sse`: `data:` events ending in CRLF CRLF, no `[DONE]`; otherwise one JSON array streamed in pieces.
    fn stream(a: &Answer, q: &Query) -> Plan {
        let n = a.pieces.len();
        let chunks: Vec<Value> = a
            .pieces
            .iter()
            .enumerate()
            .map(|(i, p)| chunk(a, p, i + 1 == n))
            .collect();
        if q.get("alt").map(String::as_str) == Some("sse") {
            Plan {
                content_type: "text/event-stream",
                head: vec![],
                pieces: chunks
                    .iter()
                    .map(|c| Bytes::from(format!("data: {c}\r\n\r\n")))
                    .collect(),
                tail: vec![],
            }
        } else {
            let pieces = chunks
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    let sep = if i == 0 { "" } else { ",\r\n" };
                    Bytes::from(format!("{sep}{c}"))
                })
                .collect();
            Plan {
                content_type: "application/json",
                head: vec![Bytes::from_static(b"[")],
                pieces,
                tail: vec![Bytes::from_static(b"]")],
            }
        }
    }
}
