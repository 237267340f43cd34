//! `interview-engine plan`: the capacity plan. How many interviews per day the configured keys
//! and GPU nodes can carry in each mode, from the configured limits and the calls and tokens one
//! interview costs in each mode.
//!
//! The cost of an interview in a mode is either
//!
//! * **measured**: with `--stats-url URL`, `GET {URL}/api/optimization_stats` of a running server;
//!   for each of economy, balanced and adaptive with `completed_interviews > 0` the calls per
//!   interview are `ceil(provider_calls_per_completed_interview)`, and the tokens
//!   `ceil(provider_tokens_per_completed_interview)` when the server reports that field. A fetch
//!   that fails is an error (exit 1), never a silent fall-back; or
//! * the **default**: `actors::budget::default_cost(level)` for `[interview] questions`, rounded up
//!   to whole calls and tokens (the figures the call budget itself reserves).
//!
//! Without `--stats-url` no request is sent. The arithmetic, per provider with `N` keys (read from
//! its `keys_env` variable; key values are only counted, never printed):
//!
//! * daily requests = `rpd × N` (`quota_scope = "key"`) or `rpd` (`"shared"`); without `rpd`,
//!   `rpm × 1440` (× N for key scope), marked "from rpm"; without either, unlimited.
//! * daily tokens likewise from `tpd`, else `tpm × 1440`, else unlimited.
//! * the other free-tier windows make these tighter (each per key, or once for a shared scope):
//!   `requests_per_month ÷ 30` and `tokens_per_month ÷ 30`; a daily cost-unit budget
//!   (`daily_units`, e.g. Cloudflare's 10,000 neurons) buys `daily_units ÷ units per token` tokens,
//!   the units per token being the default model's `unit_rates` at 3 input tokens to 1 output token
//!   (`actors::quota::ASSUMED_INPUT_SHARE`); the basis names the window that binds.
//! * a paid provider (one with a `cost`) counts only what its `daily_spend_cap` buys at that price and
//!   share (tokens); with no cap it counts nothing ("paid"): the plan shows what is really free.
//! * a provider with no keys (or `enabled = false`) carries nothing.
//! * interviews/day in a mode = `floor(min(daily_requests / calls, daily_tokens / tokens))`,
//!   with the calls and tokens per interview from [`Costs`]; an unlimited dimension, or one an
//!   interview spends none of (0 calls or 0 tokens), is ignored, and both ignored gives
//!   "unlimited" (`null` in JSON).
//! * a GPU node makes `max_concurrency × 86400 / ASSUMED_GPU_CALL_S` calls a day and carries
//!   `floor(calls/day / calls per interview)` interviews (GPU nodes have no token quota).
//! * totals per mode = the sum over providers and nodes (unlimited if any part is).
//!
//! [`plan`] does the arithmetic over plain inputs and explicit costs; [`costs`] gathers the costs
//! (defaults, or measured through [`fetch_stats`]) and [`from_config`] the inputs from the config
//! and the environment.

use std::time::Duration;

use actors::budget::{default_cost, Level};
use serde::Serialize;
use serde_json::Value;

use crate::config::{Config, QuotaScope};

/// Calls and tokens one interview costs in a mode, and where each figure comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModeCost {
    /// Mode name as in `[interview] mode`.
    pub mode: &'static str,
    /// Provider calls per interview.
    pub calls: u64,
    /// Tokens (prompt + completion) per interview.
    pub tokens: u64,
    /// Where `calls` comes from: `default` or `measured`.
    pub basis: &'static str,
    /// Where `tokens` comes from: `default` or `measured` (the server reports calls per completed
    /// interview; tokens only when it has `provider_tokens_per_completed_interview`).
    pub tokens_basis: &'static str,
}

/// The modes the plan covers, in order, with their budget level.
const MODES: [(&str, Level); 3] = [
    ("economy", Level::Economy),
    ("balanced", Level::Balanced),
    ("adaptive", Level::Adaptive),
];

/// Basis of a figure taken from `actors::budget`'s defaults.
pub const DEFAULT: &str = "default";
/// Basis of a figure taken from a server's `/api/optimization_stats`.
pub const MEASURED: &str = "measured";

/// A non-negative figure rounded up to a whole number. A hair of tolerance keeps products such as
/// `1.1 × 10` that come out a rounding error above a whole number from costing one more.
fn round_up(x: f64) -> u64 {
    if x.is_finite() && x > 0.0 {
        (x - 1e-9).ceil().max(0.0) as u64
    } else {
        0
    }
}

/// The per-interview costs a plan uses, per mode in the order economy, balanced, adaptive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Costs {
    /// Economy, balanced, adaptive.
    pub modes: [ModeCost; 3],
    /// Questions per interview the default figures are for (`[interview] questions`).
    pub questions: u32,
    /// The server the measured figures were read from, when `--stats-url` was given.
    pub measured_from: Option<String>,
}

impl Costs {
    /// `actors::budget`'s default costs for interviews of `questions` questions, rounded up.
    pub fn defaults(questions: u32) -> Costs {
        let q = f64::from(questions);
        Costs {
            modes: MODES.map(|(mode, level)| {
                let c = default_cost(level);
                ModeCost {
                    mode,
                    calls: round_up(c.calls(q)),
                    tokens: round_up(c.tokens(q)),
                    basis: DEFAULT,
                    tokens_basis: DEFAULT,
                }
            }),
            questions,
            measured_from: None,
        }
    }

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

    /// How a basis reads in the output: `default`, or `measured from <url>`.
    fn describe(&self, basis: &str) -> String {
        match (&self.measured_from, basis) {
            (Some(url), MEASURED) => format!("measured from {url}"),
            _ => basis.to_string(),
        }
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

/// Assumed duration of one call on a GPU node, seconds: a slot serves `86400 / 2.0` calls a day.
pub const ASSUMED_GPU_CALL_S: f64 = 2.0;

/// Minutes in a day: per-minute limits are scaled by this when there is no daily limit.
const MINUTES_PER_DAY: u64 = 1440;

/// The free-tier windows beyond rpm/rpd/tpm/tpd, and the price, of one provider.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct MoreWindows {
    /// Requests per calendar month.
    pub requests_per_month: Option<u64>,
    /// Tokens per calendar month.
    pub tokens_per_month: Option<u64>,
    /// Cost units a day (Cloudflare's neurons).
    pub daily_units: Option<u64>,
    /// Cost units per token of the default model at the assumed input share.
    pub units_per_token: f64,
    /// The provider costs money.
    pub paid: bool,
    /// Most money a day (per quota scope).
    pub daily_spend_cap: Option<f64>,
    /// Money per token at the assumed input share.
    pub price_per_token: f64,
}

/// One provider, as the arithmetic needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct ProviderInput {
    /// Provider name.
    pub name: String,
    /// Number of keys found in its environment variable (0 if disabled).
    pub keys: u64,
    /// Limits shared by all keys (`true`) or per key (`false`).
    pub shared: bool,
    /// Requests per minute.
    pub rpm: Option<u64>,
    /// Requests per day.
    pub rpd: Option<u64>,
    /// Tokens per minute.
    pub tpm: Option<u64>,
    /// Tokens per day.
    pub tpd: Option<u64>,
    /// Switched off in the config.
    pub disabled: bool,
    /// Monthly windows, cost units and price.
    pub more: MoreWindows,
}

/// One GPU node, as the arithmetic needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInput {
    /// Node name.
    pub name: String,
    /// Concurrent requests at most.
    pub max_concurrency: u64,
}

/// A value per mode; `None` is unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PerMode {
    /// Economy mode.
    pub economy: Option<u64>,
    /// Balanced mode.
    pub balanced: Option<u64>,
    /// Adaptive mode.
    pub adaptive: Option<u64>,
}

impl PerMode {
    fn from_fn(costs: &[ModeCost; 3], mut f: impl FnMut(ModeCost) -> Option<u64>) -> PerMode {
        PerMode {
            economy: f(costs[0]),
            balanced: f(costs[1]),
            adaptive: f(costs[2]),
        }
    }

    fn values(&self) -> [Option<u64>; 3] {
        [self.economy, self.balanced, self.adaptive]
    }

    /// Adds `other`; unlimited absorbs.
    fn add(&mut self, other: &PerMode) {
        let sum = |a: Option<u64>, b: Option<u64>| Some(a?.saturating_add(b?));
        self.economy = sum(self.economy, other.economy);
        self.balanced = sum(self.balanced, other.balanced);
        self.adaptive = sum(self.adaptive, other.adaptive);
    }
}

/// A text per mode.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PerModeText {
    /// Economy mode.
    pub economy: String,
    /// Balanced mode.
    pub balanced: String,
    /// Adaptive mode.
    pub adaptive: String,
}

impl PerModeText {
    fn from_fn(costs: &[ModeCost; 3], mut f: impl FnMut(ModeCost) -> String) -> PerModeText {
        PerModeText {
            economy: f(costs[0]),
            balanced: f(costs[1]),
            adaptive: f(costs[2]),
        }
    }

    fn values(&self) -> [&str; 3] {
        [&self.economy, &self.balanced, &self.adaptive]
    }
}

/// One provider's line of the plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProviderPlan {
    /// Provider name.
    pub name: String,
    /// Keys found.
    pub keys: u64,
    /// `key` or `shared`.
    pub quota_scope: &'static str,
    /// Requests per day over all keys; `null` is unlimited.
    pub daily_requests: Option<u64>,
    /// Where `daily_requests` comes from: `rpd`, `rpm` (× 1440), `requests_per_month` (÷ 30),
    /// `paid`, `unlimited`, `no keys`, `disabled`.
    pub requests_basis: &'static str,
    /// Tokens per day over all keys; `null` is unlimited.
    pub daily_tokens: Option<u64>,
    /// Where `daily_tokens` comes from: `tpd`, `tpm` (× 1440), `tokens_per_month` (÷ 30),
    /// `daily_units`, `daily_spend_cap`, `paid`, `unlimited`, `no keys`, `disabled`.
    pub tokens_basis: &'static str,
    /// Interviews per day in each mode; `null` is unlimited.
    pub interviews_per_day: PerMode,
}

/// One GPU node's line of the plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodePlan {
    /// Node name.
    pub name: String,
    /// Concurrent requests at most.
    pub max_concurrency: u64,
    /// `max_concurrency × 86400 / ASSUMED_GPU_CALL_S`.
    pub calls_per_day: u64,
    /// Interviews per day in each mode.
    pub interviews_per_day: PerMode,
}

/// The assumptions behind the plan.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Assumptions {
    /// Calls per interview, per mode.
    pub calls_per_interview: PerMode,
    /// Where each mode's calls per interview come from: `default` or `measured from <url>`.
    pub calls_basis: PerModeText,
    /// Tokens per interview, per mode.
    pub tokens_per_interview: PerMode,
    /// Where each mode's tokens per interview come from: `default` or `measured from <url>`.
    pub tokens_basis: PerModeText,
    /// Questions per interview the default figures are for (`[interview] questions`).
    pub questions_per_interview: u32,
    /// The server measured figures were read from (`--stats-url`); `null` without one.
    pub stats_url: Option<String>,
    /// Assumed seconds per GPU call.
    pub gpu_call_seconds: f64,
    /// The arithmetic, in words.
    pub notes: Vec<&'static str>,
}

/// The whole plan.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan {
    /// Providers, by name.
    pub providers: Vec<ProviderPlan>,
    /// GPU nodes, in config order.
    pub gpu_nodes: Vec<NodePlan>,
    /// Interviews per day over providers and nodes; `null` is unlimited.
    pub totals: PerMode,
    /// What the figures rest on.
    pub assumptions: Assumptions,
    /// The level that needs no provider at all.
    pub heuristic: Heuristic,
}

/// The `heuristic` level: templates, the question pool and the rubric scorer, no provider call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Heuristic {
    /// Interviews per day at this level: `null`, unlimited by any quota.
    pub interviews_per_day: Option<u64>,
    /// Provider calls one such interview makes: none.
    pub provider_calls_per_interview: u64,
    /// What that means.
    pub note: &'static str,
}

/// What `plan` says about the heuristic level.
pub const HEURISTIC_NOTE: &str = "heuristic interviews (templates, question pool, rubric scorer) make no provider calls: they need no key, no quota limits them, and interviews step down to this level instead of failing when the quota runs out; this machine is the only limit (docs/BENCHMARKS.md)";

const NOTES: [&str; 9] = [
    "daily requests = rpd x keys (quota_scope key) or rpd (shared); without rpd, rpm x 1440; without either, unlimited",
    "daily tokens = tpd x keys (key) or tpd (shared); without tpd, tpm x 1440; without either, unlimited",
    "monthly windows count 1/30 a day; a daily cost-unit budget (daily_units, e.g. neurons) buys daily_units / (units per token of the model, 3 input : 1 output) tokens; the tightest window is the basis",
    "a paid provider (with a cost) counts only what daily_spend_cap buys at its price (3 input : 1 output); none without a cap: only free capacity is counted",
    "a provider without keys carries nothing",
    "interviews/day = floor(min(daily requests / calls, daily tokens / tokens)); an unlimited dimension, or one an interview spends none of, is ignored",
    "a GPU node makes max_concurrency x 86400 / gpu_call_seconds calls a day; interviews/day = floor(calls / calls per interview)",
    "default calls and tokens per interview: actors::budget's default costs for [interview] questions, rounded up",
    "measured (plan --stats-url URL): calls per interview = ceil(provider_calls_per_completed_interview) of URL/api/optimization_stats for each mode with a completed interview; tokens likewise when the server reports provider_tokens_per_completed_interview, else the default",
];

/// A daily budget over all keys from a daily limit, else a per-minute one, with its basis.
/// `None` is unlimited.
pub fn daily_budget(
    per_day: Option<u64>,
    per_minute: Option<u64>,
    keys: u64,
    shared: bool,
    names: (&'static str, &'static str),
) -> (Option<u64>, &'static str) {
    let mult = if shared { 1 } else { keys };
    match (per_day, per_minute) {
        (Some(d), _) => (Some(d.saturating_mul(mult)), names.0),
        (None, Some(m)) => (
            Some(m.saturating_mul(MINUTES_PER_DAY).saturating_mul(mult)),
            names.1,
        ),
        (None, None) => (None, "unlimited"),
    }
}

/// The tighter of two daily budgets (`None` is unlimited), with its basis.
fn tighter(
    a: (Option<u64>, &'static str),
    b: (Option<u64>, &'static str),
) -> (Option<u64>, &'static str) {
    match (a.0, b.0) {
        (Some(x), Some(y)) if y < x => b,
        (None, Some(_)) => b,
        _ => a,
    }
}

/// The daily budgets made tighter by the monthly windows, the cost-unit budget and the price.
fn more_windows(
    p: &ProviderInput,
    requests: (Option<u64>, &'static str),
    tokens: (Option<u64>, &'static str),
) -> (Option<u64>, &'static str, Option<u64>, &'static str) {
    let m = &p.more;
    if m.paid && m.daily_spend_cap.is_none() {
        return (Some(0), "paid", Some(0), "paid");
    }
    let mult = if p.shared { 1 } else { p.keys };
    let scaled = |v: Option<u64>| v.map(|v| v.saturating_mul(mult));
    let requests = tighter(
        requests,
        (
            scaled(m.requests_per_month.map(|v| v / 30)),
            "requests_per_month",
        ),
    );
    let mut tokens = tighter(
        tokens,
        (
            scaled(m.tokens_per_month.map(|v| v / 30)),
            "tokens_per_month",
        ),
    );
    let bought = |budget: f64, per_token: f64| {
        if per_token > 0.0 {
            Some((budget / per_token).floor() as u64)
        } else {
            None
        }
    };
    if let Some(units) = m.daily_units {
        tokens = tighter(
            tokens,
            (
                scaled(bought(units as f64, m.units_per_token)),
                "daily_units",
            ),
        );
    }
    if let (true, Some(cap)) = (m.paid, m.daily_spend_cap) {
        tokens = tighter(
            tokens,
            (scaled(bought(cap, m.price_per_token)), "daily_spend_cap"),
        );
    }
    (requests.0, requests.1, tokens.0, tokens.1)
}

/// Interviews per day a budget carries in one mode; `None` if both dimensions are unlimited.
pub fn interviews(
    daily_requests: Option<u64>,
    daily_tokens: Option<u64>,
    cost: ModeCost,
) -> Option<u64> {
    // An interview that spends none of a dimension is not limited by it.
    let by_requests = daily_requests.and_then(|r| r.checked_div(cost.calls));
    let by_tokens = daily_tokens.and_then(|t| t.checked_div(cost.tokens));
    match (by_requests, by_tokens) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The plan for these providers and nodes, at these per-interview costs.
pub fn plan(providers: &[ProviderInput], nodes: &[NodeInput], costs: &Costs) -> Plan {
    let modes = &costs.modes;
    let mut totals = PerMode {
        economy: Some(0),
        balanced: Some(0),
        adaptive: Some(0),
    };
    let providers: Vec<ProviderPlan> = providers
        .iter()
        .map(|p| {
            let quota_scope = if p.shared { "shared" } else { "key" };
            let (daily_requests, requests_basis, daily_tokens, tokens_basis) = if p.disabled {
                (Some(0), "disabled", Some(0), "disabled")
            } else if p.keys == 0 {
                (Some(0), "no keys", Some(0), "no keys")
            } else {
                let (r, rb) = daily_budget(p.rpd, p.rpm, p.keys, p.shared, ("rpd", "rpm"));
                let (t, tb) = daily_budget(p.tpd, p.tpm, p.keys, p.shared, ("tpd", "tpm"));
                let (r, rb, t, tb) = more_windows(p, (r, rb), (t, tb));
                (r, rb, t, tb)
            };
            // Without keys a provider carries nothing, even in a mode that costs no calls.
            let carries_nothing = p.disabled || p.keys == 0;
            let interviews_per_day = PerMode::from_fn(modes, |c| {
                if carries_nothing {
                    Some(0)
                } else {
                    interviews(daily_requests, daily_tokens, c)
                }
            });
            totals.add(&interviews_per_day);
            ProviderPlan {
                name: p.name.clone(),
                keys: p.keys,
                quota_scope,
                daily_requests,
                requests_basis,
                daily_tokens,
                tokens_basis,
                interviews_per_day,
            }
        })
        .collect();
    let gpu_nodes: Vec<NodePlan> = nodes
        .iter()
        .map(|n| {
            let calls_per_day = (n.max_concurrency as f64 * 86_400.0 / ASSUMED_GPU_CALL_S) as u64;
            // A mode that costs no calls is not limited by the node.
            let interviews_per_day =
                PerMode::from_fn(modes, |c| calls_per_day.checked_div(c.calls));
            totals.add(&interviews_per_day);
            NodePlan {
                name: n.name.clone(),
                max_concurrency: n.max_concurrency,
                calls_per_day,
                interviews_per_day,
            }
        })
        .collect();
    Plan {
        providers,
        gpu_nodes,
        totals,
        assumptions: Assumptions {
            calls_per_interview: PerMode::from_fn(modes, |c| Some(c.calls)),
            calls_basis: PerModeText::from_fn(modes, |c| costs.describe(c.basis)),
            tokens_per_interview: PerMode::from_fn(modes, |c| Some(c.tokens)),
            tokens_basis: PerModeText::from_fn(modes, |c| costs.describe(c.tokens_basis)),
            questions_per_interview: costs.questions,
            stats_url: costs.measured_from.clone(),
            gpu_call_seconds: ASSUMED_GPU_CALL_S,
            notes: NOTES.to_vec(),
        },
        heuristic: Heuristic {
            interviews_per_day: None,
            provider_calls_per_interview: 0,
            note: HEURISTIC_NOTE,
        },
    }
}

/// Counts the keys in a provider's variable the way [`Config::key_configs`] splits them.
fn count_keys(value: Option<String>) -> u64 {
    value
        .unwrap_or_default()
        .split(',')
        .filter(|k| !k.trim().is_empty())
        .count() as u64
}

/// The plan for `config` at `costs` (see [`costs`]), with key counts read through `env`.
pub fn from_config(config: &Config, env: &dyn Fn(&str) -> Option<String>, costs: &Costs) -> Plan {
    let providers: Vec<ProviderInput> = config
        .providers
        .iter()
        .map(|(name, prov)| {
            let l = &prov.limits;
            ProviderInput {
                name: name.clone(),
                keys: if prov.enabled {
                    count_keys(env(&Config::keys_env(name, prov)))
                } else {
                    0
                },
                shared: prov.quota_scope == QuotaScope::Shared,
                rpm: l.rpm.map(u64::from),
                rpd: l.rpd.map(u64::from),
                tpm: l.tpm,
                tpd: l.tpd,
                disabled: !prov.enabled,
                more: {
                    let r = prov.rates_for(&prov.model);
                    MoreWindows {
                        requests_per_month: l.requests_per_month,
                        tokens_per_month: l.tokens_per_month,
                        daily_units: l.daily_units,
                        units_per_token: r.blended_units(),
                        paid: prov.cost.is_some_and(|c| c.input > 0.0 || c.output > 0.0),
                        daily_spend_cap: prov.daily_spend_cap,
                        price_per_token: r.blended_micros() / 1e6,
                    }
                },
            }
        })
        .collect();
    let nodes: Vec<NodeInput> = config
        .gpu_nodes
        .iter()
        .map(|n| NodeInput {
            name: n.name.clone(),
            max_concurrency: u64::from(n.max_concurrency),
        })
        .collect();
    plan(&providers, &nodes, costs)
}

fn show(v: Option<u64>) -> String {
    v.map_or_else(|| "unlimited".to_string(), |n| n.to_string())
}

fn show_budget(v: Option<u64>, basis: &str) -> String {
    match basis {
        "rpm" | "tpm" | "requests_per_month" | "tokens_per_month" | "daily_units"
        | "daily_spend_cap" => format!("{} (from {basis})", show(v)),
        "paid" => "0 (paid, no cap)".to_string(),
        "no keys" | "disabled" | "unlimited" => basis.to_string(),
        _ => show(v),
    }
}

/// Prints the plan as tables followed by its assumptions.
pub fn print(plan: &Plan) {
    println!("Capacity plan (interviews per day)\n");
    println!(
        "{:<16} {:>5} {:<7} {:>24} {:>26} {:>10} {:>10} {:>10}",
        "provider",
        "keys",
        "scope",
        "requests/day",
        "tokens/day",
        "economy",
        "balanced",
        "adaptive"
    );
    for p in &plan.providers {
        let [e, b, a] = p.interviews_per_day.values();
        println!(
            "{:<16} {:>5} {:<7} {:>24} {:>26} {:>10} {:>10} {:>10}",
            p.name,
            p.keys,
            p.quota_scope,
            show_budget(p.daily_requests, p.requests_basis),
            show_budget(p.daily_tokens, p.tokens_basis),
            show(e),
            show(b),
            show(a)
        );
    }
    println!();
    if plan.gpu_nodes.is_empty() {
        println!("GPU nodes: none");
    } else {
        println!(
            "{:<16} {:>15} {:>12} {:>10} {:>10} {:>10}",
            "gpu node", "max_concurrency", "calls/day", "economy", "balanced", "adaptive"
        );
        for n in &plan.gpu_nodes {
            let [e, b, a] = n.interviews_per_day.values();
            println!(
                "{:<16} {:>15} {:>12} {:>10} {:>10} {:>10}",
                n.name,
                n.max_concurrency,
                n.calls_per_day,
                show(e),
                show(b),
                show(a)
            );
        }
    }
    println!();
    let [e, b, a] = plan.totals.values();
    println!(
        "total interviews/day: economy {}, balanced {}, adaptive {}",
        show(e),
        show(b),
        show(a)
    );
    if plan.totals.values().iter().all(|v| *v == Some(0)) {
        println!("no provider keys and no GPU nodes: every interview runs at the heuristic level");
    }
    println!("heuristic interviews/day: unlimited\n  {HEURISTIC_NOTE}");
    let a = &plan.assumptions;
    println!(
        "\nAssumptions (per interview; defaults for {} questions):",
        a.questions_per_interview
    );
    let calls = a.calls_per_interview.values();
    let tokens = a.tokens_per_interview.values();
    let (calls_basis, tokens_basis) = (a.calls_basis.values(), a.tokens_basis.values());
    for (i, mode) in ["economy", "balanced", "adaptive"].iter().enumerate() {
        println!(
            "  {mode:<9} {:>4} calls ({}), {:>7} tokens ({})",
            show(calls[i]),
            calls_basis[i],
            show(tokens[i]),
            tokens_basis[i]
        );
    }
    if let Some(url) = &a.stats_url {
        if calls_basis.iter().all(|b| *b == DEFAULT) {
            println!(
                "  {url} has no completed economy, balanced or adaptive interview yet: every figure is a default"
            );
        }
    }
    println!("  one GPU call takes {ASSUMED_GPU_CALL_S} s");
    for n in &plan.assumptions.notes {
        println!("  {n}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Fixed costs the hand arithmetic below is worked out for.
    fn fixed() -> Costs {
        let cost = |mode, calls, tokens| ModeCost {
            mode,
            calls,
            tokens,
            basis: DEFAULT,
            tokens_basis: DEFAULT,
        };
        Costs {
            modes: [
                cost("economy", 2, 6_000),
                cost("balanced", 14, 20_000),
                cost("adaptive", 26, 36_000),
            ],
            questions: 12,
            measured_from: None,
        }
    }

    fn provider(name: &str, keys: u64, shared: bool) -> ProviderInput {
        ProviderInput {
            name: name.into(),
            keys,
            shared,
            rpm: None,
            rpd: None,
            tpm: None,
            tpd: None,
            disabled: false,
            more: MoreWindows::default(),
        }
    }

    #[test]
    fn key_scope_multiplies_daily_limits_and_the_tighter_dimension_wins() {
        let p = ProviderInput {
            rpm: Some(30),
            rpd: Some(1000),
            tpm: Some(6000),
            tpd: Some(200_000),
            ..provider("alpha", 2, false)
        };
        let plan = plan(&[p], &[], &fixed());
        let a = &plan.providers[0];
        assert_eq!((a.daily_requests, a.requests_basis), (Some(2000), "rpd"));
        assert_eq!((a.daily_tokens, a.tokens_basis), (Some(400_000), "tpd"));
        // economy min(2000/2, 400000/6000) = min(1000, 66); balanced min(142, 20); adaptive min(76, 11)
        assert_eq!(
            a.interviews_per_day,
            PerMode {
                economy: Some(66),
                balanced: Some(20),
                adaptive: Some(11)
            }
        );
        assert_eq!(plan.totals, a.interviews_per_day);
    }

    #[test]
    fn shared_scope_from_rpm_with_unlimited_tokens() {
        let p = ProviderInput {
            rpm: Some(10),
            ..provider("beta", 3, true)
        };
        let plan = plan(&[p], &[], &fixed());
        let b = &plan.providers[0];
        // 10 × 1440 = 14400, not multiplied by the 3 keys
        assert_eq!((b.daily_requests, b.requests_basis), (Some(14_400), "rpm"));
        assert_eq!((b.daily_tokens, b.tokens_basis), (None, "unlimited"));
        assert_eq!(
            b.interviews_per_day,
            PerMode {
                economy: Some(7200),
                balanced: Some(1028),
                adaptive: Some(553)
            }
        );
    }

    #[test]
    fn no_limits_is_unlimited_and_absorbs_the_total() {
        let plan = plan(
            &[provider("free", 1, false), provider("none", 0, false)],
            &[],
            &fixed(),
        );
        assert_eq!(plan.providers[0].interviews_per_day, PerMode::default());
        assert_eq!(plan.totals, PerMode::default());
        let none = &plan.providers[1];
        assert_eq!(none.requests_basis, "no keys");
        assert_eq!(none.interviews_per_day.economy, Some(0));
    }

    #[test]
    fn keyless_and_disabled_providers_carry_nothing() {
        let disabled = ProviderInput {
            rpd: Some(100),
            disabled: true,
            ..provider("off", 0, false)
        };
        let keyless = ProviderInput {
            rpd: Some(100),
            ..provider("empty", 0, false)
        };
        let plan = plan(&[disabled, keyless], &[], &fixed());
        assert_eq!(plan.providers[0].requests_basis, "disabled");
        assert_eq!(plan.providers[1].requests_basis, "no keys");
        assert_eq!(
            plan.totals,
            PerMode {
                economy: Some(0),
                balanced: Some(0),
                adaptive: Some(0)
            }
        );
    }

    #[test]
    fn gpu_nodes_from_concurrency_and_call_time() {
        let plan = plan(
            &[],
            &[NodeInput {
                name: "local".into(),
                max_concurrency: 4,
            }],
            &fixed(),
        );
        let n = &plan.gpu_nodes[0];
        // 4 × 86400 / 2.0 = 172800 calls/day; /2, /14, /26
        assert_eq!(n.calls_per_day, 172_800);
        assert_eq!(
            n.interviews_per_day,
            PerMode {
                economy: Some(86_400),
                balanced: Some(12_342),
                adaptive: Some(6_646)
            }
        );
        assert_eq!(plan.totals, n.interviews_per_day);
    }

    #[test]
    fn the_free_tier_windows_beyond_rpm_bind_where_they_are_tighter() {
        // Cloudflare: 300 rpm (432,000 requests a day) but 10,000 neurons a day at
        // llama-3.1-8b-instruct's 25,608 / 75,147 neurons per million input / output tokens.
        let per_token = (0.75 * 25_608.0 + 0.25 * 75_147.0) / 1e6;
        let cf = ProviderInput {
            rpm: Some(300),
            more: MoreWindows {
                daily_units: Some(10_000),
                units_per_token: per_token,
                ..MoreWindows::default()
            },
            ..provider("cloudflare", 1, true)
        };
        // Mistral: 500,000 tokens a minute, but 1,000,000,000 a month.
        let mistral = ProviderInput {
            rpm: Some(60),
            tpm: Some(500_000),
            more: MoreWindows {
                tokens_per_month: Some(1_000_000_000),
                ..MoreWindows::default()
            },
            ..provider("mistral", 2, false)
        };
        // DeepSeek: paid. Without a cap it counts nothing; with $1 a day at $0.28 / $0.42 per million.
        let paid = |cap: Option<f64>| ProviderInput {
            rpm: Some(60),
            more: MoreWindows {
                paid: true,
                daily_spend_cap: cap,
                price_per_token: (0.75 * 0.28 + 0.25 * 0.42) / 1e6,
                ..MoreWindows::default()
            },
            ..provider("deepseek", 1, false)
        };
        let plan = plan(&[cf, mistral, paid(None), paid(Some(1.0))], &[], &fixed());
        let [cf, mistral, free_only, capped] = [0, 1, 2, 3].map(|i| plan.providers[i].clone());
        assert_eq!(
            (cf.daily_requests, cf.requests_basis),
            (Some(432_000), "rpm")
        );
        assert_eq!(cf.tokens_basis, "daily_units");
        assert_eq!(cf.daily_tokens, Some((10_000.0 / per_token).floor() as u64));
        // 263,011 tokens / 6,000 per economy interview: 43, not 216,000 from the rpm alone.
        assert_eq!(cf.interviews_per_day.economy, Some(43));
        assert_eq!(
            (mistral.daily_tokens, mistral.tokens_basis),
            (Some(2 * 33_333_333), "tokens_per_month")
        );
        assert_eq!(
            (
                free_only.daily_tokens,
                free_only.tokens_basis,
                free_only.interviews_per_day.economy
            ),
            (Some(0), "paid", Some(0))
        );
        assert_eq!(capped.tokens_basis, "daily_spend_cap");
        assert_eq!(capped.daily_tokens, Some(3_174_603));
    }

    #[test]
    fn keys_are_counted_like_key_configs_splits_them() {
        assert_eq!(count_keys(Some(" a, b ,,c ".into())), 3);
        assert_eq!(count_keys(Some("".into())), 0);
        assert_eq!(count_keys(None), 0);
    }

    #[test]
    fn defaults_round_the_budget_costs_up() {
        let c = Costs::defaults(12);
        for (m, (_, level)) in c.modes.iter().zip(MODES) {
            let d = default_cost(level);
            assert_eq!(m.calls, d.calls(12.0).ceil() as u64, "{}", m.mode);
            assert_eq!(m.tokens, d.tokens(12.0).ceil() as u64, "{}", m.mode);
            assert_eq!((m.basis, m.tokens_basis), (DEFAULT, DEFAULT));
        }
        assert_eq!(round_up(1.1 * 10.0), 11);
        assert_eq!(round_up(1.7), 2);
        assert_eq!(round_up(0.0), 0);
        assert_eq!(round_up(f64::NAN), 0);
    }

    #[test]
    fn measured_figures_replace_the_defaults_only_where_interviews_completed() {
        let stats = json!({"modes": [
            {"mode": "economy", "completed_interviews": 10, "provider_calls": 17,
             "provider_calls_per_completed_interview": 1.7},
            {"mode": "balanced", "completed_interviews": 4, "provider_calls": 50,
             "provider_tokens_per_completed_interview": 9_000.2},
            {"mode": "adaptive", "completed_interviews": 0, "provider_calls": 3,
             "provider_calls_per_completed_interview": null},
            {"mode": "auto", "completed_interviews": 9, "provider_calls": 99},
        ]});
        let c = Costs::defaults(12).with_measured("http://s", &stats);
        let [e, b, a] = c.modes;
        assert_eq!(
            (e.calls, e.basis, e.tokens, e.tokens_basis),
            (2, MEASURED, Costs::defaults(12).modes[0].tokens, DEFAULT)
        );
        // 50 / 4 = 12.5 → 13, without the per-interview field
        assert_eq!(
            (b.calls, b.basis, b.tokens, b.tokens_basis),
            (13, MEASURED, 9_001, MEASURED)
        );
        assert_eq!(
            (a.calls, a.basis),
            (Costs::defaults(12).modes[2].calls, DEFAULT)
        );
        let p = plan(&[], &[], &c);
        assert_eq!(p.assumptions.calls_basis.economy, "measured from http://s");
        assert_eq!(p.assumptions.tokens_basis.economy, "default");
        assert_eq!(p.assumptions.calls_basis.adaptive, "default");
        assert_eq!(p.assumptions.stats_url.as_deref(), Some("http://s"));
        // The object form is read too.
        let obj = json!({"modes": {"adaptive": {"completed_interviews": 2, "provider_calls": 41}}});
        assert_eq!(
            Costs::defaults(12).with_measured("u", &obj).modes[2].calls,
            21
        );
    }

    #[test]
    fn a_mode_costing_no_calls_is_not_limited_by_requests() {
        let mut costs = fixed();
        costs.modes[0].calls = 0;
        costs.modes[0].tokens = 0;
        let p = ProviderInput {
            rpd: Some(100),
            ..provider("alpha", 1, false)
        };
        let keyless = ProviderInput {
            rpd: Some(100),
            ..provider("empty", 0, false)
        };
        let plan = plan(
            &[p, keyless],
            &[NodeInput {
                name: "n".into(),
                max_concurrency: 1,
            }],
            &costs,
        );
        assert_eq!(plan.providers[0].interviews_per_day.economy, None);
        assert_eq!(plan.providers[0].interviews_per_day.balanced, Some(7));
        assert_eq!(plan.providers[1].interviews_per_day.economy, Some(0));
        assert_eq!(plan.gpu_nodes[0].interviews_per_day.economy, None);
        assert_eq!(plan.totals.economy, None);
    }
}
