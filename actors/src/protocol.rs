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

/// The kind of an `interviewer` line.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, strum::EnumIter, strum::IntoStaticStr,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum LineKind {
    /// The opening line (turn 0).
    Greeting,
    /// A question of the plan.
    Question,
    /// A follow-up to the open question's answer (same turn as the question).
    FollowUp,
    /// A reaction to an answer (or to a skip).
    Reaction,
    /// The closing line (turn `questions_total + 1`).
    Closing,
    /// A nudge to a quiet candidate of a voice interview.
    Reprompt,
}

impl LineKind {
    /// The kind as sent on the wire.
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// Whether a line of this kind opens a prompt the candidate answers.
    pub fn is_prompt(self) -> bool {
        matches!(self, LineKind::Question | LineKind::FollowUp)
    }
}

/// What the server's voice activity detector heard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SpeechState {
    /// Speech began.
    Started,
    /// An answer ended (silence, `audio_end` or the length limit).
    Ended,
}

/// An event the server sends (a JSON text frame with a `type`). Every event is sent with a `seq`;
/// logged events are numbered by the session and replayed on `resume`, ephemeral ones (see
/// [`ServerEvent::is_ephemeral`]) carry the last logged seq and `"ephemeral": true`. The envelope
/// (`seq`, `ephemeral`) is added by [`ServerEvent::logged`] and [`ServerEvent::ephemeral`], so the
/// variants hold only their own fields. Field names and values are the wire contract
/// (docs/protocol.md, the browser pages): change them only with a protocol version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, strum::EnumDiscriminants)]
#[serde(tag = "type", rename_all = "snake_case")]
#[strum_discriminants(
    name(ServerEventType),
    derive(strum::EnumIter, strum::IntoStaticStr),
    strum(serialize_all = "snake_case"),
    doc = "The `type` of a server event."
)]
pub enum ServerEvent {
    /// Sent on connect: where the interview is.
    Ready {
        /// The interview.
        interview_id: String,
        /// Its phase.
        state: crate::interview::Phase,
        /// The open question's number (1-based), at most `questions_total`.
        question_index: usize,
        /// How many questions the interview has.
        questions_total: usize,
        /// The server's protocol version.
        protocol_version: u32,
    },
    /// A line the interviewer says.
    Interviewer {
        /// 0 for the greeting, the question's number, `questions_total + 1` for the closing.
        turn: usize,
        /// What the line is.
        kind: LineKind,
        /// The line.
        text: String,
        /// Who wrote it (`template`, `pool`, `cache`, `llm:<provider>`, `gpu:<node>`).
        source: String,
    },
    /// A piece of a streamed follow-up (the full `interviewer` event follows).
    InterviewerDelta {
        /// The follow-up's turn.
        turn: usize,
        /// The new text.
        delta: String,
    },
    /// What speech-to-text heard of a spoken answer.
    Transcript {
        /// The answer's turn.
        turn: usize,
        /// The text heard.
        text: String,
        /// Always true (no partial transcripts).
        #[serde(rename = "final")]
        is_final: bool,
        /// `stt:<node>` or `stt:<provider>`.
        source: String,
        /// How long transcription took, ms.
        stt_ms: Option<u64>,
        /// The answer's audio length, seconds (two decimals).
        audio_duration_s: Option<f64>,
    },
    /// The server's voice activity detector.
    Speech {
        /// Started or ended.
        state: SpeechState,
        /// When ended: the answer's length, seconds (two decimals).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        duration_s: Option<f64>,
    },
    /// The interviewer's speech for a line follows as binary frames.
    AudioOutStart {
        /// The line's turn.
        turn: usize,
        /// The line's kind.
        kind: String,
        /// `pcm16`.
        format: String,
        /// Samples per second.
        sample_rate: u32,
    },
    /// The line's audio is complete, or cut by a barge-in.
    AudioOutEnd {
        /// The line's turn.
        turn: usize,
        /// True when a barge-in cut it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        interrupted: Option<bool>,
        /// When cut: how much of it was heard, seconds.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        heard_s: Option<f64>,
    },
    /// The grade of an answer.
    Evaluation {
        /// The question's number.
        turn: usize,
        /// 0-10.
        score: u8,
        /// Feedback for the candidate.
        feedback: String,
        /// Who graded (`heuristic`, `cache`, `llm:<provider>`, `gpu:<node>`).
        source: String,
        /// The score's band.
        band: crate::content::Verdict,
        /// The rubric scorer or a model.
        graded_by: crate::content::grading::Grader,
        /// Whether this grades the answer to the question's follow-up.
        follow_up: bool,
        /// Every point the answer was graded against.
        points: Vec<crate::content::scoring::PointGrade>,
    },
    /// The open question (or follow-up) was skipped.
    Skipped {
        /// The question's number.
        turn: usize,
        /// Whether the skipped prompt was the follow-up.
        follow_up: bool,
    },
    /// The report (the same object as `GET /api/interviews/{id}/report`).
    Report {
        /// The report.
        report: Value,
    },
    /// A refusal or a failure.
    Error {
        /// What happened.
        code: ErrorCode,
        /// A sentence for people.
        message: String,
    },
    /// The answer to `ping`.
    Pong,
}

impl ServerEventType {
    /// The type as sent on the wire.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

impl ServerEvent {
    /// An `error` event.
    pub fn error(code: ErrorCode, message: impl Into<String>) -> Self {
        ServerEvent::Error {
            code,
            message: message.into(),
        }
    }

    /// The event's `type`.
    pub fn event_type(&self) -> ServerEventType {
        self.into()
    }

    /// Whether events of this type are ephemeral (never logged or replayed). A `transcript` is
    /// logged, except one of a refused answer, which its sender sends with [`ServerEvent::ephemeral`].
    pub fn is_ephemeral(&self) -> bool {
        matches!(
            self,
            ServerEvent::Ready { .. }
                | ServerEvent::Pong
                | ServerEvent::Error { .. }
                | ServerEvent::InterviewerDelta { .. }
                | ServerEvent::Speech { .. }
                | ServerEvent::AudioOutStart { .. }
                | ServerEvent::AudioOutEnd { .. }
        )
    }

    /// Who wrote the event's content, for the events that say (`source`).
    pub fn source(&self) -> Option<&str> {
        match self {
            ServerEvent::Interviewer { source, .. }
            | ServerEvent::Transcript { source, .. }
            | ServerEvent::Evaluation { source, .. } => Some(source),
            _ => None,
        }
    }

    /// Whether the event opens a prompt the candidate answers (a question or a follow-up).
    pub fn is_prompt(&self) -> bool {
        matches!(self, ServerEvent::Interviewer { kind, .. } if kind.is_prompt())
    }

    /// The event as JSON, without the envelope.
    fn to_json(&self) -> Value {
        // Serialising these types cannot fail (no map has non-string keys).
        serde_json::to_value(self).unwrap_or_default()
    }

    /// A logged event: the JSON with its `seq`.
    pub fn logged(&self, seq: u64) -> Value {
        let mut v = self.to_json();
        v["seq"] = json!(seq);
        v
    }

    /// An ephemeral event: the JSON with `seq` (the last logged seq, or `null` when the sender does
    /// not know it and the client reads it as "no change") and `"ephemeral": true`.
    pub fn ephemeral(&self, seq: Option<u64>) -> Value {
        let mut v = self.to_json();
        v["seq"] = json!(seq);
        v["ephemeral"] = json!(true);
        v
    }

    /// An ephemeral event as the text frame it is sent as.
    pub fn ephemeral_text(&self, seq: Option<u64>) -> String {
        self.ephemeral(seq).to_string()
    }
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
    fn docs_list_every_server_event_and_nothing_else() {
        let code: BTreeSet<String> = ServerEventType::iter()
            .map(|t| t.as_str().to_string())
            .collect();
        assert_eq!(table_names("## Server → client"), code);
    }

    #[test]
    fn docs_list_every_ephemeral_event() {
        let start = PROTOCOL_MD.find("Some events are **ephemeral**").unwrap();
        let para = &PROTOCOL_MD[start..start + PROTOCOL_MD[start..].find("\n\n").unwrap()];
        let examples = [
            ServerEvent::Ready {
                interview_id: "i".into(),
                state: crate::interview::Phase::Created,
                question_index: 1,
                questions_total: 1,
                protocol_version: 2,
            },
            ServerEvent::Pong,
            ServerEvent::error(ErrorCode::RateLimited, "x"),
            ServerEvent::InterviewerDelta {
                turn: 1,
                delta: "d".into(),
            },
            ServerEvent::Speech {
                state: SpeechState::Started,
                duration_s: None,
            },
            ServerEvent::AudioOutStart {
                turn: 1,
                kind: "question".into(),
                format: "pcm16".into(),
                sample_rate: 16000,
            },
            ServerEvent::AudioOutEnd {
                turn: 1,
                interrupted: None,
                heard_s: None,
            },
        ];
        for e in examples {
            assert!(e.is_ephemeral());
            let name = format!("`{}`", e.event_type().as_str());
            assert!(para.contains(&name), "{name} is not listed as ephemeral");
        }
    }

    #[test]
    fn server_events_keep_their_wire_shape() {
        // The exact JSON the server sent before the events were typed (keys sorted, as serde_json
        // writes a `Value`).
        let cases = [
            (
                ServerEvent::Interviewer {
                    turn: 1,
                    kind: LineKind::FollowUp,
                    text: "Why?".into(),
                    source: "pool".into(),
                }
                .logged(7),
                r#"{"kind":"follow_up","seq":7,"source":"pool","text":"Why?","turn":1,"type":"interviewer"}"#,
            ),
            (
                ServerEvent::Skipped {
                    turn: 2,
                    follow_up: false,
                }
                .logged(3),
                r#"{"follow_up":false,"seq":3,"turn":2,"type":"skipped"}"#,
            ),
            (
                ServerEvent::Transcript {
                    turn: 1,
                    text: "hi".into(),
                    is_final: true,
                    source: "stt:a".into(),
                    stt_ms: None,
                    audio_duration_s: Some(1.25),
                }
                .logged(4),
                r#"{"audio_duration_s":1.25,"final":true,"seq":4,"source":"stt:a","stt_ms":null,"text":"hi","turn":1,"type":"transcript"}"#,
            ),
            (
                ServerEvent::Speech {
                    state: SpeechState::Started,
                    duration_s: None,
                }
                .ephemeral(None),
                r#"{"ephemeral":true,"seq":null,"state":"started","type":"speech"}"#,
            ),
            (
                ServerEvent::AudioOutEnd {
                    turn: 3,
                    interrupted: Some(true),
                    heard_s: Some(0.5),
                }
                .ephemeral(None),
                r#"{"ephemeral":true,"heard_s":0.5,"interrupted":true,"seq":null,"turn":3,"type":"audio_out_end"}"#,
            ),
            (
                ServerEvent::Pong.ephemeral(Some(9)),
                r#"{"ephemeral":true,"seq":9,"type":"pong"}"#,
            ),
            (
                ServerEvent::error(ErrorCode::StaleAnswer, "late").ephemeral(Some(2)),
                r#"{"code":"stale_answer","ephemeral":true,"message":"late","seq":2,"type":"error"}"#,
            ),
        ];
        for (v, want) in cases {
            assert_eq!(v.to_string(), want);
            // And a client reads it back as the same event (the envelope is ignored).
            let back: ServerEvent = serde_json::from_value(v.clone()).unwrap();
            assert_eq!(back.logged(0)["type"], v["type"]);
        }
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
        let e = ServerEvent::error(ErrorCode::StaleAnswer, "late").ephemeral(Some(12));
        assert_eq!(e["code"], "stale_answer");
        assert_eq!(e["seq"], 12);
        assert_eq!(e["ephemeral"], true);
    }
}
