//! Voice: candidates answer by speaking and hear the interviewer.
//!
//! ```text
//! client ──audio_start, PCM16 frames, audio_end──► connection ──► VoiceInput (input.rs, one per connection)
//!                                                                   │ Endpointer (vad.rs, earshot)
//!                                                                   │ utterance → WAV (audio.rs)
//!                                                                   ▼
//!                                SttPool (stt_pool.rs): [[stt_nodes]] as a GpuPool, then cloud
//!                                AudioKeys (audio_key.rs: requests and audio-seconds windows)
//!                                                                   │ transcript + word timings
//!                                                                   ▼
//!                                InterviewSession: `transcript` event, then the answer as if typed
//! InterviewSession ──interviewer lines──► Speaker (speaker.rs) ──► TtsPool (tts_pool.rs: [[tts_nodes]],
//!                                          audio_out_start, PCM16 frames, audio_out_end   cloud keys,
//!                                                                                         SpeechCache)
//! ```
//!
//! Wire formats: `stt.rs` (`POST /v1/audio/transcriptions`), `tts.rs` (`POST /v1/audio/speech`).

pub mod audio;
pub mod audio_key;
pub mod input;
pub mod speaker;
pub mod speaking;
pub mod speech_cache;
pub mod stt;
pub mod stt_pool;
pub mod tts;
pub mod tts_pool;
pub mod vad;

use serde::{Deserialize, Serialize};

/// One word heard, with its time in seconds from the start of the answer's audio.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Word {
    /// The word as heard (punctuation kept).
    pub word: String,
    /// Start, seconds.
    pub start: f64,
    /// End, seconds.
    pub end: f64,
}

/// Words kept per answer at most (two minutes at a fast pace is under 500).
pub const MAX_WORDS: usize = 2_000;

/// Lines the interviewer says when a speaking candidate has been quiet for `voice.away_s`.
pub const REPROMPTS: [&str; 3] = [
    "Take your time. Whenever you're ready, just start speaking, or type your answer if you prefer.",
    "No rush. If you'd like me to repeat the question, just scroll up; start speaking when you're ready.",
    "Are you still there? Start speaking whenever you're ready, or type your answer.",
];
