//! The engine's actors and the domain pieces they own: provider wire formats, rate windows (quota),
//! the storage traits, the key actors, the router and the pool handle.
//!
//! Supervision tree (each name is one file; every edge is `spawn_linked`; the root's children are
//! started by `engine/src/server.rs` and stopped there in order at shutdown):
//!
//! ```text
//! EngineRoot (root.rs)                     logs and counts a child's failure; restarts none (why: root.rs)
//! ├── InterviewSupervisor (supervisor.rs)  restarts a failed session from its log (restart.rs rule);
//! │                                        keeps a hibernating session's connection until it wakes
//! │   └── InterviewSession (session/)      one per live interview
//! ├── RouterActor (router.rs)              restarts a stopped key actor (restart.rs rule)
//! │   └── KeyActor (key.rs)                one per API key; keys of one quota scope share a SharedQuota
//! ├── GpuPoolActor (gpu_pool/actor.rs)     restarts a stopped node actor (restart.rs rule)
//! │   └── GpuNode (gpu_node.rs)            one per local inference node
//! ├── GpuPoolActor (gpu_pool/actor.rs)     [[stt_nodes]], when configured
//! │   └── GpuNode (gpu_node.rs)
//! ├── GpuPoolActor (gpu_pool/actor.rs)     [[tts_nodes]], when configured
//! │   └── GpuNode (gpu_node.rs)
//! └── CacheActor (cache.rs)                one sled tree per cache kind
//! ```
//!
//! Outside the tree, by design: `VoiceInput` (voice/input.rs) lives exactly as long as one WebSocket
//! connection, which spawns and stops it (a failure ends that connection's audio, nothing else).
//! Handles, not actors: `Pool` (pool.rs) is the caller-side handle that reads the `KeyDirectory`
//! and fails over in the caller's task (Reserve / Settle / Outcome go to the key actors); `Cache`,
//! `GpuPool`, `Coalescer` (coalesce.rs: single-flight calls) and the `Speaker` (voice/speaker.rs, a
//! task per session) are used from any task. A WebSocket connection (engine crate) reaches its session
//! through a `ConnHandle` (conn.rs).
//!
//! Storage (`storage/`) sits behind traits (`UsageLedger`, `SessionLog`) with sled as the first
//! implementation.

pub mod budget;
pub mod cache;
pub mod clock;
pub mod cluster;
pub mod coalesce;
pub mod conn;
pub mod content;
pub mod creation;
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
pub mod resumes;
pub mod root;
pub mod router;
pub mod secret;
pub mod session;
pub mod stats;
pub mod storage;
pub mod supervisor;
#[cfg(test)]
pub(crate) mod testkit;
pub mod voice;
