//! The interview report: a fixed JSON shape read by the HTML renderer, the candidate page and the
//! progress page, with a band and the points covered and missing per question (in the candidate's
//! words where the rubric scorer found them), scores per question, category and area, strengths,
//! improvements, the counts of questions asked, answered and skipped, speaking stats and a summary.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::grading::{self, Grader};
use super::question_pool::Question;
use super::scoring::{speaking_stats, Note, PointGrade};
use super::{Difficulty, Track, Verdict};

/// The `source` of an item the candidate skipped.
pub const SKIPPED: &str = "skipped";

/// Everything the report is built from.
#[derive(Debug, Clone, Copy)]
pub struct ReportInput<'a> {
    /// Interview id.
    pub interview_id: &'a str,
    /// Candidate id.
    pub candidate_id: &'a str,
    /// Candidate display name.
    pub candidate_name: &'a str,
    /// Role applied for.
    pub role: &'a str,
    /// Track.
    pub track: Track,
    /// Difficulty.
    pub difficulty: Difficulty,
    /// Call-budget mode.
    pub mode: &'a str,
    /// `completed` | `ended_early` | `expired`.
    pub state: &'a str,
    /// RFC 3339 start time.
    pub started_at: &'a str,
    /// RFC 3339 end time.
    pub finished_at: &'a str,
    /// One item per question asked.
    pub items: &'a [ReportItem],
    /// The interview's seed (its id).
    pub seed: &'a str,
    /// The interview's planned questions (their rubric points rebuild each grade's detail).
    pub questions: &'a [Arc<Question>],
    /// How many questions were planned.
    pub planned: usize,
    /// Items (by index) whose live grade a provider replaced at the end.
    pub regraded: &'a [usize],
    /// The source of those grades (`llm:groq`, ...).
    pub regraded_by: &'a str,
}

/// One question of the interview as it went.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ReportItem {
    /// 1-based position.
    pub index: u32,
    /// Pool id.
    pub question_id: String,
    /// Category name (`technical_medium`).
    pub category: String,
    /// Difficulty name (`medium`).
    pub difficulty: String,
    /// The question as asked.
    pub question: String,
    /// The answer, if any.
    pub answer: Option<String>,
    /// Audio length of a spoken answer, seconds (not in the report JSON; feeds speaking stats).
    pub audio_duration_s: Option<f64>,
    /// 0-10, once evaluated.
    pub score: Option<u8>,
    /// Written feedback.
    pub feedback: String,
    /// Rubric points covered.
    pub rubric_covered: Vec<String>,
    /// Rubric points missed.
    pub rubric_missed: Vec<String>,
    /// Who scored it (`heuristic`, `llm:groq`, ...).
    pub source: String,
    /// The follow-up, if one was asked.
    pub follow_up: Option<FollowUpItem>,
}

/// A follow-up question and its answer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FollowUpItem {
    /// The follow-up as asked.
    pub question: String,
    /// The answer, if any.
    pub answer: Option<String>,
    /// 0-10, once evaluated.
    pub score: Option<u8>,
}

/// Most strengths and improvements listed (improvements may add one habit and "Answer every
/// question").
const MAX_POINTS: usize = 4;

/// The detail of one item's grade, rebuilt from the stored answer: every point with its phrase,
/// covered or not and the candidate's words (the rubric scorer), or covered as the model listed it.
struct Detail {
    verdict: Option<Verdict>,
    grader: Option<Grader>,
    points: Vec<PointGrade>,
    notes: Vec<Note>,
    follow_up: Option<FollowUpDetail>,
}

struct FollowUpDetail {
    verdict: Option<Verdict>,
    points: Vec<PointGrade>,
    skipped: bool,
}

fn detail(item: &ReportItem, q: Option<&Question>, continued: bool) -> Detail {
    let answer = item.answer.as_deref().filter(|a| !a.trim().is_empty());
    let grader = item
        .score
        .map(|_| Grader::of_source(&item.source))
        .filter(|_| answer.is_some());
    let (points, notes) = match (q, answer, grader) {
        (Some(q), Some(a), Some(Grader::Rubric)) => {
            let g = grading::main_target(q).grade(a);
            (g.points, g.notes)
        }
        (Some(q), _, _) => {
            let target = grading::main_target(q);
            (
                grading::model_points(&target.points, &item.rubric_covered),
                Vec::new(),
            )
        }
        (None, _, _) => (Vec::new(), Vec::new()),
    };
    let follow_up = item.follow_up.as_ref().map(|f| {
        let f_answer = f.answer.as_deref().filter(|a| !a.trim().is_empty());
        let points = match (q, f_answer) {
            (Some(q), Some(a)) => {
                grading::follow_up_target(q, &f.question, &item.rubric_missed)
                    .grade(a)
                    .points
            }
            _ => Vec::new(),
        };
        FollowUpDetail {
            verdict: f.score.filter(|_| f_answer.is_some()).map(Verdict::of),
            points,
            // Not answered, and the interview went on past it.
            skipped: f_answer.is_none() && continued,
        }
    });
    Detail {
        verdict: item.score.filter(|_| answer.is_some()).map(Verdict::of),
        grader,
        points,
        notes,
        follow_up,
    }
}

/// The counts of an interview's questions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Planned.
    pub planned: usize,
    /// Asked (shown to the candidate).
    pub asked: usize,
    /// Answered.
    pub answered: usize,
    /// Skipped.
    pub skipped: usize,
    /// Asked but neither answered nor skipped (the interview ended or expired there).
    pub unanswered: usize,
}

/// Counts the questions of `items`, `planned` of them planned.
pub fn counts(items: &[ReportItem], planned: usize) -> Counts {
    let answered = items.iter().filter(|i| answered(i)).count();
    let skipped = items.iter().filter(|i| i.source == SKIPPED).count();
    Counts {
        planned: planned.max(items.len()),
        asked: items.len(),
        answered,
        skipped,
        unanswered: items.len().saturating_sub(answered + skipped),
    }
}

/// A category's area for candidates: the three technical levels are one area ("technical"), so a
/// candidate who chose one difficulty does not read the levels the interview mixed in.
pub fn area(category: &str) -> &str {
    match category {
        "technical_easy" | "technical_medium" | "technical_hard" => "technical",
        other => other,
    }
}

/// Builds the report JSON:
/// `{"interview_id","candidate":{"id","name"},"role","track","difficulty","mode","state",
/// "started_at","finished_at","overall_score","overall_band","category_scores","area_scores",
/// "counts","regraded","questions","strengths","improvements","speaking","summary"}`.
/// `overall_score` is the mean of scored items (1 decimal, null if none) and `overall_band` its
/// band; `category_scores` the mean per category, `area_scores` per area ([`area`]); `counts` the
/// [`Counts`]; `regraded` `{count, source}` when a provider replaced live grades at the end, else
/// null; `questions` the items without `audio_duration_s`, each with `band`, `graded_by`,
/// `regraded`, `skipped`, `points` (phrase, coverage, the candidate's words) and `notes`, and a
/// follow-up's `band`, `points` and `skipped`; strengths and improvements as noun phrases.
/// Deterministic.
pub fn build(input: &ReportInput) -> Value {
    let items = input.items;
    let scored: Vec<(&ReportItem, u8)> = items
        .iter()
        .filter(|i| answered(i))
        .filter_map(|i| i.score.map(|s| (i, s)))
        .collect();
    let overall = mean(scored.iter().map(|(_, s)| *s));

    let mut by_cat: BTreeMap<&str, Vec<u8>> = BTreeMap::new();
    let mut by_area: BTreeMap<&str, Vec<u8>> = BTreeMap::new();
    for (item, s) in &scored {
        by_cat.entry(item.category.as_str()).or_default().push(*s);
        by_area.entry(area(&item.category)).or_default().push(*s);
    }
    let means = |m: &BTreeMap<&str, Vec<u8>>| -> BTreeMap<String, f64> {
        m.iter()
            .filter_map(|(c, v)| mean(v.iter().copied()).map(|x| (c.to_string(), x)))
            .collect()
    };
    let category_means = means(&by_cat);
    let area_means = means(&by_area);

    let finished_all = input.state == "completed";
    let details: Vec<Detail> = items
        .iter()
        .enumerate()
        .map(|(n, item)| {
            let q = input
                .questions
                .get(n)
                .map(Arc::as_ref)
                .filter(|q| q.id == item.question_id);
            detail(item, q, finished_all || n + 1 < items.len())
        })
        .collect();

    let questions: Vec<Value> = items
        .iter()
        .zip(&details)
        .enumerate()
        .map(|(n, (item, d))| {
            let mut v = serde_json::to_value(item).unwrap_or(Value::Null);
            if let Value::Object(o) = &mut v {
                o.remove("audio_duration_s");
                o.insert("band".into(), json!(d.verdict));
                o.insert("graded_by".into(), json!(d.grader));
                o.insert("regraded".into(), json!(input.regraded.contains(&n)));
                o.insert("skipped".into(), json!(item.source == SKIPPED));
                o.insert("points".into(), json!(d.points));
                o.insert("notes".into(), json!(d.notes));
                if let (Some(Value::Object(f)), Some(fd)) = (o.get_mut("follow_up"), &d.follow_up) {
                    f.insert("band".into(), json!(fd.verdict));
                    f.insert("points".into(), json!(fd.points));
                    f.insert("skipped".into(), json!(fd.skipped));
                }
            }
            v
        })
        .collect();

    let strengths = strengths(&scored, items, &details);
    let improvements = improvements(items, &scored, &details);

    let spoken: Vec<(&str, f64)> = items
        .iter()
        .filter_map(|i| match (&i.answer, i.audio_duration_s) {
            (Some(a), Some(d)) => Some((a.as_str(), d)),
            _ => None,
        })
        .collect();
    let speaking = speaking_stats(&spoken)
        .and_then(|s| serde_json::to_value(s).ok())
        .unwrap_or(Value::Null);

    let counts = counts(items, input.planned);
    let regraded = if input.regraded.is_empty() {
        Value::Null
    } else {
        json!({"count": input.regraded.len(), "source": input.regraded_by})
    };
    let summary = summary(input, &scored, &area_means, counts);

    json!({
        "interview_id": input.interview_id,
        "candidate": {"id": input.candidate_id, "name": input.candidate_name},
        "role": input.role,
        "track": input.track,
        "difficulty": input.difficulty,
        "mode": input.mode,
        "state": input.state,
        "started_at": input.started_at,
        "finished_at": input.finished_at,
        "overall_score": overall,
        "overall_band": overall.map(|o| Verdict::of(o.round() as u8)),
        "category_scores": category_means,
        "area_scores": area_means,
        "counts": counts,
        "regraded": regraded,
        "questions": questions,
        "strengths": strengths,
        "improvements": improvements,
        "speaking": speaking,
        "summary": summary,
    })
}

/// The result profile a coach note is written for: the overall band (`strong` | `solid` | `weak`)
/// and the strongest and weakest categories in words (the same when only one was scored). `None`
/// when nothing was scored. Few profiles exist, so notes written for one are reused (cache kind `summary`).
pub fn profile(items: &[ReportItem]) -> Option<(&'static str, String, String)> {
    let scored: Vec<(&ReportItem, u8)> = items
        .iter()
        .filter_map(|i| i.score.map(|s| (i, s)))
        .collect();
    let overall = mean(scored.iter().map(|(_, s)| *s))?;
    let band = if overall >= 8.0 {
        "strong"
    } else if overall >= 5.0 {
        "solid"
    } else {
        "weak"
    };
    let mut by_cat: BTreeMap<&str, Vec<u8>> = BTreeMap::new();
    for (item, s) in &scored {
        by_cat.entry(item.category.as_str()).or_default().push(*s);
    }
    let means: Vec<(&str, f64)> = by_cat
        .iter()
        .filter_map(|(c, v)| mean(v.iter().copied()).map(|m| (*c, m)))
        .collect();
    let best = means.iter().max_by(|a, b| a.1.total_cmp(&b.1))?;
    let worst = means.iter().min_by(|a, b| a.1.total_cmp(&b.1))?;
    Some((band, category_words(best.0), category_words(worst.0)))
}

/// Mean with one decimal; None for no values.
fn mean(values: impl Iterator<Item = u8>) -> Option<f64> {
    let (sum, n) = values.fold((0u32, 0u32), |(s, n), v| (s + u32::from(v), n + 1));
    if n == 0 {
        return None;
    }
    Some((f64::from(sum) / f64::from(n) * 10.0).round() / 10.0)
}

fn answered(item: &ReportItem) -> bool {
    item.answer.as_deref().is_some_and(|a| !a.trim().is_empty())
}

/// Picks up to [`MAX_POINTS`] phrases round-robin over the ordered lists (first phrase of each
/// list, then the second, ...), without duplicates.
fn round_robin(lists: &[Vec<String>]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let longest = lists.iter().map(Vec::len).max().unwrap_or(0);
    for k in 0..longest {
        for l in lists {
            if let Some(p) = l.get(k) {
                let p = p.trim().trim_end_matches('.').to_string();
                if !p.is_empty() && !out.iter().any(|o| o.eq_ignore_ascii_case(&p)) {
                    out.push(p);
                }
                if out.len() >= MAX_POINTS {
                    return out;
                }
            }
        }
    }
    out
}

/// The phrases of an item's points that are (or are not) covered; for items without a detail, the
/// stored rubric texts.
fn item_phrases(item: &ReportItem, d: &Detail, covered: bool) -> Vec<String> {
    if d.points.is_empty() {
        return if covered {
            item.rubric_covered.clone()
        } else {
            item.rubric_missed.clone()
        };
    }
    let (c, m) = grading::phrases(&d.points);
    if covered {
        c
    } else {
        m
    }
}

/// Points covered in the best-graded answers (score 5 and up), best first.
fn strengths(
    scored: &[(&ReportItem, u8)],
    items: &[ReportItem],
    details: &[Detail],
) -> Vec<String> {
    let mut best: Vec<&(&ReportItem, u8)> = scored.iter().filter(|(_, s)| *s >= 5).collect();
    best.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.index.cmp(&b.0.index)));
    let lists: Vec<Vec<String>> = best
        .iter()
        .filter_map(|(i, _)| {
            let n = items.iter().position(|x| std::ptr::eq(x, *i))?;
            Some(item_phrases(i, details.get(n)?, true))
        })
        .collect();
    round_robin(&lists)
}

/// A habit the rubric scorer noticed in at least two answers, as advice.
fn habit(details: &[Detail]) -> Option<String> {
    let mut counts: BTreeMap<Note, usize> = BTreeMap::new();
    for d in details {
        for n in &d.notes {
            *counts.entry(*n).or_default() += 1;
        }
    }
    let (note, _) = counts
        .into_iter()
        .filter(|(n, c)| *c >= 2 && habit_advice(*n).is_some())
        .max_by_key(|(n, c)| (*c, std::cmp::Reverse(*n)))?;
    habit_advice(note).map(str::to_string)
}

/// Advice for a habit the scorer notices across answers.
pub fn habit_advice(n: Note) -> Option<&'static str> {
    Some(match n {
        Note::TermList => "Explain ideas in full sentences instead of listing terms",
        Note::NoReasons => "Give the reason behind each choice",
        Note::NoExample => "Back answers with an example from your own work",
        Note::NoContext => "Set the scene before telling a story",
        Note::NoOwnActions => "Say what you personally did",
        Note::NoResult => "Finish each story with its outcome",
        Note::TooShort => "Give fuller answers",
        Note::OffTopic | Note::Instructions => return None,
    })
}

/// Points missed in the lowest-graded answered questions, lowest first, plus a habit seen in
/// several answers, plus "Answer every question" when some were skipped or left unanswered.
fn improvements(
    items: &[ReportItem],
    scored: &[(&ReportItem, u8)],
    details: &[Detail],
) -> Vec<String> {
    let mut worst: Vec<&(&ReportItem, u8)> = scored.iter().filter(|(_, s)| *s < 10).collect();
    worst.sort_by(|a, b| a.1.cmp(&b.1).then(a.0.index.cmp(&b.0.index)));
    let lists: Vec<Vec<String>> = worst
        .iter()
        .filter_map(|(i, _)| {
            let n = items.iter().position(|x| std::ptr::eq(x, *i))?;
            Some(item_phrases(i, details.get(n)?, false))
        })
        .collect();
    let mut out = round_robin(&lists);
    if let Some(h) = habit(details) {
        out.push(h);
    }
    if items.iter().any(|i| !answered(i)) {
        out.push("Answer every question".to_string());
    }
    out
}

/// An area as words for the summary.
fn area_words(c: &str) -> String {
    match c {
        "introduction" => "the introduction".into(),
        "technical" => "the technical questions".into(),
        "behavioral" => "the behavioral questions".into(),
        "project" => "the questions about your projects".into(),
        other => format!("the {} questions", other.replace('_', " ")),
    }
}

/// A category as words (the coach note's profile).
fn category_words(c: &str) -> String {
    area_words(area(c))
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn summary(
    input: &ReportInput,
    scored: &[(&ReportItem, u8)],
    areas: &BTreeMap<String, f64>,
    c: Counts,
) -> String {
    let mut s = if scored.is_empty() {
        "No answers were graded, so there is no overall result yet.".to_string()
    } else {
        let count = |v: Verdict| scored.iter().filter(|(_, x)| Verdict::of(*x) == v).count();
        let (solid, partial, not_yet) = (
            count(Verdict::Solid),
            count(Verdict::Partial),
            count(Verdict::NotYet),
        );
        let mut parts = Vec::new();
        if solid > 0 {
            parts.push(format!("{solid} solid"));
        }
        if partial > 0 {
            parts.push(format!("{partial} partial"));
        }
        if not_yet > 0 {
            parts.push(format!("{not_yet} not yet there"));
        }
        let list = match parts.len() {
            1 => parts[0].clone(),
            2 => format!("{} and {}", parts[0], parts[1]),
            _ => format!("{}, {} and {}", parts[0], parts[1], parts[2]),
        };
        if scored.len() == 1 {
            format!("Your one graded answer was {list}.")
                .replace("was 1 solid", "was solid")
                .replace("was 1 partial", "was partial")
                .replace("was 1 not yet there", "was not yet there")
        } else {
            format!("Of your {} graded answers: {list}.", scored.len())
        }
    };
    if areas.len() >= 2 {
        let mut best: Option<(&str, f64)> = None;
        let mut worst: Option<(&str, f64)> = None;
        for (a, m) in areas {
            if best.is_none_or(|(_, b)| *m > b) {
                best = Some((a, *m));
            }
            if worst.is_none_or(|(_, w)| *m < w) {
                worst = Some((a, *m));
            }
        }
        if let (Some((ba, bm)), Some((wa, wm))) = (best, worst) {
            if bm > wm {
                s.push_str(&format!(
                    " You did best on {} and have the most to add on {}.",
                    area_words(ba),
                    area_words(wa)
                ));
            } else {
                s.push_str(" Your answers were even across areas.");
            }
        }
    }
    let skipped = if c.skipped > 0 {
        format!(", skipped {}", c.skipped)
    } else {
        String::new()
    };
    match input.state {
        "ended_early" => s.push_str(&format!(
            " You ended the interview at question {} of {}: you answered {}{skipped}, and {} left unanswered.",
            c.asked,
            c.planned,
            c.answered,
            plural(c.unanswered, "question was", "questions were"),
        )),
        "expired" => s.push_str(&format!(
            " The interview closed after inactivity at question {} of {}: you answered {}{skipped}.",
            c.asked, c.planned, c.answered
        )),
        _ if c.answered < c.asked => s.push_str(&format!(
            " You answered {} of {} questions{skipped}; answering every one gives a fuller picture.",
            c.answered, c.asked
        )),
        _ => {}
    }
    if !input.regraded.is_empty() {
        s.push_str(&format!(
            " After the interview, a language model regraded {} that the rubric scorer had graded live.",
            plural(input.regraded.len(), "answer", "answers")
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::content::question_pool;

    fn item(index: u32, category: &str, score: Option<u8>, answer: Option<&str>) -> ReportItem {
        ReportItem {
            index,
            question_id: format!("backend-{index:03}"),
            category: category.into(),
            difficulty: "medium".into(),
            question: format!("Question {index}?"),
            answer: answer.map(str::to_string),
            audio_duration_s: None,
            score,
            feedback: "fb".into(),
            rubric_covered: vec![
                format!("Covered point {index}a"),
                format!("Covered point {index}b"),
            ],
            rubric_missed: vec![
                format!("Missed point {index}a"),
                format!("Missed point {index}b"),
            ],
            source: "heuristic".into(),
            follow_up: None,
        }
    }

    fn input<'a>(items: &'a [ReportItem], state: &'static str) -> ReportInput<'a> {
        ReportInput {
            interview_id: "iv-1",
            candidate_id: "c-1",
            candidate_name: "Ada",
            role: "Backend Engineer",
            track: Track::Technical,
            difficulty: Difficulty::Medium,
            mode: "balanced",
            state,
            started_at: "2026-01-01T10:00:00Z",
            finished_at: "2026-01-01T10:30:00Z",
            items,
            seed: "iv-1",
            questions: &[],
            planned: items.len(),
            regraded: &[],
            regraded_by: "",
        }
    }

    #[test]
    fn shape_and_scores() {
        let mut items = vec![
            item(1, "introduction", Some(9), Some("I built things")),
            item(2, "technical_medium", Some(6), Some("an answer")),
            item(3, "technical_hard", Some(3), Some("meh")),
            item(4, "technical_hard", None, None),
        ];
        items[1].audio_duration_s = Some(6.0);
        items[1].answer = Some("um so basically we use an index um".into());
        items[1].follow_up = Some(FollowUpItem {
            question: "Why?".into(),
            answer: Some("Because".into()),
            score: Some(5),
        });
        let r = build(&input(&items, "completed"));
        for k in [
            "interview_id",
            "candidate",
            "role",
            "track",
            "difficulty",
            "mode",
            "state",
            "started_at",
            "finished_at",
            "overall_score",
            "overall_band",
            "category_scores",
            "area_scores",
            "counts",
            "regraded",
            "questions",
            "strengths",
            "improvements",
            "speaking",
            "summary",
        ] {
            assert!(r.get(k).is_some(), "{k}");
        }
        assert_eq!(r["candidate"], json!({"id": "c-1", "name": "Ada"}));
        assert_eq!(r["track"], "technical");
        assert_eq!(r["difficulty"], "medium");
        assert_eq!(r["overall_score"], json!(6.0));
        assert_eq!(r["overall_band"], "partial");
        assert_eq!(r["category_scores"]["technical_medium"], json!(6.0));
        assert_eq!(r["category_scores"]["introduction"], json!(9.0));
        // The three technical levels are one area.
        assert_eq!(r["area_scores"]["technical"], json!(4.5));
        assert!(r["area_scores"].get("technical_hard").is_none());
        let qs = r["questions"].as_array().unwrap();
        assert_eq!(qs.len(), 4);
        assert!(qs[0].get("audio_duration_s").is_none());
        assert_eq!(qs[0]["band"], "solid");
        assert_eq!(qs[1]["band"], "partial");
        assert_eq!(qs[2]["band"], "not_yet");
        assert_eq!(qs[3]["band"], Value::Null);
        assert_eq!(qs[0]["graded_by"], "rubric");
        assert_eq!(qs[1]["follow_up"]["score"], 5);
        assert_eq!(qs[1]["follow_up"]["band"], "partial");
        assert_eq!(qs[1]["follow_up"]["skipped"], false);
        assert_eq!(qs[3]["score"], Value::Null);
        assert_eq!(
            r["counts"],
            json!({"planned": 4, "asked": 4, "answered": 3, "skipped": 0, "unanswered": 1})
        );
        assert_eq!(
            r["strengths"],
            json!([
                "Covered point 1a",
                "Covered point 2a",
                "Covered point 1b",
                "Covered point 2b"
            ])
        );
        let imp = r["improvements"].as_array().unwrap();
        assert_eq!(imp[0], "Missed point 3a");
        assert_eq!(imp.last().unwrap(), "Answer every question");
        assert!(imp.len() <= 6);
        assert_eq!(r["speaking"]["words_per_minute"], json!(80.0));
        assert_eq!(r["speaking"]["filler_words"]["um"], 2);
        let summary = r["summary"].as_str().unwrap();
        assert!(
            summary.contains("Of your 3 graded answers: 1 solid, 1 partial and 1 not yet there."),
            "{summary}"
        );
        assert!(
            summary.contains("best on the introduction")
                && summary.contains("most to add on the technical questions"),
            "{summary}"
        );
        assert!(summary.contains("You answered 3 of 4"), "{summary}");
        assert!(!summary.contains("technical_"), "{summary}");
        assert_eq!(r["regraded"], Value::Null);
        // Deterministic.
        assert_eq!(r, build(&input(&items, "completed")));
    }

    #[test]
    fn ended_early_counts_asked_answered_and_skipped() {
        // Planned 3; question 1 answered, question 2 skipped, question 3 open when the candidate ended.
        let mut items = vec![
            item(1, "technical_medium", Some(7), Some("an answer")),
            item(2, "technical_medium", None, None),
            item(3, "behavioral", None, None),
        ];
        items[1].source = SKIPPED.into();
        let mut inp = input(&items, "ended_early");
        inp.planned = 3;
        let r = build(&inp);
        assert_eq!(
            r["counts"],
            json!({"planned": 3, "asked": 3, "answered": 1, "skipped": 1, "unanswered": 1})
        );
        assert_eq!(r["questions"][1]["skipped"], true);
        assert_eq!(r["questions"][1]["band"], Value::Null);
        let s = r["summary"].as_str().unwrap();
        assert!(
            s.contains("You ended the interview at question 3 of 3: you answered 1, skipped 1, and 1 question was left unanswered."),
            "{s}"
        );
        assert_eq!(r["overall_score"], json!(7.0));
        // Ended at question 2 of 5 with one answer.
        let two = &items[..2];
        let mut inp = input(two, "ended_early");
        inp.planned = 5;
        let r = build(&inp);
        let s = r["summary"].as_str().unwrap();
        assert!(s.contains("at question 2 of 5: you answered 1, skipped 1, and 0 questions were left unanswered."), "{s}");
    }

    #[test]
    fn rubric_grades_carry_points_in_the_candidates_words_and_regrades_are_said() {
        let pool = question_pool::embedded().unwrap();
        let q = Arc::new(pool.get("backend-010").unwrap().clone());
        let answer = "We check Redis first and on a miss we read from Postgres and put the row in the cache. \
            Every key gets a TTL of a minute, so stale data can only live that long.";
        let mut a = item(1, "technical_easy", Some(5), Some(answer));
        a.question_id = q.id.clone();
        let mut b = a.clone();
        b.index = 2;
        b.source = "llm:groq".into();
        b.rubric_covered = vec![q.rubric[0].clone()];
        let items = vec![a, b];
        let questions = vec![q.clone(), q.clone()];
        let mut inp = input(&items, "completed");
        inp.questions = &questions;
        inp.regraded = &[1];
        inp.regraded_by = "llm:groq";
        let r = build(&inp);
        let p0 = &r["questions"][0]["points"];
        assert_eq!(p0.as_array().unwrap().len(), q.rubric.len());
        assert_eq!(p0[0]["coverage"], "stated");
        assert!(
            p0[0]["quote"]
                .as_str()
                .unwrap()
                .starts_with("We check Redis first"),
            "{p0}"
        );
        assert_eq!(p0[0]["say"], pool.guide(&q.id).unwrap().points[0].say);
        assert_eq!(r["questions"][1]["graded_by"], "model");
        assert_eq!(r["questions"][1]["regraded"], true);
        assert_eq!(r["questions"][1]["points"][0]["coverage"], "stated");
        assert_eq!(r["questions"][1]["points"][1]["coverage"], "missing");
        assert_eq!(r["regraded"], json!({"count": 1, "source": "llm:groq"}));
        let s = r["summary"].as_str().unwrap();
        assert!(s.contains("a language model regraded 1 answer"), "{s}");
        // Strengths are the pool's noun phrases, not rubric sentences.
        let strengths = r["strengths"].to_string();
        assert!(
            strengths.contains(&pool.guide(&q.id).unwrap().points[0].say),
            "{strengths}"
        );
    }

    #[test]
    fn nothing_scored() {
        let items = vec![item(1, "introduction", None, None)];
        let r = build(&input(&items, "expired"));
        assert_eq!(r["overall_score"], Value::Null);
        assert_eq!(r["overall_band"], Value::Null);
        assert_eq!(r["category_scores"], json!({}));
        assert_eq!(r["speaking"], Value::Null);
        assert_eq!(r["strengths"], json!([]));
        assert_eq!(r["improvements"], json!(["Answer every question"]));
        let s = r["summary"].as_str().unwrap();
        assert!(
            s.contains("No answers were graded") && s.contains("inactivity"),
            "{s}"
        );
        let r = build(&input(&[], "ended_early"));
        assert_eq!(r["questions"], json!([]));
    }
}
