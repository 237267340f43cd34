//! Interview content that needs no LLM: templates, the question pool with rubrics, the offline resume
//! extractor, the heuristic rubric scorer, the LLM prompts (with candidate text in delimited data
//! blocks) and their output parsers, and the report builder.
//!
//! Everything here is deterministic and pure: the same inputs (interview id as seed) give the same
//! text, so a session rebuilt from its log says exactly what it said before.

pub mod grading;
pub mod prompts;
pub mod question_pool;
pub mod report;
pub mod resume;
pub mod scoring;
pub mod templates;

use serde::{Deserialize, Serialize};

/// A content file failed to load or validate; names the file and line.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{path}:{line}: {message}")]
pub struct ContentError {
    /// The file, relative to the repository (`question_pool/backend.toml`).
    pub path: String,
    /// 1-based line, 0 when unknown.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

/// The interview's track, from the create request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Track {
    /// Technical questions for the role's domain.
    Technical,
    /// Behavioral questions.
    Behavioral,
    /// Both.
    #[default]
    Mixed,
}

/// Question difficulty.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Difficulty {
    /// Easy.
    Easy,
    /// Medium.
    #[default]
    Medium,
    /// Hard.
    Hard,
}

/// How an answer was judged, for templates (acknowledgements, feedback).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Band {
    /// 8-10.
    Strong,
    /// 5-7.
    Solid,
    /// 1-4.
    Weak,
    /// 0: empty or off-topic.
    Empty,
}

impl Band {
    /// The band of a 0-10 score.
    pub fn of(score: u8) -> Band {
        match score {
            0 => Band::Empty,
            1..=4 => Band::Weak,
            5..=7 => Band::Solid,
            _ => Band::Strong,
        }
    }
}

/// The grade a candidate is shown for an answer: a band, not a confident number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// 0-3: the key points are not there yet.
    NotYet,
    /// 4-6: some key points, not all.
    Partial,
    /// 7-10: the key points, stated.
    Solid,
}

impl Verdict {
    /// The band of a 0-10 score.
    pub fn of(score: u8) -> Verdict {
        match score {
            0..=3 => Verdict::NotYet,
            4..=6 => Verdict::Partial,
            _ => Verdict::Solid,
        }
    }

    /// The name in JSON (`not_yet`).
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::NotYet => "not_yet",
            Verdict::Partial => "partial",
            Verdict::Solid => "solid",
        }
    }

    /// The words a candidate reads ("Not yet").
    pub fn label(self) -> &'static str {
        match self {
            Verdict::NotYet => "Not yet",
            Verdict::Partial => "Partial",
            Verdict::Solid => "Solid",
        }
    }
}

/// A stable 64-bit hash (FNV-1a) for deterministic choices and cache keys; never changes between builds.
pub fn stable_hash(parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for b in p.as_bytes().iter().chain(std::iter::once(&0xffu8)) {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}
