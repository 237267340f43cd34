//! A WebSocket test client for the interview protocol (tokio-tungstenite): create an interview over
//! HTTP, connect with its token, send messages, and read events with a deadline.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A created interview.
#[derive(Clone, Debug)]
pub struct Created {
    /// Id.
    pub id: String,
    /// Token.
    pub token: String,
}

/// Creates an interview with `body` and returns its id and token.
pub async fn create(base: &str, body: Value) -> Created {
    let r = reqwest::Client::new()
        .post(format!("{base}/api/interviews"))
        .json(&body)
        .send()
        .await
        .expect("create");
    assert_eq!(r.status().as_u16(), 201, "create failed");
    let v: Value = r.json().await.expect("json");
    Created {
        id: v["interview_id"].as_str().expect("id").to_string(),
        token: v["token"].as_str().expect("token").to_string(),
    }
}

/// A connected client.
pub struct Client {
    ws: Socket,
    /// Every logged event received (seq > 0, not ephemeral), in order.
    pub logged: Vec<Value>,
    /// How long `next` waits for one event (30 s unless a test sets it: a CPU-only model is slower).
    pub wait: Duration,
    /// Bytes of binary frames (the interviewer's speech) received so far.
    pub audio_bytes: usize,
}

impl Client {
    /// Connects with the token in the query.
    pub async fn connect(base: &str, c: &Created) -> Client {
        let url = format!(
            "{}/ws/interviews/{}?token={}",
            base.replacen("http", "ws", 1),
            c.id,
            c.token
        );
        let (ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("ws connect");
        Client {
            ws,
            logged: Vec::new(),
            wait: Duration::from_secs(30),
            audio_bytes: 0,
        }
    }

    /// Sends a JSON message.
    pub async fn send(&mut self, v: Value) {
        self.ws
            .send(Message::text(v.to_string()))
            .await
            .expect("send");
    }

    /// Sends a binary frame (audio).
    pub async fn send_binary(&mut self, b: Vec<u8>) {
        self.ws.send(Message::binary(b)).await.expect("send binary");
    }

    /// Sends raw text.
    pub async fn send_raw(&mut self, s: String) {
        self.ws.send(Message::text(s)).await.expect("send");
    }

    /// Sends an answer.
    pub async fn answer(&mut self, text: &str) {
        self.send(json!({"type": "answer", "text": text})).await;
    }

    /// The next JSON event (panics after `wait` or on close).
    pub async fn next(&mut self) -> Value {
        // One deadline for the whole wait: the server's heartbeat pings must not extend it.
        let deadline = tokio::time::Instant::now() + self.wait;
        loop {
            let msg = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .expect("no event within the client's wait")
                .expect("connection closed")
                .expect("ws error");
            if let Message::Binary(b) = &msg {
                self.audio_bytes += b.len();
            }
            if let Message::Text(t) = msg {
                let v: Value = serde_json::from_str(&t).expect("event is JSON");
                if v["ephemeral"] != true && v["seq"].as_u64().is_some_and(|s| s > 0) {
                    self.logged.push(v.clone());
                }
                return v;
            }
        }
    }

    /// Reads events until one matches; returns it.
    pub async fn until(&mut self, pred: impl Fn(&Value) -> bool) -> Value {
        loop {
            let v = self.next().await;
            if pred(&v) {
                return v;
            }
        }
    }

    /// Reads until the next open question or follow-up (or the report); returns it.
    pub async fn next_prompt(&mut self) -> Value {
        self.until(|v| {
            (v["type"] == "interviewer" && (v["kind"] == "question" || v["kind"] == "follow_up"))
                || v["type"] == "report"
        })
        .await
    }

    /// Answers every open question and follow-up with `answer` until the report; returns the report
    /// event.
    pub async fn finish_with(&mut self, answer: &str) -> Value {
        loop {
            let v = self.next_prompt().await;
            if v["type"] == "report" {
                return v;
            }
            self.answer(answer).await;
        }
    }

    /// Connects again and sends `resume {last_seq}`; returns the client, caught up to the `ready` event's
    /// seq, and that `ready` event.
    pub async fn reconnect(base: &str, c: &Created, last_seq: u64) -> (Client, Value) {
        let mut client = Client::connect(base, c).await;
        let ready = client.next().await;
        assert_eq!(ready["type"], "ready", "first event after connecting");
        client
            .send(json!({"type": "resume", "last_seq": last_seq}))
            .await;
        let target = ready["seq"].as_u64().expect("ready has a seq");
        while last_seq.max(client.last_seq()) < target {
            client.next().await;
        }
        (client, ready)
    }

    /// Reads until the server closes the connection; returns the close reason.
    pub async fn close_reason(&mut self) -> String {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            match tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .expect("no close within 30 s")
            {
                Some(Ok(Message::Close(frame))) => {
                    return frame.map(|f| f.reason.to_string()).unwrap_or_default()
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return String::new(),
            }
        }
    }

    /// Closes the socket abruptly (drops it).
    pub async fn drop_connection(self) {
        drop(self.ws);
    }

    /// The highest logged seq received.
    pub fn last_seq(&self) -> u64 {
        self.logged
            .iter()
            .filter_map(|v| v["seq"].as_u64())
            .max()
            .unwrap_or(0)
    }
}

/// Asserts that `events` are exactly seq 1..=n, each once, in order.
pub fn assert_contiguous(events: &[Value]) {
    for (i, e) in events.iter().enumerate() {
        assert_eq!(
            e["seq"].as_u64(),
            Some(i as u64 + 1),
            "event {i} out of order or duplicated: {e}"
        );
    }
}

/// A plausible answer.
pub const GOOD_ANSWER: &str = "I would start by measuring: profile the slow path, look at the query plan with EXPLAIN ANALYZE, add the right index, and cache hot reads with a clear invalidation strategy. For example, at my last job we cut p99 latency from 800 ms to 120 ms by batching queries, adding a composite index and using idempotency keys so retries were safe. I would monitor error rates and latency with alerts, and test under load before rollout.";

/// The evaluation of each turn's main answer: the first `evaluation` event of every turn (a
/// follow-up's answer gets a second one).
pub fn main_evaluations(events: &[Value]) -> Vec<&Value> {
    let mut seen = std::collections::HashSet::new();
    events
        .iter()
        .filter(|e| e["type"] == "evaluation" && seen.insert(e["turn"].to_string()))
        .collect()
}
