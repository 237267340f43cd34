//! `interview-engine loadtest`: drives N complete interviews through the HTTP + WebSocket protocol
//! (tokio-tungstenite) with C at a time, and reports completed/failed, turn latency percentiles
//! (HDR histogram) and, from `/api/optimization_stats` read before and after the run, provider calls per
//! completed interview of the mode run, cache hit rates per kind, dedup saves and content by source.
//!
//! Every interview is a distinct candidate: its own id and name (tagged per run, so a second run against
//! the same storage is new candidates too), its own short resume with `--resume`, and answers composed
//! from a bank of sentences by a hash of (interview, answer number), so identical answers are rare.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use serde::Serialize;
use serde_json::{json, Value};
use tokio::sync::Mutex;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

/// Load-test parameters.
#[derive(Debug, Clone)]
pub struct LoadTest {
    /// Server root, `http://127.0.0.1:8080`.
    pub url: String,
    /// Interviews to run.
    pub interviews: usize,
    /// At the same time.
    pub concurrency: usize,
    /// Questions per interview (the answers each gives).
    pub answers_per_interview: u32,
    /// Admin token for reading provider usage, if the server has one.
    pub admin_token: Option<String>,
    /// Interview mode to request (`auto` when `None`).
    pub mode: Option<String>,
    /// Pause before each answer, ms (the session sits idle meanwhile).
    pub think_ms: u64,
    /// Spread of the pause: each one is drawn in `think_ms × [1 − j, 1 + j]` (0: every pause the same).
    pub think_jitter: f64,
    /// How long a client waits for the server's next event (its own thinking is not counted).
    pub turn_timeout_s: u64,
    /// Interview creations (HTTP) in flight at once; the HTTP connection pool keeps as many idle
    /// connections, so a run holds about `concurrency` WebSockets and at most this many HTTP sockets.
    pub create_concurrency: usize,
    /// The server's process id, to report its CPU time per turn and its memory (same machine only).
    pub server_pid: Option<u32>,
    /// Send a short synthetic resume with each interview (skills and years vary per interview).
    pub resume: bool,
    /// Answer by speaking this audio instead of typing (`--audio FILE.wav`).
    pub audio: Option<Arc<super::voice_load::AudioAnswer>>,
    /// Seconds between progress lines when stderr is not a terminal (a bar is drawn on a terminal).
    pub progress_every_s: u64,
}

impl LoadTest {
    /// The mode requested and reported: `--mode`, else `auto`.
    pub fn mode_name(&self) -> &str {
        self.mode.as_deref().unwrap_or("auto")
    }
}

/// The outcome.
#[derive(Debug, Clone, Serialize)]
pub struct LoadReport {
    /// Interviews that reached their report.
    pub completed: usize,
    /// Interviews that failed (with the first few reasons).
    pub failed: usize,
    /// First failure reasons.
    pub failures: Vec<String>,
    /// Answer → next interviewer event latency, ms.
    pub turn_latency_ms: Percentiles,
    /// Turns measured.
    pub turns: u64,
    /// Turns per second over the run.
    pub turns_per_s: f64,
    /// Wall time, s.
    pub elapsed_s: f64,
    /// The mode run (`--mode`, else `auto`).
    pub mode: String,
    /// Provider calls (cloud and GPU) per interview of `mode` completed during the run, from the deltas
    /// of `/api/optimization_stats`; null when the stats are not readable or nothing completed.
    pub provider_calls_per_interview: Option<f64>,
    /// Provider calls made for interviews of `mode` during the run.
    pub provider_calls: Option<u64>,
    /// Provider tokens (as reported) per interview of `mode` completed during the run.
    pub provider_tokens_per_interview: Option<f64>,
    /// Interviews of `mode` the server counted as completed during the run.
    pub server_completed_interviews: Option<u64>,
    /// Cache lookups during the run, per kind (`greeting`, `resume_analysis`, `evaluation`, ...).
    pub cache: Option<BTreeMap<String, CacheDelta>>,
    /// Requests served by sharing another's in-flight call during the run.
    pub dedup_saves: Option<u64>,
    /// Pieces of content served during the run, by source (`template`, `pool`, `cache`, `llm`, `gpu`,
    /// `heuristic`).
    pub content_by_source: Option<BTreeMap<String, u64>>,
    /// With `--audio`: end of speech → interviewer latency, speech-to-text time, frames.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub voice: Option<super::voice_load::VoiceFigures>,
    /// The load generator's own figures (its sockets and memory).
    pub loadgen: LoadgenFigures,
    /// The server's CPU and memory over the run, with `--server-pid`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server: Option<ServerFigures>,
}

/// What the load generator itself held.
#[derive(Debug, Clone, Serialize, Default)]
pub struct LoadgenFigures {
    /// Most WebSockets open at once.
    pub open_peak: usize,
    /// Seconds during which at least 99 % of `open_peak` sockets were open (sampled every second).
    pub held_s: u64,
    /// Its peak resident memory (VmHWM), MB.
    pub peak_rss_mb: f64,
    /// Its peak memory per socket open at the peak, KiB.
    pub kib_per_socket: f64,
}

/// The server's process over the run (read from `/proc/<pid>`).
#[derive(Debug, Clone, Serialize, Default)]
pub struct ServerFigures {
    /// CPU seconds (user + system) the server used during the run.
    pub cpu_s: f64,
    /// That CPU per turn measured, µs (all of the server's work, divided by the turns).
    pub cpu_us_per_turn: f64,
    /// Resident memory at the start, MB.
    pub rss_start_mb: f64,
    /// Resident memory sampled at the moment most sockets were open, MB.
    pub rss_at_open_peak_mb: f64,
    /// Highest resident memory sampled, MB.
    pub rss_peak_mb: f64,
    /// Resident memory at the end, MB.
    pub rss_end_mb: f64,
    /// `(rss_at_open_peak − rss_start) / open_peak`, KiB.
    pub kib_per_open_session: f64,
}

/// `/proc/<pid>` readings: (user + system CPU seconds, resident MB, peak resident MB).
fn proc_figures(pid: &str) -> Option<(f64, f64, f64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command (which may hold spaces) start after the last ')'.
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb = |key: &str| -> Option<f64> {
        let line = status.lines().find(|l| l.starts_with(key))?;
        line.split_whitespace().nth(1)?.parse::<f64>().ok()
    };
    // Linux reports CPU in clock ticks of 1/100 s (USER_HZ) on every architecture it runs on here.
    Some((
        ticks / 100.0,
        kb("VmRSS:")? / 1024.0,
        kb("VmHWM:")? / 1024.0,
    ))
}

/// Think time before answer `index` of interview `n`: `think_ms` spread by `think_jitter`, drawn
/// from a hash of (n, index) so runs are repeatable.
pub fn think_time(lt: &LoadTest, n: usize, index: usize) -> Duration {
    let j = lt.think_jitter.clamp(0.0, 1.0);
    let u = (mix(&[n as u64, index as u64, 0x0074_6869_6e6b]) % 10_001) as f64 / 10_000.0;
    let factor = 1.0 - j + 2.0 * j * u;
    Duration::from_millis((lt.think_ms as f64 * factor).round() as u64)
}

/// Cache lookups of one kind during the run.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CacheDelta {
    /// Lookups served from the cache.
    pub hits: u64,
    /// Lookups that were not.
    pub misses: u64,
    /// `hits / (hits + misses)`; null when there was no lookup.
    pub hit_rate: Option<f64>,
}

/// Latency percentiles in ms.
#[derive(Debug, Clone, Serialize)]
pub struct Percentiles {
    /// Median.
    pub p50: f64,
    /// 90th.
    pub p90: f64,
    /// 99th.
    pub p99: f64,
    /// Max.
    pub max: f64,
}

/// Sentences answers are composed from (three per answer, chosen by a hash of the interview and answer
/// number: 20³ = 8000 answers, so two candidates rarely give the same one).
const SENTENCES: [&str; 20] = [
    "I would start by clarifying the requirements and the expected load before designing anything.",
    "Then I would sketch the API and the data model and check them against the main use cases.",
    "In my last project we used PostgreSQL with an index on the lookup columns and cached the hot reads.",
    "We measured p99 latency before and after the change; it dropped from 120 ms to 30 ms.",
    "The key trade-off here is consistency versus availability, and I would make it explicit with the team.",
    "I would use idempotency keys so that retries are safe, and a queue to absorb bursts.",
    "Monitoring matters: alerts on error rate and latency, and dashboards the on-call person actually reads.",
    "We tested the design with a load test and a chaos drill before the launch.",
    "I led the migration of a monolith to services, split by domain, with contract tests between them.",
    "We rolled the change out behind feature flags, one percent of traffic at a time.",
    "The main lesson was to invest early in observability: tracing, structured logs and dashboards.",
    "I would profile first rather than guess, find the hot path, and fix the biggest cost.",
    "Once we found an N+1 query pattern; batching the queries cut the page time by 70 percent.",
    "When we disagreed on the approach, I wrote a short design doc with the options and their costs.",
    "I paired with a junior engineer on the rollout so that the knowledge did not stay with me.",
    "If I did it again I would add back-pressure earlier instead of scaling the workers first.",
    "Security-wise, I would keep secrets out of the code and rotate the keys on a schedule.",
    "For the data, I would keep an append-only log so that we can rebuild any view later.",
    "We kept the on-call load low by automating the two most common manual fixes.",
    "I would write the runbook together with the tests, so that both describe the same behaviour.",
];

/// First names and last names for candidates (400 distinct names before a number is added).
const FIRST_NAMES: [&str; 20] = [
    "Avery", "Jordan", "Priya", "Mateo", "Amara", "Lukas", "Mei", "Omar", "Sofia", "Kenji",
    "Zanele", "Elif", "Noah", "Ines", "Ravi", "Hana", "Diego", "Freya", "Tomasz", "Leila",
];
const LAST_NAMES: [&str; 20] = [
    "Chen", "Okafor", "Silva", "Novak", "Haddad", "Kowalski", "Tanaka", "Reyes", "Larsen",
    "Mensah", "Dubois", "Sharma", "Yilmaz", "Costa", "Fischer", "Nakamura", "Osei", "Moreau",
    "Kaur", "Walsh",
];

/// Skills the synthetic resumes draw from.
const SKILLS: [&str; 16] = [
    "Rust",
    "Go",
    "Python",
    "Java",
    "TypeScript",
    "Kotlin",
    "PostgreSQL",
    "MySQL",
    "Redis",
    "Kafka",
    "Kubernetes",
    "Docker",
    "AWS",
    "GCP",
    "React",
    "Terraform",
];

/// Projects the synthetic resumes draw from.
const PROJECTS: [&str; 8] = [
    "a payments API",
    "a search indexer",
    "an internal analytics dashboard",
    "a mobile checkout flow",
    "an event ingestion pipeline",
    "a feature flag service",
    "a billing reconciliation job",
    "a customer support chatbot",
];

/// FNV-1a over the parts, then a final mix (stable across runs and platforms).
fn mix(parts: &[u64]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for b in p.to_le_bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^ (h >> 33)
}

/// The candidate's name for interview `n`: distinct for every interview of a run.
pub fn candidate_name(n: usize) -> String {
    let per_round = FIRST_NAMES.len() * LAST_NAMES.len();
    let first = FIRST_NAMES[n % FIRST_NAMES.len()];
    let last = LAST_NAMES[(n / FIRST_NAMES.len()) % LAST_NAMES.len()];
    match n / per_round {
        0 => format!("{first} {last}"),
        round => format!("{first} {last} {}", round + 1),
    }
}

/// The answer interview `n` gives to its `index`-th question (follow-ups included): three sentences
/// of `SENTENCES` chosen by a hash of `(n, index)`.
pub fn answer_text(n: usize, index: usize) -> String {
    let h = mix(&[n as u64, index as u64]);
    let k = SENTENCES.len() as u64;
    [h % k, (h / k) % k, (h / (k * k)) % k]
        .iter()
        .map(|&i| SENTENCES[i as usize])
        .collect::<Vec<_>>()
        .join(" ")
}

/// A short resume for interview `n`: the name, the role, 1-12 years and three or four skills that vary
/// with `n`.
pub fn resume_text(n: usize, name: &str, role: &str) -> String {
    let h = mix(&[n as u64, 0x7265_7375_6d65]);
    let years = 1 + n % 12;
    let mut skills: Vec<&str> = Vec::new();
    for i in 0..(3 + h % 2) {
        let s = SKILLS[((h >> (8 * i)) % SKILLS.len() as u64) as usize];
        if !skills.contains(&s) {
            skills.push(s);
        }
    }
    let project = PROJECTS[(h >> 40) as usize % PROJECTS.len()];
    format!(
        "{name}\n{role}, {years} years of experience.\nSkills: {}.\nBuilt {project} used in production; \
         owned its design, on-call and performance work.",
        skills.join(", ")
    )
}

async fn one_interview(
    http: &reqwest::Client,
    lt: &LoadTest,
    run: &str,
    n: usize,
    hist: &Mutex<Histogram<u64>>,
    voice: Option<&super::voice_load::VoiceRecorder>,
    gates: &Gates,
) -> Result<u64, String> {
    let (creating, open) = (&gates.creating, &gates.open);
    let role = [
        "Backend Engineer",
        "Frontend Engineer",
        "Data Scientist",
        "SRE",
    ][n % 4];
    let track = ["technical", "mixed", "behavioral"][n % 3];
    let name = candidate_name(n);
    let mut body = json!({
        "candidate": {"id": format!("load-{run}-{n}"), "name": name},
        "role": role,
        "track": track,
        "questions": lt.answers_per_interview,
        "mode": lt.mode_name(),
    });
    if lt.resume {
        body["resume_text"] = json!(resume_text(n, &name, role));
    }
    let permit = creating.acquire().await.map_err(|e| e.to_string())?;
    let created: Value = http
        .post(format!("{}/api/interviews", lt.url))
        .json(&body)
        .send()
        .await
        .map_err(|e| format!("create: {e}"))?
        .json()
        .await
        .map_err(|e| format!("create: {e}"))?;
    drop(permit);
    let id = created["interview_id"]
        .as_str()
        .ok_or(format!("create: {created}"))?;
    let token = created["token"].as_str().ok_or("create: no token")?;
    let ws_base = lt.url.replacen("http", "ws", 1);
    let url = format!("{ws_base}/ws/interviews/{id}?token={token}");
    // Small buffers: thousands of connections at once.
    let config = WebSocketConfig::default()
        .read_buffer_size(8 * 1024)
        .write_buffer_size(0)
        .max_message_size(Some(1 << 20));
    // Nagle off when speaking: the small `audio_end` after a run of frames would otherwise wait for
    // the server's delayed ACK (about 40 ms), which is the client's delay, not the engine's.
    let (mut ws, _) =
        tokio_tungstenite::connect_async_with_config(url, Some(config), lt.audio.is_some())
            .await
            .map_err(|e| format!("connect: {e}"))?;
    let mut turns = 0u64;
    let mut answered = 0usize;
    let mut sent_at: Option<Instant> = None;
    let mut spoken = super::voice_load::Pending::default();
    let mut audio_started = false;
    // The last event received (`type` / `kind`), for the failure message.
    let mut last = String::from("none");
    // The server must answer within the turn timeout of the last thing the client did (connecting or
    // answering); the client's own thinking is not counted, so long runs have no fixed cap.
    let wait = Duration::from_secs(lt.turn_timeout_s.max(1));
    let _open = OpenSocket::new(open);
    // Events that came while the candidate was thinking, handled before reading more.
    let mut early: std::collections::VecDeque<Message> = Default::default();
    loop {
        let msg = match early.pop_front() {
            Some(m) => m,
            None => tokio::time::timeout(wait, ws.next())
                .await
                .map_err(|_| {
                    format!(
                        "no event from the server for {} s (interview {id}, {answered} answers sent, last event {last})",
                        wait.as_secs()
                    )
                })?
                .ok_or("connection closed before the report")?
                .map_err(|e| format!("ws: {e}"))?,
        };
        let Message::Text(text) = msg else { continue };
        let v: Value = serde_json::from_str(&text).map_err(|e| format!("bad frame: {e}"))?;
        last = match (v["type"].as_str(), v["kind"].as_str()) {
            (Some(t), Some(k)) => format!("{t}/{k}"),
            (Some(t), None) => t.to_string(),
            _ => "untyped".to_string(),
        };
        if let (Some(rec), Some((total, stt))) = (voice, spoken.on_event(&v)) {
            rec.record(total, stt).await;
        }
        match v["type"].as_str() {
            Some("interviewer") => {
                if let Some(t0) = sent_at.take() {
                    let us = t0.elapsed().as_micros() as u64;
                    let _ = hist.lock().await.record(us.max(1));
                    turns += 1;
                }
                if matches!(v["kind"].as_str(), Some("question" | "follow_up")) {
                    let answer = answer_text(n, answered);
                    let think = think_time(lt, n, answered);
                    answered += 1;
                    if !think.is_zero() {
                        // Reading while thinking, as a browser does: the server's heartbeat pings
                        // are answered (tungstenite queues the pong when it reads the ping).
                        let until = tokio::time::Instant::now() + think;
                        loop {
                            tokio::select! {
                                _ = tokio::time::sleep_until(until) => break,
                                m = ws.next() => match m {
                                    Some(Ok(m @ Message::Text(_))) => early.push_back(m),
                                    Some(Ok(_)) => {}
                                    Some(Err(e)) => return Err(format!("ws: {e}")),
                                    None => return Err("connection closed while thinking".into()),
                                },
                            }
                        }
                    }
                    if let (Some(audio), Some(rec)) = (&lt.audio, voice) {
                        super::voice_load::speak(&mut ws, audio, !audio_started, rec).await?;
                        audio_started = true;
                        spoken.ended = Some(Instant::now());
                    } else {
                        ws.send(Message::text(
                            json!({"type": "answer", "text": answer}).to_string(),
                        ))
                        .await
                        .map_err(|e| format!("send: {e}"))?;
                    }
                    sent_at = Some(Instant::now());
                }
            }
            Some("report") => {
                let _ = ws.close(None).await;
                return Ok(turns);
            }
            Some("error") if v["code"] != "session_restarted" => {
                return Err(format!("server error: {v}"))
            }
            _ => {}
        }
    }
}

/// What the sampler saw, once a second.
#[derive(Debug, Default)]
struct Samples {
    /// Open sockets at each sample.
    open: Vec<usize>,
    /// The most open sockets seen, and the server's RSS (MB) then.
    open_peak: (usize, f64),
    /// The server's highest RSS seen, MB.
    server_rss_peak: f64,
}

impl Samples {
    /// Seconds during which at least 99 % of the peak were open.
    fn held_s(&self) -> u64 {
        let bar = self.open_peak.0 - self.open_peak.0 / 100;
        self.open.iter().filter(|&&n| n > 0 && n >= bar).count() as u64
    }
}

/// Samples open sockets and the server's memory every second until aborted.
async fn sample(
    open: Arc<std::sync::atomic::AtomicUsize>,
    server_pid: Option<String>,
    into: Arc<std::sync::Mutex<Samples>>,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        let n = open.load(std::sync::atomic::Ordering::Relaxed);
        let rss = server_pid
            .as_deref()
            .and_then(proc_figures)
            .map_or(0.0, |(_, rss, _)| rss);
        let mut s = into.lock().unwrap_or_else(|p| p.into_inner());
        s.open.push(n);
        if n >= s.open_peak.0 {
            s.open_peak = (n, rss);
        }
        s.server_rss_peak = s.server_rss_peak.max(rss);
    }
}

/// What the interviews of a run share: creations in flight, and open sockets.
struct Gates {
    creating: tokio::sync::Semaphore,
    open: Arc<std::sync::atomic::AtomicUsize>,
}

/// Counts an open WebSocket while it lives.
struct OpenSocket(Arc<std::sync::atomic::AtomicUsize>);

impl OpenSocket {
    fn new(open: &Arc<std::sync::atomic::AtomicUsize>) -> OpenSocket {
        open.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        OpenSocket(open.clone())
    }
}

impl Drop for OpenSocket {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// What `/api/optimization_stats` says at one moment (counters since the server started).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OptSnapshot {
    /// Per mode: (provider calls, completed interviews).
    pub modes: BTreeMap<String, (u64, u64)>,
    /// Per mode: provider tokens reported.
    pub tokens: BTreeMap<String, u64>,
    /// Per cache kind: (hits, misses).
    pub cache: BTreeMap<String, (u64, u64)>,
    /// Content counts by source (without `dedup`).
    pub by_source: BTreeMap<String, u64>,
    /// Requests served by sharing another's call.
    pub dedup: u64,
}

/// The entries of `v` as (name, fields): an array of objects named by `name_field`, or an object of them.
fn named_entries<'a>(v: &'a Value, name_field: &str) -> Vec<(String, &'a Value)> {
    match v {
        Value::Array(items) => items
            .iter()
            .filter_map(|e| Some((e[name_field].as_str()?.to_string(), e)))
            .collect(),
        Value::Object(map) => map.iter().map(|(k, e)| (k.clone(), e)).collect(),
        _ => Vec::new(),
    }
}

impl OptSnapshot {
    /// Reads the JSON of `/api/optimization_stats` (`modes`, `cache.kinds`, `requests_by_source`).
    pub fn from_json(v: &Value) -> OptSnapshot {
        let n = |x: &Value| x.as_u64().unwrap_or(0);
        let modes = named_entries(&v["modes"], "mode")
            .into_iter()
            .map(|(m, e)| (m, (n(&e["provider_calls"]), n(&e["completed_interviews"]))))
            .collect();
        let tokens = named_entries(&v["modes"], "mode")
            .into_iter()
            .map(|(m, e)| (m, n(&e["provider_tokens"])))
            .collect();
        let kinds = match &v["cache"]["kinds"] {
            Value::Null => &v["cache"],
            k => k,
        };
        let cache = named_entries(kinds, "kind")
            .into_iter()
            .filter(|(_, e)| e.is_object())
            .map(|(k, e)| (k, (n(&e["hits"]), n(&e["misses"]))))
            .collect();
        let mut by_source: BTreeMap<String, u64> = BTreeMap::new();
        let mut dedup = 0;
        if let Some(map) = v["requests_by_source"].as_object() {
            for (k, c) in map {
                if k == "dedup" {
                    dedup = n(c);
                } else {
                    by_source.insert(k.clone(), n(c));
                }
            }
        }
        OptSnapshot {
            modes,
            tokens,
            cache,
            by_source,
            dedup,
        }
    }
}

/// The run's figures: `after - before`.
#[derive(Debug, Clone, PartialEq)]
pub struct OptDelta {
    /// Provider calls for the mode.
    pub calls: u64,
    /// Provider tokens for the mode.
    pub tokens: u64,
    /// Interviews of the mode completed.
    pub completed: u64,
    /// Per cache kind.
    pub cache: BTreeMap<String, CacheDelta>,
    /// Dedup saves.
    pub dedup: u64,
    /// Content by source.
    pub by_source: BTreeMap<String, u64>,
}

impl OptDelta {
    /// The deltas for `mode` between two snapshots (counters that went down count from 0: a restart).
    pub fn between(before: &OptSnapshot, after: &OptSnapshot, mode: &str) -> OptDelta {
        let d = |a: u64, b: u64| if a >= b { a - b } else { a };
        let (calls_a, done_a) = after.modes.get(mode).copied().unwrap_or_default();
        let (calls_b, done_b) = before.modes.get(mode).copied().unwrap_or_default();
        let cache = after
            .cache
            .iter()
            .map(|(k, &(h_a, m_a))| {
                let (h_b, m_b) = before.cache.get(k).copied().unwrap_or_default();
                let (hits, misses) = (d(h_a, h_b), d(m_a, m_b));
                let lookups = hits + misses;
                let hit_rate = (lookups > 0).then(|| hits as f64 / lookups as f64);
                (
                    k.clone(),
                    CacheDelta {
                        hits,
                        misses,
                        hit_rate,
                    },
                )
            })
            .collect();
        let by_source = after
            .by_source
            .iter()
            .map(|(k, &a)| {
                (
                    k.clone(),
                    d(a, before.by_source.get(k).copied().unwrap_or(0)),
                )
            })
            .collect();
        let tokens_of = |s: &OptSnapshot| s.tokens.get(mode).copied().unwrap_or(0);
        OptDelta {
            calls: d(calls_a, calls_b),
            tokens: d(tokens_of(after), tokens_of(before)),
            completed: d(done_a, done_b),
            cache,
            dedup: d(after.dedup, before.dedup),
            by_source,
        }
    }

    /// Calls per completed interview; `None` before any completion.
    pub fn calls_per_interview(&self) -> Option<f64> {
        (self.completed > 0).then(|| self.calls as f64 / self.completed as f64)
    }
}

/// `GET /api/optimization_stats` (with the admin token when given); `None` when not readable.
async fn optimization_stats(http: &reqwest::Client, lt: &LoadTest) -> Option<OptSnapshot> {
    let mut rb = http.get(format!("{}/api/optimization_stats", lt.url));
    if let Some(t) = &lt.admin_token {
        rb = rb.bearer_auth(t);
    }
    let resp = rb.send().await.ok()?;
    if !resp.status().is_success() {
        return None;
    }
    let v: Value = resp.json().await.ok()?;
    v.is_object().then(|| OptSnapshot::from_json(&v))
}

/// Progress on stderr: an `indicatif` bar on a terminal, else one line every `progress_every_s`.
struct Progress {
    total: usize,
    done: std::sync::atomic::AtomicUsize,
    failed: std::sync::atomic::AtomicUsize,
    bar: Option<indicatif::ProgressBar>,
}

impl Progress {
    fn start(lt: &LoadTest) -> Arc<Progress> {
        use std::io::IsTerminal;
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = indicatif::ProgressBar::new(lt.interviews as u64);
            let style = indicatif::ProgressStyle::with_template(
                "{elapsed_precise} [{bar:32}] {pos}/{len} interviews, {per_sec}, eta {eta} {msg}",
            )
            .map(|s| s.progress_chars("=> "))
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
            bar.set_style(style);
            bar.enable_steady_tick(Duration::from_millis(250));
            bar
        });
        if bar.is_none() {
            eprintln!(
                "loadtest: {} interviews against {}, {} at a time; a progress line every {} s",
                lt.interviews,
                lt.url,
                lt.concurrency.max(1),
                lt.progress_every_s.max(1)
            );
        }
        Arc::new(Progress {
            total: lt.interviews,
            done: Default::default(),
            failed: Default::default(),
            bar,
        })
    }

    fn finished(&self, ok: bool) {
        use std::sync::atomic::Ordering::Relaxed;
        self.done.fetch_add(1, Relaxed);
        if !ok {
            self.failed.fetch_add(1, Relaxed);
        }
        if let Some(bar) = &self.bar {
            bar.inc(1);
            let failed = self.failed.load(Relaxed);
            if failed > 0 {
                bar.set_message(format!("({failed} failed)"));
            }
        }
    }

    fn line(&self, elapsed: Duration, turns: u64) -> String {
        use std::sync::atomic::Ordering::Relaxed;
        let done = self.done.load(Relaxed);
        format!(
            "loadtest: {done}/{} interviews finished ({} failed), {turns} turns, {:.0} s",
            self.total,
            self.failed.load(Relaxed),
            elapsed.as_secs_f64()
        )
    }

    fn end(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// Runs the load test.
pub async fn run(lt: LoadTest) -> Result<LoadReport, String> {
    // Creations share a few kept-alive HTTP connections: the server and this process then hold about
    // one descriptor per interview (its WebSocket), not two.
    let creators = lt.create_concurrency.max(1);
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(creators)
        .pool_idle_timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| e.to_string())?;
    let open = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let gates = Arc::new(Gates {
        creating: tokio::sync::Semaphore::new(creators),
        open: open.clone(),
    });
    let server_pid = lt.server_pid.map(|p| p.to_string());
    let server_start = server_pid.as_deref().and_then(proc_figures);
    let stats_before = optimization_stats(&http, &lt).await;
    // Tags this run's candidate ids, so runs against the same storage are new candidates.
    let run = uuid::Uuid::new_v4().simple().to_string()[..8].to_string();
    let hist = Arc::new(Mutex::new(
        Histogram::<u64>::new(3).map_err(|e| e.to_string())?,
    ));
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let voice = match &lt.audio {
        Some(_) => Some(Arc::new(super::voice_load::VoiceRecorder::new()?)),
        None => None,
    };
    let frames_before = match &lt.audio {
        Some(_) => {
            super::voice_load::frames_received(&http, &lt.url, lt.admin_token.as_deref()).await
        }
        None => None,
    };
    let results = Arc::new(Mutex::new((0usize, 0usize, Vec::<String>::new())));
    let t0 = Instant::now();
    let progress = Progress::start(&lt);
    let ticker = progress.bar.is_none().then(|| {
        let (progress, hist) = (progress.clone(), hist.clone());
        let every = Duration::from_secs(lt.progress_every_s.max(1));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            loop {
                tick.tick().await;
                let turns = hist.lock().await.len();
                eprintln!("{}", progress.line(t0.elapsed(), turns));
            }
        })
    });
    let samples = Arc::new(std::sync::Mutex::new(Samples::default()));
    let sampler = tokio::spawn(sample(open.clone(), server_pid.clone(), samples.clone()));
    let mut workers = Vec::new();
    for _ in 0..lt.concurrency.max(1) {
        let gates = gates.clone();
        let (http, lt, hist, next, results, run, voice, progress) = (
            http.clone(),
            lt.clone(),
            hist.clone(),
            next.clone(),
            results.clone(),
            run.clone(),
            voice.clone(),
            progress.clone(),
        );
        workers.push(tokio::spawn(async move {
            loop {
                let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if n >= lt.interviews {
                    break;
                }
                let r = one_interview(&http, &lt, &run, n, &hist, voice.as_deref(), &gates).await;
                progress.finished(r.is_ok());
                let mut res = results.lock().await;
                match r {
                    Ok(_) => res.0 += 1,
                    Err(e) => {
                        res.1 += 1;
                        if res.2.len() < 5 {
                            res.2.push(e);
                        }
                    }
                }
            }
        }));
    }
    for w in workers {
        let _ = w.await;
    }
    if let Some(t) = ticker {
        t.abort();
    }
    sampler.abort();
    progress.end();
    let elapsed = t0.elapsed().as_secs_f64();
    let stats_after = optimization_stats(&http, &lt).await;
    let voice_figures = match (&voice, &lt.audio) {
        (Some(rec), Some(audio)) => {
            let after =
                super::voice_load::frames_received(&http, &lt.url, lt.admin_token.as_deref()).await;
            let received = match (frames_before, after) {
                (Some(b), Some(a)) => Some(a.saturating_sub(b)),
                _ => None,
            };
            Some(rec.figures(audio, received).await)
        }
        _ => None,
    };
    let delta = match (&stats_before, &stats_after) {
        (Some(b), Some(a)) => Some(OptDelta::between(b, a, lt.mode_name())),
        _ => None,
    };
    let (completed, failed, failures) = results.lock().await.clone();
    let h = hist.lock().await;
    let (open_peak, rss_at_peak, rss_peak, held_s) = {
        let s = samples.lock().unwrap_or_else(|p| p.into_inner());
        (s.open_peak.0, s.open_peak.1, s.server_rss_peak, s.held_s())
    };
    let own_peak = proc_figures("self").map_or(0.0, |(_, _, hwm)| hwm);
    let server = match (server_start, server_pid.as_deref().and_then(proc_figures)) {
        (Some((cpu0, rss0, _)), Some((cpu1, rss1, _))) => Some(ServerFigures {
            cpu_s: cpu1 - cpu0,
            cpu_us_per_turn: (cpu1 - cpu0) * 1e6 / (h.len().max(1) as f64),
            rss_start_mb: rss0,
            rss_at_open_peak_mb: rss_at_peak,
            rss_peak_mb: rss_peak.max(rss1),
            rss_end_mb: rss1,
            kib_per_open_session: (rss_at_peak - rss0).max(0.0) * 1024.0 / open_peak.max(1) as f64,
        }),
        _ => None,
    };
    let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    Ok(LoadReport {
        completed,
        failed,
        failures,
        turn_latency_ms: Percentiles {
            p50: ms(0.5),
            p90: ms(0.9),
            p99: ms(0.99),
            max: h.max() as f64 / 1000.0,
        },
        turns: h.len(),
        turns_per_s: h.len() as f64 / elapsed.max(1e-9),
        elapsed_s: elapsed,
        mode: lt.mode_name().to_string(),
        provider_calls_per_interview: delta.as_ref().and_then(OptDelta::calls_per_interview),
        provider_calls: delta.as_ref().map(|d| d.calls),
        provider_tokens_per_interview: delta
            .as_ref()
            .filter(|d| d.completed > 0)
            .map(|d| d.tokens as f64 / d.completed as f64),
        server_completed_interviews: delta.as_ref().map(|d| d.completed),
        cache: delta.as_ref().map(|d| d.cache.clone()),
        dedup_saves: delta.as_ref().map(|d| d.dedup),
        content_by_source: delta.map(|d| d.by_source),
        voice: voice_figures,
        loadgen: LoadgenFigures {
            open_peak,
            held_s,
            peak_rss_mb: own_peak,
            kib_per_socket: own_peak * 1024.0 / open_peak.max(1) as f64,
        },
        server,
    })
}

/// Prints the report for people.
pub fn print(r: &LoadReport) {
    println!(
        "interviews completed: {}  failed: {}",
        r.completed, r.failed
    );
    for f in &r.failures {
        println!("  failure: {f}");
    }
    println!(
        "turn latency ms: p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2}  ({} turns, {:.0} turns/s, {:.1} s)",
        r.turn_latency_ms.p50, r.turn_latency_ms.p90, r.turn_latency_ms.p99, r.turn_latency_ms.max, r.turns, r.turns_per_s, r.elapsed_s
    );
    match (r.provider_calls_per_interview, r.provider_calls, r.server_completed_interviews) {
        (Some(c), Some(calls), Some(done)) => println!(
            "mode {}: provider calls per completed interview: {c:.2}  ({calls} calls, {done} completed on the server; {:.0} tokens per interview)",
            r.mode,
            r.provider_tokens_per_interview.unwrap_or(0.0)
        ),
        (_, Some(calls), Some(done)) => println!(
            "mode {}: provider calls per completed interview: unknown  ({calls} calls, {done} completed on the server)",
            r.mode
        ),
        _ => println!(
            "mode {}: provider calls per completed interview: unknown (/api/optimization_stats not readable; pass --admin-token)",
            r.mode
        ),
    }
    if let Some(cache) = &r.cache {
        let parts: Vec<String> = cache
            .iter()
            .map(|(kind, c)| match c.hit_rate {
                Some(rate) => format!(
                    "{kind} {:.1}% ({}/{})",
                    rate * 100.0,
                    c.hits,
                    c.hits + c.misses
                ),
                None => format!("{kind} -"),
            })
            .collect();
        println!("cache hit rate: {}", parts.join("  "));
    }
    if let Some(d) = r.dedup_saves {
        println!("dedup saves: {d}");
    }
    if let Some(v) = &r.voice {
        let p = |x: &Percentiles| {
            format!(
                "p50 {:.1}  p90 {:.1}  p99 {:.1}  max {:.1}",
                x.p50, x.p90, x.p99, x.max
            )
        };
        println!(
            "voice: {} spoken answers of {:.1} s; frames sent {}, received by the server {}, dropped {}",
            v.answers,
            v.utterance_s,
            v.frames_sent,
            v.frames_received.map_or("unknown".into(), |f| f.to_string()),
            v.frames_dropped.map_or("unknown (pass --admin-token)".into(), |f| f.to_string())
        );
        println!(
            "  end of speech → first interviewer event ms: {}  (p95 {:.1})",
            p(&v.speech_end_to_interviewer_ms),
            v.speech_end_to_interviewer_p95_ms
        );
        println!(
            "  speech-to-text ms (server's stt_ms):        {}",
            p(&v.stt_ms)
        );
        println!(
            "  engine's own share ms:                      {}  (p95 {:.2})",
            p(&v.engine_share_ms),
            v.engine_share_p95_ms
        );
    }
    if let Some(src) = &r.content_by_source {
        let parts: Vec<String> = src.iter().map(|(k, v)| format!("{k} {v}")).collect();
        println!("content by source: {}", parts.join("  "));
    }
    let g = &r.loadgen;
    println!(
        "load generator: {} sockets open at most, ≥ 99 % of them for {} s; its peak RSS {:.1} MB ({:.1} KiB per socket)",
        g.open_peak, g.held_s, g.peak_rss_mb, g.kib_per_socket
    );
    if let Some(s) = &r.server {
        println!(
            "server: {:.2} s of CPU, {:.0} µs per turn; RSS {:.1} MB at the start, {:.1} MB with the most sockets open ({:.1} KiB per open session), peak {:.1} MB, end {:.1} MB",
            s.cpu_s, s.cpu_us_per_turn, s.rss_start_mb, s.rss_at_open_peak_mb, s.kib_per_open_session, s.rss_peak_mb, s.rss_end_mb
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates_differ() {
        let names: std::collections::HashSet<String> = (0..1000).map(candidate_name).collect();
        assert_eq!(names.len(), 1000);
        let answers: std::collections::HashSet<String> =
            (0..200).map(|n| answer_text(n, 3)).collect();
        assert!(answers.len() >= 190, "{}", answers.len());
        assert_eq!(answer_text(7, 2), answer_text(7, 2));
        let a = resume_text(1, "A B", "SRE");
        let b = resume_text(2, "A B", "SRE");
        assert_ne!(a, b);
        assert!(a.contains("2 years") && b.contains("3 years"), "{a} / {b}");
    }

    fn plan(think_ms: u64, think_jitter: f64) -> LoadTest {
        LoadTest {
            url: String::new(),
            interviews: 1,
            concurrency: 1,
            answers_per_interview: 1,
            admin_token: None,
            mode: None,
            think_ms,
            think_jitter,
            turn_timeout_s: 120,
            create_concurrency: 1,
            server_pid: None,
            resume: false,
            audio: None,
            progress_every_s: 10,
        }
    }

    #[test]
    fn think_times_spread_within_the_jitter() {
        let fixed = plan(10_000, 0.0);
        assert_eq!(think_time(&fixed, 3, 4), Duration::from_secs(10));
        let lt = plan(10_000, 0.5);
        let ms: Vec<u128> = (0..2000)
            .map(|n| think_time(&lt, n, n % 7).as_millis())
            .collect();
        assert!(
            ms.iter().all(|&m| (5_000..=15_000).contains(&m)),
            "out of range"
        );
        // Spread over the whole range, not bunched: each fifth of it gets a fair share.
        for k in 0..5u128 {
            let (lo, hi) = (5_000 + 2_000 * k, 7_000 + 2_000 * k);
            let n = ms.iter().filter(|&&m| m >= lo && m < hi).count();
            assert!((300..=500).contains(&n), "{lo}..{hi}: {n}");
        }
        assert_eq!(think_time(&lt, 9, 2), think_time(&lt, 9, 2));
    }

    #[test]
    fn this_process_can_be_measured() {
        let (cpu, rss, hwm) = proc_figures("self").expect("/proc/self readable");
        assert!(cpu >= 0.0 && rss > 0.0 && hwm >= rss, "{cpu} {rss} {hwm}");
        assert!(proc_figures("no-such-pid").is_none());
    }

    #[test]
    fn deltas_of_optimization_stats() {
        let before = json!({
            "requests_by_source": {"template": 10, "pool": 5, "llm": 2, "dedup": 1},
            "cache": {"kinds": [
                {"kind": "greeting", "hits": 1, "misses": 1, "hit_rate": 0.5},
                {"kind": "evaluation", "hits": 0, "misses": 0, "hit_rate": 0.0}
            ]},
            "modes": [{"mode": "balanced", "completed_interviews": 2, "provider_calls": 20}],
        });
        let after = json!({
            "requests_by_source": {"template": 30, "pool": 15, "llm": 12, "dedup": 4},
            "cache": {"kinds": [
                {"kind": "greeting", "hits": 10, "misses": 2, "hit_rate": 0.8},
                {"kind": "evaluation", "hits": 0, "misses": 0, "hit_rate": 0.0}
            ]},
            "modes": [{"mode": "balanced", "completed_interviews": 6, "provider_calls": 60}],
        });
        let d = OptDelta::between(
            &OptSnapshot::from_json(&before),
            &OptSnapshot::from_json(&after),
            "balanced",
        );
        assert_eq!(d.calls_per_interview(), Some(10.0));
        assert_eq!(d.cache["greeting"].hit_rate, Some(0.9));
        assert_eq!(d.cache["evaluation"].hit_rate, None);
        assert_eq!(d.dedup, 3);
        assert_eq!(d.by_source["llm"], 10);
        assert!(!d.by_source.contains_key("dedup"));
        let none = OptDelta::between(&OptSnapshot::default(), &OptSnapshot::default(), "auto");
        assert_eq!(none.calls_per_interview(), None);
    }
}
