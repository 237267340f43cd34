//! `Pool`: the handle the rest of the engine calls to reach an LLM. It asks the key directory for
//! candidate keys, chooses the one where the request can start soonest, gets a permit from it (waiting
//! in that key's queue when it has no room yet), makes the call, reports the outcome, and fails over to
//! a different key (and provider) on failure, all within the caller's deadline; each request keeps an
//! attempt trail.
//!
//! The choice is by expected wait: a key with room now (by route order, priority, then headroom), else
//! the key whose window opens, cool-down ends or slot frees soonest. The caller is refused
//! ([`PoolError::NoCapacity`], with the time the earliest window opens) only when no key can start the
//! request before its deadline or every queue is full, and at once ([`PoolError::TooLarge`]) when no
//! key could ever take it.
//!
//! A request may be routed ([`CallOptions::routes`]): to given providers and models, in order (an
//! alias's targets) or all alike (a bare model id that several providers serve).
//!
//! With local inference nodes configured (a [`GpuPool`]), they are tried first (by default), with the
//! interview id as affinity; when every node is busy or down the request falls back to the cloud keys.

use std::collections::HashSet;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::{Stream, StreamExt};
use ractor::rpc::CallResult;
use ractor::ActorRef;
use serde::Serialize;

use crate::clock::Clock;
use crate::gpu_node::{self, GpuNodeSpec};
use crate::gpu_pool::{GpuError, GpuPool, SlotGuard};
use crate::key::KeyStatus;
use crate::key::{CallOutcome, KeyMsg, Permit, Refusal, RefusalReason};
use crate::providers::{
    ChatRequest, ChatResponse, ChunkStream, ProviderError, StreamChunk, Target, WireFormat,
};
use crate::quota::Cost;
use crate::router::{Candidate, Estimate, KeyDirectory, RouterMsg};

/// One try of a request on one key.
#[derive(Debug, Clone, Serialize)]
pub struct Attempt {
    /// Redacted key id (`groq#2`).
    pub key: String,
    /// Provider name.
    pub provider: String,
    /// `ok`, a refusal reason, or a provider error code.
    pub outcome: String,
    /// Time spent on this attempt.
    pub latency_ms: f64,
    /// Whether a request was sent (false: the key or node refused admission).
    pub called: bool,
}

/// A completed call.
#[derive(Debug, Clone)]
pub struct Completion {
    /// The answer.
    pub response: ChatResponse,
    /// Provider that answered.
    pub provider: String,
    /// Key that answered (redacted id).
    pub key: String,
    /// Every attempt, the successful one last.
    pub trail: Vec<Attempt>,
    /// Where the answer came from, as events name it: `llm:<provider>` or `gpu:<node>`.
    pub source: String,
}

/// A streamed call: metadata and the chunks.
pub struct StreamCompletion {
    /// Provider that answers.
    pub provider: String,
    /// Key that answers (redacted id).
    pub key: String,
    /// Attempts before the stream was opened.
    pub trail: Vec<Attempt>,
    /// Where the answer comes from: `llm:<provider>` or `gpu:<node>`.
    pub source: String,
    /// The chunks; the reservation is settled when the stream ends or is dropped.
    pub stream: ChunkStream,
}

/// Why the pool could not serve a request.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PoolError {
    /// No provider key is configured at all.
    #[error("no provider keys are configured")]
    NoProviders,
    /// No key can start the request before its deadline (or every queue is full).
    #[error("no provider capacity before the deadline ({} keys considered)", trail.len())]
    NoCapacity {
        /// What each key said.
        trail: Vec<Attempt>,
        /// When the earliest key expects room (a window opens, a cool-down ends, a slot frees);
        /// `None` when no key will (every key invalid).
        retry_after: Option<Duration>,
    },
    /// No key could ever take the request: it is larger than a whole window of every key.
    #[error("request needs {need} of {window} but the largest limit of any key is {limit}")]
    TooLarge {
        /// The window (`tpm`, `tpd`, `tokens_per_month`, `daily_units`, `daily_spend`).
        window: &'static str,
        /// The largest limit of that window over the keys.
        limit: u64,
        /// What the request needs.
        need: u64,
    },
    /// Every key that was tried failed.
    #[error("every provider attempt failed; last: {last}")]
    AllFailed {
        /// The last failure.
        last: ProviderError,
        /// Every attempt.
        trail: Vec<Attempt>,
    },
    /// The router did not answer.
    #[error("provider router unavailable: {0}")]
    Unavailable(String),
}

impl PoolError {
    /// The attempt trail, if any.
    pub fn trail(&self) -> &[Attempt] {
        match self {
            PoolError::NoCapacity { trail, .. } | PoolError::AllFailed { trail, .. } => trail,
            _ => &[],
        }
    }

    fn no_capacity(trail: Vec<Attempt>) -> PoolError {
        PoolError::NoCapacity {
            trail,
            retry_after: None,
        }
    }
}

/// One place a routed request may go: a provider's keys, with a model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Provider name.
    pub provider: String,
    /// The model to ask for (`None`: the provider's configured model).
    pub model: Option<String>,
}

/// Per-call options.
#[derive(Debug, Clone)]
pub struct CallOptions {
    /// How long the caller can wait for the whole call, failovers included.
    pub deadline: Duration,
    /// Most keys to try with a real call.
    pub max_attempts: usize,
    /// Only keys of this provider (the gateway's `model: "<provider>/..."`).
    pub provider: Option<String>,
    /// Not this key (a retry after unusable output goes to another key; `gpu:<node>` skips the nodes).
    pub avoid_key: Option<String>,
    /// The interview the request belongs to: GPU nodes keep an interview on one node (prompt cache).
    pub affinity: Option<String>,
    /// Where the request may go (empty: any key with its configured model). Keys of an earlier route
    /// are preferred when several can start at once.
    pub routes: Vec<Route>,
    /// With routes: prefer them in order (an alias's failover list); else all alike.
    pub ordered: bool,
}

impl Default for CallOptions {
    fn default() -> Self {
        Self {
            deadline: Duration::from_secs(30),
            max_attempts: 4,
            provider: None,
            avoid_key: None,
            affinity: None,
            routes: Vec::new(),
            ordered: false,
        }
    }
}

/// How a key ranks for a request, lowest first: waits at all, when it can start, route rank,
/// priority, used fraction of its tightest window.
type Rank = (bool, Instant, usize, u32, u64);

/// A key planned for a request: the key, the model to ask it for and its route's rank.
#[derive(Clone)]
struct Planned {
    c: Candidate,
    model: Option<String>,
    rank: usize,
}

/// The handle to the provider pool.
#[derive(Clone)]
pub struct Pool {
    router: ActorRef<RouterMsg>,
    directory: KeyDirectory,
    http: reqwest::Client,
    gpu: Option<GpuRoute>,
}

/// How the pool uses local inference nodes.
#[derive(Clone)]
struct GpuRoute {
    pool: GpuPool,
    /// When the nodes cannot serve, go on to the cloud keys (else the caller gets the error).
    fallback_to_cloud: bool,
}

impl Pool {
    /// A pool over a running router and the directory it publishes.
    pub fn new(
        router: ActorRef<RouterMsg>,
        directory: KeyDirectory,
        http: reqwest::Client,
    ) -> Self {
        Self {
            router,
            directory,
            http,
            gpu: None,
        }
    }

    /// The same pool with local inference nodes tried before the cloud keys.
    pub fn with_gpu(mut self, gpu: GpuPool, fallback_to_cloud: bool) -> Self {
        if gpu.has_nodes() {
            self.gpu = Some(GpuRoute {
                pool: gpu,
                fallback_to_cloud,
            });
        }
        self
    }

    /// The GPU pool, when nodes are configured.
    pub fn gpu(&self) -> Option<&GpuPool> {
        self.gpu.as_ref().map(|g| &g.pool)
    }

    /// Whether any LLM (a cloud key or a GPU node) is configured.
    pub fn has_llm(&self) -> bool {
        self.gpu.is_some() || self.key_count() > 0
    }

    /// The GPU route for this call and the part of the deadline it may use, if it applies.
    fn gpu_for(&self, opts: &CallOptions) -> Option<(&GpuRoute, Duration)> {
        let g = self.gpu.as_ref()?;
        // A retry that avoids the nodes goes to the cloud keys, when there are any; with none, the
        // nodes get the retry (a sampled model may well answer differently).
        let avoid_gpu = opts
            .avoid_key
            .as_deref()
            .is_some_and(|k| k.starts_with("gpu:"))
            && self.key_count() > 0;
        if opts.provider.is_some() || avoid_gpu || !g.pool.any_up() {
            return None;
        }
        // Leave the cloud keys half of the deadline when they can take over.
        let budget = if g.fallback_to_cloud && self.key_count() > 0 {
            opts.deadline / 2
        } else {
            opts.deadline
        };
        Some((g, budget))
    }

    /// After the GPU nodes could not serve: the cloud keys take over, or the caller gets the error.
    fn gpu_failed(
        g: &GpuRoute,
        e: &GpuError,
        t0: Instant,
        trail: &mut Vec<Attempt>,
    ) -> Result<(), PoolError> {
        tracing::debug!(error = %e, "GPU nodes could not serve; trying cloud keys");
        trail.push(Attempt {
            key: "gpu".into(),
            provider: "gpu".into(),
            outcome: e.to_string(),
            latency_ms: Clock::since(t0).as_secs_f64() * 1000.0,
            called: matches!(e, GpuError::Failed { .. }),
        });
        if g.fallback_to_cloud {
            Ok(())
        } else {
            Err(PoolError::no_capacity(std::mem::take(trail)))
        }
    }

    /// What can still be served today: unlimited while a GPU node is up, else the keys' daily room.
    pub fn day_capacity(&self) -> crate::budget::Capacity {
        match &self.gpu {
            Some(g) if g.pool.any_up() => crate::budget::Capacity::UNLIMITED,
            _ => self.directory.day_capacity(),
        }
    }

    /// Number of usable (not invalid) keys.
    pub fn key_count(&self) -> usize {
        self.directory.plan().len()
    }

    /// The router actor (for supervision and shutdown).
    pub fn router(&self) -> &ActorRef<RouterMsg> {
        &self.router
    }

    /// Every key's status.
    pub async fn status(&self) -> Result<Vec<KeyStatus>, PoolError> {
        match self
            .router
            .call(RouterMsg::Status, Some(Duration::from_secs(10)))
            .await
        {
            Ok(CallResult::Success(s)) => Ok(s),
            Ok(CallResult::Timeout) => Err(PoolError::Unavailable("status timed out".into())),
            Ok(CallResult::SenderError) | Err(_) => {
                Err(PoolError::Unavailable("router stopped".into()))
            }
        }
    }

    /// The cloud candidates after the GPU nodes were tried (or skipped): with no keys, a GPU failure is
    /// reported as no capacity rather than "no providers".
    fn plan_after_gpu(
        &self,
        opts: &CallOptions,
        trail: &mut Vec<Attempt>,
    ) -> Result<Vec<Planned>, PoolError> {
        match self.plan(opts) {
            Err(PoolError::NoProviders) if !trail.is_empty() => {
                Err(PoolError::no_capacity(std::mem::take(trail)))
            }
            other => other,
        }
    }

    /// The keys a request may use, each with the model to ask for and its route's rank.
    fn plan(&self, opts: &CallOptions) -> Result<Vec<Planned>, PoolError> {
        let all = self.directory.plan();
        if all.is_empty() {
            return Err(PoolError::NoProviders);
        }
        let mut out: Vec<Planned> = if opts.routes.is_empty() {
            all.into_iter()
                .filter(|c| opts.provider.as_ref().is_none_or(|p| &c.spec.provider == p))
                .map(|c| Planned {
                    c,
                    model: None,
                    rank: 0,
                })
                .collect()
        } else {
            let mut v = Vec::new();
            for (i, r) in opts.routes.iter().enumerate() {
                for c in all.iter().filter(|c| c.spec.provider == r.provider) {
                    v.push(Planned {
                        c: c.clone(),
                        model: r.model.clone(),
                        rank: if opts.ordered { i } else { 0 },
                    });
                }
            }
            v
        };
        if let Some(k) = &opts.avoid_key {
            if out.len() > 1 {
                out.retain(|p| &p.c.spec.id != k);
            }
        }
        Ok(out)
    }

    /// Asks one key for a permit, waiting in its queue until the deadline at the latest.
    async fn reserve(
        p: &Planned,
        cost: Cost,
        deadline: Instant,
        wait: bool,
    ) -> Result<Permit, Refusal> {
        let left = deadline.saturating_duration_since(Clock::now());
        let r =
            p.c.actor
                .call(
                    |reply| KeyMsg::Reserve {
                        cost,
                        model: p.model.clone(),
                        deadline,
                        wait,
                        reply,
                    },
                    Some(left.max(Duration::from_millis(1))),
                )
                .await;
        match r {
            Ok(CallResult::Success(res)) => res,
            _ => Err(Refusal {
                reason: RefusalReason::DeadlineExceeded,
                ready_at: None,
                too_large: None,
            }),
        }
    }

    /// Finds a key that admits the request: the one where it can start soonest (room now first, by
    /// route rank, priority and headroom), waiting in that key's queue; on a refusal, the next. Keys
    /// that cannot start it before the deadline are refused without a message, their ready time kept
    /// in `refused` for the caller's retry time.
    async fn admit(
        cands: &[Planned],
        tried: &mut HashSet<usize>,
        (prompt, out): (u64, u64),
        deadline: Instant,
        trail: &mut Vec<Attempt>,
        refused: &mut Vec<Refusal>,
    ) -> Option<(usize, Permit)> {
        loop {
            let now = Clock::now();
            let mut best: Option<(Rank, usize)> = None;
            for (i, p) in cands.iter().enumerate() {
                if tried.contains(&i) {
                    continue;
                }
                let cost = p.c.spec.rates_for(p.model.as_deref()).cost(prompt, out);
                let (estimate, headroom) =
                    p.c.estimate_with_headroom(cost, p.model.as_deref(), now);
                let at = match estimate {
                    Estimate::Now => now,
                    Estimate::At(at) if at <= deadline => at,
                    Estimate::At(at) => {
                        let r = Refusal {
                            reason: RefusalReason::NotBeforeDeadline,
                            ready_at: Some(at),
                            too_large: None,
                        };
                        Self::refuse(p, i, r, tried, trail, refused, now);
                        continue;
                    }
                    Estimate::Never(r) => {
                        Self::refuse(p, i, r, tried, trail, refused, now);
                        continue;
                    }
                };
                // Room now beats any wait; then route rank, priority, headroom; waits by length.
                let waits = at > now;
                let headroom = ((1.0 - headroom) * 1e6) as u64;
                let key = (
                    waits,
                    if waits { at } else { now },
                    p.rank,
                    p.c.spec.priority,
                    headroom,
                );
                if best.as_ref().is_none_or(|(k, _)| key < *k) {
                    best = Some((key, i));
                }
            }
            let ((waits, ..), i) = best?;
            let p = &cands[i];
            let cost = p.c.spec.rates_for(p.model.as_deref()).cost(prompt, out);
            if !waits {
                // Room now and nobody waiting: take it without a message to the key actor.
                if let Some(permit) = p.c.try_fast(cost, p.model.as_deref()).await {
                    return Some((i, permit));
                }
            }
            let t0 = Clock::now();
            match Self::reserve(p, cost, deadline, true).await {
                Ok(permit) => return Some((i, permit)),
                Err(r) => Self::refuse(p, i, r, tried, trail, refused, t0),
            }
            if Clock::now() >= deadline {
                return None;
            }
        }
    }

    fn refuse(
        p: &Planned,
        i: usize,
        r: Refusal,
        tried: &mut HashSet<usize>,
        trail: &mut Vec<Attempt>,
        refused: &mut Vec<Refusal>,
        t0: Instant,
    ) {
        tried.insert(i);
        trail.push(Attempt {
            called: false,
            ..attempt(&p.c, refusal_name(&r), t0)
        });
        refused.push(r);
    }

    /// The error for a request no key admitted: too large for every key, or no capacity until the
    /// earliest ready time any key gave.
    fn refused_error(trail: Vec<Attempt>, refused: &[Refusal]) -> PoolError {
        if !refused.is_empty() && refused.iter().all(|r| r.reason == RefusalReason::TooLarge) {
            // The largest limit any key has for the window the request overflows.
            if let Some((window, limit, need)) = refused
                .iter()
                .filter_map(|r| r.too_large)
                .max_by_key(|(_, limit, _)| *limit)
            {
                return PoolError::TooLarge {
                    window,
                    limit,
                    need,
                };
            }
        }
        let now = Clock::now();
        let retry_after = refused
            .iter()
            .filter_map(|r| r.ready_at)
            .min()
            .map(|at| at.saturating_duration_since(now));
        PoolError::NoCapacity { trail, retry_after }
    }

    /// Admission alone: plans and reserves a request of `tokens` prompt tokens on the best key that
    /// admits it, without a call. The permit settles or releases like any other. Used by benchmarks
    /// of the admission path.
    pub async fn acquire(&self, tokens: u64, opts: &CallOptions) -> Result<Permit, PoolError> {
        let deadline = Clock::now() + opts.deadline;
        let cands = self.plan(opts)?;
        let mut trail = Vec::new();
        let mut refused = Vec::new();
        match Self::admit(
            &cands,
            &mut HashSet::new(),
            (tokens, 0),
            deadline,
            &mut trail,
            &mut refused,
        )
        .await
        {
            Some((_, p)) => Ok(p),
            None => Err(Self::refused_error(trail, &refused)),
        }
    }

    /// Sends a request and returns the whole answer, failing over across keys within the deadline.
    pub async fn complete(
        &self,
        req: &ChatRequest,
        opts: CallOptions,
    ) -> Result<Completion, PoolError> {
        self.serve::<Completion>(req, opts).await
    }

    /// Opens a streamed answer, failing over across keys until a stream is open. Failures after the
    /// first byte end the stream with an error (the caller decides what to do with partial text).
    pub async fn stream(
        &self,
        req: &ChatRequest,
        opts: CallOptions,
    ) -> Result<StreamCompletion, PoolError> {
        self.serve::<StreamCompletion>(req, opts).await
    }

    /// The failover loop behind [`Pool::complete`] and [`Pool::stream`]: the GPU nodes first (when
    /// they apply), then the key where the request can start soonest, the next one on failure, until
    /// one answers, `max_attempts` calls were made, or the deadline passes. A key that answered 429 is
    /// not ruled out: it cools down, and may take the request again when its cool-down ends in time.
    async fn serve<D: Delivery>(
        &self,
        req: &ChatRequest,
        opts: CallOptions,
    ) -> Result<D, PoolError> {
        let deadline = Clock::now() + opts.deadline;
        let mut trail = Vec::new();
        if let Some((g, budget)) = self.gpu_for(&opts) {
            let t0 = Clock::now();
            match D::from_gpu(&g.pool, req, budget, opts.affinity.as_deref()).await {
                Ok((node, answer)) => {
                    trail.push(gpu_attempt(&node, t0));
                    let key = format!("gpu:{node}");
                    return Ok(D::served(answer, "gpu".into(), key.clone(), key, trail));
                }
                Err(e) => Self::gpu_failed(g, &e, t0, &mut trail)?,
            }
        }
        let cands = self.plan_after_gpu(&opts, &mut trail)?;
        let mut tried = HashSet::new();
        let mut refused = Vec::new();
        let mut last_err: Option<ProviderError> = None;
        let mut calls = 0;
        while calls < opts.max_attempts && Clock::now() < deadline {
            let Some((i, mut permit)) = Self::admit(
                &cands,
                &mut tried,
                req.token_split(),
                deadline,
                &mut trail,
                &mut refused,
            )
            .await
            else {
                break;
            };
            calls += 1;
            let p = &cands[i];
            let spec = permit.spec.clone();
            let mut target = spec.target.clone();
            if let Some(m) = &p.model {
                target.model = m.clone();
            }
            target.timeout = target
                .timeout
                .min(deadline.saturating_duration_since(Clock::now()));
            let t0 = Clock::now();
            permit.mark_sent();
            match D::send(spec.format.wire(), &self.http, &target, req).await {
                Ok(answer) => {
                    trail.push(attempt(&p.c, "ok".into(), t0));
                    tracing::debug!(key = %spec.id, attempts = trail.len(), "provider call served");
                    let answer = D::hold(answer, permit, req);
                    let source = format!("llm:{}", spec.provider);
                    return Ok(D::served(
                        answer,
                        spec.provider.clone(),
                        spec.id.clone(),
                        source,
                        trail,
                    ));
                }
                Err(e) => {
                    tracing::warn!(key = %spec.id, error = %e, "provider call failed; failing over");
                    permit.report(CallOutcome::Failed(e.clone()));
                    permit.release();
                    trail.push(attempt(&p.c, e.code().into(), t0));
                    if !matches!(e, ProviderError::RateLimited { .. }) {
                        tried.insert(i);
                    }
                    // A request the provider refused as such fails the same everywhere.
                    let fatal = matches!(e, ProviderError::BadRequest { .. });
                    last_err = Some(e);
                    if fatal {
                        break;
                    }
                }
            }
        }
        match last_err {
            // The provider asked us to wait and nothing else could take the request in time: that
            // is no capacity (429 with the real wait), not a failure.
            Some(ProviderError::RateLimited { .. })
                if refused.iter().any(|r| r.ready_at.is_some()) =>
            {
                Err(Self::refused_error(trail, &refused))
            }
            Some(last) => Err(PoolError::AllFailed { last, trail }),
            None => Err(Self::refused_error(trail, &refused)),
        }
    }
}

/// What differs between a whole answer and a stream: how a node or a key is asked, and how a served
/// answer holds its key's permit or its node's slot. The failover loops around them are [`Pool::serve`]
/// (keys) and [`GpuPool::serve`] (nodes).
pub(crate) trait Delivery: Sized {
    /// What a provider or node hands back.
    type Answer;

    /// Asks the GPU nodes; the node that served, and its answer.
    async fn from_gpu(
        gpu: &GpuPool,
        req: &ChatRequest,
        budget: Duration,
        affinity: Option<&str>,
    ) -> Result<(String, Self::Answer), GpuError> {
        gpu.serve::<Self>(req, budget, affinity)
            .await
            .map(|(node, _failed, answer)| (node, answer))
    }

    /// Sends `req` to one GPU node, `timeout` being what this try may take.
    async fn send_gpu(
        http: &reqwest::Client,
        spec: &GpuNodeSpec,
        req: &ChatRequest,
        timeout: Duration,
    ) -> Result<Self::Answer, ProviderError>;

    /// A node answered a try sent at `t0`: settle its slot now (a whole answer), or when the answer
    /// ends or stays silent for `idle` (a stream).
    fn hold_gpu(answer: Self::Answer, slot: SlotGuard, t0: Instant, idle: Duration)
        -> Self::Answer;

    /// Sends `req` to one key in its wire format.
    async fn send(
        wire: &'static dyn WireFormat,
        http: &reqwest::Client,
        target: &Target,
        req: &ChatRequest,
    ) -> Result<Self::Answer, ProviderError>;

    /// A key answered: settle its permit now (a whole answer), or when the answer ends (a stream).
    fn hold(answer: Self::Answer, permit: Permit, req: &ChatRequest) -> Self::Answer;

    /// The caller's result.
    fn served(
        answer: Self::Answer,
        provider: String,
        key: String,
        source: String,
        trail: Vec<Attempt>,
    ) -> Self;
}

impl Delivery for Completion {
    type Answer = ChatResponse;

    async fn send_gpu(
        http: &reqwest::Client,
        spec: &GpuNodeSpec,
        req: &ChatRequest,
        timeout: Duration,
    ) -> Result<ChatResponse, ProviderError> {
        gpu_node::complete(http, spec, req, timeout).await
    }

    fn hold_gpu(
        answer: ChatResponse,
        slot: SlotGuard,
        t0: Instant,
        _idle: Duration,
    ) -> ChatResponse {
        slot.served(t0, answer.usage.map(|u| u.completion_tokens));
        answer
    }

    async fn send(
        wire: &'static dyn WireFormat,
        http: &reqwest::Client,
        target: &Target,
        req: &ChatRequest,
    ) -> Result<ChatResponse, ProviderError> {
        if let Some(up) = crate::inproc::route(&target.base_url)? {
            return up.complete(target, req).await;
        }
        wire.complete(http, target, req).await
    }

    fn hold(answer: ChatResponse, permit: Permit, req: &ChatRequest) -> ChatResponse {
        permit.report(CallOutcome::Ok);
        let (input, output) = answer.usage.map_or_else(
            || (req.token_split().0, (answer.text.len() as u64).div_ceil(4)),
            |u| (u.prompt_tokens, u.completion_tokens),
        );
        permit.settle(input, output);
        answer
    }

    fn served(
        response: ChatResponse,
        provider: String,
        key: String,
        source: String,
        trail: Vec<Attempt>,
    ) -> Self {
        Completion {
            response,
            provider,
            key,
            trail,
            source,
        }
    }
}

impl Delivery for StreamCompletion {
    type Answer = ChunkStream;

    async fn send_gpu(
        http: &reqwest::Client,
        spec: &GpuNodeSpec,
        req: &ChatRequest,
        timeout: Duration,
    ) -> Result<ChunkStream, ProviderError> {
        gpu_node::open_stream(http, spec, req, timeout).await
    }

    fn hold_gpu(stream: ChunkStream, slot: SlotGuard, t0: Instant, idle: Duration) -> ChunkStream {
        slot.streaming(stream, t0, idle)
    }

    async fn send(
        wire: &'static dyn WireFormat,
        http: &reqwest::Client,
        target: &Target,
        req: &ChatRequest,
    ) -> Result<ChunkStream, ProviderError> {
        if let Some(up) = crate::inproc::route(&target.base_url)? {
            return up.stream(target, req).await;
        }
        wire.stream(http, target, req).await
    }

    fn hold(stream: ChunkStream, permit: Permit, req: &ChatRequest) -> ChunkStream {
        Box::pin(SettlingStream {
            inner: stream,
            permit: Some(permit),
            prompt_estimate: req.token_split().0,
            streamed_chars: 0,
        })
    }

    fn served(
        stream: ChunkStream,
        provider: String,
        key: String,
        source: String,
        trail: Vec<Attempt>,
    ) -> Self {
        StreamCompletion {
            provider,
            key,
            trail,
            source,
            stream,
        }
    }
}

fn gpu_attempt(node: &str, t0: Instant) -> Attempt {
    Attempt {
        called: true,
        key: format!("gpu:{node}"),
        provider: "gpu".into(),
        outcome: "ok".into(),
        latency_ms: Clock::since(t0).as_secs_f64() * 1000.0,
    }
}

fn attempt(c: &Candidate, outcome: String, t0: Instant) -> Attempt {
    Attempt {
        called: true,
        key: c.spec.id.clone(),
        provider: c.spec.provider.clone(),
        outcome,
        latency_ms: Clock::since(t0).as_secs_f64() * 1000.0,
    }
}

fn refusal_name(r: &Refusal) -> String {
    serde_json::to_value(r.reason)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| "refused".into())
}

/// Wraps a provider stream so its reservation is settled when it ends: to the reported usage, or
/// (cut, cancelled) to the prompt estimate plus what was streamed.
struct SettlingStream {
    inner: ChunkStream,
    permit: Option<Permit>,
    prompt_estimate: u64,
    streamed_chars: u64,
}

impl SettlingStream {
    fn estimate(&self) -> (u64, u64) {
        (self.prompt_estimate, self.streamed_chars.div_ceil(4))
    }
}

impl Stream for SettlingStream {
    type Item = Result<StreamChunk, ProviderError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let item = futures::ready!(self.inner.poll_next_unpin(cx));
        match &item {
            Some(Ok(StreamChunk::Delta(d))) => self.streamed_chars += d.len() as u64,
            Some(Ok(StreamChunk::Done { usage, .. })) => {
                let (input, output) = usage.map_or_else(
                    || self.estimate(),
                    |u| (u.prompt_tokens, u.completion_tokens),
                );
                if let Some(p) = self.permit.take() {
                    p.report(CallOutcome::Ok);
                    p.settle(input, output);
                }
            }
            Some(Err(e)) => {
                let (input, output) = self.estimate();
                if let Some(p) = self.permit.take() {
                    p.report(CallOutcome::Failed(e.clone()));
                    p.settle(input, output);
                }
            }
            None => {}
        }
        Poll::Ready(item)
    }
}

impl Drop for SettlingStream {
    fn drop(&mut self) {
        // Cancelled mid-stream (client went away, interrupt): the provider generated something.
        let (input, output) = self.estimate();
        if let Some(p) = self.permit.take() {
            p.settle(input, output);
        }
    }
}

impl crate::budget::CapacitySource for Pool {
    fn capacity(&self) -> crate::budget::Capacity {
        self.day_capacity()
    }
    fn configured(&self) -> bool {
        self.has_llm()
    }
}

/// What a caller is told when no key admitted its request, and how refusals are named in the
/// attempt trail: pure parts of the pool, without keys.
#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn refusal(reason: RefusalReason, ready_in: Option<Duration>) -> Refusal {
        Refusal {
            reason,
            ready_at: ready_in.map(|d| Instant::now() + d),
            too_large: None,
        }
    }

    fn too_large(limit: u64) -> Refusal {
        Refusal {
            too_large: Some(("tpm", limit, 9000)),
            ..refusal(RefusalReason::TooLarge, None)
        }
    }

    #[test]
    fn a_request_too_large_for_every_key_names_the_largest_limit() {
        let e = Pool::refused_error(Vec::new(), &[too_large(6000), too_large(8000)]);
        assert!(
            matches!(
                e,
                PoolError::TooLarge {
                    window: "tpm",
                    limit: 8000,
                    need: 9000
                }
            ),
            "{e:?}"
        );
    }

    #[test]
    fn otherwise_no_capacity_until_the_earliest_key_expects_room() {
        let refused = [
            too_large(6000),
            refusal(RefusalReason::Busy, None),
            refusal(RefusalReason::DayExhausted, Some(Duration::from_secs(3600))),
            refusal(RefusalReason::CoolingDown, Some(Duration::from_secs(60))),
        ];
        let PoolError::NoCapacity { retry_after, .. } = Pool::refused_error(Vec::new(), &refused)
        else {
            panic!("no capacity expected")
        };
        let wait = retry_after.expect("a key expects room");
        assert!(
            wait <= Duration::from_secs(60) && wait > Duration::from_secs(30),
            "the cool-down's wait, not the day's: {wait:?}"
        );
    }

    #[test]
    fn no_key_expecting_room_gives_no_retry_after() {
        for refused in [
            vec![],
            vec![refusal(RefusalReason::Invalid, None)],
            vec![refusal(RefusalReason::QueueFull, None), too_large(6000)],
        ] {
            let e = Pool::refused_error(Vec::new(), &refused);
            assert!(
                matches!(
                    e,
                    PoolError::NoCapacity {
                        retry_after: None,
                        ..
                    }
                ),
                "{refused:?}: {e:?}"
            );
        }
    }

    #[test]
    fn refusals_are_named_in_the_trail_as_in_the_status() {
        let name = |reason| refusal_name(&refusal(reason, None));
        assert_eq!(
            name(RefusalReason::NotBeforeDeadline),
            "not_before_deadline"
        );
        assert_eq!(name(RefusalReason::CircuitOpen), "circuit_open");
        assert_eq!(name(RefusalReason::TooLarge), "too_large");
    }
}
