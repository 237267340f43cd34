//! Cloudflare Workers AI: `POST {base_url}/accounts/{account_id}/ai/run/{model}` with `Authorization: Bearer`.
//! Answers come wrapped in `{"result":{...},"success":...,"errors":[...]}`; streams are SSE `{"response":"..."}` pieces then `[DONE]`.

use serde_json::{json, Value};

use super::{
    body_says_day_exhausted, classify_status, openai, ChatRequest, ChatResponse, ProviderError,
    StreamMapper, Target, WireFormat,
};
use super::{Call, Failure};

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

impl WireFormat for Cloudflare {
    fn request(&self, call: &Call<'_>) -> Result<reqwest::RequestBuilder, ProviderError> {
        Ok(call
            .post(url(call.target, call.req)?)
            .bearer_auth(call.key())
            .json(&body(call.req, call.stream)))
    }

    /// 429 is day-exhausted when it is code 3036 or mentions the daily / neuron allocation; an
    /// authentication code on a 400 is an invalid key.
    fn classify(&self, f: &Failure<'_>) -> ProviderError {
        let v = f.json();
        match f.status {
            429 => f.rate_limited(day_exhausted(&v, f.body)),
            400 if error_codes(&v).iter().any(|c| AUTH_CODES.contains(c)) => f.invalid_key(),
            _ => classify_status(f),
        }
    }

    /// The `result` envelope; newer models answer in OpenAI's `choices` shape inside it, read too.
    fn parse_response(&self, v: &Value) -> Result<ChatResponse, ProviderError> {
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

    /// `data: {"response":"piece"}` pieces, an optional last piece carrying `usage`, then
    /// `data: [DONE]` (which yields [`StreamChunk::Done`](super::StreamChunk::Done)), read by
    /// [`openai::until_done`]. OpenAI-shaped chunks (`choices[0].delta.content`) from newer models
    /// are read too.
    fn stream_mapper(&self) -> StreamMapper {
        openai::until_done(|v, ending| {
            if v.get("error").is_some() || v["success"] == Value::Bool(false) {
                return Err(ProviderError::Server { status: 500 });
            }
            if let Some(u) = openai::parse_usage(&v["usage"]) {
                ending.usage = Some(u);
            }
            let choice = &v["choices"][0];
            if let Some(f) = v["finish_reason"]
                .as_str()
                .or_else(|| choice["finish_reason"].as_str())
            {
                ending.finish_reason = Some(f.to_string());
            }
            Ok(v["response"]
                .as_str()
                .or_else(|| choice["delta"]["content"].as_str())
                .map(str::to_string))
        })
    }
}

/// Workers AI's cases for the shared table (`suite.rs`): the account in the URL (and no request
/// without one), the `result` envelope in both shapes, JSON-mode objects, neuron and auth codes.
#[cfg(test)]
pub(crate) fn fixture() -> super::suite::Fixture {
    use super::suite::*;
    use super::Role::*;
    use std::time::Duration;
    let grade = chat(
        &[(System, "You grade answers."), (User, "Grade this.")],
        300,
        None,
        true,
    );
    let mut warm = grade.clone();
    warm.json = false;
    warm.temperature = Some(0.5);
    let mut with_account = target(
        "https://api.cloudflare.com/client/v4",
        "@cf/meta/llama-3.1-8b-instruct",
        "cf-token-0123456789abcdef",
    );
    let no_account = with_account.clone();
    with_account.account_id = Some("abc123".into());
    let blank_account = Target {
        account_id: Some("  ".into()),
        ..with_account.clone()
    };
    let messages = json!([
        {"role": "system", "content": "You grade answers."},
        {"role": "user", "content": "Grade this."}
    ]);
    let url = "https://api.cloudflare.com/client/v4/accounts/abc123/ai/run/@cf/meta/llama-3.1-8b-instruct";
    Fixture {
        wire: &Cloudflare,
        target: with_account,
        requests: vec![
            Sent {
                req: grade.clone(),
                stream: false,
                target: None,
                expect: Ok(Http {
                    url,
                    headers: vec![("authorization", Some("Bearer cf-token-0123456789abcdef"))],
                    body: json!({"messages": messages, "max_tokens": 300, "response_format": {"type": "json_object"}}),
                }),
            },
            Sent {
                req: grade.clone(),
                stream: true,
                target: None,
                expect: Ok(Http {
                    url,
                    headers: vec![],
                    body: json!({"messages": messages, "max_tokens": 300, "stream": true, "response_format": {"type": "json_object"}}),
                }),
            },
            Sent {
                req: warm,
                stream: false,
                target: None,
                expect: Ok(Http {
                    url,
                    headers: vec![],
                    body: json!({"messages": messages, "max_tokens": 300, "temperature": 0.5}),
                }),
            },
            Sent {
                req: grade.clone(),
                stream: false,
                target: Some(no_account),
                expect: Err(Expect::Code("malformed")),
            },
            Sent {
                req: grade,
                stream: false,
                target: Some(blank_account),
                expect: Err(Expect::Code("malformed")),
            },
        ],
        answers: vec![
            (
                json!({
                    "result": {
                        "response": "Hello, World first appeared in 1974 at Bell Labs.",
                        "usage": {"prompt_tokens": 21, "completion_tokens": 14, "total_tokens": 35}
                    },
                    "success": true, "errors": [], "messages": []
                }),
                Ok(answer("Hello, World first appeared in 1974 at Bell Labs.", Some((21, 14)), None, None)),
            ),
            // JSON mode: `response` is already an object.
            (
                json!({
                    "result": {"response": {"name": "India"}, "usage": {"prompt_tokens": 30, "completion_tokens": 12, "total_tokens": 42}},
                    "success": true, "errors": [], "messages": []
                }),
                Ok(answer(r#"{"name":"India"}"#, Some((30, 12)), None, None)),
            ),
            // OpenAI-shaped result of newer models.
            (
                json!({"result": {"choices": [{"message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}]}, "success": true}),
                Ok(answer("ok", None, Some("stop"), None)),
            ),
            (json!({"result": {}, "success": true}), Err(Expect::Code("malformed"))),
            (
                json!({"result": null, "success": false, "errors": [{"code": 5007, "message": "No such model"}]}),
                Err(Expect::Code("malformed")),
            ),
            (
                json!({"result": null, "success": false, "errors": [{"code": 3036, "message": "Account limited"}]}),
                Err(Expect::Is(ProviderError::RateLimited { retry_after: None, day_exhausted: true })),
            ),
        ],
        streams: vec![
            Streamed {
                events: vec![
                    ("", r#"{"response":"New","p":"abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz0123456789"}"#),
                    ("", r#"{"response":" York","p":"abcdefghijkl"}"#),
                    ("", r#"{"response":" is","p":"abcd"}"#),
                    ("", r#"{"response":"","usage":{"prompt_tokens":12,"completion_tokens":3,"total_tokens":15}}"#),
                    ("", "[DONE]"),
                ],
                chunks: chunks(&["New", " York", " is"], Some((12, 3)), None),
                error: None,
            },
        ],
        failures: vec![
            FailedAnswer {
                status: 429,
                headers: vec![],
                body: r#"{"result":null,"success":false,"errors":[{"code":3036,"message":"AiError: Account limited: You have used up your daily free allocation of 10,000 neurons. Please upgrade to Cloudflare's Workers Paid plan if you would like to continue usage."}],"messages":[]}"#.into(),
                expect: Expect::Is(ProviderError::RateLimited { retry_after: None, day_exhausted: true }),
            },
            FailedAnswer {
                status: 429,
                headers: vec![("retry-after", "3")],
                body: r#"{"result":null,"success":false,"errors":[{"code":3040,"message":"AiError: Capacity temporarily exceeded, please try again."}],"messages":[]}"#.into(),
                expect: Expect::Is(ProviderError::RateLimited {
                    retry_after: Some(Duration::from_secs(3)),
                    day_exhausted: false,
                }),
            },
            FailedAnswer {
                status: 401,
                headers: vec![],
                body: r#"{"success":false,"errors":[{"code":10000,"message":"Authentication error"}]}"#.into(),
                expect: Expect::Is(ProviderError::InvalidKey { status: 401 }),
            },
            FailedAnswer {
                status: 400,
                headers: vec![],
                body: r#"{"success":false,"errors":[{"code":6003,"message":"Invalid request headers","error_chain":[{"code":6111,"message":"Invalid format for Authorization header"}]}],"messages":[],"result":null}"#.into(),
                expect: Expect::Is(ProviderError::InvalidKey { status: 400 }),
            },
            FailedAnswer {
                status: 400,
                headers: vec![],
                body: r#"{"result":null,"success":false,"errors":[{"code":5007,"message":"No such model @cf/x or task"}],"messages":[]}"#.into(),
                expect: Expect::Code("bad_request"),
            },
        ],
    }
}
