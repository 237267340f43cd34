//! `KeyActor`: one per API key. It owns the key's health and admits work into its quotas' windows by
//! back-pressure: a request that cannot start now waits in the key's bounded FIFO queue, whether the
//! key's minute window is full, every concurrency slot is taken, or the provider asked for a cool-down,
//! as long as room comes before the caller's deadline. It is refused at once only when room cannot come
//! in time (a window that opens too late, a spent day), the request could never fit (larger than a
//! whole window), or the queue is full; each refusal says when the key expects room.
//!
//! A request first reserves its estimated cost in the time windows (so that the requests queued for a
//! slot are already counted and a newcomer learns at once whether the window has room for it), then
//! takes a concurrency slot, in arrival order. Admission hands out a [`Permit`]; the caller makes the
//! HTTP call with the permit's target and settles it to the real usage; a permit dropped unsettled
//! releases its reservation.
//!
//! Durability: a usage record is written and flushed before a permit goes out only when the admissions
//! since the last record pass its block (see `quota`); a restart counts the block as spent, so a crash
//! never spends a window twice, and most admissions touch no disk. Keys with no time window (only a
//! concurrency limit) write nothing at all.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use serde::Serialize;

use crate::clock::Clock;
use crate::cluster::admission::{
    Amounts, GrantId, Refusal as SharedRefusal, ScopeSpec, SharedWindows,
};
use crate::providers::{FormatKind, ProviderError, Target};
use crate::quota::{Blocked, Cost, DayLeft, Limits, Quota, QuotaUsage, Rates, ReservationId};
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
    /// Requests that may wait for room in the windows or for a slot.
    pub queue_capacity: usize,
    /// Cool-down after a 429 that did not say how long to wait.
    pub default_retry_after: Duration,
    /// Models this key serves besides `target.model` (the provider's `models = [...]`).
    pub models: Vec<String>,
    /// Per-model prices in cost units and money; `default_rates` for models not listed.
    pub rates: HashMap<String, Rates>,
    /// Prices of a model without its own entry.
    pub default_rates: Rates,
    /// Whether using this key costs money (the provider has a `cost`).
    pub paid: bool,
}

impl KeySpec {
    /// The prices of `model` (the configured model when `None`).
    pub fn rates_for(&self, model: Option<&str>) -> Rates {
        let m = model.unwrap_or(&self.target.model);
        self.rates.get(m).copied().unwrap_or(self.default_rates)
    }

    /// Whether this key serves `model`: its configured model or one of its `models`.
    pub fn serves(&self, model: &str) -> bool {
        self.target.model == model || self.models.iter().any(|m| m == model)
    }
}

/// A quota that one key, or every key of a shared scope, draws on.
#[derive(Debug)]
pub struct SharedQuota {
    /// Ledger key: `groq#1` for a per-key quota, `gemini:shared` for a shared one (a model with its
    /// own limits adds `/<model>`).
    pub scope: String,
    /// The windows.
    pub quota: Mutex<Quota>,
    /// The key actors drawing on it (and their gauges), woken when one of them frees a slot.
    members: Mutex<Vec<(ActorRef<KeyMsg>, Arc<KeyGauge>)>>,
    /// In cluster mode: the same windows shared by every node through Redis. The local windows stay
    /// as this node's own bound; a permit needs room in both.
    shared: std::sync::OnceLock<Arc<SharedWindows>>,
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
        // Read even for a quota without time windows: a provider's cool-down or daily park is
        // recorded for every key.
        match ledger.load(&scope) {
            Ok(Some(rec)) => quota.restore(&rec, Clock::now(), Clock::wall()),
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(scope = %scope, error = %e, "usage record unreadable; starting empty")
            }
        }
        Self {
            scope,
            quota: Mutex::new(quota),
            members: Mutex::new(Vec::new()),
            shared: std::sync::OnceLock::new(),
        }
    }

    /// Shares these windows with the other nodes of the cluster (once, at start).
    pub fn attach_shared(&self, windows: Arc<SharedWindows>) {
        let _ = self.shared.set(windows);
    }

    /// The windows as the cluster shares them: the same limits, one [`ScopeSpec`] per scope name.
    pub fn scope_spec(&self) -> ScopeSpec {
        use crate::cluster::admission::{Counter, Period, WindowSpec};
        let g = self.lock();
        let l = *g.limits();
        let mut windows = Vec::new();
        let mut add = |period, counter, limit: Option<u64>| {
            if let Some(limit) = limit {
                windows.push(WindowSpec {
                    period,
                    counter,
                    limit,
                });
            }
        };
        add(Period::Sliding(60), Counter::Requests, l.rpm.map(u64::from));
        add(Period::Sliding(60), Counter::Tokens, l.tpm);
        add(Period::Day, Counter::Requests, l.rpd.map(u64::from));
        add(Period::Day, Counter::Tokens, l.tpd);
        add(Period::Day, Counter::Units, l.daily_units);
        add(Period::Day, Counter::Micros, l.daily_spend_micros);
        add(Period::Month, Counter::Requests, l.requests_per_month);
        add(Period::Month, Counter::Tokens, l.tokens_per_month);
        ScopeSpec {
            scope: self.scope.clone(),
            windows,
            concurrency: l.concurrency,
            tz: g.tz(),
        }
    }

    /// The cluster-wide windows, in cluster mode.
    pub fn shared(&self) -> Option<&Arc<SharedWindows>> {
        self.shared.get()
    }

    /// Cluster mode: raises the local day and month counters to the cluster's last reading.
    pub(crate) fn observe_shared(&self) {
        if let Some(seen) = self.shared().and_then(|w| w.last_calendar_usage()) {
            self.lock()
                .observe_cluster(Clock::now(), Clock::wall(), &seen);
        }
    }

    /// The windows, locked.
    pub fn lock(&self) -> std::sync::MutexGuard<'_, Quota> {
        // A poisoned lock only means a panic elsewhere while holding it; the windows stay consistent
        // because every mutation is a single step.
        self.quota.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Current usage and headroom.
    pub fn usage(&self) -> QuotaUsage {
        self.observe_shared();
        self.lock().usage(Clock::now(), Clock::wall())
    }

    /// The limits.
    pub fn limits(&self) -> Limits {
        *self.lock().limits()
    }

    /// What the quota can still serve today at `rates` (nothing while parked for the day).
    pub fn day_left(&self, rates: &Rates) -> DayLeft {
        self.observe_shared();
        self.lock().day_left(Clock::now(), Clock::wall(), rates)
    }

    fn members(&self) -> std::sync::MutexGuard<'_, Vec<(ActorRef<KeyMsg>, Arc<KeyGauge>)>> {
        self.members.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Wakes the other key actors of a shared scope that have requests waiting: a slot or window
    /// room came free.
    fn wake_others(&self, me: &ActorRef<KeyMsg>) {
        let members = self.members();
        if members.len() < 2 {
            return;
        }
        for (m, g) in members.iter().filter(|(m, _)| m.get_id() != me.get_id()) {
            if g.waiting.load(Ordering::SeqCst) > 0 {
                let _ = m.cast(KeyMsg::Tick);
            }
        }
    }
}

/// The quotas of one key: the default model's and those of models with their own limits.
#[derive(Debug, Clone)]
pub struct KeyQuotas {
    /// The configured model's quota (and every model without limits of its own).
    pub default: Arc<SharedQuota>,
    /// Models with their own limits (the provider's `model_limits`).
    pub by_model: Vec<(String, Arc<SharedQuota>)>,
}

impl KeyQuotas {
    /// One quota for every model.
    pub fn single(q: Arc<SharedQuota>) -> Self {
        Self {
            default: q,
            by_model: Vec::new(),
        }
    }

    /// The quota index for `model`: 0 is the default; `i + 1` is `by_model[i]`.
    pub fn index_of(&self, model: Option<&str>) -> usize {
        model
            .and_then(|m| self.by_model.iter().position(|(name, _)| name == m))
            .map_or(0, |i| i + 1)
    }

    /// The quota at `index` (see [`KeyQuotas::index_of`]).
    pub fn get(&self, index: usize) -> &Arc<SharedQuota> {
        match index {
            0 => &self.default,
            i => self.by_model.get(i - 1).map_or(&self.default, |(_, q)| q),
        }
    }

    /// Every quota of the key (default first).
    pub fn all(&self) -> impl Iterator<Item = &Arc<SharedQuota>> {
        std::iter::once(&self.default).chain(self.by_model.iter().map(|(_, q)| q))
    }
}

/// The key's state as callers see it without a message round trip: enough to estimate how long a
/// request would wait here.
#[derive(Debug, Clone, Copy)]
pub struct GaugeView {
    /// The provider refused the key: never route to it.
    pub invalid: bool,
    /// The breaker is open until then.
    pub open_until: Option<Instant>,
    /// A half-open probe is out: nothing else goes until it is back.
    pub probing: bool,
    /// Requests waiting in the queue.
    pub queued: usize,
    /// Recent time a request holds a slot (moving average).
    pub service: Duration,
    /// Remaining fraction of the tightest window, 0..=1.
    pub headroom: f64,
}

impl Default for GaugeView {
    fn default() -> Self {
        Self {
            invalid: false,
            open_until: None,
            probing: false,
            queued: 0,
            service: Duration::from_millis(100),
            headroom: 1.0,
        }
    }
}

/// Health as the router sees it without a message round trip, and what callers update on the
/// happy path without one (see [`KeyGauge::fast`]).
#[derive(Debug, Default)]
pub struct KeyGauge {
    headroom_bp: AtomicU32,
    state: AtomicU8,
    view: Mutex<GaugeView>,
    /// Requests waiting in the actor's queue (raised before the actor tries a slot for a newcomer).
    waiting: AtomicUsize,
    /// The key is healthy and nothing waits: a caller may take room directly.
    fast: AtomicBool,
    /// Calls answered.
    served: AtomicU64,
    /// Moving average of the time a request holds a slot, µs (0: none yet).
    service_us: AtomicU64,
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
    /// The latest published view.
    pub fn view(&self) -> GaugeView {
        let mut v = *self.view.lock().unwrap_or_else(|p| p.into_inner());
        v.queued = self.waiting.load(Ordering::SeqCst);
        v.service = self.service();
        v
    }

    /// Whether a caller may take window room and a slot directly (the key is healthy and nobody is
    /// waiting in its queue); otherwise it asks the actor, which queues it.
    pub fn fast(&self) -> bool {
        self.fast.load(Ordering::SeqCst) && self.waiting.load(Ordering::SeqCst) == 0
    }

    /// Recent time a request holds a slot (100 ms until one was measured).
    pub fn service(&self) -> Duration {
        match self.service_us.load(Ordering::Relaxed) {
            0 => Duration::from_millis(100),
            us => Duration::from_micros(us),
        }
    }

    fn learn(&self, held: Option<Duration>) {
        if let Some(h) = held {
            let h = u64::try_from(h.as_micros()).unwrap_or(u64::MAX).max(1);
            let old = self.service_us.load(Ordering::Relaxed);
            let new = if old == 0 { h } else { (old * 4 + h) / 5 };
            self.service_us.store(new.max(1), Ordering::Relaxed);
        }
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
    /// No room now and the caller asked not to wait.
    Busy,
    /// The windows will not have room before the caller's deadline.
    NotBeforeDeadline,
    /// The waiting queue is full.
    QueueFull,
    /// The provider refused the key.
    Invalid,
    /// The breaker is open.
    CircuitOpen,
    /// The provider asked us to wait (429) past the caller's deadline.
    CoolingDown,
    /// The daily (or monthly) quota is spent.
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
    /// For [`RefusalReason::TooLarge`]: the window, its limit and what the request needs.
    pub too_large: Option<(&'static str, u64, u64)>,
}

impl Refusal {
    fn new(reason: RefusalReason, ready_at: Option<Instant>) -> Self {
        Self {
            reason,
            ready_at,
            too_large: None,
        }
    }
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
    /// Reserve `cost` for `model` in every window and take a slot; wait in the queue (if `wait`)
    /// until `deadline` at the latest.
    Reserve {
        /// Estimated cost (prompt estimate plus `max_tokens`, priced at the model's rates).
        cost: Cost,
        /// The model asked for (`None`: the key's configured model).
        model: Option<String>,
        /// The caller's deadline.
        deadline: Instant,
        /// Whether to queue when there is no room now.
        wait: bool,
        /// The permit or why not.
        reply: RpcReplyPort<Result<Permit, Refusal>>,
    },
    /// A permit was settled or released (its quota already updated by the caller): waiting requests
    /// may go now; `true` when it was released after a failure or cancellation (a half-open probe
    /// is no longer out).
    Freed(bool),
    /// What happened to a call.
    Outcome(CallOutcome),
    /// Status for `/api/system_status`.
    Status(RpcReplyPort<KeyStatus>),
    /// Re-check waiting requests.
    Tick,
}

/// Permission to send one request through one key. Settle it with the real usage; dropping it
/// unsettled releases the reservation. Settling updates the quota directly and tells the key actor
/// only when someone waits or the key is not healthy.
pub struct Permit {
    key: ActorRef<KeyMsg>,
    quotas: Arc<KeyQuotas>,
    gauge: Arc<KeyGauge>,
    quota: usize,
    id: ReservationId,
    rates: Rates,
    /// The key's description (target, provider, id).
    pub spec: Arc<KeySpec>,
    sent: bool,
    done: bool,
    /// Cluster mode: the grant of the shared windows, settled or refunded with the local one.
    grant: Option<(Arc<SharedWindows>, GrantId)>,
}

/// Runs a shared-window step off the caller (settle, refund, cool-down): on the current runtime, if any.
fn in_background(f: impl std::future::Future<Output = ()> + Send + 'static) {
    match tokio::runtime::Handle::try_current() {
        Ok(h) => {
            h.spawn(f);
        }
        Err(_) => tracing::warn!(
            "no runtime for a shared-window update; the reservation stays counted until it expires"
        ),
    }
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

    /// Settles to the tokens actually used, priced at the model's rates.
    pub fn settle(mut self, input_tokens: u64, output_tokens: u64) {
        self.done = true;
        let cost = self.rates.cost(input_tokens, output_tokens);
        if let Some((shared, grant)) = self.grant.take() {
            in_background(async move { shared.settle(grant, amounts(cost)).await });
        }
        let q = self.quotas.get(self.quota);
        let held = q.lock().settle(self.id, cost);
        self.freed(held, false);
    }

    /// Releases the reservation after a failure.
    pub fn release(mut self) {
        self.done = true;
        self.release_now();
    }

    fn release_now(&mut self) {
        if let Some((shared, grant)) = self.grant.take() {
            let sent = self.sent;
            in_background(async move { shared.release(grant, sent).await });
        }
        let q = self.quotas.get(self.quota);
        let held = q.lock().release(self.id, self.sent);
        self.freed(held, true);
    }

    /// After the slot came free: wake whoever waits for it (this key's queue, or another key's of a
    /// shared scope), or tell a key that is not healthy (a half-open probe came back).
    fn freed(&self, held: Option<Duration>, released: bool) {
        self.gauge.learn(held);
        // SeqCst pairs with the actor raising `waiting` before it tries a slot: either it saw this
        // slot free, or this sees it waiting.
        if self.gauge.waiting.load(Ordering::SeqCst) > 0 || !self.gauge.fast.load(Ordering::SeqCst)
        {
            let _ = self.key.cast(KeyMsg::Freed(released));
        }
        self.quotas.get(self.quota).wake_others(&self.key);
    }

    /// Reports a call's outcome to the key (health, breaker, cool-downs). A success on a healthy key
    /// is only counted. A failure turns the direct path off until the actor has judged it, and a
    /// provider's 429 blocks the key's quotas at once, so no caller slips in before the cool-down.
    pub fn report(&self, outcome: CallOutcome) {
        match &outcome {
            CallOutcome::Ok if self.gauge.fast.load(Ordering::SeqCst) => {
                self.gauge.served.fetch_add(1, Ordering::Relaxed);
                return;
            }
            CallOutcome::Ok => {}
            CallOutcome::Failed(e) => {
                self.gauge.fast.store(false, Ordering::SeqCst);
                if let ProviderError::RateLimited {
                    retry_after,
                    day_exhausted,
                } = e
                {
                    let (now, wall) = (Clock::now(), Clock::wall());
                    for q in self.quotas.all() {
                        let mut g = q.lock();
                        let until = cool_down_end(
                            &g,
                            now,
                            wall,
                            *retry_after,
                            *day_exhausted,
                            self.spec.default_retry_after,
                        );
                        g.block_until(now, wall, until);
                        drop(g);
                        // Every node's requests through this scope wait too.
                        if let Some(shared) = q.shared().cloned() {
                            let wait = until.saturating_duration_since(now);
                            in_background(async move { shared.block(wait).await });
                        }
                    }
                }
            }
        }
        let _ = self.key.cast(KeyMsg::Outcome(outcome));
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if !self.done {
            self.done = true;
            self.release_now();
        }
    }
}

/// When a 429's cool-down ends: at the daily reset for a day-exhausted key, else after the wait the
/// provider asked for (or the configured default).
fn cool_down_end(
    q: &Quota,
    now: Instant,
    wall: chrono::DateTime<Utc>,
    retry_after: Option<Duration>,
    day_exhausted: bool,
    default_wait: Duration,
) -> Instant {
    if day_exhausted {
        let reset = q.next_reset(wall);
        now + (reset - wall).to_std().unwrap_or(Duration::ZERO)
    } else {
        now + retry_after.unwrap_or(default_wait)
    }
}

/// Takes window room and a slot for a request directly, without a message to the key actor, when
/// the key is healthy, nobody waits and there is room now (the uncontended case); `None` otherwise,
/// and the caller asks the actor, which queues it. The usage record is written and flushed first
/// when the durable block is used up, as the actor does.
pub async fn try_fast(
    key: &ActorRef<KeyMsg>,
    spec: &Arc<KeySpec>,
    quotas: &Arc<KeyQuotas>,
    gauge: &Arc<KeyGauge>,
    ledger: &Arc<dyn UsageLedger>,
    cost: Cost,
    model: Option<&str>,
) -> Option<Permit> {
    if !gauge.fast() {
        return None;
    }
    let qi = quotas.index_of(model);
    let q = quotas.get(qi);
    if q.shared().is_some() {
        // Cluster mode: the key actor is the only path to the key (it asks the shared windows).
        return None;
    }
    let (now, wall) = (Clock::now(), Clock::wall());
    let (id, due) = {
        let mut g = q.lock();
        let id = g.try_reserve(now, wall, cost).ok()?;
        if g.try_start(id, now).is_err() {
            g.release(id, false);
            return None;
        }
        let due = g.record_due(now, wall);
        if let Some(rec) = &due {
            if let Err(e) = ledger.store(&q.scope, rec) {
                tracing::error!(key = %spec.id, error = %e, "usage ledger write failed");
            }
        }
        (id, due.is_some())
    };
    let permit = Permit {
        key: key.clone(),
        quotas: quotas.clone(),
        gauge: gauge.clone(),
        quota: qi,
        id,
        rates: spec.rates_for(model),
        spec: spec.clone(),
        sent: false,
        done: false,
        grant: None,
    };
    if due {
        if let Err(e) = ledger.flush().await {
            tracing::error!(key = %spec.id, error = %e, "usage ledger flush failed");
        }
    }
    Some(permit)
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
    /// What its quota can still serve today (the same figure the call budget reads); nothing for a
    /// paid key without a spend cap: it is not free capacity.
    pub day_left: DayLeft,
    /// Whether the key costs money.
    pub paid: bool,
    /// Models with their own limits: (model, scope, limits, usage).
    pub models: Vec<ModelStatus>,
    /// `healthy`, `cooling_down`, `day_exhausted`, `circuit_open`, `half_open` or `invalid`.
    pub health: &'static str,
    /// Seconds until the key takes work again, when it is blocked.
    pub cooldown_s: Option<f64>,
    /// The last failure, classified (never containing the key).
    pub last_error: Option<String>,
    /// Requests waiting for room or a slot.
    pub queued: usize,
    /// Recent time a request holds a slot, ms.
    pub service_ms: f64,
    /// Calls answered.
    pub served: u64,
    /// Calls failed.
    pub failed: u64,
    /// 429s received from the provider.
    pub rate_limited: u64,
}

/// A model with its own limits on one key.
#[derive(Debug, Clone, Serialize)]
pub struct ModelStatus {
    /// Model id.
    pub model: String,
    /// Its quota scope.
    pub scope: String,
    /// Its limits.
    pub limits: Limits,
    /// Its usage.
    pub usage: QuotaUsage,
}

struct Waiter {
    quota: usize,
    cost: Cost,
    rates: Rates,
    deadline: Instant,
    reply: RpcReplyPort<Result<Permit, Refusal>>,
    /// The window reservation, once made; the waiter then waits only for a slot.
    res: Option<ReservationId>,
}

/// The key actor. Its dependencies are in [`KeyArgs`]; everything it changes is in [`KeyState`].
pub struct KeyActor;

/// What a key actor starts with.
pub struct KeyArgs {
    /// The key.
    pub spec: Arc<KeySpec>,
    /// The quotas it draws on (shared with the other keys of its scope).
    pub quotas: Arc<KeyQuotas>,
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
    failed: u64,
    rate_limited: u64,
}

/// How long a request waits before asking the shared windows again when every concurrency lease is
/// held by other nodes (their calls end without telling this node).
const SHARED_SLOT_POLL: Duration = Duration::from_millis(100);

fn amounts(c: Cost) -> Amounts {
    Amounts {
        tokens: c.tokens,
        units: c.units,
        micros: c.micros,
    }
}

/// A refusal of the shared windows as this key's local `Blocked`: each becomes a wait until the time
/// it names (the queue's tick retries then; a wait past the deadline refuses).
fn shared_blocked(r: SharedRefusal, now: Instant) -> Blocked {
    match r {
        SharedRefusal::Window { retry }
        | SharedRefusal::Day { retry }
        | SharedRefusal::Month { retry }
        | SharedRefusal::CoolingDown { retry } => Blocked::CoolingDown(now + retry),
        SharedRefusal::Concurrency { retry } => {
            Blocked::CoolingDown(now + retry.min(SHARED_SLOT_POLL))
        }
        // The local windows have the same limits and refuse such a request first.
        SharedRefusal::TooLarge => Blocked::CoolingDown(now + SHARED_SLOT_POLL),
    }
}

/// Whether a blocked window opens by `deadline`, and when.
fn ready_of(blocked: Blocked, now: Instant) -> (RefusalReason, Option<Instant>) {
    match blocked {
        Blocked::TooLarge { .. } => (RefusalReason::TooLarge, None),
        Blocked::Day(reset) => {
            let d = (reset - Clock::wall()).to_std().unwrap_or(Duration::ZERO);
            (RefusalReason::DayExhausted, Some(now + d))
        }
        Blocked::CoolingDown(until) => (RefusalReason::CoolingDown, Some(until)),
        Blocked::Until(at) => (RefusalReason::NotBeforeDeadline, Some(at)),
        Blocked::Concurrency => (RefusalReason::Busy, None),
    }
}

fn refusal_of(blocked: Blocked, now: Instant) -> Refusal {
    let (reason, ready_at) = ready_of(blocked, now);
    let mut r = Refusal::new(reason, ready_at);
    if let Blocked::TooLarge {
        window,
        limit,
        need,
    } = blocked
    {
        r.too_large = Some((window, limit, need));
    }
    r
}

impl KeyState {
    /// Refusal from health alone, or None when the key may take work. Moves Open → HalfOpen when due.
    fn health_refusal(&mut self, now: Instant) -> Option<Refusal> {
        match self.health {
            Health::Healthy => None,
            Health::Invalid { .. } => Some(Refusal::new(RefusalReason::Invalid, None)),
            Health::Open { until } if now < until => {
                Some(Refusal::new(RefusalReason::CircuitOpen, Some(until)))
            }
            Health::Open { .. } => {
                self.health = Health::HalfOpen { probing: false };
                None
            }
            Health::HalfOpen { probing: true } => Some(Refusal::new(
                RefusalReason::CircuitOpen,
                Some(now + self.service_time()),
            )),
            Health::HalfOpen { probing: false } => None,
        }
    }

    fn service_time(&self) -> Duration {
        self.args.gauge.service()
    }

    /// When a request queued now behind the present slot waiters can expect a slot.
    fn expected_slot(&self, now: Instant, quota: usize) -> Instant {
        let waiting = self.queue.iter().filter(|w| w.quota == quota).count() as u32;
        let conc = self
            .args
            .quotas
            .get(quota)
            .lock()
            .slots()
            .1
            .unwrap_or(1)
            .max(1);
        now + self.service_time() * (waiting / conc + 1)
    }

    /// Takes a slot for a window reservation; on success persists the usage when the durable block
    /// is used up (write and flush) and returns the permit.
    async fn start(
        &mut self,
        myself: &ActorRef<KeyMsg>,
        quota: usize,
        id: ReservationId,
        rates: Rates,
        cost: Cost,
    ) -> Result<Permit, Blocked> {
        let (now, wall) = (Clock::now(), Clock::wall());
        let q = self.args.quotas.get(quota).clone();
        {
            let g = q.lock();
            if let Some(until) = g.blocked_until().filter(|u| *u > now) {
                return Err(Blocked::CoolingDown(until));
            }
            if !g.slot_free() {
                return Err(Blocked::Concurrency);
            }
        }
        // Cluster mode: the request needs room in the windows every node shares, too.
        let grant = match q.shared() {
            Some(shared) => match shared.admit(amounts(cost)).await {
                Ok(g) => Some((shared.clone(), g)),
                Err(r) => return Err(shared_blocked(r, Clock::now())),
            },
            None => None,
        };
        let due = {
            let mut g = q.lock();
            if let Err(b) = g.try_start(id, now) {
                if let Some((shared, grant)) = grant {
                    in_background(async move { shared.release(grant, false).await });
                }
                return Err(b);
            }
            let due = g.record_due(now, wall);
            // Stored under the lock so that records of a shared scope are written in order.
            if let Some(rec) = &due {
                if let Err(e) = self.args.ledger.store(&q.scope, rec) {
                    tracing::error!(key = %self.args.spec.id, error = %e, "usage ledger write failed");
                }
            }
            due
        };
        if due.is_some() {
            if let Err(e) = self.args.ledger.flush().await {
                tracing::error!(key = %self.args.spec.id, error = %e, "usage ledger flush failed");
            }
        }
        if let Health::HalfOpen { probing } = &mut self.health {
            *probing = true;
        }
        Ok(Permit {
            key: myself.clone(),
            quotas: self.args.quotas.clone(),
            gauge: self.args.gauge.clone(),
            quota,
            id,
            rates,
            spec: self.args.spec.clone(),
            sent: false,
            done: false,
            grant,
        })
    }

    /// Whether earlier waiters of `quota` still wait for window room (then a newcomer may not take
    /// window room ahead of them), with what they need.
    fn window_waiters(&self, quota: usize) -> (u64, Cost) {
        self.queue
            .iter()
            .filter(|w| w.quota == quota && w.res.is_none())
            .fold((0, Cost::ZERO), |(n, c), w| {
                (
                    n + 1,
                    Cost {
                        tokens: c.tokens + w.cost.tokens,
                        units: c.units + w.cost.units,
                        micros: c.micros + w.cost.micros,
                    },
                )
            })
    }

    fn slot_waiters(&self, quota: usize) -> bool {
        self.queue
            .iter()
            .any(|w| w.quota == quota && w.res.is_some())
    }

    /// A new request: the permit now, a place in the queue, or a refusal saying when room comes.
    async fn reserve(
        &mut self,
        myself: &ActorRef<KeyMsg>,
        cost: Cost,
        model: Option<String>,
        deadline: Instant,
        wait: bool,
        reply: RpcReplyPort<Result<Permit, Refusal>>,
    ) {
        let now = Clock::now();
        if let Some(r) = self.health_refusal(now) {
            let _ = reply.send(Err(r));
            return;
        }
        let qi = self.args.quotas.index_of(model.as_deref());
        let rates = self.args.spec.rates_for(model.as_deref());
        let q = self.args.quotas.get(qi).clone();
        let ahead = self.window_waiters(qi);
        let reserved = {
            let mut g = q.lock();
            if ahead.0 == 0 {
                g.try_reserve(now, Clock::wall(), cost)
            } else {
                match g.check_behind(now, Clock::wall(), cost, ahead) {
                    // Room for all of them: the queue drains at its next tick.
                    Ok(()) => Err(Blocked::Until(now)),
                    Err(b) => Err(b),
                }
            }
        };
        let full = self.queue.len() >= self.args.spec.queue_capacity;
        match reserved {
            Ok(id) => {
                if !self.slot_waiters(qi) {
                    // Raised before the slot is tried: a caller freeing a slot meanwhile sees it
                    // and wakes this actor (see `Permit::freed`).
                    self.args.gauge.waiting.fetch_add(1, Ordering::SeqCst);
                    match self.start(myself, qi, id, rates, cost).await {
                        Ok(p) => {
                            let _ = reply.send(Ok(p));
                            return;
                        }
                        Err(Blocked::CoolingDown(until)) if until > deadline || !wait || full => {
                            q.lock().release(id, false);
                            let _ = reply
                                .send(Err(Refusal::new(RefusalReason::CoolingDown, Some(until))));
                            return;
                        }
                        Err(_) => {}
                    }
                }
                if !wait || full {
                    let ready = self.expected_slot(now, qi);
                    q.lock().release(id, false);
                    let reason = if full {
                        RefusalReason::QueueFull
                    } else {
                        RefusalReason::Busy
                    };
                    let _ = reply.send(Err(Refusal::new(reason, Some(ready))));
                    return;
                }
                self.queue.push_back(Waiter {
                    quota: qi,
                    cost,
                    rates,
                    deadline,
                    reply,
                    res: Some(id),
                });
            }
            Err(blocked) => {
                let r = refusal_of(blocked, now);
                let waitable = !matches!(blocked, Blocked::TooLarge { .. })
                    && r.ready_at.is_some_and(|at| at <= deadline);
                if !waitable {
                    let _ = reply.send(Err(r));
                    return;
                }
                if !wait || full {
                    let reason = if full {
                        RefusalReason::QueueFull
                    } else {
                        RefusalReason::Busy
                    };
                    let _ = reply.send(Err(Refusal::new(reason, r.ready_at)));
                    return;
                }
                self.queue.push_back(Waiter {
                    quota: qi,
                    cost,
                    rates,
                    deadline,
                    reply,
                    res: None,
                });
            }
        }
        self.drain(myself).await;
    }

    /// Gives waiting requests window room and slots in arrival order (per quota) while there is
    /// room; refuses the ones whose deadline passed or that can no longer be served in time, and
    /// schedules a tick for the next window opening or deadline.
    async fn drain(&mut self, myself: &ActorRef<KeyMsg>) {
        let now = Clock::now();
        let n_quotas = 1 + self.args.quotas.by_model.len();
        let mut window_blocked = vec![false; n_quotas];
        let mut slot_blocked = vec![false; n_quotas];
        let mut next: Option<Instant> = None;
        let mut kept = VecDeque::with_capacity(self.queue.len());
        let health = self.health_refusal(now);
        while let Some(mut w) = self.queue.pop_front() {
            let q = self.args.quotas.get(w.quota).clone();
            if let Some(r) = health {
                // The key went bad while requests waited: refuse them all so they go elsewhere.
                if let Some(id) = w.res {
                    q.lock().release(id, false);
                }
                let _ = w.reply.send(Err(r));
                continue;
            }
            if w.deadline <= now || w.reply.is_closed() {
                if let Some(id) = w.res {
                    q.lock().release(id, false);
                }
                let ready = self.expected_slot(now, w.quota);
                let _ = w.reply.send(Err(Refusal::new(
                    RefusalReason::DeadlineExceeded,
                    Some(ready),
                )));
                continue;
            }
            if w.res.is_none() && !window_blocked[w.quota] {
                let got = q.lock().try_reserve(now, Clock::wall(), w.cost);
                match got {
                    Ok(id) => w.res = Some(id),
                    Err(b) => {
                        window_blocked[w.quota] = true;
                        let r = refusal_of(b, now);
                        match r.ready_at.filter(|at| *at <= w.deadline) {
                            Some(at) if !matches!(b, Blocked::TooLarge { .. }) => {
                                next = Some(next.map_or(at, |n| n.min(at)));
                            }
                            _ => {
                                let _ = w.reply.send(Err(r));
                                continue;
                            }
                        }
                    }
                }
            }
            if let Some(id) = w.res {
                if !slot_blocked[w.quota] {
                    match self.start(myself, w.quota, id, w.rates, w.cost).await {
                        Ok(p) => {
                            // If the caller gave up meanwhile, the permit comes back and is dropped:
                            // released.
                            let _ = w.reply.send(Ok(p));
                            continue;
                        }
                        Err(Blocked::CoolingDown(until)) => {
                            slot_blocked[w.quota] = true;
                            if until > w.deadline {
                                q.lock().release(id, false);
                                let _ = w.reply.send(Err(Refusal::new(
                                    RefusalReason::CoolingDown,
                                    Some(until),
                                )));
                                continue;
                            }
                            next = Some(next.map_or(until, |n| n.min(until)));
                        }
                        Err(_) => slot_blocked[w.quota] = true,
                    }
                }
            }
            next = Some(next.map_or(w.deadline, |n| n.min(w.deadline)));
            kept.push_back(w);
        }
        self.queue = kept;
        if let Some(at) = next {
            self.schedule_tick(myself, at);
        }
        self.publish();
    }

    fn schedule_tick(&mut self, myself: &ActorRef<KeyMsg>, at: Instant) {
        if self.tick_at.is_some_and(|t| t <= at && t > Clock::now()) {
            return;
        }
        self.tick_at = Some(at);
        let delay = at.saturating_duration_since(Clock::now());
        myself.send_after(delay, || KeyMsg::Tick);
    }

    fn on_outcome(&mut self, outcome: CallOutcome) {
        let now = Clock::now();
        match outcome {
            CallOutcome::Ok => {
                self.args.gauge.served.fetch_add(1, Ordering::Relaxed);
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
                        let wall = Clock::wall();
                        // A 429 is about the key: every quota of it cools down.
                        let mut until = now;
                        for q in self.args.quotas.all() {
                            let mut g = q.lock();
                            until = cool_down_end(
                                &g,
                                now,
                                wall,
                                *retry_after,
                                *day_exhausted,
                                self.args.spec.default_retry_after,
                            );
                            g.block_until(now, wall, until);
                            let rec = g.record(now, wall);
                            let _ = self.args.ledger.store(&q.scope, &rec);
                        }
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
        let now = Clock::now();
        let q = &self.args.quotas.default;
        let usage = q.usage();
        let g = &self.args.gauge;
        g.headroom_bp
            .store((usage.headroom * 10_000.0) as u32, Ordering::Relaxed);
        let open_until = match self.health {
            Health::Open { until } if until > now => Some(until),
            _ => None,
        };
        let blocked = q.lock().blocked_until().is_some() || open_until.is_some();
        let state = match self.health {
            Health::Invalid { .. } => G_INVALID,
            _ if blocked => G_BLOCKED,
            _ => G_OK,
        };
        g.state.store(state, Ordering::Relaxed);
        g.waiting.store(self.queue.len(), Ordering::SeqCst);
        g.fast.store(
            matches!(self.health, Health::Healthy) && self.consecutive_failures == 0,
            Ordering::SeqCst,
        );
        let view = GaugeView {
            invalid: state == G_INVALID,
            open_until,
            probing: matches!(self.health, Health::HalfOpen { probing: true }),
            queued: self.queue.len(),
            service: self.service_time(),
            headroom: usage.headroom,
        };
        *g.view.lock().unwrap_or_else(|p| p.into_inner()) = view;
    }

    fn status(&mut self) -> KeyStatus {
        let now = Clock::now();
        let wall = Clock::wall();
        let spec = self.args.spec.clone();
        let rates = spec.rates_for(None);
        let q = self.args.quotas.default.clone();
        // Cluster mode: the day's figures are the cluster's.
        for quota in self.args.quotas.all() {
            quota.observe_shared();
        }
        let (usage, blocked_until, parked, day_blocked, day_left, limits) = {
            let mut g = q.lock();
            let usage = g.usage(now, wall);
            let day = matches!(g.check(now, wall, Cost::ZERO), Err(Blocked::Day(_)));
            let parked = g.parked_for_day(now, wall);
            let left = g.day_left(now, wall, &rates);
            (usage, g.blocked_until(), parked, day, left, *g.limits())
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
        let models = self
            .args
            .quotas
            .by_model
            .iter()
            .map(|(m, mq)| ModelStatus {
                model: m.clone(),
                scope: mq.scope.clone(),
                limits: mq.limits(),
                usage: mq.usage(),
            })
            .collect();
        KeyStatus {
            id: spec.id.clone(),
            provider: spec.provider.clone(),
            model: spec.target.model.clone(),
            format: spec.format.as_str(),
            priority: spec.priority,
            scope: q.scope.clone(),
            limits,
            usage,
            day_left: free_day_left(&spec, limits, day_left),
            paid: spec.paid,
            models,
            health,
            cooldown_s: until.map(|u| u.saturating_duration_since(now).as_secs_f64()),
            last_error: self.last_error.clone(),
            queued: self.queue.len(),
            service_ms: self.service_time().as_secs_f64() * 1000.0,
            served: self.args.gauge.served.load(Ordering::Relaxed),
            failed: self.failed,
            rate_limited: self.rate_limited,
        }
    }
}

/// Today's room that is really free: a paid key counts only what its daily spend cap allows
/// (nothing without one); a free key counts its windows.
pub fn free_day_left(spec: &KeySpec, limits: Limits, left: DayLeft) -> DayLeft {
    if spec.paid && limits.daily_spend_micros.is_none() {
        DayLeft::NOTHING
    } else {
        left
    }
}

#[ractor::async_trait]
impl Actor for KeyActor {
    type Msg = KeyMsg;
    type State = KeyState;
    type Arguments = KeyArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<KeyMsg>,
        args: KeyArgs,
    ) -> Result<KeyState, ActorProcessingErr> {
        for q in args.quotas.all() {
            q.members().push((myself.clone(), args.gauge.clone()));
        }
        let state = KeyState {
            args,
            health: Health::Healthy,
            consecutive_failures: 0,
            last_error: None,
            queue: VecDeque::new(),
            tick_at: None,
            failed: 0,
            rate_limited: 0,
        };
        state.publish();
        Ok(state)
    }

    async fn post_stop(
        &self,
        myself: ActorRef<KeyMsg>,
        state: &mut KeyState,
    ) -> Result<(), ActorProcessingErr> {
        // A clean stop writes the exact usage (no block to count as spent after the restart).
        let (now, wall) = (Clock::now(), Clock::wall());
        for q in state.args.quotas.all() {
            q.members().retain(|(m, _)| m.get_id() != myself.get_id());
            let mut g = q.lock();
            if g.limits().has_time_window() {
                let rec = g.record(now, wall);
                let _ = state.args.ledger.store(&q.scope, &rec);
            }
        }
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<KeyMsg>,
        msg: KeyMsg,
        state: &mut KeyState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            KeyMsg::Reserve {
                cost,
                model,
                deadline,
                wait,
                reply,
            } => {
                state
                    .reserve(&myself, cost, model, deadline, wait, reply)
                    .await;
                state.publish();
            }
            KeyMsg::Freed(released) => {
                if released {
                    if let Health::HalfOpen { probing } = &mut state.health {
                        *probing = false;
                    }
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

/// A key for tests: provider `groq`, model `small` (also serving `large`, priced 10 units per
/// million input tokens), with `id`, `priority` and whether it is paid.
#[cfg(test)]
pub(crate) fn test_spec(id: &str, priority: u32, paid: bool) -> KeySpec {
    let rates = Rates {
        units_in: 10.0,
        ..Rates::default()
    };
    KeySpec {
        id: id.into(),
        provider: "groq".into(),
        format: FormatKind::Openai,
        target: Target {
            base_url: "http://127.0.0.1:9/v1".into(),
            model: "small".into(),
            secret: crate::secret::Secret::new("gsk-test"),
            account_id: None,
            api_version: None,
            timeout: Duration::from_secs(5),
        },
        priority,
        breaker_failures: 2,
        breaker_cooldown: Duration::from_secs(30),
        queue_capacity: 8,
        default_retry_after: Duration::from_secs(60),
        models: vec!["large".into()],
        rates: HashMap::from([("large".to_string(), rates)]),
        default_rates: Rates::default(),
        paid,
    }
}

#[cfg(test)]
impl KeyGauge {
    /// A gauge as a key actor publishes it: refused by its provider, blocked (cooling down, parked,
    /// breaker open) or usable, with this remaining fraction of its tightest window.
    pub(crate) fn published(invalid: bool, blocked: bool, headroom: f64) -> Self {
        let g = KeyGauge::default();
        let state = match (invalid, blocked) {
            (true, _) => G_INVALID,
            (false, true) => G_BLOCKED,
            (false, false) => G_OK,
        };
        g.state.store(state, Ordering::Relaxed);
        g.headroom_bp
            .store((headroom * 10_000.0) as u32, Ordering::Relaxed);
        g
    }
}

/// The key's pure parts, without an actor: which models and prices a key has, which quota a model
/// draws on, when a 429's cool-down ends, how blocked windows and shared refusals become refusals,
/// what counts as free today, and the service-time average the router's estimates use.
#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::storage::NullLedger;

    fn spec(paid: bool) -> KeySpec {
        test_spec("groq#1", 1, paid)
    }

    fn quota(scope: &str, limits: Limits) -> Arc<SharedQuota> {
        Arc::new(SharedQuota::restored(
            scope.into(),
            limits,
            chrono_tz::UTC,
            &NullLedger,
        ))
    }

    #[test]
    fn a_key_serves_its_model_and_its_listed_models_only() {
        let s = spec(false);
        assert!(s.serves("small"));
        assert!(s.serves("large"));
        assert!(!s.serves("other"));
    }

    #[test]
    fn prices_are_the_model_s_own_else_the_default() {
        let s = spec(false);
        assert_eq!(s.rates_for(Some("large")).units_in, 10.0);
        assert_eq!(s.rates_for(Some("other")), Rates::default());
        assert_eq!(s.rates_for(None), Rates::default(), "the configured model");
    }

    #[test]
    fn a_model_with_its_own_limits_draws_on_its_own_quota() {
        let qs = KeyQuotas {
            default: quota("groq#1", Limits::default()),
            by_model: vec![
                ("large".into(), quota("groq#1/large", Limits::default())),
                ("huge".into(), quota("groq#1/huge", Limits::default())),
            ],
        };
        assert_eq!(qs.index_of(None), 0);
        assert_eq!(qs.index_of(Some("small")), 0);
        assert_eq!(qs.index_of(Some("large")), 1);
        assert_eq!(qs.index_of(Some("huge")), 2);
        assert_eq!(qs.get(2).scope, "groq#1/huge");
        assert_eq!(qs.get(9).scope, "groq#1", "an unknown index is the default");
        let scopes: Vec<&str> = qs.all().map(|q| q.scope.as_str()).collect();
        assert_eq!(scopes, ["groq#1", "groq#1/large", "groq#1/huge"]);
    }

    #[test]
    fn a_cool_down_ends_after_the_asked_wait_else_the_default_else_at_the_daily_reset() {
        let q = Quota::new(Limits::default(), chrono_tz::UTC);
        let now = Instant::now();
        let wall = Utc.with_ymd_and_hms(2026, 3, 4, 22, 30, 0).unwrap();
        let default = Duration::from_secs(60);
        let asked = Some(Duration::from_secs(7));
        assert_eq!(
            cool_down_end(&q, now, wall, asked, false, default),
            now + Duration::from_secs(7)
        );
        assert_eq!(
            cool_down_end(&q, now, wall, None, false, default),
            now + default
        );
        // A spent day waits for midnight UTC whatever the provider asked.
        assert_eq!(
            cool_down_end(&q, now, wall, asked, true, default),
            now + Duration::from_secs(90 * 60)
        );
    }

    #[test]
    fn blocked_windows_become_refusals_with_when_room_comes() {
        let now = Instant::now();
        let later = now + Duration::from_secs(3);
        let r = refusal_of(Blocked::Until(later), now);
        assert_eq!(
            (r.reason, r.ready_at),
            (RefusalReason::NotBeforeDeadline, Some(later))
        );
        let r = refusal_of(Blocked::CoolingDown(later), now);
        assert_eq!(
            (r.reason, r.ready_at),
            (RefusalReason::CoolingDown, Some(later))
        );
        let r = refusal_of(Blocked::Concurrency, now);
        assert_eq!((r.reason, r.ready_at), (RefusalReason::Busy, None));
        let r = refusal_of(
            Blocked::TooLarge {
                window: "tpm",
                limit: 6000,
                need: 9000,
            },
            now,
        );
        assert_eq!(r.reason, RefusalReason::TooLarge);
        assert_eq!(r.ready_at, None, "a request too large never fits");
        assert_eq!(r.too_large, Some(("tpm", 6000, 9000)));
        let r = refusal_of(Blocked::Day(Utc::now() + chrono::Duration::hours(2)), now);
        assert_eq!(r.reason, RefusalReason::DayExhausted);
        let wait = r.ready_at.map(|at| at - now).unwrap_or_default();
        assert!(wait > Duration::from_secs(3600) && wait <= Duration::from_secs(7200));
    }

    #[test]
    fn shared_refusals_become_waits_and_a_busy_cluster_is_polled_soon() {
        let now = Instant::now();
        let long = Duration::from_secs(40);
        for r in [
            SharedRefusal::Window { retry: long },
            SharedRefusal::Day { retry: long },
            SharedRefusal::Month { retry: long },
            SharedRefusal::CoolingDown { retry: long },
        ] {
            assert_eq!(shared_blocked(r, now), Blocked::CoolingDown(now + long));
        }
        assert_eq!(
            shared_blocked(SharedRefusal::Concurrency { retry: long }, now),
            Blocked::CoolingDown(now + SHARED_SLOT_POLL)
        );
        let soon = Duration::from_millis(20);
        assert_eq!(
            shared_blocked(SharedRefusal::Concurrency { retry: soon }, now),
            Blocked::CoolingDown(now + soon)
        );
        assert_eq!(
            shared_blocked(SharedRefusal::TooLarge, now),
            Blocked::CoolingDown(now + SHARED_SLOT_POLL)
        );
    }

    #[test]
    fn a_paid_key_without_a_spend_cap_has_nothing_free_today() {
        let left = DayLeft {
            requests: Some(40),
            tokens: None,
        };
        let capped = Limits {
            daily_spend_micros: Some(1_000_000),
            ..Limits::default()
        };
        assert_eq!(free_day_left(&spec(false), Limits::default(), left), left);
        assert_eq!(
            free_day_left(&spec(true), Limits::default(), left),
            DayLeft::NOTHING
        );
        assert_eq!(free_day_left(&spec(true), capped, left), left);
    }

    #[test]
    fn the_service_time_is_a_moving_average_of_held_slots() {
        let g = KeyGauge::default();
        assert_eq!(g.service(), Duration::from_millis(100), "until measured");
        g.learn(None);
        assert_eq!(g.service(), Duration::from_millis(100), "nothing held");
        g.learn(Some(Duration::from_millis(500)));
        assert_eq!(g.service(), Duration::from_millis(500), "the first sample");
        g.learn(Some(Duration::from_millis(1000)));
        assert_eq!(
            g.service(),
            Duration::from_millis(600),
            "(4 × 500 + 1000) / 5"
        );
    }
}
