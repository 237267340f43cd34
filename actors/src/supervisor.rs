//! `InterviewSupervisor`: spawns one linked `InterviewSession` per live interview, finds it for
//! connections (bringing it back from the log after a process restart), and restarts a session that
//! fails (panic or error) from its last committed record, up to a bound ([`crate::restart`]'s rule:
//! a session that failed is restarted, one that exited is not). A session that hibernates
//! (`SessionDeps::hibernate_after`) leaves an `Asleep` entry here holding its connection; the next
//! message for the interview, or its idle timeout (`WakeDue`), spawns it again from the log.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use std::time::Duration;

use ractor::{
    Actor, ActorCell, ActorProcessingErr, ActorRef, ActorStatus, RpcReplyPort, SupervisionEvent,
};

use crate::cluster::sessions::Placement;
use crate::conn::{ConnHandle, ConnSlot, Outbound};
use crate::interview::InterviewRecord;
use crate::protocol::{ErrorCode, ServerEvent};
use crate::restart::{child_stop, Restarts, Stop};
use crate::session::{InterviewSession, SessionArgs, SessionDeps, SessionMsg, HIBERNATE};

/// Restarts allowed per session before it is closed with an error (its log is kept).
pub const MAX_SESSION_RESTARTS: u32 = 3;

/// How often, at most, the supervisor looks for hibernating sessions due to wake.
const WAKE_CHECK: Duration = Duration::from_secs(30);

/// How many sessions may be live on this node (`limits.max_live_sessions`), and how many are: the
/// supervisor keeps the count, the HTTP layer reads it to refuse work the node cannot take.
#[derive(Debug)]
pub struct LiveSessions {
    max: usize,
    live: AtomicUsize,
    asleep: AtomicUsize,
}

impl LiveSessions {
    /// At most `max` live sessions.
    pub fn new(max: usize) -> Self {
        LiveSessions {
            max: max.max(1),
            live: AtomicUsize::new(0),
            asleep: AtomicUsize::new(0),
        }
    }

    /// Interviews whose session hibernates now (not counted in [`LiveSessions::live`]: they hold
    /// no actor, only their connection's place).
    pub fn hibernated(&self) -> usize {
        self.asleep.load(Ordering::Relaxed)
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
    /// A message a session took while going to sleep, for the session that follows it.
    Deliver(String, Box<SessionMsg>),
    /// Wake the hibernating sessions whose idle timeout may have come (they expire themselves), and
    /// forget the connections of those whose client went away.
    WakeDue,
    /// Cluster mode: these interviews' leases were lost; stop their sessions.
    LeasesLost(Vec<String>),
}

struct Entry {
    actor: ActorRef<SessionMsg>,
    conn: ConnSlot,
    restarts: Restarts,
}

/// A hibernating session: no actor, its record in the log; the connection stays attached here, and
/// the next message for the interview (or its idle timeout) brings the session back.
struct Asleep {
    conn: ConnSlot,
    /// When its idle timeout may have come: it is woken then, to expire itself if it has.
    wake_at: std::time::Instant,
}

/// The supervisor's state.
pub struct SupervisorState {
    deps: Arc<SessionDeps>,
    live: HashMap<String, Entry>,
    asleep: HashMap<String, Asleep>,
    failed: HashMap<String, u32>,
    /// Sessions that went to sleep since the freed memory was last given back to the system.
    slept_since_trim: usize,
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
    /// The live session of interview `id`: the running one, or one spawned from the log (with the
    /// connection of a hibernating or leaving predecessor).
    async fn session(
        &mut self,
        id: &str,
        myself: &ActorRef<SupervisorMsg>,
    ) -> Result<ActorRef<SessionMsg>, SessionError> {
        if self.failed.contains_key(id) {
            return Err(SessionError::Failed);
        }
        if let Some(e) = self.live.get(id).filter(|e| !stopping(&e.actor)) {
            return Ok(e.actor.clone());
        }
        // A session on its way out (hibernating, or stopping for another reason) is replaced now,
        // with its connection: a message for it must not be lost in between.
        let leaving = self.live.remove(id).map(|e| e.conn);
        if self.live.len() >= self.deps.live.max {
            return Err(SessionError::Busy);
        }
        // Cluster mode: one live session per interview cluster-wide. Take the lease (and bring
        // this node's log up to date from Redis) or say where the interview lives.
        if let Some(c) = &self.deps.cluster {
            match c.place(id).await {
                Ok(Placement::Here(_)) => {}
                Ok(Placement::Elsewhere {
                    node_id,
                    url,
                    expires_in,
                }) => {
                    return Err(SessionError::Elsewhere {
                        node_id,
                        url,
                        expires_in,
                    })
                }
                Err(e) => return Err(SessionError::Cluster(e.to_string())),
            }
        }
        // A hibernating session comes back with the connection it had.
        let kept = self.asleep.remove(id).map(|a| a.conn).or(leaving);
        let conn: ConnSlot = kept.unwrap_or_else(|| Arc::new(Mutex::new(None)));
        let r = match self.load(id) {
            Ok(record) => {
                spawn_session(
                    record,
                    self.deps.clone(),
                    conn.clone(),
                    false,
                    myself.get_cell(),
                )
                .await
            }
            Err(e) => Err(e),
        };
        match &r {
            Ok(actor) => {
                self.live.insert(
                    id.to_string(),
                    Entry {
                        actor: actor.clone(),
                        conn,
                        restarts: Restarts::default(),
                    },
                );
            }
            Err(_) => {
                if let Some(c) = &self.deps.cluster {
                    c.release(id).await;
                }
            }
        }
        self.counted();
        r
    }

    fn counted(&self) {
        self.deps.live.set(self.live.len());
        self.deps
            .live
            .asleep
            .store(self.asleep.len(), Ordering::Relaxed);
    }

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

/// Whether a session actor is stopping or stopped (its mailbox takes nothing more).
fn stopping(actor: &ActorRef<SessionMsg>) -> bool {
    matches!(
        actor.get_status(),
        ActorStatus::Draining | ActorStatus::Stopping | ActorStatus::Stopped
    )
}

/// Tells a session's client that its interview moved to another node, and closes the connection.
fn moved(conn: &ConnSlot, deps: &SessionDeps, id: &str) {
    let conn = conn.lock().unwrap_or_else(|p| p.into_inner()).clone();
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
        if let Some(after) = deps.hibernate_after {
            let every = after.clamp(Duration::from_secs(1), WAKE_CHECK);
            myself.send_interval(every, || SupervisorMsg::WakeDue);
        }
        Ok(SupervisorState {
            deps,
            live: HashMap::new(),
            asleep: HashMap::new(),
            failed: HashMap::new(),
            slept_since_trim: 0,
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
                let r = state.session(&id, &myself).await;
                let _ = reply.send(r);
            }
            SupervisorMsg::Deliver(id, msg) => {
                // A message its session took while it was going to sleep: for its successor.
                if let Ok(actor) = state.session(&id, &myself).await {
                    let _ = actor.cast(*msg);
                }
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
                        moved(&entry.conn, &state.deps, &id);
                        entry.actor.stop(Some("lease lost".into()));
                    }
                    if let Some(a) = state.asleep.remove(&id) {
                        moved(&a.conn, &state.deps, &id);
                    }
                }
                state.counted();
            }
            SupervisorMsg::WakeDue => {
                let now = std::time::Instant::now();
                let mut due = Vec::new();
                for (id, a) in &state.asleep {
                    let mut slot = a.conn.lock().unwrap_or_else(|p| p.into_inner());
                    if slot.as_ref().is_some_and(ConnHandle::is_closed) {
                        // Its client went away while it slept: it wakes detached.
                        *slot = None;
                    }
                    if a.wake_at <= now {
                        due.push(id.clone());
                    }
                }
                if state.slept_since_trim > 0 {
                    // What the sleepers freed goes back to the system, off the actors' threads.
                    state.slept_since_trim = 0;
                    tokio::task::spawn_blocking(crate::memory::give_back);
                }
                for id in due {
                    // Through Get, as a client would: the reply is not needed.
                    let (tx, _rx) = ractor::concurrency::oneshot();
                    let _ = myself.cast(SupervisorMsg::Get(id, tx.into()));
                }
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
        if matches!(&stop, Stop::Exited(Some(r)) if r == HIBERNATE) {
            // Hibernating: the interview goes on (its lease and quota are kept); the connection
            // stays here until the next message brings the session back.
            let idle = state.deps.idle_timeout;
            let slept_after = state.deps.hibernate_after.unwrap_or_default();
            let wake_at = std::time::Instant::now()
                + idle.saturating_sub(slept_after).max(Duration::from_secs(1));
            state.asleep.insert(
                id,
                Asleep {
                    conn: entry.conn,
                    wake_at,
                },
            );
            state.slept_since_trim += 1;
            state.counted();
            return Ok(());
        }
        state.counted();
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
                moved(&entry.conn, &state.deps, &id);
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
                    state.counted();
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
