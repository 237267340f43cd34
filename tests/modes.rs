//! Call-budget modes against the real binary and the fake providers: economy grades every answer in
//! one batched call (a broken item falls back to the rubric scorer), and `auto` steps down as the
//! day's quota runs out while every interview still reaches its report.
#![allow(
    missing_docs,
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

mod common;

use common::config::Config;
use common::fake::FakeProvider;
use common::server::{mode_figures, Engine};
use common::ws::{create, Client, GOOD_ANSWER};
use serde_json::{json, Value};

fn config(mode: &str, fake: &FakeProvider, limits: &str) -> String {
    Config::new()
        .set("interview.mode", mode)
        .openai_provider("fakeai", &fake.base, limits)
        .toml()
}

fn body(name: &str, questions: u32) -> Value {
    json!({"candidate": {"id": format!("cand-{name}"), "name": name}, "role": "Backend Engineer",
           "track": "technical", "difficulty": "medium", "questions": questions})
}

/// Runs an interview to its report, answering every prompt with `answers` in turn.
async fn run(engine: &Engine, b: Value, answers: &[&str]) -> (Value, Vec<Value>) {
    let c = create(&engine.base, b).await;
    let mut client = Client::connect(&engine.base, &c).await;
    let mut n = 0;
    loop {
        let v = client.next_prompt().await;
        if v["type"] == "report" {
            return (v["report"].clone(), client.logged.clone());
        }
        client.answer(answers[n % answers.len()]).await;
        n += 1;
    }
}

fn is_batch(req: &Value) -> bool {
    req["body"]["messages"][0]["content"]
        .as_str()
        .is_some_and(|s| s.contains("\"evaluations\""))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn economy_grades_all_answers_in_one_batched_call() {
    let fake = FakeProvider::start().await;
    // Item 2 is broken: it keeps the rubric scorer's grade; items 1 and 3 take the provider's.
    let reply = json!({"evaluations": [
        {"item": 1, "score": 9, "reaction": "Great.", "feedback": "Clear and complete.", "rubric_covered": [1]},
        {"item": 2, "score": "not a number"},
        {"item": 3, "score": 2, "reaction": "Hm.", "feedback": "Too thin.", "rubric_covered": []}
    ]})
    .to_string();
    fake.add_key_with(json!({"key": "eco-key", "limits": {}, "reply": reply}))
        .await;
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::start(
        dir.path(),
        &config("economy", &fake, "{ rpm = 1000 }"),
        &[("FAKEAI_API_KEYS", "eco-key".into())],
    );
    // Economy reads the resume with the offline extractor: no call for it either.
    let mut b = body("Eco", 3);
    b["resume_text"] = json!("Eco Lee. Backend developer, 4 years of Python and PostgreSQL.");
    let (report, events) = run(&engine, b, &[GOOD_ANSWER]).await;

    // During the interview every grade is the rubric scorer's: no call per answer.
    let live: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "evaluation")
        .collect();
    assert!(live.len() >= 3, "one per answer, follow-ups included");
    assert!(live.iter().all(|e| e["source"] == "heuristic"), "{live:?}");
    let main = common::ws::main_evaluations(&events);
    assert_eq!(main.len(), 3);

    // The report carries the batched grades item by item.
    let q = report["questions"].as_array().unwrap();
    assert_eq!(q[0]["source"], "llm:fakeai");
    assert_eq!(q[0]["score"], 9);
    assert_eq!(q[0]["feedback"], "Clear and complete.");
    assert_eq!(
        q[1]["source"], "heuristic",
        "a broken item keeps the rubric score"
    );
    assert_eq!(q[1]["score"], main[1]["score"]);
    assert_eq!(q[2]["source"], "llm:fakeai");
    assert_eq!(q[2]["score"], 2);
    assert_eq!(report["level"], "economy");
    assert_eq!(report["state"], "completed");

    // One batched evaluation holding all three answers, and the coach-note call (whose reply, the
    // batch JSON, is not a note and is dropped): two calls for the whole interview, resume included.
    let reqs = fake.requests("eco-key").await;
    assert_eq!(reqs.len(), 2, "{reqs:?}");
    let batch: Vec<&Value> = reqs.iter().filter(|r| is_batch(r)).collect();
    assert_eq!(batch.len(), 1);
    let user = batch[0]["body"]["messages"][1]["content"].as_str().unwrap();
    assert_eq!(user.matches("</candidate_answer>").count(), 3);
    assert!(report["coach_note"].is_null());

    let st = engine.get("/api/optimization_stats", None).await.json;
    let eco = mode_figures(&st, "economy");
    assert_eq!(eco["completed_interviews"], 1);
    assert_eq!(eco["provider_calls_per_completed_interview"], 2.0);
    // Content by source counts each answer once, under the grade it kept: the two regraded
    // answers move from `heuristic` to `llm`; the offline resume analysis adds one `heuristic`.
    let sent_heuristic = events.iter().filter(|e| e["source"] == "heuristic").count() as u64;
    let by = &st["requests_by_source"];
    assert_eq!(by["llm"], 2, "{st}");
    assert_eq!(by["heuristic"], sent_heuristic - 2 + 1, "{st}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_steps_down_as_quota_runs_out_and_every_interview_reaches_its_report() {
    let fake = FakeProvider::start().await;
    // The provider's published limit: 24 requests a day; the engine is told the same.
    fake.add_key_with(json!({"key": "auto-key", "limits": {"rpd": 24}, "reply": "@interviewer"}))
        .await;
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::start(
        dir.path(),
        &config("auto", &fake, "{ rpd = 24 }"),
        &[("FAKEAI_API_KEYS", "auto-key".into())],
    );
    let answers = [
        GOOD_ANSWER,
        "I am not sure. Maybe a cache.",
        "We used retries with backoff and idempotency keys so that a repeated request was safe.",
    ];
    let mut levels = Vec::new();
    let mut reached_heuristic = false;
    for i in 0..40 {
        let (report, events) = run(&engine, body(&format!("auto-{i}"), 4), &answers).await;
        assert_eq!(report["state"], "completed", "interview {i}: {report}");
        assert_eq!(
            report["questions"].as_array().unwrap().len(),
            4,
            "every question was asked"
        );
        assert!(
            report["questions"]
                .as_array()
                .unwrap()
                .iter()
                .all(|q| q["score"].is_u64()),
            "every answer has a grade: {report}"
        );
        assert!(events.iter().any(|e| e["type"] == "report"));
        let level = report["level"].as_str().unwrap().to_string();
        if level == "heuristic" {
            // Nothing left: the rubric scorer and templates carry the interview.
            assert!(events
                .iter()
                .filter(|e| e["type"] == "evaluation")
                .all(|e| e["source"] == "heuristic"));
            reached_heuristic = true;
        }
        levels.push(level);
        if reached_heuristic {
            break;
        }
    }
    // The first interview had the whole day's quota: it used the providers (how far up depends on the
    // time of day, since today's pace divides the quota among the interviews still expected).
    assert_ne!(levels[0], "heuristic", "{levels:?}");
    let reqs = fake.requests("auto-key").await;
    assert!(
        reached_heuristic,
        "the quota ran out: {levels:?}\nrequests: {}\nstatus: {}\nlog: {}",
        reqs.len(),
        engine.status().await,
        engine.log()
    );
    let rank = |l: &str| {
        ["heuristic", "economy", "balanced", "adaptive"]
            .iter()
            .position(|x| *x == l)
            .unwrap()
    };
    assert!(
        levels.windows(2).all(|w| rank(&w[1]) <= rank(&w[0])),
        "levels only step down while quota only shrinks: {levels:?}"
    );

    // The engine kept the key inside its published limit: the fake never said 429.
    assert!(reqs.len() <= 24, "{} requests", reqs.len());
    assert!(reqs.iter().all(|r| r["status"] != 429), "no 429 from us");

    // Steps are logged and shown in status.
    let status = engine.status().await;
    let budget = &status["budget"];
    assert!(budget["steps_down"].as_u64().unwrap() >= 1, "{budget}");
    assert!(!budget["recent_steps"].as_array().unwrap().is_empty());
    assert_eq!(budget["capacity"]["requests"], 24 - reqs.len() as u64);
    assert!(
        status["alerts"]
            .to_string()
            .contains("call budget: interviews are stepping down"),
        "{}",
        status["alerts"]
    );
    assert!(
        engine.log().contains("level"),
        "each step is logged:\n{}",
        engine.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adaptive_generates_the_greeting_a_question_and_the_note_and_reuses_them() {
    let fake = FakeProvider::start().await;
    fake.add_interviewer_key("adaptive-key").await;
    let dir = tempfile::tempdir().unwrap();
    // One variant per key, so the second interview's greeting is certainly the cached one.
    let cfg = format!(
        "{}[cache]\nvariants = 1\n",
        config("adaptive", &fake, "{ rpm = 1000 }")
    );
    let engine = Engine::start(
        dir.path(),
        &cfg,
        &[("FAKEAI_API_KEYS", "adaptive-key".into())],
    );
    let mut b = body("Ada", 4);
    b["resume_text"] =
        json!("Ada Lovelace. 6 years of Go, PostgreSQL and Kubernetes. Built LedgerLite.");
    let (report, events) = run(&engine, b.clone(), &[GOOD_ANSWER]).await;
    assert_eq!(report["level"], "adaptive");

    let greeting = events.iter().find(|e| e["kind"] == "greeting").unwrap();
    assert_eq!(greeting["source"], "llm:fakeai");
    let text = greeting["text"].as_str().unwrap();
    assert!(text.contains("Ada") && !text.contains("{name}"), "{text}");

    // The second-to-last question was generated on a resume topic, with its own rubric.
    let q3 = events
        .iter()
        .find(|e| e["kind"] == "question" && e["turn"] == 3)
        .unwrap();
    assert_eq!(q3["source"], "llm:fakeai", "{q3}");
    let item = &report["questions"][2];
    assert!(
        item["question_id"].as_str().unwrap().starts_with("gen-"),
        "{item}"
    );
    assert!(item["question"].as_str().unwrap().ends_with('?'));
    assert_eq!(report["coach_note"]["source"], "llm:fakeai", "{report}");
    assert!(report["coach_note"]["text"].as_str().unwrap().len() > 20);

    // A second candidate for the same role and track hears the cached opening, with their name.
    b["candidate"] = json!({"id": "cand-grace", "name": "Grace"});
    let (_, events) = run(&engine, b, &[GOOD_ANSWER]).await;
    let greeting = events.iter().find(|e| e["kind"] == "greeting").unwrap();
    assert_eq!(greeting["source"], "cache");
    assert!(greeting["text"].as_str().unwrap().contains("Grace"));
    let greetings = fake
        .requests("adaptive-key")
        .await
        .into_iter()
        .filter(|r| {
            r["body"]["messages"][0]["content"]
                .as_str()
                .unwrap_or("")
                .contains("{name}")
        })
        .count();
    assert_eq!(greetings, 1, "one greeting call for both interviews");
    let st = engine.get("/api/optimization_stats", None).await.json;
    assert!(
        st["cache"]["kinds"].to_string().contains("greeting"),
        "{st}"
    );
}

async fn node_state(engine: &Engine) -> String {
    let s = engine.status().await;
    s["gpu"]["nodes"][0]["state"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

async fn wait_node(engine: &Engine, state: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while node_state(engine).await != state {
        assert!(
            std::time::Instant::now() < deadline,
            "node never {state}: {}",
            engine.status().await
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_steps_back_up_when_a_gpu_node_comes_up() {
    // The only capacity is a local node (an OpenAI-compatible server) still loading its model: it
    // answers 503, so it is down, and interviews start at heuristic.
    let node = FakeProvider::start_with_args(&["--persona", "interviewer"]).await;
    node.add_key("node-key", json!({})).await;
    node.set_loading(true).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = format!(
        "[server]\nbind = \"127.0.0.1:0\"\n[storage]\npath = \"data\"\n[interview]\nmode = \"auto\"\n\
         [gpu]\nprobe_interval_ms = 200\n\n[[gpu_nodes]]\nname = \"local\"\nurl = \"{}\"\n\
         model = \"m\"\nmax_concurrency = 4\napi_key_env = \"LOCAL_NODE_KEY\"\n",
        node.base
    );
    let engine = Engine::start(dir.path(), &cfg, &[("LOCAL_NODE_KEY", "node-key".into())]);
    wait_node(&engine, "down").await;
    let created = engine.post("/api/interviews", &body("Lin", 4), None).await;
    assert_eq!(created.status, 201);
    assert_eq!(created.json["level"], "heuristic", "{}", created.text);
    let c = common::ws::Created {
        id: created.json["interview_id"].as_str().unwrap().into(),
        token: created.json["token"].as_str().unwrap().into(),
    };
    let mut client = Client::connect(&engine.base, &c).await;
    client.next_prompt().await;
    client.answer(GOOD_ANSWER).await;
    let first = client.until(|v| v["type"] == "evaluation").await;
    assert_eq!(first["source"], "heuristic");

    // The node has loaded its model; the next turns step back up.
    node.set_loading(false).await;
    wait_node(&engine, "up").await;
    loop {
        let v = client.next_prompt().await;
        if v["type"] == "report" {
            let report = &v["report"];
            assert_eq!(report["state"], "completed");
            assert_eq!(report["level"], "adaptive", "{report}");
            let steps = report["level_steps"].as_array().unwrap();
            assert!(
                steps.iter().any(|s| s["from"] == "heuristic"
                    && s["to"] == "adaptive"
                    && s["turn"].as_u64() > Some(1)),
                "a step back up after the first turn: {steps:?}"
            );
            break;
        }
        client.answer(GOOD_ANSWER).await;
    }
    let graded_on_node = client
        .logged
        .iter()
        .filter(|e| e["type"] == "evaluation" && e["source"] == "gpu:local")
        .count();
    assert!(graded_on_node >= 1, "{:?}", client.logged);
    let status = engine.status().await;
    assert!(status["budget"]["steps_up"].as_u64().unwrap() >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_cut_off_by_sigkill_is_written_after_restart() {
    let fake = FakeProvider::start().await;
    // Slow answers: the batched evaluation is still in flight when the process dies.
    fake.add_key_with(
        json!({"key": "slow-key", "limits": {}, "reply": "@interviewer", "latency_ms": 3000}),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config("economy", &fake, "{ rpm = 1000 }");
    let env = [("FAKEAI_API_KEYS", "slow-key".to_string())];
    let mut engine = Engine::start(dir.path(), &cfg, &env);
    let c = create(&engine.base, body("Kay", 2)).await;
    let mut client = Client::connect(&engine.base, &c).await;
    loop {
        let v = client.next().await;
        if v["type"] == "interviewer" && v["kind"] == "closing" {
            break;
        }
        if v["type"] == "interviewer" && (v["kind"] == "question" || v["kind"] == "follow_up") {
            client.answer(GOOD_ANSWER).await;
        }
    }
    // The closing is out, the report is not: the end-of-interview work is running.
    engine.kill();
    drop(client);

    let engine = Engine::start(dir.path(), &cfg, &env);
    let path = format!("/api/interviews/{}/report", c.id);
    let first = engine.get(&path, Some(&c.token)).await;
    assert_eq!(first.status, 409, "{}", first.text);
    assert!(first.text.contains("being written"), "{}", first.text);
    // Asking woke the session, which runs the work again and writes the report.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let report = loop {
        let r = engine.get(&path, Some(&c.token)).await;
        if r.status == 200 {
            break r.json;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no report: {}",
            r.text
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    assert_eq!(report["state"], "completed");
    assert_eq!(report["questions"][0]["source"], "llm:fakeai", "{report}");
    assert_eq!(report["coach_note"]["source"], "llm:fakeai", "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admission_reserves_for_the_questions_the_interview_has() {
    let fake = FakeProvider::start().await;
    fake.add_interviewer_key("hold-key").await;
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::start(
        dir.path(),
        &config("balanced", &fake, "{ rpd = 100000 }"),
        &[("FAKEAI_API_KEYS", "hold-key".into())],
    );
    // More questions than the pool can fill without a resume (no technology, no project).
    let created = engine.post("/api/interviews", &body("Hal", 50), None).await;
    assert_eq!(created.status, 201, "{}", created.text);
    assert_eq!(created.json["level"], "balanced");
    let id = created.json["interview_id"].as_str().unwrap();
    let token = created.json["token"].as_str().unwrap();
    let got = engine
        .get(&format!("/api/interviews/{id}"), Some(token))
        .await;
    let planned = got.json["questions_total"].as_u64().unwrap();
    assert!(planned < 50, "the pool filled {planned} of 50");
    // Nothing is reserved until the candidate connects (interviews nobody opens hold no quota).
    let status = engine.status().await;
    assert_eq!(
        status["budget"]["reserved_calls"].as_f64(),
        Some(0.0),
        "{}",
        status["budget"]
    );
    let c = common::ws::Created {
        id: id.to_string(),
        token: token.to_string(),
    };
    let mut client = Client::connect(&engine.base, &c).await;
    client.next_prompt().await;
    // Balanced reserves one evaluation per question and the coach note: for the planned ones.
    let status = engine.status().await;
    assert_eq!(
        status["budget"]["reserved_calls"].as_f64(),
        Some(1.0 + planned as f64),
        "{}",
        status["budget"]
    );
}
