//! The WebSocket protocol's types: what a client may send (`ClientMessage`), the error codes the
//! server answers with (`ErrorCode`), and the one parser every frame goes through.
//!
//! The connection layer parses each text message with [`parse`]; the session receives typed messages
//! and answers refusals with [`ErrorCode`]s, so no code is a string literal anywhere else.
//! `docs/protocol.md` is checked against these types by a test (every type and code documented,
//! nothing documented that does not exist).

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// A message from the client (a JSON text frame with a `type`). Unknown fields are ignored so that
/// newer clients can add fields without breaking older servers.
#[derive(
    Debug, Clone, PartialEq, Serialize, Deserialize, strum::EnumIter, strum::IntoStaticStr,
)]
#[serde(tag = "type", rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum ClientMessage {
    /// The candidate's answer to the open question or follow-up.
    Answer {
        /// The answer's text.
        text: String,
        /// Length of the spoken answer, seconds (0-3600), when it was spoken.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        audio_duration_s: Option<f64>,
        /// The question (turn) this answers. Without it (protocol version 1 clients) the answer goes
        /// to whatever question is open when it arrives.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        turn: Option<u32>,
        /// The `seq` of the prompt (question or follow-up event) this answers: ties an answer to a
        /// follow-up, which shares its question's turn.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        seq: Option<u64>,
        /// Word timings of a spoken answer transcribed by the client's own pipeline (protocol 2):
        /// `[{word, start, end}]`, seconds from the start of the answer's audio.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        words: Option<Vec<crate::voice::Word>>,
    },
    /// Binary frames of PCM16 audio follow (protocol 2): a spoken answer.
    AudioStart {
        /// `pcm16`.
        #[serde(default = "pcm16")]
        format: String,
        /// 16000, 24000 or 48000.
        sample_rate: u32,
        /// 1.
        #[serde(default = "mono")]
        channels: u32,
        /// `server` (default: silence ends an answer) or `client` (only `audio_end` does).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        endpointing: Option<String>,
    },
    /// A voice pipeline's partial transcript (protocol 2): the candidate is speaking (a barge-in when
    /// the interviewer is). Not stored.
    TranscriptHint {
        /// What the pipeline heard so far.
        #[serde(default)]
        text: String,
    },
    /// The binary frames since the last answer are one spoken answer.
    AudioEnd {
        /// Audio format of those frames.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        format: Option<String>,
    },
    /// Stop the current streamed output.
    Interrupt,
    /// Send again every logged event after `last_seq`.
    Resume {
        /// The last seq the client has.
        last_seq: u64,
    },
    /// Skip the open question or follow-up: logged as `skipped`, and the interview moves on.
    Skip {
        /// The turn being skipped, when the client says (a turn that is not the open one is
        /// refused with `stale_answer`, and nothing changes).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        turn: Option<u32>,
    },
    /// End the interview now.
    End,
    /// Keep-alive; answered with `pong`.
    Ping,
}

fn pcm16() -> String {
    "pcm16".into()
}

fn mono() -> u32 {
    1
}

impl ClientMessage {
    /// The message's `type` as sent on the wire.
    pub fn type_name(&self) -> &'static str {
        self.into()
    }
}

/// Every error code an `error` event can carry on the socket.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    strum::EnumIter,
    strum::IntoStaticStr,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum ErrorCode {
    /// The frame is not JSON.
    InvalidJson,
    /// A field is missing or has the wrong type or range.
    InvalidMessage,
    /// The `type` is not one of the client messages.
    UnknownType,
    /// A message (a frame, or a fragmented message reassembled) is over `server.max_ws_frame_bytes`.
    FrameTooLarge,
    /// The answer's text is empty.
    EmptyAnswer,
    /// An answer while no question is open.
    NoOpenQuestion,
    /// An answer whose `turn` (or `seq`) is not the open question's.
    StaleAnswer,
    /// Too many answers per second on this connection.
    RateLimited,
    /// `end` after the end.
    InterviewFinished,
    /// Audio without speech-to-text.
    AudioUnsupported,
    /// A binary frame or `audio_end` before any `audio_start`.
    AudioNotStarted,
    /// `audio_start` with a format, sample rate or channel count the server does not take.
    AudioFormatUnsupported,
    /// A binary frame that is not PCM16 (an odd byte count), or audio speech-to-text could not read.
    InvalidAudio,
    /// A spoken answer longer than `voice.max_utterance_s`: the first part is kept.
    UtteranceTooLong,
    /// The audio held no speech (or speech-to-text heard no words in it).
    NoSpeech,
    /// No speech-to-text node or key could transcribe the answer in time: type it or speak again.
    SttUnavailable,
    /// The interviewer's voice could not be synthesised for a line (its text is on screen).
    TtsUnavailable,
    /// The session recovered from an internal failure.
    SessionRestarted,
    /// The session failed repeatedly and was closed (the connection closes).
    InterviewFailed,
    /// Cluster mode: another node owns the interview now (this node lost its lease); the connection
    /// closes and the client reconnects (any node) and resumes.
    InterviewMoved,
}

impl ErrorCode {
    /// The code as sent on the wire.
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// Whether the connection stays open after this error.
    pub fn recoverable(self) -> bool {
        !matches!(self, ErrorCode::InterviewFailed | ErrorCode::InterviewMoved)
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A client message the server refuses: the code and a sentence for people.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    /// The code.
    pub code: ErrorCode,
    /// What was wrong.
    pub message: String,
}

impl Refusal {
    fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Refusal {
            code,
            message: message.into(),
        }
    }
}

/// The `error` event (ephemeral) carrying `seq`, the last logged seq when it was sent.
pub fn error_event(code: ErrorCode, seq: u64, message: &str) -> Value {
    json!({"type": "error", "seq": seq, "ephemeral": true, "code": code, "message": message})
}

/// The `pong` event (ephemeral).
pub fn pong_event(seq: u64) -> Value {
    json!({"type": "pong", "seq": seq, "ephemeral": true})
}

/// Longest spoken answer accepted, seconds.
pub const MAX_AUDIO_DURATION_S: f64 = 3600.0;

/// Parses one client text message: not JSON is `invalid_json`; a missing or non-string `type`, a
/// missing field, a wrong type or an out-of-range value is `invalid_message`; a `type` nobody
/// defined is `unknown_type`. Never panics, whatever the input.
pub fn parse(text: &str) -> Result<ClientMessage, Refusal> {
    let v: Value = serde_json::from_str(text)
        .map_err(|e| Refusal::new(ErrorCode::InvalidJson, format!("frame is not JSON: {e}")))?;
    let Some(ty) = v.get("type").and_then(Value::as_str) else {
        return Err(Refusal::new(
            ErrorCode::InvalidMessage,
            "a message is a JSON object with a string \"type\"",
        ));
    };
    if !known_type(ty) {
        return Err(Refusal::new(
            ErrorCode::UnknownType,
            format!("unknown message type {:?}", truncate(ty, 64)),
        ));
    }
    let ty = ty.to_string();
    let msg: ClientMessage = serde_json::from_value(v)
        .map_err(|e| Refusal::new(ErrorCode::InvalidMessage, format!("{ty}: {e}")))?;
    if let ClientMessage::Answer {
        audio_duration_s: Some(d),
        ..
    } = &msg
    {
        if !(d.is_finite() && (0.0..=MAX_AUDIO_DURATION_S).contains(d)) {
            return Err(Refusal::new(
                ErrorCode::InvalidMessage,
                "audio_duration_s: a number of seconds, 0-3600",
            ));
        }
    }
    if let ClientMessage::Answer {
        words: Some(words), ..
    } = &msg
    {
        if words.len() > crate::voice::MAX_WORDS {
            return Err(Refusal::new(
                ErrorCode::InvalidMessage,
                format!("words: at most {} words", crate::voice::MAX_WORDS),
            ));
        }
        let ok = |t: f64| t.is_finite() && (0.0..=MAX_AUDIO_DURATION_S).contains(&t);
        if let Some(w) = words
            .iter()
            .find(|w| !(ok(w.start) && ok(w.end) && w.start <= w.end) || w.word.len() > 200)
        {
            return Err(Refusal::new(
                ErrorCode::InvalidMessage,
                format!(
                    "words: each is {{word, start, end}} with 0 <= start <= end <= 3600 seconds (bad: {:?})",
                    truncate(&w.word, 40)
                ),
            ));
        }
    }
    if let ClientMessage::AudioStart {
        endpointing: Some(e),
        ..
    } = &msg
    {
        if e != "server" && e != "client" {
            return Err(Refusal::new(
                ErrorCode::InvalidMessage,
                "endpointing: \"server\" or \"client\"",
            ));
        }
    }
    Ok(msg)
}

fn known_type(ty: &str) -> bool {
    use strum::IntoEnumIterator;
    ClientMessage::iter().any(|m| m.type_name() == ty)
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;
    use strum::IntoEnumIterator;

    const PROTOCOL_MD: &str = include_str!("../../docs/protocol.md");

    /// The backticked names in the first column of the table under `heading`.
    fn table_names(heading: &str) -> BTreeSet<String> {
        let start = PROTOCOL_MD
            .find(heading)
            .unwrap_or_else(|| panic!("docs/protocol.md has no section {heading:?}"));
        PROTOCOL_MD[start..]
            .lines()
            .skip(1)
            .skip_while(|l| !l.starts_with('|'))
            .take_while(|l| l.starts_with('|'))
            .filter_map(|l| {
                let first = l.trim_start_matches('|').split('|').next()?.trim();
                let name = first.strip_prefix('`')?.strip_suffix('`')?;
                Some(name.to_string())
            })
            .collect()
    }

    #[test]
    fn docs_list_every_client_message_and_nothing_else() {
        let code: BTreeSet<String> = ClientMessage::iter()
            .map(|m| m.type_name().to_string())
            .collect();
        assert_eq!(table_names("## Client → server"), code);
    }

    #[test]
    fn docs_list_every_error_code_and_nothing_else() {
        let code: BTreeSet<String> = ErrorCode::iter().map(|c| c.as_str().to_string()).collect();
        assert_eq!(table_names("## Error codes on the socket"), code);
    }

    #[test]
    fn wire_names_agree_with_serde() {
        for m in ClientMessage::iter() {
            let v = serde_json::to_value(&m).unwrap();
            assert_eq!(v["type"], m.type_name());
            // What the server would send back is what it reads.
            assert_eq!(parse(&v.to_string()).unwrap(), m);
        }
        for c in ErrorCode::iter() {
            assert_eq!(serde_json::to_value(c).unwrap(), c.as_str());
        }
    }

    #[test]
    fn refusals_carry_the_right_code() {
        let code = |t: &str| parse(t).unwrap_err().code;
        assert_eq!(code("{not json"), ErrorCode::InvalidJson);
        assert_eq!(code("[1,2]"), ErrorCode::InvalidMessage);
        assert_eq!(code("{\"type\": 3}"), ErrorCode::InvalidMessage);
        assert_eq!(code("{\"type\": \"dance\"}"), ErrorCode::UnknownType);
        assert_eq!(code("{\"type\": \"answer\"}"), ErrorCode::InvalidMessage);
        assert_eq!(
            code("{\"type\": \"resume\", \"last_seq\": -1}"),
            ErrorCode::InvalidMessage
        );
        assert_eq!(
            code("{\"type\": \"resume\", \"last_seq\": 1.5}"),
            ErrorCode::InvalidMessage
        );
        assert_eq!(
            code("{\"type\": \"answer\", \"text\": \"x\", \"audio_duration_s\": 1e9}"),
            ErrorCode::InvalidMessage
        );
        assert_eq!(
            code("{\"type\": \"answer\", \"text\": \"x\", \"turn\": -2}"),
            ErrorCode::InvalidMessage
        );
    }

    #[test]
    fn answers_carry_turn_and_seq_and_unknown_fields_are_ignored() {
        assert_eq!(
            parse(r#"{"type":"answer","text":"hi","turn":2,"seq":7,"extra":true}"#).unwrap(),
            ClientMessage::Answer {
                text: "hi".into(),
                audio_duration_s: None,
                turn: Some(2),
                seq: Some(7),
                words: None,
            }
        );
        assert_eq!(
            parse(r#"{"type":"ping","x":1}"#).unwrap(),
            ClientMessage::Ping
        );
        assert_eq!(
            parse(r#"{"type":"answer","text":"hi","audio_duration_s":null}"#).unwrap(),
            ClientMessage::Answer {
                text: "hi".into(),
                audio_duration_s: None,
                turn: None,
                seq: None,
                words: None,
            }
        );
    }

    #[test]
    fn error_events_carry_a_seq() {
        let e = error_event(ErrorCode::StaleAnswer, 12, "late");
        assert_eq!(e["code"], "stale_answer");
        assert_eq!(e["seq"], 12);
        assert_eq!(e["ephemeral"], true);
    }
}
