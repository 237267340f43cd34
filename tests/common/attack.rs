//! Tools for the hostile-client tests: a raw WebSocket client over TCP that can write any frame
//! header (a library client refuses to send a 1 TB header), and a runner for Python scripts using
//! the `websockets` package (a real client nobody here wrote).
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::path::PathBuf;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A WebSocket connection spoken by hand.
pub struct RawWs {
    /// The socket.
    pub tcp: TcpStream,
    buf: Vec<u8>,
}

/// One frame from the server.
#[derive(Debug, Clone)]
pub struct Frame {
    /// FIN bit.
    pub fin: bool,
    /// Opcode (1 text, 2 binary, 8 close, 9 ping, 10 pong, 0 continuation).
    pub opcode: u8,
    /// Payload.
    pub payload: Vec<u8>,
}

impl Frame {
    /// The close code of a close frame.
    pub fn close_code(&self) -> Option<u16> {
        (self.opcode == 8 && self.payload.len() >= 2)
            .then(|| u16::from_be_bytes([self.payload[0], self.payload[1]]))
    }

    /// A text frame's JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.payload).unwrap_or(serde_json::Value::Null)
    }
}

/// A masked client frame header declaring `len` bytes.
pub fn header(fin: bool, opcode: u8, len: u64) -> Vec<u8> {
    let mut h = vec![if fin { 0x80 } else { 0 } | opcode];
    if len < 126 {
        h.push(0x80 | len as u8);
    } else if len <= u64::from(u16::MAX) {
        h.push(0x80 | 126);
        h.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        h.push(0x80 | 127);
        h.extend_from_slice(&len.to_be_bytes());
    }
    // A zero mask leaves the payload as it is.
    h.extend_from_slice(&[0, 0, 0, 0]);
    h
}

/// A whole masked client frame.
pub fn frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = header(fin, opcode, payload.len() as u64);
    f.extend_from_slice(payload);
    f
}

impl RawWs {
    /// Opens `path` (with its query) on `base` (`http://host:port`) with `headers`; the status and
    /// body when the server does not switch protocols.
    pub async fn connect(
        base: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Result<RawWs, (u16, String)> {
        let addr = base.trim_start_matches("http://");
        let mut tcp = TcpStream::connect(addr).await.expect("tcp connect");
        let mut req = format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        );
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        tcp.write_all(req.as_bytes()).await.expect("write upgrade");
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let n = tokio::time::timeout(Duration::from_secs(30), tcp.read(&mut chunk))
                .await
                .expect("upgrade answer in time")
                .expect("read upgrade answer");
            assert!(n > 0, "connection closed during the upgrade");
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
        let status: u16 = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        if status != 101 {
            // Read the (small) body that came with it.
            let _ = tokio::time::timeout(Duration::from_secs(2), tcp.read(&mut chunk))
                .await
                .map(|r| r.map(|n| buf.extend_from_slice(&chunk[..n])));
            let body = String::from_utf8_lossy(&buf[head_end..]).to_string();
            return Err((status, format!("{head}{body}")));
        }
        Ok(RawWs {
            tcp,
            buf: buf[head_end..].to_vec(),
        })
    }

    /// Writes raw bytes.
    pub async fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.tcp.write_all(bytes).await
    }

    /// Sends one text message as a single frame.
    pub async fn text(&mut self, s: &str) -> std::io::Result<()> {
        self.write(&frame(true, 1, s.as_bytes())).await
    }

    /// The next frame, or None when the connection ended (or `wait` passed).
    pub async fn read_frame(&mut self, wait: Duration) -> Option<Frame> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some((f, used)) = parse_server_frame(&self.buf) {
                self.buf.drain(..used);
                return Some(f);
            }
            let mut chunk = [0u8; 65536];
            let n = match tokio::time::timeout_at(deadline, self.tcp.read(&mut chunk)).await {
                Ok(Ok(n)) if n > 0 => n,
                _ => return None,
            };
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Reads frames until a text frame whose JSON satisfies `pred`.
    pub async fn until(&mut self, pred: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
        loop {
            let f = self
                .read_frame(Duration::from_secs(30))
                .await
                .expect("a frame before the connection ended");
            if f.opcode == 1 {
                let v = f.json();
                if pred(&v) {
                    return v;
                }
            }
        }
    }
}

/// Parses one unmasked server frame from `b`: the frame and the bytes it used.
fn parse_server_frame(b: &[u8]) -> Option<(Frame, usize)> {
    if b.len() < 2 {
        return None;
    }
    let (mut i, len7) = (2usize, (b[1] & 0x7F) as u64);
    let len = match len7 {
        126 => {
            if b.len() < 4 {
                return None;
            }
            i = 4;
            u64::from(u16::from_be_bytes([b[2], b[3]]))
        }
        127 => {
            if b.len() < 10 {
                return None;
            }
            i = 10;
            u64::from_be_bytes(b[2..10].try_into().unwrap())
        }
        n => n,
    } as usize;
    if b.len() < i + len {
        return None;
    }
    Some((
        Frame {
            fin: b[0] & 0x80 != 0,
            opcode: b[0] & 0x0F,
            payload: b[i..i + len].to_vec(),
        },
        i + len,
    ))
}

/// The Python with `websockets` installed: `IE_TEST_PYTHON`, else the venv `.ci/run` makes.
pub fn python() -> PathBuf {
    let p = std::env::var_os("IE_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default())
                .join(".cache/interview-engine/py/bin/python")
        });
    let ok = std::process::Command::new(&p)
        .args(["-c", "import websockets"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "{} cannot import websockets: run .ci/run once, or point IE_TEST_PYTHON at a Python with `pip install websockets`",
        p.display()
    );
    p
}

/// Runs a Python script (source in `code`) with `args`; returns its stdout, panicking with its
/// stderr when it fails. Each stdout line the scripts print is one JSON value.
pub async fn run_python(code: &str, args: &[String]) -> Vec<serde_json::Value> {
    let py = python();
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("client.py");
    std::fs::write(&script, code).unwrap();
    let out = tokio::time::timeout(
        Duration::from_secs(120),
        tokio::process::Command::new(py)
            .arg(&script)
            .args(args)
            .output(),
    )
    .await
    .expect("python client finished within 120 s")
    .expect("run python");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "python client failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("not JSON: {l}")))
        .collect()
}
