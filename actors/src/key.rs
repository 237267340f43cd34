//! `KeyActor`: one per API key. It owns the key's health and admits work into its quota's rate
//! windows; requests wait in a bounded queue until the windows have room (back-pressure), and a full
//! queue or a wait past the caller's deadline is refused at once so the router can try elsewhere.
//!
//! Admission hands out a [`Permit`]. The caller makes the HTTP call with the permit's target, then
//! settles it to the real usage; a permit dropped unsettled (failure, cancellation) releases its
//! reservation. Every reservation is written to the usage ledger and flushed before the permit is
//! given out, so a crash can never spend a window twice.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU32, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use serde::Serialize;

use crate::providers::{FormatKind, ProviderError, Target};
use crate::quota::{Blocked, DayLeft, Limits, Quota, QuotaUsage, ReservationId};
use crate::storage::UsageLedger;

/// What the engine knows about one key. The key itself is inside `target.secret`; `id` (`groq#2`) is
/// what logs and status pages show.
#[derive(Debug, Clone)]
pub struct KeySpec {
    /// Redacted id: provider name and the key's 1-based position in its env variable.
    pub id: String,
    /// Provider name as in config (`groq`).
    pub provider: String,
    /// Wire format.
    pub format: FormatKind,
    /// Where and how to send.
    pub target: Target,
    /// Lower is tried first.
    pub priority: u32,
    /// Consecutive failures (5xx, timeouts, malformed answers) that open the circuit breaker.
    pub breaker_failures: u32,
    /// How long an open breaker waits before a half-open probe.
    pub breaker_cooldown: Duration,
    /// Requests that may wait for room in the windows.
    pub queue_capacity: usize,
    /// Cool-down after a 429 that did not say how long to wait.
    pub default_retry_after: Duration,
}

/// A quota that one key, or every key of a shared scope, draws on.
#[derive(Debug)]
pub struct SharedQuota {
    /// Ledger key: `groq#1` for a per-key quota, `gemini:shared` for a shared one.
    pub scope: String,
    /// The windows.
    pub quota: Mutex<Quota>,
}

impl SharedQuota {
    /// A quota for `scope` restored from the ledger (a record that cannot be read is logged and skipped).
    pub fn restored(
        scope: String,
        limits: Limits,
        tz: chrono_tz::Tz,
        ledger: &dyn UsageLedger,
    ) -> Self {
        let mut quota = Quota::new(limits, tz);
        match ledger.load(&scope) {
            Ok(Some(rec)) => quota.restore(&rec, Instant::now(), Utc::now()),
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(scope = %scope, error = %e, "usage record unreadable; starting empty")
            }
        }
        Self {
            scope,
            quota: Mutex::new(quota),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Quota> {
        // A poisoned lock only means a panic elsewhere while holding it; the windows stay consistent
        // because every mutation is a single step.
        self.quota.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Current usage and headroom.
    pub fn usage(&self) -> QuotaUsage {
        self.lock().usage(Instant::now(), Utc::now())
    }

    /// The limits.
    pub fn limits(&self) -> Limits {
        *self.lock().limits()
    }

    /// What the quota can still serve today (nothing while parked for the day).
    pub fn day_left(&self) -> DayLeft {
        self.lock().day_left(Instant::now(), Utc::now())
    }
}

/// Health as the router sees it without a message round trip.
#[derive(Debug, Default)]
pub struct KeyGauge {
    headroom_bp: AtomicU32,
    state: AtomicU8,
}

/// Gauge states.
const G_OK: u8 = 0;
const G_BLOCKED: u8 = 1;
const G_INVALID: u8 = 2;

impl KeyGauge {
    /// Remaining fraction of the tightest window, 0..=1.
    pub fn headroom(&self) -> f64 {
        f64::from(self.headroom_bp.load(Ordering::Relaxed)) / 10_000.0
    }
    /// The key was refused by its provider: never route to it.
    pub fn is_invalid(&self) -> bool {
        self.state.load(Ordering::Relaxed) == G_INVALID
    }
    /// The key is cooling down, parked or its breaker is open.
    pub fn is_blocked(&self) -> bool {
        self.state.load(Ordering::Relaxed) == G_BLOCKED
    }
}

/// The key's health.
#[derive(Debug, Clone, PartialEq)]
enum Health {
    Healthy,
    /// 401/403: no more traffic.
    Invalid {
        status: u16,
    },
    /// Breaker open until the instant.
    Open {
        until: Instant,
    },
    /// Breaker half-open: one probe allowed at a time.
    HalfOpen {
        probing: bool,
    },
}

/// Why a key did not admit a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RefusalReason {
    /// The windows are full and the caller asked not to wait.
    Busy,
    /// The windows will not have room before the caller's deadline.
    NotBeforeDeadline,
    /// The waiting queue is full.
    QueueFull,
    /// The provider refused the key.
    Invalid,
    /// The breaker is open.
    CircuitOpen,
    /// The provider asked us to wait (429).
    CoolingDown,
    /// The daily quota is spent.
    DayExhausted,
    /// The request is larger than a whole window.
    TooLarge,
    /// The caller's deadline passed while waiting.
    DeadlineExceeded,
}

/// A refusal with the earliest time the key may have room.
#[derive(Debug, Clone, Copy)]
pub struct Refusal {
    /// Why.
    pub reason: RefusalReason,
    /// When room is expected, if known.
    pub ready_at: Option<Instant>,
}

/// The result of a call made with a permit, reported back to the key.
#[derive(Debug, Clone)]
pub enum CallOutcome {
    /// The provider answered.
    Ok,
    /// The provider failed.
    Failed(ProviderError),
}

/// Messages of the key actor.
pub enum KeyMsg {
    /// Reserve `tokens` in every window; wait in the queue (if `wait`) until `deadline` at the latest.
    Reserve {
        /// Estimated tokens (prompt estimate plus `max_tokens`).
        tokens: u64,
        /// The caller's deadline.
        deadline: Instant,
        /// Whether to queue when the windows are full now.
        wait: bool,
        /// The permit or why not.
        reply: RpcReplyPort<Result<Permit, Refusal>>,
    },
    /// Settle a reservation to the tokens actually used.
    Settle(ReservationId, u64),
    /// Release a reservation (`true`: the request reached the provider).
    Release(ReservationId, bool),
    /// What happened to a call.
    Outcome(CallOutcome),
    /// Status for `/api/system_status`.
    Status(RpcReplyPort<KeyStatus>),
    /// Re-check waiting requests.
    Tick,
}

/// Permission to send one request through one key. Settle it with the real usage; dropping it
/// unsettled releases the reservation.
pub struct Permit {
    key: ActorRef<KeyMsg>,
    id: ReservationId,
    /// The key's description (target, provider, id).
    pub spec: Arc<KeySpec>,
    sent: bool,
    done: bool,
}

impl std::fmt::Debug for Permit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Permit")
            .field("key", &self.spec.id)
            .field("id", &self.id)
            .finish()
    }
}

impl Permit {
    /// Marks that the request is about to go out (a later release keeps it counted as a request).
    pub fn mark_sent(&mut self) {
        self.sent = true;
    }

    /// Settles to `tokens` actually used.
    pub fn settle(mut self, tokens: u64) {
        self.done = true;
        let _ = self.key.cast(KeyMsg::Settle(self.id, tokens));
    }

    /// Releases the reservation after a failure.
    pub fn release(mut self) {
        self.done = true;
        let _ = self.key.cast(KeyMsg::Release(self.id, self.sent));
    }

    /// Reports a call's outcome to the key (health, breaker, cool-downs).
    pub fn report(&self, outcome: CallOutcome) {
        let _ = self.key.cast(KeyMsg::Outcome(outcome));
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if !self.done {
            let _ = self.key.cast(KeyMsg::Release(self.id, self.sent));
        }
    }
}

/// A key as `/api/system_status` shows it (no secret in it).
#[derive(Debug, Clone, Serialize)]
pub struct KeyStatus {
    /// Redacted id (`groq#2`).
    pub id: String,
    /// Provider name.
    pub provider: String,
    /// Model.
    pub model: String,
    /// Wire format.
    pub format: &'static str,
    /// Priority tier.
    pub priority: u32,
    /// Quota scope.
    pub scope: String,
    /// Configured limits.
    pub limits: Limits,
    /// Usage in the windows.
    pub usage: QuotaUsage,
    /// What its quota can still serve today (the same figure the call budget reads).
    pub day_left: DayLeft,
    /// `healthy`, `cooling_down`, `day_exhausted`, `circuit_open`, `half_open` or `invalid`.
    pub health: &'static str,
    /// Seconds until the key takes work again, when it is blocked.
    pub cooldown_s: Option<f64>,
    /// The last failure, classified (never containing the key).
    pub last_error: Option<String>,
    /// Requests waiting for room.
    pub queued: usize,
    /// Calls answered.
    pub served: u64,
    /// Calls failed.
    pub failed: u64,
    /// 429s received from the provider.
    pub rate_limited: u64,
}

struct Waiter {
    tokens: u64,
    deadline: Instant,
    reply: RpcReplyPort<Result<Permit, Refusal>>,
}

/// The key actor. Its dependencies are in [`KeyArgs`]; everything it changes is in [`KeyState`].
pub struct KeyActor;

/// What a key actor starts with.
pub struct KeyArgs {
    /// The key.
    pub spec: Arc<KeySpec>,
    /// The quota it draws on (shared with the other keys of its scope).
    pub quota: Arc<SharedQuota>,
    /// Where usage is persisted.
    pub ledger: Arc<dyn UsageLedger>,
    /// Published health for the router.
    pub gauge: Arc<KeyGauge>,
}

/// The key actor's state.
pub struct KeyState {
    args: KeyArgs,
    health: Health,
    consecutive_failures: u32,
    last_error: Option<String>,
    queue: VecDeque<Waiter>,
    tick_at: Option<Instant>,
    served: u64,
    failed: u64,
    rate_limited: u64,
}

impl KeyState {
    /// Refusal from health alone, or None when the key may take work. Moves Open → HalfOpen when due.
    fn health_refusal(&mut self, now: Instant) -> Option<Refusal> {
        match self.health {
            Health::Healthy => None,
            Health::Invalid { .. } => Some(Refusal {
                reason: RefusalReason::Invalid,
                ready_at: None,
            }),
            Health::Open { until } if now < until => Some(Refusal {
                reason: RefusalReason::CircuitOpen,
                ready_at: Some(until),
            }),
            Health::Open { .. } => {
                self.health = Health::HalfOpen { probing: false };
                None
            }
            Health::HalfOpen { probing: true } => Some(Refusal {
                reason: RefusalReason::CircuitOpen,
                ready_at: None,
            }),
            Health::HalfOpen { probing: false } => None,
        }
    }

    /// Tries to reserve now; on success persists the usage (and flushes) and returns the permit.
    async fn reserve_now(
        &mut self,
        myself: &ActorRef<KeyMsg>,
        tokens: u64,
    ) -> Result<Permit, Blocked> {
        let (now, wall) = (Instant::now(), Utc::now());
        let id = {
            let mut q = self.args.quota.lock();
            let id = q.try_reserve(now, wall, tokens)?;
            // Stored under the lock so that records of a shared scope are written in order.
            let record = q.record(now, wall);
            if let Err(e) = self.args.ledger.store(&self.args.quota.scope, &record) {
                tracing::error!(key = %self.args.spec.id, error = %e, "usage ledger write failed");
            }
            id
        };
        if let Err(e) = self.args.ledger.flush().await {
            tracing::error!(key = %self.args.spec.id, error = %e, "usage ledger flush failed");
        }
        if let Health::HalfOpen { probing } = &mut self.health {
            *probing = true;
        }
        Ok(Permit {
            key: myself.clone(),
            id,
            spec: self.args.spec.clone(),
            sent: false,
            done: false,
        })
    }

    fn refusal_for(&self, blocked: Blocked, deadline: Instant, wait: bool) -> Option<Refusal> {
        let now = Instant::now();
        let (reason, ready_at) = match blocked {
            Blocked::TooLarge => (RefusalReason::TooLarge, None),
            Blocked::Day(reset) => {
                let d = (reset - Utc::now()).to_std().unwrap_or(Duration::ZERO);
                (RefusalReason::DayExhausted, Some(now + d))
            }
            Blocked::CoolingDown(until) => (RefusalReason::CoolingDown, Some(until)),
            Blocked::Until(at) => (RefusalReason::Busy, Some(at)),
            Blocked::Concurrency => (RefusalReason::Busy, None),
        };
        let waitable = matches!(blocked, Blocked::Until(_) | Blocked::Concurrency);
        if !wait || !waitable {
            return Some(Refusal { reason, ready_at });
        }
        if ready_at.is_some_and(|at| at > deadline) {
            return Some(Refusal {
                reason: RefusalReason::NotBeforeDeadline,
                ready_at,
            });
        }
        if self.queue.len() >= self.args.spec.queue_capacity {
            return Some(Refusal {
                reason: RefusalReason::QueueFull,
                ready_at,
            });
        }
        None
    }

    /// Admits waiting requests while the windows have room; drops the ones past their deadline.
    async fn drain(&mut self, myself: &ActorRef<KeyMsg>) {
        loop {
            let now = Instant::now();
            let Some(front) = self.queue.front() else {
                break;
            };
            let tokens = front.tokens;
            if front.deadline <= now || front.reply.is_closed() {
                if let Some(w) = self.queue.pop_front() {
                    let _ = w.reply.send(Err(Refusal {
                        reason: RefusalReason::DeadlineExceeded,
                        ready_at: None,
                    }));
                }
                continue;
            }
            if let Some(r) = self.health_refusal(now) {
                // The key went bad while requests waited: refuse them all so they go elsewhere.
                while let Some(w) = self.queue.pop_front() {
                    let _ = w.reply.send(Err(r));
                }
                break;
            }
            match self.reserve_now(myself, tokens).await {
                Ok(permit) => {
                    if let Some(w) = self.queue.pop_front() {
                        // If the caller gave up meanwhile, the permit comes back and is dropped: released.
                        let _ = w.reply.send(Ok(permit));
                    }
                }
                Err(blocked) => {
                    let next = match blocked {
                        Blocked::Until(at) => at,
                        // Concurrency frees on a Settle/Release; poll as well for shared scopes.
                        Blocked::Concurrency => now + Duration::from_millis(50),
                        other => {
                            let r = self.refusal_for(other, now, false);
                            while let Some(w) = self.queue.pop_front() {
                                if let Some(r) = r {
                                    let _ = w.reply.send(Err(r));
                                }
                            }
                            break;
                        }
                    };
                    let next = self
                        .queue
                        .iter()
                        .map(|w| w.deadline)
                        .min()
                        .map_or(next, |d| d.min(next));
                    self.schedule_tick(myself, next);
                    break;
                }
            }
        }
        self.publish();
    }

    fn schedule_tick(&mut self, myself: &ActorRef<KeyMsg>, at: Instant) {
        if self.tick_at.is_some_and(|t| t <= at && t > Instant::now()) {
            return;
        }
        self.tick_at = Some(at);
        let delay = at.saturating_duration_since(Instant::now());
        myself.send_after(delay, || KeyMsg::Tick);
    }

    fn on_outcome(&mut self, outcome: CallOutcome) {
        let now = Instant::now();
        match outcome {
            CallOutcome::Ok => {
                self.served += 1;
                self.consecutive_failures = 0;
                if matches!(self.health, Health::HalfOpen { .. } | Health::Open { .. }) {
                    tracing::info!(key = %self.args.spec.id, "breaker closed: key healthy again");
                    self.health = Health::Healthy;
                }
            }
            CallOutcome::Failed(err) => {
                self.failed += 1;
                self.last_error = Some(err.to_string());
                match &err {
                    ProviderError::RateLimited {
                        retry_after,
                        day_exhausted,
                    } => {
                        self.rate_limited += 1;
                        let wall = Utc::now();
                        let mut q = self.args.quota.lock();
                        let until = if *day_exhausted {
                            let reset = q.next_reset(wall);
                            now + (reset - wall).to_std().unwrap_or(Duration::ZERO)
                        } else {
                            now + retry_after.unwrap_or(self.args.spec.default_retry_after)
                        };
                        q.block_until(now, wall, until);
                        let _ = self
                            .args
                            .ledger
                            .store(&self.args.quota.scope, &q.record(now, wall));
                        tracing::warn!(key = %self.args.spec.id, day_exhausted, wait_s = until.saturating_duration_since(now).as_secs_f64(), "provider rate-limited the key; cooling down");
                        if matches!(self.health, Health::HalfOpen { .. }) {
                            self.health = Health::HalfOpen { probing: false };
                        }
                    }
                    ProviderError::InvalidKey { status } => {
                        tracing::error!(key = %self.args.spec.id, status, "provider refused the key; no more traffic to it");
                        self.health = Health::Invalid { status: *status };
                    }
                    e if e.is_breaker_failure() => {
                        self.consecutive_failures += 1;
                        let half_open = matches!(self.health, Health::HalfOpen { .. });
                        if half_open || self.consecutive_failures >= self.args.spec.breaker_failures
                        {
                            tracing::warn!(key = %self.args.spec.id, failures = self.consecutive_failures, error = %e, "breaker open");
                            self.health = Health::Open {
                                until: now + self.args.spec.breaker_cooldown,
                            };
                        }
                    }
                    _ => {
                        if let Health::HalfOpen { probing } = &mut self.health {
                            *probing = false;
                        }
                    }
                }
            }
        }
    }

    fn publish(&self) {
        let usage = self.args.quota.usage();
        let g = &self.args.gauge;
        g.headroom_bp
            .store((usage.headroom * 10_000.0) as u32, Ordering::Relaxed);
        let blocked = self.args.quota.lock().blocked_until().is_some()
            || matches!(self.health, Health::Open { until } if until > Instant::now());
        let state = match self.health {
            Health::Invalid { .. } => G_INVALID,
            _ if blocked => G_BLOCKED,
            _ => G_OK,
        };
        g.state.store(state, Ordering::Relaxed);
    }

    fn status(&mut self) -> KeyStatus {
        let now = Instant::now();
        let wall = Utc::now();
        let (usage, blocked_until, parked, day_blocked, day_left) = {
            let mut q = self.args.quota.lock();
            let usage = q.usage(now, wall);
            let day = matches!(q.check(now, wall, 0), Err(Blocked::Day(_)));
            let parked = q.parked_for_day(now, wall);
            (usage, q.blocked_until(), parked, day, q.day_left(now, wall))
        };
        let (health, until) = match &self.health {
            Health::Invalid { .. } => ("invalid", None),
            Health::Open { until } if *until > now => ("circuit_open", Some(*until)),
            Health::Open { .. } | Health::HalfOpen { .. } => ("half_open", None),
            Health::Healthy => match blocked_until {
                Some(u) if parked => ("day_exhausted", Some(u)),
                Some(u) => ("cooling_down", Some(u)),
                None if day_blocked => ("day_exhausted", None),
                None => ("healthy", None),
            },
        };
        let spec = &self.args.spec;
        KeyStatus {
            id: spec.id.clone(),
            provider: spec.provider.clone(),
            model: spec.target.model.clone(),
            format: spec.format.as_str(),
            priority: spec.priority,
            scope: self.args.quota.scope.clone(),
            limits: *self.args.quota.lock().limits(),
            usage,
            day_left,
            health,
            cooldown_s: until.map(|u| u.saturating_duration_since(now).as_secs_f64()),
            last_error: self.last_error.clone(),
            queued: self.queue.len(),
            served: self.served,
            failed: self.failed,
            rate_limited: self.rate_limited,
        }
    }
}

#[ractor::async_trait]
impl Actor for KeyActor {
    type Msg = KeyMsg;
    type State = KeyState;
    type Arguments = KeyArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<KeyMsg>,
        args: KeyArgs,
    ) -> Result<KeyState, ActorProcessingErr> {
        let state = KeyState {
            args,
            health: Health::Healthy,
            consecutive_failures: 0,
            last_error: None,
            queue: VecDeque::new(),
            tick_at: None,
            served: 0,
            failed: 0,
            rate_limited: 0,
        };
        state.publish();
        Ok(state)
    }

    async fn handle(
        &self,
        myself: ActorRef<KeyMsg>,
        msg: KeyMsg,
        state: &mut KeyState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            KeyMsg::Reserve {
                tokens,
                deadline,
                wait,
                reply,
            } => {
                let now = Instant::now();
                if let Some(r) = state.health_refusal(now) {
                    let _ = reply.send(Err(r));
                    return Ok(());
                }
                // Requests already waiting go first (FIFO), so a newcomer only queues behind them.
                let attempt = if state.queue.is_empty() {
                    state.reserve_now(&myself, tokens).await
                } else {
                    Err(Blocked::Until(
                        state.tick_at.unwrap_or(now + Duration::from_millis(50)),
                    ))
                };
                match attempt {
                    Ok(permit) => {
                        let _ = reply.send(Ok(permit));
                    }
                    Err(blocked) => match state.refusal_for(blocked, deadline, wait) {
                        Some(r) => {
                            let _ = reply.send(Err(r));
                        }
                        None => {
                            state.queue.push_back(Waiter {
                                tokens,
                                deadline,
                                reply,
                            });
                            state.drain(&myself).await;
                        }
                    },
                }
                state.publish();
            }
            KeyMsg::Settle(id, tokens) => {
                {
                    let mut q = state.args.quota.lock();
                    q.settle(id, tokens);
                    let _ = state.args.ledger.store(
                        &state.args.quota.scope,
                        &q.record(Instant::now(), Utc::now()),
                    );
                }
                state.drain(&myself).await;
            }
            KeyMsg::Release(id, sent) => {
                {
                    let mut q = state.args.quota.lock();
                    q.release(id, sent);
                    let _ = state.args.ledger.store(
                        &state.args.quota.scope,
                        &q.record(Instant::now(), Utc::now()),
                    );
                }
                if let Health::HalfOpen { probing } = &mut state.health {
                    *probing = false;
                }
                state.drain(&myself).await;
            }
            KeyMsg::Outcome(outcome) => {
                state.on_outcome(outcome);
                state.drain(&myself).await;
            }
            KeyMsg::Status(reply) => {
                let _ = reply.send(state.status());
            }
            KeyMsg::Tick => {
                state.tick_at = None;
                state.drain(&myself).await;
            }
        }
        Ok(())
    }
}
