//! Starts the real `interview-engine` binary with a temporary config on port 0, reads its address
//! from the first stdout line, keeps its log (stderr) in a file, and kills it on drop.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

/// A running engine process.
pub struct Engine {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// The process's stderr (its log).
    pub log_path: PathBuf,
    http: reqwest::Client,
}

/// An HTTP answer: status, JSON body (Null when not JSON), headers.
pub struct Answer {
    /// Status code.
    pub status: u16,
    /// Parsed body.
    pub json: Value,
    /// Raw body.
    pub text: String,
    /// Headers.
    pub headers: reqwest::header::HeaderMap,
}

impl Engine {
    /// Writes `config_toml` into `dir`, starts `interview-engine serve` with only `env` (plus PATH)
    /// in its environment, and waits for it to listen.
    pub fn start(dir: &Path, config_toml: &str, env: &[(&str, String)]) -> Engine {
        let config_path = dir.join("config.toml");
        std::fs::write(&config_path, config_toml).expect("write config");
        let log_path = dir.join(format!(
            "engine-{}.log",
            std::process::id() as u64 + rand_suffix()
        ));
        let log = std::fs::File::create(&log_path).expect("log file");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_interview-engine"));
        cmd.args(["serve", "--config"])
            .arg(&config_path)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .current_dir(dir);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn interview-engine");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(line)) = lines.next() {
                let _ = tx.send(line);
            }
            // Keep draining so the child never blocks on a full pipe.
            for _ in lines {}
        });
        let line = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(l) => l,
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "engine did not start; log:\n{}",
                    std::fs::read_to_string(&log_path).unwrap_or_default()
                );
            }
        };
        let base = line
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .trim()
            .to_string();
        Engine {
            child,
            base,
            log_path,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .expect("client"),
        }
    }

    /// SIGKILL: no shutdown code runs.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends `signal` (`TERM`, `STOP`, `CONT`) to the process.
    pub fn signal(&self, signal: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(ok, "kill -{signal} failed");
    }

    /// Waits (at most `within`) for the process to exit; returns whether it did.
    pub fn wait_exit(&mut self, within: Duration) -> bool {
        let deadline = std::time::Instant::now() + within;
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The process's resident memory (VmRSS), KiB.
    pub fn rss_kib(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    }

    /// The process log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// GET with an optional bearer token.
    pub async fn get(&self, path: &str, token: Option<&str>) -> Answer {
        let mut rb = self.http.get(format!("{}{}", self.base, path));
        if let Some(t) = token {
            rb = rb.bearer_auth(t);
        }
        answer(rb.send().await.expect("GET")).await
    }

    /// POST a JSON body.
    pub async fn post(&self, path: &str, body: &Value, token: Option<&str>) -> Answer {
        let mut rb = self.http.post(format!("{}{}", self.base, path)).json(body);
        if let Some(t) = token {
            rb = rb.bearer_auth(t);
        }
        answer(rb.send().await.expect("POST")).await
    }

    /// POST a raw body with a content type.
    pub async fn post_raw(
        &self,
        path: &str,
        body: Vec<u8>,
        content_type: &str,
        token: Option<&str>,
    ) -> Answer {
        let mut rb = self
            .http
            .post(format!("{}{}", self.base, path))
            .header("content-type", content_type)
            .body(body);
        if let Some(t) = token {
            rb = rb.bearer_auth(t);
        }
        answer(rb.send().await.expect("POST")).await
    }

    /// A chat completion through the gateway.
    pub async fn chat(&self, model: &str, text: &str) -> Answer {
        let body = serde_json::json!({
            "model": model, "max_tokens": 16,
            "messages": [{"role": "user", "content": text}],
        });
        self.post("/v1/chat/completions", &body, None).await
    }

    /// `/api/system_status` without a token.
    pub async fn status(&self) -> Value {
        self.get("/api/system_status", None).await.json
    }

    /// The value of the first `/metrics` line that starts with `name` (panics if there is none).
    pub async fn metric(&self, name: &str) -> f64 {
        let text = self.get("/metrics", None).await.text;
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().last())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in /metrics"))
    }
}

/// The status entry of one key id.
pub fn key_status<'a>(status: &'a Value, id: &str) -> &'a Value {
    status["providers"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|p| p["keys"].as_array().into_iter().flatten())
        .find(|k| k["id"] == id)
        .unwrap_or_else(|| panic!("key {id} not in status: {status}"))
}

async fn answer(resp: reqwest::Response) -> Answer {
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp.text().await.unwrap_or_default();
    let json = serde_json::from_str(&text).unwrap_or(Value::Null);
    Answer {
        status,
        json,
        text,
        headers,
    }
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed) * 1_000_000
}

impl Drop for Engine {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One mode's figures (`completed_interviews`, `provider_calls`, ...) from `/api/optimization_stats`.
pub fn mode_figures(stats: &Value, mode: &str) -> Value {
    stats["modes"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|m| m["mode"] == mode)
        .unwrap_or_else(|| panic!("mode {mode} not in the stats: {stats}"))
        .clone()
}
