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

mod actor;
mod dispatch;
mod handle;
#[cfg(test)]
mod tests;

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::{Stream, StreamExt};
use serde::Serialize;

use crate::gpu_node::NodeState;
use crate::providers::{ChatResponse, ChunkStream, ProviderError, StreamChunk};

pub use actor::{GpuPoolActor, GpuPoolArgs, GpuPoolMsg, GpuPoolState};
pub use handle::GpuPool;
pub(crate) use handle::SlotGuard;

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
