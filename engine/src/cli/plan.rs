//! `interview-engine plan`: the capacity plan. How many interviews per day the configured keys
//! and GPU nodes can carry in each mode, from the configured limits alone (no request is sent).
//!
//! The arithmetic, per provider with `N` keys (read from its `keys_env` variable; key values are
//! only counted, never printed):
//!
//! * daily requests = `rpd × N` (`quota_scope = "key"`) or `rpd` (`"shared"`); without `rpd`,
//!   `rpm × 1440` (× N for key scope), marked "from rpm"; without either, unlimited.
//! * daily tokens likewise from `tpd`, else `tpm × 1440`, else unlimited.
//! * a provider with no keys (or `enabled = false`) carries nothing.
//! * interviews/day in a mode = `floor(min(daily_requests / calls, daily_tokens / tokens))`,
//!   with the calls and tokens per interview from [`MODE_COSTS`]; an unlimited dimension is
//!   ignored, and both unlimited gives "unlimited" (`null` in JSON).
//! * a GPU node makes `max_concurrency × 86400 / ASSUMED_GPU_CALL_S` calls a day and carries
//!   `floor(calls/day / calls per interview)` interviews (GPU nodes have no token quota).
//! * totals per mode = the sum over providers and nodes (unlimited if any part is).
//!
//! [`plan`] does the arithmetic over plain inputs; [`from_config`] gathers them from the config
//! and the environment.

use serde::Serialize;

use crate::config::{Config, QuotaScope};

/// Calls and tokens one interview costs in a mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModeCost {
    /// Mode name as in `[interview] mode`.
    pub mode: &'static str,
    /// Provider calls per interview.
    pub calls: u64,
    /// Tokens (prompt + completion) per interview.
    pub tokens: u64,
}

/// Per-interview cost of each mode, in the order economy, balanced, adaptive.
///
/// These are estimates until measured figures exist: issue 4 will feed the measured figures
/// from `/api/optimization_stats` in their place.
pub const MODE_COSTS: [ModeCost; 3] = [
    ModeCost {
        mode: "economy",
        calls: 2,
        tokens: 6_000,
    },
    ModeCost {
        mode: "balanced",
        calls: 14,
        tokens: 20_000,
    },
    ModeCost {
        mode: "adaptive",
        calls: 26,
        tokens: 36_000,
    },
];

/// Assumed duration of one call on a GPU node, seconds: a slot serves `86400 / 2.0` calls a day.
pub const ASSUMED_GPU_CALL_S: f64 = 2.0;

/// Minutes in a day: per-minute limits are scaled by this when there is no daily limit.
const MINUTES_PER_DAY: u64 = 1440;

/// One provider, as the arithmetic needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
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
    fn from_fn(mut f: impl FnMut(ModeCost) -> Option<u64>) -> PerMode {
        PerMode {
            economy: f(MODE_COSTS[0]),
            balanced: f(MODE_COSTS[1]),
            adaptive: f(MODE_COSTS[2]),
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
    /// Where `daily_requests` comes from: `rpd`, `rpm` (× 1440), `unlimited`, `no keys`, `disabled`.
    pub requests_basis: &'static str,
    /// Tokens per day over all keys; `null` is unlimited.
    pub daily_tokens: Option<u64>,
    /// Where `daily_tokens` comes from: `tpd`, `tpm` (× 1440), `unlimited`, `no keys`, `disabled`.
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
    /// Tokens per interview, per mode.
    pub tokens_per_interview: PerMode,
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
}

const NOTES: [&str; 6] = [
    "daily requests = rpd x keys (quota_scope key) or rpd (shared); without rpd, rpm x 1440; without either, unlimited",
    "daily tokens = tpd x keys (key) or tpd (shared); without tpd, tpm x 1440; without either, unlimited",
    "a provider without keys carries nothing",
    "interviews/day = floor(min(daily requests / calls, daily tokens / tokens)); an unlimited dimension is ignored",
    "a GPU node makes max_concurrency x 86400 / gpu_call_seconds calls a day; interviews/day = floor(calls / calls per interview)",
    "calls and tokens per interview are estimates until measured figures exist",
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

/// Interviews per day a budget carries in one mode; `None` if both dimensions are unlimited.
pub fn interviews(
    daily_requests: Option<u64>,
    daily_tokens: Option<u64>,
    cost: ModeCost,
) -> Option<u64> {
    let by_requests = daily_requests.map(|r| r / cost.calls);
    let by_tokens = daily_tokens.map(|t| t / cost.tokens);
    match (by_requests, by_tokens) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The plan for these providers and nodes.
pub fn plan(providers: &[ProviderInput], nodes: &[NodeInput]) -> Plan {
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
                (r, rb, t, tb)
            };
            let interviews_per_day =
                PerMode::from_fn(|c| interviews(daily_requests, daily_tokens, c));
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
            let interviews_per_day = PerMode::from_fn(|c| Some(calls_per_day / c.calls));
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
            calls_per_interview: PerMode::from_fn(|c| Some(c.calls)),
            tokens_per_interview: PerMode::from_fn(|c| Some(c.tokens)),
            gpu_call_seconds: ASSUMED_GPU_CALL_S,
            notes: NOTES.to_vec(),
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

/// The plan for `config`, with key counts read through `env`.
pub fn from_config(config: &Config, env: &dyn Fn(&str) -> Option<String>) -> Plan {
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
    plan(&providers, &nodes)
}

fn show(v: Option<u64>) -> String {
    v.map_or_else(|| "unlimited".to_string(), |n| n.to_string())
}

fn show_budget(v: Option<u64>, basis: &str) -> String {
    match basis {
        "rpm" | "tpm" => format!("{} (from {basis})", show(v)),
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
    println!("\nAssumptions:");
    for c in MODE_COSTS {
        println!(
            "  {:<9} {:>3} calls, {:>6} tokens per interview",
            c.mode, c.calls, c.tokens
        );
    }
    println!("  one GPU call takes {ASSUMED_GPU_CALL_S} s");
    for n in &plan.assumptions.notes {
        println!("  {n}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let plan = plan(&[p], &[]);
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
        let plan = plan(&[p], &[]);
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
        let plan = plan(&[disabled, keyless], &[]);
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
    fn keys_are_counted_like_key_configs_splits_them() {
        assert_eq!(count_keys(Some(" a, b ,,c ".into())), 3);
        assert_eq!(count_keys(Some("".into())), 0);
        assert_eq!(count_keys(None), 0);
    }
}
