//! Configuration: built-in defaults (`config/default.toml`), then the operator's TOML file, then
//! `IE_<SECTION>__<FIELD>` environment variables, layered with figment; then `validate()`.
//!
//! Unknown fields are refused; every error names the field (`providers.groq.limits.rpm: must be > 0`).
//! Only layering and validation live here: building the actors' configuration from it (keys with
//! their windows restored from the ledger) is the server's wiring (engine/src/server.rs).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use actors::providers::FormatKind;
use actors::quota::{Limits, Rates};
use actors::secret::Secret;
use figment::providers::{Env, Format, Toml};
use figment::Figment;
use serde::Deserialize;

/// The built-in defaults, documented field by field.
pub const DEFAULT_TOML: &str = include_str!("../../config/default.toml");

/// A configuration error, naming the field.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file or an environment variable could not be read or has a wrong type / unknown field.
    #[error("configuration error: {0}")]
    Parse(String),
    /// A value is out of range or inconsistent.
    #[error("configuration error: {field}: {message}")]
    Invalid {
        /// The field's path.
        field: String,
        /// What is wrong.
        message: String,
    },
}

pub(crate) fn invalid(field: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field: field.into(),
        message: message.into(),
    }
}

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `[server]`.
    pub server: ServerConfig,
    /// `[storage]`.
    pub storage: StorageConfig,
    /// `[interview]`.
    pub interview: InterviewConfig,
    /// `[pool]`.
    pub pool: PoolConfig,
    /// `[gpu]`: how local inference nodes are used.
    pub gpu: GpuConfig,
    /// `[cache]`: lifetimes and size of the reuse cache.
    pub cache: CacheSection,
    /// `[cluster]`: several nodes sharing windows and interviews through Redis.
    pub cluster: ClusterSection,
    /// `[limits]`: per-client limits.
    pub limits: LimitsConfig,
    /// `[scoring]`: the rubric scorer's optional semantic signal.
    #[serde(default)]
    pub scoring: ScoringConfig,
    /// `[providers.<name>]`.
    #[serde(default)]
    pub providers: BTreeMap<String, ProviderConfig>,
    /// `[[gpu_nodes]]`.
    #[serde(default)]
    pub gpu_nodes: Vec<GpuNodeConfig>,
    /// `[models.<alias>]`: names clients may send as `model`, each a list of targets tried in order.
    #[serde(default)]
    pub models: BTreeMap<String, ModelAlias>,
    /// `[voice]`: endpointing, speech-to-text and text-to-speech settings.
    #[serde(default)]
    pub voice: VoiceSection,
    /// `[[stt_nodes]]`: local speech-to-text servers (`POST /v1/audio/transcriptions`).
    #[serde(default)]
    pub stt_nodes: Vec<GpuNodeConfig>,
    /// `[[tts_nodes]]`: local text-to-speech servers (`POST /v1/audio/speech`).
    #[serde(default)]
    pub tts_nodes: Vec<GpuNodeConfig>,
    /// Where this configuration came from, for the start line: the built-in defaults, the file, and
    /// the names (never the values) of the `IE_` variables that were set.
    #[serde(skip)]
    pub sources: Vec<String>,
}

/// `[models.<alias>]`: a model group (LiteLLM's `model_list` entries sharing a `model_name`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelAlias {
    /// `"provider/model"` or `"provider"` (its configured model), in the order they are preferred;
    /// the next takes over when one has no room in time or fails.
    pub targets: Vec<String>,
}

/// Input and output rates per million tokens.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PerMillion {
    /// Per million input (prompt) tokens.
    pub input: f64,
    /// Per million output (completion) tokens.
    pub output: f64,
}

/// `[voice]`: how spoken answers are endpointed and transcribed, and how the interviewer speaks.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VoiceSection {
    /// Silence that ends a spoken answer, ms.
    pub silence_ms: u32,
    /// Longest spoken answer, seconds.
    pub max_utterance_s: u32,
    /// Voiced audio needed before an answer starts (coughs and clicks are shorter), ms.
    pub min_speech_ms: u32,
    /// Voice activity score (0-1) from which a 16 ms frame counts as speech.
    pub vad_threshold: f32,
    /// A speaking candidate quiet this long gets one gentle re-prompt per question, seconds.
    pub away_s: u64,
    /// Time one transcription may take, failovers included, ms.
    pub stt_deadline_ms: u64,
    /// Language hint for speech-to-text (`en`); empty: let the server detect it.
    pub stt_language: String,
    /// Voice asked of `[[tts_nodes]]`.
    pub tts_voice: String,
    /// Time one spoken sentence may take to synthesise, ms.
    pub tts_deadline_ms: u64,
    /// Sample rate of raw PCM speech answers (OpenAI's `pcm` is 24000); WAV answers carry their own.
    pub tts_raw_sample_rate: u32,
    /// Bytes of synthesised fixed lines kept in sled, MiB.
    pub tts_cache_mb: u64,
}

impl Default for VoiceSection {
    fn default() -> Self {
        Self {
            silence_ms: 800,
            max_utterance_s: 120,
            min_speech_ms: 96,
            vad_threshold: 0.5,
            away_s: 45,
            stt_deadline_ms: 15_000,
            stt_language: "en".into(),
            tts_voice: "alloy".into(),
            tts_deadline_ms: 10_000,
            tts_raw_sample_rate: 24_000,
            tts_cache_mb: 256,
        }
    }
}

/// `[server]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Listen address.
    pub bind: String,
    /// Bearer token for admin routes; empty leaves them open.
    pub admin_token: SecretString,
    /// HTTP workers.
    pub workers: usize,
    /// Largest request body.
    pub max_body_bytes: usize,
    /// Grace period on shutdown.
    pub shutdown_grace_s: u64,
    /// Largest WebSocket text frame accepted from a client.
    pub max_ws_frame_bytes: usize,
    /// With no `admin_token`, serve admin routes on a non-loopback bind anyway (else: refuse to start).
    pub allow_open_admin: bool,
    /// Lifetime of the dashboard's login cookie, hours.
    pub admin_session_hours: u64,
    /// Log line format.
    pub log_format: LogFormat,
}

/// How log lines are written to stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// For people: one line per event, coloured only on a terminal.
    #[default]
    Text,
    /// For log shippers: one JSON object per line.
    Json,
}

/// A string that is a secret (admin token): redacted in Debug.
#[derive(Clone, Default, Deserialize)]
#[serde(from = "String")]
pub struct SecretString(pub Secret);

impl From<String> for SecretString {
    fn from(s: String) -> Self {
        SecretString(Secret::new(s))
    }
}

impl std::fmt::Debug for SecretString {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&self.0, f)
    }
}

/// `[storage]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    /// sled directory.
    pub path: PathBuf,
    /// sled's page cache, MiB (sled's own default is 1 GiB).
    pub cache_mb: u64,
    /// Days a transcript is kept after the interview's last activity (0: forever).
    pub keep_days: u64,
    /// Days a finished interview's report is kept (0: as `keep_days`).
    pub report_keep_days: u64,
    /// Seconds between retention sweeps.
    pub sweep_interval_s: u64,
}

impl StorageConfig {
    /// The retention policy.
    pub fn retention(&self) -> actors::storage::Retention {
        const DAY_MS: i64 = 86_400_000;
        let days = |d: u64| {
            i64::try_from(d)
                .unwrap_or(i64::MAX / DAY_MS)
                .saturating_mul(DAY_MS)
        };
        match self.keep_days {
            0 => actors::storage::Retention {
                transcripts_ms: None,
                reports_ms: None,
            },
            keep => actors::storage::Retention {
                transcripts_ms: Some(days(keep)),
                reports_ms: Some(days(self.report_keep_days.max(keep))),
            },
        }
    }
}

/// Call-budget mode of an interview (one type from config to the record: an unknown name in
/// `[interview] mode` is an error naming the key).
pub use actors::budget::Mode;

/// `[interview]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InterviewConfig {
    /// Questions per interview.
    pub questions: u32,
    /// Default mode.
    pub mode: Mode,
    /// Close an interview after this many seconds without activity.
    pub idle_timeout_s: u64,
    /// A session waiting this many seconds for its candidate hibernates: its actor and record leave
    /// memory until the next message (0: never).
    pub hibernate_after_s: u64,
    /// Time an evaluation may take through the providers before the rubric scorer steps in.
    pub eval_deadline_ms: u64,
    /// Test hooks (an answer `__panic__` panics its session). Never enable in production.
    pub test_hooks: bool,
}

/// `[pool]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolConfig {
    /// Default caller deadline.
    pub deadline_ms: u64,
    /// Keys one request is tried on at most.
    pub max_attempts: usize,
    /// Waiting requests per key.
    pub queue_capacity: usize,
    /// One HTTP call's timeout.
    pub request_timeout_ms: u64,
    /// Failures that open a breaker.
    pub breaker_failures: u32,
    /// Breaker cool-down.
    pub breaker_cooldown_ms: u64,
    /// Cool-down after a 429 without a wait.
    pub default_retry_after_ms: u64,
}

/// `[cluster]`: horizontal clustering on Redis (empty `redis_url`: one node alone).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterSection {
    /// `redis://[:password@]host:6379/0` or `rediss://` (TLS); empty: no cluster. A secret.
    pub redis_url: SecretString,
    /// This node's id; empty: `<host name>:<port of server.bind>`.
    pub node_id: String,
    /// How other nodes reach this node (`http://10.0.0.5:8080`); empty: `http://<server.bind>`;
    /// `auto`: `http://<the address the host name resolves to>:<port>`.
    pub advertise_url: String,
    /// Interview ownership lease, ms (renewed every third; a dead owner's interviews move after it).
    pub lease_ms: u64,
    /// Membership heartbeat, ms (a node is gone after three missed beats).
    pub heartbeat_ms: u64,
    /// Time one Redis operation may take before Redis counts as unreachable, ms.
    pub op_timeout_ms: u64,
    /// Prefix of every key (several deployments may share one Redis).
    pub key_prefix: String,
    /// Replicas each log append waits for (`WAIT`); 0: the primary's own durability.
    pub wait_replicas: u32,
    /// An interview's log and record stay in Redis this long after its last step, s (0: forever);
    /// every node that served it keeps its own copy in sled.
    pub log_ttl_s: u64,
}

impl ClusterSection {
    /// Whether clustering is on.
    pub fn enabled(&self) -> bool {
        !self.redis_url.0.is_empty()
    }

    /// The actors' cluster settings, with the node id and advertise URL defaulted from `bind`.
    pub fn to_cluster_config(&self, bind: &str) -> actors::cluster::ClusterConfig {
        let port = bind.rsplit(':').next().unwrap_or("8080");
        let node_id = if self.node_id.trim().is_empty() {
            format!("{}:{port}", host_name())
        } else {
            self.node_id.trim().to_string()
        };
        let advertise_url = if self.advertise_url.trim().is_empty() {
            format!("http://{bind}")
        } else if self.advertise_url.trim() == "auto" {
            format!(
                "http://{}:{port}",
                own_address().unwrap_or_else(|| "127.0.0.1".into())
            )
        } else {
            self.advertise_url.trim().trim_end_matches('/').to_string()
        };
        actors::cluster::ClusterConfig {
            redis_url: self.redis_url.0.clone(),
            node_id,
            advertise_url,
            lease: Duration::from_millis(self.lease_ms),
            heartbeat: Duration::from_millis(self.heartbeat_ms),
            prefix: self.key_prefix.clone(),
            op_timeout: Duration::from_millis(self.op_timeout_ms),
        }
    }
}

/// This machine's address as its host name resolves (`/etc/hosts` in a container maps the host
/// name to the replica's address): the first address that is not loopback.
fn own_address() -> Option<String> {
    use std::net::ToSocketAddrs;
    (host_name().as_str(), 0)
        .to_socket_addrs()
        .ok()?
        .map(|a| a.ip())
        .find(|ip| !ip.is_loopback() && !ip.is_unspecified())
        .map(|ip| match ip {
            std::net::IpAddr::V6(v6) => format!("[{v6}]"),
            v4 => v4.to_string(),
        })
}

/// The machine's host name (`/proc/sys/kernel/hostname`, else `$HOSTNAME`, else `node`).
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok().filter(|s| !s.is_empty()))
        .unwrap_or_else(|| "node".into())
}

/// `[cache]`: how long each kind of reusable result lives, and how many are kept.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheSection {
    /// Greetings, seconds.
    pub greeting_ttl_s: u64,
    /// Resume analyses, seconds.
    pub resume_analysis_ttl_s: u64,
    /// Generated questions, seconds.
    pub question_ttl_s: u64,
    /// Evaluations, seconds.
    pub evaluation_ttl_s: u64,
    /// Summaries, seconds.
    pub summary_ttl_s: u64,
    /// Gateway responses, seconds.
    pub response_ttl_s: u64,
    /// Entries per kind at most; the oldest go first.
    pub max_entries: usize,
    /// Answers kept per key where variety matters (greetings, questions).
    pub variants: usize,
    /// Which gateway answers are cached: `deterministic` (temperature 0, or a seed without a
    /// temperature; others only with `Cache-Control: max-age=N`), `all`, or `off`.
    #[serde(default)]
    pub gateway: GatewayCache,
}

/// `[cache] gateway`: which `/v1/chat/completions` answers are stored and reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GatewayCache {
    /// Deterministic requests, and others that opt in with `Cache-Control: max-age=N`.
    #[default]
    Deterministic,
    /// Every answer (sampled ones too: a repeated request gets the same text).
    All,
    /// None (identical requests in flight still share one call).
    Off,
}

impl CacheSection {
    /// The cache actor's configuration.
    pub fn to_cache_config(&self) -> actors::cache::CacheConfig {
        let s = std::time::Duration::from_secs;
        actors::cache::CacheConfig {
            greeting_ttl: s(self.greeting_ttl_s),
            resume_analysis_ttl: s(self.resume_analysis_ttl_s),
            question_ttl: s(self.question_ttl_s),
            evaluation_ttl: s(self.evaluation_ttl_s),
            summary_ttl: s(self.summary_ttl_s),
            response_ttl: s(self.response_ttl_s),
            max_entries: self.max_entries,
            variants: self.variants,
            ..actors::cache::CacheConfig::default()
        }
    }
}

/// `[limits]`: what one client may do (docs/SECURITY.md). A limit of 0 is no limit.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Peers (CIDRs) whose `X-Forwarded-For` names the client.
    pub trusted_proxies: Vec<String>,
    /// Apply the limits to loopback clients too.
    pub loopback: bool,
    /// Interview creations per client per minute.
    pub creations_per_minute: u32,
    /// Creations at once.
    pub creations_burst: u32,
    /// Resume analyses per client per hour.
    pub resume_analyses_per_hour: u32,
    /// Interview WebSockets open at once per client.
    pub websockets_per_client: u32,
    /// Answers per second per WebSocket.
    pub answers_per_second: u32,
    /// Answers at once per WebSocket.
    pub answers_burst: u32,
    /// A live interview with nobody connected and nothing answered leaves memory after this long.
    pub pending_ttl_s: u64,
    /// Live sessions on this node.
    pub max_live_sessions: u32,
    /// Retry-After of a refusal for a full node.
    pub busy_retry_after_s: u64,
}

impl LimitsConfig {
    /// The trusted proxies, parsed.
    pub fn proxies(&self) -> Result<Vec<ipnet::IpNet>, ConfigError> {
        self.trusted_proxies
            .iter()
            .enumerate()
            .map(|(i, p)| {
                p.parse::<ipnet::IpNet>()
                    .or_else(|_| p.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                    .map_err(|_| {
                        invalid(
                            format!("limits.trusted_proxies[{i}]"),
                            format!("{p:?} is not a CIDR like 10.0.0.0/8 or an address"),
                        )
                    })
            })
            .collect()
    }
}

/// `[scoring]`: an OpenAI-compatible embeddings server whose similarity between answer sentences and
/// rubric points is one more signal for the rubric scorer. Empty `embeddings_url`: none.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScoringConfig {
    /// API root (`http://127.0.0.1:8081/v1`); the client appends `/embeddings`.
    pub embeddings_url: String,
    /// The `model` sent.
    pub embeddings_model: String,
    /// Environment variable holding a bearer key for it, if it wants one.
    pub embeddings_key_env: String,
    /// Cosine similarity at or above which a point counts as stated.
    pub stated_at: f32,
    /// At or above which a point counts as touched.
    pub touched_at: f32,
    /// One embeddings request, milliseconds.
    pub timeout_ms: u64,
}

impl Default for ScoringConfig {
    fn default() -> Self {
        ScoringConfig {
            embeddings_url: String::new(),
            embeddings_model: "default".into(),
            embeddings_key_env: String::new(),
            stated_at: 0.91,
            touched_at: 0.85,
            timeout_ms: 1500,
        }
    }
}

/// `[gpu]`: settings shared by the `[[gpu_nodes]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GpuConfig {
    /// Health probe period.
    pub probe_interval_ms: u64,
    /// Requests that may wait for a free node slot.
    pub queue_bound: usize,
    /// One request's timeout on a node.
    pub request_timeout_ms: u64,
    /// Consecutive failures that take a node out.
    pub breaker_failures: u32,
    /// How long a node stays out before the probe may bring it back.
    pub breaker_cooldown_ms: u64,
    /// When every node is busy or down, go on to the cloud keys (else the caller gets no_capacity).
    pub fallback_to_cloud: bool,
}

/// How a provider's keys share limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QuotaScope {
    /// Each key has the limits.
    Key,
    /// All keys draw on one set.
    Shared,
}

/// `[providers.<name>]`. Every field but `format` and `base_url` has a default for new providers.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    /// Wire format.
    pub format: Option<FormatKind>,
    /// API root.
    #[serde(default)]
    pub base_url: String,
    /// Default model.
    #[serde(default)]
    pub model: String,
    /// Lower is tried first.
    #[serde(default = "default_priority")]
    pub priority: u32,
    /// Env variable with the keys (default `<NAME>_API_KEYS`).
    pub keys_env: Option<String>,
    /// Rate limits.
    #[serde(default)]
    pub limits: Limits,
    /// Limits per key or shared.
    #[serde(default = "default_scope")]
    pub quota_scope: QuotaScope,
    /// Daily reset time zone.
    #[serde(default = "default_tz")]
    pub reset_tz: String,
    /// Azure `api-version`.
    pub api_version: Option<String>,
    /// Switch a catalogue entry off.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// When the limits were read from the provider's docs.
    pub limits_as_of: Option<String>,
    /// Where the limits were read.
    pub limits_source: Option<String>,
    /// Other models this provider's keys serve (clients may name them; `model` is the default).
    #[serde(default)]
    pub models: Vec<String>,
    /// Limits of models that have their own (Groq counts per model): `{ "<model>" = { rpm, ... } }`.
    #[serde(default)]
    pub model_limits: BTreeMap<String, Limits>,
    /// The cost unit `limits.daily_units` counts (`neurons` for Cloudflare Workers AI).
    pub unit: Option<String>,
    /// Cost units per million input / output tokens, per model (`daily_units` needs the default
    /// model's entry).
    #[serde(default)]
    pub unit_rates: BTreeMap<String, PerMillion>,
    /// Price per million input / output tokens (in `currency`): the provider is paid, and counts as
    /// free capacity only up to `daily_spend_cap`.
    pub cost: Option<PerMillion>,
    /// The currency of `cost` and `daily_spend_cap` (informational).
    pub currency: Option<String>,
    /// Most money a day may spend on this provider (in `currency`); also what `plan`, the call budget
    /// and `/api/system_status` count as its capacity. Unset with a `cost`: nothing counted, nothing capped.
    pub daily_spend_cap: Option<f64>,
    /// Speech-to-text model served at `{base_url}/audio/transcriptions` with the same keys (Groq:
    /// `whisper-large-v3-turbo`); none: the provider is not used for speech-to-text.
    pub stt_model: Option<String>,
    /// The speech-to-text model's own windows, per key (requests and audio seconds).
    #[serde(default)]
    pub stt_limits: actors::voice::audio_key::AudioLimits,
    /// Text-to-speech model served at `{base_url}/audio/speech` with the same keys.
    pub tts_model: Option<String>,
    /// The voice for `tts_model`.
    pub tts_voice: Option<String>,
    /// The text-to-speech model's windows, per key.
    #[serde(default)]
    pub tts_limits: actors::voice::audio_key::AudioLimits,
}

impl ProviderConfig {
    /// The limits with the spend cap in millionths of the currency.
    pub fn effective_limits(&self) -> Limits {
        let mut l = self.limits;
        l.daily_spend_micros = self
            .daily_spend_cap
            .filter(|c| c.is_finite() && *c >= 0.0)
            .map(|c| (c * 1e6).round() as u64);
        l
    }

    /// The prices of `model` in cost units and money.
    pub fn rates_for(&self, model: &str) -> Rates {
        let u = self.unit_rates.get(model);
        Rates {
            units_in: u.map_or(0.0, |r| r.input),
            units_out: u.map_or(0.0, |r| r.output),
            price_in: self.cost.map_or(0.0, |c| c.input),
            price_out: self.cost.map_or(0.0, |c| c.output),
        }
    }

    /// Every model the provider serves: its default first.
    pub fn served_models(&self) -> Vec<String> {
        let mut v = vec![self.model.clone()];
        for m in &self.models {
            if !v.contains(m) {
                v.push(m.clone());
            }
        }
        v
    }
}

fn default_priority() -> u32 {
    10
}
fn default_scope() -> QuotaScope {
    QuotaScope::Key
}
fn default_tz() -> String {
    "UTC".into()
}
fn default_true() -> bool {
    true
}

/// `[[gpu_nodes]]`: a local OpenAI-compatible inference server.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GpuNodeConfig {
    /// Node name (shown as `gpu:<name>`).
    pub name: String,
    /// Server root URL.
    pub url: String,
    /// Model name to request.
    #[serde(default = "default_model")]
    pub model: String,
    /// Concurrent requests at most.
    #[serde(default = "default_node_concurrency")]
    pub max_concurrency: u32,
    /// Optional API key env variable.
    pub api_key_env: Option<String>,
    /// Lower is tried first.
    #[serde(default)]
    pub priority: u32,
}

fn default_model() -> String {
    "default".into()
}
fn default_node_concurrency() -> u32 {
    8
}

impl Config {
    /// Loads defaults, then `file` (if any), then `IE_` environment variables, and validates.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        let mut fig = Figment::from(Toml::string(DEFAULT_TOML));
        if let Some(path) = file {
            if !path.exists() {
                return Err(ConfigError::Parse(format!(
                    "config file {} does not exist",
                    path.display()
                )));
            }
            fig = fig.merge(Toml::file(path));
        }
        // Only `IE_<SECTION>__<FIELD>`: other `IE_` variables (`IE_TEST_PYTHON`, `IE_LLAMA_HOME`) belong
        // to the test tools and are not configuration.
        fig = fig.merge(
            Env::prefixed("IE_")
                .filter(|k| k.as_str().contains("__"))
                .split("__"),
        );
        let mut cfg: Config = fig.extract().map_err(|e| ConfigError::Parse(describe(e)))?;
        cfg.validate()?;
        cfg.sources = sources(file, std::env::vars().map(|(k, _)| k));
        Ok(cfg)
    }

    /// Checks ranges and consistency; the error names the field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.server.bind.parse::<std::net::SocketAddr>().is_err() {
            return Err(invalid(
                "server.bind",
                format!(
                    "{:?} is not an address like 127.0.0.1:8080",
                    self.server.bind
                ),
            ));
        }
        if self.server.workers == 0 || self.server.workers > 256 {
            return Err(invalid("server.workers", "must be between 1 and 256"));
        }
        if self.server.max_body_bytes < 1024 {
            return Err(invalid("server.max_body_bytes", "must be at least 1024"));
        }
        if self.server.admin_session_hours == 0 {
            return Err(invalid("server.admin_session_hours", "must be > 0"));
        }
        if self.server.max_ws_frame_bytes < 1024 {
            return Err(invalid(
                "server.max_ws_frame_bytes",
                "must be at least 1024",
            ));
        }
        let c = &self.cluster;
        if c.enabled() {
            let url = c.redis_url.0.expose();
            if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
                return Err(invalid(
                    "cluster.redis_url",
                    "must start with redis:// or rediss:// (or be empty for a single node)",
                ));
            }
            if redis_url_is_invalid(url) {
                return Err(invalid("cluster.redis_url", "is not a valid Redis URL"));
            }
            if !c.advertise_url.is_empty()
                && c.advertise_url != "auto"
                && !c.advertise_url.starts_with("http://")
                && !c.advertise_url.starts_with("https://")
            {
                return Err(invalid(
                    "cluster.advertise_url",
                    "must start with http:// or https://",
                ));
            }
            if c.advertise_url.is_empty()
                && self
                    .server
                    .bind
                    .parse::<std::net::SocketAddr>()
                    .is_ok_and(|a| a.ip().is_unspecified())
            {
                return Err(invalid(
                    "cluster.advertise_url",
                    "missing: server.bind listens on every address, so say how other nodes reach this one (http://HOST:PORT)",
                ));
            }
        }
        if c.lease_ms < 500 {
            return Err(invalid("cluster.lease_ms", "must be at least 500"));
        }
        if c.heartbeat_ms < 100 || c.heartbeat_ms > c.lease_ms {
            return Err(invalid(
                "cluster.heartbeat_ms",
                "must be between 100 and cluster.lease_ms",
            ));
        }
        if c.op_timeout_ms == 0 || c.op_timeout_ms > c.lease_ms {
            return Err(invalid(
                "cluster.op_timeout_ms",
                "must be > 0 and at most cluster.lease_ms",
            ));
        }
        if c.key_prefix.is_empty()
            || !c
                .key_prefix
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || ch == '_' || ch == '-')
        {
            return Err(invalid(
                "cluster.key_prefix",
                "letters, digits, '_' and '-' only, not empty",
            ));
        }
        if self.interview.idle_timeout_s == 0 {
            return Err(invalid("interview.idle_timeout_s", "must be > 0"));
        }
        if self.interview.eval_deadline_ms == 0 {
            return Err(invalid("interview.eval_deadline_ms", "must be > 0"));
        }
        if !(1..=50).contains(&self.interview.questions) {
            return Err(invalid("interview.questions", "must be between 1 and 50"));
        }
        let p = &self.pool;
        for (name, v) in [
            ("pool.deadline_ms", p.deadline_ms),
            ("pool.request_timeout_ms", p.request_timeout_ms),
            ("pool.breaker_cooldown_ms", p.breaker_cooldown_ms),
            ("pool.default_retry_after_ms", p.default_retry_after_ms),
            ("pool.max_attempts", p.max_attempts as u64),
            ("pool.breaker_failures", u64::from(p.breaker_failures)),
        ] {
            if v == 0 {
                return Err(invalid(name, "must be > 0"));
            }
        }
        for (name, prov) in &self.providers {
            let f = |field: &str| format!("providers.{name}.{field}");
            if !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                return Err(invalid(
                    format!("providers.{name}"),
                    "provider names use letters, digits, '_' and '-' only",
                ));
            }
            if prov.format.is_none() {
                return Err(invalid(f("format"), "missing: a new provider needs a format (openai | azure_openai | gemini | cloudflare | cohere | anthropic) and a base_url"));
            }
            if !prov.base_url.is_empty()
                && !prov.base_url.starts_with("http://")
                && !prov.base_url.starts_with("https://")
            {
                return Err(invalid(
                    f("base_url"),
                    "must start with http:// or https://",
                ));
            }
            if prov.base_url.is_empty() && prov.format != Some(FormatKind::AzureOpenai) {
                return Err(invalid(f("base_url"), "missing"));
            }
            for (field, v) in limit_fields(&prov.limits) {
                if v == Some(0) {
                    return Err(invalid(
                        f(&format!("limits.{field}")),
                        "must be > 0 (omit it for no limit)",
                    ));
                }
            }
            for (model, ml) in &prov.model_limits {
                for (field, v) in limit_fields(ml) {
                    if v == Some(0) {
                        return Err(invalid(
                            f(&format!("model_limits.{model:?}.{field}")),
                            "must be > 0 (omit it for no limit)",
                        ));
                    }
                }
            }
            for (model, r) in &prov.unit_rates {
                if !(r.input.is_finite()
                    && r.output.is_finite()
                    && r.input >= 0.0
                    && r.output >= 0.0)
                {
                    return Err(invalid(
                        f(&format!("unit_rates.{model:?}")),
                        "input and output must be numbers >= 0 (units per million tokens)",
                    ));
                }
            }
            if prov.limits.daily_units.is_some() && !prov.unit_rates.contains_key(&prov.model) {
                return Err(invalid(
                    f("unit_rates"),
                    format!(
                        "limits.daily_units needs the rates of the model {:?}: unit_rates = {{ {:?} = {{ input = .., output = .. }} }} (units per million tokens)",
                        prov.model, prov.model
                    ),
                ));
            }
            if let Some(c) = prov.cost {
                if !(c.input.is_finite()
                    && c.output.is_finite()
                    && c.input >= 0.0
                    && c.output >= 0.0)
                {
                    return Err(invalid(
                        f("cost"),
                        "input and output must be prices >= 0 per million tokens",
                    ));
                }
            }
            if let Some(cap) = prov.daily_spend_cap {
                if !(cap.is_finite() && cap >= 0.0) {
                    return Err(invalid(f("daily_spend_cap"), "must be a number >= 0"));
                }
                if prov.cost.is_none() {
                    return Err(invalid(
                        f("daily_spend_cap"),
                        "needs a `cost` (price per million input/output tokens) to count spending",
                    ));
                }
            }
            if prov.reset_tz.parse::<chrono_tz::Tz>().is_err() {
                return Err(invalid(
                    f("reset_tz"),
                    format!(
                        "{:?} is not an IANA time zone such as UTC or America/Los_Angeles",
                        prov.reset_tz
                    ),
                ));
            }
        }
        if self.storage.keep_days > 0
            && self.storage.report_keep_days > 0
            && self.storage.report_keep_days < self.storage.keep_days
        {
            return Err(invalid(
                "storage.report_keep_days",
                "must be at least storage.keep_days (a report outlives its transcript), or 0",
            ));
        }
        if self.storage.sweep_interval_s == 0 {
            return Err(invalid("storage.sweep_interval_s", "must be > 0"));
        }
        self.limits.proxies()?;
        if self.limits.pending_ttl_s == 0 {
            return Err(invalid("limits.pending_ttl_s", "must be > 0"));
        }
        if self.limits.max_live_sessions == 0 {
            return Err(invalid(
                "limits.max_live_sessions",
                "must be > 0 (a node that takes no interview is not serving)",
            ));
        }
        if self.limits.creations_per_minute > 0 && self.limits.creations_burst == 0 {
            return Err(invalid(
                "limits.creations_burst",
                "must be > 0 while creations_per_minute is set",
            ));
        }
        if self.limits.answers_per_second > 0 && self.limits.answers_burst == 0 {
            return Err(invalid(
                "limits.answers_burst",
                "must be > 0 while answers_per_second is set",
            ));
        }
        if self.storage.cache_mb == 0 {
            return Err(invalid("storage.cache_mb", "must be > 0"));
        }
        let sc = &self.scoring;
        let url = &sc.embeddings_url;
        let http = url.starts_with("http://") || url.starts_with("https://");
        if !url.is_empty() && !http {
            return Err(invalid(
                "scoring.embeddings_url",
                "must start with http:// or https://",
            ));
        }
        if !(-1.0..=1.0).contains(&sc.stated_at) || !(-1.0..=1.0).contains(&sc.touched_at) {
            return Err(invalid(
                "scoring.stated_at",
                "similarities are between -1 and 1",
            ));
        }
        if sc.touched_at > sc.stated_at {
            return Err(invalid(
                "scoring.touched_at",
                "must not be above scoring.stated_at",
            ));
        }
        if sc.timeout_ms == 0 {
            return Err(invalid("scoring.timeout_ms", "must be > 0"));
        }
        if self.cache.max_entries == 0 {
            return Err(invalid("cache.max_entries", "must be > 0"));
        }
        if self.cache.variants == 0 {
            return Err(invalid("cache.variants", "must be > 0"));
        }
        if self.gpu.probe_interval_ms == 0 {
            return Err(invalid("gpu.probe_interval_ms", "must be > 0"));
        }
        if self.gpu.request_timeout_ms == 0 {
            return Err(invalid("gpu.request_timeout_ms", "must be > 0"));
        }
        if self.gpu.breaker_failures == 0 {
            return Err(invalid("gpu.breaker_failures", "must be > 0"));
        }
        for (alias, a) in &self.models {
            let f = format!("models.{alias}");
            if alias == "auto" || self.providers.contains_key(alias) {
                return Err(invalid(
                    f,
                    "an alias may not be named `auto` or like a provider",
                ));
            }
            if a.targets.is_empty() {
                return Err(invalid(
                    format!("{f}.targets"),
                    "must name at least one target",
                ));
            }
            for (i, t) in a.targets.iter().enumerate() {
                let provider = t.split_once('/').map_or(t.as_str(), |(p, _)| p);
                if !self.providers.contains_key(provider) {
                    return Err(invalid(
                        format!("{f}.targets[{i}]"),
                        format!("{t:?}: no provider {provider:?} is configured (write \"provider/model\")"),
                    ));
                }
            }
        }
        let mut names = std::collections::HashSet::new();
        for (i, n) in self.gpu_nodes.iter().enumerate() {
            if !names.insert(&n.name) {
                return Err(invalid(
                    format!("gpu_nodes[{i}].name"),
                    "duplicate node name",
                ));
            }
            if !(n.url.starts_with("http://") || n.url.starts_with("https://")) {
                return Err(invalid(
                    format!("gpu_nodes[{i}].url"),
                    "must start with http:// or https://",
                ));
            }
            if n.max_concurrency == 0 {
                return Err(invalid(
                    format!("gpu_nodes[{i}].max_concurrency"),
                    "must be > 0",
                ));
            }
        }
        self.validate_voice()?;
        Ok(())
    }

    /// `[voice]`, `[[stt_nodes]]`, `[[tts_nodes]]` and the providers' audio fields.
    fn validate_voice(&self) -> Result<(), ConfigError> {
        let v = &self.voice;
        if !(100..=10_000).contains(&v.silence_ms) {
            return Err(invalid("voice.silence_ms", "must be between 100 and 10000"));
        }
        if !(1..=600).contains(&v.max_utterance_s) {
            return Err(invalid(
                "voice.max_utterance_s",
                "must be between 1 and 600",
            ));
        }
        if !(16..=2_000).contains(&v.min_speech_ms) {
            return Err(invalid(
                "voice.min_speech_ms",
                "must be between 16 and 2000",
            ));
        }
        if !(v.vad_threshold > 0.0 && v.vad_threshold < 1.0) {
            return Err(invalid(
                "voice.vad_threshold",
                "must be between 0 and 1 (exclusive)",
            ));
        }
        for (name, x) in [
            ("voice.away_s", v.away_s),
            ("voice.stt_deadline_ms", v.stt_deadline_ms),
            ("voice.tts_deadline_ms", v.tts_deadline_ms),
            ("voice.tts_cache_mb", v.tts_cache_mb),
            (
                "voice.tts_raw_sample_rate",
                u64::from(v.tts_raw_sample_rate),
            ),
        ] {
            if x == 0 {
                return Err(invalid(name, "must be > 0"));
            }
        }
        for (section, nodes) in [
            ("stt_nodes", &self.stt_nodes),
            ("tts_nodes", &self.tts_nodes),
        ] {
            let mut names = std::collections::HashSet::new();
            for (i, n) in nodes.iter().enumerate() {
                if n.name.trim().is_empty() || !names.insert(&n.name) {
                    return Err(invalid(
                        format!("{section}[{i}].name"),
                        "missing or used by another node",
                    ));
                }
                if !(n.url.starts_with("http://") || n.url.starts_with("https://")) {
                    return Err(invalid(
                        format!("{section}[{i}].url"),
                        "must start with http:// or https://",
                    ));
                }
                if n.max_concurrency == 0 {
                    return Err(invalid(
                        format!("{section}[{i}].max_concurrency"),
                        "must be > 0",
                    ));
                }
            }
        }
        for (name, prov) in &self.providers {
            for (field, model, limits) in [
                ("stt", &prov.stt_model, &prov.stt_limits),
                ("tts", &prov.tts_model, &prov.tts_limits),
            ] {
                if model.as_deref().is_some_and(|m| m.trim().is_empty()) {
                    return Err(invalid(
                        format!("providers.{name}.{field}_model"),
                        "must not be empty (omit it instead)",
                    ));
                }
                if model.is_some() && prov.format != Some(FormatKind::Openai) {
                    return Err(invalid(
                        format!("providers.{name}.{field}_model"),
                        "audio models are called in the OpenAI format: the provider's format must be \"openai\"",
                    ));
                }
                for (k, x) in [
                    ("rpm", limits.rpm.map(u64::from)),
                    ("rpd", limits.rpd.map(u64::from)),
                    ("audio_seconds_per_hour", limits.audio_seconds_per_hour),
                    ("audio_seconds_per_day", limits.audio_seconds_per_day),
                    ("concurrency", limits.concurrency.map(u64::from)),
                ] {
                    if x == Some(0) {
                        return Err(invalid(
                            format!("providers.{name}.{field}_limits.{k}"),
                            "must be > 0 (omit it for no limit)",
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// The endpointing settings.
    pub fn endpoint_config(&self) -> actors::voice::vad::EndpointConfig {
        let v = &self.voice;
        actors::voice::vad::EndpointConfig {
            silence_ms: v.silence_ms,
            max_utterance_s: v.max_utterance_s,
            min_speech_ms: v.min_speech_ms,
            threshold: v.vad_threshold,
            ..actors::voice::vad::EndpointConfig::default()
        }
    }

    /// The env variable that holds a provider's keys.
    pub fn keys_env(name: &str, prov: &ProviderConfig) -> String {
        prov.keys_env
            .clone()
            .unwrap_or_else(|| format!("{}_API_KEYS", name.to_ascii_uppercase().replace('-', "_")))
    }
}

/// Every numeric limit with its field name, for the "> 0" check.
fn limit_fields(l: &Limits) -> [(&'static str, Option<u64>); 8] {
    [
        ("rpm", l.rpm.map(u64::from)),
        ("rpd", l.rpd.map(u64::from)),
        ("tpm", l.tpm),
        ("tpd", l.tpd),
        ("concurrency", l.concurrency.map(u64::from)),
        ("requests_per_month", l.requests_per_month),
        ("tokens_per_month", l.tokens_per_month),
        ("daily_units", l.daily_units),
    ]
}

/// The layers a configuration was built from, in order: the defaults, the file (absolute path), and the
/// `IE_` variables among `env_names` (sorted names only: values such as the admin token are secret).
pub fn sources(file: Option<&Path>, env_names: impl Iterator<Item = String>) -> Vec<String> {
    let mut out = vec!["built-in defaults".to_string()];
    if let Some(path) = file {
        let shown = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        out.push(format!("file {}", shown.display()));
    }
    let mut vars: Vec<String> = env_names
        .filter(|k| k.starts_with("IE_") && k.contains("__"))
        .collect();
    vars.sort();
    if !vars.is_empty() {
        out.push(format!("environment {}", vars.join(", ")));
    }
    out
}

/// Figment's error with its path rewritten as `section.field` and without the layer's internals.
/// Whether the redis crate refuses the URL (without ever printing it: it may hold a password).
fn redis_url_is_invalid(url: &str) -> bool {
    !actors::cluster::is_valid_redis_url(url)
}

fn describe(e: figment::Error) -> String {
    let mut parts = Vec::new();
    for err in e {
        let path = err.path.join(".");
        let src = err
            .metadata
            .as_ref()
            .map(|m| m.name.to_string())
            .unwrap_or_default();
        let kind = err.kind.to_string();
        let msg = if path.is_empty() {
            kind
        } else {
            format!("{path}: {kind}")
        };
        parts.push(if src.is_empty() {
            msg
        } else {
            format!("{msg} (from {src})")
        });
    }
    parts.join("; ")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn from_str(toml: &str) -> Result<Config, ConfigError> {
        let cfg: Config = Figment::from(Toml::string(DEFAULT_TOML))
            .merge(Toml::string(toml))
            .extract()
            .map_err(|e| ConfigError::Parse(describe(e)))?;
        cfg.validate()?;
        Ok(cfg)
    }

    #[test]
    fn defaults_are_valid_and_have_the_catalogue() {
        let cfg = from_str("").unwrap();
        for p in [
            "groq",
            "gemini",
            "cloudflare",
            "together",
            "cerebras",
            "deepseek",
            "fireworks",
            "github",
            "mistral",
            "huggingface",
            "openrouter",
            "cohere",
            "azure_openai",
        ] {
            let prov = cfg.providers.get(p).unwrap();
            assert!(
                prov.limits_as_of.is_some() && prov.limits_source.is_some(),
                "{p} lacks its source"
            );
        }
        assert_eq!(cfg.server.bind, "127.0.0.1:8080");
    }

    #[test]
    fn errors_name_the_field() {
        let e = from_str("[providers.groq]\nlimits = { rpm = 0 }")
            .unwrap_err()
            .to_string();
        assert!(e.contains("providers.groq.limits.rpm: must be > 0"), "{e}");
        let e = from_str("[server]\nbindd = \"x\"").unwrap_err().to_string();
        assert!(e.contains("bindd"), "{e}");
        let e = from_str("[providers.groq]\nlimits = { rpm = \"many\" }")
            .unwrap_err()
            .to_string();
        assert!(e.contains("providers.groq.limits.rpm"), "{e}");
        let e = from_str("[providers.mine]\nbase_url = \"http://x\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("providers.mine.format"), "{e}");
        let e = from_str("[providers.gemini]\nreset_tz = \"Mars/Base\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("providers.gemini.reset_tz"), "{e}");
    }

    #[test]
    fn cluster_section_defaults_and_errors_name_the_field() {
        let c = from_str("").unwrap();
        assert!(!c.cluster.enabled(), "no redis_url: a single node");
        let c = from_str(
            "[server]\nbind = \"127.0.0.1:18600\"\n[cluster]\nredis_url = \"redis://:hunter2@127.0.0.1:6390/0\"",
        )
        .unwrap();
        assert!(c.cluster.enabled());
        let cc = c.cluster.to_cluster_config(&c.server.bind);
        assert!(cc.node_id.ends_with(":18600"), "{}", cc.node_id);
        assert_eq!(cc.advertise_url, "http://127.0.0.1:18600");
        assert!(
            !format!("{c:?}").contains("hunter2"),
            "the URL's password is redacted"
        );
        for (toml, field) in [
            ("[cluster]\nredis_url = \"http://x\"", "cluster.redis_url"),
            (
                "[cluster]\nredis_url = \"redis://h\"\nadvertise_url = \"h:1\"",
                "cluster.advertise_url",
            ),
            (
                "[server]\nbind = \"0.0.0.0:8080\"\n[cluster]\nredis_url = \"redis://h\"",
                "cluster.advertise_url",
            ),
            ("[cluster]\nlease_ms = 10", "cluster.lease_ms"),
            ("[cluster]\nheartbeat_ms = 20000", "cluster.heartbeat_ms"),
            ("[cluster]\nkey_prefix = \"a b\"", "cluster.key_prefix"),
            ("[cluster]\nredis_urll = \"x\"", "redis_urll"),
        ] {
            let e = from_str(toml).unwrap_err().to_string();
            assert!(e.contains(field), "{toml}: {e}");
            assert!(!e.contains("hunter2"));
        }
    }

    #[test]
    fn limits_name_the_bad_field() {
        let cfg = from_str("").unwrap();
        assert_eq!(cfg.limits.creations_per_minute, 10);
        assert!(cfg.limits.trusted_proxies.is_empty() && !cfg.limits.loopback);
        let cfg = from_str("[limits]\ntrusted_proxies = [\"10.0.0.0/8\", \"::1\"]").unwrap();
        assert_eq!(cfg.limits.proxies().unwrap().len(), 2);
        let e = from_str("[limits]\ntrusted_proxies = [\"10.0.0.0/8\", \"nginx\"]")
            .unwrap_err()
            .to_string();
        assert!(e.contains("limits.trusted_proxies[1]"), "{e}");
        let e = from_str("[limits]\npending_ttl_s = 0")
            .unwrap_err()
            .to_string();
        assert!(e.contains("limits.pending_ttl_s"), "{e}");
        let e = from_str("[limits]\nloopbak = true")
            .unwrap_err()
            .to_string();
        assert!(e.contains("loopbak"), "{e}");
    }

    #[test]
    fn an_unknown_mode_names_the_key_and_what_came() {
        let e = from_str("[interview]\nmode = \"adaptve\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("interview.mode"), "{e}");
        assert!(
            e.contains("expected one of economy, balanced, adaptive, auto"),
            "{e}"
        );
        assert!(e.contains("adaptve"), "{e}");
        let cfg = from_str("[interview]\nmode = \"economy\"").unwrap();
        assert_eq!(cfg.interview.mode, Mode::Economy);
    }

    #[test]
    fn file_overrides_merge_into_the_catalogue() {
        let cfg = from_str("[providers.groq]\nlimits = { rpm = 5 }\n[providers.my_vllm]\nformat = \"openai\"\nbase_url = \"http://127.0.0.1:8000/v1\"").unwrap();
        let groq = &cfg.providers["groq"];
        assert_eq!(groq.limits.rpm, Some(5));
        assert_eq!(
            groq.limits.rpd,
            Some(14400),
            "other limits keep their defaults"
        );
        assert_eq!(cfg.providers["my_vllm"].priority, 10);
    }
}
