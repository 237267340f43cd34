//! The measured costs of the capacity plan: `GET {url}/api/optimization_stats` of a running server
//! (blocking, on its own runtime), read into [`Costs`] in place of the defaults.

use std::time::Duration;

use serde_json::Value;

use super::arithmetic::{round_up, Costs, MEASURED};
use crate::config::Config;

impl Costs {
    /// These costs with the figures `stats` (the JSON of `url`'s `/api/optimization_stats`)
    /// measured in place of the defaults, for every mode with a completed interview.
    pub fn with_measured(mut self, url: &str, stats: &Value) -> Costs {
        for cost in &mut self.modes {
            let Some(entry) = mode_entry(&stats["modes"], cost.mode) else {
                continue;
            };
            let completed = entry["completed_interviews"].as_u64().unwrap_or(0);
            if completed == 0 {
                continue;
            }
            let calls = entry["provider_calls_per_completed_interview"]
                .as_f64()
                .or_else(|| {
                    let calls = entry["provider_calls"].as_u64()?;
                    Some(calls as f64 / completed as f64)
                });
            if let Some(calls) = calls {
                cost.calls = round_up(calls);
                cost.basis = MEASURED;
            }
            if let Some(tokens) = entry["provider_tokens_per_completed_interview"].as_f64() {
                cost.tokens = round_up(tokens);
                cost.tokens_basis = MEASURED;
            }
        }
        self.measured_from = Some(url.to_string());
        self
    }
}

/// The entry for `mode` in the stats' `modes`: an array of objects with a `mode` field (what the
/// server sends), or an object keyed by mode.
fn mode_entry<'a>(modes: &'a Value, mode: &str) -> Option<&'a Value> {
    match modes {
        Value::Array(items) => items.iter().find(|e| e["mode"] == mode),
        Value::Object(map) => map.get(mode),
        _ => None,
    }
}

/// An error and its causes on one line (reqwest's own message leaves out why a connection failed).
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

/// `GET {url}/api/optimization_stats`, with `admin_token` as the bearer token when given. Any
/// failure (unreachable, not 2xx, not the stats JSON) is an error naming the address.
pub fn fetch_stats(url: &str, admin_token: Option<&str>) -> Result<Value, String> {
    let endpoint = format!("{}/api/optimization_stats", url.trim_end_matches('/'));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start a runtime to read {endpoint}: {e}"))?;
    rt.block_on(async {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| format!("cannot build an HTTP client: {e}"))?;
        let mut req = http.get(&endpoint);
        if let Some(token) = admin_token {
            req = req.bearer_auth(token);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| format!("cannot read {endpoint}: {}", with_causes(&e)))?;
        let status = resp.status();
        if status == reqwest::StatusCode::UNAUTHORIZED {
            return Err(format!(
                "{endpoint} answered {status}: pass --admin-token (or set server.admin_token / IE_SERVER__ADMIN_TOKEN)"
            ));
        }
        if !status.is_success() {
            return Err(format!("{endpoint} answered {status}"));
        }
        let stats: Value = resp
            .json()
            .await
            .map_err(|e| format!("{endpoint} did not answer JSON: {}", with_causes(&e)))?;
        if stats["modes"].is_array() || stats["modes"].is_object() {
            Ok(stats)
        } else {
            Err(format!(
                "{endpoint} answered JSON without `modes`: not an interview-engine server?"
            ))
        }
    })
}

/// The costs for `config`: the defaults for its `[interview] questions`, with the figures measured
/// by the server at `stats_url` when given. The token is `admin_token`, else the config's
/// `server.admin_token` (which `IE_SERVER__ADMIN_TOKEN` sets) when not empty.
pub fn costs(
    config: &Config,
    stats_url: Option<&str>,
    admin_token: Option<&str>,
) -> Result<Costs, String> {
    let defaults = Costs::defaults(config.interview.questions);
    let Some(url) = stats_url else {
        return Ok(defaults);
    };
    let url = url.trim_end_matches('/');
    let configured = &config.server.admin_token.0;
    let token = admin_token.or((!configured.is_empty()).then(|| configured.expose()));
    let stats = fetch_stats(url, token)?;
    Ok(defaults.with_measured(url, &stats))
}
