//! Clustering on Redis with three real engine processes, a real `redis-server` and the fake provider:
//! a burst spread over the nodes stays inside one key's rpm at the provider; an interview created on
//! one node is answered through another (relayed to its owner) and read on a third; the owner killed
//! with SIGKILL mid-interview, the client finishes on another node with no event lost or repeated;
//! Redis stopped mid-run, no limit is exceeded and interviews go on; two nodes racing for one
//! interview give one owner, and a paused former owner's write is refused (or its lost lease noticed
//! first): nothing of it reaches the shared log.
#![allow(
    missing_docs,
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

mod common;

use std::time::{Duration, Instant};

use common::fake::FakeProvider;
use common::redis::Redis;
use common::server::Engine;
use common::ws::{assert_contiguous, create, Client, Created, GOOD_ANSWER};
use serde_json::{json, Value};

const KEY: &str = "fk-cluster-key-0123456789";

/// One node: its directory (sled) and process.
struct Node {
    _dir: tempfile::TempDir,
    engine: Engine,
}

fn node_config(redis: &Redis, fake: &FakeProvider, id: &str, limits: &str, extra: &str) -> String {
    format!(
        "[server]\nbind = \"127.0.0.1:0\"\n[storage]\npath = \"data\"\n\
         [interview]\nmode = \"balanced\"\nquestions = 3\neval_deadline_ms = 3000\n{extra}\n\
         [cluster]\nredis_url = \"{}\"\nnode_id = \"{id}\"\nlease_ms = 2000\nheartbeat_ms = 200\nop_timeout_ms = 300\n\
         [providers.fakeai]\nformat = \"openai\"\nbase_url = \"{}/v1\"\nmodel = \"m\"\npriority = 1\n\
         keys_env = \"FAKEAI_API_KEYS\"\nlimits = {{ {limits} }}\n",
        redis.url(),
        fake.base
    )
}

fn start_node(redis: &Redis, fake: &FakeProvider, id: &str, limits: &str, extra: &str) -> Node {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::start(
        dir.path(),
        &node_config(redis, fake, id, limits, extra),
        &[("FAKEAI_API_KEYS", KEY.into())],
    );
    Node { _dir: dir, engine }
}

fn three_nodes(redis: &Redis, fake: &FakeProvider, limits: &str, extra: &str) -> Vec<Node> {
    ["n1", "n2", "n3"]
        .iter()
        .map(|id| start_node(redis, fake, id, limits, extra))
        .collect()
}

fn body(name: &str) -> Value {
    json!({"candidate": {"id": format!("cand-{name}"), "name": name}, "role": "Backend Engineer",
           "track": "technical", "difficulty": "medium", "mode": "balanced", "questions": 3})
}

/// `GET /api/cluster` of a node (admin routes are open: no admin token in these configs).
async fn cluster_doc(e: &Engine) -> Value {
    let r = e.get("/api/cluster", None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.json
}

async fn leases_held(e: &Engine) -> u64 {
    cluster_doc(e).await["this_node"]["leases_held"]
        .as_u64()
        .unwrap()
}

/// Polls `f` every 50 ms until it is true (a deadline only to fail instead of hanging).
async fn eventually<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(60);
    while !f().await {
        assert!(Instant::now() < deadline, "never happened: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Answers prompts until the report, re-sending an answer the server never read (protocol rule 4).
async fn finish(client: &mut Client) -> Value {
    client.finish_with(GOOD_ANSWER).await
}

/// Connects to `base` and catches up from `last_seq`, following the protocol: after `ready`, send
/// `resume`; if the server still waits on the prompt we last saw, our answer was never read: resend.
async fn reconnect(base: &str, c: &Created, seen: &[Value]) -> Client {
    let last = seen.last().and_then(|v| v["seq"].as_u64()).unwrap_or(0);
    let (mut client, ready) = Client::reconnect(base, c, last).await;
    client
        .logged
        .retain(|v| v["seq"].as_u64().unwrap_or(0) > last);
    let mut all = seen.to_vec();
    all.extend(client.logged.iter().cloned());
    client.logged = all;
    let prompt_open = client.logged.last().is_some_and(|v| {
        v["type"] == "interviewer" && (v["kind"] == "question" || v["kind"] == "follow_up")
    });
    if ready["state"] == "awaiting_answer" && prompt_open {
        client.answer(GOOD_ANSWER).await;
    }
    client
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_over_three_nodes_never_exceeds_one_keys_rpm() {
    let redis = Redis::start();
    let fake = FakeProvider::start().await;
    fake.add_key(KEY, json!({"rpm": 10})).await;
    let nodes = three_nodes(&redis, &fake, "rpm = 10", "");
    // 45 distinct requests at once, 15 through each node.
    let mut tasks = Vec::new();
    for i in 0..45 {
        let base = nodes[i % 3].engine.base.clone();
        tasks.push(tokio::spawn(async move {
            let r = reqwest::Client::new()
                .post(format!("{base}/v1/chat/completions"))
                .json(&json!({"model": "fakeai", "max_tokens": 8,
                              "messages": [{"role": "user", "content": format!("burst request {i}")}]}))
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let retry = r
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            (status, retry)
        }));
    }
    let mut served = 0;
    let mut refused = 0;
    for t in tasks {
        match t.await.unwrap() {
            (200, _) => served += 1,
            (429, Some(retry)) => {
                assert!((1..=61).contains(&retry), "Retry-After {retry}");
                refused += 1;
            }
            other => panic!("unexpected answer {other:?}"),
        }
    }
    let stats = &fake.stats().await[KEY];
    assert_eq!(stats["rate_limited_by_fake"], 0, "no provider 429: {stats}");
    assert!(
        stats["max_requests_in_any_60s_window"].as_u64().unwrap() <= 10,
        "{stats}"
    );
    assert_eq!(served, 10, "the cluster used the key's whole minute, once");
    assert_eq!(refused, 35);
    assert_eq!(stats["requests"], 10, "{stats}");
    // What the engine wrote, read with redis-cli: the key's minute window holds 10 requests, in
    // one-second buckets ("<unix second>:r" -> count).
    let keys = redis.cli(&["--scan", "--pattern", "ie:v1:{q:fakeai:key:*}:s60"]);
    let minute = keys
        .lines()
        .next()
        .expect("a minute window in redis")
        .to_string();
    let raw = redis.cli(&["HGETALL", &minute]);
    let lines: Vec<&str> = raw.lines().collect();
    let requests: u64 = lines
        .chunks(2)
        .filter(|p| p[0].ends_with(":r"))
        .map(|p| p[1].parse::<u64>().unwrap())
        .sum();
    assert_eq!(requests, 10, "{raw}");
    assert!(
        !redis.cli(&["KEYS", "*"]).contains(KEY),
        "the key itself is never in redis"
    );
    // Every node lists the three.
    let doc = cluster_doc(&nodes[2].engine).await;
    assert_eq!(doc["nodes"].as_array().unwrap().len(), 3, "{doc}");
    assert_eq!(doc["mode"], "shared");
    // The operator's dashboard shows the cluster and the shared window's use.
    let page = nodes[0].engine.get("/admin", None).await;
    assert_eq!(page.status, 200);
    assert!(page.text.contains("id=\"cluster\""), "{}", page.text);
    assert!(
        page.text.contains("requests/sliding(60): 10 / 10"),
        "{}",
        page.text
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interview_created_on_node_1_is_answered_through_node_2_and_read_on_node_3() {
    let redis = Redis::start();
    let fake = FakeProvider::start().await;
    fake.add_interviewer_key(KEY).await;
    let nodes = three_nodes(&redis, &fake, "rpm = 1000", "");
    let (n1, n2, n3) = (&nodes[0].engine, &nodes[1].engine, &nodes[2].engine);
    let c = create(&n1.base, body("ana")).await;
    // Node 1 serves the first question and keeps the interview's lease.
    let mut a = Client::connect(&n1.base, &c).await;
    assert_eq!(a.next().await["type"], "ready");
    let q1 = a.next_prompt().await;
    assert_eq!(q1["kind"], "question");
    let seen = a.logged.clone();
    a.drop_connection().await;
    assert_eq!(leases_held(n1).await, 1);
    // The client comes back through node 2: relayed to node 1, where the session lives.
    let mut b = reconnect(&n2.base, &c, &seen).await;
    b.answer(GOOD_ANSWER).await;
    let report = finish(&mut b).await;
    assert_eq!(report["type"], "report");
    assert_contiguous(&b.logged);
    assert_eq!(leases_held(n1).await, 1, "node 1 still owns it");
    assert_eq!(leases_held(n2).await, 0, "node 2 only relayed");
    let evaluations = b
        .logged
        .iter()
        .filter(|v| v["type"] == "evaluation")
        .count();
    assert!(evaluations >= 3, "every answer graded: {evaluations}");
    // Node 3 never saw the interview: its REST reads answer from the shared log.
    let r = n3
        .get(&format!("/api/interviews/{}", c.id), Some(&c.token))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["state"], "completed");
    assert_eq!(
        r.json["transcript"].as_array().unwrap().len(),
        b.logged.len(),
        "the whole transcript on node 3"
    );
    let r = n3
        .get(&format!("/api/interviews/{}/report", c.id), Some(&c.token))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = n3.get("/api/candidates/cand-ana/history", None).await;
    assert_eq!(
        r.json["interviews"].as_array().unwrap().len(),
        1,
        "{}",
        r.text
    );
    // The stream in redis: one entry per logged event, ids = seqs.
    let len = redis.cli(&["XLEN", &format!("ie:v1:{{iv:{}}}:log", c.id)]);
    assert_eq!(len.trim(), b.logged.len().to_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_owner_killed_mid_interview_the_client_finishes_on_node_3() {
    let redis = Redis::start();
    let fake = FakeProvider::start().await;
    fake.add_interviewer_key(KEY).await;
    let mut nodes = three_nodes(&redis, &fake, "rpm = 1000", "");
    let c = create(&nodes[0].engine.base, body("bo")).await;
    let mut a = Client::connect(&nodes[0].engine.base, &c).await;
    assert_eq!(a.next().await["type"], "ready");
    a.next_prompt().await;
    a.answer(GOOD_ANSWER).await;
    // Mid-interview: the first answer graded, the next question asked.
    a.until(|v| v["type"] == "evaluation").await;
    a.next_prompt().await;
    let seen = a.logged.clone();
    nodes[0].engine.kill();
    drop(a);
    // The client reconnects to node 3, which takes the interview over once the dead owner's lease
    // runs out, from the shared log.
    let n3 = &nodes[2].engine;
    let mut b = reconnect(&n3.base, &c, &seen).await;
    b.answer(GOOD_ANSWER).await;
    let report = finish(&mut b).await;
    assert_eq!(report["type"], "report");
    assert_contiguous(&b.logged);
    let mut seqs: Vec<u64> = b
        .logged
        .iter()
        .map(|v| v["seq"].as_u64().unwrap())
        .collect();
    seqs.dedup();
    assert_eq!(seqs.len(), b.logged.len(), "no event twice");
    assert_eq!(leases_held(n3).await, 1, "node 3 owns it now");
    let r = nodes[1]
        .engine
        .get(&format!("/api/interviews/{}", c.id), Some(&c.token))
        .await;
    assert_eq!(r.json["state"], "completed", "{}", r.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_stopped_mid_run_no_limit_exceeded_and_interviews_continue() {
    let mut redis = Redis::start();
    let fake = FakeProvider::start().await;
    fake.add_key_with(json!({"key": KEY, "limits": {"rpm": 8}, "reply": "@interviewer"}))
        .await;
    let nodes = three_nodes(&redis, &fake, "rpm = 8", "");
    // Three interviews, one per node, each past its first graded answer.
    let mut clients = Vec::new();
    for (i, n) in nodes.iter().enumerate() {
        let c = create(&n.engine.base, body(&format!("red{i}"))).await;
        let mut cl = Client::connect(&n.engine.base, &c).await;
        assert_eq!(cl.next().await["type"], "ready");
        cl.next_prompt().await;
        cl.answer(GOOD_ANSWER).await;
        cl.until(|v| v["type"] == "evaluation").await;
        clients.push(cl);
    }
    redis.stop();
    // The interviews go on to their reports on the same connections.
    for cl in &mut clients {
        let report = finish(cl).await;
        assert_eq!(report["type"], "report");
        assert_contiguous(&cl.logged);
    }
    // A burst through the gateways meanwhile: each node admits at most its share.
    for (i, n) in nodes.iter().enumerate() {
        for j in 0..6 {
            let r = n
                .engine
                .chat("fakeai", &format!("during the outage {i} {j}"))
                .await;
            assert!(matches!(r.status, 200 | 429), "{}", r.text);
        }
    }
    let stats = &fake.stats().await[KEY];
    assert_eq!(stats["rate_limited_by_fake"], 0, "{stats}");
    assert!(
        stats["max_requests_in_any_60s_window"].as_u64().unwrap() <= 8,
        "{stats}"
    );
    let doc = cluster_doc(&nodes[0].engine).await;
    assert_eq!(doc["mode"], "fallback", "{doc}");
    // Redis back: the nodes return to the shared windows and push what they logged meanwhile.
    redis.restart();
    eventually("every node back in shared mode", || async {
        let mut all = true;
        for n in &nodes {
            let d = cluster_doc(&n.engine).await;
            all &= d["mode"] == "shared" && d["this_node"]["unsynced_interviews"] == 0;
        }
        all
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_racing_for_one_interview_one_owner_and_a_stale_write_refused() {
    let redis = Redis::start();
    let fake = FakeProvider::start().await;
    fake.add_interviewer_key(KEY).await;
    let nodes = three_nodes(&redis, &fake, "rpm = 1000", "");
    let (n1, n2) = (&nodes[0].engine, &nodes[1].engine);
    let c = create(&n1.base, body("race")).await;
    // Two connections at once, through two nodes.
    let (mut x, mut y) = tokio::join!(Client::connect(&n1.base, &c), Client::connect(&n2.base, &c));
    assert_eq!(x.next().await["type"], "ready");
    assert_eq!(y.next().await["type"], "ready");
    let (h1, h2) = (leases_held(n1).await, leases_held(n2).await);
    assert_eq!(h1 + h2, 1, "exactly one owner: n1 {h1}, n2 {h2}");
    let owner = redis.cli(&["GET", &format!("ie:v1:{{iv:{}}}:owner", c.id)]);
    let (owner_node, other_node) = if h1 == 1 {
        (&nodes[0], &nodes[1])
    } else {
        (&nodes[1], &nodes[0])
    };
    assert!(
        owner.trim().ends_with(if h1 == 1 { "n1" } else { "n2" }),
        "{owner}"
    );
    drop((x, y));

    // The owner is paused with an evaluation in flight (the provider answers after 1.5 s).
    fake.set_latency(KEY, 1500).await;
    let mut a = Client::connect(&owner_node.engine.base, &c).await;
    a.next().await;
    a.send(json!({"type": "resume", "last_seq": 0})).await;
    a.next_prompt().await;
    let asked = fake.requests(KEY).await.len();
    a.answer(GOOD_ANSWER).await;
    eventually("the evaluation reached the provider", || async {
        fake.requests(KEY).await.len() > asked
    })
    .await;
    owner_node.engine.signal("STOP");
    let seen = a.logged.clone();
    drop(a);
    // Its lease runs out; the other node takes the interview over when the client comes back.
    fake.set_latency(KEY, 0).await;
    let mut b = reconnect(&other_node.engine.base, &c, &seen).await;
    assert_eq!(leases_held(&other_node.engine).await, 1);
    // The former owner wakes up: its evaluation arrives, and its append carries the old fencing
    // token and is refused, or its lease renewal finds the lease gone first (whichever of the two
    // runs first after SIGCONT); either way its session stops without sending or writing anything.
    owner_node.engine.signal("CONT");
    eventually("the stale write refused", || async {
        owner_node
            .engine
            .log()
            .contains("another node owns the interview")
    })
    .await;
    let stale_write = owner_node.engine.log().contains("stale fencing token");
    eprintln!("the former owner's stale append was refused: {stale_write} (else its renewal noticed first)");
    let report = finish(&mut b).await;
    assert_eq!(report["type"], "report");
    assert_contiguous(&b.logged);
    // In redis: the fencing tokens of the log's entries never go back.
    let raw = redis.cli(&["XRANGE", &format!("ie:v1:{{iv:{}}}:log", c.id), "-", "+"]);
    let lines: Vec<&str> = raw.lines().collect();
    let mut fences = Vec::new();
    for w in lines.windows(2) {
        if w[0] == "f" {
            fences.push(w[1].parse::<u64>().unwrap());
        }
    }
    assert_eq!(fences.len(), b.logged.len(), "{raw}");
    assert!(fences.windows(2).all(|p| p[0] <= p[1]), "{fences:?}");
    assert!(
        fences.last().unwrap() > fences.first().unwrap(),
        "{fences:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_releases_the_leases_so_another_node_takes_over_at_once() {
    let redis = Redis::start();
    let fake = FakeProvider::start().await;
    fake.add_interviewer_key(KEY).await;
    let mut nodes = three_nodes(&redis, &fake, "rpm = 1000", "");
    let c = create(&nodes[0].engine.base, body("term")).await;
    let mut a = Client::connect(&nodes[0].engine.base, &c).await;
    a.next().await;
    a.next_prompt().await;
    let seen = a.logged.clone();
    nodes[0].engine.signal("TERM");
    assert!(
        nodes[0].engine.wait_exit(Duration::from_secs(30)),
        "node 1 did not stop"
    );
    assert_eq!(
        redis
            .cli(&["EXISTS", &format!("ie:v1:{{iv:{}}}:owner", c.id)])
            .trim(),
        "0",
        "the lease was released on the way out"
    );
    drop(a);
    let mut b = reconnect(&nodes[1].engine.base, &c, &seen).await;
    b.answer(GOOD_ANSWER).await;
    assert_eq!(finish(&mut b).await["type"], "report");
    assert_contiguous(&b.logged);
    let doc = cluster_doc(&nodes[1].engine).await;
    assert_eq!(
        doc["nodes"].as_array().unwrap().len(),
        2,
        "node 1 left the member list: {doc}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_nodes_provider_work_serves_the_others_and_the_budget_counts_the_cluster() {
    let redis = Redis::start();
    let fake = FakeProvider::start().await;
    fake.add_interviewer_key(KEY).await;
    let n1 = start_node(&redis, &fake, "n1", "rpm = 1000, rpd = 100", "");
    let n2 = start_node(&redis, &fake, "n2", "rpm = 1000, rpd = 100", "");
    // A resume analysed on node 1 (one provider call) is answered on node 2 from the shared cache.
    let resume = json!({"resume_text": "Senior backend engineer. Built payment APIs in Rust and Go, \
        PostgreSQL tuning, Kafka pipelines, Kubernetes operations, led a team of five."});
    let before = fake.requests(KEY).await.len();
    let a = n1.engine.post("/api/resume/analyze", &resume, None).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(
        fake.requests(KEY).await.len(),
        before + 1,
        "node 1 asked the provider"
    );
    let b = n2.engine.post("/api/resume/analyze", &resume, None).await;
    assert_eq!(b.status, 200, "{}", b.text);
    assert_eq!(
        fake.requests(KEY).await.len(),
        before + 1,
        "node 2 answered from the shared cache, no second call"
    );
    assert_eq!(a.json["skills"], b.json["skills"]);
    // Calls through node 1 count in node 2's view of today's quota (what its call budget reads).
    for i in 0..3 {
        assert_eq!(
            n1.engine
                .chat("fakeai", &format!("budget {i}"))
                .await
                .status,
            200
        );
    }
    let used = fake.stats().await[KEY]["requests"].as_u64().unwrap();
    eventually("node 2 sees the cluster's usage today", || async {
        let s = n2.engine.status().await;
        common::server::key_status(&s, "fakeai#1")["windows"]["rpd"]["used"]
            .as_u64()
            .is_some_and(|u| u >= used)
    })
    .await;
}
