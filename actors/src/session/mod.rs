//! `InterviewSession`: one actor per live interview. It owns the interview's record and runs the state
//! machine greeting → (question → answer → evaluation → follow-up?)* → closing → (reporting) → report.
//!
//! Every step commits the new events, then the record, to the session log and flushes before anything
//! is sent, so a crash, a panic or a dropped socket loses nothing: the record is the whole state, and
//! `resume {last_seq}` replays the log. Provider calls run in spawned tasks (each bounded in time) and
//! come back as messages (`tasks.rs`), so the actor always answers `resume`, `end` and `interrupt` at once.
//!
//! How much of the interview uses providers is its level (`budget.rs`), decided again before each
//! turn: heuristic (none), economy (one batched evaluation at the end), balanced (one evaluation per
//! answer), adaptive (also the greeting, a question on a resume topic and follow-ups). Greetings,
//! generated questions, evaluations and coach notes go through the cache.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use serde_json::{json, Value};

use crate::budget::{Budget, Level};
use crate::cache::{self, Cache, CacheKind};
use crate::clock::Clock;
use crate::conn::{ConnHandle, ConnSlot, Outbound};
use crate::content::grading::{self, Grader, Target};
use crate::content::prompts::{self, LlmEvaluation};
use crate::content::question_pool::{Category, Question};
use crate::content::report::{self, FollowUpItem, ReportInput, ReportItem};
use crate::content::scoring::{Note, PointGrade, Semantic};
use crate::content::templates::{Ack, Closing, Feedback, Templates, Transition};
use crate::content::Verdict;
use crate::interview::{InterviewRecord, Phase};
use crate::pool::Pool;
use crate::protocol::{ClientMessage, ErrorCode, LineKind, ServerEvent};
use crate::stats::{OptimizationStats, Source};
use crate::storage::SessionLog;

mod tasks;
mod voice;

pub use voice::{SpokenAnswer, VoiceDeps, VoiceEvent};

use tasks::{bounded, task_limit};

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
    /// Reuse cache: evaluations of the same answer to the same question, greetings per role and
    /// track, coach notes per result profile.
    pub cache: Option<Cache>,
    /// The call budget: the level of LLM work each turn may use.
    pub budget: Arc<Budget>,
    /// One in-memory copy of each question, shared by the live sessions that ask it.
    pub questions: Arc<crate::content::question_pool::QuestionInterner>,
    /// Voice: the interviewer's speech and the quiet-candidate re-prompt (none: text only).
    pub voice: Option<Arc<VoiceDeps>>,
    /// A session with nobody connected and nothing answered leaves memory after this long
    /// (`limits.pending_ttl_s`); its record stays, and a connection brings it back.
    pub pending_ttl: Duration,
    /// A session waiting this long for its candidate's answer, with no work of its own in flight,
    /// hibernates (`interview.hibernate_after_s`; `None`: never): its actor and record leave memory,
    /// the supervisor keeps its connection, and the next message brings it back from the log.
    pub hibernate_after: Option<Duration>,
    /// Live sessions on this node and how many may be.
    pub live: Arc<crate::supervisor::LiveSessions>,
    /// Cluster mode: the interview leases and the shared log in Redis (`None`: a single node).
    pub cluster: Option<Arc<crate::cluster::ClusterSessions>>,
    /// The rubric scorer's optional semantic signal (an embeddings server), when configured.
    pub embedder: Option<Arc<crate::embedder::Embedder>>,
}

/// A client message, as parsed by the connection (`protocol::parse`).
pub type ClientMsg = ClientMessage;

/// Held while the session handles one client message: the connection has only so many permits, so a
/// client that sends faster than its session works waits (its socket is not read) instead of filling
/// the session's mailbox.
pub type Permit = tokio::sync::OwnedSemaphorePermit;

/// Result of an evaluation task.
#[derive(Debug, Clone)]
pub struct EvalOutcome {
    score: u8,
    feedback: String,
    reaction: Option<String>,
    covered: Vec<String>,
    missed: Vec<String>,
    source: String,
    /// Every point of the target: its phrase, covered or not, the candidate's words.
    points: Vec<PointGrade>,
    /// What the rubric scorer noticed about the answer's shape (empty for a model's grade).
    notes: Vec<Note>,
    grader: Grader,
    /// Whether every point has an authored noun phrase (else feedback lists the points).
    nouns: bool,
}

impl EvalOutcome {
    /// A model's grade (fresh or from the cache) against the target's points.
    fn from_llm(ev: LlmEvaluation, target: &Target, source: String) -> Self {
        let rubric = target.rubric();
        let missed = rubric
            .iter()
            .filter(|r| !ev.rubric_covered.contains(r))
            .cloned()
            .collect();
        EvalOutcome {
            score: ev.score,
            feedback: ev.feedback,
            reaction: Some(ev.reaction).filter(|r| !r.trim().is_empty()),
            points: grading::model_points(&target.points, &ev.rubric_covered),
            covered: ev.rubric_covered,
            missed,
            source,
            notes: Vec::new(),
            grader: Grader::Model,
            nouns: target.points.iter().all(|p| p.noun),
        }
    }

    /// The rubric scorer's grade of `answer` against the target (with the semantic signal when
    /// there is one).
    fn from_rubric(target: &Target, answer: &str, semantic: Option<&Semantic>) -> Self {
        let g = target.grade_with(answer, semantic);
        EvalOutcome {
            score: g.score,
            feedback: String::new(),
            reaction: None,
            covered: g.covered,
            missed: g.missed,
            source: "heuristic".into(),
            points: g.points,
            notes: g.notes,
            grader: Grader::Rubric,
            nouns: target.points.iter().all(|p| p.noun),
        }
    }

    /// What the interviewer reacts to.
    fn ack(&self) -> Ack {
        if self.score == 0 || self.notes.contains(&Note::OffTopic) {
            Ack::Empty
        } else {
            Ack::Graded(Verdict::of(self.score))
        }
    }
}

/// Messages of the session actor.
pub enum SessionMsg {
    /// A connection attaches (replacing any earlier one); replies with the `ready` event.
    Attach(ConnHandle, RpcReplyPort<Value>),
    /// A connection went away.
    Detach(u64),
    /// A message from the client on connection `u64`, with the connection's permit (released when
    /// the message has been handled).
    Client(u64, ClientMsg, Option<Permit>),
    /// What the voice input of connection `u64` heard.
    Voice(u64, VoiceEvent),
    /// An evaluation finished.
    Evaluated(EvalOutcome),
    /// A streamed follow-up question finished (or was interrupted).
    FollowUpReady {
        /// The text.
        text: String,
        /// Its source.
        source: String,
    },
    /// The opening line is ready (generated, cached, or the template after a failure).
    Greeted {
        /// The text, name filled in.
        text: String,
        /// Its source.
        source: String,
    },
    /// A generated question is ready (or `None`: the planned pool question stays).
    QuestionReady {
        /// Its index.
        idx: usize,
        /// The resume topic it is about.
        topic: String,
        /// The question.
        question: Option<prompts::GeneratedQuestion>,
        /// Its source.
        source: String,
    },
    /// The end-of-interview work finished: batched grades by item index, and the coach note.
    Reported(ReportWork),
    /// Check for inactivity.
    IdleCheck,
    /// A copy of the record.
    View(RpcReplyPort<InterviewRecord>),
}

/// What the end-of-interview task produced.
#[derive(Debug, Clone, Default)]
pub struct ReportWork {
    /// Batched evaluations: (item index, grade).
    pub graded: Vec<(usize, LlmEvaluation)>,
    /// The source of the batched grades.
    pub graded_source: String,
    /// The coach note and its source.
    pub note: Option<(String, String)>,
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
    /// A generated greeting is on its way (not durable: a restart simply asks again).
    greeting_pending: bool,
    /// Voice state of this session (speaker, re-prompt, activity).
    voice: voice::VoiceState,
    /// The seq of the open prompt (the last question or follow-up event logged): an answer that
    /// names another `seq` is stale. Found again in the log's tail after a restart.
    prompt_seq: u64,
    /// Since when nobody is connected (None while a connection is attached).
    detached_since: Option<std::time::Instant>,
    /// Stopping to hibernate: the interview goes on, so its quota reservation is kept.
    hibernating: bool,
}

/// The stop reason of a session that hibernates (the supervisor keeps its place and connection): a
/// hibernating session drains its mailbox (ractor's `drain`), and ractor stops a drained actor with
/// this reason. (`tests/hibernate.rs` fails if a ractor release names it otherwise.)
pub const HIBERNATE: &str = "Drained";

/// The session actor.
pub struct InterviewSession;

fn now_ms() -> i64 {
    Clock::wall().timestamp_millis()
}

/// The seq of the last prompt in the interview's log (looked for among its last few events).
fn last_prompt_seq(log: &dyn SessionLog, rec: &InterviewRecord) -> u64 {
    let last = rec.last_seq();
    log.events_after(&rec.id, last.saturating_sub(8), last)
        .unwrap_or_default()
        .into_iter()
        .rev()
        .find(|(_, text)| serde_json::from_str::<ServerEvent>(text).is_ok_and(|e| e.is_prompt()))
        .map_or(0, |(seq, _)| seq)
}

impl SessionState {
    fn conn(&self) -> Option<ConnHandle> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Sends an ephemeral event (with the last logged seq) to the connection, if any.
    fn send_ephemeral(&self, ev: ServerEvent) {
        if let Some(c) = self.conn() {
            let text = ev.ephemeral_text(Some(self.rec.last_seq()));
            c.send(Outbound::Text(Arc::from(text)));
        }
    }

    /// Sends an `error` event (ephemeral) to the connection, if any.
    fn send_error(&self, code: ErrorCode, message: &str) {
        self.send_ephemeral(ServerEvent::Error {
            code,
            message: message.to_string(),
        });
    }

    fn seed(&self) -> String {
        self.rec.id.clone()
    }

    /// The first connection admits the interview: its level is decided and its share of the day's
    /// quota reserved now, not at creation, so interviews nobody opens hold nothing.
    fn admit(&mut self) {
        let d = self.deps.budget.admit(
            &self.rec.id,
            self.rec.mode.ceiling(),
            self.rec.questions.len(),
        );
        self.rec.level = d.level;
        self.rec.steps = d.step.into_iter().collect();
    }

    /// Whether nothing was answered yet.
    fn unanswered(&self) -> bool {
        self.rec
            .items
            .iter()
            .all(|i| i.answer.is_none() && i.follow_up.as_ref().is_none_or(|f| f.answer.is_none()))
    }

    /// Whether this session has waited long enough, with nobody connected and nothing answered,
    /// to leave memory (it comes back from its record when someone connects).
    fn pending_expired(&self) -> bool {
        matches!(self.rec.phase, Phase::Created | Phase::AwaitingAnswer)
            && self.unanswered()
            && self
                .detached_since
                .is_some_and(|t| Clock::since(t) >= self.deps.pending_ttl)
    }

    /// Whether the session may hibernate now: it waits for the candidate's answer (or a connection),
    /// nothing of its own is in flight, it does not speak, and it has been idle long enough (but not
    /// so long that its idle timeout came: then it closes instead).
    fn may_hibernate(&self) -> bool {
        let Some(after) = self.deps.hibernate_after else {
            return false;
        };
        let idle_ms = now_ms().saturating_sub(self.rec.updated_ms);
        self.rec.phase == Phase::AwaitingAnswer
            && self.stream.is_none()
            && !self.greeting_pending
            && self.voice.is_quiet()
            && u128::try_from(idle_ms).unwrap_or(0) >= after.as_millis()
            && u128::try_from(idle_ms).unwrap_or(0) < self.deps.idle_timeout.as_millis()
    }

    /// Numbers `events`, commits them with the record, flushes, then sends them.
    async fn emit(&mut self, events: Vec<ServerEvent>) -> Result<(), ActorProcessingErr> {
        let sources: Vec<Source> = events
            .iter()
            .filter_map(|e| e.source().and_then(Source::of))
            .collect();
        let lines = self.lines_to_speak(&events);
        let mut logged = Vec::with_capacity(events.len());
        let mut prompt = None;
        for ev in events {
            let seq = self.rec.next_seq;
            self.rec.next_seq += 1;
            if ev.is_prompt() {
                prompt = Some(seq);
            }
            if matches!(ev, ServerEvent::Report { .. }) {
                // The report is stored once, as this event; the record points at it.
                self.rec.report_seq = Some(seq);
            }
            logged.push((seq, ev.logged(seq).to_string()));
        }
        self.rec.updated_ms = now_ms();
        self.deps.log.commit(&mut self.rec, &logged)?;
        self.deps.log.flush().await?;
        // Cluster mode: in the shared log too, with this node's fencing token, before it is sent
        // (refused if another node took the interview over: the session stops, nothing is sent).
        if let Some(c) = &self.deps.cluster {
            c.append(&self.rec, &logged).await?;
        }
        if let Some(p) = prompt {
            self.prompt_seq = p;
        }
        for s in sources {
            self.deps.stats.count_source(s);
        }
        let conn = self.conn();
        if let Some(c) = &conn {
            c.set_logged(self.rec.last_seq());
        }
        if let Some(c) = conn.filter(ConnHandle::is_live) {
            for (seq, text) in logged {
                if !c.send_logged(seq, Arc::from(text)) {
                    break;
                }
            }
            self.speak(lines);
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

    fn interviewer(&self, turn: usize, kind: LineKind, text: &str, source: &str) -> ServerEvent {
        ServerEvent::Interviewer {
            turn,
            kind,
            text: text.to_string(),
            source: source.to_string(),
        }
    }

    fn question_event(&mut self, idx: usize, lead_in: Option<String>, source: &str) -> ServerEvent {
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
        self.interviewer(idx + 1, LineKind::Question, &text, source)
    }

    /// A model's own feedback, else written feedback from the templates (variant `slot`): the points
    /// as noun phrases and a note on the answer's shape.
    fn feedback_for(&self, ev: &EvalOutcome, slot: u32) -> String {
        if ev.grader == Grader::Model && !ev.feedback.trim().is_empty() {
            return ev.feedback.clone();
        }
        let (covered, missing) = grading::phrases(&ev.points);
        let fb = Feedback {
            verdict: Verdict::of(ev.score),
            covered: &covered,
            missing: &missing,
            notes: &ev.notes,
        };
        if ev.nouns {
            self.deps.templates.feedback(&fb, &self.seed(), slot)
        } else {
            self.deps.templates.feedback_as_lists(&fb)
        }
    }

    /// What the open answer of question `idx` is graded against (its follow-up's when one is open).
    fn target(&self, idx: usize) -> Option<Target> {
        let q = self.rec.questions.get(idx)?;
        let item = self.rec.items.get(idx)?;
        Some(match (&item.follow_up, self.rec.in_follow_up) {
            (Some(f), true) => grading::follow_up_target(q, &f.question, &item.rubric_missed),
            _ => grading::main_target(q),
        })
    }

    /// The `evaluation` event of a grade.
    fn evaluation_event(&self, turn: usize, ev: &EvalOutcome, feedback: &str) -> ServerEvent {
        ServerEvent::Evaluation {
            turn,
            score: ev.score,
            feedback: feedback.to_string(),
            source: ev.source.clone(),
            band: Verdict::of(ev.score),
            graded_by: ev.grader,
            follow_up: self.rec.in_follow_up,
            points: ev.points.clone(),
        }
    }

    fn template_greeting(&self) -> String {
        self.deps.templates.greeting(
            self.rec.track,
            &self.seed(),
            &self.rec.candidate.name,
            &self.rec.role,
        )
    }

    /// Sends the greeting: from a template, or at the adaptive level a generated one (cached per role
    /// and track, a few variants kept) that arrives as `Greeted`.
    fn start(&mut self, myself: &ActorRef<SessionMsg>) {
        if self.greeting_pending {
            return;
        }
        let Some(pool) = self.llm_at(Level::Adaptive) else {
            let _ = myself.cast(SessionMsg::Greeted {
                text: self.template_greeting(),
                source: "template".into(),
            });
            return;
        };
        self.greeting_pending = true;
        let fallback = self.template_greeting();
        let track = format!("{:?}", self.rec.track).to_lowercase();
        let (role, name) = (self.rec.role.clone(), self.rec.candidate.name.clone());
        // The candidate is waiting for the first words: a slow provider gets a few seconds only.
        let ctx = self.task_ctx(pool, self.deps.eval_deadline.min(Duration::from_secs(5)));
        let me = myself.clone();
        tokio::spawn(async move {
            let key = cache::key(&["greeting", &role, &track]);
            let req = prompts::greeting_request(&role, &track);
            // Kept with its `{name}` placeholder, so one text serves every candidate.
            let parse = |t: &str| prompts::clean_line(t, 400).filter(|t| t.contains("{name}"));
            let made = ctx.cached_call(CacheKind::Greeting, &key, &req, 1, parse);
            let (text, source) = match bounded(task_limit(ctx.deadline, 1), made, "greeting").await
            {
                Some(Some((t, src))) => (t.replace("{name}", &name), src),
                _ => (fallback, "template".to_string()),
            };
            let _ = me.cast(SessionMsg::Greeted { text, source });
        });
    }

    async fn on_greeted(
        &mut self,
        myself: &ActorRef<SessionMsg>,
        greeting: String,
        source: String,
    ) -> Result<(), ActorProcessingErr> {
        self.greeting_pending = false;
        if self.rec.phase != Phase::Created {
            return Ok(());
        }
        let mut events = vec![self.interviewer(0, LineKind::Greeting, &greeting, &source)];
        if self.rec.questions.is_empty() {
            return self.finish(myself, Phase::Completed, events).await;
        }
        events.push(self.question_event(0, None, "pool"));
        self.rec.current = 0;
        self.rec.phase = Phase::AwaitingAnswer;
        self.emit(events).await
    }

    /// The pool, when the interview's level is at least `min` and any LLM is configured.
    fn llm_at(&self, min: Level) -> Option<Pool> {
        if self.rec.level < min {
            return None;
        }
        self.deps.pool.clone().filter(Pool::has_llm)
    }

    /// Per turn: the call budget decides this turn's level from the quota left (a step is logged,
    /// kept in the record and shown in status).
    fn decide_level(&mut self) {
        let total = self.rec.questions.len();
        let left = total.saturating_sub(self.rec.current);
        let d = self.deps.budget.turn(
            &self.rec.id,
            self.rec.mode.ceiling(),
            self.rec.level,
            self.rec.current as u32 + 1,
            (total, left),
        );
        if let Some(step) = d.step {
            self.rec.steps.push(step);
        }
        self.rec.level = d.level;
    }

    /// Whether an answer that names `turn` and/or `seq` answers the open prompt; else why not.
    /// An answer naming neither (a protocol version 1 client) answers whatever is open.
    fn stale_reason(&self, turn: Option<u32>, seq: Option<u64>) -> Option<String> {
        let open_turn = self.rec.current + 1;
        let what = if self.rec.in_follow_up {
            "follow-up"
        } else {
            "question"
        };
        if let Some(t) = turn.filter(|t| *t as usize != open_turn) {
            return Some(format!(
                "this answer is for turn {t}, but the open {what} is turn {open_turn}: nothing was recorded"
            ));
        }
        if let Some(s) = seq.filter(|s| *s != self.prompt_seq) {
            return Some(format!(
                "this answer is for the prompt with seq {s}, but the open {what} has seq {}: nothing was recorded",
                self.prompt_seq
            ));
        }
        None
    }

    /// Whether no question or follow-up is open (an answer or skip then gets `no_open_question`, and
    /// nothing changes).
    fn refused_unless_open(&self) -> bool {
        if self.rec.phase == Phase::AwaitingAnswer {
            return false;
        }
        let msg = if self.rec.phase.is_finished() {
            "the interview is finished"
        } else {
            "no question is open: wait for the next question"
        };
        self.send_error(ErrorCode::NoOpenQuestion, msg);
        true
    }

    async fn on_answer(
        &mut self,
        myself: &ActorRef<SessionMsg>,
        text: String,
        audio: Option<f64>,
        (turn, seq): (Option<u32>, Option<u64>),
        lead: Vec<ServerEvent>,
    ) -> Result<(), ActorProcessingErr> {
        if self.refused_unless_open() {
            return Ok(());
        }
        if let Some(why) = self.stale_reason(turn, seq) {
            self.send_error(ErrorCode::StaleAnswer, &why);
            return Ok(());
        }
        let text = text.trim().to_string();
        if text.is_empty() {
            self.send_error(ErrorCode::EmptyAnswer, "the answer is empty");
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
        match (self.rec.in_follow_up, &mut item.follow_up) {
            (true, Some(f)) => f.answer = Some(text.clone()),
            _ => {
                item.answer = Some(text.clone());
                item.audio_duration_s = audio;
            }
        }
        let target = self
            .target(idx)
            .ok_or_else(|| format!("no target for question {idx}"))?;
        if !self.rec.in_follow_up {
            self.decide_level();
        }
        self.take_spoken();
        self.rec.phase = Phase::Evaluating;
        // The answer is durable before any work on it: a crash from here re-runs the evaluation.
        self.emit(lead).await?;
        self.evaluate(myself, target, text);
        Ok(())
    }

    /// `skip`: the open question (or follow-up) is recorded as skipped and the interview moves on.
    async fn on_skip(
        &mut self,
        myself: &ActorRef<SessionMsg>,
        turn: Option<u32>,
    ) -> Result<(), ActorProcessingErr> {
        if self.refused_unless_open() {
            return Ok(());
        }
        let idx = self.rec.current;
        if turn.is_some_and(|t| t as usize != idx + 1) {
            self.send_error(
                ErrorCode::StaleAnswer,
                "that question is no longer open: the skip was not applied",
            );
            return Ok(());
        }
        let follow_up = self.rec.in_follow_up;
        if !follow_up {
            if let Some(item) = self.rec.items.get_mut(idx) {
                item.source = report::SKIPPED.into();
                item.score = None;
            }
            self.decide_level();
        }
        let slot = (idx as u32 + 1) * 2 + u32::from(follow_up);
        let reaction = self.deps.templates.acknowledgement(
            Ack::Skipped,
            &self.seed(),
            slot,
            &self.rec.candidate.name,
        );
        let events = vec![
            ServerEvent::Skipped {
                turn: idx + 1,
                follow_up,
            },
            self.interviewer(idx + 1, LineKind::Reaction, &reaction, "template"),
        ];
        self.advance(myself, events).await
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
        let slot = turn as u32 * 2 + u32::from(self.rec.in_follow_up);
        let feedback = self.feedback_for(&ev, slot);
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
        let mut events = vec![self.evaluation_event(turn, &ev, &feedback)];
        let (reaction, rsrc) = match &ev.reaction {
            Some(r) => (r.clone(), ev.source.clone()),
            None => (
                // Slot 2t for the question, 2t+1 for its follow-up: consecutive slots of one list
                // are different variants, so one turn never shows the same reaction twice.
                self.deps.templates.acknowledgement(
                    ev.ack(),
                    &seed,
                    slot,
                    &self.rec.candidate.name,
                ),
                "template".to_string(),
            ),
        };
        events.push(self.interviewer(turn, LineKind::Reaction, &reaction, &rsrc));

        // A follow-up when the answer was partial, at most one per question and a third of the questions.
        let max_follow_ups = (self.rec.questions.len() as u32).div_ceil(3);
        let wants_follow_up = !was_follow_up
            && (3..=6).contains(&ev.score)
            && self.rec.follow_ups_asked < max_follow_ups;
        if wants_follow_up {
            {
                if let Some(pool) = self.llm_at(Level::Adaptive) {
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
                events.push(self.interviewer(
                    turn,
                    LineKind::FollowUp,
                    &format!("{lead} {fq}"),
                    "pool",
                ));
                self.open_follow_up(idx, fq);
                return self.emit(events).await;
            }
        }
        self.advance(myself, events).await
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

    async fn on_follow_up_ready(
        &mut self,
        myself: &ActorRef<SessionMsg>,
        text: String,
        source: String,
    ) -> Result<(), ActorProcessingErr> {
        self.stream = None;
        if self.rec.phase != Phase::Evaluating {
            return Ok(());
        }
        let idx = self.rec.current;
        if text.trim().is_empty() {
            return self.advance(myself, Vec::new()).await;
        }
        let ev = self.interviewer(idx + 1, LineKind::FollowUp, &text, &source);
        // Spoken sentence by sentence while it streamed: not spoken a second time.
        self.voice.skip_follow_up = self.voice.streamed_aloud(&source);
        self.open_follow_up(idx, text);
        self.emit(vec![ev]).await
    }

    /// Next question, or the closing and report after the last one.
    async fn advance(
        &mut self,
        myself: &ActorRef<SessionMsg>,
        events: Vec<ServerEvent>,
    ) -> Result<(), ActorProcessingErr> {
        self.rec.in_follow_up = false;
        let next = self.rec.current + 1;
        if next >= self.rec.questions.len() {
            return self.finish(myself, Phase::Completed, events).await;
        }
        if let Some((pool, topic)) = self.generation_slot(next) {
            self.emit(events).await?;
            self.generate_question(myself, pool, next, topic);
            return Ok(());
        }
        self.ask(next, events, "pool").await
    }

    async fn on_question_ready(
        &mut self,
        idx: usize,
        topic: String,
        question: Option<prompts::GeneratedQuestion>,
        source: String,
    ) -> Result<(), ActorProcessingErr> {
        if self.rec.phase != Phase::Evaluating || self.rec.current + 1 != idx {
            return Ok(());
        }
        let source = match (question, self.rec.questions.get_mut(idx)) {
            (Some(g), Some(q)) => {
                *q = Arc::new(Question {
                    id: format!("gen-{}", &cache::key(&[&g.question])[..12]),
                    domain: "generated".into(),
                    category: match self.rec.difficulty {
                        crate::content::Difficulty::Easy => Category::TechnicalEasy,
                        crate::content::Difficulty::Medium => Category::TechnicalMedium,
                        crate::content::Difficulty::Hard => Category::TechnicalHard,
                    },
                    difficulty: self.rec.difficulty,
                    tags: vec![topic],
                    text: g.question,
                    rubric: g.rubric,
                    follow_ups: g.follow_up.into_iter().collect(),
                });
                source
            }
            _ => "pool".to_string(),
        };
        self.ask(idx, Vec::new(), &source).await
    }

    /// Asks question `next` (with its lead-in) after `events`.
    async fn ask(
        &mut self,
        next: usize,
        mut events: Vec<ServerEvent>,
        source: &str,
    ) -> Result<(), ActorProcessingErr> {
        let seed = self.seed();
        let kind = if next + 1 == self.rec.questions.len() {
            Transition::Last
        } else {
            Transition::Next
        };
        let lead = self.deps.templates.transition(kind, &seed, next as u32 + 1);
        events.push(self.question_event(next, Some(lead), source));
        self.rec.current = next;
        self.rec.phase = Phase::AwaitingAnswer;
        self.emit(events).await
    }

    /// Closes the interview: the closing goes out now; the report follows at once, or after the
    /// end-of-interview work (the economy level's batched evaluation and the coach note) when the
    /// level allows provider calls.
    async fn finish(
        &mut self,
        myself: &ActorRef<SessionMsg>,
        phase: Phase,
        mut events: Vec<ServerEvent>,
    ) -> Result<(), ActorProcessingErr> {
        if let Some((task, _)) = self.stream.take() {
            task.abort();
        }
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
            LineKind::Closing,
            &closing,
            "template",
        ));
        self.rec.in_follow_up = false;
        // An abandoned (expired) interview gets its report at once, without spending quota on it.
        let answered = self.rec.items.iter().any(|i| i.answer.is_some());
        if answered && phase != Phase::Expired && self.llm_at(Level::Economy).is_some() {
            self.rec.phase = Phase::Reporting;
            self.rec.ending = Some(phase);
            self.emit(events).await?;
            self.report_work(myself);
            return Ok(());
        }
        self.write_report(phase, events, ReportWork::default())
            .await
    }

    /// Applies the end-of-interview work and writes the report.
    async fn on_reported(
        &mut self,
        myself: &ActorRef<SessionMsg>,
        work: ReportWork,
    ) -> Result<(), ActorProcessingErr> {
        if self.rec.phase != Phase::Reporting {
            return Ok(());
        }
        let phase = self.rec.ending.take().unwrap_or(Phase::Completed);
        self.write_report(phase, Vec::new(), work).await?;
        if self.conn().is_none() {
            myself.stop(Some("finished and detached".into()));
        }
        Ok(())
    }

    async fn write_report(
        &mut self,
        phase: Phase,
        mut events: Vec<ServerEvent>,
        work: ReportWork,
    ) -> Result<(), ActorProcessingErr> {
        let seed = self.seed();
        let mut regraded = Vec::new();
        for (n, ev) in work.graded {
            let Some(target) = self.rec.questions.get(n).map(|q| grading::main_target(q)) else {
                continue;
            };
            regraded.push(n);
            let out = EvalOutcome::from_llm(ev, &target, work.graded_source.clone());
            // Slot 2t of turn t = n + 1, as when the question was graded live.
            let feedback = self.feedback_for(&out, n as u32 * 2 + 2);
            if let Some(item) = self.rec.items.get_mut(n) {
                item.score = Some(out.score);
                item.feedback = feedback;
                item.rubric_covered = out.covered;
                item.rubric_missed = out.missed;
                let live = std::mem::replace(&mut item.source, out.source.clone());
                // The live grade was counted when its event was sent: count the answer once.
                match (Source::of(&live), Source::of(&out.source)) {
                    (Some(from), Some(to)) => self.deps.stats.recount_source(from, to),
                    (None, Some(to)) => self.deps.stats.count_source(to),
                    _ => {}
                }
            }
        }
        self.grade_unscored(&seed);
        self.deps.stats.count_completed(self.rec.mode.as_str());
        self.deps.stats.count_completed_level(self.rec.level);
        self.deps.budget.release(&self.rec.id);
        self.rec.phase = phase;
        self.rec.ending = None;
        let started = chrono::DateTime::from_timestamp_millis(self.rec.created_ms)
            .unwrap_or_default()
            .to_rfc3339();
        let finished = Clock::wall().to_rfc3339();
        let mut report = report::build(&ReportInput {
            interview_id: &self.rec.id,
            candidate_id: &self.rec.candidate.id,
            candidate_name: &self.rec.candidate.name,
            role: &self.rec.role,
            track: self.rec.track,
            difficulty: self.rec.difficulty,
            mode: self.rec.mode.as_str(),
            state: phase.as_str(),
            started_at: &started,
            finished_at: &finished,
            items: &self.rec.items,
            seed: &seed,
            questions: &self.rec.questions,
            planned: self.rec.questions.len(),
            regraded: &regraded,
            regraded_by: &work.graded_source,
        });
        report["speaking"] = self.speaking_section(report["speaking"].take());
        report["level"] = json!(self.rec.level);
        report["level_steps"] = json!(self.rec.steps);
        report["coach_note"] = match &work.note {
            Some((text, source)) => {
                if let Some(src) = Source::of(source) {
                    self.deps.stats.count_source(src);
                }
                json!({"text": text, "source": source})
            }
            None => Value::Null,
        };
        self.rec.report = Some(report.to_string());
        events.push(ServerEvent::Report { report });
        self.emit(events).await
    }

    /// Answers that reached the session but have no grade yet (the interview ended while their
    /// evaluation ran, and no batched grade covered them) get the rubric scorer's grade, so the
    /// report never counts an answer without grading it.
    fn grade_unscored(&mut self, seed: &str) {
        for n in 0..self.rec.items.len() {
            let Some(q) = self.rec.questions.get(n).cloned() else {
                continue;
            };
            let item = &self.rec.items[n];
            if let (Some(answer), None) = (item.answer.clone(), item.score) {
                let out = EvalOutcome::from_rubric(&grading::main_target(&q), &answer, None);
                let feedback = self.feedback_for(&out, n as u32 * 2 + 2);
                let item = &mut self.rec.items[n];
                item.score = Some(out.score);
                item.feedback = feedback;
                item.rubric_covered = out.covered;
                item.rubric_missed = out.missed;
                item.source = out.source;
                if let Some(src) = Source::of(&item.source) {
                    self.deps.stats.count_source(src);
                }
            }
            let item = &self.rec.items[n];
            if let Some(f) = &item.follow_up {
                if let (Some(answer), None) = (f.answer.clone(), f.score) {
                    let t = grading::follow_up_target(&q, &f.question, &item.rubric_missed);
                    let score = t.grade(&answer).score;
                    if let Some(f) = self.rec.items[n].follow_up.as_mut() {
                        f.score = Some(score);
                    }
                }
            }
        }
        let _ = seed;
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
                self.send_ephemeral(ServerEvent::Pong);
            }
            ClientMsg::AudioEnd { .. } => {
                self.send_error(
                    ErrorCode::AudioUnsupported,
                    "speech-to-text is not configured on this server: send the answer as text",
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
                turn,
                seq,
                words,
            } => {
                if words.is_some() || audio_duration_s.is_some() {
                    // A voice pipeline's answer (its own speech-to-text): kept as a spoken answer.
                    let spoken = SpokenAnswer {
                        text,
                        audio_duration_s,
                        words: words.unwrap_or_default(),
                        word_times_exact: true,
                        transcribed_by: None,
                        stt_ms: None,
                        turn,
                        seq,
                    };
                    self.on_spoken(myself, spoken).await?;
                } else {
                    self.on_answer(myself, text, audio_duration_s, (turn, seq), Vec::new())
                        .await?;
                }
            }
            ClientMsg::AudioStart { .. } => {
                // Audio is taken by the connection's voice input when speech-to-text is configured.
                self.send_error(
                    ErrorCode::AudioUnsupported,
                    "speech-to-text is not configured on this server: send the answer as text",
                );
            }
            ClientMsg::TranscriptHint { .. } => self.on_speech_started(myself).await?,
            ClientMsg::Skip { turn } => self.on_skip(myself, turn).await?,
            ClientMsg::End => {
                if self.rec.phase.is_finished() || self.rec.phase == Phase::Reporting {
                    self.send_error(
                        ErrorCode::InterviewFinished,
                        "the interview is already finished",
                    );
                } else {
                    self.finish(myself, Phase::EndedEarly, Vec::new()).await?;
                }
            }
            ClientMsg::Interrupt => self.interrupt(myself).await?,
        }
        Ok(())
    }

    /// `interrupt` (or a barge-in): stops the interviewer's speech and a streaming follow-up, whose
    /// text so far becomes the question.
    async fn interrupt(&mut self, myself: &ActorRef<SessionMsg>) -> Result<(), ActorProcessingErr> {
        self.barge_in();
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
            self.on_follow_up_ready(myself, text, "llm:interrupted".into())
                .await?;
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
        let mut state = SessionState {
            rec: args.record,
            deps: args.deps,
            conn: args.conn,
            stream: None,
            greeting_pending: false,
            voice: voice::VoiceState::default(),
            prompt_seq: 0,
            detached_since: None,
            hibernating: false,
        };
        state.start_voice();
        if state.conn().is_none() {
            state.detached_since = Some(Clock::now());
        }
        if state.rec.phase == Phase::AwaitingAnswer {
            state.prompt_seq = last_prompt_seq(state.deps.log.as_ref(), &state.rec);
        }
        // A live interview holds its share of the day's quota again after a restart (one not yet
        // opened is admitted when its candidate connects).
        if !state.rec.phase.is_finished() && state.rec.phase != Phase::Created {
            let left = state.rec.questions.len().saturating_sub(state.rec.current);
            state
                .deps
                .budget
                .resume(&state.rec.id, state.rec.level, left);
        }
        myself.send_interval(state.idle_check_every(), || SessionMsg::IdleCheck);
        if args.restarted {
            if let Some(c) = state.conn() {
                // The client carries on: tell it, and send whatever it has not seen.
                c.set_logged(state.rec.last_seq());
                state.send_error(
                    ErrorCode::SessionRestarted,
                    "the interview recovered from an internal error; if your last answer got no reply, send it again",
                );
                if c.is_live() {
                    state.replay(&c, c.sent_upto())?;
                }
            }
        }
        // Work whose answer went to the failed actor is asked for again.
        match state.rec.phase {
            Phase::Reporting => {
                // Its idle clock starts now, so the idle check does not write the report without
                // the work that is running again.
                state.rec.updated_ms = now_ms();
                state.report_work(&myself);
            }
            Phase::Created if args.restarted && state.conn().is_some() => {
                state.admit();
                state.start(&myself)
            }
            _ => {}
        }
        // A crash during an evaluation left the answer stored: evaluate it again. A crash while a
        // follow-up was streaming (main answer already scored) moves on to the next question.
        if state.rec.phase == Phase::Evaluating {
            let idx = state.rec.current;
            if let (Some(item), Some(target)) = (state.rec.items.get(idx), state.target(idx)) {
                match (&item.follow_up, state.rec.in_follow_up) {
                    (Some(f), true) => {
                        let a = f.answer.clone().unwrap_or_default();
                        state.evaluate(&myself, target, a);
                    }
                    _ if item.score.is_some() => {
                        let _ = myself.cast(SessionMsg::FollowUpReady {
                            text: String::new(),
                            source: "pool".into(),
                        });
                    }
                    _ => {
                        let a = item.answer.clone().unwrap_or_default();
                        state.evaluate(&myself, target, a);
                    }
                }
            }
        }
        Ok(state)
    }

    /// A session that stops before its interview finished (nobody connected, idle, shut down)
    /// gives back its reservation; it holds it again when it is brought back.
    async fn post_stop(
        &self,
        _myself: ActorRef<SessionMsg>,
        state: &mut SessionState,
    ) -> Result<(), ActorProcessingErr> {
        if !state.rec.phase.is_finished() && !state.hibernating {
            state.deps.budget.release(&state.rec.id);
        }
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<SessionMsg>,
        msg: SessionMsg,
        state: &mut SessionState,
    ) -> Result<(), ActorProcessingErr> {
        if state.hibernating {
            if !matches!(msg, SessionMsg::IdleCheck) {
                if let Some(sup) = myself.try_get_supervisor() {
                    let sup: ActorRef<crate::supervisor::SupervisorMsg> = sup.into();
                    let id = state.rec.id.clone();
                    let _ = sup.cast(crate::supervisor::SupervisorMsg::Deliver(id, Box::new(msg)));
                }
            }
            return Ok(());
        }
        match msg {
            SessionMsg::Attach(conn, reply) => {
                if state.rec.last_seq() == 0 {
                    conn.set_live(); // nothing to catch up on: the greeting goes out live
                }
                conn.set_logged(state.rec.last_seq());
                let old = {
                    let mut slot = state.conn.lock().unwrap_or_else(|p| p.into_inner());
                    slot.replace(conn.clone())
                };
                if let Some(old) = old.filter(|o| o.id != conn.id) {
                    old.send(Outbound::Close(
                        "replaced by a newer connection to this interview".into(),
                    ));
                }
                state.detached_since = None;
                // A candidate who comes back is activity: the idle clock starts again (a session
                // brought back after hours is not expired under them).
                state.rec.updated_ms = now_ms();
                let _ = reply.send(state.rec.ready_event());
                if state.rec.phase == Phase::Created && !state.greeting_pending {
                    state.admit();
                    state.start(&myself);
                }
            }
            SessionMsg::Detach(id) => {
                let mut slot = state.conn.lock().unwrap_or_else(|p| p.into_inner());
                if slot.as_ref().is_some_and(|c| c.id == id) {
                    *slot = None;
                    state.detached_since = Some(Clock::now());
                }
                let finished = state.rec.phase.is_finished();
                drop(slot);
                if finished {
                    myself.stop(Some("finished and detached".into()));
                }
            }
            // The permit is held until the message is handled (dropped at the end of this arm).
            SessionMsg::Client(conn_id, m, _permit) => state.on_client(&myself, conn_id, m).await?,
            SessionMsg::Voice(conn_id, ev) => state.on_voice(&myself, conn_id, ev).await?,
            SessionMsg::Evaluated(ev) => state.on_evaluated(&myself, ev).await?,
            SessionMsg::Greeted { text, source } => state.on_greeted(&myself, text, source).await?,
            SessionMsg::Reported(work) => state.on_reported(&myself, work).await?,
            SessionMsg::QuestionReady {
                idx,
                topic,
                question,
                source,
            } => {
                state
                    .on_question_ready(idx, topic, question, source)
                    .await?
            }
            SessionMsg::FollowUpReady { text, source } => {
                state.on_follow_up_ready(&myself, text, source).await?
            }
            SessionMsg::IdleCheck if state.conn().is_none() && state.pending_expired() => {
                // Its record holds everything; a connection brings it back.
                myself.stop(Some("pending: nobody connected".into()));
            }
            SessionMsg::IdleCheck if state.may_hibernate() => {
                // Everything is in the log; the supervisor keeps the connection and brings the
                // session back at the next message. Draining closes the mailbox at once (a sender
                // then asks the supervisor for the session), and what it already took is passed
                // on to the successor (above): nothing sent to a sleeping session is lost.
                state.hibernating = true;
                let _ = myself.drain();
            }
            SessionMsg::IdleCheck => {
                let idle = Duration::from_millis(
                    u64::try_from(now_ms() - state.rec.updated_ms).unwrap_or(0),
                );
                if idle < state.deps.idle_timeout {
                    state.maybe_reprompt().await?;
                } else {
                    if state.rec.phase == Phase::Reporting {
                        // The end-of-interview work never came back: the report goes out without it.
                        state.on_reported(&myself, ReportWork::default()).await?;
                    } else if !state.rec.phase.is_finished() {
                        state.finish(&myself, Phase::Expired, Vec::new()).await?;
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

#[cfg(test)]
mod tests;
