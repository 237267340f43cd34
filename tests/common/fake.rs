//! Test harness for the `fake-provider` binary: starts it on a free loopback port, drives its `/_fake/`
//! control API (keys, faults, latency) and reads back the request log and statistics; the child dies on drop.
// Test-only code: a failed setup step should stop the test loudly.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

/// A running fake provider.
pub struct FakeProvider {
    child: Child,
    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub base: String,
    http: reqwest::Client,
}

impl FakeProvider {
    /// Starts `fake-provider --bind 127.0.0.1:0` and waits (10 s at most) for its `listening on` line.
    pub async fn start() -> FakeProvider {
        Self::start_with_args(&[]).await
    }

    /// Like [`FakeProvider::start`], with extra command-line arguments (e.g. `--keys FILE`).
    pub async fn start_with_args(args: &[&str]) -> FakeProvider {
        Self::start_bound("127.0.0.1:0", args).await
    }

    /// Like [`FakeProvider::start_with_args`], listening on `bind` (a port chosen by the test).
    pub async fn start_bound(bind: &str, args: &[&str]) -> FakeProvider {
        let bin = fake_provider::binary().expect("the fake-provider binary");
        let mut child = Command::new(bin)
            .args(["--bind", bind])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn fake-provider");
        let stdout = child.stdout.take().expect("fake-provider stdout");
        let (tx, rx) = tokio::sync::oneshot::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            let _ = reader.read_line(&mut line);
            let _ = tx.send(line);
            // Keep draining so the child never blocks on a full pipe.
            let mut sink = String::new();
            while reader.read_line(&mut sink).map(|n| n > 0).unwrap_or(false) {
                sink.clear();
            }
        });
        let line = match tokio::time::timeout(Duration::from_secs(10), rx).await {
            Ok(Ok(line)) => line,
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("fake-provider did not print its listening line within 10 s");
            }
        };
        let base = match line.trim().strip_prefix("listening on ") {
            Some(b) => b.trim_end_matches('/').to_string(),
            None => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("unexpected first line from fake-provider: {line:?}");
            }
        };
        FakeProvider {
            child,
            base,
            // A fresh connection per control request: a kept-alive one the fake has just closed fails.
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(0)
                .build()
                .expect("http client"),
        }
    }

    /// `base` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        let resp = self
            .http
            .post(self.url(path))
            .json(&body)
            .send()
            .await
            .expect("control request");
        let status = resp.status();
        let v: Value = resp.json().await.expect("control answer is JSON");
        assert!(status.is_success(), "POST {path} {body} -> {status}: {v}");
        v
    }

    async fn get(&self, path: &str) -> Value {
        let resp = self
            .http
            .get(self.url(path))
            .send()
            .await
            .expect("control request");
        let status = resp.status();
        let v: Value = resp.json().await.expect("control answer is JSON");
        assert!(status.is_success(), "GET {path} -> {status}: {v}");
        v
    }

    /// Registers (or replaces) `key` with `limits` (`{"rpm":..,"rpd":..,"tpm":..,"tpd":..}`, any subset).
    pub async fn add_key(&self, key: &str, limits: Value) {
        self.add_key_with(json!({ "key": key, "limits": limits }))
            .await;
    }

    /// Registers a key from a full body: `{"key","limits","latency_ms","fault","reply"}`.
    pub async fn add_key_with(&self, body: Value) {
        self.post("/_fake/keys", body).await;
    }

    /// Makes the whole server answer 503 "Loading model" (as `llama-server` does while it loads), or
    /// serve again.
    pub async fn set_loading(&self, loading: bool) {
        self.post("/_fake/loading", json!({ "loading": loading }))
            .await;
    }

    /// Sets (`Some`) or clears (`None`) a fault, for the next `count` requests or until cleared.
    pub async fn set_fault(&self, key: &str, fault: Option<&str>, count: Option<u32>) {
        self.post(
            &format!("/_fake/keys/{key}/fault"),
            json!({ "fault": fault, "count": count }),
        )
        .await;
    }

    /// Sets a `rate_limit` / `rate_limit_day` fault for the next `count` requests, answering with
    /// `Retry-After: retry_after_s`.
    pub async fn set_rate_limit_fault(
        &self,
        key: &str,
        fault: &str,
        count: u32,
        retry_after_s: f64,
    ) {
        self.post(
            &format!("/_fake/keys/{key}/fault"),
            json!({ "fault": fault, "count": count, "retry_after_s": retry_after_s }),
        )
        .await;
    }

    /// Sets the delay before the first byte of every answer for `key`.
    pub async fn set_latency(&self, key: &str, latency_ms: u64) {
        self.post(
            &format!("/_fake/keys/{key}/latency"),
            json!({ "latency_ms": latency_ms }),
        )
        .await;
    }

    /// Registers `key` without limits and with the interviewer persona as its reply (`@interviewer`):
    /// it grades answers, analyses resumes and asks follow-up questions from the request it gets.
    pub async fn add_interviewer_key(&self, key: &str) {
        self.add_key_with(json!({ "key": key, "limits": {}, "reply": "@interviewer" }))
            .await;
    }

    /// Sets (or with `None` clears) the fixed reply text of `key`.
    pub async fn set_reply(&self, key: &str, reply: Option<&str>) {
        self.post(
            &format!("/_fake/keys/{key}/reply"),
            json!({ "reply": reply }),
        )
        .await;
    }

    /// The logged requests of `key`, oldest first.
    pub async fn requests(&self, key: &str) -> Vec<Value> {
        let mut url = reqwest::Url::parse(&self.url("/_fake/requests")).expect("url");
        url.query_pairs_mut().append_pair("key", key);
        let resp = self.http.get(url).send().await.expect("control request");
        let v: Value = resp.json().await.expect("control answer is JSON");
        v.as_array().cloned().expect("request log is an array")
    }

    /// The logged requests of all keys (and of requests without one), oldest first.
    pub async fn all_requests(&self) -> Vec<Value> {
        self.get("/_fake/requests")
            .await
            .as_array()
            .cloned()
            .expect("request log is an array")
    }

    /// Per-key statistics: `{"K": {"requests","served","rate_limited_by_fake",...}}`.
    pub async fn stats(&self) -> Value {
        self.get("/_fake/stats").await
    }

    /// Sets what the audio endpoints answer: `{"text", "latency_ms", "status"}` (any subset).
    pub async fn audio_control(&self, body: Value) {
        self.post("/_fake/audio", body).await;
    }

    /// Audio counts: `{"transcriptions", "speech", "audio_seconds", "refused"}`.
    pub async fn audio_counts(&self) -> Value {
        self.get("/_fake/audio").await
    }

    /// Forgets all keys, counters and logged requests.
    pub async fn reset(&self) {
        self.post("/_fake/reset", json!({})).await;
    }
}

impl Drop for FakeProvider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
