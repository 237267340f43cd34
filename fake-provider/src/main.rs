//! `fake-provider`: a dev server speaking six LLM provider wire formats on loopback for integration tests,
//! with per-key limits, 429s in each provider's shape, latency, injected faults and a request log (`/_fake/`).
//! A key whose reply is `@interviewer` (every key without a fixed reply under `--persona interviewer`)
//! answers like an interviewer model: grades, batch grades, resume analyses, follow-up questions.

// Format checks return the provider's error answer itself as the `Err`; it is built once per refused request.
#![allow(clippy::result_large_err)]

mod anthropic;
mod audio;
mod azure_openai;
mod cloudflare;
mod cohere;
mod gemini;
mod openai;
mod persona;
mod state;

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use bytes::Bytes;
use clap::Parser;
use serde::Deserialize;
use serde_json::{json, Value};

use state::{
    first_chars, split_pieces, tokens_of_chars, Call, Decision, Fault, HeaderLimit, KeySpec,
    LimitView, RateLimited, Record, State, TIMEOUT_HOLD,
};

/// Command line.
#[derive(Parser, Debug)]
#[command(
    name = "fake-provider",
    about = "Fake LLM provider server for integration tests (OpenAI, Azure OpenAI, Gemini, Cloudflare, Cohere, Anthropic)"
)]
struct Cli {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:0")]
    bind: String,
    /// JSON file with an array of key registrations (the bodies of `POST /_fake/keys`).
    #[arg(long)]
    keys: Option<PathBuf>,
    /// Model ids listed by `GET /v1/models` (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "fake-model")]
    models: Vec<String>,
    /// Default reply of every key registered without a fixed one: `interviewer` answers like an
    /// interviewer model (as if the key's reply were `@interviewer`).
    #[arg(long, value_enum)]
    persona: Option<Persona>,
}

/// A reply persona for keys without a fixed reply.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Persona {
    /// Grades answers, analyses resumes and asks follow-up questions from the request (`@interviewer`).
    Interviewer,
}

impl Persona {
    /// The fixed reply that stands for this persona.
    fn reply(self) -> &'static str {
        match self {
            Persona::Interviewer => persona::INTERVIEWER,
        }
    }
}

/// Server-wide reply settings.
#[derive(Debug, Clone, Default)]
struct Defaults {
    /// The reply of keys registered without one.
    reply: Option<String>,
}

/// The query string of a request as a map.
pub type Query = HashMap<String, String>;

/// Why a format answers with an error of its own shape (other than 400s and 429s).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrKind {
    /// The key is not registered.
    InvalidKey,
    /// The `http_401` fault.
    Unauthorized,
    /// The `http_500` fault.
    Server,
    /// The `timeout` fault, after holding the request.
    Timeout,
}

/// What a format read from a well-formed request.
#[derive(Debug, Clone, Default)]
pub struct Parsed {
    /// The model (Azure: the deployment; Cloudflare: the `@cf/...` path).
    pub model: String,
    /// Whether a stream was asked for.
    pub stream: bool,
    /// Whether JSON output was asked for.
    pub json_mode: bool,
    /// Characters of all messages (system included).
    pub prompt_chars: usize,
    /// Text of the last user message.
    pub last_user: String,
    /// Text of the system message(s), joined (Anthropic `system`, Gemini `systemInstruction`).
    pub system: String,
    /// OpenAI `stream_options.include_usage`.
    pub include_usage: bool,
}

impl Parsed {
    /// A parsed chat request (no OpenAI `include_usage`).
    pub fn chat(
        model: String,
        stream: bool,
        json_mode: bool,
        (prompt_chars, last_user, system): (usize, String, String),
    ) -> Parsed {
        Parsed {
            model,
            stream,
            json_mode,
            prompt_chars,
            last_user,
            system,
            include_usage: false,
        }
    }
}

/// Whether an OpenAI-style body asks for JSON (`response_format.type` `json_object` or `json_schema`);
/// Cloudflare and Cohere take the same field.
pub fn json_response_format(v: &Value) -> bool {
    matches!(
        v["response_format"]["type"].as_str(),
        Some("json_object" | "json_schema")
    )
}

/// A reset header: its name, and how the format writes the time until the reset.
pub type ResetHeader = (&'static str, fn(Duration) -> String);

/// Sets one window's rate-limit headers: `limit` and `remaining` as numbers, `reset` (when the format
/// has one) as `show` writes a duration.
pub fn window_headers(
    h: &mut HeaderMap,
    window: Option<HeaderLimit>,
    [limit, remaining]: [&'static str; 2],
    reset: Option<ResetHeader>,
) {
    let Some(w) = window else { return };
    set_header(h, limit, w.limit.to_string());
    set_header(h, remaining, w.remaining.to_string());
    if let Some((name, show)) = reset {
        set_header(h, name, show(w.reset));
    }
}

/// The answer to give, in neutral terms; each format dresses it.
#[derive(Debug, Clone)]
pub struct Answer {
    /// A fresh id (formats add their prefixes).
    pub id: uuid::Uuid,
    /// The model.
    pub model: String,
    /// The whole reply text.
    pub text: String,
    /// The reply split for streaming (at least three pieces).
    pub pieces: Vec<String>,
    /// Prompt tokens.
    pub prompt_tokens: u64,
    /// Completion tokens.
    pub completion_tokens: u64,
    /// Unix seconds.
    pub created: i64,
    /// Whether JSON output was asked for.
    pub json_mode: bool,
    /// OpenAI `stream_options.include_usage`.
    pub include_usage: bool,
}

/// A streamed answer: events before the content, one event per content piece, and events after it.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The response's content type.
    pub content_type: &'static str,
    /// Events before the content.
    pub head: Vec<Bytes>,
    /// One event per content piece.
    pub pieces: Vec<Bytes>,
    /// Events after the content (the final ones).
    pub tail: Vec<Bytes>,
}

impl Plan {
    /// A named-event SSE stream: `head`, one `piece(text)` event per content piece, `tail`.
    pub fn events(
        content_type: &'static str,
        head: Vec<Bytes>,
        pieces: &[String],
        piece: impl Fn(&str) -> Bytes,
        tail: Vec<Bytes>,
    ) -> Plan {
        Plan {
            content_type,
            head,
            pieces: pieces.iter().map(|p| piece(p)).collect(),
            tail,
        }
    }
}

/// The request a 429 answers: the model asked for, the HTTP request and its query.
#[derive(Clone, Copy)]
pub struct Asked<'a> {
    /// The model (as parsed).
    pub model: &'a str,
    /// The HTTP request.
    pub req: &'a HttpRequest,
    /// Its query string.
    pub q: &'a Query,
}

/// One provider wire format.
pub trait Wire {
    /// The format's name (as the engine's config writes it).
    const FORMAT: &'static str;

    /// Reads the API key, or answers the format's missing / ill-formed credentials error.
    fn key(req: &HttpRequest, q: &Query) -> Result<String, HttpResponse>;

    /// Header and query checks made before the key is looked up.
    fn precheck(_req: &HttpRequest, _q: &Query) -> Option<HttpResponse> {
        None
    }

    /// Whether the request asks for a stream (read before the body is checked, for the log).
    fn wants_stream(_req: &HttpRequest, body: &Value) -> bool {
        body["stream"].as_bool().unwrap_or(false)
    }

    /// Checks the body like the real provider; a bad one gets the provider's 400.
    fn parse(req: &HttpRequest, q: &Query, body: &[u8]) -> Result<Parsed, HttpResponse>;

    /// The format's error answer for `kind`.
    fn error(kind: ErrKind) -> HttpResponse;

    /// The format's 429 (the pipeline adds `Retry-After`).
    fn rate_limited(rl: &RateLimited, asked: Asked<'_>) -> HttpResponse;

    /// The whole (non-streamed) answer body.
    fn complete(a: &Answer) -> Value;

    /// The streamed answer.
    fn stream(a: &Answer, q: &Query) -> Plan;

    /// Rate-limit headers the provider adds to its answers.
    fn limit_headers(_view: &LimitView, _h: &mut HeaderMap) {}
}

/// A JSON answer.
pub fn json_response(status: StatusCode, v: &Value) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("application/json")
        .body(v.to_string())
}

/// A request header as text.
pub fn header<'a>(req: &'a HttpRequest, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

/// The token of an `Authorization: Bearer <token>` header: `None` when the header is absent,
/// `Some(None)` when it is present but not a non-empty bearer token.
pub fn bearer(req: &HttpRequest) -> Option<Option<String>> {
    let raw = req.headers().get("authorization")?;
    let Ok(text) = raw.to_str() else {
        return Some(None);
    };
    let text = text.trim();
    let token = match text.split_once(' ') {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => rest.trim(),
        _ => "",
    };
    Some((!token.is_empty()).then(|| token.to_string()))
}

/// Sets a header, skipping values that are not valid header text.
pub fn set_header(h: &mut HeaderMap, name: &'static str, value: String) {
    if let Ok(v) = HeaderValue::from_str(&value) {
        h.insert(HeaderName::from_static(name), v);
    }
}

/// The text of a message `content`: a string, or the `text` of each part of an array.
pub fn text_of(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| match p {
                Value::String(s) => Some(s.as_str()),
                other => other["text"].as_str(),
            })
            .collect::<Vec<_>>()
            .join(""),
        Value::Object(_) => content["text"].as_str().unwrap_or_default().to_string(),
        _ => String::new(),
    }
}

/// The JSON type name used in validation messages.
pub fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Decodes `%XX` escapes (model names may arrive as `%40cf%2F...`).
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
            if let Some(b) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// An SSE event with only `data:`.
pub fn sse_data(v: &Value) -> Bytes {
    Bytes::from(format!("data: {v}\n\n"))
}

/// An SSE event with an `event:` name.
pub fn sse_event(name: &str, v: &Value) -> Bytes {
    Bytes::from(format!("event: {name}\ndata: {v}\n\n"))
}

/// The event cut in the middle of its JSON (the `malformed` fault's broken data line).
fn broken_event(event: &Bytes) -> Bytes {
    let text = String::from_utf8_lossy(event);
    let ending = if text.ends_with("\r\n\r\n") {
        "\r\n\r\n"
    } else {
        "\n\n"
    };
    let body = text.trim_end_matches(['\r', '\n']);
    let start = body.find("data:").map(|i| i + 5).unwrap_or(0);
    let mut cut = start + (body.len() - start) / 2;
    while !body.is_char_boundary(cut) {
        cut -= 1;
    }
    // Make sure something was removed even for a tiny event.
    let cut = cut.min(body.len().saturating_sub(1)).max(start);
    Bytes::from(format!("{}{ending}", &body[..cut]))
}

/// A JSON text cut in half: never valid JSON.
fn truncated(v: &Value) -> String {
    let s = v.to_string();
    let mut cut = s.len() / 2;
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    s[..cut].to_string()
}

/// One step of a streamed body.
enum Step {
    Data(Bytes),
    Abort,
}

/// Pause between streamed events, so each reaches the client on its own.
const EVENT_GAP: Duration = Duration::from_millis(2);

/// A streaming response that plays `steps`, keeping `call` (the in-flight count) alive until it ends.
fn play(content_type: &'static str, steps: Vec<Step>, call: Call) -> HttpResponse {
    let body = futures::stream::unfold(
        (steps.into_iter(), Some(call), true),
        |(mut it, call, first)| async move {
            call.as_ref()?;
            if !first {
                tokio::time::sleep(EVENT_GAP).await;
            }
            match it.next() {
                Some(Step::Data(b)) => Some((Ok::<Bytes, std::io::Error>(b), (it, call, false))),
                Some(Step::Abort) => {
                    // Let the pieces already written reach the client before the cut.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    Some((
                        Err(std::io::Error::new(
                            std::io::ErrorKind::ConnectionAborted,
                            "cut_stream fault",
                        )),
                        (it, None, false),
                    ))
                }
                None => None,
            }
        },
    );
    HttpResponse::Ok()
        .content_type(content_type)
        .insert_header(("cache-control", "no-cache"))
        .streaming(body)
}

/// Waits `latency`; zero waits not at all (a zero-length tokio sleep still waits for the next timer
/// tick, about a millisecond, which would hide the gateway's own overhead in benchmarks).
async fn pause(latency: Duration) {
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
}

/// Records the answer's status and returns it.
fn finish(state: &State, mut rec: Record, resp: HttpResponse) -> HttpResponse {
    rec.status = Some(resp.status().as_u16());
    state.record(rec);
    resp
}

/// The reply text: the interviewer persona's answer when the fixed reply is `@interviewer`, else the key's
/// fixed reply, else `{"echo":"<first 60 chars of the last user message>"}` in JSON mode, else
/// `Fake reply from <format> model <model>: <first 60 chars of the last user message>`.
fn reply_text(fixed: Option<&str>, p: &Parsed, format: &str) -> String {
    match fixed {
        Some(persona::INTERVIEWER) => return persona::reply(p),
        Some(r) => return r.to_string(),
        None => {}
    }
    let snippet = first_chars(&p.last_user, 60);
    if p.json_mode {
        json!({ "echo": snippet }).to_string()
    } else {
        format!("Fake reply from {format} model {}: {snippet}", p.model)
    }
}

/// Parses a query string.
pub fn parse_query(q: &str) -> Query {
    web::Query::<Query>::from_query(q)
        .map(web::Query::into_inner)
        .unwrap_or_default()
}

/// The request pipeline shared by all formats: key, checks, faults, limits, latency, answer, log.
async fn serve<W: Wire>(req: HttpRequest, body: Bytes, state: web::Data<State>) -> HttpResponse {
    let q = parse_query(req.query_string());
    let mut rec = Record::new(W::FORMAT, &req, &body);
    rec.stream = W::wants_stream(&req, &rec.body);
    let key = match W::key(&req, &q) {
        Ok(k) => k,
        Err(resp) => return finish(&state, rec, resp),
    };
    rec.key = Some(key.clone());
    if let Some(resp) = W::precheck(&req, &q) {
        return finish(&state, rec, resp);
    }
    let shared: Arc<State> = state.clone().into_inner();
    let Some((call, snap)) = shared.begin(&key) else {
        return finish(&state, rec, W::error(ErrKind::InvalidKey));
    };
    let latency = snap.latency;
    let with_view = |mut resp: HttpResponse, view: &LimitView| {
        W::limit_headers(view, resp.headers_mut());
        resp
    };

    let parsed = match W::parse(&req, &q, &body) {
        Ok(p) => p,
        Err(resp) => {
            let resp = finish(&state, rec, with_view(resp, &state.view(&key)));
            pause(latency).await;
            drop(call);
            return resp;
        }
    };
    let default_reply = req
        .app_data::<web::Data<Defaults>>()
        .and_then(|d| d.reply.clone());
    let fixed = snap.reply.or(default_reply);
    let text = reply_text(fixed.as_deref(), &parsed, W::FORMAT);
    let prompt_tokens = tokens_of_chars(parsed.prompt_chars);
    let completion_tokens = tokens_of_chars(text.chars().count());
    rec.tokens = prompt_tokens + completion_tokens;
    rec.stream = parsed.stream;

    let limited = |rl: &RateLimited, view: &LimitView| {
        let asked = Asked {
            model: &parsed.model,
            req: &req,
            q: &q,
        };
        let mut resp = W::rate_limited(rl, asked);
        set_header(
            resp.headers_mut(),
            "retry-after",
            rl.retry_secs().to_string(),
        );
        with_view(resp, view)
    };
    let (fault, view) = match state.admit(&key, prompt_tokens, completion_tokens) {
        Decision::Gone => return finish(&state, rec, W::error(ErrKind::InvalidKey)),
        Decision::Limited(rl, view) => {
            let resp = finish(&state, rec, limited(&rl, &view));
            pause(latency).await;
            return resp;
        }
        Decision::Fault(f, view) => {
            let resp = match f {
                Fault::Http500 => W::error(ErrKind::Server),
                Fault::Http401 => W::error(ErrKind::Unauthorized),
                Fault::RateLimit | Fault::RateLimitDay => {
                    limited(&state.injected_limit(&key, f), &view)
                }
                Fault::Timeout => {
                    let seq = state.record(rec);
                    tokio::time::sleep(latency + TIMEOUT_HOLD).await;
                    let resp = with_view(W::error(ErrKind::Timeout), &view);
                    state.set_status(seq, resp.status().as_u16());
                    drop(call);
                    return resp;
                }
                // The state only hands these out as `ServeFaulty`; answer them the same way if not.
                Fault::Malformed | Fault::CutStream => {
                    let resp = HttpResponse::Ok()
                        .content_type("application/json")
                        .body("{\"truncated\":");
                    with_view(resp, &view)
                }
            };
            let resp = finish(&state, rec, with_view(resp, &view));
            pause(latency).await;
            return resp;
        }
        Decision::Serve(view) => (None, view),
        Decision::ServeFaulty(f, view) => (Some(f), view),
    };

    let answer = Answer {
        id: uuid::Uuid::new_v4(),
        model: parsed.model.clone(),
        pieces: split_pieces(&text),
        text,
        prompt_tokens,
        completion_tokens,
        created: chrono::Utc::now().timestamp(),
        json_mode: parsed.json_mode,
        include_usage: parsed.include_usage,
    };

    if !parsed.stream {
        let v = W::complete(&answer);
        let resp = match fault {
            Some(_) => HttpResponse::Ok()
                .content_type("application/json")
                .body(truncated(&v)),
            None => json_response(StatusCode::OK, &v),
        };
        let resp = finish(&state, rec, with_view(resp, &view));
        pause(latency).await;
        drop(call);
        return resp;
    }

    let plan = W::stream(&answer, &q);
    let mut steps: Vec<Step> = plan.head.into_iter().map(Step::Data).collect();
    let pieces = plan.pieces;
    match fault {
        Some(Fault::CutStream) => {
            steps.extend(pieces.into_iter().take(2).map(Step::Data));
            steps.push(Step::Abort);
        }
        Some(_) => {
            for (i, p) in pieces.into_iter().enumerate() {
                steps.push(Step::Data(if i == 1 { broken_event(&p) } else { p }));
            }
            steps.extend(plan.tail.into_iter().map(Step::Data));
        }
        None => {
            steps.extend(pieces.into_iter().map(Step::Data));
            steps.extend(plan.tail.into_iter().map(Step::Data));
        }
    }
    let resp = with_view(play(plan.content_type, steps, call), &view);
    let resp = finish(&state, rec, resp);
    pause(latency).await;
    resp
}

/// Routes a provider request to its format by path (any prefix is accepted).
async fn dispatch(
    req: HttpRequest,
    body: Bytes,
    state: web::Data<State>,
    loading: web::Data<Loading>,
) -> HttpResponse {
    if loading.get() {
        return loading_response();
    }
    let path = req.path().to_string();
    if req.method() == Method::GET && path.ends_with("/v1/models") {
        return match req.app_data::<web::Data<Vec<String>>>() {
            Some(models) => models_list(models.as_ref()),
            None => models_list(&[]),
        };
    }
    if req.method() != Method::POST {
        return not_found(&req);
    }
    if path.ends_with("/audio/transcriptions") || path.ends_with("/audio/speech") {
        let Some(a) = req.app_data::<web::Data<Arc<audio::Audio>>>().cloned() else {
            return not_found(&req);
        };
        return if path.ends_with("/audio/speech") {
            audio::speech(req, body, state, a).await
        } else {
            audio::transcriptions(req, body, state, a).await
        };
    }
    if path.contains("/openai/deployments/") && path.ends_with("/chat/completions") {
        serve::<azure_openai::AzureOpenAi>(req, body, state).await
    } else if path.ends_with("/chat/completions") {
        serve::<openai::OpenAi>(req, body, state).await
    } else if path.ends_with("/v1/messages") {
        serve::<anthropic::Anthropic>(req, body, state).await
    } else if path.ends_with("/v2/chat") {
        serve::<cohere::Cohere>(req, body, state).await
    } else if path.contains("/accounts/") && path.contains("/ai/run/") {
        serve::<cloudflare::Cloudflare>(req, body, state).await
    } else if path.contains("/models/")
        && (path.ends_with(":generateContent") || path.ends_with(":streamGenerateContent"))
    {
        serve::<gemini::Gemini>(req, body, state).await
    } else {
        not_found(&req)
    }
}

fn not_found(req: &HttpRequest) -> HttpResponse {
    json_response(
        StatusCode::NOT_FOUND,
        &json!({"error": {"message": format!("fake-provider: no route for {} {}", req.method(), req.path()), "type": "not_found"}}),
    )
}

fn models_list(models: &[String]) -> HttpResponse {
    let created = chrono::Utc::now().timestamp();
    let data: Vec<Value> = models
        .iter()
        .map(|m| json!({"id": m, "object": "model", "created": created, "owned_by": "fake-provider"}))
        .collect();
    json_response(StatusCode::OK, &json!({"object": "list", "data": data}))
}

/// Whether the server is "loading its model": while it is, `/health`, `/v1/models` and every
/// completion answer 503 the way llama.cpp's `llama-server` does (a node that is not up yet).
#[derive(Debug, Default)]
struct Loading(std::sync::atomic::AtomicBool);

impl Loading {
    fn get(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}

fn loading_response() -> HttpResponse {
    json_response(
        StatusCode::SERVICE_UNAVAILABLE,
        &json!({"error": {"code": 503, "message": "Loading model", "type": "unavailable_error"}}),
    )
}

async fn health(loading: web::Data<Loading>) -> HttpResponse {
    if loading.get() {
        return loading_response();
    }
    json_response(StatusCode::OK, &json!({"status": "ok"}))
}

/// `POST /_fake/loading` `{"loading": bool}`.
async fn set_loading(body: Bytes, loading: web::Data<Loading>) -> HttpResponse {
    #[derive(Deserialize)]
    struct Body {
        loading: bool,
    }
    match serde_json::from_slice::<Body>(&body) {
        Ok(b) => {
            loading
                .0
                .store(b.loading, std::sync::atomic::Ordering::SeqCst);
            ok()
        }
        Err(e) => bad_request(e),
    }
}

// ---- control API -------------------------------------------------------------------------------

fn bad_request(msg: impl std::fmt::Display) -> HttpResponse {
    json_response(StatusCode::BAD_REQUEST, &json!({"error": msg.to_string()}))
}

fn unknown_key(key: &str) -> HttpResponse {
    json_response(
        StatusCode::NOT_FOUND,
        &json!({"error": format!("unknown key {key:?}")}),
    )
}

fn ok() -> HttpResponse {
    json_response(StatusCode::OK, &json!({"ok": true}))
}

async fn add_key(body: Bytes, state: web::Data<State>) -> HttpResponse {
    match serde_json::from_slice::<KeySpec>(&body) {
        Ok(spec) if spec.key.is_empty() => bad_request("key must not be empty"),
        Ok(spec) => {
            state.register(&spec);
            json_response(StatusCode::OK, &json!({"ok": true, "key": spec.key}))
        }
        Err(e) => bad_request(e),
    }
}

async fn list_keys(state: web::Data<State>) -> HttpResponse {
    json_response(StatusCode::OK, &state.describe_keys())
}

async fn remove_key(path: web::Path<String>, state: web::Data<State>) -> HttpResponse {
    let key = path.into_inner();
    if state.remove(&key) {
        ok()
    } else {
        unknown_key(&key)
    }
}

#[derive(Deserialize)]
struct FaultBody {
    #[serde(default)]
    fault: Option<Fault>,
    #[serde(default)]
    count: Option<u32>,
    /// `Retry-After` seconds of an injected `rate_limit*` fault (default 5).
    #[serde(default)]
    retry_after_s: Option<f64>,
}

async fn set_fault(path: web::Path<String>, body: Bytes, state: web::Data<State>) -> HttpResponse {
    let key = path.into_inner();
    let fb: FaultBody = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => return bad_request(e),
    };
    let wait = fb
        .retry_after_s
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(std::time::Duration::from_secs_f64);
    if state.set_fault(&key, fb.fault, fb.count, wait) {
        ok()
    } else {
        unknown_key(&key)
    }
}

#[derive(Deserialize)]
struct LatencyBody {
    latency_ms: u64,
}

async fn set_latency(
    path: web::Path<String>,
    body: Bytes,
    state: web::Data<State>,
) -> HttpResponse {
    let key = path.into_inner();
    let lb: LatencyBody = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => return bad_request(e),
    };
    if state.set_latency(&key, lb.latency_ms) {
        ok()
    } else {
        unknown_key(&key)
    }
}

#[derive(Deserialize)]
struct ReplyBody {
    #[serde(default)]
    reply: Option<String>,
}

async fn set_reply(path: web::Path<String>, body: Bytes, state: web::Data<State>) -> HttpResponse {
    let key = path.into_inner();
    let rb: ReplyBody = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => return bad_request(e),
    };
    if state.set_reply(&key, rb.reply) {
        ok()
    } else {
        unknown_key(&key)
    }
}

async fn requests(req: HttpRequest, state: web::Data<State>) -> HttpResponse {
    let q = parse_query(req.query_string());
    let recs = state.requests(q.get("key").map(String::as_str));
    match serde_json::to_value(recs) {
        Ok(v) => json_response(StatusCode::OK, &v),
        Err(e) => json_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            &json!({"error": e.to_string()}),
        ),
    }
}

async fn stats(state: web::Data<State>) -> HttpResponse {
    json_response(StatusCode::OK, &state.stats())
}

async fn reset(state: web::Data<State>) -> HttpResponse {
    state.reset();
    ok()
}

fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/health", web::get().to(health))
        .route("/_fake/keys", web::post().to(add_key))
        .route("/_fake/keys", web::get().to(list_keys))
        .route("/_fake/keys/{key}", web::delete().to(remove_key))
        .route("/_fake/keys/{key}/fault", web::post().to(set_fault))
        .route("/_fake/keys/{key}/latency", web::post().to(set_latency))
        .route("/_fake/keys/{key}/reply", web::post().to(set_reply))
        .route("/_fake/requests", web::get().to(requests))
        .route("/_fake/stats", web::get().to(stats))
        .route("/_fake/reset", web::post().to(reset))
        .route("/_fake/loading", web::post().to(set_loading))
        .route("/_fake/audio", web::post().to(audio::set_control))
        .route("/_fake/audio", web::get().to(audio::counts))
        .default_service(web::to(dispatch));
}

fn load_keys(path: &PathBuf, state: &State) -> std::io::Result<usize> {
    let text = std::fs::read_to_string(path)?;
    let specs: Vec<KeySpec> = serde_json::from_str(&text).map_err(|e| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{}: {e}", path.display()),
        )
    })?;
    for spec in &specs {
        state.register(spec);
    }
    Ok(specs.len())
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let cli = Cli::parse();
    let state = web::Data::new(State::default());
    if let Some(path) = &cli.keys {
        let n = load_keys(path, &state)?;
        eprintln!("fake-provider: registered {n} keys from {}", path.display());
    }
    let models = web::Data::new(cli.models.clone());
    let defaults = web::Data::new(Defaults {
        reply: cli.persona.map(|p| p.reply().to_string()),
    });
    let app_state = state.clone();
    let loading = web::Data::new(Loading::default());
    let audio = web::Data::new(Arc::new(audio::Audio::default()));
    let server = HttpServer::new(move || {
        App::new()
            .app_data(app_state.clone())
            .app_data(loading.clone())
            .app_data(audio.clone())
            .app_data(models.clone())
            .app_data(defaults.clone())
            .app_data(web::PayloadConfig::new(32 * 1024 * 1024))
            .configure(routes)
    })
    .workers(2)
    .shutdown_timeout(1)
    // Drop a held request (the `timeout` fault) as soon as its client goes away.
    .h1_allow_half_closed(false)
    .bind(&cli.bind)?;
    let addr = server
        .addrs()
        .first()
        .copied()
        .ok_or_else(|| std::io::Error::other("bound to no address"))?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "listening on http://{addr}")?;
        out.flush()?;
    }
    server.run().await
}
