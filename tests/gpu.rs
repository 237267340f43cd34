//! The GPU pool against a real local inference server: llama.cpp's `llama-server` (installed by
//! `.ci/install-llama-server`) serving SmolLM2-135M-Instruct on 127.0.0.1, reached through the engine
//! binary: plain and streamed gateway requests, a whole balanced interview graded on the node, and
//! a dead node that falls back to cloud keys. Dispatch rules (least outstanding, max_concurrency,
//! breaker, affinity) are tested against in-test fake nodes in `actors/src/gpu_pool/tests.rs`.
#![allow(
    missing_docs,
    dead_code,
    clippy::useless_vec,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

mod common;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::config::free_port;
use common::fake::FakeProvider;
use common::server::Engine;
use common::ws::{create, Client, GOOD_ANSWER};
use serde_json::{json, Value};

const NODE_KEY: &str = "llama-node-key-SECRETVALUE";

/// One real model at a time: two `llama-server`s on two shared cores slow each other's generation
/// (a CPU-only model under a JSON grammar) past any sensible evaluation deadline.
static ONE_MODEL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The installed `llama-server` and model: from `LLAMA_SERVER_BIN`/`LLAMA_MODEL`, else from the file
/// `.ci/install-llama-server` writes. Missing means the test fails loudly, never skips.
fn installed() -> (PathBuf, PathBuf) {
    if let (Ok(b), Ok(m)) = (
        std::env::var("LLAMA_SERVER_BIN"),
        std::env::var("LLAMA_MODEL"),
    ) {
        return (b.into(), m.into());
    }
    let home = std::env::var("IE_LLAMA_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default())
                .join(".cache/interview-engine/llama")
        });
    let env = std::fs::read_to_string(home.join("env")).unwrap_or_else(|e| {
        panic!(
            "llama-server is not installed ({}: {e}): run `scripts/install-test-deps` (it builds it \
             with .ci/install-llama-server, ~12 min once), or skip these tests with `-- --skip gpu`",
            home.join("env").display()
        )
    });
    let get = |k: &str| {
        env.lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .map(|v| PathBuf::from(v.trim_matches('\'')))
            .unwrap_or_else(|| panic!("{k} missing in {}", home.join("env").display()))
    };
    let (bin, model) = (get("LLAMA_SERVER_BIN"), get("LLAMA_MODEL"));
    assert!(
        bin.exists(),
        "llama-server not found at {}: run `scripts/install-test-deps`",
        bin.display()
    );
    assert!(
        model.exists(),
        "model not found at {}: run `scripts/install-test-deps`",
        model.display()
    );
    (bin, model)
}

/// A running `llama-server`, killed on drop.
struct Llama {
    child: Child,
    url: String,
    _one: tokio::sync::MutexGuard<'static, ()>,
}

impl Llama {
    async fn start() -> Llama {
        let one = ONE_MODEL.lock().await;
        let (bin, model) = installed();
        let port = free_port();
        let child = Command::new(bin)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .arg("-m")
            .arg(model)
            // One thread: two busy-waiting OpenMP threads on two cores shared with the engine and the
            // test client slow generation by orders of magnitude whenever anything else runs.
            .args(["-c", "4096", "-np", "2", "-t", "1", "--api-key", NODE_KEY])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start llama-server");
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(r) = reqwest::get(format!("{url}/health")).await {
                if r.status().is_success() {
                    break;
                }
            }
            assert!(Instant::now() < deadline, "llama-server did not come up");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Llama {
            child,
            url,
            _one: one,
        }
    }
}

impl Drop for Llama {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn config(node_url: &str, extra: &str) -> String {
    format!(
        "[server]\nbind = \"127.0.0.1:0\"\n[storage]\npath = \"data\"\n[interview]\nmode = \"balanced\"\neval_deadline_ms = 150000\n[gpu]\nprobe_interval_ms = 1000\n\n[[gpu_nodes]]\nname = \"local\"\nurl = \"{node_url}\"\nmax_concurrency = 2\napi_key_env = \"LOCAL_NODE_KEY\"\n{extra}"
    )
}

/// Waits (60 s at most) until the first health probe has seen the node up: until then the engine
/// has no capacity to offer, which is right, but not what these tests are about.
async fn wait_until_up(engine: &Engine) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let s = engine.get("/api/system_status", None).await;
        if s.json["gpu"]["nodes"][0]["state"] == "up" {
            return;
        }
        assert!(Instant::now() < deadline, "node never up: {}", s.text);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_local_node_serves_plain_and_streamed_requests() {
    let llama = Llama::start().await;
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::start(
        dir.path(),
        &config(&llama.url, ""),
        &[("LOCAL_NODE_KEY", NODE_KEY.into())],
    );
    wait_until_up(&engine).await;
    let body = json!({"max_tokens": 24, "messages": [{"role": "user", "content": "Say hello in five words."}]});
    let r = engine.post("/v1/chat/completions", &body, None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.headers["x-served-by"], "gpu:local");
    let text = r.json["choices"][0]["message"]["content"].as_str().unwrap();
    assert!(
        !text.trim().is_empty(),
        "the model generated text: {}",
        r.text
    );

    let mut body = body.clone();
    body["stream"] = json!(true);
    let r = engine.post("/v1/chat/completions", &body, None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.headers["x-served-by"], "gpu:local");
    let pieces = r
        .text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter(|l| *l != "[DONE]")
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| {
            v["choices"][0]["delta"]["content"]
                .as_str()
                .is_some_and(|c| !c.is_empty())
        })
        .count();
    assert!(pieces >= 2, "streamed token by token: {}", r.text);
    assert!(r.text.trim_end().ends_with("data: [DONE]"), "{}", r.text);

    // A request is counted before its caller sees the end of it (`[DONE]` for a stream).
    let s = engine.get("/api/system_status", None).await;
    let node = &s.json["gpu"]["nodes"][0];
    assert_eq!(node["name"], "local");
    assert_eq!(node["state"], "up", "{}", s.text);
    assert!(node["requests"].as_u64().unwrap() >= 2, "{}", s.text);
    assert!(!s.text.contains(NODE_KEY), "the node key never leaves");
    assert!(!engine.log().contains(NODE_KEY), "nor reaches the log");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn balanced_interview_is_graded_on_the_local_node() {
    let llama = Llama::start().await;
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::start(
        dir.path(),
        &config(&llama.url, ""),
        &[("LOCAL_NODE_KEY", NODE_KEY.into())],
    );
    wait_until_up(&engine).await;
    let c = create(
        &engine.base,
        json!({"candidate": {"id": "gpu-1", "name": "Ken"}, "role": "Backend Engineer",
               "track": "technical", "mode": "balanced", "questions": 2}),
    )
    .await;
    let mut client = Client::connect(&engine.base, &c).await;
    // Evaluations and the coach note run on a CPU-only model that shares 2 cores with other tests.
    client.wait = Duration::from_secs(400);
    client.next().await;
    loop {
        let v = client.next_prompt().await;
        if v["type"] == "report" {
            break;
        }
        client.answer(GOOD_ANSWER).await;
    }
    // The main answer's evaluation of each turn (a follow-up's answer, when the score asks for one,
    // is graded by the rubric scorer at the balanced level).
    let evaluations = common::ws::main_evaluations(&client.logged);
    assert_eq!(evaluations.len(), 2, "both questions were evaluated");
    for e in &evaluations {
        assert_eq!(
            e["source"],
            "gpu:local",
            "graded on the node: {e}\n--- engine log ---\n{}",
            engine.log()
        );
        assert!(e["score"].as_u64().unwrap() <= 10);
    }
    let s = engine.get("/api/system_status", None).await;
    let stats = &s.json["gpu"]["stats"];
    assert!(
        stats["affinity_hits"].as_u64().unwrap() >= 1,
        "the interview stayed on its node: {stats}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_node_falls_back_to_cloud_keys_and_shows_down() {
    let fake = FakeProvider::start().await;
    let reply =
        json!({"score": 6, "reaction": "Thanks.", "feedback": "Fine.", "rubric_covered": []})
            .to_string();
    fake.add_key_with(json!({"key": "gpu-test-cloud-key", "limits": {}, "reply": reply}))
        .await;
    let dir = tempfile::tempdir().unwrap();
    let dead = format!("http://127.0.0.1:{}", free_port());
    let extra = format!(
        "\n[providers.fakeai]\nformat = \"openai\"\nbase_url = \"{}/v1\"\nmodel = \"m\"\npriority = 1\nkeys_env = \"FAKEAI_API_KEYS\"\nlimits = {{ rpm = 1000 }}\n",
        fake.base
    );
    let engine = Engine::start(
        dir.path(),
        &config(&dead, &extra),
        &[
            ("LOCAL_NODE_KEY", NODE_KEY.into()),
            ("FAKEAI_API_KEYS", "gpu-test-cloud-key".into()),
        ],
    );
    // The probe marks the node down.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let s = engine.get("/api/system_status", None).await;
        if s.json["gpu"]["nodes"][0]["state"] == "down" {
            assert!(
                s.json["alerts"]
                    .to_string()
                    .contains("gpu node local is down"),
                "{}",
                s.text
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "node never marked down: {}",
            s.text
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let c = create(
        &engine.base,
        json!({"candidate": {"id": "gpu-2", "name": "Ada"}, "mode": "balanced", "questions": 2}),
    )
    .await;
    let mut client = Client::connect(&engine.base, &c).await;
    client.next().await;
    loop {
        let v = client.next_prompt().await;
        if v["type"] == "report" {
            break;
        }
        client.answer(GOOD_ANSWER).await;
    }
    // The main answer's evaluation of each turn (a follow-up's answer is graded by the rubric scorer
    // at the balanced level).
    let sources: Vec<String> = common::ws::main_evaluations(&client.logged)
        .iter()
        .map(|e| e["source"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(sources.len(), 2);
    assert!(
        sources.iter().all(|s| s == "llm:fakeai"),
        "the cloud key took over: {sources:?}"
    );
}
