//! The OpenAI-compatible gateway as clients use it: `model` as a bare model id several providers serve,
//! an alias with failover, `GET /v1/models`, 404 `model_not_found`, errors in OpenAI's shape raising the
//! right exception classes in the real `openai` Python SDK, and the cache defaults.
#![allow(
    missing_docs,
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

mod common;

use common::fake::FakeProvider;
use common::server::Engine;
use serde_json::{json, Value};

/// Two OpenAI-format providers on the fake: `pa` (model `m-a`, also serving `shared-model`) and `pb`
/// (model `shared-model`), an alias `fast` = pa/m-fast then pb, and `extra` config.
fn config(fake: &FakeProvider, pa_limits: &str, extra: &str) -> String {
    format!(
        "[server]\nbind = \"127.0.0.1:0\"\n[storage]\npath = \"data\"\n[pool]\ndeadline_ms = 3000\nbreaker_failures = 1\nbreaker_cooldown_ms = 600000\n\
         [providers.pa]\nformat = \"openai\"\nbase_url = \"{base}/v1\"\nmodel = \"m-a\"\nmodels = [\"shared-model\", \"m-fast\"]\npriority = 1\nkeys_env = \"PA_API_KEYS\"\nlimits = {pa_limits}\n\
         [providers.pb]\nformat = \"openai\"\nbase_url = \"{base}/v1\"\nmodel = \"shared-model\"\npriority = 1\nkeys_env = \"PB_API_KEYS\"\nlimits = {{ rpm = 1000 }}\n\
         [models.fast]\ntargets = [\"pa/m-fast\", \"pb\"]\n{extra}",
        base = fake.base
    )
}

async fn start(pa_limits: &str, extra: &str) -> (FakeProvider, tempfile::TempDir, Engine) {
    let fake = FakeProvider::start().await;
    fake.add_key("pa-key-SECRETVALUE", json!({})).await;
    fake.add_key("pb-key-SECRETVALUE", json!({})).await;
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::start(
        dir.path(),
        &config(&fake, pa_limits, extra),
        &[
            ("PA_API_KEYS", "pa-key-SECRETVALUE".into()),
            ("PB_API_KEYS", "pb-key-SECRETVALUE".into()),
        ],
    );
    (fake, dir, engine)
}

/// The models the fake was asked for, per key.
async fn models_asked(fake: &FakeProvider, key: &str) -> Vec<String> {
    fake.requests(key)
        .await
        .iter()
        .map(|r| r["body"]["model"].as_str().unwrap_or("").to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bare_model_id_and_an_alias_route_like_clients_expect() {
    let (fake, _dir, engine) = start("{ rpm = 1000 }", "").await;

    // A bare model id two providers serve: spread over both, each asked for that model.
    let mut by = std::collections::HashMap::<String, u32>::new();
    for i in 0..8 {
        let r = engine.chat("shared-model", &format!("shared {i}")).await;
        assert_eq!(r.status, 200, "{}", r.text);
        *by.entry(r.headers["x-served-by"].to_str().unwrap().into())
            .or_default() += 1;
    }
    assert_eq!(by.len(), 2, "both providers serve it: {by:?}");
    for key in ["pa-key-SECRETVALUE", "pb-key-SECRETVALUE"] {
        let asked = models_asked(&fake, key).await;
        assert!(
            !asked.is_empty() && asked.iter().all(|m| m == "shared-model"),
            "{asked:?}"
        );
    }

    // The alias: its first target while it has room, with the target's model.
    let r = engine.chat("fast", "alias please").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.headers["x-served-by"], "pa#1");
    assert_eq!(
        models_asked(&fake, "pa-key-SECRETVALUE")
            .await
            .last()
            .unwrap(),
        "m-fast"
    );
    // Its first target failing: the next target answers.
    fake.set_fault("pa-key-SECRETVALUE", Some("http_500"), None)
        .await;
    let r = engine.chat("fast", "alias with failover").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.headers["x-served-by"], "pb#1");
    assert_eq!(
        models_asked(&fake, "pb-key-SECRETVALUE")
            .await
            .last()
            .unwrap(),
        "shared-model"
    );

    // provider/model passes the model through; a provider name uses its configured model.
    let r = engine.chat("pb/other-model", "pinned").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        models_asked(&fake, "pb-key-SECRETVALUE")
            .await
            .last()
            .unwrap(),
        "other-model"
    );
    let r = engine.chat("pb", "by provider").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        models_asked(&fake, "pb-key-SECRETVALUE")
            .await
            .last()
            .unwrap(),
        "shared-model"
    );

    // Unknown: 404 model_not_found in OpenAI's shape; nothing sent.
    let before = fake.all_requests().await.len();
    for m in ["gpt-5", "nosuch/model", "groq"] {
        let r = engine.chat(m, "where").await;
        assert_eq!(r.status, 404, "{m}: {}", r.text);
        let e = &r.json["error"];
        assert_eq!(e["code"], "model_not_found", "{m}");
        assert_eq!(e["type"], "invalid_request_error", "{m}");
        assert_eq!(e["param"], "model", "{m}");
        assert!(e["message"].as_str().unwrap().contains(m), "{m}: {e}");
    }
    assert_eq!(fake.all_requests().await.len(), before);

    // The list, in OpenAI's shape.
    let list = engine.get("/v1/models", None).await;
    assert_eq!(list.status, 200);
    assert_eq!(list.json["object"], "list");
    let ids: Vec<&str> = list.json["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            assert_eq!(m["object"], "model");
            m["id"].as_str().unwrap()
        })
        .collect();
    for id in [
        "auto",
        "fast",
        "shared-model",
        "m-a",
        "m-fast",
        "pa",
        "pb/shared-model",
    ] {
        assert!(ids.contains(&id), "{id} in {ids:?}");
    }
}

/// The python of the venv with the real `openai` SDK (env IE_TEST_PYTHON, default
/// ~/.cache/interview-engine/py/bin/python); fails with the install command when missing.
fn sdk_python() -> String {
    let py = std::env::var("IE_TEST_PYTHON").unwrap_or_else(|_| {
        format!(
            "{}/.cache/interview-engine/py/bin/python",
            std::env::var("HOME").unwrap_or_default()
        )
    });
    let ok = std::process::Command::new(&py)
        .args(["-c", "import openai"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "the openai Python SDK is needed at {py} (or set IE_TEST_PYTHON): \
         python3 -m venv ~/.cache/interview-engine/py && ~/.cache/interview-engine/py/bin/pip install openai websockets"
    );
    py
}

const SDK_SCRIPT: &str = r#"
import json, sys, openai
base, token = sys.argv[1], sys.argv[2]
c = openai.OpenAI(base_url=base + "/v1", api_key=token, max_retries=0)
out = {}
def attempt(name, fn):
    try:
        out[name] = {"ok": fn()}
    except openai.APIStatusError as e:
        body = e.body if isinstance(e.body, dict) else {}
        out[name] = {"exception": type(e).__name__, "status": e.status_code, "code": getattr(e, "code", None),
                     "retry_after": e.response.headers.get("retry-after"), "body": body}
    except Exception as e:
        out[name] = {"exception": type(e).__name__, "message": str(e)}
msg = [{"role": "user", "content": "Hello from the SDK"}]
attempt("alias", lambda: c.chat.completions.create(model="fast", messages=msg, max_tokens=16).choices[0].message.content)
attempt("stream", lambda: "".join((ch.choices[0].delta.content or "") for ch in c.chat.completions.create(model="pb", messages=msg, max_tokens=16, stream=True) if ch.choices))
attempt("models", lambda: sorted(m.id for m in c.models.list()))
attempt("not_found", lambda: c.chat.completions.create(model="gpt-5", messages=msg))
attempt("too_large", lambda: c.chat.completions.create(model="pa", messages=[{"role": "user", "content": "x" * 9000}], max_tokens=100))
attempt("limited", lambda: c.chat.completions.create(model="pa", messages=[{"role": "user", "content": "again"}], max_tokens=8))
attempt("bad_request", lambda: c.chat.completions.create(model="pb", messages=[]))
bad = openai.OpenAI(base_url=base + "/v1", api_key="wrong-token", max_retries=0)
attempt("auth", lambda: bad.chat.completions.create(model="pb", messages=msg))
print(json.dumps(out))
"#;

/// The real `openai` Python SDK against the running server: answers, a stream, the model list, and
/// each gateway error raising the SDK's exception class for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openai_python_sdk_gets_answers_and_the_right_exceptions() {
    let py = sdk_python();
    let extra = "";
    let fake = FakeProvider::start().await;
    fake.add_key("pa-key-SECRETVALUE", json!({})).await;
    fake.add_key("pb-key-SECRETVALUE", json!({})).await;
    let dir = tempfile::tempdir().unwrap();
    // pa: one request a minute, tokens per minute 2,000: a second call is a 429, a huge one a 400.
    let cfg = config(&fake, "{ rpm = 1, tpm = 2000 }", extra).replace(
        "[server]\n",
        "[server]\nadmin_token = \"sdk-admin-SECRETVALUE\"\n",
    );
    let engine = Engine::start(
        dir.path(),
        &cfg,
        &[
            ("PA_API_KEYS", "pa-key-SECRETVALUE".into()),
            ("PB_API_KEYS", "pb-key-SECRETVALUE".into()),
        ],
    );
    let script = dir.path().join("sdk.py");
    std::fs::write(&script, SDK_SCRIPT).unwrap();
    let out = tokio::process::Command::new(&py)
        .arg(&script)
        .arg(&engine.base)
        .arg("sdk-admin-SECRETVALUE")
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "sdk script failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_str(stdout.trim()).unwrap();
    let ok = |k: &str| v[k]["ok"].clone();
    assert!(ok("alias").as_str().is_some_and(|s| !s.is_empty()), "{v}");
    assert!(ok("stream").as_str().is_some_and(|s| !s.is_empty()), "{v}");
    let models = ok("models");
    for id in ["auto", "fast", "shared-model"] {
        assert!(
            models.as_array().unwrap().iter().any(|m| m == id),
            "{models}"
        );
    }
    let raised = |k: &str, class: &str, status: u64, code: &str| {
        let e = &v[k];
        assert_eq!(e["exception"], class, "{k}: {e}");
        assert_eq!(e["status"], status, "{k}: {e}");
        assert_eq!(e["code"], code, "{k}: {e}");
    };
    raised("not_found", "NotFoundError", 404, "model_not_found");
    raised("too_large", "BadRequestError", 400, "request_too_large");
    // The alias call spent pa's one request of the minute: the next is a 429 with a real wait.
    raised("limited", "RateLimitError", 429, "no_capacity");
    let wait: u64 = v["limited"]["retry_after"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=62).contains(&wait), "Retry-After {wait}");
    raised("bad_request", "BadRequestError", 400, "bad_request");
    raised("auth", "AuthenticationError", 401, "unauthorized");
    assert!(!engine.log().contains("SECRETVALUE"));
}

async fn cache_entries(engine: &Engine) -> u64 {
    let st = engine.get("/api/optimization_stats", None).await.json;
    st["cache"]["kinds"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kind"] == "response")
        .map_or(0, |k| k["entries"].as_u64().unwrap_or(0))
}

async fn wait_entries(engine: &Engine, n: u64) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while cache_entries(engine).await < n {
        assert!(
            std::time::Instant::now() < deadline,
            "cache never reached {n} entries"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

async fn post_cc(engine: &Engine, body: &Value, cache_control: Option<&str>) -> (String, u16) {
    let mut rb = reqwest::Client::new()
        .post(format!("{}/v1/chat/completions", engine.base))
        .json(body);
    if let Some(cc) = cache_control {
        rb = rb.header("cache-control", cc);
    }
    let r = rb.send().await.unwrap();
    let how = r.headers()["x-cache"].to_str().unwrap().to_string();
    (how, r.status().as_u16())
}

/// Only deterministic requests are cached by default; a sampled one only when the client opts in
/// with `Cache-Control: max-age=N`; `no-store` keeps an answer out; the size bound holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cache_keeps_only_deterministic_answers_unless_asked() {
    let (fake, _dir, engine) = start("{ rpm = 1000 }", "[cache]\nmax_entries = 3\n").await;
    let msg = |s: &str| json!([{"role": "user", "content": s}]);
    let calls = || async { fake.all_requests().await.len() };

    // Sampled (temperature 0.7): two calls, nothing stored.
    let sampled =
        json!({"model": "pb", "temperature": 0.7, "max_tokens": 8, "messages": msg("sampled")});
    assert_eq!(post_cc(&engine, &sampled, None).await, ("miss".into(), 200));
    assert_eq!(post_cc(&engine, &sampled, None).await, ("miss".into(), 200));
    assert_eq!(calls().await, 2);
    assert_eq!(
        cache_entries(&engine).await,
        0,
        "a sampled answer is not stored"
    );

    // Deterministic (temperature 0): the second is a hit.
    let det = json!({"model": "pb", "temperature": 0, "max_tokens": 8, "messages": msg("det")});
    assert_eq!(post_cc(&engine, &det, None).await.0, "miss");
    wait_entries(&engine, 1).await;
    assert_eq!(post_cc(&engine, &det, None).await.0, "hit");
    assert_eq!(calls().await, 3);
    // A seed without a temperature is deterministic too; no-store keeps it out.
    let seeded = json!({"model": "pb", "seed": 7, "max_tokens": 8, "messages": msg("seeded")});
    assert_eq!(post_cc(&engine, &seeded, Some("no-store")).await.0, "miss");
    assert_eq!(post_cc(&engine, &seeded, Some("no-store")).await.0, "miss");
    assert_eq!(calls().await, 5);

    // A sampled request opting in: stored, and served while younger than max-age.
    let opted =
        json!({"model": "pb", "temperature": 1.0, "max_tokens": 8, "messages": msg("opted in")});
    assert_eq!(
        post_cc(&engine, &opted, Some("max-age=300")).await.0,
        "miss"
    );
    wait_entries(&engine, 2).await;
    assert_eq!(post_cc(&engine, &opted, Some("max-age=300")).await.0, "hit");
    assert_eq!(
        post_cc(&engine, &opted, None).await.0,
        "miss",
        "without opting in"
    );
    assert_eq!(calls().await, 7);

    // The size bound: 3 entries at most, the oldest evicted.
    for i in 0..5 {
        let b = json!({"model": "pb", "temperature": 0, "max_tokens": 8, "messages": msg(&format!("bound {i}"))});
        assert_eq!(post_cc(&engine, &b, None).await.0, "miss");
    }
    wait_entries(&engine, 3).await;
    let st = engine.get("/api/optimization_stats", None).await.json;
    let response = st["cache"]["kinds"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kind"] == "response")
        .unwrap()
        .clone();
    assert!(response["entries"].as_u64().unwrap() <= 3, "{response}");
}
