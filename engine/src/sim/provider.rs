//! A simulated provider: one key of one provider of the catalogue, answering in this process (an
//! [`actors::inproc::Upstream`]) on the virtual clock, and enforcing that key's free-tier windows the
//! way the provider would: requests and tokens per minute (a sliding 60 s), per day (calendar day of
//! the provider's `reset_tz`), per month, concurrency and a daily cost-unit budget (Cloudflare's
//! neurons). A request that would go over any of them is answered `429` and counted, by window; the
//! simulation's invariant is that none is.
//!
//! It exists because a loopback HTTP fake (`fake-provider`) cannot run on a paused clock: while a
//! socket is in flight tokio would jump to its next timer. The answers come from the fake provider's
//! interviewer persona (`fake-provider/src/persona.rs`), so the sessions parse them as they
//! parse a model's.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use actors::clock::Clock;
use actors::inproc::Upstream;
use actors::providers::{
    ChatRequest, ChatResponse, ChunkStream, ProviderError, Role, StreamChunk, Target, Usage,
};
use actors::quota::{Limits, Rates};
use async_trait::async_trait;
use chrono::{Datelike, TimeZone};
use chrono_tz::Tz;

use super::persona;

/// What one simulated key saw, hour by hour (index 0 = the first hour of the simulated day).
#[derive(Debug, Default, Clone)]
pub struct KeyCounts {
    /// Calls answered, per hour.
    pub calls: BTreeMap<u32, u64>,
    /// Calls refused with a 429, per window name.
    pub refused: BTreeMap<&'static str, u64>,
    /// Highest use of each window seen at admission, as a share of its limit (1.0 = full).
    pub peak_use: BTreeMap<&'static str, f64>,
    /// Highest fill of the minute windows (rpm, tpm) at an admission, per hour.
    pub minute_peak: BTreeMap<u32, f64>,
    /// Requests answered in the simulated day.
    pub requests: u64,
    /// Tokens reported in the simulated day.
    pub tokens: u64,
}

#[derive(Debug, Default)]
struct Windows {
    minute: VecDeque<(Instant, u64)>,
    day: (i32, u32, u32),
    month: (i32, u32),
    requests_day: u64,
    tokens_day: u64,
    units_day: u64,
    requests_month: u64,
    tokens_month: u64,
    in_flight: u32,
}

/// One simulated provider key.
pub struct SimProvider {
    /// Provider name.
    pub name: String,
    limits: Limits,
    rates: Rates,
    tz: Tz,
    latency: Duration,
    start: Instant,
    windows: Mutex<Windows>,
    counts: Mutex<KeyCounts>,
}

#[derive(Default)]
/// The persona reads these from a request (the fake provider's own `Parsed`, reduced).
pub struct Parsed {
    /// Whether JSON output was asked for.
    pub json_mode: bool,
    /// Text of the last user message.
    pub last_user: String,
    /// Text of the system message(s), joined.
    pub system: String,
}

fn parsed(req: &ChatRequest) -> Parsed {
    let system: Vec<&str> = req
        .messages
        .iter()
        .filter(|m| m.role == Role::System)
        .map(|m| m.content.as_str())
        .collect();
    Parsed {
        json_mode: req.json,
        last_user: req
            .messages
            .iter()
            .rev()
            .find(|m| m.role == Role::User)
            .map(|m| m.content.clone())
            .unwrap_or_default(),
        system: system.join("\n"),
    }
}

impl SimProvider {
    /// A key of `name` with the catalogue's `limits`, unit `rates` and reset time zone, answering after
    /// `latency` of virtual time; hours are counted from `start`.
    pub fn new(
        name: &str,
        limits: Limits,
        rates: Rates,
        tz: Tz,
        latency: Duration,
        start: Instant,
    ) -> Self {
        SimProvider {
            name: name.to_string(),
            limits,
            rates,
            tz,
            latency,
            start,
            windows: Mutex::new(Windows::default()),
            counts: Mutex::new(KeyCounts::default()),
        }
    }

    /// What this key saw so far.
    pub fn counts(&self) -> KeyCounts {
        self.counts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn hour(&self) -> u32 {
        u32::try_from(Clock::since(self.start).as_secs() / 3600).unwrap_or(u32::MAX)
    }

    /// Admits a request costing up to `tokens` (prompt estimate + max_tokens) and `units`, or names
    /// the window it would exceed.
    fn admit(&self, tokens: u64, units: u64) -> Result<(), &'static str> {
        let now = Clock::now();
        let wall = Clock::wall().with_timezone(&self.tz);
        let mut w = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        let day = (wall.year(), wall.month(), wall.day());
        if w.day != day {
            w.day = day;
            (w.requests_day, w.tokens_day, w.units_day) = (0, 0, 0);
        }
        let month = (wall.year(), wall.month());
        if w.month != month {
            w.month = month;
            (w.requests_month, w.tokens_month) = (0, 0);
        }
        while w
            .minute
            .front()
            .is_some_and(|(t, _)| now.saturating_duration_since(*t) >= Duration::from_secs(60))
        {
            w.minute.pop_front();
        }
        let minute_requests = w.minute.len() as u64;
        let minute_tokens: u64 = w.minute.iter().map(|(_, t)| t).sum();
        let l = self.limits;
        let checks: [(&'static str, Option<u64>, u64, u64); 9] = [
            ("rpm", l.rpm.map(u64::from), minute_requests, 1),
            ("rpd", l.rpd.map(u64::from), w.requests_day, 1),
            ("tpm", l.tpm, minute_tokens, tokens),
            ("tpd", l.tpd, w.tokens_day, tokens),
            (
                "concurrency",
                l.concurrency.map(u64::from),
                u64::from(w.in_flight),
                1,
            ),
            (
                "requests_per_month",
                l.requests_per_month,
                w.requests_month,
                1,
            ),
            (
                "tokens_per_month",
                l.tokens_per_month,
                w.tokens_month,
                tokens,
            ),
            ("daily_units", l.daily_units, w.units_day, units),
            ("daily_spend", l.daily_spend_micros, 0, 0),
        ];
        let hour = self.hour();
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        for (name, limit, used, more) in checks {
            let Some(limit) = limit else { continue };
            if used + more > limit {
                *counts.refused.entry(name).or_default() += 1;
                return Err(name);
            }
            if limit > 0 {
                let share = (used + more) as f64 / limit as f64;
                let peak = counts.peak_use.entry(name).or_default();
                *peak = peak.max(share);
                if matches!(name, "rpm" | "tpm") {
                    let peak = counts.minute_peak.entry(hour).or_default();
                    *peak = peak.max(share);
                }
            }
        }
        w.in_flight += 1;
        // Counted at admission with the request's most (as the engine reserves it); the settled
        // figures replace the estimate when the answer is sent.
        w.minute.push_back((now, tokens));
        w.requests_day += 1;
        w.requests_month += 1;
        w.tokens_day += tokens;
        w.tokens_month += tokens;
        w.units_day += units;
        Ok(())
    }

    /// The call ended: the estimate is replaced by what was used.
    fn settle(&self, estimate: (u64, u64), used: Usage) {
        let actual = self.rates.cost(used.prompt_tokens, used.completion_tokens);
        let mut w = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        w.in_flight = w.in_flight.saturating_sub(1);
        let tokens = used.total();
        if let Some(last) = w.minute.iter_mut().rev().find(|(_, t)| *t == estimate.0) {
            last.1 = tokens.min(estimate.0);
        }
        let less = estimate.0.saturating_sub(tokens);
        w.tokens_day = w.tokens_day.saturating_sub(less);
        w.tokens_month = w.tokens_month.saturating_sub(less);
        w.units_day = w
            .units_day
            .saturating_sub(estimate.1.saturating_sub(actual.units));
        drop(w);
        let hour = self.hour();
        let mut c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        *c.calls.entry(hour).or_default() += 1;
        c.requests += 1;
        c.tokens += tokens;
    }

    /// One call: admission, the virtual latency, the persona's answer and its usage.
    async fn answer(&self, req: &ChatRequest) -> Result<(String, Usage), ProviderError> {
        let (prompt, max_out) = req.token_split();
        let estimate = self.rates.cost(prompt, max_out);
        if let Err(window) = self.admit(prompt + max_out, estimate.units) {
            tracing::warn!(provider = %self.name, window, "simulated provider: 429");
            return Err(ProviderError::RateLimited {
                retry_after: Some(Duration::from_secs(60)),
                day_exhausted: matches!(window, "rpd" | "tpd" | "daily_units"),
            });
        }
        tokio::time::sleep(self.latency).await;
        let text = persona::reply(&parsed(req));
        let out = (text.len() as u64).div_ceil(4).min(max_out);
        let usage = Usage {
            prompt_tokens: prompt,
            completion_tokens: out,
        };
        self.settle((prompt + max_out, estimate.units), usage);
        Ok((text, usage))
    }
}

#[async_trait]
impl Upstream for SimProvider {
    async fn complete(
        &self,
        _target: &Target,
        req: &ChatRequest,
    ) -> Result<ChatResponse, ProviderError> {
        let (text, usage) = self.answer(req).await?;
        Ok(ChatResponse {
            text,
            usage: Some(usage),
            finish_reason: Some("stop".into()),
            model: None,
        })
    }

    async fn stream(
        &self,
        _target: &Target,
        req: &ChatRequest,
    ) -> Result<ChunkStream, ProviderError> {
        let (text, usage) = self.answer(req).await?;
        let mut chunks: Vec<Result<StreamChunk, ProviderError>> = text
            .split_inclusive(' ')
            .map(|w| Ok(StreamChunk::Delta(w.to_string())))
            .collect();
        chunks.push(Ok(StreamChunk::Done {
            usage: Some(usage),
            finish_reason: Some("stop".into()),
        }));
        Ok(Box::pin(futures::stream::iter(chunks)))
    }
}

/// A simulated GPU node serving `rps` calls a second: `max_concurrency` slots, each call taking
/// `max_concurrency / rps` seconds of virtual time (the engine never sends more than the slots).
pub struct SimGpu {
    latency: Duration,
    start: Instant,
    calls: Mutex<BTreeMap<u32, u64>>,
}

impl SimGpu {
    /// A node whose calls take `latency`.
    pub fn new(latency: Duration, start: Instant) -> Self {
        SimGpu {
            latency,
            start,
            calls: Mutex::new(BTreeMap::new()),
        }
    }

    /// Calls answered per hour.
    pub fn calls(&self) -> BTreeMap<u32, u64> {
        self.calls.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    async fn answer(&self, req: &ChatRequest) -> (String, Usage) {
        tokio::time::sleep(self.latency).await;
        let hour = u32::try_from(Clock::since(self.start).as_secs() / 3600).unwrap_or(u32::MAX);
        *self
            .calls
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(hour)
            .or_default() += 1;
        let text = persona::reply(&parsed(req));
        let (prompt, max_out) = req.token_split();
        let usage = Usage {
            prompt_tokens: prompt,
            completion_tokens: (text.len() as u64).div_ceil(4).min(max_out),
        };
        (text, usage)
    }
}

#[async_trait]
impl Upstream for SimGpu {
    async fn complete(
        &self,
        _target: &Target,
        req: &ChatRequest,
    ) -> Result<ChatResponse, ProviderError> {
        let (text, usage) = self.answer(req).await;
        Ok(ChatResponse {
            text,
            usage: Some(usage),
            finish_reason: Some("stop".into()),
            model: None,
        })
    }

    async fn stream(
        &self,
        _target: &Target,
        req: &ChatRequest,
    ) -> Result<ChunkStream, ProviderError> {
        let (text, usage) = self.answer(req).await;
        let chunks = vec![
            Ok(StreamChunk::Delta(text)),
            Ok(StreamChunk::Done {
                usage: Some(usage),
                finish_reason: Some("stop".into()),
            }),
        ];
        Ok(Box::pin(futures::stream::iter(chunks)))
    }
}

/// Midnight UTC after `now` (the simulated day starts there).
pub fn next_midnight(now: chrono::DateTime<chrono::Utc>) -> chrono::DateTime<chrono::Utc> {
    let day = now.date_naive() + chrono::Days::new(1);
    chrono::Utc
        .from_local_datetime(&day.and_hms_opt(0, 0, 0).unwrap_or_default())
        .single()
        .unwrap_or(now)
}
