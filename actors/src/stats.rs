//! Optimization counters: where interview content came from (template, pool, cache, llm, gpu,
//! heuristic) and provider calls per completed interview per mode; lock-free, read by `/api/optimization_stats`.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

/// Where a piece of interview content came from, as counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A template (greetings, reactions, closings).
    Template,
    /// The question pool.
    Pool,
    /// The cache.
    Cache,
    /// A cloud provider (`llm:<provider>`).
    Llm,
    /// A local inference node (`gpu:<node>`).
    Gpu,
    /// The rubric scorer or the offline resume extractor.
    Heuristic,
}

impl Source {
    const ALL: [Source; 6] = [
        Source::Template,
        Source::Pool,
        Source::Cache,
        Source::Llm,
        Source::Gpu,
        Source::Heuristic,
    ];

    /// The name in stats.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Template => "template",
            Source::Pool => "pool",
            Source::Cache => "cache",
            Source::Llm => "llm",
            Source::Gpu => "gpu",
            Source::Heuristic => "heuristic",
        }
    }

    /// Classifies an event's `source` field (`llm:groq` → Llm, `gpu:local-1` → Gpu).
    pub fn of(source: &str) -> Option<Source> {
        match source.split(':').next()? {
            "template" => Some(Source::Template),
            "pool" => Some(Source::Pool),
            "cache" => Some(Source::Cache),
            "llm" => Some(Source::Llm),
            "gpu" => Some(Source::Gpu),
            "heuristic" => Some(Source::Heuristic),
            _ => None,
        }
    }
}

/// Interview modes counted separately.
pub const MODES: [&str; 4] = ["economy", "balanced", "adaptive", "auto"];

fn mode_index(mode: &str) -> usize {
    MODES.iter().position(|m| *m == mode).unwrap_or(3)
}

/// The counters.
#[derive(Debug, Default)]
pub struct OptimizationStats {
    by_source: [AtomicU64; 6],
    dedup: AtomicU64,
    calls: [AtomicU64; 4],
    tokens: [AtomicU64; 4],
    completed: [AtomicU64; 4],
    /// Calls, tokens and completions by the budget level the interview was at (heuristic first).
    level_calls: [AtomicU64; 4],
    level_tokens: [AtomicU64; 4],
    level_completed: [AtomicU64; 4],
}

/// Per-level figures: provider work counted at the level the interview was at when it was done, and
/// interviews by the level they finished at.
#[derive(Debug, Serialize)]
pub struct LevelFigures {
    /// Level name.
    pub level: &'static str,
    /// Interviews that reached their report at this level.
    pub completed_interviews: u64,
    /// Provider calls made while interviews were at this level.
    pub provider_calls: u64,
    /// Tokens reported for those calls.
    pub provider_tokens: u64,
}

/// Per-mode figures.
#[derive(Debug, Serialize)]
pub struct ModeFigures {
    /// Mode name.
    pub mode: &'static str,
    /// Interviews that reached their report.
    pub completed_interviews: u64,
    /// Provider calls (cloud and GPU) made by interviews of this mode.
    pub provider_calls: u64,
    /// `provider_calls / completed_interviews` (null before the first completion).
    pub provider_calls_per_completed_interview: Option<f64>,
    /// Tokens (prompt and completion, as providers reported them) used by interviews of this mode.
    pub provider_tokens: u64,
    /// `provider_tokens / completed_interviews` (null before the first completion).
    pub provider_tokens_per_completed_interview: Option<f64>,
}

impl OptimizationStats {
    /// Counts one piece of content from `source`.
    pub fn count_source(&self, source: Source) {
        if let Some(i) = Source::ALL.iter().position(|s| *s == source) {
            self.by_source[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Moves one piece of content from `from` to `to`: an answer graded live by the rubric scorer
    /// and then again by economy's batched call counts once, under the grade it kept.
    pub fn recount_source(&self, from: Source, to: Source) {
        let at = |src: Source| Source::ALL.iter().position(|s| *s == src);
        if let (Some(f), Some(t)) = (at(from), at(to)) {
            if f != t {
                // Never below zero, even if the live grade was counted by an older process.
                let _ = self.by_source[f]
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
                self.by_source[t].fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Counts a request served by sharing another's in-flight call.
    pub fn count_dedup(&self) {
        self.dedup.fetch_add(1, Ordering::Relaxed);
    }

    /// Requests served by sharing another's call.
    pub fn dedup(&self) -> u64 {
        self.dedup.load(Ordering::Relaxed)
    }

    /// Counts `n` provider calls made for an interview of `mode`.
    pub fn count_calls(&self, mode: &str, n: u64) {
        self.calls[mode_index(mode)].fetch_add(n, Ordering::Relaxed);
    }

    /// Counts `n` tokens used for an interview of `mode`.
    pub fn count_tokens(&self, mode: &str, n: u64) {
        self.tokens[mode_index(mode)].fetch_add(n, Ordering::Relaxed);
    }

    /// Counts a finished interview of `mode`.
    pub fn count_completed(&self, mode: &str) {
        self.completed[mode_index(mode)].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts `n` tokens used while an interview was at `level`.
    pub fn count_level_tokens(&self, level: crate::budget::Level, n: u64) {
        self.level_tokens[level as usize].fetch_add(n, Ordering::Relaxed);
    }

    /// Counts a finished interview that ended at `level`.
    pub fn count_completed_level(&self, level: crate::budget::Level) {
        self.level_completed[level as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Per-level calls, tokens and completions.
    pub fn levels(&self) -> Vec<LevelFigures> {
        crate::budget::Level::ALL
            .iter()
            .map(|l| {
                let i = *l as usize;
                LevelFigures {
                    level: l.as_str(),
                    completed_interviews: self.level_completed[i].load(Ordering::Relaxed),
                    provider_calls: self.level_calls[i].load(Ordering::Relaxed),
                    provider_tokens: self.level_tokens[i].load(Ordering::Relaxed),
                }
            })
            .collect()
    }

    /// Content counts by source.
    pub fn by_source(&self) -> Vec<(&'static str, u64)> {
        Source::ALL
            .iter()
            .zip(&self.by_source)
            .map(|(s, c)| (s.as_str(), c.load(Ordering::Relaxed)))
            .collect()
    }

    /// Per-mode calls and completions.
    pub fn modes(&self) -> Vec<ModeFigures> {
        MODES
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let completed = self.completed[i].load(Ordering::Relaxed);
                let calls = self.calls[i].load(Ordering::Relaxed);
                let tokens = self.tokens[i].load(Ordering::Relaxed);
                let per = |n: u64| (completed > 0).then(|| n as f64 / completed as f64);
                ModeFigures {
                    mode: m,
                    completed_interviews: completed,
                    provider_calls: calls,
                    provider_calls_per_completed_interview: per(calls),
                    provider_tokens: tokens,
                    provider_tokens_per_completed_interview: per(tokens),
                }
            })
            .collect()
    }
}

/// Counts a call's cost for the interview's mode: the calls that reached a provider or node
/// (admission refusals are not calls) and the tokens reported.
pub fn count_cost<T: HasTrail>(
    stats: &OptimizationStats,
    mode: &str,
    result: &Result<T, crate::pool::PoolError>,
) {
    let trail = match result {
        Ok(d) => d.trail(),
        Err(e) => e.trail(),
    };
    stats.count_calls(mode, trail.iter().filter(|a| a.called).count() as u64);
    if let Ok(d) = result {
        stats.count_tokens(mode, d.tokens());
    }
}

/// [`count_cost`], and the same figures for the budget level the interview was at.
pub fn count_cost_at<T: HasTrail>(
    stats: &OptimizationStats,
    mode: &str,
    level: crate::budget::Level,
    result: &Result<T, crate::pool::PoolError>,
) {
    count_cost(stats, mode, result);
    let trail = match result {
        Ok(d) => d.trail(),
        Err(e) => e.trail(),
    };
    let i = level as usize;
    let calls = trail.iter().filter(|a| a.called).count() as u64;
    stats.level_calls[i].fetch_add(calls, Ordering::Relaxed);
    if let Ok(d) = result {
        stats.level_tokens[i].fetch_add(d.tokens(), Ordering::Relaxed);
    }
}

/// Completions that carry the attempts behind them.
pub trait HasTrail {
    /// The attempts (keys and nodes) behind the completion, in order.
    fn trail(&self) -> &[crate::pool::Attempt];
    /// Tokens reported (a stream reports them at its end, counted there).
    fn tokens(&self) -> u64 {
        0
    }
}

impl HasTrail for crate::pool::Completion {
    fn trail(&self) -> &[crate::pool::Attempt] {
        &self.trail
    }
    fn tokens(&self) -> u64 {
        self.response.usage.as_ref().map_or(0, |u| u.total())
    }
}

impl HasTrail for crate::pool::StreamCompletion {
    fn trail(&self) -> &[crate::pool::Attempt] {
        &self.trail
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sources_are_classified_and_counted() {
        let s = OptimizationStats::default();
        let evs = [
            json!({"source": "llm:groq"}),
            json!({"source": "gpu:local-1"}),
            json!({"source": "gpu:local-2"}),
            json!({"source": "pool"}),
            json!({"source": "nonsense"}),
            json!({"type": "report"}),
        ];
        for e in &evs {
            if let Some(src) = e["source"].as_str().and_then(Source::of) {
                s.count_source(src);
            }
        }
        let by: std::collections::HashMap<_, _> = s.by_source().into_iter().collect();
        assert_eq!(by["llm"], 1);
        assert_eq!(by["gpu"], 2);
        assert_eq!(by["pool"], 1);
        assert_eq!(by["template"], 0);
    }

    #[test]
    fn a_regraded_answer_counts_once_under_its_new_source() {
        let s = OptimizationStats::default();
        s.count_source(Source::Heuristic);
        s.count_source(Source::Heuristic);
        s.recount_source(Source::Heuristic, Source::Llm);
        let by: std::collections::HashMap<_, _> = s.by_source().into_iter().collect();
        assert_eq!((by["heuristic"], by["llm"]), (1, 1));
        // A regrade whose live grade was counted before a restart does not go below zero.
        s.recount_source(Source::Template, Source::Gpu);
        let by: std::collections::HashMap<_, _> = s.by_source().into_iter().collect();
        assert_eq!((by["template"], by["gpu"]), (0, 1));
    }

    #[test]
    fn calls_per_completed_interview_per_mode() {
        let s = OptimizationStats::default();
        s.count_calls("balanced", 10);
        s.count_calls("balanced", 18);
        s.count_completed("balanced");
        s.count_completed("balanced");
        let m = s.modes();
        let b = m.iter().find(|f| f.mode == "balanced").unwrap_or(&m[0]);
        assert_eq!(b.provider_calls_per_completed_interview, Some(14.0));
        let e = m.iter().find(|f| f.mode == "economy").unwrap_or(&m[0]);
        assert_eq!(e.provider_calls_per_completed_interview, None);
    }
}
