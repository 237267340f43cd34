//! The retention sweeper in the real binary: a data directory holding interviews finished 40 and
//! 200 days ago and one from today; the server, started with `keep_days = 30` and
//! `report_keep_days = 90`, sweeps at start: the 40-day-old interview keeps its report (without the
//! answers) and its place in the candidate's history, the 200-day-old one is gone, today's is
//! untouched.
#![allow(
    missing_docs,
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

mod common;

use std::time::Duration;

use actors::interview::{sha256_hex, Candidate, InterviewRecord, Phase};
use actors::storage::{SessionLog, SledStore, UsageLedger};
use common::server::Engine;
use serde_json::{json, Value};

const DAY_MS: i64 = 86_400_000;

/// A finished one-question interview whose last activity was `age_days` ago.
fn finished(id: &str, age_days: i64) -> (InterviewRecord, Vec<(u64, String)>) {
    let at = chrono::Utc::now().timestamp_millis() - age_days * DAY_MS;
    let report = json!({"interview_id": id, "overall_score": 6.0, "questions": [
        {"index": 1, "question": "Why?", "answer": format!("the answer of {id}"), "follow_up": null}]});
    let rec = InterviewRecord {
        id: id.into(),
        token_sha256: sha256_hex(&format!("token-{id}")),
        candidate: Candidate {
            id: "cand-ret".into(),
            name: "Ret".into(),
        },
        role: "SRE".into(),
        track: Default::default(),
        difficulty: Default::default(),
        mode: actors::budget::Mode::Auto,
        created_ms: at,
        updated_ms: at,
        resume: None,
        questions: Vec::new(),
        items: vec![actors::content::report::ReportItem {
            index: 1,
            question_id: "q1".into(),
            category: "behavioral".into(),
            difficulty: "medium".into(),
            question: "Why?".into(),
            answer: Some(format!("the answer of {id}")),
            audio_duration_s: None,
            score: Some(6),
            feedback: "ok".into(),
            rubric_covered: Vec::new(),
            rubric_missed: Vec::new(),
            source: "heuristic".into(),
            follow_up: None,
        }],
        current: 0,
        in_follow_up: false,
        phase: Phase::Completed,
        next_seq: 3,
        report: Some(report.to_string()),
        follow_ups_asked: 0,
        level: actors::budget::Level::Heuristic,
        steps: Vec::new(),
        ending: None,
        report_seq: Some(2),
        stored: Default::default(),
        voice: Default::default(),
    };
    let events = vec![
        (
            1,
            json!({"type": "interviewer", "kind": "greeting", "seq": 1}).to_string(),
        ),
        (
            2,
            json!({"type": "report", "report": report, "seq": 2}).to_string(),
        ),
    ];
    (rec, events)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweeper_removes_old_transcripts_and_reports_at_start() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = SledStore::open(&dir.path().join("data")).unwrap();
        for (id, age) in [("month", 40), ("ancient", 200), ("today", 0)] {
            let (mut rec, events) = finished(id, age);
            store.create(&rec).unwrap();
            store.commit(&mut rec, &events).unwrap();
        }
        UsageLedger::flush(&store).await.unwrap();
    }
    let cfg = "[server]\nbind = \"127.0.0.1:0\"\nadmin_token = \"adm\"\n[storage]\npath = \"data\"\nkeep_days = 30\nreport_keep_days = 90\n";
    let engine = Engine::start(dir.path(), cfg, &[]);
    let state = |id: &str| format!("/api/interviews/{id}");
    // The start-up sweep runs in the background: wait for its one effect that is visible.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while engine.get(&state("ancient"), Some("adm")).await.status != 404 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not swept: {}",
            engine.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A month old: the report stays, without the answers; the transcript is gone.
    let report: Value = engine
        .get(&format!("{}/report", state("month")), Some("adm"))
        .await
        .json;
    assert_eq!(report["overall_score"], 6.0, "{report}");
    assert_eq!(report["questions"][0]["answer"], Value::Null, "{report}");
    let st = engine.get(&state("month"), Some("adm")).await.json;
    let transcript = st["transcript"].as_array().unwrap();
    assert_eq!(transcript.len(), 1, "only the report event: {st}");
    let history = engine
        .get("/api/candidates/cand-ret/history", Some("adm"))
        .await
        .json;
    let listed: Vec<&str> = history["interviews"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["interview_id"].as_str().unwrap())
        .collect();
    assert_eq!(listed, ["month", "today"], "{history}");
    // Today's is whole.
    let report: Value = engine
        .get(&format!("{}/report", state("today")), Some("adm"))
        .await
        .json;
    assert_eq!(report["questions"][0]["answer"], "the answer of today");
    assert!(engine.log().contains("retention"), "the sweep is logged");
}
