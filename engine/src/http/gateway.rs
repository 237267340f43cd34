//! `POST /v1/chat/completions`: an OpenAI-compatible endpoint served through the provider pool, for
//! other applications; `stream: true` answers with OpenAI-shaped server-sent events. What `model`
//! means is in [`super::models`]; every error is in OpenAI's shape (see `crate::error`).
//!
//! Caching of whole answers (`[cache] gateway`, default `deterministic`): an answer is stored and
//! served from the cache only for a deterministic request (`temperature` 0, or no `temperature` with a
//! `seed`), or when the client opts in with `Cache-Control: max-age=N` (served only if younger than N
//! seconds). `Cache-Control: no-cache` (or `max-age=0`) skips the lookup, `no-store` the write. Identical
//! requests in flight at the same time always share one provider call (coalescing).

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
use super::models::Resolved;
use super::State;
use crate::config::GatewayCache;
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
    seed: Option<i64>,
    #[serde(default)]
    stream: bool,
    response_format: Option<Value>,
}

impl ChatCompletionsRequest {
    /// Whether the same request gets the same answer: `temperature` 0, or none with a `seed`.
    pub fn deterministic(&self) -> bool {
        match self.temperature {
            Some(t) => t == 0.0,
            None => self.seed.is_some(),
        }
    }
}

impl FieldHints for ChatCompletionsRequest {}

#[derive(Debug, Deserialize)]
struct InMessage {
    role: String,
    content: Value,
}

/// Checks and converts a gateway request (the model is resolved separately, see `super::models`).
pub fn to_chat_request(r: &ChatCompletionsRequest) -> Result<ChatRequest, ApiError> {
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
    Ok(ChatRequest {
        messages,
        max_tokens,
        temperature: r.temperature,
        json: json_mode,
        model: None,
        json_schema: None,
    })
}

fn options(state: &State, route: Resolved) -> CallOptions {
    CallOptions {
        deadline: Duration::from_millis(state.config.pool.deadline_ms),
        max_attempts: state.config.pool.max_attempts,
        provider: None,
        avoid_key: None,
        affinity: None,
        routes: route.routes,
        ordered: route.ordered,
    }
}

/// What the client's `Cache-Control` and the `[cache] gateway` policy allow for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheUse {
    /// Serve a stored answer younger than this many seconds (`None`: no lookup).
    pub read_max_age_s: Option<u64>,
    /// Store the answer.
    pub write: bool,
}

/// The cache use for a request: the policy's default for its kind (deterministic or not), changed by
/// the request's `Cache-Control` (`max-age=N` opts in, `no-cache` / `max-age=0` skip the lookup,
/// `no-store` the write).
pub fn cache_use(
    policy: GatewayCache,
    deterministic: bool,
    cache_control: Option<&str>,
    ttl_s: u64,
) -> CacheUse {
    let on = match policy {
        GatewayCache::Off => {
            return CacheUse {
                read_max_age_s: None,
                write: false,
            }
        }
        GatewayCache::All => true,
        GatewayCache::Deterministic => deterministic,
    };
    let mut u = CacheUse {
        read_max_age_s: on.then_some(ttl_s),
        write: on,
    };
    for d in cache_control
        .unwrap_or_default()
        .split(',')
        .map(|d| d.trim().to_ascii_lowercase())
    {
        match d.as_str() {
            "no-cache" => u.read_max_age_s = None,
            "no-store" => u.write = false,
            _ => {
                if let Some(n) = d
                    .strip_prefix("max-age=")
                    .and_then(|n| n.trim().parse::<u64>().ok())
                {
                    if n == 0 {
                        u.read_max_age_s = None;
                    } else {
                        u.read_max_age_s = Some(n.min(ttl_s));
                        u.write = true;
                    }
                }
            }
        }
    }
    u
}

fn now_ms() -> u64 {
    u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap_or(0)
}

/// `POST /v1/chat/completions` (admin).
pub async fn chat_completions(
    state: State,
    req: HttpRequest,
    body: JsonBody<ChatCompletionsRequest>,
) -> Result<HttpResponse, ApiError> {
    let route = state.models.resolve(body.model.as_deref())?;
    let chat = to_chat_request(&body)?;
    let opts = options(&state, route);
    let created = chrono::Utc::now().timestamp();
    let id = format!("chatcmpl-{}", uuid::Uuid::new_v4().simple());
    let pool = state.pool.clone();
    if !body.stream {
        let key = cache::key(&[
            body.model.as_deref().unwrap_or("auto"),
            &serde_json::to_string(&chat).map_err(|_| ApiError::Internal)?,
        ]);
        let cc = req
            .headers()
            .get("cache-control")
            .and_then(|v| v.to_str().ok());
        let usage = cache_use(
            state.config.cache.gateway,
            body.deterministic(),
            cc,
            state.config.cache.response_ttl_s,
        );
        let (st, k) = (state.get_ref().clone(), key.clone());
        // Served on this HTTP worker: admission is a lock (or a message to a key actor), and the
        // provider call is I/O; a hop to the engine runtime and back cost more than it saved.
        let (answer, how) = (async move {
                if let Some(max_age) = usage.read_max_age_s {
                    if let Some(hit) = st.cache.get(CacheKind::Response, &k, None).await {
                        if let Ok(v) = serde_json::from_str::<Value>(&hit) {
                            let age_ms = now_ms().saturating_sub(v["cached_at_ms"].as_u64().unwrap_or(0));
                            if age_ms <= max_age.saturating_mul(1000) {
                                st.stats.count_source(Source::Cache);
                                return Ok((v, "hit"));
                            }
                        }
                    }
                }
                let (cache, k2) = (st.cache.clone(), k.clone());
                let (result, shared) = st
                    .gateway_calls
                    .run(k, move || async move {
                        let done = pool.complete(&chat, opts).await?;
                        let usage_n = done.response.usage.unwrap_or_default();
                        let v = json!({
                            "model": done.response.model.clone().unwrap_or_else(|| format!("{}/default", done.provider)),
                            "content": done.response.text,
                            "finish_reason": done.response.finish_reason.clone().unwrap_or_else(|| "stop".into()),
                            "usage": {"prompt_tokens": usage_n.prompt_tokens, "completion_tokens": usage_n.completion_tokens,
                                      "total_tokens": usage_n.total()},
                            "served_by": done.key,
                            "attempts": done.trail.len(),
                            "cached_at_ms": now_ms(),
                        });
                        if usage.write {
                            cache.put_detached(CacheKind::Response, &k2, v.to_string());
                        }
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
            .await?;
        let text = |k: &str| answer[k].as_str().unwrap_or_default().to_string();
        let mut resp = HttpResponse::Ok();
        resp.insert_header(("x-served-by", text("served_by")))
            .insert_header(("x-attempts", answer["attempts"].to_string()))
            .insert_header(("x-cache", how));
        if how == "hit" {
            let age = now_ms().saturating_sub(answer["cached_at_ms"].as_u64().unwrap_or(0)) / 1000;
            resp.insert_header(("age", age.to_string()));
        }
        return Ok(resp.json(json!({
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
                Err(e) => (sse(&json!({"error": {"message": e.to_string(), "type": "server_error", "param": null, "code": "upstream_failed"}})), true),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn req(v: Value) -> ChatCompletionsRequest {
        serde_json::from_value(v).unwrap_or_else(|e| unreachable!("{e}"))
    }

    #[test]
    fn validation() {
        let r =
            req(json!({"model": "groq/llama", "messages": [{"role": "user", "content": "hi"}]}));
        assert!(to_chat_request(&r).is_ok());
        for bad in [
            json!({"messages": []}),
            json!({"messages": [{"role": "robot", "content": "x"}]}),
            json!({"messages": [{"role": "user", "content": "x"}], "max_tokens": 100000}),
            json!({"messages": [{"role": "user", "content": "x"}], "temperature": 3}),
        ] {
            assert!(
                matches!(
                    to_chat_request(&req(bad.clone())),
                    Err(ApiError::BadRequest(_))
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn only_deterministic_requests_are_cached_by_default() {
        let det = |v: Value| req(v).deterministic();
        let m = json!([{"role": "user", "content": "x"}]);
        assert!(det(json!({"messages": m, "temperature": 0})));
        assert!(det(json!({"messages": m, "seed": 7})));
        assert!(!det(json!({"messages": m})));
        assert!(!det(json!({"messages": m, "temperature": 0.7, "seed": 7})));
        let d = GatewayCache::Deterministic;
        let on = CacheUse {
            read_max_age_s: Some(600),
            write: true,
        };
        let off = CacheUse {
            read_max_age_s: None,
            write: false,
        };
        assert_eq!(cache_use(d, true, None, 600), on);
        assert_eq!(cache_use(d, false, None, 600), off);
        // Opt in per request, with a freshness bound; opt out of either half.
        assert_eq!(
            cache_use(d, false, Some("max-age=30"), 600),
            CacheUse {
                read_max_age_s: Some(30),
                write: true
            }
        );
        assert_eq!(
            cache_use(d, true, Some("no-cache"), 600),
            CacheUse {
                read_max_age_s: None,
                write: true
            }
        );
        assert_eq!(cache_use(d, true, Some("No-Store, max-age=0"), 600), off);
        assert_eq!(cache_use(GatewayCache::All, false, None, 600), on);
        assert_eq!(
            cache_use(GatewayCache::Off, true, Some("max-age=9"), 600),
            off
        );
    }
}
