//! `Clock`: the one source of time for the engine's windows, budgets, lifetimes and idle timers.
//!
//! Rate windows (`quota.rs`, `key.rs`), the call budget's day and pace (`budget.rs`), cache lifetimes
//! (`cache.rs`) and the sessions' idle clocks read the time here instead of `Instant::now()` /
//! `Utc::now()`, so that the same code runs on a **virtual clock**: in a tokio runtime whose time is
//! paused (`Builder::start_paused`, `tokio::time::pause`), `Clock::now()` is tokio's paused instant,
//! which moves only when tokio advances it (explicitly, or to the next timer when every task waits), and
//! `Clock::wall()` moves with it. Timers (`tokio::time::sleep`, ractor's `send_after` and
//! `send_interval`) already follow tokio's clock, so windows, deadlines and timers agree: a simulated
//! day (`interview-engine simulate`) runs the real actors through 24 hours in minutes.
//!
//! Outside a paused runtime both are the system's clocks: `now()` is `std::time::Instant::now()` (tokio
//! reads it directly when time was never paused) and `wall()` is `Utc::now()`.
//!
//! Code that measures elapsed time must use [`Clock::since`] rather than `Instant::elapsed()`, which
//! reads the system clock and would see no time pass on a virtual one.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

/// The engine's clock (see the module documentation): tokio's clock, paused or not, and a wall clock
/// that moves with it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Clock;

/// Below this, tokio's clock and the system's are taken to be the same (the two reads straddle a few
/// nanoseconds when time is not paused).
const SAME: Duration = Duration::from_millis(1);

impl Clock {
    /// The monotonic now: tokio's instant (virtual in a paused runtime) as a `std` instant.
    pub fn now() -> Instant {
        tokio::time::Instant::now().into_std()
    }

    /// The time elapsed since `earlier` on this clock (zero if `earlier` is in the future).
    pub fn since(earlier: Instant) -> Duration {
        Self::now().saturating_duration_since(earlier)
    }

    /// The wall-clock time: the system's, moved by however far tokio's paused clock is ahead of (or
    /// behind) the system's monotonic clock.
    pub fn wall() -> DateTime<Utc> {
        let virt = Self::now();
        let real = Instant::now();
        let wall = Utc::now();
        let shift = |d: Duration| chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX);
        match virt.checked_duration_since(real) {
            Some(ahead) if ahead >= SAME => wall + shift(ahead),
            Some(_) => wall,
            None => {
                let behind = real.saturating_duration_since(virt);
                if behind >= SAME {
                    wall - shift(behind)
                } else {
                    wall
                }
            }
        }
    }

    /// [`Clock::wall`] in milliseconds since the Unix epoch.
    pub fn wall_ms() -> i64 {
        Self::wall().timestamp_millis()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn outside_a_paused_runtime_it_is_the_system_clock() {
        let before = Utc::now();
        let w = Clock::wall();
        let after = Utc::now();
        assert!(before <= w && w <= after, "{before} {w} {after}");
        let (a, b) = (Instant::now(), Clock::now());
        assert!(b >= a && b.duration_since(a) < SAME);
    }

    #[tokio::test]
    async fn in_an_unpaused_runtime_it_is_the_system_clock() {
        let before = Utc::now();
        let w = Clock::wall();
        assert!(before <= w && w <= Utc::now());
    }

    #[tokio::test(start_paused = true)]
    async fn paused_time_moves_now_wall_and_timers_together() {
        let (t0, w0) = (Clock::now(), Clock::wall());
        // A day passes in no real time; the wall clock moves by the same amount.
        tokio::time::advance(Duration::from_secs(86_400)).await;
        assert_eq!(Clock::since(t0), Duration::from_secs(86_400));
        let moved = (Clock::wall() - w0).num_seconds();
        assert!((86_399..=86_401).contains(&moved), "{moved}");
        // A timer of an hour, with nothing else to do, ends an hour later on this clock.
        let t1 = Clock::now();
        tokio::time::sleep(Duration::from_secs(3_600)).await;
        assert_eq!(Clock::since(t1), Duration::from_secs(3_600));
        // Instant::elapsed() reads the system clock and would see no time pass: `since` does.
        assert!(t1.elapsed() < Duration::from_secs(1));
    }

    #[tokio::test(start_paused = true)]
    async fn a_quota_minute_window_and_day_follow_the_virtual_clock() {
        use crate::quota::{Blocked, Cost, Limits, Quota};
        // Start just after a midnight (UTC) of the virtual wall clock, so the day cannot end early.
        let wall = Clock::wall();
        let midnight = (wall.date_naive() + chrono::Days::new(1))
            .and_hms_opt(0, 0, 1)
            .unwrap()
            .and_utc();
        tokio::time::advance((midnight - wall).to_std().unwrap()).await;
        let mut q = Quota::new(
            Limits {
                rpm: Some(2),
                rpd: Some(3),
                ..Limits::default()
            },
            chrono_tz::UTC,
        );
        let one = Cost {
            tokens: 1,
            ..Cost::ZERO
        };
        for _ in 0..2 {
            let id = q.try_reserve(Clock::now(), Clock::wall(), one).unwrap();
            q.settle(id, one);
        }
        // The minute window is full until a minute has passed on the virtual clock.
        assert!(matches!(
            q.try_reserve(Clock::now(), Clock::wall(), one),
            Err(Blocked::Until(_))
        ));
        tokio::time::advance(Duration::from_secs(61)).await;
        let id = q.try_reserve(Clock::now(), Clock::wall(), one).unwrap();
        q.settle(id, one);
        // The day's three are spent until the next midnight of the virtual wall clock.
        tokio::time::advance(Duration::from_secs(61)).await;
        assert!(matches!(
            q.try_reserve(Clock::now(), Clock::wall(), one),
            Err(Blocked::Day(_))
        ));
        tokio::time::advance(Duration::from_secs(86_400)).await;
        assert!(q.try_reserve(Clock::now(), Clock::wall(), one).is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn blocking_work_holds_the_paused_clock() {
        // While a spawn_blocking task runs, tokio does not jump to the next timer: real work (a sled
        // flush) takes no virtual time, and a deadline timer cannot fire during it.
        let t0 = Clock::now();
        let timer = tokio::spawn(tokio::time::sleep(Duration::from_secs(30)));
        tokio::task::spawn_blocking(|| std::thread::sleep(Duration::from_millis(50)))
            .await
            .unwrap();
        assert!(Clock::since(t0) < Duration::from_secs(30));
        assert!(!timer.is_finished());
        timer.await.unwrap();
        assert_eq!(Clock::since(t0), Duration::from_secs(30));
    }
}
