//! Google Gemini REST (`v1beta`): `POST {base_url}/models/{model}:generateContent` and `:streamGenerateContent?alt=sse`.
//! The key travels in the `x-goog-api-key` header, never in the URL; 429 bodies carry `RetryInfo` and `QuotaFailure` details.

use serde_json::{json, Value};

use super::sse::{self, Data};
use super::{
    body_says_day_exhausted, classify_status, parse_reset_duration, retry_after_from_headers,
    ChatRequest, ChatResponse, ProviderError, Role, StreamChunk, StreamMapper, Target, Usage,
    WireFormat,
};
use super::{Call, Failure};

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

impl WireFormat for Gemini {
    /// The key travels in the `x-goog-api-key` header, never in the URL.
    fn request(&self, call: &Call<'_>) -> Result<reqwest::RequestBuilder, ProviderError> {
        Ok(call
            .post(url(call.target, call.req, call.stream))
            .header("x-goog-api-key", call.key())
            .json(&body(call.req)))
    }

    /// 429 takes its wait from `RetryInfo` (else the headers) and is day-exhausted when a `PerDay`
    /// quota failed; 400 `API_KEY_INVALID` is an invalid key.
    fn classify(&self, f: &Failure<'_>) -> ProviderError {
        let v = f.json();
        let err = error_object(&v);
        match f.status {
            429 => rate_limited(err, f.headers, f.body),
            400 if key_invalid(err) => f.invalid_key(),
            _ => classify_status(f),
        }
    }

    /// A `GenerateContentResponse`. A candidate without text but with a `finishReason` (e.g.
    /// `SAFETY`, or `MAX_TOKENS` spent on thinking) gives an empty text with that reason.
    fn parse_response(&self, v: &Value) -> Result<ChatResponse, ProviderError> {
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

    /// Each `data:` of `streamGenerateContent?alt=sse` is a `GenerateContentResponse` chunk. There is
    /// no `[DONE]`: the chunk carrying `finishReason` is the last one, so it yields
    /// [`StreamChunk::Done`] (with the latest `usageMetadata`); a body ending before it is a cut stream.
    fn stream_mapper(&self) -> StreamMapper {
        let mut usage: Option<Usage> = None;
        Box::new(move |ev| {
            let v = match sse::data(ev)? {
                Data::Empty => return Ok(vec![]),
                Data::Done => {
                    return Err(ProviderError::Malformed("[DONE] in a Gemini stream".into()))
                }
                Data::Json(v) => v,
            };
            if v.get("error").is_some() {
                return Err(stream_error(&v["error"], &ev.data));
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
        })
    }
}

/// Gemini's cases for the shared table (`suite.rs`): method URLs, the key in a header (never the
/// URL), system instructions and merged turns, thinking tokens, safety stops, `RetryInfo` and
/// `PerDay` quota failures.
#[cfg(test)]
pub(crate) fn fixture() -> super::suite::Fixture {
    use super::suite::*;
    use super::Role::*;
    use std::time::Duration;
    const KEY: &str = "AIzaSyTestKey0123456789";
    let convo = chat(
        &[
            (System, "You are an interviewer."),
            (System, "Be brief."),
            (User, "Hello"),
            (Assistant, "Hi, tell me about yourself."),
            (User, "I build engines."),
        ],
        256,
        Some(0.25),
        true,
    );
    let mut streamed = chat(&[(User, "a"), (User, "b")], 10, None, false);
    streamed.model = Some("models/gemini-2.5-flash".into());
    let quota = r#"{
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
    let no_key_in_message = |e: &ProviderError| matches!(e, ProviderError::BadRequest { status: 400, message } if !message.contains(KEY) && message.contains("*****"));
    Fixture {
        wire: &Gemini,
        target: target("https://generativelanguage.googleapis.com/v1beta", "gemini-2.0-flash", KEY),
        requests: vec![
            Sent {
                req: convo,
                stream: false,
                target: None,
                expect: Ok(Http {
                    url: "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.0-flash:generateContent",
                    headers: vec![("x-goog-api-key", Some(KEY)), ("authorization", None)],
                    body: json!({
                        "systemInstruction": {"parts": [{"text": "You are an interviewer.\n\nBe brief."}]},
                        "contents": [
                            {"role": "user", "parts": [{"text": "Hello"}]},
                            {"role": "model", "parts": [{"text": "Hi, tell me about yourself."}]},
                            {"role": "user", "parts": [{"text": "I build engines."}]},
                        ],
                        "generationConfig": {"maxOutputTokens": 256, "temperature": 0.25, "responseMimeType": "application/json"}
                    }),
                }),
            },
            // A `models/` prefix is tolerated; consecutive messages of one role are one turn.
            Sent {
                req: streamed,
                stream: true,
                target: None,
                expect: Ok(Http {
                    url: "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse",
                    headers: vec![("x-goog-api-key", Some(KEY))],
                    body: json!({
                        "contents": [{"role": "user", "parts": [{"text": "a"}, {"text": "b"}]}],
                        "generationConfig": {"maxOutputTokens": 10}
                    }),
                }),
            },
        ],
        answers: vec![
            (
                json!({
                    "candidates": [{
                        "content": {"parts": [{"text": "{\"score\": "}, {"text": "8}"}], "role": "model"},
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
                }),
                Ok(answer("{\"score\": 8}", Some((42, 6)), Some("STOP"), Some("gemini-2.0-flash"))),
            ),
            // Thinking tokens count as output; thought parts are not answer text.
            (
                json!({
                    "candidates": [{"content": {"parts": [{"text": "plan", "thought": true}, {"text": "ok"}], "role": "model"}, "finishReason": "STOP"}],
                    "usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": 1, "thoughtsTokenCount": 30}
                }),
                Ok(answer("ok", Some((5, 31)), Some("STOP"), None)),
            ),
            // A safety stop without content is an empty answer with its reason.
            (
                json!({"candidates": [{"finishReason": "SAFETY", "index": 0}]}),
                Ok(answer("", None, Some("SAFETY"), None)),
            ),
            (
                json!({"promptFeedback": {"blockReason": "SAFETY"}}),
                Err(Expect::Code("bad_request")),
            ),
            (json!({"candidates": [{"index": 0}]}), Err(Expect::Code("malformed"))),
        ],
        streams: vec![
            Streamed {
                events: vec![
                    ("", r#"{"candidates": [{"content": {"parts": [{"text": "Hello"}],"role": "model"}}],"usageMetadata": {"promptTokenCount": 9,"totalTokenCount": 9},"modelVersion": "gemini-2.0-flash"}"#),
                    ("", r#"{"candidates": [{"content": {"parts": [{"text": " there, how can"}],"role": "model"}}],"usageMetadata": {"promptTokenCount": 9,"totalTokenCount": 9},"modelVersion": "gemini-2.0-flash"}"#),
                    ("", r#"{"candidates": [{"content": {"parts": [{"text": " I help?"}],"role": "model"},"finishReason": "STOP"}],"usageMetadata": {"promptTokenCount": 9,"candidatesTokenCount": 8,"totalTokenCount": 17},"modelVersion": "gemini-2.0-flash"}"#),
                ],
                chunks: chunks(&["Hello", " there, how can", " I help?"], Some((9, 8)), Some("STOP")),
                error: None,
            },
            // Without a finishReason nothing ends the stream (the cut is reported by `sse::chunks`).
            Streamed {
                events: vec![("", r#"{"candidates": [{"content": {"parts": [{"text": "Hello"}],"role": "model"}}]}"#)],
                chunks: vec![StreamChunk::Delta("Hello".into())],
                error: None,
            },
            // An error object inside the stream.
            Streamed {
                events: vec![("", r#"{"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}}"#)],
                chunks: vec![],
                error: Some(Expect::Is(ProviderError::Server { status: 503 })),
            },
        ],
        failures: vec![
            FailedAnswer {
                status: 429,
                headers: vec![],
                body: quota.into(),
                expect: Expect::Is(ProviderError::RateLimited {
                    retry_after: Some(Duration::from_secs(17)),
                    day_exhausted: true,
                }),
            },
            FailedAnswer {
                status: 429,
                headers: vec![],
                body: quota.replace("PerDay", "PerMinute").replace("\"17s\"", "\"38.2s\""),
                expect: Expect::Is(ProviderError::RateLimited {
                    retry_after: Some(Duration::from_millis(38_200)),
                    day_exhausted: false,
                }),
            },
            FailedAnswer {
                status: 400,
                headers: vec![],
                body: r#"{"error":{"code":400,"message":"API key not valid. Please pass a valid API key.","status":"INVALID_ARGUMENT","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"API_KEY_INVALID","domain":"googleapis.com","metadata":{"service":"generativelanguage.googleapis.com"}}]}}"#.into(),
                expect: Expect::Is(ProviderError::InvalidKey { status: 400 }),
            },
            FailedAnswer {
                status: 403,
                headers: vec![],
                body: r#"{"error":{"code":403,"message":"Method doesn't allow unregistered callers.","status":"PERMISSION_DENIED"}}"#.into(),
                expect: Expect::Is(ProviderError::InvalidKey { status: 403 }),
            },
            // Any other 400 is the request's fault, with the key scrubbed from the message.
            FailedAnswer {
                status: 400,
                headers: vec![],
                body: format!(r#"{{"error":{{"code":400,"message":"bad key {KEY} in request","status":"INVALID_ARGUMENT"}}}}"#),
                expect: Expect::Check(no_key_in_message),
            },
        ],
    }
}
