//! Feedback a candidate can trust, over the real socket and the real binary: `skip` is recorded as
//! skipped and the interview moves on; follow-ups are graded against their own expected points;
//! evaluations carry a band and the points in the candidate's words; an answer still being graded
//! when the candidate ends the interview is graded in the report; the counts of an interview ended
//! early are right.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use actors::content::question_pool::{self, Question};
use common::server::Engine;
use common::ws::{create, Client};
use serde_json::{json, Value};

const CONFIG: &str =
    "[server]\nbind = \"127.0.0.1:0\"\n[storage]\npath = \"data\"\n[interview]\nquestions = 3\n";

fn start() -> (tempfile::TempDir, Engine) {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::start(dir.path(), CONFIG, &[]);
    (dir, engine)
}

/// The pool question an `interviewer` event asks (its text ends with the question's, `{role}` filled).
fn pool_question(event_text: &str, role: &str) -> Question {
    let pool = question_pool::embedded().unwrap();
    pool.questions()
        .iter()
        .find(|q| event_text.ends_with(&q.text.replace("{role}", role)))
        .cloned()
        .unwrap_or_else(|| panic!("no pool question for {event_text:?}"))
}

/// An answer stating the question's first two rubric points in sentences: partial on purpose.
fn half_answer(q: &Question) -> String {
    format!(
        "I think the first thing is this: {}. On top of that, {}. That is roughly how I would answer it.",
        q.rubric[0].trim_end_matches('.'),
        q.rubric[1].trim_end_matches('.').to_lowercase()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skip_is_recorded_and_an_interview_ended_early_counts_right() {
    let (_dir, engine) = start();
    let c = create(
        &engine.base,
        json!({"candidate": {"id": "skip-1", "name": "Sam"}, "role": "Backend Engineer", "questions": 3}),
    )
    .await;
    let mut client = Client::connect(&engine.base, &c).await;
    let q1 = client.next_prompt().await;
    assert_eq!(q1["turn"], 1);
    // A skip for a question that is not open changes nothing.
    client.send(json!({"type": "skip", "turn": 2})).await;
    let e = client.until(|v| v["type"] == "error").await;
    assert_eq!(e["code"], "stale_answer", "{e}");
    client.send(json!({"type": "skip", "turn": "one"})).await;
    let e = client.until(|v| v["type"] == "error").await;
    assert_eq!(e["code"], "invalid_message", "{e}");
    client.send(json!({"type": "skip", "turn": 1})).await;
    let skipped = client.until(|v| v["type"] == "skipped").await;
    assert_eq!(skipped["turn"], 1);
    assert_eq!(skipped["follow_up"], false);
    let reaction = client.next().await;
    assert_eq!(
        (reaction["type"].as_str(), reaction["kind"].as_str()),
        (Some("interviewer"), Some("reaction")),
        "{reaction}"
    );
    let q2 = client.next_prompt().await;
    assert_eq!(
        (q2["kind"].as_str(), q2["turn"].as_u64()),
        (Some("question"), Some(2)),
        "{q2}"
    );
    // Answer question 2 (and any follow-up) until question 3 is open, then end there.
    let mut prompt = q2;
    loop {
        if prompt["turn"] == 3 {
            break;
        }
        if prompt["kind"] == "question" {
            let q = pool_question(prompt["text"].as_str().unwrap(), "Backend Engineer");
            client.answer(&half_answer(&q)).await;
        } else {
            client
                .answer("I would check the data first and then decide.")
                .await;
        }
        prompt = client.next_prompt().await;
        assert_ne!(prompt["type"], "report", "no report before the end");
    }
    client.send(json!({"type": "end"})).await;
    let report = client.until(|v| v["type"] == "report").await["report"].clone();
    assert_eq!(report["state"], "ended_early");
    assert_eq!(
        report["counts"],
        json!({"planned": 3, "asked": 3, "answered": 1, "skipped": 1, "unanswered": 1}),
        "{}",
        report["summary"]
    );
    let qs = report["questions"].as_array().unwrap();
    assert_eq!(qs[0]["skipped"], true);
    assert_eq!(qs[0]["answer"], Value::Null);
    assert_eq!(qs[1]["skipped"], false);
    assert!(qs[1]["band"].is_string(), "{}", qs[1]);
    let summary = report["summary"].as_str().unwrap();
    assert!(
        summary.contains(
            "at question 3 of 3: you answered 1, skipped 1, and 1 question was left unanswered"
        ),
        "{summary}"
    );
    // Nothing about question 3's skip can be sent any more.
    client.send(json!({"type": "skip"})).await;
    let e = client.until(|v| v["type"] == "error").await;
    assert_eq!(e["code"], "no_open_question", "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evaluations_carry_a_band_and_points_and_follow_ups_use_their_own_points() {
    let (_dir, engine) = start();
    let pool = question_pool::embedded().unwrap();
    let mut follow_ups_checked = 0;
    // Questions are chosen per interview; a half answer is partial, which asks a follow-up.
    for attempt in 0..5 {
        let c = create(
            &engine.base,
            json!({"candidate": {"id": format!("fu-{attempt}"), "name": "Fay"}, "role": "Backend Engineer",
                   "track": "technical", "questions": 6}),
        )
        .await;
        let mut client = Client::connect(&engine.base, &c).await;
        let mut asked: Option<Question> = None;
        loop {
            let prompt = client.next_prompt().await;
            if prompt["type"] == "report" {
                break;
            }
            if prompt["kind"] == "question" {
                let q = pool_question(prompt["text"].as_str().unwrap(), "Backend Engineer");
                client.answer(&half_answer(&q)).await;
                let ev = client.until(|v| v["type"] == "evaluation").await;
                assert_eq!(ev["follow_up"], false);
                assert_eq!(ev["graded_by"], "rubric");
                let band = ev["band"].as_str().unwrap();
                assert!(["solid", "partial", "not_yet"].contains(&band), "{ev}");
                let points = ev["points"].as_array().unwrap();
                let guide = pool.guide(&q.id).unwrap();
                assert_eq!(points.len(), guide.points.len());
                for (p, g) in points.iter().zip(&guide.points) {
                    assert_eq!(p["say"], g.say);
                    if p["coverage"] == "stated" {
                        // The candidate's own words.
                        let quote = p["quote"].as_str().unwrap().trim_end_matches('…');
                        assert!(half_answer(&q).contains(quote), "{quote}");
                    }
                }
                // Written feedback uses the pool's phrases, not the rubric's sentences.
                let fb = ev["feedback"].as_str().unwrap();
                assert!(!q.rubric.iter().any(|r| fb.contains(r.as_str())), "{fb}");
                asked = Some(q);
            } else {
                // A follow-up: answered and graded on the follow-up's own expected points.
                let q = asked.clone().unwrap();
                assert!(
                    prompt["text"].as_str().unwrap().ends_with(&q.follow_ups[0]),
                    "{prompt}"
                );
                client
                    .answer("I would do it step by step, and I would check each step before the next one.")
                    .await;
                let ev = client.until(|v| v["type"] == "evaluation").await;
                assert_eq!(ev["follow_up"], true, "{ev}");
                let says: Vec<&str> = ev["points"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|p| p["say"].as_str().unwrap())
                    .collect();
                let own: Vec<&str> = pool
                    .guide(&q.id)
                    .unwrap()
                    .follow_up
                    .iter()
                    .map(|p| p.say.as_str())
                    .collect();
                assert_eq!(says, own, "follow-up graded against its own points");
                follow_ups_checked += 1;
            }
        }
        if follow_ups_checked > 0 {
            break;
        }
    }
    assert!(
        follow_ups_checked > 0,
        "no follow-up was asked in five interviews"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_still_being_graded_at_the_end_is_graded_in_the_report() {
    let (_dir, engine) = start();
    let c = create(
        &engine.base,
        json!({"candidate": {"id": "end-1", "name": "Eve"}, "role": "Backend Engineer", "questions": 3}),
    )
    .await;
    let mut client = Client::connect(&engine.base, &c).await;
    let q1 = client.next_prompt().await;
    let q = pool_question(q1["text"].as_str().unwrap(), "Backend Engineer");
    // The answer and the end in one write: the end reaches the session before the grade.
    client.answer(&half_answer(&q)).await;
    client.send(json!({"type": "end"})).await;
    let report = client.until(|v| v["type"] == "report").await["report"].clone();
    let q0 = &report["questions"][0];
    assert!(q0["score"].is_u64(), "graded: {q0}");
    assert!(q0["band"].is_string(), "{q0}");
    assert_eq!(report["counts"]["answered"], 1);
}
