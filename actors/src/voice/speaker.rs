//! `Speaker`: the interviewer's voice for one interview (`voice: true`). A task owned by the session
//! takes the lines the session sends, synthesises them sentence by sentence through the [`TtsPool`]
//! and writes them to the attached connection as `audio_out_start {turn, kind, format, sample_rate}`,
//! binary PCM16 frames, `audio_out_end {turn}`. A streamed follow-up is spoken from its first
//! complete sentence while the rest is still being written. Audio is ephemeral: it is neither logged
//! nor replayed (the text events are).
//!
//! Barge-in: [`Speaker::stop`] drops what is queued and cuts the line being played, and reports how
//! much of it the candidate heard (the client plays frames as they arrive, so what was heard is the
//! time since the line's first frame, at most the audio sent).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use tokio::sync::mpsc;

use super::audio::pcm16_bytes;
use super::tts::{sentences, sentences_done};
use super::tts_pool::TtsPool;
use crate::conn::{ConnSlot, Outbound};
use crate::protocol::ServerEvent;

/// Samples per binary frame: 100 ms.
const FRAME_MS: u32 = 100;

/// What the session asks the speaker to do.
#[derive(Debug)]
enum Cmd {
    /// Speak a whole line.
    Line {
        turn: usize,
        kind: String,
        text: String,
        fixed: bool,
        generation: u64,
    },
    /// A piece of a streamed line.
    Delta {
        turn: usize,
        kind: String,
        delta: String,
        generation: u64,
    },
    /// The streamed line is complete.
    DeltaEnd { generation: u64 },
}

/// How much of a cut line was heard.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Heard {
    /// Turn of the line.
    pub turn: usize,
    /// Its kind (`question`, `follow_up`, ...).
    pub kind: String,
    /// Seconds of it the candidate heard.
    pub heard_s: f64,
    /// Seconds of it synthesised and sent.
    pub sent_s: f64,
}

#[derive(Debug, Default)]
struct Playing {
    line: Option<LineState>,
    /// Lines queued or being synthesised.
    pending: u32,
}

#[derive(Debug)]
struct LineState {
    turn: usize,
    kind: String,
    first_frame: Option<Instant>,
    sent_s: f64,
}

/// The handle the session holds.
pub struct Speaker {
    tx: mpsc::UnboundedSender<Cmd>,
    generation: Arc<AtomicU64>,
    playing: Arc<Mutex<Playing>>,
    /// Milliseconds of interviewer audio sent (talk-time share).
    spoken_ms: Arc<AtomicU64>,
    conn: ConnSlot,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Speaker {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Speaker {
    /// Starts the speaker task for an interview.
    pub fn start(tts: TtsPool, conn: ConnSlot, interview_id: String, spoken_ms: u64) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let generation = Arc::new(AtomicU64::new(0));
        let playing = Arc::new(Mutex::new(Playing::default()));
        let spoken = Arc::new(AtomicU64::new(spoken_ms));
        let task = tokio::spawn(run(
            rx,
            Ctx {
                tts,
                conn: conn.clone(),
                interview_id,
                generation: generation.clone(),
                playing: playing.clone(),
                spoken_ms: spoken.clone(),
            },
        ));
        Self {
            tx,
            generation,
            playing,
            spoken_ms: spoken,
            conn,
            task,
        }
    }

    /// Speaks a line after the ones queued. `fixed` lines (templates, pool questions) are cached.
    pub fn say(&self, turn: usize, kind: &str, text: &str, fixed: bool) {
        self.lock().pending += 1;
        let _ = self.tx.send(Cmd::Line {
            turn,
            kind: kind.to_string(),
            text: text.to_string(),
            fixed,
            generation: self.generation.load(Ordering::Acquire),
        });
    }

    /// A handle that feeds a streamed line from another task.
    pub fn feed(&self) -> SpeakerFeed {
        SpeakerFeed {
            tx: self.tx.clone(),
            generation: self.generation.clone(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Playing> {
        self.playing.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether the candidate may still be hearing the interviewer: a line is queued, being
    /// synthesised, or its audio has not finished playing.
    pub fn playing(&self) -> bool {
        let p = self.lock();
        p.pending > 0
            || p.line.as_ref().is_some_and(|l| match l.first_frame {
                Some(t) => t.elapsed().as_secs_f64() < l.sent_s,
                None => true,
            })
    }

    /// Barge-in: drops every queued line, cuts the one playing, and says how much of it was heard.
    pub fn stop(&self) -> Option<Heard> {
        self.generation.fetch_add(1, Ordering::AcqRel);
        let mut p = self.lock();
        p.pending = 0;
        let line = p.line.take()?;
        let heard = line
            .first_frame
            .map_or(0.0, |t| t.elapsed().as_secs_f64().min(line.sent_s));
        // Talk time counts what was heard, not what was sent.
        let unheard_ms = ((line.sent_s - heard) * 1000.0) as u64;
        let _ = self
            .spoken_ms
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |v| {
                Some(v.saturating_sub(unheard_ms))
            });
        drop(p);
        // The client stops its playback now; the task drops the rest without a second end.
        let c = self.conn.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if let Some(c) = c.filter(|c| c.is_live()) {
            let end = ServerEvent::AudioOutEnd {
                turn: line.turn,
                interrupted: Some(true),
                heard_s: Some(round2(heard)),
            };
            c.send(Outbound::Text(Arc::from(end.ephemeral_text(None))));
        }
        Some(Heard {
            turn: line.turn,
            kind: line.kind,
            heard_s: round2(heard),
            sent_s: round2(line.sent_s),
        })
    }

    /// Milliseconds of interviewer audio the candidate heard so far.
    pub fn spoken_ms(&self) -> u64 {
        self.spoken_ms.load(Ordering::Acquire)
    }
}

/// Feeds a streamed line (a follow-up question as the model writes it) to the speaker.
#[derive(Clone)]
pub struct SpeakerFeed {
    tx: mpsc::UnboundedSender<Cmd>,
    generation: Arc<AtomicU64>,
}

impl SpeakerFeed {
    /// A piece of the line; speaking starts at its first complete sentence.
    pub fn delta(&self, turn: usize, kind: &str, delta: &str) {
        let _ = self.tx.send(Cmd::Delta {
            turn,
            kind: kind.to_string(),
            delta: delta.to_string(),
            generation: self.generation.load(Ordering::Acquire),
        });
    }

    /// The line is complete: its last sentence is spoken.
    pub fn delta_end(&self) {
        let _ = self.tx.send(Cmd::DeltaEnd {
            generation: self.generation.load(Ordering::Acquire),
        });
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

struct Ctx {
    tts: TtsPool,
    conn: ConnSlot,
    interview_id: String,
    generation: Arc<AtomicU64>,
    playing: Arc<Mutex<Playing>>,
    spoken_ms: Arc<AtomicU64>,
}

impl Ctx {
    fn current(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Playing> {
        self.playing.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn send(&self, frame: Outbound) {
        let c = self.conn.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if let Some(c) = c.filter(|c| c.is_live()) {
            c.send(frame);
        }
    }

    /// Sends an ephemeral event with `seq: null` (the speaker does not track the logged seq).
    fn text(&self, ev: ServerEvent) {
        self.send(Outbound::Text(Arc::from(ev.ephemeral_text(None))));
    }

    /// Speaks one sentence of the line `(turn, kind)`; opens the line's audio first if needed.
    async fn sentence(
        &self,
        turn: usize,
        kind: &str,
        text: &str,
        fixed: bool,
        generation: u64,
        open: &mut Option<(u32, u64)>,
    ) {
        if self.current() != generation {
            return;
        }
        let spoken = self.tts.speak(text, fixed, Some(&self.interview_id)).await;
        if self.current() != generation {
            return;
        }
        let (speech, _source) = match spoken {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "interviewer line not spoken");
                let seq = self
                    .conn
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .as_ref()
                    .map_or(0, |c| c.logged_seq());
                let err = ServerEvent::Error {
                    code: crate::protocol::ErrorCode::TtsUnavailable,
                    message:
                        "the interviewer's voice is unavailable for this line; the text is on screen"
                            .into(),
                };
                self.send(Outbound::Text(Arc::from(err.ephemeral_text(Some(seq)))));
                return;
            }
        };
        // A line cut by a stop was ended for the client by the stop itself.
        if open.is_some_and(|(_, g)| g != generation) {
            *open = None;
        }
        if open.is_some_and(|(r, _)| r != speech.sample_rate) {
            self.text(ServerEvent::AudioOutEnd {
                turn,
                interrupted: None,
                heard_s: None,
            });
            *open = None;
        }
        if open.is_none() {
            self.text(ServerEvent::AudioOutStart {
                turn,
                kind: kind.to_string(),
                format: "pcm16".into(),
                sample_rate: speech.sample_rate,
            });
            *open = Some((speech.sample_rate, generation));
            self.lock().line = Some(LineState {
                turn,
                kind: kind.to_string(),
                first_frame: None,
                sent_s: 0.0,
            });
        }
        let per = (speech.sample_rate * FRAME_MS / 1000) as usize;
        for chunk in speech.samples.chunks(per.max(1)) {
            if self.current() != generation {
                return;
            }
            self.send(Outbound::Binary(Bytes::from(pcm16_bytes(chunk))));
            let secs = chunk.len() as f64 / f64::from(speech.sample_rate.max(1));
            {
                let mut p = self.lock();
                if let Some(l) = p.line.as_mut() {
                    l.first_frame.get_or_insert_with(Instant::now);
                    l.sent_s += secs;
                }
            }
            self.spoken_ms
                .fetch_add((secs * 1000.0) as u64, Ordering::AcqRel);
        }
    }

    fn close(&self, turn: usize, generation: u64, open: &mut Option<(u32, u64)>) {
        if open.take().is_some_and(|(_, g)| g == generation) && self.current() == generation {
            self.text(ServerEvent::AudioOutEnd {
                turn,
                interrupted: None,
                heard_s: None,
            });
        }
    }
}

async fn run(mut rx: mpsc::UnboundedReceiver<Cmd>, ctx: Ctx) {
    // A streamed line in progress: turn, kind, text so far, the part already spoken.
    let mut streamed: Option<(usize, String, String, usize, u64)> = None;
    let mut open: Option<(u32, u64)> = None;
    while let Some(cmd) = rx.recv().await {
        match cmd {
            Cmd::Line {
                turn,
                kind,
                text,
                fixed,
                generation,
            } => {
                for s in sentences(&text) {
                    ctx.sentence(turn, &kind, s, fixed, generation, &mut open)
                        .await;
                }
                ctx.close(turn, generation, &mut open);
                if generation == ctx.current() {
                    let mut p = ctx.lock();
                    p.pending = p.pending.saturating_sub(1);
                }
            }
            Cmd::Delta {
                turn,
                kind,
                delta,
                generation,
            } => {
                if generation != ctx.current() {
                    streamed = None;
                    continue;
                }
                if streamed.as_ref().is_some_and(|st| st.4 != generation) {
                    streamed = None;
                }
                let st = streamed
                    .get_or_insert_with(|| (turn, kind.clone(), String::new(), 0, generation));
                st.2.push_str(&delta);
                let (done, rest) = sentences_done(&st.2[st.3..]);
                let done: Vec<String> = done.into_iter().map(str::to_string).collect();
                st.3 += rest;
                let (t, k) = (st.0, st.1.clone());
                for s in done {
                    ctx.sentence(t, &k, &s, false, generation, &mut open).await;
                }
            }
            Cmd::DeltaEnd { generation } => {
                if let Some((t, k, text, spoken, g)) = streamed.take() {
                    if g == generation && generation == ctx.current() {
                        let tail = text[spoken..].trim().to_string();
                        if !tail.is_empty() {
                            ctx.sentence(t, &k, &tail, false, generation, &mut open)
                                .await;
                        }
                    }
                    ctx.close(t, generation, &mut open);
                }
            }
        }
    }
}
