//! Hibernation (`interview.hibernate_after_s`) against the real binary: a session waiting for its
//! candidate leaves memory (no actor, no record in memory) while its WebSocket stays open and its
//! quota reservation stays held; the candidate's next answer on the same socket brings it back with
//! nothing lost; a client that goes away while it sleeps resumes by `seq`; and an interview that
//! sleeps through its idle timeout is still closed with its report.
#![allow(
    missing_docs,
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

mod common;

use std::time::Duration;

use common::fake::FakeProvider;
use common::server::Engine;
use common::ws::{assert_contiguous, create, Client};
use serde_json::{json, Value};

fn config(interview: &str, fake: &str) -> String {
    format!(
        "[server]\nbind = \"127.0.0.1:0\"\n[storage]\npath = \"data\"\n[interview]\nmode = \"balanced\"\n{interview}\n\
         [providers.fakeai]\nformat = \"openai\"\nbase_url = \"{fake}/v1\"\nmodel = \"m\"\npriority = 1\n\
         keys_env = \"FAKEAI_API_KEYS\"\nlimits = {{ rpm = 1000, rpd = 1000 }}\n"
    )
}

fn body(name: &str, questions: u32) -> Value {
    json!({"candidate": {"id": format!("cand-{name}"), "name": name}, "role": "Backend Engineer",
           "track": "technical", "difficulty": "medium", "questions": questions})
}

/// Polls until the node has `live` session actors and `asleep` hibernating interviews.
async fn until_sessions(engine: &Engine, live: f64, asleep: f64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let l = engine.metric("interview_engine_sessions_live").await;
        let a = engine.metric("interview_engine_sessions_hibernated").await;
        if l == live && a == asleep {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "sessions live {l} (want {live}), hibernated {a} (want {asleep})"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn reserved(engine: &Engine) -> f64 {
    engine.status().await["budget"]["reserved_calls"]
        .as_f64()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_session_sleeps_and_the_next_answer_wakes_it_on_the_same_socket() {
    let fake = FakeProvider::start().await;
    fake.add_interviewer_key("sleep-key").await;
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::start(
        dir.path(),
        &config("hibernate_after_s = 1\nidle_timeout_s = 600", &fake.base),
        &[("FAKEAI_API_KEYS", "sleep-key".into())],
    );
    let c = create(&engine.base, body("Sleeper", 3)).await;
    let mut client = Client::connect(&engine.base, &c).await;
    client.next_prompt().await;
    assert_eq!(reserved(&engine).await, 4.0, "3 evaluations and the note");

    // Waiting for the candidate: the actor leaves memory, the socket and the reservation stay.
    until_sessions(&engine, 0.0, 1.0).await;
    assert_eq!(
        reserved(&engine).await,
        4.0,
        "the sleeping interview keeps its quota"
    );

    // The answer on the same socket wakes it; it is graded and the interview goes on.
    client.answer(common::ws::GOOD_ANSWER).await;
    let ev = client.until(|v| v["type"] == "evaluation").await;
    assert_eq!(ev["turn"], 1, "{ev}");
    client.next_prompt().await;
    assert_eq!(
        engine.metric("interview_engine_sessions_hibernated").await,
        0.0
    );

    // Asleep again; the client goes away meanwhile and comes back with the last seq it saw.
    until_sessions(&engine, 0.0, 1.0).await;
    let seen = client.last_seq();
    let mut events = client.logged.clone();
    client.drop_connection().await;
    let (mut back, ready) = Client::reconnect(&engine.base, &c, seen).await;
    assert_eq!(ready["state"], "awaiting_answer", "{ready}");
    assert_eq!(ready["question_index"], 2, "{ready}");
    // Its question is open (the client saw it before it went away): answer it, then the rest.
    back.answer(common::ws::GOOD_ANSWER).await;
    let report = back.finish_with(common::ws::GOOD_ANSWER).await;
    assert_eq!(report["type"], "report");
    events.extend(back.logged.clone());
    assert_contiguous(&events);
    let answered = report["report"]["questions"].as_array().map_or(0, |qs| {
        qs.iter().filter(|q| q["answer"].is_string()).count()
    });
    assert_eq!(answered, 3, "every answer is in the report: {report}");
    // Finished, and the candidate gone: it holds nothing.
    back.drop_connection().await;
    until_sessions(&engine, 0.0, 0.0).await;
    assert_eq!(reserved(&engine).await, 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interview_that_sleeps_through_its_idle_timeout_is_closed_with_its_report() {
    let fake = FakeProvider::start().await;
    fake.add_interviewer_key("idle-key").await;
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::start(
        dir.path(),
        &config("hibernate_after_s = 1\nidle_timeout_s = 4", &fake.base),
        &[("FAKEAI_API_KEYS", "idle-key".into())],
    );
    let c = create(&engine.base, body("Dozer", 3)).await;
    let mut client = Client::connect(&engine.base, &c).await;
    client.next_prompt().await;
    until_sessions(&engine, 0.0, 1.0).await;
    // Nobody answers: it is woken when its idle timeout may have come, and closes itself.
    let report = client.until(|v| v["type"] == "report").await;
    assert_eq!(report["report"]["state"], "expired", "{report}");
    until_sessions(&engine, 0.0, 0.0).await;
    assert_eq!(reserved(&engine).await, 0.0);
}
