//! Voice test tools: the local speech nodes installed by `.ci/install-voice` (faster-whisper-server
//! for speech-to-text, the Piper adapter in `tests/tools/` for text-to-speech), speech synthesised by
//! espeak-ng and resampled by sox, and PCM16 helpers. Nodes are child processes killed on drop.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::ws::Client;

const INSTALL: &str = "the voice nodes are not installed: run .ci/install-voice (it writes ~/.cache/interview-engine/voice/env; Debian packages espeak-ng and sox are needed too)";

/// What `.ci/install-voice` wrote.
pub struct VoiceEnv {
    /// The venv's python.
    pub python: String,
    /// faster-whisper-server's model config (tiny.en).
    pub whisper_config: String,
    /// The Piper voice (.onnx).
    pub piper_voice: String,
}

impl VoiceEnv {
    /// Reads the env file; panics with the install command when it is missing.
    pub fn load() -> VoiceEnv {
        let home = std::env::var("IE_VOICE_HOME").unwrap_or_else(|_| {
            format!(
                "{}/.cache/interview-engine/voice",
                std::env::var("HOME").unwrap_or_default()
            )
        });
        let text =
            std::fs::read_to_string(format!("{home}/env")).unwrap_or_else(|_| panic!("{INSTALL}"));
        let get = |k: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(&format!("{k}=")))
                .map(|v| v.trim_matches('\'').to_string())
                .unwrap_or_else(|| panic!("{INSTALL} ({k} missing)"))
        };
        let env = VoiceEnv {
            python: get("VOICE_PYTHON"),
            whisper_config: get("WHISPER_CONFIG"),
            piper_voice: get("PIPER_VOICE_MODEL"),
        };
        for p in [&env.python, &env.whisper_config, &env.piper_voice] {
            assert!(std::path::Path::new(p).exists(), "{INSTALL} ({p} missing)");
        }
        env
    }
}

/// A speech node process.
pub struct Node {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn tool(name: &str) -> String {
    format!("{}/tests/tools/{name}", env!("CARGO_MANIFEST_DIR"))
}

impl Node {
    fn start(mut cmd: Command, what: &str) -> Node {
        let mut child = cmd
            .env("HF_HUB_OFFLINE", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("{what}: {e}; {INSTALL}"));
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(l)) = lines.next() {
                let _ = tx.send(l);
            }
            for _ in lines {}
        });
        let line = match rx.recv_timeout(Duration::from_secs(120)) {
            Ok(l) => l,
            Err(_) => {
                let _ = child.kill();
                panic!("{what} did not start within 120 s; {INSTALL}");
            }
        };
        let url = line
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("{what}: unexpected first line {line:?}"))
            .trim()
            .to_string();
        Node { child, url }
    }

    /// faster-whisper-server with tiny.en on a port the OS picks.
    pub fn whisper(env: &VoiceEnv) -> Node {
        let mut cmd = Command::new(&env.python);
        cmd.arg(tool("whisper_node.py")).arg(&env.whisper_config);
        Self::start(cmd, "faster-whisper-server")
    }

    /// The Piper text-to-speech adapter on a port the OS picks.
    pub fn piper(env: &VoiceEnv) -> Node {
        let mut cmd = Command::new(&env.python);
        cmd.arg(tool("piper_speech_server.py"))
            .arg(&env.piper_voice);
        Self::start(cmd, "piper adapter")
    }

    /// Waits for `GET /health` to answer 200 (60 s at most).
    pub async fn wait_healthy(&self) {
        let http = reqwest::Client::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(r) = http.get(format!("{}/health", self.url)).send().await {
                if r.status().is_success() {
                    return;
                }
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "node {} not healthy",
                self.url
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// `text` spoken by espeak-ng, as mono PCM16 at `rate` (sox resamples).
pub fn speech(text: &str, rate: u32) -> Vec<i16> {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("raw.wav");
    let out = dir.path().join("out.wav");
    let ok = Command::new("espeak-ng")
        .args(["-v", "en-us", "-s", "150", "-w"])
        .arg(&raw)
        .arg(text)
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "espeak-ng failed; {INSTALL}");
    let ok = Command::new("sox")
        .arg(&raw)
        .args(["-r", &rate.to_string(), "-c", "1", "-b", "16"])
        .arg(&out)
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "sox failed; {INSTALL}");
    let (samples, r) = actors::voice::audio::read_wav(&std::fs::read(out).unwrap()).expect("wav");
    assert_eq!(r, rate);
    samples
}

/// `secs` of digital silence.
pub fn silence(rate: u32, secs: f64) -> Vec<i16> {
    vec![0; (f64::from(rate) * secs) as usize]
}

/// Little-endian PCM16 bytes.
pub fn pcm(samples: &[i16]) -> Vec<u8> {
    actors::voice::audio::pcm16_bytes(samples)
}

/// Sends `samples` as binary frames of `frame_ms` (as fast as the socket takes them).
pub async fn stream(client: &mut Client, samples: &[i16], rate: u32, frame_ms: u32) {
    let per = (rate * frame_ms / 1000) as usize;
    for chunk in samples.chunks(per.max(1)) {
        client.send_binary(pcm(chunk)).await;
    }
}
