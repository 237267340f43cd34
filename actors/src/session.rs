//! `InterviewSession`: one actor per live interview. It owns the interview's record and runs the state
//! machine greeting → (question → answer → evaluation → follow-up?)* → closing → report.
//!
//! Every step commits the new record and its new events to the session log in one transaction and
//! flushes before anything is sent, so a crash, a panic or a dropped socket loses nothing: the record
//! is the whole state, and `resume {last_seq}` replays the log. Provider calls run in spawned tasks
//! and come back as messages, so the actor always answers `resume`, `end` and `interrupt` at once.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use serde_json::{json, Value};

use crate::cache::{self, Cache, CacheKind};
use crate::conn::{ConnHandle, ConnSlot, Outbound};
use crate::content::prompts::{self, LlmEvaluation};
use crate::content::report::{self, FollowUpItem, ReportInput, ReportItem};
use crate::content::scoring;
use crate::content::templates::{Closing, Templates, Transition};
use crate::content::Band;
use crate::interview::{InterviewRecord, Phase};
use crate::pool::{CallOptions, Pool};
use crate::providers::StreamChunk;
use crate::stats::{OptimizationStats, Source};
use crate::storage::SessionLog;

/// What every session shares.
pub struct SessionDeps {
    /// The durable log.
    pub log: Arc<dyn SessionLog>,
    /// The provider pool, when any key is configured.
    pub pool: Option<Pool>,
    /// Interviewer templates.
    pub templates: Arc<Templates>,
    /// Close an interview after this long without activity.
    pub idle_timeout: Duration,
    /// How long one evaluation may take (failovers included) before the heuristic scorer steps in.
    pub eval_deadline: Duration,
    /// Enables test hooks (an answer `__panic__` panics the session). Off in production.
    pub test_hooks: bool,
    /// Optimization counters (content sources, provider calls per interview).
    pub stats: Arc<OptimizationStats>,
    /// Reuse cache: a provider's evaluation of the same answer to the same question is reused.
    pub cache: Option<Cache>,
}

/// A client message, as parsed by the connection.
#[derive(Debug, Clone)]
pub enum ClientMsg {
    /// The candidate's answer.
    Answer {
        /// The text.
        text: String,
        /// Length of the spoken answer, if it was spoken.
        audio_duration_s: Option<f64>,
    },
    /// Send again every event after `last_seq`.
    Resume {
        /// The last seq the client has.
        last_seq: u64,
    },
    /// End the interview now.
    End,
    /// Stop the current streamed output.
    Interrupt,
    /// Keep-alive.
    Ping,
}

/// Result of an evaluation task.
#[derive(Debug, Clone)]
pub struct EvalOutcome {
    score: u8,
    feedback: String,
    reaction: Option<String>,
    covered: Vec<String>,
    missed: Vec<String>,
    source: String,
}

impl EvalOutcome {
    /// A model's grade (fresh or from the cache) against the question's rubric.
    fn from_llm(ev: LlmEvaluation, rubric: &[String], source: String) -> Self {
        let missed = rubric
            .iter()
            .filter(|r| !ev.rubric_covered.contains(r))
            .cloned()
            .collect();
        EvalOutcome {
            score: ev.score,
            feedback: ev.feedback,
            reaction: Some(ev.reaction).filter(|r| !r.trim().is_empty()),
            covered: ev.rubric_covered,
            missed,
            source,
        }
    }
}

/// Messages of the session actor.
pub enum SessionMsg {
    /// A connection attaches (replacing any earlier one); replies with the `ready` event.
    Attach(ConnHandle, RpcReplyPort<Value>),
    /// A connection went away.
    Detach(u64),
    /// A message from the client on connection `u64`.
    Client(u64, ClientMsg),
    /// An evaluation finished.
    Evaluated(EvalOutcome),
    /// A streamed follow-up question finished (or was interrupted).
    FollowUpReady {
        /// The text.
        text: String,
        /// Its source.
        source: String,
    },
    /// Check for inactivity.
    IdleCheck,
    /// A copy of the record.
    View(RpcReplyPort<InterviewRecord>),
}

/// What a session starts with.
pub struct SessionArgs {
    /// The record as last committed.
    pub record: InterviewRecord,
    /// Shared dependencies.
    pub deps: Arc<SessionDeps>,
    /// The attached connection (kept by the supervisor across restarts).
    pub conn: ConnSlot,
    /// True when this is a restart after a failure.
    pub restarted: bool,
}

/// The session's state.
pub struct SessionState {
    rec: InterviewRecord,
    deps: Arc<SessionDeps>,
    conn: ConnSlot,
    stream: Option<(tokio::task::JoinHandle<()>, Arc<Mutex<String>>)>,
}

/// The session actor.
pub struct InterviewSession;

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn error_event(rec: &InterviewRecord, code: &str, message: &str) -> Value {
    json!({"type": "error", "seq": rec.last_seq(), "ephemeral": true, "code": code, "message": message})
}

impl SessionState {
    fn conn(&self) -> Option<ConnHandle> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn send_ephemeral(&self, v: &Value) {
        if let Some(c) = self.conn() {
            c.send(Outbound::Text(Arc::from(v.to_string())));
        }
    }

    fn seed(&self) -> String {
        self.rec.id.clone()
    }

    /// Numbers `events`, commits them with the record, flushes, then sends them.
    async fn emit(&mut self, events: Vec<Value>) -> Result<(), ActorProcessingErr> {
        let sources: Vec<Source> = events
            .iter()
            .filter_map(|e| e["source"].as_str().and_then(Source::of))
            .collect();
        let mut logged = Vec::with_capacity(events.len());
        for mut ev in events {
            let seq = self.rec.next_seq;
            self.rec.next_seq += 1;
            ev["seq"] = json!(seq);
            logged.push((seq, ev.to_string()));
        }
        self.rec.updated_ms = now_ms();
        self.deps.log.commit(&self.rec, &logged)?;
        self.deps.log.flush().await?;
        for s in sources {
            self.deps.stats.count_source(s);
        }
        if let Some(c) = self.conn().filter(ConnHandle::is_live) {
            for (seq, text) in logged {
                if !c.send_logged(seq, Arc::from(text)) {
                    break;
                }
            }
        }
        Ok(())
    }

    /// Sends every logged event after `after` to the connection.
    fn replay(&self, conn: &ConnHandle, after: u64) -> Result<(), ActorProcessingErr> {
        for (seq, text) in self
            .deps
            .log
            .events_after(&self.rec.id, after, self.rec.last_seq())?
        {
            if !conn.send_logged(seq, Arc::from(text)) {
                break;
            }
        }
        Ok(())
    }

    fn interviewer(&self, turn: usize, kind: &str, text: &str, source: &str) -> Value {
        json!({"type": "interviewer", "turn": turn, "kind": kind, "text": text, "source": source})
    }

    fn question_event(&mut self, idx: usize, lead_in: Option<String>) -> Value {
        let q = &self.rec.questions[idx];
        self.rec.items.push(ReportItem {
            index: (idx + 1) as u32,
            question_id: q.id.clone(),
            category: q.category.as_str().to_string(),
            difficulty: format!("{:?}", q.difficulty).to_lowercase(),
            question: q.text.clone(),
            answer: None,
            audio_duration_s: None,
            score: None,
            feedback: String::new(),
            rubric_covered: Vec::new(),
            rubric_missed: Vec::new(),
            source: "pool".into(),
            follow_up: None,
        });
        let text = match lead_in {
            Some(l) => format!("{l} {}", q.text),
            None => q.text.clone(),
        };
        self.interviewer(idx + 1, "question", &text, "pool")
    }

    async fn start(&mut self) -> Result<(), ActorProcessingErr> {
        let greeting = self.deps.templates.greeting(
            self.rec.track,
            &self.seed(),
            &self.rec.candidate.name,
            &self.rec.role,
        );
        let mut events = vec![self.interviewer(0, "greeting", &greeting, "template")];
        if self.rec.questions.is_empty() {
            return self.finish(Phase::Completed, events).await;
        }
        events.push(self.question_event(0, None));
        self.rec.current = 0;
        self.rec.phase = Phase::AwaitingAnswer;
        self.emit(events).await
    }

    fn use_llm(&self) -> Option<Pool> {
        match self.rec.mode.as_str() {
            "economy" => None,
            _ => self.deps.pool.clone().filter(Pool::has_llm),
        }
    }

    async fn on_answer(
        &mut self,
        myself: &ActorRef<SessionMsg>,
        text: String,
        audio: Option<f64>,
    ) -> Result<(), ActorProcessingErr> {
        if self.rec.phase != Phase::AwaitingAnswer {
            let msg = if self.rec.phase.is_finished() {
                "the interview is finished"
            } else {
                "no question is open: wait for the next question"
            };
            self.send_ephemeral(&error_event(&self.rec, "no_open_question", msg));
            return Ok(());
        }
        let text = text.trim().to_string();
        if text.is_empty() {
            self.send_ephemeral(&error_event(
                &self.rec,
                "empty_answer",
                "the answer is empty",
            ));
            return Ok(());
        }
        if self.deps.test_hooks && text == "__panic__" {
            // Test hook: proves a panicking session is restarted from its log.
            #[allow(clippy::panic)]
            {
                panic!("test hook: session panic requested");
            }
        }
        let idx = self.rec.current;
        let Some(item) = self.rec.items.get_mut(idx) else {
            return Err(format!("no item for question {idx}").into());
        };
        let (question, rubric) = match (self.rec.in_follow_up, &mut item.follow_up) {
            (true, Some(f)) => {
                f.answer = Some(text.clone());
                (f.question.clone(), self.rec.questions[idx].rubric.clone())
            }
            _ => {
                item.answer = Some(text.clone());
                item.audio_duration_s = audio;
                (
                    item.question.clone(),
                    self.rec.questions[idx].rubric.clone(),
                )
            }
        };
        self.rec.phase = Phase::Evaluating;
        // The answer is durable before any work on it: a crash from here re-runs the evaluation.
        self.emit(Vec::new()).await?;
        self.evaluate(myself, question, rubric, text);
        Ok(())
    }

    /// Evaluates in a task (provider) or inline (heuristic); the outcome arrives as `Evaluated`.
    fn evaluate(
        &self,
        myself: &ActorRef<SessionMsg>,
        question: String,
        rubric: Vec<String>,
        answer: String,
    ) {
        let heuristic = move |question: &str, rubric: &[String], answer: &str| {
            let s = scoring::heuristic(rubric, question, answer);
            EvalOutcome {
                score: s.score,
                feedback: String::new(),
                reaction: None,
                covered: s.covered,
                missed: s.missed,
                source: "heuristic".into(),
            }
        };
        let Some(pool) = self.use_llm() else {
            let _ = myself.cast(SessionMsg::Evaluated(heuristic(
                &question, &rubric, &answer,
            )));
            return;
        };
        let role = self.rec.role.clone();
        let deadline = self.deps.eval_deadline;
        let me = myself.clone();
        let affinity = self.rec.id.clone();
        let (stats, mode) = (self.deps.stats.clone(), self.rec.mode.clone());
        let eval_cache = self.deps.cache.clone();
        tokio::spawn(async move {
            // The same answer (normalized) to the same question was graded by a provider before.
            let key = cache::key(&["evaluation", &question, &answer]);
            if let Some(c) = &eval_cache {
                let hit = c.get(CacheKind::Evaluation, &key, None).await;
                if let Some(ev) = hit.and_then(|j| serde_json::from_str::<LlmEvaluation>(&j).ok()) {
                    let _ = me.cast(SessionMsg::Evaluated(EvalOutcome::from_llm(
                        ev,
                        &rubric,
                        "cache".into(),
                    )));
                    return;
                }
            }
            let req = prompts::evaluation_request(&question, &rubric, &answer, &role);
            let mut avoid: Option<String> = None;
            for _ in 0..2 {
                let opts = CallOptions {
                    deadline,
                    avoid_key: avoid.clone(),
                    affinity: Some(affinity.clone()),
                    ..CallOptions::default()
                };
                let result = pool.complete(&req, opts).await;
                // Calls that reached a provider or node (admission refusals are not calls).
                let trail = match &result {
                    Ok(d) => d.trail.as_slice(),
                    Err(e) => e.trail(),
                };
                let calls = trail.iter().filter(|a| a.called).count();
                stats.count_calls(&mode, calls as u64);
                match result {
                    Ok(done) => match prompts::parse_evaluation(&done.response.text, &rubric) {
                        Some(ev) => {
                            if let (Some(c), Ok(j)) = (&eval_cache, serde_json::to_string(&ev)) {
                                c.put_detached(CacheKind::Evaluation, &key, j);
                            }
                            let _ = me.cast(SessionMsg::Evaluated(EvalOutcome::from_llm(
                                ev,
                                &rubric,
                                done.source.clone(),
                            )));
                            return;
                        }
                        None => {
                            tracing::warn!(key = %done.key, "evaluation output unusable; retrying on another key");
                            avoid = Some(done.key);
                        }
                    },
                    Err(e) => {
                        tracing::info!(error = %e, "no provider evaluation; using the rubric scorer");
                        break;
                    }
                }
            }
            let _ = me.cast(SessionMsg::Evaluated(heuristic(
                &question, &rubric, &answer,
            )));
        });
    }

    async fn on_evaluated(
        &mut self,
        myself: &ActorRef<SessionMsg>,
        ev: EvalOutcome,
    ) -> Result<(), ActorProcessingErr> {
        if self.rec.phase != Phase::Evaluating {
            return Ok(());
        }
        let idx = self.rec.current;
        let turn = idx + 1;
        let seed = self.seed();
        let band = Band::of(ev.score);
        let slot = turn as u32 * 2 + u32::from(self.rec.in_follow_up);
        let feedback = if ev.feedback.trim().is_empty() {
            self.deps
                .templates
                .feedback(band, &seed, slot, &ev.covered, &ev.missed)
        } else {
            ev.feedback.clone()
        };
        let was_follow_up = self.rec.in_follow_up;
        let Some(item) = self.rec.items.get_mut(idx) else {
            return Err(format!("no item for question {idx}").into());
        };
        if was_follow_up {
            if let Some(f) = item.follow_up.as_mut() {
                f.score = Some(ev.score);
            }
        } else {
            item.score = Some(ev.score);
            item.feedback = feedback.clone();
            item.rubric_covered = ev.covered.clone();
            item.rubric_missed = ev.missed.clone();
            item.source = ev.source.clone();
        }
        let mut events = vec![json!({
            "type": "evaluation", "turn": turn, "score": ev.score, "feedback": feedback, "source": ev.source,
        })];
        let (reaction, rsrc) = match &ev.reaction {
            Some(r) => (r.clone(), ev.source.clone()),
            None => (
                // Slot 2t for the question, 2t+1 for its follow-up: consecutive slots of one list
                // are different variants, so one turn never shows the same reaction twice.
                self.deps
                    .templates
                    .acknowledgement(band, &seed, slot, &self.rec.candidate.name),
                "template".to_string(),
            ),
        };
        events.push(self.interviewer(turn, "reaction", &reaction, &rsrc));

        // A follow-up when the answer was partial, at most one per question and a third of the questions.
        let max_follow_ups = (self.rec.questions.len() as u32).div_ceil(3);
        let wants_follow_up = !was_follow_up
            && (3..=6).contains(&ev.score)
            && self.rec.follow_ups_asked < max_follow_ups;
        if wants_follow_up {
            if self.rec.mode == "adaptive" {
                if let Some(pool) = self.use_llm() {
                    self.emit(events).await?;
                    self.stream_follow_up(myself, pool, idx);
                    return Ok(());
                }
            }
            if let Some(fq) = self.rec.questions[idx].follow_ups.first().cloned() {
                let lead = self
                    .deps
                    .templates
                    .transition(Transition::FollowUp, &seed, turn as u32);
                events.push(self.interviewer(turn, "follow_up", &format!("{lead} {fq}"), "pool"));
                self.open_follow_up(idx, fq);
                return self.emit(events).await;
            }
        }
        self.advance(events).await
    }

    fn open_follow_up(&mut self, idx: usize, question: String) {
        if let Some(item) = self.rec.items.get_mut(idx) {
            item.follow_up = Some(FollowUpItem {
                question,
                answer: None,
                score: None,
            });
        }
        self.rec.in_follow_up = true;
        self.rec.follow_ups_asked += 1;
        self.rec.phase = Phase::AwaitingAnswer;
    }

    /// Streams an LLM follow-up question as `interviewer_delta` pieces (ephemeral), then `FollowUpReady`.
    fn stream_follow_up(&mut self, myself: &ActorRef<SessionMsg>, pool: Pool, idx: usize) {
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
        let affinity = self.rec.id.clone();
        let (stats, mode) = (self.deps.stats.clone(), self.rec.mode.clone());
        let deadline = self.deps.eval_deadline;
        let task = tokio::spawn(async move {
            let opts = CallOptions {
                deadline,
                affinity: Some(affinity),
                ..CallOptions::default()
            };
            let opened = pool.stream(&req, opts).await;
            let trail = match &opened {
                Ok(s) => s.trail.as_slice(),
                Err(e) => e.trail(),
            };
            stats.count_calls(&mode, trail.iter().filter(|a| a.called).count() as u64);
            let (text, source) = match opened {
                Ok(mut s) => {
                    let source = s.source.clone();
                    while let Some(item) = s.stream.next().await {
                        match item {
                            Ok(StreamChunk::Delta(d)) => {
                                buf.lock().unwrap_or_else(|p| p.into_inner()).push_str(&d);
                                let ev = json!({"type": "interviewer_delta", "seq": seq, "ephemeral": true, "turn": turn, "delta": d});
                                let c = conn.lock().unwrap_or_else(|p| p.into_inner()).clone();
                                if let Some(c) = c.filter(ConnHandle::is_live) {
                                    c.send(Outbound::Text(Arc::from(ev.to_string())));
                                }
                            }
                            Ok(StreamChunk::Done { .. }) => break,
                            Err(_) => break,
                        }
                    }
                    let text = buf
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .trim()
                        .to_string();
                    if text.is_empty() {
                        (fallback, "pool".to_string())
                    } else {
                        (text, source)
                    }
                }
                Err(_) => (fallback, "pool".to_string()),
            };
            let _ = me.cast(SessionMsg::FollowUpReady { text, source });
        });
        self.stream = Some((task, partial));
        self.rec.phase = Phase::Evaluating;
    }

    async fn on_follow_up_ready(
        &mut self,
        text: String,
        source: String,
    ) -> Result<(), ActorProcessingErr> {
        self.stream = None;
        if self.rec.phase != Phase::Evaluating {
            return Ok(());
        }
        let idx = self.rec.current;
        if text.trim().is_empty() {
            return self.advance(Vec::new()).await;
        }
        let ev = self.interviewer(idx + 1, "follow_up", &text, &source);
        self.open_follow_up(idx, text);
        self.emit(vec![ev]).await
    }

    /// Next question, or the closing and report after the last one.
    async fn advance(&mut self, mut events: Vec<Value>) -> Result<(), ActorProcessingErr> {
        self.rec.in_follow_up = false;
        let next = self.rec.current + 1;
        if next >= self.rec.questions.len() {
            return self.finish(Phase::Completed, events).await;
        }
        let seed = self.seed();
        let kind = if next + 1 == self.rec.questions.len() {
            Transition::Last
        } else {
            Transition::Next
        };
        let lead = self.deps.templates.transition(kind, &seed, next as u32 + 1);
        events.push(self.question_event(next, Some(lead)));
        self.rec.current = next;
        self.rec.phase = Phase::AwaitingAnswer;
        self.emit(events).await
    }

    async fn finish(
        &mut self,
        phase: Phase,
        mut events: Vec<Value>,
    ) -> Result<(), ActorProcessingErr> {
        if let Some((task, _)) = self.stream.take() {
            task.abort();
        }
        self.deps.stats.count_completed(&self.rec.mode);
        let seed = self.seed();
        let kind = match phase {
            Phase::EndedEarly => Closing::EarlyEnd,
            Phase::Expired => Closing::Expired,
            _ => Closing::Completed,
        };
        let closing = self
            .deps
            .templates
            .closing(kind, &seed, &self.rec.candidate.name);
        events.push(self.interviewer(
            self.rec.questions.len() + 1,
            "closing",
            &closing,
            "template",
        ));
        self.rec.phase = phase;
        self.rec.in_follow_up = false;
        let started = chrono::DateTime::from_timestamp_millis(self.rec.created_ms)
            .unwrap_or_default()
            .to_rfc3339();
        let finished = chrono::Utc::now().to_rfc3339();
        let report = report::build(&ReportInput {
            interview_id: &self.rec.id,
            candidate_id: &self.rec.candidate.id,
            candidate_name: &self.rec.candidate.name,
            role: &self.rec.role,
            track: self.rec.track,
            difficulty: self.rec.difficulty,
            mode: &self.rec.mode,
            state: phase.as_str(),
            started_at: &started,
            finished_at: &finished,
            items: &self.rec.items,
            seed: &seed,
        });
        self.rec.report = Some(report.to_string());
        events.push(json!({"type": "report", "report": report}));
        self.emit(events).await
    }

    async fn on_client(
        &mut self,
        myself: &ActorRef<SessionMsg>,
        conn_id: u64,
        msg: ClientMsg,
    ) -> Result<(), ActorProcessingErr> {
        let current = self.conn();
        if current.as_ref().map(|c| c.id) != Some(conn_id) {
            return Ok(()); // a replaced connection's late message
        }
        match msg {
            ClientMsg::Ping => {
                self.send_ephemeral(
                    &json!({"type": "pong", "seq": self.rec.last_seq(), "ephemeral": true}),
                );
            }
            ClientMsg::Resume { last_seq } => {
                if let Some(c) = current {
                    if c.is_live() {
                        // A second resume on a live connection: what was sent live is not sent twice.
                        self.replay(&c, last_seq.max(c.sent_upto()))?;
                    } else {
                        // The actor sends nothing between the replay and going live, so the
                        // connection's stream stays in order.
                        self.replay(&c, last_seq)?;
                        c.set_live();
                    }
                }
            }
            ClientMsg::Answer {
                text,
                audio_duration_s,
            } => {
                self.on_answer(myself, text, audio_duration_s).await?;
            }
            ClientMsg::End => {
                if self.rec.phase.is_finished() {
                    self.send_ephemeral(&error_event(
                        &self.rec,
                        "interview_finished",
                        "the interview is already finished",
                    ));
                } else {
                    self.finish(Phase::EndedEarly, Vec::new()).await?;
                }
            }
            ClientMsg::Interrupt => {
                if let Some((task, partial)) = self.stream.take() {
                    task.abort();
                    let text = partial
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .trim()
                        .to_string();
                    let text = if text.is_empty() {
                        self.rec.questions[self.rec.current]
                            .follow_ups
                            .first()
                            .cloned()
                            .unwrap_or_default()
                    } else {
                        format!("{text}…")
                    };
                    self.on_follow_up_ready(text, "llm:interrupted".into())
                        .await?;
                }
            }
        }
        Ok(())
    }
}

#[ractor::async_trait]
impl Actor for InterviewSession {
    type Msg = SessionMsg;
    type State = SessionState;
    type Arguments = SessionArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<SessionMsg>,
        args: SessionArgs,
    ) -> Result<SessionState, ActorProcessingErr> {
        let state = SessionState {
            rec: args.record,
            deps: args.deps,
            conn: args.conn,
            stream: None,
        };
        myself.send_interval(Duration::from_secs(30).min(state.deps.idle_timeout), || {
            SessionMsg::IdleCheck
        });
        if args.restarted {
            if let Some(c) = state.conn() {
                // The client carries on: tell it, and send whatever it has not seen.
                c.send(Outbound::Text(Arc::from(
                    error_event(&state.rec, "session_restarted", "the interview recovered from an internal error; if your last answer got no reply, send it again").to_string(),
                )));
                if c.is_live() {
                    state.replay(&c, c.sent_upto())?;
                }
            }
        }
        // A crash during an evaluation left the answer stored: evaluate it again. A crash while a
        // follow-up was streaming (main answer already scored) moves on to the next question.
        if state.rec.phase == Phase::Evaluating {
            let idx = state.rec.current;
            if let Some(item) = state.rec.items.get(idx) {
                let rubric = state.rec.questions[idx].rubric.clone();
                match (&item.follow_up, state.rec.in_follow_up) {
                    (Some(f), true) => {
                        let a = f.answer.clone().unwrap_or_default();
                        state.evaluate(&myself, f.question.clone(), rubric, a);
                    }
                    _ if item.score.is_some() => {
                        let _ = myself.cast(SessionMsg::FollowUpReady {
                            text: String::new(),
                            source: "pool".into(),
                        });
                    }
                    _ => {
                        let a = item.answer.clone().unwrap_or_default();
                        state.evaluate(&myself, item.question.clone(), rubric, a);
                    }
                }
            }
        }
        Ok(state)
    }

    async fn handle(
        &self,
        myself: ActorRef<SessionMsg>,
        msg: SessionMsg,
        state: &mut SessionState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            SessionMsg::Attach(conn, reply) => {
                if state.rec.last_seq() == 0 {
                    conn.set_live(); // nothing to catch up on: the greeting goes out live
                }
                let old = {
                    let mut slot = state.conn.lock().unwrap_or_else(|p| p.into_inner());
                    slot.replace(conn.clone())
                };
                if let Some(old) = old.filter(|o| o.id != conn.id) {
                    old.send(Outbound::Close(
                        "replaced by a newer connection to this interview".into(),
                    ));
                }
                let _ = reply.send(state.rec.ready_event());
                if state.rec.phase == Phase::Created {
                    state.start().await?;
                }
            }
            SessionMsg::Detach(id) => {
                let mut slot = state.conn.lock().unwrap_or_else(|p| p.into_inner());
                if slot.as_ref().is_some_and(|c| c.id == id) {
                    *slot = None;
                }
                let finished = state.rec.phase.is_finished();
                drop(slot);
                if finished {
                    myself.stop(Some("finished and detached".into()));
                }
            }
            SessionMsg::Client(conn_id, m) => state.on_client(&myself, conn_id, m).await?,
            SessionMsg::Evaluated(ev) => state.on_evaluated(&myself, ev).await?,
            SessionMsg::FollowUpReady { text, source } => {
                state.on_follow_up_ready(text, source).await?
            }
            SessionMsg::IdleCheck => {
                let idle = Duration::from_millis(
                    u64::try_from(now_ms() - state.rec.updated_ms).unwrap_or(0),
                );
                if idle >= state.deps.idle_timeout {
                    if !state.rec.phase.is_finished() {
                        state.finish(Phase::Expired, Vec::new()).await?;
                    }
                    if let Some(c) = state.conn() {
                        c.send(Outbound::Close("interview closed after inactivity".into()));
                    }
                    myself.stop(Some("idle".into()));
                }
            }
            SessionMsg::View(reply) => {
                let _ = reply.send(state.rec.clone());
            }
        }
        Ok(())
    }
}
