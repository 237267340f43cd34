//! The content review of the shipped pool and templates: rules stricter than loading (load.rs and
//! templates.rs refuse only what would break an interview) that keep the content consistent: plain
//! ASCII text without stray spaces, no repeated questions or variants, enough questions per domain and
//! category, a share of questions that use the resume, feedback in the second person, short reactions.
//! It is the one content validator: `cargo test -p actors --lib content::` runs it on the shipped
//! files (in `.ci/run` and the workspace tests), and [`review`] lists every problem at once.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::load::RawFile;
use super::{Category, DOMAINS};

/// Fewest questions a domain file has.
const MIN_PER_DOMAIN: usize = 40;
/// Fewest questions in the pool.
const MIN_TOTAL: usize = 300;
/// Fewest questions per category in a domain file (every domain but `behavioral`).
const MIN_PER_CATEGORY: [(Category, usize); 6] = [
    (Category::Introduction, 3),
    (Category::TechnicalEasy, 8),
    (Category::TechnicalMedium, 10),
    (Category::TechnicalHard, 8),
    (Category::Behavioral, 4),
    (Category::Project, 5),
];
/// The same for `behavioral.toml`, mostly behavioral questions (technical ones may be missing).
const MIN_PER_CATEGORY_BEHAVIORAL: [(Category, usize); 3] = [
    (Category::Introduction, 3),
    (Category::Behavioral, 25),
    (Category::Project, 5),
];
/// Share of a domain's questions that use the resume (`{technology}` or `{project_name}`).
const RESUME_SHARE: (f64, f64) = (0.15, 0.32);
/// The same over the whole pool.
const RESUME_SHARE_TOTAL: (f64, f64) = (0.18, 0.28);
/// Words about the candidate in the third person, which feedback phrases (`say`) must not use.
const THIRD_PERSON: [&str; 9] = [
    "they",
    "their",
    "them",
    "themselves",
    "he",
    "she",
    "his",
    "her",
    "candidate",
];
/// Fewest variants of a template list (a feedback note list: [`MIN_NOTE_VARIANTS`]).
const MIN_VARIANTS: usize = 10;
/// Fewest variants of a feedback note list.
const MIN_NOTE_VARIANTS: usize = 4;
/// Longest transition.
const MAX_TRANSITION_LEN: usize = 90;
/// Longest acknowledgement.
const MAX_ACK_LEN: usize = 220;
/// What a reaction must not say: it may come right before the closing.
const ANNOUNCES_NEXT: [&str; 5] = [
    "move on",
    "moving on",
    "keep going",
    "next question",
    "on to the next",
];

/// Every problem of the pool files and template files given as (path, TOML text), as `path: message`
/// lines; empty when the content passes. Files that do not load are reported with the loader's error.
pub fn review(pool: &[(&str, &str)], templates: &[(&str, &str)]) -> Vec<String> {
    let mut out = Vec::new();
    review_pool(pool, &mut out);
    review_templates(templates, &mut out);
    out
}

/// Checks the pool files beyond what loading checks.
fn review_pool(files: &[(&str, &str)], out: &mut Vec<String>) {
    let mut seen_texts: HashMap<String, String> = HashMap::new();
    let mut total = 0usize;
    let mut total_resume = 0usize;
    let stems: HashSet<&str> = files.iter().map(|(p, _)| stem(p)).collect();
    for d in DOMAINS {
        if !stems.contains(d) {
            out.push(format!("question_pool/{d}.toml: missing domain file"));
        }
    }
    for (path, text) in files.iter().filter(|(p, _)| !p.ends_with("concepts.toml")) {
        let mut err = |m: String| out.push(format!("{path}: {m}"));
        let raw: RawFile = match toml::from_str(text) {
            Ok(raw) => raw,
            Err(e) => {
                err(format!("TOML: {e}"));
                continue;
            }
        };
        let mut per_category: HashMap<Category, usize> = HashMap::new();
        let mut resume = 0usize;
        for q in &raw.questions {
            let at = format!("question {}", q.id);
            *per_category.entry(q.category).or_default() += 1;
            for t in &q.tags {
                let mut chars = t.chars();
                let first_ok = chars
                    .next()
                    .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
                if !first_ok
                    || !chars
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+#.-".contains(c))
                {
                    err(format!("{at}: tag {t:?} should be lowercase kebab-case"));
                }
            }
            if q.tags.iter().collect::<HashSet<_>>().len() != q.tags.len() {
                err(format!("{at}: duplicate tags"));
            }
            let mut used = Vec::new();
            style(&mut err, &format!("{at} text"), &q.text);
            used.extend(super::super::templates::placeholders(&q.text).unwrap_or_default());
            if q.text.len() < 25 {
                err(format!("{at}: text suspiciously short"));
            }
            match seen_texts.get(&norm(&q.text)) {
                Some(other) => err(format!("{at}: duplicate question text (same as {other})")),
                None => {
                    seen_texts.insert(norm(&q.text), format!("{} in {}", q.id, stem(path)));
                }
            }
            for (j, r) in q.rubric.iter().enumerate() {
                style(&mut err, &format!("{at} rubric[{j}]"), r);
                if r.split_whitespace().count() < 3 {
                    err(format!("{at} rubric[{j}]: too vague ({r:?})"));
                }
            }
            if q.rubric
                .iter()
                .map(|r| norm(r))
                .collect::<HashSet<_>>()
                .len()
                != q.rubric.len()
            {
                err(format!("{at}: duplicate rubric points"));
            }
            for (j, f) in q.follow_ups.iter().enumerate() {
                style(&mut err, &format!("{at} follow_ups[{j}]"), f);
                used.extend(super::super::templates::placeholders(f).unwrap_or_default());
                if !f.trim_end().ends_with(['?', '.']) {
                    err(format!("{at} follow_ups[{j}]: should end with '?' or '.'"));
                }
            }
            for (key, values) in [("say", &q.say), ("concepts", &q.concepts)] {
                if values.len() != q.rubric.len() {
                    err(format!(
                        "{at}: {key} has {} entries, the rubric {} (one per rubric point)",
                        values.len(),
                        q.rubric.len()
                    ));
                }
                for (j, v) in values.iter().enumerate() {
                    style(&mut err, &format!("{at} {key}[{j}]"), v);
                }
            }
            for (j, say) in q.say.iter().enumerate() {
                let lower = say.to_lowercase();
                let mut third: Vec<&str> = lower
                    .split(|c: char| !(c.is_ascii_lowercase() || c == '\''))
                    .filter(|w| THIRD_PERSON.contains(w))
                    .collect();
                third.sort_unstable();
                third.dedup();
                if !third.is_empty() {
                    err(format!(
                        "{at} say[{j}]: third person about the candidate ({third:?})"
                    ));
                }
            }
            if q.follow_up_points.is_empty() {
                err(format!(
                    "{at}: missing follow_up_points (expected points of the first follow-up)"
                ));
            }
            for (j, p) in q.follow_up_points.iter().enumerate() {
                style(&mut err, &format!("{at} follow_up_points[{j}].say"), &p.say);
                let concepts = format!("{at} follow_up_points[{j}].concepts");
                style(&mut err, &concepts, &p.concepts);
            }
            if used
                .iter()
                .any(|p| p == "technology" || p == "project_name")
            {
                resume += 1;
            }
        }
        let n = raw.questions.len();
        total += n;
        total_resume += resume;
        if n < MIN_PER_DOMAIN {
            err(format!(
                "only {n} questions, need at least {MIN_PER_DOMAIN}"
            ));
        }
        let mins: &[(Category, usize)] = if raw.domain == "behavioral" {
            &MIN_PER_CATEGORY_BEHAVIORAL
        } else {
            &MIN_PER_CATEGORY
        };
        for (c, need) in mins {
            let have = per_category.get(c).copied().unwrap_or(0);
            if have < *need {
                err(format!(
                    "category {}: {have} questions, need at least {need}",
                    c.as_str()
                ));
            }
        }
        if let Some(m) = share_problem(resume, n, RESUME_SHARE) {
            err(format!(
                "{resume}/{n} questions use {{technology}}/{{project_name}}: {m}"
            ));
        }
    }
    if total < MIN_TOTAL {
        out.push(format!(
            "question_pool: only {total} questions in total, need at least {MIN_TOTAL}"
        ));
    }
    if let Some(m) = share_problem(total_resume, total, RESUME_SHARE_TOTAL) {
        out.push(format!(
            "question_pool: overall resume-placeholder share: {m}"
        ));
    }
}

/// Checks the template files beyond what loading checks (lists, placeholders and counts).
fn review_templates(files: &[(&str, &str)], out: &mut Vec<String>) {
    for (path, text) in files {
        let mut err = |m: String| out.push(format!("{path}: {m}"));
        let table: BTreeMap<String, Vec<String>> = match toml::from_str(text) {
            Ok(t) => t,
            Err(e) => {
                err(format!("TOML: {e}"));
                continue;
            }
        };
        let file = stem(path);
        for (key, variants) in &table {
            let need = if key.starts_with("note_") {
                MIN_NOTE_VARIANTS
            } else {
                MIN_VARIANTS
            };
            if variants.len() < need {
                err(format!(
                    "key {key:?}: {} variants, need at least {need}",
                    variants.len()
                ));
            }
            if variants
                .iter()
                .map(|v| norm(v))
                .collect::<HashSet<_>>()
                .len()
                != variants.len()
            {
                err(format!("key {key:?}: duplicate variants"));
            }
            for (j, v) in variants.iter().enumerate() {
                let at = format!("{key}[{j}]");
                style(&mut err, &at, v);
                let lower = v.to_lowercase();
                if file == "greetings" && v.contains('?') {
                    err(format!("{at}: greeting must not contain a question"));
                }
                if file == "closings"
                    && key == "closing"
                    && !(lower.contains("report") && lower.contains("feedback"))
                {
                    err(format!(
                        "{at}: closing must say a report with feedback is ready"
                    ));
                }
                if file == "transitions" && v.len() > MAX_TRANSITION_LEN {
                    err(format!(
                        "{at}: transition longer than {MAX_TRANSITION_LEN} chars"
                    ));
                }
                if file == "acknowledgements" {
                    for phrase in ANNOUNCES_NEXT.iter().filter(|p| lower.contains(**p)) {
                        err(format!(
                            "{at}: a reaction must not announce what comes next ({phrase:?})"
                        ));
                    }
                    if v.len() > MAX_ACK_LEN {
                        err(format!(
                            "{at}: acknowledgement longer than {MAX_ACK_LEN} chars"
                        ));
                    }
                    if v.chars().any(|c| c.is_ascii_digit()) || mentions_score(&lower) {
                        err(format!("{at}: acknowledgements must not mention a score"));
                    }
                }
                if ["feedback", "acknowledgements", "transitions"].contains(&file) {
                    let sentences = sentences(v);
                    if sentences > 3 {
                        err(format!("{at}: too long ({sentences} sentences)"));
                    }
                }
            }
        }
    }
}

/// The shipped content as embedded in the build, reviewed.
pub fn review_embedded() -> Vec<String> {
    let mut pool: Vec<(&str, &str)> = super::EMBEDDED.to_vec();
    pool.push(super::VOCABULARY);
    let mut out = Vec::new();
    if let Err(e) = super::QuestionPool::load_embedded() {
        out.push(e.to_string());
    }
    if let Err(e) = super::super::templates::Templates::load_embedded() {
        out.push(e.to_string());
    }
    out.extend(review(&pool, &super::super::templates::EMBEDDED));
    out
}

/// Plain text: not empty, no leading or trailing space, no double space, printable ASCII only.
fn style(err: &mut impl FnMut(String), at: &str, s: &str) {
    if s.trim().is_empty() {
        err(format!("{at}: empty string"));
    }
    if s != s.trim() {
        err(format!("{at}: leading/trailing whitespace"));
    }
    if s.contains("  ") {
        err(format!("{at}: double space"));
    }
    let mut bad: Vec<char> = s.chars().filter(|c| !(' '..='~').contains(c)).collect();
    bad.sort_unstable();
    bad.dedup();
    if !bad.is_empty() {
        err(format!("{at}: non-ASCII or control characters {bad:?}"));
    }
}

/// Lowercase words and digits joined by single spaces: what makes two texts the same.
fn norm(s: &str) -> String {
    s.to_lowercase()
        .split(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit()))
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The file name without directory and `.toml`.
fn stem(path: &str) -> &str {
    path.rsplit(['/', '\\'])
        .next()
        .unwrap_or(path)
        .trim_end_matches(".toml")
}

/// `Some(why)` when `part / whole` is outside `range` (nothing to say about an empty whole).
fn share_problem(part: usize, whole: usize, (lo, hi): (f64, f64)) -> Option<String> {
    if whole == 0 {
        return None;
    }
    let share = part as f64 / whole as f64;
    (share < lo || share > hi).then(|| {
        format!(
            "{:.0}%, expected {:.0}%-{:.0}%",
            share * 100.0,
            lo * 100.0,
            hi * 100.0
        )
    })
}

/// Sentence ends: `.`, `!` or `?` followed by a space or the end.
fn sentences(s: &str) -> usize {
    let chars: Vec<char> = s.chars().collect();
    chars
        .iter()
        .enumerate()
        .filter(|(i, c)| {
            matches!(c, '.' | '!' | '?') && chars.get(i + 1).is_none_or(|n| n.is_whitespace())
        })
        .count()
}

/// Whether a lowercase text has a word starting with "score".
fn mentions_score(lower: &str) -> bool {
    lower.match_indices("score").any(|(i, _)| {
        lower[..i]
            .chars()
            .next_back()
            .is_none_or(|c| !(c.is_alphanumeric() || c == '_'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shipped content passes the review (this is CI's content check).
    #[test]
    fn shipped_content_passes_review() {
        let problems = review_embedded();
        assert!(problems.is_empty(), "{}", problems.join("\n"));
    }

    /// Every pool file in question_pool/ is embedded (a new domain file must be added to EMBEDDED).
    #[test]
    fn every_pool_file_is_embedded() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../question_pool");
        let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".toml"))
            .map(|n| format!("question_pool/{n}"))
            .collect();
        on_disk.sort();
        let mut embedded: Vec<String> = super::super::EMBEDDED
            .iter()
            .chain([&super::super::VOCABULARY])
            .map(|(p, _)| p.to_string())
            .collect();
        embedded.sort();
        assert_eq!(on_disk, embedded);
    }

    #[test]
    fn problems_are_all_listed_with_their_file() {
        let pool = "domain = \"backend\"\n[[questions]]\nid = \"backend-001\"\ncategory = \"introduction\"\ndifficulty = \"easy\"\ntags = [\"Bad Tag\"]\ntext = \"Short  text\"\nrubric = [\"one\", \"two words\", \"three words here\"]\nfollow_ups = [\"no end\"]\nsay = [\"they did\"]\n";
        let templates = "next = [\"Let's move on.\"]\n";
        let problems = review(
            &[("question_pool/backend.toml", pool)],
            &[("templates/acknowledgements.toml", templates)],
        );
        let all = problems.join("\n");
        for expected in [
            "question_pool/backend.toml: question backend-001: tag \"Bad Tag\"",
            "text: double space",
            "text suspiciously short",
            "rubric[0]: too vague",
            "follow_ups[0]: should end with '?' or '.'",
            "say has 1 entries, the rubric 3",
            "say[0]: third person",
            "missing follow_up_points",
            "only 1 questions",
            "question_pool/frontend.toml: missing domain file",
            "templates/acknowledgements.toml: key \"next\": 1 variants",
            "must not announce what comes next",
        ] {
            assert!(all.contains(expected), "{expected:?} not in:\n{all}");
        }
    }
}
