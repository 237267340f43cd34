//! How an interview record is laid out on disk (layout version 3), so that disk grows with what
//! candidates send, not with the number of steps.
//!
//! Layout 2 stored the whole record, every answer included, at every step: a 33-answer interview of
//! 63 KiB answers rewrote megabytes per answer (52× the bytes received, never reclaimed). Now:
//! - the record's small part (`Meta`: state, counters, per-item scores and feedback, and for each
//!   answer only its length) is rewritten at each step; it is the commit point;
//! - each answer is written once, under its own key, in the commit that records it;
//! - each question is written once (again only if a generated question replaces a planned one);
//! - the resume analysis is written once;
//! - the report is the `report` event in the event log; `Meta` holds its seq.
//!
//! Every part of one interview sits under the key prefix `id 0`, so retention removes an interview
//! with one prefix scan per tree.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::budget::{Level, Step};
use crate::content::report::{FollowUpItem, ReportItem};
use crate::content::{Difficulty, Track};
use crate::interview::{Candidate, InterviewRecord, Phase};

/// Layout version of a `Meta` in the `interviews` tree.
pub(crate) const META_VERSION: u8 = 3;
/// Layout version of a part (question, answer, resume) in the `parts` tree.
pub(crate) const PART_VERSION: u8 = 1;

/// The part of a record rewritten at each step.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Meta {
    pub(crate) id: String,
    pub(crate) token_sha256: String,
    pub(crate) candidate: Candidate,
    pub(crate) role: String,
    pub(crate) track: Track,
    pub(crate) difficulty: Difficulty,
    pub(crate) mode: String,
    pub(crate) created_ms: i64,
    pub(crate) updated_ms: i64,
    pub(crate) has_resume: bool,
    pub(crate) questions: u32,
    pub(crate) items: Vec<MetaItem>,
    pub(crate) current: u64,
    pub(crate) in_follow_up: bool,
    pub(crate) phase: Phase,
    pub(crate) next_seq: u64,
    pub(crate) report_seq: Option<u64>,
    pub(crate) follow_ups_asked: u32,
    pub(crate) level: Level,
    pub(crate) steps: Vec<Step>,
    pub(crate) ending: Option<Phase>,
    /// Retention removed the transcript (answers and every event but the report).
    pub(crate) pruned: bool,
}

/// A report item without its answers (their lengths say they are stored).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct MetaItem {
    pub(crate) index: u32,
    pub(crate) question_id: String,
    pub(crate) category: String,
    pub(crate) difficulty: String,
    /// The question as asked, when it is not the text of question `index` (None: it is).
    pub(crate) question: Option<String>,
    pub(crate) answer_len: Option<u32>,
    pub(crate) audio_duration_s: Option<f64>,
    pub(crate) score: Option<u8>,
    pub(crate) feedback: String,
    pub(crate) rubric_covered: Vec<String>,
    pub(crate) rubric_missed: Vec<String>,
    pub(crate) source: String,
    pub(crate) follow_up: Option<MetaFollowUp>,
}

/// A follow-up without its answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct MetaFollowUp {
    pub(crate) question: String,
    pub(crate) answer_len: Option<u32>,
    pub(crate) score: Option<u8>,
}

fn len32(s: &Option<String>) -> Option<u32> {
    s.as_ref()
        .map(|a| u32::try_from(a.len()).unwrap_or(u32::MAX))
}

impl Meta {
    /// The small part of `rec`.
    pub(crate) fn of(rec: &InterviewRecord) -> Meta {
        let items = rec
            .items
            .iter()
            .map(|i| {
                let asked = (i.index as usize)
                    .checked_sub(1)
                    .and_then(|n| rec.questions.get(n));
                MetaItem {
                    index: i.index,
                    question_id: i.question_id.clone(),
                    category: i.category.clone(),
                    difficulty: i.difficulty.clone(),
                    question: match asked {
                        Some(q) if q.text == i.question => None,
                        _ => Some(i.question.clone()),
                    },
                    answer_len: len32(&i.answer),
                    audio_duration_s: i.audio_duration_s,
                    score: i.score,
                    feedback: i.feedback.clone(),
                    rubric_covered: i.rubric_covered.clone(),
                    rubric_missed: i.rubric_missed.clone(),
                    source: i.source.clone(),
                    follow_up: i.follow_up.as_ref().map(|f| MetaFollowUp {
                        question: f.question.clone(),
                        answer_len: len32(&f.answer),
                        score: f.score,
                    }),
                }
            })
            .collect();
        Meta {
            id: rec.id.clone(),
            token_sha256: rec.token_sha256.clone(),
            candidate: rec.candidate.clone(),
            role: rec.role.clone(),
            track: rec.track,
            difficulty: rec.difficulty,
            mode: rec.mode.as_str().to_string(),
            created_ms: rec.created_ms,
            updated_ms: rec.updated_ms,
            has_resume: rec.resume.is_some(),
            questions: u32::try_from(rec.questions.len()).unwrap_or(u32::MAX),
            items,
            current: rec.current as u64,
            in_follow_up: rec.in_follow_up,
            phase: rec.phase,
            next_seq: rec.next_seq,
            report_seq: rec.report_seq,
            follow_ups_asked: rec.follow_ups_asked,
            level: rec.level,
            steps: rec.steps.clone(),
            ending: rec.ending,
            pruned: false,
        }
    }
}

/// The parts of a record other than its `Meta`, as read back.
pub(crate) struct Parts {
    pub(crate) questions: Vec<Arc<crate::content::question_pool::Question>>,
    /// Per item: its answer and its follow-up's answer (None when not stored).
    pub(crate) answers: Vec<(Option<String>, Option<String>)>,
    pub(crate) resume: Option<crate::content::resume::ResumeAnalysis>,
    pub(crate) report: Option<String>,
}

/// The record `meta` and its `parts` describe.
pub(crate) fn assemble(meta: Meta, mut parts: Parts) -> InterviewRecord {
    let stored_answers: Vec<(bool, bool)> = parts
        .answers
        .iter()
        .map(|(a, f)| (a.is_some(), f.is_some()))
        .collect();
    let items = meta
        .items
        .into_iter()
        .enumerate()
        .map(|(n, i)| {
            let (answer, follow_answer) = parts
                .answers
                .get_mut(n)
                .map(std::mem::take)
                .unwrap_or_default();
            let question = i.question.unwrap_or_else(|| {
                (i.index as usize)
                    .checked_sub(1)
                    .and_then(|k| parts.questions.get(k))
                    .map(|q| q.text.clone())
                    .unwrap_or_default()
            });
            ReportItem {
                index: i.index,
                question_id: i.question_id,
                category: i.category,
                difficulty: i.difficulty,
                question,
                answer,
                audio_duration_s: i.audio_duration_s,
                score: i.score,
                feedback: i.feedback,
                rubric_covered: i.rubric_covered,
                rubric_missed: i.rubric_missed,
                source: i.source,
                follow_up: i.follow_up.map(|f| FollowUpItem {
                    question: f.question,
                    answer: follow_answer,
                    score: f.score,
                }),
            }
        })
        .collect();
    let stored = crate::interview::Stored {
        layout: true,
        answers: stored_answers,
        questions: parts.questions.iter().map(|q| q.id.clone()).collect(),
        resume: parts.resume.is_some(),
        voice: (0, 0, 0),
    };
    InterviewRecord {
        id: meta.id,
        token_sha256: meta.token_sha256,
        candidate: meta.candidate,
        role: meta.role,
        track: meta.track,
        difficulty: meta.difficulty,
        mode: crate::budget::Mode::from_stored(&meta.mode),
        created_ms: meta.created_ms,
        updated_ms: meta.updated_ms,
        resume: parts.resume,
        questions: parts.questions,
        items,
        current: usize::try_from(meta.current).unwrap_or(usize::MAX),
        in_follow_up: meta.in_follow_up,
        phase: meta.phase,
        next_seq: meta.next_seq,
        report: parts.report,
        follow_ups_asked: meta.follow_ups_asked,
        level: meta.level,
        steps: meta.steps,
        ending: meta.ending,
        report_seq: meta.report_seq,
        stored,
        voice: crate::interview::VoiceRecord::default(),
    }
}

/// The prefix of every key of interview `id` in the parts and events trees.
pub(crate) fn prefix(id: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(id.len() + 1);
    k.extend_from_slice(id.as_bytes());
    k.push(0);
    k
}

/// Key of question `idx`.
pub(crate) fn question_key(id: &str, idx: usize) -> Vec<u8> {
    let mut k = prefix(id);
    k.push(b'q');
    k.extend_from_slice(&u32::try_from(idx).unwrap_or(u32::MAX).to_be_bytes());
    k
}

/// Key of item `idx`'s answer (`follow_up`: its follow-up's answer).
pub(crate) fn answer_key(id: &str, idx: usize, follow_up: bool) -> Vec<u8> {
    let mut k = prefix(id);
    k.push(b'a');
    k.extend_from_slice(&u32::try_from(idx).unwrap_or(u32::MAX).to_be_bytes());
    k.push(u8::from(follow_up));
    k
}

/// Key of the voice record (spoken answers' word timings, barge-ins). Tagged like an answer, so
/// retention removes it with the transcript.
pub(crate) fn voice_key(id: &str) -> Vec<u8> {
    let mut k = prefix(id);
    k.push(b'a');
    k.extend_from_slice(b"voice");
    k
}

/// What of a voice record a commit must write again when it changes: spoken answers, barge-ins,
/// whether the interviewer speaks. (The interviewer's talk time rides along with those writes.)
pub(crate) fn voice_mark(v: &crate::interview::VoiceRecord) -> (usize, usize, u64) {
    (v.answers.len(), v.barge_ins.len(), u64::from(v.enabled))
}

/// Key of the resume analysis.
pub(crate) fn resume_key(id: &str) -> Vec<u8> {
    let mut k = prefix(id);
    k.push(b'r');
    k
}

/// Key of a report stored outside the event log (a layout-2 record's report, written once when
/// such a record is first written in layout 3).
pub(crate) fn report_key(id: &str) -> Vec<u8> {
    let mut k = prefix(id);
    k.push(b'p');
    k
}
