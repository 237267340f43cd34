//! The provider pool end to end: the real `interview-engine` binary against the fake provider server
//! over real HTTP. Every wire format plugs into one shared suite, run as one named test per format
//! (`wire_format::<format>`); then limits, scopes, restarts, failover, redaction and bad input.
#![allow(
    missing_docs,
    dead_code,
    clippy::useless_vec,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

mod common;

use common::fake::FakeProvider;
use common::server::{key_status, Engine};
use serde_json::{json, Value};

/// One provider format as the suite needs it: config name, format, base URL suffix on the fake, model.
struct Format {
    name: &'static str,
    format: &'static str,
    path: &'static str,
    model: &'static str,
    env: &'static str,
}

const FORMATS: &[Format] = &[
    Format {
        name: "p_openai",
        format: "openai",
        path: "/v1",
        model: "llama-3.1-8b-instant",
        env: "P_OPENAI_API_KEYS",
    },
    Format {
        name: "p_azure",
        format: "azure_openai",
        path: "",
        model: "gpt-4o-mini",
        env: "P_AZURE_API_KEYS",
    },
    Format {
        name: "p_gemini",
        format: "gemini",
        path: "/v1beta",
        model: "gemini-2.0-flash",
        env: "P_GEMINI_API_KEYS",
    },
    Format {
        name: "p_cloudflare",
        format: "cloudflare",
        path: "/client/v4",
        model: "@cf/meta/llama-3.1-8b-instruct",
        env: "P_CLOUDFLARE_API_KEYS",
    },
    Format {
        name: "p_cohere",
        format: "cohere",
        path: "/v2",
        model: "command-r7b-12-2024",
        env: "P_COHERE_API_KEYS",
    },
    Format {
        name: "p_anthropic",
        format: "anthropic",
        path: "/v1",
        model: "claude-3-5-haiku-latest",
        env: "P_ANTHROPIC_API_KEYS",
    },
];

/// The config header every test shares; providers are appended.
fn base_config(extra: &str) -> String {
    format!(
        "[server]\nbind = \"127.0.0.1:0\"\n[storage]\npath = \"data\"\n[pool]\ndeadline_ms = 3000\nbreaker_failures = 2\nbreaker_cooldown_ms = 600000\ndefault_retry_after_ms = 600000\n{extra}"
    )
}

fn provider_toml(
    name: &str,
    format: &str,
    base_url: &str,
    model: &str,
    priority: u32,
    limits: &str,
    scope: &str,
) -> String {
    format!(
        "[providers.{name}]\nformat = \"{format}\"\nbase_url = \"{base_url}\"\nmodel = \"{model}\"\npriority = {priority}\nkeys_env = \"{}_API_KEYS\"\nlimits = {limits}\nquota_scope = \"{scope}\"\n",
        name.to_ascii_uppercase()
    )
}

fn env_for(name: &str, keys: &[&str]) -> (String, String) {
    (
        format!("{}_API_KEYS", name.to_ascii_uppercase()),
        keys.join(","),
    )
}

/// One format's keys: `a` for happy paths, malformed output and 5xx; `b` unknown to the fake (401);
/// `c` for a 429. One provider per key, so that each failure is observed on its own.
const KEYS: [&str; 3] = ["a", "b", "c"];

/// The key `suffix` of format `f`, as the fake knows it; `SECRETVALUE` marks it for the leak checks.
fn suite_key(f: &Format, suffix: &str) -> String {
    format!("sk-{}-{suffix}-SECRETVALUE0123456789", f.format)
}

/// A fake provider and an engine with format `f`'s three providers, `{name}_a`, `_b` and `_c`.
async fn start_format(f: &Format, dir: &std::path::Path) -> (FakeProvider, Engine) {
    let fake = FakeProvider::start().await;
    let mut cfg = String::new();
    let mut env: Vec<(&str, String)> = vec![("CLOUDFLARE_ACCOUNT_ID", "acct123".into())];
    let mut owned_env = Vec::new();
    for suffix in KEYS {
        let name = format!("{}_{suffix}", f.name);
        cfg.push_str(&provider_toml(
            &name,
            f.format,
            &format!("{}{}", fake.base, f.path),
            f.model,
            1,
            "{ rpm = 100 }",
            "key",
        ));
        let k = suite_key(f, suffix);
        if suffix != "b" {
            fake.add_key(&k, json!({})).await;
        }
        owned_env.push(env_for(&name, &[&k]));
    }
    for (k, v) in &owned_env {
        env.push((k.as_str(), v.clone()));
    }
    let engine = Engine::start(dir, &base_config(&cfg), &env);
    (fake, engine)
}

/// Round trip: an answer with text and usage, one request at the fake.
async fn round_trip(f: &Format, fake: &FakeProvider, engine: &Engine) {
    let a = format!("{}_a", f.name);
    let r = engine.chat(&a, "Tell me about Rust").await;
    assert_eq!(r.status, 200, "{}: {}", f.format, r.text);
    let text = r.json["choices"][0]["message"]["content"]
        .as_str()
        .unwrap_or("");
    assert!(!text.is_empty(), "{}: empty answer", f.format);
    assert!(
        r.json["usage"]["total_tokens"].as_u64().unwrap_or(0) > 0,
        "{}: usage reported",
        f.format
    );
    assert_eq!(
        fake.requests(&suite_key(f, "a")).await.len(),
        1,
        "{}: one request reached the fake",
        f.format
    );
}

/// Stream: OpenAI-shaped SSE out, text pieces joined equal a real answer, ends with [DONE].
async fn stream(f: &Format, engine: &Engine) {
    let a = format!("{}_a", f.name);
    let body = json!({"model": a, "stream": true, "max_tokens": 16, "messages": [{"role": "user", "content": "Stream please"}]});
    let r = engine.post("/v1/chat/completions", &body, None).await;
    assert_eq!(r.status, 200, "{}: {}", f.format, r.text);
    let mut pieces = 0;
    for line in r.text.lines().filter_map(|l| l.strip_prefix("data: ")) {
        if line == "[DONE]" {
            continue;
        }
        let v: Value = serde_json::from_str(line).unwrap();
        if v["choices"][0]["delta"]["content"].as_str().is_some() {
            pieces += 1;
        }
    }
    assert!(pieces >= 2, "{}: streamed in pieces: {}", f.format, r.text);
    assert!(
        r.text.trim_end().ends_with("data: [DONE]"),
        "{}: stream ends with [DONE]",
        f.format
    );
}

/// Malformed output is a 502 counted as a failure; one 500 more opens the breaker
/// (breaker_failures = 2), and then no traffic reaches the fake.
async fn malformed_then_500_open_the_breaker(f: &Format, fake: &FakeProvider, engine: &Engine) {
    let key_a = suite_key(f, "a");
    let a = format!("{}_a", f.name);
    fake.set_fault(&key_a, Some("malformed"), Some(1)).await;
    let r = engine.chat(&a, "hello").await;
    assert_eq!(
        r.status, 502,
        "{}: malformed → upstream_failed: {}",
        f.format, r.text
    );
    assert_eq!(r.json["error"]["code"], "upstream_failed");

    fake.set_fault(&key_a, Some("http_500"), Some(1)).await;
    let r = engine.chat(&a, "hello").await;
    assert_eq!(r.status, 502, "{}: 500 → upstream_failed", f.format);
    let before = fake.requests(&key_a).await.len();
    let r = engine.chat(&a, "hello").await;
    assert_eq!(
        r.status, 429,
        "{}: breaker open → no_capacity until its cool-down: {}",
        f.format, r.text
    );
    assert_eq!(r.json["error"]["code"], "no_capacity");
    assert_eq!(
        fake.requests(&key_a).await.len(),
        before,
        "{}: an open breaker sends nothing",
        f.format
    );
    let st = engine.status().await;
    assert_eq!(
        key_status(&st, &format!("{a}#1"))["health"],
        "circuit_open",
        "{}",
        f.format
    );
}

/// 401 (key unknown to the fake): marked invalid, no further traffic.
async fn invalid_key_takes_no_traffic(f: &Format, engine: &Engine) {
    let b = format!("{}_b", f.name);
    let r = engine.chat(&b, "hello").await;
    assert!(
        r.status == 502 || r.status == 503,
        "{}: {}",
        f.format,
        r.text
    );
    let r = engine.chat(&b, "hello").await;
    assert_eq!(
        r.status, 503,
        "{}: an invalid key takes no traffic",
        f.format
    );
    let st = engine.status().await;
    assert_eq!(
        key_status(&st, &format!("{b}#1"))["health"],
        "invalid",
        "{}",
        f.format
    );
}

/// 429 with Retry-After: the key cools down and takes no traffic meanwhile.
async fn rate_limited_key_cools_down(f: &Format, fake: &FakeProvider, engine: &Engine) {
    let key_c = suite_key(f, "c");
    let c = format!("{}_c", f.name);
    fake.set_fault(&key_c, Some("rate_limit"), Some(1)).await;
    let r = engine.chat(&c, "hello").await;
    // The provider's wait (5 s) ends after the deadline (3 s): no capacity, with that wait.
    assert_eq!(r.status, 429, "{}: {}", f.format, r.text);
    assert_eq!(r.json["error"]["code"], "no_capacity");
    let r = engine.chat(&c, "hello").await;
    assert_eq!(r.status, 429, "{}: cooling down: {}", f.format, r.text);
    // The fake asked for 5 s: the wait left, in whole seconds.
    let wait: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=5).contains(&wait), "{}: Retry-After {wait}", f.format);
    assert_eq!(
        fake.requests(&key_c).await.len(),
        1,
        "{}: nothing sent while cooling down",
        f.format
    );
    let st = engine.status().await;
    let ks = key_status(&st, &format!("{c}#1"));
    assert_eq!(ks["health"], "cooling_down", "{}: {ks}", f.format);
    assert!(ks["cooldown_s"].as_f64().unwrap_or(0.0) > 0.0);
}

/// The shared suite for one format, on its own fake and engine: round trip, stream, malformed and
/// 500 (breaker), 401 and 429, each as specified; then no key in the log or the status.
async fn wire_format_suite(format: &str) {
    let f = FORMATS
        .iter()
        .find(|f| f.format == format)
        .unwrap_or_else(|| panic!("no format {format}"));
    let dir = tempfile::tempdir().unwrap();
    let (fake, engine) = start_format(f, dir.path()).await;
    round_trip(f, &fake, &engine).await;
    stream(f, &engine).await;
    malformed_then_500_open_the_breaker(f, &fake, &engine).await;
    invalid_key_takes_no_traffic(f, &engine).await;
    rate_limited_key_cools_down(f, &fake, &engine).await;
    let log = engine.log();
    let status = engine.status().await.to_string();
    assert!(
        !log.contains("SECRETVALUE"),
        "{format}: a key leaked into the log"
    );
    assert!(
        !status.contains("SECRETVALUE"),
        "{format}: a key leaked into the status"
    );
}

/// One named test per wire format (`wire_format::<format>`): a failing format never hides the others.
macro_rules! wire_format_tests {
    ($($format:ident),* $(,)?) => {
        /// The formats with a named test.
        const TESTED: &[&str] = &[$(stringify!($format)),*];

        mod wire_format {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $format() {
                    super::wire_format_suite(stringify!($format)).await;
                }
            )*
        }
    };
}

wire_format_tests!(openai, azure_openai, gemini, cloudflare, cohere, anthropic);

/// Every format in [`FORMATS`] has its named test above, and every named test its format.
#[test]
fn every_format_has_its_test() {
    let listed: Vec<&str> = FORMATS.iter().map(|f| f.format).collect();
    assert_eq!(listed, TESTED);
}

/// A burst of 10× the per-minute limit: the fake never sees more than the limit per key in any minute,
/// never answers 429, and every request is served by another key or answered 429 no_capacity.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn burst_never_exceeds_limits() {
    let fake = FakeProvider::start().await;
    let dir = tempfile::tempdir().unwrap();
    for k in ["burst-k1-SECRETVALUE", "burst-k2-SECRETVALUE"] {
        fake.add_key(k, json!({"rpm": 3})).await;
    }
    let cfg = provider_toml(
        "one",
        "openai",
        &format!("{}/v1", fake.base),
        "m",
        1,
        "{ rpm = 3 }",
        "key",
    ) + &provider_toml(
        "two",
        "anthropic",
        &format!("{}/v1", fake.base),
        "claude",
        2,
        "{ rpm = 3 }",
        "key",
    );
    let env = vec![
        env_for("one", &["burst-k1-SECRETVALUE"]),
        env_for("two", &["burst-k2-SECRETVALUE"]),
    ];
    let env: Vec<(&str, String)> = env.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
    let engine = std::sync::Arc::new(Engine::start(dir.path(), &base_config(&cfg), &env));

    let mut tasks = Vec::new();
    for i in 0..30 {
        let e = engine.clone();
        tasks.push(tokio::spawn(async move {
            e.chat("auto", &format!("burst {i}")).await
        }));
    }
    let mut ok = 0;
    let mut no_capacity = 0;
    let mut served_by = std::collections::HashMap::new();
    for t in tasks {
        let r = t.await.unwrap();
        match r.status {
            200 => {
                ok += 1;
                let by = r
                    .headers
                    .get("x-served-by")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string();
                *served_by.entry(by).or_insert(0) += 1;
            }
            429 => {
                assert_eq!(r.json["error"]["code"], "no_capacity");
                no_capacity += 1;
            }
            s => panic!("unexpected status {s}: {}", r.text),
        }
    }
    assert_eq!(ok + no_capacity, 30);
    assert_eq!(ok, 6, "3 per key per minute: {served_by:?}");
    assert_eq!(served_by.get("one#1"), Some(&3));
    assert_eq!(
        served_by.get("two#1"),
        Some(&3),
        "the overflow went to the other provider"
    );
    let stats = fake.stats().await;
    for k in ["burst-k1-SECRETVALUE", "burst-k2-SECRETVALUE"] {
        assert!(
            stats[k]["max_requests_in_any_60s_window"].as_u64().unwrap() <= 3,
            "{stats}"
        );
        assert_eq!(
            stats[k]["rate_limited_by_fake"], 0,
            "no 429 caused by us: {stats}"
        );
    }
}

/// Two keys of one shared quota scope never exceed the scope's limit together.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_scope_limits_keys_together() {
    let fake = FakeProvider::start().await;
    let dir = tempfile::tempdir().unwrap();
    for k in ["scope-a-SECRETVALUE", "scope-b-SECRETVALUE"] {
        fake.add_key(k, json!({})).await;
    }
    let cfg = provider_toml(
        "gem",
        "gemini",
        &format!("{}/v1beta", fake.base),
        "gemini-2.0-flash",
        1,
        "{ rpm = 4, rpd = 100 }",
        "shared",
    );
    let env = vec![env_for(
        "gem",
        &["scope-a-SECRETVALUE", "scope-b-SECRETVALUE"],
    )];
    let env: Vec<(&str, String)> = env.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
    let engine = Engine::start(dir.path(), &base_config(&cfg), &env);
    let mut ok = 0;
    for i in 0..12 {
        if engine.chat("gem", &format!("q{i}")).await.status == 200 {
            ok += 1;
        }
    }
    let a = fake.requests("scope-a-SECRETVALUE").await.len();
    let b = fake.requests("scope-b-SECRETVALUE").await.len();
    assert_eq!(ok, 4);
    assert_eq!(
        a + b,
        4,
        "both keys together stay within the scope's 4 rpm (a={a}, b={b})"
    );
    let st = engine.status().await;
    assert_eq!(key_status(&st, "gem#1")["scope"], "gem:shared");
    assert_eq!(key_status(&st, "gem#2")["windows"]["rpm"]["used"], 4);
}

/// SIGKILL after spending most of a daily quota, restart on the same storage: no overrun.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_and_restart_do_not_overrun_the_day() {
    let fake = FakeProvider::start().await;
    let dir = tempfile::tempdir().unwrap();
    let key = "daily-SECRETVALUE";
    fake.add_key(key, json!({"rpd": 10})).await;
    let cfg = provider_toml(
        "day",
        "cohere",
        &format!("{}/v2", fake.base),
        "command-r",
        1,
        "{ rpd = 10 }",
        "key",
    );
    let env = vec![env_for("day", &[key])];
    let env: Vec<(&str, String)> = env.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
    let mut engine = Engine::start(dir.path(), &base_config(&cfg), &env);
    for i in 0..8 {
        assert_eq!(engine.chat("day", &format!("q{i}")).await.status, 200);
    }
    engine.kill();
    let engine = Engine::start(dir.path(), &base_config(&cfg), &env);
    let st = engine.status().await;
    assert_eq!(
        key_status(&st, "day#1")["windows"]["rpd"]["used"],
        8,
        "usage survived SIGKILL"
    );
    let mut ok = 0;
    for i in 0..5 {
        let r = engine.chat("day", &format!("after {i}")).await;
        if r.status == 200 {
            ok += 1;
        } else {
            assert_eq!(r.json["error"]["code"], "no_capacity", "{}", r.text);
        }
    }
    assert_eq!(ok, 2, "only the 2 requests left today were sent");
    let stats = fake.stats().await;
    assert_eq!(stats[key]["served"], 10);
    assert_eq!(stats[key]["rate_limited_by_fake"], 0);
}

/// A daily 429 parks its key until the reset: today's capacity, in the status totals and in the call
/// budget alike, then holds nothing from that key, whatever its own windows still show.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daily_429_leaves_nothing_today_in_status_and_budget() {
    let fake = FakeProvider::start().await;
    let dir = tempfile::tempdir().unwrap();
    fake.add_key("first-key", json!({})).await;
    fake.add_key("second-key", json!({})).await;
    fake.set_fault("first-key", Some("rate_limit_day"), None)
        .await;
    let url = format!("{}/v2", fake.base);
    let cfg = provider_toml(
        "first",
        "cohere",
        &url,
        "command-r",
        1,
        "{ rpd = 10 }",
        "key",
    ) + &provider_toml(
        "second",
        "cohere",
        &url,
        "command-r",
        2,
        "{ rpd = 10 }",
        "key",
    );
    let env = [
        env_for("first", &["first-key"]),
        env_for("second", &["second-key"]),
    ];
    let env: Vec<(&str, String)> = env.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
    let engine = Engine::start(dir.path(), &base_config(&cfg), &env);
    let r = engine.chat("first", "hello").await;
    assert_eq!(
        r.status, 429,
        "the only key of `first` is spent today: {}",
        r.text
    );
    assert_eq!(r.json["error"]["code"], "no_capacity");
    // It opens again at the next UTC midnight.
    let wait: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
    let now = chrono::Utc::now();
    let midnight = (now.date_naive() + chrono::Days::new(1))
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc();
    let to_midnight = (midnight - now).num_seconds().unsigned_abs();
    assert!(
        wait.abs_diff(to_midnight) <= 5,
        "Retry-After {wait}, midnight in {to_midnight}"
    );
    let r = engine.chat("second", "hello").await;
    assert_eq!(r.status, 200, "{}", r.text);

    let st = engine.status().await;
    assert_eq!(
        key_status(&st, "first#1")["health"],
        "day_exhausted",
        "{st}"
    );
    assert_eq!(key_status(&st, "second#1")["windows"]["rpd"]["used"], 1);
    assert_eq!(st["totals"]["requests_remaining_today"], 9, "{st}");
    assert_eq!(st["budget"]["capacity"]["requests"], 9, "{st}");
    let stats = engine.get("/api/optimization_stats", None).await.json;
    assert_eq!(stats["budget"]["capacity"]["requests"], 9, "{stats}");
}

/// A provider answering 500s (or 401s) is skipped; requests succeed elsewhere; status says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_provider_is_skipped_and_status_says_why() {
    let fake = FakeProvider::start().await;
    let dir = tempfile::tempdir().unwrap();
    fake.add_key("bad5xx-SECRETVALUE", json!({})).await;
    fake.set_fault("bad5xx-SECRETVALUE", Some("http_500"), None)
        .await;
    fake.add_key("good-SECRETVALUE", json!({})).await;
    // "bad401" is never registered: the fake answers 401.
    let cfg = provider_toml(
        "flaky",
        "openai",
        &format!("{}/v1", fake.base),
        "m",
        1,
        "{ rpm = 100 }",
        "key",
    ) + &provider_toml(
        "revoked",
        "gemini",
        &format!("{}/v1beta", fake.base),
        "gemini-2.0-flash",
        1,
        "{ rpm = 100 }",
        "key",
    ) + &provider_toml(
        "steady",
        "cloudflare",
        &format!("{}/client/v4", fake.base),
        "@cf/meta/llama",
        2,
        "{ rpm = 100 }",
        "key",
    );
    let env = vec![
        env_for("flaky", &["bad5xx-SECRETVALUE"]),
        env_for("revoked", &["bad401-SECRETVALUE"]),
        env_for("steady", &["good-SECRETVALUE"]),
        ("CLOUDFLARE_ACCOUNT_ID".to_string(), "acct".to_string()),
    ];
    let env: Vec<(&str, String)> = env.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
    let engine = Engine::start(dir.path(), &base_config(&cfg), &env);
    for i in 0..6 {
        let r = engine.chat("auto", &format!("q{i}")).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(
            r.headers.get("x-served-by").and_then(|v| v.to_str().ok()),
            Some("steady#1")
        );
    }
    // Breaker (2 failures) and invalid key: later requests do not touch the bad providers at all.
    assert_eq!(fake.requests("bad5xx-SECRETVALUE").await.len(), 2);
    assert_eq!(fake.requests("bad401-SECRETVALUE").await.len(), 1);
    let st = engine.status().await;
    let flaky = key_status(&st, "flaky#1");
    assert_eq!(flaky["health"], "circuit_open");
    assert!(
        flaky["last_error"].as_str().unwrap_or("").contains("500"),
        "{flaky}"
    );
    assert_eq!(key_status(&st, "revoked#1")["health"], "invalid");
    let alerts = st["alerts"].to_string();
    assert!(
        alerts.contains("flaky#1") && alerts.contains("revoked#1"),
        "{alerts}"
    );
    assert!(!st.to_string().contains("SECRETVALUE"));
    assert!(!engine.log().contains("SECRETVALUE"));
}

/// Bad JSON, unknown provider, oversized and invalid requests: clear errors, nothing reaches a provider,
/// nothing changes; admin routes need the token when one is set.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_clear_errors_and_changes_nothing() {
    let fake = FakeProvider::start().await;
    let dir = tempfile::tempdir().unwrap();
    fake.add_key("in-SECRETVALUE", json!({})).await;
    let cfg = base_config(&provider_toml(
        "solo",
        "openai",
        &format!("{}/v1", fake.base),
        "m",
        1,
        "{ rpm = 100 }",
        "key",
    ))
    .replace(
        "[server]\n",
        "[server]\nadmin_token = \"adm-SECRETVALUE\"\nmax_body_bytes = 4096\n",
    );
    let env = vec![env_for("solo", &["in-SECRETVALUE"])];
    let env: Vec<(&str, String)> = env.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
    let engine = Engine::start(dir.path(), &cfg, &env);
    let tok = Some("adm-SECRETVALUE");

    assert_eq!(engine.get("/api/system_status", None).await.status, 401);
    assert_eq!(
        engine.get("/api/system_status", Some("wrong")).await.status,
        401
    );
    let before = engine.get("/api/system_status", tok).await;
    assert_eq!(before.status, 200);

    let r = engine
        .post_raw(
            "/v1/chat/completions",
            b"{not json".to_vec(),
            "application/json",
            None,
        )
        .await;
    assert_eq!(
        (r.status, r.json["error"]["code"].as_str()),
        (401, Some("unauthorized")),
        "auth is checked before the body"
    );
    let r = engine
        .post_raw(
            "/v1/chat/completions",
            b"{not json".to_vec(),
            "application/json",
            tok,
        )
        .await;
    assert_eq!(
        (r.status, r.json["error"]["code"].as_str()),
        (400, Some("invalid_json")),
        "{}",
        r.text
    );
    let chat =
        |model: &str| json!({"model": model, "messages": [{"role": "user", "content": "hi"}]});
    let r = engine
        .post("/v1/chat/completions", &chat("nosuch"), tok)
        .await;
    assert_eq!(
        (r.status, r.json["error"]["code"].as_str()),
        (404, Some("model_not_found")),
        "{}",
        r.text
    );
    assert_eq!(r.json["error"]["param"], "model");
    assert_eq!(r.json["error"]["type"], "invalid_request_error");
    let big = json!({"messages": [{"role": "user", "content": "x".repeat(10_000)}]});
    let r = engine.post("/v1/chat/completions", &big, tok).await;
    assert_eq!(
        (r.status, r.json["error"]["code"].as_str()),
        (413, Some("payload_too_large")),
        "{}",
        r.text
    );
    let r = engine
        .post("/v1/chat/completions", &json!({"messages": []}), tok)
        .await;
    assert_eq!(
        (r.status, r.json["error"]["code"].as_str()),
        (400, Some("bad_request"))
    );
    let r = engine
        .post("/v1/chat/completions", &json!({"messages": "hi"}), tok)
        .await;
    assert_eq!(
        (r.status, r.json["error"]["code"].as_str()),
        (400, Some("invalid_json"))
    );
    let r = engine.get("/no/such/route", None).await;
    assert_eq!(
        (r.status, r.json["error"]["code"].as_str()),
        (404, Some("not_found"))
    );

    assert!(
        fake.requests("in-SECRETVALUE").await.is_empty(),
        "no bad request reached the provider"
    );
    let after = engine.get("/api/system_status", tok).await;
    assert_eq!(
        before.json["providers"], after.json["providers"],
        "status unchanged"
    );
    // The good request works with the token.
    assert_eq!(
        engine
            .post("/v1/chat/completions", &chat("solo"), tok)
            .await
            .status,
        200
    );
    assert!(
        !engine.log().contains("SECRETVALUE"),
        "neither key nor admin token in the log"
    );
}

/// A bad config is refused at start with the field named, and exits non-zero.
#[test]
fn bad_config_names_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "[providers.groq]\nlimits = { rpm = 0 }\n",
            "providers.groq.limits.rpm: must be > 0",
        ),
        ("[server]\nbind = \"nowhere\"\n", "server.bind"),
        ("[server]\nport = 1\n", "port"),
        (
            "[providers.mine]\nbase_url = \"http://127.0.0.1:1\"\n",
            "providers.mine.format",
        ),
    ];
    for (toml, expected) in cases {
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, toml).unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_interview-engine"))
            .args(["serve", "--config"])
            .arg(&path)
            .env_clear()
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{toml}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(expected), "{toml}: {err}");
    }
    // An environment override is validated the same way.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_interview-engine"))
        .arg("serve")
        .env_clear()
        .env("IE_INTERVIEW__QUESTIONS", "0")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("interview.questions"));
}

/// `check-keys` reports ok / invalid / rate-limited per key, with keys redacted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_keys_reports_each_key() {
    let fake = FakeProvider::start().await;
    let dir = tempfile::tempdir().unwrap();
    fake.add_key("ck-good-SECRETVALUE", json!({})).await;
    fake.add_key("ck-limited-SECRETVALUE", json!({})).await;
    fake.set_fault("ck-limited-SECRETVALUE", Some("rate_limit"), None)
        .await;
    let cfg = provider_toml(
        "ck",
        "openai",
        &format!("{}/v1", fake.base),
        "m",
        1,
        "{ rpm = 100 }",
        "key",
    ) + &provider_toml(
        "gone",
        "openai",
        "http://127.0.0.1:9",
        "m",
        1,
        "{ rpm = 100 }",
        "key",
    );
    let path = dir.path().join("c.toml");
    std::fs::write(&path, base_config(&cfg)).unwrap();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_interview-engine"))
        .args(["check-keys", "--json", "--config"])
        .arg(&path)
        .env_clear()
        .env(
            "CK_API_KEYS",
            "ck-good-SECRETVALUE,ck-limited-SECRETVALUE,ck-bad-SECRETVALUE",
        )
        .env("GONE_API_KEYS", "gone-SECRETVALUE")
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        !stdout.contains("SECRETVALUE")
            && !String::from_utf8_lossy(&out.stderr).contains("SECRETVALUE")
    );
    let v: Value = serde_json::from_str(&stdout).unwrap();
    let result = |id: &str| {
        v.as_array()
            .unwrap()
            .iter()
            .find(|c| c["key"] == id)
            .unwrap()["result"]
            .clone()
    };
    assert_eq!(result("ck#1"), "ok");
    assert_eq!(result("ck#2"), "rate_limited");
    assert_eq!(result("ck#3"), "invalid");
    assert_eq!(result("gone#1"), "unreachable");
    assert_eq!(out.status.code(), Some(1), "not every key is ok");
}

/// Issue 10's burst, as a new user sent it: 60 distinct requests at once pinned to `groq`, two keys
/// each allowed 10 requests a minute and 4 at a time, an upstream answering in 5 ms. Requests beyond a
/// key's 4 slots wait for a slot (they are not refused), so all 20 requests the windows allow are
/// served; the other 40 are refused at once with 429 and a `Retry-After` saying when the minute
/// window really opens. At the provider: never more than 10 per key per 60 s, never more than 4 at
/// once, no 429.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_waits_for_slots_and_is_refused_only_past_the_windows() {
    let fake = FakeProvider::start().await;
    let dir = tempfile::tempdir().unwrap();
    let keys = ["gsk-burst-1-SECRETVALUE", "gsk-burst-2-SECRETVALUE"];
    for k in keys {
        fake.add_key_with(
            json!({"key": k, "limits": {"rpm": 10, "concurrency": 4}, "latency_ms": 5}),
        )
        .await;
    }
    let cfg = provider_toml(
        "groq",
        "openai",
        &format!("{}/v1", fake.base),
        "llama-3.1-8b-instant",
        1,
        "{ rpm = 10, concurrency = 4 }",
        "key",
    );
    let env = [env_for("groq", &keys)];
    let env: Vec<(&str, String)> = env.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
    let engine = std::sync::Arc::new(Engine::start(dir.path(), &base_config(&cfg), &env));
    let started = std::time::Instant::now();
    let tasks: Vec<_> = (0..60)
        .map(|i| {
            let e = engine.clone();
            tokio::spawn(async move { e.chat("groq", &format!("burst question {i}")).await })
        })
        .collect();
    let mut served = std::collections::HashMap::<String, u32>::new();
    let mut retry_afters = Vec::new();
    for t in tasks {
        let r = t.await.unwrap();
        match r.status {
            200 => {
                let by = r.headers["x-served-by"].to_str().unwrap().to_string();
                *served.entry(by).or_default() += 1;
            }
            429 => {
                // OpenAI's error shape, so SDKs raise their rate-limit error.
                assert_eq!(r.json["error"]["code"], "no_capacity", "{}", r.text);
                assert_eq!(r.json["error"]["type"], "rate_limit_error", "{}", r.text);
                let secs: u64 = r.headers["retry-after"]
                    .to_str()
                    .unwrap()
                    .parse()
                    .unwrap_or_else(|e| panic!("Retry-After not whole seconds: {e}"));
                retry_afters.push(secs);
            }
            s => panic!("unexpected status {s}: {}", r.text),
        }
    }
    let elapsed = started.elapsed().as_secs();
    assert_eq!(
        served.values().sum::<u32>(),
        20,
        "every request the windows allow: {served:?}"
    );
    assert_eq!(served.get("groq#1"), Some(&10), "{served:?}");
    assert_eq!(served.get("groq#2"), Some(&10), "{served:?}");
    assert_eq!(retry_afters.len(), 40);
    // Truthful: the minute window opens about 61 s after the burst's first requests were counted (the
    // window is kept in whole seconds), not a constant; a client retrying then finds room.
    for s in &retry_afters {
        assert!(
            *s <= 62 && *s + elapsed >= 59,
            "Retry-After {s} s, {elapsed} s after the burst began"
        );
    }
    let stats = fake.stats().await;
    for k in keys {
        assert!(
            stats[k]["max_requests_in_any_60s_window"].as_u64().unwrap() <= 10,
            "{stats}"
        );
        assert!(
            stats[k]["peak_concurrency"].as_u64().unwrap() <= 4,
            "{stats}"
        );
        assert_eq!(
            stats[k]["rate_limited_by_fake"], 0,
            "no 429 caused by us: {stats}"
        );
        assert_eq!(stats[k]["served"], 10, "{stats}");
    }
}

/// A key cooling down after 429s is waited for when its cool-down ends within the caller's deadline:
/// after two 429s with `Retry-After: 1` every request of a burst is served by the same (only) key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_cooling_down_is_waited_for_within_the_deadline() {
    let fake = FakeProvider::start().await;
    let dir = tempfile::tempdir().unwrap();
    let key = "cool-SECRETVALUE";
    fake.add_key(key, json!({})).await;
    fake.set_rate_limit_fault(key, "rate_limit", 2, 1.0).await;
    let cfg = provider_toml(
        "solo",
        "openai",
        &format!("{}/v1", fake.base),
        "m",
        1,
        "{ rpm = 1000, concurrency = 2 }",
        "key",
    );
    let env = [env_for("solo", &[key])];
    let env: Vec<(&str, String)> = env.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
    let cfg = base_config(&cfg).replace("deadline_ms = 3000", "deadline_ms = 20000");
    let engine = std::sync::Arc::new(Engine::start(dir.path(), &cfg, &env));
    let tasks: Vec<_> = (0..12)
        .map(|i| {
            let e = engine.clone();
            tokio::spawn(async move { e.chat("solo", &format!("during a cool-down {i}")).await })
        })
        .collect();
    for t in tasks {
        let r = t.await.unwrap();
        assert_eq!(r.status, 200, "{}", r.text);
    }
    let stats = fake.stats().await;
    assert_eq!(stats[key]["faults_injected"], 2, "{stats}");
    assert_eq!(stats[key]["served"], 12, "{stats}");
    let st = engine.status().await;
    assert_eq!(key_status(&st, "solo#1")["rate_limited_by_provider"], 2);
}

/// A request larger than every key's token window can never be served: a 400 `request_too_large`
/// naming the limit, at once, and nothing reaches the provider.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_larger_than_every_window_is_refused_at_once() {
    let fake = FakeProvider::start().await;
    let dir = tempfile::tempdir().unwrap();
    fake.add_key("small-SECRETVALUE", json!({})).await;
    fake.add_key("bigger-SECRETVALUE", json!({})).await;
    let url = format!("{}/v1", fake.base);
    let cfg = provider_toml("small", "openai", &url, "m", 1, "{ tpm = 500 }", "key")
        + &provider_toml("bigger", "openai", &url, "m", 2, "{ tpm = 2000 }", "key");
    let env = [
        env_for("small", &["small-SECRETVALUE"]),
        env_for("bigger", &["bigger-SECRETVALUE"]),
    ];
    let env: Vec<(&str, String)> = env.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
    let engine = Engine::start(dir.path(), &base_config(&cfg), &env);
    let body =
        json!({"max_tokens": 1000, "messages": [{"role": "user", "content": "x".repeat(6000)}]});
    let r = engine.post("/v1/chat/completions", &body, None).await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(r.json["error"]["code"], "request_too_large");
    let msg = r.json["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("tpm") && msg.contains("2000"),
        "names the largest limit: {msg}"
    );
    assert!(r.headers.get("retry-after").is_none());
    // A request that fits the bigger key goes there.
    let body =
        json!({"max_tokens": 100, "messages": [{"role": "user", "content": "x".repeat(3000)}]});
    let r = engine.post("/v1/chat/completions", &body, None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.headers["x-served-by"], "bigger#1");
    assert!(fake.requests("small-SECRETVALUE").await.is_empty());
}

/// Twenty interviews at machine speed on one key that takes 2 requests at a time: evaluations beyond
/// the two slots wait for a slot and every one is graded by the provider, none by the rubric scorer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_interviews_on_one_key_with_two_slots_are_all_graded_by_the_provider() {
    use common::ws::{create, Client, GOOD_ANSWER};
    let fake = FakeProvider::start().await;
    let dir = tempfile::tempdir().unwrap();
    let key = "slots-SECRETVALUE";
    fake.add_key_with(json!({"key": key, "limits": {"concurrency": 2}, "latency_ms": 20, "reply": "@interviewer"}))
        .await;
    let cfg = format!(
        "[interview]\nmode = \"balanced\"\n{}",
        provider_toml(
            "one",
            "openai",
            &format!("{}/v1", fake.base),
            "m",
            1,
            "{ rpm = 100000, concurrency = 2 }",
            "key",
        )
    );
    let env = [env_for("one", &[key])];
    let env: Vec<(&str, String)> = env.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
    let engine = Engine::start(dir.path(), &base_config(&cfg), &env);
    let runs = (0..20).map(|i| {
        let base = engine.base.clone();
        async move {
            let c = create(
                &base,
                json!({"candidate": {"id": format!("c{i}"), "name": format!("Cand {i}")},
                       "role": "Backend Engineer", "questions": 3, "mode": "balanced"}),
            )
            .await;
            let mut client = Client::connect(&base, &c).await;
            // A different answer per interview: none can be graded from another's cached grade.
            client
                .finish_with(&format!(
                    "{GOOD_ANSWER} In my team of {} we did the same.",
                    i + 3
                ))
                .await;
            client.logged.clone()
        }
    });
    let all = futures::future::join_all(runs).await;
    let mut graded = 0;
    for events in &all {
        for e in common::ws::main_evaluations(events) {
            assert_eq!(e["source"], "llm:one", "an evaluation fell back: {e}");
            graded += 1;
        }
    }
    assert_eq!(graded, 60, "3 answers × 20 interviews");
    let stats = fake.stats().await;
    assert!(
        stats[key]["peak_concurrency"].as_u64().unwrap() <= 2,
        "{stats}"
    );
    assert_eq!(stats[key]["rate_limited_by_fake"], 0, "{stats}");
}

/// SIGKILL while 30 requests are being admitted at once, then a restart on the same storage: the
/// provider never serves more than the day's 20 (no 429 either), and the restarted engine counts at
/// least what was served, losing at most the requests in flight and one durable block.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_concurrent_admissions_does_not_overrun_the_day() {
    let fake = FakeProvider::start().await;
    let dir = tempfile::tempdir().unwrap();
    let key = "crowd-SECRETVALUE";
    fake.add_key_with(json!({"key": key, "limits": {"rpd": 20}, "latency_ms": 40}))
        .await;
    let cfg = provider_toml(
        "day",
        "openai",
        &format!("{}/v1", fake.base),
        "m",
        1,
        "{ rpd = 20, concurrency = 4 }",
        "key",
    );
    let env = [env_for("day", &[key])];
    let env: Vec<(&str, String)> = env.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
    let cfg = base_config(&cfg).replace("deadline_ms = 3000", "deadline_ms = 30000");
    let mut engine = Engine::start(dir.path(), &cfg, &env);
    let base = engine.base.clone();
    let burst: Vec<_> = (0..30)
        .map(|i| {
            let body = json!({"max_tokens": 16, "messages": [{"role": "user", "content": format!("crowd {i}")}]});
            let url = format!("{base}/v1/chat/completions");
            tokio::spawn(async move { reqwest::Client::new().post(url).json(&body).send().await })
        })
        .collect();
    // Kill while admissions are going on: some served, more waiting for a slot.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let served = fake.stats().await[key]["served"].as_u64().unwrap_or(0);
        if served >= 6 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "nothing served");
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    engine.kill();
    for t in burst {
        let _ = t.await;
    }
    let at_kill = fake.stats().await[key]["served"].as_u64().unwrap();
    let engine = Engine::start(dir.path(), &cfg, &env);
    let st = engine.status().await;
    let used = key_status(&st, "day#1")["windows"]["rpd"]["used"]
        .as_u64()
        .unwrap();
    assert!(
        used >= at_kill,
        "restart counts what was served: used {used}, served {at_kill}"
    );
    assert!(
        used <= at_kill + 4 + 1,
        "at most the 4 in flight and one block are lost: used {used}, served {at_kill}"
    );
    let mut ok = 0;
    for i in 0..25 {
        let r = engine.chat("day", &format!("after {i}")).await;
        if r.status == 200 {
            ok += 1;
        } else {
            assert_eq!(r.json["error"]["code"], "no_capacity", "{}", r.text);
        }
    }
    assert_eq!(
        ok,
        20 - used,
        "exactly what the restarted engine counted as left"
    );
    let stats = fake.stats().await;
    assert!(stats[key]["served"].as_u64().unwrap() <= 20, "{stats}");
    assert_eq!(stats[key]["rate_limited_by_fake"], 0, "{stats}");
}
