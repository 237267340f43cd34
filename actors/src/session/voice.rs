//! The session's side of voice: spoken answers (a `transcript` event committed with the answer, then
//! the answer as if typed, word timings kept for the report), barge-in (speech while the interviewer
//! is speaking or a follow-up is streaming acts as `interrupt`, and what was heard is recorded), the
//! interviewer's lines handed to the [`Speaker`] after they are committed, and one gentle re-prompt
//! when a speaking candidate has been quiet for `voice.away_s`.

use std::time::Duration;

use ractor::{ActorProcessingErr, ActorRef};
use serde_json::Value;

use super::{now_ms, SessionMsg, SessionState};
use crate::interview::{Phase, SpokenTurn};
use crate::protocol::{LineKind, ServerEvent};
use crate::voice::speaker::{Speaker, SpeakerFeed};
use crate::voice::tts_pool::TtsPool;
use crate::voice::{Word, MAX_WORDS, REPROMPTS};

/// Spoken answers kept per interview at most (a question may be answered, then followed up).
const MAX_SPOKEN: usize = 200;
/// Barge-ins kept per interview at most.
const MAX_BARGE_INS: usize = 200;

/// What sessions share for voice.
pub struct VoiceDeps {
    /// The interviewer's voice, when text-to-speech is configured.
    pub tts: Option<TtsPool>,
    /// A speaking candidate quiet this long gets one re-prompt per question.
    pub away: Duration,
}

/// A spoken answer as the session receives it.
#[derive(Debug, Clone, PartialEq)]
pub struct SpokenAnswer {
    /// What was said.
    pub text: String,
    /// Length of the audio.
    pub audio_duration_s: Option<f64>,
    /// Words with times (may be empty).
    pub words: Vec<Word>,
    /// Whether the word times are exact (else spread over segments).
    pub word_times_exact: bool,
    /// `stt:<node>` / `stt:<provider>` when the server transcribed it; `None` for a pipeline's own.
    pub transcribed_by: Option<String>,
    /// Time speech-to-text took.
    pub stt_ms: Option<u64>,
    /// The question (turn) it answers, when the client said.
    pub turn: Option<u32>,
    /// The prompt's seq it answers, when the client said.
    pub seq: Option<u64>,
}

/// What a connection's voice input tells the session.
#[derive(Debug, Clone, PartialEq)]
pub enum VoiceEvent {
    /// A spoken answer, transcribed.
    Spoken(SpokenAnswer),
    /// The candidate started speaking.
    SpeechStarted,
}

/// One interviewer line to speak.
pub(super) struct Line {
    turn: usize,
    kind: String,
    text: String,
    fixed: bool,
}

/// Voice state of one session (not durable: a restarted session starts a new speaker).
#[derive(Default)]
pub(super) struct VoiceState {
    speaker: Option<Speaker>,
    /// Audio arrived on this interview: it is a speaking interview (re-prompts apply).
    heard_audio: bool,
    /// The question (index, follow-up) already re-prompted.
    reprompted: Option<(usize, bool)>,
    last_activity_ms: i64,
    /// The follow-up being streamed is also being spoken.
    stream_aloud: bool,
    /// The next follow-up line was spoken while it streamed.
    pub(super) skip_follow_up: bool,
    /// The spoken answer being handled: recorded when the answer is accepted.
    pending: Option<SpokenTurn>,
}

impl VoiceState {
    /// Whether speech plays no part in this session (nothing spoken, nothing heard, nothing
    /// pending): its state is then all in the record, and it may hibernate.
    pub(super) fn is_quiet(&self) -> bool {
        self.speaker.is_none() && !self.heard_audio && self.pending.is_none()
    }

    /// Whether a follow-up from `source` was spoken as it streamed.
    pub(super) fn streamed_aloud(&self, source: &str) -> bool {
        self.stream_aloud && source != "pool"
    }

    /// The speaker's feed for a streamed follow-up, when the interviewer speaks.
    pub(super) fn stream_feed(&mut self) -> Option<SpeakerFeed> {
        let f = self.speaker.as_ref().map(Speaker::feed);
        self.stream_aloud = f.is_some();
        f
    }
}

impl SessionState {
    /// Starts the interviewer's voice for a voice interview (text-to-speech configured).
    pub(super) fn start_voice(&mut self) {
        if self.rec.phase.is_finished() || !self.rec.voice.enabled {
            return;
        }
        let Some(tts) = self.deps.voice.as_ref().and_then(|v| v.tts.clone()) else {
            return;
        };
        self.voice.speaker = Some(Speaker::start(
            tts,
            self.conn.clone(),
            self.rec.id.clone(),
            self.rec.voice.interviewer_ms,
        ));
    }

    /// How often the idle check runs: often enough for the re-prompt when voice is configured.
    pub(super) fn idle_check_every(&self) -> Duration {
        let d = Duration::from_secs(30)
            .min(self.deps.idle_timeout)
            .min(self.deps.pending_ttl)
            .min(
                self.deps
                    .hibernate_after
                    .map_or(Duration::MAX, |h| (h / 2).max(Duration::from_secs(1))),
            );
        match &self.deps.voice {
            Some(v) => d.min((v.away / 2).max(Duration::from_millis(200))),
            None => d,
        }
    }

    /// The interviewer lines among `events`, when the interviewer speaks.
    pub(super) fn lines_to_speak(&mut self, events: &[ServerEvent]) -> Vec<Line> {
        let Some(sp) = &self.voice.speaker else {
            return Vec::new();
        };
        self.rec.voice.interviewer_ms = sp.spoken_ms();
        events
            .iter()
            .filter_map(|e| match e {
                ServerEvent::Interviewer {
                    turn,
                    kind,
                    text,
                    source,
                } => Some(Line {
                    turn: *turn,
                    kind: kind.as_str().to_string(),
                    text: text.clone(),
                    // Templates and pool questions are the same for everyone: synthesised once.
                    fixed: matches!(source.as_str(), "template" | "pool"),
                }),
                _ => None,
            })
            .collect()
    }

    /// Speaks committed lines (a follow-up spoken while it streamed is skipped).
    pub(super) fn speak(&mut self, lines: Vec<Line>) {
        let Some(sp) = &self.voice.speaker else {
            return;
        };
        for l in lines {
            if l.kind == "follow_up" && std::mem::take(&mut self.voice.skip_follow_up) {
                continue;
            }
            sp.say(l.turn, &l.kind, &l.text, l.fixed);
        }
    }

    fn touch(&mut self) {
        let now = now_ms();
        self.voice.heard_audio = true;
        self.voice.last_activity_ms = now;
        // Speaking is activity: the idle expiry counts from here.
        self.rec.updated_ms = self.rec.updated_ms.max(now);
    }

    /// Cuts the interviewer's speech (barge-in or `interrupt`) and records how much was heard.
    pub(super) fn barge_in(&mut self) {
        if let Some(heard) = self.voice.speaker.as_ref().and_then(Speaker::stop) {
            if self.rec.voice.barge_ins.len() < MAX_BARGE_INS {
                self.rec.voice.barge_ins.push(heard);
            }
        }
    }

    /// The candidate started speaking: a barge-in when the interviewer is speaking or a follow-up is
    /// streaming.
    pub(super) async fn on_speech_started(
        &mut self,
        myself: &ActorRef<SessionMsg>,
    ) -> Result<(), ActorProcessingErr> {
        self.touch();
        let talking = self.voice.speaker.as_ref().is_some_and(Speaker::playing);
        if talking || self.stream.is_some() {
            self.interrupt(myself).await?;
        }
        Ok(())
    }

    /// What a connection's voice input heard. A spoken answer is taken from any connection of the
    /// interview (the one that sent it may have been replaced while it was transcribed); speech
    /// starting counts only from the attached one.
    pub(super) async fn on_voice(
        &mut self,
        myself: &ActorRef<SessionMsg>,
        conn_id: u64,
        ev: VoiceEvent,
    ) -> Result<(), ActorProcessingErr> {
        match ev {
            VoiceEvent::Spoken(a) => self.on_spoken(myself, a).await,
            VoiceEvent::SpeechStarted => {
                if self.conn().is_some_and(|c| c.id == conn_id) {
                    self.on_speech_started(myself).await?;
                }
                Ok(())
            }
        }
    }

    /// Records the spoken answer being handled (called once the answer is accepted).
    pub(super) fn take_spoken(&mut self) {
        if let Some(t) = self.voice.pending.take() {
            if self.rec.voice.answers.len() < MAX_SPOKEN {
                self.rec.voice.answers.push(t);
            }
        }
    }

    /// A spoken answer: its transcript (when the server transcribed it) is committed with the answer,
    /// then it is evaluated like a typed one. Refused (no open question, stale), the transcript is
    /// still shown, as an ephemeral event.
    pub(super) async fn on_spoken(
        &mut self,
        myself: &ActorRef<SessionMsg>,
        a: SpokenAnswer,
    ) -> Result<(), ActorProcessingErr> {
        self.touch();
        let turn = self.rec.current + 1;
        let duration = a.audio_duration_s.filter(|d| d.is_finite() && *d >= 0.0);
        let transcript = a
            .transcribed_by
            .as_ref()
            .map(|src| ServerEvent::Transcript {
                turn,
                text: a.text.trim().to_string(),
                is_final: true,
                source: src.clone(),
                stt_ms: a.stt_ms,
                audio_duration_s: duration.map(|d| (d * 100.0).round() / 100.0),
            });
        let mut words = a.words;
        words.truncate(MAX_WORDS);
        self.voice.pending = Some(SpokenTurn {
            turn: turn as u32,
            follow_up: self.rec.in_follow_up,
            duration_s: duration.unwrap_or(0.0),
            words,
            word_times_exact: a.word_times_exact,
            source: a.transcribed_by.unwrap_or_else(|| "client".into()),
        });
        let lead: Vec<ServerEvent> = transcript.iter().cloned().collect();
        let result = self
            .on_answer(myself, a.text, duration, (a.turn, a.seq), lead)
            .await;
        // Accepted answers took the pending turn (`take_spoken`).
        let accepted = self.voice.pending.take().is_none();
        if !accepted {
            if let Some(t) = transcript {
                self.send_ephemeral(t);
            }
        }
        result
    }

    /// One gentle re-prompt per question when a speaking candidate has been quiet for `away`.
    pub(super) async fn maybe_reprompt(&mut self) -> Result<(), ActorProcessingErr> {
        let Some(away) = self.deps.voice.as_ref().map(|v| v.away) else {
            return Ok(());
        };
        let speaking = self.rec.voice.enabled || self.voice.heard_audio;
        if !speaking || self.rec.phase != Phase::AwaitingAnswer {
            return Ok(());
        }
        let key = (self.rec.current, self.rec.in_follow_up);
        if self.voice.reprompted == Some(key) {
            return Ok(());
        }
        if self.voice.speaker.as_ref().is_some_and(Speaker::playing) {
            return Ok(());
        }
        let last = self.rec.updated_ms.max(self.voice.last_activity_ms);
        let quiet = u64::try_from(now_ms() - last).unwrap_or(0);
        if quiet < away.as_millis() as u64 {
            return Ok(());
        }
        self.voice.reprompted = Some(key);
        let pick = crate::cache::key(&[&self.rec.id, &self.rec.current.to_string()])
            .bytes()
            .fold(0usize, |a, b| a.wrapping_add(usize::from(b)));
        let text = REPROMPTS[pick % REPROMPTS.len()];
        let ev = self.interviewer(self.rec.current + 1, LineKind::Reprompt, text, "template");
        self.emit(vec![ev]).await
    }

    /// The report's speaking section, with the word-timing figures.
    pub(super) fn speaking_section(&mut self, base: Value) -> Value {
        if let Some(sp) = &self.voice.speaker {
            self.rec.voice.interviewer_ms = sp.spoken_ms();
        }
        crate::voice::speaking::section(base, &self.rec.voice)
    }
}
