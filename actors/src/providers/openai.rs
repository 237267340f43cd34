//! OpenAI-compatible chat completions: `POST {base_url}/chat/completions` with `Authorization: Bearer`.
//! Shared by Groq, Together, Cerebras, DeepSeek, Fireworks, GitHub Models, Mistral, OpenRouter, Hugging
//! Face, and (as [`LOCAL`]) by local inference servers (vLLM, TGI, llama.cpp) through `gpu_node.rs`.

use serde_json::{json, Value};

use super::sse::{self, Data};
use super::Call;
use super::{
    ChatRequest, ChatResponse, ProviderError, StreamChunk, StreamMapper, Usage, WireFormat,
};

/// The OpenAI chat-completions format.
pub struct OpenAi {
    /// A local inference server rather than a cloud provider: the target's own model always (a
    /// request's model override is for cloud providers), a bearer token only when one is set, and the
    /// request's JSON schema sent for constrained decoding (llama.cpp, vLLM), so that even a small
    /// model's answer has the shape asked for.
    pub local: bool,
}

/// The format as cloud providers speak it.
pub const CLOUD: OpenAi = OpenAi { local: false };

/// The format as local inference servers speak it (see [`OpenAi::local`]).
pub const LOCAL: OpenAi = OpenAi { local: true };

/// The request body in OpenAI's shape (also used by Azure OpenAI, which omits `model`).
pub fn body(req: &ChatRequest, model: Option<&str>, stream: bool) -> Value {
    let mut b = json!({
        "messages": req.messages,
        "max_tokens": req.max_tokens,
        "stream": stream,
    });
    if let Some(m) = model {
        b["model"] = json!(m);
    }
    if let Some(t) = req.temperature {
        b["temperature"] = json!(t);
    }
    if req.json {
        b["response_format"] = json!({"type": "json_object"});
    }
    if stream {
        b["stream_options"] = json!({"include_usage": true});
    }
    b
}

/// Reads a non-streamed OpenAI-shaped answer.
pub fn parse_response(v: &Value) -> Result<ChatResponse, ProviderError> {
    let choice = v["choices"]
        .get(0)
        .ok_or_else(|| ProviderError::Malformed("no choices".into()))?;
    let text = choice["message"]["content"]
        .as_str()
        .ok_or_else(|| ProviderError::Malformed("choices[0].message.content missing".into()))?;
    Ok(ChatResponse {
        text: text.to_string(),
        usage: parse_usage(&v["usage"]),
        finish_reason: choice["finish_reason"].as_str().map(str::to_string),
        model: v["model"].as_str().map(str::to_string),
    })
}

/// Reads an OpenAI `usage` object.
pub fn parse_usage(u: &Value) -> Option<Usage> {
    Some(Usage {
        prompt_tokens: u["prompt_tokens"].as_u64()?,
        completion_tokens: u["completion_tokens"].as_u64().unwrap_or(0),
    })
}

/// What a stream ending in `data: [DONE]` has said about its end so far.
#[derive(Debug, Default)]
pub struct Ending {
    /// The usage, from whichever event carried it.
    pub usage: Option<Usage>,
    /// The stop reason, from whichever event carried it.
    pub finish_reason: Option<String>,
}

/// A mapper for streams of JSON `data:` events ending with `data: [DONE]` (OpenAI's, Workers AI's):
/// `piece` reads one event's text, noting usage and stop reason in the [`Ending`] as they pass (or
/// fails the stream); `[DONE]` yields [`StreamChunk::Done`] with what was noted. Empty pieces are
/// dropped.
pub fn until_done<F>(mut piece: F) -> StreamMapper
where
    F: FnMut(&Value, &mut Ending) -> Result<Option<String>, ProviderError> + Send + 'static,
{
    let mut ending = Ending::default();
    Box::new(move |ev| {
        let v = match sse::data(ev)? {
            Data::Done => {
                let Ending {
                    usage,
                    finish_reason,
                } = std::mem::take(&mut ending);
                return Ok(vec![StreamChunk::Done {
                    usage,
                    finish_reason,
                }]);
            }
            Data::Empty => return Ok(vec![]),
            Data::Json(v) => v,
        };
        Ok(piece(&v, &mut ending)?
            .filter(|p| !p.is_empty())
            .map(StreamChunk::Delta)
            .into_iter()
            .collect())
    })
}

/// Maps the events of an OpenAI-shaped stream: `data: {chunk}` pieces, then `data: [DONE]`.
/// Usage arrives in a last chunk with empty `choices` when `stream_options.include_usage` is set.
pub fn stream_mapper() -> StreamMapper {
    until_done(|v, ending| {
        if v.get("error").is_some() {
            return Err(ProviderError::Server { status: 500 });
        }
        if let Some(u) = parse_usage(&v["usage"]) {
            ending.usage = Some(u);
        }
        let Some(choice) = v["choices"].get(0) else {
            return Ok(None);
        };
        if let Some(f) = choice["finish_reason"].as_str() {
            ending.finish_reason = Some(f.to_string());
        }
        Ok(choice["delta"]["content"].as_str().map(str::to_string))
    })
}

impl WireFormat for OpenAi {
    fn request(&self, call: &Call<'_>) -> Result<reqwest::RequestBuilder, ProviderError> {
        let url = format!("{}/chat/completions", call.target.base_url);
        let model = if self.local {
            &call.target.model
        } else {
            call.model()
        };
        let mut b = body(call.req, Some(model), call.stream);
        if let Some(schema) = call.req.json_schema.as_ref().filter(|_| self.local) {
            b["response_format"] = json!({
                "type": "json_schema",
                "json_schema": {"name": "answer", "schema": schema},
            });
        }
        let rb = call.post(url).json(&b);
        Ok(if self.local && call.target.secret.is_empty() {
            rb
        } else {
            rb.bearer_auth(call.key())
        })
    }

    fn parse_response(&self, v: &Value) -> Result<ChatResponse, ProviderError> {
        parse_response(v)
    }

    fn stream_mapper(&self) -> StreamMapper {
        stream_mapper()
    }
}

/// The body the fixtures' first (graded, not streamed) request becomes, asking `model`.
#[cfg(test)]
fn graded_body(model: &str) -> Value {
    json!({
        "model": model,
        "messages": [{"role": "system", "content": "You grade."}, {"role": "user", "content": "Grade this."}],
        "max_tokens": 64,
        "stream": false,
        "temperature": 0.5,
        "response_format": {"type": "json_object"}
    })
}

/// The OpenAI format's cases for the shared table (`suite.rs`): Groq's recorded answers.
#[cfg(test)]
pub(crate) fn fixture() -> super::suite::Fixture {
    use super::suite::*;
    use super::Role::*;
    let grade = chat(
        &[(System, "You grade."), (User, "Grade this.")],
        64,
        Some(0.5),
        true,
    );
    let plain = chat(&[(User, "Hi")], 8, None, false);
    let mut overridden = plain.clone();
    overridden.model = Some("llama-3.3-70b-versatile".into());
    overridden.json_schema = Some(json!({"type": "object"}));
    Fixture {
        wire: &CLOUD,
        target: target("https://api.groq.com/openai/v1", "llama-3.1-8b-instant", "gsk_test0123456789"),
        requests: vec![
            Sent {
                req: grade.clone(),
                stream: false,
                target: None,
                expect: Ok(Http {
                    url: "https://api.groq.com/openai/v1/chat/completions",
                    headers: vec![("authorization", Some("Bearer gsk_test0123456789"))],
                    body: graded_body("llama-3.1-8b-instant"),
                }),
            },
            // A cloud provider gets the request's model and never a JSON schema.
            Sent {
                req: overridden,
                stream: true,
                target: None,
                expect: Ok(Http {
                    url: "https://api.groq.com/openai/v1/chat/completions",
                    headers: vec![("authorization", Some("Bearer gsk_test0123456789"))],
                    body: json!({
                        "model": "llama-3.3-70b-versatile",
                        "messages": [{"role": "user", "content": "Hi"}],
                        "max_tokens": 8,
                        "stream": true,
                        "stream_options": {"include_usage": true}
                    }),
                }),
            },
        ],
        answers: vec![
            (
                json!({"model":"m","choices":[{"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],
                       "usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7}}),
                Ok(answer("hi", Some((5, 2)), Some("stop"), Some("m"))),
            ),
            (json!({"choices": []}), Err(Expect::Code("malformed"))),
            (json!({"choices": [{"message": {"role": "assistant"}}]}), Err(Expect::Code("malformed"))),
        ],
        streams: vec![
            Streamed {
                events: vec![
                    ("", r#"{"id":"chatcmpl-1","object":"chat.completion.chunk","model":"llama-3.1-8b-instant","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}"#),
                    ("", r#"{"id":"chatcmpl-1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"Hel"},"finish_reason":null}]}"#),
                    ("", r#"{"id":"chatcmpl-1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"lo"},"finish_reason":"stop"}]}"#),
                    ("", r#"{"id":"chatcmpl-1","object":"chat.completion.chunk","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":2,"total_tokens":11}}"#),
                    ("", "[DONE]"),
                ],
                chunks: chunks(&["Hel", "lo"], Some((9, 2)), Some("stop")),
                error: None,
            },
            Streamed {
                events: vec![("", r#"{"error":{"message":"overloaded"}}"#)],
                chunks: vec![],
                error: Some(Expect::Is(ProviderError::Server { status: 500 })),
            },
        ],
        failures: vec![
            FailedAnswer {
                status: 429,
                headers: vec![("retry-after", "7")],
                body: r#"{"error":{"message":"Rate limit reached for model `llama-3.1-8b-instant` on tokens per minute (TPM): Limit 6000, Used 5900. Please try again in 7s.","type":"tokens","code":"rate_limit_exceeded"}}"#.into(),
                expect: Expect::Is(ProviderError::RateLimited {
                    retry_after: Some(std::time::Duration::from_secs(7)),
                    day_exhausted: false,
                }),
            },
            FailedAnswer {
                status: 429,
                headers: vec![("x-ratelimit-reset-requests", "2m59.56s"), ("x-ratelimit-reset-tokens", "6s")],
                body: r#"{"error":{"message":"Rate limit reached for model `llama-3.1-8b-instant` on requests per day (RPD): Limit 14400, Used 14400.","type":"requests","code":"rate_limit_exceeded"}}"#.into(),
                expect: Expect::Is(ProviderError::RateLimited {
                    retry_after: Some(std::time::Duration::from_millis(179_560)),
                    day_exhausted: true,
                }),
            },
            FailedAnswer {
                status: 401,
                headers: vec![],
                body: r#"{"error":{"message":"Invalid API Key","type":"invalid_request_error","code":"invalid_api_key"}}"#.into(),
                expect: Expect::Is(ProviderError::InvalidKey { status: 401 }),
            },
            FailedAnswer {
                status: 503,
                headers: vec![],
                body: "Service Unavailable".into(),
                expect: Expect::Is(ProviderError::Server { status: 503 }),
            },
            FailedAnswer {
                status: 400,
                headers: vec![],
                body: r#"{"error":{"message":"bad request for key gsk_test0123456789"}}"#.into(),
                expect: Expect::Check(|e| {
                    matches!(e, ProviderError::BadRequest { status: 400, message } if !message.contains("gsk_test0123456789") && message.contains("*****"))
                }),
            },
        ],
    }
}

/// The OpenAI format as local servers speak it ([`LOCAL`]), for the shared table: the node's model
/// whatever the request asks, the JSON schema for constrained decoding, a bearer token only when set.
#[cfg(test)]
pub(crate) fn local_fixture() -> super::suite::Fixture {
    use super::suite::{target, Http, Sent};
    let mut f = fixture();
    f.wire = &LOCAL;
    f.target = target(
        "http://10.0.0.5:8000/v1",
        "default",
        "node-token-0123456789",
    );
    let mut graded = f.requests[0].req.clone();
    graded.model = Some("ignored-by-nodes".into());
    graded.json_schema =
        Some(json!({"type": "object", "properties": {"score": {"type": "integer"}}}));
    let mut no_key = f.target.clone();
    no_key.secret = crate::secret::Secret::default();
    let first = f.requests[0].req.clone();
    f.requests = vec![
        Sent {
            req: first,
            stream: false,
            target: None,
            expect: Ok(Http {
                url: "http://10.0.0.5:8000/v1/chat/completions",
                headers: vec![("authorization", Some("Bearer node-token-0123456789"))],
                body: graded_body("default"),
            }),
        },
        Sent {
            req: graded,
            stream: true,
            target: Some(no_key),
            expect: Ok(Http {
                url: "http://10.0.0.5:8000/v1/chat/completions",
                headers: vec![("authorization", None)],
                body: json!({
                    "model": "default",
                    "messages": [{"role": "system", "content": "You grade."}, {"role": "user", "content": "Grade this."}],
                    "max_tokens": 64,
                    "stream": true,
                    "temperature": 0.5,
                    "stream_options": {"include_usage": true},
                    "response_format": {
                        "type": "json_schema",
                        "json_schema": {"name": "answer", "schema": {"type": "object", "properties": {"score": {"type": "integer"}}}}
                    }
                }),
            }),
        },
    ];
    f.failures.truncate(1);
    f
}
