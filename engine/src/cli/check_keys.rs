//! `interview-engine check-keys`: one minimal request through every configured key, reporting
//! ok / invalid / rate-limited / unreachable per key (keys shown by redacted id only).

use std::time::{Duration, Instant};

use actors::providers::{ChatRequest, Message, ProviderError, Role};
use actors::storage::NullLedger;
use serde::Serialize;

use crate::config::{Config, ConfigError};

/// The verdict for one key.
#[derive(Debug, Clone, Serialize)]
pub struct KeyCheck {
    /// Redacted id.
    pub key: String,
    /// `ok`, `invalid`, `rate_limited`, `unreachable` or `error`.
    pub result: &'static str,
    /// What the provider said (classified, never the key).
    pub detail: String,
    /// Round-trip time.
    pub latency_ms: u64,
}

/// Checks every key of `config` found in the environment. Uses no ledger: one tiny request per key.
pub async fn check_keys(config: &Config) -> Result<Vec<KeyCheck>, ConfigError> {
    let env = |k: &str| std::env::var(k).ok();
    let keys = crate::server::key_configs(config, &env, &NullLedger)?;
    let http = reqwest::Client::new();
    let req = ChatRequest {
        messages: vec![Message::new(Role::User, "Reply with the word ok.")],
        max_tokens: 5,
        temperature: Some(0.0),
        json: false,
        model: None,
        json_schema: None,
    };
    let checks = keys.into_iter().map(|k| {
        let http = http.clone();
        let req = req.clone();
        async move {
            let mut target = k.spec.target.clone();
            target.timeout = target.timeout.min(Duration::from_secs(20));
            let t0 = Instant::now();
            let r = k.spec.format.wire().complete(&http, &target, &req).await;
            let latency_ms = t0.elapsed().as_millis() as u64;
            let (result, detail) = match r {
                Ok(_) => ("ok", String::new()),
                Err(e @ ProviderError::InvalidKey { .. }) => ("invalid", e.to_string()),
                Err(e @ ProviderError::RateLimited { .. }) => ("rate_limited", e.to_string()),
                Err(e @ (ProviderError::Unreachable(_) | ProviderError::Timeout)) => {
                    ("unreachable", e.to_string())
                }
                Err(e) => ("error", e.to_string()),
            };
            KeyCheck {
                key: k.spec.id.clone(),
                result,
                detail,
                latency_ms,
            }
        }
    });
    Ok(futures::future::join_all(checks).await)
}

/// Prints the checks as a table.
pub fn print_table(checks: &[KeyCheck]) {
    if checks.is_empty() {
        println!("no provider keys configured (set e.g. GROQ_API_KEYS)");
        return;
    }
    println!("{:<24} {:<13} {:>8}  detail", "key", "result", "ms");
    for c in checks {
        println!(
            "{:<24} {:<13} {:>8}  {}",
            c.key, c.result, c.latency_ms, c.detail
        );
    }
}
