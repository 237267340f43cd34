//! `GpuPool`: the operator's local inference nodes as one pool that the provider pool tries before cloud
//! keys; the actor owns and restarts one `GpuNode` per node, the cloneable handle dispatches requests.
//!
//! Dispatch happens in the caller's task, with no message round trip: among usable nodes (`Up`, or
//! `Unknown` before the first probe) below their `max_concurrency`, the one with the fewest requests in
//! flight wins, then the highest `priority`, then the first configured. A slot is taken with a
//! compare-and-swap on the node's `in_flight`, so no node ever goes above its limit, and given back by a
//! guard's `Drop`, so a dropped future or stream frees it too. When every usable node is full the request
//! waits in a bounded queue (woken when a slot frees) until its deadline: then, or when the queue is full,
//! [`GpuError::Busy`]; with no usable node, [`GpuError::NoNode`]. The caller then falls back to cloud keys.
//!
//! A failed try (connect error, 5xx, 429, timeout, malformed answer) is reported to its node's breaker
//! and retried on another node within the deadline, each node at most once; a 4xx other than 401/403/429
//! is the request's own fault and comes back as [`GpuError::Refused`] without retry. Session affinity
//! keeps an interview on the node that served it while that node is up and has room (prefix caches).

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::{Stream, StreamExt};
use ractor::rpc::CallResult;
use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use serde::Serialize;
use tokio::sync::Notify;

use crate::clock::Clock;
use crate::gpu_node::{
    self, GpuNode, GpuNodeArgs, GpuNodeMsg, GpuNodeSpec, NodeShared, NodeState, RequestOutcome,
};
use crate::providers::{ChatRequest, ChatResponse, ChunkStream, ProviderError, StreamChunk};
use crate::restart::{stopped_child, Restarts};

/// Settings of the pool as a whole.
#[derive(Debug, Clone)]
pub struct GpuPoolConfig {
    /// Time between health probes of each node.
    pub probe_interval: Duration,
    /// Requests that may wait for a free slot across the pool; more are refused with `Busy` at once.
    pub queue_bound: usize,
    /// Time allowed for one try on one node (to the response head for a stream, and between its chunks).
    pub request_timeout: Duration,
    /// Consecutive failed requests that take a node out.
    pub breaker_failures: u32,
    /// Least time a node taken out by its breaker stays out before a good probe brings it back.
    pub breaker_cooldown: Duration,
}

impl Default for GpuPoolConfig {
    fn default() -> Self {
        Self {
            probe_interval: Duration::from_secs(5),
            queue_bound: 256,
            request_timeout: Duration::from_secs(120),
            breaker_failures: 3,
            breaker_cooldown: Duration::from_secs(15),
        }
    }
}

impl GpuPoolConfig {
    /// Checks the settings; the message names the field.
    pub fn validate(&self) -> Result<(), GpuError> {
        if self.probe_interval.is_zero() {
            return Err(GpuError::Config("probe_interval: must be > 0".into()));
        }
        if self.request_timeout.is_zero() {
            return Err(GpuError::Config("request_timeout: must be > 0".into()));
        }
        if self.breaker_failures == 0 {
            return Err(GpuError::Config("breaker_failures: must be > 0".into()));
        }
        Ok(())
    }
}

/// Why the GPU pool did not answer a request.
#[derive(Debug, Clone, thiserror::Error)]
pub enum GpuError {
    /// No node is usable (none configured, or all down).
    #[error("no healthy GPU node")]
    NoNode,
    /// Every usable node is at its `max_concurrency` and the queue is full, or the deadline passed while
    /// waiting for a slot.
    #[error("every GPU node is busy")]
    Busy,
    /// A node refused the request itself (4xx other than 401/403/429); another node would refuse it too.
    #[error("GPU node {node} refused the request: {error}")]
    Refused {
        /// The node that refused.
        node: String,
        /// Its answer, classified.
        error: ProviderError,
    },
    /// Every node tried failed, or the deadline passed after a failure.
    #[error("GPU nodes failed ({}); last: {last}", tried.join(", "))]
    Failed {
        /// The nodes tried, in order.
        tried: Vec<String>,
        /// The last failure.
        last: ProviderError,
    },
    /// The pool's configuration is invalid.
    #[error("invalid GPU pool configuration: {0}")]
    Config(String),
    /// The pool actor could not start.
    #[error("GPU pool could not start: {0}")]
    Start(String),
}

/// A completed call.
#[derive(Debug, Clone)]
pub struct GpuCompletion {
    /// The answer.
    pub response: ChatResponse,
    /// The node that answered.
    pub node: String,
    /// Nodes that failed before it, in order.
    pub failed: Vec<String>,
}

/// A streamed call: the node and the chunks as the node sends them. The node's slot is given back when
/// the stream ends, fails, or is dropped.
pub struct GpuStream {
    /// The node that answers.
    pub node: String,
    /// Nodes that failed before the stream opened.
    pub failed: Vec<String>,
    /// The chunks; the stream ends after `StreamChunk::Done` or an error.
    pub stream: ChunkStream,
}

impl Stream for GpuStream {
    type Item = Result<StreamChunk, ProviderError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.stream.poll_next_unpin(cx)
    }
}

/// One node as `/api/system_status` shows it (no key in it).
#[derive(Debug, Clone, Serialize)]
pub struct NodeStatus {
    /// Node name.
    pub name: String,
    /// Base URL.
    pub url: String,
    /// Model served.
    pub model: String,
    /// Health.
    pub state: NodeState,
    /// Why the node is in its state, when it is not plainly up.
    pub reason: Option<String>,
    /// Requests on the node now.
    pub in_flight: u32,
    /// Requests waiting that would go to this node first.
    pub queued: u32,
    /// Most requests at once.
    pub max_concurrency: u32,
    /// Preference between equally loaded nodes (higher first).
    pub priority: i32,
    /// Requests that ended on the node.
    pub requests: u64,
    /// Requests that failed on it.
    pub errors: u64,
    /// Moving average of request latency, milliseconds.
    pub latency_ms: Option<f64>,
    /// Latency of the last answered request, milliseconds.
    pub last_latency_ms: Option<f64>,
    /// Moving average of completion tokens per second of generation.
    pub tokens_per_s: Option<f64>,
}

/// Dispatch counters since start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct GpuStats {
    /// Requests that went to the node their interview was on.
    pub affinity_hits: u64,
    /// Requests whose interview moved to another node (its node was down or full).
    pub affinity_moves: u64,
    /// Tries sent to a node (a failed-over request counts once per node).
    pub dispatched: u64,
    /// Requests that had to wait for a slot.
    pub queued_total: u64,
    /// Requests refused with `Busy` or `NoNode`.
    pub rejected: u64,
    /// Requests waiting now.
    pub waiting: u64,
    /// Interviews remembered for affinity now.
    pub affinity_entries: u64,
}

/// Affinity entries kept at most (two generations of half each, the older dropped when the newer fills).
const AFFINITY_CAP: usize = 100_000;
/// Affinity entries unused for longer are ignored.
const AFFINITY_TTL: Duration = Duration::from_secs(3600);
/// A waiter re-checks this often even without a wake-up (a node coming back up does not wake anyone).
const QUEUE_POLL: Duration = Duration::from_millis(50);
/// Compare-and-swap races tolerated in one admission attempt before treating the pool as busy.
const CAS_TRIES: usize = 16;

/// A node as dispatch sees it at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct NodeView {
    state: NodeState,
    in_flight: u32,
    queued: u32,
    max_concurrency: u32,
    priority: i32,
    /// Already tried by this request.
    tried: bool,
}

impl NodeView {
    fn usable(&self) -> bool {
        !self.tried && self.state.is_usable()
    }
}

/// What dispatch decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Choice {
    /// Send to this node.
    Node(usize),
    /// Usable nodes exist but all are full.
    Busy,
    /// No usable node.
    NoNode,
}

/// Picks a node: the interview's node (`sticky`) while it is up and has room; otherwise the usable node
/// with room that has the fewest requests in flight, then the highest priority, then the lowest index.
fn choose(nodes: &[NodeView], sticky: Option<usize>) -> Choice {
    if let Some(i) = sticky {
        if nodes.get(i).is_some_and(|v| {
            !v.tried && v.state == NodeState::Up && v.in_flight < v.max_concurrency
        }) {
            return Choice::Node(i);
        }
    }
    let mut usable = false;
    let mut best: Option<(usize, NodeView)> = None;
    for (i, v) in nodes.iter().enumerate() {
        if !v.usable() {
            continue;
        }
        usable = true;
        if v.in_flight >= v.max_concurrency {
            continue;
        }
        let better = best.is_none_or(|(_, b)| {
            v.in_flight < b.in_flight || (v.in_flight == b.in_flight && v.priority > b.priority)
        });
        if better {
            best = Some((i, *v));
        }
    }
    match best {
        Some((i, _)) => Choice::Node(i),
        None if usable => Choice::Busy,
        None => Choice::NoNode,
    }
}

/// The node a waiting request is counted against in status: its interview's node when usable, else
/// the usable node with the least work (in flight plus queued), then the highest priority.
fn queue_target(nodes: &[NodeView], sticky: Option<usize>) -> Option<usize> {
    if let Some(i) = sticky.filter(|i| nodes.get(*i).is_some_and(NodeView::usable)) {
        return Some(i);
    }
    nodes
        .iter()
        .enumerate()
        .filter(|(_, v)| v.usable())
        .min_by(|(_, a), (_, b)| {
            (a.in_flight + a.queued)
                .cmp(&(b.in_flight + b.queued))
                .then(b.priority.cmp(&a.priority))
        })
        .map(|(i, _)| i)
}

/// Interview → node index, bounded: two generations, the older dropped when the newer is full, so the
/// map holds at most [`AFFINITY_CAP`] entries and the ones in use survive.
struct AffinityMap {
    current: HashMap<String, (usize, Instant)>,
    previous: HashMap<String, (usize, Instant)>,
    generation_cap: usize,
    ttl: Duration,
}

impl AffinityMap {
    fn new(cap: usize, ttl: Duration) -> Self {
        Self {
            current: HashMap::new(),
            previous: HashMap::new(),
            generation_cap: (cap / 2).max(1),
            ttl,
        }
    }

    fn get(&mut self, key: &str, now: Instant) -> Option<usize> {
        let ttl = self.ttl;
        let fresh = |at: Instant| now.saturating_duration_since(at) < ttl;
        if let Some(&(node, at)) = self.current.get(key) {
            return fresh(at).then_some(node);
        }
        let (node, at) = self.previous.remove(key)?;
        if !fresh(at) {
            return None;
        }
        self.set(key, node, at);
        Some(node)
    }

    fn set(&mut self, key: &str, node: usize, now: Instant) {
        if !self.current.contains_key(key) && self.current.len() >= self.generation_cap {
            self.previous = std::mem::take(&mut self.current);
        }
        self.previous.remove(key);
        self.current.insert(key.to_string(), (node, now));
    }

    fn len(&self) -> usize {
        self.current.len() + self.previous.len()
    }
}

#[derive(Default)]
struct Counters {
    affinity_hits: AtomicU64,
    affinity_moves: AtomicU64,
    dispatched: AtomicU64,
    queued_total: AtomicU64,
    rejected: AtomicU64,
}

struct NodeEntry {
    spec: Arc<GpuNodeSpec>,
    shared: Arc<NodeShared>,
}

struct Inner {
    nodes: Vec<NodeEntry>,
    config: GpuPoolConfig,
    http: reqwest::Client,
    /// Woken (one waiter) each time a slot is given back.
    notify: Arc<Notify>,
    waiting: AtomicUsize,
    affinity: Mutex<AffinityMap>,
    counters: Counters,
    actor: ActorRef<GpuPoolMsg>,
}

impl Inner {
    fn affinity(&self) -> std::sync::MutexGuard<'_, AffinityMap> {
        // A poisoned lock only means a panic elsewhere while holding it; the map stays usable.
        self.affinity.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn views(&self, tried: &[bool]) -> Vec<NodeView> {
        self.nodes
            .iter()
            .enumerate()
            .map(|(i, n)| NodeView {
                state: n.shared.state(),
                in_flight: n.shared.in_flight(),
                queued: n.shared.queued(),
                max_concurrency: n.spec.max_concurrency,
                priority: n.spec.priority,
                tried: tried.get(i).copied().unwrap_or(false),
            })
            .collect()
    }

    /// One admission attempt: choose, then take the slot atomically (choosing again if another caller
    /// took it first).
    fn try_grab(&self, sticky: Option<usize>, tried: &[bool]) -> Choice {
        for _ in 0..CAS_TRIES {
            match choose(&self.views(tried), sticky) {
                Choice::Node(i) => {
                    let n = &self.nodes[i];
                    if n.shared.try_acquire(n.spec.max_concurrency) {
                        return Choice::Node(i);
                    }
                }
                other => return other,
            }
        }
        Choice::Busy
    }
}

/// A held slot on a node; dropping it gives the slot back (and reports a cancellation when the request
/// did not report an outcome).
struct SlotGuard {
    index: usize,
    node: Arc<NodeShared>,
    notify: Arc<Notify>,
    reported: bool,
}

impl SlotGuard {
    fn report(&mut self, outcome: RequestOutcome) {
        self.reported = true;
        self.node.report(outcome);
    }
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        if !self.reported {
            self.node.report(RequestOutcome::Cancelled);
        }
        self.node.release();
        self.notify.notify_one();
    }
}

/// A place in the bounded queue; dropping it leaves the queue.
struct QueuePlace<'a> {
    inner: &'a Inner,
    node: Option<usize>,
}

impl<'a> QueuePlace<'a> {
    fn enter(inner: &'a Inner, node: Option<usize>) -> Option<Self> {
        let bound = inner.config.queue_bound;
        inner
            .waiting
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |w| {
                (w < bound).then_some(w + 1)
            })
            .ok()?;
        if let Some(n) = node.and_then(|i| inner.nodes.get(i)) {
            n.shared.enter_queue();
        }
        inner.counters.queued_total.fetch_add(1, Ordering::Relaxed);
        Some(Self { inner, node })
    }
}

impl Drop for QueuePlace<'_> {
    fn drop(&mut self) {
        self.inner.waiting.fetch_sub(1, Ordering::AcqRel);
        if let Some(n) = self.node.and_then(|i| self.inner.nodes.get(i)) {
            n.shared.leave_queue();
        }
    }
}

/// What one request has tried so far.
struct Tries {
    tried: Vec<bool>,
    failed: Vec<String>,
    last: Option<ProviderError>,
}

/// The handle to the GPU pool: cheap to clone, used from any task.
#[derive(Clone)]
pub struct GpuPool {
    inner: Arc<Inner>,
}

impl GpuPool {
    /// Starts the pool actor (linked to `supervisor` when given) and its node actors; returns the handle
    /// and the pool actor's join handle. An empty `nodes` list gives a pool that answers `NoNode`.
    pub async fn start(
        nodes: Vec<GpuNodeSpec>,
        config: GpuPoolConfig,
        http: reqwest::Client,
        supervisor: Option<ActorCell>,
    ) -> Result<(GpuPool, tokio::task::JoinHandle<()>), GpuError> {
        config.validate()?;
        validate_nodes(&nodes)?;
        let entries: Vec<NodeEntry> = nodes
            .into_iter()
            .map(|spec| NodeEntry {
                spec: Arc::new(spec),
                shared: Arc::new(NodeShared::default()),
            })
            .collect();
        let args = GpuPoolArgs {
            nodes: entries
                .iter()
                .map(|e| (e.spec.clone(), e.shared.clone()))
                .collect(),
            http: http.clone(),
            config: config.clone(),
        };
        let spawned = match supervisor {
            Some(sup) => Actor::spawn_linked(None, GpuPoolActor, args, sup).await,
            None => Actor::spawn(None, GpuPoolActor, args).await,
        };
        let (actor, join) = spawned.map_err(|e| GpuError::Start(e.to_string()))?;
        let inner = Inner {
            nodes: entries,
            config,
            http,
            notify: Arc::new(Notify::new()),
            waiting: AtomicUsize::new(0),
            affinity: Mutex::new(AffinityMap::new(AFFINITY_CAP, AFFINITY_TTL)),
            counters: Counters::default(),
            actor,
        };
        Ok((
            GpuPool {
                inner: Arc::new(inner),
            },
            join,
        ))
    }

    /// The pool actor (for supervision and shutdown: stopping it stops the node actors).
    pub fn actor(&self) -> &ActorRef<GpuPoolMsg> {
        &self.inner.actor
    }

    /// Whether any node is configured.
    pub fn has_nodes(&self) -> bool {
        !self.inner.nodes.is_empty()
    }

    /// Whether any node may take work now: `Up`, or `Unknown` before its first probe answered.
    pub fn any_up(&self) -> bool {
        self.inner
            .nodes
            .iter()
            .any(|n| n.shared.state().is_usable())
    }

    /// Every node's status (no key in it).
    pub fn status(&self) -> Vec<NodeStatus> {
        self.inner
            .nodes
            .iter()
            .map(|n| {
                let f = n.shared.figures();
                NodeStatus {
                    name: n.spec.name.clone(),
                    url: n.spec.base_url().to_string(),
                    model: n.spec.model.clone(),
                    state: n.shared.state(),
                    reason: f.reason,
                    in_flight: n.shared.in_flight(),
                    queued: n.shared.queued(),
                    max_concurrency: n.spec.max_concurrency,
                    priority: n.spec.priority,
                    requests: f.requests,
                    errors: f.errors,
                    latency_ms: f.avg_latency_ms,
                    last_latency_ms: f.last_latency_ms,
                    tokens_per_s: f.tokens_per_s,
                }
            })
            .collect()
    }

    /// Dispatch counters.
    pub fn stats(&self) -> GpuStats {
        let c = &self.inner.counters;
        GpuStats {
            affinity_hits: c.affinity_hits.load(Ordering::Relaxed),
            affinity_moves: c.affinity_moves.load(Ordering::Relaxed),
            dispatched: c.dispatched.load(Ordering::Relaxed),
            queued_total: c.queued_total.load(Ordering::Relaxed),
            rejected: c.rejected.load(Ordering::Relaxed),
            waiting: self.inner.waiting.load(Ordering::Relaxed) as u64,
            affinity_entries: self.inner.affinity().len() as u64,
        }
    }

    /// Probes every node now (off schedule) and returns the statuses afterwards.
    pub async fn probe_now(&self) -> Vec<NodeStatus> {
        let per_node = Duration::from_secs(6);
        let budget = per_node * (self.inner.nodes.len() as u32 + 1);
        match self
            .inner
            .actor
            .call(GpuPoolMsg::ProbeAll, Some(budget))
            .await
        {
            Ok(CallResult::Success(_)) => {}
            Ok(CallResult::Timeout) => tracing::warn!("gpu pool probe timed out"),
            Ok(CallResult::SenderError) | Err(_) => tracing::warn!("gpu pool actor stopped"),
        }
        self.status()
    }

    /// Sends `req` to a node and returns the whole answer, failing over to other nodes within
    /// `deadline` (waiting for a slot included). `affinity` (an interview id) keeps an interview on one node.
    pub async fn complete(
        &self,
        req: &ChatRequest,
        deadline: Duration,
        affinity: Option<&str>,
    ) -> Result<GpuCompletion, GpuError> {
        let deadline = Clock::now() + deadline;
        let mut tries = self.tries();
        loop {
            let mut slot = self.next_slot(deadline, affinity, &mut tries).await?;
            let spec = self.inner.nodes[slot.index].spec.clone();
            let (timeout, cut) = self.try_timeout(deadline);
            let t0 = Clock::now();
            match gpu_node::complete(&self.inner.http, &spec, req, timeout).await {
                Ok(response) => {
                    let latency = Clock::since(t0);
                    slot.report(RequestOutcome::Ok {
                        latency,
                        completion_tokens: response.usage.map(|u| u.completion_tokens),
                        generation: latency,
                    });
                    return Ok(GpuCompletion {
                        response,
                        node: spec.name.clone(),
                        failed: tries.failed,
                    });
                }
                Err(error) => Self::on_failure(&mut slot, &spec, error, cut, &mut tries)?,
            }
        }
    }

    /// Opens a streamed answer on a node, failing over to other nodes until one opens within `deadline`;
    /// chunks then pass through as the node sends them. A failure after the stream opened ends it with
    /// the error (no retry: text was already passed on). A node silent for `request_timeout` mid-stream
    /// ends it with [`ProviderError::Timeout`].
    pub async fn stream(
        &self,
        req: &ChatRequest,
        deadline: Duration,
        affinity: Option<&str>,
    ) -> Result<GpuStream, GpuError> {
        let deadline = Clock::now() + deadline;
        let mut tries = self.tries();
        loop {
            let mut slot = self.next_slot(deadline, affinity, &mut tries).await?;
            let spec = self.inner.nodes[slot.index].spec.clone();
            let (timeout, cut) = self.try_timeout(deadline);
            let t0 = Clock::now();
            match gpu_node::open_stream(&self.inner.http, &spec, req, timeout).await {
                Ok(chunks) => {
                    let idle = self.inner.config.request_timeout;
                    return Ok(GpuStream {
                        node: spec.name.clone(),
                        failed: tries.failed,
                        stream: Box::pin(NodeStream {
                            inner: chunks,
                            slot: Some(slot),
                            idle,
                            sleep: Box::pin(tokio::time::sleep(idle)),
                            t0,
                            first_at: None,
                            deltas: 0,
                            ended: false,
                        }),
                    });
                }
                Err(error) => Self::on_failure(&mut slot, &spec, error, cut, &mut tries)?,
            }
        }
    }

    /// Runs `op` (given the HTTP client, the node and the time allowed for this try) on a node chosen
    /// by the same rules as chat requests, failing over to other nodes within `deadline`. Speech-to-text
    /// and text-to-speech nodes are pools of their own, dispatched through this. Returns the node that
    /// served, the nodes that failed before it, and the answer.
    pub async fn call<T, F, Fut>(
        &self,
        deadline: Duration,
        affinity: Option<&str>,
        op: F,
    ) -> Result<(String, Vec<String>, T), GpuError>
    where
        F: Fn(reqwest::Client, Arc<GpuNodeSpec>, Duration) -> Fut,
        Fut: Future<Output = Result<T, ProviderError>>,
    {
        let deadline = Clock::now() + deadline;
        let mut tries = self.tries();
        loop {
            let mut slot = self.next_slot(deadline, affinity, &mut tries).await?;
            let spec = self.inner.nodes[slot.index].spec.clone();
            let (timeout, cut) = self.try_timeout(deadline);
            let t0 = Clock::now();
            match op(self.inner.http.clone(), spec.clone(), timeout).await {
                Ok(answer) => {
                    let latency = Clock::since(t0);
                    slot.report(RequestOutcome::Ok {
                        latency,
                        completion_tokens: None,
                        generation: latency,
                    });
                    return Ok((spec.name.clone(), tries.failed, answer));
                }
                Err(error) => Self::on_failure(&mut slot, &spec, error, cut, &mut tries)?,
            }
        }
    }

    fn tries(&self) -> Tries {
        Tries {
            tried: vec![false; self.inner.nodes.len()],
            failed: Vec::new(),
            last: None,
        }
    }

    /// Time allowed for the next try, and whether the caller's deadline (rather than the configured
    /// request timeout) is what bounds it.
    fn try_timeout(&self, deadline: Instant) -> (Duration, bool) {
        let left = deadline.saturating_duration_since(Clock::now());
        let configured = self.inner.config.request_timeout;
        (
            configured.min(left).max(Duration::from_millis(1)),
            left < configured,
        )
    }

    /// A slot on a node this request has not tried yet, or the error to return.
    async fn next_slot(
        &self,
        deadline: Instant,
        affinity: Option<&str>,
        tries: &mut Tries,
    ) -> Result<SlotGuard, GpuError> {
        let result = if tries.last.is_some() && Clock::now() >= deadline {
            Err(GpuError::Busy)
        } else {
            self.acquire(deadline, affinity, &tries.tried).await
        };
        match result {
            Ok(slot) => {
                if let Some(t) = tries.tried.get_mut(slot.index) {
                    *t = true;
                }
                Ok(slot)
            }
            Err(e) => match tries.last.take() {
                Some(last) => Err(GpuError::Failed {
                    tried: std::mem::take(&mut tries.failed),
                    last,
                }),
                None => {
                    self.inner.counters.rejected.fetch_add(1, Ordering::Relaxed);
                    Err(e)
                }
            },
        }
    }

    /// Reports a failed try; `Err` when the request must not be retried.
    fn on_failure(
        slot: &mut SlotGuard,
        spec: &GpuNodeSpec,
        error: ProviderError,
        cut: bool,
        tries: &mut Tries,
    ) -> Result<(), GpuError> {
        let breaker = !(cut && error == ProviderError::Timeout);
        slot.report(RequestOutcome::Failed {
            error: error.clone(),
            breaker,
        });
        if let ProviderError::BadRequest { .. } = error {
            tracing::debug!(node = %spec.name, error = %error, "gpu node refused the request");
            return Err(GpuError::Refused {
                node: spec.name.clone(),
                error,
            });
        }
        tracing::warn!(node = %spec.name, error = %error, "gpu request failed; trying another node");
        tries.failed.push(spec.name.clone());
        tries.last = Some(error);
        Ok(())
    }

    /// Admission: a slot on the best node now, or after waiting in the queue until `deadline`.
    async fn acquire(
        &self,
        deadline: Instant,
        affinity: Option<&str>,
        tried: &[bool],
    ) -> Result<SlotGuard, GpuError> {
        let inner = &*self.inner;
        let sticky = affinity.and_then(|k| inner.affinity().get(k, Clock::now()));
        match inner.try_grab(sticky, tried) {
            Choice::Node(i) => return Ok(self.granted(i, affinity, sticky)),
            Choice::NoNode => return Err(GpuError::NoNode),
            Choice::Busy => {}
        }
        if Clock::now() >= deadline {
            return Err(GpuError::Busy);
        }
        let target = queue_target(&inner.views(tried), sticky);
        let Some(_place) = QueuePlace::enter(inner, target) else {
            return Err(GpuError::Busy);
        };
        loop {
            // Registered before checking, so a slot freed between the check and the wait still wakes us.
            let notified = inner.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            match inner.try_grab(sticky, tried) {
                Choice::Node(i) => return Ok(self.granted(i, affinity, sticky)),
                Choice::NoNode => return Err(GpuError::NoNode),
                Choice::Busy => {}
            }
            let left = deadline.saturating_duration_since(Clock::now());
            if left.is_zero() {
                return Err(GpuError::Busy);
            }
            let _ = tokio::time::timeout(left.min(QUEUE_POLL), notified).await;
        }
    }

    /// Books a granted slot: counters and the interview's node.
    fn granted(&self, index: usize, affinity: Option<&str>, sticky: Option<usize>) -> SlotGuard {
        let inner = &*self.inner;
        let c = &inner.counters;
        c.dispatched.fetch_add(1, Ordering::Relaxed);
        if let Some(key) = affinity {
            if sticky == Some(index) {
                c.affinity_hits.fetch_add(1, Ordering::Relaxed);
            } else if sticky.is_some() {
                c.affinity_moves.fetch_add(1, Ordering::Relaxed);
            }
            inner.affinity().set(key, index, Clock::now());
        }
        SlotGuard {
            index,
            node: inner.nodes[index].shared.clone(),
            notify: inner.notify.clone(),
            reported: false,
        }
    }
}

fn validate_nodes(nodes: &[GpuNodeSpec]) -> Result<(), GpuError> {
    let mut seen = std::collections::HashSet::new();
    for n in nodes {
        let bad = |what: &str| GpuError::Config(format!("gpu node `{}`: {what}", n.name));
        if n.name.trim().is_empty() {
            return Err(GpuError::Config("gpu node: name must not be empty".into()));
        }
        if !seen.insert(n.name.as_str()) {
            return Err(bad("name: used by another node"));
        }
        if !(n.url.starts_with("http://")
            || n.url.starts_with("https://")
            || n.url.starts_with(crate::inproc::SCHEME))
        {
            return Err(bad("url: must start with http:// or https://"));
        }
        if n.model.trim().is_empty() {
            return Err(bad("model: must not be empty"));
        }
        if n.max_concurrency == 0 {
            return Err(bad("max_concurrency: must be > 0"));
        }
    }
    Ok(())
}

/// A node's chunks passed through as they come, reporting the outcome to the node when the stream ends
/// and giving the slot back (also when dropped midway).
struct NodeStream {
    inner: ChunkStream,
    slot: Option<SlotGuard>,
    idle: Duration,
    sleep: Pin<Box<tokio::time::Sleep>>,
    t0: Instant,
    first_at: Option<Instant>,
    deltas: u64,
    ended: bool,
}

impl NodeStream {
    fn finish(&mut self, outcome: RequestOutcome) {
        self.ended = true;
        if let Some(mut slot) = self.slot.take() {
            slot.report(outcome);
        }
    }
}

impl Stream for NodeStream {
    type Item = Result<StreamChunk, ProviderError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.ended {
            return Poll::Ready(None);
        }
        match this.inner.poll_next_unpin(cx) {
            Poll::Ready(item) => {
                let now = Clock::now();
                this.sleep
                    .as_mut()
                    .reset(tokio::time::Instant::now() + this.idle);
                match &item {
                    Some(Ok(StreamChunk::Delta(_))) => {
                        this.first_at.get_or_insert(now);
                        this.deltas += 1;
                    }
                    Some(Ok(StreamChunk::Done { usage, .. })) => {
                        let generation = this
                            .first_at
                            .map_or(Duration::ZERO, |f| now.saturating_duration_since(f));
                        let tokens = usage.map_or(this.deltas, |u| u.completion_tokens);
                        let latency = now.saturating_duration_since(this.t0);
                        this.finish(RequestOutcome::Ok {
                            latency,
                            completion_tokens: Some(tokens),
                            generation,
                        });
                    }
                    Some(Err(e)) => {
                        let error = e.clone();
                        this.finish(RequestOutcome::Failed {
                            error,
                            breaker: true,
                        });
                    }
                    // The wrapped stream reports a cut as an error first; a bare end just frees the slot.
                    None => this.ended = true,
                }
                Poll::Ready(item)
            }
            Poll::Pending => {
                if this.sleep.as_mut().poll(cx).is_ready() {
                    this.finish(RequestOutcome::Failed {
                        error: ProviderError::Timeout,
                        breaker: true,
                    });
                    return Poll::Ready(Some(Err(ProviderError::Timeout)));
                }
                Poll::Pending
            }
        }
    }
}

/// Messages of the pool actor.
pub enum GpuPoolMsg {
    /// Probes every node now and replies with their states.
    ProbeAll(RpcReplyPort<Vec<NodeState>>),
}

/// The pool actor: owns the node actors and restarts them. Requests never pass through it.
pub struct GpuPoolActor;

/// What the pool actor starts with (built by [`GpuPool::start`]).
pub struct GpuPoolArgs {
    nodes: Vec<(Arc<GpuNodeSpec>, Arc<NodeShared>)>,
    http: reqwest::Client,
    config: GpuPoolConfig,
}

struct NodeSlot {
    spec: Arc<GpuNodeSpec>,
    shared: Arc<NodeShared>,
    actor: ActorRef<GpuNodeMsg>,
    restarts: Restarts,
}

/// The pool actor's state: one slot per node.
pub struct GpuPoolState {
    slots: Vec<NodeSlot>,
    http: reqwest::Client,
    config: GpuPoolConfig,
}

async fn spawn_node(
    spec: &Arc<GpuNodeSpec>,
    shared: &Arc<NodeShared>,
    http: &reqwest::Client,
    config: &GpuPoolConfig,
    supervisor: ActorCell,
) -> Result<ActorRef<GpuNodeMsg>, ActorProcessingErr> {
    let args = GpuNodeArgs {
        spec: spec.clone(),
        shared: shared.clone(),
        http: http.clone(),
        probe_interval: config.probe_interval,
        breaker_failures: config.breaker_failures,
        breaker_cooldown: config.breaker_cooldown,
    };
    let (actor, _) = Actor::spawn_linked(None, GpuNode, args, supervisor).await?;
    Ok(actor)
}

#[ractor::async_trait]
impl Actor for GpuPoolActor {
    type Msg = GpuPoolMsg;
    type State = GpuPoolState;
    type Arguments = GpuPoolArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<GpuPoolMsg>,
        args: GpuPoolArgs,
    ) -> Result<GpuPoolState, ActorProcessingErr> {
        let mut slots = Vec::with_capacity(args.nodes.len());
        for (spec, shared) in args.nodes {
            let actor =
                spawn_node(&spec, &shared, &args.http, &args.config, myself.get_cell()).await?;
            slots.push(NodeSlot {
                spec,
                shared,
                actor,
                restarts: Restarts::default(),
            });
        }
        tracing::info!(nodes = slots.len(), "gpu pool started");
        Ok(GpuPoolState {
            slots,
            http: args.http,
            config: args.config,
        })
    }

    async fn post_stop(
        &self,
        myself: ActorRef<GpuPoolMsg>,
        _state: &mut GpuPoolState,
    ) -> Result<(), ActorProcessingErr> {
        myself.stop_children(None);
        Ok(())
    }

    async fn handle(
        &self,
        _myself: ActorRef<GpuPoolMsg>,
        msg: GpuPoolMsg,
        state: &mut GpuPoolState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            GpuPoolMsg::ProbeAll(reply) => {
                let mut out = Vec::with_capacity(state.slots.len());
                for slot in &state.slots {
                    let r = slot
                        .actor
                        .call(GpuNodeMsg::ProbeNow, Some(Duration::from_secs(6)))
                        .await;
                    match r {
                        Ok(CallResult::Success(s)) => out.push(s),
                        _ => {
                            tracing::warn!(node = %slot.spec.name, "gpu node actor did not answer a probe call");
                            out.push(slot.shared.state());
                        }
                    }
                }
                let _ = reply.send(out);
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<GpuPoolMsg>,
        event: SupervisionEvent,
        state: &mut GpuPoolState,
    ) -> Result<(), ActorProcessingErr> {
        let Some((id, why)) = stopped_child(&event) else {
            return Ok(());
        };
        let Some(slot) = state.slots.iter_mut().find(|s| s.actor.get_id() == id) else {
            return Ok(());
        };
        if !slot.restarts.take() {
            tracing::error!(node = %slot.spec.name, why, "gpu node actor keeps failing; left stopped");
            slot.shared.mark_down(format!(
                "node actor stopped after {} restarts",
                slot.restarts.count()
            ));
            return Ok(());
        }
        tracing::warn!(node = %slot.spec.name, why, restarts = slot.restarts.count(), "gpu node actor stopped; restarting");
        slot.actor = spawn_node(
            &slot.spec,
            &slot.shared,
            &state.http,
            &state.config,
            myself.get_cell(),
        )
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(state: NodeState, in_flight: u32, max: u32, priority: i32) -> NodeView {
        NodeView {
            state,
            in_flight,
            queued: 0,
            max_concurrency: max,
            priority,
            tried: false,
        }
    }

    const UP: NodeState = NodeState::Up;

    #[test]
    fn least_outstanding_wins() {
        let nodes = [view(UP, 3, 8, 0), view(UP, 1, 8, 0), view(UP, 2, 8, 0)];
        assert_eq!(choose(&nodes, None), Choice::Node(1));
    }

    #[test]
    fn priority_breaks_ties_then_order() {
        let nodes = [view(UP, 1, 8, 0), view(UP, 1, 8, 5), view(UP, 1, 8, 5)];
        assert_eq!(choose(&nodes, None), Choice::Node(1));
        // Priority does not beat fewer requests in flight.
        let nodes = [view(UP, 0, 8, 0), view(UP, 1, 8, 9)];
        assert_eq!(choose(&nodes, None), Choice::Node(0));
    }

    #[test]
    fn never_over_capacity() {
        let nodes = [view(UP, 2, 2, 9), view(UP, 3, 4, 0)];
        assert_eq!(choose(&nodes, None), Choice::Node(1));
        let full = [view(UP, 2, 2, 0), view(UP, 4, 4, 0)];
        assert_eq!(choose(&full, None), Choice::Busy);
        // Not even for the interview's own node.
        assert_eq!(choose(&full, Some(0)), Choice::Busy);
    }

    #[test]
    fn down_and_tried_nodes_are_skipped_and_unknown_is_usable() {
        let nodes = [
            view(NodeState::Down, 0, 4, 0),
            view(NodeState::Unknown, 2, 4, 0),
        ];
        assert_eq!(choose(&nodes, None), Choice::Node(1));
        let down = [view(NodeState::Down, 0, 4, 0)];
        assert_eq!(choose(&down, None), Choice::NoNode);
        let mut tried = view(UP, 0, 4, 0);
        tried.tried = true;
        assert_eq!(choose(&[tried, view(UP, 3, 4, 0)], None), Choice::Node(1));
        assert_eq!(choose(&[tried], None), Choice::NoNode);
        assert_eq!(choose(&[], None), Choice::NoNode);
    }

    #[test]
    fn affinity_hit_while_up_with_room_else_best_node() {
        // Hit even though node 1 is less loaded.
        let nodes = [view(UP, 3, 4, 0), view(UP, 0, 4, 0)];
        assert_eq!(choose(&nodes, Some(0)), Choice::Node(0));
        // Full: moves to the best node.
        let nodes = [view(UP, 4, 4, 0), view(UP, 1, 4, 0)];
        assert_eq!(choose(&nodes, Some(0)), Choice::Node(1));
        // Down, or not yet known up: best node.
        let nodes = [view(NodeState::Down, 0, 4, 0), view(UP, 1, 4, 0)];
        assert_eq!(choose(&nodes, Some(0)), Choice::Node(1));
        let nodes = [view(NodeState::Unknown, 1, 4, 0), view(UP, 0, 4, 0)];
        assert_eq!(choose(&nodes, Some(0)), Choice::Node(1));
        // A stale index (fewer nodes) is ignored.
        assert_eq!(choose(&nodes, Some(7)), Choice::Node(1));
    }

    #[test]
    fn waiters_are_counted_against_the_least_loaded_node() {
        let mut a = view(UP, 2, 2, 0);
        a.queued = 3;
        let b = view(UP, 2, 2, 0);
        assert_eq!(queue_target(&[a, b], None), Some(1));
        assert_eq!(queue_target(&[a, b], Some(0)), Some(0));
        assert_eq!(queue_target(&[view(NodeState::Down, 0, 1, 0)], None), None);
    }

    #[test]
    fn affinity_map_is_bounded_and_keeps_recent_entries() {
        let now = Instant::now();
        let mut m = AffinityMap::new(4, Duration::from_secs(60));
        for i in 0..10 {
            m.set(&format!("iv-{i}"), i, now);
            assert!(m.len() <= 4);
        }
        assert_eq!(m.get("iv-9", now), Some(9));
        assert_eq!(m.get("iv-8", now), Some(8));
        assert_eq!(m.get("iv-0", now), None);
        // Entries unused for longer than the TTL are ignored.
        assert_eq!(m.get("iv-9", now + Duration::from_secs(61)), None);
    }

    #[test]
    fn config_and_nodes_are_validated() {
        let spec = |name: &str, max: u32| GpuNodeSpec {
            name: name.into(),
            url: "http://127.0.0.1:8000".into(),
            model: "m".into(),
            max_concurrency: max,
            api_key: None,
            priority: 0,
        };
        assert!(validate_nodes(&[spec("a", 1), spec("b", 2)]).is_ok());
        assert!(validate_nodes(&[spec("a", 1), spec("a", 2)]).is_err());
        let err = validate_nodes(&[spec("a", 0)]).err().map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.contains("max_concurrency")));
        let cfg = GpuPoolConfig {
            breaker_failures: 0,
            ..GpuPoolConfig::default()
        };
        assert!(cfg.validate().is_err());
        assert!(GpuPoolConfig::default().validate().is_ok());
    }

    /// HTTP behaviour against tiny in-test OpenAI-compatible servers on 127.0.0.1:0.
    mod http {
        use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
        use std::sync::{Arc, Mutex};
        use std::time::{Duration, Instant};

        use futures::StreamExt;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        use tokio::net::{TcpListener, TcpStream};

        use super::super::*;
        use crate::providers::{Message, Role};
        use crate::secret::Secret;

        /// Switches and records of one fake node.
        #[derive(Default)]
        struct Ctl {
            /// Chat requests answer 500.
            fail_chat: AtomicBool,
            /// `/health` and `/v1/models` answer 503.
            fail_health: AtomicBool,
            /// `/health` answers 404 (llama.cpp builds without it, other servers).
            no_health: AtomicBool,
            latency_ms: AtomicU64,
            /// Pause between stream chunks.
            chunk_gap_ms: AtomicU64,
            current: AtomicU32,
            peak: AtomicU32,
            chats: AtomicU32,
            last_auth: Mutex<Option<String>>,
        }

        struct FakeNode {
            url: String,
            ctl: Arc<Ctl>,
            task: tokio::task::JoinHandle<()>,
        }

        impl Drop for FakeNode {
            fn drop(&mut self) {
                self.task.abort();
            }
        }

        async fn fake_node(latency_ms: u64) -> FakeNode {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let url = format!("http://{}", listener.local_addr().unwrap());
            let ctl = Arc::new(Ctl::default());
            ctl.latency_ms.store(latency_ms, Ordering::SeqCst);
            ctl.chunk_gap_ms.store(60, Ordering::SeqCst);
            let c = ctl.clone();
            let task = tokio::spawn(async move {
                while let Ok((sock, _)) = listener.accept().await {
                    tokio::spawn(serve(sock, c.clone()));
                }
            });
            FakeNode { url, ctl, task }
        }

        async fn respond(sock: &mut TcpStream, status: &str, body: &str) {
            let head = format!(
                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = sock.write_all(head.as_bytes()).await;
            let _ = sock.write_all(body.as_bytes()).await;
            let _ = sock.shutdown().await;
        }

        async fn serve(mut sock: TcpStream, ctl: Arc<Ctl>) {
            let mut buf = Vec::new();
            let mut tmp = [0u8; 4096];
            let head_end = loop {
                let n = match sock.read(&mut tmp).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                buf.extend_from_slice(&tmp[..n]);
                if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    break p + 4;
                }
            };
            let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
            let header = |name: &str| {
                head.lines()
                    .find(|l| l.to_ascii_lowercase().starts_with(&format!("{name}:")))
                    .map(|l| l[name.len() + 1..].trim().to_string())
            };
            let len: usize = header("content-length")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            while buf.len() < head_end + len {
                match sock.read(&mut tmp).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => buf.extend_from_slice(&tmp[..n]),
                }
            }
            let body = String::from_utf8_lossy(&buf[head_end..head_end + len]).to_string();
            let mut first = head.lines().next().unwrap_or("").split(' ');
            let (method, path) = (first.next().unwrap_or(""), first.next().unwrap_or(""));
            let health_down = ctl.fail_health.load(Ordering::SeqCst);
            match (method, path) {
                ("GET", "/health") if ctl.no_health.load(Ordering::SeqCst) => {
                    respond(&mut sock, "404 Not Found", "{}").await
                }
                ("GET", "/health") | ("GET", "/v1/models") if health_down => {
                    respond(&mut sock, "503 Service Unavailable", "{}").await
                }
                ("GET", "/health") => respond(&mut sock, "200 OK", "{}").await,
                ("GET", "/v1/models") => {
                    respond(&mut sock, "200 OK", r#"{"data":[{"id":"test-model"}]}"#).await
                }
                ("POST", "/v1/chat/completions") => {
                    *ctl.last_auth.lock().unwrap() = header("authorization");
                    chat(sock, &ctl, &body).await
                }
                _ => respond(&mut sock, "404 Not Found", "{}").await,
            }
        }

        async fn chat(mut sock: TcpStream, ctl: &Ctl, body: &str) {
            ctl.chats.fetch_add(1, Ordering::SeqCst);
            let v: serde_json::Value = serde_json::from_str(body).unwrap();
            assert_eq!(v["model"], "test-model");
            if ctl.fail_chat.load(Ordering::SeqCst) {
                return respond(
                    &mut sock,
                    "500 Internal Server Error",
                    r#"{"error":"boom"}"#,
                )
                .await;
            }
            if body.contains("BAD") {
                return respond(&mut sock, "400 Bad Request", r#"{"error":"bad"}"#).await;
            }
            let now = ctl.current.fetch_add(1, Ordering::SeqCst) + 1;
            ctl.peak.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(ctl.latency_ms.load(Ordering::SeqCst))).await;
            if v["stream"] == true {
                let head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nConnection: close\r\n\r\n";
                let _ = sock.write_all(head.as_bytes()).await;
                let gap = Duration::from_millis(ctl.chunk_gap_ms.load(Ordering::SeqCst));
                for piece in ["Hel", "lo", " world"] {
                    let chunk = serde_json::json!({"choices":[{"delta":{"content": piece}}]});
                    if sock
                        .write_all(format!("data: {chunk}\n\n").as_bytes())
                        .await
                        .is_err()
                    {
                        break;
                    }
                    let _ = sock.flush().await;
                    tokio::time::sleep(gap).await;
                }
                let tail = concat!(
                    "data: {\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n",
                    "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":3}}\n\n",
                    "data: [DONE]\n\n"
                );
                let _ = sock.write_all(tail.as_bytes()).await;
                ctl.current.fetch_sub(1, Ordering::SeqCst);
                let _ = sock.shutdown().await;
            } else {
                ctl.current.fetch_sub(1, Ordering::SeqCst);
                let answer = serde_json::json!({
                    "model": "test-model",
                    "choices": [{"message": {"role": "assistant", "content": "hello"}, "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": 5, "completion_tokens": 20}
                });
                respond(&mut sock, "200 OK", &answer.to_string()).await;
            }
        }

        fn spec(name: &str, node: &FakeNode, max: u32) -> GpuNodeSpec {
            GpuNodeSpec {
                name: name.into(),
                url: format!("{}/", node.url),
                model: "test-model".into(),
                max_concurrency: max,
                api_key: None,
                priority: 0,
            }
        }

        fn config() -> GpuPoolConfig {
            GpuPoolConfig {
                probe_interval: Duration::from_millis(100),
                queue_bound: 64,
                request_timeout: Duration::from_secs(5),
                breaker_failures: 2,
                breaker_cooldown: Duration::from_millis(300),
            }
        }

        fn req(text: &str) -> ChatRequest {
            ChatRequest {
                messages: vec![Message::new(Role::User, text)],
                max_tokens: 32,
                temperature: None,
                json: false,
                model: Some("some-cloud-model".into()),
                json_schema: None,
            }
        }

        async fn start(nodes: Vec<GpuNodeSpec>, cfg: GpuPoolConfig) -> GpuPool {
            let http = reqwest::Client::builder().no_proxy().build().unwrap();
            let (pool, _join) = GpuPool::start(nodes, cfg, http, None).await.unwrap();
            pool
        }

        fn node_status(pool: &GpuPool, name: &str) -> NodeStatus {
            pool.status().into_iter().find(|s| s.name == name).unwrap()
        }

        async fn wait_for(pool: &GpuPool, name: &str, state: NodeState) {
            let t0 = Instant::now();
            while node_status(pool, name).state != state {
                assert!(
                    t0.elapsed() < Duration::from_secs(5),
                    "{name} never became {state:?}"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }

        /// Waits (5 s at most) until node `name`'s status satisfies `ok` (requests in flight or
        /// queued, as other tasks move them), and returns it.
        async fn wait_status(
            pool: &GpuPool,
            name: &str,
            what: &str,
            ok: impl Fn(&NodeStatus) -> bool,
        ) -> NodeStatus {
            let t0 = Instant::now();
            loop {
                let s = node_status(pool, name);
                if ok(&s) {
                    return s;
                }
                assert!(
                    t0.elapsed() < Duration::from_secs(5),
                    "{name}: never {what}: {s:?}"
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }

        const DEADLINE: Duration = Duration::from_secs(10);

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn load_spreads_over_two_nodes_and_never_exceeds_capacity() {
            let (a, b) = (fake_node(150).await, fake_node(150).await);
            let pool = start(vec![spec("a", &a, 3), spec("b", &b, 3)], config()).await;
            let calls = (0..20).map(|i| {
                let pool = pool.clone();
                tokio::spawn(
                    async move { pool.complete(&req(&format!("q{i}")), DEADLINE, None).await },
                )
            });
            for r in futures::future::join_all(calls).await {
                let c = r.unwrap().unwrap();
                assert_eq!(c.response.text, "hello");
                assert!(c.failed.is_empty());
            }
            let (ca, cb) = (
                a.ctl.chats.load(Ordering::SeqCst),
                b.ctl.chats.load(Ordering::SeqCst),
            );
            assert_eq!(ca + cb, 20);
            assert!(ca >= 5 && cb >= 5, "load not spread: a={ca} b={cb}");
            assert!(a.ctl.peak.load(Ordering::SeqCst) <= 3);
            assert!(b.ctl.peak.load(Ordering::SeqCst) <= 3);
            assert_eq!(a.ctl.peak.load(Ordering::SeqCst), 3);
            let stats = pool.stats();
            assert_eq!(stats.dispatched, 20);
            assert!(stats.queued_total >= 14, "{stats:?}");
            assert_eq!((stats.rejected, stats.waiting), (0, 0));
            for s in pool.status() {
                assert_eq!((s.in_flight, s.queued), (0, 0));
            }
            // Counted before each caller got its answer.
            let s = node_status(&pool, "a");
            assert_eq!(s.state, NodeState::Up);
            assert_eq!(s.requests, u64::from(ca));
            assert!(s.latency_ms.is_some_and(|l| l >= 140.0));
            assert!(s.tokens_per_s.is_some_and(|t| t > 0.0));
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn full_queue_and_passed_deadline_answer_busy() {
            let a = fake_node(400).await;
            let cfg = GpuPoolConfig {
                queue_bound: 1,
                ..config()
            };
            let pool = start(vec![spec("a", &a, 1)], cfg).await;
            let p = pool.clone();
            let first = tokio::spawn(async move { p.complete(&req("1"), DEADLINE, None).await });
            wait_status(&pool, "a", "busy", |s| s.in_flight == 1).await;
            let p = pool.clone();
            let second = tokio::spawn(async move { p.complete(&req("2"), DEADLINE, None).await });
            wait_status(&pool, "a", "queued", |s| s.queued == 1).await;
            // The queue is full: refused at once (a wait would have been served, the deadline is 10 s).
            let third = pool.complete(&req("3"), DEADLINE, None).await;
            assert!(matches!(third, Err(GpuError::Busy)), "{third:?}");
            assert!(first.await.unwrap().is_ok());
            assert!(second.await.unwrap().is_ok());
            // A wait that outlasts the deadline.
            let p = pool.clone();
            let busy = tokio::spawn(async move { p.complete(&req("4"), DEADLINE, None).await });
            wait_status(&pool, "a", "busy", |s| s.in_flight == 1).await;
            let t0 = Instant::now();
            let late = pool
                .complete(&req("5"), Duration::from_millis(150), None)
                .await;
            assert!(matches!(late, Err(GpuError::Busy)), "{late:?}");
            assert!(t0.elapsed() >= Duration::from_millis(100));
            assert!(busy.await.unwrap().is_ok());
            assert_eq!(a.ctl.peak.load(Ordering::SeqCst), 1);
            let stats = pool.stats();
            assert_eq!((stats.rejected, stats.waiting), (2, 0));
            assert_eq!(node_status(&pool, "a").queued, 0);
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn failing_node_goes_down_fails_over_and_comes_back() {
            let (a, b) = (fake_node(10).await, fake_node(10).await);
            let cfg = GpuPoolConfig {
                breaker_cooldown: Duration::from_secs(1),
                ..config()
            };
            let pool = start(vec![spec("a", &a, 4), spec("b", &b, 4)], cfg).await;
            wait_for(&pool, "a", NodeState::Up).await;
            // Chat fails on a while its /health stays fine: the breaker takes it out.
            a.ctl.fail_chat.store(true, Ordering::SeqCst);
            for i in 0..2 {
                let c = pool
                    .complete(&req(&format!("f{i}")), DEADLINE, None)
                    .await
                    .unwrap();
                assert_eq!(c.node, "b");
                assert_eq!(c.failed, vec!["a".to_string()]);
            }
            wait_for(&pool, "a", NodeState::Down).await;
            let s = node_status(&pool, "a");
            assert!(
                s.reason.as_deref().is_some_and(|r| r.contains("breaker")),
                "{s:?}"
            );
            assert_eq!(s.errors, 2);
            let before = a.ctl.chats.load(Ordering::SeqCst);
            for i in 0..3 {
                let c = pool
                    .complete(&req(&format!("d{i}")), DEADLINE, None)
                    .await
                    .unwrap();
                assert_eq!((c.node.as_str(), c.failed.len()), ("b", 0));
            }
            assert_eq!(a.ctl.chats.load(Ordering::SeqCst), before);
            // Repaired: after the cool-down the probe brings it back and it serves again.
            let repaired = Instant::now();
            a.ctl.fail_chat.store(false, Ordering::SeqCst);
            wait_for(&pool, "a", NodeState::Up).await;
            assert!(repaired.elapsed() >= Duration::from_millis(500));
            let c = pool.complete(&req("back"), DEADLINE, None).await.unwrap();
            assert_eq!(c.node, "a");
            // A failing health probe takes it out too, and brings it back.
            a.ctl.fail_health.store(true, Ordering::SeqCst);
            wait_for(&pool, "a", NodeState::Down).await;
            let s = node_status(&pool, "a");
            assert!(
                s.reason
                    .as_deref()
                    .is_some_and(|r| r.contains("/health answered HTTP 503")),
                "{s:?}"
            );
            assert_eq!(
                pool.complete(&req("x"), DEADLINE, None).await.unwrap().node,
                "b"
            );
            a.ctl.fail_health.store(false, Ordering::SeqCst);
            wait_for(&pool, "a", NodeState::Up).await;
            assert!(pool.any_up());
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn every_node_failing_is_an_error_with_the_trail() {
            let (a, b) = (fake_node(0).await, fake_node(0).await);
            let pool = start(vec![spec("a", &a, 2), spec("b", &b, 2)], config()).await;
            a.ctl.fail_chat.store(true, Ordering::SeqCst);
            b.ctl.fail_chat.store(true, Ordering::SeqCst);
            match pool.complete(&req("x"), DEADLINE, None).await {
                Err(GpuError::Failed { tried, last }) => {
                    assert_eq!(tried.len(), 2);
                    assert_eq!(last, ProviderError::Server { status: 500 });
                }
                other => panic!("expected Failed, got {other:?}"),
            }
            // Each node tried once only.
            assert_eq!(a.ctl.chats.load(Ordering::SeqCst), 1);
            assert_eq!(b.ctl.chats.load(Ordering::SeqCst), 1);
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn client_errors_are_not_retried() {
            let (a, b) = (fake_node(0).await, fake_node(0).await);
            let pool = start(vec![spec("a", &a, 2), spec("b", &b, 2)], config()).await;
            wait_for(&pool, "a", NodeState::Up).await;
            let r = pool.complete(&req("BAD"), DEADLINE, None).await;
            match r {
                Err(GpuError::Refused { node, error }) => {
                    assert_eq!(node, "a");
                    assert!(matches!(
                        error,
                        ProviderError::BadRequest { status: 400, .. }
                    ));
                }
                other => panic!("expected Refused, got {other:?}"),
            }
            assert_eq!(b.ctl.chats.load(Ordering::SeqCst), 0);
            let s = node_status(&pool, "a");
            assert_eq!((s.state, s.errors), (NodeState::Up, 1));
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn stream_passes_chunks_through_as_they_come() {
            let a = fake_node(0).await;
            let pool = start(vec![spec("a", &a, 2)], config()).await;
            let mut s = pool.stream(&req("hi"), DEADLINE, None).await.unwrap();
            assert_eq!(s.node, "a");
            let t0 = Instant::now();
            let mut text = String::new();
            let mut seen = Vec::new();
            let mut usage = None;
            while let Some(chunk) = s.next().await {
                match chunk.unwrap() {
                    StreamChunk::Delta(d) => {
                        seen.push((t0.elapsed(), d.clone()));
                        text.push_str(&d);
                    }
                    StreamChunk::Done { usage: u, .. } => usage = u,
                }
            }
            assert_eq!(text, "Hello world");
            assert_eq!(seen.len(), 3);
            // Token by token: the first piece arrived well before the last one was sent.
            assert!(
                seen[2].0 - seen[0].0 >= Duration::from_millis(100),
                "{seen:?}"
            );
            assert_eq!(usage.map(|u| u.completion_tokens), Some(3));
            assert_eq!(node_status(&pool, "a").in_flight, 0);
            let st = node_status(&pool, "a");
            assert_eq!((st.requests, st.errors), (1, 0));
            assert!(st.tokens_per_s.is_some());
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn dropped_stream_and_dropped_future_give_the_slot_back() {
            let a = fake_node(0).await;
            let pool = start(vec![spec("a", &a, 1)], config()).await;
            let mut s = pool.stream(&req("hi"), DEADLINE, None).await.unwrap();
            assert!(matches!(s.next().await, Some(Ok(StreamChunk::Delta(_)))));
            assert_eq!(node_status(&pool, "a").in_flight, 1);
            drop(s);
            assert_eq!(node_status(&pool, "a").in_flight, 0);
            // A complete() future dropped mid-request.
            a.ctl.latency_ms.store(500, Ordering::SeqCst);
            let cut = tokio::time::timeout(
                Duration::from_millis(100),
                pool.complete(&req("slow"), DEADLINE, None),
            )
            .await;
            assert!(cut.is_err());
            assert_eq!(node_status(&pool, "a").in_flight, 0);
            a.ctl.latency_ms.store(0, Ordering::SeqCst);
            assert!(pool.complete(&req("again"), DEADLINE, None).await.is_ok());
            // The two cancelled requests and the served one, none an error.
            let st = node_status(&pool, "a");
            assert_eq!((st.state, st.errors, st.requests), (NodeState::Up, 0, 3));
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn affinity_keeps_an_interview_on_one_node() {
            let (a, b) = (fake_node(20).await, fake_node(20).await);
            let pool = start(vec![spec("a", &a, 2), spec("b", &b, 2)], config()).await;
            wait_for(&pool, "a", NodeState::Up).await;
            wait_for(&pool, "b", NodeState::Up).await;
            // Another interview keeps node a busier, yet iv-1 stays where it started.
            let first = pool
                .complete(&req("q"), DEADLINE, Some("iv-1"))
                .await
                .unwrap()
                .node;
            let other = if first == "a" { "b" } else { "a" };
            for _ in 0..5 {
                let p = pool.clone();
                let busy = tokio::spawn(async move { p.complete(&req("o"), DEADLINE, None).await });
                let c = pool
                    .complete(&req("q"), DEADLINE, Some("iv-1"))
                    .await
                    .unwrap();
                assert_eq!(c.node, first);
                busy.await.unwrap().unwrap();
            }
            let stats = pool.stats();
            assert_eq!((stats.affinity_hits, stats.affinity_moves), (5, 0));
            // Its node goes down: the interview moves, and stays on the new node once the old is back.
            let gone = if first == "a" { &a } else { &b };
            gone.ctl.fail_health.store(true, Ordering::SeqCst);
            wait_for(&pool, &first, NodeState::Down).await;
            let c = pool
                .complete(&req("q"), DEADLINE, Some("iv-1"))
                .await
                .unwrap();
            assert_eq!(c.node, other);
            gone.ctl.fail_health.store(false, Ordering::SeqCst);
            wait_for(&pool, &first, NodeState::Up).await;
            for _ in 0..3 {
                let c = pool
                    .complete(&req("q"), DEADLINE, Some("iv-1"))
                    .await
                    .unwrap();
                assert_eq!(c.node, other);
            }
            let stats = pool.stats();
            assert_eq!((stats.affinity_hits, stats.affinity_moves), (8, 1));
            assert_eq!(stats.affinity_entries, 1);
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn probe_falls_back_to_models_and_unreachable_nodes_are_down() {
            let a = fake_node(0).await;
            a.ctl.no_health.store(true, Ordering::SeqCst);
            // A port nobody listens on.
            let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let dead_url = format!("http://{}", closed.local_addr().unwrap());
            drop(closed);
            let dead = GpuNodeSpec {
                name: "dead".into(),
                url: dead_url,
                model: "test-model".into(),
                max_concurrency: 1,
                api_key: None,
                priority: 10,
            };
            let pool = start(vec![spec("a", &a, 1), dead], config()).await;
            let status = pool.probe_now().await;
            assert_eq!(status[0].state, NodeState::Up);
            assert_eq!(status[1].state, NodeState::Down);
            assert!(status[1]
                .reason
                .as_deref()
                .is_some_and(|r| r.starts_with("probe:")));
            assert_eq!(
                pool.complete(&req("x"), DEADLINE, None).await.unwrap().node,
                "a"
            );
            // /v1/models failing too: one failed probe is tolerated (a busy node may answer late),
            // the second in a row takes it down; then with no usable node the answer is NoNode.
            a.ctl.fail_health.store(true, Ordering::SeqCst);
            let status = pool.probe_now().await;
            assert_eq!(
                status[0].state,
                NodeState::Up,
                "one failed probe is tolerated"
            );
            let status = pool.probe_now().await;
            assert_eq!(status[0].state, NodeState::Down);
            assert!(status[0]
                .reason
                .as_deref()
                .is_some_and(|r| r.contains("/v1/models")));
            assert!(!pool.any_up());
            let r = pool.complete(&req("x"), DEADLINE, None).await;
            assert!(matches!(r, Err(GpuError::NoNode)), "{r:?}");
            assert!(matches!(
                pool.stream(&req("x"), DEADLINE, None).await,
                Err(GpuError::NoNode)
            ));
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn empty_pool_has_no_node() {
            let pool = start(Vec::new(), config()).await;
            assert!(!pool.has_nodes());
            assert!(!pool.any_up());
            let r = pool.complete(&req("x"), DEADLINE, Some("iv")).await;
            assert!(matches!(r, Err(GpuError::NoNode)));
            assert_eq!(pool.stats().rejected, 1);
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn key_is_sent_but_never_shown() {
            let a = fake_node(0).await;
            let mut s = spec("a", &a, 1);
            s.api_key = Some(Secret::new("sk-node-secret-42"));
            let pool = start(vec![s], config()).await;
            pool.complete(&req("x"), DEADLINE, None).await.unwrap();
            let auth = a.ctl.last_auth.lock().unwrap().clone();
            assert_eq!(auth.as_deref(), Some("Bearer sk-node-secret-42"));
            // Up once the node actor has seen the probe or the answer (by message).
            wait_for(&pool, "a", NodeState::Up).await;
            let shown = serde_json::to_string(&pool.status()).unwrap();
            assert!(!shown.contains("sk-node-secret-42"));
            assert!(shown.contains("\"state\":\"up\""));
            pool.actor().stop(None);
        }
    }
}
