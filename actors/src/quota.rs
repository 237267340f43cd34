//! Rate windows of one quota (a key, or a scope of keys sharing one quota): requests and tokens per
//! sliding minute, per calendar day and per calendar month in the provider's reset time zone, a daily
//! budget in the provider's cost unit (Cloudflare's neurons), a daily spend cap, and concurrent requests.
//!
//! Admission has two steps. [`Quota::try_reserve`] reserves a request's estimated [`Cost`] in every time
//! window at once, or in none; [`Quota::try_start`] then takes a concurrency slot (a request may hold
//! its window room while it waits for a slot, and is moved to the second it really starts, so the
//! minute window only ever gets stricter). After the call the reservation is settled to the real usage,
//! or released if the call never reached the provider. Daily windows reset at midnight of `reset_tz`,
//! monthly ones on the first of the month there, never 24 hours after start.
//!
//! Durability by blocks: the usage ledger is not written per request. A record says "these counters,
//! plus at most `block` more admissions"; admission writes (and the key flushes) a new record only when
//! the admissions since the last one would pass the block. A restore counts the whole block as spent,
//! so a crash can never spend a window twice; a clean stop writes the exact counters with no block.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use chrono::{DateTime, Datelike, TimeZone, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::clock::Clock;

/// What the whole cluster used of a scope's calendar windows (`None`: no such window).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClusterUsage {
    /// Requests today.
    pub requests_day: Option<u64>,
    /// Tokens today.
    pub tokens_day: Option<u64>,
    /// Cost units today.
    pub units_day: Option<u64>,
    /// Money today (millionths).
    pub micros_day: Option<u64>,
    /// Requests this month.
    pub requests_month: Option<u64>,
    /// Tokens this month.
    pub tokens_month: Option<u64>,
}

/// A provider's published limits for one key or scope. `None` means no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Requests per minute.
    pub rpm: Option<u32>,
    /// Requests per day.
    pub rpd: Option<u32>,
    /// Tokens per minute.
    pub tpm: Option<u64>,
    /// Tokens per day.
    pub tpd: Option<u64>,
    /// Requests in flight at once.
    pub concurrency: Option<u32>,
    /// Requests per calendar month (Cohere trial keys: 1,000 calls a month).
    #[serde(default)]
    pub requests_per_month: Option<u64>,
    /// Tokens per calendar month (Mistral's free tier).
    #[serde(default)]
    pub tokens_per_month: Option<u64>,
    /// A daily budget in the provider's cost unit (Cloudflare Workers AI: 10,000 neurons a day), spent
    /// at the per-model input/output rates of the provider's `unit_rates`.
    #[serde(default)]
    pub daily_units: Option<u64>,
    /// Daily spend cap in millionths of the price currency, from the provider's `daily_spend_cap`.
    #[serde(skip)]
    pub daily_spend_micros: Option<u64>,
}

impl Limits {
    /// Whether any window counts over time (anything but concurrency): such a quota is persisted.
    pub fn has_time_window(&self) -> bool {
        self.rpm.is_some()
            || self.rpd.is_some()
            || self.tpm.is_some()
            || self.tpd.is_some()
            || self.requests_per_month.is_some()
            || self.tokens_per_month.is_some()
            || self.daily_units.is_some()
            || self.daily_spend_micros.is_some()
    }
}

/// What one request costs in each kind of window. A request always counts one request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cost {
    /// Prompt plus completion tokens.
    pub tokens: u64,
    /// Provider cost units (neurons), at the model's rates.
    pub units: u64,
    /// Price in millionths of the currency, at the provider's `cost`.
    pub micros: u64,
}

impl Cost {
    /// Nothing.
    pub const ZERO: Cost = Cost {
        tokens: 0,
        units: 0,
        micros: 0,
    };

    fn add(self, o: Cost) -> Cost {
        Cost {
            tokens: self.tokens.saturating_add(o.tokens),
            units: self.units.saturating_add(o.units),
            micros: self.micros.saturating_add(o.micros),
        }
    }
}

/// Per-model prices of a request: input and output per million tokens, in cost units and in money.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Rates {
    /// Cost units per million input tokens.
    pub units_in: f64,
    /// Cost units per million output tokens.
    pub units_out: f64,
    /// Price per million input tokens.
    pub price_in: f64,
    /// Price per million output tokens.
    pub price_out: f64,
}

/// Share of input tokens assumed when a token figure is turned into units or money without a split
/// (capacity planning): interview prompts are long and answers short.
pub const ASSUMED_INPUT_SHARE: f64 = 0.75;

impl Rates {
    /// The cost of `input` prompt tokens and `output` completion tokens.
    pub fn cost(&self, input: u64, output: u64) -> Cost {
        let per = |n: u64, rate: f64| n as f64 * rate / 1e6;
        let units = per(input, self.units_in) + per(output, self.units_out);
        let money = per(input, self.price_in) + per(output, self.price_out);
        Cost {
            tokens: input + output,
            units: units.ceil() as u64,
            micros: (money * 1e6).ceil() as u64,
        }
    }

    /// Units per token at the assumed input share.
    pub fn blended_units(&self) -> f64 {
        (ASSUMED_INPUT_SHARE * self.units_in + (1.0 - ASSUMED_INPUT_SHARE) * self.units_out) / 1e6
    }

    /// Money (millionths) per token at the assumed input share.
    pub fn blended_micros(&self) -> f64 {
        ASSUMED_INPUT_SHARE * self.price_in + (1.0 - ASSUMED_INPUT_SHARE) * self.price_out
    }
}

/// Why a reservation cannot be made now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blocked {
    /// A minute window is full until the given instant.
    Until(Instant),
    /// The concurrency limit is reached; room comes when a call finishes.
    Concurrency,
    /// A daily or monthly window is spent until its reset.
    Day(DateTime<Utc>),
    /// The request alone is larger than a window's whole limit: it can never be admitted here.
    TooLarge {
        /// The window (`tpm`, `tpd`, `tokens_per_month`, `daily_units`, `daily_spend`).
        window: &'static str,
        /// Its limit.
        limit: u64,
        /// What the request needs of it.
        need: u64,
    },
    /// The provider told us to wait (429 cool-down, or a day-exhausted park) until the given instant.
    CoolingDown(Instant),
}

/// A reservation handle.
pub type ReservationId = u64;

/// One second of the minute window. A bucket stays in the window until 61 s after its second began,
/// so second granularity can only make the window stricter, never looser.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    /// Seconds since the quota's origin instant (negative for restored history).
    sec: i64,
    requests: u64,
    tokens: u64,
}

/// The persisted form of a quota's usage (see `storage`). Versioned: a record of an unknown version is
/// ignored with a warning.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UsageRecord {
    /// Record layout version.
    pub version: u16,
    /// The day (in the reset time zone) the day counters belong to, `YYYY-MM-DD`.
    pub day: String,
    /// Requests counted today.
    pub requests_day: u64,
    /// Tokens counted today.
    pub tokens_day: u64,
    /// The minute window, one entry per second that had traffic: (unix second, requests, tokens).
    pub minute: Vec<(i64, u64, u64)>,
    /// Cool-down or park set by the provider: unix ms until which no request may go out.
    pub blocked_until_ms: Option<i64>,
    /// Cost units counted today.
    pub units_day: u64,
    /// Money (millionths) counted today.
    pub micros_day: u64,
    /// The month the month counters belong to, `YYYY-MM`.
    pub month: String,
    /// Requests counted this month.
    pub requests_month: u64,
    /// Tokens counted this month.
    pub tokens_month: u64,
    /// Admissions that may have happened after this record was written without another record: a
    /// restore counts them as spent (requests, and their cost).
    pub block_requests: u64,
    /// The cost part of the block.
    pub block_cost: Cost,
}

/// The current layout version of [`UsageRecord`].
pub const USAGE_RECORD_VERSION: u16 = 2;

/// Seconds a bucket counts in the window (60 s plus the second it covers).
const WINDOW_SECS: i64 = 61;

/// Part of a limit one durable block may cover: after a crash at most 1/20 of a window is lost.
const BLOCK_DIVISOR: u64 = 20;

#[derive(Debug, Clone)]
struct Open {
    sec: i64,
    cost: Cost,
    day: String,
    month: String,
    started: Option<Instant>,
}

/// Rate windows and the reservations held against them.
#[derive(Debug)]
pub struct Quota {
    limits: Limits,
    tz: Tz,
    origin: Instant,
    /// The minute window, oldest first, at most 61 buckets.
    minute: VecDeque<Bucket>,
    minute_requests: u64,
    minute_tokens: u64,
    day: String,
    requests_day: u64,
    tokens_day: u64,
    units_day: u64,
    micros_day: u64,
    month: String,
    requests_month: u64,
    tokens_month: u64,
    in_flight: u32,
    open: HashMap<ReservationId, Open>,
    next_id: ReservationId,
    blocked_until: Option<(Instant, i64)>,
    /// Admissions since the last durable record, and the block that record allows.
    since_write: (u64, Cost),
    /// What the last durable record allows beyond its counters (nothing at start).
    covered: (u64, Cost),
    block: (u64, Cost),
}

/// A snapshot of a quota's usage for status pages and the router.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct QuotaUsage {
    /// Requests in the last 60 s.
    pub rpm_used: u64,
    /// Requests today.
    pub rpd_used: u64,
    /// Tokens in the last 60 s.
    pub tpm_used: u64,
    /// Tokens today.
    pub tpd_used: u64,
    /// Cost units today.
    pub units_used: u64,
    /// Money (millionths) today.
    pub spend_micros_used: u64,
    /// Requests this month.
    pub requests_month_used: u64,
    /// Tokens this month.
    pub tokens_month_used: u64,
    /// Calls in flight.
    pub in_flight: u32,
    /// The smallest remaining fraction over all limited windows (1.0 when nothing is limited).
    pub headroom: f64,
}

/// What one quota can still serve today (`None`: no daily limit).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct DayLeft {
    /// Requests left today.
    pub requests: Option<u64>,
    /// Tokens left today.
    pub tokens: Option<u64>,
}

impl DayLeft {
    /// Nothing today.
    pub const NOTHING: DayLeft = DayLeft {
        requests: Some(0),
        tokens: Some(0),
    };
}

fn min_opt(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, y) => x.or(y),
    }
}

impl Quota {
    /// A fresh quota with nothing used.
    pub fn new(limits: Limits, tz: Tz) -> Self {
        let block = Self::block_for(&limits);
        Self {
            limits,
            tz,
            origin: Clock::now(),
            minute: VecDeque::new(),
            minute_requests: 0,
            minute_tokens: 0,
            day: String::new(),
            requests_day: 0,
            tokens_day: 0,
            units_day: 0,
            micros_day: 0,
            month: String::new(),
            requests_month: 0,
            tokens_month: 0,
            in_flight: 0,
            open: HashMap::new(),
            next_id: 1,
            blocked_until: None,
            since_write: (0, Cost::ZERO),
            covered: (0, Cost::ZERO),
            block,
        }
    }

    /// The durable block: a twentieth of the smallest limit of each kind (at least one), unbounded
    /// for a kind no window counts.
    fn block_for(l: &Limits) -> (u64, Cost) {
        let part = |limits: &[Option<u64>]| -> u64 {
            limits
                .iter()
                .flatten()
                .map(|&v| (v / BLOCK_DIVISOR).max(1))
                .min()
                .unwrap_or(u64::MAX)
        };
        (
            part(&[
                l.rpm.map(u64::from),
                l.rpd.map(u64::from),
                l.requests_per_month,
            ]),
            Cost {
                tokens: part(&[l.tpm, l.tpd, l.tokens_per_month]),
                units: part(&[l.daily_units]),
                micros: part(&[l.daily_spend_micros]),
            },
        )
    }

    /// The limits.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    fn sec_of(&self, now: Instant) -> i64 {
        i64::try_from(now.saturating_duration_since(self.origin).as_secs()).unwrap_or(i64::MAX / 2)
    }

    fn instant_of(&self, sec: i64) -> Instant {
        if sec >= 0 {
            self.origin + Duration::from_secs(sec.unsigned_abs())
        } else {
            self.origin
                .checked_sub(Duration::from_secs(sec.unsigned_abs()))
                .unwrap_or(self.origin)
        }
    }

    /// The day (`YYYY-MM-DD` in the reset time zone) that `wall` falls in.
    pub fn day_of(&self, wall: DateTime<Utc>) -> String {
        let local = wall.with_timezone(&self.tz);
        format!(
            "{:04}-{:02}-{:02}",
            local.year(),
            local.month(),
            local.day()
        )
    }

    /// The month (`YYYY-MM` in the reset time zone) that `wall` falls in.
    pub fn month_of(&self, wall: DateTime<Utc>) -> String {
        let local = wall.with_timezone(&self.tz);
        format!("{:04}-{:02}", local.year(), local.month())
    }

    /// The first valid instant of local day `d` (midnight, or the hour a DST change leaves).
    fn start_of(&self, mut d: chrono::NaiveDate, fallback: DateTime<Utc>) -> DateTime<Utc> {
        for _ in 0..3 {
            for hour in 0..3 {
                if let Some(t) = d.and_hms_opt(hour, 0, 0) {
                    if let Some(dt) = self.tz.from_local_datetime(&t).earliest() {
                        return dt.with_timezone(&Utc);
                    }
                }
            }
            d = d.succ_opt().unwrap_or(d);
        }
        fallback
    }

    /// The next daily reset after `wall`: midnight of the following day in the reset time zone.
    pub fn next_reset(&self, wall: DateTime<Utc>) -> DateTime<Utc> {
        let local = wall.with_timezone(&self.tz).date_naive();
        let next = local.succ_opt().unwrap_or(local);
        self.start_of(next, wall + chrono::Duration::hours(24))
    }

    /// The next monthly reset after `wall`: the first of the next month in the reset time zone.
    pub fn next_month_reset(&self, wall: DateTime<Utc>) -> DateTime<Utc> {
        let local = wall.with_timezone(&self.tz).date_naive();
        let (y, m) = if local.month() == 12 {
            (local.year() + 1, 1)
        } else {
            (local.year(), local.month() + 1)
        };
        match chrono::NaiveDate::from_ymd_opt(y, m, 1) {
            Some(first) => self.start_of(first, wall + chrono::Duration::days(31)),
            None => wall + chrono::Duration::days(31),
        }
    }

    /// Days left in the month of `wall`, today included.
    pub fn days_left_in_month(&self, wall: DateTime<Utc>) -> u64 {
        let left = self.next_month_reset(wall) - wall;
        u64::try_from(left.num_hours().div_euclid(24) + 1)
            .unwrap_or(1)
            .max(1)
    }

    /// Restores usage from a persisted record (after a restart). Minute buckets are placed back on the
    /// monotonic clock by their age; a record from an earlier day (month) restores no day (month)
    /// usage. The record's block (admissions it may not show) is counted as spent: in the day and
    /// month counters, and in the minute window as of now.
    pub fn restore(&mut self, rec: &UsageRecord, now: Instant, wall: DateTime<Utc>) {
        let today = self.day_of(wall);
        let (breq, bcost) = (rec.block_requests, rec.block_cost);
        if rec.day == today {
            self.day = today;
            self.requests_day = rec.requests_day.saturating_add(breq);
            self.tokens_day = rec.tokens_day.saturating_add(bcost.tokens);
            self.units_day = rec.units_day.saturating_add(bcost.units);
            self.micros_day = rec.micros_day.saturating_add(bcost.micros);
        }
        let month = self.month_of(wall);
        if rec.month == month {
            self.month = month;
            self.requests_month = rec.requests_month.saturating_add(breq);
            self.tokens_month = rec.tokens_month.saturating_add(bcost.tokens);
        }
        let now_sec = self.sec_of(now);
        let wall_sec = wall.timestamp();
        for &(at_sec, requests, tokens) in &rec.minute {
            let age = wall_sec - at_sec;
            if (0..WINDOW_SECS).contains(&age) {
                self.add_to_bucket(now_sec - age, requests, tokens);
            }
        }
        if breq > 0 || bcost.tokens > 0 {
            // The unrecorded admissions happened at some time up to now: count them now (strictest).
            self.add_to_bucket(now_sec, breq, bcost.tokens);
        }
        let wall_ms = wall.timestamp_millis();
        if let Some(until_ms) = rec.blocked_until_ms {
            if until_ms > wall_ms {
                let d = Duration::from_millis(u64::try_from(until_ms - wall_ms).unwrap_or(0));
                self.blocked_until = Some((now + d, until_ms));
            }
        }
    }

    fn add_to_bucket(&mut self, sec: i64, requests: u64, tokens: u64) {
        match self.minute.iter_mut().rev().find(|b| b.sec == sec) {
            Some(b) => {
                b.requests = b.requests.saturating_add(requests);
                b.tokens = b.tokens.saturating_add(tokens);
            }
            None => {
                let pos = self
                    .minute
                    .iter()
                    .position(|b| b.sec > sec)
                    .unwrap_or(self.minute.len());
                self.minute.insert(
                    pos,
                    Bucket {
                        sec,
                        requests,
                        tokens,
                    },
                );
            }
        }
        self.minute_requests = self.minute_requests.saturating_add(requests);
        self.minute_tokens = self.minute_tokens.saturating_add(tokens);
    }

    fn take_from_bucket(&mut self, sec: i64, requests: u64, tokens: u64) -> (u64, u64) {
        let Some(b) = self.minute.iter_mut().rev().find(|b| b.sec == sec) else {
            return (0, 0);
        };
        let (r, t) = (requests.min(b.requests), tokens.min(b.tokens));
        b.requests -= r;
        b.tokens -= t;
        self.minute_requests -= r;
        self.minute_tokens -= t;
        (r, t)
    }

    /// The record to persist for the current state (at most 61 minute entries), with a block of
    /// `block` further admissions counted as spent by a restore (nothing for a clean stop).
    fn record_with(&self, now: Instant, wall: DateTime<Utc>, block: (u64, Cost)) -> UsageRecord {
        let (now_sec, wall_sec) = (self.sec_of(now), wall.timestamp());
        // A kind no window counts has an unbounded block: nothing to count after a restart.
        let finite = |v: u64| if v == u64::MAX { 0 } else { v };
        let block = (
            finite(block.0),
            Cost {
                tokens: finite(block.1.tokens),
                units: finite(block.1.units),
                micros: finite(block.1.micros),
            },
        );
        // Reservations still waiting for a slot have sent nothing: a restart does not count them.
        let mut waiting: HashMap<i64, (u64, u64)> = HashMap::new();
        let (mut day, mut month) = ((0u64, Cost::ZERO), (0u64, 0u64));
        for o in self.open.values().filter(|o| o.started.is_none()) {
            let w = waiting.entry(o.sec).or_default();
            w.0 += 1;
            w.1 += o.cost.tokens;
            if o.day == self.day {
                day = (day.0 + 1, day.1.add(o.cost));
            }
            if o.month == self.month {
                month = (month.0 + 1, month.1 + o.cost.tokens);
            }
        }
        UsageRecord {
            version: USAGE_RECORD_VERSION,
            day: self.day.clone(),
            requests_day: self.requests_day.saturating_sub(day.0),
            tokens_day: self.tokens_day.saturating_sub(day.1.tokens),
            minute: self
                .minute
                .iter()
                .map(|b| {
                    let (r, t) = waiting.get(&b.sec).copied().unwrap_or_default();
                    (
                        wall_sec - (now_sec - b.sec),
                        b.requests.saturating_sub(r),
                        b.tokens.saturating_sub(t),
                    )
                })
                .filter(|(_, r, t)| *r > 0 || *t > 0)
                .collect(),
            blocked_until_ms: self.blocked_until.map(|(_, ms)| ms),
            units_day: self.units_day.saturating_sub(day.1.units),
            micros_day: self.micros_day.saturating_sub(day.1.micros),
            month: self.month.clone(),
            requests_month: self.requests_month.saturating_sub(month.0),
            tokens_month: self.tokens_month.saturating_sub(month.1),
            block_requests: block.0,
            block_cost: block.1,
        }
    }

    /// The exact record: what a clean stop (or a cool-down) writes. Resets the block count.
    pub fn record(&mut self, now: Instant, wall: DateTime<Utc>) -> UsageRecord {
        self.since_write = (0, Cost::ZERO);
        self.covered = (0, Cost::ZERO);
        self.record_with(now, wall, (0, Cost::ZERO))
    }

    /// After a request started: the record to write and flush before the permit is handed out, when
    /// the starts since the last record passed its block (`None`: the last record still covers it).
    /// Quotas without a time window never need one.
    pub fn record_due(&mut self, now: Instant, wall: DateTime<Utc>) -> Option<UsageRecord> {
        if !self.limits.has_time_window() {
            return None;
        }
        let (n, c) = self.since_write;
        let (bn, bc) = self.covered;
        if n <= bn && c.tokens <= bc.tokens && c.units <= bc.units && c.micros <= bc.micros {
            return None;
        }
        // This record shows every admission so far; the next `block` go without a write.
        self.since_write = (0, Cost::ZERO);
        self.covered = self.block;
        Some(self.record_with(now, wall, self.block))
    }

    fn roll(&mut self, now: Instant, wall: DateTime<Utc>) {
        let now_sec = self.sec_of(now);
        while let Some(front) = self.minute.front() {
            if now_sec - front.sec >= WINDOW_SECS {
                self.minute_requests = self.minute_requests.saturating_sub(front.requests);
                self.minute_tokens = self.minute_tokens.saturating_sub(front.tokens);
                self.minute.pop_front();
            } else {
                break;
            }
        }
        let today = self.day_of(wall);
        if today != self.day {
            self.day = today;
            self.requests_day = 0;
            self.tokens_day = 0;
            self.units_day = 0;
            self.micros_day = 0;
        }
        let month = self.month_of(wall);
        if month != self.month {
            self.month = month;
            self.requests_month = 0;
            self.tokens_month = 0;
        }
        if let Some((until, _)) = self.blocked_until {
            if now >= until {
                self.blocked_until = None;
            }
        }
    }

    /// When enough of the minute window leaves it that `excess` units (of `unit`) are gone.
    fn free_at(&self, mut excess: u64, unit: impl Fn(&Bucket) -> u64) -> Option<Instant> {
        for b in &self.minute {
            excess = excess.saturating_sub(unit(b));
            if excess == 0 {
                return Some(self.instant_of(b.sec + WINDOW_SECS));
            }
        }
        None
    }

    /// Whether a request of `cost` could be admitted into the windows now, and if not, why. Does not
    /// reserve and ignores concurrency.
    pub fn check(&mut self, now: Instant, wall: DateTime<Utc>, cost: Cost) -> Result<(), Blocked> {
        self.check_behind(now, wall, cost, (0, Cost::ZERO))
    }

    /// Like [`Quota::check`] for a request queued behind `ahead` (requests, cost) that wait for the
    /// same windows: the ready time it reports is when all of them fit.
    pub fn check_behind(
        &mut self,
        now: Instant,
        wall: DateTime<Utc>,
        cost: Cost,
        ahead: (u64, Cost),
    ) -> Result<(), Blocked> {
        self.roll(now, wall);
        let l = self.limits;
        if let Some((until, _)) = self.blocked_until {
            return Err(Blocked::CoolingDown(until));
        }
        for (window, limit, need) in [
            ("tpm", l.tpm, cost.tokens),
            ("tpd", l.tpd, cost.tokens),
            ("tokens_per_month", l.tokens_per_month, cost.tokens),
            ("daily_units", l.daily_units, cost.units),
            ("daily_spend", l.daily_spend_micros, cost.micros),
        ] {
            if let Some(limit) = limit.filter(|&lim| need > lim) {
                return Err(Blocked::TooLarge {
                    window,
                    limit,
                    need,
                });
            }
        }
        let (ahead_n, ahead_c) = ahead;
        let all = cost.add(ahead_c);
        let over = |used: u64, want: u64, limit: Option<u64>| {
            limit.is_some_and(|lim| used.saturating_add(want) > lim)
        };
        if over(self.requests_day, ahead_n + 1, l.rpd.map(u64::from))
            || over(self.tokens_day, all.tokens, l.tpd)
            || over(self.units_day, all.units, l.daily_units)
            || over(self.micros_day, all.micros, l.daily_spend_micros)
        {
            return Err(Blocked::Day(self.next_reset(wall)));
        }
        if over(self.requests_month, ahead_n + 1, l.requests_per_month)
            || over(self.tokens_month, all.tokens, l.tokens_per_month)
        {
            return Err(Blocked::Day(self.next_month_reset(wall)));
        }
        let mut free_at: Option<Instant> = None;
        if let Some(rpm) = l.rpm.map(u64::from) {
            let want = self.minute_requests.saturating_add(ahead_n + 1);
            if want > rpm {
                let excess = want - rpm;
                // More than the window holds can wait behind it: a minute after the last bucket.
                free_at = Some(
                    self.free_at(excess, |b| b.requests)
                        .unwrap_or_else(|| now + Duration::from_secs(WINDOW_SECS as u64)),
                );
            }
        }
        if let Some(tpm) = l.tpm {
            let want = self.minute_tokens.saturating_add(all.tokens);
            if want > tpm {
                let t = self
                    .free_at(want - tpm, |b| b.tokens)
                    .unwrap_or_else(|| now + Duration::from_secs(WINDOW_SECS as u64));
                free_at = Some(free_at.map_or(t, |a| a.max(t)));
            }
        }
        match free_at {
            Some(at) => Err(Blocked::Until(at)),
            None => Ok(()),
        }
    }

    /// Reserves `cost` in every time window at once, or nothing. The request does not hold a
    /// concurrency slot until [`Quota::try_start`].
    pub fn try_reserve(
        &mut self,
        now: Instant,
        wall: DateTime<Utc>,
        cost: Cost,
    ) -> Result<ReservationId, Blocked> {
        self.check(now, wall, cost)?;
        let id = self.next_id;
        self.next_id += 1;
        let sec = self.sec_of(now);
        self.add_to_bucket(sec, 1, cost.tokens);
        self.requests_day = self.requests_day.saturating_add(1);
        self.tokens_day = self.tokens_day.saturating_add(cost.tokens);
        self.units_day = self.units_day.saturating_add(cost.units);
        self.micros_day = self.micros_day.saturating_add(cost.micros);
        self.requests_month = self.requests_month.saturating_add(1);
        self.tokens_month = self.tokens_month.saturating_add(cost.tokens);
        self.open.insert(
            id,
            Open {
                sec,
                cost,
                day: self.day.clone(),
                month: self.month.clone(),
                started: None,
            },
        );
        Ok(id)
    }

    /// Raises today's and this month's counters to what the whole cluster used (cluster mode: the
    /// shared windows' last reading), so that `day_left`, the status and the call budget count
    /// every node's usage. Counters only go up: a reading never hides this node's own usage.
    pub fn observe_cluster(&mut self, now: Instant, wall: DateTime<Utc>, seen: &ClusterUsage) {
        self.roll(now, wall);
        let up = |mine: &mut u64, theirs: Option<u64>| {
            if let Some(t) = theirs {
                *mine = (*mine).max(t);
            }
        };
        up(&mut self.requests_day, seen.requests_day);
        up(&mut self.tokens_day, seen.tokens_day);
        up(&mut self.units_day, seen.units_day);
        up(&mut self.micros_day, seen.micros_day);
        up(&mut self.requests_month, seen.requests_month);
        up(&mut self.tokens_month, seen.tokens_month);
    }

    /// The time zone whose midnight resets the calendar windows.
    pub fn tz(&self) -> Tz {
        self.tz
    }

    /// Whether a concurrency slot is free now.
    pub fn slot_free(&self) -> bool {
        self.limits.concurrency.is_none_or(|c| self.in_flight < c)
    }

    /// Requests holding a slot, and the limit.
    pub fn slots(&self) -> (u32, Option<u32>) {
        (self.in_flight, self.limits.concurrency)
    }

    /// Takes a concurrency slot for reservation `id` and moves its minute-window entry to the second
    /// it starts in. `Err(Concurrency)` when every slot is taken; unknown ids are an error too.
    pub fn try_start(&mut self, id: ReservationId, now: Instant) -> Result<(), Blocked> {
        if !self.slot_free() {
            return Err(Blocked::Concurrency);
        }
        let sec = self.sec_of(now);
        let Some(o) = self.open.get(&id).cloned() else {
            return Err(Blocked::Concurrency);
        };
        if o.started.is_some() {
            return Ok(());
        }
        if o.sec != sec {
            let (r, t) = self.take_from_bucket(o.sec, 1, o.cost.tokens);
            self.add_to_bucket(sec, r, t);
        }
        self.in_flight += 1;
        // Durability counts what may reach the provider: started requests.
        self.since_write = (self.since_write.0 + 1, self.since_write.1.add(o.cost));
        if let Some(e) = self.open.get_mut(&id) {
            e.sec = sec;
            e.started = Some(now);
        }
        Ok(())
    }

    /// Moves a reservation's cost from `reserved` to `actual` (and drops its request when `unsent`).
    fn adjust(&mut self, o: &Open, actual: Cost, unsent: bool) {
        let reserved = o.cost;
        let (_, t) = self.take_from_bucket(o.sec, u64::from(unsent), reserved.tokens);
        let _ = t;
        if let Some(b) = self.minute.iter_mut().rev().find(|b| b.sec == o.sec) {
            b.tokens = b.tokens.saturating_add(actual.tokens);
            self.minute_tokens = self.minute_tokens.saturating_add(actual.tokens);
        }
        let fix = |v: &mut u64, r: u64, a: u64| *v = v.saturating_sub(r).saturating_add(a);
        if o.day == self.day {
            fix(&mut self.tokens_day, reserved.tokens, actual.tokens);
            fix(&mut self.units_day, reserved.units, actual.units);
            fix(&mut self.micros_day, reserved.micros, actual.micros);
            if unsent {
                self.requests_day = self.requests_day.saturating_sub(1);
            }
        }
        if o.month == self.month {
            fix(&mut self.tokens_month, reserved.tokens, actual.tokens);
            if unsent {
                self.requests_month = self.requests_month.saturating_sub(1);
            }
        }
    }

    fn close(&mut self, id: ReservationId) -> Option<Open> {
        let o = self.open.remove(&id)?;
        if o.started.is_some() {
            self.in_flight = self.in_flight.saturating_sub(1);
        }
        Some(o)
    }

    /// Settles a reservation to the cost the provider reported; returns how long it held its slot.
    /// Unknown ids are ignored. A cost above the durable block's share is covered by the next record.
    pub fn settle(&mut self, id: ReservationId, actual: Cost) -> Option<Duration> {
        let o = self.close(id)?;
        self.adjust(&o, actual, false);
        // Usage above the estimate is not in the last durable record: it counts toward the next.
        let extra = Cost {
            tokens: actual.tokens.saturating_sub(o.cost.tokens),
            units: actual.units.saturating_sub(o.cost.units),
            micros: actual.micros.saturating_sub(o.cost.micros),
        };
        self.since_write.1 = self.since_write.1.add(extra);
        o.started.map(Clock::since)
    }

    /// Releases a reservation whose call failed or was cancelled. `sent` says whether the request
    /// reached the provider: a sent request stays counted as a request (the provider counted it), with
    /// no tokens; an unsent one is removed from every window. Returns how long it held its slot.
    pub fn release(&mut self, id: ReservationId, sent: bool) -> Option<Duration> {
        let o = self.close(id)?;
        self.adjust(&o, Cost::ZERO, !sent);
        o.started.map(Clock::since)
    }

    /// Blocks the quota until `until` (a 429 cool-down or a day-exhausted park).
    pub fn block_until(&mut self, now: Instant, wall: DateTime<Utc>, until: Instant) {
        let ms = wall.timestamp_millis()
            + i64::try_from(until.saturating_duration_since(now).as_millis())
                .unwrap_or(i64::MAX / 2);
        match self.blocked_until {
            Some((u, _)) if u >= until => {}
            _ => self.blocked_until = Some((until, ms)),
        }
    }

    /// The instant the quota is blocked until by the provider, if it is.
    pub fn blocked_until(&self) -> Option<Instant> {
        self.blocked_until.map(|(u, _)| u)
    }

    /// Whether the provider parked the quota for the rest of its day: blocked until the daily
    /// reset (a daily 429), not for a cool-down that ends today.
    pub fn parked_for_day(&mut self, now: Instant, wall: DateTime<Utc>) -> bool {
        self.roll(now, wall);
        let Some((until, _)) = self.blocked_until else {
            return false;
        };
        let left = chrono::Duration::from_std(until.saturating_duration_since(now))
            .unwrap_or(chrono::Duration::MAX);
        // A second of slack: the park is computed from the reset with its own clock readings.
        wall.checked_add_signed(left)
            .and_then(|end| end.checked_add_signed(chrono::Duration::seconds(1)))
            .is_none_or(|end| end >= self.next_reset(wall))
    }

    /// What the quota can still serve today: the daily windows' room, a fair day's share of the
    /// monthly windows (what is left ÷ days left in the month), and the tokens the day's cost-unit
    /// budget and spend cap still buy at `rates` (at the assumed input share); `None` where nothing
    /// limits. Nothing while the provider has parked it for the day. The call budget and the status
    /// page both read today's capacity from here.
    pub fn day_left(&mut self, now: Instant, wall: DateTime<Utc>, rates: &Rates) -> DayLeft {
        if self.parked_for_day(now, wall) {
            return DayLeft::NOTHING;
        }
        let l = self.limits;
        let days = self.days_left_in_month(wall);
        let month_share =
            |limit: Option<u64>, used: u64| limit.map(|m| m.saturating_sub(used) / days);
        let requests = min_opt(
            l.rpd
                .map(|r| u64::from(r).saturating_sub(self.requests_day)),
            month_share(l.requests_per_month, self.requests_month),
        );
        let mut tokens = min_opt(
            l.tpd.map(|t| t.saturating_sub(self.tokens_day)),
            month_share(l.tokens_per_month, self.tokens_month),
        );
        // A key limited only per minute is not unlimited for the day: it serves at most its
        // per-minute limit in each minute left before the reset (`plan` counts it the same way).
        let minutes_left = u64::try_from((self.next_reset(wall) - wall).num_seconds().max(0))
            .unwrap_or(0)
            .div_ceil(60);
        let requests = min_opt(requests, l.rpm.map(|r| u64::from(r) * minutes_left));
        tokens = min_opt(tokens, l.tpm.map(|t| t.saturating_mul(minutes_left)));
        let bought = |budget: Option<u64>, used: u64, per_token: f64| {
            budget.map(|b| {
                let left = b.saturating_sub(used) as f64;
                if per_token > 0.0 {
                    (left / per_token).floor() as u64
                } else {
                    u64::MAX / 4
                }
            })
        };
        tokens = min_opt(
            tokens,
            bought(l.daily_units, self.units_day, rates.blended_units()),
        );
        tokens = min_opt(
            tokens,
            bought(
                l.daily_spend_micros,
                self.micros_day,
                rates.blended_micros(),
            ),
        );
        DayLeft { requests, tokens }
    }

    /// Current usage and headroom.
    pub fn usage(&mut self, now: Instant, wall: DateTime<Utc>) -> QuotaUsage {
        self.roll(now, wall);
        let l = self.limits;
        let frac = |used: u64, limit: Option<u64>| -> f64 {
            match limit {
                Some(lim) if lim > 0 => 1.0 - (used.min(lim) as f64 / lim as f64),
                _ => 1.0,
            }
        };
        let headroom = [
            frac(self.minute_requests, l.rpm.map(u64::from)),
            frac(self.requests_day, l.rpd.map(u64::from)),
            frac(self.minute_tokens, l.tpm),
            frac(self.tokens_day, l.tpd),
            frac(u64::from(self.in_flight), l.concurrency.map(u64::from)),
            frac(self.units_day, l.daily_units),
            frac(self.micros_day, l.daily_spend_micros),
            frac(self.requests_month, l.requests_per_month),
            frac(self.tokens_month, l.tokens_per_month),
        ]
        .into_iter()
        .fold(1.0f64, f64::min);
        QuotaUsage {
            rpm_used: self.minute_requests,
            rpd_used: self.requests_day,
            tpm_used: self.minute_tokens,
            tpd_used: self.tokens_day,
            units_used: self.units_day,
            spend_micros_used: self.micros_day,
            requests_month_used: self.requests_month,
            tokens_month_used: self.tokens_month,
            in_flight: self.in_flight,
            headroom,
        }
    }
}

/// Audio seconds per sliding hour and per calendar day (in the quota's reset time zone): the windows
/// speech-to-text providers count besides requests (Groq's free tier: 7,200 audio seconds an hour and
/// 28,800 a day per model). Used next to a [`Quota`] that holds the request windows.
#[derive(Debug)]
pub struct AudioWindow {
    per_hour: Option<u64>,
    per_day: Option<u64>,
    tz: Tz,
    origin: Instant,
    /// Audio seconds per minute of the last hour: (minutes since origin, seconds), oldest first.
    minutes: VecDeque<(i64, u64)>,
    hour_total: u64,
    day: String,
    day_total: u64,
}

impl AudioWindow {
    /// Empty windows with these limits (`None`: unlimited).
    pub fn new(per_hour: Option<u64>, per_day: Option<u64>, tz: Tz) -> Self {
        Self {
            per_hour,
            per_day,
            tz,
            origin: Clock::now(),
            minutes: VecDeque::new(),
            hour_total: 0,
            day: String::new(),
            day_total: 0,
        }
    }

    fn minute_of(&self, now: Instant) -> i64 {
        i64::try_from(now.saturating_duration_since(self.origin).as_secs() / 60)
            .unwrap_or(i64::MAX / 2)
    }

    fn roll(&mut self, now: Instant, wall: DateTime<Utc>) {
        let m = self.minute_of(now);
        while let Some(&(at, secs)) = self.minutes.front() {
            if m - at >= 61 {
                self.hour_total -= secs;
                self.minutes.pop_front();
            } else {
                break;
            }
        }
        let today = Quota::new(Limits::default(), self.tz).day_of(wall);
        if today != self.day {
            self.day = today;
            self.day_total = 0;
        }
    }

    /// Whether `seconds` more fit now; if not, when the hour window frees enough (`Ok(None)`: they fit,
    /// `Err(None)`: not before the daily reset or never).
    pub fn check(
        &mut self,
        now: Instant,
        wall: DateTime<Utc>,
        seconds: u64,
    ) -> Result<(), Option<Instant>> {
        self.roll(now, wall);
        if self.per_hour.is_some_and(|l| seconds > l) || self.per_day.is_some_and(|l| seconds > l) {
            return Err(None);
        }
        if self.per_day.is_some_and(|l| self.day_total + seconds > l) {
            return Err(None);
        }
        if let Some(l) = self.per_hour {
            if self.hour_total + seconds > l {
                let mut excess = self.hour_total + seconds - l;
                for &(at, secs) in &self.minutes {
                    excess = excess.saturating_sub(secs);
                    if excess == 0 {
                        let free = u64::try_from(at + 61).unwrap_or(0) * 60;
                        return Err(Some(self.origin + Duration::from_secs(free)));
                    }
                }
                return Err(None);
            }
        }
        Ok(())
    }

    /// Counts `seconds` now (after [`AudioWindow::check`]; a settle with the real length may add or
    /// give back the difference, as a negative `seconds` cannot: pass the extra only).
    pub fn add(&mut self, now: Instant, wall: DateTime<Utc>, seconds: u64) {
        self.roll(now, wall);
        let m = self.minute_of(now);
        match self.minutes.back_mut() {
            Some((at, secs)) if *at == m => *secs += seconds,
            _ => self.minutes.push_back((m, seconds)),
        }
        self.hour_total += seconds;
        self.day_total += seconds;
    }

    /// Audio seconds counted in the last hour and today.
    pub fn used(&mut self, now: Instant, wall: DateTime<Utc>) -> (u64, u64) {
        self.roll(now, wall);
        (self.hour_total, self.day_total)
    }

    /// The limits: per hour, per day.
    pub fn limits(&self) -> (Option<u64>, Option<u64>) {
        (self.per_hour, self.per_day)
    }

    /// The persisted form, in the shape of a [`UsageRecord`]: the day's seconds in `tokens_day`, the
    /// hour's minutes as `(unix second of the minute, 0, seconds)`.
    pub fn record(&self, now: Instant, wall: DateTime<Utc>) -> UsageRecord {
        let m_now = self.minute_of(now);
        UsageRecord {
            version: USAGE_RECORD_VERSION,
            day: self.day.clone(),
            requests_day: 0,
            tokens_day: self.day_total,
            minute: self
                .minutes
                .iter()
                .map(|&(at, secs)| (wall.timestamp() - (m_now - at) * 60, 0, secs))
                .collect(),
            blocked_until_ms: None,
            ..UsageRecord::default()
        }
    }

    /// Restores a record written by [`AudioWindow::record`].
    pub fn restore(&mut self, rec: &UsageRecord, now: Instant, wall: DateTime<Utc>) {
        self.roll(now, wall);
        if rec.day == self.day {
            self.day_total = rec.tokens_day;
        }
        let m_now = self.minute_of(now);
        for &(at_sec, _, secs) in &rec.minute {
            let age_min = (wall.timestamp() - at_sec).div_euclid(60);
            if (0..61).contains(&age_min) {
                self.minutes.push_back((m_now - age_min, secs));
                self.hour_total += secs;
            }
        }
        self.minutes.make_contiguous().sort_by_key(|(at, _)| *at);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn limits(rpm: u32, tpm: u64) -> Limits {
        Limits {
            rpm: Some(rpm),
            tpm: Some(tpm),
            rpd: Some(5),
            concurrency: Some(10),
            ..Limits::default()
        }
    }

    fn tok(tokens: u64) -> Cost {
        Cost {
            tokens,
            ..Cost::ZERO
        }
    }

    /// Reserve and start at once, as an uncontended admission does.
    fn admit(
        q: &mut Quota,
        now: Instant,
        wall: DateTime<Utc>,
        tokens: u64,
    ) -> Result<u64, Blocked> {
        let id = q.try_reserve(now, wall, tok(tokens))?;
        q.try_start(id, now)?;
        Ok(id)
    }

    #[test]
    fn day_left_is_the_daily_room_and_nothing_while_parked_for_the_day() {
        let mut q = Quota::new(limits(100, 10_000), chrono_tz::UTC);
        let r = Rates::default();
        // Noon: a 30 s cool-down ends well before the reset.
        let (now, wall) = (
            Instant::now(),
            Utc.with_ymd_and_hms(2026, 11, 23, 12, 0, 0).unwrap(),
        );
        assert!(admit(&mut q, now, wall, 10).is_ok());
        assert!(admit(&mut q, now, wall, 10).is_ok());
        let left = q.day_left(now, wall, &r);
        assert_eq!(left.requests, Some(3), "rpd 5, 2 used");
        assert_eq!(
            left.tokens,
            Some(10_000 * 720),
            "no daily token limit: the per-minute limit for the 720 minutes left"
        );
        // A key limited only per minute serves at most that per minute until the reset.
        let mut per_minute_only = Quota::new(
            Limits {
                rpm: Some(30),
                ..Limits::default()
            },
            chrono_tz::UTC,
        );
        let left = per_minute_only.day_left(now, wall, &r);
        assert_eq!(left.requests, Some(30 * 720));
        assert_eq!(left.tokens, None);
        // A cool-down is not a park: today's room is unchanged.
        q.block_until(now, wall, now + Duration::from_secs(30));
        assert!(!q.parked_for_day(now, wall));
        assert_eq!(q.day_left(now, wall, &r).requests, Some(3));
        // A daily 429 parks the quota until the reset: nothing is left today.
        let to_reset = (q.next_reset(wall) - wall).to_std().unwrap();
        q.block_until(now, wall, now + to_reset);
        assert!(q.parked_for_day(now, wall));
        assert_eq!(q.day_left(now, wall, &r), DayLeft::NOTHING);
    }

    #[test]
    fn all_windows_or_none() {
        let mut q = Quota::new(limits(2, 100), chrono_tz::UTC);
        let (now, wall) = (Instant::now(), Utc::now());
        assert!(admit(&mut q, now, wall, 60).is_ok());
        // 60 + 50 > 100: the token window refuses, and the request window must not be charged.
        assert!(matches!(
            q.try_reserve(now, wall, tok(50)),
            Err(Blocked::Until(_))
        ));
        assert_eq!(q.usage(now, wall).rpm_used, 1);
        assert!(admit(&mut q, now, wall, 40).is_ok());
        assert!(matches!(
            q.try_reserve(now, wall, tok(1)),
            Err(Blocked::Until(_))
        ));
        // A minute later the window has room again.
        let later = now + Duration::from_secs(62);
        assert!(admit(&mut q, later, wall, 10).is_ok());
    }

    #[test]
    fn concurrency_is_a_slot_taken_after_the_windows() {
        let mut q = Quota::new(
            Limits {
                rpm: Some(3),
                concurrency: Some(1),
                ..Limits::default()
            },
            chrono_tz::UTC,
        );
        let (now, wall) = (Instant::now(), Utc::now());
        let a = admit(&mut q, now, wall, 1).unwrap();
        // The windows still have room; the slot does not.
        let b = q.try_reserve(now, wall, tok(1)).unwrap();
        assert_eq!(q.try_start(b, now), Err(Blocked::Concurrency));
        assert_eq!(
            q.usage(now, wall).rpm_used,
            2,
            "a waiting request holds its window room"
        );
        // The third fits the window; a fourth does not, whatever the slots.
        let _c = q.try_reserve(now, wall, tok(1)).unwrap();
        assert!(matches!(
            q.try_reserve(now, wall, tok(1)),
            Err(Blocked::Until(_))
        ));
        q.settle(a, tok(1));
        // Started 5 s later: its minute entry moves to the second it really went out.
        let later = now + Duration::from_secs(5);
        q.try_start(b, later).unwrap();
        let rec = q.record(later, wall);
        assert_eq!(rec.minute.len(), 2, "{rec:?}");
        // Released unsent, a waiting request leaves every window.
        q.release(_c, false);
        assert_eq!(q.usage(later, wall).rpm_used, 2);
        assert_eq!(q.usage(later, wall).in_flight, 1);
    }

    #[test]
    fn a_request_behind_others_waits_for_all_of_them() {
        let mut q = Quota::new(
            Limits {
                rpm: Some(2),
                ..Limits::default()
            },
            chrono_tz::UTC,
        );
        let (t0, wall) = (Instant::now(), Utc::now());
        admit(&mut q, t0, wall, 0).unwrap();
        admit(&mut q, t0 + Duration::from_secs(10), wall, 0).unwrap();
        let alone = match q.check(t0 + Duration::from_secs(20), wall, Cost::ZERO) {
            Err(Blocked::Until(at)) => at,
            other => unreachable!("{other:?}"),
        };
        let behind = match q.check_behind(
            t0 + Duration::from_secs(20),
            wall,
            Cost::ZERO,
            (1, Cost::ZERO),
        ) {
            Err(Blocked::Until(at)) => at,
            other => unreachable!("{other:?}"),
        };
        assert!(
            behind > alone,
            "the second waiter needs the second bucket to leave too"
        );
        assert_eq!(behind - alone, Duration::from_secs(10));
    }

    #[test]
    fn settle_and_release_adjust_windows() {
        let mut q = Quota::new(limits(10, 1000), chrono_tz::UTC);
        let (now, wall) = (Instant::now(), Utc::now());
        let a = admit(&mut q, now, wall, 500).unwrap();
        q.settle(a, tok(100));
        assert_eq!(q.usage(now, wall).tpm_used, 100);
        let b = admit(&mut q, now, wall, 500).unwrap();
        q.release(b, false);
        let u = q.usage(now, wall);
        assert_eq!(
            (u.rpm_used, u.rpd_used, u.tpm_used, u.in_flight),
            (1, 1, 100, 0)
        );
    }

    #[test]
    fn day_limit_parks_until_reset_in_zone() {
        let mut q = Quota::new(limits(100, 100_000), chrono_tz::America::Los_Angeles);
        let now = Instant::now();
        // 23:30 UTC is 15:30 in Los Angeles (winter): the reset is at 08:00 UTC next day.
        let wall = Utc.with_ymd_and_hms(2026, 11, 23, 23, 30, 0).unwrap();
        for _ in 0..5 {
            let id = admit(&mut q, now, wall, 1).unwrap();
            q.settle(id, tok(1));
        }
        match q.try_reserve(now, wall, tok(1)) {
            Err(Blocked::Day(reset)) => {
                assert_eq!(reset, Utc.with_ymd_and_hms(2026, 11, 24, 8, 0, 0).unwrap())
            }
            other => unreachable!("expected a day block, got {other:?}"),
        }
        // After the reset the day counters start again.
        let next_day = Utc.with_ymd_and_hms(2026, 11, 24, 8, 0, 1).unwrap();
        assert!(admit(&mut q, now + Duration::from_secs(120), next_day, 1).is_ok());
    }

    #[test]
    fn monthly_windows_reset_on_the_first_and_share_out_over_the_days_left() {
        let mut q = Quota::new(
            Limits {
                tokens_per_month: Some(3_000),
                requests_per_month: Some(10),
                ..Limits::default()
            },
            chrono_tz::UTC,
        );
        let now = Instant::now();
        let wall = Utc.with_ymd_and_hms(2026, 11, 29, 12, 0, 0).unwrap();
        assert_eq!(q.days_left_in_month(wall), 2, "the 29th and the 30th");
        let id = admit(&mut q, now, wall, 1_000).unwrap();
        q.settle(id, tok(1_000));
        let left = q.day_left(now, wall, &Rates::default());
        assert_eq!(
            left,
            DayLeft {
                requests: Some(4),
                tokens: Some(1_000)
            }
        );
        assert!(matches!(
            q.try_reserve(now, wall, tok(2_001)),
            Err(Blocked::Day(reset)) if reset == Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap()
        ));
        assert!(matches!(
            q.try_reserve(now, wall, tok(3_001)),
            Err(Blocked::TooLarge {
                window: "tokens_per_month",
                limit: 3_000,
                need: 3_001
            })
        ));
        let december = Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 1).unwrap();
        assert!(admit(&mut q, now, december, 2_500).is_ok());
    }

    #[test]
    fn a_daily_unit_budget_is_spent_at_the_models_rates() {
        // Cloudflare: 10,000 neurons a day; llama-3.1-8b-instruct costs 25,608 per million input
        // tokens and 75,147 per million output tokens.
        let rates = Rates {
            units_in: 25_608.0,
            units_out: 75_147.0,
            ..Rates::default()
        };
        let c = rates.cost(3_000, 1_000);
        // 3,000 × 0.025608 + 1,000 × 0.075147 = 151.97: rounded up.
        assert_eq!(c.units, 152, "{c:?}");
        let mut q = Quota::new(
            Limits {
                rpm: Some(300),
                daily_units: Some(10_000),
                ..Limits::default()
            },
            chrono_tz::UTC,
        );
        let (now, wall) = (
            Instant::now(),
            Utc.with_ymd_and_hms(2026, 11, 23, 1, 0, 0).unwrap(),
        );
        // Tokens the day's neurons buy: 10,000 / (0.75 × 0.025608 + 0.25 × 0.075147) ≈ 264,000.
        let left = q.day_left(now, wall, &rates).tokens.unwrap();
        assert!((263_000..265_000).contains(&left), "{left}");
        let mut served = 0;
        while q
            .try_reserve(now + Duration::from_secs(served), wall, c)
            .is_ok()
        {
            served += 1;
        }
        assert_eq!(served, 10_000 / 152, "as many as the neurons pay for");
        assert!(matches!(q.try_reserve(now, wall, c), Err(Blocked::Day(_))));
    }

    #[test]
    fn restore_keeps_day_usage_and_minute_window() {
        let (now, wall) = (Instant::now(), Utc::now());
        let mut q = Quota::new(limits(2, 1000), chrono_tz::UTC);
        admit(&mut q, now, wall, 10).unwrap();
        admit(&mut q, now, wall, 10).unwrap();
        let rec = q.record(now, wall);
        let mut restored = Quota::new(limits(2, 1000), chrono_tz::UTC);
        restored.restore(&rec, now, wall);
        assert!(matches!(
            restored.try_reserve(now, wall, tok(1)),
            Err(Blocked::Until(_))
        ));
        assert_eq!(restored.usage(now, wall).rpd_used, 2);
    }

    #[test]
    fn records_come_once_per_block_and_a_restore_counts_the_block_as_spent() {
        let l = Limits {
            rpd: Some(200),
            ..Limits::default()
        };
        let (now, wall) = (Instant::now(), Utc::now());
        let mut q = Quota::new(l, chrono_tz::UTC);
        // Block: 200 / 20 = 10 admissions per record.
        let mut last = None;
        let mut writes = 0;
        for _ in 0..25 {
            admit(&mut q, now, wall, 0).unwrap();
            if let Some(r) = q.record_due(now, wall) {
                writes += 1;
                last = Some(r);
            }
        }
        assert_eq!(writes, 3, "admissions 1, 12 and 23 write");
        let rec = last.unwrap();
        assert_eq!((rec.requests_day, rec.block_requests), (23, 10));
        // A crash now: 25 admitted, the record says at most 33.
        let mut restored = Quota::new(l, chrono_tz::UTC);
        restored.restore(&rec, now, wall);
        assert_eq!(restored.usage(now, wall).rpd_used, 33);
        // A quota with only a concurrency limit never writes.
        let mut free = Quota::new(
            Limits {
                concurrency: Some(4),
                ..Limits::default()
            },
            chrono_tz::UTC,
        );
        let id = admit(&mut free, now, wall, 5).unwrap();
        assert!(free.record_due(now, wall).is_none());
        free.settle(id, tok(5));
    }

    #[test]
    fn too_large_is_never_admitted() {
        let mut q = Quota::new(limits(2, 100), chrono_tz::UTC);
        assert_eq!(
            q.try_reserve(Instant::now(), Utc::now(), tok(101)),
            Err(Blocked::TooLarge {
                window: "tpm",
                limit: 100,
                need: 101
            })
        );
    }

    #[test]
    fn audio_seconds_per_hour_and_day() {
        let mut w = AudioWindow::new(Some(100), Some(150), chrono_tz::UTC);
        let (now, wall) = (Instant::now(), Utc::now());
        assert_eq!(w.check(now, wall, 60), Ok(()));
        w.add(now, wall, 60);
        assert_eq!(w.check(now, wall, 40), Ok(()));
        // 60 + 50 > 100: the hour frees when the first minute leaves it.
        match w.check(now, wall, 50) {
            Err(Some(at)) => assert!(at > now + Duration::from_secs(3000)),
            other => unreachable!("{other:?}"),
        }
        assert_eq!(w.check(now, wall, 101), Err(None), "larger than the hour");
        // An hour later the hour has room, but the day (150) has only 90 left.
        let later = now + Duration::from_secs(3700);
        assert_eq!(w.check(later, wall, 90), Ok(()));
        w.add(later, wall, 90);
        assert_eq!(w.check(later, wall, 1), Err(None), "day spent");
        assert_eq!(w.used(later, wall), (90, 150));
        // Persisted and restored, the counts come back.
        let rec = w.record(later, wall);
        let mut r = AudioWindow::new(Some(100), Some(150), chrono_tz::UTC);
        r.restore(&rec, later, wall);
        assert_eq!(r.used(later, wall), (90, 150));
    }
}
