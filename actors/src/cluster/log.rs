//! `SharedLog`: an interview's log in Redis, shared by every node: a Stream whose entry ids are the
//! events' `seq` (`<seq>-0`), and the session's state blob beside it. Appends go through
//! `lua/log.lua`, which refuses a fencing token older than the interview's current one (a former
//! owner) and a seq that does not continue the log, then writes events and state in one step. The
//! owner appends **before** it sends, so what a client saw is in Redis when its node dies; the next
//! owner rebuilds from here.
//!
//! Durability is Redis's: with `appendonly yes` + `appendfsync always` an append is on the Redis
//! server's disk before it answers; with replicas, `WAIT 1 <ms>` after each append (see
//! [`SharedLog::with_replica_wait`]) makes it survive the loss of the primary (docs/DEPLOY.md).

use super::{Cluster, ClusterError};

const LOG_LUA: &str = include_str!("lua/log.lua");

/// One Stream entry as XRANGE returns it: id and field/value pairs.
type StreamEntry = (String, Vec<(String, Vec<u8>)>);

/// The shared interview logs.
#[derive(Clone)]
pub struct SharedLog {
    cluster: Cluster,
    script: redis::Script,
    wait_replicas: Option<(u32, u64)>,
}

impl std::fmt::Debug for SharedLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedLog").finish()
    }
}

/// The keys of one interview.
#[derive(Debug, Clone)]
pub struct LogKeys {
    /// The Stream of events.
    pub stream: String,
    /// The fencing counter (shared with the lease).
    pub fence: String,
    /// The state blob.
    pub state: String,
}

impl SharedLog {
    /// Logs on `cluster`.
    pub fn new(cluster: Cluster) -> SharedLog {
        SharedLog {
            cluster,
            script: redis::Script::new(LOG_LUA),
            wait_replicas: None,
        }
    }

    /// After each append, waits (`WAIT`) until `replicas` replicas have it, at most `timeout_ms`;
    /// an append not acknowledged by them in time is reported as failed.
    pub fn with_replica_wait(mut self, replicas: u32, timeout_ms: u64) -> SharedLog {
        self.wait_replicas = Some((replicas, timeout_ms));
        self
    }

    /// The cluster handle.
    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    /// The keys of `interview`.
    pub fn keys(&self, interview: &str) -> LogKeys {
        LogKeys {
            stream: self.cluster.key(&format!("{{iv:{interview}}}:log")),
            fence: self.cluster.key(&format!("{{iv:{interview}}}:fence")),
            state: self.cluster.key(&format!("{{iv:{interview}}}:state")),
        }
    }

    /// Appends `events` (`seq`, payload; seqs continuing the log) and, if given, replaces the state,
    /// all only if `fence` is the interview's current fencing token. `ttl_ms` > 0 sets the
    /// interview's keys to expire. Returns the last seq in the log.
    pub async fn append(
        &self,
        interview: &str,
        fence: u64,
        state: Option<&[u8]>,
        events: &[(u64, &[u8])],
        ttl_ms: u64,
    ) -> Result<u64, ClusterError> {
        let k = self.keys(interview);
        let mut inv = self.script.key(&k.stream);
        inv.key(&k.fence).key(&k.state).arg(fence);
        match state {
            Some(s) => inv.arg(s),
            None => inv.arg(""),
        };
        inv.arg(ttl_ms);
        for (seq, payload) in events {
            inv.arg(*seq).arg(*payload);
        }
        let last: u64 = self.cluster.script(inv).await?;
        if let Some((replicas, timeout)) = self.wait_replicas {
            let acked: u32 = self
                .cluster
                .run(redis::cmd("WAIT").arg(replicas).arg(timeout))
                .await?;
            if acked < replicas {
                return Err(ClusterError::Unreachable(format!(
                    "append reached {acked} of {replicas} replicas in {timeout} ms"
                )));
            }
        }
        Ok(last)
    }

    /// Events with `after < seq`, in order, at most `limit`.
    pub async fn read_after(
        &self,
        interview: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Vec<u8>)>, ClusterError> {
        let k = self.keys(interview);
        let raw: Vec<StreamEntry> = self
            .cluster
            .run(
                redis::cmd("XRANGE")
                    .arg(&k.stream)
                    .arg(format!("({after}-0"))
                    .arg("+")
                    .arg("COUNT")
                    .arg(limit),
            )
            .await?;
        let mut out = Vec::with_capacity(raw.len());
        for (id, fields) in raw {
            let seq = id
                .split('-')
                .next()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| ClusterError::Codec(format!("stream id {id:?}")))?;
            let payload = fields
                .into_iter()
                .find(|(f, _)| f == "e")
                .map(|(_, v)| v)
                .ok_or_else(|| ClusterError::Codec(format!("entry {id} has no payload")))?;
            out.push((seq, payload));
        }
        Ok(out)
    }

    /// The last seq in the log (0: empty).
    pub async fn last_seq(&self, interview: &str) -> Result<u64, ClusterError> {
        let k = self.keys(interview);
        let tail: Vec<StreamEntry> = self
            .cluster
            .run(
                redis::cmd("XREVRANGE")
                    .arg(&k.stream)
                    .arg("+")
                    .arg("-")
                    .arg("COUNT")
                    .arg(1),
            )
            .await?;
        Ok(tail
            .first()
            .and_then(|(id, _)| id.split('-').next())
            .and_then(|s| s.parse().ok())
            .unwrap_or(0))
    }

    /// The state blob, if any.
    pub async fn state(&self, interview: &str) -> Result<Option<Vec<u8>>, ClusterError> {
        let k = self.keys(interview);
        self.cluster.run(redis::cmd("GET").arg(&k.state)).await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

    use super::*;
    use crate::cluster::lease::{Acquired, Leases};
    use crate::cluster::testing::RedisServer;

    #[tokio::test]
    async fn a_stale_owner_cannot_append() {
        let redis = RedisServer::start();
        let (ca, cb) = (redis.cluster("a").await, redis.cluster("b").await);
        let (la, lb) = (Leases::new(ca.clone()), Leases::new(cb.clone()));
        let (log_a, log_b) = (SharedLog::new(ca), SharedLog::new(cb));
        let Acquired::Owned(a) = la.acquire("iv").await.unwrap() else {
            panic!()
        };
        assert_eq!(
            log_a
                .append("iv", a.fence, Some(b"s1"), &[(1, b"e1"), (2, b"e2")], 0)
                .await
                .unwrap(),
            2
        );
        // a pauses; its lease is taken from it (released here, as if it expired).
        la.release(&a).await.unwrap();
        let Acquired::Owned(b) = lb.acquire("iv").await.unwrap() else {
            panic!()
        };
        assert!(b.fence > a.fence);
        log_b
            .append("iv", b.fence, Some(b"s3"), &[(3, b"e3")], 0)
            .await
            .unwrap();
        // a wakes up and writes with its old token: refused, nothing changed.
        match log_a
            .append("iv", a.fence, Some(b"bad"), &[(4, b"stale")], 0)
            .await
        {
            Err(ClusterError::Stale(_)) => {}
            other => panic!("{other:?}"),
        }
        let events = log_b.read_after("iv", 0, 100).await.unwrap();
        assert_eq!(
            events,
            vec![
                (1, b"e1".to_vec()),
                (2, b"e2".to_vec()),
                (3, b"e3".to_vec())
            ]
        );
        assert_eq!(
            log_a.state("iv").await.unwrap().as_deref(),
            Some(&b"s3"[..])
        );
        assert_eq!(log_a.read_after("iv", 2, 100).await.unwrap().len(), 1);
        assert_eq!(log_a.last_seq("iv").await.unwrap(), 3);
    }

    #[tokio::test]
    async fn appends_continue_the_log_or_are_refused() {
        let redis = RedisServer::start();
        let c = redis.cluster("a").await;
        let l = Leases::new(c.clone());
        let log = SharedLog::new(c);
        let Acquired::Owned(a) = l.acquire("iv").await.unwrap() else {
            panic!()
        };
        log.append("iv", a.fence, None, &[(1, b"x")], 0)
            .await
            .unwrap();
        // Repeated, skipped or out-of-order seqs are refused and write nothing.
        for bad in [
            &[(1u64, &b"dup"[..])][..],
            &[(3, b"gap")],
            &[(2, b"ok"), (2, b"dup")],
        ] {
            match log.append("iv", a.fence, None, bad, 0).await {
                Err(ClusterError::Sequence(_)) => {}
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(
            log.read_after("iv", 0, 10).await.unwrap(),
            vec![(1, b"x".to_vec())]
        );
    }
}
