//! `SharedCache`: the reuse cache shared by every node through Redis, so a resume analysis, a greeting,
//! a generated question, an evaluation or a coach note that one node paid a provider call for saves
//! the call on every other node. Each node keeps its own sled cache in front (hits stay local); a
//! local miss asks Redis, and a hit there is copied into the local cache. Values live under
//! `<prefix>:v1:cache:<kind>:<key>` as a list of variants (at most `variants` for kinds with
//! variety), with the kind's lifetime.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::Cluster;
use crate::cache::{CacheConfig, CacheKind};

/// The shared layer of the reuse cache.
pub struct SharedCache {
    cluster: Cluster,
    config: CacheConfig,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl std::fmt::Debug for SharedCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedCache")
            .field("hits", &self.hits())
            .finish()
    }
}

/// Whether values of `kind` are shared (each one saves a provider call on the other nodes).
pub fn shared_kind(kind: CacheKind) -> bool {
    matches!(
        kind,
        CacheKind::ResumeAnalysis
            | CacheKind::Greeting
            | CacheKind::Question
            | CacheKind::Evaluation
            | CacheKind::Summary
    )
}

impl SharedCache {
    /// The shared layer on `cluster`, with the cache's lifetimes and variant counts.
    pub fn new(cluster: Cluster, config: CacheConfig) -> Arc<SharedCache> {
        Arc::new(SharedCache {
            cluster,
            config,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        })
    }

    fn key(&self, kind: CacheKind, key: &str) -> String {
        self.cluster.key(&format!("cache:{}:{key}", kind.as_str()))
    }

    /// Local misses answered from Redis.
    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }

    /// Local misses Redis did not have either.
    pub fn misses(&self) -> u64 {
        self.misses.load(Ordering::Relaxed)
    }

    /// Every variant stored for `key` (oldest first); empty when none or Redis is unreachable.
    pub async fn variants(&self, kind: CacheKind, key: &str) -> Vec<String> {
        if !shared_kind(kind) {
            return Vec::new();
        }
        let k = self.key(kind, key);
        let v: Vec<String> = self
            .cluster
            .run(redis::cmd("LRANGE").arg(&k).arg(0).arg(-1))
            .await
            .unwrap_or_default();
        if v.is_empty() {
            self.misses.fetch_add(1, Ordering::Relaxed);
        } else {
            self.hits.fetch_add(1, Ordering::Relaxed);
        }
        v
    }

    /// Stores `value` for `key` (a new variant, or the value of a kind without variety).
    pub async fn put(&self, kind: CacheKind, key: &str, value: &str) {
        if !shared_kind(kind) {
            return;
        }
        let k = self.key(kind, key);
        let keep = self.config.variants_for(kind).max(1) as i64;
        let ttl = u64::try_from(self.config.ttl(kind).as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        let mut p = redis::pipe();
        p.atomic();
        if keep > 1 {
            // A text already kept is not added twice.
            p.cmd("LREM").arg(&k).arg(0).arg(value).ignore();
        } else {
            p.cmd("DEL").arg(&k).ignore();
        }
        p.cmd("RPUSH").arg(&k).arg(value).ignore();
        p.cmd("LTRIM").arg(&k).arg(-keep).arg(-1).ignore();
        p.cmd("PEXPIRE").arg(&k).arg(ttl).ignore();
        let mut con = self.cluster.con();
        let op = self.cluster.config().op_timeout;
        match tokio::time::timeout(op, p.query_async::<()>(&mut con)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::debug!(kind = %kind, error = %e, "shared cache put failed"),
            Err(_) => tracing::debug!(kind = %kind, "shared cache put timed out"),
        }
    }
}
