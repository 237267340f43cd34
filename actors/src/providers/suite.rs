//! The shared per-format test table: every wire format supplies a [`Fixture`] (its requests and the
//! exact HTTP requests they must become, recorded answers, streams and failures), and
//! [`format_suite!`] generates the same named cases for each, as `providers::suite::<format>::<case>`:
//! the requests, answers, streams, a broken event and failures read offline, then a whole answer, a
//! stream, a cut stream and a failure over real HTTP from a one-shot local server, through the one
//! send path.
//! A failing case names its format and case; the other formats' cases still run.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use eventsource_stream::Event;
use futures::StreamExt;
use serde_json::Value;

use super::{
    Call, ChatRequest, ChatResponse, Failure, Message, ProviderError, Role, StreamChunk, Target,
    Usage, WireFormat,
};
use crate::secret::Secret;

/// What a format must do with one request.
pub(crate) struct Sent {
    /// The request.
    pub req: ChatRequest,
    /// Streamed or not.
    pub stream: bool,
    /// Another target than the fixture's (a missing account id, another API version).
    pub target: Option<Target>,
    /// The HTTP request it becomes, or why the format refuses to build one.
    pub expect: Result<Http, Expect>,
}

/// An HTTP request as a format must build it.
pub(crate) struct Http {
    /// The whole URL.
    pub url: &'static str,
    /// Headers and their values; `None`: the header must be absent.
    pub headers: Vec<(&'static str, Option<&'static str>)>,
    /// The exact JSON body.
    pub body: Value,
}

/// An expected failure.
#[derive(Debug, Clone)]
pub(crate) enum Expect {
    /// Exactly this error.
    Is(ProviderError),
    /// An error of this [`ProviderError::code`] (messages vary).
    Code(&'static str),
    /// An error passing this check.
    Check(fn(&ProviderError) -> bool),
}

impl Expect {
    fn assert(&self, got: &ProviderError, what: &str) {
        match self {
            Expect::Is(want) => assert_eq!(got, want, "{what}"),
            Expect::Code(code) => assert_eq!(got.code(), *code, "{what}: {got:?}"),
            Expect::Check(ok) => assert!(ok(got), "{what}: {got:?}"),
        }
    }
}

/// A recorded stream: SSE events (`event:` name, possibly empty, and `data:`), the chunks they map
/// to, and the error the last event raises, if any.
pub(crate) struct Streamed {
    /// The events in order.
    pub events: Vec<(&'static str, &'static str)>,
    /// Every chunk the events yield.
    pub chunks: Vec<StreamChunk>,
    /// The error the last event raises instead of chunks.
    pub error: Option<Expect>,
}

/// A recorded failed answer and its classification.
pub(crate) struct FailedAnswer {
    /// HTTP status.
    pub status: u16,
    /// Headers sent with it.
    pub headers: Vec<(&'static str, &'static str)>,
    /// The body.
    pub body: String,
    /// How the format classifies it.
    pub expect: Expect,
}

/// One format's cases.
pub(crate) struct Fixture {
    /// The format.
    pub wire: &'static dyn WireFormat,
    /// Where its requests go.
    pub target: Target,
    /// Requests and what they become; the first is a plain (not streamed) one that builds.
    pub requests: Vec<Sent>,
    /// Recorded whole answers and what they read as; the first reads.
    pub answers: Vec<(Value, Result<ChatResponse, Expect>)>,
    /// Recorded streams; the first ends well.
    pub streams: Vec<Streamed>,
    /// Recorded failures; the first is a 429.
    pub failures: Vec<FailedAnswer>,
}

/// A target with the test key of each format.
pub(crate) fn target(base_url: &str, model: &str, key: &str) -> Target {
    Target {
        base_url: base_url.into(),
        model: model.into(),
        secret: Secret::new(key),
        account_id: None,
        api_version: None,
        timeout: Duration::from_secs(30),
    }
}

/// A request from `(role, text)` messages.
pub(crate) fn chat(
    messages: &[(Role, &str)],
    max_tokens: u32,
    temperature: Option<f32>,
    json: bool,
) -> ChatRequest {
    ChatRequest {
        messages: messages
            .iter()
            .map(|(role, text)| Message::new(*role, *text))
            .collect(),
        max_tokens,
        temperature,
        json,
        model: None,
        json_schema: None,
    }
}

/// A whole answer as the engine reads it.
pub(crate) fn answer(
    text: &str,
    usage: Option<(u64, u64)>,
    finish_reason: Option<&str>,
    model: Option<&str>,
) -> ChatResponse {
    ChatResponse {
        text: text.into(),
        usage: usage.map(|(prompt_tokens, completion_tokens)| Usage {
            prompt_tokens,
            completion_tokens,
        }),
        finish_reason: finish_reason.map(str::to_string),
        model: model.map(str::to_string),
    }
}

/// The chunks of a stream: its pieces, then its end.
pub(crate) fn chunks(
    pieces: &[&str],
    usage: Option<(u64, u64)>,
    finish_reason: Option<&str>,
) -> Vec<StreamChunk> {
    let mut out: Vec<StreamChunk> = pieces
        .iter()
        .map(|p| StreamChunk::Delta((*p).into()))
        .collect();
    out.push(StreamChunk::Done {
        usage: usage.map(|(prompt_tokens, completion_tokens)| Usage {
            prompt_tokens,
            completion_tokens,
        }),
        finish_reason: finish_reason.map(str::to_string),
    });
    out
}

fn event(name: &str, data: &str) -> Event {
    Event {
        event: name.into(),
        data: data.into(),
        id: String::new(),
        retry: None,
    }
}

fn built(f: &Fixture, sent: &Sent) -> Result<reqwest::Request, ProviderError> {
    let http = reqwest::Client::new();
    let target = sent.target.as_ref().unwrap_or(&f.target);
    let call = Call {
        http: &http,
        target,
        req: &sent.req,
        stream: sent.stream,
    };
    f.wire
        .request(&call)
        .map(|rb| rb.build().expect("request builds"))
}

/// Case: every request becomes exactly the documented URL, headers and body (or is refused).
pub(crate) fn builds_requests(f: &Fixture) {
    assert!(!f.requests.is_empty());
    for (i, sent) in f.requests.iter().enumerate() {
        let what = format!("request {i}");
        match (&sent.expect, built(f, sent)) {
            (Ok(want), Ok(got)) => {
                assert_eq!(got.url().as_str(), want.url, "{what}: URL");
                for (name, value) in &want.headers {
                    let have = got.headers().get(*name).and_then(|v| v.to_str().ok());
                    assert_eq!(have, *value, "{what}: header {name}");
                }
                let body: Value = got
                    .body()
                    .and_then(|b| b.as_bytes())
                    .map(|b| serde_json::from_slice(b).expect("body is JSON"))
                    .unwrap_or(Value::Null);
                assert_eq!(body, want.body, "{what}: body");
            }
            (Err(want), Err(got)) => want.assert(&got, &what),
            (Ok(_), Err(e)) => panic!("{what}: refused: {e:?}"),
            (Err(want), Ok(got)) => panic!("{what}: built {} instead of {want:?}", got.url()),
        }
    }
}

/// Case: recorded whole answers read as the engine expects (text, usage, stop reason, model), and
/// broken or refused ones fail with the right error.
pub(crate) fn parses_answers(f: &Fixture) {
    assert!(matches!(f.answers.first(), Some((_, Ok(_)))));
    for (i, (v, want)) in f.answers.iter().enumerate() {
        let what = format!("answer {i}");
        match (want, f.wire.parse_response(v)) {
            (Ok(want), Ok(got)) => assert_eq!(&got, want, "{what}"),
            (Err(want), Err(got)) => want.assert(&got, &what),
            (want, got) => panic!("{what}: expected {want:?}, read {got:?}"),
        }
    }
}

/// Case: recorded streams map to their chunks, each through a fresh mapper, ending with the error
/// of the last event where there is one.
pub(crate) fn maps_streams(f: &Fixture) {
    assert!(matches!(f.streams.first(), Some(s) if s.error.is_none()));
    for (i, s) in f.streams.iter().enumerate() {
        let mut map = f.wire.stream_mapper();
        let mut out = Vec::new();
        let mut failed = None;
        for (name, data) in &s.events {
            assert!(failed.is_none(), "stream {i}: an event after an error");
            match map(&event(name, data)) {
                Ok(chunks) => out.extend(chunks),
                Err(e) => failed = Some(e),
            }
        }
        assert_eq!(out, s.chunks, "stream {i}: chunks");
        match (&s.error, failed) {
            (None, None) => {}
            (Some(want), Some(got)) => want.assert(&got, &format!("stream {i}: error")),
            (want, got) => panic!("stream {i}: expected error {want:?}, got {got:?}"),
        }
    }
}

/// Case: an event whose data is not JSON fails the stream as malformed, whatever the format.
pub(crate) fn refuses_a_broken_event(f: &Fixture) {
    for name in ["", "message"] {
        let got = f.wire.stream_mapper()(&event(name, "{not json"));
        assert!(
            matches!(got, Err(ProviderError::Malformed(_))),
            "event {name:?}: {got:?}"
        );
    }
}

fn headers(list: &[(&'static str, &'static str)]) -> reqwest::header::HeaderMap {
    let mut h = reqwest::header::HeaderMap::new();
    for (name, value) in list {
        h.insert(
            reqwest::header::HeaderName::from_static(name),
            reqwest::header::HeaderValue::from_static(value),
        );
    }
    h
}

/// Case: recorded failures are classified as the key actor needs (rate limited with the right wait
/// and day flag, invalid key, server error, the request's own fault), secrets scrubbed.
pub(crate) fn classifies_failures(f: &Fixture) {
    assert!(matches!(f.failures.first(), Some(x) if x.status == 429));
    for (i, x) in f.failures.iter().enumerate() {
        let headers = headers(&x.headers);
        let got = f.wire.classify(&Failure {
            status: x.status,
            headers: &headers,
            body: &x.body,
            secret: &f.target.secret,
        });
        x.expect
            .assert(&got, &format!("failure {i} (HTTP {})", x.status));
    }
}

/// Serves one canned HTTP answer on a local port: the base URL to use instead of `like` (same
/// path), and a task that returns the request the server read.
async fn serve_once(like: &str, answer: String) -> (String, tokio::task::JoinHandle<String>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let Ok((mut sock, _)) = listener.accept().await else {
            return String::new();
        };
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            let text = String::from_utf8_lossy(&buf).to_string();
            if let Some(end) = text.find("\r\n\r\n") {
                let len = text
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                    })
                    .unwrap_or(0);
                if buf.len() >= end + 4 + len {
                    break;
                }
            }
            match sock.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let _ = sock.write_all(answer.as_bytes()).await;
        let _ = sock.shutdown().await;
        String::from_utf8_lossy(&buf).to_string()
    });
    let path = reqwest::Url::parse(like)
        .unwrap()
        .path()
        .trim_end_matches('/')
        .to_string();
    (format!("http://{addr}{path}"), task)
}

fn http_answer(status: u16, headers: &[(&str, &str)], content_type: &str, body: &str) -> String {
    let mut head =
        format!("HTTP/1.1 {status} X\r\ncontent-type: {content_type}\r\nconnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    format!("{head}\r\n{body}")
}

fn sse_body(events: &[(&str, &str)]) -> String {
    events
        .iter()
        .map(|(name, data)| match *name {
            "" => format!("data: {data}\r\n\r\n"),
            name => format!("event: {name}\r\ndata: {data}\r\n\r\n"),
        })
        .collect()
}

/// The fixture's target with its base URL on a local server answering `answer` once.
async fn local(f: &Fixture, answer: String) -> (Target, tokio::task::JoinHandle<String>) {
    let (base_url, task) = serve_once(&f.target.base_url, answer).await;
    let target = Target {
        base_url,
        ..f.target.clone()
    };
    (target, task)
}

fn first_request(f: &Fixture) -> (&ChatRequest, &Http) {
    let sent = &f.requests[0];
    assert!(!sent.stream && sent.target.is_none());
    (
        &sent.req,
        sent.expect.as_ref().expect("the first request builds"),
    )
}

/// Case: a whole answer over HTTP: the server reads the documented request line, the engine the
/// recorded answer.
pub(crate) async fn completes_over_http(f: &Fixture) {
    let (req, want) = first_request(f);
    let (v, Ok(read)) = &f.answers[0] else {
        panic!("the first answer reads")
    };
    let answer = http_answer(200, &[], "application/json", &v.to_string());
    let (target, task) = local(f, answer).await;
    let got = f.wire.complete(&reqwest::Client::new(), &target, req).await;
    assert_eq!(got.as_ref(), Ok(read));
    let seen = task.await.unwrap();
    let url = reqwest::Url::parse(want.url).unwrap();
    let line = match url.query() {
        Some(q) => format!("POST {}?{q} HTTP/1.1", url.path()),
        None => format!("POST {} HTTP/1.1", url.path()),
    };
    assert!(seen.starts_with(&line), "request line {line:?} in {seen:?}");
    let key = f.target.secret.expose().to_ascii_lowercase();
    assert!(seen.to_ascii_lowercase().contains(&key), "the key is sent");
}

/// Case: a stream over HTTP yields the recorded stream's chunks, then ends.
pub(crate) async fn streams_over_http(f: &Fixture) {
    let (req, _) = first_request(f);
    let s = &f.streams[0];
    let answer = http_answer(200, &[], "text/event-stream", &sse_body(&s.events));
    let (target, _task) = local(f, answer).await;
    let stream = f.wire.stream(&reqwest::Client::new(), &target, req).await;
    let items: Vec<_> = stream.expect("stream opens").collect().await;
    let want: Vec<_> = s.chunks.iter().cloned().map(Ok).collect();
    assert_eq!(items, want);
}

/// Case: a stream cut before its last event ends with an error, never as a whole answer.
pub(crate) async fn reports_a_cut_stream(f: &Fixture) {
    let (req, _) = first_request(f);
    let events = &f.streams[0].events;
    let cut = &events[..events.len() - 1];
    let answer = http_answer(200, &[], "text/event-stream", &sse_body(cut));
    let (target, _task) = local(f, answer).await;
    let stream = f.wire.stream(&reqwest::Client::new(), &target, req).await;
    let items: Vec<_> = stream.expect("stream opens").collect().await;
    assert!(
        matches!(items.last(), Some(Err(ProviderError::Malformed(m))) if m.contains("cut")),
        "{items:?}"
    );
    assert!(!items
        .iter()
        .any(|c| matches!(c, Ok(StreamChunk::Done { .. }))));
}

/// Case: a failed answer over HTTP is classified as recorded, status, headers and body together.
pub(crate) async fn classifies_a_failure_over_http(f: &Fixture) {
    let (req, _) = first_request(f);
    let x = &f.failures[0];
    let answer = http_answer(x.status, &x.headers, "application/json", &x.body);
    let (target, _task) = local(f, answer).await;
    let got = f.wire.complete(&reqwest::Client::new(), &target, req).await;
    x.expect.assert(&got.expect_err("a failure"), "over HTTP");
}

/// Generates the named cases for each format from its `fixture()`.
macro_rules! format_suite {
    ($($format:ident => $fixture:path),* $(,)?) => {$(
        mod $format {
            #[test]
            fn builds_requests() {
                super::builds_requests(&$fixture());
            }
            #[test]
            fn parses_answers() {
                super::parses_answers(&$fixture());
            }
            #[test]
            fn maps_streams() {
                super::maps_streams(&$fixture());
            }
            #[test]
            fn refuses_a_broken_event() {
                super::refuses_a_broken_event(&$fixture());
            }
            #[test]
            fn classifies_failures() {
                super::classifies_failures(&$fixture());
            }
            #[tokio::test]
            async fn completes_over_http() {
                super::completes_over_http(&$fixture()).await;
            }
            #[tokio::test]
            async fn streams_over_http() {
                super::streams_over_http(&$fixture()).await;
            }
            #[tokio::test]
            async fn reports_a_cut_stream() {
                super::reports_a_cut_stream(&$fixture()).await;
            }
            #[tokio::test]
            async fn classifies_a_failure_over_http() {
                super::classifies_a_failure_over_http(&$fixture()).await;
            }
        }
    )*};
}

format_suite! {
    openai => crate::providers::openai::fixture,
    local_openai => crate::providers::openai::local_fixture,
    azure_openai => crate::providers::azure_openai::fixture,
    gemini => crate::providers::gemini::fixture,
    cloudflare => crate::providers::cloudflare::fixture,
    cohere => crate::providers::cohere::fixture,
    anthropic => crate::providers::anthropic::fixture,
}
