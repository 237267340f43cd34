//! The GPU pool's supervising actor: it owns one `GpuNode` actor per node, restarts a stopped one
//! (restart.rs's rule) and probes every node on demand. Requests never pass through it: the handle
//! (handle.rs) dispatches in the caller's task.

use std::sync::Arc;
use std::time::Duration;

use ractor::rpc::CallResult;
use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};

use super::GpuPoolConfig;
use crate::gpu_node::{GpuNode, GpuNodeArgs, GpuNodeMsg, GpuNodeSpec, NodeShared, NodeState};
use crate::restart::{stopped_child, Restarts};

/// Messages of the pool actor.
pub enum GpuPoolMsg {
    /// Probes every node now and replies with their states.
    ProbeAll(RpcReplyPort<Vec<NodeState>>),
}

/// The pool actor: owns the node actors and restarts them. Requests never pass through it.
pub struct GpuPoolActor;

/// What the pool actor starts with (built by [`GpuPool::start`](super::GpuPool::start)).
pub struct GpuPoolArgs {
    pub(super) nodes: Vec<(Arc<GpuNodeSpec>, Arc<NodeShared>)>,
    pub(super) http: reqwest::Client,
    pub(super) config: GpuPoolConfig,
}

struct NodeSlot {
    spec: Arc<GpuNodeSpec>,
    shared: Arc<NodeShared>,
    actor: ActorRef<GpuNodeMsg>,
    restarts: Restarts,
}

/// The pool actor's state: one slot per node.
pub struct GpuPoolState {
    slots: Vec<NodeSlot>,
    http: reqwest::Client,
    config: GpuPoolConfig,
}

async fn spawn_node(
    spec: &Arc<GpuNodeSpec>,
    shared: &Arc<NodeShared>,
    http: &reqwest::Client,
    config: &GpuPoolConfig,
    supervisor: ActorCell,
) -> Result<ActorRef<GpuNodeMsg>, ActorProcessingErr> {
    let args = GpuNodeArgs {
        spec: spec.clone(),
        shared: shared.clone(),
        http: http.clone(),
        probe_interval: config.probe_interval,
        breaker_failures: config.breaker_failures,
        breaker_cooldown: config.breaker_cooldown,
    };
    let (actor, _) = Actor::spawn_linked(None, GpuNode, args, supervisor).await?;
    Ok(actor)
}

#[ractor::async_trait]
impl Actor for GpuPoolActor {
    type Msg = GpuPoolMsg;
    type State = GpuPoolState;
    type Arguments = GpuPoolArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<GpuPoolMsg>,
        args: GpuPoolArgs,
    ) -> Result<GpuPoolState, ActorProcessingErr> {
        let mut slots = Vec::with_capacity(args.nodes.len());
        for (spec, shared) in args.nodes {
            let actor =
                spawn_node(&spec, &shared, &args.http, &args.config, myself.get_cell()).await?;
            slots.push(NodeSlot {
                spec,
                shared,
                actor,
                restarts: Restarts::default(),
            });
        }
        tracing::info!(nodes = slots.len(), "gpu pool started");
        Ok(GpuPoolState {
            slots,
            http: args.http,
            config: args.config,
        })
    }

    async fn post_stop(
        &self,
        myself: ActorRef<GpuPoolMsg>,
        _state: &mut GpuPoolState,
    ) -> Result<(), ActorProcessingErr> {
        myself.stop_children(None);
        Ok(())
    }

    async fn handle(
        &self,
        _myself: ActorRef<GpuPoolMsg>,
        msg: GpuPoolMsg,
        state: &mut GpuPoolState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            GpuPoolMsg::ProbeAll(reply) => {
                let mut out = Vec::with_capacity(state.slots.len());
                for slot in &state.slots {
                    let r = slot
                        .actor
                        .call(GpuNodeMsg::ProbeNow, Some(Duration::from_secs(6)))
                        .await;
                    match r {
                        Ok(CallResult::Success(s)) => out.push(s),
                        _ => {
                            tracing::warn!(node = %slot.spec.name, "gpu node actor did not answer a probe call");
                            out.push(slot.shared.state());
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
        myself: ActorRef<GpuPoolMsg>,
        event: SupervisionEvent,
        state: &mut GpuPoolState,
    ) -> Result<(), ActorProcessingErr> {
        let Some((id, why)) = stopped_child(&event) else {
            return Ok(());
        };
        let Some(slot) = state.slots.iter_mut().find(|s| s.actor.get_id() == id) else {
            return Ok(());
        };
        if !slot.restarts.take() {
            tracing::error!(node = %slot.spec.name, why, "gpu node actor keeps failing; left stopped");
            slot.shared.mark_down(format!(
                "node actor stopped after {} restarts",
                slot.restarts.count()
            ));
            return Ok(());
        }
        tracing::warn!(node = %slot.spec.name, why, restarts = slot.restarts.count(), "gpu node actor stopped; restarting");
        slot.actor = spawn_node(
            &slot.spec,
            &slot.shared,
            &state.http,
            &state.config,
            myself.get_cell(),
        )
        .await?;
        Ok(())
    }
}
