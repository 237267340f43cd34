//! `GpuNode`: one actor per local inference node (vLLM, TGI, llama.cpp `llama-server`) that speaks the
//! OpenAI chat-completions format; it owns the node's health (periodic probe, circuit breaker) and figures.
//!
//! The actor publishes what it knows in a [`NodeShared`] that the GPU pool (`gpu_pool/`) reads without a
//! message round trip; the pool admits requests into the same `NodeShared` with an atomic compare-and-swap
//! on `in_flight`, makes the HTTP call in the caller's task with the helpers below, and reports each
//! outcome back here as a message.
//!
//! Health: `Unknown` until the first probe answers. The probe (`GET {url}/health`, or `GET {url}/v1/models`
//! when `/health` is 404/405) runs every `probe_interval`; a 2xx means `Up`, anything else `Down`.
//! `breaker_failures` consecutive request failures (connect error, 5xx, timeout, malformed answer) take the
//! node `Down` for at least `breaker_cooldown`; after that the next good probe brings it back on probation,
//! where a single failure takes it down again.

use std::sync::atomic::{AtomicU32, AtomicU8, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use serde::Serialize;

use crate::clock::Clock;
use crate::providers::{
    openai, ChatRequest, ChatResponse, ChunkStream, ProviderError, Target, WireFormat, WithoutUrl,
};
use crate::secret::Secret;

/// One local inference node as the operator configured it. `Debug` never shows the API key.
#[derive(Debug, Clone)]
pub struct GpuNodeSpec {
    /// Name shown in logs and status pages (`gpu-a`).
    pub name: String,
    /// Base URL without `/v1` (`http://10.0.0.5:8000`).
    pub url: String,
    /// The model the node serves; sent as `model` on every request (a request's own model override is for
    /// cloud providers and is not passed to a node).
    pub model: String,
    /// Most requests in flight on the node at once; the pool never exceeds it.
    pub max_concurrency: u32,
    /// Bearer token when the server was started with one (`vllm serve --api-key`, `llama-server --api-key`).
    pub api_key: Option<Secret>,
    /// Higher is preferred between nodes with the same number of requests in flight.
    pub priority: i32,
}

impl GpuNodeSpec {
    /// The base URL without a trailing slash.
    pub fn base_url(&self) -> &str {
        self.url.trim_end_matches('/')
    }

    /// The target of the OpenAI format: `{url}/v1`, the node's model, its key (or none).
    fn target(&self, timeout: Duration) -> Target {
        Target {
            base_url: format!("{}/v1", self.base_url()),
            model: self.model.clone(),
            secret: self.api_key.clone().unwrap_or_default(),
            account_id: None,
            api_version: None,
            timeout,
        }
    }

    fn get(
        &self,
        http: &reqwest::Client,
        path: &str,
        timeout: Duration,
    ) -> reqwest::RequestBuilder {
        let rb = http
            .get(format!("{}{path}", self.base_url()))
            .timeout(timeout);
        match self.api_key.as_ref().filter(|k| !k.is_empty()) {
            Some(key) => rb.bearer_auth(key.expose()),
            None => rb,
        }
    }
}

/// The OpenAI format as local servers speak it: the node's model, a JSON schema for constrained decoding.
const WIRE: &dyn WireFormat = &openai::LOCAL;

/// Sends `req` to the node and returns the whole answer (`timeout` bounds the whole call).
pub async fn complete(
    http: &reqwest::Client,
    spec: &GpuNodeSpec,
    req: &ChatRequest,
    timeout: Duration,
) -> Result<ChatResponse, ProviderError> {
    let target = spec.target(timeout);
    if let Some(up) = crate::inproc::route(&target.base_url)? {
        return up.complete(&target, req).await;
    }
    WIRE.complete(http, &target, req).await
}

/// Opens a streamed answer from the node (`timeout` bounds the time to the response head only).
pub async fn open_stream(
    http: &reqwest::Client,
    spec: &GpuNodeSpec,
    req: &ChatRequest,
    timeout: Duration,
) -> Result<ChunkStream, ProviderError> {
    let target = spec.target(timeout);
    if let Some(up) = crate::inproc::route(&target.base_url)? {
        return up.stream(&target, req).await;
    }
    WIRE.stream(http, &target, req).await
}

/// One health probe: `GET /health`, falling back to `GET /v1/models` when the server has no `/health`
/// (404 or 405). `Ok` on a 2xx; otherwise why not, with the key scrubbed out.
pub async fn probe(
    http: &reqwest::Client,
    spec: &GpuNodeSpec,
    timeout: Duration,
) -> Result<(), String> {
    if let Some(up) = crate::inproc::route(&spec.url).map_err(|e| e.to_string())? {
        return up.probe().await;
    }
    let describe = |e: reqwest::Error| {
        let secret = spec.api_key.clone().unwrap_or_default();
        if e.is_timeout() {
            "timed out".to_string()
        } else {
            secret.scrub(&e.without_url_string())
        }
    };
    let resp = spec
        .get(http, "/health", timeout)
        .send()
        .await
        .map_err(describe)?;
    let status = resp.status();
    if status.is_success() {
        return Ok(());
    }
    if status.as_u16() != 404 && status.as_u16() != 405 {
        return Err(format!("/health answered HTTP {}", status.as_u16()));
    }
    let resp = spec
        .get(http, "/v1/models", timeout)
        .send()
        .await
        .map_err(describe)?;
    let status = resp.status();
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("/v1/models answered HTTP {}", status.as_u16()))
    }
}

/// A node's health.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeState {
    /// No probe has answered yet; the pool may use the node meanwhile.
    Unknown,
    /// The last probe succeeded and the breaker is closed.
    Up,
    /// The probe failed or the breaker is open: no new requests.
    Down,
}

impl NodeState {
    fn to_u8(self) -> u8 {
        match self {
            NodeState::Unknown => 0,
            NodeState::Up => 1,
            NodeState::Down => 2,
        }
    }

    fn from_u8(v: u8) -> Self {
        match v {
            1 => NodeState::Up,
            2 => NodeState::Down,
            _ => NodeState::Unknown,
        }
    }

    /// Whether the pool may send new requests (`Up`, or `Unknown` before the first probe answered).
    pub fn is_usable(self) -> bool {
        matches!(self, NodeState::Up | NodeState::Unknown)
    }
}

/// A node's figures, written by its actor.
#[derive(Debug, Clone, Default, Serialize)]
pub struct NodeFigures {
    /// Why the node is in its state (a probe failure, the breaker), when it is not plainly up.
    pub reason: Option<String>,
    /// Requests that ended on the node (answered, failed or cancelled).
    pub requests: u64,
    /// Requests that failed on the node.
    pub errors: u64,
    /// Latency of the last answered request, in milliseconds (whole request, stream included).
    pub last_latency_ms: Option<f64>,
    /// Moving average of that latency.
    pub avg_latency_ms: Option<f64>,
    /// Moving average of completion tokens per second of generation.
    pub tokens_per_s: Option<f64>,
}

/// What the pool and the node actor share: admission counters (changed by the pool) and the published
/// state and figures (changed by the node actor). Survives restarts of the node actor.
pub struct NodeShared {
    in_flight: AtomicU32,
    queued: AtomicU32,
    state: AtomicU8,
    figures: RwLock<NodeFigures>,
    actor: RwLock<Option<ActorRef<GpuNodeMsg>>>,
}

impl Default for NodeShared {
    fn default() -> Self {
        Self {
            in_flight: AtomicU32::new(0),
            queued: AtomicU32::new(0),
            state: AtomicU8::new(NodeState::Unknown.to_u8()),
            figures: RwLock::new(NodeFigures::default()),
            actor: RwLock::new(None),
        }
    }
}

impl NodeShared {
    /// The published health.
    pub fn state(&self) -> NodeState {
        NodeState::from_u8(self.state.load(Ordering::Acquire))
    }

    /// Requests on the node now.
    pub fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::Acquire)
    }

    /// Requests waiting in the pool's queue that would go to this node first.
    pub fn queued(&self) -> u32 {
        self.queued.load(Ordering::Acquire)
    }

    /// A copy of the figures.
    pub fn figures(&self) -> NodeFigures {
        self.read_figures().clone()
    }

    /// Takes one slot if fewer than `max` are in use, in one atomic step.
    pub(crate) fn try_acquire(&self, max: u32) -> bool {
        self.in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .is_ok()
    }

    /// Gives a slot back.
    pub(crate) fn release(&self) {
        let _ = self
            .in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
    }

    /// Counts a waiter attributed to this node.
    pub(crate) fn enter_queue(&self) {
        self.queued.fetch_add(1, Ordering::AcqRel);
    }

    /// Uncounts a waiter.
    pub(crate) fn leave_queue(&self) {
        let _ = self
            .queued
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
    }

    /// Reports how a request ended: counted in the node's figures at once (before the caller sees
    /// the answer's end, so the status agrees with what callers saw), then sent to the node's actor
    /// for its health (dropped if the actor is restarting).
    pub(crate) fn report(&self, outcome: RequestOutcome) {
        self.count(&outcome);
        let actor = self.actor.read().unwrap_or_else(|p| p.into_inner()).clone();
        if let Some(actor) = actor {
            let _ = actor.cast(GpuNodeMsg::Outcome(outcome));
        }
    }

    fn count(&self, outcome: &RequestOutcome) {
        let mut f = self.write_figures();
        f.requests += 1;
        match outcome {
            RequestOutcome::Ok {
                latency,
                completion_tokens,
                generation,
            } => {
                let ms = latency.as_secs_f64() * 1000.0;
                f.last_latency_ms = Some(ms);
                f.avg_latency_ms = Some(ewma(f.avg_latency_ms, ms));
                let secs = generation.as_secs_f64();
                if let Some(tokens) = completion_tokens.filter(|t| *t > 0) {
                    if secs > 0.001 {
                        f.tokens_per_s = Some(ewma(f.tokens_per_s, tokens as f64 / secs));
                    }
                }
            }
            RequestOutcome::Failed { .. } => f.errors += 1,
            RequestOutcome::Cancelled => {}
        }
    }

    /// The node's current actor, if it runs.
    pub fn actor(&self) -> Option<ActorRef<GpuNodeMsg>> {
        self.actor.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Marks the node down from outside its actor (the actor stopped for good).
    pub(crate) fn mark_down(&self, reason: String) {
        self.write_figures().reason = Some(reason);
        self.state.store(NodeState::Down.to_u8(), Ordering::Release);
    }

    fn set_actor(&self, actor: ActorRef<GpuNodeMsg>) {
        *self.actor.write().unwrap_or_else(|p| p.into_inner()) = Some(actor);
    }

    fn publish(&self, state: NodeState, reason: Option<String>) {
        self.write_figures().reason = reason;
        self.state.store(state.to_u8(), Ordering::Release);
    }

    fn read_figures(&self) -> RwLockReadGuard<'_, NodeFigures> {
        // A poisoned lock only means a panic elsewhere while holding it; the figures stay usable.
        self.figures.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write_figures(&self) -> RwLockWriteGuard<'_, NodeFigures> {
        self.figures.write().unwrap_or_else(|p| p.into_inner())
    }
}

/// How one request sent to the node ended, reported by the pool.
#[derive(Debug, Clone)]
pub enum RequestOutcome {
    /// The node answered (for a stream: sent its last chunk).
    Ok {
        /// Whole request time.
        latency: Duration,
        /// Completion tokens (from the reported usage, or counted stream chunks).
        completion_tokens: Option<u64>,
        /// Time spent generating them (first to last chunk for a stream; the whole call otherwise).
        generation: Duration,
    },
    /// The request failed on the node.
    Failed {
        /// What went wrong.
        error: ProviderError,
        /// Whether the failure may count toward the breaker (false when the caller's own deadline cut
        /// the call short rather than the node being slow).
        breaker: bool,
    },
    /// The caller went away before the end (dropped future or stream).
    Cancelled,
}

/// Messages of the node actor.
pub enum GpuNodeMsg {
    /// The scheduled probe: probes, then schedules the next one.
    Tick,
    /// Probes now, off schedule, and replies with the resulting state.
    ProbeNow(RpcReplyPort<NodeState>),
    /// How a request ended.
    Outcome(RequestOutcome),
}

/// A state change to publish and log.
#[derive(Debug, Clone, PartialEq)]
struct Transition {
    state: NodeState,
    reason: Option<String>,
    /// What caused it, for the log line.
    cause: &'static str,
}

/// The node's health rules, apart from HTTP and the actor so they can be tested alone.
#[derive(Debug)]
struct Health {
    state: NodeState,
    reason: Option<String>,
    consecutive_failures: u32,
    /// Failed probes in a row: an Up node goes down on the second, so one slow `/health` on a
    /// busy machine does not take a working node out.
    probe_failures: u32,
    /// Set when the breaker trips: no probe brings the node back before this instant.
    hold_until: Option<Instant>,
    /// Back from a tripped breaker: one failure trips it again.
    probation: bool,
    breaker_failures: u32,
    cooldown: Duration,
}

impl Health {
    fn new(state: NodeState, breaker_failures: u32, cooldown: Duration) -> Self {
        Self {
            state,
            reason: None,
            consecutive_failures: 0,
            probe_failures: 0,
            hold_until: None,
            probation: false,
            breaker_failures: breaker_failures.max(1),
            cooldown,
        }
    }

    fn set(
        &mut self,
        state: NodeState,
        reason: Option<String>,
        cause: &'static str,
    ) -> Option<Transition> {
        let changed = state != self.state || reason != self.reason;
        self.state = state;
        self.reason = reason.clone();
        changed.then_some(Transition {
            state,
            reason,
            cause,
        })
    }

    fn on_probe(&mut self, now: Instant, result: Result<(), String>) -> Option<Transition> {
        match result {
            Ok(()) => {
                self.probe_failures = 0;
                if self.hold_until.is_some_and(|t| now < t) {
                    return None;
                }
                if self.hold_until.take().is_some() {
                    self.probation = true;
                    self.consecutive_failures = 0;
                }
                self.set(NodeState::Up, None, "health probe succeeded")
            }
            Err(why) => {
                if self.hold_until.is_some_and(|t| now < t) {
                    // The breaker's reason stays until the cool-down is over.
                    return None;
                }
                self.probe_failures += 1;
                if self.state == NodeState::Up && self.probe_failures < 2 {
                    return None;
                }
                self.set(
                    NodeState::Down,
                    Some(format!("probe: {why}")),
                    "health probe failed",
                )
            }
        }
    }

    fn trip(&mut self, now: Instant, reason: String) -> Option<Transition> {
        self.hold_until = Some(now + self.cooldown);
        self.probation = false;
        self.set(NodeState::Down, Some(reason), "circuit breaker")
    }

    fn on_outcome(&mut self, now: Instant, outcome: &RequestOutcome) -> Option<Transition> {
        match outcome {
            RequestOutcome::Ok { .. } => {
                self.consecutive_failures = 0;
                self.probation = false;
                match self.state {
                    NodeState::Unknown => self.set(NodeState::Up, None, "request answered"),
                    _ => None,
                }
            }
            RequestOutcome::Failed { error, .. }
                if matches!(error, ProviderError::InvalidKey { .. }) =>
            {
                self.trip(now, format!("API key refused: {error}"))
            }
            RequestOutcome::Failed { error, breaker } if *breaker && error.is_breaker_failure() => {
                self.consecutive_failures += 1;
                if self.probation || self.consecutive_failures >= self.breaker_failures {
                    let n = self.consecutive_failures;
                    self.consecutive_failures = 0;
                    self.trip(
                        now,
                        format!("breaker open after {n} consecutive failure(s); last: {error}"),
                    )
                } else {
                    None
                }
            }
            RequestOutcome::Failed { .. } | RequestOutcome::Cancelled => None,
        }
    }
}

/// The node actor. Its dependencies are in [`GpuNodeArgs`]; what it changes is in [`GpuNodeState`] and
/// the shared [`NodeShared`].
pub struct GpuNode;

/// What a node actor starts with.
pub struct GpuNodeArgs {
    /// The node.
    pub spec: Arc<GpuNodeSpec>,
    /// Where state and figures are published (kept by the pool across restarts).
    pub shared: Arc<NodeShared>,
    /// The shared HTTP client.
    pub http: reqwest::Client,
    /// Time between probes.
    pub probe_interval: Duration,
    /// Consecutive failures that open the breaker.
    pub breaker_failures: u32,
    /// Least time a tripped breaker keeps the node down.
    pub breaker_cooldown: Duration,
}

/// The node actor's state.
pub struct GpuNodeState {
    args: GpuNodeArgs,
    health: Health,
}

/// Weight of a new sample in the moving averages.
const EWMA_WEIGHT: f64 = 0.2;

fn ewma(avg: Option<f64>, sample: f64) -> f64 {
    avg.map_or(sample, |a| a + EWMA_WEIGHT * (sample - a))
}

impl GpuNodeState {
    fn probe_timeout(&self) -> Duration {
        self.args
            .probe_interval
            .clamp(Duration::from_millis(500), Duration::from_secs(5))
    }

    async fn probe(&mut self) {
        let result = probe(&self.args.http, &self.args.spec, self.probe_timeout()).await;
        let t = self.health.on_probe(Clock::now(), result);
        self.apply(t);
    }

    fn on_outcome(&mut self, outcome: RequestOutcome) {
        // The figures were counted by `NodeShared::report`; the actor keeps the health.
        let t = self.health.on_outcome(Clock::now(), &outcome);
        self.apply(t);
    }

    /// Publishes a state change and logs it (name and reason only; never the key).
    fn apply(&self, t: Option<Transition>) {
        let Some(t) = t else {
            return;
        };
        let name = &self.args.spec.name;
        let previous = self.args.shared.state();
        let reason = t.reason.clone().unwrap_or_else(|| t.cause.to_string());
        self.args.shared.publish(t.state, t.reason);
        if previous == t.state {
            return;
        }
        match t.state {
            NodeState::Up => tracing::info!(node = %name, reason = %reason, "gpu node up"),
            NodeState::Down => {
                tracing::warn!(node = %name, reason = %reason, cause = t.cause, "gpu node down")
            }
            NodeState::Unknown => {}
        }
    }
}

#[ractor::async_trait]
impl Actor for GpuNode {
    type Msg = GpuNodeMsg;
    type State = GpuNodeState;
    type Arguments = GpuNodeArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<GpuNodeMsg>,
        args: GpuNodeArgs,
    ) -> Result<GpuNodeState, ActorProcessingErr> {
        args.shared.set_actor(myself.clone());
        // A restarted actor carries on from the published state; the first probe runs at once.
        let health = Health::new(
            args.shared.state(),
            args.breaker_failures,
            args.breaker_cooldown,
        );
        myself.cast(GpuNodeMsg::Tick)?;
        Ok(GpuNodeState { args, health })
    }

    async fn handle(
        &self,
        myself: ActorRef<GpuNodeMsg>,
        msg: GpuNodeMsg,
        state: &mut GpuNodeState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            GpuNodeMsg::Tick => {
                state.probe().await;
                myself.send_after(state.args.probe_interval, || GpuNodeMsg::Tick);
            }
            GpuNodeMsg::ProbeNow(reply) => {
                state.probe().await;
                let _ = reply.send(state.health.state);
            }
            GpuNodeMsg::Outcome(outcome) => state.on_outcome(outcome),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server_error() -> RequestOutcome {
        RequestOutcome::Failed {
            error: ProviderError::Server { status: 500 },
            breaker: true,
        }
    }

    fn ok() -> RequestOutcome {
        RequestOutcome::Ok {
            latency: Duration::from_millis(10),
            completion_tokens: Some(5),
            generation: Duration::from_millis(10),
        }
    }

    #[test]
    fn breaker_trips_after_n_consecutive_failures() {
        let now = Instant::now();
        let mut h = Health::new(NodeState::Up, 3, Duration::from_secs(10));
        assert_eq!(h.on_outcome(now, &server_error()), None);
        assert_eq!(h.on_outcome(now, &server_error()), None);
        // A success in between resets the count.
        assert_eq!(h.on_outcome(now, &ok()), None);
        assert_eq!(h.on_outcome(now, &server_error()), None);
        assert_eq!(h.on_outcome(now, &server_error()), None);
        let t = h.on_outcome(now, &server_error());
        assert_eq!(t.map(|t| t.state), Some(NodeState::Down));
        assert!(h
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("3 consecutive")));
    }

    #[test]
    fn requests_own_faults_and_cancellations_do_not_count() {
        let now = Instant::now();
        let mut h = Health::new(NodeState::Up, 1, Duration::from_secs(10));
        let bad = RequestOutcome::Failed {
            error: ProviderError::BadRequest {
                status: 400,
                message: "too long".into(),
            },
            breaker: true,
        };
        let limited = RequestOutcome::Failed {
            error: ProviderError::RateLimited {
                retry_after: None,
                day_exhausted: false,
            },
            breaker: true,
        };
        let cut = RequestOutcome::Failed {
            error: ProviderError::Timeout,
            breaker: false,
        };
        for o in [bad, limited, cut, RequestOutcome::Cancelled] {
            assert_eq!(h.on_outcome(now, &o), None);
        }
        assert_eq!(h.state, NodeState::Up);
    }

    #[test]
    fn refused_key_takes_the_node_down_at_once() {
        let now = Instant::now();
        let mut h = Health::new(NodeState::Up, 5, Duration::from_secs(10));
        let refused = RequestOutcome::Failed {
            error: ProviderError::InvalidKey { status: 401 },
            breaker: true,
        };
        assert_eq!(
            h.on_outcome(now, &refused).map(|t| t.state),
            Some(NodeState::Down)
        );
    }

    #[test]
    fn probe_brings_a_tripped_node_back_only_after_the_cooldown_and_on_probation() {
        let now = Instant::now();
        let cooldown = Duration::from_secs(10);
        let mut h = Health::new(NodeState::Up, 2, cooldown);
        h.on_outcome(now, &server_error());
        h.on_outcome(now, &server_error());
        assert_eq!(h.state, NodeState::Down);
        // During the cool-down a good probe changes nothing.
        assert_eq!(h.on_probe(now + Duration::from_secs(1), Ok(())), None);
        assert_eq!(h.state, NodeState::Down);
        // After it, the probe brings the node back.
        let later = now + cooldown + Duration::from_millis(1);
        let t = h.on_probe(later, Ok(()));
        assert_eq!(t.map(|t| t.state), Some(NodeState::Up));
        // On probation one failure is enough.
        let t = h.on_outcome(later, &server_error());
        assert_eq!(t.map(|t| t.state), Some(NodeState::Down));
    }

    #[test]
    fn probe_results_move_unknown_and_up_and_down() {
        let now = Instant::now();
        let mut h = Health::new(NodeState::Unknown, 3, Duration::from_secs(10));
        let t = h.on_probe(now, Err("/health answered HTTP 503".into()));
        assert_eq!(t.map(|t| t.state), Some(NodeState::Down));
        assert_eq!(
            h.reason.as_deref(),
            Some("probe: /health answered HTTP 503")
        );
        let t = h.on_probe(now, Ok(()));
        assert_eq!(t.map(|t| t.state), Some(NodeState::Up));
        assert_eq!(h.reason, None);
        // No probation after a probe failure: one request failure does not trip.
        assert_eq!(h.on_outcome(now, &server_error()), None);
        // A request answered before the first probe makes an unknown node up.
        let mut h = Health::new(NodeState::Unknown, 3, Duration::from_secs(10));
        assert_eq!(
            h.on_outcome(now, &ok()).map(|t| t.state),
            Some(NodeState::Up)
        );
    }

    #[test]
    fn admission_never_exceeds_max() {
        let s = NodeShared::default();
        assert!(s.try_acquire(2));
        assert!(s.try_acquire(2));
        assert!(!s.try_acquire(2));
        s.release();
        assert!(s.try_acquire(2));
        s.release();
        s.release();
        s.release();
        assert_eq!(s.in_flight(), 0);
    }

    #[test]
    fn spec_debug_hides_the_key() {
        let spec = GpuNodeSpec {
            name: "a".into(),
            url: "http://127.0.0.1:1/".into(),
            model: "m".into(),
            max_concurrency: 1,
            api_key: Some(Secret::new("sk-very-secret-123")),
            priority: 0,
        };
        assert!(!format!("{spec:?}").contains("very-secret"));
        assert_eq!(spec.base_url(), "http://127.0.0.1:1");
    }
}
