//! Per-client limits (`[limits]`) against the real binary: creations, resume analyses and open
//! sockets per client behind a trusted proxy (`X-Forwarded-For`), answers per second per connection,
//! the loopback exemption, interviews that never connect (no quota reserved, out of memory after
//! `pending_ttl_s`) and the cap on live sessions (503 with `Retry-After`).
#![allow(
    missing_docs,
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

mod common;

use std::time::Duration;

use common::attack::RawWs;
use common::config::{table, Config};
use common::fake::FakeProvider;
use common::server::Engine;
use common::ws::{Client, Created};
use serde_json::{json, Value};

fn config(limits: &str, extra: &str) -> String {
    Config::new().set("limits", table(limits)).toml_with(extra)
}

fn body(name: &str, questions: u32) -> Value {
    json!({"candidate": {"id": format!("cand-{name}"), "name": name}, "role": "Backend Engineer",
           "track": "technical", "difficulty": "medium", "questions": questions})
}

/// POST /api/interviews as the client `forwarded_for` (through the test, a "proxy" on loopback).
async fn create_as(
    engine: &Engine,
    forwarded_for: Option<&str>,
    b: &Value,
) -> (u16, Value, Option<u64>) {
    let mut rb = reqwest::Client::new()
        .post(format!("{}/api/interviews", engine.base))
        .json(b);
    if let Some(x) = forwarded_for {
        rb = rb.header("x-forwarded-for", x);
    }
    let r = rb.send().await.unwrap();
    let status = r.status().as_u16();
    let retry = r
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    (status, r.json().await.unwrap_or(Value::Null), retry)
}

fn created(v: &Value) -> Created {
    Created {
        id: v["interview_id"].as_str().unwrap().into(),
        token: v["token"].as_str().unwrap().into(),
    }
}

/// Behind a trusted proxy the client is the address the proxy puts in `X-Forwarded-For`: 20
/// creations (the burst) pass, the 21st is 429 `rate_limited` with `Retry-After`; another client is
/// not affected; what a client writes to the left of the proxy's entry is not believed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creations_are_limited_per_client_behind_a_trusted_proxy() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::start(
        dir.path(),
        &config("trusted_proxies = [\"127.0.0.1/32\"]", ""),
        &[],
    );
    let b = body("Mallory", 1);
    for i in 0..20 {
        let (status, v, _) = create_as(&engine, Some("203.0.113.5"), &b).await;
        assert_eq!(status, 201, "creation {i}: {v}");
    }
    let (status, v, retry) = create_as(&engine, Some("203.0.113.5"), &b).await;
    assert_eq!(status, 429, "{v}");
    assert_eq!(v["error"]["code"], "rate_limited", "{v}");
    let retry = retry.expect("a Retry-After header");
    assert!((1..=60).contains(&retry), "Retry-After {retry}");
    // Forging an earlier hop does not make a new client.
    let (status, _, _) = create_as(&engine, Some("6.6.6.6, 203.0.113.5"), &b).await;
    assert_eq!(status, 429);
    // Another client is served.
    let (status, v, _) = create_as(&engine, Some("203.0.113.6"), &b).await;
    assert_eq!(status, 201, "{v}");
}

/// Local tools and tests run free (loopback exempt) unless `limits.loopback` is set; a client's
/// own `X-Forwarded-For` is ignored when no proxy is trusted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loopback_is_exempt_unless_configured_and_forged_headers_are_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::start(dir.path(), &config("creations_burst = 3", ""), &[]);
    for i in 0..10 {
        let (status, v, _) = create_as(&engine, Some("203.0.113.5"), &body("Local", 1)).await;
        assert_eq!(status, 201, "creation {i}: {v}");
    }
    drop(engine);
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::start(
        dir.path(),
        &config("creations_burst = 3\nloopback = true", ""),
        &[],
    );
    for i in 0..3 {
        // A different forged address each time: it changes nothing, the peer is the client.
        let ip = format!("198.51.100.{i}");
        let (status, v, _) = create_as(&engine, Some(&ip), &body("Local", 1)).await;
        assert_eq!(status, 201, "creation {i}: {v}");
    }
    let (status, v, _) = create_as(&engine, Some("198.51.100.99"), &body("Local", 1)).await;
    assert_eq!(status, 429, "{v}");
}

/// Resume analyses (by themselves or with a new interview) are limited per client per hour, so an
/// anonymous client cannot spend the provider quota on them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_analyses_are_limited_per_client() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::start(
        dir.path(),
        &config("loopback = true\nresume_analyses_per_hour = 3", ""),
        &[],
    );
    let http = reqwest::Client::new();
    let analyze = |n: u32| {
        let http = http.clone();
        let url = format!("{}/api/resume/analyze", engine.base);
        async move {
            let r = http
                .post(url)
                .json(&json!({"resume_text": format!("Rust developer {n}, 5 years, built a compiler.")}))
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.headers().contains_key("retry-after"))
        }
    };
    for n in 0..2 {
        assert_eq!(analyze(n).await.0, 200);
    }
    let mut b = body("Res", 1);
    b["resume_text"] = json!("Go developer, 3 years.");
    let (status, v, _) = create_as(&engine, None, &b).await;
    assert_eq!(status, 201, "{v}");
    assert_eq!(analyze(9).await, (429, true));
    let (status, v, _) = create_as(&engine, None, &b).await;
    assert_eq!((status, &v["error"]["code"]), (429, &json!("rate_limited")));
    // An interview without a resume is still welcome.
    let (status, _, _) = create_as(&engine, None, &body("NoRes", 1)).await;
    assert_eq!(status, 201);
}

/// Open sockets per client: the third is refused with 429 before the upgrade; closing one makes room.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_sockets_are_limited_per_client() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::start(
        dir.path(),
        &config(
            "trusted_proxies = [\"127.0.0.1/32\"]\nwebsockets_per_client = 2",
            "",
        ),
        &[],
    );
    let xff = [("X-Forwarded-For", "203.0.113.5")];
    let mut open = Vec::new();
    for i in 0..3 {
        let (_, v, _) =
            create_as(&engine, Some(&format!("198.51.100.{i}")), &body("Sock", 1)).await;
        open.push(created(&v));
    }
    let path = |c: &Created| format!("/ws/interviews/{}?token={}", c.id, c.token);
    let first = RawWs::connect(&engine.base, &path(&open[0]), &xff)
        .await
        .unwrap();
    let _second = RawWs::connect(&engine.base, &path(&open[1]), &xff)
        .await
        .unwrap();
    let refused = RawWs::connect(&engine.base, &path(&open[2]), &xff).await;
    let Err((status, text)) = refused else {
        panic!("a third socket for one client")
    };
    assert_eq!(status, 429, "{text}");
    assert!(text.contains("rate_limited") && text.to_lowercase().contains("retry-after"));
    // Another client may connect.
    let other = [("X-Forwarded-For", "203.0.113.6")];
    assert!(RawWs::connect(&engine.base, &path(&open[2]), &other)
        .await
        .is_ok());
    // Closing one frees its place (as soon as the server notices).
    drop(first);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        match RawWs::connect(&engine.base, &path(&open[0]), &xff).await {
            Ok(_) => break,
            Err((429, _)) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            Err(e) => panic!("{e:?}"),
        }
    }
}

/// Answers per second per connection: a burst beyond it is refused with `rate_limited` (nothing
/// recorded); the answer that was within it is evaluated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_are_limited_per_connection() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::start(
        dir.path(),
        &config(
            "loopback = true\nanswers_per_second = 1\nanswers_burst = 1",
            "",
        ),
        &[],
    );
    let (_, v, _) = create_as(&engine, None, &body("Fast", 2)).await;
    let c = created(&v);
    let mut client = Client::connect(&engine.base, &c).await;
    let q = client.next_prompt().await;
    for k in 0..10 {
        client
            .send(json!({"type": "answer", "text": format!("answer {k}"), "turn": 1, "seq": q["seq"]}))
            .await;
    }
    let (mut limited, mut others, mut evaluated) = (0, 0, 0);
    while limited + others < 9 || evaluated == 0 {
        let ev = client.next().await;
        match (ev["type"].as_str(), ev["code"].as_str()) {
            (Some("error"), Some("rate_limited")) => limited += 1,
            (Some("error"), _) => others += 1,
            (Some("evaluation"), _) => evaluated += 1,
            _ => {}
        }
    }
    assert!(
        limited >= 5,
        "{limited} refused for the rate, {others} otherwise"
    );
    let st: Value = engine
        .get(&format!("/api/interviews/{}", c.id), Some(&c.token))
        .await
        .json;
    let evaluations = st["transcript"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "evaluation")
        .count();
    assert_eq!(evaluations, 1, "one answer recorded");
}

/// Issue 16: 300 never-connected 50-question interviews reserved a day's provider calls. Now an
/// interview reserves its share when its candidate connects: creations reserve nothing, the first
/// connection does, and a session nobody uses leaves memory after `pending_ttl_s`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interviews_that_never_connect_reserve_nothing_and_leave_memory() {
    let fake = FakeProvider::start().await;
    fake.add_interviewer_key("pending-key").await;
    let dir = tempfile::tempdir().unwrap();
    let extra = format!(
        "[interview]\nmode = \"balanced\"\n[providers.fakeai]\nformat = \"openai\"\nbase_url = \"{}/v1\"\nmodel = \"m\"\npriority = 1\nkeys_env = \"FAKEAI_API_KEYS\"\nlimits = {{ rpm = 1000, rpd = 1000 }}\n",
        fake.base
    );
    let engine = Engine::start(
        dir.path(),
        &config("pending_ttl_s = 2", &extra),
        &[("FAKEAI_API_KEYS", "pending-key".into())],
    );
    for i in 0..40 {
        let (status, v, _) = create_as(&engine, None, &body(&format!("Ghost{i}"), 50)).await;
        assert_eq!(status, 201, "{v}");
    }
    let budget = &engine.status().await["budget"];
    assert_eq!(budget["reserved_calls"].as_f64(), Some(0.0), "{budget}");
    // A real candidate is admitted at the level of their mode, and reserves at their first connection.
    // (Had the 40 reserved their 50 evaluations each, nothing would be left for this one.)
    let (_, v, _) = create_as(&engine, None, &body("Real", 3)).await;
    assert_eq!(v["level"], "balanced", "{v}");
    let c = created(&v);
    let mut client = Client::connect(&engine.base, &c).await;
    client.next_prompt().await;
    let budget = &engine.status().await["budget"];
    assert_eq!(
        budget["reserved_calls"].as_f64(),
        Some(4.0),
        "3 evaluations and the note: {budget}"
    );
    // Connected and gone without an answer: out of memory after pending_ttl_s, hold released.
    client.drop_connection().await;
    let mut ghosts = Vec::new();
    for i in 0..10 {
        let (_, v, _) = create_as(&engine, None, &body(&format!("Visit{i}"), 5)).await;
        let c = created(&v);
        let mut cl = Client::connect(&engine.base, &c).await;
        cl.next_prompt().await;
        ghosts.push(c);
        cl.drop_connection().await;
    }
    assert!(engine.metric("interview_engine_sessions_live").await >= 1.0);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while engine.metric("interview_engine_sessions_live").await > 0.0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "sessions nobody uses are still live"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let budget = &engine.status().await["budget"];
    assert_eq!(budget["reserved_calls"].as_f64(), Some(0.0), "{budget}");
    // Their records stay: a candidate who comes back carries on where they were.
    let (mut back, ready) = Client::reconnect(&engine.base, &ghosts[0], 0).await;
    assert_eq!(ready["state"], "awaiting_answer");
    assert_eq!(ready["question_index"], 1);
    back.answer(common::ws::GOOD_ANSWER).await;
    let ev = back.until(|v| v["type"] == "evaluation").await;
    assert_eq!(ev["turn"], 1);
}

/// A cap on live sessions per node: beyond it, a connection that needs a new session and a new
/// interview are refused with 503 and `Retry-After`; sessions already live are not affected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_sessions_are_capped_per_node() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::start(
        dir.path(),
        &config("max_live_sessions = 2\nbusy_retry_after_s = 7", ""),
        &[],
    );
    let mut ids = Vec::new();
    for i in 0..3 {
        let (_, v, _) = create_as(&engine, None, &body(&format!("Cap{i}"), 2)).await;
        ids.push(created(&v));
    }
    let mut a = Client::connect(&engine.base, &ids[0]).await;
    a.next_prompt().await;
    let mut b = Client::connect(&engine.base, &ids[1]).await;
    b.next_prompt().await;
    let path = format!("/ws/interviews/{}?token={}", ids[2].id, ids[2].token);
    let Err((status, text)) = RawWs::connect(&engine.base, &path, &[]).await else {
        panic!("a third live session on a node capped at two")
    };
    assert_eq!(status, 503, "{text}");
    assert!(text.to_lowercase().contains("retry-after: 7"), "{text}");
    assert!(text.contains("\"busy\""), "{text}");
    let (status, v, retry) = create_as(&engine, None, &body("Cap3", 2)).await;
    assert_eq!((status, retry), (503, Some(7)), "{v}");
    // A live interview can still be reconnected to.
    a.drop_connection().await;
    let (mut again, _) = Client::reconnect(&engine.base, &ids[0], 0).await;
    again.answer(common::ws::GOOD_ANSWER).await;
    again.until(|v| v["type"] == "evaluation").await;
}
