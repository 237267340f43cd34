//! `interview-engine plan`: the arithmetic with explicit costs, the default costs, and the real
//! binary (a small config, figures checked by hand; measured costs from a canned stats server).
#![allow(clippy::unwrap_used, clippy::panic)]

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::{Command, Output};
use std::sync::mpsc;

use actors::budget::{default_cost, Level};
use interview_engine::cli::plan::{plan, Costs, ModeCost, NodeInput, PerMode, ProviderInput};
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

/// Runs `plan --config <CONFIG> <args>` with the test keys and `env` set.
fn run_with(args: &[&str], env: &[(&str, &str)]) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plan.toml");
    std::fs::write(&path, CONFIG).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_interview-engine"));
    cmd.args(["plan", "--config"]).arg(&path).args(args);
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("ALPHA_KEYS", "alpha-SECRETVALUE-1,alpha-SECRETVALUE-2")
        .env(
            "BETA_KEYS",
            "beta-SECRETVALUE-1,beta-SECRETVALUE-2,beta-SECRETVALUE-3",
        )
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

fn run(json: bool) -> Output {
    run_with(if json { &["--json"] } else { &[] }, &[])
}

/// A one-request HTTP server answering `status` with `body`: its URL, and the request head it got.
fn canned_server(status: &str, body: &str) -> (String, mpsc::Receiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let response = format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let mut head = Vec::new();
        let mut buf = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = conn.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            head.extend_from_slice(&buf[..n]);
        }
        conn.write_all(response.as_bytes()).unwrap();
        tx.send(String::from_utf8_lossy(&head).into_owned())
            .unwrap();
    });
    (url, rx)
}

/// `/api/optimization_stats` as the server sends it: economy measured (10 completed, 17 calls),
/// nothing completed in balanced and adaptive.
const STATS: &str = r#"{
  "requests_by_source": {"llm": 27, "dedup": 0},
  "modes": [
    {"mode": "economy", "completed_interviews": 10, "provider_calls": 17,
     "provider_calls_per_completed_interview": 1.7},
    {"mode": "balanced", "completed_interviews": 0, "provider_calls": 0,
     "provider_calls_per_completed_interview": null},
    {"mode": "adaptive", "completed_interviews": 0, "provider_calls": 4,
     "provider_calls_per_completed_interview": null},
    {"mode": "auto", "completed_interviews": 3, "provider_calls": 60,
     "provider_calls_per_completed_interview": 20.0}
  ]
}"#;

/// Every mode measured, at figures that round up to 2/14/26 calls and 6000/20000/36000 tokens
/// per interview (the figures the hand arithmetic below is worked out for).
const STATS_ALL: &str = r#"{
  "modes": [
    {"mode": "economy", "completed_interviews": 10, "provider_calls": 17,
     "provider_calls_per_completed_interview": 1.7,
     "provider_tokens_per_completed_interview": 5999.5},
    {"mode": "balanced", "completed_interviews": 10, "provider_calls": 132,
     "provider_calls_per_completed_interview": 13.2,
     "provider_tokens_per_completed_interview": 19999.1},
    {"mode": "adaptive", "completed_interviews": 2, "provider_calls": 51,
     "provider_calls_per_completed_interview": 25.5,
     "provider_tokens_per_completed_interview": 36000}
  ]
}"#;

fn modes(v: &Value) -> [Value; 3] {
    [
        v["economy"].clone(),
        v["balanced"].clone(),
        v["adaptive"].clone(),
    ]
}

/// The providers and node of `CONFIG`, as the arithmetic takes them.
fn inputs() -> (Vec<ProviderInput>, Vec<NodeInput>) {
    let alpha = ProviderInput {
        name: "alpha".into(),
        keys: 2,
        shared: false,
        rpm: Some(30),
        rpd: Some(1000),
        tpm: Some(6000),
        tpd: Some(200_000),
        disabled: false,
        more: Default::default(),
    };
    let beta = ProviderInput {
        name: "beta".into(),
        keys: 3,
        shared: true,
        rpm: Some(10),
        rpd: None,
        tpm: None,
        tpd: None,
        disabled: false,
        more: Default::default(),
    };
    let node = NodeInput {
        name: "local-1".into(),
        max_concurrency: 4,
    };
    (vec![alpha, beta], vec![node])
}

fn per_mode(e: u64, b: u64, a: u64) -> PerMode {
    PerMode {
        economy: Some(e),
        balanced: Some(b),
        adaptive: Some(a),
    }
}

#[test]
fn plan_arithmetic_with_explicit_costs_matches_the_hand_arithmetic() {
    let cost = |mode, calls, tokens| ModeCost {
        mode,
        calls,
        tokens,
        basis: "measured",
        tokens_basis: "default",
    };
    let costs = Costs {
        modes: [
            cost("economy", 2, 6_000),
            cost("balanced", 14, 20_000),
            cost("adaptive", 26, 36_000),
        ],
        questions: 12,
        measured_from: Some("http://stats".into()),
    };
    let (providers, nodes) = inputs();
    let p = plan(&providers, &nodes, &costs);

    // alpha: key scope, 2 keys. requests 1000 × 2 = 2000; tokens 200000 × 2 = 400000.
    // economy  min(2000/2 = 1000, 400000/6000 = 66)  = 66
    // balanced min(2000/14 = 142, 400000/20000 = 20) = 20
    // adaptive min(2000/26 = 76, 400000/36000 = 11)  = 11
    assert_eq!(p.providers[0].daily_requests, Some(2000));
    assert_eq!(p.providers[0].daily_tokens, Some(400_000));
    assert_eq!(p.providers[0].interviews_per_day, per_mode(66, 20, 11));
    // beta: shared scope, only rpm = 10: 10 × 1440 = 14400 (not × 3), tokens unlimited.
    // 14400/2 = 7200, 14400/14 = 1028, 14400/26 = 553.
    assert_eq!(p.providers[1].daily_requests, Some(14_400));
    assert_eq!(p.providers[1].daily_tokens, None);
    assert_eq!(p.providers[1].interviews_per_day, per_mode(7200, 1028, 553));
    // GPU node: 4 × 86400 / 2.0 = 172800 calls/day; /2 = 86400, /14 = 12342, /26 = 6646.
    assert_eq!(p.gpu_nodes[0].calls_per_day, 172_800);
    assert_eq!(
        p.gpu_nodes[0].interviews_per_day,
        per_mode(86_400, 12_342, 6_646)
    );
    // 66 + 7200 + 86400 = 93666; 20 + 1028 + 12342 = 13390; 11 + 553 + 6646 = 7210.
    assert_eq!(p.totals, per_mode(93_666, 13_390, 7_210));

    let a = &p.assumptions;
    assert_eq!(a.calls_per_interview, per_mode(2, 14, 26));
    assert_eq!(a.tokens_per_interview, per_mode(6_000, 20_000, 36_000));
    assert_eq!(a.calls_basis.balanced, "measured from http://stats");
    assert_eq!(a.tokens_basis.balanced, "default");
}

#[test]
fn default_costs_for_12_questions_are_the_budget_figures_rounded_up() {
    let costs = Costs::defaults(12);
    for (cost, level) in costs
        .modes
        .iter()
        .zip([Level::Economy, Level::Balanced, Level::Adaptive])
    {
        let c = default_cost(level);
        assert_eq!(cost.calls, c.calls(12.0).ceil() as u64, "{}", cost.mode);
        assert_eq!(cost.tokens, c.tokens(12.0).ceil() as u64, "{}", cost.mode);
        assert_eq!((cost.basis, cost.tokens_basis), ("default", "default"));
    }
    // By hand, from actors::budget::DEFAULT_COSTS as of writing: economy 2 calls; balanced
    // 1 + 12 = 13; adaptive 3 + 5/3 × 12 = 23.
    assert_eq!(costs.modes.map(|m| m.calls), [2, 13, 23]);
    // tokens: 900 + 250 × 12 = 3900; 500 + 550 × 12 = 7100; 1200 + 700 × 12 = 9600.
    assert_eq!(costs.modes.map(|m| m.tokens), [3_900, 7_100, 9_600]);
    assert_eq!(costs.measured_from, None);
}

#[test]
fn plan_json_figures_match_the_hand_arithmetic() {
    // Measured costs (see STATS_ALL) keep the figures independent of the default costs.
    let (url, _request) = canned_server("200 OK", STATS_ALL);
    let out = run_with(&["--json", "--stats-url", &url], &[]);
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

    // Measured: calls ceil(1.7, 13.2, 25.5) = 2/14/26, tokens 6000/20000/36000.
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
    let measured = format!("measured from {url}");
    assert_eq!(
        modes(&a["calls_basis"]),
        [measured.as_str(); 3].map(Value::from)
    );
    assert_eq!(
        modes(&a["tokens_basis"]),
        [measured.as_str(); 3].map(Value::from)
    );
    assert_eq!(a["gpu_call_seconds"], 2.0);
}

#[test]
fn plan_without_stats_url_uses_the_default_costs() {
    let out = run(true);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let a = &v["assumptions"];
    // The config leaves [interview] questions at 12.
    let d = Costs::defaults(12);
    assert_eq!(a["questions_per_interview"], 12);
    assert_eq!(
        modes(&a["calls_per_interview"]),
        d.modes.map(|m| Value::from(m.calls))
    );
    assert_eq!(
        modes(&a["tokens_per_interview"]),
        d.modes.map(|m| Value::from(m.tokens))
    );
    assert_eq!(modes(&a["calls_basis"]), ["default"; 3].map(Value::from));
    assert_eq!(modes(&a["tokens_basis"]), ["default"; 3].map(Value::from));
    assert!(a["stats_url"].is_null());
    // economy at alpha: min(2000 / calls, 400000 / tokens), the same arithmetic as above.
    let e = d.modes[0];
    let alpha = v["providers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "alpha")
        .unwrap();
    assert_eq!(
        alpha["interviews_per_day"]["economy"],
        (2000 / e.calls).min(400_000 / e.tokens)
    );
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
    assert!(stdout.contains("calls (default)"), "{stdout}");
    assert!(!stdout.contains("SECRETVALUE"));
}

#[test]
fn plan_stats_url_uses_measured_calls_per_interview() {
    let (url, request) = canned_server("200 OK", STATS);
    let out = run_with(
        &["--json", "--stats-url", &url, "--admin-token", "tok-123"],
        &[],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let head = request.recv().unwrap();
    assert!(head.starts_with("GET /api/optimization_stats "), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("authorization: bearer tok-123"),
        "{head}"
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let a = &v["assumptions"];
    // economy: 17 calls / 10 interviews = 1.7 → 2, measured; the others keep the defaults.
    let d = Costs::defaults(12).modes;
    assert_eq!(
        modes(&a["calls_per_interview"]),
        [2, d[1].calls, d[2].calls].map(Value::from)
    );
    let measured = format!("measured from {url}");
    assert_eq!(
        modes(&a["calls_basis"]),
        [measured.as_str(), "default", "default"].map(Value::from)
    );
    // The stats have no tokens per interview: tokens stay the defaults.
    assert_eq!(modes(&a["tokens_basis"]), ["default"; 3].map(Value::from));
    assert_eq!(a["stats_url"], url.as_str());

    // The text says so too, and the token comes from IE_SERVER__ADMIN_TOKEN without --admin-token.
    let (url, request) = canned_server("200 OK", STATS);
    let out = run_with(
        &["--stats-url", &url],
        &[("IE_SERVER__ADMIN_TOKEN", "env-tok")],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!("2 calls (measured from {url})")),
        "{stdout}"
    );
    assert!(request
        .recv()
        .unwrap()
        .to_ascii_lowercase()
        .contains("authorization: bearer env-tok"));
}

#[test]
fn plan_stats_url_that_fails_exits_non_zero_naming_the_url() {
    // Nothing listens on a port just freed.
    let url = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let out = run_with(&["--json", "--stats-url", &url], &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{stderr}");
    assert!(
        out.stdout.is_empty(),
        "no plan without the measured figures"
    );
    assert!(
        stderr.contains(&format!("{url}/api/optimization_stats")),
        "{stderr}"
    );

    // A server that refuses the token is an error too, with a hint.
    let (url, _request) = canned_server("401 Unauthorized", r#"{"error":{"code":"unauthorized"}}"#);
    let out = run_with(&["--stats-url", &url], &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains(&url) && stderr.contains("--admin-token"),
        "{stderr}"
    );
}
