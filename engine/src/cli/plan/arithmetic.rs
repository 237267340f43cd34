//! The capacity plan's arithmetic over plain inputs: per-interview costs (defaults), daily budgets
//! per provider from its limits and free-tier windows, interviews per day per mode, and the inputs
//! read from the config and the environment. No I/O: the fetch and the printing are beside it.

use actors::budget::{default_cost, Level};
use serde::Serialize;

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
pub(super) const MODES: [(&str, Level); 3] = [
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
pub(super) fn round_up(x: f64) -> u64 {
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

    /// How a basis reads in the output: `default`, or `measured from <url>`.
    pub(super) fn describe(&self, basis: &str) -> String {
        match (&self.measured_from, basis) {
            (Some(url), MEASURED) => format!("measured from {url}"),
            _ => basis.to_string(),
        }
    }
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

    pub(super) fn values(&self) -> [Option<u64>; 3] {
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

    pub(super) fn values(&self) -> [&str; 3] {
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

/// Counts the keys in a provider's variable the way [`crate::server::key_configs`] splits them.
pub(super) fn count_keys(value: Option<String>) -> u64 {
    value
        .unwrap_or_default()
        .split(',')
        .filter(|k| !k.trim().is_empty())
        .count() as u64
}

/// The plan for `config` at `costs` (see [`costs`](super::costs)), with key counts read through `env`.
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
