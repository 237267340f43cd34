//! `VoiceInput`: one per connection that sends audio. It takes `audio_start`, the binary PCM16 frames
//! and `audio_end` from the connection (which only forwards them), runs the endpointer, and sends each
//! finished utterance to speech-to-text in a task of its own, so frames keep flowing while it is
//! transcribed. What it learns goes to the interview's session as client messages (speech started:
//! a possible barge-in; a spoken answer with its transcript and word timings), through the same path
//! as the connection's own messages. Bad audio gets an `error` event and changes nothing.
//!
//! The frames wait in the actor's mailbox: none is dropped, however the engine is loaded.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use ractor::{Actor, ActorProcessingErr, ActorRef};

use super::audio::{self, check_format, pcm16_samples};
use super::stt_pool::{SttError, SttPool};
use super::vad::{EndedBy, EndpointConfig, Endpointer, Utterance, VadEvent};
use super::{Word, MAX_WORDS};
use crate::conn::{ConnHandle, Outbound};
use crate::protocol::{ErrorCode, ServerEvent, SpeechState};
use crate::session::{SpokenAnswer, VoiceEvent};

/// Binary frames taken by every voice input of this process (status: frames sent by clients minus
/// these is what was lost, which must stay 0).
pub static FRAMES_RECEIVED: AtomicU64 = AtomicU64::new(0);
/// Milliseconds of audio those frames held.
pub static AUDIO_MS_RECEIVED: AtomicU64 = AtomicU64::new(0);

/// Where the input's results go: the connection's path to the session (it finds a restarted one).
pub type Forward = Arc<dyn Fn(VoiceEvent) + Send + Sync>;

/// The connection's read permit held by a frame until it is handled (bounded audio in flight).
pub type FramePermit = tokio::sync::OwnedSemaphorePermit;

/// Messages of the voice input actor.
#[derive(Debug)]
pub enum VoiceInputMsg {
    /// `audio_start`.
    Start {
        /// `pcm16`.
        format: String,
        /// 16000, 24000 or 48000.
        sample_rate: u32,
        /// 1.
        channels: u32,
        /// Whether the server ends utterances on silence (else only `audio_end` does).
        endpointing: bool,
    },
    /// A binary frame, with the connection's read permit (released once the frame is handled).
    Frame(Bytes, Option<FramePermit>),
    /// The connection ended: stop once the transcriptions in flight are delivered.
    Close,
    /// `audio_end`.
    End,
    /// A transcription finished.
    Transcribed(Box<Transcription>),
}

/// A finished transcription, back from its task.
#[derive(Debug)]
pub struct Transcription {
    result: Result<super::stt_pool::Transcribed, SttError>,
    duration_s: f64,
    ended_at: Instant,
}

/// What the actor starts with.
pub struct VoiceInputArgs {
    /// Speech-to-text.
    pub stt: SttPool,
    /// Endpointing settings.
    pub endpoint: EndpointConfig,
    /// The interview (STT node affinity).
    pub interview_id: String,
    /// The connection, for events that concern it alone (errors, speech started/ended).
    pub conn: ConnHandle,
    /// The way to the session.
    pub forward: Forward,
}

/// The actor's state.
pub struct VoiceInputState {
    args: VoiceInputArgs,
    stream: Option<Endpointer>,
    /// Frames refused since the last error event (one event per burst, not per frame).
    refused: u32,
    /// Transcriptions running.
    in_flight: u32,
    /// The connection ended: stop when nothing is in flight.
    closing: bool,
}

/// The actor.
pub struct VoiceInput;

impl VoiceInputState {
    /// Sends an ephemeral event with `seq: null` (as the voice activity events always were).
    fn send(&self, ev: ServerEvent) {
        self.args
            .conn
            .send(Outbound::Text(Arc::from(ev.ephemeral_text(None))));
    }

    fn error(&self, code: ErrorCode, message: &str) {
        let ev = ServerEvent::Error {
            code,
            message: message.to_string(),
        };
        let seq = self.args.conn.logged_seq();
        self.args
            .conn
            .send(Outbound::Text(Arc::from(ev.ephemeral_text(Some(seq)))));
    }

    fn frame(&mut self, myself: &ActorRef<VoiceInputMsg>, bytes: &[u8]) {
        let Some(stream) = self.stream.as_mut() else {
            self.refused += 1;
            if self.refused == 1 {
                self.error(
                    ErrorCode::AudioNotStarted,
                    "binary frames need an audio_start first: {\"type\":\"audio_start\",\"format\":\"pcm16\",\"sample_rate\":16000,\"channels\":1}",
                );
            }
            return;
        };
        let samples = match pcm16_samples(bytes) {
            Ok(s) => s,
            Err(e) => {
                self.error(
                    ErrorCode::InvalidAudio,
                    &format!("{e}; the frame was dropped"),
                );
                return;
            }
        };
        self.refused = 0;
        FRAMES_RECEIVED.fetch_add(1, Ordering::Relaxed);
        AUDIO_MS_RECEIVED.fetch_add(
            samples.len() as u64 * 1000 / u64::from(stream.rate().max(1)),
            Ordering::Relaxed,
        );
        let events = stream.push(&samples);
        for ev in events {
            match ev {
                VadEvent::SpeechStarted => {
                    self.send(ServerEvent::Speech {
                        state: SpeechState::Started,
                        duration_s: None,
                    });
                    (self.args.forward)(VoiceEvent::SpeechStarted);
                }
                VadEvent::Ended(u) => self.utterance(myself, u),
            }
        }
    }

    fn utterance(&mut self, myself: &ActorRef<VoiceInputMsg>, u: Utterance) {
        let duration_s = u.duration_s();
        self.send(ServerEvent::Speech {
            state: SpeechState::Ended,
            duration_s: Some((duration_s * 100.0).round() / 100.0),
        });
        if u.ended_by == EndedBy::MaxLength {
            let max = self.args.endpoint.max_utterance_s;
            self.error(
                ErrorCode::UtteranceTooLong,
                &format!("an answer is at most {max} s: the first {max} s are transcribed; the rest of it was not heard"),
            );
        }
        let wav = match audio::wav(&u.samples, u.rate) {
            Ok(w) => Arc::new(w),
            Err(e) => {
                self.error(ErrorCode::InvalidAudio, &e.to_string());
                return;
            }
        };
        drop(u);
        let stt = self.args.stt.clone();
        let id = self.args.interview_id.clone();
        let me = myself.clone();
        let ended_at = Instant::now();
        self.in_flight += 1;
        tokio::spawn(async move {
            let result = stt.transcribe(wav, duration_s, Some(&id)).await;
            let _ = me.cast(VoiceInputMsg::Transcribed(Box::new(Transcription {
                result,
                duration_s,
                ended_at,
            })));
        });
    }

    fn transcribed(&mut self, t: Transcription) {
        self.in_flight = self.in_flight.saturating_sub(1);
        match t.result {
            Ok(done) => {
                let text = done.heard.text.trim().to_string();
                if text.is_empty() {
                    self.error(
                        ErrorCode::NoSpeech,
                        "speech-to-text heard no words in that answer: speak again or type it",
                    );
                    return;
                }
                let mut words: Vec<Word> = done.heard.words;
                words.truncate(MAX_WORDS);
                (self.args.forward)(VoiceEvent::Spoken(SpokenAnswer {
                    text,
                    audio_duration_s: Some(t.duration_s),
                    words,
                    word_times_exact: done.heard.word_times_exact,
                    transcribed_by: Some(done.source),
                    stt_ms: Some(done.elapsed.as_millis() as u64),
                    turn: None,
                    seq: None,
                }));
                tracing::debug!(since_end_ms = t.ended_at.elapsed().as_millis() as u64, "spoken answer forwarded");
            }
            Err(SttError::Refused(why)) => self.error(
                ErrorCode::InvalidAudio,
                &format!("speech-to-text could not read that audio ({why}); type the answer or try again"),
            ),
            Err(e) => self.error(
                ErrorCode::SttUnavailable,
                &format!("{e}; the answer was not heard: type it, or speak again in a moment"),
            ),
        }
    }
}

#[ractor::async_trait]
impl Actor for VoiceInput {
    type Msg = VoiceInputMsg;
    type State = VoiceInputState;
    type Arguments = VoiceInputArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<VoiceInputMsg>,
        args: VoiceInputArgs,
    ) -> Result<VoiceInputState, ActorProcessingErr> {
        Ok(VoiceInputState {
            args,
            stream: None,
            refused: 0,
            in_flight: 0,
            closing: false,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<VoiceInputMsg>,
        msg: VoiceInputMsg,
        state: &mut VoiceInputState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            VoiceInputMsg::Start {
                format,
                sample_rate,
                channels,
                endpointing,
            } => match check_format(&format, sample_rate, channels) {
                Ok(rate) => {
                    // An open utterance is finished first: nothing said is dropped.
                    if let Some(u) = state.stream.as_mut().and_then(Endpointer::finish) {
                        state.utterance(&myself, u);
                    }
                    let mut cfg = state.args.endpoint;
                    if !endpointing {
                        // Client endpointing: only `audio_end` (or the length limit) ends an answer.
                        cfg.silence_ms = cfg
                            .max_utterance_s
                            .saturating_mul(1000)
                            .saturating_add(1000);
                    }
                    state.stream = Some(Endpointer::new(rate, cfg));
                    state.refused = 0;
                }
                Err(e) => {
                    state.stream = None;
                    state.error(ErrorCode::AudioFormatUnsupported, &e.to_string());
                }
            },
            VoiceInputMsg::Frame(b, permit) => {
                state.frame(&myself, &b);
                drop(permit);
            }
            VoiceInputMsg::End => match state.stream.as_mut() {
                None => state.error(ErrorCode::AudioNotStarted, "audio_end without audio_start"),
                Some(s) => match s.finish() {
                    Some(u) => state.utterance(&myself, u),
                    None => state.error(
                        ErrorCode::NoSpeech,
                        "no speech was heard in that audio: speak again or type the answer",
                    ),
                },
            },
            VoiceInputMsg::Transcribed(t) => state.transcribed(*t),
            VoiceInputMsg::Close => {
                // What was said before the socket closed is still transcribed and delivered.
                if let Some(u) = state.stream.as_mut().and_then(Endpointer::finish) {
                    state.utterance(&myself, u);
                }
                state.stream = None;
                state.closing = true;
            }
        }
        if state.closing && state.in_flight == 0 {
            myself.stop(Some("connection closed".into()));
        }
        Ok(())
    }
}
