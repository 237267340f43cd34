//! `InterviewSupervisor`: spawns one linked `InterviewSession` per live interview, finds it for
//! connections (bringing it back from the log after a process restart), and restarts a session that
//! fails (panic or error) from its last committed record, up to a bound ([`crate::restart`]'s rule:
//! a session that failed is restarted, one that exited is not).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};

use crate::cluster::sessions::Placement;
use crate::conn::{ConnSlot, Outbound};
use crate::interview::InterviewRecord;
use crate::protocol::{ErrorCode, ServerEvent};
use crate::restart::{child_stop, Restarts, Stop};
use crate::session::{InterviewSession, SessionArgs, SessionDeps, SessionMsg};

/// Restarts allowed per session before it is closed with an error (its log is kept).
pub const MAX_SESSION_RESTARTS: u32 = 3;

/// How many sessions may be live on this node (`limits.max_live_sessions`), and how many are: the
/// supervisor keeps the count, the HTTP layer reads it to refuse work the node cannot take.
#[derive(Debug)]
pub struct LiveSessions {
    max: usize,
    live: AtomicUsize,
}

impl LiveSessions {
    /// At most `max` live sessions.
    pub fn new(max: usize) -> Self {
        LiveSessions {
            max: max.max(1),
            live: AtomicUsize::new(0),
        }
    }

    /// Live sessions now.
    pub fn live(&self) -> usize {
        self.live.load(Ordering::Relaxed)
    }

    /// Whether no further session may start.
    pub fn full(&self) -> bool {
        self.live() >= self.max
    }

    fn set(&self, n: usize) {
        self.live.store(n, Ordering::Relaxed);
    }
}

/// Why a session could not be reached.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SessionError {
    /// No interview with that id.
    #[error("no such interview")]
    NotFound,
    /// The interview failed too often and was closed.
    #[error("the interview was closed after repeated internal errors")]
    Failed,
    /// Storage failed.
    #[error("storage error: {0}")]
    Storage(String),
    /// The actor could not be started.
    #[error("session could not start: {0}")]
    Spawn(String),
    /// The node holds as many live sessions as it may.
    #[error("this node holds as many live interviews as it may")]
    Busy,
    /// Cluster mode: another node holds the interview's lease (relay the connection there).
    #[error("interview is live on node {node_id}")]
    Elsewhere {
        /// The owner's node id.
        node_id: String,
        /// Its advertise URL, if it is a live member.
        url: Option<String>,
        /// Time left on its lease.
        expires_in: std::time::Duration,
    },
    /// Cluster mode: Redis cannot say who owns the interview now.
    #[error("cluster unavailable: {0}")]
    Cluster(String),
}

/// Messages of the supervisor.
pub enum SupervisorMsg {
    /// The live session of an interview, spawned from the log if needed.
    Get(
        String,
        RpcReplyPort<Result<ActorRef<SessionMsg>, SessionError>>,
    ),
    /// Number of live sessions.
    Live(RpcReplyPort<usize>),
    /// Cluster mode: renew the interview leases (sent every third of a lease).
    RenewLeases,
    /// Cluster mode: these interviews' leases were lost; stop their sessions.
    LeasesLost(Vec<String>),
}

struct Entry {
    actor: ActorRef<SessionMsg>,
    conn: ConnSlot,
    restarts: Restarts,
}

/// The supervisor's state.
pub struct SupervisorState {
    deps: Arc<SessionDeps>,
    live: HashMap<String, Entry>,
    failed: HashMap<String, u32>,
}

/// The supervisor actor.
pub struct InterviewSupervisor;

async fn spawn_session(
    record: InterviewRecord,
    deps: Arc<SessionDeps>,
    conn: ConnSlot,
    restarted: bool,
    sup: ActorCell,
) -> Result<ActorRef<SessionMsg>, SessionError> {
    let args = SessionArgs {
        record,
        deps,
        conn,
        restarted,
    };
    Actor::spawn_linked(None, InterviewSession, args, sup)
        .await
        .map(|(a, _)| a)
        .map_err(|e| SessionError::Spawn(e.to_string()))
}

impl SupervisorState {
    /// The interview's record, its questions shared with the other live sessions.
    fn load(&self, id: &str) -> Result<InterviewRecord, SessionError> {
        let mut rec = self
            .deps
            .log
            .load(id)
            .map_err(|e| SessionError::Storage(e.to_string()))?
            .ok_or(SessionError::NotFound)?;
        for q in &mut rec.questions {
            *q = self.deps.questions.intern(q.clone());
        }
        Ok(rec)
    }
}

/// Tells a session's client that its interview moved to another node, and closes the connection.
fn moved(entry: &Entry, deps: &SessionDeps, id: &str) {
    let conn = entry.conn.lock().unwrap_or_else(|p| p.into_inner()).clone();
    if let Some(c) = conn {
        let seq = deps.log.load(id).ok().flatten().map_or(0, |r| r.last_seq());
        let ev = ServerEvent::error(
            ErrorCode::InterviewMoved,
            "another node serves this interview now: reconnect and resume",
        );
        c.send(Outbound::Text(Arc::from(ev.ephemeral_text(Some(seq)))));
        c.send(Outbound::Close("interview moved to another node".into()));
    }
}

#[ractor::async_trait]
impl Actor for InterviewSupervisor {
    type Msg = SupervisorMsg;
    type State = SupervisorState;
    type Arguments = Arc<SessionDeps>;

    async fn pre_start(
        &self,
        myself: ActorRef<SupervisorMsg>,
        deps: Arc<SessionDeps>,
    ) -> Result<SupervisorState, ActorProcessingErr> {
        if let Some(c) = &deps.cluster {
            let every = c.lease_renewal_interval();
            myself.send_interval(every, || SupervisorMsg::RenewLeases);
        }
        Ok(SupervisorState {
            deps,
            live: HashMap::new(),
            failed: HashMap::new(),
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<SupervisorMsg>,
        msg: SupervisorMsg,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            SupervisorMsg::Get(id, reply) => {
                if state.failed.contains_key(&id) {
                    let _ = reply.send(Err(SessionError::Failed));
                    return Ok(());
                }
                if let Some(e) = state.live.get(&id) {
                    let _ = reply.send(Ok(e.actor.clone()));
                    return Ok(());
                }
                if state.live.len() >= state.deps.live.max {
                    let _ = reply.send(Err(SessionError::Busy));
                    return Ok(());
                }
                // Cluster mode: one live session per interview cluster-wide. Take the lease (and
                // bring this node's log up to date from Redis) or say where the interview lives.
                if let Some(c) = &state.deps.cluster {
                    match c.place(&id).await {
                        Ok(Placement::Here(_)) => {}
                        Ok(Placement::Elsewhere {
                            node_id,
                            url,
                            expires_in,
                        }) => {
                            let _ = reply.send(Err(SessionError::Elsewhere {
                                node_id,
                                url,
                                expires_in,
                            }));
                            return Ok(());
                        }
                        Err(e) => {
                            let _ = reply.send(Err(SessionError::Cluster(e.to_string())));
                            return Ok(());
                        }
                    }
                }
                let r = match state.load(&id) {
                    Ok(record) => {
                        let conn: ConnSlot = Arc::new(Mutex::new(None));
                        match spawn_session(
                            record,
                            state.deps.clone(),
                            conn.clone(),
                            false,
                            myself.get_cell(),
                        )
                        .await
                        {
                            Ok(actor) => {
                                state.live.insert(
                                    id.clone(),
                                    Entry {
                                        actor: actor.clone(),
                                        conn,
                                        restarts: Restarts::default(),
                                    },
                                );
                                Ok(actor)
                            }
                            Err(e) => Err(e),
                        }
                    }
                    Err(e) => Err(e),
                };
                if r.is_err() {
                    if let Some(c) = &state.deps.cluster {
                        c.release(&id).await;
                    }
                }
                state.deps.live.set(state.live.len());
                let _ = reply.send(r);
            }
            SupervisorMsg::Live(reply) => {
                let _ = reply.send(state.live.len());
            }
            SupervisorMsg::RenewLeases => {
                if let Some(c) = state.deps.cluster.clone() {
                    let me = myself.clone();
                    // Off the supervisor's mailbox: renewals wait on Redis.
                    tokio::spawn(async move {
                        let lost = c.renew_all().await;
                        if !lost.is_empty() {
                            let _ = me.cast(SupervisorMsg::LeasesLost(lost));
                        }
                    });
                }
            }
            SupervisorMsg::LeasesLost(ids) => {
                for id in ids {
                    if let Some(entry) = state.live.remove(&id) {
                        tracing::warn!(interview = %id, "lease lost: another node owns the interview now; session stopped");
                        moved(&entry, &state.deps, &id);
                        entry.actor.stop(Some("lease lost".into()));
                    }
                }
                state.deps.live.set(state.live.len());
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<SupervisorMsg>,
        event: SupervisionEvent,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        let Some((cell, stop)) = child_stop(&event) else {
            return Ok(());
        };
        let Some(id) = state
            .live
            .iter()
            .find(|(_, e)| e.actor.get_id() == cell.get_id())
            .map(|(id, _)| id.clone())
        else {
            return Ok(());
        };
        let Some(mut entry) = state.live.remove(&id) else {
            return Ok(());
        };
        state.deps.live.set(state.live.len());
        let Stop::Failed(why) = stop else {
            // Stopped normally (finished, idle, shutdown): every step is appended; let another
            // node take the interview at once.
            if let Some(c) = state.deps.cluster.clone() {
                c.release(&id).await;
            }
            return Ok(());
        };
        if let Some(c) = &state.deps.cluster {
            if !c.holds(&id) {
                // Its append was refused: another node owns the interview. Never restart here.
                tracing::warn!(interview = %id, error = %why, "session stopped: another node owns the interview");
                moved(&entry, &state.deps, &id);
                return Ok(());
            }
        }
        tracing::error!(interview = %id, error = %why, restarts = entry.restarts.count(), "session failed");
        if !entry.restarts.take_within(MAX_SESSION_RESTARTS) {
            tracing::error!(interview = %id, "session keeps failing; closed (its log is kept)");
            let conn = entry.conn.lock().unwrap_or_else(|p| p.into_inner()).clone();
            if let Some(c) = conn {
                let seq = state
                    .deps
                    .log
                    .load(&id)
                    .ok()
                    .flatten()
                    .map_or(0, |r| r.last_seq());
                let ev = ServerEvent::error(ErrorCode::InterviewFailed, "the interview was closed after repeated internal errors; everything answered so far is kept");
                c.send(Outbound::Text(Arc::from(ev.ephemeral_text(Some(seq)))));
                c.send(Outbound::Close("interview failed".into()));
            }
            state.deps.budget.release(&id);
            state.failed.insert(id, entry.restarts.count());
            return Ok(());
        }
        match state.load(&id) {
            Ok(record) => match spawn_session(
                record,
                state.deps.clone(),
                entry.conn.clone(),
                true,
                myself.get_cell(),
            )
            .await
            {
                Ok(actor) => {
                    tracing::warn!(interview = %id, "session restarted from its log");
                    state.live.insert(
                        id,
                        Entry {
                            actor,
                            conn: entry.conn,
                            restarts: entry.restarts,
                        },
                    );
                    state.deps.live.set(state.live.len());
                }
                Err(e) => tracing::error!(interview = %id, error = %e, "session restart failed"),
            },
            Err(e) => {
                tracing::error!(interview = %id, error = %e, "session record unreadable; not restarted")
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
