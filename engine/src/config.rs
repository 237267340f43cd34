//! Configuration: built-in defaults (`config/default.toml`), then the operator's TOML file, then
//! `IE_<SECTION>__<FIELD>` environment variables, layered with figment; then `validate()`.
//!
//! Unknown fields are refused; every error names the field (`providers.groq.limits.rpm: must be > 0`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use actors::key::{KeySpec, SharedQuota};
use actors::providers::{FormatKind, Target};
use actors::quota::Limits;
use actors::router::KeyConfig;
use actors::secret::Secret;
use actors::storage::UsageLedger;
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

fn invalid(field: impl Into<String>, message: impl Into<String>) -> ConfigError {
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
    /// `[scoring]`: the rubric scorer's optional semantic signal.
    #[serde(default)]
    pub scoring: ScoringConfig,
    /// `[providers.<name>]`.
    #[serde(default)]
    pub providers: BTreeMap<String, ProviderConfig>,
    /// `[[gpu_nodes]]`.
    #[serde(default)]
    pub gpu_nodes: Vec<GpuNodeConfig>,
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
}

/// Call-budget mode of an interview.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Fewest provider calls.
    Economy,
    /// One evaluation call per answer.
    Balanced,
    /// Evaluation and follow-ups per answer.
    Adaptive,
    /// Chosen from quota headroom.
    Auto,
}

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
        fig = fig.merge(Env::prefixed("IE_").split("__"));
        let cfg: Config = fig.extract().map_err(|e| ConfigError::Parse(describe(e)))?;
        cfg.validate()?;
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
        if self.server.max_ws_frame_bytes < 1024 {
            return Err(invalid(
                "server.max_ws_frame_bytes",
                "must be at least 1024",
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
            let l = &prov.limits;
            for (field, v) in [
                ("rpm", l.rpm.map(u64::from)),
                ("rpd", l.rpd.map(u64::from)),
                ("tpm", l.tpm),
                ("tpd", l.tpd),
                ("concurrency", l.concurrency.map(u64::from)),
            ] {
                if v == Some(0) {
                    return Err(invalid(
                        f(&format!("limits.{field}")),
                        "must be > 0 (omit it for no limit)",
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
        Ok(())
    }

    /// The env variable that holds a provider's keys.
    pub fn keys_env(name: &str, prov: &ProviderConfig) -> String {
        prov.keys_env
            .clone()
            .unwrap_or_else(|| format!("{}_API_KEYS", name.to_ascii_uppercase().replace('-', "_")))
    }

    /// Builds the key actors' configuration from the providers and the keys in the environment.
    /// Providers without keys are skipped with one log line each.
    pub fn key_configs(
        &self,
        env: &dyn Fn(&str) -> Option<String>,
        ledger: &dyn UsageLedger,
    ) -> Result<Vec<KeyConfig>, ConfigError> {
        let mut out = Vec::new();
        for (name, prov) in &self.providers {
            let Some(format) = prov.format else { continue };
            if !prov.enabled {
                tracing::info!(provider = %name, "provider disabled in config; skipped");
                continue;
            }
            let var = Self::keys_env(name, prov);
            let keys: Vec<String> = env(&var)
                .unwrap_or_default()
                .split(',')
                .map(|k| k.trim().to_string())
                .filter(|k| !k.is_empty())
                .collect();
            if keys.is_empty() {
                tracing::info!(provider = %name, env = %var, "no keys configured; provider skipped");
                continue;
            }
            let mut base_url = prov.base_url.trim_end_matches('/').to_string();
            let mut account_id = None;
            match format {
                FormatKind::AzureOpenai if base_url.is_empty() => {
                    base_url = env("AZURE_OPENAI_ENDPOINT")
                        .unwrap_or_default()
                        .trim_end_matches('/')
                        .to_string();
                    if base_url.is_empty() {
                        return Err(invalid(
                            format!("providers.{name}.base_url"),
                            "empty and AZURE_OPENAI_ENDPOINT is not set",
                        ));
                    }
                }
                FormatKind::Cloudflare => {
                    account_id = env("CLOUDFLARE_ACCOUNT_ID").filter(|s| !s.trim().is_empty());
                    if account_id.is_none() {
                        return Err(invalid(format!("providers.{name}"), "CLOUDFLARE_ACCOUNT_ID is not set (Workers AI URLs need the account id)"));
                    }
                }
                _ => {}
            }
            let tz: chrono_tz::Tz = prov
                .reset_tz
                .parse()
                .map_err(|_| invalid(format!("providers.{name}.reset_tz"), "unknown time zone"))?;
            let shared = (prov.quota_scope == QuotaScope::Shared).then(|| {
                Arc::new(SharedQuota::restored(
                    format!("{name}:shared"),
                    prov.limits,
                    tz,
                    ledger,
                ))
            });
            for (i, key) in keys.into_iter().enumerate() {
                let id = format!("{name}#{}", i + 1);
                let quota = shared.clone().unwrap_or_else(|| {
                    Arc::new(SharedQuota::restored(id.clone(), prov.limits, tz, ledger))
                });
                let spec = KeySpec {
                    id,
                    provider: name.clone(),
                    format,
                    target: Target {
                        base_url: base_url.clone(),
                        model: prov.model.clone(),
                        secret: Secret::new(key),
                        account_id: account_id.clone(),
                        api_version: prov.api_version.clone(),
                        timeout: Duration::from_millis(self.pool.request_timeout_ms),
                    },
                    priority: prov.priority,
                    breaker_failures: self.pool.breaker_failures,
                    breaker_cooldown: Duration::from_millis(self.pool.breaker_cooldown_ms),
                    queue_capacity: self.pool.queue_capacity,
                    default_retry_after: Duration::from_millis(self.pool.default_retry_after_ms),
                };
                out.push(KeyConfig {
                    spec: Arc::new(spec),
                    quota: quota.clone(),
                });
            }
        }
        Ok(out)
    }
}

/// Figment's error with its path rewritten as `section.field` and without the layer's internals.
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
    use actors::storage::NullLedger;

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

    #[test]
    fn keys_come_from_env_and_scopes_share_quota() {
        let cfg = from_str("").unwrap();
        let env = |k: &str| match k {
            "GROQ_API_KEYS" => Some("gsk_a, gsk_b".to_string()),
            "GEMINI_API_KEYS" => Some("g1,g2".to_string()),
            _ => None,
        };
        let keys = cfg.key_configs(&env, &NullLedger).unwrap();
        let ids: Vec<_> = keys.iter().map(|k| k.spec.id.as_str()).collect();
        assert_eq!(ids, ["gemini#1", "gemini#2", "groq#1", "groq#2"]);
        assert!(
            Arc::ptr_eq(&keys[0].quota, &keys[1].quota),
            "gemini keys share one quota"
        );
        assert!(
            !Arc::ptr_eq(&keys[2].quota, &keys[3].quota),
            "groq keys have their own"
        );
        assert!(!format!("{:?}", keys[2].spec).contains("gsk_a"));
    }
}
