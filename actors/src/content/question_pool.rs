//! The question pool (`question_pool/*.toml`): loading and validation, the role → domain mapping,
//! and the deterministic choice of an interview's questions (difficulty ramp, exclusions, resume fill).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::scoring::concepts::{self, Vocabulary};
use super::scoring::Point;
use super::templates::{line_of_offset, placeholders, toml_error};
use super::{stable_hash, ContentError, Difficulty, Track};

/// The shared vocabulary of concept alternatives (`@name` in a point's concepts), embedded at build
/// time: (path relative to the repository, TOML text).
pub const VOCABULARY: (&str, &str) = (
    "question_pool/concepts.toml",
    include_str!("../../../question_pool/concepts.toml"),
);

/// The pool files, as embedded at build time: (path relative to the repository, TOML text).
pub const EMBEDDED: [(&str, &str); 8] = [
    (
        "question_pool/backend.toml",
        include_str!("../../../question_pool/backend.toml"),
    ),
    (
        "question_pool/frontend.toml",
        include_str!("../../../question_pool/frontend.toml"),
    ),
    (
        "question_pool/data_ml.toml",
        include_str!("../../../question_pool/data_ml.toml"),
    ),
    (
        "question_pool/devops_sre.toml",
        include_str!("../../../question_pool/devops_sre.toml"),
    ),
    (
        "question_pool/mobile.toml",
        include_str!("../../../question_pool/mobile.toml"),
    ),
    (
        "question_pool/product_management.toml",
        include_str!("../../../question_pool/product_management.toml"),
    ),
    (
        "question_pool/general_swe.toml",
        include_str!("../../../question_pool/general_swe.toml"),
    ),
    (
        "question_pool/behavioral.toml",
        include_str!("../../../question_pool/behavioral.toml"),
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

/// What fills a question's placeholders: the role, and the resume's technologies and projects.
#[derive(Debug, Clone, Copy)]
pub struct Fill<'a> {
    /// Fills `{role}`.
    pub role: &'a str,
    /// Fills `{technology}` (from the first [`TOP_TECHNOLOGIES`], in rotation from a seeded start);
    /// questions that need one are skipped when empty.
    pub technologies: &'a [String],
    /// Fills `{project_name}` (in rotation from a seeded start); questions that need one are
    /// skipped when empty.
    pub projects: &'a [String],
}

/// A question chosen for an interview. `question.text` and `question.follow_ups` have every
/// placeholder filled; `question.id` stays the pool id, and `original_id` repeats it so callers
/// that rewrite `question.id` can still refer to the pool entry (and to exclusion history).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChosenQuestion {
    /// The question with its placeholders filled.
    pub question: Question,
    /// The pool id.
    pub original_id: String,
}

/// What to choose.
#[derive(Debug, Clone, Copy)]
pub struct Selection<'a> {
    /// The role applied for (picks the domain; see [`QuestionPool::domain_for_role`]).
    pub role: &'a str,
    /// Technical, behavioral or mixed.
    pub track: Track,
    /// Centre of the difficulty ramp.
    pub difficulty: Difficulty,
    /// How many questions.
    pub count: usize,
    /// Seed (the interview id): same seed, same questions.
    pub seed: &'a str,
    /// Placeholder values.
    pub fill: Fill<'a>,
    /// Ids asked in the candidate's recent interviews; used only when nothing else is left.
    pub exclude: &'a HashSet<String>,
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

/// One expected point of a follow-up, as written in the pool.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPoint {
    say: String,
    concepts: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    domain: String,
    questions: Vec<RawQuestion>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawQuestion {
    id: String,
    category: Category,
    difficulty: Difficulty,
    tags: Vec<String>,
    text: String,
    rubric: Vec<String>,
    follow_ups: Vec<String>,
    #[serde(default)]
    say: Vec<String>,
    #[serde(default)]
    concepts: Vec<String>,
    #[serde(default)]
    follow_up_points: Vec<RawPoint>,
}

/// Which kind of question a slot of the plan wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Group {
    Intro,
    Technical,
    Project,
    Behavioral,
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    domain: &'static str,
    group: Group,
    pref: Difficulty,
}

impl QuestionPool {
    /// The pool embedded at build time (all eight files), validated.
    pub fn load_embedded() -> Result<QuestionPool, ContentError> {
        let mut files: Vec<(&str, &str)> = EMBEDDED.to_vec();
        files.push(VOCABULARY);
        let pool = Self::parse(&files)?;
        for d in DOMAINS {
            if !pool.questions.iter().any(|q| q.domain == d) {
                return Err(ContentError {
                    path: format!("question_pool/{d}.toml"),
                    line: 0,
                    message: "domain has no questions".into(),
                });
            }
        }
        Ok(pool)
    }

    /// Parses and validates pool files given as (path, TOML text). Checks: TOML syntax and field
    /// types (errors carry the toml crate's line), `domain` known and equal to the file name, ids
    /// `<domain>-NNN` and unique across files, category/difficulty values (technical categories
    /// carry their difficulty), non-empty text and tags, rubric 3-6 points, follow-ups 1-2, and only
    /// `{role}`/`{technology}`/`{project_name}` placeholders (none in rubrics). The scoring guide:
    /// `say` and `concepts` have one entry per rubric point when present, every concept string parses
    /// (see [`concepts`]) with its `@name` entries defined in the vocabulary file
    /// (`question_pool/concepts.toml`, a `[vocabulary]` table, given among the files), and
    /// `follow_up_points` have a phrase and concepts each.
    pub fn parse(files: &[(&str, &str)]) -> Result<QuestionPool, ContentError> {
        let mut questions = Vec::new();
        let mut by_id: HashMap<String, usize> = HashMap::new();
        let mut id_file: HashMap<String, String> = HashMap::new();
        let mut guides: HashMap<String, Guide> = HashMap::new();
        let mut vocabulary = Vocabulary::new();
        for (path, text) in files.iter().filter(|(p, _)| p.ends_with("concepts.toml")) {
            let table: toml::Table =
                toml::from_str(text).map_err(|e| toml_error(path, text, &e))?;
            let err = |message: String| ContentError {
                path: path.to_string(),
                line: key_line_in(text, "vocabulary"),
                message,
            };
            if let Some(key) = table.keys().find(|k| *k != "vocabulary") {
                return Err(err(format!("unexpected key {key:?}")));
            }
            let Some(toml::Value::Table(v)) = table.get("vocabulary") else {
                return Err(err("missing [vocabulary] table".into()));
            };
            vocabulary = concepts::parse_vocabulary(v).map_err(err)?;
        }
        for (path, text) in files.iter().filter(|(p, _)| !p.ends_with("concepts.toml")) {
            let raw: RawFile = toml::from_str(text).map_err(|e| toml_error(path, text, &e))?;
            let err = |line: usize, message: String| ContentError {
                path: path.to_string(),
                line,
                message,
            };
            let Some(domain) = DOMAINS.iter().copied().find(|d| *d == raw.domain) else {
                return Err(err(
                    key_line_in(text, "domain"),
                    format!("unknown domain {:?}", raw.domain),
                ));
            };
            let stem = path
                .rsplit(['/', '\\'])
                .next()
                .unwrap_or(path)
                .trim_end_matches(".toml");
            if stem != domain {
                return Err(err(
                    key_line_in(text, "domain"),
                    format!("domain {domain:?} does not match the file name"),
                ));
            }
            for q in raw.questions {
                let line = id_line(text, &q.id);
                let where_ = format!("question {}", q.id);
                let num = q.id.strip_prefix(domain).and_then(|r| r.strip_prefix('-'));
                if !num.is_some_and(|n| n.len() == 3 && n.bytes().all(|b| b.is_ascii_digit())) {
                    return Err(err(
                        line,
                        format!("{where_}: id must look like '{domain}-NNN'"),
                    ));
                }
                if let Some(other) = id_file.get(&q.id) {
                    return Err(err(
                        line,
                        format!("{where_}: duplicate id (also in {other})"),
                    ));
                }
                let required = match q.category {
                    Category::TechnicalEasy => Some(Difficulty::Easy),
                    Category::TechnicalMedium => Some(Difficulty::Medium),
                    Category::TechnicalHard => Some(Difficulty::Hard),
                    _ => None,
                };
                if required.is_some_and(|d| d != q.difficulty) {
                    return Err(err(
                        line,
                        format!(
                            "{where_}: category {} requires difficulty {:?}",
                            q.category.as_str(),
                            required
                        ),
                    ));
                }
                if q.text.trim().is_empty() {
                    return Err(err(line, format!("{where_}: empty text")));
                }
                if q.tags.is_empty() || q.tags.iter().any(|t| t.trim().is_empty()) {
                    return Err(err(line, format!("{where_}: tags must be non-empty")));
                }
                if !(3..=6).contains(&q.rubric.len()) {
                    return Err(err(
                        field_line(text, line, "rubric"),
                        format!(
                            "{where_}: rubric has {} points, expected 3-6",
                            q.rubric.len()
                        ),
                    ));
                }
                if !(1..=2).contains(&q.follow_ups.len()) {
                    return Err(err(
                        field_line(text, line, "follow_ups"),
                        format!(
                            "{where_}: follow_ups has {} entries, expected 1-2",
                            q.follow_ups.len()
                        ),
                    ));
                }
                let mut texts: Vec<(&str, &str, bool)> = vec![("text", q.text.as_str(), true)];
                texts.extend(
                    q.follow_ups
                        .iter()
                        .map(|f| ("follow_ups", f.as_str(), true)),
                );
                texts.extend(q.rubric.iter().map(|r| ("rubric", r.as_str(), false)));
                for (field, s, allowed) in texts {
                    if s.trim().is_empty() {
                        return Err(err(
                            field_line(text, line, field),
                            format!("{where_}: empty entry in {field}"),
                        ));
                    }
                    let found = placeholders(s).map_err(|m| {
                        err(field_line(text, line, field), format!("{where_}: {m}"))
                    })?;
                    for p in found {
                        if !allowed || !PLACEHOLDERS.contains(&p.as_str()) {
                            return Err(err(
                                field_line(text, line, field),
                                format!("{where_}: placeholder {{{p}}} not allowed in {field}"),
                            ));
                        }
                    }
                }
                let guide = parse_guide(&q, &vocabulary).map_err(|(field, m)| {
                    err(field_line(text, line, field), format!("{where_}: {m}"))
                })?;
                guides.insert(q.id.clone(), guide);
                id_file.insert(q.id.clone(), path.to_string());
                by_id.insert(q.id.clone(), questions.len());
                questions.push(Question {
                    id: q.id,
                    domain: domain.to_string(),
                    category: q.category,
                    difficulty: q.difficulty,
                    tags: q.tags,
                    text: q.text,
                    rubric: q.rubric,
                    follow_ups: q.follow_ups,
                });
            }
        }
        Ok(QuestionPool {
            questions,
            by_id,
            guides,
        })
    }

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

    /// The domain file for a role, by keywords (whole words, case-insensitive): backend/api/server
    /// → `backend`; frontend/react/ui/web → `frontend`; data/ml/"machine learning"/scientist/ai →
    /// `data_ml`; devops/sre/platform/infrastructure/cloud → `devops_sre`; ios/android/mobile →
    /// `mobile`; "product manager"/pm → `product_management`; anything else `general_swe`.
    pub fn domain_for_role(role: &str) -> &'static str {
        let words: Vec<String> = role
            .to_lowercase()
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .map(str::to_string)
            .collect();
        let has = |w: &str| words.iter().any(|x| x == w);
        let phrase = |p: &[&str]| {
            words
                .windows(p.len())
                .any(|win| win.iter().zip(p).all(|(a, b)| a == b))
        };
        // Specific phrases first: they would otherwise match a more general keyword.
        if phrase(&["react", "native"]) || has("flutter") {
            return "mobile";
        }
        if phrase(&["product", "manager"])
            || phrase(&["product", "management"])
            || phrase(&["product", "owner"])
            || has("pm")
        {
            return "product_management";
        }
        if phrase(&["site", "reliability"]) {
            return "devops_sre";
        }
        if has("backend") || phrase(&["back", "end"]) || has("api") || has("server") {
            return "backend";
        }
        if has("frontend") || phrase(&["front", "end"]) || has("react") || has("ui") || has("web") {
            return "frontend";
        }
        if has("data")
            || has("ml")
            || has("ai")
            || phrase(&["machine", "learning"])
            || has("scientist")
            || has("analytics")
        {
            return "data_ml";
        }
        if has("devops") || has("sre") || has("platform") || has("infrastructure") || has("cloud") {
            return "devops_sre";
        }
        if has("ios") || has("android") || has("mobile") {
            return "mobile";
        }
        "general_swe"
    }

    /// Chooses and fills an interview's questions (see the module's rules): deterministic for the
    /// same selection, never a repeated id, excluded ids only when nothing else is left, questions
    /// whose placeholders cannot be filled are skipped; may return fewer than `count`.
    pub fn select(&self, sel: &Selection) -> Vec<ChosenQuestion> {
        let domain = Self::domain_for_role(sel.role);
        let slots = plan(sel.track, domain, sel.difficulty, sel.count);
        let track_domains: Vec<&str> = match sel.track {
            Track::Technical => vec![domain],
            Track::Behavioral => vec!["behavioral"],
            Track::Mixed => vec![domain, "behavioral"],
        };
        let fillable = |q: &Question| {
            (!q.uses("technology") || !sel.fill.technologies.is_empty())
                && (!q.uses("project_name") || !sel.fill.projects.is_empty())
        };
        // Candidates: the track's files, fillable; each with its seeded order.
        let candidates: Vec<(usize, u64, bool)> = self
            .questions
            .iter()
            .enumerate()
            .filter(|(_, q)| track_domains.contains(&q.domain.as_str()) && fillable(q))
            .map(|(i, q)| {
                let h = mix(stable_hash(&[sel.seed, "question", &q.id]));
                (i, h, sel.exclude.contains(&q.id))
            })
            .collect();

        let mut chosen: Vec<Option<usize>> = vec![None; slots.len()];
        let mut used: HashSet<usize> = HashSet::new();
        // Pass 0: right kind, not excluded. 1: any kind of the track, not excluded.
        // 2: right kind, excluded allowed. 3: anything of the track.
        for pass in 0..4 {
            let strict = pass % 2 == 0;
            let allow_excluded = pass >= 2;
            for (si, slot) in slots.iter().enumerate() {
                if chosen[si].is_some() {
                    continue;
                }
                let best = candidates
                    .iter()
                    .filter(|(i, _, ex)| !used.contains(i) && (allow_excluded || !ex))
                    .filter_map(|&(i, h, ex)| {
                        let q = self.questions.get(i)?;
                        let fits = if strict {
                            q.domain == slot.domain && in_group(q.category, slot.group)
                        } else {
                            true
                        };
                        if !fits {
                            return None;
                        }
                        // Out of kind: prefer the slot's own file, then the nearest kind.
                        let off_file = u8::from(q.domain != slot.domain);
                        let off_kind = fallback_rank(slot.group, q.category);
                        let dist = rank(q.difficulty).abs_diff(rank(slot.pref));
                        Some(((u8::from(ex), off_file, off_kind, dist, h), i))
                    })
                    .min();
                if let Some((_, i)) = best {
                    used.insert(i);
                    chosen[si] = Some(i);
                }
            }
        }

        let mut tech_n = 0usize;
        let mut proj_n = 0usize;
        let tech_off = stable_hash(&[sel.seed, "technology"]) as usize;
        let proj_off = stable_hash(&[sel.seed, "project_name"]) as usize;
        let role = if sel.fill.role.trim().is_empty() {
            if sel.role.trim().is_empty() {
                "software engineer"
            } else {
                sel.role.trim()
            }
        } else {
            sel.fill.role.trim()
        };
        chosen
            .into_iter()
            .flatten()
            .filter_map(|i| self.questions.get(i))
            .map(|q| {
                let tech = if q.uses("technology") {
                    let top =
                        &sel.fill.technologies[..sel.fill.technologies.len().min(TOP_TECHNOLOGIES)];
                    let t = pick_rotating(top, tech_off, tech_n);
                    tech_n += 1;
                    t
                } else {
                    ""
                };
                let project = if q.uses("project_name") {
                    let p = pick_rotating(sel.fill.projects, proj_off, proj_n);
                    proj_n += 1;
                    p
                } else {
                    ""
                };
                let fill = |s: &str| {
                    s.replace("{role}", role)
                        .replace("{technology}", tech)
                        .replace("{project_name}", project)
                };
                let mut filled = q.clone();
                filled.text = fill(&q.text);
                filled.follow_ups = q.follow_ups.iter().map(|f| fill(f)).collect();
                ChosenQuestion {
                    question: filled,
                    original_id: q.id.clone(),
                }
            })
            .collect()
    }
}

/// The scoring guide of a raw question; errors name the field.
fn parse_guide(q: &RawQuestion, vocabulary: &Vocabulary) -> Result<Guide, (&'static str, String)> {
    let n = q.rubric.len();
    for (field, len) in [("say", q.say.len()), ("concepts", q.concepts.len())] {
        if len != 0 && len != n {
            return Err((field, format!("{field} has {len} entries, the rubric {n}")));
        }
    }
    let mut points = Vec::with_capacity(n);
    for (k, text) in q.rubric.iter().enumerate() {
        let say = q.say.get(k).map(|s| s.trim().to_string());
        match (say, q.concepts.get(k)) {
            (Some(say), Some(spec)) => {
                if say.is_empty() {
                    return Err(("say", format!("say[{k}] is empty")));
                }
                let groups = concepts::parse(spec, vocabulary)
                    .map_err(|m| ("concepts", format!("concepts[{k}]: {m}")))?;
                points.push(Point::authored(text, &say, groups));
            }
            _ => points.push(Point::derived(text)),
        }
    }
    let mut follow_up = Vec::with_capacity(q.follow_up_points.len());
    for (k, p) in q.follow_up_points.iter().enumerate() {
        if p.say.trim().is_empty() {
            return Err((
                "follow_up_points",
                format!("follow_up_points[{k}]: empty say"),
            ));
        }
        let groups = concepts::parse(&p.concepts, vocabulary)
            .map_err(|m| ("follow_up_points", format!("follow_up_points[{k}]: {m}")))?;
        follow_up.push(Point::authored(&p.say, p.say.trim(), groups));
    }
    Ok(Guide { points, follow_up })
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

/// A 64-bit finaliser (MurmurHash3's fmix64): FNV-1a's high bits barely change between ids that
/// differ only in their last digits, so sorting by the raw hash would follow id order.
fn mix(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^= h >> 33;
    h
}

fn pick_rotating(list: &[String], offset: usize, n: usize) -> &str {
    if list.is_empty() {
        return "";
    }
    list[(offset % list.len() + n) % list.len()].trim()
}

/// 0 for the slot's own kind, then the nearest substitutes; another introduction comes last.
fn fallback_rank(g: Group, c: Category) -> u8 {
    if in_group(c, g) {
        return 0;
    }
    if c == Category::Introduction {
        return 3;
    }
    match (g, c) {
        (Group::Project, c) if c.is_technical() => 1,
        (Group::Technical, Category::Project) => 1,
        (Group::Behavioral, Category::Project) => 1,
        (Group::Intro, Category::TechnicalEasy) => 1,
        _ => 2,
    }
}

fn in_group(c: Category, g: Group) -> bool {
    match g {
        Group::Intro => c == Category::Introduction,
        Group::Technical => c.is_technical(),
        Group::Project => c == Category::Project,
        Group::Behavioral => c == Category::Behavioral,
    }
}

fn rank(d: Difficulty) -> u8 {
    match d {
        Difficulty::Easy => 0,
        Difficulty::Medium => 1,
        Difficulty::Hard => 2,
    }
}

/// Difficulties for `k` questions, ascending: easy → mostly easy and some medium; medium → a few
/// easy, mostly medium, a few hard; hard → some medium, mostly hard.
fn ramp(d: Difficulty, k: usize) -> Vec<Difficulty> {
    let (e, m, h) = match d {
        Difficulty::Easy => {
            let m = (k * 3 + 5) / 10;
            (k - m, m, 0)
        }
        Difficulty::Medium => {
            let (mut e, mut h) = ((k + 1) / 4, k / 4);
            if k == 2 {
                e = 1;
            }
            if k >= 3 {
                e = e.max(1);
                h = h.max(1);
            }
            (e, k - e - h, h)
        }
        Difficulty::Hard => {
            let m = (k * 4 + 5) / 10;
            (0, m, k - m)
        }
    };
    let mut out = vec![Difficulty::Easy; e];
    out.extend(vec![Difficulty::Medium; m]);
    out.extend(vec![Difficulty::Hard; h]);
    out
}

/// Puts `extra` evenly among `main`, never before main's first item.
fn interleave(main: Vec<Slot>, extra: Vec<Slot>) -> Vec<Slot> {
    let (m, e) = (main.len(), extra.len());
    let mut out = Vec::with_capacity(m + e);
    let mut extra = extra.into_iter().enumerate().peekable();
    let mut main = main.into_iter();
    for i in 0..=m {
        while let Some((j, _)) = extra.peek() {
            let at = ((j + 1) * m).div_ceil(e + 1).max(1);
            if at > i && i < m {
                break;
            }
            if let Some((_, s)) = extra.next() {
                out.push(s);
            }
        }
        if let Some(s) = main.next() {
            out.push(s);
        }
    }
    out
}

/// Technical slots with the project slot in the middle.
fn technical_block(domain: &'static str, d: Difficulty, k: usize, project: bool) -> Vec<Slot> {
    let techs: Vec<Slot> = ramp(d, k)
        .into_iter()
        .map(|pref| Slot {
            domain,
            group: Group::Technical,
            pref,
        })
        .collect();
    let half = techs.len().div_ceil(2);
    let mut out: Vec<Slot> = techs[..half].to_vec();
    if project {
        out.push(Slot {
            domain,
            group: Group::Project,
            pref: d,
        });
    }
    out.extend_from_slice(&techs[half..]);
    out
}

/// The interview's slots, in order.
fn plan(track: Track, domain: &'static str, d: Difficulty, n: usize) -> Vec<Slot> {
    if n == 0 {
        return Vec::new();
    }
    let intro = |domain| Slot {
        domain,
        group: Group::Intro,
        pref: Difficulty::Easy,
    };
    let mut out = Vec::with_capacity(n);
    match track {
        Track::Technical => {
            out.push(intro(domain));
            let project = n >= 6;
            let behavioral = n >= 8;
            let k = (n - 1)
                .saturating_sub(usize::from(project))
                .saturating_sub(usize::from(behavioral));
            out.extend(technical_block(domain, d, k, project));
            if behavioral {
                out.push(Slot {
                    domain,
                    group: Group::Behavioral,
                    pref: d,
                });
            }
        }
        Track::Behavioral => {
            out.push(intro("behavioral"));
            let r = n - 1;
            let p = if r >= 3 { (r / 4).max(1) } else { 0 };
            let main: Vec<Slot> = ramp(d, r - p)
                .into_iter()
                .map(|pref| Slot {
                    domain: "behavioral",
                    group: Group::Behavioral,
                    pref,
                })
                .collect();
            let projects = vec![
                Slot {
                    domain: "behavioral",
                    group: Group::Project,
                    pref: d,
                };
                p
            ];
            out.extend(interleave(main, projects));
        }
        Track::Mixed => {
            out.push(intro(domain));
            let b = if n >= 2 { ((n * 4 + 5) / 10).max(1) } else { 0 };
            let rest = n - 1 - b;
            let project = n >= 6 && rest >= 2;
            let k = rest - usize::from(project);
            let main = technical_block(domain, d, k, project);
            let behav: Vec<Slot> = ramp(d, b)
                .into_iter()
                .map(|pref| Slot {
                    domain: "behavioral",
                    group: Group::Behavioral,
                    pref,
                })
                .collect();
            out.extend(interleave(main, behav));
        }
    }
    out
}

fn key_line_in(text: &str, key: &str) -> usize {
    super::templates::key_line(text, key)
}

/// Line of `id = "<id>"`, 0 when not found.
fn id_line(text: &str, id: &str) -> usize {
    let needle = format!("\"{id}\"");
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let l = line.trim_start();
        if l.starts_with("id") && l.contains(&needle) {
            return line_of_offset(text, offset);
        }
        offset += line.len();
    }
    0
}

/// Line of `field =` at or after line `from` (1-based), before the next `[[questions]]`; falls back
/// to `from`.
fn field_line(text: &str, from: usize, field: &str) -> usize {
    for (i, line) in text.lines().enumerate().skip(from.saturating_sub(1)) {
        let l = line.trim_start();
        if i + 1 > from && l.starts_with("[[") {
            break;
        }
        if let Some(rest) = l.strip_prefix(field) {
            if rest.trim_start().starts_with('=') {
                return i + 1;
            }
        }
    }
    from
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_pool_question_has_a_scoring_guide() {
        let pool = QuestionPool::load_embedded().unwrap();
        let mut follow_up_points = 0;
        for q in pool.questions() {
            let g = pool.guide(&q.id).unwrap();
            assert_eq!(g.points.len(), q.rubric.len(), "{}", q.id);
            for p in &g.points {
                assert!(
                    !p.groups.is_empty() && p.need == p.groups.len() && p.say != p.text,
                    "{}: {:?} has no authored phrase and concepts",
                    q.id,
                    p.text
                );
            }
            assert!(!g.follow_up.is_empty(), "{}: no follow-up points", q.id);
            follow_up_points += g.follow_up.len();
            // Chosen (filled) questions find their guide by id and rubric.
            assert_eq!(pool.scoring_points(q), g.points, "{}", q.id);
            assert_eq!(
                pool.follow_up_points(q, &q.follow_ups[0]).as_deref(),
                Some(g.follow_up.as_slice())
            );
            assert_eq!(pool.follow_up_points(q, "Something else entirely?"), None);
        }
        assert!(follow_up_points >= 2 * pool.len(), "{follow_up_points}");
    }

    #[test]
    fn guide_errors_name_the_field() {
        let q = |extra: &str| {
            format!(
                "domain = \"backend\"\n[[questions]]\nid = \"backend-001\"\ncategory = \"technical_easy\"\n\
                 difficulty = \"easy\"\ntags = [\"x\"]\ntext = \"What is a thing?\"\n\
                 rubric = [\"One point here\", \"Two point here\", \"Three point here\"]\n\
                 follow_ups = [\"Why?\"]\n{extra}"
            )
        };
        let ok = q(
            "say = [\"a\", \"b\", \"c\"]\nconcepts = [\"one\", \"two; point\", \"three\"]\n\
                    follow_up_points = [{ say = \"why\", concepts = \"because\" }]\n",
        );
        let pool = QuestionPool::parse(&[("question_pool/backend.toml", &ok)]).unwrap();
        assert_eq!(pool.guide("backend-001").unwrap().points[1].groups.len(), 2);
        let short = q("say = [\"a\"]\n");
        let e = QuestionPool::parse(&[("question_pool/backend.toml", &short)]).unwrap_err();
        assert!(e.message.contains("say has 1 entries"), "{e}");
        let bad = q("say = [\"a\", \"b\", \"c\"]\nconcepts = [\"one\", \"@nope\", \"three\"]\n");
        let e = QuestionPool::parse(&[("question_pool/backend.toml", &bad)]).unwrap_err();
        assert!(
            e.message.contains("concepts[1]") && e.message.contains("@nope"),
            "{e}"
        );
        assert!(e.line > 0, "{e}");
    }

    fn pool() -> QuestionPool {
        QuestionPool::load_embedded().unwrap()
    }

    fn sel<'a>(
        role: &'a str,
        track: Track,
        difficulty: Difficulty,
        count: usize,
        seed: &'a str,
        fill: Fill<'a>,
        exclude: &'a HashSet<String>,
    ) -> Selection<'a> {
        Selection {
            role,
            track,
            difficulty,
            count,
            seed,
            fill,
            exclude,
        }
    }

    const NO: &[String] = &[];

    #[test]
    fn interner_shares_equal_questions_and_keeps_different_ones_apart() {
        let p = pool();
        let q = p.get("backend-001").unwrap().clone();
        let interner = QuestionInterner::default();
        let first = interner.intern(Arc::new(q.clone()));
        let again = interner.intern(Arc::new(q.clone()));
        assert!(Arc::ptr_eq(&first, &again), "one copy for equal questions");
        let mut other = q;
        other.text.push_str(" (for a data engineer)");
        let other = interner.intern(Arc::new(other));
        assert!(!Arc::ptr_eq(&first, &other));
        assert_eq!(interner.len(), 2);
        // Full, it lets go of the questions no session holds, and keeps the ones in use.
        drop(again);
        let base = p.get("backend-002").unwrap().clone();
        for i in 0..QuestionInterner::MAX {
            let mut q = base.clone();
            q.text = format!("{} #{i}", base.text);
            interner.intern(Arc::new(q));
        }
        let mut last = base.clone();
        last.text.push_str(" (last)");
        interner.intern(Arc::new(last));
        // Pruned when it reached MAX: `first` and `other` (still held) stayed, and the questions
        // interned after the pruning (the last two of the loop, and `last`) joined them.
        assert_eq!(interner.len(), 5);
        let held_again = interner.intern(Arc::new((*first).clone()));
        assert!(Arc::ptr_eq(&first, &held_again));
        // Stored, a shared question is the plain question (serde's `rc`: the same bytes).
        let plain = serde_json::to_string(&*first).unwrap();
        assert_eq!(serde_json::to_string(&first).unwrap(), plain);
    }

    #[test]
    fn embedded_pool_loads() {
        let p = pool();
        assert!(p.len() >= 300, "{}", p.len());
        let q = p.get("backend-001").unwrap();
        assert_eq!(q.category, Category::Introduction);
        assert_eq!(q.domain, "backend");
        for d in DOMAINS {
            assert!(p.questions().iter().any(|q| q.domain == d));
        }
    }

    #[test]
    fn roles_map_to_domains() {
        let cases = [
            ("Senior Backend Engineer", "backend"),
            ("API Developer", "backend"),
            ("Back-end developer", "backend"),
            ("Frontend Engineer", "frontend"),
            ("React Developer", "frontend"),
            ("UI Engineer", "frontend"),
            ("Data Scientist", "data_ml"),
            ("ML Engineer", "data_ml"),
            ("Machine Learning Engineer", "data_ml"),
            ("DevOps Engineer", "devops_sre"),
            ("Site Reliability Engineer", "devops_sre"),
            ("SRE", "devops_sre"),
            ("Platform Engineer", "devops_sre"),
            ("Cloud Infrastructure Engineer", "devops_sre"),
            ("iOS Developer", "mobile"),
            ("Android Engineer", "mobile"),
            ("React Native Developer", "mobile"),
            ("Product Manager", "product_management"),
            ("Senior PM", "product_management"),
            ("Software Engineer", "general_swe"),
            ("Pmatic dev", "general_swe"),
            ("", "general_swe"),
        ];
        for (role, want) in cases {
            assert_eq!(QuestionPool::domain_for_role(role), want, "{role}");
        }
    }

    #[test]
    fn technical_selection_follows_the_rules() {
        let p = pool();
        let ex = HashSet::new();
        let fill = Fill {
            role: "Backend Engineer",
            technologies: NO,
            projects: NO,
        };
        for count in 1..=12 {
            for d in [Difficulty::Easy, Difficulty::Medium, Difficulty::Hard] {
                let s = sel(
                    "Backend Engineer",
                    Track::Technical,
                    d,
                    count,
                    "iv-42",
                    fill,
                    &ex,
                );
                let qs = p.select(&s);
                assert_eq!(qs.len(), count);
                assert_eq!(qs[0].question.category, Category::Introduction);
                let ids: HashSet<&str> = qs.iter().map(|q| q.original_id.as_str()).collect();
                assert_eq!(ids.len(), count, "no repeats");
                for q in &qs {
                    assert_eq!(q.question.domain, "backend");
                    assert!(!q.question.text.contains('{'), "{}", q.question.text);
                    assert!(!q.question.uses("technology") && !q.question.uses("project_name"));
                    assert_eq!(q.question.id, q.original_id);
                }
                let cats: Vec<Category> = qs.iter().map(|q| q.question.category).collect();
                // Domain project questions all need {project_name}: none without projects.
                assert!(!cats.contains(&Category::Project), "{cats:?}");
                assert_eq!(cats.contains(&Category::Behavioral), count >= 8, "{cats:?}");
                let techs: Vec<Difficulty> = qs
                    .iter()
                    .filter(|q| q.question.category.is_technical())
                    .map(|q| q.question.difficulty)
                    .collect();
                // A ramp: difficulties never go down.
                assert!(
                    techs.windows(2).all(|w| rank(w[0]) <= rank(w[1])),
                    "{techs:?}"
                );
                match d {
                    Difficulty::Easy => assert!(!techs.contains(&Difficulty::Hard)),
                    Difficulty::Hard => assert!(!techs.contains(&Difficulty::Easy)),
                    Difficulty::Medium => {
                        if techs.len() >= 3 {
                            assert!(techs.contains(&Difficulty::Easy));
                            assert!(techs.contains(&Difficulty::Medium));
                            assert!(techs.contains(&Difficulty::Hard));
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn project_question_with_projects() {
        let p = pool();
        let ex = HashSet::new();
        let projects = vec!["LedgerLite".to_string()];
        let fill = Fill {
            role: "Backend Engineer",
            technologies: NO,
            projects: &projects,
        };
        for count in 1..=10 {
            let qs = p.select(&sel(
                "Backend Engineer",
                Track::Technical,
                Difficulty::Medium,
                count,
                "p",
                fill,
                &ex,
            ));
            let n = qs
                .iter()
                .filter(|q| q.question.category == Category::Project)
                .count();
            assert_eq!(n, usize::from(count >= 6), "{count}");
            if count >= 6 {
                let q = qs
                    .iter()
                    .find(|q| q.question.category == Category::Project)
                    .unwrap();
                assert!(
                    q.question.text.contains("LedgerLite"),
                    "{}",
                    q.question.text
                );
            }
        }
    }

    #[test]
    fn deterministic_and_seed_dependent() {
        let p = pool();
        let ex = HashSet::new();
        let fill = Fill {
            role: "Frontend Engineer",
            technologies: NO,
            projects: NO,
        };
        let a = p.select(&sel(
            "Frontend Engineer",
            Track::Mixed,
            Difficulty::Medium,
            8,
            "a",
            fill,
            &ex,
        ));
        let a2 = p.select(&sel(
            "Frontend Engineer",
            Track::Mixed,
            Difficulty::Medium,
            8,
            "a",
            fill,
            &ex,
        ));
        let b = p.select(&sel(
            "Frontend Engineer",
            Track::Mixed,
            Difficulty::Medium,
            8,
            "b",
            fill,
            &ex,
        ));
        assert_eq!(a, a2);
        assert_ne!(a, b);
    }

    #[test]
    fn mixed_and_behavioral_tracks() {
        let p = pool();
        let ex = HashSet::new();
        let fill = Fill {
            role: "Data Scientist",
            technologies: NO,
            projects: NO,
        };
        let qs = p.select(&sel(
            "Data Scientist",
            Track::Mixed,
            Difficulty::Medium,
            10,
            "m",
            fill,
            &ex,
        ));
        assert_eq!(qs.len(), 10);
        assert_eq!(qs[0].question.category, Category::Introduction);
        assert_eq!(qs[0].question.domain, "data_ml");
        let from_behavioral = qs
            .iter()
            .filter(|q| q.question.domain == "behavioral")
            .count();
        assert_eq!(from_behavioral, 4);
        assert!(qs[1].question.domain == "data_ml");

        let qs = p.select(&sel(
            "Data Scientist",
            Track::Behavioral,
            Difficulty::Medium,
            9,
            "m",
            fill,
            &ex,
        ));
        assert_eq!(qs.len(), 9);
        assert_eq!(qs[0].question.category, Category::Introduction);
        assert!(qs.iter().all(|q| q.question.domain == "behavioral"));
        assert!(qs.iter().any(|q| q.question.category == Category::Project));
        assert_eq!(
            qs.iter()
                .filter(|q| q.question.category == Category::Introduction)
                .count(),
            1
        );
    }

    #[test]
    fn placeholders_filled_from_resume() {
        let p = pool();
        let ex = HashSet::new();
        let techs = vec!["PostgreSQL".to_string(), "Kafka".to_string()];
        let projects = vec!["ShopFast".to_string()];
        let fill = Fill {
            role: "Backend Engineer",
            technologies: &techs,
            projects: &projects,
        };
        let mut saw = 0;
        for i in 0..30 {
            let seed = format!("seed-{i}");
            for q in p.select(&sel(
                "Backend Engineer",
                Track::Technical,
                Difficulty::Medium,
                10,
                &seed,
                fill,
                &ex,
            )) {
                let orig = p.get(&q.original_id).unwrap();
                assert!(!q.question.text.contains('{'));
                assert!(q.question.follow_ups.iter().all(|f| !f.contains('{')));
                if orig.uses("technology") || orig.uses("project_name") {
                    saw += 1;
                    assert!(
                        ["PostgreSQL", "Kafka", "ShopFast"].iter().any(|t| q
                            .question
                            .text
                            .contains(t)
                            || q.question.follow_ups.iter().any(|f| f.contains(t))),
                        "{}",
                        q.question.text
                    );
                }
            }
        }
        assert!(saw > 10, "{saw}");
    }

    #[test]
    fn exclusions_are_used_last() {
        let p = pool();
        let fill = Fill {
            role: "Mobile Engineer",
            technologies: NO,
            projects: NO,
        };
        let none = HashSet::new();
        let first = p.select(&sel(
            "Mobile Engineer",
            Track::Technical,
            Difficulty::Medium,
            8,
            "x",
            fill,
            &none,
        ));
        let ex: HashSet<String> = first.iter().map(|q| q.original_id.clone()).collect();
        let second = p.select(&sel(
            "Mobile Engineer",
            Track::Technical,
            Difficulty::Medium,
            8,
            "x",
            fill,
            &ex,
        ));
        assert_eq!(second.len(), 8);
        assert!(second.iter().all(|q| !ex.contains(&q.original_id)));

        // Excluding the whole domain: questions still come, as many as possible.
        let all: HashSet<String> = p
            .questions()
            .iter()
            .filter(|q| q.domain == "mobile")
            .map(|q| q.id.clone())
            .collect();
        let third = p.select(&sel(
            "Mobile Engineer",
            Track::Technical,
            Difficulty::Medium,
            8,
            "x",
            fill,
            &all,
        ));
        assert_eq!(third.len(), 8);

        // Asking for more than the file holds returns what is possible, without repeats.
        let many = p.select(&sel(
            "Mobile Engineer",
            Track::Technical,
            Difficulty::Medium,
            200,
            "x",
            fill,
            &none,
        ));
        let fillable = p
            .questions()
            .iter()
            .filter(|q| q.domain == "mobile" && !q.uses("technology") && !q.uses("project_name"))
            .count();
        assert_eq!(many.len(), fillable);
        assert_eq!(many[0].question.category, Category::Introduction);
    }

    #[test]
    fn zero_count_is_empty() {
        let p = pool();
        let ex = HashSet::new();
        let fill = Fill {
            role: "x",
            technologies: NO,
            projects: NO,
        };
        assert!(p
            .select(&sel("x", Track::Mixed, Difficulty::Easy, 0, "s", fill, &ex))
            .is_empty());
    }

    #[test]
    fn validation_errors_carry_file_and_line() {
        let good = "domain = \"backend\"\n\n[[questions]]\nid = \"backend-001\"\ncategory = \"introduction\"\ndifficulty = \"easy\"\ntags = [\"a\"]\ntext = \"Tell me about yourself and this {role} role.\"\nrubric = [\"a b c\", \"d e f\", \"g h i\"]\nfollow_ups = [\"Why?\"]\n";
        assert_eq!(
            QuestionPool::parse(&[("question_pool/backend.toml", good)])
                .unwrap()
                .len(),
            1
        );

        let bad_cat = good.replace("\"introduction\"", "\"intro\"");
        let e = QuestionPool::parse(&[("question_pool/backend.toml", &bad_cat)]).unwrap_err();
        assert_eq!(e.path, "question_pool/backend.toml");
        assert_eq!(e.line, 5, "{e}");
        assert!(
            e.to_string().starts_with("question_pool/backend.toml:5:"),
            "{e}"
        );

        let syntax = good.replace("tags = [\"a\"]", "tags = [\"a\"");
        let e = QuestionPool::parse(&[("question_pool/backend.toml", &syntax)]).unwrap_err();
        assert!(e.line >= 7, "{e}");

        let short = good.replace(", \"g h i\"", "");
        let e = QuestionPool::parse(&[("question_pool/backend.toml", &short)]).unwrap_err();
        assert_eq!(e.line, 9, "{e}");

        let ph = good.replace("{role}", "{company}");
        let e = QuestionPool::parse(&[("question_pool/backend.toml", &ph)]).unwrap_err();
        assert_eq!(e.line, 8, "{e}");

        let dup = format!("{good}{}", &good[good.find("[[questions]]").unwrap()..]);
        let e = QuestionPool::parse(&[("question_pool/backend.toml", &dup)]).unwrap_err();
        assert!(e.message.contains("duplicate id"), "{e}");

        let e = QuestionPool::parse(&[("question_pool/frontend.toml", good)]).unwrap_err();
        assert!(e.message.contains("file name"), "{e}");

        let unknown = good.replace("tags = [\"a\"]", "tags = [\"a\"]\nweight = 3");
        let e = QuestionPool::parse(&[("question_pool/backend.toml", &unknown)]).unwrap_err();
        assert_eq!(e.line, 8, "{e}");
    }
}
