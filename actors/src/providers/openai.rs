//! OpenAI-compatible chat completions: `POST {base_url}/chat/completions` with `Authorization: Bearer`.
//! Shared by Groq, Together, Cerebras, DeepSeek, Fireworks, GitHub Models, Mistral, OpenRouter, Hugging Face and local servers.

use async_trait::async_trait;
use serde_json::{json, Value};

use super::{
    classify_status, sse, transport_error, ChatRequest, ChatResponse, ChunkStream, FormatKind,
    ProviderError, StreamChunk, Target, Usage, WireFormat,
};

/// The OpenAI chat-completions format.
pub struct OpenAi;

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

/// Maps one SSE event of an OpenAI-shaped stream: `data: {chunk}` pieces, then `data: [DONE]`.
/// Usage arrives in a last chunk with empty `choices` when `stream_options.include_usage` is set.
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
        if v.get("error").is_some() {
            return Err(ProviderError::Server { status: 500 });
        }
        if let Some(u) = parse_usage(&v["usage"]) {
            usage = Some(u);
        }
        let mut out = Vec::new();
        if let Some(choice) = v["choices"].get(0) {
            if let Some(d) = choice["delta"]["content"].as_str() {
                if !d.is_empty() {
                    out.push(StreamChunk::Delta(d.to_string()));
                }
            }
            if let Some(f) = choice["finish_reason"].as_str() {
                finish = Some(f.to_string());
            }
        }
        Ok(out)
    }
}

/// Sends a prepared request and reads a JSON answer, classifying failures.
pub async fn send_json(
    rb: reqwest::RequestBuilder,
    target: &Target,
) -> Result<Value, ProviderError> {
    let resp = rb
        .timeout(target.timeout)
        .send()
        .await
        .map_err(|e| transport_error(&e, &target.secret))?;
    let status = resp.status();
    if !status.is_success() {
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap_or_default();
        return Err(classify_status(
            status.as_u16(),
            &headers,
            &text,
            &target.secret,
        ));
    }
    let bytes = resp
        .bytes()
        .await
        .map_err(|e| transport_error(&e, &target.secret))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| ProviderError::Malformed(format!("answer is not JSON: {e}")))
}

/// Sends a prepared streaming request; returns the response once its status is a success.
pub async fn send_stream(
    rb: reqwest::RequestBuilder,
    target: &Target,
) -> Result<reqwest::Response, ProviderError> {
    // The whole-call timeout would cut long streams; bound the time to the first byte instead.
    let resp = tokio::time::timeout(target.timeout, rb.send())
        .await
        .map_err(|_| ProviderError::Timeout)?
        .map_err(|e| transport_error(&e, &target.secret))?;
    let status = resp.status();
    if !status.is_success() {
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap_or_default();
        return Err(classify_status(
            status.as_u16(),
            &headers,
            &text,
            &target.secret,
        ));
    }
    Ok(resp)
}

#[async_trait]
impl WireFormat for OpenAi {
    fn kind(&self) -> FormatKind {
        FormatKind::Openai
    }

    async fn complete(
        &self,
        http: &reqwest::Client,
        target: &Target,
        req: &ChatRequest,
    ) -> Result<ChatResponse, ProviderError> {
        let url = format!("{}/chat/completions", target.base_url);
        let rb = http
            .post(url)
            .bearer_auth(target.secret.expose())
            .json(&body(req, Some(target.model_for(req)), false));
        let v = send_json(rb, target).await?;
        parse_response(&v)
    }

    async fn stream(
        &self,
        http: &reqwest::Client,
        target: &Target,
        req: &ChatRequest,
    ) -> Result<ChunkStream, ProviderError> {
        let url = format!("{}/chat/completions", target.base_url);
        let rb = http
            .post(url)
            .bearer_auth(target.secret.expose())
            .json(&body(req, Some(target.model_for(req)), true));
        let resp = send_stream(rb, target).await?;
        Ok(sse::chunks(resp, stream_mapper()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_answer_and_usage() {
        let v = json!({"model":"m","choices":[{"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],
                       "usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7}});
        let r = parse_response(&v).ok();
        assert_eq!(r.as_ref().map(|r| r.text.as_str()), Some("hi"));
        assert_eq!(r.and_then(|r| r.usage).map(|u| u.total()), Some(7));
        assert!(parse_response(&json!({"choices":[]})).is_err());
    }
}
