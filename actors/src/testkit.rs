//! Test doubles for the actors' in-process unit tests (compiled only for tests): session
//! dependencies over a temporary sled log with no provider (every interview runs at the heuristic
//! level: templates, the given questions and the rubric scorer), a hand-built interview record, and
//! a client that reads what a session sends to its connection.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::budget::{Budget, Capacity, CapacitySource, Level, Mode};
use crate::conn::{ConnHandle, ConnReceiver, Outbound};
use crate::content::question_pool::{Category, Question};
use crate::content::templates::Templates;
use crate::interview::{Candidate, InterviewRecord, Phase};
use crate::session::SessionDeps;
use crate::storage::{SessionLog, SledStore};
use crate::supervisor::LiveSessions;

/// No provider key, no GPU node: every interview is heuristic by design.
pub(crate) struct NoCapacity;

impl CapacitySource for NoCapacity {
    fn capacity(&self) -> Capacity {
        Capacity::NONE
    }

    fn configured(&self) -> bool {
        false
    }
}

/// A temporary sled store (removed when dropped).
pub(crate) fn store() -> SledStore {
    SledStore::temporary().unwrap()
}

/// Session dependencies over `log`: no pool, no cache, no voice, test hooks on (an answer
/// `__panic__` panics the session), at most `max_live` live sessions.
pub(crate) fn deps(log: SledStore, max_live: usize) -> Arc<SessionDeps> {
    Arc::new(SessionDeps {
        log: Arc::new(log),
        pool: None,
        templates: Arc::new(Templates::load_embedded().unwrap()),
        idle_timeout: Duration::from_secs(600),
        eval_deadline: Duration::from_secs(5),
        test_hooks: true,
        stats: Arc::default(),
        cache: None,
        budget: Arc::new(Budget::new(Box::new(NoCapacity))),
        questions: Arc::default(),
        voice: None,
        pending_ttl: Duration::from_secs(600),
        hibernate_after: None,
        live: Arc::new(LiveSessions::new(max_live)),
        cluster: None,
        embedder: None,
    })
}

/// Question `i` (1-based in its text), with a two-point rubric and one follow-up.
pub(crate) fn question(i: usize) -> Arc<Question> {
    Arc::new(Question {
        id: format!("q-{i}"),
        domain: "backend".into(),
        category: Category::TechnicalMedium,
        difficulty: Default::default(),
        tags: vec!["sql".into()],
        text: format!("Question number {i}?"),
        rubric: vec!["indexes".into(), "query plans".into()],
        follow_ups: vec!["And then?".into()],
    })
}

/// A new interview `id` of `questions` questions, as the REST layer creates it.
pub(crate) fn record(id: &str, questions: usize) -> InterviewRecord {
    let now = chrono::Utc::now().timestamp_millis();
    InterviewRecord {
        id: id.into(),
        token_sha256: "ab".into(),
        candidate: Candidate {
            id: format!("cand-{id}"),
            name: "Ada".into(),
        },
        role: "SRE".into(),
        track: Default::default(),
        difficulty: Default::default(),
        mode: Mode::Auto,
        created_ms: now,
        updated_ms: now,
        resume: None,
        questions: (1..=questions).map(question).collect(),
        items: Vec::new(),
        current: 0,
        in_follow_up: false,
        phase: Phase::Created,
        next_seq: 1,
        report: None,
        follow_ups_asked: 0,
        level: Level::Heuristic,
        steps: Vec::new(),
        ending: None,
        report_seq: None,
        stored: Default::default(),
        voice: Default::default(),
    }
}

/// Writes a new interview to `log`, as the REST layer does before anyone connects.
pub(crate) async fn create(log: &SledStore, id: &str, questions: usize) {
    SessionLog::create(log, &record(id, questions)).unwrap();
    SessionLog::flush(log).await.unwrap();
}

/// The connection's side: what the session sends, as JSON.
pub(crate) struct Client {
    /// The handle given to the session.
    pub(crate) handle: ConnHandle,
    rx: ConnReceiver,
}

impl Client {
    /// A new connection.
    pub(crate) fn new() -> Client {
        let (handle, rx) = ConnHandle::new();
        Client { handle, rx }
    }

    /// The next text event (binary frames skipped); `None` when the session closed the
    /// connection (the reason is returned as `{"close": reason}`) or nothing came within 5 s.
    pub(crate) async fn next(&mut self) -> Option<Value> {
        loop {
            let frame = tokio::time::timeout(Duration::from_secs(5), self.rx.rx.recv())
                .await
                .ok()??;
            match frame {
                Outbound::Text(t) => return Some(serde_json::from_str(&t).unwrap()),
                Outbound::Close(why) => return Some(serde_json::json!({ "close": why })),
                Outbound::Binary(_) => {}
            }
        }
    }

    /// The next event, which must be of type `ty`.
    pub(crate) async fn expect(&mut self, ty: &str) -> Value {
        let ev = self.next().await.unwrap_or_else(|| panic!("no {ty} event"));
        assert_eq!(ev["type"], ty, "{ev}");
        ev
    }

    /// Events until (and with) the first of type `ty`.
    pub(crate) async fn until(&mut self, ty: &str) -> Vec<Value> {
        let mut seen = Vec::new();
        while let Some(ev) = self.next().await {
            let done = ev["type"] == ty;
            seen.push(ev);
            if done {
                return seen;
            }
        }
        panic!("no {ty} event; saw {seen:?}");
    }

    /// Whether nothing arrives within `within`.
    pub(crate) async fn quiet(&mut self, within: Duration) -> bool {
        tokio::time::timeout(within, self.rx.rx.recv())
            .await
            .is_err()
    }
}
