//! `interview-engine plan`: the real binary, a small config, figures checked by hand.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::process::{Command, Output};

use serde_json::Value;

const CONFIG: &str = r#"
[server]
bind = "127.0.0.1:0"
[storage]
path = "data"

[providers.alpha]
format = "openai"
base_url = "http://127.0.0.1:9/v1"
model = "m"
keys_env = "ALPHA_KEYS"
limits = { rpm = 30, rpd = 1000, tpm = 6000, tpd = 200000 }
quota_scope = "key"

[providers.beta]
format = "openai"
base_url = "http://127.0.0.1:9/v1"
model = "m"
keys_env = "BETA_KEYS"
limits = { rpm = 10 }
quota_scope = "shared"

[[gpu_nodes]]
name = "local-1"
url = "http://127.0.0.1:9"
max_concurrency = 4
"#;

fn run(json: bool) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plan.toml");
    std::fs::write(&path, CONFIG).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_interview-engine"));
    cmd.args(["plan", "--config"]).arg(&path);
    if json {
        cmd.arg("--json");
    }
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("ALPHA_KEYS", "alpha-SECRETVALUE-1,alpha-SECRETVALUE-2")
        .env(
            "BETA_KEYS",
            "beta-SECRETVALUE-1,beta-SECRETVALUE-2,beta-SECRETVALUE-3",
        )
        .output()
        .unwrap()
}

fn modes(v: &Value) -> [Value; 3] {
    [
        v["economy"].clone(),
        v["balanced"].clone(),
        v["adaptive"].clone(),
    ]
}

#[test]
fn plan_json_figures_match_the_hand_arithmetic() {
    let out = run(true);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(!stdout.contains("SECRETVALUE") && !stderr.contains("SECRETVALUE"));
    let v: Value = serde_json::from_str(&stdout).unwrap();
    let provider = |name: &str| {
        v["providers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("no provider {name}"))
            .clone()
    };

    // alpha: key scope, 2 keys. requests 1000 × 2 = 2000; tokens 200000 × 2 = 400000.
    // economy  min(2000/2 = 1000, 400000/6000 = 66)  = 66
    // balanced min(2000/14 = 142, 400000/20000 = 20) = 20
    // adaptive min(2000/26 = 76, 400000/36000 = 11)  = 11
    let alpha = provider("alpha");
    assert_eq!(alpha["keys"], 2);
    assert_eq!(alpha["quota_scope"], "key");
    assert_eq!(alpha["daily_requests"], 2000);
    assert_eq!(alpha["daily_tokens"], 400_000);
    assert_eq!(
        modes(&alpha["interviews_per_day"]),
        [66, 20, 11].map(Value::from)
    );

    // beta: shared scope, 3 keys, only rpm = 10. requests 10 × 1440 = 14400 (not × 3);
    // tokens unlimited (null). economy 14400/2 = 7200, balanced 14400/14 = 1028,
    // adaptive 14400/26 = 553.
    let beta = provider("beta");
    assert_eq!(beta["keys"], 3);
    assert_eq!(beta["quota_scope"], "shared");
    assert_eq!(beta["daily_requests"], 14_400);
    assert_eq!(beta["requests_basis"], "rpm");
    assert!(beta["daily_tokens"].is_null());
    assert_eq!(
        modes(&beta["interviews_per_day"]),
        [7200, 1028, 553].map(Value::from)
    );

    // The catalogue's providers have no keys here: listed, carrying nothing.
    let groq = provider("groq");
    assert_eq!(groq["keys"], 0);
    assert_eq!(groq["requests_basis"], "no keys");
    assert_eq!(
        modes(&groq["interviews_per_day"]),
        [0, 0, 0].map(Value::from)
    );

    // GPU node: 4 × 86400 / 2.0 = 172800 calls/day.
    // economy 172800/2 = 86400, balanced 172800/14 = 12342, adaptive 172800/26 = 6646.
    let nodes = v["gpu_nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 1);
    assert_eq!(nodes[0]["name"], "local-1");
    assert_eq!(nodes[0]["max_concurrency"], 4);
    assert_eq!(nodes[0]["calls_per_day"], 172_800);
    assert_eq!(
        modes(&nodes[0]["interviews_per_day"]),
        [86_400, 12_342, 6_646].map(Value::from)
    );

    // Totals: economy 66 + 7200 + 86400 = 93666; balanced 20 + 1028 + 12342 = 13390;
    // adaptive 11 + 553 + 6646 = 7210.
    assert_eq!(
        modes(&v["totals"]),
        [93_666, 13_390, 7_210].map(Value::from)
    );

    let a = &v["assumptions"];
    assert_eq!(
        modes(&a["calls_per_interview"]),
        [2, 14, 26].map(Value::from)
    );
    assert_eq!(
        modes(&a["tokens_per_interview"]),
        [6000, 20_000, 36_000].map(Value::from)
    );
    assert_eq!(a["gpu_call_seconds"], 2.0);
}

#[test]
fn plan_text_names_the_providers() {
    let out = run(false);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for name in ["alpha", "beta", "local-1", "groq"] {
        assert!(stdout.contains(name), "{name} missing:\n{stdout}");
    }
    assert!(stdout.contains("from rpm"), "{stdout}");
    assert!(stdout.contains("93666"), "{stdout}");
    assert!(!stdout.contains("SECRETVALUE"));
}
