//! Cohere Chat API v2: `POST {base_url}/chat` with `Authorization: Bearer`.
//! Streams are SSE events typed `message-start` … `content-delta` … `message-end`; the stream ends at `message-end`.

use async_trait::async_trait;
use serde_json::{json, Value};

use super::{
    body_says_day_exhausted, classify_status, read_json, retry_after_from_headers, send_classified,
    sse, ChatRequest, ChatResponse, ChunkStream, FormatKind, ProviderError, StreamChunk, Target,
    Usage, WireFormat,
};
use crate::secret::Secret;

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

/// Reads a non-streamed answer: the `text` items of `message.content`, concatenated.
/// `finish_reason: ERROR` is a server failure.
pub fn parse_response(v: &Value) -> Result<ChatResponse, ProviderError> {
    let finish_reason = v["finish_reason"].as_str().map(str::to_string);
    if finish_reason
        .as_deref()
        .is_some_and(|f| f.eq_ignore_ascii_case("error"))
    {
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

/// Whether a 429 body is about a monthly cap (trial keys: "limited to 1000 API calls / month") or a
/// daily one. A bare "Trial key" is not enough: trial keys also get per-minute 429s with that wording.
fn long_limit(body: &str) -> bool {
    body_says_day_exhausted(body) || body.to_ascii_lowercase().contains("month")
}

/// Classifies a failed Cohere answer: a 429 about a monthly (trial) or daily limit is day-exhausted;
/// 402 (billing limit reached) refuses the key like 401/403.
pub fn classify(
    status: u16,
    headers: &reqwest::header::HeaderMap,
    body: &str,
    secret: &Secret,
) -> ProviderError {
    match status {
        429 => ProviderError::RateLimited {
            retry_after: retry_after_from_headers(headers),
            day_exhausted: long_limit(body),
        },
        402 => ProviderError::InvalidKey { status },
        _ => classify_status(status, headers, body, secret),
    }
}

/// Maps one SSE event of a v2 chat stream. The event type is the JSON `type` (or the SSE `event:`
/// name): `content-delta` carries `delta.message.content.text`; `message-end` carries
/// `delta.finish_reason` and `delta.usage` and yields [`StreamChunk::Done`]. Other events are skipped.
pub fn stream_mapper(
) -> impl FnMut(&eventsource_stream::Event) -> Result<Vec<StreamChunk>, ProviderError> + Send + 'static
{
    move |ev| {
        let data = ev.data.trim();
        if data == "[DONE]" {
            return Ok(vec![StreamChunk::Done {
                usage: None,
                finish_reason: None,
            }]);
        }
        if data.is_empty() {
            return Ok(vec![]);
        }
        let v: Value = serde_json::from_str(data)
            .map_err(|e| ProviderError::Malformed(format!("bad stream chunk: {e}")))?;
        let kind = v["type"].as_str().unwrap_or(ev.event.as_str());
        match kind {
            "content-delta" => Ok(match v["delta"]["message"]["content"]["text"].as_str() {
                Some(t) if !t.is_empty() => vec![StreamChunk::Delta(t.to_string())],
                _ => vec![],
            }),
            "message-end" => {
                let delta = &v["delta"];
                let finish = delta["finish_reason"].as_str();
                if finish.is_some_and(|f| f.eq_ignore_ascii_case("error"))
                    || delta["error"].as_str().is_some_and(|e| !e.is_empty())
                {
                    return Err(ProviderError::Server { status: 500 });
                }
                Ok(vec![StreamChunk::Done {
                    usage: parse_usage(&delta["usage"]),
                    finish_reason: finish.map(str::to_string),
                }])
            }
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
    http.post(format!("{}/chat", target.base_url))
        .bearer_auth(target.secret.expose())
        .json(&body(req, target.model_for(req), stream))
}

#[async_trait]
impl WireFormat for Cohere {
    fn kind(&self) -> FormatKind {
        FormatKind::Cohere
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
    use reqwest::header::HeaderMap;

    use super::*;
    use crate::providers::{Message, Role};

    const KEY: &str = "co-key-0123456789abcdef";

    fn req(json: bool) -> ChatRequest {
        ChatRequest {
            messages: vec![
                Message::new(Role::System, "You are an interviewer."),
                Message::new(Role::User, "Hello"),
                Message::new(Role::Assistant, "Hi!"),
                Message::new(Role::User, "Ask me something."),
            ],
            max_tokens: 128,
            temperature: Some(0.25),
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
    fn body_shape_and_request() {
        let b = body(&req(true), "command-r-08-2024", true);
        assert_eq!(
            b,
            json!({
                "model": "command-r-08-2024",
                "messages": [
                    {"role": "system", "content": "You are an interviewer."},
                    {"role": "user", "content": "Hello"},
                    {"role": "assistant", "content": "Hi!"},
                    {"role": "user", "content": "Ask me something."}
                ],
                "max_tokens": 128,
                "stream": true,
                "temperature": 0.25,
                "response_format": {"type": "json_object"}
            })
        );
        let mut plain = req(false);
        plain.temperature = None;
        let b = body(&plain, "m", false);
        assert_eq!(b["stream"], false);
        assert!(b.get("temperature").is_none());
        assert!(b.get("response_format").is_none());

        let t = Target {
            base_url: "https://api.cohere.com/v2".into(),
            model: "command-r-08-2024".into(),
            secret: Secret::new(KEY),
            account_id: None,
            api_version: None,
            timeout: Duration::from_secs(30),
        };
        let http = reqwest::Client::new();
        let built = request(&http, &t, &req(false), false).build().ok();
        assert_eq!(
            built.as_ref().map(|r| r.url().as_str()),
            Some("https://api.cohere.com/v2/chat")
        );
        assert_eq!(
            built
                .as_ref()
                .and_then(|r| r.headers().get("authorization"))
                .and_then(|v| v.to_str().ok()),
            Some("Bearer co-key-0123456789abcdef")
        );
    }

    #[test]
    fn parses_recorded_answer() {
        let v = json!({
            "id": "c14c80c3-18eb-4519-9460-6c92edd8cfb4",
            "finish_reason": "COMPLETE",
            "message": {
                "role": "assistant",
                "content": [{"type": "text", "text": "LLMs stand for Large Language Models."}]
            },
            "usage": {
                "billed_units": {"input_tokens": 5, "output_tokens": 9},
                "tokens": {"input_tokens": 71, "output_tokens": 9}
            }
        });
        let r = parse_response(&v).ok();
        assert_eq!(
            r.as_ref().map(|r| r.text.as_str()),
            Some("LLMs stand for Large Language Models.")
        );
        assert_eq!(
            r.as_ref().and_then(|r| r.finish_reason.as_deref()),
            Some("COMPLETE")
        );
        assert_eq!(
            r.and_then(|r| r.usage),
            Some(Usage {
                prompt_tokens: 71,
                completion_tokens: 9
            })
        );
        // Only billed units; thinking content is not answer text.
        let v = json!({
            "finish_reason": "COMPLETE",
            "message": {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "hmm"},
                {"type": "text", "text": "{\"a\":1}"}
            ]},
            "usage": {"billed_units": {"input_tokens": 5, "output_tokens": 3}}
        });
        let r = parse_response(&v).ok();
        assert_eq!(r.as_ref().map(|r| r.text.as_str()), Some("{\"a\":1}"));
        assert_eq!(r.and_then(|r| r.usage).map(|u| u.total()), Some(8));
        assert!(matches!(
            parse_response(&json!({"id": "x"})),
            Err(ProviderError::Malformed(_))
        ));
        assert_eq!(
            parse_response(&json!({"finish_reason": "ERROR", "message": {"content": []}})),
            Err(ProviderError::Server { status: 500 })
        );
    }

    #[test]
    fn maps_recorded_stream() {
        let events = [
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
        ];
        let mut map = stream_mapper();
        let mut out = Vec::new();
        for (name, data) in events {
            out.extend(map(&ev(name, data)).unwrap_or_default());
        }
        assert_eq!(
            out,
            vec![
                StreamChunk::Delta("A large".into()),
                StreamChunk::Delta(" language model".into()),
                StreamChunk::Done {
                    usage: Some(Usage {
                        prompt_tokens: 69,
                        completion_tokens: 4
                    }),
                    finish_reason: Some("COMPLETE".into()),
                },
            ]
        );
        // The SSE event name is used when the JSON has no `type`.
        let mut map = stream_mapper();
        assert_eq!(
            map(&ev(
                "content-delta",
                r#"{"delta":{"message":{"content":{"text":"x"}}}}"#
            )),
            Ok(vec![StreamChunk::Delta("x".into())])
        );
        assert_eq!(
            map(&ev(
                "message-end",
                r#"{"type":"message-end","delta":{"error":"internal failure","finish_reason":"ERROR"}}"#
            )),
            Err(ProviderError::Server { status: 500 })
        );
    }

    #[test]
    fn classifies_429_and_401() {
        let secret = Secret::new(KEY);
        let h = HeaderMap::new();
        let monthly = r#"{"id":"24e32f6d-b372-4853-85f2-11e65134f032","message":"You are using a Trial key, which is limited to 1000 API calls / month. You can continue to use the Trial key for free or upgrade to a Production key with higher rate limits at 'https://dashboard.cohere.com/api-keys'. Contact us on 'https://discord.gg/XW44jPfYJu' or email us at support@cohere.com with any questions"}"#;
        assert_eq!(
            classify(429, &h, monthly, &secret),
            ProviderError::RateLimited {
                retry_after: None,
                day_exhausted: true
            }
        );
        let minute = r#"{"id":"x","message":"You are using a Trial key, which is limited to 20 API calls / minute. You can continue to use the Trial key for free or upgrade to a Production key with higher rate limits at 'https://dashboard.cohere.com/api-keys'."}"#;
        assert_eq!(
            classify(429, &h, minute, &secret),
            ProviderError::RateLimited {
                retry_after: None,
                day_exhausted: false
            }
        );
        let unauthorized = r#"{"id":"y","message":"invalid api token"}"#;
        assert_eq!(
            classify(401, &h, unauthorized, &secret),
            ProviderError::InvalidKey { status: 401 }
        );
        assert_eq!(
            classify(
                402,
                &h,
                r#"{"message":"Please add or update your payment method"}"#,
                &secret
            ),
            ProviderError::InvalidKey { status: 402 }
        );
    }
}
