//! Loading the question pool: parses the pool files and the concept vocabulary, and validates them
//! (the checks the server refuses to start without); errors carry file and line.

use std::collections::HashMap;

use serde::Deserialize;

use super::super::scoring::concepts::{self, Vocabulary};
use super::super::scoring::Point;
use super::super::templates::{line_of_offset, placeholders, toml_error};
use super::super::{ContentError, Difficulty};
use super::{Category, Guide, Question, QuestionPool, DOMAINS, EMBEDDED, PLACEHOLDERS, VOCABULARY};

/// One expected point of a follow-up, as written in the pool.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPoint {
    pub(super) say: String,
    pub(super) concepts: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFile {
    pub(super) domain: String,
    pub(super) questions: Vec<RawQuestion>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawQuestion {
    pub(super) id: String,
    pub(super) category: Category,
    pub(super) difficulty: Difficulty,
    pub(super) tags: Vec<String>,
    pub(super) text: String,
    pub(super) rubric: Vec<String>,
    pub(super) follow_ups: Vec<String>,
    #[serde(default)]
    pub(super) say: Vec<String>,
    #[serde(default)]
    pub(super) concepts: Vec<String>,
    #[serde(default)]
    pub(super) follow_up_points: Vec<RawPoint>,
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

fn key_line_in(text: &str, key: &str) -> usize {
    super::super::templates::key_line(text, key)
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
