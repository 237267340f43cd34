//! The candidate page (`GET /`) end to end: headless Chromium, driven over WebDriver, takes whole
//! interviews against the real engine binary: start form, answers, scores, report, reconnects.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::browser::Browser;
use common::server::Engine;
use serde_json::{json, Value};

const CONFIG: &str =
    "[server]\nbind = \"127.0.0.1:0\"\n[storage]\npath = \"data\"\n[interview]\nquestions = 3\n";

/// Answers that read like a candidate's: several sentences, concrete, structured.
const ANSWERS: &[&str] = &[
    "In my last role I owned the payments API, a service handling about two thousand requests per second. \
     When latency spiked during a sale, I profiled it and found lock contention in the database connection pool. \
     I replaced the global mutex with per-shard pools and added a load test to our CI pipeline. \
     The p99 latency dropped from 900 ms to 120 ms, and I wrote a runbook so the on-call team could spot it early.",
    "I would start by clarifying the requirements and the expected traffic, then sketch the simplest design that works. \
     For storage I would pick a relational database with an index on the lookup key, and put a cache in front for hot reads. \
     The trade-off is consistency against latency, so I would use short TTLs and invalidate on writes. \
     Finally I would add metrics, alerts and a rollback plan before launching it to all users.",
    "A teammate and I disagreed about rewriting a legacy module. I asked for a meeting, listened to his concerns, \
     and we wrote down the risks and costs of both options with data from production. \
     We agreed to refactor it in small steps behind a feature flag instead of a big rewrite. \
     It shipped on time with no incidents, and we both learned to decide with evidence rather than opinions.",
];

fn start_engine() -> (tempfile::TempDir, Engine) {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::start(dir.path(), CONFIG, &[]);
    (dir, engine)
}

/// Opens the page, fills the start form and starts an interview of three questions.
async fn start_interview(b: &Browser, base: &str, name: &str) {
    b.goto(&format!("{base}/")).await;
    let name_el = b.wait_for("#name", Duration::from_secs(10)).await;
    b.clear(&name_el).await;
    b.type_into(&name_el, name).await;
    let role = b.find("#role").await.expect("#role");
    b.clear(&role).await;
    b.type_into(&role, "Backend Engineer").await;
    b.select_value("#track", "mixed").await;
    b.select_value("#difficulty", "medium").await;
    let questions = b.find("#questions").await.expect("#questions");
    b.clear(&questions).await;
    b.type_into(&questions, "3").await;
    assert!(b.find("#resume").await.is_some(), "resume textarea");
    let start = b.find("#start").await.expect("#start");
    b.click(&start).await;
    b.wait_until(
        "return document.querySelector('#status').dataset.state === 'connected';",
        Duration::from_secs(20),
        "the page to connect",
    )
    .await;
}

/// The page's state in one round trip.
async fn page_state(b: &Browser) -> Value {
    b.exec(
        "const a = document.querySelector('#answer'), r = document.querySelector('#report');
         return { open: !!a && !a.disabled,
                  report: !!r && !r.hidden && r.hasAttribute('data-overall'),
                  status: document.querySelector('#status').dataset.state,
                  errors: [...document.querySelectorAll('#notices .notice')].map(n => n.textContent) };",
        vec![],
    )
    .await
}

/// Answers every open question (and follow-up) until the report is shown; returns how many
/// answers were sent.
async fn answer_until_report(b: &Browser, engine: &Engine) -> usize {
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut sent = 0;
    loop {
        let state = page_state(b).await;
        if state["report"] == json!(true) {
            return sent;
        }
        if state["open"] == json!(true) {
            let answer = b.find("#answer").await.expect("#answer");
            b.type_into(&answer, ANSWERS[sent % ANSWERS.len()]).await;
            let send = b.find("#send").await.expect("#send");
            b.click(&send).await;
            sent += 1;
            b.wait_until(
                "return document.querySelector('#answer').value === '';",
                Duration::from_secs(5),
                "the answer box to empty after sending",
            )
            .await;
        }
        if Instant::now() > deadline {
            panic!(
                "no report after {sent} answers; page state {state}\n--- page ---\n{}\n--- engine log ---\n{}",
                b.source_tail(6000).await,
                engine.log()
            );
        }
        assert!(sent < 20, "more than 20 answers for 3 questions: {state}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Checks the visible result: evaluation cards with a band, the inline report, no duplicated
/// bubbles, and none of the engine's internal words on the page.
async fn check_finished_page(b: &Browser) {
    let bands = b
        .exec(
            "return [...document.querySelectorAll('#messages .evaluation')].map(e => e.dataset.band);",
            vec![],
        )
        .await;
    let bands = bands.as_array().unwrap();
    assert!(!bands.is_empty(), "no evaluation cards");
    for band in bands {
        assert!(
            ["solid", "partial", "not_yet"].contains(&band.as_str().unwrap()),
            "band {band}"
        );
    }

    let report = b.find("#report").await.expect("#report");
    assert!(b.displayed(&report).await, "#report visible");
    let overall = b.attr(&report, "data-overall").await.expect("data-overall");
    assert!(
        ["solid", "partial", "not_yet"].contains(&overall.as_str()),
        "overall band {overall:?}"
    );
    assert_eq!(
        b.find_all("#report .report-question").await.len(),
        3,
        "report lists 3 questions"
    );

    let questions = b
        .find_all("#messages .msg.interviewer[data-kind=\"question\"]")
        .await;
    assert_eq!(questions.len(), 3, "exactly three question bubbles");
    let bubbles = b
        .exec(
            "return [...document.querySelectorAll('#messages .msg.interviewer')]
                 .map(m => [m.dataset.turn, m.dataset.kind, m.querySelector('.text').textContent].join('|'));",
            vec![],
        )
        .await;
    let bubbles: Vec<String> = serde_json::from_value(bubbles).unwrap();
    let unique: HashSet<&String> = bubbles.iter().collect();
    assert_eq!(
        unique.len(),
        bubbles.len(),
        "duplicated interviewer bubbles: {bubbles:#?}"
    );
    assert_no_internal_words(b).await;
}

/// The words the engine uses internally never reach the candidate's screen.
async fn assert_no_internal_words(b: &Browser) {
    let text = b
        .exec("return document.body.innerText;", vec![])
        .await
        .as_str()
        .unwrap()
        .to_string();
    for word in [
        "heuristic",
        "template",
        "llm:",
        "Auto mode",
        "Candidate ID",
        "Technical easy",
        "Technical medium",
        "Technical hard",
        "/10",
        "scored by",
        "economy",
        "adaptive",
    ] {
        assert!(
            !text.to_lowercase().contains(&word.to_lowercase()),
            "{word:?} on the candidate's page:\n{text}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn candidate_page_runs_a_whole_interview() {
    let (_dir, engine) = start_engine();
    let b = Browser::start().await;
    start_interview(&b, &engine.base, "Grace Hopper").await;

    let sent = answer_until_report(&b, &engine).await;
    assert!(sent >= 3, "answered {sent} times");
    check_finished_page(&b).await;
    let candidate_bubbles = b.find_all("#messages .msg.candidate").await.len();
    assert_eq!(candidate_bubbles, sent, "one bubble per answer sent");

    let shot = std::env::temp_dir().join("ie-candidate-page-report.png");
    b.screenshot(&shot).await;

    // The full HTML report, through the link the page shows.
    let link = b
        .exec(
            "return document.querySelector('#report-link').href;",
            vec![],
        )
        .await;
    let link = link.as_str().expect("report link").to_string();
    assert!(
        link.contains("format=html") && link.contains("token="),
        "{link}"
    );
    b.goto(&link).await;
    let source = b.source().await;
    assert!(
        source.contains("Grace Hopper"),
        "candidate name in the HTML report:\n{source}"
    );
    assert!(
        source.contains("Backend Engineer"),
        "role in the HTML report"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn candidate_page_reconnects_after_a_drop() {
    let (_dir, engine) = start_engine();
    let b = Browser::start().await;
    start_interview(&b, &engine.base, "Alan Turing").await;

    // After the first answer, drop the live socket.
    let drop_script =
        "window.__ieOldSocket = window.__ieSocket; window.__ieSocket.close(); return true;";
    let mut dropped = false;
    let deadline = Instant::now() + Duration::from_secs(60);
    while !dropped {
        let state = page_state(&b).await;
        assert!(state["report"] != json!(true), "finished before the drop");
        if state["open"] == json!(true) {
            let answer = b.find("#answer").await.unwrap();
            b.type_into(&answer, ANSWERS[0]).await;
            b.click(&b.find("#send").await.unwrap()).await;
            b.exec(drop_script, vec![]).await;
            dropped = true;
        }
        assert!(Instant::now() < deadline, "no question opened: {state}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    b.wait_until(
        "return window.__ieSocket && window.__ieSocket !== window.__ieOldSocket
             && window.__ieSocket.readyState === 1
             && document.querySelector('#status').dataset.state === 'connected';",
        Duration::from_secs(15),
        "a new connection after the drop",
    )
    .await;
    let status = b.text(&b.find("#status").await.unwrap()).await;
    assert!(
        status.to_lowercase().contains("connected"),
        "status line: {status:?}"
    );

    // And once more, at a quiet moment, with the page reloaded: it resumes the same interview.
    let interview_before = b
        .exec(
            "return JSON.parse(sessionStorage.getItem('ie.session')).interview_id;",
            vec![],
        )
        .await;
    let bubbles_before = b.find_all("#messages .msg").await.len();
    b.goto(&format!("{}/", engine.base)).await;
    b.wait_until(
        "return document.querySelector('#status').dataset.state === 'connected';",
        Duration::from_secs(20),
        "the reloaded page to reconnect",
    )
    .await;
    let interview_after = b
        .exec(
            "return JSON.parse(sessionStorage.getItem('ie.session')).interview_id;",
            vec![],
        )
        .await;
    assert_eq!(
        interview_before, interview_after,
        "same interview after reload"
    );
    assert!(
        b.find_all("#messages .msg").await.len() >= bubbles_before,
        "the conversation is back after reload"
    );

    answer_until_report(&b, &engine).await;
    check_finished_page(&b).await;
}

/// The operator's dashboard (`GET /admin`) in the browser, after one interview against a provider key:
/// the key's row, the mode's calls per interview and the cache figures are what the JSON stats say.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_dashboard_shows_keys_budget_and_modes() {
    let fake = common::fake::FakeProvider::start().await;
    fake.add_interviewer_key("dash-key-SECRETVALUE").await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = format!(
        "{CONFIG}mode = \"balanced\"\n[providers.fakeai]\nformat = \"openai\"\nbase_url = \"{}/v1\"\n\
         model = \"m\"\npriority = 1\nkeys_env = \"FAKEAI_API_KEYS\"\nlimits = {{ rpm = 600, rpd = 900 }}\n",
        fake.base
    );
    let engine = Engine::start(
        dir.path(),
        &cfg,
        &[("FAKEAI_API_KEYS", "dash-key-SECRETVALUE".into())],
    );
    let c = common::ws::create(
        &engine.base,
        json!({"candidate": {"id": "dash-1", "name": "Dee"}, "role": "Backend Engineer",
               "track": "technical", "mode": "balanced", "questions": 2}),
    )
    .await;
    let mut client = common::ws::Client::connect(&engine.base, &c).await;
    client.finish_with(common::ws::GOOD_ANSWER).await;
    let stats = engine.get("/api/optimization_stats", None).await.json;
    let balanced = common::server::mode_figures(&stats, "balanced");

    let b = Browser::start().await;
    b.goto(&format!("{}/admin", engine.base)).await;
    let row = b
        .wait_for("#keys tr[data-key='fakeai#1']", Duration::from_secs(10))
        .await;
    let text = b.text(&row).await;
    assert!(text.contains("healthy"), "{text}");
    let served = fake.stats().await["dash-key-SECRETVALUE"]["served"]
        .as_u64()
        .unwrap();
    assert!(
        text.contains(&format!("{served} / 900")),
        "the daily window shows every request served ({served}): {text}"
    );
    let mode = b.find("#modes tr[data-mode='balanced']").await.unwrap();
    let mode_text = b.text(&mode).await;
    let calls = balanced["provider_calls"].as_u64().unwrap();
    assert!(
        mode_text.starts_with(&format!("balanced 1 {calls}")),
        "one completed interview and its {calls} calls: {mode_text}"
    );
    let live = b.find("#open-sessions b").await.unwrap();
    assert!(b.text(&live).await.parse::<u64>().is_ok());
    let alerts = b.find("#alerts").await.unwrap();
    assert!(b.text(&alerts).await.contains("No alerts."));
    assert!(!b.source().await.contains("SECRETVALUE"));
    let shot = std::env::temp_dir().join("ie-admin-dashboard.png");
    b.screenshot(&shot).await;
}
