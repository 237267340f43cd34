//! The question pool (`question_pool/*.toml`): loading and validation, the role → domain mapping,
//! and the deterministic choice of an interview's questions (difficulty ramp, exclusions, resume fill).
//!
//! Split by job: `load.rs` parses and validates the pool files (the checks the server refuses to start
//! without), `review.rs` adds the content review that CI runs on the shipped pool and templates (the
//! one content validator), `select.rs` chooses an interview's questions. This file holds the types
//! they share.

mod load;
mod review;
mod select;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::scoring::Point;
use super::Difficulty;

pub use review::{review, review_embedded};
pub use select::{ChosenQuestion, Fill, Selection};

/// The shared vocabulary of concept alternatives (`@name` in a point's concepts), embedded at build
/// time: (path relative to the repository, TOML text).
pub const VOCABULARY: (&str, &str) = (
    "question_pool/concepts.toml",
    include_str!("../../../../question_pool/concepts.toml"),
);

/// The pool files, as embedded at build time: (path relative to the repository, TOML text).
pub const EMBEDDED: [(&str, &str); 8] = [
    (
        "question_pool/backend.toml",
        include_str!("../../../../question_pool/backend.toml"),
    ),
    (
        "question_pool/frontend.toml",
        include_str!("../../../../question_pool/frontend.toml"),
    ),
    (
        "question_pool/data_ml.toml",
        include_str!("../../../../question_pool/data_ml.toml"),
    ),
    (
        "question_pool/devops_sre.toml",
        include_str!("../../../../question_pool/devops_sre.toml"),
    ),
    (
        "question_pool/mobile.toml",
        include_str!("../../../../question_pool/mobile.toml"),
    ),
    (
        "question_pool/product_management.toml",
        include_str!("../../../../question_pool/product_management.toml"),
    ),
    (
        "question_pool/general_swe.toml",
        include_str!("../../../../question_pool/general_swe.toml"),
    ),
    (
        "question_pool/behavioral.toml",
        include_str!("../../../../question_pool/behavioral.toml"),
    ),
];

/// The pool's domains (one file each).
pub const DOMAINS: [&str; 8] = [
    "backend",
    "frontend",
    "data_ml",
    "devops_sre",
    "mobile",
    "product_management",
    "general_swe",
    "behavioral",
];

/// `{technology}` is filled from the first this-many technologies (the resume's main ones).
pub const TOP_TECHNOLOGIES: usize = 6;

/// Placeholders a question's text and follow-ups may use.
pub const PLACEHOLDERS: [&str; 3] = ["role", "technology", "project_name"];

/// A question's category.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    /// Background and motivation; asked first.
    Introduction,
    /// Technical, easy.
    TechnicalEasy,
    /// Technical, medium.
    TechnicalMedium,
    /// Technical, hard.
    TechnicalHard,
    /// Behavioral ("tell me about a time").
    Behavioral,
    /// About the candidate's own projects.
    Project,
}

impl Category {
    /// The name used in the pool files and reports (`technical_medium`).
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Introduction => "introduction",
            Category::TechnicalEasy => "technical_easy",
            Category::TechnicalMedium => "technical_medium",
            Category::TechnicalHard => "technical_hard",
            Category::Behavioral => "behavioral",
            Category::Project => "project",
        }
    }

    /// Whether this is one of the three technical categories.
    pub fn is_technical(self) -> bool {
        matches!(
            self,
            Category::TechnicalEasy | Category::TechnicalMedium | Category::TechnicalHard
        )
    }
}

/// One pool question. In an interview's plan (see [`ChosenQuestion`]) the text and follow-ups
/// have their placeholders filled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Question {
    /// Pool id (`backend-012`).
    pub id: String,
    /// The file it comes from (`backend`, `behavioral`, ...).
    pub domain: String,
    /// Category.
    pub category: Category,
    /// Difficulty.
    pub difficulty: Difficulty,
    /// Topic tags.
    pub tags: Vec<String>,
    /// The question (may contain `{role}`, `{technology}`, `{project_name}` in the pool).
    pub text: String,
    /// 3-6 points a good answer covers.
    pub rubric: Vec<String>,
    /// 1-2 follow-up questions.
    pub follow_ups: Vec<String>,
}

impl Question {
    /// Whether the question asks for a story from experience, so that an answer's STAR structure
    /// counts: behavioral questions, and others phrased "tell me about a time".
    pub fn asks_for_story(&self) -> bool {
        self.category == Category::Behavioral || super::scoring::asks_for_story(&self.text)
    }

    /// Whether the text or a follow-up uses `{placeholder}`.
    pub fn uses(&self, placeholder: &str) -> bool {
        let p = format!("{{{placeholder}}}");
        self.text.contains(&p) || self.follow_ups.iter().any(|f| f.contains(&p))
    }
}

/// Shares identical questions between the interviews held in memory: most interviews ask pool
/// questions whose filled text repeats (same role, same technology), so one copy serves them all.
/// Bounded: past [`QuestionInterner::MAX`] distinct questions it drops those no session holds (and
/// starts over if that is not enough; copies held stay valid).
#[derive(Debug, Default)]
pub struct QuestionInterner {
    shared: std::sync::Mutex<Shared>,
}

/// The interner's table: buckets by a hash of the question, and how many questions they hold.
#[derive(Debug, Default)]
struct Shared {
    buckets: HashMap<u64, Vec<Arc<Question>>>,
    len: usize,
}

impl Shared {
    /// Keeps only the questions `keep` accepts.
    fn retain(&mut self, keep: impl Fn(&Arc<Question>) -> bool) {
        for bucket in self.buckets.values_mut() {
            bucket.retain(&keep);
        }
        self.buckets.retain(|_, b| !b.is_empty());
        self.len = self.buckets.values().map(Vec::len).sum();
    }
}

impl QuestionInterner {
    /// Most distinct questions kept.
    pub const MAX: usize = 20_000;

    /// The shared copy of `q` (`q` itself the first time it is seen).
    pub fn intern(&self, q: Arc<Question>) -> Arc<Question> {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (&q.id, &q.text, &q.follow_ups, &q.rubric).hash(&mut h);
        let mut shared = self.shared.lock().unwrap_or_else(|p| p.into_inner());
        if shared.len >= Self::MAX {
            // Drop the questions no session holds any more; if that is not enough, start over.
            shared.retain(|q| Arc::strong_count(q) > 1);
            if shared.len >= Self::MAX {
                shared.retain(|_| false);
            }
        }
        let bucket = shared.buckets.entry(h.finish()).or_default();
        if let Some(found) = bucket.iter().find(|s| ***s == *q) {
            return found.clone();
        }
        bucket.push(q.clone());
        shared.len += 1;
        q
    }

    /// Distinct questions held.
    pub fn len(&self) -> usize {
        self.shared.lock().unwrap_or_else(|p| p.into_inner()).len
    }

    /// Whether none is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// All pool questions, validated, with their scoring guides.
#[derive(Debug, Clone)]
pub struct QuestionPool {
    questions: Vec<Question>,
    by_id: HashMap<String, usize>,
    guides: HashMap<String, Guide>,
}

/// How the rubric scorer reads a pool question: its rubric points with their feedback phrases and
/// concept groups (the pool's `say` and `concepts`), and the expected points of its first follow-up
/// (`follow_up_points`).
#[derive(Debug, Clone, PartialEq)]
pub struct Guide {
    /// One per rubric point, in rubric order.
    pub points: Vec<Point>,
    /// The expected points of the first follow-up (may be empty).
    pub follow_up: Vec<Point>,
}

impl QuestionPool {
    /// The scoring guide of a pool question.
    pub fn guide(&self, id: &str) -> Option<&Guide> {
        self.guides.get(id)
    }

    /// The rubric points of `q` as the scorer reads them: the pool's authored points when `q` is a
    /// pool question with the same rubric, else points derived from its rubric text.
    pub fn scoring_points(&self, q: &Question) -> Vec<Point> {
        match self.guide(&q.id) {
            Some(g)
                if g.points.len() == q.rubric.len()
                    && g.points.iter().zip(&q.rubric).all(|(p, r)| p.text == *r) =>
            {
                g.points.clone()
            }
            _ => q.rubric.iter().map(|r| Point::derived(r)).collect(),
        }
    }

    /// The expected points of a follow-up `asked` about `q`: the pool's `follow_up_points` when
    /// `asked` is `q`'s first follow-up (placeholders filled) and the pool has points for it.
    pub fn follow_up_points(&self, q: &Question, asked: &str) -> Option<Vec<Point>> {
        let first = q.follow_ups.first()?;
        if first.trim() != asked.trim() {
            return None;
        }
        self.guide(&q.id)
            .map(|g| g.follow_up.clone())
            .filter(|p| !p.is_empty())
    }

    /// Number of questions.
    pub fn len(&self) -> usize {
        self.questions.len()
    }

    /// Whether the pool is empty.
    pub fn is_empty(&self) -> bool {
        self.questions.is_empty()
    }

    /// A question by pool id (placeholders unfilled).
    pub fn get(&self, id: &str) -> Option<&Question> {
        self.by_id.get(id).and_then(|i| self.questions.get(*i))
    }

    /// All questions, in file order.
    pub fn questions(&self) -> &[Question] {
        &self.questions
    }
}

/// The embedded pool, loaded once; `None` (logged once) if it does not validate, which the server
/// refuses at start anyway.
pub fn embedded() -> Option<&'static QuestionPool> {
    static POOL: std::sync::OnceLock<Option<QuestionPool>> = std::sync::OnceLock::new();
    POOL.get_or_init(|| match QuestionPool::load_embedded() {
        Ok(p) => Some(p),
        Err(e) => {
            tracing::error!(error = %e, "the embedded question pool does not validate");
            None
        }
    })
    .as_ref()
}
