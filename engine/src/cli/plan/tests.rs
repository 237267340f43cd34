//! Tests of the capacity plan: the arithmetic against hand-worked figures, and reading measured costs.

use actors::budget::default_cost;

use super::arithmetic::{count_keys, round_up, MODES};
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
