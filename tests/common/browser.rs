//! A minimal W3C WebDriver client for browser tests: starts `chromedriver` on a free port, opens one
//! headless Chromium session and speaks the WebDriver HTTP protocol over reqwest. Dropping the
//! `Browser` deletes the session (Chromium quits) and kills chromedriver.
//!
//! Needs `/usr/bin/chromium` and `chromedriver` on PATH (`scripts/install-test-deps` installs them, as
//! Debian's `chromium` and `chromium-driver`); `CHROMIUM_BIN` and `CHROMEDRIVER` override the two
//! paths. Missing either one panics with the command that installs it.

// Test support: failing loudly is the point, whichever test crate includes this module.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};

use super::config::free_port;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};

/// The W3C key under which an element reference travels.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A reference to an element of the current page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ElementId(pub String);

impl ElementId {
    /// The element as a script argument (`arguments[i]` is the DOM element).
    pub fn json(&self) -> Value {
        json!({ ELEMENT_KEY: self.0 })
    }
}

/// A WebDriver error answer.
#[derive(Debug)]
pub struct WdError {
    /// HTTP status.
    pub status: u16,
    /// The W3C error code, e.g. `no such element`.
    pub error: String,
    /// The driver's message.
    pub message: String,
}

impl std::fmt::Display for WdError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (HTTP {}): {}", self.error, self.status, self.message)
    }
}

/// One chromedriver process with one headless Chromium session.
pub struct Browser {
    driver: Child,
    port: u16,
    base: String,
    session: Option<String>,
    http: reqwest::Client,
    dir: tempfile::TempDir,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium session. Panics with a clear message if either
    /// program is missing or the session cannot be created.
    pub async fn start() -> Browser {
        Self::start_with_args(&[]).await
    }

    /// Like [`Browser::start`], with extra Chromium flags (e.g. a fake microphone).
    pub async fn start_with_args(extra: &[String]) -> Browser {
        let chromium =
            std::env::var("CHROMIUM_BIN").unwrap_or_else(|_| "/usr/bin/chromium".to_string());
        if !Path::new(&chromium).exists() {
            panic!(
                "browser tests need Chromium at {chromium}, which does not exist: run \
                 `scripts/install-test-deps` (or `apt-get install -y chromium chromium-driver`), or set CHROMIUM_BIN"
            );
        }
        let driver_bin =
            std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".to_string());
        let dir = tempfile::tempdir().expect("temp dir for the browser profile");
        let profile = dir.path().join("profile");
        std::fs::create_dir_all(&profile).expect("profile dir");
        let log_path = dir.path().join("chromedriver.log");
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .expect("http client");

        // The port is free when we look; another process may take it before chromedriver binds,
        // so try a few times.
        let mut last_failure = String::new();
        for _attempt in 0..3 {
            let port = free_port();
            let log = std::fs::File::create(&log_path).expect("chromedriver log file");
            let spawned = Command::new(&driver_bin)
                .arg(format!("--port={port}"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::from(log))
                .spawn();
            let mut driver = match spawned {
                Ok(c) => c,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
                    "browser tests need chromedriver ({driver_bin}), which was not found: run \
                     `scripts/install-test-deps` (or `apt-get install -y chromium chromium-driver`), or set CHROMEDRIVER"
                ),
                Err(e) => panic!("could not start chromedriver ({driver_bin}): {e}"),
            };
            let base = format!("http://127.0.0.1:{port}");
            if wait_ready(&http, &base, &mut driver, Duration::from_secs(20)).await {
                let mut browser = Browser {
                    driver,
                    port,
                    base,
                    session: None,
                    http,
                    dir,
                };
                browser.new_session(&chromium, &profile, extra).await;
                return browser;
            }
            let _ = driver.kill();
            let _ = driver.wait();
            last_failure = std::fs::read_to_string(&log_path).unwrap_or_default();
        }
        panic!("chromedriver did not become ready; its log:\n{last_failure}");
    }

    async fn new_session(&mut self, chromium: &str, profile: &Path, extra: &[String]) {
        let mut args = vec![
            "--headless=new".to_string(),
            "--no-sandbox".to_string(),
            "--disable-gpu".to_string(),
            "--disable-dev-shm-usage".to_string(),
            "--disable-background-networking".to_string(),
            "--disable-component-update".to_string(),
            "--disable-sync".to_string(),
            "--no-first-run".to_string(),
            "--window-size=1280,900".to_string(),
            format!("--user-data-dir={}", profile.display()),
        ];
        args.extend(extra.iter().cloned());
        let body = json!({
            "capabilities": {
                "alwaysMatch": {
                    "browserName": "chrome",
                    "pageLoadStrategy": "normal",
                    "unhandledPromptBehavior": "accept",
                    "goog:chromeOptions": { "binary": chromium, "args": args },
                }
            }
        });
        let url = format!("{}/session", self.base);
        let answer = self.send(Method::POST, &url, Some(body)).await;
        match answer {
            Ok(v) => match v["sessionId"].as_str() {
                Some(id) => self.session = Some(id.to_string()),
                None => panic!("chromedriver answered without a session id: {v}"),
            },
            Err(e) => panic!(
                "could not start Chromium ({chromium}) through chromedriver: {e}\nchromedriver log:\n{}",
                self.driver_log()
            ),
        }
    }

    /// chromedriver's log so far.
    pub fn driver_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("chromedriver.log")).unwrap_or_default()
    }

    async fn send(&self, method: Method, url: &str, body: Option<Value>) -> Result<Value, WdError> {
        let mut rb = self.http.request(method.clone(), url);
        if method == Method::POST {
            rb = rb.json(&body.unwrap_or_else(|| json!({})));
        }
        let resp = match rb.send().await {
            Ok(r) => r,
            Err(e) => panic!("chromedriver request {method} {url} failed: {e}"),
        };
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        let v: Value = serde_json::from_str(&text).unwrap_or_else(|_| json!({ "value": text }));
        let value = v.get("value").cloned().unwrap_or(Value::Null);
        if (200..300).contains(&status) {
            Ok(value)
        } else {
            Err(WdError {
                status,
                error: value["error"]
                    .as_str()
                    .unwrap_or("unknown error")
                    .to_string(),
                message: value["message"].as_str().unwrap_or(&text).to_string(),
            })
        }
    }

    /// One session command; `path` is relative to `/session/{id}`.
    pub async fn command(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, WdError> {
        let session = self.session.as_deref().expect("browser session");
        let url = format!("{}/session/{session}{path}", self.base);
        self.send(method, &url, body).await
    }

    async fn must(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        let what = format!("{method} {path}");
        match self.command(method, path, body).await {
            Ok(v) => v,
            Err(e) => panic!("WebDriver {what} failed: {e}"),
        }
    }

    /// Navigates and waits for the page to load.
    pub async fn goto(&self, url: &str) {
        self.must(Method::POST, "/url", Some(json!({ "url": url })))
            .await;
    }

    /// The current URL.
    pub async fn url(&self) -> String {
        self.must(Method::GET, "/url", None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// The first element matching a CSS selector, if any.
    pub async fn find(&self, css: &str) -> Option<ElementId> {
        let body = json!({ "using": "css selector", "value": css });
        match self.command(Method::POST, "/element", Some(body)).await {
            Ok(v) => element_id(&v),
            Err(e) if e.error == "no such element" => None,
            Err(e) => panic!("find({css:?}) failed: {e}"),
        }
    }

    /// Every element matching a CSS selector.
    pub async fn find_all(&self, css: &str) -> Vec<ElementId> {
        let body = json!({ "using": "css selector", "value": css });
        let v = self.must(Method::POST, "/elements", Some(body)).await;
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(element_id)
            .collect()
    }

    /// Polls every 100 ms for an element matching `css`; panics after `timeout` with the tail of
    /// the page source.
    pub async fn wait_for(&self, css: &str, timeout: Duration) -> ElementId {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(el) = self.find(css).await {
                return el;
            }
            if Instant::now() >= deadline {
                panic!(
                    "no element matched {css:?} within {timeout:?} on {}\n--- page source (tail) ---\n{}",
                    self.url().await,
                    self.source_tail(4000).await
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Polls every 100 ms until `script` (a function body; use `return`) returns something truthy,
    /// and returns that value; panics after `timeout` saying what was awaited.
    pub async fn wait_until(&self, script: &str, timeout: Duration, what: &str) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let v = self.exec(script, vec![]).await;
            if truthy(&v) {
                return v;
            }
            if Instant::now() >= deadline {
                panic!(
                    "timed out after {timeout:?} waiting for {what} on {}\n--- page source (tail) ---\n{}",
                    self.url().await,
                    self.source_tail(4000).await
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Clicks an element (scrolled into view first by the driver). Retries for up to two seconds
    /// while something else covers it or it is not yet interactable.
    pub async fn click(&self, el: &ElementId) {
        let path = format!("/element/{}/click", el.0);
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            match self.command(Method::POST, &path, None).await {
                Ok(_) => return,
                Err(e)
                    if (e.error == "element click intercepted"
                        || e.error == "element not interactable")
                        && Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("click failed: {e}"),
            }
        }
    }

    /// Types `text` into an element as key presses (appends to what is there).
    pub async fn type_into(&self, el: &ElementId, text: &str) {
        let path = format!("/element/{}/value", el.0);
        self.must(Method::POST, &path, Some(json!({ "text": text })))
            .await;
    }

    /// Empties an input or textarea.
    pub async fn clear(&self, el: &ElementId) {
        let path = format!("/element/{}/clear", el.0);
        self.must(Method::POST, &path, None).await;
    }

    /// Sets the value of a `<select>` (or any input) matching `css` by script, firing `input` and
    /// `change`; panics if the element is missing or refuses the value.
    pub async fn select_value(&self, css: &str, value: &str) {
        let script = "const e = document.querySelector(arguments[0]); if (!e) return 'missing'; \
                      e.value = arguments[1]; \
                      e.dispatchEvent(new Event('input', { bubbles: true })); \
                      e.dispatchEvent(new Event('change', { bubbles: true })); \
                      return e.value === arguments[1] ? 'ok' : 'refused';";
        let v = self.exec(script, vec![json!(css), json!(value)]).await;
        if v != json!("ok") {
            panic!("select_value({css:?}, {value:?}): {v}");
        }
    }

    /// The rendered text of an element.
    pub async fn text(&self, el: &ElementId) -> String {
        let path = format!("/element/{}/text", el.0);
        self.must(Method::GET, &path, None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// An attribute of an element (`None` when absent).
    pub async fn attr(&self, el: &ElementId, name: &str) -> Option<String> {
        let path = format!("/element/{}/attribute/{name}", el.0);
        self.must(Method::GET, &path, None)
            .await
            .as_str()
            .map(str::to_string)
    }

    /// A DOM property of an element (`value`, `disabled`, `href`, ...).
    pub async fn property(&self, el: &ElementId, name: &str) -> Value {
        let path = format!("/element/{}/property/{name}", el.0);
        self.must(Method::GET, &path, None).await
    }

    /// Whether an element is visible.
    pub async fn displayed(&self, el: &ElementId) -> bool {
        let path = format!("/element/{}/displayed", el.0);
        self.must(Method::GET, &path, None)
            .await
            .as_bool()
            .unwrap_or(false)
    }

    /// Whether an element is enabled.
    pub async fn enabled(&self, el: &ElementId) -> bool {
        let path = format!("/element/{}/enabled", el.0);
        self.must(Method::GET, &path, None)
            .await
            .as_bool()
            .unwrap_or(false)
    }

    /// Runs `script` (a function body; `arguments[i]` are `args`) and returns what it returns.
    /// Pass elements as `el.json()`.
    pub async fn exec(&self, script: &str, args: Vec<Value>) -> Value {
        let body = json!({ "script": script, "args": args });
        match self
            .command(Method::POST, "/execute/sync", Some(body))
            .await
        {
            Ok(v) => v,
            Err(e) => panic!("script failed: {e}\n--- script ---\n{script}"),
        }
    }

    /// The page source.
    pub async fn source(&self) -> String {
        self.must(Method::GET, "/source", None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// The last `n` characters of the page source.
    pub async fn source_tail(&self, n: usize) -> String {
        let src = self.source().await;
        let chars: Vec<char> = src.chars().collect();
        chars[chars.len().saturating_sub(n)..].iter().collect()
    }

    /// Writes a PNG screenshot of the viewport to `path`.
    pub async fn screenshot(&self, path: impl AsRef<Path>) {
        let v = self.must(Method::GET, "/screenshot", None).await;
        let b64 = v.as_str().expect("screenshot is base64 text");
        let png = base64_decode(b64).expect("screenshot base64");
        std::fs::write(path.as_ref(), png)
            .unwrap_or_else(|e| panic!("write screenshot {}: {e}", path.as_ref().display()));
    }

    /// The temporary directory this browser owns (profile and chromedriver log); gone on drop.
    pub fn dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    /// Ends the session and chromedriver now (drop does the same).
    pub async fn quit(mut self) {
        if let Some(session) = self.session.take() {
            let url = format!("{}/session/{session}", self.base);
            let _ = self.send(Method::DELETE, &url, None).await;
        }
        // Drop kills chromedriver.
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Deleting the session makes chromedriver quit Chromium. Drop cannot await, so this is a
        // plain blocking HTTP/1.1 request.
        if let Some(session) = self.session.take() {
            delete_session_blocking(self.port, &session);
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn element_id(v: &Value) -> Option<ElementId> {
    v.get(ELEMENT_KEY)
        .and_then(Value::as_str)
        .map(|s| ElementId(s.to_string()))
}

fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|x| x != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(_) | Value::Object(_) => true,
    }
}

/// Waits for `GET /status` to say ready; false if chromedriver exits or the time runs out.
async fn wait_ready(
    http: &reqwest::Client,
    base: &str,
    driver: &mut Child,
    timeout: Duration,
) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = driver.try_wait() {
            return false;
        }
        if let Ok(resp) = http.get(format!("{base}/status")).send().await {
            if let Ok(v) = resp.json::<Value>().await {
                if v["value"]["ready"] == json!(true) {
                    return true;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

fn delete_session_blocking(port: u16, session: &str) {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_secs(2)) else {
        return;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(2)));
    let request = format!(
        "DELETE /session/{session} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    if stream.write_all(request.as_bytes()).is_err() {
        return;
    }
    // Read the whole answer (the session is gone once it arrives); chromedriver may keep the
    // connection open, so stop at the end of the body rather than at EOF.
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
        let len = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse::<usize>().ok())
            .unwrap_or(0);
        if buf.len() >= end + 4 + len {
            return;
        }
    }
}

/// Standard base64 (with or without padding; whitespace ignored).
pub fn base64_decode(s: &str) -> Option<Vec<u8>> {
    fn val(c: u8) -> Option<u32> {
        match c {
            b'A'..=b'Z' => Some(u32::from(c - b'A')),
            b'a'..=b'z' => Some(u32::from(c - b'a') + 26),
            b'0'..=b'9' => Some(u32::from(c - b'0') + 52),
            b'+' => Some(62),
            b'/' => Some(63),
            _ => None,
        }
    }
    let clean: Vec<u8> = s
        .bytes()
        .filter(|c| !c.is_ascii_whitespace() && *c != b'=')
        .collect();
    let mut out = Vec::with_capacity(clean.len() * 3 / 4);
    for chunk in clean.chunks(4) {
        let mut acc = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            acc |= val(c)? << (18 - 6 * i);
        }
        let bytes = acc.to_be_bytes();
        match chunk.len() {
            4 => out.extend_from_slice(&bytes[1..4]),
            3 => out.extend_from_slice(&bytes[1..3]),
            2 => out.push(bytes[1]),
            _ => return None,
        }
    }
    Some(out)
}
