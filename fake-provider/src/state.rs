//! The fake provider's shared state: registered keys with their limits, latency, faults and reply text,
//! sliding-window limit enforcement, per-key statistics (concurrency included) and the request log.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

/// The span of the per-minute windows.
pub const WINDOW: Duration = Duration::from_secs(60);

/// What the `rate_limit` / `rate_limit_day` faults ask the client to wait.
pub const FAULT_RETRY_AFTER: Duration = Duration::from_secs(5);

/// How long the `timeout` fault holds a request before giving up on it.
pub const TIMEOUT_HOLD: Duration = Duration::from_secs(60);

/// Request headers never written to the request log (they carry keys).
const SECRET_HEADERS: [&str; 6] = [
    "authorization",
    "api-key",
    "x-api-key",
    "x-goog-api-key",
    "cookie",
    "proxy-authorization",
];

/// A key's limits; `None` means unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Limits {
    /// Requests in any sliding 60 s window.
    #[serde(default)]
    pub rpm: Option<u64>,
    /// Requests since registration (or the last reset).
    #[serde(default)]
    pub rpd: Option<u64>,
    /// Tokens in any sliding 60 s window.
    #[serde(default)]
    pub tpm: Option<u64>,
    /// Tokens since registration (or the last reset).
    #[serde(default)]
    pub tpd: Option<u64>,
    /// Requests in flight at once; one more is answered 429 (Retry-After: 1).
    #[serde(default)]
    pub concurrency: Option<u64>,
    /// Cost units (Cloudflare's neurons) since registration, spent at `units_in` / `units_out` per
    /// million prompt / completion tokens; over it is a daily 429.
    #[serde(default)]
    pub daily_units: Option<u64>,
    /// Units per million prompt tokens.
    #[serde(default)]
    pub units_in: Option<f64>,
    /// Units per million completion tokens.
    #[serde(default)]
    pub units_out: Option<f64>,
}

impl Eq for Limits {}

/// A fault injected into a key's answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fault {
    /// HTTP 500 in the format's error shape.
    #[serde(rename = "http_500")]
    Http500,
    /// HTTP 401 in the format's error shape.
    #[serde(rename = "http_401")]
    Http401,
    /// Hold the request without answering (60 s, or until the client goes away).
    Timeout,
    /// 200 with a body that is not valid JSON (streams: one broken data line).
    Malformed,
    /// Streams: two pieces, then the connection is cut. Non-stream: truncated JSON.
    CutStream,
    /// A per-minute 429 with `Retry-After: 5`.
    RateLimit,
    /// A daily 429 with `Retry-After: 5`.
    RateLimitDay,
}

/// The body of `POST /_fake/keys` (and one entry of the `--keys` file).
#[derive(Debug, Clone, Deserialize)]
pub struct KeySpec {
    /// The API key clients present.
    pub key: String,
    /// Limits; absent or null means unlimited.
    #[serde(default)]
    pub limits: Option<Limits>,
    /// Delay before the first byte of every answer.
    #[serde(default)]
    pub latency_ms: Option<u64>,
    /// A fault active until cleared.
    #[serde(default)]
    pub fault: Option<Fault>,
    /// Fixed reply text for every request of this key.
    #[serde(default)]
    pub reply: Option<String>,
}

/// Which limit a 429 is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitKind {
    /// Requests per minute.
    Rpm,
    /// Requests per day.
    Rpd,
    /// Tokens per minute.
    Tpm,
    /// Tokens per day.
    Tpd,
}

impl LimitKind {
    /// The entry of `[rpm, rpd, tpm, tpd]` for this limit (how a format words it).
    pub fn pick<T>(self, [rpm, rpd, tpm, tpd]: [T; 4]) -> T {
        match self {
            LimitKind::Rpm => rpm,
            LimitKind::Rpd => rpd,
            LimitKind::Tpm => tpm,
            LimitKind::Tpd => tpd,
        }
    }

    /// Whether this is a daily limit.
    pub fn is_day(self) -> bool {
        matches!(self, LimitKind::Rpd | LimitKind::Tpd)
    }

    /// Whether this limit counts tokens.
    pub fn is_tokens(self) -> bool {
        matches!(self, LimitKind::Tpm | LimitKind::Tpd)
    }
}

/// The facts behind a 429, for the formats' messages.
#[derive(Debug, Clone, Copy)]
pub struct RateLimited {
    /// The limit that was hit.
    pub kind: LimitKind,
    /// Its value.
    pub limit: u64,
    /// What was used of it.
    pub used: u64,
    /// What the request asked for (1 request, or its tokens).
    pub requested: u64,
    /// How long until the request would fit.
    pub retry_after: Duration,
}

impl RateLimited {
    /// `Retry-After` in whole seconds, at least 1.
    pub fn retry_secs(&self) -> u64 {
        let ms = self.retry_after.as_millis();
        let secs = ms.div_ceil(1000);
        u64::try_from(secs).unwrap_or(u64::MAX).max(1)
    }
}

/// One limit as reported in rate-limit headers.
#[derive(Debug, Clone, Copy)]
pub struct HeaderLimit {
    /// The limit.
    pub limit: u64,
    /// What is left of it.
    pub remaining: u64,
    /// Time until it is fully restored.
    pub reset: Duration,
}

/// A key's limits and usage at answer time, for the formats' rate-limit headers.
#[derive(Debug, Clone, Copy, Default)]
pub struct LimitView {
    /// The request limit (per minute if set, else per day).
    pub requests: Option<HeaderLimit>,
    /// The token limit (per minute if set, else per day).
    pub tokens: Option<HeaderLimit>,
}

/// What the state decided for an authenticated, well-formed request.
#[derive(Debug, Clone, Copy)]
pub enum Decision {
    /// Answer normally (counted as served).
    Serve(LimitView),
    /// Answer 200 but broken (`malformed` / `cut_stream`; counted as served).
    ServeFaulty(Fault, LimitView),
    /// An injected failure that is not served (`http_500`, `http_401`, `timeout`, `rate_limit*`).
    Fault(Fault, LimitView),
    /// Over a limit: 429 (counted in `rate_limited_by_fake`).
    Limited(RateLimited, LimitView),
    /// The key was removed while the request was being read.
    Gone,
}

/// A fault with an optional number of requests it still applies to.
#[derive(Debug, Clone, Copy)]
struct ActiveFault {
    fault: Fault,
    left: Option<u32>,
}

/// Everything the fake keeps about one key.
#[derive(Debug)]
struct KeyState {
    limits: Limits,
    latency: Duration,
    fault: Option<ActiveFault>,
    /// `Retry-After` of the injected `rate_limit*` faults (default 5 s).
    fault_retry_after: Duration,
    reply: Option<String>,
    /// Served requests whose arrival is within the last minute: (arrival, tokens).
    served_window: VecDeque<(Instant, u64)>,
    /// Arrivals of all requests within the last minute (for the statistics).
    arrivals: VecDeque<Instant>,
    served_total: u64,
    tokens_total: u64,
    units_total: u64,
    requests: u64,
    rate_limited: u64,
    faults_injected: u64,
    max_requests_window: u64,
    max_tokens_window: u64,
    in_flight: u64,
    peak_concurrency: u64,
}

impl KeyState {
    fn new(spec: &KeySpec) -> Self {
        Self {
            limits: spec.limits.unwrap_or_default(),
            latency: Duration::from_millis(spec.latency_ms.unwrap_or(0)),
            fault: spec.fault.map(|fault| ActiveFault { fault, left: None }),
            fault_retry_after: FAULT_RETRY_AFTER,
            reply: spec.reply.clone(),
            served_window: VecDeque::new(),
            arrivals: VecDeque::new(),
            served_total: 0,
            tokens_total: 0,
            units_total: 0,
            requests: 0,
            rate_limited: 0,
            faults_injected: 0,
            max_requests_window: 0,
            max_tokens_window: 0,
            in_flight: 0,
            peak_concurrency: 0,
        }
    }

    fn prune(&mut self, now: Instant) {
        while self
            .served_window
            .front()
            .is_some_and(|(t, _)| now.duration_since(*t) >= WINDOW)
        {
            self.served_window.pop_front();
        }
        while self
            .arrivals
            .front()
            .is_some_and(|t| now.duration_since(*t) >= WINDOW)
        {
            self.arrivals.pop_front();
        }
    }

    fn window_requests(&self) -> u64 {
        self.served_window.len() as u64
    }

    fn window_tokens(&self) -> u64 {
        self.served_window.iter().map(|(_, t)| t).sum()
    }

    /// Time until the window has room for `tokens` more tokens (or one more request when `tokens` is None).
    fn window_wait(&self, now: Instant, limit: u64, tokens: Option<u64>) -> Duration {
        let mut used: u64 = match tokens {
            Some(_) => self.window_tokens(),
            None => self.window_requests(),
        };
        let need = tokens.unwrap_or(1);
        for (t, tok) in &self.served_window {
            used = used.saturating_sub(if tokens.is_some() { *tok } else { 1 });
            if used + need <= limit {
                return (*t + WINDOW).saturating_duration_since(now);
            }
        }
        WINDOW
    }

    /// The units a request of `prompt` and `completion` tokens costs.
    fn units_of(&self, prompt: u64, completion: u64) -> u64 {
        let l = self.limits;
        let u = prompt as f64 * l.units_in.unwrap_or(0.0) / 1e6
            + completion as f64 * l.units_out.unwrap_or(0.0) / 1e6;
        u.ceil() as u64
    }

    /// The first limit that admitting a request of `tokens` (`units`) would break.
    fn check_limits(&self, now: Instant, tokens: u64, units: u64) -> Option<RateLimited> {
        let l = self.limits;
        if let Some(c) = l.concurrency {
            // This request is already counted in flight.
            if self.in_flight > c {
                return Some(RateLimited {
                    kind: LimitKind::Rpm,
                    limit: c,
                    used: self.in_flight - 1,
                    requested: 1,
                    retry_after: Duration::from_secs(1),
                });
            }
        }
        if let Some(du) = l.daily_units {
            if self.units_total + units > du {
                return Some(RateLimited {
                    kind: LimitKind::Tpd,
                    limit: du,
                    used: self.units_total,
                    requested: units,
                    retry_after: until_utc_midnight(),
                });
            }
        }
        if let Some(rpd) = l.rpd {
            if self.served_total + 1 > rpd {
                return Some(RateLimited {
                    kind: LimitKind::Rpd,
                    limit: rpd,
                    used: self.served_total,
                    requested: 1,
                    retry_after: until_utc_midnight(),
                });
            }
        }
        if let Some(tpd) = l.tpd {
            if self.tokens_total + tokens > tpd {
                return Some(RateLimited {
                    kind: LimitKind::Tpd,
                    limit: tpd,
                    used: self.tokens_total,
                    requested: tokens,
                    retry_after: until_utc_midnight(),
                });
            }
        }
        if let Some(rpm) = l.rpm {
            if self.window_requests() + 1 > rpm {
                return Some(RateLimited {
                    kind: LimitKind::Rpm,
                    limit: rpm,
                    used: self.window_requests(),
                    requested: 1,
                    retry_after: self.window_wait(now, rpm, None),
                });
            }
        }
        if let Some(tpm) = l.tpm {
            if self.window_tokens() + tokens > tpm {
                return Some(RateLimited {
                    kind: LimitKind::Tpm,
                    limit: tpm,
                    used: self.window_tokens(),
                    requested: tokens,
                    retry_after: self.window_wait(now, tpm, Some(tokens)),
                });
            }
        }
        None
    }

    fn view(&self, now: Instant) -> LimitView {
        let window_reset = self
            .served_window
            .back()
            .map(|(t, _)| (*t + WINDOW).saturating_duration_since(now))
            .unwrap_or(Duration::ZERO);
        let l = self.limits;
        let requests = match (l.rpm, l.rpd) {
            (Some(rpm), _) => Some(HeaderLimit {
                limit: rpm,
                remaining: rpm.saturating_sub(self.window_requests()),
                reset: window_reset,
            }),
            (None, Some(rpd)) => Some(HeaderLimit {
                limit: rpd,
                remaining: rpd.saturating_sub(self.served_total),
                reset: until_utc_midnight(),
            }),
            (None, None) => None,
        };
        let tokens = match (l.tpm, l.tpd) {
            (Some(tpm), _) => Some(HeaderLimit {
                limit: tpm,
                remaining: tpm.saturating_sub(self.window_tokens()),
                reset: window_reset,
            }),
            (None, Some(tpd)) => Some(HeaderLimit {
                limit: tpd,
                remaining: tpd.saturating_sub(self.tokens_total),
                reset: until_utc_midnight(),
            }),
            (None, None) => None,
        };
        LimitView { requests, tokens }
    }

    /// Takes one use of the active fault, if any.
    fn take_fault(&mut self) -> Option<Fault> {
        let active = self.fault?;
        match active.left {
            Some(0) => {
                self.fault = None;
                return None;
            }
            Some(1) => self.fault = None,
            Some(n) => {
                self.fault = Some(ActiveFault {
                    fault: active.fault,
                    left: Some(n - 1),
                })
            }
            None => {}
        }
        self.faults_injected += 1;
        Some(active.fault)
    }

    fn serve(&mut self, now: Instant, tokens: u64, units: u64) {
        self.served_window.push_back((now, tokens));
        self.served_total += 1;
        self.tokens_total += tokens;
        self.units_total += units;
        self.max_tokens_window = self.max_tokens_window.max(self.window_tokens());
    }

    fn stats(&self) -> Value {
        json!({
            "requests": self.requests,
            "served": self.served_total,
            "rate_limited_by_fake": self.rate_limited,
            "faults_injected": self.faults_injected,
            "tokens_served": self.tokens_total,
            "units_served": self.units_total,
            "max_requests_in_any_60s_window": self.max_requests_window,
            "max_tokens_in_any_60s_window": self.max_tokens_window,
            "peak_concurrency": self.peak_concurrency,
            "in_flight": self.in_flight,
        })
    }

    fn describe(&self, key: &str) -> Value {
        json!({
            "key": key,
            "limits": self.limits,
            "latency_ms": u64::try_from(self.latency.as_millis()).unwrap_or(u64::MAX),
            "fault": self.fault.map(|f| f.fault),
            "fault_remaining": self.fault.and_then(|f| f.left),
            "reply": self.reply,
        })
    }
}

/// One entry of the request log.
#[derive(Debug, Clone, Serialize)]
pub struct Record {
    #[serde(skip)]
    seq: u64,
    /// The key presented (null when none could be read).
    pub key: Option<String>,
    /// The wire format (`openai`, `azure_openai`, `gemini`, `cloudflare`, `cohere`, `anthropic`).
    pub format: &'static str,
    /// The request path, without the query.
    pub path: String,
    /// The query string with any `key=` value redacted (omitted when empty).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub query: String,
    /// Arrival time, unix milliseconds.
    pub at_ms: i64,
    /// The answer's status; null while (or when) no answer was given (the `timeout` fault).
    pub status: Option<u16>,
    /// Whether the request asked for a stream.
    pub stream: bool,
    /// Prompt plus completion tokens the fake computed for the request (0 when it could not be read).
    pub tokens: u64,
    /// The request body as JSON, or null when it was not JSON.
    pub body: Value,
    /// The request's headers, secret ones left out.
    pub headers: Map<String, Value>,
}

impl Record {
    /// A log entry for a request that just arrived.
    pub fn new(format: &'static str, req: &actix_web::HttpRequest, body: &[u8]) -> Self {
        let mut headers = Map::new();
        for (name, value) in req.headers() {
            let name = name.as_str().to_ascii_lowercase();
            if SECRET_HEADERS.contains(&name.as_str()) {
                continue;
            }
            headers.insert(
                name,
                Value::String(String::from_utf8_lossy(value.as_bytes()).into_owned()),
            );
        }
        Self {
            seq: 0,
            key: None,
            format,
            path: req.path().to_string(),
            query: redact_query(req.query_string()),
            at_ms: chrono::Utc::now().timestamp_millis(),
            status: None,
            stream: false,
            tokens: 0,
            body: serde_json::from_slice(body).unwrap_or(Value::Null),
            headers,
        }
    }
}

/// Replaces the value of `key=` in a query string.
fn redact_query(q: &str) -> String {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some(("key", _)) => "key=REDACTED".to_string(),
            _ => p.to_string(),
        })
        .collect::<Vec<_>>()
        .join("&")
}

#[derive(Debug, Default)]
struct Inner {
    keys: HashMap<String, KeyState>,
    records: Vec<Record>,
    next_seq: u64,
}

/// The whole fake's state, shared by the workers.
#[derive(Debug, Default)]
pub struct State {
    inner: Mutex<Inner>,
}

/// A registered key's settings, read when its request starts.
#[derive(Debug, Clone)]
pub struct KeySnapshot {
    /// Delay before the first byte.
    pub latency: Duration,
    /// Fixed reply text.
    pub reply: Option<String>,
}

/// An in-flight request of a registered key; dropping it ends the request for the concurrency count.
#[derive(Debug)]
pub struct Call {
    state: Arc<State>,
    key: String,
}

impl Drop for Call {
    fn drop(&mut self) {
        let mut inner = self.state.inner.lock();
        if let Some(ks) = inner.keys.get_mut(&self.key) {
            ks.in_flight = ks.in_flight.saturating_sub(1);
        }
    }
}

impl State {
    /// Registers `spec.key`, replacing any key of that name (its counters start afresh).
    pub fn register(&self, spec: &KeySpec) {
        let mut inner = self.inner.lock();
        let mut ks = KeyState::new(spec);
        // Requests of the replaced key that are still running keep counting as in flight.
        if let Some(old) = inner.keys.get(&spec.key) {
            ks.in_flight = old.in_flight;
            ks.peak_concurrency = old.in_flight;
        }
        inner.keys.insert(spec.key.clone(), ks);
    }

    /// Removes a key; returns whether it existed.
    pub fn remove(&self, key: &str) -> bool {
        self.inner.lock().keys.remove(key).is_some()
    }

    /// All registered keys and their settings.
    pub fn describe_keys(&self) -> Value {
        let inner = self.inner.lock();
        let mut keys: Vec<_> = inner.keys.iter().collect();
        keys.sort_by(|a, b| a.0.cmp(b.0));
        Value::Array(keys.into_iter().map(|(k, ks)| ks.describe(k)).collect())
    }

    /// Sets (or with `None` clears) a key's fault for the next `count` requests (all when `None`).
    pub fn set_fault(
        &self,
        key: &str,
        fault: Option<Fault>,
        count: Option<u32>,
        retry_after: Option<Duration>,
    ) -> bool {
        let mut inner = self.inner.lock();
        let Some(ks) = inner.keys.get_mut(key) else {
            return false;
        };
        ks.fault_retry_after = retry_after.unwrap_or(FAULT_RETRY_AFTER);
        ks.fault = match (fault, count) {
            (None, _) | (Some(_), Some(0)) => None,
            (Some(fault), left) => Some(ActiveFault { fault, left }),
        };
        true
    }

    /// Sets a key's latency.
    pub fn set_latency(&self, key: &str, latency_ms: u64) -> bool {
        let mut inner = self.inner.lock();
        let Some(ks) = inner.keys.get_mut(key) else {
            return false;
        };
        ks.latency = Duration::from_millis(latency_ms);
        true
    }

    /// Sets (or clears) a key's fixed reply.
    pub fn set_reply(&self, key: &str, reply: Option<String>) -> bool {
        let mut inner = self.inner.lock();
        let Some(ks) = inner.keys.get_mut(key) else {
            return false;
        };
        ks.reply = reply;
        true
    }

    /// Forgets everything: keys, counters and the request log.
    pub fn reset(&self) {
        let mut inner = self.inner.lock();
        inner.keys.clear();
        inner.records.clear();
    }

    /// Starts a request of `key`: counts it and its concurrency. `None` when the key is not registered.
    pub fn begin(self: &Arc<Self>, key: &str) -> Option<(Call, KeySnapshot)> {
        let now = Instant::now();
        let mut inner = self.inner.lock();
        let ks = inner.keys.get_mut(key)?;
        ks.prune(now);
        ks.requests += 1;
        ks.arrivals.push_back(now);
        ks.max_requests_window = ks.max_requests_window.max(ks.arrivals.len() as u64);
        ks.in_flight += 1;
        ks.peak_concurrency = ks.peak_concurrency.max(ks.in_flight);
        let snap = KeySnapshot {
            latency: ks.latency,
            reply: ks.reply.clone(),
        };
        drop(inner);
        Some((
            Call {
                state: Arc::clone(self),
                key: key.to_string(),
            },
            snap,
        ))
    }

    /// Decides what a well-formed request of `key` with `prompt` and `completion` tokens gets: faults
    /// first, then limits.
    pub fn admit(&self, key: &str, prompt: u64, completion: u64) -> Decision {
        let tokens = prompt + completion;
        let now = Instant::now();
        let mut inner = self.inner.lock();
        let Some(ks) = inner.keys.get_mut(key) else {
            return Decision::Gone;
        };
        ks.prune(now);
        let units = ks.units_of(prompt, completion);
        let pending = ks.fault.map(|f| f.fault);
        match pending {
            Some(Fault::Malformed | Fault::CutStream) => {
                // A broken answer still costs quota: the limits come first.
                if let Some(rl) = ks.check_limits(now, tokens, units) {
                    ks.rate_limited += 1;
                    return Decision::Limited(rl, ks.view(now));
                }
                match ks.take_fault() {
                    Some(f) => {
                        ks.serve(now, tokens, units);
                        Decision::ServeFaulty(f, ks.view(now))
                    }
                    None => {
                        ks.serve(now, tokens, units);
                        Decision::Serve(ks.view(now))
                    }
                }
            }
            Some(_) => match ks.take_fault() {
                Some(f) => Decision::Fault(f, ks.view(now)),
                None => admit_limits(ks, now, tokens, units),
            },
            None => admit_limits(ks, now, tokens, units),
        }
    }

    /// The 429 facts for an injected `rate_limit` / `rate_limit_day` fault.
    pub fn injected_limit(&self, key: &str, fault: Fault) -> RateLimited {
        let now = Instant::now();
        let mut inner = self.inner.lock();
        let (rpm, rpd, window, total, wait) = match inner.keys.get_mut(key) {
            Some(ks) => {
                ks.prune(now);
                (
                    ks.limits.rpm,
                    ks.limits.rpd,
                    ks.window_requests(),
                    ks.served_total,
                    ks.fault_retry_after,
                )
            }
            None => (None, None, 0, 0, FAULT_RETRY_AFTER),
        };
        if fault == Fault::RateLimitDay {
            let limit = rpd.unwrap_or(total.max(1));
            RateLimited {
                kind: LimitKind::Rpd,
                limit,
                used: limit.max(total),
                requested: 1,
                retry_after: wait,
            }
        } else {
            let limit = rpm.unwrap_or(window.max(1));
            RateLimited {
                kind: LimitKind::Rpm,
                limit,
                used: limit.max(window),
                requested: 1,
                retry_after: wait,
            }
        }
    }

    /// The key's limits and usage now (for rate-limit headers on answers that were not admitted).
    pub fn view(&self, key: &str) -> LimitView {
        let now = Instant::now();
        let mut inner = self.inner.lock();
        match inner.keys.get_mut(key) {
            Some(ks) => {
                ks.prune(now);
                ks.view(now)
            }
            None => LimitView::default(),
        }
    }

    /// Appends a log entry; returns its sequence number (for [`State::set_status`]).
    pub fn record(&self, mut rec: Record) -> u64 {
        let mut inner = self.inner.lock();
        inner.next_seq += 1;
        rec.seq = inner.next_seq;
        let seq = rec.seq;
        inner.records.push(rec);
        seq
    }

    /// Sets the status of a logged request (the `timeout` fault answers late, if at all).
    pub fn set_status(&self, seq: u64, status: u16) {
        let mut inner = self.inner.lock();
        if let Some(r) = inner.records.iter_mut().rev().find(|r| r.seq == seq) {
            r.status = Some(status);
        }
    }

    /// The request log, for one key or all.
    pub fn requests(&self, key: Option<&str>) -> Vec<Record> {
        let inner = self.inner.lock();
        inner
            .records
            .iter()
            .filter(|r| key.is_none_or(|k| r.key.as_deref() == Some(k)))
            .cloned()
            .collect()
    }

    /// Per-key statistics of every registered key.
    pub fn stats(&self) -> Value {
        let now = Instant::now();
        let mut inner = self.inner.lock();
        let mut out = Map::new();
        for (k, ks) in inner.keys.iter_mut() {
            ks.prune(now);
            out.insert(k.clone(), ks.stats());
        }
        Value::Object(out)
    }
}

fn admit_limits(ks: &mut KeyState, now: Instant, tokens: u64, units: u64) -> Decision {
    if let Some(rl) = ks.check_limits(now, tokens, units) {
        ks.rate_limited += 1;
        return Decision::Limited(rl, ks.view(now));
    }
    ks.serve(now, tokens, units);
    Decision::Serve(ks.view(now))
}

/// Time until the next UTC midnight, when daily limits would reset at a real provider.
fn until_utc_midnight() -> Duration {
    let now_ms = chrono::Utc::now().timestamp_millis().max(0);
    let day_ms: i64 = 86_400_000;
    let left = day_ms - now_ms % day_ms;
    Duration::from_millis(u64::try_from(left).unwrap_or(0).max(1000))
}

/// Formats a duration the way OpenAI-style `x-ratelimit-reset-*` headers and messages do:
/// `120ms`, `2s`, `6.78s`, `1m0s`, `2m59.56s`, `1h2m3s`.
pub fn go_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        return "0s".into();
    }
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let secs_part = |ms: u128| {
        let whole = ms / 1000;
        let frac = ms % 1000;
        if frac == 0 {
            format!("{whole}s")
        } else {
            let f = format!("{frac:03}");
            format!("{whole}.{}s", f.trim_end_matches('0'))
        }
    };
    let hours = ms / 3_600_000;
    let mins = (ms % 3_600_000) / 60_000;
    let rest = ms % 60_000;
    if hours > 0 {
        format!("{hours}h{mins}m{}", secs_part(rest))
    } else if mins > 0 {
        format!("{mins}m{}", secs_part(rest))
    } else {
        secs_part(rest)
    }
}

/// Prompt tokens of `chars` characters of messages: a quarter, rounded up.
pub fn tokens_of_chars(chars: usize) -> u64 {
    (chars as u64).div_ceil(4)
}

/// The first `n` characters of `s`.
pub fn first_chars(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

/// Splits `text` into at least three pieces (more for long text), on character boundaries.
pub fn split_pieces(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let n = chars.len().div_ceil(16).max(3);
    let size = chars.len().div_ceil(n).max(1);
    let mut out: Vec<String> = chars.chunks(size).map(|c| c.iter().collect()).collect();
    while out.len() < 3 {
        out.push(String::new());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_look_like_openai() {
        assert_eq!(go_duration(Duration::from_millis(120)), "120ms");
        assert_eq!(go_duration(Duration::from_secs(2)), "2s");
        assert_eq!(go_duration(Duration::from_millis(6780)), "6.78s");
        assert_eq!(go_duration(Duration::from_secs(60)), "1m0s");
        assert_eq!(go_duration(Duration::from_millis(179_560)), "2m59.56s");
        assert_eq!(go_duration(Duration::from_secs(3723)), "1h2m3s");
    }

    #[test]
    fn pieces_cover_text() {
        for t in ["", "ab", "hello world", &"x".repeat(100)] {
            let p = split_pieces(t);
            assert!(p.len() >= 3);
            assert_eq!(p.concat(), t);
        }
    }

    #[test]
    fn query_key_is_redacted() {
        assert_eq!(redact_query("alt=sse&key=abc"), "alt=sse&key=REDACTED");
        assert_eq!(redact_query(""), "");
    }
}
