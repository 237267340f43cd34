//! Agreement of graders with the labelled answers (`tests/data/labelled_answers.toml`) and the
//! rubric scorer's speed. Targets (issue 11): Spearman ≥ 0.75 with the labels, keyword lists at
//! most 3/10, strong paraphrases at least 6/10, for the rubric scorer; the same figures are printed
//! for the provider-graded path: the engine's evaluation prompt (`prompts::evaluation_request`)
//! sent over HTTP in OpenAI's format to the fake provider's interviewer persona, and its answer read
//! by the engine's parser (`prompts::parse_evaluation`).
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

// Run: `cargo bench --bench scoring`. Knobs (environment):
// SCORING_BENCH_LLAMA=1 also grades through llama.cpp's llama-server with the GGUF that
//   `.ci/install-llama-server` installs (SmolLM2-135M-Instruct), one answer at a time; slow.
//   SCORING_BENCH_LLAMA_BIN and SCORING_BENCH_LLAMA_MODEL name another binary and GGUF;
//   SCORING_BENCH_LLAMA_HELD_OUT=1 grades the held-out answers only.
// SCORING_BENCH_ROUNDS (default 20): passes over the set for the rubric scorer's timing.
// SCORING_BENCH_EMBEDDINGS_URL (e.g. http://127.0.0.1:18310/v1): also grade with the semantic signal
//   of that OpenAI-compatible embeddings server; its two thresholds are chosen on the tuned part
//   only (best Spearman with keyword lists at most 3), then reported on both parts.
// The figures go to stdout and, as JSON, to target/bench-scoring.json.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use actors::content::grading;
use actors::content::prompts;
use actors::content::question_pool::QuestionPool;
use actors::content::scoring::agreement::{self, Figures, Labelled};
use actors::providers::openai;
use serde_json::{json, Value};

const LABELLED: &str = include_str!("../tests/data/labelled_answers.toml");
/// Written after the scorer and the pool were frozen; never tuned on.
const FRESH: &str = include_str!("../tests/data/fresh_answers.toml");

struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn figures_of(graded: &[(Labelled, u8)], keep: impl Fn(&Labelled) -> bool) -> Figures {
    let refs: Vec<(&Labelled, u8)> = graded
        .iter()
        .filter(|(a, _)| keep(a))
        .map(|(a, s)| (a, *s))
        .collect();
    agreement::figures(&refs)
}

fn report(name: &str, graded: &[(Labelled, u8)]) -> Value {
    let all = figures_of(graded, |_| true);
    let tuned = figures_of(graded, |a| !a.held_out);
    let held = figures_of(graded, |a| a.held_out);
    println!("{name}\n  all:      {all}\n  tuned:    {tuned}\n  held out: {held}");
    let met = all.spearman >= 0.75 && all.keywords_max <= 3 && all.paraphrase_min >= 6;
    println!(
        "  targets (Spearman >= 0.75, keyword lists <= 3, paraphrases >= 6): {}",
        if met { "met" } else { "NOT met" }
    );
    let f = |x: &Figures| {
        json!({"n": x.n, "spearman": x.spearman, "band_agreement": x.band_agreement,
               "keywords_max": x.keywords_max, "keywords_over_3": x.keywords_over_3,
               "paraphrase_min": x.paraphrase_min, "paraphrases_under_6": x.paraphrases_under_6,
               "mean_by_kind": x.mean_by_kind})
    };
    json!({"all": f(&all), "tuned": f(&tuned), "held_out": f(&held), "targets_met": met})
}

/// Starts a server that prints `listening on URL` (the fake provider) and returns it with its URL.
fn spawn_fake() -> (Guard, String) {
    let bin = fake_provider::binary().expect("the fake-provider binary");
    let mut child = Command::new(bin)
        .args(["--bind", "127.0.0.1:0", "--persona", "interviewer"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn fake-provider");
    let stdout = child.stdout.take().unwrap();
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    let base = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap()
        .trim_end_matches('/')
        .to_string();
    (Guard(child), base)
}

/// Grades every answer through an OpenAI-compatible chat endpoint with the engine's prompt and parser.
async fn provider_path(
    pool: &QuestionPool,
    answers: &[Labelled],
    url: &str,
    key: &str,
    schema: bool,
) -> (Vec<(Labelled, u8)>, usize) {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(300))
        .build()
        .unwrap();
    let mut out = Vec::new();
    let mut unusable = 0;
    for (i, a) in answers.iter().enumerate() {
        if i > 0 && i % 20 == 0 {
            eprintln!("  graded {i} of {}", answers.len());
        }
        let q = pool.get(&a.question).unwrap();
        let t = grading::main_target(q);
        let rubric = t.rubric();
        let req = prompts::evaluation_request(&q.text, &rubric, &a.text, "Software Engineer");
        let mut body = openai::body(&req, Some("m"), false);
        if schema {
            if let Some(s) = &req.json_schema {
                body["response_format"] =
                    json!({"type": "json_schema", "json_schema": {"name": "answer", "schema": s}});
            }
        }
        let resp: Value = http
            .post(url)
            .bearer_auth(key)
            .json(&body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap_or(Value::Null);
        let text = resp["choices"][0]["message"]["content"]
            .as_str()
            .unwrap_or_default();
        // An unusable answer: the engine falls back to the rubric scorer; here it counts as 0.
        let score = match prompts::parse_evaluation(text, &rubric) {
            Some(ev) => ev.score,
            None => {
                unusable += 1;
                0
            }
        };
        out.push((a.clone(), score));
    }
    (out, unusable)
}

fn llama() -> Option<(PathBuf, PathBuf)> {
    if let (Ok(bin), Ok(model)) = (
        std::env::var("SCORING_BENCH_LLAMA_BIN"),
        std::env::var("SCORING_BENCH_LLAMA_MODEL"),
    ) {
        return Some((PathBuf::from(bin), PathBuf::from(model)));
    }
    let home = PathBuf::from(std::env::var("HOME").ok()?).join(".cache/interview-engine/llama/env");
    let env = std::fs::read_to_string(home).ok()?;
    let get = |k: &str| {
        env.lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .map(|v| PathBuf::from(v.trim_matches('\'')))
    };
    Some((get("LLAMA_SERVER_BIN")?, get("LLAMA_MODEL")?))
}

fn main() {
    let pool = QuestionPool::load_embedded().unwrap();
    let answers = agreement::load(LABELLED).unwrap();
    let rounds: usize = std::env::var("SCORING_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);

    // The rubric scorer: figures, then speed.
    let targets: Vec<grading::Target> = answers
        .iter()
        .map(|a| grading::main_target(pool.get(&a.question).unwrap()))
        .collect();
    let graded: Vec<(Labelled, u8)> = answers
        .iter()
        .zip(&targets)
        .map(|(a, t)| (a.clone(), t.grade(&a.text).score))
        .collect();
    let rubric = report("rubric scorer", &graded);
    let fresh_answers = agreement::load(FRESH).unwrap();
    let fresh_targets: Vec<grading::Target> = fresh_answers
        .iter()
        .map(|a| grading::main_target(pool.get(&a.question).unwrap()))
        .collect();
    let fresh_graded: Vec<(Labelled, u8)> = fresh_answers
        .iter()
        .zip(&fresh_targets)
        .map(|(a, t)| (a.clone(), t.grade(&a.text).score))
        .collect();
    let fresh = figures_of(&fresh_graded, |_| true);
    println!("  fresh answers (written after freezing, other questions): {fresh}");
    let mut per = hdrhistogram::Histogram::<u64>::new(3).unwrap();
    let t0 = Instant::now();
    for _ in 0..rounds {
        for (a, t) in answers.iter().zip(&targets) {
            let s = Instant::now();
            std::hint::black_box(t.grade(&a.text));
            per.record(s.elapsed().as_micros() as u64).unwrap();
        }
    }
    let total = t0.elapsed();
    let n = (rounds * answers.len()) as f64;
    println!(
        "  speed: {:.0} answers/s on one core; per answer p50 {} us, p99 {} us, max {} us ({} answers x {rounds} rounds)",
        n / total.as_secs_f64(),
        per.value_at_quantile(0.5),
        per.value_at_quantile(0.99),
        per.max(),
        answers.len()
    );

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // The provider-graded path on the fake interviewer persona.
    let (fake, base) = spawn_fake();
    rt.block_on(async {
        let r = reqwest::Client::new()
            .post(format!("{base}/_fake/keys"))
            .json(&json!({"key": "bench-key", "limits": {}, "latency_ms": 0}))
            .send()
            .await
            .unwrap();
        assert!(
            r.status().is_success(),
            "register the bench key: {}",
            r.status()
        );
    });
    let (persona_graded, unusable) = rt.block_on(provider_path(
        &pool,
        &answers,
        &format!("{base}/v1/chat/completions"),
        "bench-key",
        false,
    ));
    drop(fake);
    let persona = report(
        &format!("provider path, fake interviewer persona ({unusable} unusable answers)"),
        &persona_graded,
    );

    let mut llama_json = Value::Null;
    if std::env::var("SCORING_BENCH_LLAMA").is_ok_and(|v| v == "1") {
        match llama().filter(|(bin, model)| bin.exists() && model.exists()) {
            Some((bin, model)) => {
                let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
                let child = Command::new(bin)
                    .args(["-m"]).arg(model)
                    .args(["--host", "127.0.0.1", "--port", &port.to_string(), "-c", "4096", "-t", "2", "--log-disable"])
                    .stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("llama-server");
                let _g = Guard(child);
                let url = format!("http://127.0.0.1:{port}");
                rt.block_on(async {
                    let http = reqwest::Client::new();
                    let deadline = Instant::now() + Duration::from_secs(120);
                    while http.get(format!("{url}/health")).send().await.map(|r| !r.status().is_success()).unwrap_or(true) {
                        assert!(Instant::now() < deadline, "llama-server did not start");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                });
                let t = Instant::now();
                // SCORING_BENCH_LLAMA_HELD_OUT=1: the held-out answers only (60 instead of 252).
                let subset: Vec<Labelled> = if std::env::var("SCORING_BENCH_LLAMA_HELD_OUT").is_ok_and(|v| v == "1") {
                    answers.iter().filter(|a| a.held_out).cloned().collect()
                } else {
                    answers.clone()
                };
                let (g, unusable) = rt.block_on(provider_path(&pool, &subset, &format!("{url}/v1/chat/completions"), "none", true));
                llama_json = report(&format!("provider path, llama-server SmolLM2-135M ({unusable} unusable, {:.0} s)", t.elapsed().as_secs_f64()), &g);
            }
            None => println!("SCORING_BENCH_LLAMA=1 but llama-server is not installed (.ci/install-llama-server)"),
        }
    }
    let mut semantic_json = Value::Null;
    if let Ok(url) = std::env::var("SCORING_BENCH_EMBEDDINGS_URL") {
        let e = actors::embedder::Embedder::new(actors::embedder::EmbedderConfig {
            url: url.clone(),
            model: "default".into(),
            key: None,
            stated_at: 1.0,
            touched_at: 1.0,
            timeout: Duration::from_secs(60),
        });
        let t = Instant::now();
        let sems: Vec<actors::content::scoring::Semantic> = rt.block_on(async {
            let mut out = Vec::new();
            for (a, target) in answers.iter().zip(&targets) {
                let sentences = actors::content::scoring::prose_sentences(&a.text);
                let s = if sentences.is_empty() {
                    actors::content::scoring::Semantic {
                        sims: vec![Vec::new(); target.points.len()],
                        stated_at: 1.0,
                        touched_at: 1.0,
                    }
                } else {
                    e.semantic(&target.points, &sentences)
                        .await
                        .expect("embeddings")
                };
                out.push(s);
            }
            out
        });
        let embed_s = t.elapsed().as_secs_f64();
        let grade_at = |stated: f32, touched: f32| -> Vec<(Labelled, u8)> {
            answers
                .iter()
                .zip(&targets)
                .zip(&sems)
                .map(|((a, t), s)| {
                    let mut s = s.clone();
                    s.stated_at = stated;
                    s.touched_at = touched;
                    (a.clone(), t.grade_with(&a.text, Some(&s)).score)
                })
                .collect()
        };
        let fresh_sems: Vec<actors::content::scoring::Semantic> = rt.block_on(async {
            let mut out = Vec::new();
            for (a, target) in fresh_answers.iter().zip(&fresh_targets) {
                let sentences = actors::content::scoring::prose_sentences(&a.text);
                out.push(if sentences.is_empty() {
                    actors::content::scoring::Semantic {
                        sims: vec![Vec::new(); target.points.len()],
                        stated_at: 1.0,
                        touched_at: 1.0,
                    }
                } else {
                    e.semantic(&target.points, &sentences)
                        .await
                        .expect("embeddings")
                });
            }
            out
        });
        let mut best: Option<(f64, f32, f32)> = None;
        for stated in (80..=97).map(|x| x as f32 / 100.0) {
            for gap in [0.02f32, 0.04, 0.06] {
                let g = grade_at(stated, stated - gap);
                let f = figures_of(&g, |a| !a.held_out);
                if f.keywords_max <= 3 && best.is_none_or(|(b, _, _)| f.spearman > b) {
                    best = Some((f.spearman, stated, stated - gap));
                }
            }
        }
        if let Some((_, stated, touched)) = best {
            let g = grade_at(stated, touched);
            semantic_json = report(
                &format!("rubric scorer + embeddings from {url} (stated_at {stated:.2}, touched_at {touched:.2}, chosen on the tuned part; {:.1} s to embed)", embed_s),
                &g,
            );
            let fg: Vec<(Labelled, u8)> = fresh_answers
                .iter()
                .zip(&fresh_targets)
                .zip(&fresh_sems)
                .map(|((a, t), s)| {
                    let mut s = s.clone();
                    s.stated_at = stated;
                    s.touched_at = touched;
                    (a.clone(), t.grade_with(&a.text, Some(&s)).score)
                })
                .collect();
            println!(
                "  fresh answers with embeddings: {}",
                figures_of(&fg, |_| true)
            );
            semantic_json["stated_at"] = json!(stated);
            semantic_json["touched_at"] = json!(touched);
        }
    }
    let out = json!({"rubric_scorer": rubric, "rubric_fresh": {"n": fresh.n, "spearman": fresh.spearman,
                        "keywords_max": fresh.keywords_max, "paraphrase_min": fresh.paraphrase_min,
                        "paraphrases_under_6": fresh.paraphrases_under_6}, "rubric_speed_answers_per_s": n / total.as_secs_f64(),
                     "provider_fake_persona": persona, "provider_llama_smollm2": llama_json,
                     "rubric_with_embeddings": semantic_json});
    let _ = std::fs::create_dir_all("target");
    let _ = std::fs::write(
        "target/bench-scoring.json",
        serde_json::to_string_pretty(&out).unwrap(),
    );
}
