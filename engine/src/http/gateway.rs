//! `POST /v1/chat/completions`: an OpenAI-compatible endpoint served through the provider pool, for
//! other applications; `stream: true` answers with OpenAI-shaped server-sent events.
//!
//! `model` picks where the request may go: `auto` (or absent) any key; `<provider>` that provider's
//! keys with its model; `<provider>/<model>` that provider with the given model.

use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse};
use actors::cache::{self, CacheKind};
use actors::pool::{CallOptions, PoolError};
use actors::providers::{ChatRequest, Message, Role, StreamChunk};
use actors::stats::Source;
use bytes::Bytes;
use futures::StreamExt;
use serde::Deserialize;
use serde_json::{json, Value};

use super::json::{FieldHints, JsonBody};
use super::State;
use crate::error::ApiError;

/// Largest `max_tokens` a gateway request may ask for.
pub const MAX_TOKENS_CAP: u32 = 8192;

/// The OpenAI request fields the gateway reads; other fields are accepted and ignored.
#[derive(Debug, Deserialize)]
pub struct ChatCompletionsRequest {
    model: Option<String>,
    messages: Vec<InMessage>,
    max_tokens: Option<u32>,
    max_completion_tokens: Option<u32>,
    temperature: Option<f32>,
    #[serde(default)]
    stream: bool,
    response_format: Option<Value>,
}

impl FieldHints for ChatCompletionsRequest {}

#[derive(Debug, Deserialize)]
struct InMessage {
    role: String,
    content: Value,
}

/// Checks and converts a gateway request; returns the request and the provider it is pinned to.
pub fn to_chat_request(
    r: &ChatCompletionsRequest,
    providers: &[String],
) -> Result<(ChatRequest, Option<String>), ApiError> {
    if r.messages.is_empty() {
        return Err(ApiError::BadRequest("messages: must not be empty".into()));
    }
    let mut messages = Vec::with_capacity(r.messages.len());
    for (i, m) in r.messages.iter().enumerate() {
        let role = match m.role.as_str() {
            "system" | "developer" => Role::System,
            "user" => Role::User,
            "assistant" => Role::Assistant,
            other => {
                return Err(ApiError::BadRequest(format!(
                    "messages[{i}].role: unknown role {other:?}"
                )))
            }
        };
        let content = match &m.content {
            Value::String(s) => s.clone(),
            Value::Array(parts) => parts
                .iter()
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .collect::<Vec<_>>()
                .join(""),
            _ => {
                return Err(ApiError::BadRequest(format!(
                    "messages[{i}].content: must be a string or an array of text parts"
                )))
            }
        };
        messages.push(Message::new(role, content));
    }
    let max_tokens = r.max_completion_tokens.or(r.max_tokens).unwrap_or(512);
    if max_tokens == 0 || max_tokens > MAX_TOKENS_CAP {
        return Err(ApiError::BadRequest(format!(
            "max_tokens: must be between 1 and {MAX_TOKENS_CAP}"
        )));
    }
    if let Some(t) = r.temperature {
        if !(0.0..=2.0).contains(&t) {
            return Err(ApiError::BadRequest(
                "temperature: must be between 0 and 2".into(),
            ));
        }
    }
    let json_mode = r
        .response_format
        .as_ref()
        .and_then(|f| f.get("type"))
        .and_then(Value::as_str)
        .is_some_and(|t| t == "json_object" || t == "json_schema");
    let (provider, model) = match r.model.as_deref().map(str::trim) {
        None | Some("") | Some("auto") => (None, None),
        Some(m) => {
            let (p, rest) = match m.split_once('/') {
                Some((p, rest)) => (p, Some(rest.to_string())),
                None => (m, None),
            };
            if !providers.iter().any(|x| x == p) {
                return Err(ApiError::UnknownProvider(p.to_string()));
            }
            (Some(p.to_string()), rest.filter(|s| !s.is_empty()))
        }
    };
    Ok((
        ChatRequest {
            messages,
            max_tokens,
            temperature: r.temperature,
            json: json_mode,
            model,
            json_schema: None,
        },
        provider,
    ))
}

fn options(state: &State, provider: Option<String>) -> CallOptions {
    CallOptions {
        deadline: Duration::from_millis(state.config.pool.deadline_ms),
        max_attempts: state.config.pool.max_attempts,
        provider,
        avoid_key: None,
        affinity: None,
    }
}

/// `POST /v1/chat/completions` (admin).
pub async fn chat_completions(
    state: State,
    req: HttpRequest,
    body: JsonBody<ChatCompletionsRequest>,
) -> Result<HttpResponse, ApiError> {
    let (chat, provider) = to_chat_request(&body, &state.active_providers)?;
    let opts = options(&state, provider);
    let created = chrono::Utc::now().timestamp();
    let id = format!("chatcmpl-{}", uuid::Uuid::new_v4().simple());
    let pool = state.pool.clone();
    if !body.stream {
        // Identical requests (same target and normalized request) share one provider call while in
        // flight, and a finished answer is reused for `[cache] response_ttl_s` unless the client
        // sends `Cache-Control: no-cache`.
        let key = cache::key(&[
            opts.provider.as_deref().unwrap_or("auto"),
            &serde_json::to_string(&chat).map_err(|_| ApiError::Internal)?,
        ]);
        let no_cache = req
            .headers()
            .get("cache-control")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("no-cache"));
        let (st, k) = (state.get_ref().clone(), key.clone());
        let (answer, how) = state
            .on_engine(async move {
                if !no_cache {
                    if let Some(hit) = st.cache.get(CacheKind::Response, &k, None).await {
                        if let Ok(v) = serde_json::from_str::<Value>(&hit) {
                            st.stats.count_source(Source::Cache);
                            return Ok((v, "hit"));
                        }
                    }
                }
                let (cache, k2) = (st.cache.clone(), k.clone());
                let (result, shared) = st
                    .gateway_calls
                    .run(k, move || async move {
                        let done = pool.complete(&chat, opts).await?;
                        let usage = done.response.usage.unwrap_or_default();
                        let v = json!({
                            "model": done.response.model.clone().unwrap_or_else(|| format!("{}/default", done.provider)),
                            "content": done.response.text,
                            "finish_reason": done.response.finish_reason.clone().unwrap_or_else(|| "stop".into()),
                            "usage": {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens,
                                      "total_tokens": usage.total()},
                            "served_by": done.key,
                            "attempts": done.trail.len(),
                        });
                        let _ = cache.put(CacheKind::Response, &k2, v.to_string()).await;
                        Ok::<Value, PoolError>(v)
                    })
                    .await
                    .map_err(|_| ApiError::Internal)?;
                let v = result?;
                if shared {
                    st.stats.count_dedup();
                }
                Ok::<_, ApiError>((v, if shared { "shared" } else { "miss" }))
            })
            .await??;
        let text = |k: &str| answer[k].as_str().unwrap_or_default().to_string();
        return Ok(HttpResponse::Ok()
            .insert_header(("x-served-by", text("served_by")))
            .insert_header(("x-attempts", answer["attempts"].to_string()))
            .insert_header(("x-cache", how))
            .json(json!({
                "id": id, "object": "chat.completion", "created": created, "model": text("model"),
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text("content")},
                             "finish_reason": text("finish_reason")}],
                "usage": answer["usage"],
            })));
    }
    let opened = state
        .on_engine(async move { pool.stream(&chat, opts).await })
        .await??;
    let served_by = opened.key.clone();
    let model = format!("{}/default", opened.provider);
    // The provider stream is driven on the engine runtime; chunks cross to this worker over a channel.
    // If the client goes away the receiver drops, the sender fails, and the provider stream is dropped
    // (its reservation settled).
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(32);
    let mut upstream = opened.stream;
    state.engine.spawn(async move {
        while let Some(item) = upstream.next().await {
            let (frame, last) = match item {
                Ok(StreamChunk::Delta(d)) => (sse(&json!({"id": id, "object": "chat.completion.chunk", "created": created, "model": model,
                        "choices": [{"index": 0, "delta": {"content": d}, "finish_reason": null}]})), false),
                Ok(StreamChunk::Done { usage, finish_reason }) => {
                    let u = usage.unwrap_or_default();
                    let mut f = sse(&json!({"id": id, "object": "chat.completion.chunk", "created": created, "model": model,
                        "choices": [{"index": 0, "delta": {}, "finish_reason": finish_reason.unwrap_or_else(|| "stop".into())}],
                        "usage": {"prompt_tokens": u.prompt_tokens, "completion_tokens": u.completion_tokens, "total_tokens": u.total()}}));
                    f.extend_from_slice(b"data: [DONE]\n\n");
                    (f, true)
                }
                Err(e) => (sse(&json!({"error": {"code": "upstream_failed", "message": e.to_string()}})), true),
            };
            if tx.send(Bytes::from(frame)).await.is_err() || last {
                break;
            }
        }
    });
    let body = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|b| (Ok::<Bytes, actix_web::Error>(b), rx))
    });
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("cache-control", "no-cache"))
        .insert_header(("x-served-by", served_by))
        .streaming(body))
}

fn sse(v: &Value) -> Vec<u8> {
    format!("data: {v}\n\n").into_bytes()
}

/// `GET /v1/models` (admin): the providers that have keys, as OpenAI model ids.
pub async fn models(state: State) -> Result<HttpResponse, ApiError> {
    let data: Vec<Value> = std::iter::once("auto".to_string())
        .chain(state.active_providers.iter().cloned())
        .map(|id| json!({"id": id, "object": "model", "owned_by": "interview-engine"}))
        .collect();
    Ok(HttpResponse::Ok().json(json!({"object": "list", "data": data})))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(v: Value) -> ChatCompletionsRequest {
        serde_json::from_value(v).unwrap_or_else(|e| unreachable!("{e}"))
    }

    #[test]
    fn model_routing_and_validation() {
        let providers = vec!["groq".to_string()];
        let r =
            req(json!({"model": "groq/llama", "messages": [{"role": "user", "content": "hi"}]}));
        let (c, p) = to_chat_request(&r, &providers).unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(
            (p.as_deref(), c.model.as_deref()),
            (Some("groq"), Some("llama"))
        );
        let r = req(json!({"model": "nope", "messages": [{"role": "user", "content": "hi"}]}));
        assert!(matches!(
            to_chat_request(&r, &providers),
            Err(ApiError::UnknownProvider(_))
        ));
        let r = req(json!({"messages": []}));
        assert!(matches!(
            to_chat_request(&r, &providers),
            Err(ApiError::BadRequest(_))
        ));
        let r = req(json!({"messages": [{"role": "robot", "content": "x"}]}));
        assert!(matches!(
            to_chat_request(&r, &providers),
            Err(ApiError::BadRequest(_))
        ));
        let r = req(json!({"messages": [{"role": "user", "content": "x"}], "max_tokens": 100000}));
        assert!(matches!(
            to_chat_request(&r, &providers),
            Err(ApiError::BadRequest(_))
        ));
    }
}
