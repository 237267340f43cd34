//! `ClusterSessions`: what the interview supervisor, the sessions and the REST routes use in cluster
//! mode to keep one live session per interview cluster-wide and its log in Redis.
//!
//! - **Ownership.** Before a node starts a session it takes the interview's lease ([`Leases`]); a lease
//!   held by another node means the connection is relayed there. Leases are renewed together every
//!   third of their term; one that is lost (expired and taken) stops its session.
//! - **Log.** Each step a session commits to its node's sled is appended to the interview's Redis
//!   Stream with the lease's fencing token before it is sent ([`SharedLog`]), together with the record
//!   (JSON, readable with `redis-cli`). A former owner's append is refused (`stale`), and the session
//!   stops. If Redis is unreachable the session goes on with the node's own durable log and the
//!   interview is marked unsynced: its missing events are appended when Redis answers again.
//! - **Takeover.** A node that takes over an interview first copies the record and the events it lacks
//!   from Redis into its own sled, then starts the session from there as after a restart: the client
//!   resumes by `seq` with nothing lost or repeated.
//! - **Reads.** REST reads and candidate histories come from Redis, so every node answers them.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use super::lease::{Acquired, Lease, Leases};
use super::log::SharedLog;
use super::membership::Membership;
use super::ClusterError;
use crate::interview::InterviewRecord;
use crate::storage::SessionLog;

/// Events read from Redis per round trip when syncing.
const SYNC_BATCH: usize = 500;

/// Where an interview's live session is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    /// This node holds the lease (fencing token) and its sled is up to date with Redis.
    Here(u64),
    /// Another node holds the lease.
    Elsewhere {
        /// Its node id.
        node_id: String,
        /// Its advertise URL, if it is a live member.
        url: Option<String>,
        /// Time left on its lease (after it, the interview can be taken over).
        expires_in: std::time::Duration,
    },
}

/// Cluster state of the interviews on this node.
pub struct ClusterSessions {
    leases: Leases,
    log: SharedLog,
    membership: Arc<Membership>,
    local: Arc<dyn SessionLog>,
    held: Mutex<HashMap<String, Lease>>,
    unsynced: Mutex<HashSet<String>>,
    /// The last seq this node knows Redis holds of each held interview (appended or read by it).
    confirmed: Mutex<HashMap<String, u64>>,
    ttl_ms: u64,
}

impl std::fmt::Debug for ClusterSessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterSessions")
            .field("held", &self.held_count())
            .finish()
    }
}

fn codec<E: std::fmt::Display>(e: E) -> ClusterError {
    ClusterError::Codec(e.to_string())
}

impl ClusterSessions {
    /// Sessions of this node: `local` is its own sled log; interview keys in Redis expire
    /// `ttl_ms` after their last write (0: never).
    pub fn new(
        membership: Arc<Membership>,
        log: SharedLog,
        local: Arc<dyn SessionLog>,
        ttl_ms: u64,
    ) -> Arc<ClusterSessions> {
        Arc::new(ClusterSessions {
            leases: Leases::new(membership.cluster().clone()),
            log,
            membership,
            local,
            held: Mutex::new(HashMap::new()),
            unsynced: Mutex::new(HashSet::new()),
            confirmed: Mutex::new(HashMap::new()),
            ttl_ms,
        })
    }

    /// How often the supervisor renews the leases: a third of their term.
    pub fn lease_renewal_interval(&self) -> std::time::Duration {
        (self.membership.cluster().config().lease / 3).max(std::time::Duration::from_millis(100))
    }

    /// The membership.
    pub fn membership(&self) -> &Arc<Membership> {
        &self.membership
    }

    fn held(&self) -> std::sync::MutexGuard<'_, HashMap<String, Lease>> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn unsynced(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.unsynced.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn confirm(&self, id: &str, seq: u64) {
        self.confirmed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.to_string(), seq);
    }

    fn confirmed(&self, id: &str) -> Option<u64> {
        self.confirmed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .copied()
    }

    /// Forgets an interview this node no longer holds.
    fn forget(&self, id: &str) {
        self.held().remove(id);
        self.unsynced().remove(id);
        self.confirmed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
    }

    /// Interviews whose lease this node holds.
    pub fn held_count(&self) -> usize {
        self.held().len()
    }

    /// Interviews whose events Redis still lacks (it was unreachable).
    pub fn unsynced_count(&self) -> usize {
        self.unsynced().len()
    }

    /// Whether this node holds `id`'s lease.
    pub fn holds(&self, id: &str) -> bool {
        self.held().contains_key(id)
    }

    /// Makes a new interview visible to every node (record, candidate index), before its first
    /// session: it is written with fencing token 0, which any owner's token supersedes.
    pub async fn publish_created(&self, record: &InterviewRecord) -> Result<(), ClusterError> {
        let state = serde_json::to_vec(record).map_err(codec)?;
        self.log
            .append(&record.id, 0, Some(&state), &[], self.ttl_ms)
            .await?;
        let c = self.membership.cluster();
        let key = c.key(&format!("cand:{}", record.candidate.id));
        c.run::<()>(
            redis::cmd("ZADD")
                .arg(&key)
                .arg(record.created_ms)
                .arg(&record.id),
        )
        .await?;
        if self.ttl_ms > 0 {
            c.run::<()>(redis::cmd("PEXPIRE").arg(&key).arg(self.ttl_ms))
                .await?;
        }
        Ok(())
    }

    /// Takes the interview if its lease is free (then the local log is brought up to date with
    /// Redis), or says which node has it. Already held here: `Here` at once.
    pub async fn place(&self, id: &str) -> Result<Placement, ClusterError> {
        if let Some(l) = self.held().get(id) {
            return Ok(Placement::Here(l.fence));
        }
        match self.leases.acquire(id).await? {
            Acquired::Owned(lease) => {
                let fence = lease.fence;
                if let Err(e) = self.refresh_local(id).await {
                    let _ = self.leases.release(&lease).await;
                    return Err(e);
                }
                self.held().insert(id.to_string(), lease);
                if let Ok(last) = self.log.last_seq(id).await {
                    self.confirm(id, last);
                }
                // Whatever this node has that Redis lacks (an earlier outage) goes up now.
                if let Ok(Some(rec)) = self.local.load(id) {
                    if let Err(e) = self.catch_up(&rec, fence).await {
                        tracing::warn!(interview = %id, error = %e, "could not push the local log to redis");
                    }
                }
                Ok(Placement::Here(fence))
            }
            Acquired::Held(owner) => Ok(Placement::Elsewhere {
                url: self.membership.advertise_url_of(&owner.node_id),
                node_id: owner.node_id,
                expires_in: owner.expires_in,
            }),
        }
    }

    /// Brings this node's log of `id` up to date with Redis: the record and the events it lacks
    /// (or holds differently: a step a former owner committed here whose append was refused). A
    /// local log ahead of Redis is kept (Redis lacks this node's last steps after an outage; they go
    /// up with the next append). Every node calls it before reading an interview.
    pub async fn refresh_local(&self, id: &str) -> Result<(), ClusterError> {
        let Some(state) = self.log.state(id).await? else {
            return Ok(()); // never published (a single-node interview): the local log is all there is
        };
        let mut remote: InterviewRecord = serde_json::from_slice(&state).map_err(codec)?;
        let local = self.local.load(id).map_err(codec)?;
        let mut have = match &local {
            None => 0,
            Some(l) if l.last_seq() > remote.last_seq() => return Ok(()),
            Some(l)
                if l.last_seq() == remote.last_seq()
                    && serde_json::to_vec(l).map_err(codec)? == state =>
            {
                return Ok(());
            }
            Some(l) => l.last_seq(),
        };
        // Walk back to the last event both logs hold alike.
        while have > 0 {
            let from = have.saturating_sub(16);
            let mine = self.local.events_after(id, from, have).map_err(codec)?;
            let theirs = self
                .log
                .read_after(id, from, (have - from) as usize)
                .await?;
            let mut agree = None;
            for (seq, text) in mine.iter().rev() {
                if theirs
                    .iter()
                    .any(|(s, p)| s == seq && p.as_slice() == text.as_bytes())
                {
                    agree = Some(*seq);
                    break;
                }
            }
            match agree {
                Some(seq) => {
                    have = seq;
                    break;
                }
                None => have = from,
            }
        }
        if local.is_none() {
            self.local.create(&remote).map_err(codec)?;
        }
        let mut after = have;
        let mut events = Vec::new();
        while after < remote.last_seq() {
            let batch = self.log.read_after(id, after, SYNC_BATCH).await?;
            let Some(&(last, _)) = batch.last() else {
                break;
            };
            for (seq, payload) in batch {
                if seq <= remote.last_seq() {
                    events.push((seq, String::from_utf8(payload).map_err(codec)?));
                }
            }
            after = last;
        }
        if events.first().is_some_and(|(s, _)| *s != have + 1) {
            return Err(ClusterError::Sequence(format!(
                "redis log of {id} starts at {:?}, after local seq {have}",
                events.first().map(|e| e.0)
            )));
        }
        self.local.commit(&mut remote, &events).map_err(codec)?;
        self.local.flush().await.map_err(codec)?;
        tracing::debug!(interview = %id, from = have, to = remote.last_seq(), "session log copied from redis");
        Ok(())
    }

    /// Appends what Redis lacks of `rec`'s log (everything after Redis' last seq) with `fence`.
    async fn catch_up(&self, rec: &InterviewRecord, fence: u64) -> Result<(), ClusterError> {
        let last = self.log.last_seq(&rec.id).await?;
        if last >= rec.last_seq() && !self.unsynced().contains(&rec.id) {
            return Ok(());
        }
        let events = self
            .local
            .events_after(&rec.id, last, rec.last_seq())
            .map_err(codec)?;
        let payloads: Vec<(u64, &[u8])> = events.iter().map(|(s, t)| (*s, t.as_bytes())).collect();
        let state = serde_json::to_vec(rec).map_err(codec)?;
        self.log
            .append(&rec.id, fence, Some(&state), &payloads, self.ttl_ms)
            .await?;
        self.unsynced().remove(&rec.id);
        self.confirm(&rec.id, rec.last_seq());
        Ok(())
    }

    /// Appends a session's step (its new events and record) before the events are sent. `Err` means
    /// this node no longer owns the interview: the session must stop. Redis unreachable is not an
    /// error: the step is durable in the local log and goes up when Redis answers again.
    pub async fn append(
        &self,
        rec: &InterviewRecord,
        events: &[(u64, String)],
    ) -> Result<(), ClusterError> {
        let Some(fence) = self.held().get(&rec.id).map(|l| l.fence) else {
            return Err(ClusterError::Stale(format!(
                "this node does not hold the lease of {}",
                rec.id
            )));
        };
        let needs_catch_up = self.unsynced().contains(&rec.id);
        let result = if needs_catch_up {
            self.catch_up(rec, fence).await
        } else {
            let state = serde_json::to_vec(rec).map_err(codec)?;
            let payloads: Vec<(u64, &[u8])> =
                events.iter().map(|(s, t)| (*s, t.as_bytes())).collect();
            match self
                .log
                .append(&rec.id, fence, Some(&state), &payloads, self.ttl_ms)
                .await
            {
                Err(ClusterError::Sequence(_)) => self.catch_up(rec, fence).await,
                Ok(last) => {
                    self.confirm(&rec.id, last);
                    Ok(())
                }
                Err(e) => Err(e),
            }
        };
        match result {
            Ok(()) => Ok(()),
            Err(e @ ClusterError::Stale(_)) => {
                self.forget(&rec.id);
                Err(e)
            }
            Err(e) => {
                tracing::warn!(interview = %rec.id, error = %e, "redis append failed; kept in the local log until redis answers");
                self.unsynced().insert(rec.id.clone());
                Ok(())
            }
        }
    }

    /// Renews every held lease; returns the interviews whose lease was lost (their sessions must
    /// stop). Also pushes unsynced logs when Redis answers.
    pub async fn renew_all(&self) -> Vec<String> {
        let leases: Vec<Lease> = self.held().values().cloned().collect();
        let mut lost = Vec::new();
        for l in leases {
            match self.leases.renew(&l).await {
                Ok(true) => {}
                Ok(false) => match self.reacquire(&l.interview).await {
                    Ok(true) => {}
                    Ok(false) => {
                        self.forget(&l.interview);
                        lost.push(l.interview.clone());
                    }
                    Err(e) => {
                        tracing::debug!(interview = %l.interview, error = %e, "lease re-acquisition failed");
                        return lost;
                    }
                },
                Err(e) => {
                    // Redis unreachable: nobody else can take the lease meanwhile; keep serving.
                    tracing::debug!(interview = %l.interview, error = %e, "lease renewal failed");
                    return lost;
                }
            }
        }
        let pending: Vec<String> = self.unsynced().iter().cloned().collect();
        for id in pending {
            let fence = self.held().get(&id).map(|l| l.fence);
            if let (Some(fence), Ok(Some(rec))) = (fence, self.local.load(&id)) {
                if let Err(e) = self.catch_up(&rec, fence).await {
                    tracing::debug!(interview = %id, error = %e, "catch-up deferred");
                }
            }
        }
        lost
    }

    /// The lease expired without anyone else taking the interview (Redis was unreachable longer than
    /// a lease, or this node was paused): take it again, with a new fencing token, if nobody wrote
    /// to the log since this node's last append. Otherwise the interview moved: false.
    async fn reacquire(&self, id: &str) -> Result<bool, ClusterError> {
        let lease = match self.leases.acquire(id).await? {
            Acquired::Owned(l) => l,
            Acquired::Held(_) => return Ok(false),
        };
        let last = self.log.last_seq(id).await?;
        if self.confirmed(id).is_none_or(|mine| last > mine) {
            // Someone else served it meanwhile: this node's session is stale.
            let _ = self.leases.release(&lease).await;
            return Ok(false);
        }
        tracing::info!(interview = %id, fence = lease.fence, "lease had expired; taken again");
        self.held().insert(id.to_string(), lease);
        Ok(true)
    }

    /// Gives up `id`'s lease (the session stopped; its steps are already appended).
    pub async fn release(&self, id: &str) {
        let lease = self.held().get(id).cloned();
        if let Some(l) = lease {
            if self.unsynced().contains(id) {
                if let Ok(Some(rec)) = self.local.load(id) {
                    let _ = self.catch_up(&rec, l.fence).await;
                }
            }
            self.forget(id);
            if let Err(e) = self.leases.release(&l).await {
                tracing::warn!(interview = %id, error = %e, "lease release failed; it expires by itself");
            }
        }
    }

    /// Releases every held lease (shutdown, after the sessions stopped and the logs are flushed).
    pub async fn release_all(&self) -> usize {
        let ids: Vec<String> = self.held().keys().cloned().collect();
        let n = ids.len();
        for id in ids {
            self.release(&id).await;
        }
        n
    }

    /// The interview's record as the cluster knows it (Redis first, then this node's log).
    pub async fn load(&self, id: &str) -> Result<Option<InterviewRecord>, ClusterError> {
        match self.log.state(id).await {
            Ok(Some(state)) => {
                let remote: InterviewRecord = serde_json::from_slice(&state).map_err(codec)?;
                let local = self.local.load(id).ok().flatten();
                // This node's own copy is newer while Redis lacks its last steps (an outage).
                Ok(Some(match local {
                    Some(l) if l.last_seq() > remote.last_seq() => l,
                    _ => remote,
                }))
            }
            Ok(None) => self.local.load(id).map_err(codec),
            Err(e) if e.is_unreachable() => self.local.load(id).map_err(codec),
            Err(e) => Err(e),
        }
    }

    /// A candidate's interview ids, oldest first, from every node.
    pub async fn candidate_interviews(&self, candidate: &str) -> Result<Vec<String>, ClusterError> {
        let c = self.membership.cluster();
        let key = c.key(&format!("cand:{candidate}"));
        match c
            .run::<Vec<String>>(redis::cmd("ZRANGE").arg(&key).arg(0).arg(-1))
            .await
        {
            Ok(ids) => {
                let mut all = ids;
                for id in self.local.candidate_interviews(candidate).map_err(codec)? {
                    if !all.contains(&id) {
                        all.push(id);
                    }
                }
                Ok(all)
            }
            Err(e) if e.is_unreachable() => {
                self.local.candidate_interviews(candidate).map_err(codec)
            }
            Err(e) => Err(e),
        }
    }
}
