//! The rubric scorer's optional semantic signal against an in-test fake of an OpenAI-compatible
//! embeddings server (`POST /v1/embeddings`, the API of llama.cpp's `llama-server --embeddings`):
//! the engine sends the answer's sentences and the rubric's points, and a point the lexical scorer
//! cannot see counts as stated when the server says a sentence means it. When the server fails, the
//! lexical scorer grades alone and the interview goes on.
//!
//! The fake embeds any rubric point as [1, 0] and a sentence as [1, 0] when it contains the word
//! "zebra", else [0, 1]: a stand-in for a model that finds the sentence's meaning close to every point.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use actix_web::{web, App, HttpResponse, HttpServer};
use actors::content::question_pool;
use actors::embedder::{Embedder, EmbedderConfig};
use common::server::Engine;
use common::ws::{create, Client};
use serde_json::{json, Value};

struct Fake {
    base: String,
    requests: Arc<AtomicUsize>,
    inputs: Arc<std::sync::Mutex<Vec<String>>>,
    _server: actix_web::dev::ServerHandle,
}

/// Starts the fake on a free loopback port; `fail` makes it answer 500.
async fn fake(fail: bool) -> Fake {
    let requests = Arc::new(AtomicUsize::new(0));
    let inputs = Arc::new(std::sync::Mutex::new(Vec::new()));
    let (r, i) = (requests.clone(), inputs.clone());
    let server = HttpServer::new(move || {
        let (r, i) = (r.clone(), i.clone());
        App::new().route(
            "/v1/embeddings",
            web::post().to(move |body: web::Json<Value>| {
                let (r, i) = (r.clone(), i.clone());
                async move {
                    r.fetch_add(1, Ordering::SeqCst);
                    if fail {
                        return HttpResponse::InternalServerError().finish();
                    }
                    let texts: Vec<String> = body["input"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|t| t.as_str().map(str::to_string))
                        .collect();
                    i.lock().unwrap().extend(texts.iter().cloned());
                    let data: Vec<Value> = texts
                        .iter()
                        .enumerate()
                        .map(|(n, t)| {
                            // Points are sent as "rubric text. phrase"; answers as sentences.
                            let point = t.contains(". ") && !t.to_lowercase().contains("zebra");
                            let v = if point || t.to_lowercase().contains("zebra") {
                                [1.0, 0.0]
                            } else {
                                [0.0, 1.0]
                            };
                            json!({"object": "embedding", "index": n, "embedding": v})
                        })
                        .collect();
                    HttpResponse::Ok()
                        .json(json!({"object": "list", "data": data, "model": "fake"}))
                }
            }),
        )
    })
    .workers(1)
    .bind("127.0.0.1:0")
    .unwrap();
    let addr = server.addrs()[0];
    let server = server.run();
    let handle = server.handle();
    tokio::spawn(server);
    Fake {
        base: format!("http://{addr}"),
        requests,
        inputs,
        _server: handle,
    }
}

const ZEBRA: &str =
    "Honestly, the zebra explains the whole thing, and I would point to the zebra first. \
    It is the zebra that makes this work in practice, as we saw in my last team.";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedder_turns_similarity_into_stated_points() {
    let f = fake(false).await;
    let e = Embedder::new(EmbedderConfig {
        url: format!("{}/v1", f.base),
        model: "m".into(),
        key: None,
        stated_at: 0.85,
        touched_at: 0.78,
        timeout: std::time::Duration::from_secs(5),
    });
    let pool = question_pool::embedded().unwrap();
    let q = pool.get("backend-010").unwrap();
    let t = actors::content::grading::main_target(q);
    let lexical = t.grade(ZEBRA);
    assert!(lexical.score <= 1, "{lexical:?}");
    let sentences = actors::content::scoring::prose_sentences(ZEBRA);
    let sem = e.semantic(&t.points, &sentences).await.unwrap();
    assert_eq!(sem.sims.len(), t.points.len());
    assert_eq!(sem.sims[0].len(), sentences.len());
    let graded = t.grade_with(ZEBRA, Some(&sem));
    assert!(
        graded
            .points
            .iter()
            .all(|p| p.coverage == actors::content::scoring::Coverage::Stated),
        "{graded:?}"
    );
    assert!(graded.score >= 7, "{graded:?}");
    // Point embeddings are cached: a second answer sends only its sentences.
    let before = f.inputs.lock().unwrap().len();
    e.semantic(&t.points, &["One more zebra sentence here.".to_string()])
        .await
        .unwrap();
    assert_eq!(f.inputs.lock().unwrap().len(), before + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_engine_uses_the_signal_and_carries_on_without_it() {
    let good = fake(false).await;
    let bad = fake(true).await;
    for (f, works) in [(&good, true), (&bad, false)] {
        let dir = tempfile::tempdir().unwrap();
        let cfg = format!(
            "[server]\nbind = \"127.0.0.1:0\"\n[storage]\npath = \"data\"\n[interview]\nquestions = 2\n\
             [scoring]\nembeddings_url = \"{}/v1\"\n",
            f.base
        );
        let engine = Engine::start(dir.path(), &cfg, &[]);
        let c = create(
            &engine.base,
            json!({"candidate": {"name": "Zed"}, "role": "Backend Engineer", "track": "technical"}),
        )
        .await;
        let mut client = Client::connect(&engine.base, &c).await;
        client.next_prompt().await;
        client.answer(ZEBRA).await;
        let ev = client.until(|v| v["type"] == "evaluation").await;
        let stated = ev["points"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["coverage"] == "stated")
            .count();
        assert!(
            f.requests.load(Ordering::SeqCst) >= 1,
            "the engine asked the server"
        );
        if works {
            assert_eq!(stated, ev["points"].as_array().unwrap().len(), "{ev}");
            assert_eq!(ev["band"], "solid", "{ev}");
        } else {
            assert!(
                stated < ev["points"].as_array().unwrap().len() && ev["band"] != "solid",
                "lexical only: {ev}"
            );
            // The interview goes on.
            let next = client.next_prompt().await;
            assert!(
                next["type"] == "interviewer" || next["type"] == "report",
                "{next}"
            );
        }
    }
}
