//! Horizontal clustering on Redis: several engine nodes share every provider window exactly, any node
//! serves any interview, and a node's death loses nothing.
//!
//! The pieces, one file each, all on one multiplexed Redis connection ([`Cluster`], redis-rs'
//! `ConnectionManager`, which reconnects by itself):
//!
//! ```text
//! admission.rs   SharedWindows: one atomic Lua step admits a request into every window of a quota
//!                scope (sliding minute, calendar day and month, concurrency leases) on Redis server
//!                time; settle / refund / renew; falls back to 1/N of each window while Redis is
//!                unreachable and merges that usage back when it returns
//! membership.rs  Membership: node heartbeats (id, advertise URL, live sessions, figures) with expiry
//! lease.rs       Leases: one owner per interview (SET NX PX, compare-and-set renew / release) with a
//!                fencing token (INCR) per acquisition
//! cache.rs       SharedCache: the reuse cache's values shared between nodes (resume analyses,
//!                greetings, generated questions, evaluations, coach notes)
//! sessions.rs    ClusterSessions: what the supervisor, sessions and REST routes use (lease per
//!                live session, append before send, takeover from the log, reads on every node)
//! log.rs         SharedLog: per-interview Redis Stream appended only with the current fencing token
//! lua/*.lua      the scripts, loaded by EVALSHA (their SHA-1 is their version: two builds with
//!                different scripts never run each other's code; the key layout is versioned by the
//!                `v1` in every key)
//! ```
//!
//! Every key starts with `<prefix>:v1:` and carries a hash tag (`{q:<scope>}`, `{iv:<id>}`), so the
//! keys one script touches live in one slot (Redis Cluster, Valkey, Azure Cache for Redis).
//!
//! With `redis_url` empty there is no cluster: the engine runs alone exactly as before.

pub mod admission;
pub mod cache;
pub mod lease;
pub mod log;
pub mod membership;
pub mod sessions;

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::secret::Secret;

pub use admission::{SharedWindows, WindowSpec};
pub use lease::{Lease, Leases, Owner};
pub use log::SharedLog;
pub use membership::{Membership, NodeInfo};
pub use sessions::{ClusterSessions, Placement};

/// Whether `url` is a Redis URL the client accepts (never printed: it may hold a password).
pub fn is_valid_redis_url(url: &str) -> bool {
    redis::Client::open(url).is_ok()
}

/// The `[cluster]` settings the actors need (the engine's config maps onto it).
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// `redis://[:password@]host:port/db` or `rediss://` (TLS). A secret: it may carry a password.
    pub redis_url: Secret,
    /// This node's id (unique in the cluster).
    pub node_id: String,
    /// How other nodes reach this node's HTTP and WebSocket routes (`http://10.0.0.5:8080`).
    pub advertise_url: String,
    /// Interview ownership lease; renewed every third of it.
    pub lease: Duration,
    /// Membership heartbeat; a node is gone after three missed beats.
    pub heartbeat: Duration,
    /// Prefix of every key (several deployments can share one Redis).
    pub prefix: String,
    /// Time one Redis command may take before the node treats Redis as unreachable.
    pub op_timeout: Duration,
}

/// Clustering failures.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// Redis could not be reached, or did not answer in time.
    #[error("redis unreachable: {0}")]
    Unreachable(String),
    /// Redis answered with an error.
    #[error("redis error: {0}")]
    Redis(String),
    /// A write carried a fencing token older than the interview's current one.
    #[error("stale fencing token: {0}")]
    Stale(String),
    /// An append did not continue the log (its seq was not the next one).
    #[error("log sequence: {0}")]
    Sequence(String),
    /// A stored value could not be read.
    #[error("unreadable cluster value: {0}")]
    Codec(String),
}

impl ClusterError {
    /// Whether the failure is Redis being unreachable (so a fallback applies), not a refusal.
    pub fn is_unreachable(&self) -> bool {
        matches!(self, ClusterError::Unreachable(_))
    }
}

impl From<redis::RedisError> for ClusterError {
    fn from(e: redis::RedisError) -> Self {
        match e.code() {
            Some("STALE") => return ClusterError::Stale(e.detail().unwrap_or("").to_string()),
            Some("SEQ") => return ClusterError::Sequence(e.detail().unwrap_or("").to_string()),
            _ => {}
        }
        if e.is_io_error()
            || e.is_timeout()
            || e.is_connection_dropped()
            || e.is_connection_refusal()
            || e.is_unrecoverable_error()
        {
            ClusterError::Unreachable(e.to_string())
        } else {
            ClusterError::Redis(e.to_string())
        }
    }
}

impl From<redis::ParsingError> for ClusterError {
    fn from(e: redis::ParsingError) -> Self {
        ClusterError::Codec(e.to_string())
    }
}

/// A connection to the cluster's Redis and this node's identity. Cheap to clone (one multiplexed
/// connection underneath).
#[derive(Clone)]
pub struct Cluster {
    con: ConnectionManager,
    cfg: std::sync::Arc<ClusterConfig>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("node_id", &self.cfg.node_id)
            .field("prefix", &self.cfg.prefix)
            .finish()
    }
}

impl Cluster {
    /// Connects (the first connection must succeed within `op_timeout`; later drops reconnect by
    /// themselves) and checks that the server runs scripts.
    pub async fn connect(cfg: ClusterConfig) -> Result<Cluster, ClusterError> {
        let client = redis::Client::open(cfg.redis_url.expose()).map_err(|e| {
            ClusterError::Redis(format!(
                "redis_url: {}",
                cfg.redis_url.scrub(&e.to_string())
            ))
        })?;
        let mcfg = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(cfg.op_timeout))
            .set_response_timeout(Some(cfg.op_timeout))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_secs(2));
        let con = tokio::time::timeout(
            cfg.op_timeout * 3,
            ConnectionManager::new_with_config(client, mcfg),
        )
        .await
        .map_err(|_| ClusterError::Unreachable("connect timed out".into()))??;
        let cluster = Cluster {
            con,
            cfg: std::sync::Arc::new(cfg),
        };
        let pong: String = cluster.run(&redis::cmd("PING")).await?;
        if pong != "PONG" {
            return Err(ClusterError::Redis(format!("PING answered {pong:?}")));
        }
        Ok(cluster)
    }

    /// The settings.
    pub fn config(&self) -> &ClusterConfig {
        &self.cfg
    }

    /// This node's id.
    pub fn node_id(&self) -> &str {
        &self.cfg.node_id
    }

    /// A key under this deployment's prefix and layout version: `<prefix>:v1:<rest>`.
    pub fn key(&self, rest: &str) -> String {
        format!("{}:v1:{rest}", self.cfg.prefix)
    }

    /// A connection handle (multiplexed; clones share it).
    pub fn con(&self) -> ConnectionManager {
        self.con.clone()
    }

    /// Runs one command with the operation timeout.
    pub async fn run<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, ClusterError> {
        let mut con = self.con.clone();
        match tokio::time::timeout(self.cfg.op_timeout, cmd.query_async(&mut con)).await {
            Ok(r) => r.map_err(ClusterError::from),
            Err(_) => Err(ClusterError::Unreachable("command timed out".into())),
        }
    }

    /// Runs a script invocation with the operation timeout.
    pub async fn script<T: redis::FromRedisValue>(
        &self,
        inv: redis::ScriptInvocation<'_>,
    ) -> Result<T, ClusterError> {
        let mut con = self.con.clone();
        match tokio::time::timeout(self.cfg.op_timeout, inv.invoke_async(&mut con)).await {
            Ok(r) => r.map_err(ClusterError::from),
            Err(_) => Err(ClusterError::Unreachable("script timed out".into())),
        }
    }
}

#[cfg(test)]
pub(crate) mod testing {
    //! A real `redis-server` on a free loopback port with a temporary directory, killed on drop.
    #![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

    use std::process::{Child, Command, Stdio};
    use std::time::{Duration, Instant};

    use super::*;

    /// A running redis-server.
    pub struct RedisServer {
        child: Option<Child>,
        /// Its port.
        pub port: u16,
        dir: tempfile::TempDir,
    }

    impl RedisServer {
        /// Starts `redis-server` on a free port (append-only file, fsync always) and waits for PING.
        pub fn start() -> RedisServer {
            let dir = tempfile::tempdir().expect("tempdir");
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map(|a| a.port())
                .expect("free port");
            let mut s = RedisServer {
                child: None,
                port,
                dir,
            };
            s.spawn();
            s
        }

        fn spawn(&mut self) {
            let child = Command::new("redis-server")
                .args([
                    "--port",
                    &self.port.to_string(),
                    "--bind",
                    "127.0.0.1",
                    "--dir",
                    self.dir.path().to_str().expect("utf-8 dir"),
                    "--appendonly",
                    "yes",
                    "--appendfsync",
                    "always",
                    "--save",
                    "",
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("redis-server must be installed (apt-get install redis-server)");
            self.child = Some(child);
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                if let Ok(mut c) = redis::Client::open(self.url()).and_then(|c| c.get_connection())
                {
                    if redis::cmd("PING").query::<String>(&mut c).is_ok() {
                        return;
                    }
                }
                assert!(Instant::now() < deadline, "redis-server did not start");
                std::thread::sleep(Duration::from_millis(20));
            }
        }

        /// `redis://127.0.0.1:PORT/0`.
        pub fn url(&self) -> String {
            format!("redis://127.0.0.1:{}/0", self.port)
        }

        /// Kills the server (SIGKILL).
        pub fn stop(&mut self) {
            if let Some(mut c) = self.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }

        /// Starts it again on the same port and directory (its append-only file is read back).
        pub fn restart(&mut self) {
            self.stop();
            self.spawn();
        }

        /// A cluster handle for `node`.
        pub async fn cluster(&self, node: &str) -> Cluster {
            Cluster::connect(self.config(node)).await.expect("connect")
        }

        /// The configuration for `node`.
        pub fn config(&self, node: &str) -> ClusterConfig {
            ClusterConfig {
                redis_url: Secret::new(self.url()),
                node_id: node.into(),
                advertise_url: format!("http://{node}.invalid"),
                lease: Duration::from_millis(3000),
                heartbeat: Duration::from_millis(200),
                prefix: "ietest".into(),
                op_timeout: Duration::from_millis(500),
            }
        }
    }

    impl Drop for RedisServer {
        fn drop(&mut self) {
            self.stop();
        }
    }
}
