//! Cluster mode in the engine (`[cluster] redis_url` set): connects to Redis, shares every quota
//! scope's windows with the other nodes, starts the membership heartbeat and the interview leases,
//! and gives the call budget the cluster's figures. With `redis_url` empty none of this exists.
//!
//! Scope names in Redis do not depend on the order of keys in an environment variable: a per-key
//! scope is named by its provider and a hash of the key (`groq:key:3f2a…`), so two nodes holding the
//! same key share its windows whatever their `GROQ_API_KEYS` order; a provider's shared scope is
//! `gemini:shared` on every node.

use std::sync::{Arc, OnceLock};

use actors::budget::{Budget, Capacity, CapacitySource};
use actors::cluster::admission::{ClusterHealth, SharedWindows};
use actors::cluster::log::SharedLog;
use actors::cluster::{Cluster, ClusterSessions, Membership};
use actors::router::KeyConfig;
use actors::storage::SessionLog;
use actors::supervisor::LiveSessions;
use serde_json::{json, Value};

use crate::config::Config;
use crate::server::StartError;

/// The cluster pieces of a running node.
pub struct ClusterRuntime {
    /// The Redis connection and this node's identity.
    pub cluster: Cluster,
    /// Redis reachability and the live node count.
    pub health: Arc<ClusterHealth>,
    /// Heartbeats and the live nodes.
    pub membership: Arc<Membership>,
    /// Interview leases and the shared log.
    pub sessions: Arc<ClusterSessions>,
    /// Every shared scope: (this node's scope name, the shared windows).
    pub windows: Vec<(String, Arc<SharedWindows>)>,
    /// The call budget, once started (its figures go out with each heartbeat).
    budget: Arc<OnceLock<Arc<Budget>>>,
}

/// The cluster-wide name of a quota scope (see the module doc).
fn cluster_scope(k: &KeyConfig, local: &str) -> String {
    match local.strip_prefix(&k.spec.id) {
        Some(rest) => {
            let h = actors::cache::key(&["cluster-scope", k.spec.target.secret.expose()]);
            format!("{}:key:{}{rest}", k.spec.provider, &h[..16])
        }
        None => local.to_string(),
    }
}

impl ClusterRuntime {
    /// Connects, attaches the shared windows to every quota of `keys`, and starts the heartbeat.
    pub async fn start(
        config: &Config,
        keys: &[KeyConfig],
        local_log: Arc<dyn SessionLog>,
        live: Arc<LiveSessions>,
    ) -> Result<ClusterRuntime, StartError> {
        let cfg = config.cluster.to_cluster_config(&config.server.bind);
        let wait = config.cluster.wait_replicas;
        let cluster = Cluster::connect(cfg.clone())
            .await
            .map_err(|e| StartError::Actor(format!("cluster: {e}")))?;
        let health = Arc::new(ClusterHealth::default());
        let budget: Arc<OnceLock<Arc<Budget>>> = Arc::new(OnceLock::new());
        let describe = {
            let budget = budget.clone();
            let live = live.clone();
            Arc::new(move || {
                let mut v =
                    json!({"live_sessions": live.live(), "version": env!("CARGO_PKG_VERSION")});
                if let Some(b) = budget.get() {
                    let s = b.snapshot();
                    v["budget"] = json!({
                        "reserved_calls": s.reserved_calls, "reserved_tokens": s.reserved_tokens,
                        "live_by_level": s.live_by_level, "created_today": s.created_today,
                    });
                }
                v
            })
        };
        let membership = Membership::start(cluster.clone(), health.clone(), describe).await;
        let mut log = SharedLog::new(cluster.clone());
        if wait > 0 {
            log = log.with_replica_wait(wait, config.cluster.op_timeout_ms);
        }
        let ttl_ms = config.cluster.log_ttl_s.saturating_mul(1000);
        let sessions = ClusterSessions::new(membership.clone(), log, local_log, ttl_ms);
        let mut windows = Vec::new();
        for k in keys {
            for q in k.quotas.all() {
                if q.shared().is_some() {
                    continue;
                }
                let mut spec = q.scope_spec();
                spec.scope = cluster_scope(k, &q.scope);
                let w = SharedWindows::new(cluster.clone(), spec, health.clone(), cfg.lease);
                membership.register_windows(&w);
                q.attach_shared(w.clone());
                windows.push((q.scope.clone(), w));
            }
        }
        tracing::info!(
            node = %cfg.node_id, advertise_url = %cfg.advertise_url, scopes = windows.len(),
            nodes = health.nodes(), "cluster mode: provider windows and interviews shared through redis"
        );
        Ok(ClusterRuntime {
            cluster,
            health,
            membership,
            sessions,
            windows,
            budget,
        })
    }

    /// Hands the started call budget to the heartbeat.
    pub fn set_budget(&self, b: Arc<Budget>) {
        let _ = self.budget.set(b);
    }

    /// Shutdown, after the sessions stopped: release every lease and leave the member list, so
    /// clients reconnecting elsewhere find their interviews free at once.
    pub async fn leave(&self) {
        let n = self.sessions.release_all().await;
        self.membership.leave().await;
        tracing::info!(released = n, "left the cluster");
    }

    /// `GET /api/cluster`: nodes (heartbeats, live sessions, budget figures), this node's view, and
    /// every shared scope's cluster-wide usage.
    pub async fn document(&self) -> Value {
        let (nodes, reachable) = match self.membership.refresh().await {
            Ok(n) => (n, true),
            Err(_) => (self.membership.nodes(), false),
        };
        let mut scopes = Vec::new();
        for (local, w) in &self.windows {
            let spec = w.spec();
            let usage = w.usage().await;
            let windows: Vec<Value> = spec
                .windows
                .iter()
                .enumerate()
                .map(|(i, win)| {
                    json!({
                        "period": format!("{:?}", win.period).to_lowercase(),
                        "counts": format!("{:?}", win.counter).to_lowercase(),
                        "limit": win.limit,
                        "used": usage.as_ref().and_then(|u| u.used.get(i)),
                    })
                })
                .collect();
            scopes.push(json!({
                "scope": local,
                "cluster_scope": spec.scope.rsplit_once(":key:").map_or(spec.scope.clone(), |(p, _)| format!("{p}:key:…")),
                "windows": windows,
                "concurrency": {"limit": spec.concurrency, "in_flight": usage.as_ref().map(|u| u.in_flight)},
                "cooling_down_ms": usage.as_ref().map(|u| u.cooling_down.as_millis() as u64),
                "fallback": w.in_fallback(),
            }));
        }
        let cfg = self.cluster.config();
        json!({
            "node_id": cfg.node_id,
            "advertise_url": cfg.advertise_url,
            "redis": {"reachable": reachable && self.health.is_up(), "outages": self.health.outages()},
            "mode": if self.health.is_up() { "shared" } else { "fallback" },
            "lease_ms": cfg.lease.as_millis() as u64,
            "heartbeat_ms": cfg.heartbeat.as_millis() as u64,
            "nodes": nodes,
            "this_node": {
                "leases_held": self.sessions.held_count(),
                "unsynced_interviews": self.sessions.unsynced_count(),
            },
            "scopes": scopes,
        })
    }

    /// The other nodes' reserved calls and tokens (their live interviews' holds), from their last
    /// heartbeats: the call budget subtracts them from the cluster's capacity.
    fn others_reserved(&self) -> (f64, f64) {
        let me = self.cluster.node_id();
        self.membership
            .nodes()
            .iter()
            .filter(|n| n.node_id != me)
            .fold((0.0, 0.0), |(c, t), n| {
                let b = &n.info["budget"];
                (
                    c + b["reserved_calls"].as_f64().unwrap_or(0.0),
                    t + b["reserved_tokens"].as_f64().unwrap_or(0.0),
                )
            })
    }
}

/// The call budget's capacity in cluster mode: today's capacity as the cluster used it (the local
/// counters follow the shared windows), less what the other nodes' live interviews hold.
pub struct ClusterCapacity {
    inner: Box<dyn CapacitySource>,
    runtime: Arc<ClusterRuntime>,
}

impl ClusterCapacity {
    /// Wraps the pool's capacity.
    pub fn new(inner: Box<dyn CapacitySource>, runtime: Arc<ClusterRuntime>) -> Self {
        ClusterCapacity { inner, runtime }
    }
}

impl CapacitySource for ClusterCapacity {
    fn capacity(&self) -> Capacity {
        let c = self.inner.capacity();
        let (calls, tokens) = self.runtime.others_reserved();
        Capacity {
            requests: c.requests.map(|r| r.saturating_sub(calls.ceil() as u64)),
            tokens: c.tokens.map(|t| t.saturating_sub(tokens.ceil() as u64)),
        }
    }
    fn configured(&self) -> bool {
        self.inner.configured()
    }
}
