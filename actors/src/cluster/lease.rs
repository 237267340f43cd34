//! `Leases`: one live session per interview, cluster-wide.
//!
//! Ownership is a Redis key set only when absent (`SET NX PX`), renewed and released only by
//! compare-and-set on the holder's random token (`lua/lease.lua`). Each acquisition takes a new fencing
//! token from `INCR`; the interview's shared log accepts appends only with the current one
//! (`log.rs`), so a paused or partitioned former owner cannot write after another node took over.

use std::time::Duration;

use super::{Cluster, ClusterError};

const LEASE_LUA: &str = include_str!("lua/lease.lua");

/// A held lease: renew it every third of its term, release it when the session stops.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The interview.
    pub interview: String,
    /// The fencing token every log write of this ownership carries.
    pub fence: u64,
    token: String,
}

/// Who owns an interview now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    /// The owner's node id.
    pub node_id: String,
    /// Its fencing token.
    pub fence: u64,
    /// Time left on its lease.
    pub expires_in: Duration,
}

/// The result of trying to acquire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Acquired {
    /// This node owns the interview now.
    Owned(Lease),
    /// Another holder (possibly this node under an older lease) has it.
    Held(Owner),
}

/// Interview ownership leases of this node.
#[derive(Clone)]
pub struct Leases {
    cluster: Cluster,
    script: redis::Script,
}

impl std::fmt::Debug for Leases {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Leases")
            .field("node", &self.cluster.node_id())
            .finish()
    }
}

fn parse_owner(value: &str, pttl: i64) -> Result<Owner, ClusterError> {
    let mut parts = value.splitn(3, ' ');
    let fence = parts
        .next()
        .and_then(|f| f.parse().ok())
        .ok_or_else(|| ClusterError::Codec(format!("lease value {value:?}")))?;
    let _token = parts.next();
    let node_id = parts.next().unwrap_or_default().to_string();
    Ok(Owner {
        node_id,
        fence,
        expires_in: Duration::from_millis(u64::try_from(pttl.max(0)).unwrap_or(0)),
    })
}

impl Leases {
    /// Leases on `cluster` for this node.
    pub fn new(cluster: Cluster) -> Leases {
        Leases {
            cluster,
            script: redis::Script::new(LEASE_LUA),
        }
    }

    fn keys(&self, interview: &str) -> (String, String) {
        (
            self.cluster.key(&format!("{{iv:{interview}}}:owner")),
            self.cluster.key(&format!("{{iv:{interview}}}:fence")),
        )
    }

    fn lease_ms(&self) -> u64 {
        u64::try_from(self.cluster.config().lease.as_millis()).unwrap_or(u64::MAX)
    }

    async fn call(
        &self,
        interview: &str,
        op: &str,
        token: &str,
    ) -> Result<redis::Value, ClusterError> {
        let (owner, fence) = self.keys(interview);
        let mut inv = self.script.key(owner);
        inv.key(fence)
            .arg(op)
            .arg(token)
            .arg(self.lease_ms())
            .arg(self.cluster.node_id());
        self.cluster.script(inv).await
    }

    /// Takes the interview if nobody holds it.
    pub async fn acquire(&self, interview: &str) -> Result<Acquired, ClusterError> {
        let token = uuid::Uuid::new_v4().simple().to_string();
        let v = self.call(interview, "acquire", &token).await?;
        let (ok, value, pttl): (i64, redis::Value, i64) = redis::from_redis_value(v)?;
        if ok == 1 {
            let fence: u64 = redis::from_redis_value(value)?;
            return Ok(Acquired::Owned(Lease {
                interview: interview.to_string(),
                fence,
                token,
            }));
        }
        let value: String = redis::from_redis_value(value)?;
        Ok(Acquired::Held(parse_owner(&value, pttl)?))
    }

    /// Extends the lease; false when it was lost (expired and possibly taken by another node).
    pub async fn renew(&self, lease: &Lease) -> Result<bool, ClusterError> {
        let v = self.call(&lease.interview, "renew", &lease.token).await?;
        Ok(redis::from_redis_value::<i64>(v)? == 1)
    }

    /// Gives the interview up (only if still held by this lease).
    pub async fn release(&self, lease: &Lease) -> Result<bool, ClusterError> {
        let v = self.call(&lease.interview, "release", &lease.token).await?;
        Ok(redis::from_redis_value::<i64>(v)? == 1)
    }

    /// The interview's owner, if any.
    pub async fn owner(&self, interview: &str) -> Result<Option<Owner>, ClusterError> {
        let v = self.call(interview, "owner", "").await?;
        let (ok, value, pttl): (i64, String, i64) = redis::from_redis_value(v)?;
        if ok != 1 {
            return Ok(None);
        }
        parse_owner(&value, pttl).map(Some)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

    use super::*;
    use crate::cluster::testing::RedisServer;

    #[tokio::test]
    async fn one_owner_and_fences_increase() {
        let redis = RedisServer::start();
        let a = Leases::new(redis.cluster("a").await);
        let b = Leases::new(redis.cluster("b").await);
        let (ra, rb) = tokio::join!(a.acquire("iv1"), b.acquire("iv1"));
        let (ra, rb) = (ra.unwrap(), rb.unwrap());
        let (lease, holder) = match (ra, rb) {
            (Acquired::Owned(l), Acquired::Held(o)) => (l, o),
            (Acquired::Held(o), Acquired::Owned(l)) => (l, o),
            other => panic!("exactly one owner expected: {other:?}"),
        };
        assert_eq!(holder.fence, lease.fence);
        assert_eq!(lease.fence, 1);
        let owner = a.owner("iv1").await.unwrap().unwrap();
        assert_eq!(owner.fence, 1);
        assert!(owner.node_id == "a" || owner.node_id == "b");
        // Only the holder renews or releases.
        let loser = if owner.node_id == "a" { &b } else { &a };
        let winner = if owner.node_id == "a" { &a } else { &b };
        let forged = Lease {
            interview: "iv1".into(),
            fence: 1,
            token: "not-the-token".into(),
        };
        assert!(!loser.renew(&forged).await.unwrap());
        assert!(!loser.release(&forged).await.unwrap());
        assert!(winner.renew(&lease).await.unwrap());
        assert!(winner.release(&lease).await.unwrap());
        // The next owner gets a higher fence.
        match loser.acquire("iv1").await.unwrap() {
            Acquired::Owned(l) => assert_eq!(l.fence, 2),
            other => panic!("{other:?}"),
        }
        // The released lease cannot be renewed any more.
        assert!(!winner.renew(&lease).await.unwrap());
    }

    #[tokio::test]
    async fn an_expired_lease_is_taken_over() {
        let redis = RedisServer::start();
        let mut cfg = redis.config("a");
        cfg.lease = Duration::from_millis(200);
        let a = Leases::new(crate::cluster::Cluster::connect(cfg).await.unwrap());
        let b = Leases::new(redis.cluster("b").await);
        let Acquired::Owned(old) = a.acquire("iv2").await.unwrap() else {
            panic!("free lease")
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let new = loop {
            match b.acquire("iv2").await.unwrap() {
                Acquired::Owned(l) => break l,
                Acquired::Held(o) => {
                    assert_eq!(o.node_id, "a");
                    assert!(std::time::Instant::now() < deadline);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        };
        assert!(new.fence > old.fence);
        assert!(
            !a.renew(&old).await.unwrap(),
            "the old owner learns it lost the lease"
        );
    }
}
