//! Provider requests and interviews per hour, the last 24 hours of them, for the dashboard's chart.
//!
//! Nothing in the engine is hooked for this: a sampler reads the cumulative counters the status routes
//! already show (requests answered and failed per key and GPU node, interviews created today,
//! interviews completed) once a minute, and adds what each grew by to the current hour's bucket. A
//! counter that went down (a restarted key actor, the budget's daily reset) counts from zero. Buckets
//! live in a sled tree (`timeline`, key: the hour's start in Unix seconds, big-endian), so the chart
//! survives restarts; buckets older than two days are deleted as new hours begin.

use std::time::Duration;

use actors::budget::Budget;
use actors::pool::Pool;
use actors::stats::OptimizationStats;
use chrono::{DateTime, TimeZone, Utc};
use parking_lot::Mutex;

/// Hours the chart shows.
pub const HOURS: usize = 24;

/// How often the sampler reads the counters.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(60);

/// Cumulative counters at one moment (or, in a bucket, what they grew by in that hour).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Provider requests: calls answered or failed, over every key and GPU node.
    pub requests: u64,
    /// Interviews created.
    pub started: u64,
    /// Interviews that reached their report.
    pub completed: u64,
}

impl Counts {
    fn encode(self) -> [u8; 24] {
        let mut out = [0u8; 24];
        out[..8].copy_from_slice(&self.requests.to_le_bytes());
        out[8..16].copy_from_slice(&self.started.to_le_bytes());
        out[16..].copy_from_slice(&self.completed.to_le_bytes());
        out
    }

    fn decode(b: &[u8]) -> Counts {
        let n = |r: std::ops::Range<usize>| {
            b.get(r)
                .and_then(|s| <[u8; 8]>::try_from(s).ok())
                .map_or(0, u64::from_le_bytes)
        };
        Counts {
            requests: n(0..8),
            started: n(8..16),
            completed: n(16..24),
        }
    }

    /// What `now` grew by since `before`; a counter that went down restarted from zero.
    fn since(now: Counts, before: Counts) -> Counts {
        let d = |a: u64, b: u64| if a >= b { a - b } else { a };
        Counts {
            requests: d(now.requests, before.requests),
            started: d(now.started, before.started),
            completed: d(now.completed, before.completed),
        }
    }

    fn add(self, o: Counts) -> Counts {
        Counts {
            requests: self.requests.saturating_add(o.requests),
            started: self.started.saturating_add(o.started),
            completed: self.completed.saturating_add(o.completed),
        }
    }
}

/// One hour of the chart.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Hour {
    /// The hour's start, UTC, `HH:00`.
    pub label: String,
    /// The hour's start, RFC 3339.
    pub start: String,
    /// Provider requests in the hour.
    pub requests: u64,
    /// Interviews created in the hour.
    pub started: u64,
    /// Interviews completed in the hour.
    pub completed: u64,
}

/// The hourly buckets and the last counters read.
pub struct Timeline {
    tree: sled::Tree,
    last: Mutex<Counts>,
}

impl Timeline {
    /// The timeline in `db`'s `timeline` tree. The counters it samples start at zero with the process.
    pub fn open(db: &sled::Db) -> Result<Timeline, sled::Error> {
        Ok(Timeline {
            tree: db.open_tree("timeline")?,
            last: Mutex::new(Counts::default()),
        })
    }

    /// Adds what `totals` (cumulative counters) grew by since the last sample to `now`'s hour.
    pub fn sample(&self, now: DateTime<Utc>, totals: Counts) {
        let mut last = self.last.lock();
        let delta = Counts::since(totals, *last);
        *last = totals;
        if delta == Counts::default() {
            return;
        }
        let hour = hour_start(now);
        let added = self.tree.update_and_fetch(hour.to_be_bytes(), |old| {
            Some(
                old.map_or_else(Counts::default, Counts::decode)
                    .add(delta)
                    .encode()
                    .to_vec(),
            )
        });
        if let Err(e) = added {
            tracing::warn!(error = %e, "timeline: could not store an hourly sample");
        }
        // Old hours go once a new one has begun.
        let cutoff = hour - 48 * 3600;
        for k in self
            .tree
            .range(..cutoff.to_be_bytes())
            .keys()
            .filter_map(Result::ok)
        {
            let _ = self.tree.remove(k);
        }
    }

    /// The last [`HOURS`] hours up to `now`'s, oldest first (hours without data are zeros).
    pub fn last_day(&self, now: DateTime<Utc>) -> Vec<Hour> {
        let current = hour_start(now);
        (0..HOURS as i64)
            .rev()
            .map(|back| {
                let start = current - back * 3600;
                let c = self
                    .tree
                    .get(start.to_be_bytes())
                    .ok()
                    .flatten()
                    .map_or_else(Counts::default, |v| Counts::decode(&v));
                let at = Utc.timestamp_opt(start, 0).single().unwrap_or(now);
                Hour {
                    label: at.format("%H:00").to_string(),
                    start: at.to_rfc3339(),
                    requests: c.requests,
                    started: c.started,
                    completed: c.completed,
                }
            })
            .collect()
    }
}

fn hour_start(t: DateTime<Utc>) -> i64 {
    t.timestamp().div_euclid(3600) * 3600
}

/// The counters now, from the same sources as `/api/system_status` and `/api/optimization_stats`.
pub async fn totals(pool: &Pool, budget: &Budget, stats: &OptimizationStats) -> Counts {
    let keys = pool.status().await.unwrap_or_default();
    let gpu: u64 = pool
        .gpu()
        .map(|g| g.status().iter().map(|n| n.requests).sum())
        .unwrap_or(0);
    Counts {
        requests: keys.iter().map(|k| k.served + k.failed).sum::<u64>() + gpu,
        started: budget.snapshot().created_today,
        completed: stats.modes().iter().map(|m| m.completed_interviews).sum(),
    }
}

/// Samples every [`SAMPLE_EVERY`] until aborted (the server aborts it at shutdown).
pub fn spawn_sampler(
    runtime: &tokio::runtime::Handle,
    timeline: std::sync::Arc<Timeline>,
    pool: Pool,
    budget: std::sync::Arc<Budget>,
    stats: std::sync::Arc<OptimizationStats>,
) -> tokio::task::JoinHandle<()> {
    runtime.spawn(async move {
        let mut tick = tokio::time::interval(SAMPLE_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let now = totals(&pool, &budget, &stats).await;
            timeline.sample(Utc::now(), now);
        }
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn at(h: i64, m: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_700_000_000 - 1_700_000_000 % 86400 + h * 3600 + m * 60, 0)
            .unwrap()
    }

    fn c(requests: u64, started: u64, completed: u64) -> Counts {
        Counts {
            requests,
            started,
            completed,
        }
    }

    #[test]
    fn samples_add_deltas_to_their_hour_and_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let t = Timeline::open(&db).unwrap();
        t.sample(at(10, 5), c(10, 2, 1));
        t.sample(at(10, 50), c(25, 3, 1));
        t.sample(at(11, 1), c(27, 3, 2));
        // A key actor restarted: its counter starts again from zero.
        t.sample(at(11, 2), c(4, 4, 2));
        let day = t.last_day(at(11, 30));
        assert_eq!(day.len(), HOURS);
        let h10 = &day[HOURS - 2];
        let h11 = &day[HOURS - 1];
        assert_eq!(
            (h10.label.as_str(), h10.requests, h10.started, h10.completed),
            ("10:00", 25, 3, 1)
        );
        assert_eq!(
            (h11.label.as_str(), h11.requests, h11.started, h11.completed),
            ("11:00", 6, 1, 1)
        );
        assert!(day[..HOURS - 2].iter().all(|h| h.requests == 0));
        drop(t);
        let again = Timeline::open(&db).unwrap();
        assert_eq!(again.last_day(at(11, 30))[HOURS - 1].requests, 6);
        // Two days later the old hours are gone from the chart and from the tree.
        again.sample(at(11 + 50, 0), c(1, 0, 0));
        assert_eq!(again.tree.len(), 1);
    }
}
