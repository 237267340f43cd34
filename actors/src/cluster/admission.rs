//! `SharedWindows`: the windows of one quota scope shared by every node through Redis.
//!
//! Admission is one atomic Lua step (`lua/admission.lua`) over every window of the scope, all or
//! nothing, on Redis server time: sliding windows in one-second buckets, the calendar day and month of
//! the scope's reset time zone, and concurrency as leases that expire if their node dies (renewed
//! while the call runs). A grant is settled to the real usage afterwards, or refunded when the call
//! never reached the provider; a provider 429 blocks the scope for every node.
//!
//! **Redis unreachable.** The node never exceeds a limit and stays available: it admits on its own,
//! within its share of each window, `1/N` with `N` the last known number of live nodes:
//! - sliding windows: nothing for one window length after Redis was lost (what the cluster admitted
//!   before is still in the window and unknown), then `limit / N` of the node's own usage;
//! - calendar windows: `(limit - seen) / N`, where `seen` is the cluster's usage this node last read,
//!   plus the most the cluster could have admitted since (the matching per-minute limit, when the
//!   reading is under a minute old; otherwise the whole window is taken as spent);
//! - concurrency: `limit / N` of the node's own calls in flight (shared and local grants alike).
//!
//! When Redis answers again, the node adds its own usage back to the shared windows (`merge`) and,
//! for one longest-window length, admits only what both the shared windows and its own share allow:
//! so a node that returns before the others have merged cannot push the cluster over a limit.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use chrono::{Datelike, Offset, TimeZone, Utc};
use chrono_tz::Tz;
use serde::Serialize;

use super::{Cluster, ClusterError};

const ADMISSION_LUA: &str = include_str!("lua/admission.lua");
const DAY_MS: i64 = 86_400_000;
/// How old the reading of the cluster's usage may grow before an idle scope reads it again (busy
/// scopes read it with every admission).
const USAGE_REFRESH: Duration = Duration::from_secs(5);

/// What a window counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Counter {
    /// Requests.
    Requests,
    /// Prompt plus completion tokens.
    Tokens,
    /// Provider cost units (neurons).
    Units,
    /// Money, in millionths.
    Micros,
}

impl Counter {
    fn code(self) -> &'static str {
        match self {
            Counter::Requests => "r",
            Counter::Tokens => "t",
            Counter::Units => "u",
            Counter::Micros => "m",
        }
    }
}

/// How long a window is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Period {
    /// A sliding window of this many seconds (60: per minute).
    Sliding(u32),
    /// The calendar day of the scope's reset time zone.
    Day,
    /// The calendar month of the scope's reset time zone.
    Month,
}

/// One window of a scope: what it counts, over which period, up to which limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowSpec {
    /// The period.
    pub period: Period,
    /// What it counts.
    pub counter: Counter,
    /// The most it allows in one period.
    pub limit: u64,
}

/// What one request costs; it always counts one request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Amounts {
    /// Tokens.
    #[serde(rename = "t")]
    pub tokens: u64,
    /// Cost units.
    #[serde(rename = "u")]
    pub units: u64,
    /// Money, millionths.
    #[serde(rename = "m")]
    pub micros: u64,
}

impl Amounts {
    fn of(&self, c: Counter) -> u64 {
        match c {
            Counter::Requests => 1,
            Counter::Tokens => self.tokens,
            Counter::Units => self.units,
            Counter::Micros => self.micros,
        }
    }
}

/// A quota scope's windows and where its day begins.
#[derive(Debug, Clone)]
pub struct ScopeSpec {
    /// The scope (`groq#1`, `gemini:shared`): the same name on every node.
    pub scope: String,
    /// Its windows.
    pub windows: Vec<WindowSpec>,
    /// Calls in flight at once, cluster-wide.
    pub concurrency: Option<u32>,
    /// The time zone whose midnight resets the calendar windows.
    pub tz: Tz,
}

/// A grant: settle it or release it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GrantId {
    /// Admitted by the shared windows in Redis.
    Shared(u64),
    /// Admitted by this node alone while Redis was unreachable.
    Local(u64),
}

/// Why the shared windows refused (each with when to try again, if known).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// A sliding window is full; room in `retry`.
    Window {
        /// Wait.
        retry: Duration,
    },
    /// A daily window is spent until the reset.
    Day {
        /// Time to the reset.
        retry: Duration,
    },
    /// A monthly window is spent until the month ends.
    Month {
        /// Time to the month's end.
        retry: Duration,
    },
    /// Every concurrency lease is taken; the oldest expires within `retry` at the latest.
    Concurrency {
        /// Latest time a lease frees (usually sooner: when a call ends).
        retry: Duration,
    },
    /// A provider 429 blocks the scope for every node.
    CoolingDown {
        /// Wait.
        retry: Duration,
    },
    /// The request alone exceeds a window's whole limit.
    TooLarge,
}

/// Where the cluster stands, as the membership heartbeat and every Redis operation see it.
#[derive(Debug)]
pub struct ClusterHealth {
    up: AtomicBool,
    nodes: AtomicUsize,
    downs: AtomicUsize,
}

impl Default for ClusterHealth {
    fn default() -> Self {
        ClusterHealth {
            up: AtomicBool::new(true),
            nodes: AtomicUsize::new(0),
            downs: AtomicUsize::new(0),
        }
    }
}

impl ClusterHealth {
    /// Whether Redis answered the last operation.
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Acquire)
    }
    /// Live nodes at the last successful heartbeat (0: never known).
    pub fn nodes(&self) -> usize {
        self.nodes.load(Ordering::Acquire)
    }
    /// Times Redis was found unreachable since start.
    pub fn outages(&self) -> usize {
        self.downs.load(Ordering::Acquire)
    }
    /// Records a failed operation.
    pub fn mark_down(&self) {
        if self.up.swap(false, Ordering::AcqRel) {
            self.downs.fetch_add(1, Ordering::AcqRel);
            tracing::warn!("redis unreachable: each node admits within its share of every window");
        }
    }
    /// Records a successful heartbeat with `nodes` live nodes.
    pub fn mark_up(&self, nodes: usize) {
        self.nodes.store(nodes.max(1), Ordering::Release);
        if !self.up.swap(true, Ordering::AcqRel) {
            tracing::info!(nodes, "redis reachable again: back to the shared windows");
        }
    }
}

/// This node's own usage while it admits alone (and just after), per window index.
#[derive(Debug, Default)]
struct Own {
    /// Sliding windows: window index → unix second → amount.
    sliding: HashMap<usize, BTreeMap<i64, u64>>,
    /// Calendar windows: window index → (period label, amount).
    calendar: HashMap<usize, (i64, u64)>,
    /// Local grants: id → (unix second, day label, month label, reserved amounts).
    open: HashMap<u64, (i64, i64, i64, Amounts)>,
    next: u64,
}

#[derive(Debug, Default)]
struct State {
    /// Admitting alone since (Redis lost at).
    fallback_since: Option<Instant>,
    /// After Redis returned: both the shared windows and the own share apply until then.
    dual_until: Option<Instant>,
    /// The cluster's usage per window as last read, with when and the calendar label it belongs to.
    seen: Option<(Instant, Vec<u64>, i64, i64)>,
    /// Own usage counted since the fallback began (cleared once merged and past the dual period).
    own: Own,
    /// Shared grants in flight: id → admitted at (their concurrency leases are renewed).
    in_flight: HashMap<u64, Instant>,
    /// Whether `own` still has to be merged into Redis.
    unmerged: bool,
}

/// One reading of the clocks for the local share.
#[derive(Debug, Clone, Copy)]
struct Clock {
    now: Instant,
    now_s: i64,
    day: i64,
    month: i64,
}

/// The windows of one scope, shared through Redis, with the fallback to this node's share.
pub struct SharedWindows {
    cluster: Cluster,
    spec: ScopeSpec,
    base: String,
    health: Arc<ClusterHealth>,
    script: redis::Script,
    /// Concurrency leases last this long unless renewed.
    lease: Duration,
    state: Mutex<State>,
}

impl std::fmt::Debug for SharedWindows {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedWindows")
            .field("scope", &self.spec.scope)
            .finish()
    }
}

#[derive(Serialize)]
struct WireWindow {
    k: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    len: Option<u32>,
    n: &'static str,
    l: u64,
}

#[derive(Serialize)]
struct WireCost {
    r: u64,
    t: u64,
    u: u64,
    m: u64,
}

#[derive(Serialize)]
struct AdmitArgs<'a> {
    off: i64,
    w: &'a [WireWindow],
    c: WireCost,
    #[serde(skip_serializing_if = "Option::is_none")]
    cc: Option<u32>,
    lease: u64,
    rttl: u64,
}

fn wall_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn ms(v: i64) -> Duration {
    Duration::from_millis(u64::try_from(v.max(0)).unwrap_or(0))
}

/// Offset of `tz` from UTC at `at_ms`, in ms.
fn tz_offset_ms(tz: Tz, at_ms: i64) -> i64 {
    match Utc.timestamp_millis_opt(at_ms).single() {
        Some(t) => {
            i64::from(
                tz.offset_from_utc_datetime(&t.naive_utc())
                    .fix()
                    .local_minus_utc(),
            ) * 1000
        }
        None => 0,
    }
}

/// Day number (days since 1970-01-01 in the zone) and month label (`yyyymm`) at `at_ms`.
fn labels(tz: Tz, at_ms: i64) -> (i64, i64) {
    let off = tz_offset_ms(tz, at_ms);
    let day = (at_ms + off).div_euclid(DAY_MS);
    let month = match Utc.timestamp_millis_opt(at_ms).single() {
        Some(t) => {
            let l = t.with_timezone(&tz);
            i64::from(l.year()) * 100 + i64::from(l.month())
        }
        None => 0,
    };
    (day, month)
}

impl SharedWindows {
    /// The shared windows of `spec`; concurrency leases last `lease` unless renewed (a task renews
    /// them while calls run, in a task this creates).
    pub fn new(
        cluster: Cluster,
        spec: ScopeSpec,
        health: Arc<ClusterHealth>,
        lease: Duration,
    ) -> Arc<Self> {
        let base = cluster.key(&format!("{{q:{}}}", spec.scope));
        let w = Arc::new(SharedWindows {
            cluster,
            spec,
            base,
            health,
            script: redis::Script::new(ADMISSION_LUA),
            lease,
            state: Mutex::new(State::default()),
        });
        w.clone().spawn_renewer();
        w
    }

    /// The scope.
    pub fn spec(&self) -> &ScopeSpec {
        &self.spec
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn wire_windows(&self) -> Vec<WireWindow> {
        self.spec
            .windows
            .iter()
            .map(|w| WireWindow {
                k: match w.period {
                    Period::Sliding(_) => "s",
                    Period::Day => "d",
                    Period::Month => "M",
                },
                len: match w.period {
                    Period::Sliding(s) => Some(s),
                    _ => None,
                },
                n: w.counter.code(),
                l: w.limit,
            })
            .collect()
    }

    fn longest_sliding(&self) -> Duration {
        let secs = self
            .spec
            .windows
            .iter()
            .filter_map(|w| match w.period {
                Period::Sliding(s) => Some(s),
                _ => None,
            })
            .max()
            .unwrap_or(0);
        Duration::from_secs(u64::from(secs) + 1)
    }

    async fn call(&self, op: &str, args: String) -> Result<redis::Value, ClusterError> {
        let mut inv = self.script.key(&self.base);
        inv.arg(op).arg(args);
        let r = self.cluster.script::<redis::Value>(inv).await;
        if let Err(e) = &r {
            if e.is_unreachable() {
                self.health.mark_down();
            }
        }
        r
    }

    /// Returns to the shared windows if Redis answers again (merging this node's own usage first);
    /// true when the node admits through Redis. The membership heartbeat calls it.
    pub async fn reconcile(&self) -> bool {
        if !self.health.is_up() {
            return false;
        }
        if self.lock().fallback_since.is_some() {
            self.leave_fallback().await;
        }
        self.lock().fallback_since.is_none()
    }

    /// Whether this node admits alone now (Redis unreachable).
    pub fn in_fallback(&self) -> bool {
        self.lock().fallback_since.is_some()
    }

    /// Admits one request of `cost` into every window, or says why not.
    pub async fn admit(&self, cost: Amounts) -> Result<GrantId, Refusal> {
        for w in &self.spec.windows {
            if cost.of(w.counter) > w.limit {
                return Err(Refusal::TooLarge);
            }
        }
        if !self.health.is_up() {
            self.enter_fallback();
        } else if self.lock().fallback_since.is_some() {
            self.leave_fallback().await;
        }
        if self.lock().fallback_since.is_some() {
            return self.admit_local(cost, false);
        }
        let dual = {
            let st = self.lock();
            st.dual_until.is_some_and(|u| Instant::now() < u)
        };
        if dual {
            // Check the own share first without taking it, then the shared windows.
            self.check_local(cost)?;
        }
        match self.admit_shared(cost).await {
            Ok(id) => {
                if dual {
                    self.count_own(cost);
                }
                Ok(GrantId::Shared(id))
            }
            Err(Ok(refusal)) => Err(refusal),
            Err(Err(e)) => {
                tracing::warn!(scope = %self.spec.scope, error = %e, "shared admission failed; admitting within this node's share");
                self.enter_fallback();
                self.admit_local(cost, false)
            }
        }
    }

    async fn admit_shared(&self, cost: Amounts) -> Result<u64, Result<Refusal, ClusterError>> {
        let windows = self.wire_windows();
        let now = wall_ms();
        let lease = u64::try_from(self.lease.as_millis()).unwrap_or(u64::MAX);
        let args = AdmitArgs {
            off: tz_offset_ms(self.spec.tz, now),
            w: &windows,
            c: WireCost {
                r: 1,
                t: cost.tokens,
                u: cost.units,
                m: cost.micros,
            },
            cc: self.spec.concurrency,
            lease,
            // A grant never settled (its node died) is forgotten after two days; its usage stays.
            rttl: (2 * DAY_MS) as u64,
        };
        let json =
            serde_json::to_string(&args).map_err(|e| Err(ClusterError::Codec(e.to_string())))?;
        let v = self.call("admit", json).await.map_err(Err)?;
        let items: Vec<redis::Value> =
            redis::from_redis_value(v).map_err(|e| Err(ClusterError::from(e)))?;
        let int = |i: usize| -> i64 {
            items
                .get(i)
                .and_then(|v| redis::from_redis_value::<i64>(v.clone()).ok())
                .unwrap_or(0)
        };
        if int(0) == 1 {
            let id = u64::try_from(int(1)).unwrap_or(0);
            let usage: Vec<u64> = (4..items.len())
                .map(|i| u64::try_from(int(i)).unwrap_or(0))
                .collect();
            let (day, month) = labels(self.spec.tz, int(2));
            let mut st = self.lock();
            st.seen = Some((Instant::now(), usage, day, month));
            st.in_flight.insert(id, Instant::now());
            return Ok(id);
        }
        let reason: String = items
            .get(1)
            .and_then(|v| redis::from_redis_value(v.clone()).ok())
            .unwrap_or_default();
        let retry = ms(int(2));
        Err(Ok(match reason.as_str() {
            "window" => Refusal::Window { retry },
            "day" => Refusal::Day { retry },
            "month" => Refusal::Month { retry },
            "concurrency" => Refusal::Concurrency { retry },
            "cooling_down" => Refusal::CoolingDown { retry },
            "too_large" => Refusal::TooLarge,
            other => {
                return Err(Err(ClusterError::Redis(format!(
                    "admission answered {other:?}"
                ))))
            }
        }))
    }

    fn enter_fallback(&self) {
        let mut st = self.lock();
        if st.fallback_since.is_none() {
            st.fallback_since = Some(Instant::now());
            st.dual_until = None;
            st.unmerged = true;
            // Own counting starts now; grants in flight keep counting toward concurrency.
            st.own.sliding.clear();
            st.own.calendar.clear();
        }
    }

    /// Redis answers again: add this node's own usage to the shared windows, then apply both the
    /// shared windows and the own share for one longest-window length.
    async fn leave_fallback(&self) {
        let merge = {
            let st = self.lock();
            if !st.unmerged {
                None
            } else {
                Some(self.merge_args(&st))
            }
        };
        if let Some(args) = merge {
            match self.call("merge", args).await {
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(scope = %self.spec.scope, error = %e, "merge after the outage failed; still admitting alone");
                    return;
                }
            }
        }
        let mut st = self.lock();
        st.fallback_since = None;
        st.unmerged = false;
        st.dual_until = Some(Instant::now() + self.longest_sliding());
        tracing::info!(scope = %self.spec.scope, "own usage merged into the shared windows");
    }

    fn merge_args(&self, st: &State) -> String {
        let mut s = Vec::new();
        let mut d = Vec::new();
        let mut m = Vec::new();
        for (i, w) in self.spec.windows.iter().enumerate() {
            let n = w.counter.code();
            match w.period {
                Period::Sliding(len) => {
                    if let Some(b) = st.own.sliding.get(&i) {
                        for (sec, amt) in b {
                            s.push(serde_json::json!([len, sec, n, amt]));
                        }
                    }
                }
                Period::Day => {
                    if let Some((label, amt)) = st.own.calendar.get(&i) {
                        d.push(serde_json::json!([label, n, amt]));
                    }
                }
                Period::Month => {
                    if let Some((label, amt)) = st.own.calendar.get(&i) {
                        m.push(serde_json::json!([label, n, amt]));
                    }
                }
            }
        }
        let now = wall_ms();
        serde_json::json!({"off": tz_offset_ms(self.spec.tz, now), "s": s, "d": d, "M": m})
            .to_string()
    }

    /// The node's share of window `i` and its own usage there now; `Err` = nothing yet until then.
    fn local_room(
        &self,
        st: &mut State,
        i: usize,
        w: &WindowSpec,
        clock: &Clock,
    ) -> Result<(u64, u64), Duration> {
        let Clock {
            now,
            now_s,
            day,
            month,
        } = *clock;
        let n = self.health.nodes();
        if n == 0 {
            // Membership never known: no share can be computed safely.
            return Ok((0, 0));
        }
        let n = n as u64;
        match w.period {
            Period::Sliding(len) => {
                if let Some(since) = st.fallback_since {
                    let open_at = since + Duration::from_secs(u64::from(len) + 1);
                    if now < open_at {
                        return Err(open_at - now);
                    }
                }
                let b = st.own.sliding.entry(i).or_default();
                let cutoff = now_s - i64::from(len);
                b.retain(|&sec, _| sec >= cutoff);
                Ok((w.limit / n, b.values().sum()))
            }
            Period::Day | Period::Month => {
                let label = if w.period == Period::Day { day } else { month };
                let own = match st.own.calendar.get(&i) {
                    Some((l, amt)) if *l == label => *amt,
                    _ => 0,
                };
                let seen = match &st.seen {
                    Some((at, usage, sday, smonth)) => {
                        let same = if w.period == Period::Day {
                            *sday == day
                        } else {
                            *smonth == month
                        };
                        if !same {
                            0
                        } else {
                            // What the rest of the cluster could have admitted between that reading
                            // and the loss of Redis, bounded by a sliding window of the same counter
                            // (none: the whole window is taken as spent).
                            let lost_at = st.fallback_since.unwrap_or(now);
                            let age = lost_at.saturating_duration_since(*at);
                            let margin = self.admissible_within(w.counter, age);
                            match margin {
                                Some(mw) => {
                                    usage.get(i).copied().unwrap_or(w.limit).saturating_add(mw)
                                }
                                None => w.limit,
                            }
                        }
                    }
                    // Never read (or an earlier period): assume the window spent.
                    None => w.limit,
                };
                Ok((w.limit.saturating_sub(seen) / n, own))
            }
        }
    }

    /// The most the cluster can admit of `counter` within `age`, from the tightest sliding window
    /// of that counter: `age` spans at most `ceil(age / 1 s) + 1` whole seconds, and any `len + 1`
    /// consecutive seconds hold at most `limit` (the buckets' rule).
    fn admissible_within(&self, counter: Counter, age: Duration) -> Option<u64> {
        let secs = age.as_millis().div_ceil(1000) as u64 + 1;
        self.spec
            .windows
            .iter()
            .filter_map(|x| match x.period {
                Period::Sliding(len) if x.counter == counter => {
                    Some(secs.div_ceil(u64::from(len) + 1).saturating_mul(x.limit))
                }
                _ => None,
            })
            .min()
    }

    fn check_local(&self, cost: Amounts) -> Result<(), Refusal> {
        let mut st = self.lock();
        self.check_local_locked(&mut st, cost)
    }

    fn check_local_locked(&self, st: &mut State, cost: Amounts) -> Result<(), Refusal> {
        let now = Instant::now();
        let wall = wall_ms();
        let now_s = wall.div_euclid(1000);
        let (day, month) = labels(self.spec.tz, wall);
        for (i, w) in self.spec.windows.iter().enumerate() {
            let c = cost.of(w.counter);
            if c == 0 {
                continue;
            }
            let clock = Clock {
                now,
                now_s,
                day,
                month,
            };
            match self.local_room(st, i, w, &clock) {
                Err(wait) => return Err(Refusal::Window { retry: wait }),
                Ok((share, own)) => {
                    if own + c > share {
                        return Err(match w.period {
                            Period::Sliding(len) => Refusal::Window {
                                retry: Duration::from_secs(u64::from(len) + 1),
                            },
                            Period::Day => Refusal::Day {
                                retry: ms((day + 1) * DAY_MS
                                    - tz_offset_ms(self.spec.tz, wall)
                                    - wall),
                            },
                            Period::Month => Refusal::Month {
                                retry: Duration::from_secs(86_400),
                            },
                        });
                    }
                }
            }
        }
        if let Some(cc) = self.spec.concurrency {
            let n = self.health.nodes().max(1) as u32;
            let share = if self.health.nodes() == 0 { 0 } else { cc / n };
            let mine = st.in_flight.len() + st.own.open.len();
            if mine as u64 >= u64::from(share) {
                return Err(Refusal::Concurrency { retry: self.lease });
            }
        }
        Ok(())
    }

    fn count_own_locked(&self, st: &mut State, cost: Amounts) -> (i64, i64, i64) {
        let wall = wall_ms();
        let now_s = wall.div_euclid(1000);
        let (day, month) = labels(self.spec.tz, wall);
        for (i, w) in self.spec.windows.iter().enumerate() {
            let c = cost.of(w.counter);
            if c == 0 {
                continue;
            }
            match w.period {
                Period::Sliding(_) => {
                    *st.own
                        .sliding
                        .entry(i)
                        .or_default()
                        .entry(now_s)
                        .or_default() += c;
                }
                Period::Day | Period::Month => {
                    let label = if w.period == Period::Day { day } else { month };
                    let e = st.own.calendar.entry(i).or_insert((label, 0));
                    if e.0 != label {
                        *e = (label, 0);
                    }
                    e.1 += c;
                }
            }
        }
        (now_s, day, month)
    }

    fn count_own(&self, cost: Amounts) {
        let mut st = self.lock();
        self.count_own_locked(&mut st, cost);
    }

    fn admit_local(&self, cost: Amounts, _probe: bool) -> Result<GrantId, Refusal> {
        let mut st = self.lock();
        self.check_local_locked(&mut st, cost)?;
        let (sec, day, month) = self.count_own_locked(&mut st, cost);
        st.own.next += 1;
        let id = st.own.next;
        st.own.open.insert(id, (sec, day, month, cost));
        st.unmerged = true;
        Ok(GrantId::Local(id))
    }

    /// Adjusts the own counters of a local grant from `reserved` to `actual` (requests: `keep_request`).
    fn adjust_own(
        &self,
        st: &mut State,
        at: (i64, i64, i64),
        reserved: Amounts,
        actual: Amounts,
        keep_request: bool,
    ) {
        let (sec, day, month) = at;
        for (i, w) in self.spec.windows.iter().enumerate() {
            let (from, to) = match w.counter {
                Counter::Requests => (1, u64::from(keep_request)),
                c => (reserved.of(c), actual.of(c)),
            };
            if from == to {
                continue;
            }
            match w.period {
                Period::Sliding(_) => {
                    if let Some(v) = st.own.sliding.get_mut(&i).and_then(|b| b.get_mut(&sec)) {
                        *v = v.saturating_sub(from) + to;
                    }
                }
                Period::Day | Period::Month => {
                    let label = if w.period == Period::Day { day } else { month };
                    if let Some((l, v)) = st.own.calendar.get_mut(&i) {
                        if *l == label {
                            *v = v.saturating_sub(from) + to;
                        }
                    }
                }
            }
        }
    }

    /// Settles a grant to the real usage.
    pub async fn settle(&self, id: GrantId, actual: Amounts) {
        self.finish(id, Some(actual), true).await;
    }

    /// Releases a grant whose call failed: `sent` keeps it counted as a request (the provider saw it).
    pub async fn release(&self, id: GrantId, sent: bool) {
        self.finish(id, None, sent).await;
    }

    async fn finish(&self, id: GrantId, actual: Option<Amounts>, sent: bool) {
        match id {
            GrantId::Local(n) => {
                let mut st = self.lock();
                if let Some((sec, day, month, reserved)) = st.own.open.remove(&n) {
                    self.adjust_own(
                        &mut st,
                        (sec, day, month),
                        reserved,
                        actual.unwrap_or_default(),
                        sent,
                    );
                }
            }
            GrantId::Shared(n) => {
                self.lock().in_flight.remove(&n);
                let (op, args) = match actual {
                    Some(a) => ("settle", serde_json::json!({"id": n, "c": a})),
                    None => ("release", serde_json::json!({"id": n, "sent": sent})),
                };
                if let Err(e) = self.call(op, args.to_string()).await {
                    // The usage stays counted as reserved (never less): the safe side.
                    tracing::warn!(scope = %self.spec.scope, error = %e, "shared {op} failed; the reservation stays counted");
                }
            }
        }
    }

    /// A provider 429: no node admits into this scope for `wait`.
    pub async fn block(&self, wait: Duration) {
        let ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX).max(1);
        if let Err(e) = self
            .call("block", serde_json::json!({"ms": ms}).to_string())
            .await
        {
            tracing::warn!(scope = %self.spec.scope, error = %e, "shared cool-down not recorded");
        }
    }

    /// Cluster-wide usage per window (in the order of the spec), leases in flight and the cool-down
    /// left; `None` while Redis is unreachable.
    pub async fn usage(&self) -> Option<SharedUsage> {
        if !self.health.is_up() {
            return None;
        }
        let windows = self.wire_windows();
        let args = serde_json::json!({"off": tz_offset_ms(self.spec.tz, wall_ms()), "w": windows});
        let v = self.call("usage", args.to_string()).await.ok()?;
        let items: Vec<i64> = redis::from_redis_value(v).ok()?;
        let (day, month) = labels(self.spec.tz, *items.first()?);
        let used: Vec<u64> = items
            .iter()
            .skip(3)
            .map(|&x| u64::try_from(x).unwrap_or(0))
            .collect();
        self.lock().seen = Some((Instant::now(), used.clone(), day, month));
        Some(SharedUsage {
            used,
            in_flight: u32::try_from(*items.get(1)?).unwrap_or(0),
            cooling_down: ms(*items.get(2)?),
        })
    }

    /// The cluster's calendar-window usage as last read (at most 5 s ago), for the local counters.
    pub fn last_calendar_usage(&self) -> Option<crate::quota::ClusterUsage> {
        let st = self.lock();
        let (at, used, ..) = st.seen.as_ref()?;
        if at.elapsed() > USAGE_REFRESH * 2 {
            return None;
        }
        let mut u = crate::quota::ClusterUsage::default();
        for (w, v) in self.spec.windows.iter().zip(used.iter()) {
            let slot = match (w.period, w.counter) {
                (Period::Day, Counter::Requests) => &mut u.requests_day,
                (Period::Day, Counter::Tokens) => &mut u.tokens_day,
                (Period::Day, Counter::Units) => &mut u.units_day,
                (Period::Day, Counter::Micros) => &mut u.micros_day,
                (Period::Month, Counter::Requests) => &mut u.requests_month,
                (Period::Month, Counter::Tokens) => &mut u.tokens_month,
                _ => continue,
            };
            *slot = Some(*v);
        }
        Some(u)
    }

    /// Renews the concurrency leases of shared grants still in flight, every third of the lease
    /// (at most every second), and keeps the reading of the cluster's usage fresh (the fallback share
    /// of the calendar windows starts from it), for as long as the windows exist.
    fn spawn_renewer(self: Arc<Self>) {
        let weak: Weak<SharedWindows> = Arc::downgrade(&self);
        let every = (self.lease / 3).clamp(Duration::from_millis(50), Duration::from_secs(1));
        drop(self);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let Some(w) = weak.upgrade() else { return };
                if !w.health.is_up() || w.in_fallback() {
                    continue;
                }
                let (ids, stale) = {
                    let st = w.lock();
                    let ids: Vec<u64> = st.in_flight.keys().copied().collect();
                    let stale = st
                        .seen
                        .as_ref()
                        .is_none_or(|(at, ..)| at.elapsed() >= USAGE_REFRESH);
                    (ids, stale)
                };
                if !ids.is_empty() {
                    let lease = u64::try_from(w.lease.as_millis()).unwrap_or(u64::MAX);
                    let args = serde_json::json!({"ids": ids, "lease": lease}).to_string();
                    if let Err(e) = w.call("renew", args).await {
                        tracing::debug!(scope = %w.spec.scope, error = %e, "lease renewal failed");
                    }
                }
                if stale {
                    let _ = w.usage().await;
                }
            }
        });
    }
}

/// A scope's cluster-wide figures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SharedUsage {
    /// Used per window, in the order of the scope's windows.
    pub used: Vec<u64>,
    /// Concurrency leases held.
    pub in_flight: u32,
    /// Cool-down left.
    #[serde(with = "duration_ms")]
    pub cooling_down: Duration,
}

mod duration_ms {
    pub fn serialize<S: serde::Serializer>(
        d: &std::time::Duration,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

    use super::*;
    use crate::cluster::testing::RedisServer;

    fn spec(scope: &str, rpm: u64, rpd: u64, tpm: u64, cc: Option<u32>) -> ScopeSpec {
        ScopeSpec {
            scope: scope.into(),
            windows: vec![
                WindowSpec {
                    period: Period::Sliding(60),
                    counter: Counter::Requests,
                    limit: rpm,
                },
                WindowSpec {
                    period: Period::Sliding(60),
                    counter: Counter::Tokens,
                    limit: tpm,
                },
                WindowSpec {
                    period: Period::Day,
                    counter: Counter::Requests,
                    limit: rpd,
                },
            ],
            concurrency: cc,
            tz: chrono_tz::UTC,
        }
    }

    fn tokens(t: u64) -> Amounts {
        Amounts {
            tokens: t,
            ..Amounts::default()
        }
    }

    async fn nodes(redis: &RedisServer, n: usize, s: &ScopeSpec) -> Vec<Arc<SharedWindows>> {
        let mut out = Vec::new();
        for i in 0..n {
            let c = redis.cluster(&format!("n{i}")).await;
            let h = Arc::new(ClusterHealth::default());
            h.mark_up(n);
            out.push(SharedWindows::new(c, s.clone(), h, Duration::from_secs(5)));
        }
        out
    }

    #[tokio::test]
    async fn three_nodes_share_one_minute_window_exactly() {
        let redis = RedisServer::start();
        let s = spec("k#1", 10, 1000, 1_000_000, None);
        let ws = nodes(&redis, 3, &s).await;
        let mut granted = 0;
        let mut refused = Vec::new();
        for round in 0..10 {
            for w in &ws {
                match w.admit(tokens(10)).await {
                    Ok(_) => granted += 1,
                    Err(r) => refused.push((round, r)),
                }
            }
        }
        assert_eq!(granted, 10, "the cluster admits exactly the key's rpm");
        assert_eq!(refused.len(), 20);
        for (_, r) in &refused {
            match r {
                Refusal::Window { retry } => {
                    assert!(*retry > Duration::ZERO && *retry <= Duration::from_secs(61))
                }
                other => panic!("unexpected refusal {other:?}"),
            }
        }
        // What the engine wrote, as redis-cli would read it.
        let c = redis.cluster("reader").await;
        let day: std::collections::HashMap<String, i64> = c
            .run(redis::cmd("HGETALL").arg(format!(
                "ietest:v1:{{q:k#1}}:d:{}",
                labels(chrono_tz::UTC, wall_ms()).0
            )))
            .await
            .unwrap();
        assert_eq!(day.get("r"), Some(&10));
    }

    #[tokio::test]
    async fn all_or_nothing_and_settle_and_refund() {
        let redis = RedisServer::start();
        let s = spec("k#2", 100, 1000, 1000, None);
        let w = &nodes(&redis, 1, &s).await[0];
        let g = w.admit(tokens(600)).await.unwrap();
        // 600 + 600 > tpm: refused, and the request window did not count it either.
        assert!(matches!(
            w.admit(tokens(600)).await,
            Err(Refusal::Window { .. })
        ));
        let u = w.usage().await.unwrap();
        assert_eq!(u.used, vec![1, 600, 1]);
        // Settled to 100 real tokens: room for 900 more.
        w.settle(g, tokens(100)).await;
        assert_eq!(w.usage().await.unwrap().used, vec![1, 100, 1]);
        let g2 = w.admit(tokens(900)).await.unwrap();
        // A call that never went out is refunded entirely.
        w.release(g2, false).await;
        assert_eq!(w.usage().await.unwrap().used, vec![1, 100, 1]);
        // A sent, failed call stays a request with no tokens.
        let g3 = w.admit(tokens(50)).await.unwrap();
        w.release(g3, true).await;
        assert_eq!(w.usage().await.unwrap().used, vec![2, 100, 2]);
        assert_eq!(w.admit(tokens(5000)).await, Err(Refusal::TooLarge));
    }

    #[tokio::test]
    async fn concurrency_leases_are_shared_and_expire_with_their_node() {
        let redis = RedisServer::start();
        let s = spec("k#3", 1000, 100_000, 1_000_000, Some(2));
        let c = redis.cluster("a").await;
        let h = Arc::new(ClusterHealth::default());
        h.mark_up(2);
        // A node whose leases last 300 ms and who never renews them (it "dies").
        let dying = Arc::new(SharedWindows {
            cluster: c.clone(),
            base: c.key("{q:k#3}"),
            spec: s.clone(),
            health: h.clone(),
            script: redis::Script::new(ADMISSION_LUA),
            lease: Duration::from_millis(300),
            state: Mutex::new(State::default()),
        });
        let other = &nodes(&redis, 1, &s).await[0];
        dying.admit(tokens(1)).await.unwrap();
        let g = other.admit(tokens(1)).await.unwrap();
        assert!(matches!(
            other.admit(tokens(1)).await,
            Err(Refusal::Concurrency { .. })
        ));
        other.settle(g, tokens(1)).await;
        let g = other.admit(tokens(1)).await.unwrap();
        // The dead node's lease expires: its slot comes back without it.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match other.admit(tokens(1)).await {
                Ok(_) => break,
                Err(Refusal::Concurrency { .. }) => {
                    assert!(
                        Instant::now() < deadline,
                        "the dead node's lease never expired"
                    );
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("{e:?}"),
            }
        }
        other.settle(g, tokens(1)).await;
    }

    #[tokio::test]
    async fn a_renewed_lease_outlives_its_first_term() {
        let redis = RedisServer::start();
        let s = spec("k#4", 1000, 100_000, 1_000_000, Some(1));
        let c = redis.cluster("a").await;
        let h = Arc::new(ClusterHealth::default());
        h.mark_up(1);
        let w = SharedWindows::new(c, s.clone(), h, Duration::from_millis(300));
        let g = w.admit(tokens(1)).await.unwrap();
        let probe = &nodes(&redis, 1, &s).await[0];
        // Well past three lease terms, the renewed lease still holds the slot.
        let until = Instant::now() + Duration::from_millis(1200);
        while Instant::now() < until {
            assert!(matches!(
                probe.admit(tokens(1)).await,
                Err(Refusal::Concurrency { .. })
            ));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        w.settle(g, tokens(1)).await;
        assert!(probe.admit(tokens(1)).await.is_ok());
    }

    #[tokio::test]
    async fn a_cooldown_blocks_every_node() {
        let redis = RedisServer::start();
        let s = spec("k#5", 1000, 100_000, 1_000_000, None);
        let ws = nodes(&redis, 2, &s).await;
        ws[0].block(Duration::from_secs(30)).await;
        match ws[1].admit(tokens(1)).await {
            Err(Refusal::CoolingDown { retry }) => assert!(retry > Duration::from_secs(20)),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn day_window_refuses_until_the_reset() {
        let redis = RedisServer::start();
        let s = spec("k#6", 1000, 3, 1_000_000, None);
        let ws = nodes(&redis, 3, &s).await;
        for w in &ws {
            w.admit(tokens(1)).await.unwrap();
        }
        match ws[0].admit(tokens(1)).await {
            Err(Refusal::Day { retry }) => assert!(retry <= Duration::from_secs(86_400)),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn redis_down_each_node_takes_its_share_then_merges_back() {
        let mut redis = RedisServer::start();
        // 20 requests per 1 s sliding window and 100 a day, over three nodes.
        let s = ScopeSpec {
            scope: "k#7".into(),
            windows: vec![
                WindowSpec {
                    period: Period::Sliding(1),
                    counter: Counter::Requests,
                    limit: 20,
                },
                WindowSpec {
                    period: Period::Day,
                    counter: Counter::Requests,
                    limit: 100,
                },
            ],
            concurrency: None,
            tz: chrono_tz::UTC,
        };
        let ws = nodes(&redis, 3, &s).await;
        for w in &ws {
            w.admit(tokens(1)).await.unwrap();
        }
        redis.stop();
        // Each node admits alone until its share of the day is spent (waiting out its share of the
        // sliding window as it goes).
        let mut tasks = Vec::new();
        for w in &ws {
            let w = w.clone();
            tasks.push(tokio::spawn(async move {
                let deadline = Instant::now() + Duration::from_secs(60);
                let mut n = 0u64;
                loop {
                    match w.admit(tokens(1)).await {
                        Ok(GrantId::Local(_)) => n += 1,
                        Ok(GrantId::Shared(_)) => panic!("redis is down"),
                        Err(Refusal::Window { .. }) => {
                            tokio::time::sleep(Duration::from_millis(100)).await
                        }
                        Err(Refusal::Day { .. }) => return n,
                        Err(e) => panic!("{e:?}"),
                    }
                    assert!(Instant::now() < deadline, "the day share was never reached");
                }
            }));
        }
        let mut per_node = Vec::new();
        for t in tasks {
            per_node.push(t.await.unwrap());
        }
        let total: u64 = 3 + per_node.iter().sum::<u64>();
        assert!(
            total <= 100,
            "the cluster never exceeds the limit: {total} ({per_node:?})"
        );
        assert!(
            per_node.iter().all(|&n| n > 0),
            "every node stays available: {per_node:?}"
        );
        redis.restart();
        for w in &ws {
            let deadline = Instant::now() + Duration::from_secs(10);
            // As the membership heartbeat does: a beat that reaches Redis marks it up.
            while !{
                w.health.mark_up(3);
                w.reconcile().await
            } {
                assert!(
                    Instant::now() < deadline,
                    "never returned to the shared windows"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        let u = ws[0].usage().await.unwrap();
        assert_eq!(
            u.used[1], total,
            "the shared day window counts every node's usage"
        );
        // Back in shared mode, the rest of the day is shared again.
        let mut after = 0;
        while ws[0].admit(tokens(1)).await.is_ok() || ws[1].admit(tokens(1)).await.is_ok() {
            after += 1;
            assert!(after <= 100);
        }
        assert!(total + after <= 100);
    }

    #[tokio::test]
    async fn sliding_windows_wait_a_window_length_after_redis_is_lost() {
        let mut redis = RedisServer::start();
        let s = spec("k#8", 30, 1000, 1_000_000, None);
        let ws = nodes(&redis, 3, &s).await;
        ws[0].admit(tokens(1)).await.unwrap();
        redis.stop();
        match ws[0].admit(tokens(1)).await {
            Err(Refusal::Window { retry }) => assert!(retry <= Duration::from_secs(61)),
            other => panic!("{other:?}"),
        }
        assert!(ws[0].in_fallback());
    }

    #[test]
    fn day_and_month_labels_follow_the_zone() {
        // 2024-03-01 02:00 UTC is still 2024-02-29 in Los Angeles.
        let at = Utc
            .with_ymd_and_hms(2024, 3, 1, 2, 0, 0)
            .unwrap()
            .timestamp_millis();
        let (d_utc, m_utc) = labels(chrono_tz::UTC, at);
        let (d_la, m_la) = labels(chrono_tz::America::Los_Angeles, at);
        assert_eq!(m_utc, 202403);
        assert_eq!(m_la, 202402);
        assert_eq!(d_utc - d_la, 1);
    }
}
