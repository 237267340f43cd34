//! `RouterActor`: owns and supervises the key actors and answers which keys to try for a request:
//! by priority tier first, then by headroom (the remaining fraction of each key's tightest window).
//!
//! The router is never on a request's path: it publishes the live key list in a [`KeyDirectory`] that
//! the caller's task reads ([`crate::pool::Pool`]), ordered at call time from gauges the key actors
//! publish. The router's job is to own the key actors, restart them, and keep the directory current.

use std::sync::Arc;

use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};

use crate::budget::Capacity;
use crate::key::{KeyActor, KeyArgs, KeyGauge, KeyMsg, KeySpec, KeyStatus, SharedQuota};
use crate::quota::DayLeft;
use crate::restart::{stopped_child, Restarts};
use crate::storage::UsageLedger;

/// One key as the router knows it.
#[derive(Clone)]
pub struct Candidate {
    /// The key's description.
    pub spec: Arc<KeySpec>,
    /// Its actor.
    pub actor: ActorRef<KeyMsg>,
    gauge: Arc<KeyGauge>,
    quota: Arc<SharedQuota>,
}

/// The live key list, shared by the router (writer, on restarts) and every `Pool` handle (readers).
#[derive(Clone, Default)]
pub struct KeyDirectory(Arc<std::sync::RwLock<Vec<Candidate>>>);

impl KeyDirectory {
    /// The keys to try for a request, best first: valid ones only; unblocked before blocked; lower
    /// priority first; more headroom first.
    pub fn plan(&self) -> Vec<Candidate> {
        let guard = self.0.read().unwrap_or_else(|p| p.into_inner());
        let mut c: Vec<Candidate> = guard
            .iter()
            .filter(|c| !c.gauge.is_invalid())
            .cloned()
            .collect();
        drop(guard);
        c.sort_by(|a, b| {
            a.gauge
                .is_blocked()
                .cmp(&b.gauge.is_blocked())
                .then(a.spec.priority.cmp(&b.spec.priority))
                .then(b.gauge.headroom().total_cmp(&a.gauge.headroom()))
        });
        c
    }

    /// What the usable keys can still serve today: each quota scope counted once; a scope without a
    /// daily request (token) limit makes requests (tokens) unlimited.
    pub fn day_capacity(&self) -> Capacity {
        let guard = self.0.read().unwrap_or_else(|p| p.into_inner());
        let left: Vec<(&str, DayLeft)> = guard
            .iter()
            .filter(|c| !c.gauge.is_invalid())
            .map(|c| (c.quota.scope.as_str(), c.quota.day_left()))
            .collect();
        Capacity::over_scopes(left)
    }

    fn set(&self, list: Vec<Candidate>) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = list;
    }
}

/// Messages of the router.
pub enum RouterMsg {
    /// Every key's status.
    Status(RpcReplyPort<Vec<KeyStatus>>),
}

/// A key to run: its spec and the quota it draws on.
pub struct KeyConfig {
    /// The key.
    pub spec: Arc<KeySpec>,
    /// Its quota (shared by the keys of one scope).
    pub quota: Arc<SharedQuota>,
}

/// What the router starts with.
pub struct RouterArgs {
    /// All keys of all providers.
    pub keys: Vec<KeyConfig>,
    /// The usage ledger.
    pub ledger: Arc<dyn UsageLedger>,
    /// Where the live key list is published.
    pub directory: KeyDirectory,
}

struct Slot {
    config: KeyConfig,
    candidate: Candidate,
    restarts: Restarts,
}

/// The router's state: one slot per key.
pub struct RouterState {
    slots: Vec<Slot>,
    ledger: Arc<dyn UsageLedger>,
    directory: KeyDirectory,
}

impl RouterState {
    fn publish(&self) {
        self.directory
            .set(self.slots.iter().map(|s| s.candidate.clone()).collect());
    }
}

/// The router actor.
pub struct RouterActor;

async fn spawn_key(
    config: &KeyConfig,
    ledger: &Arc<dyn UsageLedger>,
    gauge: Arc<KeyGauge>,
    supervisor: ActorCell,
) -> Result<ActorRef<KeyMsg>, ActorProcessingErr> {
    let args = KeyArgs {
        spec: config.spec.clone(),
        quota: config.quota.clone(),
        ledger: ledger.clone(),
        gauge,
    };
    let (actor, _) = Actor::spawn_linked(None, KeyActor, args, supervisor).await?;
    Ok(actor)
}

#[ractor::async_trait]
impl Actor for RouterActor {
    type Msg = RouterMsg;
    type State = RouterState;
    type Arguments = RouterArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<RouterMsg>,
        args: RouterArgs,
    ) -> Result<RouterState, ActorProcessingErr> {
        let mut slots = Vec::with_capacity(args.keys.len());
        for config in args.keys {
            let gauge = Arc::new(KeyGauge::default());
            let actor = spawn_key(&config, &args.ledger, gauge.clone(), myself.get_cell()).await?;
            let candidate = Candidate {
                spec: config.spec.clone(),
                actor,
                gauge,
                quota: config.quota.clone(),
            };
            slots.push(Slot {
                config,
                candidate,
                restarts: Restarts::default(),
            });
        }
        let state = RouterState {
            slots,
            ledger: args.ledger,
            directory: args.directory,
        };
        state.publish();
        Ok(state)
    }

    async fn handle(
        &self,
        _myself: ActorRef<RouterMsg>,
        msg: RouterMsg,
        state: &mut RouterState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            RouterMsg::Status(reply) => {
                let mut out = Vec::with_capacity(state.slots.len());
                for slot in &state.slots {
                    let actor = &slot.candidate.actor;
                    match actor
                        .call(KeyMsg::Status, Some(std::time::Duration::from_secs(2)))
                        .await
                    {
                        Ok(ractor::rpc::CallResult::Success(s)) => out.push(s),
                        _ => {
                            tracing::warn!(key = %slot.config.spec.id, "key actor did not answer a status call")
                        }
                    }
                }
                let _ = reply.send(out);
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<RouterMsg>,
        event: SupervisionEvent,
        state: &mut RouterState,
    ) -> Result<(), ActorProcessingErr> {
        let Some((id, why)) = stopped_child(&event) else {
            return Ok(());
        };
        let Some(slot) = state
            .slots
            .iter_mut()
            .find(|s| s.candidate.actor.get_id() == id)
        else {
            return Ok(());
        };
        if !slot.restarts.take() {
            tracing::error!(key = %slot.config.spec.id, why, "key actor keeps failing; left stopped");
            return Ok(());
        }
        tracing::warn!(key = %slot.config.spec.id, why, restarts = slot.restarts.count(), "key actor stopped; restarting (quota state is kept)");
        let actor = spawn_key(
            &slot.config,
            &state.ledger,
            slot.candidate.gauge.clone(),
            myself.get_cell(),
        )
        .await?;
        slot.candidate.actor = actor;
        state.publish();
        Ok(())
    }
}
