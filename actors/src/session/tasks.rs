//! The provider work of a session, run as tasks so the actor never waits on a provider: the
//! evaluation of an answer, the follow-up stream, a generated question and the report's batch work.
//! Each task is bounded, goes through the cache where its answer is reusable, and reports back by message.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::protocol::ServerEvent;
use futures::StreamExt;
use ractor::ActorRef;

use super::{EvalOutcome, ReportWork, SessionMsg, SessionState};
use crate::budget::{Level, Mode};
use crate::cache::{self, Cache, CacheKind};
use crate::conn::{ConnHandle, Outbound};
use crate::content::grading::Target;
use crate::content::prompts;
use crate::content::report;
use crate::content::scoring::{self, Semantic};
use crate::embedder::Embedder;
use crate::interview::Phase;
use crate::pool::{CallOptions, Pool};
use crate::providers::StreamChunk;
use crate::stats::{count_cost_at, OptimizationStats};

/// The most a provider task of `calls` calls with `deadline` each may take before the session moves
/// on without it: a safety net, so that no bug below can leave an interview waiting forever.
pub(super) fn task_limit(deadline: Duration, calls: u32) -> Duration {
    deadline
        .saturating_mul(calls)
        .saturating_add(Duration::from_secs(5))
}

/// Runs `work` for at most `limit`; `None` (logged) when it took longer.
pub(super) async fn bounded<T>(
    limit: Duration,
    work: impl std::future::Future<Output = T>,
    what: &str,
) -> Option<T> {
    match tokio::time::timeout(limit, work).await {
        Ok(v) => Some(v),
        Err(_) => {
            tracing::warn!(
                task = what,
                limit_ms = limit.as_millis() as u64,
                "provider task overran its limit; carrying on without it"
            );
            None
        }
    }
}

/// What a provider task of a session needs: the pool, the cache, the counters of the interview's mode,
/// the deadline of one call and the interview's id (node affinity and the variant seed).
#[derive(Clone)]
pub(super) struct TaskCtx {
    pub(super) pool: Pool,
    pub(super) cache: Option<Cache>,
    pub(super) stats: Arc<OptimizationStats>,
    pub(super) mode: Mode,
    /// The interview's level when the task started (calls are counted per level too).
    pub(super) level: Level,
    pub(super) deadline: Duration,
    pub(super) interview: String,
}

impl TaskCtx {
    pub(super) fn opts(&self) -> CallOptions {
        CallOptions {
            deadline: self.deadline,
            affinity: Some(self.interview.clone()),
            ..CallOptions::default()
        }
    }

    /// A provider answer worth reusing: the cached value of `key` (for kinds with variants, the one
    /// this interview's seed picks), else a call whose answer `parse` accepts, then stored. An answer
    /// `parse` refuses is asked again on another key, up to `attempts` calls. `None` when nothing
    /// usable came back. `T` goes to and from the cache as JSON text.
    pub(super) async fn cached_call<T>(
        &self,
        kind: CacheKind,
        key: &str,
        req: &crate::providers::ChatRequest,
        attempts: u32,
        parse: impl Fn(&str) -> Option<T>,
    ) -> Option<(T, String)>
    where
        T: serde::Serialize + serde::de::DeserializeOwned,
    {
        if let Some(c) = &self.cache {
            let hit = c.get(kind, key, Some(&self.interview)).await;
            if let Some(v) = hit.and_then(|j| serde_json::from_str::<T>(&j).ok()) {
                return Some((v, "cache".to_string()));
            }
        }
        let mut avoid = None;
        let until = tokio::time::Instant::now() + self.deadline;
        let mut pause = Duration::from_millis(100);
        let mut unusable = 0;
        while unusable < attempts {
            let left = until.saturating_duration_since(tokio::time::Instant::now());
            let opts = CallOptions {
                avoid_key: avoid.take(),
                deadline: left,
                ..self.opts()
            };
            let result = self.pool.complete(req, opts).await;
            count_cost_at(&self.stats, self.mode.as_str(), self.level, &result);
            let done = match result {
                Ok(done) => done,
                // Every key it tried failed (errors, timeouts, 429s), or every key is briefly out
                // (a breaker's probe in flight, a cool-down, full windows): passing states, and the
                // caller's deadline is the promise, so ask again while there is time. A key that
                // cannot serve before the deadline (its day spent, invalid) ends it at once.
                Err(e)
                    if passing(&e)
                        && until.saturating_duration_since(tokio::time::Instant::now()) > pause =>
                {
                    tracing::info!(kind = %kind, error = %e, "no provider answer yet; asking again within the deadline");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(1));
                    continue;
                }
                Err(e) => {
                    tracing::info!(kind = %kind, error = %e, "no provider answer; carrying on without it");
                    return None;
                }
            };
            match parse(&done.response.text) {
                Some(v) => {
                    if let (Some(c), Ok(j)) = (&self.cache, serde_json::to_string(&v)) {
                        c.put_detached(kind, key, j);
                    }
                    return Some((v, done.source));
                }
                None => {
                    // Its length and finish reason, never its text (it may quote the candidate).
                    tracing::warn!(kind = %kind, key = %done.key, chars = done.response.text.len(),
                        finish = ?done.response.finish_reason, "provider answer unusable; asking another key");
                    avoid = Some(done.key);
                    unusable += 1;
                }
            }
        }
        None
    }
}

/// Whether a pool error is a passing state worth asking again within the deadline.
fn passing(e: &crate::pool::PoolError) -> bool {
    use crate::pool::PoolError;
    match e {
        PoolError::AllFailed { .. } => true,
        PoolError::NoCapacity { trail, .. } => {
            !trail.is_empty()
                && trail.iter().all(|a| {
                    matches!(
                        a.outcome.as_str(),
                        "circuit_open" | "cooling_down" | "busy" | "queue_full"
                    )
                })
        }
        PoolError::NoProviders | PoolError::Unavailable(_) | PoolError::TooLarge { .. } => false,
    }
}

/// The embeddings server's similarity between the answer's sentences and the target's points;
/// `None` (logged) when it fails or takes longer than its timeout: the lexical scorer then stands alone.
async fn semantic_signal(embedder: &Embedder, target: &Target, answer: &str) -> Option<Semantic> {
    let sentences = scoring::prose_sentences(answer);
    if sentences.is_empty() {
        return None;
    }
    match embedder.semantic(&target.points, &sentences).await {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::info!(error = %e, "no semantic signal; the rubric scorer grades lexically");
            None
        }
    }
}

impl SessionState {
    pub(super) fn task_ctx(&self, pool: Pool, deadline: Duration) -> TaskCtx {
        TaskCtx {
            pool,
            cache: self.deps.cache.clone(),
            stats: self.deps.stats.clone(),
            mode: self.rec.mode,
            level: self.rec.level,
            deadline,
            interview: self.rec.id.clone(),
        }
    }

    /// Evaluates in a task (provider) or inline (heuristic); the outcome arrives as `Evaluated`.
    /// A main answer is graded by a provider from the balanced level up, a follow-up's answer only at
    /// the adaptive level (balanced keeps to one call per question).
    pub(super) fn evaluate(&self, myself: &ActorRef<SessionMsg>, target: Target, answer: String) {
        let min = if self.rec.in_follow_up {
            Level::Adaptive
        } else {
            Level::Balanced
        };
        let embedder = self.deps.embedder.clone();
        let Some(pool) = self.llm_at(min) else {
            let Some(embedder) = embedder else {
                let _ = myself.cast(SessionMsg::Evaluated(EvalOutcome::from_rubric(
                    &target, &answer, None,
                )));
                return;
            };
            let me = myself.clone();
            tokio::spawn(async move {
                let semantic = semantic_signal(&embedder, &target, &answer).await;
                let outcome = EvalOutcome::from_rubric(&target, &answer, semantic.as_ref());
                let _ = me.cast(SessionMsg::Evaluated(outcome));
            });
            return;
        };
        let (question, rubric) = (target.question.clone(), target.rubric());
        let role = self.rec.role.clone();
        // Keyed by the question's id and its text (pool questions with placeholders share an id
        // across technologies), and the normalized answer.
        let qid = self
            .rec
            .questions
            .get(self.rec.current)
            .map_or("", |q| q.id.as_str());
        let qid = if self.rec.in_follow_up {
            format!("{qid}/follow-up")
        } else {
            qid.to_string()
        };
        let ctx = self.task_ctx(pool, self.deps.eval_deadline);
        let me = myself.clone();
        tokio::spawn(async move {
            // The same answer (normalized) to the same question was graded by a provider before.
            let key = cache::key(&["evaluation", &qid, &question, &answer]);
            let req = prompts::evaluation_request(&question, &rubric, &answer, &role);
            let parse = |t: &str| prompts::parse_evaluation(t, &rubric);
            let graded = ctx.cached_call(CacheKind::Evaluation, &key, &req, 2, parse);
            let outcome = match bounded(task_limit(ctx.deadline, 2), graded, "evaluation").await {
                Some(Some((ev, source))) => EvalOutcome::from_llm(ev, &target, source),
                _ => {
                    let semantic = match &embedder {
                        Some(e) => semantic_signal(e, &target, &answer).await,
                        None => None,
                    };
                    EvalOutcome::from_rubric(&target, &answer, semantic.as_ref())
                }
            };
            let _ = me.cast(SessionMsg::Evaluated(outcome));
        });
    }

    /// Streams an LLM follow-up question as `interviewer_delta` pieces (ephemeral), then `FollowUpReady`.
    pub(super) fn stream_follow_up(
        &mut self,
        myself: &ActorRef<SessionMsg>,
        pool: Pool,
        idx: usize,
    ) {
        let item = &self.rec.items[idx];
        let req = prompts::follow_up_request(
            &item.question,
            item.answer.as_deref().unwrap_or(""),
            &self.rec.role,
        );
        let fallback = self.rec.questions[idx]
            .follow_ups
            .first()
            .cloned()
            .unwrap_or_default();
        let partial = Arc::new(Mutex::new(String::new()));
        let buf = partial.clone();
        let conn = self.conn.clone();
        let me = myself.clone();
        let turn = idx + 1;
        let seq = self.rec.last_seq();
        let ctx = self.task_ctx(pool, self.deps.eval_deadline);
        let aloud = self.voice.stream_feed();
        let task = tokio::spawn(async move {
            let streamed = async {
                let opened = ctx.pool.stream(&req, ctx.opts()).await;
                count_cost_at(&ctx.stats, ctx.mode.as_str(), ctx.level, &opened);
                let mut s = opened.ok()?;
                while let Some(item) = s.stream.next().await {
                    match item {
                        Ok(StreamChunk::Delta(d)) => {
                            buf.lock().unwrap_or_else(|p| p.into_inner()).push_str(&d);
                            let ev = ServerEvent::InterviewerDelta {
                                turn,
                                delta: d.clone(),
                            };
                            let c = conn.lock().unwrap_or_else(|p| p.into_inner()).clone();
                            if let Some(c) = c.filter(ConnHandle::is_live) {
                                c.send(Outbound::Text(Arc::from(ev.ephemeral_text(Some(seq)))));
                                if let Some(f) = &aloud {
                                    f.delta(turn, "follow_up", &d);
                                }
                            }
                        }
                        Ok(StreamChunk::Done { usage, .. }) => {
                            if let Some(u) = usage {
                                ctx.stats.count_tokens(ctx.mode.as_str(), u.total());
                                ctx.stats.count_level_tokens(ctx.level, u.total());
                            }
                            break;
                        }
                        Err(_) => break,
                    }
                }
                Some(s.source)
            };
            let source = bounded(task_limit(ctx.deadline, 1), streamed, "follow-up")
                .await
                .flatten();
            if let Some(f) = &aloud {
                f.delta_end();
            }
            let text = buf
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .trim()
                .to_string();
            let (text, source) = match source {
                Some(src) if !text.is_empty() => (text, src),
                // Cut off by its time limit after the client saw part of it: keep what was shown.
                None if !text.is_empty() => (format!("{text}…"), "llm:interrupted".to_string()),
                _ => (fallback, "pool".to_string()),
            };
            let _ = me.cast(SessionMsg::FollowUpReady { text, source });
        });
        self.stream = Some((task, partial));
        self.rec.phase = Phase::Evaluating;
    }

    /// At the adaptive level, with a resume, the second-to-last question is generated on one of the
    /// resume's suggested topics (cached per role, topic and difficulty, a few variants kept).
    pub(super) fn generation_slot(&self, next: usize) -> Option<(Pool, String)> {
        let n = self.rec.questions.len();
        if n < 3 || next != n - 2 || self.rec.questions[next].id.starts_with("gen-") {
            return None;
        }
        let topics = &self.rec.resume.as_ref()?.suggested_topics;
        let pick =
            usize::try_from(crate::content::stable_hash(&[&self.rec.id, "topic"])).unwrap_or(0);
        let topic = topics.get(pick % topics.len().max(1))?.clone();
        Some((self.llm_at(Level::Adaptive)?, topic))
    }

    /// Generates question `idx` in a task; the result arrives as `QuestionReady`.
    pub(super) fn generate_question(
        &self,
        myself: &ActorRef<SessionMsg>,
        pool: Pool,
        idx: usize,
        topic: String,
    ) {
        let difficulty = format!("{:?}", self.rec.difficulty).to_lowercase();
        let role = self.rec.role.clone();
        let ctx = self.task_ctx(pool, self.deps.eval_deadline);
        let me = myself.clone();
        tokio::spawn(async move {
            let key = cache::key(&["question", &role, &topic, &difficulty]);
            let req = prompts::question_request(&role, &topic, &difficulty);
            let made = ctx.cached_call(CacheKind::Question, &key, &req, 1, prompts::parse_question);
            let (question, source) =
                match bounded(task_limit(ctx.deadline, 1), made, "question").await {
                    Some(Some((q, src))) => (Some(q), src),
                    _ => (None, "pool".to_string()),
                };
            let _ = me.cast(SessionMsg::QuestionReady {
                idx,
                topic,
                question,
                source,
            });
        });
    }

    /// The end-of-interview work in a task: one batched evaluation of the answers the rubric scorer
    /// graded (economy turns), then the coach note (cached per result profile).
    pub(super) fn report_work(&self, myself: &ActorRef<SessionMsg>) {
        let Some(pool) = self.llm_at(Level::Economy) else {
            let _ = myself.cast(SessionMsg::Reported(ReportWork::default()));
            return;
        };
        let mut items = self.rec.items.clone();
        let rubrics: Vec<Vec<String>> = self
            .rec
            .questions
            .iter()
            .map(|q| q.rubric.clone())
            .collect();
        let role = self.rec.role.clone();
        let ctx = self.task_ctx(pool, self.deps.eval_deadline);
        let me = myself.clone();
        tokio::spawn(async move {
            let job = async {
                let mut work = ReportWork::default();
                let batch: Vec<usize> = items
                    .iter()
                    .enumerate()
                    // Graded live by the rubric scorer, or not graded at all (the interview ended while
                    // an evaluation was running).
                    .filter(|(_, i)| {
                        i.answer.is_some() && (i.score.is_none() || i.source == "heuristic")
                    })
                    .map(|(n, _)| n)
                    .collect();
                if !batch.is_empty() {
                    let inputs: Vec<(&str, &[String], &str)> = batch
                        .iter()
                        .map(|&n| {
                            let rubric = rubrics.get(n).map_or(&[][..], |r| r.as_slice());
                            let item = &items[n];
                            (
                                item.question.as_str(),
                                rubric,
                                item.answer.as_deref().unwrap_or(""),
                            )
                        })
                        .collect();
                    let req = prompts::batch_evaluation_request(&inputs, &role);
                    let result = ctx.pool.complete(&req, ctx.opts()).await;
                    count_cost_at(&ctx.stats, ctx.mode.as_str(), ctx.level, &result);
                    match result {
                        Ok(done) => {
                            let rs: Vec<&[String]> = inputs.iter().map(|(_, r, _)| *r).collect();
                            let parsed = prompts::parse_batch_evaluation(&done.response.text, &rs);
                            for (&n, ev) in batch.iter().zip(parsed) {
                                if let Some(ev) = ev {
                                    // The copy gets the grade too, so the coach note sees final scores.
                                    items[n].score = Some(ev.score);
                                    work.graded.push((n, ev));
                                }
                            }
                            work.graded_source = done.source;
                        }
                        Err(e) => {
                            tracing::info!(error = %e, "no batched evaluation; the rubric scorer's grades stand")
                        }
                    }
                }
                if let Some((band, best, worst)) = report::profile(&items) {
                    let key = cache::key(&["summary", &role, band, &best, &worst]);
                    let req = prompts::coach_note_request(&role, band, &best, &worst);
                    let parse = |t: &str| prompts::clean_line(t, 700);
                    work.note = ctx
                        .cached_call(CacheKind::Summary, &key, &req, 1, parse)
                        .await;
                }
                work
            };
            let work = bounded(task_limit(ctx.deadline, 2), job, "report")
                .await
                .unwrap_or_default();
            let _ = me.cast(SessionMsg::Reported(work));
        });
    }
}
