//! The engine's actors and the domain pieces they own: provider wire formats, rate windows (quota),
//! the storage traits, the key actors, the router and the pool handle.
//!
//! Supervision tree (each box is one file; arrows are `spawn_linked`):
//!
//! ```text
//! RouterActor (router.rs) ──► KeyActor (key.rs)   one per API key; keys of one
//!        ▲                      ...                quota scope share a SharedQuota
//!        │ Plan / Status
//!   Pool (pool.rs): the caller-side handle; failover runs in the caller's task
//! ```
//!
//! Storage (`storage/`) sits behind traits (`UsageLedger`) with sled as the first implementation.

pub mod key;
pub mod pool;
pub mod providers;
pub mod quota;
pub mod router;
pub mod secret;
pub mod storage;
