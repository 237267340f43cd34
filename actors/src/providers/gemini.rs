//! Google Gemini REST (`v1beta`): `POST {base_url}/models/{model}:generateContent` and `:streamGenerateContent?alt=sse`.
//! The key travels in the `x-goog-api-key` header, never in the URL; 429 bodies carry `RetryInfo` and `QuotaFailure` details.

use async_trait::async_trait;
use serde_json::{json, Value};

use super::{
    body_says_day_exhausted, classify_status, parse_reset_duration, read_json,
    retry_after_from_headers, send_classified, sse, ChatRequest, ChatResponse, ChunkStream,
    FormatKind, ProviderError, Role, StreamChunk, Target, Usage, WireFormat,
};
use crate::secret::Secret;

/// The Gemini format.
pub struct Gemini;

/// The method URL for `req`: `generateContent`, or `streamGenerateContent?alt=sse` when streaming.
/// A configured `models/` prefix on the model name is tolerated.
pub fn url(target: &Target, req: &ChatRequest, stream: bool) -> String {
    let model = target.model_for(req);
    let model = model.strip_prefix("models/").unwrap_or(model);
    if stream {
        format!(
            "{}/models/{model}:streamGenerateContent?alt=sse",
            target.base_url
        )
    } else {
        format!("{}/models/{model}:generateContent", target.base_url)
    }
}

/// The `GenerateContentRequest` body: system messages joined into `systemInstruction`, the rest as
/// `contents` (roles `user` / `model`; consecutive messages of one role become parts of one turn).
pub fn body(req: &ChatRequest) -> Value {
    let system: Vec<&str> = req
        .messages
        .iter()
        .filter(|m| m.role == Role::System)
        .map(|m| m.content.as_str())
        .collect();
    let mut contents: Vec<Value> = Vec::new();
    for m in req.messages.iter().filter(|m| m.role != Role::System) {
        let role = if m.role == Role::Assistant {
            "model"
        } else {
            "user"
        };
        let part = json!({ "text": m.content });
        match contents.last_mut() {
            Some(last) if last["role"] == role => {
                if let Some(parts) = last["parts"].as_array_mut() {
                    parts.push(part);
                }
            }
            _ => contents.push(json!({ "role": role, "parts": [part] })),
        }
    }
    let mut config = json!({ "maxOutputTokens": req.max_tokens });
    if let Some(t) = req.temperature {
        config["temperature"] = json!(t);
    }
    if req.json {
        config["responseMimeType"] = json!("application/json");
    }
    let mut b = json!({ "contents": contents, "generationConfig": config });
    if !system.is_empty() {
        b["systemInstruction"] = json!({ "parts": [{ "text": system.join("\n\n") }] });
    }
    b
}

/// Reads `usageMetadata`; thinking tokens (`thoughtsTokenCount`) count as completion tokens.
pub fn parse_usage(u: &Value) -> Option<Usage> {
    Some(Usage {
        prompt_tokens: u["promptTokenCount"].as_u64()?,
        completion_tokens: u["candidatesTokenCount"].as_u64().unwrap_or(0)
            + u["thoughtsTokenCount"].as_u64().unwrap_or(0),
    })
}

/// The text parts of a candidate, concatenated (thought summaries skipped); `None` when it has none.
fn candidate_text(c: &Value) -> Option<String> {
    let parts = c["content"]["parts"].as_array()?;
    let mut text = String::new();
    let mut any = false;
    for p in parts {
        if p["thought"].as_bool() == Some(true) {
            continue;
        }
        if let Some(t) = p["text"].as_str() {
            text.push_str(t);
            any = true;
        }
    }
    any.then_some(text)
}

/// A prompt the safety filters refused: an answer with `promptFeedback.blockReason` and no candidates.
fn prompt_blocked(v: &Value) -> Option<ProviderError> {
    let reason = v["promptFeedback"]["blockReason"].as_str()?;
    let no_candidates = v["candidates"].as_array().is_none_or(|c| c.is_empty());
    no_candidates.then(|| ProviderError::BadRequest {
        status: 400,
        message: format!("prompt blocked by Gemini: {reason}"),
    })
}

/// Reads a `GenerateContentResponse`. A candidate without text but with a `finishReason`
/// (e.g. `SAFETY`, or `MAX_TOKENS` spent on thinking) gives an empty text with that reason.
pub fn parse_response(v: &Value) -> Result<ChatResponse, ProviderError> {
    if let Some(e) = prompt_blocked(v) {
        return Err(e);
    }
    let cand = v["candidates"]
        .get(0)
        .ok_or_else(|| ProviderError::Malformed("no candidates".into()))?;
    let text = candidate_text(cand);
    let finish_reason = cand["finishReason"].as_str().map(str::to_string);
    if text.is_none() && finish_reason.is_none() {
        return Err(ProviderError::Malformed(
            "candidates[0].content.parts missing".into(),
        ));
    }
    Ok(ChatResponse {
        text: text.unwrap_or_default(),
        usage: parse_usage(&v["usageMetadata"]),
        finish_reason,
        model: v["modelVersion"].as_str().map(str::to_string),
    })
}

/// The `error` object of a Google error body (`{"error":{...}}`, or `[{"error":{...}}]`).
fn error_object(v: &Value) -> &Value {
    if v.is_array() {
        &v[0]["error"]
    } else {
        &v["error"]
    }
}

/// The entries of `error.details` of one `@type` (e.g. `google.rpc.RetryInfo`).
fn details<'a>(err: &'a Value, type_suffix: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
    err["details"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(move |d| {
            d["@type"]
                .as_str()
                .is_some_and(|t| t.ends_with(type_suffix))
        })
}

/// `RetryInfo.retryDelay` (`"17s"`, `"38.2s"`).
fn retry_delay(err: &Value) -> Option<std::time::Duration> {
    details(err, "google.rpc.RetryInfo")
        .find_map(|d| d["retryDelay"].as_str().and_then(parse_reset_duration))
}

/// Whether a `QuotaFailure` names a daily quota (`quotaId` containing `PerDay`).
fn quota_is_daily(err: &Value) -> bool {
    details(err, "google.rpc.QuotaFailure")
        .flat_map(|d| d["violations"].as_array().into_iter().flatten())
        .any(|v| v["quotaId"].as_str().is_some_and(|q| q.contains("PerDay")))
}

/// Whether an `ErrorInfo` says the key is invalid (`API_KEY_INVALID`).
fn key_invalid(err: &Value) -> bool {
    details(err, "google.rpc.ErrorInfo").any(|d| d["reason"] == "API_KEY_INVALID")
}

fn rate_limited(err: &Value, headers: &reqwest::header::HeaderMap, body: &str) -> ProviderError {
    ProviderError::RateLimited {
        retry_after: retry_delay(err).or_else(|| retry_after_from_headers(headers)),
        day_exhausted: quota_is_daily(err) || body_says_day_exhausted(body),
    }
}

/// Classifies a failed Gemini answer: 429 takes its wait from `RetryInfo` (else the headers) and is
/// day-exhausted when a `PerDay` quota failed; 400 `API_KEY_INVALID` is an invalid key.
pub fn classify(
    status: u16,
    headers: &reqwest::header::HeaderMap,
    body: &str,
    secret: &Secret,
) -> ProviderError {
    let v: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    let err = error_object(&v);
    match status {
        429 => rate_limited(err, headers, body),
        400 if key_invalid(err) => ProviderError::InvalidKey { status },
        _ => classify_status(status, headers, body, secret),
    }
}

/// An error object sent inside the stream, after the 200 status.
fn stream_error(err: &Value, data: &str) -> ProviderError {
    let code = err["code"]
        .as_u64()
        .and_then(|c| u16::try_from(c).ok())
        .unwrap_or(500);
    match code {
        429 => rate_limited(err, &reqwest::header::HeaderMap::new(), data),
        401 | 403 => ProviderError::InvalidKey { status: code },
        500..=599 => ProviderError::Server { status: code },
        _ => ProviderError::Server { status: 500 },
    }
}

/// Maps one SSE event of `streamGenerateContent?alt=sse`: each `data:` is a `GenerateContentResponse`
/// chunk. There is no `[DONE]`: the chunk carrying `finishReason` is the last one, so it yields
/// [`StreamChunk::Done`] (with the latest `usageMetadata`); a body ending before it is a cut stream.
pub fn stream_mapper(
) -> impl FnMut(&eventsource_stream::Event) -> Result<Vec<StreamChunk>, ProviderError> + Send + 'static
{
    let mut usage: Option<Usage> = None;
    move |ev| {
        let data = ev.data.trim();
        if data.is_empty() {
            return Ok(vec![]);
        }
        let v: Value = serde_json::from_str(data)
            .map_err(|e| ProviderError::Malformed(format!("bad stream chunk: {e}")))?;
        if v.get("error").is_some() {
            return Err(stream_error(&v["error"], data));
        }
        if let Some(e) = prompt_blocked(&v) {
            return Err(e);
        }
        if let Some(u) = parse_usage(&v["usageMetadata"]) {
            usage = Some(u);
        }
        let mut out = Vec::new();
        if let Some(cand) = v["candidates"].get(0) {
            if let Some(t) = candidate_text(cand) {
                if !t.is_empty() {
                    out.push(StreamChunk::Delta(t));
                }
            }
            if let Some(f) = cand["finishReason"].as_str() {
                out.push(StreamChunk::Done {
                    usage: usage.take(),
                    finish_reason: Some(f.to_string()),
                });
            }
        }
        Ok(out)
    }
}

fn request(
    http: &reqwest::Client,
    target: &Target,
    req: &ChatRequest,
    stream: bool,
) -> reqwest::RequestBuilder {
    http.post(url(target, req, stream))
        .header("x-goog-api-key", target.secret.expose())
        .json(&body(req))
}

#[async_trait]
impl WireFormat for Gemini {
    fn kind(&self) -> FormatKind {
        FormatKind::Gemini
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
    use crate::providers::Message;

    const KEY: &str = "AIzaSyTestKey0123456789";

    fn target() -> Target {
        Target {
            base_url: "https://generativelanguage.googleapis.com/v1beta".into(),
            model: "gemini-2.0-flash".into(),
            secret: Secret::new(KEY),
            account_id: None,
            api_version: None,
            timeout: Duration::from_secs(30),
        }
    }

    fn req(json: bool) -> ChatRequest {
        ChatRequest {
            messages: vec![
                Message::new(Role::System, "You are an interviewer."),
                Message::new(Role::System, "Be brief."),
                Message::new(Role::User, "Hello"),
                Message::new(Role::Assistant, "Hi, tell me about yourself."),
                Message::new(Role::User, "I build engines."),
            ],
            max_tokens: 256,
            temperature: Some(0.3),
            json,
            model: None,
            json_schema: None,
        }
    }

    fn ev(data: &str) -> Event {
        Event {
            event: String::new(),
            data: data.into(),
            id: String::new(),
            retry: None,
        }
    }

    #[test]
    fn urls_and_key_header() {
        let t = target();
        assert_eq!(
            url(&t, &req(false), false),
            "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.0-flash:generateContent"
        );
        let mut r = req(false);
        r.model = Some("models/gemini-2.5-flash".into());
        assert_eq!(
            url(&t, &r, true),
            "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
        );
        let http = reqwest::Client::new();
        let built = request(&http, &t, &req(false), true).build().ok();
        assert!(built
            .as_ref()
            .is_some_and(|r| !r.url().as_str().contains(KEY)));
        assert_eq!(
            built
                .as_ref()
                .and_then(|r| r.headers().get("x-goog-api-key"))
                .and_then(|v| v.to_str().ok()),
            Some(KEY)
        );
    }

    #[test]
    fn body_shape() {
        let b = body(&req(true));
        assert_eq!(
            b["systemInstruction"],
            json!({"parts": [{"text": "You are an interviewer.\n\nBe brief."}]})
        );
        assert_eq!(
            b["contents"],
            json!([
                {"role": "user", "parts": [{"text": "Hello"}]},
                {"role": "model", "parts": [{"text": "Hi, tell me about yourself."}]},
                {"role": "user", "parts": [{"text": "I build engines."}]},
            ])
        );
        assert_eq!(b["generationConfig"]["maxOutputTokens"], 256);
        assert!(b["generationConfig"]["temperature"]
            .as_f64()
            .is_some_and(|t| (t - 0.3).abs() < 1e-6));
        assert_eq!(
            b["generationConfig"]["responseMimeType"],
            "application/json"
        );
        let plain = body(&ChatRequest {
            messages: vec![Message::new(Role::User, "a"), Message::new(Role::User, "b")],
            max_tokens: 10,
            temperature: None,
            json: false,
            model: None,
            json_schema: None,
        });
        assert!(plain.get("systemInstruction").is_none());
        assert!(plain["generationConfig"].get("responseMimeType").is_none());
        assert!(plain["generationConfig"].get("temperature").is_none());
        assert_eq!(
            plain["contents"],
            json!([{"role": "user", "parts": [{"text": "a"}, {"text": "b"}]}])
        );
    }

    #[test]
    fn parses_recorded_answer() {
        let v = json!({
            "candidates": [{
                "content": {
                    "parts": [{"text": "{\"score\": "}, {"text": "8}"}],
                    "role": "model"
                },
                "finishReason": "STOP",
                "avgLogprobs": -0.0123
            }],
            "usageMetadata": {
                "promptTokenCount": 42,
                "candidatesTokenCount": 6,
                "totalTokenCount": 48,
                "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 42}]
            },
            "modelVersion": "gemini-2.0-flash",
            "responseId": "abc123"
        });
        let r = parse_response(&v).ok();
        assert_eq!(r.as_ref().map(|r| r.text.as_str()), Some("{\"score\": 8}"));
        assert_eq!(
            r.as_ref().and_then(|r| r.finish_reason.as_deref()),
            Some("STOP")
        );
        assert_eq!(
            r.as_ref().and_then(|r| r.model.as_deref()),
            Some("gemini-2.0-flash")
        );
        assert_eq!(
            r.and_then(|r| r.usage),
            Some(Usage {
                prompt_tokens: 42,
                completion_tokens: 6
            })
        );
        // Thinking tokens count as output; thought parts are not answer text.
        let v = json!({
            "candidates": [{"content": {"parts": [{"text": "plan", "thought": true}, {"text": "ok"}], "role": "model"}, "finishReason": "STOP"}],
            "usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": 1, "thoughtsTokenCount": 30}
        });
        let r = parse_response(&v).ok();
        assert_eq!(r.as_ref().map(|r| r.text.as_str()), Some("ok"));
        assert_eq!(
            r.and_then(|r| r.usage).map(|u| u.completion_tokens),
            Some(31)
        );
        // A safety stop without content is an empty answer with its reason.
        let v = json!({"candidates": [{"finishReason": "SAFETY", "index": 0}]});
        assert_eq!(
            parse_response(&v).ok().and_then(|r| r.finish_reason),
            Some("SAFETY".into())
        );
        assert!(matches!(
            parse_response(&json!({"promptFeedback": {"blockReason": "SAFETY"}})),
            Err(ProviderError::BadRequest { .. })
        ));
        assert!(matches!(
            parse_response(&json!({"candidates": [{"index": 0}]})),
            Err(ProviderError::Malformed(_))
        ));
    }

    #[test]
    fn maps_recorded_stream() {
        let events = [
            r#"{"candidates": [{"content": {"parts": [{"text": "Hello"}],"role": "model"}}],"usageMetadata": {"promptTokenCount": 9,"totalTokenCount": 9},"modelVersion": "gemini-2.0-flash"}"#,
            r#"{"candidates": [{"content": {"parts": [{"text": " there, how can"}],"role": "model"}}],"usageMetadata": {"promptTokenCount": 9,"totalTokenCount": 9},"modelVersion": "gemini-2.0-flash"}"#,
            r#"{"candidates": [{"content": {"parts": [{"text": " I help?"}],"role": "model"},"finishReason": "STOP"}],"usageMetadata": {"promptTokenCount": 9,"candidatesTokenCount": 8,"totalTokenCount": 17},"modelVersion": "gemini-2.0-flash"}"#,
        ];
        let mut map = stream_mapper();
        let mut out = Vec::new();
        for e in events {
            out.extend(map(&ev(e)).unwrap_or_default());
        }
        assert_eq!(
            out,
            vec![
                StreamChunk::Delta("Hello".into()),
                StreamChunk::Delta(" there, how can".into()),
                StreamChunk::Delta(" I help?".into()),
                StreamChunk::Done {
                    usage: Some(Usage {
                        prompt_tokens: 9,
                        completion_tokens: 8
                    }),
                    finish_reason: Some("STOP".into()),
                },
            ]
        );
        // Without a finishReason nothing ends the stream (sse::chunks then reports the cut).
        let mut map = stream_mapper();
        let mid = map(&ev(events[0])).unwrap_or_default();
        assert!(!mid.iter().any(|c| matches!(c, StreamChunk::Done { .. })));
        // An error object inside the stream.
        let mut map = stream_mapper();
        assert_eq!(
            map(&ev(
                r#"{"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}}"#
            )),
            Err(ProviderError::Server { status: 503 })
        );
    }

    #[test]
    fn classifies_429_with_retry_info_and_daily_quota() {
        let secret = Secret::new(KEY);
        let body = r#"{
  "error": {
    "code": 429,
    "message": "You exceeded your current quota, please check your plan and billing details.",
    "status": "RESOURCE_EXHAUSTED",
    "details": [
      {
        "@type": "type.googleapis.com/google.rpc.QuotaFailure",
        "violations": [
          {
            "quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests",
            "quotaId": "GenerateRequestsPerDayPerProjectPerModel-FreeTier",
            "quotaDimensions": {"location": "global", "model": "gemini-2.0-flash"},
            "quotaValue": "200"
          }
        ]
      },
      {"@type": "type.googleapis.com/google.rpc.Help", "links": [{"description": "Learn more about Gemini API quotas", "url": "https://ai.google.dev/gemini-api/docs/rate-limits"}]},
      {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "17s"}
    ]
  }
}"#;
        assert_eq!(
            classify(429, &HeaderMap::new(), body, &secret),
            ProviderError::RateLimited {
                retry_after: Some(Duration::from_secs(17)),
                day_exhausted: true
            }
        );
        let minute = body
            .replace("PerDay", "PerMinute")
            .replace("\"17s\"", "\"38.2s\"");
        assert_eq!(
            classify(429, &HeaderMap::new(), &minute, &secret),
            ProviderError::RateLimited {
                retry_after: Some(Duration::from_millis(38_200)),
                day_exhausted: false
            }
        );
    }

    #[test]
    fn classifies_invalid_key() {
        let secret = Secret::new(KEY);
        let body = r#"{"error":{"code":400,"message":"API key not valid. Please pass a valid API key.","status":"INVALID_ARGUMENT","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"API_KEY_INVALID","domain":"googleapis.com","metadata":{"service":"generativelanguage.googleapis.com"}}]}}"#;
        assert_eq!(
            classify(400, &HeaderMap::new(), body, &secret),
            ProviderError::InvalidKey { status: 400 }
        );
        let body = r#"{"error":{"code":403,"message":"Method doesn't allow unregistered callers.","status":"PERMISSION_DENIED"}}"#;
        assert_eq!(
            classify(403, &HeaderMap::new(), body, &secret),
            ProviderError::InvalidKey { status: 403 }
        );
        // Any other 400 is the request's fault, with the key scrubbed from the message.
        let body = format!(
            r#"{{"error":{{"code":400,"message":"bad key {KEY} in request","status":"INVALID_ARGUMENT"}}}}"#
        );
        assert!(matches!(
            classify(400, &HeaderMap::new(), &body, &secret),
            ProviderError::BadRequest { status: 400, message } if !message.contains(KEY) && message.contains("*****")
        ));
    }

    /// Serves one canned HTTP answer on a local port; returns the base URL and the request text.
    async fn serve_once(answer: &'static str) -> Option<(String, tokio::task::JoinHandle<String>)> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.ok()?;
        let addr = listener.local_addr().ok()?;
        let task = tokio::spawn(async move {
            let Ok((mut sock, _)) = listener.accept().await else {
                return String::new();
            };
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            loop {
                let text = String::from_utf8_lossy(&buf).to_string();
                if let Some(end) = text.find("\r\n\r\n") {
                    let len = text
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                        })
                        .unwrap_or(0);
                    if buf.len() >= end + 4 + len {
                        break;
                    }
                }
                match sock.read(&mut chunk).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
            let _ = sock.write_all(answer.as_bytes()).await;
            let _ = sock.shutdown().await;
            String::from_utf8_lossy(&buf).to_string()
        });
        Some((format!("http://{addr}/v1beta"), task))
    }

    fn local_target(base_url: String) -> Target {
        Target {
            base_url,
            ..target()
        }
    }

    #[tokio::test]
    async fn stream_over_http_ends_at_finish_reason_or_reports_cut() {
        use futures::StreamExt;
        let http = reqwest::Client::new();

        let complete = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n\
            data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"Hi\"}],\"role\":\"model\"}}]}\r\n\r\n\
            data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"!\"}],\"role\":\"model\"},\"finishReason\":\"STOP\"}],\"usageMetadata\":{\"promptTokenCount\":3,\"candidatesTokenCount\":2}}\r\n\r\n";
        let served = serve_once(complete).await;
        assert!(served.is_some());
        let Some((base, task)) = served else { return };
        let stream = Gemini.stream(&http, &local_target(base), &req(false)).await;
        assert!(stream.is_ok());
        let Ok(stream) = stream else { return };
        let items: Vec<_> = stream.collect().await;
        assert_eq!(
            items,
            vec![
                Ok(StreamChunk::Delta("Hi".into())),
                Ok(StreamChunk::Delta("!".into())),
                Ok(StreamChunk::Done {
                    usage: Some(Usage {
                        prompt_tokens: 3,
                        completion_tokens: 2
                    }),
                    finish_reason: Some("STOP".into()),
                }),
            ]
        );
        let request_text = task.await.unwrap_or_default();
        assert!(request_text
            .starts_with("POST /v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse "));
        assert!(request_text
            .to_ascii_lowercase()
            .contains(&format!("x-goog-api-key: {}", KEY.to_ascii_lowercase())));

        let cut = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n\
            data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"Hi\"}],\"role\":\"model\"}}]}\r\n\r\n";
        let Some((base, _task)) = serve_once(cut).await else {
            return;
        };
        let items: Vec<_> = match Gemini.stream(&http, &local_target(base), &req(false)).await {
            Ok(s) => s.collect().await,
            Err(e) => vec![Err(e)],
        };
        assert_eq!(items.first(), Some(&Ok(StreamChunk::Delta("Hi".into()))));
        assert!(
            matches!(items.last(), Some(Err(ProviderError::Malformed(m))) if m.contains("cut"))
        );

        let limited = "HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json\r\nconnection: close\r\n\r\n\
            {\"error\":{\"code\":429,\"status\":\"RESOURCE_EXHAUSTED\",\"details\":[{\"@type\":\"type.googleapis.com/google.rpc.RetryInfo\",\"retryDelay\":\"5s\"}]}}";
        let Some((base, _task)) = serve_once(limited).await else {
            return;
        };
        let r = Gemini
            .complete(&http, &local_target(base), &req(false))
            .await;
        assert_eq!(
            r,
            Err(ProviderError::RateLimited {
                retry_after: Some(Duration::from_secs(5)),
                day_exhausted: false
            })
        );
    }
}
