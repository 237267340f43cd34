//! Provider wire formats: one file per format, all behind the [`WireFormat`] trait.
//! A format supplies only what differs between providers: it builds the HTTP request for a
//! [`ChatRequest`], classifies a failed status, parses a whole answer and maps a stream's events;
//! sending, reading and streaming are written once (`impl dyn WireFormat`), and one shared test table
//! (`suite.rs`) runs the same named cases against every format's recorded answers.
//!
//! | format         | file              | used by |
//! |----------------|-------------------|---------|
//! | `openai`       | `openai.rs`       | Groq, Together, Cerebras, DeepSeek, Fireworks, GitHub Models, Mistral, OpenRouter, Hugging Face; local nodes (vLLM/TGI/llama.cpp) as `openai::LOCAL` |
//! | `azure_openai` | `azure_openai.rs` | Azure OpenAI (deployment URL, `api-key` header, `api-version`) |
//! | `gemini`       | `gemini.rs`       | Google Gemini `generateContent` / `streamGenerateContent` |
//! | `cloudflare`   | `cloudflare.rs`   | Cloudflare Workers AI `ai/run` |
//! | `cohere`       | `cohere.rs`       | Cohere chat v2 |
//! | `anthropic`    | `anthropic.rs`    | Anthropic messages |

pub mod anthropic;
pub mod azure_openai;
pub mod cloudflare;
pub mod cohere;
pub mod gemini;
pub mod openai;
pub mod sse;
#[cfg(test)]
pub(crate) mod suite;

use std::pin::Pin;
use std::time::Duration;

use futures::Stream;
use serde::{Deserialize, Serialize};

use crate::secret::Secret;

/// The wire formats the engine speaks; the name is what operators write in `format = "..."`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FormatKind {
    /// OpenAI-compatible `POST {base}/chat/completions`.
    Openai,
    /// Azure OpenAI deployments.
    AzureOpenai,
    /// Google Gemini.
    Gemini,
    /// Cloudflare Workers AI.
    Cloudflare,
    /// Cohere chat v2.
    Cohere,
    /// Anthropic messages.
    Anthropic,
}

impl FormatKind {
    /// The format's name as written in config.
    pub fn as_str(self) -> &'static str {
        match self {
            FormatKind::Openai => "openai",
            FormatKind::AzureOpenai => "azure_openai",
            FormatKind::Gemini => "gemini",
            FormatKind::Cloudflare => "cloudflare",
            FormatKind::Cohere => "cohere",
            FormatKind::Anthropic => "anthropic",
        }
    }

    /// The implementation of this format.
    pub fn wire(self) -> &'static dyn WireFormat {
        match self {
            FormatKind::Openai => &openai::CLOUD,
            FormatKind::AzureOpenai => &azure_openai::AzureOpenAi,
            FormatKind::Gemini => &gemini::Gemini,
            FormatKind::Cloudflare => &cloudflare::Cloudflare,
            FormatKind::Cohere => &cohere::Cohere,
            FormatKind::Anthropic => &anthropic::Anthropic,
        }
    }
}

/// Who a message in a chat is from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Instructions.
    System,
    /// The user (for us: the engine's prompt, with candidate text inside delimited blocks).
    User,
    /// The model.
    Assistant,
}

/// One message of a chat.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// Who says it.
    pub role: Role,
    /// The text.
    pub content: String,
}

impl Message {
    /// A message with a role and text.
    pub fn new(role: Role, content: impl Into<String>) -> Self {
        Self {
            role,
            content: content.into(),
        }
    }
}

/// A provider-neutral chat request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatRequest {
    /// The conversation; system messages first.
    pub messages: Vec<Message>,
    /// Upper bound on generated tokens.
    pub max_tokens: u32,
    /// Sampling temperature.
    pub temperature: Option<f32>,
    /// Ask the provider for a JSON object as output (each format's own switch).
    pub json: bool,
    /// Overrides the target's configured model (the gateway passes the client's model through when asked).
    pub model: Option<String>,
    /// The JSON schema the output must follow, for servers that constrain decoding to it (local
    /// inference nodes: llama.cpp, vLLM). Cloud formats use their plain JSON switch (`json`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json_schema: Option<serde_json::Value>,
}

impl ChatRequest {
    /// Tokens this request may use at most: a prompt estimate (4 characters a token, rounded up) plus `max_tokens`.
    /// This is what admission reserves in every token window.
    pub fn estimated_tokens(&self) -> u64 {
        let (prompt, out) = self.token_split();
        prompt + out
    }

    /// The estimate split into prompt tokens (4 characters a token, rounded up) and `max_tokens`.
    pub fn token_split(&self) -> (u64, u64) {
        let chars: usize = self.messages.iter().map(|m| m.content.len() + 4).sum();
        ((chars as u64).div_ceil(4), u64::from(self.max_tokens))
    }
}

/// Tokens a call used, as the provider reported them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Prompt (input) tokens.
    pub prompt_tokens: u64,
    /// Completion (output) tokens.
    pub completion_tokens: u64,
}

impl Usage {
    /// Prompt plus completion.
    pub fn total(&self) -> u64 {
        self.prompt_tokens + self.completion_tokens
    }
}

/// A complete answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatResponse {
    /// The generated text.
    pub text: String,
    /// Token usage, when the provider reported it.
    pub usage: Option<Usage>,
    /// Why generation stopped, in the provider's words.
    pub finish_reason: Option<String>,
    /// The model that answered, when reported.
    pub model: Option<String>,
}

/// One piece of a streamed answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum StreamChunk {
    /// More text.
    Delta(String),
    /// The end of the stream, with usage when the provider sent it.
    Done {
        /// Token usage, when reported.
        usage: Option<Usage>,
        /// Why generation stopped.
        finish_reason: Option<String>,
    },
}

/// A stream of chunks; it ends after `StreamChunk::Done` or an error.
pub type ChunkStream = Pin<Box<dyn Stream<Item = Result<StreamChunk, ProviderError>> + Send>>;

/// Where and as whom a request is sent: one key of one provider.
#[derive(Debug, Clone)]
pub struct Target {
    /// The provider's base URL from config, without a trailing slash
    /// (Azure: the resource endpoint; Cloudflare: `.../client/v4`).
    pub base_url: String,
    /// The model (Azure: the deployment name; Cloudflare: `@cf/...`).
    pub model: String,
    /// The API key.
    pub secret: Secret,
    /// Cloudflare account id.
    pub account_id: Option<String>,
    /// Azure `api-version` query value.
    pub api_version: Option<String>,
    /// Time allowed for one HTTP call.
    pub timeout: Duration,
}

impl Target {
    /// The model to use for `req`: the request's override or the configured one.
    pub fn model_for<'a>(&'a self, req: &'a ChatRequest) -> &'a str {
        req.model.as_deref().unwrap_or(&self.model)
    }
}

/// Why a provider call failed, classified so the key actor and router know what to do.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ProviderError {
    /// The provider rate-limited this key (HTTP 429 or its body says so).
    #[error("rate limited{}", retry_after.map(|d| format!(", retry after {:.1}s", d.as_secs_f64())).unwrap_or_default())]
    RateLimited {
        /// How long to wait, from `Retry-After`, `x-ratelimit-reset-*` or the body.
        retry_after: Option<Duration>,
        /// The key's daily quota is spent: park it until the daily reset.
        day_exhausted: bool,
    },
    /// The key was refused (401/403): stop using it.
    #[error("key refused (HTTP {status})")]
    InvalidKey {
        /// The HTTP status.
        status: u16,
    },
    /// A server-side failure worth retrying elsewhere (5xx).
    #[error("provider error (HTTP {status})")]
    Server {
        /// The HTTP status.
        status: u16,
    },
    /// No answer in time.
    #[error("provider timed out")]
    Timeout,
    /// The connection failed.
    #[error("provider unreachable: {0}")]
    Unreachable(String),
    /// The answer did not have the documented shape.
    #[error("malformed provider answer: {0}")]
    Malformed(String),
    /// The provider refused the request itself (4xx other than 401/403/429): retrying elsewhere will not help.
    #[error("request refused by provider (HTTP {status}): {message}")]
    BadRequest {
        /// The HTTP status.
        status: u16,
        /// The provider's message (secrets scrubbed).
        message: String,
    },
}

impl ProviderError {
    /// Whether this failure counts towards the key's circuit breaker.
    pub fn is_breaker_failure(&self) -> bool {
        matches!(
            self,
            ProviderError::Server { .. }
                | ProviderError::Timeout
                | ProviderError::Unreachable(_)
                | ProviderError::Malformed(_)
        )
    }

    /// A short machine-readable name for logs, metrics and attempt trails.
    pub fn code(&self) -> &'static str {
        match self {
            ProviderError::RateLimited { .. } => "rate_limited",
            ProviderError::InvalidKey { .. } => "invalid_key",
            ProviderError::Server { .. } => "server_error",
            ProviderError::Timeout => "timeout",
            ProviderError::Unreachable(_) => "unreachable",
            ProviderError::Malformed(_) => "malformed",
            ProviderError::BadRequest { .. } => "bad_request",
        }
    }
}

/// A fresh mapper from a stream's SSE events to chunks: it may keep state across events (usage seen
/// early, a stop reason) and returns the chunks one event yields (possibly none).
pub type StreamMapper =
    Box<dyn FnMut(&eventsource_stream::Event) -> Result<Vec<StreamChunk>, ProviderError> + Send>;

/// One call as a format sees it when it builds the HTTP request.
pub struct Call<'a> {
    /// The shared client (it pools connections).
    pub http: &'a reqwest::Client,
    /// Where and as whom.
    pub target: &'a Target,
    /// What to ask.
    pub req: &'a ChatRequest,
    /// The streaming variant.
    pub stream: bool,
}

impl Call<'_> {
    /// The model to ask for: the request's override or the target's.
    pub fn model(&self) -> &str {
        self.target.model_for(self.req)
    }

    /// A `POST` to `url`.
    pub fn post(&self, url: impl reqwest::IntoUrl) -> reqwest::RequestBuilder {
        self.http.post(url)
    }

    /// The target's key, to put in a header.
    pub fn key(&self) -> &str {
        self.target.secret.expose()
    }
}

/// A failed answer as a format sees it when it classifies: status, headers, the unscrubbed body and
/// the key to scrub out of anything kept.
pub struct Failure<'a> {
    /// The HTTP status.
    pub status: u16,
    /// The answer's headers.
    pub headers: &'a reqwest::header::HeaderMap,
    /// The body, unscrubbed.
    pub body: &'a str,
    /// The key the call was made with.
    pub secret: &'a Secret,
}

impl Failure<'_> {
    /// Rate limited, waiting what the headers ask (see [`retry_after_from_headers`]).
    pub fn rate_limited(&self, day_exhausted: bool) -> ProviderError {
        ProviderError::RateLimited {
            retry_after: retry_after_from_headers(self.headers),
            day_exhausted,
        }
    }

    /// The key refused, with this answer's status.
    pub fn invalid_key(&self) -> ProviderError {
        ProviderError::InvalidKey {
            status: self.status,
        }
    }

    /// The body in lower case, for formats that look for words in it.
    pub fn lower_body(&self) -> String {
        self.body.to_ascii_lowercase()
    }

    /// The body as JSON (`Null` when it is not).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// A provider wire format: only what differs between providers. Implementations are stateless;
/// sending, reading and streaming are written once, in [`complete`](#method.complete) and
/// [`stream`](#method.stream) on `dyn WireFormat`. Which format a provider speaks is its
/// [`FormatKind`]; [`FormatKind::wire`] gives the implementation.
pub trait WireFormat: Send + Sync {
    /// The HTTP request for a call: URL, credentials and body. A target the format cannot address
    /// (Cloudflare without an account id) is an error.
    fn request(&self, call: &Call<'_>) -> Result<reqwest::RequestBuilder, ProviderError>;

    /// Classifies a failed answer; the default is [`classify_status`], formats whose error bodies
    /// say more override it and fall back to it.
    fn classify(&self, failure: &Failure<'_>) -> ProviderError {
        classify_status(failure)
    }

    /// Reads a whole (non-streamed) answer.
    fn parse_response(&self, v: &serde_json::Value) -> Result<ChatResponse, ProviderError>;

    /// A fresh mapper for one streamed answer.
    fn stream_mapper(&self) -> StreamMapper;
}

impl dyn WireFormat {
    /// Sends `req` and returns the whole answer (`target.timeout` bounds the whole call).
    pub async fn complete(
        &self,
        http: &reqwest::Client,
        target: &Target,
        req: &ChatRequest,
    ) -> Result<ChatResponse, ProviderError> {
        let resp = self.send(http, target, req, false).await?;
        self.parse_response(&read_json(resp, target).await?)
    }

    /// Sends `req` with streaming on and returns the answer piece by piece (`target.timeout` bounds
    /// the time to the response head only, so long streams are not cut).
    pub async fn stream(
        &self,
        http: &reqwest::Client,
        target: &Target,
        req: &ChatRequest,
    ) -> Result<ChunkStream, ProviderError> {
        let resp = self.send(http, target, req, true).await?;
        Ok(sse::chunks(resp, self.stream_mapper()))
    }

    /// Builds the call's request and sends it; a non-success status is classified by the format.
    async fn send(
        &self,
        http: &reqwest::Client,
        target: &Target,
        req: &ChatRequest,
        stream: bool,
    ) -> Result<reqwest::Response, ProviderError> {
        let call = Call {
            http,
            target,
            req,
            stream,
        };
        send_classified(self.request(&call)?, target, stream, |f| self.classify(f)).await
    }
}

/// Maps a transport error from reqwest to a [`ProviderError`], scrubbing the key from the message.
pub fn transport_error(err: &reqwest::Error, secret: &Secret) -> ProviderError {
    if err.is_timeout() {
        ProviderError::Timeout
    } else if err.is_decode() || err.is_body() {
        ProviderError::Malformed(secret.scrub(&err.without_url_string()))
    } else {
        ProviderError::Unreachable(secret.scrub(&err.without_url_string()))
    }
}

/// Small helper trait: `reqwest::Error`'s text without the URL (URLs can carry keys, e.g. Gemini's `?key=`).
pub trait WithoutUrl {
    /// The error's text with any URL removed.
    fn without_url_string(&self) -> String;
}

impl WithoutUrl for reqwest::Error {
    fn without_url_string(&self) -> String {
        let mut e = self.to_string();
        if let Some(url) = self.url() {
            e = e.replace(url.as_str(), "<url>");
        }
        e
    }
}

/// Parses a `Retry-After` value: delay seconds (possibly fractional) or an HTTP date.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<f64>() {
        if secs.is_finite() && secs >= 0.0 {
            return Some(Duration::from_secs_f64(secs));
        }
        return None;
    }
    let when = chrono::DateTime::parse_from_rfc2822(v).ok()?;
    let delta = when.with_timezone(&chrono::Utc) - chrono::Utc::now();
    Some(delta.to_std().unwrap_or(Duration::ZERO))
}

/// Parses OpenAI-style reset durations such as `1s`, `6m0s`, `2m59.56s`, `120ms`, `1h2m`.
pub fn parse_reset_duration(value: &str) -> Option<Duration> {
    let v = value.trim();
    if v.is_empty() {
        return None;
    }
    if let Ok(secs) = v.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs));
    }
    let mut total = 0f64;
    let mut num = String::new();
    let mut chars = v.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() || c == '.' {
            num.push(c);
            continue;
        }
        let n: f64 = num.parse().ok()?;
        num.clear();
        let unit = match c {
            'h' => 3600.0,
            'm' if chars.peek() == Some(&'s') => {
                chars.next();
                0.001
            }
            'm' => 60.0,
            's' => 1.0,
            _ => return None,
        };
        total += n * unit;
    }
    if !num.is_empty() {
        return None;
    }
    Some(Duration::from_secs_f64(total))
}

/// Classifies a non-success HTTP status the way most providers use them; each format calls this after
/// reading its own body for finer signals (a day-exhausted message, a retry delay).
pub fn classify_status(f: &Failure<'_>) -> ProviderError {
    match f.status {
        429 => f.rate_limited(body_says_day_exhausted(f.body)),
        401 | 403 => f.invalid_key(),
        408 => ProviderError::Timeout,
        status @ 500..=599 => ProviderError::Server { status },
        status => ProviderError::BadRequest {
            status,
            message: f.secret.scrub(&truncate(f.body, 300)),
        },
    }
}

/// The wait a 429 asks for: `Retry-After`, else the longer of `x-ratelimit-reset-requests` / `-tokens`.
pub fn retry_after_from_headers(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(d) = get("retry-after").and_then(parse_retry_after) {
        return Some(d);
    }
    if let Some(ms) = get("retry-after-ms").and_then(|v| v.trim().parse::<u64>().ok()) {
        return Some(Duration::from_millis(ms));
    }
    let req = get("x-ratelimit-reset-requests").and_then(parse_reset_duration);
    let tok = get("x-ratelimit-reset-tokens").and_then(parse_reset_duration);
    match (req, tok) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

/// Whether a rate-limit body says the day's quota is gone (Groq "requests per day (RPD)",
/// Gemini `PerDay` quota ids, "daily" limits elsewhere).
pub fn body_says_day_exhausted(body: &str) -> bool {
    let b = body.to_ascii_lowercase();
    b.contains("per day") || b.contains("perday") || b.contains("(rpd)") || b.contains("daily")
}

/// Sends a prepared request and checks its status, classifying a failure with `classify`: the one
/// send path of every format, and of the audio
/// endpoints (with [`classify_status`]). With `stream`, `target.timeout` bounds the time to the
/// response head only, so long streams are not cut; otherwise it bounds the whole call, body included.
pub async fn send_classified(
    rb: reqwest::RequestBuilder,
    target: &Target,
    stream: bool,
    classify: impl Fn(&Failure<'_>) -> ProviderError,
) -> Result<reqwest::Response, ProviderError> {
    let resp = if stream {
        tokio::time::timeout(target.timeout, rb.send())
            .await
            .map_err(|_| ProviderError::Timeout)?
    } else {
        rb.timeout(target.timeout).send().await
    }
    .map_err(|e| transport_error(&e, &target.secret))?;
    let status = resp.status();
    if !status.is_success() {
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap_or_default();
        return Err(classify(&Failure {
            status: status.as_u16(),
            headers: &headers,
            body: &text,
            secret: &target.secret,
        }));
    }
    Ok(resp)
}

/// Sends a prepared request that is not a chat (the audio endpoints of `voice/`) and returns its
/// whole body: a bearer token when the target has a key, failures classified by [`classify_status`],
/// `target.timeout` bounding the whole call.
pub async fn send_whole(
    rb: reqwest::RequestBuilder,
    target: &Target,
) -> Result<bytes::Bytes, ProviderError> {
    let rb = if target.secret.is_empty() {
        rb
    } else {
        rb.bearer_auth(target.secret.expose())
    };
    send_classified(rb, target, false, classify_status)
        .await?
        .bytes()
        .await
        .map_err(|e| transport_error(&e, &target.secret))
}

/// Reads a successful answer's body as JSON.
pub async fn read_json(
    resp: reqwest::Response,
    target: &Target,
) -> Result<serde_json::Value, ProviderError> {
    let bytes = resp
        .bytes()
        .await
        .map_err(|e| transport_error(&e, &target.secret))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| ProviderError::Malformed(format!("answer is not JSON: {e}")))
}

/// Cuts `s` to at most `max` bytes on a character boundary.
pub fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// Pulls a JSON object out of model output that may wrap it in code fences or chatter.
pub fn extract_json_object(text: &str) -> Option<serde_json::Value> {
    let t = text.trim();
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(t) {
        return Some(v);
    }
    let start = t.find(['{', '['])?;
    let end = t.rfind(['}', ']'])?;
    if end <= start {
        return None;
    }
    serde_json::from_str(&t[start..=end]).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reset_durations() {
        assert_eq!(parse_reset_duration("1s"), Some(Duration::from_secs(1)));
        assert_eq!(parse_reset_duration("6m0s"), Some(Duration::from_secs(360)));
        assert_eq!(
            parse_reset_duration("120ms"),
            Some(Duration::from_millis(120))
        );
        let d = parse_reset_duration("2m59.56s").map(|d| d.as_millis());
        assert_eq!(d, Some(179_560));
        assert_eq!(parse_reset_duration("abc"), None);
    }

    #[test]
    fn retry_after_values() {
        assert_eq!(parse_retry_after("7"), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after("-1"), None);
        assert!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT").is_some());
    }

    #[test]
    fn json_in_chatter() {
        let v = extract_json_object("Sure! ```json\n{\"score\": 7}\n``` hope it helps");
        assert_eq!(v.and_then(|v| v["score"].as_i64()), Some(7));
        assert!(extract_json_object("no json here").is_none());
    }

    #[test]
    fn estimate_counts_prompt_and_max_tokens() {
        let req = ChatRequest {
            messages: vec![Message::new(Role::User, "a".repeat(400))],
            max_tokens: 100,
            temperature: None,
            json: false,
            model: None,
            json_schema: None,
        };
        assert_eq!(req.estimated_tokens(), 101 + 100);
    }
}
