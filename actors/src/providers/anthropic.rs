//! Anthropic Messages: `POST {base_url}/messages` with `x-api-key` and `anthropic-version: 2023-06-01`.
//! System messages go in the top-level `system`; streams are named SSE events ending with `message_stop`.

use serde_json::{json, Value};

use super::sse::{self, Data};
use super::{
    body_says_day_exhausted, classify_status, ChatRequest, ChatResponse, ProviderError, Role,
    StreamChunk, StreamMapper, Usage, WireFormat,
};
use super::{Call, Failure};

/// The `anthropic-version` header value.
pub const API_VERSION: &str = "2023-06-01";

/// Appended to the system prompt when the request asks for JSON (Anthropic has no JSON switch).
pub const JSON_INSTRUCTION: &str = "Answer with exactly one JSON object and nothing else: no prose, no Markdown code fences, no text before or after it.";

/// The Anthropic messages format.
pub struct Anthropic;

/// The request body: `model`, `max_tokens`, `system` (system messages joined, plus the JSON
/// instruction when `req.json`), `messages` (user / assistant), optional `temperature` (clamped to
/// Anthropic's 0..=1) and `stream` when streaming.
pub fn body(req: &ChatRequest, model: &str, stream: bool) -> Value {
    let mut system: Vec<&str> = req
        .messages
        .iter()
        .filter(|m| m.role == Role::System)
        .map(|m| m.content.as_str())
        .collect();
    if req.json {
        system.push(JSON_INSTRUCTION);
    }
    let messages: Vec<Value> = req
        .messages
        .iter()
        .filter(|m| m.role != Role::System)
        .map(|m| {
            let role = if m.role == Role::Assistant {
                "assistant"
            } else {
                "user"
            };
            json!({ "role": role, "content": m.content })
        })
        .collect();
    let mut b = json!({
        "model": model,
        "max_tokens": req.max_tokens,
        "messages": messages,
    });
    if !system.is_empty() {
        b["system"] = json!(system.join("\n\n"));
    }
    if let Some(t) = req.temperature {
        b["temperature"] = json!(t.clamp(0.0, 1.0));
    }
    if stream {
        b["stream"] = json!(true);
    }
    b
}

/// Input tokens of a `usage` object, cache reads and writes included.
fn input_tokens(u: &Value) -> Option<u64> {
    let base = u["input_tokens"].as_u64()?;
    Some(
        base + u["cache_creation_input_tokens"].as_u64().unwrap_or(0)
            + u["cache_read_input_tokens"].as_u64().unwrap_or(0),
    )
}

/// Reads an answer's `usage`.
pub fn parse_usage(u: &Value) -> Option<Usage> {
    Some(Usage {
        prompt_tokens: input_tokens(u)?,
        completion_tokens: u["output_tokens"].as_u64().unwrap_or(0),
    })
}

/// The error an `{"type":"error","error":{"type":...}}` object stands for (streams and bodies).
fn error_of_type(err: &Value) -> ProviderError {
    match err["type"].as_str().unwrap_or("") {
        "overloaded_error" => ProviderError::Server { status: 529 },
        "rate_limit_error" => ProviderError::RateLimited {
            retry_after: None,
            day_exhausted: false,
        },
        "authentication_error" => ProviderError::InvalidKey { status: 401 },
        "permission_error" => ProviderError::InvalidKey { status: 403 },
        "timeout_error" => ProviderError::Timeout,
        "invalid_request_error" => ProviderError::BadRequest {
            status: 400,
            message: "invalid_request_error".into(),
        },
        _ => ProviderError::Server { status: 500 },
    }
}

impl WireFormat for Anthropic {
    fn request(&self, call: &Call<'_>) -> Result<reqwest::RequestBuilder, ProviderError> {
        Ok(call
            .post(format!("{}/messages", call.target.base_url))
            .header("x-api-key", call.key())
            .header("anthropic-version", API_VERSION)
            .json(&body(call.req, call.model(), call.stream)))
    }

    /// 429 waits `retry-after`; a spend-limit 429 is treated as day-exhausted (it lasts until the
    /// month's reset). 402 `billing_error` and a 400 about the credit balance or a spend limit refuse
    /// the key. 529 (overloaded) is a server error.
    fn classify(&self, f: &Failure<'_>) -> ProviderError {
        let lower = f.lower_body();
        let spend_limit = lower.contains("spend_limit") || lower.contains("spend limit");
        match f.status {
            429 => f.rate_limited(spend_limit || body_says_day_exhausted(f.body)),
            402 => f.invalid_key(),
            400 if spend_limit || lower.contains("credit balance") => f.invalid_key(),
            _ => classify_status(f),
        }
    }

    /// A `Message`: its `text` content blocks, concatenated.
    fn parse_response(&self, v: &Value) -> Result<ChatResponse, ProviderError> {
        if v["type"] == "error" {
            return Err(error_of_type(&v["error"]));
        }
        let blocks = v["content"]
            .as_array()
            .ok_or_else(|| ProviderError::Malformed("content missing".into()))?;
        let text: String = blocks
            .iter()
            .filter(|b| b["type"] == "text")
            .filter_map(|b| b["text"].as_str())
            .collect();
        Ok(ChatResponse {
            text,
            usage: parse_usage(&v["usage"]),
            finish_reason: v["stop_reason"].as_str().map(str::to_string),
            model: v["model"].as_str().map(str::to_string),
        })
    }

    /// Events by their `event:` name (or the JSON `type`): `message_start` gives input usage,
    /// `content_block_delta` / `text_delta` gives text, `message_delta` gives the stop reason and
    /// output usage, `message_stop` yields [`StreamChunk::Done`], `error` fails (`overloaded_error` is
    /// `Server { status: 529 }`); `ping` and block start/stop events are skipped.
    fn stream_mapper(&self) -> StreamMapper {
        let mut input: Option<u64> = None;
        let mut output: Option<u64> = None;
        let mut finish: Option<String> = None;
        Box::new(move |ev| {
            let v = match sse::data(ev)? {
                Data::Empty => return Ok(vec![]),
                Data::Done => {
                    return Err(ProviderError::Malformed(
                        "[DONE] in a Messages stream".into(),
                    ))
                }
                Data::Json(v) => v,
            };
            let kind = if ev.event.is_empty() {
                v["type"].as_str().unwrap_or("")
            } else {
                ev.event.as_str()
            };
            match kind {
                "message_start" => {
                    let u = &v["message"]["usage"];
                    input = input_tokens(u).or(input);
                    output = u["output_tokens"].as_u64().or(output);
                    Ok(vec![])
                }
                "content_block_delta" => {
                    let d = &v["delta"];
                    Ok(match d["text"].as_str() {
                        Some(t) if d["type"] == "text_delta" && !t.is_empty() => {
                            vec![StreamChunk::Delta(t.to_string())]
                        }
                        _ => vec![],
                    })
                }
                "message_delta" => {
                    if let Some(r) = v["delta"]["stop_reason"].as_str() {
                        finish = Some(r.to_string());
                    }
                    let u = &v["usage"];
                    output = u["output_tokens"].as_u64().or(output);
                    input = input_tokens(u).or(input);
                    Ok(vec![])
                }
                "message_stop" => Ok(vec![StreamChunk::Done {
                    usage: (input.is_some() || output.is_some()).then(|| Usage {
                        prompt_tokens: input.unwrap_or(0),
                        completion_tokens: output.unwrap_or(0),
                    }),
                    finish_reason: finish.take(),
                }]),
                "error" => Err(error_of_type(&v["error"])),
                _ => Ok(vec![]),
            }
        })
    }
}

/// Anthropic's cases for the shared table (`suite.rs`): `x-api-key` and `anthropic-version`,
/// top-level `system` with the JSON instruction, clamped temperature, cache tokens in the input,
/// named stream events, spend limits, credit balance and overload.
#[cfg(test)]
pub(crate) fn fixture() -> super::suite::Fixture {
    use super::suite::*;
    use super::Role::*;
    use std::time::Duration;
    const KEY: &str = "sk-ant-api03-test0123456789";
    let graded = |json: bool| {
        chat(
            &[
                (System, "You are an interviewer."),
                (System, "Score from 0 to 10."),
                (User, "My answer: ..."),
            ],
            512,
            Some(1.5),
            json,
        )
    };
    let error = |kind: &str, message: &str| {
        format!(r#"{{"type":"error","error":{{"type":"{kind}","message":"{message}"}}}}"#)
    };
    Fixture {
        wire: &Anthropic,
        target: target("https://api.anthropic.com/v1", "claude-3-5-haiku-latest", KEY),
        requests: vec![
            Sent {
                req: graded(false),
                stream: false,
                target: None,
                expect: Ok(Http {
                    url: "https://api.anthropic.com/v1/messages",
                    headers: vec![
                        ("x-api-key", Some(KEY)),
                        ("anthropic-version", Some("2023-06-01")),
                        ("content-type", Some("application/json")),
                        ("authorization", None),
                    ],
                    body: json!({
                        "model": "claude-3-5-haiku-latest",
                        "max_tokens": 512,
                        "system": "You are an interviewer.\n\nScore from 0 to 10.",
                        "messages": [{"role": "user", "content": "My answer: ..."}],
                        "temperature": 1.0
                    }),
                }),
            },
            Sent {
                req: graded(true),
                stream: true,
                target: None,
                expect: Ok(Http {
                    url: "https://api.anthropic.com/v1/messages",
                    headers: vec![("x-api-key", Some(KEY))],
                    body: json!({
                        "model": "claude-3-5-haiku-latest",
                        "max_tokens": 512,
                        "system": format!("You are an interviewer.\n\nScore from 0 to 10.\n\n{JSON_INSTRUCTION}"),
                        "messages": [{"role": "user", "content": "My answer: ..."}],
                        "temperature": 1.0,
                        "stream": true
                    }),
                }),
            },
            Sent {
                req: chat(&[(User, "hi")], 5, None, false),
                stream: false,
                target: None,
                expect: Ok(Http {
                    url: "https://api.anthropic.com/v1/messages",
                    headers: vec![],
                    body: json!({"model": "claude-3-5-haiku-latest", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}),
                }),
            },
        ],
        answers: vec![
            (
                json!({
                    "id": "msg_013Zva2CMHLNnXjNJJKqJ2EF",
                    "type": "message",
                    "role": "assistant",
                    "model": "claude-3-5-haiku-20241022",
                    "content": [{"type": "text", "text": "{\"score\": "}, {"type": "text", "text": "6}"}],
                    "stop_reason": "end_turn",
                    "stop_sequence": null,
                    "usage": {"input_tokens": 2095, "output_tokens": 503, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 100}
                }),
                Ok(answer("{\"score\": 6}", Some((2195, 503)), Some("end_turn"), Some("claude-3-5-haiku-20241022"))),
            ),
            (json!({"type": "message"}), Err(Expect::Code("malformed"))),
            (
                json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
                Err(Expect::Is(ProviderError::Server { status: 529 })),
            ),
        ],
        streams: vec![
            Streamed {
                events: vec![
                    ("message_start", r#"{"type": "message_start", "message": {"id": "msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY", "type": "message", "role": "assistant", "content": [], "model": "claude-3-5-sonnet-20241022", "stop_reason": null, "stop_sequence": null, "usage": {"input_tokens": 25, "output_tokens": 1}}}"#),
                    ("content_block_start", r#"{"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}"#),
                    ("ping", r#"{"type": "ping"}"#),
                    ("content_block_delta", r#"{"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hello"}}"#),
                    ("content_block_delta", r#"{"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "!"}}"#),
                    ("content_block_stop", r#"{"type": "content_block_stop", "index": 0}"#),
                    ("message_delta", r#"{"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence":null}, "usage": {"output_tokens": 15}}"#),
                    ("message_stop", r#"{"type": "message_stop"}"#),
                ],
                chunks: chunks(&["Hello", "!"], Some((25, 15)), Some("end_turn")),
                error: None,
            },
            // Without an `event:` name the JSON `type` is used; an `error` event fails the stream.
            Streamed {
                events: vec![
                    ("", r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"x"}}"#),
                    ("error", r#"{"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}"#),
                ],
                chunks: vec![StreamChunk::Delta("x".into())],
                error: Some(Expect::Is(ProviderError::Server { status: 529 })),
            },
        ],
        failures: vec![
            FailedAnswer {
                status: 429,
                headers: vec![("retry-after", "12")],
                body: error("rate_limit_error", "This request would exceed the rate limit for your organization of 50,000 input tokens per minute."),
                expect: Expect::Is(ProviderError::RateLimited {
                    retry_after: Some(Duration::from_secs(12)),
                    day_exhausted: false,
                }),
            },
            FailedAnswer {
                status: 429,
                headers: vec![],
                body: r#"{"type":"error","error":{"type":"rate_limit_error","message":"You have reached your specified API usage limits.","details":{"error_code":"enforced_spend_limit_reached"}}}"#.into(),
                expect: Expect::Check(|e| matches!(e, ProviderError::RateLimited { day_exhausted: true, .. })),
            },
            FailedAnswer {
                status: 401,
                headers: vec![],
                body: error("authentication_error", "invalid x-api-key"),
                expect: Expect::Is(ProviderError::InvalidKey { status: 401 }),
            },
            FailedAnswer {
                status: 529,
                headers: vec![],
                body: error("overloaded_error", "Overloaded"),
                expect: Expect::Is(ProviderError::Server { status: 529 }),
            },
            FailedAnswer {
                status: 400,
                headers: vec![],
                body: error("invalid_request_error", "Your credit balance is too low to access the Anthropic API. Please go to Plans & Billing to upgrade or purchase credits."),
                expect: Expect::Is(ProviderError::InvalidKey { status: 400 }),
            },
            FailedAnswer {
                status: 400,
                headers: vec![],
                body: error("invalid_request_error", "max_tokens: Field required"),
                expect: Expect::Code("bad_request"),
            },
        ],
    }
}
