//! Cloudflare Workers AI: `POST {base_url}/accounts/{account_id}/ai/run/{model}` with `Authorization: Bearer`.
//! Answers come wrapped in `{"result":{...},"success":...,"errors":[...]}`; streams are SSE `{"response":"..."}` pieces then `[DONE]`.

use async_trait::async_trait;
use serde_json::{json, Value};

use super::{
    body_says_day_exhausted, classify_status, openai, read_json, retry_after_from_headers,
    send_classified, sse, ChatRequest, ChatResponse, ChunkStream, FormatKind, ProviderError,
    StreamChunk, Target, Usage, WireFormat,
};
use crate::secret::Secret;

/// Workers AI's "Account limited" code: the daily free neuron allocation is used up.
pub const CODE_DAILY_NEURONS: u64 = 3036;

/// Cloudflare API codes that mean the token itself was refused ("Authentication error",
/// "Invalid format for Authorization header").
const AUTH_CODES: [u64; 2] = [10000, 6111];

/// The Cloudflare Workers AI format.
pub struct Cloudflare;

/// The `ai/run` URL for `req`; fails when the target has no `account_id` (a configuration error,
/// reported as [`ProviderError::Malformed`] so the key's breaker takes the target out).
pub fn url(target: &Target, req: &ChatRequest) -> Result<String, ProviderError> {
    let account = target
        .account_id
        .as_deref()
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .ok_or_else(|| {
            ProviderError::Malformed("cloudflare target has no account_id configured".into())
        })?;
    Ok(format!(
        "{}/accounts/{account}/ai/run/{}",
        target.base_url,
        target.model_for(req)
    ))
}

/// The text-generation body: `messages`, `max_tokens`, optional `temperature`, `stream` when
/// streaming, and `response_format: {type: "json_object"}` for JSON mode.
pub fn body(req: &ChatRequest, stream: bool) -> Value {
    let mut b = json!({
        "messages": req.messages,
        "max_tokens": req.max_tokens,
    });
    if let Some(t) = req.temperature {
        b["temperature"] = json!(t);
    }
    if stream {
        b["stream"] = json!(true);
    }
    if req.json {
        b["response_format"] = json!({ "type": "json_object" });
    }
    b
}

/// All codes in an `errors` array, including nested `error_chain` codes.
fn error_codes(v: &Value) -> Vec<u64> {
    let mut codes = Vec::new();
    for e in v["errors"].as_array().into_iter().flatten() {
        codes.extend(e["code"].as_u64());
        for c in e["error_chain"].as_array().into_iter().flatten() {
            codes.extend(c["code"].as_u64());
        }
    }
    codes
}

/// Whether a rate-limit body says the daily neuron allocation is spent.
fn day_exhausted(v: &Value, body: &str) -> bool {
    error_codes(v).contains(&CODE_DAILY_NEURONS)
        || body_says_day_exhausted(body)
        || body.to_ascii_lowercase().contains("neurons")
}

/// Classifies a failed Workers AI answer: 429 is day-exhausted when it is code 3036 or mentions the
/// daily / neuron allocation; an authentication code on a 400 is an invalid key.
pub fn classify(
    status: u16,
    headers: &reqwest::header::HeaderMap,
    body: &str,
    secret: &Secret,
) -> ProviderError {
    let v: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    match status {
        429 => ProviderError::RateLimited {
            retry_after: retry_after_from_headers(headers),
            day_exhausted: day_exhausted(&v, body),
        },
        400 if error_codes(&v).iter().any(|c| AUTH_CODES.contains(c)) => {
            ProviderError::InvalidKey { status }
        }
        _ => classify_status(status, headers, body, secret),
    }
}

/// A `success: false` envelope that came with a 2xx status.
fn envelope_error(v: &Value) -> ProviderError {
    let codes = error_codes(v);
    if codes.contains(&CODE_DAILY_NEURONS) {
        return ProviderError::RateLimited {
            retry_after: None,
            day_exhausted: true,
        };
    }
    ProviderError::Malformed(format!("success=false, error codes {codes:?}"))
}

/// Turns `result.response` back into text: JSON mode may return an already-parsed object.
fn response_text(r: &Value) -> Option<String> {
    match r {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// Reads a non-streamed answer. Newer models answer in OpenAI's `choices` shape inside `result`;
/// that is read too.
pub fn parse_response(v: &Value) -> Result<ChatResponse, ProviderError> {
    if v["success"] == Value::Bool(false) {
        return Err(envelope_error(v));
    }
    let result = &v["result"];
    let choice = &result["choices"][0];
    let text = response_text(&result["response"])
        .or_else(|| choice["message"]["content"].as_str().map(str::to_string))
        .ok_or_else(|| ProviderError::Malformed("result.response missing".into()))?;
    let finish_reason = result["finish_reason"]
        .as_str()
        .or_else(|| choice["finish_reason"].as_str())
        .map(str::to_string);
    Ok(ChatResponse {
        text,
        usage: openai::parse_usage(&result["usage"]),
        finish_reason,
        model: result["model"].as_str().map(str::to_string),
    })
}

/// Maps one SSE event of a Workers AI stream: `data: {"response":"piece"}` pieces, an optional
/// last piece carrying `usage`, then `data: [DONE]` (which yields [`StreamChunk::Done`]).
/// OpenAI-shaped chunks (`choices[0].delta.content`) from newer models are read too.
pub fn stream_mapper(
) -> impl FnMut(&eventsource_stream::Event) -> Result<Vec<StreamChunk>, ProviderError> + Send + 'static
{
    let mut usage: Option<Usage> = None;
    let mut finish: Option<String> = None;
    move |ev| {
        let data = ev.data.trim();
        if data == "[DONE]" {
            return Ok(vec![StreamChunk::Done {
                usage: usage.take(),
                finish_reason: finish.take(),
            }]);
        }
        if data.is_empty() {
            return Ok(vec![]);
        }
        let v: Value = serde_json::from_str(data)
            .map_err(|e| ProviderError::Malformed(format!("bad stream chunk: {e}")))?;
        if v.get("error").is_some() || v["success"] == Value::Bool(false) {
            return Err(ProviderError::Server { status: 500 });
        }
        if let Some(u) = openai::parse_usage(&v["usage"]) {
            usage = Some(u);
        }
        let choice = &v["choices"][0];
        if let Some(f) = v["finish_reason"]
            .as_str()
            .or_else(|| choice["finish_reason"].as_str())
        {
            finish = Some(f.to_string());
        }
        let piece = v["response"]
            .as_str()
            .or_else(|| choice["delta"]["content"].as_str());
        Ok(match piece {
            Some(p) if !p.is_empty() => vec![StreamChunk::Delta(p.to_string())],
            _ => vec![],
        })
    }
}

fn request(
    http: &reqwest::Client,
    target: &Target,
    req: &ChatRequest,
    stream: bool,
) -> Result<reqwest::RequestBuilder, ProviderError> {
    Ok(http
        .post(url(target, req)?)
        .bearer_auth(target.secret.expose())
        .json(&body(req, stream)))
}

#[async_trait]
impl WireFormat for Cloudflare {
    fn kind(&self) -> FormatKind {
        FormatKind::Cloudflare
    }

    async fn complete(
        &self,
        http: &reqwest::Client,
        target: &Target,
        req: &ChatRequest,
    ) -> Result<ChatResponse, ProviderError> {
        let rb = request(http, target, req, false)?;
        let resp = send_classified(rb, target, false, classify).await?;
        parse_response(&read_json(resp, target).await?)
    }

    async fn stream(
        &self,
        http: &reqwest::Client,
        target: &Target,
        req: &ChatRequest,
    ) -> Result<ChunkStream, ProviderError> {
        let rb = request(http, target, req, true)?;
        let resp = send_classified(rb, target, true, classify).await?;
        Ok(sse::chunks(resp, stream_mapper()))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use eventsource_stream::Event;
    use reqwest::header::{HeaderMap, HeaderValue};

    use super::*;
    use crate::providers::{Message, Role};

    const KEY: &str = "cf-token-0123456789abcdef";

    fn target(account: Option<&str>) -> Target {
        Target {
            base_url: "https://api.cloudflare.com/client/v4".into(),
            model: "@cf/meta/llama-3.1-8b-instruct".into(),
            secret: Secret::new(KEY),
            account_id: account.map(str::to_string),
            api_version: None,
            timeout: Duration::from_secs(30),
        }
    }

    fn req(json: bool) -> ChatRequest {
        ChatRequest {
            messages: vec![
                Message::new(Role::System, "You grade answers."),
                Message::new(Role::User, "Grade this."),
            ],
            max_tokens: 300,
            temperature: None,
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
    fn url_needs_account_id() {
        assert_eq!(
            url(&target(Some("abc123")), &req(false)).ok().as_deref(),
            Some("https://api.cloudflare.com/client/v4/accounts/abc123/ai/run/@cf/meta/llama-3.1-8b-instruct")
        );
        assert!(matches!(
            url(&target(None), &req(false)),
            Err(ProviderError::Malformed(_))
        ));
        assert!(url(&target(Some("  ")), &req(false)).is_err());
        let http = reqwest::Client::new();
        let built = request(&http, &target(Some("abc123")), &req(false), false)
            .ok()
            .and_then(|rb| rb.build().ok());
        assert_eq!(
            built
                .as_ref()
                .and_then(|r| r.headers().get("authorization"))
                .and_then(|v| v.to_str().ok()),
            Some("Bearer cf-token-0123456789abcdef")
        );
    }

    #[test]
    fn body_shape() {
        let b = body(&req(true), true);
        assert_eq!(
            b,
            json!({
                "messages": [
                    {"role": "system", "content": "You grade answers."},
                    {"role": "user", "content": "Grade this."}
                ],
                "max_tokens": 300,
                "stream": true,
                "response_format": {"type": "json_object"}
            })
        );
        let mut r = req(false);
        r.temperature = Some(0.5);
        let b = body(&r, false);
        assert!(b.get("stream").is_none());
        assert!(b.get("response_format").is_none());
        assert_eq!(b["temperature"], 0.5);
    }

    #[test]
    fn parses_recorded_answers() {
        let v = json!({
            "result": {
                "response": "Hello, World first appeared in 1974 at Bell Labs.",
                "usage": {"prompt_tokens": 21, "completion_tokens": 14, "total_tokens": 35}
            },
            "success": true,
            "errors": [],
            "messages": []
        });
        let r = parse_response(&v).ok();
        assert_eq!(
            r.as_ref().map(|r| r.text.as_str()),
            Some("Hello, World first appeared in 1974 at Bell Labs.")
        );
        assert_eq!(
            r.and_then(|r| r.usage),
            Some(Usage {
                prompt_tokens: 21,
                completion_tokens: 14
            })
        );
        // JSON mode: `response` is already an object.
        let v = json!({
            "result": {"response": {"name": "India", "capital": "New Delhi"}, "usage": {"prompt_tokens": 30, "completion_tokens": 12, "total_tokens": 42}},
            "success": true, "errors": [], "messages": []
        });
        let text = parse_response(&v).ok().map(|r| r.text);
        let back: Option<Value> = text.as_deref().and_then(|t| serde_json::from_str(t).ok());
        assert_eq!(back, Some(json!({"name": "India", "capital": "New Delhi"})));
        // OpenAI-shaped result of newer models.
        let v = json!({"result": {"choices": [{"message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}]}, "success": true});
        let r = parse_response(&v).ok();
        assert_eq!(r.as_ref().map(|r| r.text.as_str()), Some("ok"));
        assert_eq!(r.and_then(|r| r.finish_reason).as_deref(), Some("stop"));
        assert!(matches!(
            parse_response(&json!({"result": {}, "success": true})),
            Err(ProviderError::Malformed(_))
        ));
        assert!(parse_response(
            &json!({"result": null, "success": false, "errors": [{"code": 5007, "message": "No such model"}]})
        )
        .is_err());
    }

    #[test]
    fn maps_recorded_stream() {
        let events = [
            r#"{"response":"New","p":"abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz0123456789"}"#,
            r#"{"response":" York","p":"abcdefghijkl"}"#,
            r#"{"response":" is","p":"abcd"}"#,
            r#"{"response":"","usage":{"prompt_tokens":12,"completion_tokens":3,"total_tokens":15}}"#,
            "[DONE]",
        ];
        let mut map = stream_mapper();
        let mut out = Vec::new();
        for e in events {
            out.extend(map(&ev(e)).unwrap_or_default());
        }
        assert_eq!(
            out,
            vec![
                StreamChunk::Delta("New".into()),
                StreamChunk::Delta(" York".into()),
                StreamChunk::Delta(" is".into()),
                StreamChunk::Done {
                    usage: Some(Usage {
                        prompt_tokens: 12,
                        completion_tokens: 3
                    }),
                    finish_reason: None,
                },
            ]
        );
        let mut map = stream_mapper();
        assert!(map(&ev("not json")).is_err());
    }

    #[test]
    fn classifies_429_and_auth() {
        let secret = Secret::new(KEY);
        let daily = r#"{"result":null,"success":false,"errors":[{"code":3036,"message":"AiError: Account limited: You have used up your daily free allocation of 10,000 neurons. Please upgrade to Cloudflare's Workers Paid plan if you would like to continue usage."}],"messages":[]}"#;
        assert_eq!(
            classify(429, &HeaderMap::new(), daily, &secret),
            ProviderError::RateLimited {
                retry_after: None,
                day_exhausted: true
            }
        );
        let mut h = HeaderMap::new();
        h.insert("retry-after", HeaderValue::from_static("3"));
        let capacity = r#"{"result":null,"success":false,"errors":[{"code":3040,"message":"AiError: Capacity temporarily exceeded, please try again."}],"messages":[]}"#;
        assert_eq!(
            classify(429, &h, capacity, &secret),
            ProviderError::RateLimited {
                retry_after: Some(Duration::from_secs(3)),
                day_exhausted: false
            }
        );
        let auth =
            r#"{"success":false,"errors":[{"code":10000,"message":"Authentication error"}]}"#;
        assert_eq!(
            classify(401, &HeaderMap::new(), auth, &secret),
            ProviderError::InvalidKey { status: 401 }
        );
        let bad_header = r#"{"success":false,"errors":[{"code":6003,"message":"Invalid request headers","error_chain":[{"code":6111,"message":"Invalid format for Authorization header"}]}],"messages":[],"result":null}"#;
        assert_eq!(
            classify(400, &HeaderMap::new(), bad_header, &secret),
            ProviderError::InvalidKey { status: 400 }
        );
        let no_model = r#"{"result":null,"success":false,"errors":[{"code":5007,"message":"No such model @cf/x or task"}],"messages":[]}"#;
        assert!(matches!(
            classify(400, &HeaderMap::new(), no_model, &secret),
            ProviderError::BadRequest { status: 400, .. }
        ));
    }
}
