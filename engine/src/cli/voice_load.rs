//! `loadtest --audio FILE.wav`: each candidate answers by speaking. The WAV (mono PCM16 at 16, 24 or
//! 48 kHz) is streamed after `audio_start` in 20 ms binary frames, paced in real time (as a person
//! speaks) unless `--audio-fast`, and ended with `audio_end` (the end of speech). The figures: end of
//! speech → first `interviewer` event, the speech-to-text time the server reports in `transcript`
//! (`stt_ms`), their difference (the engine's own share), and frames sent, to compare with the
//! frames the server says it received (`/api/system_status` → `voice.frames_received`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::SinkExt;
use hdrhistogram::Histogram;
use serde::Serialize;
use serde_json::{json, Value};
use tokio::sync::Mutex;
use tokio_tungstenite::tungstenite::Message;

use super::loadtest::Percentiles;

/// The spoken answer every candidate gives.
#[derive(Debug)]
pub struct AudioAnswer {
    /// Samples.
    pub samples: Vec<i16>,
    /// Their rate.
    pub rate: u32,
    /// Pace frames in real time (else as fast as the socket takes them).
    pub realtime: bool,
}

impl AudioAnswer {
    /// Reads a WAV file.
    pub fn load(path: &std::path::Path, realtime: bool) -> Result<AudioAnswer, String> {
        let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let (samples, rate) = actors::voice::audio::read_wav(&bytes)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        actors::voice::audio::check_format("pcm16", rate, 1).map_err(|e| {
            format!(
                "{}: {e} (resample it, e.g. sox in.wav -r 16000 out.wav)",
                path.display()
            )
        })?;
        Ok(AudioAnswer {
            samples,
            rate,
            realtime,
        })
    }

    /// Length in seconds.
    pub fn duration_s(&self) -> f64 {
        self.samples.len() as f64 / f64::from(self.rate)
    }
}

/// The voice figures of a run.
#[derive(Debug, Clone, Serialize)]
pub struct VoiceFigures {
    /// Spoken answers sent.
    pub answers: u64,
    /// Length of each, seconds.
    pub utterance_s: f64,
    /// Binary frames sent by all candidates.
    pub frames_sent: u64,
    /// Frames the server took during the run (`voice.frames_received` delta), when readable.
    pub frames_received: Option<u64>,
    /// `frames_sent - frames_received`: must be 0.
    pub frames_dropped: Option<i64>,
    /// End of speech (`audio_end` sent) → first `interviewer` event, ms.
    pub speech_end_to_interviewer_ms: Percentiles,
    /// Its 95th percentile (the target's figure), ms.
    pub speech_end_to_interviewer_p95_ms: f64,
    /// The engine's own share at the 95th percentile, ms.
    pub engine_share_p95_ms: f64,
    /// Speech-to-text time as the server reports it (`transcript.stt_ms`).
    pub stt_ms: Percentiles,
    /// The engine's own share: the first minus the second, per answer.
    pub engine_share_ms: Percentiles,
}

/// Shared counters of a run.
pub struct VoiceRecorder {
    total: Mutex<Histogram<u64>>,
    stt: Mutex<Histogram<u64>>,
    engine: Mutex<Histogram<u64>>,
    frames: AtomicU64,
    answers: AtomicU64,
}

impl VoiceRecorder {
    /// Empty.
    pub fn new() -> Result<Self, String> {
        let h = || {
            Histogram::<u64>::new(3)
                .map(Mutex::new)
                .map_err(|e| e.to_string())
        };
        Ok(Self {
            total: h()?,
            stt: h()?,
            engine: h()?,
            frames: AtomicU64::new(0),
            answers: AtomicU64::new(0),
        })
    }

    /// One answer's figures: end of speech → interviewer, and the server's STT time.
    pub async fn record(&self, total: Duration, stt_ms: Option<u64>) {
        let us = total.as_micros() as u64;
        let _ = self.total.lock().await.record(us.max(1));
        if let Some(s) = stt_ms {
            let _ = self.stt.lock().await.record((s * 1000).max(1));
            let engine = us.saturating_sub(s * 1000);
            let _ = self.engine.lock().await.record(engine.max(1));
        }
    }

    /// The figures.
    pub async fn figures(
        &self,
        answer: &AudioAnswer,
        frames_received: Option<u64>,
    ) -> VoiceFigures {
        let p = |h: &Histogram<u64>| {
            let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
            Percentiles {
                p50: ms(0.5),
                p90: ms(0.9),
                p99: ms(0.99),
                max: h.max() as f64 / 1000.0,
            }
        };
        let sent = self.frames.load(Ordering::Relaxed);
        let p95 = |h: &Histogram<u64>| h.value_at_quantile(0.95) as f64 / 1000.0;
        // One guard at a time (a second lock of the same mutex in one expression would wait forever).
        let total = self.total.lock().await.clone();
        let stt = self.stt.lock().await.clone();
        let engine = self.engine.lock().await.clone();
        VoiceFigures {
            answers: self.answers.load(Ordering::Relaxed),
            utterance_s: answer.duration_s(),
            frames_sent: sent,
            frames_received,
            frames_dropped: frames_received.map(|r| sent as i64 - r as i64),
            speech_end_to_interviewer_ms: p(&total),
            speech_end_to_interviewer_p95_ms: p95(&total),
            engine_share_p95_ms: p95(&engine),
            stt_ms: p(&stt),
            engine_share_ms: p(&engine),
        }
    }
}

/// Speaks one answer on `ws`: `audio_start` (first time), the frames, `audio_end`. Returns when the
/// end was sent.
pub async fn speak<S>(
    ws: &mut S,
    answer: &AudioAnswer,
    first: bool,
    rec: &VoiceRecorder,
) -> Result<(), String>
where
    S: futures::Sink<Message> + Unpin,
    S::Error: std::fmt::Display,
{
    if first {
        let start = json!({"type": "audio_start", "format": "pcm16", "sample_rate": answer.rate, "channels": 1, "endpointing": "client"});
        ws.send(Message::text(start.to_string()))
            .await
            .map_err(|e| format!("send: {e}"))?;
    }
    let per = (answer.rate / 50) as usize; // 20 ms
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    for chunk in answer.samples.chunks(per) {
        if answer.realtime {
            tick.tick().await;
        }
        ws.send(Message::binary(actors::voice::audio::pcm16_bytes(chunk)))
            .await
            .map_err(|e| format!("send audio: {e}"))?;
        rec.frames.fetch_add(1, Ordering::Relaxed);
    }
    ws.send(Message::text(json!({"type": "audio_end"}).to_string()))
        .await
        .map_err(|e| format!("send: {e}"))?;
    rec.answers.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

/// `voice.frames_received` from `/api/system_status`.
pub async fn frames_received(
    http: &reqwest::Client,
    url: &str,
    admin: Option<&str>,
) -> Option<u64> {
    let mut rb = http.get(format!("{url}/api/system_status"));
    if let Some(t) = admin {
        rb = rb.bearer_auth(t);
    }
    let v: Value = rb.send().await.ok()?.json().await.ok()?;
    v["voice"]["frames_received"].as_u64()
}

/// Keeps one answer's timing until its first interviewer event.
#[derive(Debug, Default)]
pub struct Pending {
    /// When `audio_end` was sent.
    pub ended: Option<Instant>,
    /// The transcript's `stt_ms`.
    pub stt_ms: Option<u64>,
}

impl Pending {
    /// An event arrived: returns the figures to record when it is the first interviewer event.
    pub fn on_event(&mut self, v: &Value) -> Option<(Duration, Option<u64>)> {
        match v["type"].as_str() {
            Some("transcript") if self.ended.is_some() => {
                self.stt_ms = v["stt_ms"].as_u64();
                None
            }
            Some("interviewer") => {
                let t0 = self.ended.take()?;
                Some((t0.elapsed(), self.stt_ms.take()))
            }
            _ => None,
        }
    }
}

/// The handle shared by the workers.
pub type Recorder = Arc<VoiceRecorder>;
