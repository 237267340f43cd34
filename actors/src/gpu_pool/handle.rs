//! The cloneable handle of the GPU pool: admission (a slot taken by compare-and-swap, the bounded
//! queue), the failover loop over nodes within the caller's deadline, and the stream wrapper that
//! gives a node's slot back when its answer ends. What differs between a whole answer and a stream is
//! the provider pool's `Delivery` (actors/src/pool.rs); the loop here is written once.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::{Stream, StreamExt};
use ractor::rpc::CallResult;
use ractor::{Actor, ActorCell, ActorRef};
use tokio::sync::Notify;

use super::actor::{GpuPoolActor, GpuPoolArgs, GpuPoolMsg};
use super::dispatch::{
    choose, queue_target, AffinityMap, Choice, NodeView, AFFINITY_CAP, AFFINITY_TTL,
};
use super::{GpuCompletion, GpuError, GpuPoolConfig, GpuStats, GpuStream, NodeStatus};
use crate::clock::Clock;
use crate::gpu_node::{GpuNodeSpec, NodeShared, RequestOutcome};
use crate::pool::{Completion, Delivery, StreamCompletion};
use crate::providers::{ChatRequest, ChunkStream, ProviderError, StreamChunk};

/// A waiter re-checks this often even without a wake-up (a node coming back up does not wake anyone).
const QUEUE_POLL: Duration = Duration::from_millis(50);
/// Compare-and-swap races tolerated in one admission attempt before treating the pool as busy.
const CAS_TRIES: usize = 16;

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
pub(crate) struct SlotGuard {
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

    /// The node answered a request sent at `t0` in full: reports the latency (and the tokens, when
    /// known) and gives the slot back.
    pub(crate) fn served(mut self, t0: Instant, completion_tokens: Option<u64>) {
        let latency = Clock::since(t0);
        self.report(RequestOutcome::Ok {
            latency,
            completion_tokens,
            generation: latency,
        });
    }

    /// The node opened a stream at `t0`: its chunks pass through, and the slot is settled and given
    /// back when the stream ends, fails, goes silent for `idle`, or is dropped.
    pub(crate) fn streaming(self, chunks: ChunkStream, t0: Instant, idle: Duration) -> ChunkStream {
        Box::pin(NodeStream {
            inner: chunks,
            slot: Some(self),
            idle,
            sleep: Box::pin(tokio::time::sleep(idle)),
            t0,
            first_at: None,
            deltas: 0,
            ended: false,
        })
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
        let (node, failed, response) = self.serve::<Completion>(req, deadline, affinity).await?;
        Ok(GpuCompletion {
            response,
            node,
            failed,
        })
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
        let (node, failed, stream) = self
            .serve::<StreamCompletion>(req, deadline, affinity)
            .await?;
        Ok(GpuStream {
            node,
            failed,
            stream,
        })
    }

    /// A chat request as a whole answer or a stream, as the provider pool's [`Delivery`] says: the node
    /// that served, the nodes that failed before it, and the answer (which holds the node's slot until
    /// it ends, for a stream).
    pub(crate) async fn serve<D: Delivery>(
        &self,
        req: &ChatRequest,
        deadline: Duration,
        affinity: Option<&str>,
    ) -> Result<(String, Vec<String>, D::Answer), GpuError> {
        let idle = self.inner.config.request_timeout;
        self.fail_over(
            deadline,
            affinity,
            |http, spec, timeout| async move { D::send_gpu(&http, &spec, req, timeout).await },
            |answer, slot, t0| D::hold_gpu(answer, slot, t0, idle),
        )
        .await
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
        self.fail_over(deadline, affinity, op, |answer, slot, t0| {
            slot.served(t0, None);
            answer
        })
        .await
    }

    /// The failover loop behind every request: a slot on the best node not tried yet, one try within
    /// what is left of `deadline`, and on failure the next node; `served` takes the answer and the slot
    /// (settling the slot at once, or handing it to a stream that settles it when it ends).
    async fn fail_over<T, R, F, Fut>(
        &self,
        deadline: Duration,
        affinity: Option<&str>,
        op: F,
        served: impl FnOnce(T, SlotGuard, Instant) -> R,
    ) -> Result<(String, Vec<String>, R), GpuError>
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
                    return Ok((spec.name.clone(), tries.failed, served(answer, slot, t0)))
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

pub(super) fn validate_nodes(nodes: &[GpuNodeSpec]) -> Result<(), GpuError> {
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
