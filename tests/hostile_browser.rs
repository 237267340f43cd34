//! A real browser's large WebSocket messages: headless Chromium (over WebDriver) opens an interview's
//! socket and sends a 200 KB answer (accepted and graded when `server.max_ws_frame_bytes` allows it)
//! and a 2 MB one (one `frame_too_large`, the connection stays open). Chromium splits large messages
//! into frames, so this needs the server to reassemble continuations, and to answer an oversized
//! message once, not once per fragment.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::browser::Browser;
use common::server::Engine;
use common::ws::create;
use serde_json::json;

const SCRIPT: &str = r#"
const [url, okSize, bigSize] = arguments;
window.__hostile = { events: [], done: false, closed: null };
const st = window.__hostile;
const ws = new WebSocket(url);
let phase = 'question';
ws.onclose = (e) => { st.closed = e.code; st.done = true; };
ws.onmessage = (m) => {
  const e = JSON.parse(m.data);
  st.events.push({ type: e.type, kind: e.kind, code: e.code, seq: e.seq, turn: e.turn });
  if (phase === 'question' && e.type === 'interviewer' && e.kind === 'question') {
    st.questionSeq = e.seq;
    phase = 'big';
    ws.send(JSON.stringify({ type: 'answer', text: 'b'.repeat(bigSize), turn: e.turn, seq: e.seq }));
    ws.send(JSON.stringify({ type: 'ping' }));
  } else if (phase === 'big' && e.type === 'pong') {
    phase = 'ok';
    ws.send(JSON.stringify({ type: 'answer', text: 'I would add an index. '.repeat(okSize / 22), turn: 1, seq: st.questionSeq }));
  } else if (phase === 'ok' && (e.type === 'evaluation' || e.type === 'error')) {
    st.done = true;
    ws.close();
  }
};
return true;
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_sends_large_messages_that_are_reassembled_or_refused_once() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = "[server]\nbind = \"127.0.0.1:0\"\nmax_ws_frame_bytes = 262144\n[storage]\npath = \"data\"\n";
    let engine = Engine::start(dir.path(), cfg, &[]);
    let c = create(
        &engine.base,
        json!({"candidate": {"name": "Chrome"}, "questions": 2}),
    )
    .await;
    let b = Browser::start().await;
    b.goto(&format!("{}/healthz", engine.base)).await;
    let url = format!(
        "{}/ws/interviews/{}?token={}",
        engine.base.replacen("http", "ws", 1),
        c.id,
        c.token
    );
    b.exec(
        SCRIPT,
        vec![json!(url), json!(200 * 1024), json!(2 * 1024 * 1024)],
    )
    .await;
    let st = b
        .wait_until(
            "return window.__hostile.done ? window.__hostile : null;",
            Duration::from_secs(60),
            "the browser's exchange",
        )
        .await;
    let events = st["events"].as_array().unwrap();
    let errors: Vec<_> = events.iter().filter(|e| e["type"] == "error").collect();
    assert_eq!(errors.len(), 1, "one error for the 2 MB message: {st}");
    assert_eq!(errors[0]["code"], "frame_too_large", "{st}");
    assert_eq!(errors[0]["seq"], st["questionSeq"], "{st}");
    let last = events.last().unwrap();
    assert_eq!(
        last["type"], "evaluation",
        "the 200 KB answer was read and graded: {st}"
    );
    assert_eq!(last["turn"], 1);
    b.quit().await;
}
