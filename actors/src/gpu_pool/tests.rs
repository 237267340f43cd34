//! Tests of the GPU pool as a whole: configuration checks, and HTTP behaviour (load spreading,
//! queueing, failover, streams, affinity, probes) against tiny in-test nodes.

use super::handle::validate_nodes;
use super::*;
use crate::gpu_node::GpuNodeSpec;

#[test]
fn config_and_nodes_are_validated() {
    let spec = |name: &str, max: u32| GpuNodeSpec {
        name: name.into(),
        url: "http://127.0.0.1:8000".into(),
        model: "m".into(),
        max_concurrency: max,
        api_key: None,
        priority: 0,
    };
    assert!(validate_nodes(&[spec("a", 1), spec("b", 2)]).is_ok());
    assert!(validate_nodes(&[spec("a", 1), spec("a", 2)]).is_err());
    let err = validate_nodes(&[spec("a", 0)]).err().map(|e| e.to_string());
    assert!(err.is_some_and(|e| e.contains("max_concurrency")));
    let cfg = GpuPoolConfig {
        breaker_failures: 0,
        ..GpuPoolConfig::default()
    };
    assert!(cfg.validate().is_err());
    assert!(GpuPoolConfig::default().validate().is_ok());
}

/// HTTP behaviour against tiny in-test OpenAI-compatible servers on 127.0.0.1:0.
mod http {
    use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    use futures::StreamExt;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    use super::super::*;
    use crate::gpu_node::GpuNodeSpec;
    use crate::providers::{ChatRequest, Message, Role};
    use crate::secret::Secret;

    /// Switches and records of one fake node.
    #[derive(Default)]
    struct Ctl {
        /// Chat requests answer 500.
        fail_chat: AtomicBool,
        /// `/health` and `/v1/models` answer 503.
        fail_health: AtomicBool,
        /// `/health` answers 404 (llama.cpp builds without it, other servers).
        no_health: AtomicBool,
        latency_ms: AtomicU64,
        /// Pause between stream chunks.
        chunk_gap_ms: AtomicU64,
        current: AtomicU32,
        peak: AtomicU32,
        chats: AtomicU32,
        last_auth: Mutex<Option<String>>,
    }

    struct FakeNode {
        url: String,
        ctl: Arc<Ctl>,
        task: tokio::task::JoinHandle<()>,
    }

    impl Drop for FakeNode {
        fn drop(&mut self) {
            self.task.abort();
        }
    }

    async fn fake_node(latency_ms: u64) -> FakeNode {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let ctl = Arc::new(Ctl::default());
        ctl.latency_ms.store(latency_ms, Ordering::SeqCst);
        ctl.chunk_gap_ms.store(60, Ordering::SeqCst);
        let c = ctl.clone();
        let task = tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                tokio::spawn(serve(sock, c.clone()));
            }
        });
        FakeNode { url, ctl, task }
    }

    async fn respond(sock: &mut TcpStream, status: &str, body: &str) {
        let head = format!(
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        let _ = sock.write_all(head.as_bytes()).await;
        let _ = sock.write_all(body.as_bytes()).await;
        let _ = sock.shutdown().await;
    }

    async fn serve(mut sock: TcpStream, ctl: Arc<Ctl>) {
        let mut buf = Vec::new();
        let mut tmp = [0u8; 4096];
        let head_end = loop {
            let n = match sock.read(&mut tmp).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            buf.extend_from_slice(&tmp[..n]);
            if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break p + 4;
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
        let header = |name: &str| {
            head.lines()
                .find(|l| l.to_ascii_lowercase().starts_with(&format!("{name}:")))
                .map(|l| l[name.len() + 1..].trim().to_string())
        };
        let len: usize = header("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        while buf.len() < head_end + len {
            match sock.read(&mut tmp).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&tmp[..n]),
            }
        }
        let body = String::from_utf8_lossy(&buf[head_end..head_end + len]).to_string();
        let mut first = head.lines().next().unwrap_or("").split(' ');
        let (method, path) = (first.next().unwrap_or(""), first.next().unwrap_or(""));
        let health_down = ctl.fail_health.load(Ordering::SeqCst);
        match (method, path) {
            ("GET", "/health") if ctl.no_health.load(Ordering::SeqCst) => {
                respond(&mut sock, "404 Not Found", "{}").await
            }
            ("GET", "/health") | ("GET", "/v1/models") if health_down => {
                respond(&mut sock, "503 Service Unavailable", "{}").await
            }
            ("GET", "/health") => respond(&mut sock, "200 OK", "{}").await,
            ("GET", "/v1/models") => {
                respond(&mut sock, "200 OK", r#"{"data":[{"id":"test-model"}]}"#).await
            }
            ("POST", "/v1/chat/completions") => {
                *ctl.last_auth.lock().unwrap() = header("authorization");
                chat(sock, &ctl, &body).await
            }
            _ => respond(&mut sock, "404 Not Found", "{}").await,
        }
    }

    async fn chat(mut sock: TcpStream, ctl: &Ctl, body: &str) {
        ctl.chats.fetch_add(1, Ordering::SeqCst);
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["model"], "test-model");
        if ctl.fail_chat.load(Ordering::SeqCst) {
            return respond(
                &mut sock,
                "500 Internal Server Error",
                r#"{"error":"boom"}"#,
            )
            .await;
        }
        if body.contains("BAD") {
            return respond(&mut sock, "400 Bad Request", r#"{"error":"bad"}"#).await;
        }
        let now = ctl.current.fetch_add(1, Ordering::SeqCst) + 1;
        ctl.peak.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(ctl.latency_ms.load(Ordering::SeqCst))).await;
        if v["stream"] == true {
            let head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nConnection: close\r\n\r\n";
            let _ = sock.write_all(head.as_bytes()).await;
            let gap = Duration::from_millis(ctl.chunk_gap_ms.load(Ordering::SeqCst));
            for piece in ["Hel", "lo", " world"] {
                let chunk = serde_json::json!({"choices":[{"delta":{"content": piece}}]});
                if sock
                    .write_all(format!("data: {chunk}\n\n").as_bytes())
                    .await
                    .is_err()
                {
                    break;
                }
                let _ = sock.flush().await;
                tokio::time::sleep(gap).await;
            }
            let tail = concat!(
                "data: {\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n",
                "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":3}}\n\n",
                "data: [DONE]\n\n"
            );
            let _ = sock.write_all(tail.as_bytes()).await;
            ctl.current.fetch_sub(1, Ordering::SeqCst);
            let _ = sock.shutdown().await;
        } else {
            ctl.current.fetch_sub(1, Ordering::SeqCst);
            let answer = serde_json::json!({
                "model": "test-model",
                "choices": [{"message": {"role": "assistant", "content": "hello"}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 5, "completion_tokens": 20}
            });
            respond(&mut sock, "200 OK", &answer.to_string()).await;
        }
    }

    fn spec(name: &str, node: &FakeNode, max: u32) -> GpuNodeSpec {
        GpuNodeSpec {
            name: name.into(),
            url: format!("{}/", node.url),
            model: "test-model".into(),
            max_concurrency: max,
            api_key: None,
            priority: 0,
        }
    }

    fn config() -> GpuPoolConfig {
        GpuPoolConfig {
            probe_interval: Duration::from_millis(100),
            queue_bound: 64,
            request_timeout: Duration::from_secs(5),
            breaker_failures: 2,
            breaker_cooldown: Duration::from_millis(300),
        }
    }

    fn req(text: &str) -> ChatRequest {
        ChatRequest {
            messages: vec![Message::new(Role::User, text)],
            max_tokens: 32,
            temperature: None,
            json: false,
            model: Some("some-cloud-model".into()),
            json_schema: None,
        }
    }

    async fn start(nodes: Vec<GpuNodeSpec>, cfg: GpuPoolConfig) -> GpuPool {
        let http = reqwest::Client::builder().no_proxy().build().unwrap();
        let (pool, _join) = GpuPool::start(nodes, cfg, http, None).await.unwrap();
        pool
    }

    fn node_status(pool: &GpuPool, name: &str) -> NodeStatus {
        pool.status().into_iter().find(|s| s.name == name).unwrap()
    }

    async fn wait_for(pool: &GpuPool, name: &str, state: NodeState) {
        let t0 = Instant::now();
        while node_status(pool, name).state != state {
            assert!(
                t0.elapsed() < Duration::from_secs(5),
                "{name} never became {state:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits (5 s at most) until node `name`'s status satisfies `ok` (requests in flight or
    /// queued, as other tasks move them), and returns it.
    async fn wait_status(
        pool: &GpuPool,
        name: &str,
        what: &str,
        ok: impl Fn(&NodeStatus) -> bool,
    ) -> NodeStatus {
        let t0 = Instant::now();
        loop {
            let s = node_status(pool, name);
            if ok(&s) {
                return s;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(5),
                "{name}: never {what}: {s:?}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    const DEADLINE: Duration = Duration::from_secs(10);

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn load_spreads_over_two_nodes_and_never_exceeds_capacity() {
        let (a, b) = (fake_node(150).await, fake_node(150).await);
        let pool = start(vec![spec("a", &a, 3), spec("b", &b, 3)], config()).await;
        let calls = (0..20).map(|i| {
            let pool = pool.clone();
            tokio::spawn(async move { pool.complete(&req(&format!("q{i}")), DEADLINE, None).await })
        });
        for r in futures::future::join_all(calls).await {
            let c = r.unwrap().unwrap();
            assert_eq!(c.response.text, "hello");
            assert!(c.failed.is_empty());
        }
        let (ca, cb) = (
            a.ctl.chats.load(Ordering::SeqCst),
            b.ctl.chats.load(Ordering::SeqCst),
        );
        assert_eq!(ca + cb, 20);
        assert!(ca >= 5 && cb >= 5, "load not spread: a={ca} b={cb}");
        assert!(a.ctl.peak.load(Ordering::SeqCst) <= 3);
        assert!(b.ctl.peak.load(Ordering::SeqCst) <= 3);
        assert_eq!(a.ctl.peak.load(Ordering::SeqCst), 3);
        let stats = pool.stats();
        assert_eq!(stats.dispatched, 20);
        assert!(stats.queued_total >= 14, "{stats:?}");
        assert_eq!((stats.rejected, stats.waiting), (0, 0));
        for s in pool.status() {
            assert_eq!((s.in_flight, s.queued), (0, 0));
        }
        // Counted before each caller got its answer.
        let s = node_status(&pool, "a");
        assert_eq!(s.state, NodeState::Up);
        assert_eq!(s.requests, u64::from(ca));
        assert!(s.latency_ms.is_some_and(|l| l >= 140.0));
        assert!(s.tokens_per_s.is_some_and(|t| t > 0.0));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn full_queue_and_passed_deadline_answer_busy() {
        let a = fake_node(400).await;
        let cfg = GpuPoolConfig {
            queue_bound: 1,
            ..config()
        };
        let pool = start(vec![spec("a", &a, 1)], cfg).await;
        let p = pool.clone();
        let first = tokio::spawn(async move { p.complete(&req("1"), DEADLINE, None).await });
        wait_status(&pool, "a", "busy", |s| s.in_flight == 1).await;
        let p = pool.clone();
        let second = tokio::spawn(async move { p.complete(&req("2"), DEADLINE, None).await });
        wait_status(&pool, "a", "queued", |s| s.queued == 1).await;
        // The queue is full: refused at once (a wait would have been served, the deadline is 10 s).
        let third = pool.complete(&req("3"), DEADLINE, None).await;
        assert!(matches!(third, Err(GpuError::Busy)), "{third:?}");
        assert!(first.await.unwrap().is_ok());
        assert!(second.await.unwrap().is_ok());
        // A wait that outlasts the deadline.
        let p = pool.clone();
        let busy = tokio::spawn(async move { p.complete(&req("4"), DEADLINE, None).await });
        wait_status(&pool, "a", "busy", |s| s.in_flight == 1).await;
        let t0 = Instant::now();
        let late = pool
            .complete(&req("5"), Duration::from_millis(150), None)
            .await;
        assert!(matches!(late, Err(GpuError::Busy)), "{late:?}");
        assert!(t0.elapsed() >= Duration::from_millis(100));
        assert!(busy.await.unwrap().is_ok());
        assert_eq!(a.ctl.peak.load(Ordering::SeqCst), 1);
        let stats = pool.stats();
        assert_eq!((stats.rejected, stats.waiting), (2, 0));
        assert_eq!(node_status(&pool, "a").queued, 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn failing_node_goes_down_fails_over_and_comes_back() {
        let (a, b) = (fake_node(10).await, fake_node(10).await);
        let cfg = GpuPoolConfig {
            breaker_cooldown: Duration::from_secs(1),
            ..config()
        };
        let pool = start(vec![spec("a", &a, 4), spec("b", &b, 4)], cfg).await;
        wait_for(&pool, "a", NodeState::Up).await;
        // Chat fails on a while its /health stays fine: the breaker takes it out.
        a.ctl.fail_chat.store(true, Ordering::SeqCst);
        for i in 0..2 {
            let c = pool
                .complete(&req(&format!("f{i}")), DEADLINE, None)
                .await
                .unwrap();
            assert_eq!(c.node, "b");
            assert_eq!(c.failed, vec!["a".to_string()]);
        }
        wait_for(&pool, "a", NodeState::Down).await;
        let s = node_status(&pool, "a");
        assert!(
            s.reason.as_deref().is_some_and(|r| r.contains("breaker")),
            "{s:?}"
        );
        assert_eq!(s.errors, 2);
        let before = a.ctl.chats.load(Ordering::SeqCst);
        for i in 0..3 {
            let c = pool
                .complete(&req(&format!("d{i}")), DEADLINE, None)
                .await
                .unwrap();
            assert_eq!((c.node.as_str(), c.failed.len()), ("b", 0));
        }
        assert_eq!(a.ctl.chats.load(Ordering::SeqCst), before);
        // Repaired: after the cool-down the probe brings it back and it serves again.
        let repaired = Instant::now();
        a.ctl.fail_chat.store(false, Ordering::SeqCst);
        wait_for(&pool, "a", NodeState::Up).await;
        assert!(repaired.elapsed() >= Duration::from_millis(500));
        let c = pool.complete(&req("back"), DEADLINE, None).await.unwrap();
        assert_eq!(c.node, "a");
        // A failing health probe takes it out too, and brings it back.
        a.ctl.fail_health.store(true, Ordering::SeqCst);
        wait_for(&pool, "a", NodeState::Down).await;
        let s = node_status(&pool, "a");
        assert!(
            s.reason
                .as_deref()
                .is_some_and(|r| r.contains("/health answered HTTP 503")),
            "{s:?}"
        );
        assert_eq!(
            pool.complete(&req("x"), DEADLINE, None).await.unwrap().node,
            "b"
        );
        a.ctl.fail_health.store(false, Ordering::SeqCst);
        wait_for(&pool, "a", NodeState::Up).await;
        assert!(pool.any_up());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_node_failing_is_an_error_with_the_trail() {
        let (a, b) = (fake_node(0).await, fake_node(0).await);
        let pool = start(vec![spec("a", &a, 2), spec("b", &b, 2)], config()).await;
        a.ctl.fail_chat.store(true, Ordering::SeqCst);
        b.ctl.fail_chat.store(true, Ordering::SeqCst);
        match pool.complete(&req("x"), DEADLINE, None).await {
            Err(GpuError::Failed { tried, last }) => {
                assert_eq!(tried.len(), 2);
                assert_eq!(last, ProviderError::Server { status: 500 });
            }
            other => panic!("expected Failed, got {other:?}"),
        }
        // Each node tried once only.
        assert_eq!(a.ctl.chats.load(Ordering::SeqCst), 1);
        assert_eq!(b.ctl.chats.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn client_errors_are_not_retried() {
        let (a, b) = (fake_node(0).await, fake_node(0).await);
        let pool = start(vec![spec("a", &a, 2), spec("b", &b, 2)], config()).await;
        wait_for(&pool, "a", NodeState::Up).await;
        let r = pool.complete(&req("BAD"), DEADLINE, None).await;
        match r {
            Err(GpuError::Refused { node, error }) => {
                assert_eq!(node, "a");
                assert!(matches!(
                    error,
                    ProviderError::BadRequest { status: 400, .. }
                ));
            }
            other => panic!("expected Refused, got {other:?}"),
        }
        assert_eq!(b.ctl.chats.load(Ordering::SeqCst), 0);
        let s = node_status(&pool, "a");
        assert_eq!((s.state, s.errors), (NodeState::Up, 1));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn stream_passes_chunks_through_as_they_come() {
        let a = fake_node(0).await;
        let pool = start(vec![spec("a", &a, 2)], config()).await;
        let mut s = pool.stream(&req("hi"), DEADLINE, None).await.unwrap();
        assert_eq!(s.node, "a");
        let t0 = Instant::now();
        let mut text = String::new();
        let mut seen = Vec::new();
        let mut usage = None;
        while let Some(chunk) = s.next().await {
            match chunk.unwrap() {
                StreamChunk::Delta(d) => {
                    seen.push((t0.elapsed(), d.clone()));
                    text.push_str(&d);
                }
                StreamChunk::Done { usage: u, .. } => usage = u,
            }
        }
        assert_eq!(text, "Hello world");
        assert_eq!(seen.len(), 3);
        // Token by token: the first piece arrived well before the last one was sent.
        assert!(
            seen[2].0 - seen[0].0 >= Duration::from_millis(100),
            "{seen:?}"
        );
        assert_eq!(usage.map(|u| u.completion_tokens), Some(3));
        assert_eq!(node_status(&pool, "a").in_flight, 0);
        let st = node_status(&pool, "a");
        assert_eq!((st.requests, st.errors), (1, 0));
        assert!(st.tokens_per_s.is_some());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn dropped_stream_and_dropped_future_give_the_slot_back() {
        let a = fake_node(0).await;
        let pool = start(vec![spec("a", &a, 1)], config()).await;
        let mut s = pool.stream(&req("hi"), DEADLINE, None).await.unwrap();
        assert!(matches!(s.next().await, Some(Ok(StreamChunk::Delta(_)))));
        assert_eq!(node_status(&pool, "a").in_flight, 1);
        drop(s);
        assert_eq!(node_status(&pool, "a").in_flight, 0);
        // A complete() future dropped mid-request.
        a.ctl.latency_ms.store(500, Ordering::SeqCst);
        let cut = tokio::time::timeout(
            Duration::from_millis(100),
            pool.complete(&req("slow"), DEADLINE, None),
        )
        .await;
        assert!(cut.is_err());
        assert_eq!(node_status(&pool, "a").in_flight, 0);
        a.ctl.latency_ms.store(0, Ordering::SeqCst);
        assert!(pool.complete(&req("again"), DEADLINE, None).await.is_ok());
        // The two cancelled requests and the served one, none an error.
        let st = node_status(&pool, "a");
        assert_eq!((st.state, st.errors, st.requests), (NodeState::Up, 0, 3));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn affinity_keeps_an_interview_on_one_node() {
        let (a, b) = (fake_node(20).await, fake_node(20).await);
        let pool = start(vec![spec("a", &a, 2), spec("b", &b, 2)], config()).await;
        wait_for(&pool, "a", NodeState::Up).await;
        wait_for(&pool, "b", NodeState::Up).await;
        // Another interview keeps node a busier, yet iv-1 stays where it started.
        let first = pool
            .complete(&req("q"), DEADLINE, Some("iv-1"))
            .await
            .unwrap()
            .node;
        let other = if first == "a" { "b" } else { "a" };
        for _ in 0..5 {
            let p = pool.clone();
            let busy = tokio::spawn(async move { p.complete(&req("o"), DEADLINE, None).await });
            let c = pool
                .complete(&req("q"), DEADLINE, Some("iv-1"))
                .await
                .unwrap();
            assert_eq!(c.node, first);
            busy.await.unwrap().unwrap();
        }
        let stats = pool.stats();
        assert_eq!((stats.affinity_hits, stats.affinity_moves), (5, 0));
        // Its node goes down: the interview moves, and stays on the new node once the old is back.
        let gone = if first == "a" { &a } else { &b };
        gone.ctl.fail_health.store(true, Ordering::SeqCst);
        wait_for(&pool, &first, NodeState::Down).await;
        let c = pool
            .complete(&req("q"), DEADLINE, Some("iv-1"))
            .await
            .unwrap();
        assert_eq!(c.node, other);
        gone.ctl.fail_health.store(false, Ordering::SeqCst);
        wait_for(&pool, &first, NodeState::Up).await;
        for _ in 0..3 {
            let c = pool
                .complete(&req("q"), DEADLINE, Some("iv-1"))
                .await
                .unwrap();
            assert_eq!(c.node, other);
        }
        let stats = pool.stats();
        assert_eq!((stats.affinity_hits, stats.affinity_moves), (8, 1));
        assert_eq!(stats.affinity_entries, 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn probe_falls_back_to_models_and_unreachable_nodes_are_down() {
        let a = fake_node(0).await;
        a.ctl.no_health.store(true, Ordering::SeqCst);
        // A port nobody listens on.
        let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let dead_url = format!("http://{}", closed.local_addr().unwrap());
        drop(closed);
        let dead = GpuNodeSpec {
            name: "dead".into(),
            url: dead_url,
            model: "test-model".into(),
            max_concurrency: 1,
            api_key: None,
            priority: 10,
        };
        let pool = start(vec![spec("a", &a, 1), dead], config()).await;
        let status = pool.probe_now().await;
        assert_eq!(status[0].state, NodeState::Up);
        assert_eq!(status[1].state, NodeState::Down);
        assert!(status[1]
            .reason
            .as_deref()
            .is_some_and(|r| r.starts_with("probe:")));
        assert_eq!(
            pool.complete(&req("x"), DEADLINE, None).await.unwrap().node,
            "a"
        );
        // /v1/models failing too: one failed probe is tolerated (a busy node may answer late),
        // the second in a row takes it down; then with no usable node the answer is NoNode.
        a.ctl.fail_health.store(true, Ordering::SeqCst);
        let status = pool.probe_now().await;
        assert_eq!(
            status[0].state,
            NodeState::Up,
            "one failed probe is tolerated"
        );
        let status = pool.probe_now().await;
        assert_eq!(status[0].state, NodeState::Down);
        assert!(status[0]
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("/v1/models")));
        assert!(!pool.any_up());
        let r = pool.complete(&req("x"), DEADLINE, None).await;
        assert!(matches!(r, Err(GpuError::NoNode)), "{r:?}");
        assert!(matches!(
            pool.stream(&req("x"), DEADLINE, None).await,
            Err(GpuError::NoNode)
        ));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn empty_pool_has_no_node() {
        let pool = start(Vec::new(), config()).await;
        assert!(!pool.has_nodes());
        assert!(!pool.any_up());
        let r = pool.complete(&req("x"), DEADLINE, Some("iv")).await;
        assert!(matches!(r, Err(GpuError::NoNode)));
        assert_eq!(pool.stats().rejected, 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn key_is_sent_but_never_shown() {
        let a = fake_node(0).await;
        let mut s = spec("a", &a, 1);
        s.api_key = Some(Secret::new("sk-node-secret-42"));
        let pool = start(vec![s], config()).await;
        pool.complete(&req("x"), DEADLINE, None).await.unwrap();
        let auth = a.ctl.last_auth.lock().unwrap().clone();
        assert_eq!(auth.as_deref(), Some("Bearer sk-node-secret-42"));
        // Up once the node actor has seen the probe or the answer (by message).
        wait_for(&pool, "a", NodeState::Up).await;
        let shown = serde_json::to_string(&pool.status()).unwrap();
        assert!(!shown.contains("sk-node-secret-42"));
        assert!(shown.contains("\"state\":\"up\""));
        pool.actor().stop(None);
    }
}
