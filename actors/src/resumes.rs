//! Resume analysis as a service of the actors crate: the HTTP layer (`POST /api/interviews`,
//! `POST /api/resume/analyze`) asks it and knows nothing of the cache, the pool or the counters.
//!
//! An analysis is cached (kind `resume_analysis`, by a hash of the text); a miss goes through the
//! pool when an LLM is configured and the asker's level pays for it, identical concurrent analyses
//! sharing one call (the coalescer), and the answer is stored before it is returned (the cache write
//! is awaited: the next identical resume hits). Otherwise, or when the pool fails, the offline
//! extractor answers (cheap, not cached).

use std::sync::Arc;
use std::time::Duration;

use crate::budget::{Level, Mode};
use crate::cache::{self, Cache, CacheKind};
use crate::coalesce::Coalescer;
use crate::content::prompts;
use crate::content::resume::{self, ResumeAnalysis};
use crate::pool::{CallOptions, Pool};
use crate::stats::{count_cost, OptimizationStats, Source};

/// How long one analysis may take through the providers.
const DEADLINE: Duration = Duration::from_secs(20);

/// Who asks for a resume analysis.
#[derive(Debug, Clone, Copy)]
pub enum ResumeFor {
    /// `POST /api/resume/analyze`: a provider reads it when one is configured.
    Request,
    /// An interview of `mode` admitted at `level`: a provider reads it from balanced up (economy and
    /// below keep their call count), and the call counts toward the mode's calls and tokens.
    Interview {
        /// The interview's requested mode.
        mode: Mode,
        /// Its admitted level.
        level: Level,
    },
}

/// The service (cheap to clone: handles inside).
#[derive(Clone)]
pub struct ResumeAnalyzer {
    pool: Pool,
    cache: Cache,
    stats: Arc<OptimizationStats>,
    calls: Coalescer<String, (ResumeAnalysis, String)>,
}

impl ResumeAnalyzer {
    /// A service over the engine's pool, cache and counters.
    pub fn new(pool: Pool, cache: Cache, stats: Arc<OptimizationStats>) -> Self {
        ResumeAnalyzer {
            pool,
            cache,
            stats,
            calls: Coalescer::new(),
        }
    }

    /// The analysis of `text` and its source (`cache`, `llm:<provider>`, `gpu:<node>` or
    /// `heuristic`).
    pub async fn analyze(&self, text: &str, asker: ResumeFor) -> (ResumeAnalysis, String) {
        let key = cache::key(&[text]);
        if let Some(hit) = self
            .cache
            .get(CacheKind::ResumeAnalysis, &key, None)
            .await
            .and_then(|j| serde_json::from_str::<ResumeAnalysis>(&j).ok())
        {
            self.stats.count_source(Source::Cache);
            return (hit, "cache".into());
        }
        let (llm, mode) = match asker {
            ResumeFor::Request => (true, None),
            ResumeFor::Interview { mode, level } => (level >= Level::Balanced, Some(mode)),
        };
        if llm && self.pool.has_llm() {
            let (pool, cache, stats) = (self.pool.clone(), self.cache.clone(), self.stats.clone());
            let (t, k) = (text.to_string(), key.clone());
            let shared = self
                .calls
                .run(key, move || async move {
                    let opts = CallOptions {
                        deadline: DEADLINE,
                        ..CallOptions::default()
                    };
                    let done = pool.complete(&prompts::resume_request(&t), opts).await;
                    if let Some(mode) = mode {
                        count_cost(&stats, mode.as_str(), &done);
                    }
                    match done.ok().and_then(|d| {
                        prompts::parse_resume(&d.response.text).map(|a| (a, d.source.clone()))
                    }) {
                        Some((a, source)) => {
                            if let Ok(j) = serde_json::to_string(&a) {
                                let _ = cache.put(CacheKind::ResumeAnalysis, &k, j).await;
                            }
                            (a, source)
                        }
                        None => (resume::analyze_offline(&t), "heuristic".to_string()),
                    }
                })
                .await;
            if let Ok((result, shared)) = shared {
                // A caller that shared another's call is counted as a dedup save, not a second call.
                if shared {
                    self.stats.count_dedup();
                } else if let Some(s) = Source::of(&result.1) {
                    self.stats.count_source(s);
                }
                return result;
            }
        }
        self.stats.count_source(Source::Heuristic);
        (resume::analyze_offline(text), "heuristic".into())
    }
}
