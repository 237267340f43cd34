//! Cohere Chat API v2: `POST {base_url}/chat` with `Authorization: Bearer`.
//! Streams are SSE events typed `message-start` … `content-delta` … `message-end`; the stream ends at `message-end`.

use serde_json::{json, Value};

use super::sse::{self, Data};
use super::{
    body_says_day_exhausted, classify_status, ChatRequest, ChatResponse, ProviderError,
    StreamChunk, StreamMapper, Usage, WireFormat,
};
use super::{Call, Failure};

/// The Cohere chat v2 format.
pub struct Cohere;

/// The request body: `model`, `messages` (roles `system` / `user` / `assistant`), `max_tokens`,
/// `stream`, optional `temperature`, and `response_format: {type: "json_object"}` for JSON mode.
pub fn body(req: &ChatRequest, model: &str, stream: bool) -> Value {
    let mut b = json!({
        "model": model,
        "messages": req.messages,
        "max_tokens": req.max_tokens,
        "stream": stream,
    });
    if let Some(t) = req.temperature {
        b["temperature"] = json!(t);
    }
    if req.json {
        b["response_format"] = json!({ "type": "json_object" });
    }
    b
}

/// Reads a v2 `usage` object: `tokens` when present, else `billed_units`.
pub fn parse_usage(u: &Value) -> Option<Usage> {
    let read = |o: &Value| {
        Some(Usage {
            prompt_tokens: o["input_tokens"].as_u64()?,
            completion_tokens: o["output_tokens"].as_u64().unwrap_or(0),
        })
    };
    read(&u["tokens"]).or_else(|| read(&u["billed_units"]))
}

/// Whether a finish reason (or an error text) says the generation failed.
fn failed(finish: Option<&str>) -> bool {
    finish.is_some_and(|f| f.eq_ignore_ascii_case("error"))
}

/// Whether a 429 body is about a monthly cap (trial keys: "limited to 1000 API calls / month") or a
/// daily one. A bare "Trial key" is not enough: trial keys also get per-minute 429s with that wording.
fn long_limit(body: &str) -> bool {
    body_says_day_exhausted(body) || body.to_ascii_lowercase().contains("month")
}

impl WireFormat for Cohere {
    fn request(&self, call: &Call<'_>) -> Result<reqwest::RequestBuilder, ProviderError> {
        Ok(call
            .post(format!("{}/chat", call.target.base_url))
            .bearer_auth(call.key())
            .json(&body(call.req, call.model(), call.stream)))
    }

    /// A 429 about a monthly (trial) or daily limit is day-exhausted; 402 (billing limit reached)
    /// refuses the key like 401/403.
    fn classify(&self, f: &Failure<'_>) -> ProviderError {
        match f.status {
            429 => f.rate_limited(long_limit(f.body)),
            402 => f.invalid_key(),
            _ => classify_status(f),
        }
    }

    /// The `text` items of `message.content`, concatenated; `finish_reason: ERROR` is a server failure.
    fn parse_response(&self, v: &Value) -> Result<ChatResponse, ProviderError> {
        let finish_reason = v["finish_reason"].as_str().map(str::to_string);
        if failed(finish_reason.as_deref()) {
            return Err(ProviderError::Server { status: 500 });
        }
        let content = v["message"]["content"].as_array();
        if content.is_none() && finish_reason.is_none() {
            return Err(ProviderError::Malformed("message.content missing".into()));
        }
        let text: String = content
            .into_iter()
            .flatten()
            .filter(|c| c["type"] == "text")
            .filter_map(|c| c["text"].as_str())
            .collect();
        Ok(ChatResponse {
            text,
            usage: parse_usage(&v["usage"]),
            finish_reason,
            model: None,
        })
    }

    /// The event type is the JSON `type` (or the SSE `event:` name): `content-delta` carries
    /// `delta.message.content.text`; `message-end` carries `delta.finish_reason` and `delta.usage` and
    /// yields [`StreamChunk::Done`]. Other events are skipped.
    fn stream_mapper(&self) -> StreamMapper {
        Box::new(|ev| {
            let v = match sse::data(ev)? {
                Data::Done => {
                    return Ok(vec![StreamChunk::Done {
                        usage: None,
                        finish_reason: None,
                    }])
                }
                Data::Empty => return Ok(vec![]),
                Data::Json(v) => v,
            };
            match v["type"].as_str().unwrap_or(ev.event.as_str()) {
                "content-delta" => Ok(match v["delta"]["message"]["content"]["text"].as_str() {
                    Some(t) if !t.is_empty() => vec![StreamChunk::Delta(t.to_string())],
                    _ => vec![],
                }),
                "message-end" => {
                    let delta = &v["delta"];
                    let finish = delta["finish_reason"].as_str();
                    if failed(finish) || delta["error"].as_str().is_some_and(|e| !e.is_empty()) {
                        return Err(ProviderError::Server { status: 500 });
                    }
                    Ok(vec![StreamChunk::Done {
                        usage: parse_usage(&delta["usage"]),
                        finish_reason: finish.map(str::to_string),
                    }])
                }
                _ => Ok(vec![]),
            }
        })
    }
}

/// Cohere's cases for the shared table (`suite.rs`): v2 roles and JSON mode, `tokens` over
/// `billed_units`, thinking content skipped, `ERROR` finishes, trial-key monthly and minute 429s.
#[cfg(test)]
pub(crate) fn fixture() -> super::suite::Fixture {
    use super::suite::*;
    use super::Role::*;
    let convo = chat(
        &[
            (System, "You are an interviewer."),
            (User, "Hello"),
            (Assistant, "Hi!"),
            (User, "Ask me something."),
        ],
        128,
        Some(0.25),
        true,
    );
    let mut plain = convo.clone();
    plain.temperature = None;
    plain.json = false;
    let messages = json!([
        {"role": "system", "content": "You are an interviewer."},
        {"role": "user", "content": "Hello"},
        {"role": "assistant", "content": "Hi!"},
        {"role": "user", "content": "Ask me something."}
    ]);
    let trial = |period: &str| {
        format!(
            r#"{{"id":"24e32f6d-b372-4853-85f2-11e65134f032","message":"You are using a Trial key, which is limited to {period}. You can continue to use the Trial key for free or upgrade to a Production key with higher rate limits at 'https://dashboard.cohere.com/api-keys'."}}"#
        )
    };
    Fixture {
        wire: &Cohere,
        target: target(
            "https://api.cohere.com/v2",
            "command-r-08-2024",
            "co-key-0123456789abcdef",
        ),
        requests: vec![
            Sent {
                req: plain,
                stream: false,
                target: None,
                expect: Ok(Http {
                    url: "https://api.cohere.com/v2/chat",
                    headers: vec![("authorization", Some("Bearer co-key-0123456789abcdef"))],
                    body: json!({"model": "command-r-08-2024", "messages": messages, "max_tokens": 128, "stream": false}),
                }),
            },
            Sent {
                req: convo,
                stream: true,
                target: None,
                expect: Ok(Http {
                    url: "https://api.cohere.com/v2/chat",
                    headers: vec![],
                    body: json!({
                        "model": "command-r-08-2024",
                        "messages": messages,
                        "max_tokens": 128,
                        "stream": true,
                        "temperature": 0.25,
                        "response_format": {"type": "json_object"}
                    }),
                }),
            },
        ],
        answers: vec![
            (
                json!({
                    "id": "c14c80c3-18eb-4519-9460-6c92edd8cfb4",
                    "finish_reason": "COMPLETE",
                    "message": {"role": "assistant", "content": [{"type": "text", "text": "LLMs stand for Large Language Models."}]},
                    "usage": {
                        "billed_units": {"input_tokens": 5, "output_tokens": 9},
                        "tokens": {"input_tokens": 71, "output_tokens": 9}
                    }
                }),
                Ok(answer(
                    "LLMs stand for Large Language Models.",
                    Some((71, 9)),
                    Some("COMPLETE"),
                    None,
                )),
            ),
            // Only billed units; thinking content is not answer text.
            (
                json!({
                    "finish_reason": "COMPLETE",
                    "message": {"role": "assistant", "content": [
                        {"type": "thinking", "thinking": "hmm"},
                        {"type": "text", "text": "{\"a\":1}"}
                    ]},
                    "usage": {"billed_units": {"input_tokens": 5, "output_tokens": 3}}
                }),
                Ok(answer("{\"a\":1}", Some((5, 3)), Some("COMPLETE"), None)),
            ),
            (json!({"id": "x"}), Err(Expect::Code("malformed"))),
            (
                json!({"finish_reason": "ERROR", "message": {"content": []}}),
                Err(Expect::Is(ProviderError::Server { status: 500 })),
            ),
        ],
        streams: vec![
            Streamed {
                events: vec![
                    (
                        "message-start",
                        r#"{"id":"29f14a5a-11de-4cae-9800-25e4747408ea","type":"message-start","delta":{"message":{"role":"assistant","content":[],"tool_plan":"","tool_calls":[],"citations":[]}}}"#,
                    ),
                    (
                        "content-start",
                        r#"{"type":"content-start","index":0,"delta":{"message":{"content":{"type":"text","text":""}}}}"#,
                    ),
                    (
                        "content-delta",
                        r#"{"type":"content-delta","index":0,"delta":{"message":{"content":{"text":"A large"}}}}"#,
                    ),
                    (
                        "content-delta",
                        r#"{"type":"content-delta","index":0,"delta":{"message":{"content":{"text":" language model"}}}}"#,
                    ),
                    ("content-end", r#"{"type":"content-end","index":0}"#),
                    (
                        "message-end",
                        r#"{"type":"message-end","delta":{"finish_reason":"COMPLETE","usage":{"billed_units":{"input_tokens":3,"output_tokens":4},"tokens":{"input_tokens":69,"output_tokens":4}}}}"#,
                    ),
                ],
                chunks: chunks(
                    &["A large", " language model"],
                    Some((69, 4)),
                    Some("COMPLETE"),
                ),
                error: None,
            },
            // The SSE event name is used when the JSON has no `type`; an error at the end fails.
            Streamed {
                events: vec![
                    (
                        "content-delta",
                        r#"{"delta":{"message":{"content":{"text":"x"}}}}"#,
                    ),
                    (
                        "message-end",
                        r#"{"type":"message-end","delta":{"error":"internal failure","finish_reason":"ERROR"}}"#,
                    ),
                ],
                chunks: vec![StreamChunk::Delta("x".into())],
                error: Some(Expect::Is(ProviderError::Server { status: 500 })),
            },
        ],
        failures: vec![
            FailedAnswer {
                status: 429,
                headers: vec![],
                body: trial("1000 API calls / month"),
                expect: Expect::Is(ProviderError::RateLimited {
                    retry_after: None,
                    day_exhausted: true,
                }),
            },
            FailedAnswer {
                status: 429,
                headers: vec![],
                body: trial("20 API calls / minute"),
                expect: Expect::Is(ProviderError::RateLimited {
                    retry_after: None,
                    day_exhausted: false,
                }),
            },
            FailedAnswer {
                status: 401,
                headers: vec![],
                body: r#"{"id":"y","message":"invalid api token"}"#.into(),
                expect: Expect::Is(ProviderError::InvalidKey { status: 401 }),
            },
            FailedAnswer {
                status: 402,
                headers: vec![],
                body: r#"{"message":"Please add or update your payment method"}"#.into(),
                expect: Expect::Is(ProviderError::InvalidKey { status: 402 }),
            },
        ],
    }
}
