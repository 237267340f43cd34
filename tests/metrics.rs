//! `GET /metrics` against the real binary: an admin route in the Prometheus text format whose figures
//! are the same as `/api/optimization_stats`, `/api/system_status` and the fake provider's own counts,
//! with no secret in it; `GET /admin` (the dashboard) is guarded the same way.
#![allow(
    missing_docs,
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

mod common;

use std::collections::{BTreeMap, HashMap};

use common::fake::FakeProvider;
use common::server::{mode_figures, Engine};
use common::ws::{create, Client, GOOD_ANSWER};
use serde_json::json;

const ADMIN: &str = "metrics-admin-SECRETVALUE";
const KEY: &str = "metrics-key-SECRETVALUE";

/// One sample: metric name and labels (sorted), as written in the exposition.
type Sample = (String, BTreeMap<String, String>);

/// Parses the text format: `# HELP` / `# TYPE` lines and `name{label="value",...} number` samples.
fn parse(text: &str) -> (HashMap<String, String>, HashMap<Sample, f64>) {
    let mut types = HashMap::new();
    let mut samples = HashMap::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("# TYPE name kind");
            types.insert(name.to_string(), kind.to_string());
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("sample: series value");
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("a number: {line}"));
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => {
                let body = rest.strip_suffix('}').expect("labels end with }");
                let labels = body
                    .split("\",")
                    .filter(|p| !p.is_empty())
                    .map(|p| {
                        let (k, v) = p.split_once("=\"").expect("label=\"value\"");
                        (k.to_string(), v.trim_end_matches('"').to_string())
                    })
                    .collect();
                (name.to_string(), labels)
            }
            None => (series.to_string(), BTreeMap::new()),
        };
        samples.insert((name, labels), value);
    }
    (types, samples)
}

fn sample(samples: &HashMap<Sample, f64>, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let labels = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    samples.get(&(name.to_string(), labels)).copied()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_agree_with_the_stats_and_the_provider_and_keep_secrets() {
    let fake = FakeProvider::start().await;
    fake.add_interviewer_key(KEY).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = format!(
        "[server]\nbind = \"127.0.0.1:0\"\nadmin_token = \"{ADMIN}\"\n[storage]\npath = \"data\"\n\
         [interview]\nmode = \"balanced\"\n\
         [providers.fakeai]\nformat = \"openai\"\nbase_url = \"{}/v1\"\nmodel = \"m\"\npriority = 1\n\
         keys_env = \"FAKEAI_API_KEYS\"\nlimits = {{ rpm = 1000, rpd = 500 }}\n",
        fake.base
    );
    let engine = Engine::start(dir.path(), &cfg, &[("FAKEAI_API_KEYS", KEY.into())]);

    // An admin route: no token, or a wrong one, is a 401 with the JSON error and no figures.
    let r = engine.get("/metrics", None).await;
    assert_eq!(r.status, 401, "{}", r.text);
    assert_eq!(r.json["error"]["code"], "unauthorized", "{}", r.text);
    let r = engine.get("/metrics", Some("wrong")).await;
    assert_eq!(r.status, 401);
    // The dashboard sends a visitor without a session to the login form (303, followed here).
    let r = engine.get("/admin", None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(
        r.text.contains("id=\"login\"") && !r.text.contains("id=\"keys\""),
        "the login form, no figures: {}",
        r.text
    );

    // One balanced interview of two questions, to its report.
    let c = create(
        &engine.base,
        json!({"candidate": {"id": "m-1", "name": "Mia"}, "role": "Backend Engineer",
               "track": "technical", "mode": "balanced", "questions": 2}),
    )
    .await;
    let mut client = Client::connect(&engine.base, &c).await;
    client.finish_with(GOOD_ANSWER).await;

    let r = engine.get("/metrics", Some(ADMIN)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(
        r.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4"),
        "{:?}",
        r.headers
    );
    assert!(!r.text.contains("SECRETVALUE"), "no secret in the metrics");
    let (types, samples) = parse(&r.text);
    assert!(samples
        .keys()
        .all(|(name, _)| name.starts_with("interview_engine_")));
    assert_eq!(types["interview_engine_provider_calls_total"], "counter");
    assert_eq!(types["interview_engine_cache_entries"], "gauge");
    assert_eq!(types["interview_engine_content_pieces"], "gauge");

    // The same figures as the JSON stats and the fake's own count.
    let stats = engine
        .get("/api/optimization_stats", Some(ADMIN))
        .await
        .json;
    let balanced = mode_figures(&stats, "balanced");
    let calls = sample(
        &samples,
        "interview_engine_provider_calls_total",
        &[("mode", "balanced")],
    )
    .unwrap();
    assert_eq!(calls, balanced["provider_calls"].as_f64().unwrap());
    let served = fake.stats().await[KEY]["served"].as_f64().unwrap();
    assert!(
        calls >= 3.0,
        "two evaluations and the coach note at least: {calls}"
    );
    assert_eq!(calls, served, "every call the provider served is counted");
    assert_eq!(
        sample(
            &samples,
            "interview_engine_interviews_completed_total",
            &[("mode", "balanced")]
        ),
        Some(1.0)
    );
    for kind in ["evaluation", "summary"] {
        let k = stats["cache"]["kinds"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["kind"] == kind)
            .unwrap()
            .clone();
        assert_eq!(
            sample(
                &samples,
                "interview_engine_cache_misses_total",
                &[("kind", kind)]
            ),
            k["misses"].as_f64(),
            "{kind}"
        );
    }
    let by_source = &stats["requests_by_source"];
    assert_eq!(
        sample(
            &samples,
            "interview_engine_content_pieces",
            &[("source", "llm")]
        ),
        by_source["llm"].as_f64()
    );

    // The key, under its redacted id: served, healthy, and its daily window as the status shows it.
    let who = [("key", "fakeai#1"), ("provider", "fakeai")];
    assert_eq!(
        sample(&samples, "interview_engine_key_requests_served_total", &who),
        Some(served)
    );
    assert_eq!(
        sample(
            &samples,
            "interview_engine_key_health",
            &[who[0], who[1], ("state", "healthy")]
        ),
        Some(1.0)
    );
    // Every other state is there too, at 0, so an alert can watch `healthy == 0`.
    assert_eq!(
        sample(
            &samples,
            "interview_engine_key_health",
            &[who[0], who[1], ("state", "cooling_down")]
        ),
        Some(0.0)
    );
    assert_eq!(
        sample(
            &samples,
            "interview_engine_key_window_limit",
            &[who[0], who[1], ("window", "rpd")]
        ),
        Some(500.0)
    );
    let status = engine.get("/api/system_status", Some(ADMIN)).await.json;
    let remaining = status["totals"]["requests_remaining_today"]
        .as_f64()
        .unwrap();
    assert_eq!(
        sample(
            &samples,
            "interview_engine_capacity_requests_remaining_today",
            &[]
        ),
        Some(remaining)
    );
    assert_eq!(remaining, 500.0 - served);
    assert_eq!(
        sample(&samples, "interview_engine_sessions_live", &[]).map(|n| n <= 1.0),
        Some(true)
    );

    // The dashboard with the token: the key under its redacted id, no secret.
    let r = engine.get("/admin", Some(ADMIN)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    assert!(r.text.contains("data-key=\"fakeai#1\""), "{}", r.text);
    assert!(!r.text.contains("SECRETVALUE"));
}
