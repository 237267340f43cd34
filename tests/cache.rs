//! The reuse cache and request coalescing through the real binary: concurrent identical resume
//! analyses share one provider call, later ones are served from the sled cache, also after a
//! restart; the same answer to the same question is graded once. (The cache actor's TTL, size bound
//! and versioning are unit-tested in actors/src/cache.rs.)
#![allow(
    missing_docs,
    dead_code,
    clippy::useless_vec,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

mod common;

use common::config::Config;
use common::fake::FakeProvider;
use common::server::Engine;
use serde_json::{json, Value};

fn config(fake: &str) -> String {
    Config::new()
        .openai_provider("fakeai", fake, "{ rpm = 1000 }")
        .toml()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identical_resume_analyses_share_one_call_and_are_cached_across_restarts() {
    let fake = FakeProvider::start().await;
    let reply =
        json!({"skills": ["Rust", "PostgreSQL"], "projects": ["Ledger"], "seniority": "senior",
        "years_experience": 8, "suggested_topics": ["storage engines"]})
        .to_string();
    // Slow enough that the concurrent requests overlap.
    fake.add_key_with(json!({"key": "cache-key", "limits": {}, "reply": reply, "latency_ms": 800}))
        .await;
    let dir = tempfile::tempdir().unwrap();
    let mut engine = Engine::start(
        dir.path(),
        &config(&fake.base),
        &[("FAKEAI_API_KEYS", "cache-key".into())],
    );
    let resume = "Jane Doe.  Senior engineer, 8 years.\nBuilt a ledger in Rust and PostgreSQL.";
    let calls = futures::future::join_all((0..20).map(|_| {
        let base = engine.base.clone();
        async move {
            let r = reqwest::Client::new()
                .post(format!("{base}/api/resume/analyze"))
                .json(&json!({"resume_text": resume}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status().as_u16(), 200);
            r.json::<Value>().await.unwrap()
        }
    }))
    .await;
    for v in &calls {
        assert_eq!(v["source"], "llm:fakeai", "{v}");
        assert_eq!(v["skills"][0], "Rust");
    }
    assert_eq!(
        fake.requests("cache-key").await.len(),
        1,
        "20 identical concurrent analyses made one provider call"
    );
    // The same resume, differently spaced and cased: a cache hit, no call.
    let again = engine
        .post(
            "/api/resume/analyze",
            &json!({"resume_text": resume.to_uppercase().replace(' ', "   ")}),
            None,
        )
        .await;
    assert_eq!(again.json["source"], "cache", "{}", again.text);
    assert_eq!(fake.requests("cache-key").await.len(), 1);
    // The stats say the same: one analysis from the provider, 19 shared, one from the cache.
    let st = engine.get("/api/optimization_stats", None).await;
    assert_eq!(st.status, 200, "{}", st.text);
    let by = &st.json["requests_by_source"];
    assert_eq!(by["llm"], 1, "{}", st.text);
    assert_eq!(by["dedup"], 19, "{}", st.text);
    assert_eq!(by["cache"], 1, "{}", st.text);
    let resume_kind = st.json["cache"]["kinds"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kind"] == "resume_analysis")
        .unwrap()
        .clone();
    assert_eq!(resume_kind["hits"], 1, "{resume_kind}");
    assert_eq!(resume_kind["entries"], 1, "{resume_kind}");
    // Survives a restart.
    engine.kill();
    let engine = Engine::start(
        dir.path(),
        &config(&fake.base),
        &[("FAKEAI_API_KEYS", "cache-key".into())],
    );
    let after = engine
        .post("/api/resume/analyze", &json!({"resume_text": resume}), None)
        .await;
    assert_eq!(after.json["source"], "cache", "{}", after.text);
    assert_eq!(after.json["skills"][1], "PostgreSQL");
    assert_eq!(fake.requests("cache-key").await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_identical_gateway_requests_make_one_provider_call() {
    let fake = FakeProvider::start().await;
    fake.add_key_with(json!({"key": "gw-key", "limits": {}, "latency_ms": 800}))
        .await;
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::start(
        dir.path(),
        &config(&fake.base),
        &[("FAKEAI_API_KEYS", "gw-key".into())],
    );
    // Deterministic (temperature 0): the gateway caches only such answers by default.
    let body = json!({"max_tokens": 16, "temperature": 0, "messages": [{"role": "user", "content": "Name a sorting algorithm."}]});
    let answers = futures::future::join_all((0..50).map(|_| {
        let (base, body) = (engine.base.clone(), body.clone());
        async move {
            let r = reqwest::Client::new()
                .post(format!("{base}/v1/chat/completions"))
                .json(&body)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status().as_u16(), 200);
            let how = r.headers()["x-cache"].to_str().unwrap().to_string();
            let v: Value = r.json().await.unwrap();
            (
                how,
                v["choices"][0]["message"]["content"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            )
        }
    }))
    .await;
    assert_eq!(
        fake.requests("gw-key").await.len(),
        1,
        "50 identical requests, one call"
    );
    let count = |h: &str| answers.iter().filter(|(how, _)| how == h).count();
    assert_eq!(count("miss"), 1);
    assert_eq!(count("shared"), 49);
    assert!(
        answers.iter().all(|(_, text)| *text == answers[0].1),
        "everyone got the same answer"
    );
    // Later: from the cache; with Cache-Control: no-cache, a new call.
    let hit = engine.post("/v1/chat/completions", &body, None).await;
    assert_eq!(hit.headers["x-cache"], "hit");
    assert_eq!(fake.requests("gw-key").await.len(), 1);
    let fresh = reqwest::Client::new()
        .post(format!("{}/v1/chat/completions", engine.base))
        .header("cache-control", "no-cache")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(fresh.headers()["x-cache"], "miss");
    assert_eq!(fake.requests("gw-key").await.len(), 2);
    let st = engine.get("/api/optimization_stats", None).await;
    assert_eq!(st.json["requests_by_source"]["dedup"], 49, "{}", st.text);
}

/// Runs a balanced interview answering every prompt with `answer`; returns its logged events.
async fn interview(engine: &Engine, candidate: &str, answer: &str) -> Vec<Value> {
    use common::ws::{create, Client};
    // Every behavioral question at easy level (fewer than 50 exist): both candidates get the same set.
    let c = create(
        &engine.base,
        json!({"candidate": {"id": candidate, "name": candidate}, "role": "Backend Engineer",
               "track": "behavioral", "difficulty": "easy", "questions": 50, "mode": "balanced"}),
    )
    .await;
    let mut client = Client::connect(&engine.base, &c).await;
    loop {
        let v = client.next_prompt().await;
        if v["type"] == "report" {
            return client.logged.clone();
        }
        client.answer(answer).await;
    }
}

fn is_evaluation_request(r: &Value) -> bool {
    r["body"]["messages"][0]["content"]
        .as_str()
        .is_some_and(|s| s.contains("\"score\"") && !s.contains("\"evaluations\""))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_answer_to_the_same_question_is_graded_once() {
    let fake = FakeProvider::start().await;
    let reply =
        json!({"score": 8, "reaction": "Good.", "feedback": "Clear.", "rubric_covered": [1]})
            .to_string();
    fake.add_key_with(json!({"key": "eval-key", "limits": {}, "reply": reply}))
        .await;
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::start(
        dir.path(),
        &config(&fake.base),
        &[("FAKEAI_API_KEYS", "eval-key".into())],
    );
    let answer = "I listened first, agreed on one measurable goal, and followed up in writing.";
    let first = interview(&engine, "cand-first", answer).await;
    let graded = |events: &[Value]| -> Vec<String> {
        events
            .iter()
            .filter(|e| e["type"] == "evaluation")
            .map(|e| e["source"].as_str().unwrap().to_string())
            .collect()
    };
    let sources = graded(&first);
    assert!(sources.len() > 10);
    assert!(sources.iter().all(|s| s == "llm:fakeai"), "{sources:?}");
    let calls_first = fake.requests("eval-key").await;
    let evals_first = calls_first
        .iter()
        .filter(|r| is_evaluation_request(r))
        .count();
    assert_eq!(evals_first, sources.len(), "one call per answer");

    // Another candidate gives the same answers to the same questions: every grade is reused.
    let second = interview(&engine, "cand-second", answer).await;
    let sources = graded(&second);
    assert_eq!(sources.len(), evals_first);
    assert!(sources.iter().all(|s| s == "cache"), "{sources:?}");
    let calls = fake.requests("eval-key").await;
    let evals = calls.iter().filter(|r| is_evaluation_request(r)).count();
    assert_eq!(evals, evals_first, "no new evaluation call");
    let st = engine.get("/api/optimization_stats", None).await.json;
    let hits = st["cache"]["kinds"]
        .as_array()
        .and_then(|k| k.iter().find(|k| k["kind"] == "evaluation"))
        .map(|k| k["hits"].clone());
    assert_eq!(hits, Some(json!(evals_first)), "{st}");
}
