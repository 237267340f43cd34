//! `InterviewSupervisor`: spawns one linked `InterviewSession` per live interview, finds it for
//! connections (bringing it back from the log after a process restart), and restarts a session that
//! fails (panic or error) from its last committed record, up to a bound.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};

use crate::conn::{ConnSlot, Outbound};
use crate::interview::InterviewRecord;
use crate::protocol::{self, ErrorCode};
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
}

struct Entry {
    actor: ActorRef<SessionMsg>,
    conn: ConnSlot,
    restarts: u32,
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

#[ractor::async_trait]
impl Actor for InterviewSupervisor {
    type Msg = SupervisorMsg;
    type State = SupervisorState;
    type Arguments = Arc<SessionDeps>;

    async fn pre_start(
        &self,
        _myself: ActorRef<SupervisorMsg>,
        deps: Arc<SessionDeps>,
    ) -> Result<SupervisorState, ActorProcessingErr> {
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
                                        restarts: 0,
                                    },
                                );
                                Ok(actor)
                            }
                            Err(e) => Err(e),
                        }
                    }
                    Err(e) => Err(e),
                };
                state.deps.live.set(state.live.len());
                let _ = reply.send(r);
            }
            SupervisorMsg::Live(reply) => {
                let _ = reply.send(state.live.len());
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
        let (cell, failure) = match event {
            SupervisionEvent::ActorFailed(cell, err) => (cell, Some(err.to_string())),
            SupervisionEvent::ActorTerminated(cell, _, _) => (cell, None),
            _ => return Ok(()),
        };
        let Some(id) = state
            .live
            .iter()
            .find(|(_, e)| e.actor.get_id() == cell.get_id())
            .map(|(id, _)| id.clone())
        else {
            return Ok(());
        };
        let Some(entry) = state.live.remove(&id) else {
            return Ok(());
        };
        state.deps.live.set(state.live.len());
        let Some(why) = failure else {
            return Ok(()); // stopped normally (finished, idle)
        };
        tracing::error!(interview = %id, error = %why, restarts = entry.restarts, "session failed");
        if entry.restarts >= MAX_SESSION_RESTARTS {
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
                let ev = protocol::error_event(
                    ErrorCode::InterviewFailed,
                    seq,
                    "the interview was closed after repeated internal errors; everything answered so far is kept",
                );
                c.send(Outbound::Text(Arc::from(ev.to_string())));
                c.send(Outbound::Close("interview failed".into()));
            }
            state.deps.budget.release(&id);
            state.failed.insert(id, entry.restarts);
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
                            restarts: entry.restarts + 1,
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
