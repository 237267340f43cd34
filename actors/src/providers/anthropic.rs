//! Anthropic Messages: `POST {base_url}/messages` with `x-api-key` and `anthropic-version: 2023-06-01`.
//! System messages go in the top-level `system`; streams are named SSE events ending with `message_stop`.

use async_trait::async_trait;
use serde_json::{json, Value};

use super::{
    body_says_day_exhausted, classify_status, read_json, retry_after_from_headers, send_classified,
    sse, ChatRequest, ChatResponse, ChunkStream, FormatKind, ProviderError, Role, StreamChunk,
    Target, Usage, WireFormat,
};
use crate::secret::Secret;

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

/// Reads a non-streamed `Message`: its `text` content blocks, concatenated.
pub fn parse_response(v: &Value) -> Result<ChatResponse, ProviderError> {
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

/// Classifies a failed Anthropic answer. 429 waits `retry-after`; a spend-limit 429 is treated as
/// day-exhausted (it lasts until the month's reset). 402 `billing_error` and a 400 about the credit
/// balance or a spend limit refuse the key. 529 (overloaded) is a server error.
pub fn classify(
    status: u16,
    headers: &reqwest::header::HeaderMap,
    body: &str,
    secret: &Secret,
) -> ProviderError {
    let lower = body.to_ascii_lowercase();
    let spend_limit = lower.contains("spend_limit") || lower.contains("spend limit");
    match status {
        429 => ProviderError::RateLimited {
            retry_after: retry_after_from_headers(headers),
            day_exhausted: spend_limit || body_says_day_exhausted(body),
        },
        402 => ProviderError::InvalidKey { status },
        400 if spend_limit || lower.contains("credit balance") => {
            ProviderError::InvalidKey { status }
        }
        _ => classify_status(status, headers, body, secret),
    }
}

/// Maps one SSE event of a Messages stream, by its `event:` name (or the JSON `type`):
/// `message_start` gives input usage, `content_block_delta` / `text_delta` gives text,
/// `message_delta` gives the stop reason and output usage, `message_stop` yields
/// [`StreamChunk::Done`], `error` fails (`overloaded_error` is `Server { status: 529 }`);
/// `ping` and block start/stop events are skipped.
pub fn stream_mapper(
) -> impl FnMut(&eventsource_stream::Event) -> Result<Vec<StreamChunk>, ProviderError> + Send + 'static
{
    let mut input: Option<u64> = None;
    let mut output: Option<u64> = None;
    let mut finish: Option<String> = None;
    move |ev| {
        let data = ev.data.trim();
        if data.is_empty() {
            return Ok(vec![]);
        }
        let v: Value = serde_json::from_str(data)
            .map_err(|e| ProviderError::Malformed(format!("bad stream event: {e}")))?;
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
    }
}

fn request(
    http: &reqwest::Client,
    target: &Target,
    req: &ChatRequest,
    stream: bool,
) -> reqwest::RequestBuilder {
    http.post(format!("{}/messages", target.base_url))
        .header("x-api-key", target.secret.expose())
        .header("anthropic-version", API_VERSION)
        .json(&body(req, target.model_for(req), stream))
}

#[async_trait]
impl WireFormat for Anthropic {
    fn kind(&self) -> FormatKind {
        FormatKind::Anthropic
    }

    async fn complete(
        &self,
        http: &reqwest::Client,
        target: &Target,
        req: &ChatRequest,
    ) -> Result<ChatResponse, ProviderError> {
        let resp =
            send_classified(request(http, target, req, false), target, false, classify).await?;
        parse_response(&read_json(resp, target).await?)
    }

    async fn stream(
        &self,
        http: &reqwest::Client,
        target: &Target,
        req: &ChatRequest,
    ) -> Result<ChunkStream, ProviderError> {
        let resp =
            send_classified(request(http, target, req, true), target, true, classify).await?;
        Ok(sse::chunks(resp, stream_mapper()))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use eventsource_stream::Event;
    use reqwest::header::{HeaderMap, HeaderValue};

    use super::*;
    use crate::providers::Message;

    const KEY: &str = "sk-ant-api03-test0123456789";

    fn req(json: bool) -> ChatRequest {
        ChatRequest {
            messages: vec![
                Message::new(Role::System, "You are an interviewer."),
                Message::new(Role::System, "Score from 0 to 10."),
                Message::new(Role::User, "My answer: ..."),
            ],
            max_tokens: 512,
            temperature: Some(1.4),
            json,
            model: None,
            json_schema: None,
        }
    }

    fn ev(event: &str, data: &str) -> Event {
        Event {
            event: event.into(),
            data: data.into(),
            id: String::new(),
            retry: None,
        }
    }

    #[test]
    fn body_shape_and_headers() {
        let b = body(&req(false), "claude-3-5-haiku-latest", false);
        assert_eq!(
            b,
            json!({
                "model": "claude-3-5-haiku-latest",
                "max_tokens": 512,
                "system": "You are an interviewer.\n\nScore from 0 to 10.",
                "messages": [{"role": "user", "content": "My answer: ..."}],
                "temperature": 1.0
            })
        );
        let b = body(&req(true), "m", true);
        assert_eq!(b["stream"], true);
        assert!(b["system"]
            .as_str()
            .is_some_and(|s| s.ends_with(JSON_INSTRUCTION) && s.starts_with("You are")));
        let no_system = ChatRequest {
            messages: vec![Message::new(Role::User, "hi")],
            max_tokens: 5,
            temperature: None,
            json: false,
            model: None,
            json_schema: None,
        };
        let b = body(&no_system, "m", false);
        assert!(b.get("system").is_none());
        assert!(b.get("temperature").is_none());
        assert!(b.get("stream").is_none());

        let t = Target {
            base_url: "https://api.anthropic.com/v1".into(),
            model: "claude-3-5-haiku-latest".into(),
            secret: Secret::new(KEY),
            account_id: None,
            api_version: None,
            timeout: Duration::from_secs(30),
        };
        let http = reqwest::Client::new();
        let built = request(&http, &t, &req(false), false).build().ok();
        let header = |name: &str| {
            built
                .as_ref()
                .and_then(|r| r.headers().get(name))
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        assert_eq!(
            built.as_ref().map(|r| r.url().as_str()),
            Some("https://api.anthropic.com/v1/messages")
        );
        assert_eq!(header("x-api-key").as_deref(), Some(KEY));
        assert_eq!(header("anthropic-version").as_deref(), Some("2023-06-01"));
        assert_eq!(header("content-type").as_deref(), Some("application/json"));
        assert!(header("authorization").is_none());
    }

    #[test]
    fn parses_recorded_answer() {
        let v = json!({
            "id": "msg_013Zva2CMHLNnXjNJJKqJ2EF",
            "type": "message",
            "role": "assistant",
            "model": "claude-3-5-haiku-20241022",
            "content": [{"type": "text", "text": "{\"score\": "}, {"type": "text", "text": "6}"}],
            "stop_reason": "end_turn",
            "stop_sequence": null,
            "usage": {"input_tokens": 2095, "output_tokens": 503, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 100}
        });
        let r = parse_response(&v).ok();
        assert_eq!(r.as_ref().map(|r| r.text.as_str()), Some("{\"score\": 6}"));
        assert_eq!(
            r.as_ref().and_then(|r| r.finish_reason.as_deref()),
            Some("end_turn")
        );
        assert_eq!(
            r.as_ref().and_then(|r| r.model.as_deref()),
            Some("claude-3-5-haiku-20241022")
        );
        assert_eq!(
            r.and_then(|r| r.usage),
            Some(Usage {
                prompt_tokens: 2195,
                completion_tokens: 503
            })
        );
        assert!(matches!(
            parse_response(&json!({"type": "message"})),
            Err(ProviderError::Malformed(_))
        ));
    }

    #[test]
    fn maps_recorded_stream() {
        let events = [
            (
                "message_start",
                r#"{"type": "message_start", "message": {"id": "msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY", "type": "message", "role": "assistant", "content": [], "model": "claude-3-5-sonnet-20241022", "stop_reason": null, "stop_sequence": null, "usage": {"input_tokens": 25, "output_tokens": 1}}}"#,
            ),
            (
                "content_block_start",
                r#"{"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}"#,
            ),
            ("ping", r#"{"type": "ping"}"#),
            (
                "content_block_delta",
                r#"{"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hello"}}"#,
            ),
            (
                "content_block_delta",
                r#"{"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "!"}}"#,
            ),
            (
                "content_block_stop",
                r#"{"type": "content_block_stop", "index": 0}"#,
            ),
            (
                "message_delta",
                r#"{"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence":null}, "usage": {"output_tokens": 15}}"#,
            ),
            ("message_stop", r#"{"type": "message_stop"}"#),
        ];
        let mut map = stream_mapper();
        let mut out = Vec::new();
        for (name, data) in events {
            out.extend(map(&ev(name, data)).unwrap_or_default());
        }
        assert_eq!(
            out,
            vec![
                StreamChunk::Delta("Hello".into()),
                StreamChunk::Delta("!".into()),
                StreamChunk::Done {
                    usage: Some(Usage {
                        prompt_tokens: 25,
                        completion_tokens: 15
                    }),
                    finish_reason: Some("end_turn".into()),
                },
            ]
        );
        let mut map = stream_mapper();
        assert_eq!(
            map(&ev(
                "error",
                r#"{"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}"#
            )),
            Err(ProviderError::Server { status: 529 })
        );
        // Without an `event:` name the JSON `type` is used.
        assert_eq!(
            map(&ev(
                "",
                r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"x"}}"#
            )),
            Ok(vec![StreamChunk::Delta("x".into())])
        );
    }

    #[test]
    fn classifies_429_401_529() {
        let secret = Secret::new(KEY);
        let mut h = HeaderMap::new();
        h.insert("retry-after", HeaderValue::from_static("12"));
        let body = r#"{"type":"error","error":{"type":"rate_limit_error","message":"This request would exceed the rate limit for your organization of 50,000 input tokens per minute."}}"#;
        assert_eq!(
            classify(429, &h, body, &secret),
            ProviderError::RateLimited {
                retry_after: Some(Duration::from_secs(12)),
                day_exhausted: false
            }
        );
        let spend = r#"{"type":"error","error":{"type":"rate_limit_error","message":"You have reached your specified API usage limits.","details":{"error_code":"enforced_spend_limit_reached"}}}"#;
        assert!(matches!(
            classify(429, &HeaderMap::new(), spend, &secret),
            ProviderError::RateLimited {
                day_exhausted: true,
                ..
            }
        ));
        let auth = r#"{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}"#;
        assert_eq!(
            classify(401, &HeaderMap::new(), auth, &secret),
            ProviderError::InvalidKey { status: 401 }
        );
        let over = r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#;
        assert_eq!(
            classify(529, &HeaderMap::new(), over, &secret),
            ProviderError::Server { status: 529 }
        );
        let credit = r#"{"type":"error","error":{"type":"invalid_request_error","message":"Your credit balance is too low to access the Anthropic API. Please go to Plans & Billing to upgrade or purchase credits."}}"#;
        assert_eq!(
            classify(400, &HeaderMap::new(), credit, &secret),
            ProviderError::InvalidKey { status: 400 }
        );
        let bad = r#"{"type":"error","error":{"type":"invalid_request_error","message":"max_tokens: Field required"}}"#;
        assert!(matches!(
            classify(400, &HeaderMap::new(), bad, &secret),
            ProviderError::BadRequest { status: 400, .. }
        ));
    }
}
