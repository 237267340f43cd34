//! The free-tier windows beyond rpm/rpd/tpm/tpd: a daily cost-unit budget (Cloudflare's neurons) at a
//! model's input/output rates, monthly windows, and paid providers, in `plan`, in the call budget and
//! `/api/system_status`, and enforced against a fake provider that counts neurons itself.
#![allow(
    missing_docs,
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

mod common;

use common::fake::FakeProvider;
use common::server::{key_status, Engine};
use serde_json::{json, Value};

/// `interview-engine plan --json` on the built-in catalogue with one key for each of `providers`.
fn plan_json(env: &[(&str, &str)]) -> Value {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_interview-engine"))
        .args(["plan", "--json"])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().copied())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn provider<'a>(plan: &'a Value, name: &str) -> &'a Value {
    plan["providers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("{name} not in {plan}"))
}

#[test]
fn plan_counts_only_what_is_really_free() {
    let env = [
        ("CLOUDFLARE_API_KEYS", "cf-SECRETVALUE"),
        ("CLOUDFLARE_ACCOUNT_ID", "acct"),
        ("MISTRAL_API_KEYS", "mi-SECRETVALUE"),
        ("COHERE_API_KEYS", "co-SECRETVALUE"),
        ("DEEPSEEK_API_KEYS", "ds-SECRETVALUE"),
    ];
    let plan = plan_json(&env);
    // Cloudflare: 10,000 neurons a day bind, not its 300 requests a minute (216,000 economy
    // interviews a day from the rpm alone).
    let cf = provider(&plan, "cloudflare");
    assert_eq!(cf["tokens_basis"], "daily_units", "{cf}");
    let economy = cf["interviews_per_day"]["economy"].as_u64().unwrap();
    assert!((10..200).contains(&economy), "{cf}");
    // Mistral: the billion tokens a month, a thirtieth a day, are tighter than 500k a minute.
    let mi = provider(&plan, "mistral");
    assert_eq!(
        (mi["tokens_basis"].as_str(), mi["daily_tokens"].as_u64()),
        (Some("tokens_per_month"), Some(33_333_333)),
        "{mi}"
    );
    // Cohere trial keys: 1,000 calls a month.
    let co = provider(&plan, "cohere");
    assert_eq!(
        (co["requests_basis"].as_str(), co["daily_requests"].as_u64()),
        (Some("requests_per_month"), Some(33)),
        "{co}"
    );
    // DeepSeek has no free tier: nothing counted unless spending is allowed.
    let ds = provider(&plan, "deepseek");
    assert_eq!(ds["tokens_basis"], "paid", "{ds}");
    assert_eq!(ds["interviews_per_day"]["economy"], 0, "{ds}");
    let mut capped_env = env.to_vec();
    capped_env.push(("IE_PROVIDERS__DEEPSEEK__DAILY_SPEND_CAP", "1.5"));
    let capped = plan_json(&capped_env);
    let ds = provider(&capped, "deepseek");
    assert_eq!(ds["tokens_basis"], "daily_spend_cap", "{ds}");
    // $1.5 / ((0.75 × 0.28 + 0.25 × 0.42) / 1e6 per token) = 4,761,904 tokens.
    assert_eq!(ds["daily_tokens"], 4_761_904, "{ds}");
    assert!(ds["interviews_per_day"]["economy"].as_u64().unwrap() > 0);
    assert!(!plan.to_string().contains("SECRETVALUE"));
}

/// A Cloudflare-format provider with a 300-unit day at 100,000 units per million tokens (0.1 a
/// token), and a paid provider without a spend cap, against a fake that counts units the same way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daily_unit_budget_bounds_the_budget_and_the_status_and_is_never_overrun() {
    let fake = FakeProvider::start().await;
    fake.add_key(
        "cf-SECRETVALUE",
        json!({"daily_units": 300, "units_in": 100000.0, "units_out": 100000.0}),
    )
    .await;
    fake.add_key("paid-SECRETVALUE", json!({})).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = format!(
        "[server]\nbind = \"127.0.0.1:0\"\n[storage]\npath = \"data\"\n[pool]\ndeadline_ms = 3000\n\
         [providers.cf]\nformat = \"cloudflare\"\nbase_url = \"{base}/client/v4\"\nmodel = \"@cf/m\"\npriority = 1\n\
         keys_env = \"CF_API_KEYS\"\nlimits = {{ rpm = 1000, daily_units = 300 }}\nunit = \"neurons\"\n\
         unit_rates = {{ \"@cf/m\" = {{ input = 100000, output = 100000 }} }}\nquota_scope = \"shared\"\n\
         [providers.paidp]\nformat = \"openai\"\nbase_url = \"{base}/v1\"\nmodel = \"m\"\npriority = 5\n\
         keys_env = \"PAIDP_API_KEYS\"\nlimits = {{ rpd = 1000 }}\ncost = {{ input = 1.0, output = 2.0 }}\n",
        base = fake.base
    );
    let engine = Engine::start(
        dir.path(),
        &cfg,
        &[
            ("CF_API_KEYS", "cf-SECRETVALUE".into()),
            ("CLOUDFLARE_ACCOUNT_ID", "acct".into()),
            ("PAIDP_API_KEYS", "paid-SECRETVALUE".into()),
        ],
    );
    // Today: 300 units buy 3,000 tokens; the paid provider adds nothing.
    let st = engine.status().await;
    assert_eq!(st["totals"]["tokens_remaining_today"], 3000, "{st}");
    assert_eq!(st["budget"]["capacity"]["tokens"], 3000, "{st}");
    assert_eq!(key_status(&st, "paidp#1")["paid"], true);
    assert_eq!(key_status(&st, "paidp#1")["free_today"]["tokens"], 0);

    let mut served = 0;
    let mut refused = 0;
    for i in 0..150 {
        let body = json!({"model": "cf", "max_tokens": 64,
                          "messages": [{"role": "user", "content": format!("neurons please {i}")}]});
        let r = engine.post("/v1/chat/completions", &body, None).await;
        match r.status {
            200 => served += 1,
            429 => {
                assert_eq!(r.json["error"]["code"], "no_capacity", "{}", r.text);
                // The budget opens again at midnight UTC.
                let wait: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
                assert!(wait <= 86_400, "{wait}");
                refused += 1;
            }
            s => panic!("{s}: {}", r.text),
        }
    }
    assert!(
        served > 20 && refused > 0,
        "served {served}, refused {refused}"
    );
    let stats = fake.stats().await;
    let units = stats["cf-SECRETVALUE"]["units_served"].as_u64().unwrap();
    assert!(units <= 300, "{stats}");
    assert_eq!(
        stats["cf-SECRETVALUE"]["rate_limited_by_fake"], 0,
        "{stats}"
    );
    let st = engine.status().await;
    let cf = key_status(&st, "cf#1");
    assert_eq!(cf["windows"]["daily_units"]["used"], units, "{cf}");
    let left = st["totals"]["tokens_remaining_today"].as_u64().unwrap();
    assert_eq!(left, (300 - units) * 10, "{st}");
    assert_eq!(
        st["budget"]["capacity"]["tokens"], left,
        "the budget reads the same figure"
    );
    // The paid provider still serves when asked by name: it is not free, not forbidden.
    let r = engine.chat("paidp", "paid is fine").await;
    assert_eq!(r.status, 200, "{}", r.text);
    let st = engine.status().await;
    let spent = key_status(&st, "paidp#1");
    assert_eq!(spent["windows"]["rpd"]["used"], 1, "{spent}");
}

/// A model with limits of its own (Groq counts per model): its window fills while the provider's
/// default model, on the same key, still has room.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_with_its_own_limits_has_its_own_windows() {
    let fake = FakeProvider::start().await;
    fake.add_key("pm-SECRETVALUE", json!({})).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = format!(
        "[server]\nbind = \"127.0.0.1:0\"\n[storage]\npath = \"data\"\n[pool]\ndeadline_ms = 2000\n\
         [providers.pm]\nformat = \"openai\"\nbase_url = \"{}/v1\"\nmodel = \"small\"\nmodels = [\"big\"]\n\
         keys_env = \"PM_API_KEYS\"\nlimits = {{ rpm = 100 }}\nmodel_limits = {{ big = {{ rpm = 2 }} }}\n",
        fake.base
    );
    let engine = Engine::start(
        dir.path(),
        &cfg,
        &[("PM_API_KEYS", "pm-SECRETVALUE".into())],
    );
    for i in 0..2 {
        let r = engine.chat("big", &format!("big {i}")).await;
        assert_eq!(r.status, 200, "{}", r.text);
    }
    let r = engine.chat("big", "big again").await;
    assert_eq!(r.status, 429, "{}", r.text);
    let r = engine.chat("small", "the default model has room").await;
    assert_eq!(r.status, 200, "{}", r.text);
    let st = engine.status().await;
    let k = key_status(&st, "pm#1");
    assert_eq!(k["windows"]["rpm"]["used"], 1, "{k}");
    assert_eq!(k["models"][0]["model"], "big", "{k}");
    assert_eq!(k["models"][0]["windows"]["rpm"]["used"], 2, "{k}");
    let asked: Vec<String> = fake
        .requests("pm-SECRETVALUE")
        .await
        .iter()
        .map(|r| r["body"]["model"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(asked, ["big", "big", "small"]);
}
