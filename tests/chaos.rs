//! Chaos: interviews at the adaptive level against providers of which about 30 % of the answers
//! fail (HTTP 500, a timeout, 429 with `Retry-After`, malformed JSON, a cut stream), over three keys.
//! Every interview completes, and every answer gets a provider's grade: the pool fails over and
//! waits for keys within the evaluation's deadline rather than falling back to the rubric scorer.
#![allow(
    missing_docs,
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::fake::FakeProvider;
use common::server::Engine;
use common::ws::{create, Client, GOOD_ANSWER};
use serde_json::json;

const KEYS: [&str; 3] = ["chaos-a", "chaos-b", "chaos-c"];
const FAULTS: [&str; 5] = [
    "http_500",
    "timeout",
    "rate_limit",
    "malformed",
    "cut_stream",
];
const SHARE: f64 = 0.3;

/// Keeps about `SHARE` of each key's requests faulty: whenever a key's injected faults fall behind
/// that share of its requests, the next request gets a fault (kinds in turn).
async fn inject(fake: Arc<FakeProvider>, stop: Arc<AtomicBool>) -> (u64, u64) {
    let mut pending: HashMap<&str, u64> = HashMap::new();
    let mut turn = 0usize;
    let (mut requests, mut faults) = (0, 0);
    while !stop.load(Ordering::Relaxed) {
        let stats = fake.stats().await;
        (requests, faults) = (0, 0);
        for key in KEYS {
            let s = &stats[key];
            let (req, injected) = (
                s["requests"].as_u64().unwrap_or(0),
                s["faults_injected"].as_u64().unwrap_or(0),
            );
            requests += req;
            faults += injected;
            let armed = pending.get(key).is_some_and(|at| *at == injected);
            if !armed && (injected as f64) < SHARE * (req + 1) as f64 {
                fake.set_fault(key, Some(FAULTS[turn % FAULTS.len()]), Some(1))
                    .await;
                turn += 1;
                pending.insert(key, injected);
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    (requests, faults)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_interview_completes_and_every_answer_is_graded_by_a_provider_under_30_percent_faults(
) {
    let fake = Arc::new(FakeProvider::start().await);
    for k in KEYS {
        fake.add_interviewer_key(k).await;
    }
    let dir = tempfile::tempdir().unwrap();
    let cfg = format!(
        "[server]\nbind = \"127.0.0.1:0\"\n[storage]\npath = \"data\"\n\
         [interview]\nmode = \"adaptive\"\neval_deadline_ms = 60000\n\
         [pool]\nrequest_timeout_ms = 1500\nmax_attempts = 12\nbreaker_failures = 3\nbreaker_cooldown_ms = 500\ndefault_retry_after_ms = 1000\n\
         [providers.fakeai]\nformat = \"openai\"\nbase_url = \"{}/v1\"\nmodel = \"m\"\npriority = 1\n\
         keys_env = \"FAKEAI_API_KEYS\"\nlimits = {{ rpm = 100000 }}\n",
        fake.base
    );
    let engine = Engine::start(dir.path(), &cfg, &[("FAKEAI_API_KEYS", KEYS.join(","))]);
    let stop = Arc::new(AtomicBool::new(false));
    let injector = tokio::spawn(inject(fake.clone(), stop.clone()));

    let mut runs = Vec::new();
    for i in 0..6 {
        let base = engine.base.clone();
        runs.push(tokio::spawn(async move {
            let b = json!({"candidate": {"id": format!("chaos-{i}"), "name": format!("Chaos {i}")},
                           "role": "Backend Engineer", "questions": 3});
            let c = create(&base, b).await;
            let mut client = Client::connect(&base, &c).await;
            client.wait = Duration::from_secs(120);
            // A different answer each time, so that every grade is a provider call (no cache hit).
            let mut n = 0;
            let report = loop {
                let v = client.next_prompt().await;
                if v["type"] == "report" {
                    break v;
                }
                n += 1;
                client
                    .answer(&format!("{GOOD_ANSWER} In interview {i}, answer {n}."))
                    .await;
            };
            (report, client.logged.clone())
        }));
    }
    let mut evaluations = Vec::new();
    for r in runs {
        let (report, events) = r.await.expect("an interview did not complete");
        assert_eq!(report["report"]["state"], "completed", "{report}");
        evaluations.extend(events.into_iter().filter(|e| e["type"] == "evaluation"));
    }
    stop.store(true, Ordering::Relaxed);
    let (requests, faults) = injector.await.unwrap();
    eprintln!(
        "{faults} faults in {requests} provider requests; {} evaluations",
        evaluations.len()
    );
    assert!(evaluations.len() >= 18, "every answer evaluated");
    for e in &evaluations {
        assert!(
            e["source"].as_str().is_some_and(|s| s.starts_with("llm:")),
            "graded by the rubric scorer despite the deadline: {e}\n{}",
            engine
                .log()
                .lines()
                .filter(|l| l.contains("WARN")
                    || l.contains("ERROR")
                    || l.contains("level")
                    || l.contains("no provider"))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    assert!(
        faults as f64 >= 0.2 * requests as f64 && faults >= FAULTS.len() as u64,
        "the chaos happened: {faults} faults in {requests} requests"
    );
}
