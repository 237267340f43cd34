//! `RouterActor`: owns and supervises the key actors and answers which keys to try for a request:
//! by priority tier first, then by headroom (the remaining fraction of each key's tightest window).
//!
//! The router is never on a request's path: it publishes the live key list in a [`KeyDirectory`] that
//! the caller's task reads ([`crate::pool::Pool`]), ordered at call time from gauges the key actors
//! publish and from each key's windows ([`Candidate::estimate`]: how long a request would wait there).
//! The router's job is to own the key actors, restart them, and keep the directory current.

use std::sync::Arc;
use std::time::Instant;

use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};

use crate::budget::Capacity;
use crate::clock::Clock;
use crate::key::{
    free_day_left, KeyActor, KeyArgs, KeyGauge, KeyMsg, KeyQuotas, KeySpec, KeyStatus, Refusal,
    RefusalReason,
};
use crate::quota::{Blocked, Cost, DayLeft};
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
    quotas: Arc<KeyQuotas>,
    ledger: Arc<dyn UsageLedger>,
}

/// How soon a key could start a request.
#[derive(Debug, Clone, Copy)]
pub enum Estimate {
    /// Room now, nobody waiting.
    Now,
    /// Room expected at the instant (a window opens, a cool-down ends, a slot frees).
    At(Instant),
    /// Not here: the key is unusable, the breaker is open, or the request can never fit.
    Never(Refusal),
}

impl Candidate {
    /// How soon this key could start a request of `cost` for `model`, from its windows (read
    /// directly) and its published queue and service time; no message round trip.
    pub fn estimate(&self, cost: Cost, model: Option<&str>, now: Instant) -> Estimate {
        self.estimate_with_headroom(cost, model, now).0
    }

    /// [`Candidate::estimate`], with the remaining fraction of the quota's tightest window now.
    pub fn estimate_with_headroom(
        &self,
        cost: Cost,
        model: Option<&str>,
        now: Instant,
    ) -> (Estimate, f64) {
        let v = self.gauge.view();
        if v.invalid {
            let r = Refusal {
                reason: RefusalReason::Invalid,
                ready_at: None,
                too_large: None,
            };
            return (Estimate::Never(r), 0.0);
        }
        if let Some(until) = v.open_until {
            let r = Refusal {
                reason: RefusalReason::CircuitOpen,
                ready_at: Some(until),
                too_large: None,
            };
            return (Estimate::Never(r), 0.0);
        }
        let q = self.quotas.get(self.quotas.index_of(model));
        let mut g = q.lock();
        let wall = Clock::wall();
        let headroom = g.usage(now, wall).headroom;
        let slot_wait = |conc: Option<u32>| {
            let conc = conc.unwrap_or(1).max(1) as usize;
            now + v.service * (v.queued / conc + 1) as u32
        };
        let e = match g.check(now, wall, cost) {
            Ok(()) if g.slot_free() && v.queued == 0 && !v.probing => Estimate::Now,
            Ok(()) => Estimate::At(slot_wait(g.slots().1)),
            Err(Blocked::TooLarge {
                window,
                limit,
                need,
            }) => Estimate::Never(Refusal {
                reason: RefusalReason::TooLarge,
                ready_at: None,
                too_large: Some((window, limit, need)),
            }),
            Err(Blocked::Until(at) | Blocked::CoolingDown(at)) => {
                Estimate::At(at.max(if v.queued > 0 {
                    slot_wait(g.slots().1)
                } else {
                    at
                }))
            }
            Err(Blocked::Day(reset)) => {
                let d = (reset - Clock::wall()).to_std().unwrap_or_default();
                Estimate::At(now + d)
            }
            Err(Blocked::Concurrency) => Estimate::At(slot_wait(g.slots().1)),
        };
        (e, headroom)
    }

    /// Remaining fraction of the key's tightest window.
    pub fn headroom(&self) -> f64 {
        self.gauge.headroom()
    }

    /// A permit taken directly when the key is healthy, nobody waits and there is room now; `None`
    /// sends the caller to the key actor (see [`crate::key::try_fast`]).
    pub async fn try_fast(&self, cost: Cost, model: Option<&str>) -> Option<crate::key::Permit> {
        crate::key::try_fast(
            &self.actor,
            &self.spec,
            &self.quotas,
            &self.gauge,
            &self.ledger,
            cost,
            model,
        )
        .await
    }
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
            .map(|c| {
                let q = &c.quotas.default;
                let left = q.day_left(&c.spec.rates_for(None));
                (q.scope.as_str(), free_day_left(&c.spec, q.limits(), left))
            })
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

/// A key to run: its spec and the quotas it draws on.
pub struct KeyConfig {
    /// The key.
    pub spec: Arc<KeySpec>,
    /// Its quotas (shared by the keys of one scope).
    pub quotas: KeyQuotas,
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
    quotas: Arc<KeyQuotas>,
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
    quotas: &Arc<KeyQuotas>,
    ledger: &Arc<dyn UsageLedger>,
    gauge: Arc<KeyGauge>,
    supervisor: ActorCell,
) -> Result<ActorRef<KeyMsg>, ActorProcessingErr> {
    let args = KeyArgs {
        spec: config.spec.clone(),
        quotas: quotas.clone(),
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
            let quotas = Arc::new(config.quotas.clone());
            let actor = spawn_key(
                &config,
                &quotas,
                &args.ledger,
                gauge.clone(),
                myself.get_cell(),
            )
            .await?;
            let candidate = Candidate {
                spec: config.spec.clone(),
                actor,
                gauge,
                quotas: quotas.clone(),
                ledger: args.ledger.clone(),
            };
            slots.push(Slot {
                quotas,
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

    async fn post_stop(
        &self,
        myself: ActorRef<RouterMsg>,
        _state: &mut RouterState,
    ) -> Result<(), ActorProcessingErr> {
        // The key actors write their exact usage as they stop (no block to count after a restart).
        myself
            .stop_children_and_wait(
                Some("shutdown".into()),
                Some(std::time::Duration::from_secs(5)),
            )
            .await;
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
            &slot.quotas,
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

/// The order in which keys are tried and what they can serve today, on keys whose gauges are set as
/// their actors would publish them (the actors themselves idle).
#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::key::{test_spec, SharedQuota};
    use crate::quota::Limits;
    use crate::storage::NullLedger;

    /// Stands in for a key actor: the directory only holds its reference.
    struct Idle;

    #[ractor::async_trait]
    impl Actor for Idle {
        type Msg = KeyMsg;
        type State = ();
        type Arguments = ();

        async fn pre_start(
            &self,
            _myself: ActorRef<KeyMsg>,
            _args: (),
        ) -> Result<(), ActorProcessingErr> {
            Ok(())
        }
    }

    /// A key `id` of `priority` on quota `scope` (rpd `per_day`), its gauge published as given.
    async fn key(
        id: &str,
        priority: u32,
        scope: &str,
        per_day: u32,
        gauge: KeyGauge,
    ) -> (Candidate, ActorCell) {
        let (actor, _) = Actor::spawn(None, Idle, ()).await.unwrap();
        let limits = Limits {
            rpd: Some(per_day),
            ..Limits::default()
        };
        let quota = SharedQuota::restored(scope.into(), limits, chrono_tz::UTC, &NullLedger);
        let cell = actor.get_cell();
        let c = Candidate {
            spec: Arc::new(test_spec(id, priority, false)),
            actor,
            gauge: Arc::new(gauge),
            quotas: Arc::new(KeyQuotas::single(Arc::new(quota))),
            ledger: Arc::new(NullLedger),
        };
        (c, cell)
    }

    fn ids(plan: &[Candidate]) -> Vec<&str> {
        plan.iter().map(|c| c.spec.id.as_str()).collect()
    }

    async fn directory(keys: Vec<(Candidate, ActorCell)>) -> (KeyDirectory, Vec<ActorCell>) {
        let (list, cells): (Vec<_>, Vec<_>) = keys.into_iter().unzip();
        let dir = KeyDirectory::default();
        dir.set(list);
        (dir, cells)
    }

    fn stop(cells: Vec<ActorCell>) {
        for c in cells {
            c.stop(None);
        }
    }

    #[tokio::test]
    async fn keys_are_tried_unblocked_first_then_by_priority_then_by_headroom() {
        let ok = |h| KeyGauge::published(false, false, h);
        let (dir, cells) = directory(vec![
            key("slow#1", 2, "slow#1", 100, ok(0.9)).await,
            key(
                "cooling#1",
                1,
                "cooling#1",
                100,
                KeyGauge::published(false, true, 1.0),
            )
            .await,
            key("fast#1", 1, "fast#1", 100, ok(0.2)).await,
            key("fast#2", 1, "fast#2", 100, ok(0.7)).await,
            key(
                "refused#1",
                1,
                "refused#1",
                100,
                KeyGauge::published(true, false, 1.0),
            )
            .await,
        ])
        .await;
        assert_eq!(
            ids(&dir.plan()),
            ["fast#2", "fast#1", "slow#1", "cooling#1"],
            "an invalid key is never planned; a blocked one comes last"
        );
        stop(cells);
    }

    #[tokio::test]
    async fn today_s_capacity_counts_each_scope_once_and_no_refused_key() {
        let ok = || KeyGauge::published(false, false, 1.0);
        let (dir, cells) = directory(vec![
            key("gemini#1", 1, "gemini:shared", 100, ok()).await,
            key("gemini#2", 1, "gemini:shared", 100, ok()).await,
            key("groq#1", 1, "groq#1", 30, ok()).await,
            key(
                "groq#2",
                1,
                "groq#2",
                50,
                KeyGauge::published(true, false, 1.0),
            )
            .await,
        ])
        .await;
        let cap = dir.day_capacity();
        assert_eq!(
            cap.requests,
            Some(130),
            "100 shared once, 30, and not the refused 50"
        );
        assert_eq!(cap.tokens, None, "no daily token limit anywhere");
        stop(cells);
    }
}
