//! One simulated candidate: creates an interview as the HTTP layer does (the budget's preview, a
//! seeded question selection, the record written and flushed), attaches to its session actor through
//! the supervisor like a WebSocket connection does, and answers every question and follow-up through
//! the session's own `Client` messages after a think time, until the report arrives.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use actors::budget::Level;
use actors::clock::Clock;
use actors::conn::{ConnHandle, Outbound};
use actors::content::question_pool::{Fill, Selection};
use actors::content::{Difficulty, Track};
use actors::interview::{Candidate, InterviewRecord, Phase};
use actors::protocol::ClientMessage;
use actors::session::SessionMsg;
use actors::storage::SessionLog;
use actors::supervisor::SupervisorMsg;
use ractor::rpc::CallResult;
use serde_json::Value;

use super::World;

/// How long a candidate waits for the interviewer before giving up (virtual time): far beyond any
/// deadline of the engine, so only a stuck interview reaches it.
const PATIENCE: Duration = Duration::from_secs(2 * 3600);

/// What one interview came to.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Its level at admission (first connection).
    pub admitted: Level,
    /// Its level at the end.
    pub finished: Level,
    /// Level steps during the interview.
    pub steps: u64,
    /// Answers in the report.
    pub answers: u64,
    /// Of which a model graded (fresh or from the cache).
    pub llm_graded: u64,
    /// When the report arrived, from the start of the day.
    pub finished_at: Duration,
}

fn record(world: &World, n: usize) -> InterviewRecord {
    let id = format!("sim{n:06}");
    let role = "Software Engineer".to_string();
    let level = world
        .budget
        .preview(Level::Adaptive, world.questions_per_interview as usize);
    let empty: Vec<String> = Vec::new();
    let chosen = world.questions.select(&Selection {
        role: &role,
        track: Track::default(),
        difficulty: Difficulty::default(),
        count: world.questions_per_interview as usize,
        seed: &id,
        fill: Fill {
            role: &role,
            technologies: &empty,
            projects: &empty,
        },
        exclude: &HashSet::new(),
    });
    let now = Clock::wall_ms();
    InterviewRecord {
        id: id.clone(),
        token_sha256: String::new(),
        candidate: Candidate {
            id: format!("c-{id}"),
            name: format!("Candidate {n}"),
        },
        role,
        track: Track::default(),
        difficulty: Difficulty::default(),
        mode: actors::budget::Mode::Auto,
        created_ms: now,
        updated_ms: now,
        resume: None,
        questions: chosen.into_iter().map(|c| Arc::new(c.question)).collect(),
        items: Vec::new(),
        current: 0,
        in_follow_up: false,
        phase: Phase::Created,
        next_seq: 1,
        report: None,
        follow_ups_asked: 0,
        level,
        steps: Vec::new(),
        ending: None,
        voice: actors::interview::VoiceRecord::default(),
        report_seq: None,
        stored: Default::default(),
    }
}

async fn view(session: &ractor::ActorRef<SessionMsg>) -> Result<InterviewRecord, String> {
    match session
        .call(SessionMsg::View, Some(Duration::from_secs(60)))
        .await
    {
        Ok(CallResult::Success(r)) => Ok(r),
        other => Err(format!("view: {other:?}")),
    }
}

/// Runs candidate `n`'s interview to its report.
pub async fn run(world: &World, n: usize) -> Result<Outcome, String> {
    let rec = record(world, n);
    let id = rec.id.clone();
    let log: &dyn SessionLog = &world.store;
    log.create(&rec).map_err(|e| format!("{id}: create: {e}"))?;
    log.flush().await.map_err(|e| format!("{id}: flush: {e}"))?;
    let session = match world
        .supervisor
        .call(
            |r| SupervisorMsg::Get(id.clone(), r),
            Some(Duration::from_secs(60)),
        )
        .await
    {
        Ok(CallResult::Success(Ok(s))) => s,
        other => return Err(format!("{id}: no session: {other:?}")),
    };
    let (conn, mut rx) = ConnHandle::new();
    match session
        .call(
            |r| SessionMsg::Attach(conn.clone(), r),
            Some(Duration::from_secs(60)),
        )
        .await
    {
        Ok(CallResult::Success(_ready)) => {}
        other => return Err(format!("{id}: attach: {other:?}")),
    }
    // Messages are handled in order: the record seen now has the level admission gave it.
    let admitted = view(&session)
        .await
        .map_err(|e| format!("{id}: {e}"))?
        .level;
    let mut answered = 0usize;
    loop {
        let frame = tokio::time::timeout(PATIENCE, rx.rx.recv())
            .await
            .map_err(|_| {
                format!(
                    "{id}: no event for {} s after {answered} answers",
                    PATIENCE.as_secs()
                )
            })?
            .ok_or_else(|| format!("{id}: connection closed before the report"))?;
        let Outbound::Text(text) = frame else {
            continue;
        };
        let v: Value = serde_json::from_str(&text).map_err(|e| format!("{id}: bad event: {e}"))?;
        match v["type"].as_str() {
            Some("interviewer") if matches!(v["kind"].as_str(), Some("question" | "follow_up")) => {
                tokio::time::sleep(world.think).await;
                let answer = crate::cli::loadtest::answer_text(n, answered);
                answered += 1;
                let msg = ClientMessage::Answer {
                    text: answer,
                    audio_duration_s: None,
                    turn: v["turn"].as_u64().and_then(|t| u32::try_from(t).ok()),
                    seq: v["seq"].as_u64(),
                    words: None,
                };
                session
                    .cast(SessionMsg::Client(conn.id, msg, None))
                    .map_err(|e| format!("{id}: answer: {e}"))?;
            }
            Some("report") => {
                let finished_at = Clock::since(world.start);
                let rec = view(&session).await.map_err(|e| format!("{id}: {e}"))?;
                let _ = session.cast(SessionMsg::Detach(conn.id));
                let graded: Vec<_> = rec.items.iter().filter(|i| i.answer.is_some()).collect();
                let by_model = graded
                    .iter()
                    .filter(|i| {
                        let s = i.source.as_str();
                        s.starts_with("llm") || s.starts_with("cache") || s.starts_with("gpu")
                    })
                    .count();
                return Ok(Outcome {
                    admitted,
                    finished: rec.level,
                    steps: rec.steps.len() as u64,
                    answers: graded.len() as u64,
                    llm_graded: by_model as u64,
                    finished_at,
                });
            }
            Some("error") => {
                return Err(format!("{id}: error event: {v}"));
            }
            _ => {}
        }
    }
}
