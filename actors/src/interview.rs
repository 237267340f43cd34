//! The interview's durable record (everything a session needs to carry on after a crash) and the
//! events it emits, as sent on the WebSocket and kept in the session log.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::budget::{Level, Mode, Step};
use crate::content::question_pool::Question;
use crate::content::report::ReportItem;
use crate::content::resume::ResumeAnalysis;
use crate::content::{Difficulty, Track};

/// The WebSocket protocol version, sent in `ready`. Version 2 added voice (audio in and out); a
/// version-1 client never sends audio and never sees an audio event unless it created a voice interview.
pub const PROTOCOL_VERSION: u32 = 2;

/// Where an interview is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Created, greeting not sent yet.
    Created,
    /// Waiting for the answer to the current question (or its follow-up).
    AwaitingAnswer,
    /// An answer is being evaluated.
    Evaluating,
    /// Finished: all questions answered.
    Completed,
    /// The candidate ended it.
    EndedEarly,
    /// Closed after inactivity.
    Expired,
    /// The closing is sent; the end-of-interview work (batched evaluation, coach note) runs before
    /// the report. `InterviewRecord::ending` says which finished phase follows.
    Reporting,
}

impl Phase {
    /// The name used in `ready.state` and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Created => "created",
            Phase::AwaitingAnswer => "awaiting_answer",
            Phase::Evaluating => "evaluating",
            Phase::Completed => "completed",
            Phase::EndedEarly => "ended_early",
            Phase::Expired => "expired",
            Phase::Reporting => "reporting",
        }
    }

    /// Whether the interview is over.
    pub fn is_finished(self) -> bool {
        matches!(self, Phase::Completed | Phase::EndedEarly | Phase::Expired)
    }
}

/// The candidate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    /// Stable id (history is kept per id).
    pub id: String,
    /// Display name.
    pub name: String,
}

/// Everything about one interview. Written with its new events in one transaction at every step.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InterviewRecord {
    /// Interview id.
    pub id: String,
    /// SHA-256 (hex) of the interview's token; the token itself is never stored.
    pub token_sha256: String,
    /// The candidate.
    pub candidate: Candidate,
    /// Role applied for.
    pub role: String,
    /// Track.
    pub track: Track,
    /// Difficulty.
    pub difficulty: Difficulty,
    /// Call-budget mode as requested.
    pub mode: Mode,
    /// Creation time, unix ms.
    pub created_ms: i64,
    /// Last activity, unix ms.
    pub updated_ms: i64,
    /// Resume analysis, if a resume was given.
    pub resume: Option<ResumeAnalysis>,
    /// The planned questions (placeholders filled). Shared: a live session's copy comes from the
    /// [`QuestionInterner`](crate::content::question_pool::QuestionInterner), so interviews asking the
    /// same question hold one copy (stored, it is the plain question).
    pub questions: Vec<Arc<Question>>,
    /// One item per question asked so far (answers, scores, feedback).
    pub items: Vec<ReportItem>,
    /// Index of the current question (0-based).
    pub current: usize,
    /// Whether the open question is the current question's follow-up.
    pub in_follow_up: bool,
    /// Where the interview is.
    pub phase: Phase,
    /// The next event's sequence number (the first event is 1).
    pub next_seq: u64,
    /// The report (JSON text: bincode cannot carry a free-form JSON value), once finished.
    pub report: Option<String>,
    /// Follow-ups asked so far.
    pub follow_ups_asked: u32,
    /// The level of LLM work in use now (the call budget's decision; at most what `mode` allows).
    pub level: Level,
    /// Every level change, at admission and per turn.
    pub steps: Vec<Step>,
    /// While `Reporting`: the finished phase that follows.
    pub ending: Option<Phase>,
    /// Voice: whether the interviewer speaks, spoken answers' word timings, barge-ins. Stored as a
    /// part of its own (`storage/layout.rs`), not in the record's layouts 1-3.
    #[serde(skip)]
    pub voice: VoiceRecord,
    /// The seq of the `report` event, once logged: the report is stored once, in the event log,
    /// and the stored record points at it. (Not part of the version 1 and 2 layouts.)
    #[serde(skip)]
    pub report_seq: Option<u64>,
    /// What the session log already holds of this record (kept by the log, so that a commit writes
    /// only what changed). Not stored.
    #[serde(skip)]
    pub stored: Stored,
}

/// What the session log holds of a record beyond its small part: filled in when the record is
/// loaded and after each commit; empty for a record that has not been written in the current layout.
#[derive(Debug, Clone, Default)]
pub struct Stored {
    /// Whether the record was written in the current layout.
    pub(crate) layout: bool,
    /// Per item: whether its answer and its follow-up's answer are stored.
    pub(crate) answers: Vec<(bool, bool)>,
    /// Per question: the id of the question stored at that index.
    pub(crate) questions: Vec<String>,
    /// Whether the resume analysis is stored.
    pub(crate) resume: bool,
    /// What of the voice record is stored: (spoken answers, barge-ins, interviewer ms).
    pub(crate) voice: (usize, usize, u64),
}

/// What an interview keeps about speech: the report's speaking section is built from it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VoiceRecord {
    /// The interviewer's lines are spoken (`voice: true` at creation).
    pub enabled: bool,
    /// Every spoken answer, in order.
    pub answers: Vec<SpokenTurn>,
    /// Every time the candidate talked over the interviewer.
    pub barge_ins: Vec<crate::voice::speaker::Heard>,
    /// Milliseconds of the interviewer's audio the candidate heard.
    pub interviewer_ms: u64,
}

/// One spoken answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpokenTurn {
    /// The question's turn.
    pub turn: u32,
    /// An answer to the follow-up.
    pub follow_up: bool,
    /// Length of the audio, seconds.
    pub duration_s: f64,
    /// Words with their times.
    pub words: Vec<crate::voice::Word>,
    /// Whether the times came from the speech-to-text server (else spread over its segments).
    pub word_times_exact: bool,
    /// `stt:<node>`, `stt:<provider>`, or `client` (a pipeline's own speech-to-text).
    pub source: String,
}

/// The record as layout version 1 wrote it (before the call budget): read, then upgraded.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InterviewRecordV1 {
    pub(crate) id: String,
    pub(crate) token_sha256: String,
    pub(crate) candidate: Candidate,
    pub(crate) role: String,
    pub(crate) track: Track,
    pub(crate) difficulty: Difficulty,
    pub(crate) mode: String,
    pub(crate) created_ms: i64,
    pub(crate) updated_ms: i64,
    pub(crate) resume: Option<ResumeAnalysis>,
    pub(crate) questions: Vec<Question>,
    pub(crate) items: Vec<ReportItem>,
    pub(crate) current: usize,
    pub(crate) in_follow_up: bool,
    pub(crate) phase: Phase,
    pub(crate) next_seq: u64,
    pub(crate) report: Option<String>,
    pub(crate) follow_ups_asked: u32,
}

impl From<InterviewRecordV1> for InterviewRecord {
    fn from(v: InterviewRecordV1) -> Self {
        // Version 1 ran economy without provider calls; the next turn's budget decision sets the
        // level the interview can afford now.
        let mode = Mode::from_stored(&v.mode);
        let level = match mode {
            Mode::Economy => Level::Heuristic,
            m => m.ceiling(),
        };
        InterviewRecord {
            id: v.id,
            token_sha256: v.token_sha256,
            candidate: v.candidate,
            role: v.role,
            track: v.track,
            difficulty: v.difficulty,
            mode,
            created_ms: v.created_ms,
            updated_ms: v.updated_ms,
            resume: v.resume,
            questions: v.questions.into_iter().map(Arc::new).collect(),
            items: v.items,
            current: v.current,
            in_follow_up: v.in_follow_up,
            phase: v.phase,
            next_seq: v.next_seq,
            report: v.report,
            follow_ups_asked: v.follow_ups_asked,
            level,
            steps: Vec::new(),
            ending: None,
            voice: VoiceRecord::default(),
            report_seq: None,
            stored: Stored::default(),
        }
    }
}

impl InterviewRecord {
    /// The report as JSON, once finished.
    pub fn report_value(&self) -> Option<Value> {
        self.report
            .as_deref()
            .and_then(|r| serde_json::from_str(r).ok())
    }

    /// The last sequence number used.
    pub fn last_seq(&self) -> u64 {
        self.next_seq.saturating_sub(1)
    }

    /// The `ready` event for a new connection (connection-level: carries the last logged seq, is not
    /// itself logged or replayed).
    pub fn ready_event(&self) -> Value {
        crate::protocol::ServerEvent::Ready {
            interview_id: self.id.clone(),
            state: self.phase,
            question_index: (self.current + 1).min(self.questions.len()),
            questions_total: self.questions.len(),
            protocol_version: PROTOCOL_VERSION,
        }
        .ephemeral(Some(self.last_seq()))
    }
}

/// Checks a presented interview token against the stored hash (constant time).
pub fn token_matches(record: &InterviewRecord, token: &str) -> bool {
    ct_eq(sha256_hex(token).as_bytes(), record.token_sha256.as_bytes())
}

/// The interview's read-only report token: the SHA-256 of its interview token, which is what the
/// record keeps to check interview tokens, so it needs no storage of its own. It opens the report
/// and nothing else: presented as an interview token it hashes to something else, and the interview
/// token cannot be computed from it.
pub fn report_token(interview_token: &str) -> String {
    sha256_hex(interview_token)
}

/// Checks a presented report token (constant time).
pub fn report_token_matches(record: &InterviewRecord, token: &str) -> bool {
    ct_eq(token.as_bytes(), record.token_sha256.as_bytes())
}

/// Whether two secrets are equal, in time that depends on neither (both are hashed first, so not
/// even their lengths show).
pub fn same_secret(given: &str, expected: &str) -> bool {
    ct_eq(
        sha256_hex(given).as_bytes(),
        sha256_hex(expected).as_bytes(),
    )
}

fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.ct_eq(b).into()
}

/// SHA-256 in lowercase hex.
pub fn sha256_hex(s: &str) -> String {
    use sha2::Digest;
    let d = sha2::Sha256::digest(s.as_bytes());
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// The interview token of [`v1_for_tests`]'s records.
#[cfg(test)]
pub(crate) const TEST_TOKEN: &str = "itk_0123456789abcdef";

/// A version-1 record for tests: interview `id` of `mode`, token [`TEST_TOKEN`], awaiting the
/// answer to its first question, four events logged (`next_seq` 5), one follow-up asked.
#[cfg(test)]
pub(crate) fn v1_for_tests(id: &str, mode: &str) -> InterviewRecordV1 {
    InterviewRecordV1 {
        id: id.into(),
        token_sha256: sha256_hex(TEST_TOKEN),
        candidate: Candidate {
            id: "c".into(),
            name: "Ada".into(),
        },
        role: "SRE".into(),
        track: Track::default(),
        difficulty: Difficulty::default(),
        mode: mode.into(),
        created_ms: 1,
        updated_ms: 2,
        resume: None,
        questions: Vec::new(),
        items: Vec::new(),
        current: 0,
        in_follow_up: false,
        phase: Phase::AwaitingAnswer,
        next_seq: 5,
        report: None,
        follow_ups_asked: 1,
    }
}

/// Tokens (the interview's, the read-only report's, any secret), phases, the `ready` event and the
/// upgrade of a version-1 record: the record's pure parts.
#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    const TOKEN: &str = TEST_TOKEN;

    fn v1(mode: &str) -> InterviewRecordV1 {
        v1_for_tests("iv-1", mode)
    }

    #[test]
    fn sha256_is_lowercase_hex() {
        assert_eq!(
            sha256_hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn the_interview_token_opens_the_interview_and_nothing_else_does() {
        let r: InterviewRecord = v1("balanced").into();
        assert!(token_matches(&r, TOKEN));
        assert!(!token_matches(&r, "itk_0123456789abcdeg"));
        assert!(!token_matches(&r, ""));
        // The report token is what the record stores: it opens the report, not the interview.
        let report = report_token(TOKEN);
        assert!(report_token_matches(&r, &report));
        assert!(!token_matches(&r, &report));
        assert!(!report_token_matches(&r, TOKEN));
    }

    #[test]
    fn same_secret_compares_values_of_any_length() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "abcd"));
        assert!(!same_secret("", "x"));
        assert!(same_secret("", ""));
    }

    #[test]
    fn only_completed_ended_and_expired_interviews_are_finished() {
        let finished: Vec<&str> = [
            Phase::Created,
            Phase::AwaitingAnswer,
            Phase::Evaluating,
            Phase::Completed,
            Phase::EndedEarly,
            Phase::Expired,
            Phase::Reporting,
        ]
        .into_iter()
        .filter(|p| p.is_finished())
        .map(Phase::as_str)
        .collect();
        assert_eq!(finished, ["completed", "ended_early", "expired"]);
    }

    #[test]
    fn a_version_1_record_upgrades_with_the_level_its_mode_allows() {
        let r: InterviewRecord = v1("economy").into();
        assert_eq!(
            r.level,
            Level::Heuristic,
            "version 1 ran economy without calls"
        );
        assert_eq!(InterviewRecord::from(v1("balanced")).level, Level::Balanced);
        assert_eq!(InterviewRecord::from(v1("adaptive")).level, Level::Adaptive);
        assert!(r.steps.is_empty() && r.ending.is_none() && r.report_seq.is_none());
        assert_eq!((r.id.as_str(), r.next_seq), ("iv-1", 5));
    }

    #[test]
    fn ready_carries_the_last_logged_seq_and_where_the_interview_is() {
        let r: InterviewRecord = v1("balanced").into();
        let ready = r.ready_event();
        assert_eq!(ready["type"], "ready");
        assert_eq!(ready["seq"], 4, "next_seq 5: the last logged is 4");
        assert_eq!(ready["ephemeral"], true);
        assert_eq!(ready["state"], "awaiting_answer");
        assert_eq!(ready["questions_total"], 0);
        assert_eq!(ready["question_index"], 0, "never past the last question");
        assert_eq!(ready["protocol_version"], PROTOCOL_VERSION);
    }
}
