//! `Membership`: which nodes are alive. Each node beats every `heartbeat` (a sorted set scored by Redis
//! server time, plus a JSON description: advertise URL, live sessions, budget figures); a node is live
//! while its last beat is younger than three beats. The live count is the `N` of the fallback share
//! (`admission.rs`); a beat that fails marks Redis unreachable, the next one that succeeds brings every
//! scope back to the shared windows.

use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use serde::Serialize;

use super::admission::{ClusterHealth, SharedWindows};
use super::{Cluster, ClusterError};

const MEMBERS_LUA: &str = r#"
-- ie_members_v1: KEYS[1] members (zset: node -> last beat ms), KEYS[2] node descriptions (hash)
-- ARGV: beat | leave | list, node id, description JSON, live window ms
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local op, id, info, live = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
if op == 'beat' then
  redis.call('ZADD', KEYS[1], now, id)
  redis.call('HSET', KEYS[2], id, info)
elseif op == 'leave' then
  redis.call('ZREM', KEYS[1], id)
  redis.call('HDEL', KEYS[2], id)
end
-- Forget nodes silent for an hour.
local gone = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now - 3600000)
for _, g in ipairs(gone) do
  redis.call('ZREM', KEYS[1], g)
  redis.call('HDEL', KEYS[2], g)
end
local out = {}
local rows = redis.call('ZRANGEBYSCORE', KEYS[1], now - live, '+inf', 'WITHSCORES')
for i = 1, #rows, 2 do
  out[#out + 1] = {rows[i], redis.call('HGET', KEYS[2], rows[i]) or '{}', now - tonumber(rows[i + 1])}
end
return out
"#;

/// A live node as the cluster sees it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeInfo {
    /// Node id.
    pub node_id: String,
    /// Milliseconds since its last heartbeat.
    pub last_beat_ms: u64,
    /// What it published: `advertise_url`, live sessions, budget figures.
    pub info: serde_json::Value,
}

impl NodeInfo {
    /// The URL other nodes reach it at.
    pub fn advertise_url(&self) -> Option<&str> {
        self.info.get("advertise_url").and_then(|v| v.as_str())
    }
}

/// What a node publishes with each beat.
pub type Describe = Arc<dyn Fn() -> serde_json::Value + Send + Sync>;

/// This node's membership: the heartbeat task and the last known list of live nodes.
pub struct Membership {
    cluster: Cluster,
    health: Arc<ClusterHealth>,
    script: redis::Script,
    describe: Describe,
    nodes: Mutex<Vec<NodeInfo>>,
    windows: Mutex<Vec<Weak<SharedWindows>>>,
    stop: tokio::sync::watch::Sender<bool>,
}

impl std::fmt::Debug for Membership {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Membership")
            .field("node", &self.cluster.node_id())
            .finish()
    }
}

impl Membership {
    /// Beats once (so the node is listed before it serves), then every `heartbeat` in a task.
    pub async fn start(
        cluster: Cluster,
        health: Arc<ClusterHealth>,
        describe: Describe,
    ) -> Arc<Membership> {
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let m = Arc::new(Membership {
            cluster,
            health,
            script: redis::Script::new(MEMBERS_LUA),
            describe,
            nodes: Mutex::new(Vec::new()),
            windows: Mutex::new(Vec::new()),
            stop,
        });
        m.beat().await;
        let weak = Arc::downgrade(&m);
        let every = m.cluster.config().heartbeat;
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(every) => {}
                    _ = stopped.changed() => return,
                }
                let Some(m) = weak.upgrade() else { return };
                m.beat().await;
            }
        });
        m
    }

    /// The node's cluster handle.
    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    /// Redis reachability and the live node count.
    pub fn health(&self) -> &Arc<ClusterHealth> {
        &self.health
    }

    /// Windows to bring back to shared mode after an outage.
    pub fn register_windows(&self, w: &Arc<SharedWindows>) {
        let mut ws = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        ws.retain(|w| w.strong_count() > 0);
        ws.push(Arc::downgrade(w));
    }

    fn live_ms(&self) -> u64 {
        u64::try_from(self.cluster.config().heartbeat.as_millis() * 3).unwrap_or(u64::MAX)
    }

    async fn call(&self, op: &str) -> Result<Vec<NodeInfo>, ClusterError> {
        let info = if op == "beat" {
            let mut v = (self.describe)();
            if let Some(o) = v.as_object_mut() {
                o.insert(
                    "advertise_url".into(),
                    self.cluster.config().advertise_url.clone().into(),
                );
            }
            v.to_string()
        } else {
            String::new()
        };
        let mut inv = self.script.key(self.cluster.key("members"));
        inv.key(self.cluster.key("node-info"))
            .arg(op)
            .arg(self.cluster.node_id())
            .arg(info)
            .arg(self.live_ms());
        let rows: Vec<(String, String, i64)> = self.cluster.script(inv).await?;
        Ok(rows
            .into_iter()
            .map(|(node_id, info, age)| NodeInfo {
                node_id,
                last_beat_ms: u64::try_from(age.max(0)).unwrap_or(0),
                info: serde_json::from_str(&info).unwrap_or(serde_json::Value::Null),
            })
            .collect())
    }

    /// One heartbeat: publish, read the live nodes, update the health, reconcile the windows.
    pub async fn beat(&self) {
        match self.call("beat").await {
            Ok(nodes) => {
                self.health.mark_up(nodes.len());
                *self.nodes.lock().unwrap_or_else(|p| p.into_inner()) = nodes;
                let ws: Vec<Arc<SharedWindows>> = self
                    .windows
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .iter()
                    .filter_map(Weak::upgrade)
                    .collect();
                for w in ws {
                    if w.in_fallback() {
                        w.reconcile().await;
                    }
                }
            }
            Err(e) => {
                if e.is_unreachable() {
                    self.health.mark_down();
                }
                tracing::debug!(error = %e, "heartbeat failed");
            }
        }
    }

    /// The live nodes at the last heartbeat.
    pub fn nodes(&self) -> Vec<NodeInfo> {
        self.nodes.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Reads the live nodes now (for `/api/cluster`).
    pub async fn refresh(&self) -> Result<Vec<NodeInfo>, ClusterError> {
        let nodes = self.call("list").await?;
        *self.nodes.lock().unwrap_or_else(|p| p.into_inner()) = nodes.clone();
        Ok(nodes)
    }

    /// The advertise URL of a live node.
    pub fn advertise_url_of(&self, node_id: &str) -> Option<String> {
        self.nodes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .find(|n| n.node_id == node_id)
            .and_then(|n| n.advertise_url().map(str::to_string))
    }

    /// Stops beating and removes this node from the live list (shutdown).
    pub async fn leave(&self) {
        let _ = self.stop.send(true);
        if let Err(e) = self.call("leave").await {
            tracing::warn!(error = %e, "could not leave the cluster's member list");
        }
    }
}

/// Default heartbeat when the config does not say.
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(1);

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

    use super::*;
    use crate::cluster::testing::RedisServer;

    #[tokio::test]
    async fn nodes_see_each_other_and_leave() {
        let redis = RedisServer::start();
        let mut ms = Vec::new();
        for id in ["a", "b", "c"] {
            let h = Arc::new(ClusterHealth::default());
            let d: Describe = Arc::new(move || serde_json::json!({"live_sessions": 3}));
            ms.push(Membership::start(redis.cluster(id).await, h, d).await);
        }
        let nodes = ms[0].refresh().await.unwrap();
        let mut ids: Vec<_> = nodes.iter().map(|n| n.node_id.clone()).collect();
        ids.sort();
        assert_eq!(ids, ["a", "b", "c"]);
        assert_eq!(nodes[0].info["live_sessions"], 3);
        ms[1].beat().await;
        assert_eq!(
            ms[1].advertise_url_of("a").as_deref(),
            Some("http://a.invalid")
        );
        assert_eq!(ms[1].health().nodes(), 3);
        ms[2].leave().await;
        let ids: Vec<_> = ms[0]
            .refresh()
            .await
            .unwrap()
            .into_iter()
            .map(|n| n.node_id)
            .collect();
        assert!(!ids.contains(&"c".to_string()));
    }
}
