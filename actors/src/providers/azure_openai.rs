//! Azure OpenAI: `POST {base_url}/openai/deployments/{deployment}/chat/completions?api-version=...` with an `api-key` header.
//! The body and answers are OpenAI's (without `model`: the deployment picks it), so this reuses `openai.rs`.

use super::Call;
use super::{openai, ChatRequest, ChatResponse, ProviderError, StreamMapper, Target, WireFormat};

/// The `api-version` used when the target does not set one (the GA data-plane inference version).
pub const DEFAULT_API_VERSION: &str = "2024-10-21";

/// The Azure OpenAI format.
pub struct AzureOpenAi;

/// The chat-completions URL of the deployment `target.model_for(req)`.
pub fn url(target: &Target, req: &ChatRequest) -> String {
    format!(
        "{}/openai/deployments/{}/chat/completions?api-version={}",
        target.base_url,
        target.model_for(req),
        target.api_version.as_deref().unwrap_or(DEFAULT_API_VERSION)
    )
}

impl WireFormat for AzureOpenAi {
    fn request(&self, call: &Call<'_>) -> Result<reqwest::RequestBuilder, ProviderError> {
        Ok(call
            .post(url(call.target, call.req))
            .header("api-key", call.key())
            .json(&openai::body(call.req, None, call.stream)))
    }

    fn parse_response(&self, v: &serde_json::Value) -> Result<ChatResponse, ProviderError> {
        openai::parse_response(v)
    }

    fn stream_mapper(&self) -> StreamMapper {
        openai::stream_mapper()
    }
}

/// Azure OpenAI's cases for the shared table (`suite.rs`): a deployment URL with `api-version`, the
/// `api-key` header, OpenAI's body without `model`, and Azure's recorded answers.
#[cfg(test)]
pub(crate) fn fixture() -> super::suite::Fixture {
    use super::suite::*;
    use super::Role::*;
    use std::time::Duration;
    let grade = chat(
        &[(System, "You grade answers."), (User, "Grade this.")],
        200,
        Some(0.25),
        true,
    );
    let target = target(
        "https://myres.openai.azure.com",
        "gpt4o-prod",
        "azure-key-0123456789abcdef",
    );
    let mut other = grade.clone();
    other.model = Some("other-dep".into());
    let preview = Target {
        api_version: Some("2025-01-01-preview".into()),
        ..target.clone()
    };
    let body = |stream: bool| {
        let mut b = serde_json::json!({
            "messages": [{"role": "system", "content": "You grade answers."}, {"role": "user", "content": "Grade this."}],
            "max_tokens": 200,
            "stream": stream,
            "temperature": 0.25,
            "response_format": {"type": "json_object"}
        });
        if stream {
            b["stream_options"] = serde_json::json!({"include_usage": true});
        }
        b
    };
    Fixture {
        wire: &AzureOpenAi,
        target,
        requests: vec![
            Sent {
                req: grade,
                stream: false,
                target: None,
                expect: Ok(Http {
                    url: "https://myres.openai.azure.com/openai/deployments/gpt4o-prod/chat/completions?api-version=2024-10-21",
                    headers: vec![("api-key", Some("azure-key-0123456789abcdef")), ("authorization", None)],
                    body: body(false),
                }),
            },
            Sent {
                req: other,
                stream: true,
                target: Some(preview),
                expect: Ok(Http {
                    url: "https://myres.openai.azure.com/openai/deployments/other-dep/chat/completions?api-version=2025-01-01-preview",
                    headers: vec![("api-key", Some("azure-key-0123456789abcdef"))],
                    body: body(true),
                }),
            },
        ],
        answers: vec![(
            serde_json::json!({
                "id": "chatcmpl-7R1nGnsXO8n4oi9UPz2f3UHdgAYMn",
                "object": "chat.completion",
                "created": 1686676106,
                "model": "gpt-4o-2024-08-06",
                "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": {}}],
                "choices": [{
                    "index": 0,
                    "finish_reason": "stop",
                    "message": {"role": "assistant", "content": "{\"score\": 7}"},
                    "content_filter_results": {"hate": {"filtered": false, "severity": "safe"}}
                }],
                "usage": {"completion_tokens": 557, "prompt_tokens": 33, "total_tokens": 590}
            }),
            Ok(answer("{\"score\": 7}", Some((33, 557)), Some("stop"), Some("gpt-4o-2024-08-06"))),
        )],
        // Azure sends a first chunk with empty `choices` (prompt filter results) and, with
        // include_usage, a last usage chunk with empty `choices` before [DONE].
        streams: vec![Streamed {
            events: vec![
                ("", r#"{"choices":[],"created":0,"id":"","model":"","object":"","prompt_filter_results":[{"prompt_index":0,"content_filter_results":{}}]}"#),
                ("", r#"{"choices":[{"content_filter_results":{},"delta":{"content":"","role":"assistant"},"finish_reason":null,"index":0}],"created":1727000000,"id":"chatcmpl-A1","model":"gpt-4o-2024-08-06","object":"chat.completion.chunk"}"#),
                ("", r#"{"choices":[{"delta":{"content":"Hel"},"finish_reason":null,"index":0}],"id":"chatcmpl-A1","object":"chat.completion.chunk"}"#),
                ("", r#"{"choices":[{"delta":{"content":"lo"},"finish_reason":null,"index":0}],"id":"chatcmpl-A1","object":"chat.completion.chunk"}"#),
                ("", r#"{"choices":[{"delta":{},"finish_reason":"stop","index":0}],"id":"chatcmpl-A1","object":"chat.completion.chunk"}"#),
                ("", r#"{"choices":[],"id":"chatcmpl-A1","object":"chat.completion.chunk","usage":{"completion_tokens":2,"prompt_tokens":9,"total_tokens":11}}"#),
                ("", "[DONE]"),
            ],
            chunks: chunks(&["Hel", "lo"], Some((9, 2)), Some("stop")),
            error: None,
        }],
        failures: vec![
            FailedAnswer {
                status: 429,
                headers: vec![("retry-after-ms", "6500")],
                body: r#"{"error":{"code":"429","message":"Requests to the ChatCompletions_Create Operation under Azure OpenAI API version 2024-10-21 have exceeded token rate limit of your current OpenAI S0 pricing tier. Please retry after 7 seconds."}}"#.into(),
                expect: Expect::Is(ProviderError::RateLimited {
                    retry_after: Some(Duration::from_millis(6500)),
                    day_exhausted: false,
                }),
            },
            FailedAnswer {
                status: 429,
                headers: vec![("retry-after-ms", "6500"), ("retry-after", "7")],
                body: r#"{"error":{"code":"429","message":"Please retry after 7 seconds."}}"#.into(),
                expect: Expect::Is(ProviderError::RateLimited {
                    retry_after: Some(Duration::from_secs(7)),
                    day_exhausted: false,
                }),
            },
            FailedAnswer {
                status: 401,
                headers: vec![],
                body: r#"{"error":{"code":"401","message":"Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key for an active subscription and use a correct regional API endpoint for your resource."}}"#.into(),
                expect: Expect::Is(ProviderError::InvalidKey { status: 401 }),
            },
        ],
    }
}
