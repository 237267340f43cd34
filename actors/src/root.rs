//! `EngineRoot`: the one root of the engine's supervision tree. The long-lived actors the server
//! starts (the interview supervisor, the key router, the reuse cache and the GPU and speech node
//! pools) are spawned linked to it, so no actor of the engine runs unsupervised, and shutdown
//! stops them in a fixed order (`engine/src/server.rs`).
//!
//! Restarts happen one level down, where the state to restart from is: the interview supervisor
//! restarts sessions from their logs, the router its key actors, a GPU pool its node actors (each
//! through [`crate::restart`]). The root restarts none of its own children, for one reason shared by
//! all of them: each is reached through handles cloned across the engine (`Pool` holds the router,
//! `Cache` its actor, `GpuPool` its actor, the HTTP layer the supervisor), so a restarted actor would
//! be a new `ActorRef` nobody holds. A child that fails is logged as an error and counted
//! ([`RootHealth`]); one that stops normally (shutdown) is logged at debug. Without the root, a
//! child's failure went unnoticed; ractor's default would stop the root with it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use ractor::{Actor, ActorProcessingErr, ActorRef, SupervisionEvent};

use crate::restart::{child_stop, Stop};

/// What the root has seen of its children, readable without a message.
#[derive(Debug, Default)]
pub struct RootHealth {
    failures: AtomicU64,
}

impl RootHealth {
    /// Children of the root that failed since start.
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }
}

/// The root actor. It takes no messages: it exists to supervise.
pub struct EngineRoot;

/// The root's (empty) message type.
pub enum RootMsg {}

#[ractor::async_trait]
impl Actor for EngineRoot {
    type Msg = RootMsg;
    type State = Arc<RootHealth>;
    type Arguments = Arc<RootHealth>;

    async fn pre_start(
        &self,
        _myself: ActorRef<RootMsg>,
        health: Arc<RootHealth>,
    ) -> Result<Arc<RootHealth>, ActorProcessingErr> {
        Ok(health)
    }

    async fn handle_supervisor_evt(
        &self,
        _myself: ActorRef<RootMsg>,
        event: SupervisionEvent,
        health: &mut Arc<RootHealth>,
    ) -> Result<(), ActorProcessingErr> {
        match child_stop(&event) {
            Some((cell, Stop::Failed(why))) => {
                health.failures.fetch_add(1, Ordering::Relaxed);
                tracing::error!(
                    actor = cell.get_name().unwrap_or_default(),
                    id = %cell.get_id(),
                    error = %why,
                    "engine actor failed; it is not restarted (see actors/src/root.rs)"
                );
            }
            Some((cell, Stop::Exited(reason))) => {
                tracing::debug!(
                    actor = cell.get_name().unwrap_or_default(),
                    reason = reason.unwrap_or_default(),
                    "engine actor stopped"
                );
            }
            None => {}
        }
        Ok(())
    }
}

/// Starts the root.
pub async fn start() -> Result<(ActorRef<RootMsg>, Arc<RootHealth>), ractor::SpawnErr> {
    let health = Arc::new(RootHealth::default());
    let (root, _) = Actor::spawn(Some("engine".into()), EngineRoot, health.clone()).await?;
    Ok((root, health))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use std::time::Duration;

    struct Crasher;

    #[ractor::async_trait]
    impl Actor for Crasher {
        type Msg = ();
        type State = ();
        type Arguments = ();

        async fn pre_start(&self, _myself: ActorRef<()>, _: ()) -> Result<(), ActorProcessingErr> {
            Ok(())
        }

        async fn handle(
            &self,
            _myself: ActorRef<()>,
            _msg: (),
            _: &mut (),
        ) -> Result<(), ActorProcessingErr> {
            Err("boom".into())
        }
    }

    #[tokio::test]
    async fn a_failing_child_is_counted_and_the_root_stays_up() {
        let (root, health) = start().await.unwrap();
        let (child, join) = Actor::spawn_linked(None, Crasher, (), root.get_cell())
            .await
            .unwrap();
        child.cast(()).unwrap();
        join.await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(health.failures(), 1);
        assert_eq!(root.get_status(), ractor::ActorStatus::Running);
        // A child stopped normally is not a failure.
        let (child, _) = Actor::spawn_linked(None, Crasher, (), root.get_cell())
            .await
            .unwrap();
        child
            .stop_and_wait(Some("shutdown".into()), Some(Duration::from_secs(1)))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(health.failures(), 1);
        assert_eq!(root.get_status(), ractor::ActorStatus::Running);
        root.stop(None);
    }
}
