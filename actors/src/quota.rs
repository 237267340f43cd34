//! Rate windows of one quota (a key, or a scope of keys sharing one quota): requests and tokens per
//! sliding minute and per calendar day in the provider's reset time zone, and concurrent requests.
//!
//! Admission is one step across every window: a request reserves its estimated tokens in all of them
//! or in none. After the call the reservation is settled to the real usage, or released if the call
//! never reached the provider. The day windows reset at midnight of `reset_tz`, not 24 hours after start.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use chrono::{DateTime, Datelike, TimeZone, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

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
}

/// Why a reservation cannot be made now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blocked {
    /// A minute window is full until the given instant.
    Until(Instant),
    /// The concurrency limit is reached; room comes when a call finishes.
    Concurrency,
    /// A daily window is spent until the daily reset.
    Day(DateTime<Utc>),
    /// The request alone is larger than a window's whole limit: it can never be admitted here.
    TooLarge,
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
}

/// The current layout version of [`UsageRecord`].
pub const USAGE_RECORD_VERSION: u16 = 1;

/// Seconds a bucket counts in the window (60 s plus the second it covers).
const WINDOW_SECS: i64 = 61;

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
    in_flight: u32,
    /// Open reservations: id → (bucket second, reserved tokens, day it was counted in).
    open: HashMap<ReservationId, (i64, u64, String)>,
    next_id: ReservationId,
    blocked_until: Option<(Instant, i64)>,
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

impl Quota {
    /// A fresh quota with nothing used.
    pub fn new(limits: Limits, tz: Tz) -> Self {
        Self {
            limits,
            tz,
            origin: Instant::now(),
            minute: VecDeque::new(),
            minute_requests: 0,
            minute_tokens: 0,
            day: String::new(),
            requests_day: 0,
            tokens_day: 0,
            in_flight: 0,
            open: HashMap::new(),
            next_id: 1,
            blocked_until: None,
        }
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

    /// The next daily reset after `wall`: midnight of the following day in the reset time zone.
    pub fn next_reset(&self, wall: DateTime<Utc>) -> DateTime<Utc> {
        let local = wall.with_timezone(&self.tz).date_naive();
        let mut next = local.succ_opt().unwrap_or(local);
        // Midnight can be skipped by a DST change in a few zones: take the first valid hour that day.
        for _ in 0..3 {
            for hour in 0..3 {
                if let Some(t) = next.and_hms_opt(hour, 0, 0) {
                    if let Some(dt) = self.tz.from_local_datetime(&t).earliest() {
                        return dt.with_timezone(&Utc);
                    }
                }
            }
            next = next.succ_opt().unwrap_or(next);
        }
        wall + chrono::Duration::hours(24)
    }

    /// Restores usage from a persisted record (after a restart). Minute buckets are placed back on the
    /// monotonic clock by their age; a record from an earlier day restores no day usage.
    pub fn restore(&mut self, rec: &UsageRecord, now: Instant, wall: DateTime<Utc>) {
        let today = self.day_of(wall);
        if rec.day == today {
            self.day = today;
            self.requests_day = rec.requests_day;
            self.tokens_day = rec.tokens_day;
        }
        let now_sec = self.sec_of(now);
        let wall_sec = wall.timestamp();
        for &(at_sec, requests, tokens) in &rec.minute {
            let age = wall_sec - at_sec;
            if (0..WINDOW_SECS).contains(&age) {
                self.add_to_bucket(now_sec - age, requests, tokens);
            }
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
                b.requests += requests;
                b.tokens += tokens;
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
        self.minute_requests += requests;
        self.minute_tokens += tokens;
    }

    /// The record to persist for the current state (at most 61 minute entries).
    pub fn record(&self, now: Instant, wall: DateTime<Utc>) -> UsageRecord {
        let (now_sec, wall_sec) = (self.sec_of(now), wall.timestamp());
        UsageRecord {
            version: USAGE_RECORD_VERSION,
            day: self.day.clone(),
            requests_day: self.requests_day,
            tokens_day: self.tokens_day,
            minute: self
                .minute
                .iter()
                .map(|b| (wall_sec - (now_sec - b.sec), b.requests, b.tokens))
                .collect(),
            blocked_until_ms: self.blocked_until.map(|(_, ms)| ms),
        }
    }

    fn roll(&mut self, now: Instant, wall: DateTime<Utc>) {
        let now_sec = self.sec_of(now);
        while let Some(front) = self.minute.front() {
            if now_sec - front.sec >= WINDOW_SECS {
                self.minute_requests -= front.requests;
                self.minute_tokens -= front.tokens;
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

    /// Whether a request of `tokens` could be admitted now, and if not, why. Does not reserve.
    pub fn check(&mut self, now: Instant, wall: DateTime<Utc>, tokens: u64) -> Result<(), Blocked> {
        self.roll(now, wall);
        let l = self.limits;
        if let Some((until, _)) = self.blocked_until {
            return Err(Blocked::CoolingDown(until));
        }
        if l.tpm.is_some_and(|t| tokens > t) || l.tpd.is_some_and(|t| tokens > t) {
            return Err(Blocked::TooLarge);
        }
        if l.rpd.is_some_and(|r| self.requests_day >= u64::from(r))
            || l.tpd.is_some_and(|t| self.tokens_day + tokens > t)
        {
            return Err(Blocked::Day(self.next_reset(wall)));
        }
        let mut free_at: Option<Instant> = None;
        if let Some(rpm) = l.rpm {
            if self.minute_requests >= u64::from(rpm) {
                let excess = self.minute_requests + 1 - u64::from(rpm);
                free_at = self.free_at(excess, |b| b.requests);
            }
        }
        if let Some(tpm) = l.tpm {
            if self.minute_tokens + tokens > tpm {
                let t = self.free_at(self.minute_tokens + tokens - tpm, |b| b.tokens);
                free_at = match (free_at, t) {
                    (Some(a), Some(b)) => Some(a.max(b)),
                    (a, b) => a.or(b),
                };
            }
        }
        if let Some(at) = free_at {
            return Err(Blocked::Until(at));
        }
        if l.concurrency.is_some_and(|c| self.in_flight >= c) {
            return Err(Blocked::Concurrency);
        }
        Ok(())
    }

    /// Reserves `tokens` in every window at once, or nothing.
    pub fn try_reserve(
        &mut self,
        now: Instant,
        wall: DateTime<Utc>,
        tokens: u64,
    ) -> Result<ReservationId, Blocked> {
        self.check(now, wall, tokens)?;
        let id = self.next_id;
        self.next_id += 1;
        let sec = self.sec_of(now);
        self.add_to_bucket(sec, 1, tokens);
        self.requests_day += 1;
        self.tokens_day += tokens;
        self.in_flight += 1;
        self.open.insert(id, (sec, tokens, self.day.clone()));
        Ok(id)
    }

    /// Moves a reservation's tokens from `reserved` to `actual` (and drops its request when `unsent`).
    fn adjust(&mut self, sec: i64, day: &str, reserved: u64, actual: u64, unsent: bool) {
        if let Some(b) = self.minute.iter_mut().rev().find(|b| b.sec == sec) {
            let give_back = reserved.min(b.tokens);
            b.tokens = b.tokens - give_back + actual;
            self.minute_tokens = self.minute_tokens - give_back + actual;
            if unsent && b.requests > 0 {
                b.requests -= 1;
                self.minute_requests -= 1;
            }
        }
        if day == self.day {
            self.tokens_day = self.tokens_day - reserved.min(self.tokens_day) + actual;
            if unsent {
                self.requests_day = self.requests_day.saturating_sub(1);
            }
        }
    }

    /// Settles a reservation to the tokens the provider reported. Unknown ids are ignored.
    pub fn settle(&mut self, id: ReservationId, actual_tokens: u64) {
        if let Some((sec, reserved, day)) = self.open.remove(&id) {
            self.in_flight = self.in_flight.saturating_sub(1);
            self.adjust(sec, &day, reserved, actual_tokens, false);
        }
    }

    /// Releases a reservation whose call failed or was cancelled. `sent` says whether the request
    /// reached the provider: a sent request stays counted as a request (the provider counted it), with
    /// no tokens; an unsent one is removed from every window.
    pub fn release(&mut self, id: ReservationId, sent: bool) {
        if let Some((sec, reserved, day)) = self.open.remove(&id) {
            self.in_flight = self.in_flight.saturating_sub(1);
            self.adjust(sec, &day, reserved, 0, !sent);
        }
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

    /// What the quota can still serve today: the daily windows' room (`None` where there is no
    /// daily limit), or nothing while the provider has parked it for the day. The call budget and
    /// the status page both read today's capacity from here.
    pub fn day_left(&mut self, now: Instant, wall: DateTime<Utc>) -> DayLeft {
        if self.parked_for_day(now, wall) {
            return DayLeft {
                requests: Some(0),
                tokens: Some(0),
            };
        }
        DayLeft {
            requests: self
                .limits
                .rpd
                .map(|l| u64::from(l).saturating_sub(self.requests_day)),
            tokens: self.limits.tpd.map(|l| l.saturating_sub(self.tokens_day)),
        }
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
        ]
        .into_iter()
        .fold(1.0f64, f64::min);
        QuotaUsage {
            rpm_used: self.minute_requests,
            rpd_used: self.requests_day,
            tpm_used: self.minute_tokens,
            tpd_used: self.tokens_day,
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
            origin: Instant::now(),
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
            tpd: None,
            concurrency: Some(10),
        }
    }

    #[test]
    fn day_left_is_the_daily_room_and_nothing_while_parked_for_the_day() {
        let mut q = Quota::new(limits(100, 10_000), chrono_tz::UTC);
        // Noon: a 30 s cool-down ends well before the reset.
        let (now, wall) = (
            Instant::now(),
            Utc.with_ymd_and_hms(2026, 11, 23, 12, 0, 0).unwrap(),
        );
        assert!(q.try_reserve(now, wall, 10).is_ok());
        assert!(q.try_reserve(now, wall, 10).is_ok());
        let left = q.day_left(now, wall);
        assert_eq!(left.requests, Some(3), "rpd 5, 2 used");
        assert_eq!(left.tokens, None, "no daily token limit");
        // A cool-down is not a park: today's room is unchanged.
        q.block_until(now, wall, now + Duration::from_secs(30));
        assert!(!q.parked_for_day(now, wall));
        assert_eq!(q.day_left(now, wall).requests, Some(3));
        // A daily 429 parks the quota until the reset: nothing is left today.
        let to_reset = (q.next_reset(wall) - wall).to_std().unwrap();
        q.block_until(now, wall, now + to_reset);
        assert!(q.parked_for_day(now, wall));
        assert_eq!(
            q.day_left(now, wall),
            DayLeft {
                requests: Some(0),
                tokens: Some(0)
            }
        );
    }

    #[test]
    fn all_windows_or_none() {
        let mut q = Quota::new(limits(2, 100), chrono_tz::UTC);
        let (now, wall) = (Instant::now(), Utc::now());
        assert!(q.try_reserve(now, wall, 60).is_ok());
        // 60 + 50 > 100: the token window refuses, and the request window must not be charged.
        assert!(matches!(
            q.try_reserve(now, wall, 50),
            Err(Blocked::Until(_))
        ));
        assert_eq!(q.usage(now, wall).rpm_used, 1);
        assert!(q.try_reserve(now, wall, 40).is_ok());
        assert!(matches!(
            q.try_reserve(now, wall, 1),
            Err(Blocked::Until(_))
        ));
        // A minute later the window has room again.
        let later = now + Duration::from_secs(62);
        assert!(q.try_reserve(later, wall, 10).is_ok());
    }

    #[test]
    fn settle_and_release_adjust_windows() {
        let mut q = Quota::new(limits(10, 1000), chrono_tz::UTC);
        let (now, wall) = (Instant::now(), Utc::now());
        let a = q.try_reserve(now, wall, 500).unwrap();
        q.settle(a, 100);
        assert_eq!(q.usage(now, wall).tpm_used, 100);
        let b = q.try_reserve(now, wall, 500).unwrap();
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
            let id = q.try_reserve(now, wall, 1).unwrap();
            q.settle(id, 1);
        }
        match q.try_reserve(now, wall, 1) {
            Err(Blocked::Day(reset)) => {
                assert_eq!(reset, Utc.with_ymd_and_hms(2026, 11, 24, 8, 0, 0).unwrap())
            }
            other => unreachable!("expected a day block, got {other:?}"),
        }
        // After the reset the day counters start again.
        let next_day = Utc.with_ymd_and_hms(2026, 11, 24, 8, 0, 1).unwrap();
        assert!(q
            .try_reserve(now + Duration::from_secs(120), next_day, 1)
            .is_ok());
    }

    #[test]
    fn restore_keeps_day_usage_and_minute_window() {
        let (now, wall) = (Instant::now(), Utc::now());
        let mut q = Quota::new(limits(2, 1000), chrono_tz::UTC);
        q.try_reserve(now, wall, 10).unwrap();
        q.try_reserve(now, wall, 10).unwrap();
        let rec = q.record(now, wall);
        let mut restored = Quota::new(limits(2, 1000), chrono_tz::UTC);
        restored.restore(&rec, now, wall);
        assert!(matches!(
            restored.try_reserve(now, wall, 1),
            Err(Blocked::Until(_))
        ));
        assert_eq!(restored.usage(now, wall).rpd_used, 2);
    }

    #[test]
    fn too_large_is_never_admitted() {
        let mut q = Quota::new(limits(2, 100), chrono_tz::UTC);
        assert_eq!(
            q.try_reserve(Instant::now(), Utc::now(), 101),
            Err(Blocked::TooLarge)
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
