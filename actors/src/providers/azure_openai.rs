//! Azure OpenAI: `POST {base_url}/openai/deployments/{deployment}/chat/completions?api-version=...` with an `api-key` header.
//! The body and answers are OpenAI's (without `model`: the deployment picks it), so this reuses `openai.rs`.

use async_trait::async_trait;

use super::{
    openai, sse, ChatRequest, ChatResponse, ChunkStream, FormatKind, ProviderError, Target,
    WireFormat,
};

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

fn request(
    http: &reqwest::Client,
    target: &Target,
    req: &ChatRequest,
    stream: bool,
) -> reqwest::RequestBuilder {
    http.post(url(target, req))
        .header("api-key", target.secret.expose())
        .json(&openai::body(req, None, stream))
}

#[async_trait]
impl WireFormat for AzureOpenAi {
    fn kind(&self) -> FormatKind {
        FormatKind::AzureOpenai
    }

    async fn complete(
        &self,
        http: &reqwest::Client,
        target: &Target,
        req: &ChatRequest,
    ) -> Result<ChatResponse, ProviderError> {
        let v = openai::send_json(request(http, target, req, false), target).await?;
        openai::parse_response(&v)
    }

    async fn stream(
        &self,
        http: &reqwest::Client,
        target: &Target,
        req: &ChatRequest,
    ) -> Result<ChunkStream, ProviderError> {
        let resp = openai::send_stream(request(http, target, req, true), target).await?;
        Ok(sse::chunks(resp, openai::stream_mapper()))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use eventsource_stream::Event;
    use reqwest::header::{HeaderMap, HeaderValue};
    use serde_json::json;

    use super::*;
    use crate::providers::{classify_status, Message, Role, StreamChunk};
    use crate::secret::Secret;

    fn target(api_version: Option<&str>) -> Target {
        Target {
            base_url: "https://myres.openai.azure.com".into(),
            model: "gpt4o-prod".into(),
            secret: Secret::new("azure-key-0123456789abcdef"),
            account_id: None,
            api_version: api_version.map(str::to_string),
            timeout: Duration::from_secs(30),
        }
    }

    fn req(json: bool) -> ChatRequest {
        ChatRequest {
            messages: vec![
                Message::new(Role::System, "You grade answers."),
                Message::new(Role::User, "Grade this."),
            ],
            max_tokens: 200,
            temperature: Some(0.2),
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
    fn url_uses_deployment_and_api_version() {
        assert_eq!(
            url(&target(None), &req(false)),
            "https://myres.openai.azure.com/openai/deployments/gpt4o-prod/chat/completions?api-version=2024-10-21"
        );
        let mut r = req(false);
        r.model = Some("other-dep".into());
        assert_eq!(
            url(&target(Some("2025-01-01-preview")), &r),
            "https://myres.openai.azure.com/openai/deployments/other-dep/chat/completions?api-version=2025-01-01-preview"
        );
    }

    #[test]
    fn request_has_api_key_header_and_no_model() {
        let http = reqwest::Client::new();
        let built = request(&http, &target(None), &req(true), true).build().ok();
        let headers = built.as_ref().map(|r| r.headers().clone());
        assert_eq!(
            headers
                .as_ref()
                .and_then(|h| h.get("api-key"))
                .and_then(|v| v.to_str().ok()),
            Some("azure-key-0123456789abcdef")
        );
        assert!(headers
            .as_ref()
            .is_some_and(|h| h.get("authorization").is_none()));
        let body = openai::body(&req(true), None, true);
        assert!(body.get("model").is_none());
        assert_eq!(body["response_format"]["type"], "json_object");
        assert_eq!(body["stream_options"]["include_usage"], true);
        assert_eq!(body["messages"][0]["role"], "system");
    }

    #[test]
    fn parses_recorded_answer() {
        let v = json!({
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
        });
        let r = openai::parse_response(&v).ok();
        assert_eq!(r.as_ref().map(|r| r.text.as_str()), Some("{\"score\": 7}"));
        assert_eq!(
            r.as_ref().and_then(|r| r.finish_reason.as_deref()),
            Some("stop")
        );
        assert_eq!(r.and_then(|r| r.usage).map(|u| u.total()), Some(590));
    }

    #[test]
    fn maps_recorded_stream() {
        // Azure sends a first chunk with empty `choices` (prompt filter results) and, with
        // include_usage, a last usage chunk with empty `choices` before [DONE].
        let events = [
            r#"{"choices":[],"created":0,"id":"","model":"","object":"","prompt_filter_results":[{"prompt_index":0,"content_filter_results":{}}]}"#,
            r#"{"choices":[{"content_filter_results":{},"delta":{"content":"","role":"assistant"},"finish_reason":null,"index":0}],"created":1727000000,"id":"chatcmpl-A1","model":"gpt-4o-2024-08-06","object":"chat.completion.chunk"}"#,
            r#"{"choices":[{"delta":{"content":"Hel"},"finish_reason":null,"index":0}],"id":"chatcmpl-A1","object":"chat.completion.chunk"}"#,
            r#"{"choices":[{"delta":{"content":"lo"},"finish_reason":null,"index":0}],"id":"chatcmpl-A1","object":"chat.completion.chunk"}"#,
            r#"{"choices":[{"delta":{},"finish_reason":"stop","index":0}],"id":"chatcmpl-A1","object":"chat.completion.chunk"}"#,
            r#"{"choices":[],"id":"chatcmpl-A1","object":"chat.completion.chunk","usage":{"completion_tokens":2,"prompt_tokens":9,"total_tokens":11}}"#,
            "[DONE]",
        ];
        let mut map = openai::stream_mapper();
        let mut out = Vec::new();
        for e in events {
            out.extend(map(&ev(e)).unwrap_or_default());
        }
        assert_eq!(
            out,
            vec![
                StreamChunk::Delta("Hel".into()),
                StreamChunk::Delta("lo".into()),
                StreamChunk::Done {
                    usage: Some(crate::providers::Usage {
                        prompt_tokens: 9,
                        completion_tokens: 2
                    }),
                    finish_reason: Some("stop".into()),
                },
            ]
        );
    }

    #[test]
    fn classifies_429_and_401() {
        let secret = Secret::new("azure-key-0123456789abcdef");
        let mut h = HeaderMap::new();
        h.insert("retry-after-ms", HeaderValue::from_static("6500"));
        let body = r#"{"error":{"code":"429","message":"Requests to the ChatCompletions_Create Operation under Azure OpenAI API version 2024-10-21 have exceeded token rate limit of your current OpenAI S0 pricing tier. Please retry after 7 seconds."}}"#;
        assert_eq!(
            classify_status(429, &h, body, &secret),
            ProviderError::RateLimited {
                retry_after: Some(Duration::from_millis(6500)),
                day_exhausted: false
            }
        );
        h.insert("retry-after", HeaderValue::from_static("7"));
        assert!(matches!(
            classify_status(429, &h, body, &secret),
            ProviderError::RateLimited { retry_after: Some(d), .. } if d == Duration::from_secs(7)
        ));
        let body = r#"{"error":{"code":"401","message":"Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key for an active subscription and use a correct regional API endpoint for your resource."}}"#;
        assert_eq!(
            classify_status(401, &HeaderMap::new(), body, &secret),
            ProviderError::InvalidKey { status: 401 }
        );
    }
}
