//! An operator's first ten minutes, against the real binary: REST errors that name the field and what
//! was expected, `questions_total` and the note when the pool has fewer questions, a taken port named
//! in the error, logs without colour codes when redirected and as JSON lines on request, the start line
//! naming the data path and the config sources, `--json` commands that print only JSON with a quiet
//! stderr, `plan` on the keyless level, and `loadtest` progress when stderr is not a terminal.
//!
//! The README's run command from a fresh clone is in `tests/readme.rs`.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::{Command, Stdio};

use common::fake::FakeProvider;
use common::server::Engine;
use serde_json::{json, Value};

const CONFIG: &str = "[server]\nbind = \"127.0.0.1:0\"\n[storage]\npath = \"data\"\n";

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_interview-engine"));
    c.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", std::env::var("HOME").unwrap_or_default());
    c
}

/// The error of a create request: (status, code, field, message).
async fn create_error(engine: &Engine, body: &str) -> (u16, String, String, String) {
    let r = engine
        .post_raw(
            "/api/interviews",
            body.as_bytes().to_vec(),
            "application/json",
            None,
        )
        .await;
    let e = &r.json["error"];
    (
        r.status,
        e["code"].as_str().unwrap_or_default().to_string(),
        e["field"].as_str().unwrap_or_default().to_string(),
        e["message"].as_str().unwrap_or_default().to_string(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_errors_name_the_field_and_the_expected_value() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::start(dir.path(), CONFIG, &[]);
    let cases: &[(&str, &str, &str)] = &[
        (
            r#"{"candidate": {"id": "op-1", "name": "Ada"}, "questions": -3}"#,
            "questions",
            "questions: expected a whole number from 1 to 50, got -3",
        ),
        (
            r#"{"candidate": {"id": "op-1", "name": "Ada"}, "questions": "12"}"#,
            "questions",
            "questions: expected a whole number from 1 to 50, got the string \"12\"",
        ),
        (
            r#"{"candidate": {"id": "op-1", "name": "Ada"}, "track": "sales"}"#,
            "track",
            "track: unknown value \"sales\", expected one of technical, behavioral, mixed",
        ),
        ("[]", "body", "body: expected a JSON object, got an array"),
        (
            r#"{"candidate": {"id": "op-1"}}"#,
            "candidate.name",
            "candidate.name: missing; this field is required",
        ),
        (
            r#"{"candidate": {"id": "op-1", "name": ["A"]}}"#,
            "candidate.name",
            "candidate.name: expected the candidate's name, a string, got an array",
        ),
        (
            r#"{"candidate": {"id": "op-1", "name": "Ada"}, "questons": 5}"#,
            "questons",
            "questons: unknown field; the fields here are candidate, role, track, difficulty, questions, mode, resume_text, voice",
        ),
        (
            r#"{"candidate": {"id": "op-1", "name": "Ada"}, "questions": 51}"#,
            "questions",
            "questions: expected a whole number from 1 to 50, got 51",
        ),
        (
            r#"{"candidate": {"id": "op-1", "name": "Ada"}, "mode": "adaptve"}"#,
            "mode",
            "mode: expected one of economy, balanced, adaptive, auto, got \"adaptve\"",
        ),
        (
            r#"{"candidate": {"id": "op-1", "name": "Ada"}, "role": "  "}"#,
            "role",
            "role: expected 1 to 100 characters, got 0",
        ),
        (
            r#"{"candidate": {"id": "op-1", "name": "Ada"}, "difficulty": 3}"#,
            "difficulty",
            "difficulty: expected one of easy, medium, hard, got 3",
        ),
    ];
    for (body, field, message) in cases {
        let (status, code, f, m) = create_error(&engine, body).await;
        assert_eq!(
            (status, code.as_str()),
            (400, "invalid_json"),
            "{body}: {m}"
        );
        assert_eq!((f.as_str(), m.as_str()), (*field, *message), "{body}");
    }
    // Syntax errors give the position; a body sent as a form says how to send JSON.
    let (status, _, _, m) = create_error(&engine, r#"{"candidate": "#).await;
    assert_eq!(status, 400);
    assert!(m.contains("line 1 column"), "{m}");
    let r = engine
        .post_raw(
            "/api/interviews",
            br#"{"candidate": {"name": "Ada"}}"#.to_vec(),
            "application/x-www-form-urlencoded",
            None,
        )
        .await;
    assert_eq!(r.status, 400);
    assert!(
        r.json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Content-Type: application/json"),
        "{}",
        r.text
    );
    // The resume route uses the same extractor.
    let r = engine
        .post("/api/resume/analyze", &json!({"resume_text": 42}), None)
        .await;
    assert_eq!(r.json["error"]["field"], "resume_text", "{}", r.text);
    assert_eq!(
        r.json["error"]["message"],
        "resume_text: expected the resume as plain text, a string, got 42"
    );
    // Nothing was created by any of them.
    let h = engine.get("/api/candidates/op-1/history", None).await;
    assert_eq!(h.json["interviews"], json!([]), "{}", h.text);

    // 50 questions where the pool has fewer: the answer says how many and why.
    let r = engine
        .post(
            "/api/interviews",
            &json!({"candidate": {"id": "op-2", "name": "Bo"}, "role": "Backend Engineer",
                    "track": "technical", "questions": 50}),
            None,
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let total = r.json["questions_total"].as_u64().unwrap();
    assert!(total < 50, "{}", r.text);
    assert_eq!(r.json["questions_requested"], 50);
    let note = r.json["note"].as_str().unwrap();
    assert!(
        note.contains("50 questions were asked for") && note.contains(&format!("has {total}")),
        "{note}"
    );
    let state = engine
        .get(
            &format!(
                "/api/interviews/{}",
                r.json["interview_id"].as_str().unwrap()
            ),
            r.json["token"].as_str(),
        )
        .await;
    assert_eq!(
        state.json["questions_total"].as_u64(),
        Some(total),
        "the interview has what create said"
    );
    // Asking for what the pool has: no note.
    let r = engine
        .post(
            "/api/interviews",
            &json!({"candidate": {"name": "Cy"}, "questions": 3}),
            None,
        )
        .await;
    assert_eq!(
        (r.json["questions_total"].as_u64(), r.json.get("note")),
        (Some(3), None),
        "{}",
        r.text
    );
}

#[test]
fn a_taken_port_is_named_and_nothing_is_opened() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("c.toml"),
        format!("[server]\nbind = \"{addr}\"\n[storage]\npath = \"data\"\n"),
    )
    .unwrap();
    let out = bin()
        .args(["serve", "--config", "c.toml"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!("cannot listen on {addr}")) && err.contains("in use"),
        "{err}"
    );
    assert!(
        err.contains("IE_SERVER__BIND"),
        "says how to choose another: {err}"
    );
    assert!(
        !dir.path().join("data").exists(),
        "the port is checked before storage is opened"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_are_plain_when_redirected_and_json_on_request_and_the_start_line_says_where() {
    // Text: stderr is a file here, so no colour codes.
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::start(
        dir.path(),
        CONFIG,
        &[
            ("IE_INTERVIEW__QUESTIONS", "5".into()),
            ("IE_TEST_PYTHON", "/not/config".into()),
        ],
    );
    let _ = engine.get("/healthz", None).await;
    let log = engine.log();
    assert!(
        !log.contains('\u{1b}'),
        "no ANSI escape codes in a redirected log:\n{log}"
    );
    let start = log
        .lines()
        .find(|l| l.contains("serving on"))
        .unwrap_or_else(|| panic!("no start line:\n{log}"));
    let data = std::fs::canonicalize(dir.path()).unwrap().join("data");
    assert!(
        start.contains(&format!("data in {}", data.display())),
        "{start}"
    );
    let config = std::fs::canonicalize(dir.path())
        .unwrap()
        .join("config.toml");
    assert!(
        start.contains(&format!(
            "config: built-in defaults + file {} + environment IE_INTERVIEW__QUESTIONS",
            config.display()
        )),
        "names the layers, and only IE_<SECTION>__<FIELD> variables: {start}"
    );
    drop(engine);

    // JSON: one object per line, the start line among them.
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::start(
        dir.path(),
        "[server]\nbind = \"127.0.0.1:0\"\nlog_format = \"json\"\n[storage]\npath = \"data\"\n",
        &[],
    );
    let _ = engine.get("/healthz", None).await;
    let log = engine.log();
    let lines: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(lines.len() >= 2, "{log}");
    assert!(
        lines
            .iter()
            .all(|v| v["level"].is_string() && v["timestamp"].is_string()),
        "{log}"
    );
    assert!(
        lines.iter().any(|v| v["message"]
            .as_str()
            .is_some_and(|m| m.contains("serving on"))),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_commands_print_only_json_and_plan_says_keyless_is_unlimited() {
    let fake = FakeProvider::start().await;
    fake.add_interviewer_key("ck-key-SECRETVALUE").await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("c.toml"),
        format!(
            "[providers.fakeai]\nformat = \"openai\"\nbase_url = \"{}/v1\"\nmodel = \"m\"\nkeys_env = \"FAKEAI_API_KEYS\"\n",
            fake.base
        ),
    )
    .unwrap();
    // check-keys --json: stdout is one JSON document, stderr is empty (no INFO lines).
    let out = bin()
        .args(["check-keys", "--config", "c.toml", "--json"])
        .env("FAKEAI_API_KEYS", "ck-key-SECRETVALUE")
        .current_dir(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}{stderr}");
    let checks: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    assert_eq!(checks[0]["key"], "fakeai#1");
    assert_eq!(checks[0]["result"], "ok");
    assert_eq!(stderr, "", "nothing but warnings on stderr");
    assert!(!stdout.contains("SECRETVALUE"));

    // plan --json without keys: the heuristic level is unlimited; stderr quiet.
    let out = bin()
        .args(["plan", "--json"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
    let plan: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(plan["heuristic"]["interviews_per_day"], Value::Null);
    assert_eq!(plan["heuristic"]["provider_calls_per_interview"], 0);
    assert_eq!(
        plan["totals"]["balanced"], 0,
        "no keys: no balanced interviews"
    );
    // And in words.
    let out = bin()
        .args(["plan"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("heuristic interviews/day: unlimited"),
        "{text}"
    );
    assert!(
        text.contains("every interview runs at the heuristic level"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loadtest_prints_progress_lines_when_not_on_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::start(dir.path(), CONFIG, &[]);
    // Two interviews of two answers with 1.5 s of thinking before each answer: over 3 s in all, so
    // a progress line every second must appear at least once.
    let out = tokio::task::spawn_blocking({
        let base = engine.base.clone();
        move || {
            bin()
                .args([
                    "loadtest",
                    "--url",
                    &base,
                    "--interviews",
                    "2",
                    "--concurrency",
                    "1",
                    "--answers-per-interview",
                    "2",
                    "--think-ms",
                    "1500",
                    "--progress-every",
                    "1",
                    "--json",
                ])
                .stdin(Stdio::null())
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let report: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    assert_eq!(report["completed"], 2);
    assert!(
        stderr.starts_with("loadtest: 2 interviews against "),
        "a first line says what runs: {stderr}"
    );
    assert!(
        stderr
            .lines()
            .any(|l| l.starts_with("loadtest: ") && l.contains("/2 interviews finished")),
        "progress lines: {stderr}"
    );
    assert!(
        !stderr.contains('\u{1b}'),
        "no bar drawing off a terminal: {stderr}"
    );
}
