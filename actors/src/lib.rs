//! The engine's actors and the domain pieces they own: provider wire formats, rate windows (quota),
//! the storage traits, the key actors, the router and the pool handle.
//!
//! Supervision tree (each name is one file; arrows are `spawn_linked`):
//!
//! ```text
//! InterviewSupervisor (supervisor.rs) ──► InterviewSession (session/)     one per live interview,
//!                                           │                             restarted from its log
//!                                           │ evaluations, follow-ups
//!                                           ▼
//!   Pool (pool.rs): caller-side handle; reads the KeyDirectory, fails over in the caller's task
//!                                           │ Reserve / Settle / Outcome
//! RouterActor (router.rs) ──────────────► KeyActor (key.rs)   one per API key; keys of one
//!                                                               quota scope share a SharedQuota
//! ```
//!
//! GpuPoolActor (gpu_pool.rs) ──────────► GpuNode (gpu_node.rs)   one per local inference node
//! CacheActor (cache.rs): one sled tree per cache kind; Coalescer (coalesce.rs): single-flight calls
//!
//! A WebSocket connection (engine crate) reaches its session through a `ConnHandle` (conn.rs).
//!
//! Storage (`storage/`) sits behind traits (`UsageLedger`) with sled as the first implementation.

pub mod budget;
pub mod cache;
pub mod clock;
pub mod cluster;
pub mod coalesce;
pub mod conn;
pub mod content;
pub mod embedder;
pub mod gpu_node;
pub mod gpu_pool;
pub mod inproc;
pub mod interview;
pub mod key;
pub mod memory;
pub mod pool;
pub mod protocol;
pub mod providers;
pub mod quota;
pub mod restart;
pub mod router;
pub mod secret;
pub mod session;
pub mod stats;
pub mod storage;
pub mod supervisor;
pub mod voice;
