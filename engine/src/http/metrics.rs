//! `GET /metrics` (admin): the engine's figures in the Prometheus text format (0.0.4), read at scrape
//! time from the same sources as `/api/system_status` and `/api/optimization_stats`, so they agree.
//!
//! Each scrape builds a fresh registry from the live counters (a collector, not a second set of
//! counters kept in step): counters are process-lifetime totals, gauges are values now. Key ids are the
//! redacted ones (`groq#2`); no secret reaches a label.

use actix_web::HttpResponse;
use actors::key::KeyStatus;
use prometheus::core::{Collector, GenericCounterVec, GenericGaugeVec};
use prometheus::{Encoder, Opts, Registry, TextEncoder};

use super::status::live_sessions;
use super::State;
use crate::error::ApiError;

/// Every metric name starts with this.
const PREFIX: &str = "interview_engine";

/// A key's health states, as `KeyStatus::health` names them: each is exported, 1 for the current one.
const KEY_STATES: [&str; 6] = [
    "healthy",
    "cooling_down",
    "day_exhausted",
    "circuit_open",
    "half_open",
    "invalid",
];

/// A registry being filled for one scrape.
struct Scrape {
    registry: Registry,
}

type Counters = GenericCounterVec<prometheus::core::AtomicU64>;
type Gauges = GenericGaugeVec<prometheus::core::AtomicF64>;

impl Scrape {
    fn new() -> Self {
        Self {
            registry: Registry::new_custom(Some(PREFIX.into()), None).unwrap_or_default(),
        }
    }

    fn register<C: Collector + Clone + 'static>(&self, c: C) -> Result<C, ApiError> {
        self.registry.register(Box::new(c.clone())).map_err(|e| {
            tracing::error!(error = %e, "metrics registry refused a metric");
            ApiError::Internal
        })?;
        Ok(c)
    }

    /// A counter family (`name` ends in `_total`).
    fn counters(&self, name: &str, help: &str, labels: &[&str]) -> Result<Counters, ApiError> {
        let c = Counters::new(Opts::new(name, help), labels).map_err(|_| ApiError::Internal)?;
        self.register(c)
    }

    /// A gauge family.
    fn gauges(&self, name: &str, help: &str, labels: &[&str]) -> Result<Gauges, ApiError> {
        let g = Gauges::new(Opts::new(name, help), labels).map_err(|_| ApiError::Internal)?;
        self.register(g)
    }

    fn encode(&self) -> Result<String, ApiError> {
        let mut buf = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .map_err(|_| ApiError::Internal)?;
        String::from_utf8(buf).map_err(|_| ApiError::Internal)
    }
}

/// `GET /metrics`.
pub async fn metrics(state: State) -> Result<HttpResponse, ApiError> {
    let pool = state.pool.clone();
    let keys = state
        .on_engine(async move { pool.status().await })
        .await??;
    let live = live_sessions(&state).await;
    let text = document(&state, &keys, live)?;
    Ok(HttpResponse::Ok()
        .content_type(TextEncoder::new().format_type())
        .body(text))
}

/// The whole exposition.
fn document(state: &State, keys: &[KeyStatus], live: Option<usize>) -> Result<String, ApiError> {
    let s = Scrape::new();
    interviews(&s, state, live)?;
    cache(&s, state)?;
    budget(&s, state)?;
    providers(&s, keys)?;
    gpu(&s, state)?;
    s.encode()
}

fn interviews(s: &Scrape, state: &State, live: Option<usize>) -> Result<(), ApiError> {
    let completed = s.counters(
        "interviews_completed_total",
        "Interviews that reached their report, by requested mode.",
        &["mode"],
    )?;
    let calls = s.counters(
        "provider_calls_total",
        "Provider calls (cloud and GPU, failovers included) made for interviews, by requested mode.",
        &["mode"],
    )?;
    let tokens = s.counters(
        "provider_tokens_total",
        "Tokens providers reported for interviews' calls, by requested mode.",
        &["mode"],
    )?;
    for m in state.stats.modes() {
        completed
            .with_label_values(&[m.mode])
            .inc_by(m.completed_interviews);
        calls.with_label_values(&[m.mode]).inc_by(m.provider_calls);
        tokens
            .with_label_values(&[m.mode])
            .inc_by(m.provider_tokens);
    }
    // A gauge, not a counter: an answer graded live by the rubric scorer and then by economy's
    // batched call moves from `heuristic` to `llm`, so one source can go down.
    let content = s.gauges(
        "content_pieces",
        "Pieces of interview content by where they came from (template, pool, cache, llm, gpu, heuristic).",
        &["source"],
    )?;
    for (source, n) in state.stats.by_source() {
        content.with_label_values(&[source]).set(n as f64);
    }
    s.counters(
        "dedup_saves_total",
        "Requests served by sharing an identical request's provider call.",
        &[],
    )?
    .with_label_values::<&str>(&[])
    .inc_by(state.stats.dedup());
    if let Some(n) = live {
        s.gauges(
            "sessions_live",
            "Interview session actors running now.",
            &[],
        )?
        .with_label_values::<&str>(&[])
        .set(n as f64);
    }
    s.gauges(
        "sessions_hibernated",
        "Interviews whose session hibernates (no actor; the next message brings it back).",
        &[],
    )?
    .with_label_values::<&str>(&[])
    .set(state.live.hibernated() as f64);
    Ok(())
}

fn cache(s: &Scrape, state: &State) -> Result<(), ApiError> {
    let stats = state.cache.stats();
    let hits = s.counters(
        "cache_hits_total",
        "Cache reads served, by kind.",
        &["kind"],
    )?;
    let misses = s.counters(
        "cache_misses_total",
        "Cache reads not served (absent, expired or unreadable), by kind.",
        &["kind"],
    )?;
    let puts = s.counters(
        "cache_puts_total",
        "Cache writes accepted, by kind.",
        &["kind"],
    )?;
    let evictions = s.counters(
        "cache_evictions_total",
        "Entries removed to keep a kind within its size bound.",
        &["kind"],
    )?;
    let expired = s.counters(
        "cache_expired_total",
        "Entries removed because their lifetime passed.",
        &["kind"],
    )?;
    let entries = s.gauges("cache_entries", "Entries stored now, by kind.", &["kind"])?;
    for k in &stats.kinds {
        let kind = [k.kind.as_str()];
        hits.with_label_values(&kind).inc_by(k.hits);
        misses.with_label_values(&kind).inc_by(k.misses);
        puts.with_label_values(&kind).inc_by(k.puts);
        evictions.with_label_values(&kind).inc_by(k.evictions);
        expired.with_label_values(&kind).inc_by(k.expired);
        entries.with_label_values(&kind).set(k.entries as f64);
    }
    Ok(())
}

fn budget(s: &Scrape, state: &State) -> Result<(), ApiError> {
    let b = state.budget.snapshot();
    let live = s.gauges(
        "interviews_live",
        "Live interviews by their current level.",
        &["level"],
    )?;
    for (level, n) in &b.live_by_level {
        live.with_label_values(&[level]).set(*n as f64);
    }
    let admitted = s.gauges(
        "interviews_admitted_today",
        "Interviews admitted today (UTC) by their starting level.",
        &["level"],
    )?;
    for (level, n) in &b.admitted_by_level {
        admitted.with_label_values(&[level]).set(*n as f64);
    }
    let steps = s.counters(
        "level_steps_total",
        "Level changes of interviews after admission.",
        &["direction"],
    )?;
    steps.with_label_values(&["down"]).inc_by(b.steps_down);
    steps.with_label_values(&["up"]).inc_by(b.steps_up);
    s.gauges(
        "budget_reserved_calls",
        "Provider calls reserved for the rest of the live interviews.",
        &[],
    )?
    .with_label_values::<&str>(&[])
    .set(b.reserved_calls);
    s.gauges(
        "budget_reserved_tokens",
        "Tokens reserved for the rest of the live interviews.",
        &[],
    )?
    .with_label_values::<&str>(&[])
    .set(b.reserved_tokens);
    // Absent when unlimited (no daily limit on some key, or a GPU node up).
    let requests = s.gauges(
        "capacity_requests_remaining_today",
        "Provider requests the keys can still serve today (each quota scope once; absent when unlimited).",
        &[],
    )?;
    if let Some(r) = b.capacity.requests {
        requests.with_label_values::<&str>(&[]).set(r as f64);
    }
    let tokens = s.gauges(
        "capacity_tokens_remaining_today",
        "Tokens the keys can still serve today (each quota scope once; absent when unlimited).",
        &[],
    )?;
    if let Some(t) = b.capacity.tokens {
        tokens.with_label_values::<&str>(&[]).set(t as f64);
    }
    Ok(())
}

fn providers(s: &Scrape, keys: &[KeyStatus]) -> Result<(), ApiError> {
    let served = s.counters(
        "key_requests_served_total",
        "Requests a key answered.",
        &["provider", "key"],
    )?;
    let failed = s.counters(
        "key_requests_failed_total",
        "Requests that failed on a key.",
        &["provider", "key"],
    )?;
    let limited = s.counters(
        "key_rate_limited_total",
        "429 answers a key got from its provider.",
        &["provider", "key"],
    )?;
    let health = s.gauges(
        "key_health",
        "1 for a key's current health state, 0 for the others (healthy, cooling_down, day_exhausted, circuit_open, half_open, invalid).",
        &["provider", "key", "state"],
    )?;
    let used = s.gauges(
        "key_window_used",
        "Use of a key's quota windows (rpm, rpd, tpm, tpd; shared scopes show their shared use).",
        &["provider", "key", "window"],
    )?;
    let limit = s.gauges(
        "key_window_limit",
        "A key's configured window limits (absent when unlimited).",
        &["provider", "key", "window"],
    )?;
    let in_flight = s.gauges(
        "key_in_flight",
        "Calls in flight on a key.",
        &["provider", "key"],
    )?;
    let queued = s.gauges(
        "key_queued",
        "Requests waiting for a key's windows.",
        &["provider", "key"],
    )?;
    for k in keys {
        let who = [k.provider.as_str(), k.id.as_str()];
        served.with_label_values(&who).inc_by(k.served);
        failed.with_label_values(&who).inc_by(k.failed);
        limited.with_label_values(&who).inc_by(k.rate_limited);
        for state in KEY_STATES {
            let on = if state == k.health { 1.0 } else { 0.0 };
            health.with_label_values(&[who[0], who[1], state]).set(on);
        }
        in_flight
            .with_label_values(&who)
            .set(f64::from(k.usage.in_flight));
        queued.with_label_values(&who).set(k.queued as f64);
        let l = &k.limits;
        let windows = [
            ("rpm", k.usage.rpm_used, l.rpm.map(u64::from)),
            ("rpd", k.usage.rpd_used, l.rpd.map(u64::from)),
            ("tpm", k.usage.tpm_used, l.tpm),
            ("tpd", k.usage.tpd_used, l.tpd),
        ];
        for (window, n, lim) in windows {
            used.with_label_values(&[who[0], who[1], window])
                .set(n as f64);
            if let Some(lim) = lim {
                limit
                    .with_label_values(&[who[0], who[1], window])
                    .set(lim as f64);
            }
        }
    }
    Ok(())
}

fn gpu(s: &Scrape, state: &State) -> Result<(), ApiError> {
    let Some(g) = state.pool.gpu() else {
        return Ok(());
    };
    let up = s.gauges(
        "gpu_node_up",
        "1 while a local inference node takes requests.",
        &["node"],
    )?;
    let in_flight = s.gauges("gpu_node_in_flight", "Requests on a node now.", &["node"])?;
    let requests = s.counters(
        "gpu_node_requests_total",
        "Requests that ended on a node.",
        &["node"],
    )?;
    let errors = s.counters(
        "gpu_node_errors_total",
        "Requests that failed on a node.",
        &["node"],
    )?;
    let latency = s.gauges(
        "gpu_node_latency_seconds",
        "Moving average of a node's request latency.",
        &["node"],
    )?;
    for n in g.status() {
        let node = [n.name.as_str()];
        up.with_label_values(&node)
            .set(if n.state.is_usable() { 1.0 } else { 0.0 });
        in_flight
            .with_label_values(&node)
            .set(f64::from(n.in_flight));
        requests.with_label_values(&node).inc_by(n.requests);
        errors.with_label_values(&node).inc_by(n.errors);
        if let Some(ms) = n.latency_ms {
            latency.with_label_values(&node).set(ms / 1000.0);
        }
    }
    let stats = g.stats();
    let affinity = s.counters(
        "gpu_affinity_total",
        "Requests that found their interview's node (hit) or moved to another (move).",
        &["outcome"],
    )?;
    affinity
        .with_label_values(&["hit"])
        .inc_by(stats.affinity_hits);
    affinity
        .with_label_values(&["move"])
        .inc_by(stats.affinity_moves);
    Ok(())
}
